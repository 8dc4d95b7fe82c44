/* budget.c - charging device memory to the tenant, and the records of what
 * was charged for which object.
 *
 * Every path that takes device memory charges it here before (or, for
 * memory the driver sizes itself, right after) calling the driver, and
 * records the object so that its free returns exactly what was charged.
 */
#include <errno.h>

#include "hook/hook.h"

struct gp__tab gp__tabs[GP_S_COUNT] = {
	[0 ... GP_S_COUNT - 1] = GP_TAB_INIT,
};

/* Why a charge failed, for the user; then the error to return.  Out of
 * line: the refusal is the rare case. */
static __attribute__((noinline, cold)) CUresult refused(const struct gp__dev *d, int dev,
							 uint64_t bytes, int rc)
{
	if (!d || d->slot < 0) {
		gp_warn("device %d is not accounted (more than %u devices?): refusing", dev,
			GP_REGION_MAX_DEVS);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (rc == -ENOSPC) {
		gp_error("no process slot free in region %s (%u live processes): refusing",
			 gp__g.cfg.region ? gp__g.cfg.region : "(private)", GP_REGION_MAX_PROCS);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (GP_LOG_ON(GP_LOG_INFO)) {
		uint64_t limit, used;
		gp_region_usage(&gp__g.region, (unsigned)d->slot, &limit, &used);
		gp_info("out of budget on %s: %llu bytes asked, %llu of %llu in use", d->uuid,
			(unsigned long long)bytes, (unsigned long long)used,
			(unsigned long long)limit);
	}
	return CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult gp__charge(int dev, uint64_t bytes, int force)
{
	const struct gp__dev *d = gp__dev_get(dev);
	int rc;

	if (GP_UNLIKELY(!d || d->slot < 0))
		return refused(d, dev, bytes, 0);
	if (bytes == 0)
		return CUDA_SUCCESS;
	rc = gp_region_charge(&gp__g.region, (unsigned)d->slot, bytes, force);
	return GP_LIKELY(rc == 0) ? CUDA_SUCCESS : refused(d, dev, bytes, rc);
}

void gp__uncharge(int dev, uint64_t bytes)
{
	const struct gp__dev *d = gp__dev_get(dev);

	if (d && d->slot >= 0)
		gp_region_uncharge(&gp__g.region, (unsigned)d->slot, bytes);
}

static int owned_by(uint64_t key, const struct gp__rec *rec, void *arg)
{
	(void)key;
	return rec->aux == *(uint64_t *)arg && (rec->kind == GP_K_ALLOC || rec->kind == GP_K_ARRAY);
}

static void give_back(uint64_t key, const struct gp__rec *rec, void *arg)
{
	(void)key;
	(void)arg;
	gp__uncharge(rec->dev, rec->bytes);
}

void gp__drop_owned(uint64_t ctx)
{
	gp__tab_drain(&gp__tabs[GP_S_PTR], owned_by, give_back, &ctx);
	gp__tab_drain(&gp__tabs[GP_S_ARRAY], owned_by, give_back, &ctx);
}

CUresult gp__recharge(int dev, uint64_t est, uint64_t real)
{
	if (real > est && gp__charge(dev, real - est, 0) != CUDA_SUCCESS) {
		gp__uncharge(dev, est);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (real < est)
		gp__uncharge(dev, est - real);
	return CUDA_SUCCESS;
}

/* Put a record back; if the table cannot grow, the object stays charged
 * for good (an over-count, never an under-count). */
static void keep(enum gp__space sp, uint64_t key, const struct gp__rec *rec)
{
	if (gp__tab_put(&gp__tabs[sp], key, rec))
		gp_error("out of host memory keeping a record; its %llu bytes stay charged",
			 (unsigned long long)rec->bytes);
}



int gp__free_end(enum gp__space sp, uint64_t key, const struct gp__rec *rec, CUresult rc)
{
	if (rc == CUDA_SUCCESS)
		return 1;
	keep(sp, key, rec); /* the driver kept the object; so do we */
	return 0;
}
