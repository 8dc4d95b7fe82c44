/* kernel.h - modules, libraries, functions and what a launch runs.
 *
 * Any module image loads.  Two kernels exist, recognised by name:
 *   spin_<N>us            occupies the whole device for N microseconds;
 *   fill_u32(ptr, value, count)
 *                         writes `count` 32-bit words at the rate
 *                         GP_SIM_FILL_BYTES_PER_NS (params: CUdeviceptr,
 *                         unsigned int, size_t).
 * Every other name is CUDA_ERROR_NOT_FOUND.  A launch is validated and
 * parsed into a struct gp_sim_launch, which a stream runs at once or a
 * graph keeps as a kernel node.
 */
#ifndef GP_SIM_KERNEL_H
#define GP_SIM_KERNEL_H

#include "sim/context.h"

struct gp_sim_stream;
struct gp_sim_module;
struct gp_sim_library;

enum gp_sim_fn_kind {
	GP_SIM_FN_SPIN = 1,
	GP_SIM_FN_FILL,
};

#define GP_SIM_FN_NAME_MAX 128

/* A CUfunction (kind GP_SIM_FUNCTION) or a CUkernel (GP_SIM_KERNEL). */
struct gp_sim_func {
	struct gp_sim_obj h;
	struct gp_sim_list link;        /* in its module's or library's list */
	struct gp_sim_module *mod;      /* CUfunction of a module */
	struct gp_sim_library *lib;     /* CUkernel of a library */
	struct gp_sim_func *fn;         /* CUkernel: its CUfunction, lazily */
	struct gp_sim_func *kern;       /* CUfunction of a CUkernel */
	enum gp_sim_fn_kind kind;
	uint64_t spin_us;               /* spin_<N>us: N */
	char name[GP_SIM_FN_NAME_MAX];
	int max_dyn_smem;               /* MAX_DYNAMIC_SHARED_SIZE_BYTES */
	int carveout;
	CUfunc_cache cache;
};

struct gp_sim_module {
	struct gp_sim_obj h;
	struct gp_sim_ctx *ctx;
	struct gp_sim_list link;        /* in ctx->modules */
	struct gp_sim_list funcs;
};

struct gp_sim_library {
	struct gp_sim_obj h;
	struct gp_sim_list kernels;
};

/* One launch, validated and with its arguments copied. */
struct gp_sim_launch {
	struct gp_sim_func *fn;         /* the CUfunction (never a CUkernel) */
	unsigned grid[3], block[3];
	unsigned smem;
	int cooperative;
	uint64_t ptr;                   /* fill_u32 arguments */
	uint32_t value;
	uint64_t count;
};

/* Validate a launch of `f` (a CUfunction or a CUkernel) and parse its
 * arguments (kernelParams or the `extra` buffer form).  Lock held. */
CUresult gp__sim_launch_prepare_locked(CUfunction f, const unsigned grid[3],
				       const unsigned block[3], unsigned smem, void **params,
				       void **extra, int cooperative, struct gp_sim_launch *out) GP_SIM_WUR;

/* Run `l` on stream s: its bytes now, its time on the device timeline.
 * A fill outside valid memory faults the context (a sticky
 * CUDA_ERROR_ILLEGAL_ADDRESS, as on the real device).  Lock held. */
CUresult gp__sim_launch_run_locked(struct gp_sim_stream *s,
				   const struct gp_sim_launch *l) GP_SIM_WUR;

/* The CUfunction of CUkernel k, created on first use.  Lock held. */
CUresult gp__sim_kernel_function_locked(struct gp_sim_func *k, struct gp_sim_func **out) GP_SIM_WUR;

/* Unload every module of `ctx`.  Lock held. */
void gp__sim_module_ctx_gone_locked(struct gp_sim_ctx *ctx);

#endif
