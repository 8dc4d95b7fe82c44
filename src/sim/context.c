/* context.c - see context.h.  Also the context entry points: cuCtx* and
 * cuDevicePrimaryCtx*. */
#include "sim/context.h"

#include <stdlib.h>
#include <string.h>

#include "sim/array.h"
#include "sim/memory.h"
#include "sim/kernel.h"
#include "sim/state.h"
#include "sim/stream.h"

#define CTX_STACK_MAX 32

/* The calling thread's context stack; entries are checked on use. */
static __thread struct {
	struct gp_sim_ctx *stack[CTX_STACK_MAX];
	int depth;
} tls;

/* Primary contexts by machine index; created on first retain and kept for
 * the life of the process (their handle value is stable, as in the real
 * driver). */
static struct gp_sim_ctx *primary[GP_SIM_GPUS_MAX];
static unsigned long long next_ctx_id = 1;

/* Default values of cuCtxGetLimit, by CUlimit; 0 marks an unsupported one. */
static const size_t default_limits[CU_LIMIT_MAX] = {
	[CU_LIMIT_STACK_SIZE] = 1024,
	[CU_LIMIT_PRINTF_FIFO_SIZE] = 1 << 20,
	[CU_LIMIT_MALLOC_HEAP_SIZE] = 8 << 20,
	[CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH] = 2,
	[CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT] = 2048,
	[CU_LIMIT_MAX_L2_FETCH_GRANULARITY] = 64,
	[CU_LIMIT_PERSISTING_L2_CACHE_SIZE] = 1, /* supported; default 0 below */
};

static struct gp_sim_ctx *tls_top(void)
{
	return tls.depth ? tls.stack[tls.depth - 1] : NULL;
}

CUresult gp__sim_ctx_current_locked(struct gp_sim_ctx **out)
{
	struct gp_sim_ctx *top = tls_top(), *c;

	*out = NULL;
	if (!top)
		return CUDA_ERROR_INVALID_CONTEXT;
	c = gp__sim_handle_get(top, GP_SIM_CTX);
	if (!c || !c->active)
		return CUDA_ERROR_CONTEXT_IS_DESTROYED;
	*out = c;
	return CUDA_SUCCESS;
}

CUresult gp__sim_ctx_get_locked(CUcontext h, struct gp_sim_ctx **out)
{
	struct gp_sim_ctx *c;

	if (!h)
		return gp__sim_ctx_current_locked(out);
	c = gp__sim_handle_get(h, GP_SIM_CTX);
	*out = NULL;
	if (!c)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!c->active)
		return CUDA_ERROR_CONTEXT_IS_DESTROYED;
	*out = c;
	return CUDA_SUCCESS;
}

static int flags_valid(unsigned flags)
{
	unsigned sched = flags & CU_CTX_SCHED_MASK;

	return (flags & ~(unsigned)CU_CTX_FLAGS_MASK) == 0 &&
	       (sched == 0 || sched == CU_CTX_SCHED_SPIN || sched == CU_CTX_SCHED_YIELD ||
		sched == CU_CTX_SCHED_BLOCKING_SYNC);
}

/* A new, inactive context object for visible ordinal `ordinal`. */
static CUresult ctx_new_locked(int ordinal, unsigned flags, int is_primary,
			       struct gp_sim_ctx **out)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	struct gp_sim_ctx *c = calloc(1, sizeof *c);
	int dev = gp__sim_visible_index(ordinal);

	if (!c)
		return CUDA_ERROR_OUT_OF_MEMORY;
	c->dev = dev;
	c->ordinal = ordinal;
	c->flags = flags;
	c->primary = is_primary;
	c->cost = GP_SIM_CTX_BASE + GP_SIM_CTX_PER_SM * h->cfg.gpu[dev].sms;
	c->id = next_ctx_id++;
	c->cache = CU_FUNC_CACHE_PREFER_NONE;
	for (int i = 0; i < CU_LIMIT_MAX; i++)
		c->limits[i] = default_limits[i];
	c->limits[CU_LIMIT_PERSISTING_L2_CACHE_SIZE] = 0;
	gp_sim_list_init(&c->streams);
	gp_sim_list_init(&c->events);
	gp_sim_list_init(&c->modules);
	if (gp__sim_handle_add(&c->h, GP_SIM_CTX)) {
		free(c);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*out = c;
	return CUDA_SUCCESS;
}

