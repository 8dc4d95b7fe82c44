/* region.h - attach to a tenant's shared accounting region and charge device
 * memory to it.
 *
 * The hook keeps one gp_region per process.  Charging and uncharging are
 * lock-free (a compare-and-swap on the device's figure, then an atomic add
 * to the process's own), so no other process, not even a stopped one, can
 * make them wait; nothing here calls the driver.  The one cross-process
 * lock (src/common/llock.h) is taken to register a GPU in the region.  A
 * process that dies, SIGKILL included, is noticed through its lease and its
 * charges are reclaimed by the next process that looks (gp_region_sweep),
 * with no daemon involved.
 */
#ifndef GP_REGION_REGION_H
#define GP_REGION_REGION_H

#include <pthread.h>
#include <stdint.h>

#include "common/shm.h"
#include "gpupool/region.h"

#define GP_WUR __attribute__((warn_unused_result))

struct gp_region {
	struct gp_shm shm;           /* the mapped file */
	struct gp_region_hdr *hdr;   /* == shm.base */
	int slot;                    /* our proc[] index; -1 until attached */
	uint32_t me;                 /* our identity as holder of the lock */
	int locked;                  /* a thread of ours holds it: the word
	                                naming `me` is trusted only then */
	pthread_mutex_t attach_lock; /* one attach at a time in this process */
	pthread_mutex_t sweep_lock;  /* one reclaim pass at a time in this
	                                process (leases of one open file
	                                description do not exclude each other) */
};

#define GP_REGION_INIT                                                       \
	{ .shm = GP_SHM_CLOSED, .hdr = NULL, .slot = -1, .me = 0, .locked = 0,   \
	  .attach_lock = PTHREAD_MUTEX_INITIALIZER,                              \
	  .sweep_lock = PTHREAD_MUTEX_INITIALIZER }

/* Map the region at `path`, creating it if needed (NULL: a private region
 * shared only with forked children).  Returns 0, -EPROTO for a file that is
 * not a region of this version, or another negative errno. */
int gp_region_open(struct gp_region *r, const char *path) GP_WUR;

/* Take a proc slot for this process, reclaiming dead processes on the way.
 * Every function below that writes the region attaches first if needed,
 * so calling this is only a way to attach early.  Returns 0 or -ENOSPC
 * when GP_REGION_MAX_PROCS live processes hold one. */
int gp_region_attach(struct gp_region *r) GP_WUR;

/* Find the entry of the GPU `uuid`, creating it with `limit` (0 = none) and
 * `physical` bytes if this is the first process to use that GPU.  Returns
 * its index >= 0, -EEXIST when the region records another limit for it
 * (two processes of one tenant disagree about its budget), or -ENOSPC. */
int gp_region_device(struct gp_region *r, const char *uuid, uint64_t limit,
		     uint64_t physical) GP_WUR;

/* The entry of GPU `uuid` if some process registered it, else -1.  Takes
 * no lock: for readers that must not create entries (NVML-only tools). */
int gp_region_find(struct gp_region *r, const char *uuid);

/* Charge `bytes` on device `dev` to this process if the budget allows.
 * Returns 0, or -ENOMEM when the charge would exceed the limit (after one
 * reclaim pass of dead processes).  Never over-admits: the admission is one
 * compare-and-swap, so concurrent charges from any threads and processes
 * are serialised without a lock.  With `force` the charge
 * is made past the limit: for memory the driver has already handed out,
 * which must be counted whatever the budget says. */
int gp_region_charge(struct gp_region *r, unsigned dev, uint64_t bytes, int force) GP_WUR;

/* Return `bytes` charged earlier on `dev` by this process. */
void gp_region_uncharge(struct gp_region *r, unsigned dev, uint64_t bytes);

/* The device's limit (0 = none) and bytes charged by the whole tenant. */
void gp_region_usage(struct gp_region *r, unsigned dev, uint64_t *limit,
		     uint64_t *used);

/* Reclaim the charges of dead processes.  When `min_interval_ns` is not 0,
 * skip the pass if any process of the tenant swept more recently.  Returns
 * the number of processes reclaimed. */
int gp_region_sweep(struct gp_region *r, uint64_t min_interval_ns);

/* In a forked child: drop the parent's slot and lease (the child holds
 * nothing yet) so the child can attach on its own.  Async-signal-safe.
 * Returns 0 or a negative errno. */
int gp_region_forked(struct gp_region *r) GP_WUR;

/* Is `pid` (as seen from this process) the owner of an active slot, and how
 * much does it hold on `dev`?  Returns 1 and sets *used, or 0. */
int gp_region_proc_used(struct gp_region *r, int pid, unsigned dev, uint64_t *used);

#endif
