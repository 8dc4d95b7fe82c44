/* ctx.c - contexts: the device memory each one costs, and the allocations
 * that die with it.
 *
 * A context takes a few hundred MiB of device memory of its own (code,
 * stacks, printf and heap buffers).  Like every other allocation it is
 * charged *before* the driver makes it, so that racing threads can never
 * hold more than the budget even for an instant, and settled to what it
 * really took afterwards.  The primary context is charged while it is
 * active: from the retain that activates it to the release that drops its
 * last reference, or a reset (which deactivates it but keeps the retains:
 * the next retain activates it again).  Created contexts are charged from
 * creation to destruction.  Destroying or deactivating a context frees
 * every allocation made in it, so their charges go too.
 *
 * What one context costs is measured once per device, around the first
 * context this process makes there: NVML's figure for this process just
 * before and just after the driver call.  The difference is the context,
 * whatever else the process holds (VMM memory made before any context
 * included).  Only VMM calls can change the process's memory on a device
 * without a context; if one ran meanwhile (vmm.c counts them) the window
 * was not quiet, the context is charged the estimate, and the next context
 * measures again.  Until then, and wherever NVML cannot see our PID (a container
 * without hostPID), a context is charged GPUPOOL_CONTEXT_SIZE if set, else
 * 256 MiB + 2 MiB per SM, what a CUDA 12 context with lazy loading takes on
 * data-centre GPUs.  GPUPOOL_CONTEXT_SIZE never overrides a measurement.
 *
 * The primary context's retains, releases and resets hold the device's
 * ctx_lock across the driver call: the driver's reference count and our
 * mirror of it must change together, or a release and a retain racing in
 * other threads could leave an active context uncharged.  The first
 * measurement holds it too, so that two "first" contexts cannot measure
 * each other.  Nothing the driver calls back into takes it.
 */
#include <unistd.h>

#include "hook/hook.h"

#define CTX_BASE (256ULL << 20)
#define CTX_PER_SM (2ULL << 20)
/* A measurement above this is something else (another process sharing our
 * PID number in another namespace): not a context. */
#define CTX_PLAUSIBLE_MAX (4ULL << 30)

/* NVML's figure of this process's memory on device `uuid`, or 0. */
static uint64_t nvml_self_usage(const char *uuid)
{
	nvmlProcessInfo_t infos[64];
	unsigned int n = 64;
	nvmlDevice_t h;
	uint64_t used = 0;
	pid_t self = getpid();

	if (gp__resolve(GP_LIB_NVML) || !gp__real_nvmlInit_v2 || !gp__real_nvmlShutdown ||
	    !gp__real_nvmlDeviceGetHandleByUUID || !gp__real_nvmlDeviceGetComputeRunningProcesses_v3)
		return 0;
	if (gp__real_nvmlInit_v2() != NVML_SUCCESS)
		return 0;
	if (gp__real_nvmlDeviceGetHandleByUUID(uuid, &h) == NVML_SUCCESS &&
	    gp__real_nvmlDeviceGetComputeRunningProcesses_v3(h, &n, infos) == NVML_SUCCESS) {
		for (unsigned i = 0; i < n; i++)
			if (infos[i].pid == (unsigned)self)
				used = infos[i].usedGpuMemory;
	}
	gp__real_nvmlShutdown();
	return used;
}

/* What a context on `dev` is charged before the driver makes it: the
 * measured cost once known, else the estimate (see the top of the file). */
static uint64_t expected_cost(int dev, const struct gp__dev *d)
{
	uint64_t cost = __atomic_load_n(&d->ctx_cost, __ATOMIC_ACQUIRE);
	int sms = 0;

	if (cost)
		return cost;
	if (gp__g.cfg.context_size)
		return gp__granules(gp__g.cfg.context_size);
	if (gp__real_cuDeviceGetAttribute &&
	    gp__real_cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
					  (CUdevice)dev) != CUDA_SUCCESS)
		sms = 0;
	return CTX_BASE + CTX_PER_SM * (uint64_t)(sms > 0 && sms < 4096 ? sms : 0);
}

/* How a context comes into being and goes again, for with_charge. */
struct maker {
	CUresult (*make)(struct maker *m); /* the driver call */
	void (*unmake)(struct maker *m);   /* undo it (no room after all) */
	CUdevice dev;
	CUcontext *pctx;
	/* arguments of the cuCtxCreate variants */
	unsigned int flags;
	CUexecAffinityParam *affinity;
	int naffinity;
	CUctxCreateParams *params;
};

/* Charge a context on `dev`, make it, and settle the charge on what it
 * really took.  The caller holds d->ctx_lock if the cost may still be
 * unmeasured (then this call measures it).  Returns the driver's error, or
 * CUDA_ERROR_OUT_OF_MEMORY (nothing made) when the context does not fit;
 * on success *charged is what the tenant now pays for it. */