/* Charge the context and give it its NULL stream. */
static CUresult ctx_activate_locked(struct gp_sim_ctx *c)
{
	CUresult rc;

	if (gp__sim_charge((unsigned)c->dev, c->cost))
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = gp__sim_stream_new_locked(c, GP_SIM_STREAM_LEGACY, 0, 0, &c->legacy);
	if (rc) {
		gp__sim_uncharge((unsigned)c->dev, c->cost);
		return rc;
	}
	gp__sim_count_context((unsigned)c->dev, +1);
	c->active = 1;
	c->sticky = CUDA_SUCCESS;
	return CUDA_SUCCESS;
}

/* Destroy what the context owns and give its memory back.  Its host
 * callbacks must have run. */
static void ctx_deactivate_locked(struct gp_sim_ctx *c)
{
	if (!c->active)
		return;
	gp__sim_module_ctx_gone_locked(c);
	gp__sim_array_ctx_gone_locked(c);
	gp__sim_mem_ctx_gone_locked(c);
	gp__sim_streams_ctx_gone_locked(c);
	c->legacy = NULL;
	gp__sim_uncharge((unsigned)c->dev, c->cost);
	gp__sim_count_context((unsigned)c->dev, -1);
	c->active = 0;
	c->sticky = CUDA_SUCCESS;
}

static CUresult push_locked(struct gp_sim_ctx *c)
{
	if (tls.depth == CTX_STACK_MAX)
		return CUDA_ERROR_OUT_OF_MEMORY;
	tls.stack[tls.depth++] = c;
	return CUDA_SUCCESS;
}

/* --- created contexts --------------------------------------------------- */

static CUresult ctx_create(CUcontext *pctx, unsigned flags, CUdevice dev)
{
	struct gp_sim_ctx *c = NULL;
	CUresult rc;

	GP_SIM_ENTER();
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	if (!flags_valid(flags))
		return CUDA_ERROR_INVALID_VALUE;
	if (gp__sim_visible_index(dev) < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	rc = ctx_new_locked(dev, flags, 0, &c);
	if (rc)
		goto out;
	rc = ctx_activate_locked(c);
	if (!rc)
		rc = push_locked(c);
	if (rc) {
		ctx_deactivate_locked(c);
		gp__sim_handle_del(&c->h);
		free(c);
		goto out;
	}
	*pctx = (CUcontext)c;
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	return ctx_create(pctx, flags, dev);
}

CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	return ctx_create(pctx, flags, dev);
}

CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *paramsArray, int numParams,
			unsigned int flags, CUdevice dev)
{
	if (numParams < 0 || (numParams > 0 && !paramsArray))
		return CUDA_ERROR_INVALID_VALUE;
	for (int i = 0; i < numParams; i++)
		if (paramsArray[i].type != CU_EXEC_AFFINITY_TYPE_SM_COUNT)
			return CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY;
	return ctx_create(pctx, flags, dev);
}

CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams, unsigned int flags,
			CUdevice dev)
{
	if (ctxCreateParams) {
		if (ctxCreateParams->cigParams)
			return ctxCreateParams->execAffinityParams ? CUDA_ERROR_INVALID_VALUE
								   : CUDA_ERROR_NOT_SUPPORTED;
		if (ctxCreateParams->numExecAffinityParams)
			return cuCtxCreate_v3(pctx, ctxCreateParams->execAffinityParams,
					      ctxCreateParams->numExecAffinityParams, flags, dev);
	}
	return ctx_create(pctx, flags, dev);
}

/* Remove every occurrence of c from the calling thread's stack top, as
 * cuCtxDestroy pops a context current to the caller. */
static void pop_if_top(struct gp_sim_ctx *c)
{
	while (tls.depth && tls.stack[tls.depth - 1] == c)
		tls.depth--;
}

static CUresult ctx_destroy(CUcontext ctx)
{
	struct gp_sim_ctx *c;

	GP_SIM_ENTER();
	gp__sim_lock();
	c = gp__sim_handle_get(ctx, GP_SIM_CTX);
	gp__sim_unlock();
	if (!c || c->primary)
		return CUDA_ERROR_INVALID_CONTEXT;
	/* Its host functions must run before its streams go away. */
	gp__sim_callback_wait(&c->cb_pending);
	gp__sim_lock();
	if (gp__sim_handle_get(ctx, GP_SIM_CTX) != c) {
		gp__sim_unlock();
		return CUDA_ERROR_INVALID_CONTEXT;
	}
	ctx_deactivate_locked(c);
	gp__sim_handle_del(&c->h);
	pop_if_top(c);
	gp__sim_unlock();
	free(c);
	return CUDA_SUCCESS;
}

