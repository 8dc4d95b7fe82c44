/* rmutex.c - see rmutex.h. */
#include "common/rmutex.h"

#include <errno.h>

int gp_rmutex_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc;

	rc = pthread_mutexattr_init(&a);
	if (rc)
		return -rc;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

int gp_rmutex_lock(pthread_mutex_t *m)
{
	int rc = pthread_mutex_lock(m);

	if (rc == 0)
		return 0;
	if (rc == EOWNERDEAD)
		return 1;
	return -rc;
}

void gp_rmutex_repaired(pthread_mutex_t *m)
{
	pthread_mutex_consistent(m);
}

void gp_rmutex_unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}
