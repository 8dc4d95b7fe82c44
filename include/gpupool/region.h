/* gpupool/region.h - the layout of a tenant's shared accounting region.
 *
 * One region file per tenant (container); its path is GPUPOOL_REGION.  Every
 * process of the tenant maps it and charges the device memory it takes to
 * it, so the processes share one budget per device.  The node agent and
 * `gpupool top` read it.  This layout is an ABI between those programs:
 * change it only together with GP_REGION_VERSION.
 *
 * Concurrency: `used` figures (a device's, and each process's share of it)
 * change by atomic operations only: a charge raises the device's figure by a
 * compare-and-swap against `limit`, then its process's; an uncharge lowers
 * the process's, then the device's.  So a device's `used` is always at least
 * the sum of its processes' (more only by charges in flight, or left by a
 * process that died between the two steps).  `lock` (src/common/llock.h: a
 * futex word naming its holder by lease slot and generation) guards the
 * registration of devices only.  A process holds the lease (an OFD lock, see
 * src/common/lease.h) on byte GP_LEASE_BASE + i of the file while it owns
 * proc[i]; a proc slot marked active whose lease nobody holds belongs to a
 * dead process and is reclaimed by whoever notices first.
 *
 * Activity: any process of the tenant stamps a device's `last_launch_ns` or
 * `last_copy_ns` with a relaxed store of CLOCK_MONOTONIC_COARSE when it
 * launches or copies there and the stamp is older than about 10 ms (so the
 * line is written at most ~100 times a second, whatever the call rate).
 * Two racing writers may leave the older of their two readings: a stamp
 * can lag the truth by the 10 ms, a clock tick and such a race, never more.
 * Readers that must not be stopped by a truncated file (the node agent)
 * copy the file with pread instead of mapping it (src/region/read.h).
 *
 * All integers are in host byte order; the file never leaves the node.
 */
#ifndef GPUPOOL_REGION_H
#define GPUPOOL_REGION_H

#include <stdint.h>

#define GP_REGION_MAGIC 0x526c6f6f70757067ULL /* "gpupoolR" in memory */
#define GP_REGION_VERSION 3u
#define GP_REGION_MAX_DEVS 16u   /* distinct GPUs one tenant can use */
#define GP_REGION_MAX_PROCS 1024u /* processes of a tenant using CUDA at once */
#define GP_REGION_UUID_LEN 48u   /* "GPU-" + 36 chars + NUL, padded */

/* One GPU the tenant uses, identified by UUID so that processes with
 * different CUDA_VISIBLE_DEVICES orderings agree on it. */
struct gp_region_dev {
	char uuid[GP_REGION_UUID_LEN]; /* NUL-terminated; "" = unused entry */
	uint64_t limit;      /* budget in bytes; 0 = no budget (the card's size) */
	uint64_t physical;   /* the card's memory in bytes */
	uint64_t used;       /* bytes charged by live and not yet reclaimed
	                        processes: the sum of proc[*].used[this] */
	uint64_t peak;       /* highest `used` seen */
	uint64_t refused;    /* allocations refused for the budget */
	uint32_t core_limit; /* compute share in percent; 0 = none */
	uint8_t core_policy; /* GP_REGION_CORE_* */
	uint8_t priority;    /* GP_REGION_PRIO_* */
	uint16_t pad0;
	uint64_t registered_ns;  /* CLOCK_MONOTONIC when the first process registered the GPU */
	uint64_t last_launch_ns; /* CLOCK_MONOTONIC (coarse, a few ms) of the tenant's latest kernel launch on it; 0 = none yet */
	uint64_t last_copy_ns;   /* the same for copies and memsets */
	/* Compute (version 3).  Kept for tenants with a compute limit or a
	 * priority other than normal (others' launches are not metered). */
	uint64_t compute_ns;   /* device time its kernels and graphs used, ns:
	                          each launch's duration as measured with
	                          events (sampled; estimated in between) */
	uint64_t throttled_ns; /* time its launches were held back by the
	                          share or by priority, summed over threads */
	uint64_t pace_ns;      /* the share's pacing clock, shared by the
	                          tenant's processes: CLOCK_MONOTONIC before
	                          which the next launch must wait (GCRA's
	                          theoretical arrival time, minus the burst) */
	uint64_t spare[1];   /* zero; for later versions */
};

/* core_policy and priority values (DESIGN.md, "Tenant configuration").
 * Zero is each one's default, so an entry nobody set reads as it. */
enum { GP_REGION_CORE_ELASTIC = 0, GP_REGION_CORE_HARD = 1, GP_REGION_CORE_OFF = 2 };
enum { GP_REGION_PRIO_NORMAL = 0, GP_REGION_PRIO_LOW = 1, GP_REGION_PRIO_HIGH = 2 };

enum gp_region_proc_state {
	GP_PROC_FREE = 0,   /* slot unused */
	GP_PROC_ACTIVE = 1, /* owned by a process holding the slot's lease, or
	                       by a dead one awaiting reclaim */
};

/* One process of the tenant. */
struct gp_region_proc {
	uint32_t state;        /* enum gp_region_proc_state */
	int32_t pid;           /* as the process sees itself (its PID namespace) */
	uint32_t gen;          /* bumped by each process that takes the slot's
	                          lease to own it; with the slot it names the
	                          holder of `lock` */
	uint32_t pad0;
	uint64_t attached_ns;  /* CLOCK_MONOTONIC when it attached */
	uint64_t used[GP_REGION_MAX_DEVS]; /* bytes it holds, per dev[] entry */
	uint64_t spare[2];
};

struct gp_region_hdr {
	uint64_t magic;        /* GP_REGION_MAGIC; written last at creation */
	uint32_t version;      /* GP_REGION_VERSION */
	uint32_t size;         /* sizeof(struct gp_region_hdr) */
	uint32_t max_devs;     /* GP_REGION_MAX_DEVS */
	uint32_t max_procs;    /* GP_REGION_MAX_PROCS */
	uint64_t created_ns;   /* CLOCK_REALTIME at creation */
	uint64_t id;           /* random at creation: names the tenant in the
	                          node file (include/gpupool/node.h) */
	uint64_t last_sweep_ns; /* CLOCK_MONOTONIC of the last reclaim pass */
	union {
		uint32_t word;     /* the llock word (0 = free) */
		uint8_t pad[64];   /* its own cache line */
	} lock;
	uint32_t ndevs;        /* dev[] entries in use */
	uint32_t pad0;
	struct gp_region_dev dev[GP_REGION_MAX_DEVS];
	struct gp_region_proc proc[GP_REGION_MAX_PROCS];
};

#endif
