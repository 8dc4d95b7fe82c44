/* pool.c - the stream-ordered allocator: cuMemAllocAsync,
 * cuMemAllocFromPoolAsync, cuMemFreeAsync and the pools behind them.
 *
 * A pool takes device memory in reserve and keeps what is freed until a
 * synchronisation point or cuMemPoolTrimTo shrinks it, so a pool is charged
 * for its reserve (reserve.c), read from the driver after each allocation
 * and after anything that may shrink it.  Before an allocation we charge
 * the growth it can cause (what it needs beyond the pool's free reserve);
 * if that does not fit the budget the allocation fails as on a full card.
 * Allocations made during stream capture take no memory until the graph is
 * launched and are counted there (graph.c).
 */
#include <string.h>

#include "hook/hook.h"

#define MAX_POOLS 128u

struct pool {
	CUmemoryPool h;          /* NULL = free slot */
	int charged_dev;         /* -1: a host pool, never charged */
	struct gp__reserve res;
};

static struct pool pools[MAX_POOLS];
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static int dirty; /* frees happened since the last refresh */

/* The slot of pool h; with `create`, register it on device `dev` if new
 * (dev -1 for a host pool).  NULL if unknown, or if the table is full (we
 * say so; alloc_async then charges that pool's allocations one by one). */
static struct pool *pool_slot(CUmemoryPool h, int dev, int create)
{
	struct pool *p = NULL, *free_slot = NULL;

	pthread_mutex_lock(&pools_lock);
	for (unsigned i = 0; i < MAX_POOLS; i++) {
		if (pools[i].h == h) {
			p = &pools[i];
			goto out;
		}
		if (!pools[i].h && !free_slot)
			free_slot = &pools[i];
	}
	if (create && free_slot) {
		p = free_slot;
		memset(p, 0, sizeof *p);
		p->h = h;
		p->charged_dev = dev;
		p->res.dev = dev;
	} else if (create) {
		gp_warn("more than %u memory pools: pool %p is not accounted", MAX_POOLS,
			(void *)h);
	}
out:
	pthread_mutex_unlock(&pools_lock);
	return p;
}

static CUresult read_attr(CUmemoryPool h, CUmemPool_attribute attr, uint64_t *out)
{
	cuuint64_t v = 0;
	CUresult rc = gp__real_cuMemPoolGetAttribute
			      ? gp__real_cuMemPoolGetAttribute(h, attr, &v)
			      : CUDA_ERROR_NOT_SUPPORTED;

	*out = v;
	return rc;
}

static CUresult read_reserved(void *arg, uint64_t *bytes)
{
	return read_attr((CUmemoryPool)arg, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, bytes);
}

static void settle(struct pool *p)
{
	if (p && p->charged_dev >= 0)
		gp__reserve_settle(&p->res, read_reserved, p->h);
}

/* The device whose pool serves stream s: the stream's own device where the
 * driver can tell, else the current context's. */
static CUresult stream_dev(CUstream s, int *dev)
{
	CUcontext ctx;
	CUdevice d;

	if (s && gp__real_cuStreamGetDevice && gp__real_cuStreamGetDevice(s, &d) == CUDA_SUCCESS) {
		*dev = (int)d;
		return CUDA_SUCCESS;
	}
	return gp__current(dev, &ctx);
}

static int capturing(CUstream s)
{
	CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;

	return gp__real_cuStreamIsCapturing && gp__real_cuStreamIsCapturing(s, &st) == CUDA_SUCCESS &&
	       st != CU_STREAM_CAPTURE_STATUS_NONE;
}

/* How much the pool would have to grow for `size` more bytes: what is
 * needed beyond its free reserve, in granules. */
static uint64_t growth(CUmemoryPool h, size_t size)
{
	uint64_t reserved, used, need;

	if (read_attr(h, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved) ||
	    read_attr(h, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used))
		return gp__granules(size); /* cannot tell: assume it all grows */
	need = gp__granules(used + size);
	return need > reserved ? need - reserved : 0;
}

typedef CUresult (*alloc_plain_fn)(CUdeviceptr *, size_t, CUstream);
typedef CUresult (*alloc_pool_fn)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);

/* The four allocation entry points: `pool` is NULL for cuMemAllocAsync
 * (then plain is called), else frompool is. */
static CUresult alloc_async(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s,
			    alloc_plain_fn plain, alloc_pool_fn frompool)
{
	CUmemoryPool h = pool;
	struct pool *p;
	uint64_t est = 0;
	CUresult rc;
	int dev;

#define CALL() (pool ? frompool(dptr, size, pool, s) : plain(dptr, size, s))
	if ((rc = gp__enter()))
		return rc;
	if (!dptr || size == 0 || capturing(s))
		return CALL();
	if ((rc = stream_dev(s, &dev)))
		return rc;
	if (!h && (!gp__real_cuDeviceGetMemPool ||
		   gp__real_cuDeviceGetMemPool(&h, (CUdevice)dev) != CUDA_SUCCESS))
		return CALL(); /* no pool: the driver will refuse */
	p = pool_slot(h, dev, 1);
	if (p && p->charged_dev < 0)
		return CALL(); /* host memory */
	/* The pool's own device pays (a pool may serve streams of others).
	 * A pool we cannot track (the table is full) is charged per
	 * allocation, for good: an over-count, never an under-count. */
	if (p)
		dev = p->charged_dev;
	est = p ? growth(h, size) : gp__granules(size);
	if (est && (rc = gp__charge(dev, est, 0)))
		return rc;
	rc = CALL();
	if (p)
		settle(p);
	if (est && (p || rc != CUDA_SUCCESS))
		gp__uncharge(dev, est);
	return rc;
#undef CALL
}