static CUresult with_charge(int dev, struct gp__dev *d, struct maker *m, uint64_t *charged)
{
	int measure = __atomic_load_n(&d->ctx_cost, __ATOMIC_ACQUIRE) == 0, quiet = 0;
	uint64_t est = expected_cost(dev, d), before = 0, after, cost = est;
	uint32_t calls0 = 0, calls1 = 0;
	CUresult rc;

	if ((rc = gp__charge(dev, est, 0)))
		return rc; /* no room for the context itself: as on a full card */
	if (measure) {
		quiet = gp__vmm_quiet(&calls0);
		before = nvml_self_usage(d->uuid);
	}
	rc = m->make(m);
	if (rc != CUDA_SUCCESS) {
		gp__uncharge(dev, est);
		return rc;
	}
	if (measure) {
		after = nvml_self_usage(d->uuid);
		quiet = quiet && gp__vmm_quiet(&calls1) && calls0 == calls1;
		if (!after) {
			/* NVML does not see us: the estimate is all there is. */
			gp_info("a context on %s is charged %llu MiB (not measurable here; set "
				"GPUPOOL_CONTEXT_SIZE to change)",
				d->uuid, (unsigned long long)(cost >> 20));
			__atomic_store_n(&d->ctx_cost, cost, __ATOMIC_RELEASE);
		} else if (quiet && after > before && after - before <= CTX_PLAUSIBLE_MAX) {
			cost = gp__granules(after - before);
			gp_info("a context on %s costs %llu MiB (measured)", d->uuid,
				(unsigned long long)(cost >> 20));
			__atomic_store_n(&d->ctx_cost, cost, __ATOMIC_RELEASE);
		}
		/* Otherwise VMM memory came or went meanwhile: this context is
		 * charged the estimate, and the next one measures again. */
		if (gp__recharge(dev, est, cost) != CUDA_SUCCESS) {
			m->unmake(m);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
	}
	*charged = cost;
	return CUDA_SUCCESS;
}

/* --- the primary context ------------------------------------------------- */

static CUresult retain_make(struct maker *m)
{
	return gp__real_cuDevicePrimaryCtxRetain(m->pctx, m->dev);
}

static void retain_unmake(struct maker *m)
{
	gp__real_cuDevicePrimaryCtxRelease_v2(m->dev);
}

GP_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	struct maker m = {.make = retain_make, .unmake = retain_unmake, .dev = dev, .pctx = pctx};
	struct gp__dev *d;
	uint64_t cost;
	CUresult rc;

	GP_NEED_REAL(cuDevicePrimaryCtxRetain);
	GP_NEED_REAL(cuDevicePrimaryCtxRelease_v2);
	if ((rc = gp__enter()))
		return rc;
	d = gp__dev_get(dev);
	if (!d || !pctx)
		return gp__real_cuDevicePrimaryCtxRetain(pctx, dev);
	pthread_mutex_lock(&d->ctx_lock);
	if (d->primary_active) {
		rc = gp__real_cuDevicePrimaryCtxRetain(pctx, dev);
		if (rc == CUDA_SUCCESS)
			d->primary_refs++;
	} else if ((rc = with_charge(dev, d, &m, &cost)) == CUDA_SUCCESS) {
		d->primary_refs++;
		d->primary_active = 1;
		d->primary_charge = cost;
		__atomic_store_n(&d->primary, *pctx, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&d->ctx_lock);
	return rc;
}

/* A release (`reset` 0) or reset succeeded in the driver: mirror it.  When
 * the context is no longer active, give back its cost and everything
 * allocated in it.  ctx_lock held. */
static void primary_dropped(struct gp__dev *d, int dev, int reset)
{
	if (!reset && d->primary_refs > 0)
		d->primary_refs--;
	if ((reset || d->primary_refs == 0) && d->primary_active) {
		d->primary_active = 0;
		gp__uncharge(dev, d->primary_charge);
		d->primary_charge = 0;
		gp__drop_owned((uint64_t)(uintptr_t)d->primary);
	}
}

static CUresult release(CUdevice dev, CUresult (*real)(CUdevice), int reset)
{
	struct gp__dev *d = gp__dev_get(dev);
	CUresult rc;

	if (!d || !__atomic_load_n(&gp__g.ready, __ATOMIC_ACQUIRE)) {
		rc = real(dev);
	} else {
		pthread_mutex_lock(&d->ctx_lock);
		rc = real(dev);
		if (rc == CUDA_SUCCESS)
			primary_dropped(d, dev, reset);
		pthread_mutex_unlock(&d->ctx_lock);
	}
	if (rc == CUDA_SUCCESS)
		gp__act_forget(); /* the context may be gone, its handle reused */
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
	GP_NEED_REAL(cuDevicePrimaryCtxRelease_v2);
	return release(dev, gp__real_cuDevicePrimaryCtxRelease_v2, 0);
}

GP_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev)
{
	GP_NEED_REAL(cuDevicePrimaryCtxRelease);
	return release(dev, gp__real_cuDevicePrimaryCtxRelease, 0);
}

