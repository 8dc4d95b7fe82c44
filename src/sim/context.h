/* context.h - contexts: primary (one per device, reference counted) and
 * created ones, and the per-thread stack of current contexts.
 *
 * A context costs device memory while it is active (GP_SIM_CTX_BASE +
 * GP_SIM_CTX_PER_SM * SMs), charged to the device and the process, as the
 * real driver's context does.  Deactivating a context (destroy, last
 * primary release, primary reset) destroys what it owns: allocations,
 * arrays, modules, streams, events.
 */
#ifndef GP_SIM_CONTEXT_H
#define GP_SIM_CONTEXT_H

#include "sim/handle.h"
#include "sim/list.h"
#include "sim/sim.h"

struct gp_sim_stream;

struct gp_sim_ctx {
	struct gp_sim_obj h;
	int dev;                      /* machine index */
	int ordinal;                  /* CUdevice in this process */
	unsigned flags;               /* CU_CTX_* */
	int primary;                  /* the device's primary context */
	int active;                   /* charged and usable */
	unsigned refs;                /* primary: retain count */
	uint64_t cost;                /* bytes charged while active */
	unsigned long long id;        /* cuCtxGetId */
	size_t limits[CU_LIMIT_MAX];  /* cuCtxSetLimit values */
	CUfunc_cache cache;
	uint32_t peers;               /* devices (machine index bits) whose
	                                 contexts it has peer access to */
	CUresult sticky;              /* error left by a faulting kernel;
	                                 returned by later synchronizations */
	struct gp_sim_stream *legacy; /* the NULL stream */
	struct gp_sim_list streams;   /* every stream, legacy included */
	struct gp_sim_list events;
	struct gp_sim_list modules;
	unsigned cb_pending;          /* host functions not run yet
	                                 (guarded by callback.c's lock) */
};

/* The calling thread's current context, checked: CUDA_ERROR_INVALID_CONTEXT
 * without one, CUDA_ERROR_CONTEXT_IS_DESTROYED when it was destroyed or
 * deactivated.  Lock held. */
CUresult gp__sim_ctx_current_locked(struct gp_sim_ctx **out) GP_SIM_WUR;

/* `h` as an active context (NULL: the current one).  Lock held. */
CUresult gp__sim_ctx_get_locked(CUcontext h, struct gp_sim_ctx **out) GP_SIM_WUR;

#endif
