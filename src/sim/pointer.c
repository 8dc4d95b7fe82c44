/* pointer.c - cuPointerGetAttribute(s) and cuPointerSetAttribute: what
 * the address map knows about a pointer, in the driver's terms. */
#include "sim/memory.h"

#include <string.h>

#include "sim/pool.h"
#include "sim/vmm.h"

/* Bytes of each attribute's value (0: not supported here). */
static const size_t attr_size[] = {
	[CU_POINTER_ATTRIBUTE_CONTEXT] = sizeof(CUcontext),
	[CU_POINTER_ATTRIBUTE_MEMORY_TYPE] = sizeof(unsigned int),
	[CU_POINTER_ATTRIBUTE_DEVICE_POINTER] = sizeof(CUdeviceptr),
	[CU_POINTER_ATTRIBUTE_HOST_POINTER] = sizeof(void *),
	[CU_POINTER_ATTRIBUTE_SYNC_MEMOPS] = sizeof(int),
	[CU_POINTER_ATTRIBUTE_BUFFER_ID] = sizeof(unsigned long long),
	[CU_POINTER_ATTRIBUTE_IS_MANAGED] = sizeof(int),
	[CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL] = sizeof(int),
	[CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE] = sizeof(int),
	[CU_POINTER_ATTRIBUTE_RANGE_START_ADDR] = sizeof(CUdeviceptr),
	[CU_POINTER_ATTRIBUTE_RANGE_SIZE] = sizeof(size_t),
	[CU_POINTER_ATTRIBUTE_MAPPED] = sizeof(int),
	[CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES] = sizeof(unsigned long long),
	[CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE] = sizeof(int),
	[CU_POINTER_ATTRIBUTE_ACCESS_FLAGS] = sizeof(unsigned int),
	[CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE] = sizeof(CUmemoryPool),
	[CU_POINTER_ATTRIBUTE_MAPPING_SIZE] = sizeof(size_t),
	[CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR] = sizeof(CUdeviceptr),
	[CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID] = sizeof(unsigned long long),
	[CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE] = sizeof(int),
};

#define NATTR (sizeof attr_size / sizeof *attr_size)

/* Everything the attributes are made of, for one pointer. */
struct facts {
	int known;                 /* the pointer is in the address map */
	struct gp_sim_mem *m;
	uint64_t base, size;       /* the range holding it */
	int dev;                   /* machine index, -1 for host memory */
	CUmemorytype type;
	unsigned long long handle_types;
	unsigned access;
};

static void facts_of(uint64_t p, struct facts *f)
{
	struct gp_sim_mem *m = gp__sim_mem_find_locked(p);
	struct gp_sim_ctx *c = NULL;
	struct gp_sim_vinfo vi;

	memset(f, 0, sizeof *f);
	f->dev = -1;
	if (!m)
		return;
	if (gp__sim_ctx_current_locked(&c))
		c = NULL; /* access is then reported as seen from no device */
	if (m->kind == GP_SIM_MEM_VMM) {
		if (!gp__sim_vmm_info_locked(m, p, c ? c->dev : -1, &vi))
			return;
		f->base = vi.base;
		f->size = vi.size;
		f->dev = vi.dev;
		f->handle_types = vi.handle_types;
		f->access = vi.access;
	} else {
		if (p - m->base >= m->size || (!m->host && m->kind != GP_SIM_MEM_REGISTERED))
			return;
		f->base = m->base;
		f->size = m->size;
		f->dev = m->dev;
		f->access = CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE;
	}
	f->known = 1;
	f->m = m;
	f->type = (m->kind == GP_SIM_MEM_HOST || m->kind == GP_SIM_MEM_REGISTERED)
			  ? CU_MEMORYTYPE_HOST
			  : CU_MEMORYTYPE_DEVICE;
	if (f->dev < 0 && m->ctx)
		f->dev = m->ctx->dev; /* page-locked memory: its context's device */
}

/* Write attribute `a` of the pointer into data.  CUDA_ERROR_INVALID_VALUE
 * when it does not apply. */
static CUresult attr(const struct facts *f, uint64_t p, CUpointer_attribute a, void *data)
{
	const struct gp_sim_mem *m = f->m;
	int host = f->type == CU_MEMORYTYPE_HOST || m->kind == GP_SIM_MEM_MANAGED;

	switch (a) {
	case CU_POINTER_ATTRIBUTE_CONTEXT:
		*(CUcontext *)data = (CUcontext)m->ctx;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
		*(unsigned *)data = f->type;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
		*(CUdeviceptr *)data = (CUdeviceptr)p; /* UVA */
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_HOST_POINTER:
		if (!host)
			return CUDA_ERROR_INVALID_VALUE;
		*(void **)data = (void *)(uintptr_t)p;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
		*(int *)data = m->sync_memops;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_BUFFER_ID:
	case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID:
		*(unsigned long long *)data = m->id;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_IS_MANAGED:
		*(int *)data = m->kind == GP_SIM_MEM_MANAGED;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
		*(int *)data = f->dev >= 0 ? gp__sim_visible_ordinal(f->dev) : -1;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
		*(int *)data = m->kind == GP_SIM_MEM_DEVICE;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
	case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR:
		*(CUdeviceptr *)data = (CUdeviceptr)f->base;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
	case CU_POINTER_ATTRIBUTE_MAPPING_SIZE:
		*(size_t *)data = (size_t)f->size;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_MAPPED:
		*(int *)data = 1;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
		*(unsigned long long *)data = f->handle_types;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
	case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE:
		*(int *)data = 0;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
		*(unsigned *)data = f->access;
		return CUDA_SUCCESS;
	case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
		*(CUmemoryPool *)data =
			m->kind == GP_SIM_MEM_POOL ? (CUmemoryPool)m->owner : NULL;
		return CUDA_SUCCESS;
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
}

CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)
{
	struct facts f;
	CUresult rc;

	GP_SIM_ENTER();
	if (!data || (unsigned)attribute >= NATTR || !attr_size[attribute])
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	facts_of(ptr, &f);
	rc = f.known ? attr(&f, ptr, attribute, data) : CUDA_ERROR_INVALID_VALUE;
	gp__sim_unlock();
	return rc;
}

/* Unlike the singular call, an unknown pointer is not an error here: the
 * attributes read as "not CUDA memory" (zeroes, ordinal -2). */
CUresult cuPointerGetAttributes(unsigned int numAttributes, CUpointer_attribute *attributes,
				void **data, CUdeviceptr ptr)
{
	struct facts f;

	GP_SIM_ENTER();
	if (!attributes || !data)
		return CUDA_ERROR_INVALID_VALUE;
	for (unsigned i = 0; i < numAttributes; i++)
		if ((unsigned)attributes[i] >= NATTR || !attr_size[attributes[i]] || !data[i])
			return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	facts_of(ptr, &f);
	for (unsigned i = 0; i < numAttributes; i++) {
		memset(data[i], 0, attr_size[attributes[i]]);
		if (!f.known) {
			if (attributes[i] == CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL)
				*(int *)data[i] = -2;
			continue;
		}
		(void)attr(&f, ptr, attributes[i], data[i]); /* inapplicable: zero */
	}
	gp__sim_unlock();
	return CUDA_SUCCESS;
}

CUresult cuPointerSetAttribute(const void *value, CUpointer_attribute attribute, CUdeviceptr ptr)
{
	struct facts f;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!value || attribute != CU_POINTER_ATTRIBUTE_SYNC_MEMOPS)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	facts_of(ptr, &f);
	if (f.known && f.m->kind != GP_SIM_MEM_VMM) {
		f.m->sync_memops = *(const int *)value != 0;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}
