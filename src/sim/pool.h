/* pool.h - the stream-ordered allocator: memory pools.
 *
 * A pool charges the device for what it has RESERVED, not for what is in
 * use: reserved grows in GP_SIM_GRANULE steps when the bytes in use
 * (allocations rounded to GP_SIM_POOL_ALIGN) exceed it, and freed memory
 * stays reserved until a synchronization point (stream, event or context
 * synchronize) trims the pool down to max(release threshold, used), or
 * cuMemPoolTrimTo does.  CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT is exactly
 * what the pool has charged.
 */
#ifndef GP_SIM_POOL_H
#define GP_SIM_POOL_H

#include "sim/memory.h"

#define GP_SIM_POOL_ALIGN 512u   /* rounding of each allocation's use */

struct gp_sim_pool {
	struct gp_sim_obj h;
	struct gp_sim_list link;  /* all pools of the process */
	int dev;                  /* machine index */
	int is_default;           /* the device's default pool */
	int destroyed;            /* destroyed with allocations outstanding */
	CUmemPoolProps props;
	uint64_t reserved, reserved_high;
	uint64_t used, used_high;
	uint64_t threshold;       /* CU_MEMPOOL_ATTR_RELEASE_THRESHOLD */
	int reuse[3];             /* CU_MEMPOOL_ATTR_REUSE_* (1..3) */
	unsigned live;            /* allocations not yet freed */
	CUmemAccess_flags peer_access[GP_SIM_GPUS_MAX];
};

/* The pool cuMemAllocAsync uses on device `dev` (machine index): the one
 * set with cuDeviceSetMemPool, else the default pool.  Lock held. */
CUresult gp__sim_pool_current_locked(int dev, struct gp_sim_pool **out) GP_SIM_WUR;

/* Allocate `size` bytes from pool p.  OUT_OF_MEMORY when the pool cannot
 * grow.  Lock held. */
CUresult gp__sim_pool_alloc_locked(struct gp_sim_pool *p, uint64_t size,
				   struct gp_sim_mem **out) GP_SIM_WUR;

/* Give a pool allocation back to its pool (it stays reserved). */
void gp__sim_pool_free_locked(struct gp_sim_mem *m);

/* A synchronization point on device `dev`: trim every pool there down to
 * max(release threshold, used).  Lock held. */
void gp__sim_pools_trim_locked(int dev);

#endif
