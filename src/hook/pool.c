/* pool.c - the stream-ordered allocator: cuMemAllocAsync,
 * cuMemAllocFromPoolAsync, cuMemFreeAsync and the pools behind them.
 *
 * A pool takes device memory in reserve and keeps what is freed until a
 * synchronisation point or cuMemPoolTrimTo shrinks it, so a pool is charged
 * for its reserve (reserve.c), read from the driver after each allocation
 * and after anything that may shrink it.  An allocation is made under the
 * pool's reserve lock: we read what the pool has in use, charge the growth
 * the allocation can cause beyond what the pool is charged, allocate, and
 * settle on the driver's new figure.  If the growth does not fit the budget
 * the allocation fails as on a full card.  Allocations made during stream
 * capture take no memory until the graph is launched (graph.c).
 *
 * Every allocation is recorded with its pool and keeps the pool object
 * alive: a pool destroyed while allocations are outstanding lives on in the
 * driver until the last is freed, and so does its charge.  The driver's
 * documentation says the pool's resources go when no allocation is left;
 * until then we keep charging the reserve it had when it was destroyed
 * (an over-count where a driver gives memory back earlier, as the
 * simulator does, never an under-count).
 *
 * Pools are registered when first seen (created, or used as a device's
 * current pool), only after the driver has answered for the handle, so
 * garbage handles never take room; the registry grows as needed.
 */
#include <stdlib.h>
#include <string.h>

#include "hook/hook.h"

struct pool {
	CUmemoryPool h;
	struct gp__reserve res; /* the reserve charged to res.dev */
	int host;               /* host memory: never charged */
	int destroyed;          /* the handle is gone; allocations remain */
	unsigned refs;          /* the registry's (until destroyed), one per
	                           outstanding allocation, one per user */
};

