/* memory.c - the allocation entry points: device (cuMemAlloc, pitch),
 * managed, page-locked host memory, frees, cuMemGetInfo and address
 * queries.
 *
 * Charging: every device, pitch and managed allocation is charged
 * round_up(size, GP_SIM_GRANULE) (2 MiB) to the device and the process;
 * the hook charges the same granule, so both agree on "full".
 */
#include "sim/memory.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "sim/capture.h"
#include "sim/graphmem.h"
#include "sim/pool.h"
#include "sim/state.h"
#include "sim/vmm.h"

CUresult gp__sim_alloc_ctx_locked(struct gp_sim_ctx **c)
{
	CUresult rc = gp__sim_ctx_current_locked(c);

	if (!rc)
		rc = gp__sim_capture_unsafe_call_locked();
	return rc;
}

static CUresult mem_alloc(CUdeviceptr *dptr, size_t bytesize)
{
	struct gp_sim_ctx *c;
	struct gp_sim_mem *m;
	CUresult rc;

	GP_SIM_ENTER();
	if (!dptr)
		return CUDA_ERROR_INVALID_VALUE;
	if (bytesize == 0)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_alloc_ctx_locked(&c);
	if (!rc)
		rc = gp__sim_mem_new_locked(GP_SIM_MEM_DEVICE, c->dev, bytesize,
					    GP_SIM_ROUND_UP(bytesize, GP_SIM_GRANULE), c, &m);
	if (!rc)
		*dptr = (CUdeviceptr)m->base;
	gp__sim_unlock();
	return rc;
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
	return mem_alloc(dptr, bytesize);
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes,
			    size_t Height, unsigned int ElementSizeBytes)
{
	uint64_t pitch, bytes;
	CUresult rc;

	GP_SIM_ENTER();
	if (!dptr || !pPitch || WidthInBytes == 0 || Height == 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16)
		return CUDA_ERROR_INVALID_VALUE;
	pitch = GP_SIM_ROUND_UP(WidthInBytes, GP_SIM_PITCH_ALIGN);
	if (pitch < WidthInBytes || pitch > 0x7fffffffu)
		return CUDA_ERROR_INVALID_VALUE;
	if (Height > UINT64_MAX / pitch)
		return CUDA_ERROR_OUT_OF_MEMORY;
	bytes = pitch * Height;
	rc = mem_alloc(dptr, (size_t)bytes);
	if (!rc)
		*pPitch = (size_t)pitch;
	return rc;
}

