/* reserve.c - charging memory that the driver holds in reserve.
 *
 * Stream-ordered pools and the graph allocator keep freed memory reserved
 * (it stays taken on the card) until a trim; what counts against the budget
 * is the reserve the driver reports, not the sum of live allocations.  A
 * reserve is settled by reading the driver's figure and charging the
 * difference from what we charged before.  The read is a driver call, so
 * it happens outside any lock; a generation number orders concurrent
 * settles so that a stale reading never overwrites a newer one.
 */
#include "hook/hook.h"

static pthread_mutex_t settle_lock = PTHREAD_MUTEX_INITIALIZER;

void gp__reserve_settle(struct gp__reserve *r, CUresult (*read)(void *arg, uint64_t *bytes),
			void *arg)
{
	/* Each retry means another settle completed meanwhile; its reading
	 * is at least as new as ours, so giving up after a few is safe. */
	for (int tries = 0; tries < 4; tries++) {
		uint64_t gen = __atomic_load_n(&r->gen, __ATOMIC_ACQUIRE), now;

		if (read(arg, &now) != CUDA_SUCCESS)
			return;
		pthread_mutex_lock(&settle_lock);
		if (r->gen != gen) {
			pthread_mutex_unlock(&settle_lock);
			continue;
		}
		/* Forced: the driver already holds this memory. */
		if (now > r->charged)
			(void)gp__charge(r->dev, now - r->charged, 1);
		else if (now < r->charged)
			gp__uncharge(r->dev, r->charged - now);
		r->charged = now;
		__atomic_store_n(&r->gen, gen + 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&settle_lock);
		return;
	}
}

/* Forget a reserve (its owner is gone): give back what it holds. */
void gp__reserve_drop(struct gp__reserve *r)
{
	pthread_mutex_lock(&settle_lock);
	gp__uncharge(r->dev, r->charged);
	r->charged = 0;
	r->gen++;
	pthread_mutex_unlock(&settle_lock);
}

void gp__reserve_atfork(enum gp__fork_phase phase)
{
	if (phase == GP_FORK_PREPARE)
		pthread_mutex_lock(&settle_lock);
	else if (phase == GP_FORK_PARENT)
		pthread_mutex_unlock(&settle_lock);
	else
		settle_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
}
