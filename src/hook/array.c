/* array.c - CUDA arrays (1D, 2D, 3D, layered, mipmapped): texture memory
 * whose layout, and so whose size, only the driver knows.
 *
 * We charge a lower bound before creating the array (so two concurrent
 * creations can never pass the budget together, and an array that fits is
 * never refused), then ask the driver what the array really takes
 * (cuArrayGetMemoryRequirements) and settle on that, destroying the array
 * again if the rest does not fit.  Arrays die with their context, like
 * linear memory.
 */
#include "hook/hook.h"

/* Bytes per channel of an array format.  Formats not listed (packed video
 * and block-compressed ones) count 1 byte: the estimate must stay a lower
 * bound, and the driver's answer replaces it anyway. */
static unsigned format_bytes(CUarray_format f)
{
	static const struct {
		CUarray_format f;
		unsigned bytes;
	} sizes[] = {
		{CU_AD_FORMAT_UNSIGNED_INT8, 1},  {CU_AD_FORMAT_SIGNED_INT8, 1},
		{CU_AD_FORMAT_UNSIGNED_INT16, 2}, {CU_AD_FORMAT_SIGNED_INT16, 2},
		{CU_AD_FORMAT_HALF, 2},           {CU_AD_FORMAT_UNSIGNED_INT32, 4},
		{CU_AD_FORMAT_SIGNED_INT32, 4},   {CU_AD_FORMAT_FLOAT, 4},
	};

	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		if (sizes[i].f == f)
			return sizes[i].bytes;
	return 1;
}

/* A lower bound of what an array of w x h x d elements takes (h, d may be
 * 0): its unpadded bytes, summed over `levels` mipmap levels (each half the
 * last in every dimension, down to 1; each level aligned to 512 bytes, as
 * the driver lays them out).  The pre-charge must never exceed the real
 * size, or an array that fits would be refused at the edge of the budget;
 * it is what the array takes when the driver adds no padding of its own.
 * Returns 0 on overflow. */
static uint64_t estimate(size_t w, size_t h, size_t d, CUarray_format f, unsigned ch,
			 unsigned levels)
{
	uint64_t elem = (uint64_t)format_bytes(f) * (ch ? ch : 1), total = 0;

	h = h ? h : 1;
	d = d ? d : 1;
	for (unsigned l = 0; l < levels; l++) {
		uint64_t n;
		if (__builtin_mul_overflow((uint64_t)w, (uint64_t)h, &n) ||
		    __builtin_mul_overflow(n, (uint64_t)d, &n) || __builtin_mul_overflow(n, elem, &n) ||
		    (levels > 1 && __builtin_add_overflow(n, 511, &n)) ||
		    __builtin_add_overflow(total, levels > 1 ? n & ~511ULL : n, &total))
			return 0;
		if (w == 1 && h == 1 && d == 1)
			break;
		w = w > 1 ? w / 2 : 1;
		h = h > 1 ? h / 2 : 1;
		d = d > 1 ? d / 2 : 1;
	}
	return gp__granules(total);
}

typedef CUresult (*requirements_fn)(CUDA_ARRAY_MEMORY_REQUIREMENTS *, void *, CUdevice);

/* After the driver created array `a` (pre-charged `est` on `dev`): settle
 * the charge on what it really takes and remember it.  On failure to fit,
 * `destroy` removes the array again. */
