/* vmm.c - the virtual memory management API: cuMemCreate and friends, what
 * PyTorch's expandable segments and JAX are built on.
 *
 * Physical memory is charged when cuMemCreate makes it and given back when
 * the driver frees it, which is when the handle is released AND unmapped
 * everywhere: the driver refcounts the handle (create, every mapping and
 * every cuMemRetainAllocationHandle hold a reference) and we mirror that
 * count; a range's mappings go with cuMemUnmap, or with cuMemAddressFree,
 * which unmaps whatever is still mapped in it.  Handles imported from
 * another process (cuMemImportFromShareableHandle) are its exporter's
 * memory: we never see them created, never charge them, and their releases
 * pass through.
 */
#include <stdlib.h>

#include "hook/hook.h"

/* VMM calls are the ones that change a process's device memory without a
 * context, so they may run while the first context is being measured
 * (ctx.c): calls in flight and a count of calls begun tell it whether its
 * measurement window was quiet. */
static uint32_t busy, begun;

static void vmm_begin(void)
{
	__atomic_add_fetch(&busy, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&begun, 1, __ATOMIC_SEQ_CST);
}

static CUresult vmm_end(CUresult rc)
{
	__atomic_sub_fetch(&busy, 1, __ATOMIC_SEQ_CST);
	return rc;
}

int gp__vmm_quiet(uint32_t *calls)
{
	*calls = __atomic_load_n(&begun, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&busy, __ATOMIC_SEQ_CST) == 0;
}

static CUresult create(CUmemGenericAllocationHandle *handle, size_t size,
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

GP_EXPORT CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
				       const CUmemAllocationProp *prop, unsigned long long flags)
{
	vmm_begin();
	return vmm_end(create(handle, size, prop, flags));
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
	vmm_begin();
	rc = gp__real_cuMemRelease(handle);
	if (rc == CUDA_SUCCESS)
		unref(handle);
	return vmm_end(rc);
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

/* Mappings taken out of the table around a driver call that unmaps them. */
struct taken {
	uint64_t range[2];
	struct {
		uint64_t key;
		struct gp__rec rec;
	} *v;
	size_t n, cap;
};

static int take_mapping(uint64_t key, const struct gp__rec *rec, void *arg)
{
	struct taken *t = arg;

	if (rec->kind != GP_K_MAP || key < t->range[0] || key >= t->range[1])
		return 0;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		void *v = realloc(t->v, cap * sizeof *t->v);
		if (!v)
			return 0; /* out of host memory: it stays, and so does its charge */
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n].key = key;
	t->v[t->n].rec = *rec;
	t->n++;
	return 1;
}

/* Take the records of the mappings in [ptr, ptr + size) out, call the
 * driver, then drop their references if it unmapped them or put them back
 * if not.  Taking them out *before* the call matters: once the driver has
 * unmapped a range and freed its reservation, another thread may reserve
 * and map it again, and its new mappings must not be mistaken for these. */
static CUresult unmapping(CUdeviceptr ptr, size_t size, CUresult (*call)(CUdeviceptr, size_t))
{
	struct taken t = {.range = {ptr, ptr + size}};
	CUresult rc;

	vmm_begin();
	if (size)
		gp__tab_drain(&gp__tabs[GP_S_PTR], take_mapping, NULL, &t);
	rc = call(ptr, size);
	for (size_t i = 0; i < t.n; i++) {
		if (rc == CUDA_SUCCESS)
			unref(t.v[i].rec.aux);
		else if (gp__tab_put(&gp__tabs[GP_S_PTR], t.v[i].key, &t.v[i].rec))
			gp_error("out of host memory keeping a VMM mapping's record");
	}
	free(t.v);
	return vmm_end(rc);
}

GP_EXPORT CUresult CUDAAPI cuMemUnmap(CUdeviceptr ptr, size_t size)
{
	GP_NEED_REAL(cuMemUnmap);
	return unmapping(ptr, size, gp__real_cuMemUnmap);
}

/* Freeing a reservation unmaps what is still mapped in it: the mappings'
 * references go, and with the last one a released handle's memory. */
GP_EXPORT CUresult CUDAAPI cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
	GP_NEED_REAL(cuMemAddressFree);
	return unmapping(ptr, size, gp__real_cuMemAddressFree);
}
