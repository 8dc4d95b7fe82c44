/* graphmem.h - graph memory: what memory allocation nodes allocate.
 *
 * Each allocation node owns a block with an address fixed when the node is
 * made (as the real driver fixes it).  The device's graph memory is
 * RESERVED (charged) per device when a graph with allocation nodes is
 * uploaded or launched, in GP_SIM_GRANULE steps, and stays reserved after
 * the allocations are freed until cuDeviceGraphMemTrim.  A block is live
 * (backed, usable) from the launch that allocates it until a free node,
 * cuMemFree or cuMemFreeAsync frees it.
 */
#ifndef GP_SIM_GRAPHMEM_H
#define GP_SIM_GRAPHMEM_H

#include "sim/memory.h"

struct gp_sim_gblock {
	struct gp_sim_mem *mem;   /* address map entry; backed while live */
	int dev;                  /* machine index */
	uint64_t cost;            /* bytes of graph memory in use while live */
	int live;
	unsigned refs;            /* nodes and executable graphs holding it,
	                             plus one while live */
};

/* A block of `size` bytes on device `dev` for a new allocation node (one
 * reference).  Lock held. */
CUresult gp__sim_gblock_new_locked(int dev, uint64_t size,
				   struct gp_sim_gblock **out) GP_SIM_WUR;

/* Take / drop a reference; the last drop frees the block. */
void gp__sim_gblock_get(struct gp_sim_gblock *b);
void gp__sim_gblock_put_locked(struct gp_sim_gblock *b);

/* Make sure device `dev` has graph memory reserved for `bytes` more in
 * use (charging it).  CUDA_ERROR_OUT_OF_MEMORY if the device is full. */
CUresult gp__sim_graphmem_reserve_locked(int dev, uint64_t bytes) GP_SIM_WUR;

/* Allocate block b (a launch reaching its node); reserves as needed. */
CUresult gp__sim_graphmem_alloc_locked(struct gp_sim_gblock *b) GP_SIM_WUR;

/* Free the graph allocation whose map entry is m (free node, cuMemFree).
 * CUDA_ERROR_INVALID_VALUE when it is not live. */
CUresult gp__sim_graphmem_free_locked(struct gp_sim_mem *m) GP_SIM_WUR;

#endif
