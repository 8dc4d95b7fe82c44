/* ctx.c - contexts: the device memory each one costs, and the allocations
 * that die with it.
 *
 * A context takes a few hundred MiB of device memory of its own (code,
 * stacks, printf and heap buffers).  The tenant is charged for it from the
 * moment it exists, so the budget bounds what the tenant really holds on
 * the card.  The primary context is charged on its first retain and given
 * back on its last release (or a reset); created contexts from creation to
 * destruction.  Destroying a context frees every allocation made in it, so
 * their charges go too.
 *
 * What one context costs is measured once per device: right after the
 * process's first context appears, NVML's figure for this process minus
 * what we have charged it so far.  NVML lists processes by PID in the
 * host's PID namespace; where ours is not among them (a container without
 * hostPID) the cost is GPUPOOL_CONTEXT_SIZE if set, else CTX_FALLBACK.
 */
#include <unistd.h>

#include "hook/hook.h"

/* A CUDA 12 context on a recent data-centre GPU with lazy module loading:
 * roughly this, before any library (cuBLAS, cuDNN) loads its kernels. */
#define CTX_FALLBACK (256ULL << 20)
/* A measurement above this is something else (another process sharing our
 * PID number in another namespace): ignore it. */
#define CTX_PLAUSIBLE_MAX (4ULL << 30)

/* NVML's figure of this process's memory on device `dev`, or 0. */
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

uint64_t gp__ctx_cost(int dev)
{
	struct gp__dev *d = gp__dev_get(dev);
	uint64_t cost, nvml, mine = 0;

	if (!d)
		return 0;
	if (gp__g.cfg.context_size)
		return gp__granules(gp__g.cfg.context_size);
	cost = __atomic_load_n(&d->ctx_cost, __ATOMIC_RELAXED);
	if (cost)
		return cost;
	nvml = nvml_self_usage(d->uuid);
	if (gp__g.region.slot >= 0)
		mine = __atomic_load_n(&gp__g.region.hdr->proc[gp__g.region.slot].used[d->slot],
				       __ATOMIC_RELAXED);
	if (nvml > mine && nvml - mine <= CTX_PLAUSIBLE_MAX) {
		cost = gp__granules(nvml - mine);
		gp_info("a context on %s costs %llu MiB (measured)", d->uuid,
			(unsigned long long)(cost >> 20));
	} else {
		cost = CTX_FALLBACK;
		gp_info("a context on %s is charged %llu MiB (not measurable here; set "
			"GPUPOOL_CONTEXT_SIZE to change)",
			d->uuid, (unsigned long long)(cost >> 20));
	}
	__atomic_store_n(&d->ctx_cost, cost, __ATOMIC_RELAXED);
	return cost;
}

/* --- the primary context ------------------------------------------------- */

GP_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	struct gp__dev *d;
	CUresult rc;
	uint64_t cost;
	int first;

	GP_NEED_REAL(cuDevicePrimaryCtxRetain);
	if ((rc = gp__enter()))
		return rc;
	rc = gp__real_cuDevicePrimaryCtxRetain(pctx, dev);
	d = gp__dev_get(dev);
	if (rc != CUDA_SUCCESS || !d)
		return rc;
	pthread_mutex_lock(&gp__g.lock);
	first = d->primary_refs++ == 0;
	__atomic_store_n(&d->primary, *pctx, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&gp__g.lock);
	if (!first)
		return rc;
	cost = gp__ctx_cost(dev);
	if (gp__charge(dev, cost, 0) != CUDA_SUCCESS) {
		/* No room for the context itself: as on a full card. */
		pthread_mutex_lock(&gp__g.lock);
		d->primary_refs--;
		pthread_mutex_unlock(&gp__g.lock);
		gp__real_cuDevicePrimaryCtxRelease_v2(dev);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	pthread_mutex_lock(&gp__g.lock);
	d->primary_charge += cost;
	pthread_mutex_unlock(&gp__g.lock);
	return rc;
}

/* The primary context of `dev` is gone (last release, or reset): give back
 * its cost and everything allocated in it. */
static void primary_gone(struct gp__dev *d, int dev, int reset)
{
	uint64_t charge = 0;
	CUcontext ctx;

	pthread_mutex_lock(&gp__g.lock);
	if (reset)
		d->primary_refs = 0;
	else if (d->primary_refs > 0)
		d->primary_refs--;
	if (d->primary_refs == 0) {
		charge = d->primary_charge;
		d->primary_charge = 0;
	}
	ctx = d->primary;
	pthread_mutex_unlock(&gp__g.lock);
	if (charge || reset) {
		gp__uncharge(dev, charge);
		gp__drop_owned((uint64_t)(uintptr_t)ctx);
	}
}

static CUresult release(CUdevice dev, CUresult (*real)(CUdevice), int reset)
{
	struct gp__dev *d;
	CUresult rc = real(dev);

	if (rc == CUDA_SUCCESS && (d = gp__dev_get(dev)))
		primary_gone(d, dev, reset);
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

/* After a context was created on `dev`: charge it, or destroy it again and
 * fail as a full card would. */
static CUresult created(CUresult rc, CUcontext *pctx, CUdevice dev)
{
	struct gp__rec rec = {.kind = GP_K_CTX, .dev = (int32_t)dev};

	if (rc != CUDA_SUCCESS || !pctx || !gp__dev_get(dev))
		return rc;
	rec.bytes = gp__ctx_cost(dev);
	if (gp__charge(dev, rec.bytes, 0) != CUDA_SUCCESS) {
		gp__real_cuCtxDestroy_v2(*pctx);
		*pctx = NULL;
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (gp__tab_put(&gp__tabs[GP_S_CTX], (uint64_t)(uintptr_t)*pctx, &rec))
		gp_error("out of host memory tracking a context; its cost stays charged");
	return rc;
}

#define CTX_PROLOGUE(n)                                                      \
	CUresult rc;                                                         \
	GP_NEED_REAL(n);                                                     \
	GP_NEED_REAL(cuCtxDestroy_v2);                                       \
	if ((rc = gp__enter()))                                              \
		return rc

GP_EXPORT CUresult CUDAAPI cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	CTX_PROLOGUE(cuCtxCreate);
	return created(gp__real_cuCtxCreate(pctx, flags, dev), pctx, dev);
}

GP_EXPORT CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	CTX_PROLOGUE(cuCtxCreate_v2);
	return created(gp__real_cuCtxCreate_v2(pctx, flags, dev), pctx, dev);
}

GP_EXPORT CUresult CUDAAPI cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *paramsArray,
					  int numParams, unsigned int flags, CUdevice dev)
{
	CTX_PROLOGUE(cuCtxCreate_v3);
	return created(gp__real_cuCtxCreate_v3(pctx, paramsArray, numParams, flags, dev), pctx,
		       dev);
}

GP_EXPORT CUresult CUDAAPI cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams,
					  unsigned int flags, CUdevice dev)
{
	CTX_PROLOGUE(cuCtxCreate_v4);
	return created(gp__real_cuCtxCreate_v4(pctx, ctxCreateParams, flags, dev), pctx, dev);
}

static CUresult destroy(CUcontext ctx, CUresult (*real)(CUcontext))
{
	struct gp__rec rec;
	uint64_t key = (uint64_t)(uintptr_t)ctx;
	int ours = gp__free_begin(GP_S_CTX, key, GP_K_CTX, &rec);
	CUresult rc = real(ctx);

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
