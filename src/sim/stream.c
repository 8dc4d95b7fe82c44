/* stream.c - streams and synchronization.  See stream.h.  Entry points:
 * cuStream* (but capture and events), cuLaunchHostFunc and
 * cuCtxSynchronize. */
#include "sim/stream.h"

#include <stdlib.h>

#include "common/clock.h"
#include "sim/capture.h"
#include "sim/pool.h"

#define PTDS_CACHE 8
#define PRIORITY_LEAST 0
#define PRIORITY_GREATEST (-5)

static unsigned long long next_stream_id = 1;

/* The calling thread's per-thread default streams, one per context; each
 * entry is checked against the registry before use.  `token`'s address
 * identifies the thread. */
static __thread struct {
	struct gp_sim_ctx *ctx;
	struct gp_sim_stream *s;
} ptds_cache[PTDS_CACHE];
static __thread char token;
static pthread_key_t ptds_key;
static pthread_once_t ptds_once = PTHREAD_ONCE_INIT;

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

CUresult gp__sim_stream_new_locked(struct gp_sim_ctx *ctx, enum gp_sim_stream_kind kind,
				   unsigned flags, int priority, struct gp_sim_stream **out)
{
	struct gp_sim_stream *s = calloc(1, sizeof *s);

	if (!s)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (gp__sim_handle_add(&s->h, GP_SIM_STREAM)) {
		free(s);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	s->ctx = ctx;
	s->kind = kind;
	s->flags = flags;
	s->priority = priority;
	s->id = next_stream_id++;
	gp_sim_list_add(&ctx->streams, &s->link);
	*out = s;
	return CUDA_SUCCESS;
}

static void stream_free_locked(struct gp_sim_stream *s)
{
	if (s->cap)
		gp__sim_capture_stream_gone_locked(s);
	free(s->deps);
	gp_sim_list_del(&s->link);
	gp__sim_handle_del(&s->h);
	free(s);
}

void gp__sim_streams_ctx_gone_locked(struct gp_sim_ctx *ctx)
{
	gp__sim_events_ctx_gone_locked(ctx);
	while (!gp_sim_list_empty(&ctx->streams))
		stream_free_locked(gp_sim_container(ctx->streams.next, struct gp_sim_stream, link));
}

/* A thread ends: destroy its per-thread default streams. */
static void ptds_thread_exit(void *arg)
{
	(void)arg;
	for (int i = 0; i < PTDS_CACHE; i++) {
		struct gp_sim_stream *s;

		gp__sim_lock();
		s = gp__sim_handle_get(ptds_cache[i].s, GP_SIM_STREAM);
		if (s && s->owner == &token && s->kind == GP_SIM_STREAM_PER_THREAD) {
			gp__sim_unlock();
			gp__sim_callback_wait(&s->cb_pending);
			gp__sim_lock();
			if (gp__sim_handle_get(s, GP_SIM_STREAM) == s)
				stream_free_locked(s);
		}
		ptds_cache[i].s = NULL;
		ptds_cache[i].ctx = NULL;
		gp__sim_unlock();
	}
}

static void ptds_key_create(void)
{
	(void)pthread_key_create(&ptds_key, ptds_thread_exit);
}

/* The calling thread's per-thread default stream of ctx. */
static CUresult per_thread_locked(struct gp_sim_ctx *ctx, struct gp_sim_stream **out)
{
	int free_slot = -1;
	CUresult rc;

	for (int i = 0; i < PTDS_CACHE; i++) {
		struct gp_sim_stream *s = gp__sim_handle_get(ptds_cache[i].s, GP_SIM_STREAM);
		if (s && s->ctx == ctx && s->owner == &token &&
		    s->kind == GP_SIM_STREAM_PER_THREAD) {
			*out = s;
			return CUDA_SUCCESS;
		}
		if (!s || s->owner != &token)
			free_slot = i; /* stale: reusable */
	}
	if (free_slot < 0)
		free_slot = 0; /* more contexts than slots: the oldest entry's stream
		                  stays with its context, which frees it */
	rc = gp__sim_stream_new_locked(ctx, GP_SIM_STREAM_PER_THREAD, 0, 0, out);
	if (rc)
		return rc;
	(*out)->owner = &token;
	ptds_cache[free_slot].ctx = ctx;
	ptds_cache[free_slot].s = *out;
	pthread_once(&ptds_once, ptds_key_create);
	pthread_setspecific(ptds_key, &token); /* so that the destructor runs */
	return CUDA_SUCCESS;
}

CUresult gp__sim_stream_get_locked(CUstream h, int ptds, struct gp_sim_stream **out)
{
	struct gp_sim_ctx *c;
	CUresult rc;

	if (h && h != CU_STREAM_LEGACY && h != CU_STREAM_PER_THREAD) {
		*out = gp__sim_handle_get(h, GP_SIM_STREAM);
		return *out ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
	}
	rc = gp__sim_ctx_current_locked(&c);
	if (rc)
		return rc;
	if (h == CU_STREAM_PER_THREAD || (!h && ptds))
		return per_thread_locked(c, out);
	*out = c->legacy;
	return CUDA_SUCCESS;
}

uint64_t gp__sim_stream_ready_locked(const struct gp_sim_stream *s)
{
	const struct gp_sim_ctx *c = s->ctx;
	uint64_t t = s->tail_ns;

	if (s->kind == GP_SIM_STREAM_LEGACY) {
		/* The NULL stream waits for every blocking stream. */
		for (const struct gp_sim_list *l = c->streams.next; l != &c->streams; l = l->next) {
			const struct gp_sim_stream *x = gp_sim_container(l, struct gp_sim_stream, link);
			if (!(x->flags & CU_STREAM_NON_BLOCKING))
				t = max_u64(t, x->tail_ns);
		}
	} else if (!(s->flags & CU_STREAM_NON_BLOCKING) && c->legacy) {
		t = max_u64(t, c->legacy->tail_ns); /* ... and they wait for it */
	}
	return t;
}

void gp__sim_stream_done_locked(struct gp_sim_stream *s, uint64_t t)
{
	s->tail_ns = max_u64(s->tail_ns, t);
}

CUresult gp__sim_sync_point(uint64_t until, unsigned *pending, int dev, struct gp_sim_ctx *ctx)
{
	CUresult rc = CUDA_SUCCESS;

	gp_sleep_until_ns(until);
	if (pending)
		gp__sim_callback_wait(pending);
	gp__sim_lock();
	gp__sim_pools_trim_locked(dev);
	if (ctx && gp__sim_handle_get(ctx, GP_SIM_CTX) == ctx)
		rc = ctx->sticky;
	gp__sim_unlock();
	return rc;
}

CUresult gp__sim_sync_op_locked(int ptds, uint64_t *until, struct gp_sim_ctx **ctx)
{
	struct gp_sim_stream *s;
	CUresult rc = gp__sim_stream_get_locked(NULL, ptds, &s);

	if (!rc)
		rc = gp__sim_capture_unsafe_call_locked();
	if (!rc && s->cap)
		rc = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	if (!rc)
		rc = gp__sim_capture_legacy_check_locked(s);
	if (rc)
		return rc;
	*until = gp__sim_stream_ready_locked(s);
	*ctx = s->ctx;
	return s->ctx->sticky;
}

/* --- creation and destruction ------------------------------------------- */

static CUresult stream_create(CUstream *phStream, unsigned flags, int priority)
{
	struct gp_sim_ctx *c;
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	if (!phStream || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
		return CUDA_ERROR_INVALID_VALUE;
	if (priority < PRIORITY_GREATEST)
		priority = PRIORITY_GREATEST;
	if (priority > PRIORITY_LEAST)
		priority = PRIORITY_LEAST;
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (!rc)
		rc = gp__sim_stream_new_locked(c, GP_SIM_STREAM_USER, flags, priority, &s);
	if (!rc)
		*phStream = (CUstream)s;
	gp__sim_unlock();
	return rc;
}

CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags)
{
	return stream_create(phStream, Flags, PRIORITY_LEAST);
}

CUresult cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags, int priority)
{
	return stream_create(phStream, flags, priority);
}