static struct {
	pthread_mutex_t lock; /* guards all of this and every pool's refs and
	                         destroyed; never held across a driver call */
	struct pool **v;      /* registered pools, destroyed ones included
	                         while their allocations live */
	unsigned n, cap;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int dirty; /* frees happened since the last refresh */

/* The live pool with handle h, with a reference taken, or NULL.
 * reg.lock held. */
static struct pool *lookup_locked(CUmemoryPool h)
{
	for (unsigned i = 0; i < reg.n; i++) {
		if (reg.v[i]->h == h && !reg.v[i]->destroyed) {
			reg.v[i]->refs++;
			return reg.v[i];
		}
	}
	return NULL;
}

/* Drop a reference; the last one frees the pool and gives back its
 * charge. */
static void pool_put(struct pool *p)
{
	int last;

	pthread_mutex_lock(&reg.lock);
	last = --p->refs == 0;
	if (last) {
		for (unsigned i = 0; i < reg.n; i++) {
			if (reg.v[i] == p) {
				reg.v[i] = reg.v[--reg.n];
				break;
			}
		}
	}
	pthread_mutex_unlock(&reg.lock);
	if (!last)
		return;
	if (!p->host)
		gp__uncharge(p->res.dev, p->res.charged);
	pthread_mutex_destroy(&p->res.lock);
	free(p);
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

/* The pool with handle h, with a reference taken.  Unless it is known,
 * register it on ordinal `dev` (-1: host memory), but only if the driver
 * knows the handle.  NULL for a handle the driver does not know, or when
 * out of host memory. */
static struct pool *pool_get(CUmemoryPool h, int dev)
{
	struct pool *p, **v;
	uint64_t ignored;

	pthread_mutex_lock(&reg.lock);
	p = lookup_locked(h);
	pthread_mutex_unlock(&reg.lock);
	if (p || read_attr(h, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &ignored) != CUDA_SUCCESS)
		return p;
	pthread_mutex_lock(&reg.lock);
	if ((p = lookup_locked(h))) /* registered meanwhile */
		goto out;
	if (reg.n == reg.cap) {
		unsigned cap = reg.cap ? reg.cap * 2 : 16;
		if (!(v = realloc(reg.v, cap * sizeof *v)))
			goto out;
		reg.v = v;
		reg.cap = cap;
	}
	if (!(p = calloc(1, sizeof *p)))
		goto out;
	p->h = h;
	p->host = dev < 0;
	p->res.dev = dev;
	pthread_mutex_init(&p->res.lock, NULL);
	p->refs = 2; /* the registry's and the caller's */
	reg.v[reg.n++] = p;
out:
	pthread_mutex_unlock(&reg.lock);
	if (!p)
		gp_warn("pool %p not registered (out of host memory)", (void *)h);
	return p;
}

/* Bring p's charge to the driver's figure.  Returns whether the driver
 * could tell.  p->res.lock held. */
static int settle_locked(struct pool *p)
{
	uint64_t now;

	if (p->host || p->destroyed ||
	    read_attr(p->h, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &now) != CUDA_SUCCESS)
		return 0;
	gp__reserve_set(&p->res, now);
	return 1;
}

static void settle(struct pool *p)
{
	pthread_mutex_lock(&p->res.lock);
	settle_locked(p);
	pthread_mutex_unlock(&p->res.lock);
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

/* Record an allocation that succeeded (`rec` says what it holds); if the
 * table cannot grow, its hold stays for good: an over-count. */
static void record(CUdeviceptr ptr, const struct gp__rec *rec)
{
	if (gp__tab_put(&gp__tabs[GP_S_PTR], ptr, rec))
		gp_error("out of host memory tracking an allocation; it stays charged");
}

typedef CUresult (*alloc_plain_fn)(CUdeviceptr *, size_t, CUstream);
typedef CUresult (*alloc_pool_fn)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);

/* The four allocation entry points: `pool` is NULL for cuMemAllocAsync
 * (then plain is called), else frompool is. */
static CUresult alloc_async(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s,
			    alloc_plain_fn plain, alloc_pool_fn frompool)
{
	struct gp__rec rec = {.kind = GP_K_ASYNC};
	CUmemoryPool h = pool;
	struct pool *p;
	uint64_t est, used;
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
	if (!(p = pool_get(h, dev))) {
		/* A handle the driver does not know (it will refuse), or no
		 * host memory to track the pool: charge this allocation on its
		 * own, as cuMemAlloc would be. */
		rec.kind = GP_K_ALLOC;
		rec.dev = dev;
		rec.bytes = gp__granules(size);
		if ((rc = gp__charge(dev, rec.bytes, 0)))
			return rc;
		if ((rc = CALL()) != CUDA_SUCCESS)
			gp__uncharge(dev, rec.bytes);
		else
			record(*dptr, &rec);
		return rc;
	}
	if (p->host) {
		pool_put(p);
		return CALL();
	}
	/* The pool's own device pays (a pool may serve streams of others). */
	pthread_mutex_lock(&p->res.lock);
	est = read_attr(h, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used) == CUDA_SUCCESS
		      ? gp__reserve_growth(&p->res, used, size)
		      : gp__granules(size); /* cannot tell: assume it all grows */
	if (est && (rc = gp__charge(p->res.dev, est, 0))) {
		pthread_mutex_unlock(&p->res.lock);
		pool_put(p);
		return rc;
	}
	rc = CALL();
	/* Without growth the reserve holds no more than it is charged for;
	 * with it, settle on the new figure, or keep the estimate if the
	 * driver cannot tell. */
	if (est) {
		if (!settle_locked(p) && rc == CUDA_SUCCESS)
			p->res.charged += est;
		else
			gp__uncharge(p->res.dev, est);
	}
	pthread_mutex_unlock(&p->res.lock);
	if (rc != CUDA_SUCCESS) {
		pool_put(p);
		return rc;
	}
	rec.aux = (uint64_t)(uintptr_t)p; /* the allocation keeps our reference */
	rec.dev = p->res.dev;
	record(*dptr, &rec);
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

/* The rest of a free that is not a plain allocation freed: an allocation
 * from a pool, a failed free, or a pointer we did not hand out. */
static __attribute__((noinline)) CUresult freed_other(CUdeviceptr ptr, const struct gp__rec *rec,
						     int ours, CUresult rc)
{
	if (!ours) {
		/* Not ours, yet maybe pool memory (allocated during a capture):
		 * look at the pools at the next sync. */
		__atomic_store_n(&dirty, 1, __ATOMIC_RELAXED);
	} else if (gp__free_end(GP_S_PTR, ptr, rec, rc)) {
		if (rec->kind == GP_K_ALLOC) {
			gp__uncharge(rec->dev, rec->bytes);
		} else {
			/* It stays in its pool's reserve until a sync trims it. */
			__atomic_store_n(&dirty, 1, __ATOMIC_RELAXED);
			pool_put((struct pool *)(uintptr_t)rec->aux);
		}
	}
	return rc;
}

CUresult gp__free_ptr(CUdeviceptr ptr, CUresult (*call)(CUdeviceptr ptr, void *arg), void *arg)
{
	struct gp__rec rec;
	int ours = gp__free_begin(GP_S_PTR, ptr, GP_KIND(GP_K_ALLOC) | GP_KIND(GP_K_ASYNC), &rec);
	CUresult rc = call(ptr, arg);

	if (GP_LIKELY(ours && rc == CUDA_SUCCESS && rec.kind == GP_K_ALLOC)) {
		gp__uncharge(rec.dev, rec.bytes);
		return rc;
	}
	return freed_other(ptr, &rec, ours, rc);
}

static CUresult free_async(CUdeviceptr ptr, void *arg)
{
	return gp__real_cuMemFreeAsync(ptr, (CUstream)arg);
}

static CUresult free_async_ptsz(CUdeviceptr ptr, void *arg)
{
	return gp__real_cuMemFreeAsync_ptsz(ptr, (CUstream)arg);
}

GP_EXPORT CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
	GP_NEED_REAL(cuMemFreeAsync);
	return gp__free_ptr(dptr, free_async, hStream);
}

GP_EXPORT CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
	GP_NEED_REAL(cuMemFreeAsync_ptsz);
	return gp__free_ptr(dptr, free_async_ptsz, hStream);
}

void gp__pools_refresh(int force)
{
	struct pool **snap;
	unsigned n = 0, want;

	if (!force && !__atomic_exchange_n(&dirty, 0, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&reg.lock);
	want = reg.n;
	snap = want ? malloc(want * sizeof *snap) : NULL;
	for (unsigned i = 0; snap && i < reg.n; i++) {
		if (!reg.v[i]->host && !reg.v[i]->destroyed) {
			reg.v[i]->refs++;
			snap[n++] = reg.v[i];
		}
	}
	pthread_mutex_unlock(&reg.lock);
	if (want && !snap)
		__atomic_store_n(&dirty, 1, __ATOMIC_RELAXED); /* try again later */
	/* One by one, outside the registry lock: settling calls the driver. */
	for (unsigned i = 0; i < n; i++) {
		settle(snap[i]);
		pool_put(snap[i]);
	}
	free(snap);
}

GP_EXPORT CUresult CUDAAPI cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps)
{
	struct pool *p;
	CUresult rc;

	GP_NEED_REAL(cuMemPoolCreate);
	rc = gp__real_cuMemPoolCreate(pool, poolProps);
	if (rc == CUDA_SUCCESS && pool && poolProps && gp__enter() == CUDA_SUCCESS) {
		int device = poolProps->location.type == CU_MEM_LOCATION_TYPE_DEVICE;
		if ((p = pool_get(*pool, device ? poolProps->location.id : -1)))
			pool_put(p);
	}
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuMemPoolDestroy(CUmemoryPool pool)
{
	struct pool *p = NULL;
	CUresult rc;

	GP_NEED_REAL(cuMemPoolDestroy);
	if (pool) {
		pthread_mutex_lock(&reg.lock);
		p = lookup_locked(pool);
		pthread_mutex_unlock(&reg.lock);
	}
	if (!p)
		return gp__real_cuMemPoolDestroy(pool);
	/* Under the reserve lock: no allocation of ours is half-way. */
	pthread_mutex_lock(&p->res.lock);
	rc = gp__real_cuMemPoolDestroy(pool);
	if (rc == CUDA_SUCCESS) {
		pthread_mutex_lock(&reg.lock);
		p->destroyed = 1;
		p->refs--; /* the registry's: outstanding allocations keep it */
		pthread_mutex_unlock(&reg.lock);
	}
	pthread_mutex_unlock(&p->res.lock);
	pool_put(p);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
	struct pool *p = NULL;
	CUresult rc;

	GP_NEED_REAL(cuMemPoolTrimTo);
	rc = gp__real_cuMemPoolTrimTo(pool, minBytesToKeep);
	if (rc == CUDA_SUCCESS && pool) {
		pthread_mutex_lock(&reg.lock);
		p = lookup_locked(pool);
		pthread_mutex_unlock(&reg.lock);
	}
	if (p) {
		settle(p);
		pool_put(p);
	}
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
		pthread_mutex_lock(&reg.lock);
	} else if (phase == GP_FORK_PARENT) {
		pthread_mutex_unlock(&reg.lock);
	} else {
		/* The parent's pools are not the child's. */
		for (unsigned i = 0; i < reg.n; i++)
			free(reg.v[i]);
		free(reg.v);
		reg.v = NULL;
		reg.n = reg.cap = 0;
		dirty = 0;
		reg.lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	}
}
