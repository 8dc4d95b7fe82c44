/* mem.c - linear device memory (cuMemAlloc, pitch, managed, cuMemFree) and
 * the virtual card's size (cuMemGetInfo, cuDeviceTotalMem).
 *
 * An allocation is charged before the driver is called, so concurrent
 * requests can never together pass the budget, and given back if the
 * driver fails.  The charge is the request rounded up to GP_GRANULE, what
 * the card really gives up.  Frees of pointers we did not hand out (IPC
 * imports, memory from before a fork) go to the driver untouched.
 */
#include <errno.h>

#include "hook/hook.h"

/* Charge `bytes` on the current device; fills dev and ctx for the record. */
static inline __attribute__((always_inline)) CUresult begin(uint64_t bytes, int *dev,
							    CUcontext *ctx)
{
	CUresult rc = gp__enter();

	if (rc == CUDA_SUCCESS)
		rc = gp__current(dev, ctx);
	if (rc == CUDA_SUCCESS)
		rc = gp__charge(*dev, bytes, 0);
	return rc;
}

/* After the driver call: record a success, give back a failure's charge. */
static inline __attribute__((always_inline)) CUresult finish(CUresult rc, CUdeviceptr p, int dev,
							     CUcontext ctx, uint64_t bytes)
{
	struct gp__rec rec = {.bytes = bytes, .aux = (uint64_t)(uintptr_t)ctx, .dev = dev,
			      .kind = GP_K_ALLOC};

	if (rc != CUDA_SUCCESS) {
		gp__uncharge(dev, bytes);
		return rc;
	}
	/* If the table cannot grow the memory stays charged for good: an
	 * over-count, never an under-count. */
	if (gp__tab_put(&gp__tabs[GP_S_PTR], p, &rec))
		gp_error("out of host memory tracking an allocation; its %llu bytes stay charged",
			 (unsigned long long)bytes);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
	uint64_t bytes = gp__granules(bytesize);
	CUcontext ctx;
	CUresult rc;
	int dev;

	GP_NEED_REAL(cuMemAlloc_v2);
	if (!dptr || bytesize == 0) /* let the driver say what is wrong */
		return gp__real_cuMemAlloc_v2(dptr, bytesize);
	if ((rc = begin(bytes, &dev, &ctx)))
		return rc;
	rc = gp__real_cuMemAlloc_v2(dptr, bytesize);
	return finish(rc, rc ? 0 : *dptr, dev, ctx, bytes);
}

GP_EXPORT CUresult CUDAAPI cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize,
					     unsigned int flags)
{
	uint64_t bytes = gp__granules(bytesize);
	CUcontext ctx;
	CUresult rc;
	int dev;

	GP_NEED_REAL(cuMemAllocManaged);
	if (!dptr || bytesize == 0)
		return gp__real_cuMemAllocManaged(dptr, bytesize, flags);
	if ((rc = begin(bytes, &dev, &ctx)))
		return rc;
	rc = gp__real_cuMemAllocManaged(dptr, bytesize, flags);
	return finish(rc, rc ? 0 : *dptr, dev, ctx, bytes);
}

/* The driver pads each row to a pitch of its choosing, a multiple of the
 * pitch alignment: 512 bytes or less on every GPU CUDA supports.  We charge
 * the worst case for the row width first, so racing threads can never
 * together hold more than the budget, and settle on pitch x height once the
 * driver has answered (failing then if a larger pitch than we know does not
 * fit). */
#define PITCH_ALIGN 512u

