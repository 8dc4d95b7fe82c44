/* occupancy.c - the occupancy calculator: how many blocks of a kernel fit
 * on a multiprocessor, from the device model's per-SM limits (threads,
 * blocks, shared memory). */
#include "sim/kernel.h"

#include "sim/state.h"

/* Blocks of `block` threads using `smem` dynamic shared memory that fit
 * on one multiprocessor of the current context's device. */
static CUresult fit(CUfunction func, int block, size_t smem, int *out, int *sms, int *max_block)
{
	struct gp_sim_func *f = NULL;
	struct gp_sim_ctx *c;
	const struct gp_sim_model *m;
	CUresult rc;
	int n;

	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (!rc) {
		f = gp__sim_handle_get(func, GP_SIM_FUNCTION);
		if (!f)
			f = gp__sim_handle_get(func, GP_SIM_KERNEL);
		if (!f)
			rc = CUDA_ERROR_INVALID_HANDLE;
	}
	if (!rc && smem > (size_t)f->max_dyn_smem)
		rc = CUDA_ERROR_INVALID_VALUE;
	if (rc) {
		gp__sim_unlock();
		return rc;
	}
	m = gp__sim_model(gp__sim_machine()->cfg.gpu[c->dev].model);
	*sms = (int)gp__sim_machine()->cfg.gpu[c->dev].sms;
	*max_block = 1024;
	gp__sim_unlock();
	if (block <= 0 || block > 1024)
		return CUDA_ERROR_INVALID_VALUE;
	n = m->threads_per_sm / block;
	if (n > m->blocks_per_sm)
		n = m->blocks_per_sm;
	if (smem && (size_t)m->smem_per_sm / smem < (size_t)n)
		n = (int)((size_t)m->smem_per_sm / smem);
	*out = n;
	return CUDA_SUCCESS;
}

static CUresult active_blocks(int *numBlocks, CUfunction func, int blockSize, size_t smem,
			      unsigned flags)
{
	int sms, maxb;

	GP_SIM_ENTER();
	if (!numBlocks || (flags & ~(unsigned)CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE))
		return CUDA_ERROR_INVALID_VALUE;
	return fit(func, blockSize, smem, numBlocks, &sms, &maxb);
}

CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *numBlocks, CUfunction func,
						     int blockSize, size_t dynamicSMemSize)
{
	return active_blocks(numBlocks, func, blockSize, dynamicSMemSize, 0);
}

CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int *numBlocks, CUfunction func,
							      int blockSize,
							      size_t dynamicSMemSize,
							      unsigned int flags)
{
	return active_blocks(numBlocks, func, blockSize, dynamicSMemSize, flags);
}

/* The largest block size (a multiple of the warp) with the best occupancy
 * and the grid that fills the device with it. */
static CUresult potential(int *minGridSize, int *blockSize, CUfunction func,
			  CUoccupancyB2DSize b2d, size_t smem, int limit, unsigned flags)
{
	int best = 0, best_blocks = 0, sms = 0, maxb = 1024;
	CUresult rc;

	GP_SIM_ENTER();
	if (!minGridSize || !blockSize || limit < 0 ||
	    (flags & ~(unsigned)CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE))
		return CUDA_ERROR_INVALID_VALUE;
	if (limit == 0 || limit > maxb)
		limit = maxb;
	for (int b = limit / 32 * 32; b >= 32; b -= 32) {
		int n;
		rc = fit(func, b, b2d ? b2d(b) : smem, &n, &sms, &maxb);
		if (rc)
			return rc;
		if (n * b > best_blocks * best) {
			best = b;
			best_blocks = n;
		}
	}
	if (!best)
		return CUDA_ERROR_INVALID_VALUE;
	*blockSize = best;
	*minGridSize = best_blocks * sms;
	return CUDA_SUCCESS;
}

CUresult cuOccupancyMaxPotentialBlockSize(int *minGridSize, int *blockSize, CUfunction func,
					  CUoccupancyB2DSize blockSizeToDynamicSMemSize,
					  size_t dynamicSMemSize, int blockSizeLimit)
{
	return potential(minGridSize, blockSize, func, blockSizeToDynamicSMemSize, dynamicSMemSize,
			 blockSizeLimit, 0);
}

CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(int *minGridSize, int *blockSize,
						   CUfunction func,
						   CUoccupancyB2DSize blockSizeToDynamicSMemSize,
						   size_t dynamicSMemSize, int blockSizeLimit,
						   unsigned int flags)
{
	return potential(minGridSize, blockSize, func, blockSizeToDynamicSMemSize, dynamicSMemSize,
			 blockSizeLimit, flags);
}
