/* managed.c - managed (unified) memory: cuMemAllocManaged, and the
 * advice and prefetch calls, which have nothing to move here (the memory
 * is host memory the "device" reads directly) but are checked as the real
 * ones are.  Managed memory is charged to the device like cuMemAlloc. */
#include "sim/memory.h"

#include <stdlib.h>
#include <sys/mman.h>

#include "sim/state.h"
#include "sim/stream.h"

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
	struct gp_sim_ctx *c;
	struct gp_sim_mem *m = NULL;
	uint64_t charge = GP_SIM_ROUND_UP(bytesize, GP_SIM_GRANULE);
	void *p = MAP_FAILED;
	CUresult rc;

	GP_SIM_ENTER();
	if (!dptr || bytesize == 0 || charge < bytesize)
		return CUDA_ERROR_INVALID_VALUE;
	if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_alloc_ctx_locked(&c);
	if (rc)
		goto out;
	if (gp__sim_charge((unsigned)c->dev, charge)) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	/* Managed memory is reachable from the host at the same address. */
	p = mmap(NULL, bytesize, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	m = gp__sim_mem_alloc(GP_SIM_MEM_MANAGED, c->dev);
	if (p == MAP_FAILED || !m) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto undo;
	}
	m->base = (uint64_t)(uintptr_t)p;
	m->host = p;
	m->size = m->span = m->maplen = bytesize;
	m->charge = charge;
	m->ctx = c;
	m->flags = flags;
	if (gp__sim_mem_insert_locked(m)) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto undo;
	}
	*dptr = (CUdeviceptr)m->base;
	goto out;
undo:
	if (p != MAP_FAILED)
		munmap(p, bytesize);
	free(m);
	gp__sim_uncharge((unsigned)c->dev, charge);
out:
	gp__sim_unlock();
	return rc;
}

/* Is [p, p+count) inside one managed allocation? */
static int managed_range_locked(uint64_t p, size_t count)
{
	struct gp_sim_mem *m = gp__sim_mem_find_locked(p);

	return m && m->kind == GP_SIM_MEM_MANAGED && count && count <= m->size &&
	       p - m->base <= m->size - count;
}

/* A location the advice and prefetch calls accept: a visible device or
 * the host. */
static int location_ok(const CUmemLocation *l)
{
	if (l->type == CU_MEM_LOCATION_TYPE_DEVICE)
		return gp__sim_visible_index(l->id) >= 0;
	return l->type == CU_MEM_LOCATION_TYPE_HOST || l->type == CU_MEM_LOCATION_TYPE_HOST_NUMA ||
	       l->type == CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT;
}

static CUresult advise(CUdeviceptr devPtr, size_t count, CUmem_advise advice,
		       const CUmemLocation *where)
{
	CUresult rc = CUDA_SUCCESS;

	GP_SIM_ENTER();
	if (advice < CU_MEM_ADVISE_SET_READ_MOSTLY || advice > CU_MEM_ADVISE_UNSET_ACCESSED_BY)
		return CUDA_ERROR_INVALID_VALUE;
	if (advice != CU_MEM_ADVISE_SET_READ_MOSTLY && advice != CU_MEM_ADVISE_UNSET_READ_MOSTLY &&
	    !location_ok(where))
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	if (!managed_range_locked(devPtr, count))
		rc = CUDA_ERROR_INVALID_VALUE;
	gp__sim_unlock();
	return rc;
}

CUresult cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device)
{
	CUmemLocation l = {.type = device == CU_DEVICE_CPU ? CU_MEM_LOCATION_TYPE_HOST
							   : CU_MEM_LOCATION_TYPE_DEVICE,
			   .id = device};

	return advise(devPtr, count, advice, &l);
}

CUresult cuMemAdvise_v2(CUdeviceptr devPtr, size_t count, CUmem_advise advice,
			CUmemLocation location)
{
	return advise(devPtr, count, advice, &location);
}

/* Checks a prefetch and orders it on the stream (it moves nothing). */
static CUresult prefetch(CUdeviceptr devPtr, size_t count, const CUmemLocation *where,
			 unsigned flags, CUstream hStream, int ptds)
{
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	if (flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (!location_ok(where))
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (!rc && !managed_range_locked(devPtr, count))
		rc = CUDA_ERROR_INVALID_VALUE;
	gp__sim_unlock();
	return rc;
}

#define CPU_OR_DEVICE(d)                                                     \
	{.type = (d) == CU_DEVICE_CPU ? CU_MEM_LOCATION_TYPE_HOST : CU_MEM_LOCATION_TYPE_DEVICE, \
	 .id = (d)}

CUresult cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream hStream)
{
	CUmemLocation l = CPU_OR_DEVICE(dstDevice);

	return prefetch(devPtr, count, &l, 0, hStream, 0);
}

CUresult cuMemPrefetchAsync_ptsz(CUdeviceptr devPtr, size_t count, CUdevice dstDevice,
				 CUstream hStream)
{
	CUmemLocation l = CPU_OR_DEVICE(dstDevice);

	return prefetch(devPtr, count, &l, 0, hStream, 1);
}

CUresult cuMemPrefetchAsync_v2(CUdeviceptr devPtr, size_t count, CUmemLocation location,
			       unsigned int flags, CUstream hStream)
{
	return prefetch(devPtr, count, &location, flags, hStream, 0);
}

CUresult cuMemPrefetchAsync_v2_ptsz(CUdeviceptr devPtr, size_t count, CUmemLocation location,
				    unsigned int flags, CUstream hStream)
{
	return prefetch(devPtr, count, &location, flags, hStream, 1);
}