GP_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
	GP_NEED_REAL(cuDevicePrimaryCtxReset_v2);
	return release(dev, gp__real_cuDevicePrimaryCtxReset_v2, 1);
}

GP_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxReset(CUdevice dev)
{
	GP_NEED_REAL(cuDevicePrimaryCtxReset);
	return release(dev, gp__real_cuDevicePrimaryCtxReset, 1);
}

/* --- created contexts ---------------------------------------------------- */

static void create_unmake(struct maker *m)
{
	gp__real_cuCtxDestroy_v2(*m->pctx);
	*m->pctx = NULL;
}

/* Charge, create through m->make, settle, and record the context. */
static CUresult created(struct maker *m)
{
	struct gp__rec rec = {.kind = GP_K_CTX, .dev = (int32_t)m->dev};
	struct gp__dev *d;
	int locked = 0;
	CUresult rc;

	GP_NEED_REAL(cuCtxDestroy_v2);
	if ((rc = gp__enter()))
		return rc;
	d = gp__dev_get(m->dev);
	if (!d || !m->pctx)
		return m->make(m);
	m->unmake = create_unmake;
	if (!__atomic_load_n(&d->ctx_cost, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&d->ctx_lock); /* this one may measure */
		locked = 1;
	}
	rc = with_charge(m->dev, d, m, &rec.bytes);
	if (locked)
		pthread_mutex_unlock(&d->ctx_lock);
	if (rc != CUDA_SUCCESS)
		return rc;
	if (gp__tab_put(&gp__tabs[GP_S_CTX], (uint64_t)(uintptr_t)*m->pctx, &rec))
		gp_error("out of host memory tracking a context; its cost stays charged");
	return rc;
}

static CUresult create_v1(struct maker *m)
{
	return gp__real_cuCtxCreate(m->pctx, m->flags, m->dev);
}

static CUresult create_v2(struct maker *m)
{
	return gp__real_cuCtxCreate_v2(m->pctx, m->flags, m->dev);
}

static CUresult create_v3(struct maker *m)
{
	return gp__real_cuCtxCreate_v3(m->pctx, m->affinity, m->naffinity, m->flags, m->dev);
}

static CUresult create_v4(struct maker *m)
{
	return gp__real_cuCtxCreate_v4(m->pctx, m->params, m->flags, m->dev);
}

GP_EXPORT CUresult CUDAAPI cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	struct maker m = {.make = create_v1, .pctx = pctx, .flags = flags, .dev = dev};

	GP_NEED_REAL(cuCtxCreate);
	return created(&m);
}

GP_EXPORT CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	struct maker m = {.make = create_v2, .pctx = pctx, .flags = flags, .dev = dev};

	GP_NEED_REAL(cuCtxCreate_v2);
	return created(&m);
}

GP_EXPORT CUresult CUDAAPI cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *paramsArray,
					  int numParams, unsigned int flags, CUdevice dev)
{
	struct maker m = {.make = create_v3, .pctx = pctx, .flags = flags, .dev = dev,
			  .affinity = paramsArray, .naffinity = numParams};

	GP_NEED_REAL(cuCtxCreate_v3);
	return created(&m);
}

GP_EXPORT CUresult CUDAAPI cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams,
					  unsigned int flags, CUdevice dev)
{
	struct maker m = {.make = create_v4, .pctx = pctx, .flags = flags, .dev = dev,
			  .params = ctxCreateParams};

	GP_NEED_REAL(cuCtxCreate_v4);
	return created(&m);
}

static CUresult destroy(CUcontext ctx, CUresult (*real)(CUcontext))
{
	struct gp__rec rec;
	uint64_t key = (uint64_t)(uintptr_t)ctx;
	int ours = gp__free_begin(GP_S_CTX, key, GP_KIND(GP_K_CTX), &rec);
	CUresult rc = real(ctx);

	if (rc == CUDA_SUCCESS)
		gp__act_forget(); /* its handle may come back for another device */
	if (ours && gp__free_end(GP_S_CTX, key, &rec, rc)) {
		gp__uncharge(rec.dev, rec.bytes);
		gp__drop_owned(key);
	}
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuCtxDestroy_v2(CUcontext ctx)
{
	GP_NEED_REAL(cuCtxDestroy_v2);
	return destroy(ctx, gp__real_cuCtxDestroy_v2);
}

GP_EXPORT CUresult CUDAAPI cuCtxDestroy(CUcontext ctx)
{
	GP_NEED_REAL(cuCtxDestroy);
	return destroy(ctx, gp__real_cuCtxDestroy);
}
