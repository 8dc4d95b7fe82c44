/* counter.h - byte counters in shared memory, changed without a lock.
 *
 * The tenant region and the simulator's machine state both keep a device's
 * bytes in use as an admission counter that many processes raise and lower
 * at once, and must never let a stopped or dead process make another wait.
 * These two operations are all they need: a raise that refuses to pass a
 * limit, and a lowering that never goes below zero (a corrupt or racing
 * figure must not wrap round to "nearly everything in use" or "nothing").
 */
#ifndef GP_COMMON_COUNTER_H
#define GP_COMMON_COUNTER_H

#include <errno.h>
#include <stdint.h>

/* Raise *v by `by` if it stays at or under `limit`: 0, or -ENOMEM (and
 * *v unchanged).  One compare-and-swap when nobody else writes. */
static inline int gp_counter_admit(uint64_t *v, uint64_t limit, uint64_t by)
{
	uint64_t cur = __atomic_load_n(v, __ATOMIC_RELAXED);

	do {
		if (cur > limit || by > limit - cur)
			return -ENOMEM;
	} while (!__atomic_compare_exchange_n(v, &cur, cur + by, 1, __ATOMIC_SEQ_CST,
					      __ATOMIC_RELAXED));
	return 0;
}

/* Lower *v by up to `by`, never below 0.  Returns what it took. */
static inline uint64_t gp_counter_take(uint64_t *v, uint64_t by)
{
	uint64_t cur = __atomic_load_n(v, __ATOMIC_RELAXED), t;

	do {
		t = cur < by ? cur : by;
	} while (t && !__atomic_compare_exchange_n(v, &cur, cur - t, 1, __ATOMIC_SEQ_CST,
						   __ATOMIC_RELAXED));
	return t;
}

#endif
