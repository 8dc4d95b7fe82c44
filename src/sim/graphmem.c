/* graphmem.c - see graphmem.h.  Entry points: cuDeviceGetGraphMemAttribute,
 * cuDeviceSetGraphMemAttribute, cuDeviceGraphMemTrim. */
#include "sim/graphmem.h"

#include <stdlib.h>

#include "sim/pool.h"
#include "sim/state.h"

/* Graph memory of each device (machine index), this process. */
static struct {
	uint64_t used, used_high;
	uint64_t reserved, reserved_high;
} gm[GP_SIM_GPUS_MAX];

CUresult gp__sim_gblock_new_locked(int dev, uint64_t size, struct gp_sim_gblock **out)
{
	uint64_t span = GP_SIM_ROUND_UP(size, GP_SIM_GRANULE);
	struct gp_sim_gblock *b;
	struct gp_sim_mem *m;

	if (size == 0 || span < size)
		return CUDA_ERROR_INVALID_VALUE;
	b = calloc(1, sizeof *b);
	m = gp__sim_mem_alloc(GP_SIM_MEM_GRAPH, dev);
	if (!b || !m)
		goto nomem;
	m->size = size;
	m->span = span;
	m->owner = b;
	m->base = gp__sim_va_alloc_locked(dev, span);
	if (!m->base || gp__sim_mem_insert_locked(m))
		goto nomem;
	b->mem = m;
	b->dev = dev;
	b->cost = GP_SIM_ROUND_UP(size, GP_SIM_POOL_ALIGN);
	b->refs = 1;
	*out = b;
	return CUDA_SUCCESS;
nomem:
	if (m && m->base)
		gp__sim_va_free_locked(m->base, m->span);
	free(b);
	free(m);
	return CUDA_ERROR_OUT_OF_MEMORY;
}

void gp__sim_gblock_get(struct gp_sim_gblock *b)
{
	b->refs++;
}

void gp__sim_gblock_put_locked(struct gp_sim_gblock *b)
{
	if (--b->refs)
		return;
	gp__sim_mem_release_locked(b->mem); /* not live: nothing mapped */
	free(b);
}

CUresult gp__sim_graphmem_reserve_locked(int dev, uint64_t bytes)
{
	uint64_t want = GP_SIM_ROUND_UP(gm[dev].used + bytes, GP_SIM_GRANULE);

	if (want <= gm[dev].reserved)
		return CUDA_SUCCESS;
	if (gp__sim_charge((unsigned)dev, want - gm[dev].reserved))
		return CUDA_ERROR_OUT_OF_MEMORY;
	gm[dev].reserved = want;
	if (want > gm[dev].reserved_high)
		gm[dev].reserved_high = want;
	return CUDA_SUCCESS;
}

CUresult gp__sim_graphmem_alloc_locked(struct gp_sim_gblock *b)
{
	CUresult rc;

	if (b->live)
		return CUDA_ERROR_INVALID_VALUE;
	rc = gp__sim_graphmem_reserve_locked(b->dev, b->cost);
	if (!rc)
		rc = gp__sim_backing_map(b->mem);
	if (rc)
		return rc;
	b->live = 1;
	b->refs++;
	gm[b->dev].used += b->cost;
	if (gm[b->dev].used > gm[b->dev].used_high)
		gm[b->dev].used_high = gm[b->dev].used;
	return CUDA_SUCCESS;
}

CUresult gp__sim_graphmem_free_locked(struct gp_sim_mem *m)
{
	struct gp_sim_gblock *b = m->owner;

	if (!b->live)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_backing_unmap(m);
	b->live = 0;
	gm[b->dev].used -= b->cost;
	gp__sim_gblock_put_locked(b);
	return CUDA_SUCCESS;
}

CUresult cuDeviceGraphMemTrim(CUdevice device)
{
	int d = gp__sim_visible_index(device);
	uint64_t keep;

	GP_SIM_ENTER();
	if (d < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	keep = GP_SIM_ROUND_UP(gm[d].used, GP_SIM_GRANULE);
	if (keep < gm[d].reserved) {
		gp__sim_uncharge((unsigned)d, gm[d].reserved - keep);
		gm[d].reserved = keep;
	}
	gp__sim_unlock();
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetGraphMemAttribute(CUdevice device, CUgraphMem_attribute attr, void *value)
{
	int d = gp__sim_visible_index(device);
	CUresult rc = CUDA_SUCCESS;
	uint64_t v = 0;

	GP_SIM_ENTER();
	if (d < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	switch (attr) {
	case CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT: v = gm[d].used; break;
	case CU_GRAPH_MEM_ATTR_USED_MEM_HIGH: v = gm[d].used_high; break;
	case CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT: v = gm[d].reserved; break;
	case CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH: v = gm[d].reserved_high; break;
	default: rc = CUDA_ERROR_INVALID_VALUE;
	}
	gp__sim_unlock();
	if (!rc)
		*(cuuint64_t *)value = v;
	return rc;
}

CUresult cuDeviceSetGraphMemAttribute(CUdevice device, CUgraphMem_attribute attr, void *value)
{
	int d = gp__sim_visible_index(device);
	CUresult rc = CUDA_SUCCESS;

	GP_SIM_ENTER();
	if (d < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (!value || *(cuuint64_t *)value != 0)
		return CUDA_ERROR_INVALID_VALUE; /* only the watermarks reset, to 0 */
	gp__sim_lock();
	if (attr == CU_GRAPH_MEM_ATTR_USED_MEM_HIGH)
		gm[d].used_high = gm[d].used;
	else if (attr == CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH)
		gm[d].reserved_high = gm[d].reserved;
	else
		rc = CUDA_ERROR_INVALID_VALUE;
	gp__sim_unlock();
	return rc;
}
