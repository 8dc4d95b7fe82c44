/* reserve.c - charging memory that the driver holds in reserve.
 *
 * Stream-ordered pools and the graph allocator keep freed memory reserved
 * (it stays taken on the card) until a trim; what counts against the budget
 * is the reserve the driver reports, not the sum of live allocations.
 *
 * Each reserve has a lock that is held across the driver's figures and the
 * call that may grow the reserve: reading how much is free, charging what
 * the call can add, making it, and reading the result must be one step, or
 * two threads that both see room would both skip the charge.  The calls
 * made under it (an allocation from a pool, a graph launch or upload, a
 * pool attribute read) never wait for other threads of the program nor call
 * back into it, so holding it cannot deadlock.
 *
 * The invariant: `charged` is never less than what the driver holds, except
 * by the growth a call under the lock has pre-charged separately.  Growth
 * only happens under the lock, so the charge a call needs is what the
 * reserve must hold afterwards beyond `charged`.
 */
#include "hook/hook.h"

uint64_t gp__reserve_growth(const struct gp__reserve *r, uint64_t used, uint64_t size)
{
	uint64_t need;

	if (__builtin_add_overflow(used, size, &need))
		return UINT64_MAX & ~(GP_GRANULE - 1);
	need = gp__granules(need);
	return need > r->charged ? need - r->charged : 0;
}

void gp__reserve_set(struct gp__reserve *r, uint64_t now)
{
	/* Forced: the driver already holds this memory. */
	if (now > r->charged)
		(void)gp__charge(r->dev, now - r->charged, 1);
	else if (now < r->charged)
		gp__uncharge(r->dev, r->charged - now);
	r->charged = now;
}
