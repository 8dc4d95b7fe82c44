/* launch.c - kernel launches: validation, argument parsing and running a
 * launch on a stream (eagerly, timed on the device timeline).  Entry
 * points: cuLaunchKernel, cuLaunchKernelEx, cuLaunchCooperativeKernel and
 * their per-thread-stream variants. */
#include "sim/kernel.h"

#include <string.h>

#include "sim/capture.h"
#include "sim/graph.h"
#include "sim/memory.h"
#include "sim/state.h"
#include "sim/stream.h"
#include "sim/timeline.h"

/* Offsets of fill_u32's parameters in the `extra` buffer form (natural
 * alignment of CUdeviceptr, unsigned int, size_t). */
#define FILL_OFF_PTR 0
#define FILL_OFF_VALUE 8
#define FILL_OFF_COUNT 16
#define FILL_ARGS_SIZE 24

static CUresult parse_extra(void **extra, struct gp_sim_launch *l)
{
	const char *buf = NULL;
	size_t size = 0;
	int have_size = 0;

	for (int i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
		if (i > 64)
			return CUDA_ERROR_INVALID_VALUE; /* unterminated */
		if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER)
			buf = extra[i + 1];
		else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[i + 1]) {
			size = *(size_t *)extra[i + 1];
			have_size = 1;
		} else
			return CUDA_ERROR_INVALID_VALUE;
	}
	if (!buf || !have_size || size < FILL_ARGS_SIZE)
		return CUDA_ERROR_INVALID_VALUE;
	memcpy(&l->ptr, buf + FILL_OFF_PTR, sizeof l->ptr);
	memcpy(&l->value, buf + FILL_OFF_VALUE, sizeof l->value);
	memcpy(&l->count, buf + FILL_OFF_COUNT, sizeof l->count);
	return CUDA_SUCCESS;
}