GP_EXPORT CUresult CUDAAPI cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
	GP_NEED_REAL(cuMemAllocAsync);
	return alloc_async(dptr, bytesize, NULL, hStream, gp__real_cuMemAllocAsync, NULL);
}

GP_EXPORT CUresult CUDAAPI cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
						CUstream hStream)
{
	GP_NEED_REAL(cuMemAllocAsync_ptsz);
	return alloc_async(dptr, bytesize, NULL, hStream, gp__real_cuMemAllocAsync_ptsz, NULL);
}

GP_EXPORT CUresult CUDAAPI cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize,
						   CUmemoryPool pool, CUstream hStream)
{
	GP_NEED_REAL(cuMemAllocFromPoolAsync);
	if (!pool)
		return gp__real_cuMemAllocFromPoolAsync(dptr, bytesize, pool, hStream);
	return alloc_async(dptr, bytesize, pool, hStream, NULL, gp__real_cuMemAllocFromPoolAsync);
}

GP_EXPORT CUresult CUDAAPI cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
							CUmemoryPool pool, CUstream hStream)
{
	GP_NEED_REAL(cuMemAllocFromPoolAsync_ptsz);
	if (!pool)
		return gp__real_cuMemAllocFromPoolAsync_ptsz(dptr, bytesize, pool, hStream);
	return alloc_async(dptr, bytesize, pool, hStream, NULL,
			   gp__real_cuMemAllocFromPoolAsync_ptsz);
}

/* A free leaves the memory in its pool's reserve; the next sync point may
 * shrink it.  Remember to look. */
GP_EXPORT CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
	GP_NEED_REAL(cuMemFreeAsync);
	__atomic_store_n(&dirty, 1, __ATOMIC_RELAXED);
	return gp__real_cuMemFreeAsync(dptr, hStream);
}

GP_EXPORT CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
	GP_NEED_REAL(cuMemFreeAsync_ptsz);
	__atomic_store_n(&dirty, 1, __ATOMIC_RELAXED);
	return gp__real_cuMemFreeAsync_ptsz(dptr, hStream);
}

void gp__pools_refresh(int force)
{
	CUmemoryPool hs[MAX_POOLS];
	unsigned n = 0;

	if (!force && !__atomic_exchange_n(&dirty, 0, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&pools_lock);
	for (unsigned i = 0; i < MAX_POOLS; i++)
		if (pools[i].h && pools[i].charged_dev >= 0)
			hs[n++] = pools[i].h;
	pthread_mutex_unlock(&pools_lock);
	/* Settled one by one outside the table lock: settling calls the
	 * driver.  A pool destroyed meanwhile fails its read and is skipped. */
	for (unsigned i = 0; i < n; i++)
		settle(pool_slot(hs[i], -1, 0));
}

GP_EXPORT CUresult CUDAAPI cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps)
{
	CUresult rc;

	GP_NEED_REAL(cuMemPoolCreate);
	rc = gp__real_cuMemPoolCreate(pool, poolProps);
	if (rc == CUDA_SUCCESS && pool && poolProps) {
		int device = poolProps->location.type == CU_MEM_LOCATION_TYPE_DEVICE;
		pool_slot(*pool, device ? poolProps->location.id : -1, 1);
	}
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuMemPoolDestroy(CUmemoryPool pool)
{
	CUresult rc;

	GP_NEED_REAL(cuMemPoolDestroy);
	rc = gp__real_cuMemPoolDestroy(pool);
	if (rc != CUDA_SUCCESS || !pool)
		return rc;
	pthread_mutex_lock(&pools_lock);
	for (unsigned i = 0; i < MAX_POOLS; i++) {
		if (pools[i].h != pool)
			continue;
		if (pools[i].charged_dev >= 0)
			gp__reserve_drop(&pools[i].res);
		pools[i].h = NULL;
	}
	pthread_mutex_unlock(&pools_lock);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
	CUresult rc;

	GP_NEED_REAL(cuMemPoolTrimTo);
	rc = gp__real_cuMemPoolTrimTo(pool, minBytesToKeep);
	if (rc == CUDA_SUCCESS && pool)
		settle(pool_slot(pool, -1, 0));
	return rc;
}

/* Synchronisation points, where the driver releases pool memory above each
 * pool's release threshold. */
GP_EXPORT CUresult CUDAAPI cuStreamSynchronize(CUstream hStream)
{
	CUresult rc;

	GP_NEED_REAL(cuStreamSynchronize);
	rc = gp__real_cuStreamSynchronize(hStream);
	gp__pools_refresh(0);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuStreamSynchronize_ptsz(CUstream hStream)
{
	CUresult rc;

	GP_NEED_REAL(cuStreamSynchronize_ptsz);
	rc = gp__real_cuStreamSynchronize_ptsz(hStream);
	gp__pools_refresh(0);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuEventSynchronize(CUevent hEvent)
{
	CUresult rc;

	GP_NEED_REAL(cuEventSynchronize);
	rc = gp__real_cuEventSynchronize(hEvent);
	gp__pools_refresh(0);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuCtxSynchronize(void)
{
	CUresult rc;

	GP_NEED_REAL(cuCtxSynchronize);
	rc = gp__real_cuCtxSynchronize();
	gp__pools_refresh(0);
	return rc;
}

void gp__pools_atfork(enum gp__fork_phase phase)
{
	if (phase == GP_FORK_PREPARE) {
		pthread_mutex_lock(&pools_lock);
	} else if (phase == GP_FORK_PARENT) {
		pthread_mutex_unlock(&pools_lock);
	} else {
		/* The parent's pools are not the child's. */
		memset(pools, 0, sizeof pools);
		dirty = 0;
		pools_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	}
}