CUresult cuCtxDestroy(CUcontext ctx)
{
	return ctx_destroy(ctx);
}

CUresult cuCtxDestroy_v2(CUcontext ctx)
{
	return ctx_destroy(ctx);
}

/* --- the current-context stack ------------------------------------------ */

static CUresult ctx_push(CUcontext ctx)
{
	struct gp_sim_ctx *c;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	c = ctx ? gp__sim_handle_get(ctx, GP_SIM_CTX) : NULL;
	rc = c ? push_locked(c) : CUDA_ERROR_INVALID_CONTEXT;
	gp__sim_unlock();
	return rc;
}

CUresult cuCtxPushCurrent(CUcontext ctx)
{
	return ctx_push(ctx);
}

CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
	return ctx_push(ctx);
}

static CUresult ctx_pop(CUcontext *pctx)
{
	GP_SIM_ENTER();
	if (!tls.depth)
		return CUDA_ERROR_INVALID_CONTEXT;
	tls.depth--;
	if (pctx)
		*pctx = (CUcontext)tls.stack[tls.depth];
	return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent(CUcontext *pctx)
{
	return ctx_pop(pctx);
}

CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
	return ctx_pop(pctx);
}

CUresult cuCtxSetCurrent(CUcontext ctx)
{
	struct gp_sim_ctx *c = NULL;

	GP_SIM_ENTER();
	if (ctx) {
		gp__sim_lock();
		c = gp__sim_handle_get(ctx, GP_SIM_CTX);
		gp__sim_unlock();
		if (!c)
			return CUDA_ERROR_INVALID_CONTEXT;
	}
	if (!c) {
		if (tls.depth)
			tls.depth--;
	} else if (tls.depth) {
		tls.stack[tls.depth - 1] = c;
	} else {
		tls.stack[tls.depth++] = c;
	}
	return CUDA_SUCCESS;
}

CUresult cuCtxGetCurrent(CUcontext *pctx)
{
	GP_SIM_ENTER();
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	*pctx = (CUcontext)tls_top();
	return CUDA_SUCCESS;
}

/* --- queries ------------------------------------------------------------ */

/* Run `body` with `c` the checked context `h` (NULL: the current one),
 * under the lock, and return the check's result. */
#define WITH_CTX(h, c, body)                                                 \
	do {                                                                     \
		struct gp_sim_ctx *c;                                                \
		CUresult rc_;                                                        \
		gp__sim_lock();                                                      \
		rc_ = gp__sim_ctx_get_locked((h), &c);                               \
		if (rc_ == CUDA_SUCCESS) {                                           \
			body;                                                            \
		}                                                                    \
		gp__sim_unlock();                                                    \
		return rc_;                                                          \
	} while (0)

CUresult cuCtxGetDevice(CUdevice *device)
{
	GP_SIM_ENTER();
	if (!device)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(NULL, c, *device = c->ordinal);
}

CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx)
{
	GP_SIM_ENTER();
	if (!device)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(ctx, c, *device = c->ordinal);
}

CUresult cuCtxGetFlags(unsigned int *flags)
{
	GP_SIM_ENTER();
	if (!flags)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(NULL, c, *flags = c->flags);
}

CUresult cuCtxSetFlags(unsigned int flags)
{
	GP_SIM_ENTER();
	if (!flags_valid(flags))
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(NULL, c, c->flags = flags);
}

CUresult cuCtxGetId(CUcontext ctx, unsigned long long *ctxId)
{
	GP_SIM_ENTER();
	if (!ctxId)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(ctx, c, *ctxId = c->id);
}

CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version)
{
	GP_SIM_ENTER();
	if (!version)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(ctx, c, (void)c; *version = 3020);
}

CUresult cuCtxGetLimit(size_t *pvalue, CUlimit limit)
{
	GP_SIM_ENTER();
	if (!pvalue)
		return CUDA_ERROR_INVALID_VALUE;
	if ((unsigned)limit >= CU_LIMIT_MAX || !default_limits[limit])
		return CUDA_ERROR_UNSUPPORTED_LIMIT;
	WITH_CTX(NULL, c, *pvalue = c->limits[limit]);
}