static CUresult settle(CUresult rc, void *a, int dev, CUcontext ctx, uint64_t est,
		       requirements_fn req, CUresult (*destroy)(void *))
{
	CUDA_ARRAY_MEMORY_REQUIREMENTS r;
	struct gp__rec rec = {.kind = GP_K_ARRAY, .dev = dev, .aux = (uint64_t)(uintptr_t)ctx,
			      .bytes = est};

	if (rc != CUDA_SUCCESS) {
		gp__uncharge(dev, est);
		return rc;
	}
	if (req && req(&r, a, (CUdevice)dev) == CUDA_SUCCESS) {
		rec.bytes = gp__granules(r.size);
		if (gp__recharge(dev, est, rec.bytes) != CUDA_SUCCESS) {
			destroy(a);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
	}
	if (gp__tab_put(&gp__tabs[GP_S_ARRAY], (uint64_t)(uintptr_t)a, &rec))
		gp_error("out of host memory tracking an array; its %llu bytes stay charged",
			 (unsigned long long)rec.bytes);
	return CUDA_SUCCESS;
}

/* Enter, find the current device and charge the estimate. */
static CUresult begin(uint64_t est, int *dev, CUcontext *ctx)
{
	CUresult rc = gp__enter();

	if (rc == CUDA_SUCCESS)
		rc = gp__current(dev, ctx);
	if (rc == CUDA_SUCCESS)
		rc = est ? gp__charge(*dev, est, 0) : CUDA_ERROR_OUT_OF_MEMORY;
	return rc;
}

static CUresult destroy_array(void *a)
{
	return gp__real_cuArrayDestroy((CUarray)a);
}

static CUresult destroy_mipmap(void *a)
{
	return gp__real_cuMipmappedArrayDestroy((CUmipmappedArray)a);
}

static CUresult array_req(CUDA_ARRAY_MEMORY_REQUIREMENTS *r, void *a, CUdevice dev)
{
	return gp__real_cuArrayGetMemoryRequirements(r, (CUarray)a, dev);
}

static CUresult mipmap_req(CUDA_ARRAY_MEMORY_REQUIREMENTS *r, void *a, CUdevice dev)
{
	return gp__real_cuMipmappedArrayGetMemoryRequirements(r, (CUmipmappedArray)a, dev);
}

GP_EXPORT CUresult CUDAAPI cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *desc)
{
	CUcontext ctx;
	uint64_t est;
	CUresult rc;
	int dev;

	GP_NEED_REAL(cuArrayCreate_v2);
	GP_NEED_REAL(cuArrayDestroy);
	if (!pHandle || !desc || desc->Width == 0)
		return gp__real_cuArrayCreate_v2(pHandle, desc);
	est = estimate(desc->Width, desc->Height, 0, desc->Format, desc->NumChannels, 1);
	if ((rc = begin(est, &dev, &ctx)))
		return rc;
	rc = gp__real_cuArrayCreate_v2(pHandle, desc);
	return settle(rc, rc ? NULL : *pHandle, dev, ctx, est,
		      gp__real_cuArrayGetMemoryRequirements ? array_req : NULL, destroy_array);
}

GP_EXPORT CUresult CUDAAPI cuArray3DCreate_v2(CUarray *pHandle,
					      const CUDA_ARRAY3D_DESCRIPTOR *desc)
{
	CUcontext ctx;
	uint64_t est;
	CUresult rc;
	int dev;

	GP_NEED_REAL(cuArray3DCreate_v2);
	GP_NEED_REAL(cuArrayDestroy);
	if (!pHandle || !desc || desc->Width == 0)
		return gp__real_cuArray3DCreate_v2(pHandle, desc);
	est = estimate(desc->Width, desc->Height, desc->Depth, desc->Format, desc->NumChannels, 1);
	if ((rc = begin(est, &dev, &ctx)))
		return rc;
	rc = gp__real_cuArray3DCreate_v2(pHandle, desc);
	return settle(rc, rc ? NULL : *pHandle, dev, ctx, est,
		      gp__real_cuArrayGetMemoryRequirements ? array_req : NULL, destroy_array);
}

GP_EXPORT CUresult CUDAAPI cuMipmappedArrayCreate(CUmipmappedArray *pHandle,
						  const CUDA_ARRAY3D_DESCRIPTOR *desc,
						  unsigned int numMipmapLevels)
{
	CUcontext ctx;
	uint64_t est;
	CUresult rc;
	int dev;

	GP_NEED_REAL(cuMipmappedArrayCreate);
	GP_NEED_REAL(cuMipmappedArrayDestroy);
	if (!pHandle || !desc || desc->Width == 0 || numMipmapLevels == 0)
		return gp__real_cuMipmappedArrayCreate(pHandle, desc, numMipmapLevels);
	est = estimate(desc->Width, desc->Height, desc->Depth, desc->Format, desc->NumChannels,
		       numMipmapLevels);
	if ((rc = begin(est, &dev, &ctx)))
		return rc;
	rc = gp__real_cuMipmappedArrayCreate(pHandle, desc, numMipmapLevels);
	return settle(rc, rc ? NULL : *pHandle, dev, ctx, est,
		      gp__real_cuMipmappedArrayGetMemoryRequirements ? mipmap_req : NULL,
		      destroy_mipmap);
}

/* Destroy an array we may have charged for. */
static CUresult destroy(void *a, CUresult (*real)(void *))
{
	struct gp__rec rec;
	uint64_t key = (uint64_t)(uintptr_t)a;
	int ours = gp__free_begin(GP_S_ARRAY, key, GP_KIND(GP_K_ARRAY), &rec);
	CUresult rc = real(a);

	if (ours && gp__free_end(GP_S_ARRAY, key, &rec, rc))
		gp__uncharge(rec.dev, rec.bytes);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuArrayDestroy(CUarray hArray)
{
	GP_NEED_REAL(cuArrayDestroy);
	return destroy(hArray, destroy_array);
}

GP_EXPORT CUresult CUDAAPI cuMipmappedArrayDestroy(CUmipmappedArray hMipmappedArray)
{
	GP_NEED_REAL(cuMipmappedArrayDestroy);
	return destroy(hMipmappedArray, destroy_mipmap);
}