static CUresult stream_destroy(CUstream hStream)
{
	struct gp_sim_stream *s;

	GP_SIM_ENTER();
	gp__sim_lock();
	s = gp__sim_handle_get(hStream, GP_SIM_STREAM);
	gp__sim_unlock();
	if (!s || s->kind != GP_SIM_STREAM_USER)
		return CUDA_ERROR_INVALID_HANDLE;
	/* Work already queued completes; its host functions still run. */
	gp__sim_callback_wait(&s->cb_pending);
	gp__sim_lock();
	if (gp__sim_handle_get(hStream, GP_SIM_STREAM) == s)
		stream_free_locked(s);
	gp__sim_unlock();
	return CUDA_SUCCESS;
}

CUresult cuStreamDestroy(CUstream hStream)
{
	return stream_destroy(hStream);
}

CUresult cuStreamDestroy_v2(CUstream hStream)
{
	return stream_destroy(hStream);
}

/* --- query and synchronize ---------------------------------------------- */

static CUresult stream_query(CUstream hStream, int ptds)
{
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (!rc && s->cap) {
		gp__sim_capture_invalidate_locked(s->cap);
		rc = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	}
	if (!rc)
		rc = s->ctx->sticky;
	if (!rc && (gp__sim_stream_ready_locked(s) > gp_now_ns() ||
		    gp__sim_callback_pending(&s->cb_pending)))
		rc = CUDA_ERROR_NOT_READY;
	gp__sim_unlock();
	return rc;
}

