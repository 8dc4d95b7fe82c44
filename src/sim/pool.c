/* pool.c - see pool.h.  Entry points: cuMemPool*, cuDevice{Get,Set}MemPool,
 * cuDeviceGetDefaultMemPool, cuMemAllocAsync, cuMemAllocFromPoolAsync,
 * cuMemFreeAsync. */
#include "sim/pool.h"

#include <stdlib.h>
#include <string.h>

#include "sim/capture.h"
#include "sim/graphmem.h"
#include "sim/state.h"
#include "sim/stream.h"

static struct gp_sim_list pools = GP_SIM_LIST_INIT(pools);
static struct gp_sim_pool *defaults[GP_SIM_GPUS_MAX];
static struct gp_sim_pool *current[GP_SIM_GPUS_MAX];

static uint64_t pool_cost(uint64_t size)
{
	return GP_SIM_ROUND_UP(size, GP_SIM_POOL_ALIGN);
}

static CUresult pool_new_locked(int dev, const CUmemPoolProps *props, int is_default,
				struct gp_sim_pool **out)
{
	struct gp_sim_pool *p = calloc(1, sizeof *p);

	if (!p)
		return CUDA_ERROR_OUT_OF_MEMORY;
	p->dev = dev;
	p->is_default = is_default;
	p->props = *props;
	for (int i = 0; i < 3; i++)
		p->reuse[i] = 1;
	p->peer_access[dev] = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	if (gp__sim_handle_add(&p->h, GP_SIM_POOL)) {
		free(p);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	gp_sim_list_add(&pools, &p->link);
	*out = p;
	return CUDA_SUCCESS;
}

static CUresult default_pool_locked(int dev, struct gp_sim_pool **out)
{
	CUmemPoolProps props;
	CUresult rc;

	if (!defaults[dev]) {
		memset(&props, 0, sizeof props);
		props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
		props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
		props.location.id = gp__sim_visible_ordinal(dev);
		rc = pool_new_locked(dev, &props, 1, &defaults[dev]);
		if (rc)
			return rc;
	}
	*out = defaults[dev];
	return CUDA_SUCCESS;
}

CUresult gp__sim_pool_current_locked(int dev, struct gp_sim_pool **out)
{
	if (current[dev]) {
		*out = current[dev];
		return CUDA_SUCCESS;
	}
	return default_pool_locked(dev, out);
}

/* Shrink p's reservation to `target` (rounded up to the granule) if it
 * holds more. */
static void shrink_to(struct gp_sim_pool *p, uint64_t target)
{
	uint64_t keep = GP_SIM_ROUND_UP(p->used, GP_SIM_GRANULE);

	if (target > keep)
		keep = target >= p->reserved ? p->reserved : GP_SIM_ROUND_UP(target, GP_SIM_GRANULE);
	if (keep < p->reserved) {
		gp__sim_uncharge((unsigned)p->dev, p->reserved - keep);
		p->reserved = keep;
	}
}

static void pool_free_object(struct gp_sim_pool *p)
{
	gp__sim_uncharge((unsigned)p->dev, p->reserved);
	gp_sim_list_del(&p->link);
	free(p);
}

CUresult gp__sim_pool_alloc_locked(struct gp_sim_pool *p, uint64_t size,
				   struct gp_sim_mem **out)
{
	uint64_t cost = pool_cost(size), used = p->used + cost, grow = 0;
	struct gp_sim_mem *m;
	CUresult rc;

