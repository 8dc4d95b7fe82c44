/* handle.h - checking the handles programs pass in.
 *
 * Every object the simulator hands out (CUcontext, CUstream, CUevent,
 * CUmodule, ... and the integer VMM allocation handles) starts with a
 * struct gp_sim_obj and is entered in a process-wide registry.  A handle
 * is used only after the registry confirms it is live and of the expected
 * kind, so a stale, foreign or garbage handle gets CUDA_ERROR_INVALID_HANDLE
 * (or the call's documented code) instead of a crash.  All functions here
 * run under the process lock.
 */
#ifndef GP_SIM_HANDLE_H
#define GP_SIM_HANDLE_H

#include <stdint.h>

enum gp_sim_kind {
	GP_SIM_CTX = 1,
	GP_SIM_STREAM,
	GP_SIM_EVENT,
	GP_SIM_MODULE,
	GP_SIM_FUNCTION,
	GP_SIM_LIBRARY,
	GP_SIM_KERNEL,
	GP_SIM_POOL,
	GP_SIM_ARRAY,
	GP_SIM_MIPMAP,
	GP_SIM_GRAPH,
	GP_SIM_NODE,
	GP_SIM_EXEC,
	GP_SIM_VMM,
};

/* First member of every handle object. */
struct gp_sim_obj {
	uint32_t magic;   /* GP_SIM_MAGIC(kind) while live, 0 once destroyed */
	uint32_t kind;    /* enum gp_sim_kind */
};

#define GP_SIM_MAGIC(kind) (0x47500000u | (uint32_t)(kind))

/* Register `obj` as a live handle of `kind` (sets its header).  Returns 0
 * or -ENOMEM. */
int gp__sim_handle_add(struct gp_sim_obj *obj, enum gp_sim_kind kind)
	__attribute__((warn_unused_result));

/* Unregister `obj` and clear its magic; the caller then frees it. */
void gp__sim_handle_del(struct gp_sim_obj *obj);

/* The object behind handle `h` if it is a live handle of `kind`, else
 * NULL.  Never dereferences `h` before the registry vouches for it. */
void *gp__sim_handle_get(const void *h, enum gp_sim_kind kind);

#endif