CUresult cuStreamQuery(CUstream hStream)
{
	return stream_query(hStream, 0);
}

CUresult cuStreamQuery_ptsz(CUstream hStream)
{
	return stream_query(hStream, 1);
}

static CUresult stream_sync(CUstream hStream, int ptds)
{
	struct gp_sim_stream *s;
	struct gp_sim_ctx *c = NULL;
	uint64_t until = 0;
	unsigned *pending = NULL;
	CUresult rc;
	int dev = 0;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (!rc && s->cap) {
		gp__sim_capture_invalidate_locked(s->cap);
		rc = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	}
	if (!rc) {
		until = gp__sim_stream_ready_locked(s);
		c = s->ctx;
		dev = c->dev;
		/* The NULL stream synchronizes with every blocking stream, and
		 * so with their host functions: wait for the context's. */
		pending = s->kind == GP_SIM_STREAM_LEGACY ? &c->cb_pending : &s->cb_pending;
	}
	gp__sim_unlock();
	if (rc)
		return rc;
	return gp__sim_sync_point(until, pending, dev, c);
}

CUresult cuStreamSynchronize(CUstream hStream)
{
	return stream_sync(hStream, 0);
}

CUresult cuStreamSynchronize_ptsz(CUstream hStream)
{
	return stream_sync(hStream, 1);
}

static CUresult ctx_sync(CUcontext ctx)
{
	struct gp_sim_ctx *c;
	uint64_t until = 0;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = gp__sim_ctx_get_locked(ctx, &c);
	if (!rc)
		rc = gp__sim_capture_unsafe_call_locked();
	if (!rc) {
		for (struct gp_sim_list *l = c->streams.next; l != &c->streams; l = l->next)
			until = max_u64(until,
					gp_sim_container(l, struct gp_sim_stream, link)->tail_ns);
	}
	gp__sim_unlock();
	if (rc)
		return rc;
	return gp__sim_sync_point(until, &c->cb_pending, c->dev, c);
}

CUresult cuCtxSynchronize(void)
{
	return ctx_sync(NULL);
}

CUresult cuCtxSynchronize_v2(CUcontext ctx)
{
	return ctx_sync(ctx);
}

/* --- properties --------------------------------------------------------- */

/* Resolve hStream and run `body` with `s` under the lock. */
#define WITH_STREAM(h, ptds, s, body)                                        \
	do {                                                                     \
		struct gp_sim_stream *s;                                             \
		CUresult rc_;                                                        \
		gp__sim_lock();                                                      \
		rc_ = gp__sim_stream_get_locked((h), (ptds), &s);                    \
		if (rc_ == CUDA_SUCCESS) {                                           \
			body;                                                            \
		}                                                                    \
		gp__sim_unlock();                                                    \
		return rc_;                                                          \
	} while (0)

static CUresult get_priority(CUstream h, int *priority, int ptds)
{
	GP_SIM_ENTER();
	if (!priority)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_STREAM(h, ptds, s, *priority = s->priority);
}

CUresult cuStreamGetPriority(CUstream hStream, int *priority)
{
	return get_priority(hStream, priority, 0);
}

CUresult cuStreamGetPriority_ptsz(CUstream hStream, int *priority)
{
	return get_priority(hStream, priority, 1);
}

static CUresult get_flags(CUstream h, unsigned *flags, int ptds)
{
	GP_SIM_ENTER();
	if (!flags)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_STREAM(h, ptds, s, *flags = s->flags);
}

CUresult cuStreamGetFlags(CUstream hStream, unsigned int *flags)
{
	return get_flags(hStream, flags, 0);
}

CUresult cuStreamGetFlags_ptsz(CUstream hStream, unsigned int *flags)
{
	return get_flags(hStream, flags, 1);
}

static CUresult get_id(CUstream h, unsigned long long *id, int ptds)
{
	GP_SIM_ENTER();
	if (!id)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_STREAM(h, ptds, s, *id = s->id);
}

