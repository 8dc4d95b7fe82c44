/* llock.c - see llock.h.  The states of the word follow Drepper's
 * "Futexes Are Tricky" mutex: free (0), held (id), held with possible
 * waiters (id | WAITERS); the holder's identity is what the paper's 1 and 2
 * carry here. */
#include "common/llock.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long a waiter sleeps before it looks whether the holder still
 * exists: a dead holder costs the others at most this much. */
#define PROBE_NS 2000000L

static void futex_wait(uint32_t *w, uint32_t val)
{
	struct timespec t = {.tv_sec = 0, .tv_nsec = PROBE_NS};

	/* Shared futex (no FUTEX_PRIVATE_FLAG): waiters are in other
	 * processes, on a MAP_SHARED file mapping. */
	syscall(SYS_futex, w, FUTEX_WAIT, val, &t, NULL, 0);
}

static void futex_wake(uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static int lock_slow(uint32_t *w, uint32_t me, gp_llock_alive_fn alive, void *arg)
{
	for (;;) {
		uint32_t v = __atomic_load_n(w, __ATOMIC_RELAXED);

		if (v == 0) {
			/* Take it marked contended: others may be asleep. */
			if (__atomic_compare_exchange_n(w, &v, me | GP_LLOCK_WAITERS, 0,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				return 0;
			continue;
		}
		if (!(v & GP_LLOCK_WAITERS) &&
		    !__atomic_compare_exchange_n(w, &v, v | GP_LLOCK_WAITERS, 0, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
			continue;
		futex_wait(w, v | GP_LLOCK_WAITERS);
		/* Woken, or the probe interval passed: if the same holder still
		 * has it, ask whether it exists at all. */
		uint32_t now = __atomic_load_n(w, __ATOMIC_RELAXED);
		if ((now & ~GP_LLOCK_WAITERS) == (v & ~GP_LLOCK_WAITERS) &&
		    !alive(arg, now & ~GP_LLOCK_WAITERS) &&
		    __atomic_compare_exchange_n(w, &now, me | GP_LLOCK_WAITERS, 0, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return 1;
	}
}

int gp_llock_lock(uint32_t *w, uint32_t me, gp_llock_alive_fn alive, void *arg)
{
	uint32_t v = 0;

	if (__atomic_compare_exchange_n(w, &v, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return 0;
	return lock_slow(w, me, alive, arg);
}

void gp_llock_unlock(uint32_t *w)
{
	if (__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) & GP_LLOCK_WAITERS)
		futex_wake(w);
}
