/* rmutex.h - a mutex in shared memory that survives the death of its holder.
 *
 * A process-shared, robust pthread mutex: when a holder dies (SIGKILL), the
 * next locker is told so and repairs the data it protects before going on.
 * Critical sections under it must be short and must never call out (no
 * driver call, no I/O, no waiting): it is shared by unrelated processes.
 */
#ifndef GP_COMMON_RMUTEX_H
#define GP_COMMON_RMUTEX_H

#include <pthread.h>

/* Initialise a robust, process-shared mutex in place.  0 or -errno. */
int gp_rmutex_init(pthread_mutex_t *m) __attribute__((warn_unused_result));

/* Lock.  Returns 0 normally; 1 when the previous holder died inside its
 * critical section: the caller now holds the lock, must repair the shared
 * data and then call gp_rmutex_repaired().  A negative errno means the mutex
 * is unusable (a repairer died too: -ENOTRECOVERABLE). */
int gp_rmutex_lock(pthread_mutex_t *m) __attribute__((warn_unused_result));

/* Mark the state consistent after a lock that returned 1. */
void gp_rmutex_repaired(pthread_mutex_t *m);

void gp_rmutex_unlock(pthread_mutex_t *m);

#endif
