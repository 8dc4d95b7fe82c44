/* llock.h - a mutex in shared memory whose holder is known by its lease.
 *
 * The lock word names its holder: the lease slot (lease.h) of the holding
 * process and a generation number of that slot, packed by GP_LLOCK_ID.  A
 * waiter that has waited a while asks the caller's judge whether that
 * holder still exists (its lease is held and the slot has not changed hands
 * since); if not, the holder died inside its critical section, and the
 * waiter takes the lock over and is told to repair.  So it survives SIGKILL
 * like a robust pthread mutex, but costs one compare-and-swap to lock and
 * one exchange to unlock when uncontended: no robust list, no system call.
 * Waiters sleep on a futex.  Critical sections must be short and never
 * call out.
 */
#ifndef GP_COMMON_LLOCK_H
#define GP_COMMON_LLOCK_H

#include <stdint.h>

#define GP_LLOCK_WAITERS 0x80000000u
#define GP_LLOCK_MAX_SLOT 2046u

/* The identity of lease slot `slot` (<= GP_LLOCK_MAX_SLOT) in its `gen`th
 * tenure.  Never 0 and never has the waiters bit. */
#define GP_LLOCK_ID(slot, gen) ((((uint32_t)(gen) & 0xfffffu) << 11) | ((uint32_t)(slot) + 1u))
#define GP_LLOCK_SLOT(id) (((id) & 0x7ffu) - 1u)
#define GP_LLOCK_GEN(id) (((id) >> 11) & 0xfffffu)

/* Does the holder with this identity still exist?  1 yes, 0 no (dead, or
 * its slot is someone else's now). */
typedef int (*gp_llock_alive_fn)(void *arg, uint32_t holder);

/* Take the lock as `me`.  Returns 0, or 1 when it was taken over from a
 * holder that is gone: the caller then holds it and must repair what the
 * holder may have left half-done. */
int gp_llock_lock(uint32_t *word, uint32_t me, gp_llock_alive_fn alive, void *arg)
	__attribute__((warn_unused_result));

void gp_llock_unlock(uint32_t *word);

#endif