GP_EXPORT CUresult CUDAAPI cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch,
					      size_t WidthInBytes, size_t Height,
					      unsigned int ElementSizeBytes)
{
	uint64_t row, est, real;
	CUcontext ctx;
	CUresult rc;
	int dev;

	GP_NEED_REAL(cuMemAllocPitch_v2);
	GP_NEED_REAL(cuMemFree_v2);
	if (!dptr || !pPitch || WidthInBytes == 0 || Height == 0)
		return gp__real_cuMemAllocPitch_v2(dptr, pPitch, WidthInBytes, Height,
						   ElementSizeBytes);
	if (__builtin_add_overflow((uint64_t)WidthInBytes, PITCH_ALIGN - 1, &row) ||
	    __builtin_mul_overflow(row & ~(uint64_t)(PITCH_ALIGN - 1), (uint64_t)Height, &est))
		return CUDA_ERROR_OUT_OF_MEMORY; /* no card holds that */
	est = gp__granules(est);
	if ((rc = begin(est, &dev, &ctx)))
		return rc;
	rc = gp__real_cuMemAllocPitch_v2(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
	if (rc != CUDA_SUCCESS)
		return finish(rc, 0, dev, ctx, est);
	real = gp__granules((uint64_t)*pPitch * Height);
	if (gp__recharge(dev, est, real) != CUDA_SUCCESS) {
		gp__real_cuMemFree_v2(*dptr);
		*dptr = 0;
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	return finish(rc, *dptr, dev, ctx, real);
}

static CUresult free_sync(CUdeviceptr ptr, void *arg)
{
	(void)arg;
	return gp__real_cuMemFree_v2(ptr);
}

/* Any allocation: linear, managed, pitch, or stream-ordered (which the
 * driver frees after synchronising); a pointer we did not hand out (an IPC
 * import, garbage) goes to the driver, and nothing is given back. */
GP_EXPORT CUresult CUDAAPI cuMemFree_v2(CUdeviceptr dptr)
{
	GP_NEED_REAL(cuMemFree_v2);
	return gp__free_ptr(dptr, free_sync, NULL);
}

/* The tenant's view of device `dev` (gp__virtual).  Returns 0 if the
 * device has no budget: the real figures stand. */
static int virtual_info(int dev, uint64_t real_free, uint64_t real_total, uint64_t *vfree,
			uint64_t *vtotal)
{
	const struct gp__dev *d = gp__dev_get(dev);
	uint64_t limit, used;

	if (!d || !d->limit)
		return 0;
	gp__pools_refresh(0);
	/* Dead processes' charges come back here even if nobody allocates:
	 * at most one sweep of the region per 100 ms across the tenant. */
	gp_region_sweep(&gp__g.region, 100000000ULL);
	gp_region_usage(&gp__g.region, (unsigned)d->slot, &limit, &used);
	gp__virtual(limit, used, real_free, real_total, vfree, vtotal);
	return 1;
}

GP_EXPORT CUresult CUDAAPI cuMemGetInfo_v2(size_t *free, size_t *total)
{
	size_t f, t;
	uint64_t vf, vt;
	CUcontext ctx;
	CUresult rc;
	int dev;

	GP_NEED_REAL(cuMemGetInfo_v2);
	if ((rc = gp__enter()))
		return rc;
	if (!free || !total)
		return gp__real_cuMemGetInfo_v2(free, total);
	rc = gp__real_cuMemGetInfo_v2(&f, &t);
	if (rc != CUDA_SUCCESS)
		return rc;
	if (gp__current(&dev, &ctx) == CUDA_SUCCESS && virtual_info(dev, f, t, &vf, &vt)) {
		f = vf;
		t = vt;
	}
	*free = f;
	*total = t;
	return CUDA_SUCCESS;
}

GP_EXPORT CUresult CUDAAPI cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
	const struct gp__dev *d;
	CUresult rc;

	GP_NEED_REAL(cuDeviceTotalMem_v2);
	rc = gp__enter();
	if (rc)
		return rc;
	rc = gp__real_cuDeviceTotalMem_v2(bytes, dev);
	d = gp__dev_get(dev);
	if (rc == CUDA_SUCCESS && d && d->limit && d->limit < *bytes)
		*bytes = d->limit;
	return rc;
}
