/* vmm.c - the virtual memory management API: cuMemCreate and friends, what
 * PyTorch's expandable segments and JAX are built on.
 *
 * Physical memory is charged when cuMemCreate makes it and given back when
 * the driver frees it, which is when the handle is released AND unmapped
 * everywhere: the driver refcounts the handle (create, every mapping and
 * every cuMemRetainAllocationHandle hold a reference) and we mirror that
 * count.  Handles imported from another process (cuMemImportFromShareable-
 * Handle) are its exporter's memory: we never see them created, never
 * charge them, and their releases pass through.
 */
#include "hook/hook.h"

GP_EXPORT CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
				       const CUmemAllocationProp *prop, unsigned long long flags)
{
	struct gp__rec rec = {.kind = GP_K_VMM, .refs = 1};
	CUresult rc;

	GP_NEED_REAL(cuMemCreate);
	if ((rc = gp__enter()))
		return rc;
	if (!handle || !prop || size == 0 || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
		return gp__real_cuMemCreate(handle, size, prop, flags); /* host memory */
	rec.dev = prop->location.id;
	rec.bytes = gp__granules(size);
	if ((rc = gp__charge(rec.dev, rec.bytes, 0)))
		return rc;
	rc = gp__real_cuMemCreate(handle, size, prop, flags);
	if (rc != CUDA_SUCCESS) {
		gp__uncharge(rec.dev, rec.bytes);
		return rc;
	}
	if (gp__tab_put(&gp__tabs[GP_S_HANDLE], *handle, &rec))
		gp_error("out of host memory tracking a VMM handle; its %llu bytes stay charged",
			 (unsigned long long)rec.bytes);
	return rc;
}

/* Drop one reference to a handle we charged; the last one gives its memory
 * back. */
static void unref(CUmemGenericAllocationHandle h)
{
	struct gp__rec rec;
	int gone;

	if (gp__tab_ref(&gp__tabs[GP_S_HANDLE], h, -1, &rec, &gone) == 0 && gone)
		gp__uncharge(rec.dev, rec.bytes);
}

GP_EXPORT CUresult CUDAAPI cuMemRelease(CUmemGenericAllocationHandle handle)
{
	CUresult rc;

	GP_NEED_REAL(cuMemRelease);
	rc = gp__real_cuMemRelease(handle);
	if (rc == CUDA_SUCCESS)
		unref(handle);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle,
						       void *addr)
{
	CUresult rc;
	int gone;

	GP_NEED_REAL(cuMemRetainAllocationHandle);
	rc = gp__real_cuMemRetainAllocationHandle(handle, addr);
	if (rc == CUDA_SUCCESS && handle)
		(void)gp__tab_ref(&gp__tabs[GP_S_HANDLE], *handle, +1, NULL, &gone);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
				    CUmemGenericAllocationHandle handle, unsigned long long flags)
{
	struct gp__rec map = {.kind = GP_K_MAP, .bytes = size, .aux = handle};
	CUresult rc;
	int gone;

	GP_NEED_REAL(cuMemMap);
	rc = gp__real_cuMemMap(ptr, size, offset, handle, flags);
	if (rc != CUDA_SUCCESS ||
	    gp__tab_ref(&gp__tabs[GP_S_HANDLE], handle, +1, NULL, &gone) != 0)
		return rc; /* failed, or not a handle we charged */
	if (gp__tab_put(&gp__tabs[GP_S_PTR], ptr, &map)) {
		/* Without the mapping's record the handle keeps its reference:
		 * its memory stays charged, never under-counted. */
		gp_error("out of host memory tracking a VMM mapping");
	}
	return rc;
}

static int mapping_in(uint64_t key, const struct gp__rec *rec, void *arg)
{
	const uint64_t *range = arg;

	return rec->kind == GP_K_MAP && key >= range[0] && key < range[1];
}

static void unmapped(uint64_t key, const struct gp__rec *rec, void *arg)
{
	(void)key;
	(void)arg;
	unref(rec->aux);
}

GP_EXPORT CUresult CUDAAPI cuMemUnmap(CUdeviceptr ptr, size_t size)
{
	struct gp__rec rec;
	uint64_t range[2] = {ptr, ptr + size};
	CUresult rc;

	GP_NEED_REAL(cuMemUnmap);
	rc = gp__real_cuMemUnmap(ptr, size);
	if (rc != CUDA_SUCCESS)
		return rc;
	/* Usually one mapping, unmapped whole: found by its start.  A range
	 * covering several mappings takes a scan.  (The driver only unmaps
	 * VMM mappings, so what sits at ptr is one.) */
	if (gp__tab_take(&gp__tabs[GP_S_PTR], ptr, &rec) == 0) {
		unref(rec.aux);
		if (rec.bytes >= size)
			return rc;
	}
	gp__tab_drain(&gp__tabs[GP_S_PTR], mapping_in, unmapped, range);
	return rc;
}