CUresult gp__sim_launch_prepare_locked(CUfunction f, const unsigned grid[3],
				       const unsigned block[3], unsigned smem, void **params,
				       void **extra, int cooperative, struct gp_sim_launch *out)
{
	struct gp_sim_func *fn = gp__sim_handle_get(f, GP_SIM_FUNCTION), *k;
	uint64_t threads;

	memset(out, 0, sizeof *out);
	if (!fn) {
		/* CUDA 12: a CUkernel may be launched as a CUfunction. */
		k = gp__sim_handle_get(f, GP_SIM_KERNEL);
		if (!k)
			return CUDA_ERROR_INVALID_HANDLE;
		if (gp__sim_kernel_function_locked(k, &fn))
			return CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (!grid[0] || !grid[1] || !grid[2] || !block[0] || !block[1] || !block[2])
		return CUDA_ERROR_INVALID_VALUE;
	if (grid[0] > 0x7fffffffu || grid[1] > 65535 || grid[2] > 65535)
		return CUDA_ERROR_INVALID_VALUE;
	if (block[0] > 1024 || block[1] > 1024 || block[2] > 64)
		return CUDA_ERROR_INVALID_VALUE;
	threads = (uint64_t)block[0] * block[1] * block[2];
	if (threads > 1024)
		return CUDA_ERROR_INVALID_VALUE;
	if (smem > (unsigned)fn->max_dyn_smem)
		return CUDA_ERROR_INVALID_VALUE;
	if (params && extra)
		return CUDA_ERROR_INVALID_VALUE;
	out->fn = fn;
	memcpy(out->grid, grid, sizeof out->grid);
	memcpy(out->block, block, sizeof out->block);
	out->smem = smem;
	out->cooperative = cooperative;
	if (fn->kind == GP_SIM_FN_FILL) {
		if (params) {
			if (!params[0] || !params[1] || !params[2])
				return CUDA_ERROR_INVALID_VALUE;
			memcpy(&out->ptr, params[0], sizeof out->ptr);
			memcpy(&out->value, params[1], sizeof out->value);
			memcpy(&out->count, params[2], sizeof out->count);
		} else if (extra) {
			return parse_extra(extra, out);
		} else {
			return CUDA_ERROR_INVALID_VALUE;
		}
	}
	return CUDA_SUCCESS;
}

/* Can all blocks of a cooperative launch be resident at once on device
 * `dev` (machine index)? */
static int cooperative_fits(const struct gp_sim_launch *l, int dev)
{
	const struct gp_sim_gpu *g = &gp__sim_machine()->cfg.gpu[dev];
	const struct gp_sim_model *md = gp__sim_model(g->model);
	uint64_t threads = (uint64_t)l->block[0] * l->block[1] * l->block[2];
	uint64_t per_sm = (uint64_t)md->threads_per_sm / threads;
	uint64_t blocks = (uint64_t)l->grid[0] * l->grid[1] * l->grid[2];

	if (per_sm > (uint64_t)md->blocks_per_sm)
		per_sm = (uint64_t)md->blocks_per_sm;
	return blocks <= per_sm * g->sms;
}

/* Write fill_u32's words.  Returns CUDA_SUCCESS, or the fault the kernel
 * takes on the device. */
static CUresult fill_locked(const struct gp_sim_launch *l)
{
	uint64_t a = l->ptr, left;

	if (l->count > UINT64_MAX / 4)
		return CUDA_ERROR_ILLEGAL_ADDRESS;
	if (a % 4)
		return CUDA_ERROR_MISALIGNED_ADDRESS;
	left = l->count * 4;
	while (left) {
		void *host;
		int dev;
		size_t n = gp__sim_resolve_locked(a, (size_t)left, &host, &dev);
		if (n < 4)
			return CUDA_ERROR_ILLEGAL_ADDRESS;
		n &= ~(size_t)3;
		uint32_t *w = host;
		for (size_t i = 0; i < n / 4; i++)
			w[i] = l->value;
		a += n;
		left -= n;
	}
	return CUDA_SUCCESS;
}

CUresult gp__sim_launch_run_locked(struct gp_sim_stream *s, const struct gp_sim_launch *l)
{
	struct gp_sim_ctx *c = s->ctx;
	uint64_t dur, end;
	uint32_t kind;

	if (c->sticky)
		return c->sticky;
	if (!gp__sim_handle_get(l->fn, GP_SIM_FUNCTION))
		return CUDA_ERROR_INVALID_HANDLE; /* unloaded since capture */
	if (l->fn->kind == GP_SIM_FN_SPIN) {
		dur = l->fn->spin_us * 1000;
		kind = GP_SIM_BUSY_SM;
	} else {
		CUresult fault = fill_locked(l);
		if (fault) {
			/* The launch itself succeeds; the fault shows up at the
			 * next synchronization and sticks to the context. */
			c->sticky = fault;
			return CUDA_SUCCESS;
		}
		dur = l->count * 4 / GP_SIM_FILL_BYTES_PER_NS;
		if (dur < 1000)
			dur = 1000; /* no kernel is shorter than a microsecond */
		kind = GP_SIM_BUSY_MEM;
	}
	end = gp__sim_timeline_run((unsigned)c->dev, gp__sim_stream_ready_locked(s), dur, kind,
				   NULL);
	gp__sim_stream_done_locked(s, end);
	return CUDA_SUCCESS;
}

/* Launch on hStream, or record a kernel node when it is capturing. */
static CUresult launch(CUfunction f, const unsigned grid[3], const unsigned block[3],
		       unsigned smem, CUstream hStream, void **params, void **extra,
		       int cooperative, int ptds)
{
	struct gp_sim_launch l;
	struct gp_sim_stream *s;
	struct gp_sim_node *n;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = gp__sim_launch_prepare_locked(f, grid, block, smem, params, extra, cooperative, &l);
	if (!rc)
		rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (rc)
		goto out;
	if (l.fn->mod && l.fn->mod->ctx != s->ctx) {
		rc = CUDA_ERROR_INVALID_HANDLE; /* function of another context */
		goto out;
	}
	if (cooperative && !cooperative_fits(&l, s->ctx->dev)) {
		rc = CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE;
		goto out;
	}
	if (s->cap) {
		rc = gp__sim_capture_node_locked(s, CU_GRAPH_NODE_TYPE_KERNEL, &n);
		if (!rc)
			n->u.kernel = l;
		goto out;
	}
	rc = gp__sim_capture_legacy_check_locked(s);
	if (!rc)
		rc = gp__sim_launch_run_locked(s, &l);
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
			unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
			unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
			void **kernelParams, void **extra)
{
	const unsigned g[3] = {gridDimX, gridDimY, gridDimZ};
	const unsigned b[3] = {blockDimX, blockDimY, blockDimZ};

	return launch(f, g, b, sharedMemBytes, hStream, kernelParams, extra, 0, 0);
}

CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
			     unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
			     unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
			     void **kernelParams, void **extra)
{
	const unsigned g[3] = {gridDimX, gridDimY, gridDimZ};
	const unsigned b[3] = {blockDimX, blockDimY, blockDimZ};

	return launch(f, g, b, sharedMemBytes, hStream, kernelParams, extra, 0, 1);
}

CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
				   unsigned int gridDimZ, unsigned int blockDimX,
				   unsigned int blockDimY, unsigned int blockDimZ,
				   unsigned int sharedMemBytes, CUstream hStream,
				   void **kernelParams)
{
	const unsigned g[3] = {gridDimX, gridDimY, gridDimZ};
	const unsigned b[3] = {blockDimX, blockDimY, blockDimZ};

	return launch(f, g, b, sharedMemBytes, hStream, kernelParams, NULL, 1, 0);
}

CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gridDimX,
					unsigned int gridDimY, unsigned int gridDimZ,
					unsigned int blockDimX, unsigned int blockDimY,
					unsigned int blockDimZ, unsigned int sharedMemBytes,
					CUstream hStream, void **kernelParams)
{
	const unsigned g[3] = {gridDimX, gridDimY, gridDimZ};
	const unsigned b[3] = {blockDimX, blockDimY, blockDimZ};

	return launch(f, g, b, sharedMemBytes, hStream, kernelParams, NULL, 1, 1);
}

static CUresult launch_ex(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
			  void **extra, int ptds)
{
	int cooperative = 0;

	GP_SIM_ENTER();
	if (!config || (config->numAttrs && !config->attrs))
		return CUDA_ERROR_INVALID_VALUE;
	for (unsigned i = 0; i < config->numAttrs; i++) {
		const CUlaunchAttribute *a = &config->attrs[i];
		if ((unsigned)a->id >= CU_LAUNCH_ATTRIBUTE_MAX)
			return CUDA_ERROR_INVALID_VALUE;
		if (a->id == CU_LAUNCH_ATTRIBUTE_COOPERATIVE)
			cooperative = a->value.cooperative != 0;
		if (a->id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION &&
		    (!a->value.clusterDim.x || !a->value.clusterDim.y || !a->value.clusterDim.z ||
		     config->gridDimX % a->value.clusterDim.x ||
		     config->gridDimY % a->value.clusterDim.y ||
		     config->gridDimZ % a->value.clusterDim.z))
			return CUDA_ERROR_INVALID_CLUSTER_SIZE;
	}
	const unsigned g[3] = {config->gridDimX, config->gridDimY, config->gridDimZ};
	const unsigned b[3] = {config->blockDimX, config->blockDimY, config->blockDimZ};
	return launch(f, g, b, config->sharedMemBytes, config->hStream, kernelParams, extra,
		      cooperative, ptds);
}

CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
			  void **extra)
{
	return launch_ex(config, f, kernelParams, extra, 0);
}

CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
			       void **extra)
{
	return launch_ex(config, f, kernelParams, extra, 1);
}