CUresult cuCtxSetLimit(CUlimit limit, size_t value)
{
	GP_SIM_ENTER();
	if ((unsigned)limit >= CU_LIMIT_MAX || !default_limits[limit])
		return CUDA_ERROR_UNSUPPORTED_LIMIT;
	if (limit == CU_LIMIT_MAX_L2_FETCH_GRANULARITY && value > 128)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(NULL, c, c->limits[limit] = value);
}

CUresult cuCtxGetCacheConfig(CUfunc_cache *pconfig)
{
	GP_SIM_ENTER();
	if (!pconfig)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(NULL, c, *pconfig = c->cache);
}

CUresult cuCtxSetCacheConfig(CUfunc_cache config)
{
	GP_SIM_ENTER();
	if ((unsigned)config > CU_FUNC_CACHE_PREFER_EQUAL)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(NULL, c, c->cache = config);
}

CUresult cuCtxGetStreamPriorityRange(int *leastPriority, int *greatestPriority)
{
	GP_SIM_ENTER();
	WITH_CTX(NULL, c, (void)c; if (leastPriority) *leastPriority = 0;
		 if (greatestPriority) *greatestPriority = -5);
}

CUresult cuCtxResetPersistingL2Cache(void)
{
	GP_SIM_ENTER();
	WITH_CTX(NULL, c, (void)c);
}

CUresult cuCtxGetExecAffinity(CUexecAffinityParam *pExecAffinity, CUexecAffinityType type)
{
	GP_SIM_ENTER();
	if (!pExecAffinity || type != CU_EXEC_AFFINITY_TYPE_SM_COUNT)
		return CUDA_ERROR_INVALID_VALUE;
	WITH_CTX(NULL, c, pExecAffinity->type = type;
		 pExecAffinity->param.smCount.val = gp__sim_machine()->cfg.gpu[c->dev].sms);
}

/* --- primary contexts --------------------------------------------------- */

/* The primary context object of visible ordinal `dev`, created inactive on
 * first use. */
static CUresult primary_locked(CUdevice dev, struct gp_sim_ctx **out)
{
	int idx = gp__sim_visible_index(dev);
	CUresult rc;

	if (idx < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (!primary[idx]) {
		rc = ctx_new_locked(dev, 0, 1, &primary[idx]);
		if (rc)
			return rc;
	}
	*out = primary[idx];
	return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	struct gp_sim_ctx *c;
	CUresult rc;

	GP_SIM_ENTER();
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = primary_locked(dev, &c);
	if (!rc && !c->active)
		rc = ctx_activate_locked(c);
	if (!rc) {
		c->refs++;
		*pctx = (CUcontext)c;
	}
	gp__sim_unlock();
	return rc;
}

/* Drop one reference (release) or all resources (reset). */
static CUresult primary_drop(CUdevice dev, int reset)
{
	struct gp_sim_ctx *c;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = primary_locked(dev, &c);
	if (!rc && !reset && c->refs == 0)
		rc = CUDA_ERROR_INVALID_CONTEXT;
	if (!rc && !reset && --c->refs > 0) {
		gp__sim_unlock();
		return CUDA_SUCCESS;
	}
	gp__sim_unlock();
	if (rc)
		return rc;
	gp__sim_callback_wait(&c->cb_pending);
	gp__sim_lock();
	if (reset || c->refs == 0)
		ctx_deactivate_locked(c);
	gp__sim_unlock();
	return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
	return primary_drop(dev, 0);
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
	return primary_drop(dev, 0);
}

CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
	return primary_drop(dev, 1);
}

CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
	return primary_drop(dev, 1);
}

CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
	struct gp_sim_ctx *c;
	CUresult rc;

	GP_SIM_ENTER();
	if (!flags || !active)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = primary_locked(dev, &c);
	if (!rc) {
		*flags = c->flags;
		*active = c->active;
	}
	gp__sim_unlock();
	return rc;
}

static CUresult primary_set_flags(CUdevice dev, unsigned flags, int v1)
{
	struct gp_sim_ctx *c;
	CUresult rc;

	GP_SIM_ENTER();
	if (!flags_valid(flags))
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = primary_locked(dev, &c);
	if (!rc && v1 && c->active)
		rc = CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE;
	if (!rc)
		c->flags = flags;
	gp__sim_unlock();
	return rc;
}

CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags)
{
	return primary_set_flags(dev, flags, 1);
}

CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
	return primary_set_flags(dev, flags, 0);
}