CUresult cuStreamGetId(CUstream hStream, unsigned long long *streamId)
{
	return get_id(hStream, streamId, 0);
}

CUresult cuStreamGetId_ptsz(CUstream hStream, unsigned long long *streamId)
{
	return get_id(hStream, streamId, 1);
}

static CUresult get_ctx(CUstream h, CUcontext *pctx, CUgreenCtx *green, int ptds)
{
	GP_SIM_ENTER();
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_STREAM(h, ptds, s, *pctx = (CUcontext)s->ctx; if (green) *green = NULL);
}

CUresult cuStreamGetCtx(CUstream hStream, CUcontext *pctx)
{
	return get_ctx(hStream, pctx, NULL, 0);
}

CUresult cuStreamGetCtx_ptsz(CUstream hStream, CUcontext *pctx)
{
	return get_ctx(hStream, pctx, NULL, 1);
}

CUresult cuStreamGetCtx_v2(CUstream hStream, CUcontext *pCtx, CUgreenCtx *pGreenCtx)
{
	return get_ctx(hStream, pCtx, pGreenCtx, 0);
}

CUresult cuStreamGetCtx_v2_ptsz(CUstream hStream, CUcontext *pCtx, CUgreenCtx *pGreenCtx)
{
	return get_ctx(hStream, pCtx, pGreenCtx, 1);
}

static CUresult get_device(CUstream h, CUdevice *device, int ptds)
{
	GP_SIM_ENTER();
	if (!device)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_STREAM(h, ptds, s, *device = s->ctx->ordinal);
}

CUresult cuStreamGetDevice(CUstream hStream, CUdevice *device)
{
	return get_device(hStream, device, 0);
}

CUresult cuStreamGetDevice_ptsz(CUstream hStream, CUdevice *device)
{
	return get_device(hStream, device, 1);
}

static CUresult attach_mem(CUstream h, CUdeviceptr dptr, size_t length, unsigned flags,
			   int ptds)
{
	GP_SIM_ENTER();
	if (!dptr || (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST &&
		      flags != CU_MEM_ATTACH_SINGLE))
		return CUDA_ERROR_INVALID_VALUE;
	(void)length; /* managed memory is always coherent here */
	WITH_STREAM(h, ptds, s, (void)s);
}

CUresult cuStreamAttachMemAsync(CUstream hStream, CUdeviceptr dptr, size_t length,
				unsigned int flags)
{
	return attach_mem(hStream, dptr, length, flags, 0);
}

CUresult cuStreamAttachMemAsync_ptsz(CUstream hStream, CUdeviceptr dptr, size_t length,
				     unsigned int flags)
{
	return attach_mem(hStream, dptr, length, flags, 1);
}

/* --- host functions ------------------------------------------------------ */

/* kind 0: cuLaunchHostFunc (capturable); 1: cuStreamAddCallback. */
static CUresult host_func(CUstream h, int kind, void *fn, void *data, int ptds)
{
	struct gp_sim_stream *s;
	struct gp_sim_node *n;
	CUresult rc;

	GP_SIM_ENTER();
	if (!fn)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(h, ptds, &s);
	if (rc)
		goto out;
	if (s->cap) {
		if (kind == 1) {
			gp__sim_capture_invalidate_locked(s->cap);
			rc = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
		} else {
			rc = gp__sim_capture_host_node_locked(s, (CUhostFn)fn, data, &n);
		}
		goto out;
	}
	rc = gp__sim_capture_legacy_check_locked(s);
	if (!rc)
		rc = gp__sim_callback_add_locked(s, h, gp__sim_stream_ready_locked(s), kind, fn,
						 data);
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuLaunchHostFunc(CUstream hStream, CUhostFn fn, void *userData)
{
	return host_func(hStream, 0, (void *)fn, userData, 0);
}

CUresult cuLaunchHostFunc_ptsz(CUstream hStream, CUhostFn fn, void *userData)
{
	return host_func(hStream, 0, (void *)fn, userData, 1);
}

CUresult cuStreamAddCallback(CUstream hStream, CUstreamCallback callback, void *userData,
			     unsigned int flags)
{
	if (flags != 0)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	return host_func(hStream, 1, (void *)callback, userData, 0);
}

CUresult cuStreamAddCallback_ptsz(CUstream hStream, CUstreamCallback callback, void *userData,
				  unsigned int flags)
{
	if (flags != 0)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	return host_func(hStream, 1, (void *)callback, userData, 1);
}