CUresult gp__sim_mem_free_locked(uint64_t dptr)
{
	struct gp_sim_mem *m = gp__sim_mem_find_locked(dptr);

	if (!m || m->base != dptr)
		return CUDA_ERROR_INVALID_VALUE;
	switch (m->kind) {
	case GP_SIM_MEM_DEVICE:
	case GP_SIM_MEM_MANAGED:
		gp__sim_mem_release_locked(m);
		return CUDA_SUCCESS;
	case GP_SIM_MEM_POOL:
		gp__sim_pool_free_locked(m);
		return CUDA_SUCCESS;
	case GP_SIM_MEM_GRAPH:
		return gp__sim_graphmem_free_locked(m);
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
}

CUresult cuMemFree_v2(CUdeviceptr dptr)
{
	struct gp_sim_ctx *c;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = gp__sim_alloc_ctx_locked(&c);
	if (!rc && dptr)
		rc = gp__sim_mem_free_locked(dptr);
	gp__sim_unlock();
	return rc;
}

/* --- page-locked host memory -------------------------------------------- */

static CUresult host_alloc(void **pp, size_t bytesize, unsigned flags)
{
	struct gp_sim_ctx *c;
	struct gp_sim_mem *m = NULL;
	void *p = MAP_FAILED;
	CUresult rc;

	GP_SIM_ENTER();
	if (!pp || bytesize == 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (flags & ~(unsigned)(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP |
				CU_MEMHOSTALLOC_WRITECOMBINED))
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (rc)
		goto out;
	p = mmap(NULL, bytesize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	m = gp__sim_mem_alloc(GP_SIM_MEM_HOST, -1);
	if (p == MAP_FAILED || !m)
		goto nomem;
	m->base = (uint64_t)(uintptr_t)p;
	m->host = p;
	m->size = m->span = m->maplen = bytesize;
	m->flags = flags | CU_MEMHOSTALLOC_DEVICEMAP; /* UVA: always mapped */
	m->ctx = c;
	if (gp__sim_mem_insert_locked(m))
		goto nomem;
	*pp = p;
	goto out;
nomem:
	if (p != MAP_FAILED)
		munmap(p, bytesize);
	free(m);
	rc = CUDA_ERROR_OUT_OF_MEMORY;
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuMemAllocHost(void **pp, unsigned int bytesize)
{
	return host_alloc(pp, bytesize, 0);
}

CUresult cuMemAllocHost_v2(void **pp, size_t bytesize)
{
	return host_alloc(pp, bytesize, 0);
}

CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
{
	return host_alloc(pp, bytesize, Flags);
}

CUresult cuMemFreeHost(void *p)
{
	struct gp_sim_mem *m;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	gp__sim_lock();
	m = gp__sim_mem_find_locked((uint64_t)(uintptr_t)p);
	if (m && m->kind == GP_SIM_MEM_HOST && m->base == (uint64_t)(uintptr_t)p) {
		gp__sim_mem_release_locked(m);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

/* Page-locked host memory (allocated or registered) holding p. */
static struct gp_sim_mem *host_find_locked(void *p)
{
	struct gp_sim_mem *m = gp__sim_mem_find_locked((uint64_t)(uintptr_t)p);

	if (m && (m->kind == GP_SIM_MEM_HOST || m->kind == GP_SIM_MEM_REGISTERED) &&
	    (uint64_t)(uintptr_t)p - m->base < m->size)
		return m;
	return NULL;
}

static CUresult host_get_device_pointer(CUdeviceptr *pdptr, void *p, unsigned Flags)
{
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!pdptr || !p || Flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	if (host_find_locked(p)) {
		*pdptr = (CUdeviceptr)(uintptr_t)p; /* UVA: the same address */
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned int Flags)
{
	return host_get_device_pointer(pdptr, p, Flags);
}

CUresult cuMemHostGetFlags(unsigned int *pFlags, void *p)
{
	struct gp_sim_mem *m;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!pFlags || !p)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	m = host_find_locked(p);
	if (m) {
		*pFlags = m->flags;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

static CUresult host_register(void *p, size_t bytesize, unsigned Flags)
{
	uint64_t a = (uint64_t)(uintptr_t)p;
	struct gp_sim_ctx *c;
	struct gp_sim_mem *m;
	CUresult rc;

	GP_SIM_ENTER();
	if (!p || bytesize == 0 || a + bytesize < a)
		return CUDA_ERROR_INVALID_VALUE;
	if (Flags & ~(unsigned)(CU_MEMHOSTREGISTER_PORTABLE | CU_MEMHOSTREGISTER_DEVICEMAP |
				CU_MEMHOSTREGISTER_IOMEMORY | CU_MEMHOSTREGISTER_READ_ONLY))
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (rc)
		goto out;
	/* No overlap with anything registered or allocated. */
	m = gp__sim_mem_find_locked(a + bytesize - 1);
	if ((m && m->base + m->span > a) || gp__sim_mem_find_locked(a)) {
		rc = CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
		goto out;
	}
	m = gp__sim_mem_alloc(GP_SIM_MEM_REGISTERED, -1);
	if (!m) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	m->base = a;
	m->host = p;
	m->size = m->span = bytesize;
	m->flags = Flags | CU_MEMHOSTREGISTER_DEVICEMAP;
	m->ctx = c;
	if (gp__sim_mem_insert_locked(m)) {
		free(m);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
	}
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags)
{
	return host_register(p, bytesize, Flags);
}

CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int Flags)
{
	return host_register(p, bytesize, Flags);
}

CUresult cuMemHostUnregister(void *p)
{
	struct gp_sim_mem *m;
	CUresult rc = CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;

	GP_SIM_ENTER();
	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	m = gp__sim_mem_find_locked((uint64_t)(uintptr_t)p);
	if (m && m->kind == GP_SIM_MEM_REGISTERED && m->base == (uint64_t)(uintptr_t)p) {
		gp__sim_mem_release_locked(m);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

/* --- queries ------------------------------------------------------------ */

/* Free and total bytes of the current context's device, as every process
 * sees it: total minus the driver reservation minus all that is in use. */
static CUresult mem_get_info(uint64_t *freeb, uint64_t *total)
{
	struct gp_sim_ctx *c;
	struct gp_sim_hdr *h = gp__sim_machine();
	CUresult rc;
	int dev;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	dev = c ? c->dev : 0;
	gp__sim_unlock();
	if (rc)
		return rc;
	*total = h->cfg.gpu[dev].memory;
	uint64_t used = gp__sim_dev_used((unsigned)dev) + GP_SIM_DRIVER_RESERVED;
	*freeb = used < *total ? *total - used : 0;
	return CUDA_SUCCESS;
}

CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
	uint64_t f, t;
	CUresult rc;

	GP_SIM_ENTER();
	if (!free || !total)
		return CUDA_ERROR_INVALID_VALUE;
	rc = mem_get_info(&f, &t);
	if (!rc) {
		*free = (size_t)f;
		*total = (size_t)t;
	}
	return rc;
}

/* The 32-bit legacy entry point: figures saturate at 4 GiB - 1. */
CUresult cuMemGetInfo(unsigned int *free, unsigned int *total)
{
	uint64_t f, t;
	CUresult rc;

	GP_SIM_ENTER();
	if (!free || !total)
		return CUDA_ERROR_INVALID_VALUE;
	rc = mem_get_info(&f, &t);
	if (!rc) {
		*free = f > 0xffffffffu ? 0xffffffffu : (unsigned)f;
		*total = t > 0xffffffffu ? 0xffffffffu : (unsigned)t;
	}
	return rc;
}

CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
	struct gp_sim_mem *m;
	uint64_t base = 0, size = 0;
	CUresult rc = CUDA_ERROR_NOT_FOUND;

	GP_SIM_ENTER();
	gp__sim_lock();
	m = gp__sim_mem_find_locked(dptr);
	if (m && m->kind == GP_SIM_MEM_VMM) {
		if (gp__sim_vmm_range_locked(m, dptr, &base, &size))
			rc = CUDA_SUCCESS;
	} else if (m && dptr - m->base < m->size &&
		   (m->host || m->kind == GP_SIM_MEM_REGISTERED)) {
		base = m->base;
		size = m->size;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	if (!rc) {
		if (pbase)
			*pbase = (CUdeviceptr)base;
		if (psize)
			*psize = (size_t)size;
	}
	return rc;
}
