/* activity.c - when the tenant last launched a kernel, or copied or set
 * memory, on each GPU: the stamps the node agent reads to tell busy tenants
 * from idle ones (`last_launch_ns`, `last_copy_ns` in the region's device
 * entries; include/gpupool/region.h).
 *
 * The launch and copy hooks (launch.c, copy.c, graph.c) call the driver
 * first and hand its answer to gp__act, which stamps only a call the driver
 * took and returns the answer untouched.  This runs on every launch and
 * copy of every CUDA program, so it is built to cost a few dozen
 * instructions and no lock:
 *
 *  - the device is that of the current context.  Finding it takes a driver
 *    call (cuCtxGetCurrent: a thread-local read in the driver) and, only
 *    when the thread's current context changed, a lookup of its device; a
 *    thread-local cache keeps the last context with its device's entry.  A
 *    context handle can come back for another device once its context is
 *    gone, so every destruction, release or reset of a context and every
 *    fork bump a generation that empties every thread's cache at once;
 *  - the time is CLOCK_MONOTONIC_COARSE (the kernel's last tick: a read of
 *    the vDSO page, no syscall), which is all an idle detector measuring in
 *    seconds needs;
 *  - the shared cache line is written only when its stamp is 10 ms old or
 *    more, so that processes launching on one GPU do not take the line from
 *    each other's caches on every call: at most ~100 writes a second per
 *    stamp, whatever the rate of calls.  The store is a relaxed one; a lost
 *    race leaves a stamp a few milliseconds older than it could be.
 *
 * Nothing here can fail a call: a stamp that cannot be made (the hook not
 * ready, no current context, a device past the region's table) is skipped.
 * Every process with a ready hook has a region (a private one without
 * GPUPOOL_REGION, which nobody else reads), so every tenant the agent can
 * see records its activity, budget or not.
 */
#include <stddef.h>
#include <time.h>

#include "hook/hook.h"


_Static_assert(offsetof(struct gp_region_dev, last_copy_ns) ==
		       offsetof(struct gp_region_dev, last_launch_ns) + sizeof(uint64_t) * GP_ACT_COPY,
	       "stamps are indexed by enum gp__act");

/* The calling thread's current context when it last stamped, and where its
 * device's stamps live.  Initial-exec TLS: a couple of instructions to
 * reach (the library is preloaded, never dlopen'ed late). */
struct act_cache {
	struct gp__where w;        /* w.ctx NULL: nothing cached */
	uint32_t gen;              /* ctx_gen when it was resolved */
};
static __thread struct act_cache cache __attribute__((tls_model("initial-exec")));

/* Bumped whenever a context handle may stop meaning the device it meant. */
static uint32_t ctx_gen;

/* The current context `c` is not the cached one: find its device's entry
 * and cache it.  A failed lookup caches nothing, so the next call tries
 * again. */
static __attribute__((noinline, cold)) void resolve(CUcontext c)
{
	uint32_t gen = __atomic_load_n(&ctx_gen, __ATOMIC_ACQUIRE);
	const struct gp__dev *d;
	CUcontext cur;
	int dev;

	cache.w.ctx = NULL;
	if (gp__current(&dev, &cur) != CUDA_SUCCESS || cur != c)
		return;
	d = gp__dev_get(dev);
	if (d && d->slot >= 0 && d->slot < (int)GP_REGION_MAX_DEVS) {
		cache.w.dev = &gp__g.region.hdr->dev[d->slot];
		cache.w.ord = dev;
	} else {
		cache.w.dev = NULL;
		cache.w.ord = -1;
	}
	cache.gen = gen;
	cache.w.ctx = c;
}

/* The cached entry for the current context `c`, resolved if needed;
 * NULL when it cannot be. */
static inline const struct gp__where *where(CUcontext c)
{
	if (GP_UNLIKELY(c != cache.w.ctx ||
			cache.gen != __atomic_load_n(&ctx_gen, __ATOMIC_RELAXED))) {
		resolve(c);
		if (!cache.w.ctx)
			return NULL;
	}
	return &cache.w;
}

/* Stamp `what` in `e` (ordinal `ord`) with the coarse clock if its stamp
 * is stale.  A fresh launch stamp also tells the node file that the
 * process wants the GPU (share.c), so that tenants whose launches are not
 * metered are seen by those who arbitrate, at no cost per call. */
static inline void stamp_at(struct gp_region_dev *e, int ord, enum gp__act what, uint64_t now)
{
	uint64_t *s = &e->last_launch_ns + what;

	/* Unsigned: a stamp in the future (a corrupt file) is stale too. */
	if (now - __atomic_load_n(s, __ATOMIC_RELAXED) >= GP_ACT_STALE_NS) {
		__atomic_store_n(s, now, __ATOMIC_RELAXED);
		if (what == GP_ACT_LAUNCH && gp__g.node.hdr)
			gp__share_touch(ord, now);
	}
}

static inline void stamp(struct gp_region_dev *e, int ord, enum gp__act what)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	stamp_at(e, ord, what, (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
}


/* gp__act past its checks: the call succeeded and the hook is ready (so
 * cuCtxGetCurrent is resolved: init.c requires it).  Returns CUDA_SUCCESS,
 * the answer it stamps for, so that gp__act can tail-call it and keep no
 * frame of its own. */
static __attribute__((noinline)) CUresult act(enum gp__act what)
{
	const struct gp__where *w;
	CUcontext c;

	if (gp__real_cuCtxGetCurrent(&c) != CUDA_SUCCESS || !c || !(w = where(c)))
		return CUDA_SUCCESS;
	if (w->dev)
		stamp(w->dev, w->ord, what);
	return CUDA_SUCCESS;
}

const struct gp__where *gp__where(void)
{
	CUcontext c;

	if (gp__real_cuCtxGetCurrent(&c) != CUDA_SUCCESS || !c)
		return NULL;
	return where(c);
}

CUresult gp__act(CUresult rc, enum gp__act what)
{
	if (GP_UNLIKELY(rc != CUDA_SUCCESS || !__atomic_load_n(&gp__g.ready, __ATOMIC_ACQUIRE)))
		return rc;
	return act(what);
}

void gp__act_dev(int dev, enum gp__act what)
{
	const struct gp__dev *d;

	if (!__atomic_load_n(&gp__g.ready, __ATOMIC_ACQUIRE) || !(d = gp__dev_get(dev)) ||
	    d->slot < 0 || d->slot >= (int)GP_REGION_MAX_DEVS)
		return;
	stamp(&gp__g.region.hdr->dev[d->slot], dev, what);
}

void gp__act_forget(void)
{
	__atomic_add_fetch(&ctx_gen, 1, __ATOMIC_RELEASE);
}
