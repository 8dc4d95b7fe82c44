/* mcond.h - condition variables timed on CLOCK_MONOTONIC (gp_now_ns's
 * clock), so that a step of the wall clock never stretches or cuts a
 * thread's timed wait. */
#ifndef GP_COMMON_MCOND_H
#define GP_COMMON_MCOND_H

#include <pthread.h>
#include <stdint.h>

/* Initialise cv for gp_mcond_wait_until.  0 or an errno. */
int gp_mcond_init(pthread_cond_t *cv);

/* Wait on cv (mu held) until it is signalled or CLOCK_MONOTONIC reaches
 * until_ns.  0 when woken (possibly spuriously: recheck the condition),
 * ETIMEDOUT once the deadline has passed. */
int gp_mcond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t until_ns);

#endif