	if (size == 0 || cost < size)
		return CUDA_ERROR_INVALID_VALUE;
	if (used > p->reserved) {
		uint64_t want = GP_SIM_ROUND_UP(used, GP_SIM_GRANULE);
		if (want < used || (p->props.maxSize && want > p->props.maxSize))
			return CUDA_ERROR_OUT_OF_MEMORY;
		grow = want - p->reserved;
		if (gp__sim_charge((unsigned)p->dev, grow))
			return CUDA_ERROR_OUT_OF_MEMORY;
	}
	rc = gp__sim_mem_new_locked(GP_SIM_MEM_POOL, p->dev, size, 0, NULL, &m);
	if (rc) {
		gp__sim_uncharge((unsigned)p->dev, grow);
		return rc;
	}
	m->owner = p;
	p->reserved += grow;
	if (p->reserved > p->reserved_high)
		p->reserved_high = p->reserved;
	p->used = used;
	if (used > p->used_high)
		p->used_high = used;
	p->live++;
	*out = m;
	return CUDA_SUCCESS;
}

void gp__sim_pool_free_locked(struct gp_sim_mem *m)
{
	struct gp_sim_pool *p = m->owner;
	uint64_t cost = pool_cost(m->size);

	p->used = p->used >= cost ? p->used - cost : 0;
	p->live--;
	gp__sim_mem_release_locked(m);
	if (p->destroyed && p->live == 0)
		pool_free_object(p);
	else if (p->destroyed)
		shrink_to(p, 0); /* nobody can reuse it: give it back now */
}

void gp__sim_pools_trim_locked(int dev)
{
	for (struct gp_sim_list *l = pools.next; l != &pools; l = l->next) {
		struct gp_sim_pool *p = gp_sim_container(l, struct gp_sim_pool, link);
		if (p->dev == dev && p->threshold < p->reserved)
			shrink_to(p, p->threshold);
	}
}

/* --- pool objects --------------------------------------------------------- */

static CUresult pool_get_locked(CUmemoryPool h, struct gp_sim_pool **out)
{
	*out = gp__sim_handle_get(h, GP_SIM_POOL);
	return *out ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps)
{
	struct gp_sim_pool *p;
	CUresult rc;
	int dev;

	GP_SIM_ENTER();
	if (!pool || !poolProps || poolProps->allocType != CU_MEM_ALLOCATION_TYPE_PINNED)
		return CUDA_ERROR_INVALID_VALUE;
	if (poolProps->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
		return poolProps->location.type == CU_MEM_LOCATION_TYPE_INVALID
			       ? CUDA_ERROR_INVALID_VALUE
			       : CUDA_ERROR_NOT_SUPPORTED;
	dev = gp__sim_visible_index(poolProps->location.id);
	if (dev < 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (poolProps->handleTypes != CU_MEM_HANDLE_TYPE_NONE)
		return CUDA_ERROR_NOT_SUPPORTED; /* pools are not shareable here */
	gp__sim_lock();
	rc = pool_new_locked(dev, poolProps, 0, &p);
	if (!rc)
		*pool = (CUmemoryPool)p;
	gp__sim_unlock();
	return rc;
}

CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
	struct gp_sim_pool *p;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = pool_get_locked(pool, &p);
	if (!rc && p->is_default)
		rc = CUDA_ERROR_INVALID_VALUE;
	if (rc)
		goto out;
	if (current[p->dev] == p)
		current[p->dev] = NULL;
	gp__sim_handle_del(&p->h);
	if (p->live) {
		/* Outstanding allocations keep it alive; it goes with the last. */
		p->destroyed = 1;
		shrink_to(p, 0);
	} else {
		pool_free_object(p);
	}
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
	struct gp_sim_pool *p;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = pool_get_locked(pool, &p);
	if (!rc)
		shrink_to(p, minBytesToKeep);
	gp__sim_unlock();
	return rc;
}

CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
	struct gp_sim_pool *p;
	CUresult rc;

	GP_SIM_ENTER();
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = pool_get_locked(pool, &p);
	if (rc)
		goto out;
	switch (attr) {
	case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
	case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
	case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
		p->reuse[attr - 1] = *(int *)value ? 1 : 0;
		break;
	case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
		p->threshold = *(cuuint64_t *)value;
		break;
	case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
		if (*(cuuint64_t *)value != 0)
			rc = CUDA_ERROR_INVALID_VALUE;
		else
			p->reserved_high = p->reserved;
		break;
	case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
		if (*(cuuint64_t *)value != 0)
			rc = CUDA_ERROR_INVALID_VALUE;
		else
			p->used_high = p->used;
		break;
	default: /* the current figures are read-only */
		rc = CUDA_ERROR_INVALID_VALUE;
	}
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
	struct gp_sim_pool *p;
	CUresult rc;

	GP_SIM_ENTER();
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = pool_get_locked(pool, &p);
	if (rc)
		goto out;
	switch (attr) {
	case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
	case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
	case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
		*(int *)value = p->reuse[attr - 1];
		break;
	case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
		*(cuuint64_t *)value = p->threshold;
		break;
	case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT:
		*(cuuint64_t *)value = p->reserved;
		break;
	case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
		*(cuuint64_t *)value = p->reserved_high;
		break;
	case CU_MEMPOOL_ATTR_USED_MEM_CURRENT:
		*(cuuint64_t *)value = p->used;
		break;
	case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
		*(cuuint64_t *)value = p->used_high;
		break;
	default:
		rc = CUDA_ERROR_INVALID_VALUE;
	}
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc *map, size_t count)
{
	struct gp_sim_pool *p;
	CUresult rc;

	GP_SIM_ENTER();
	if (count && !map)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = pool_get_locked(pool, &p);
	for (size_t i = 0; !rc && i < count; i++) {
		int d = gp__sim_visible_index(map[i].location.id);
		if (map[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || d < 0 ||
		    (unsigned)map[i].flags > CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
			rc = CUDA_ERROR_INVALID_VALUE;
		else if (d == p->dev && map[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
			rc = CUDA_ERROR_INVALID_DEVICE; /* the owner always has access */
		else
			p->peer_access[d] = map[i].flags;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuMemPoolGetAccess(CUmemAccess_flags *flags, CUmemoryPool memPool,
			    CUmemLocation *location)
{
	struct gp_sim_pool *p;
	CUresult rc;
	int d;

	GP_SIM_ENTER();
	if (!flags || !location || location->type != CU_MEM_LOCATION_TYPE_DEVICE)
		return CUDA_ERROR_INVALID_VALUE;
	d = gp__sim_visible_index(location->id);
	if (d < 0)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = pool_get_locked(memPool, &p);
	if (!rc)
		*flags = p->peer_access[d];
	gp__sim_unlock();
	return rc;
}

/* --- per-device pools ------------------------------------------------------ */

CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out, CUdevice dev)
{
	struct gp_sim_pool *p;
	int idx = gp__sim_visible_index(dev);
	CUresult rc;

	GP_SIM_ENTER();
	if (!pool_out)
		return CUDA_ERROR_INVALID_VALUE;
	if (idx < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	rc = default_pool_locked(idx, &p);
	if (!rc)
		*pool_out = (CUmemoryPool)p;
	gp__sim_unlock();
	return rc;
}

CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev)
{
	struct gp_sim_pool *p;
	int idx = gp__sim_visible_index(dev);
	CUresult rc;

	GP_SIM_ENTER();
	if (!pool)
		return CUDA_ERROR_INVALID_VALUE;
	if (idx < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	rc = gp__sim_pool_current_locked(idx, &p);
	if (!rc)
		*pool = (CUmemoryPool)p;
	gp__sim_unlock();
	return rc;
}

CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool pool)
{
	struct gp_sim_pool *p;
	int idx = gp__sim_visible_index(dev);
	CUresult rc;

	GP_SIM_ENTER();
	if (idx < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	rc = pool_get_locked(pool, &p);
	if (!rc && p->dev != idx)
		rc = CUDA_ERROR_INVALID_DEVICE;
	if (!rc)
		current[idx] = p->is_default ? NULL : p;
	gp__sim_unlock();
	return rc;
}

/* The CUDA 13 forms name a location and an allocation type; device
 * locations of pinned memory are what the simulator has. */
static CUresult location_dev(const CUmemLocation *location, CUmemAllocationType type, int *idx)
{
	if (!location || type != CU_MEM_ALLOCATION_TYPE_PINNED)
		return CUDA_ERROR_INVALID_VALUE;
	if (location->type != CU_MEM_LOCATION_TYPE_DEVICE)
		return CUDA_ERROR_NOT_SUPPORTED;
	*idx = gp__sim_visible_index(location->id);
	return *idx < 0 ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS;
}

CUresult cuMemGetDefaultMemPool(CUmemoryPool *pool_out, CUmemLocation *location,
				CUmemAllocationType type)
{
	CUresult rc;
	int idx;

	GP_SIM_ENTER();
	rc = location_dev(location, type, &idx);
	return rc ? rc : cuDeviceGetDefaultMemPool(pool_out, location->id);
}

CUresult cuMemGetMemPool(CUmemoryPool *pool, CUmemLocation *location, CUmemAllocationType type)
{
	CUresult rc;
	int idx;

	GP_SIM_ENTER();
	rc = location_dev(location, type, &idx);
	return rc ? rc : cuDeviceGetMemPool(pool, location->id);
}

CUresult cuMemSetMemPool(CUmemLocation *location, CUmemAllocationType type, CUmemoryPool pool)
{
	CUresult rc;
	int idx;

	GP_SIM_ENTER();
	rc = location_dev(location, type, &idx);
	return rc ? rc : cuDeviceSetMemPool(location->id, pool);
}

/* --- stream-ordered allocation ------------------------------------------ */

/* cuMemAllocAsync and cuMemAllocFromPoolAsync (pool NULL: the device's
 * current pool).  Inside a stream capture the allocation becomes a graph
 * memory allocation node. */
static CUresult alloc_async(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
			    CUstream hStream, int ptds)
{
	struct gp_sim_stream *s;
	struct gp_sim_pool *p = NULL;
	struct gp_sim_mem *m;
	CUresult rc;

	GP_SIM_ENTER();
	if (!dptr || bytesize == 0)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (!rc && pool && pool_get_locked(pool, &p))
		rc = CUDA_ERROR_INVALID_VALUE;
	if (rc)
		goto out;
	if (s->cap) {
		uint64_t addr;
		rc = gp__sim_capture_alloc_locked(s, p ? p->dev : s->ctx->dev, bytesize, &addr);
		if (!rc)
			*dptr = (CUdeviceptr)addr;
		goto out;
	}
	if (!p)
		rc = gp__sim_pool_current_locked(s->ctx->dev, &p);
	if (!rc)
		rc = gp__sim_pool_alloc_locked(p, bytesize, &m);
	if (!rc)
		*dptr = (CUdeviceptr)m->base;
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
	return alloc_async(dptr, bytesize, NULL, hStream, 0);
}

CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
	return alloc_async(dptr, bytesize, NULL, hStream, 1);
}

static CUresult alloc_from_pool(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
				CUstream hStream, int ptds)
{
	GP_SIM_ENTER();
	if (!pool)
		return CUDA_ERROR_INVALID_VALUE;
	return alloc_async(dptr, bytesize, pool, hStream, ptds);
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
				 CUstream hStream)
{
	return alloc_from_pool(dptr, bytesize, pool, hStream, 0);
}

CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
				      CUstream hStream)
{
	return alloc_from_pool(dptr, bytesize, pool, hStream, 1);
}

static CUresult free_async(CUdeviceptr dptr, CUstream hStream, int ptds)
{
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	if (!dptr)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (!rc)
		rc = s->cap ? gp__sim_capture_free_locked(s, dptr) : gp__sim_mem_free_locked(dptr);
	gp__sim_unlock();
	return rc;
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
	return free_async(dptr, hStream, 0);
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
	return free_async(dptr, hStream, 1);
}
