/* mcond.c - see mcond.h. */
#include "common/mcond.h"

#include <time.h>

int gp_mcond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int rc;

	if ((rc = pthread_condattr_init(&ca)))
		return rc;
	if (!(rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)))
		rc = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

int gp_mcond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t until_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(until_ns / 1000000000ULL),
		.tv_nsec = (long)(until_ns % 1000000000ULL),
	};

	return pthread_cond_timedwait(cv, mu, &ts);
}
