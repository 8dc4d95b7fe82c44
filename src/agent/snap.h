/* snap.h - one consistent picture of a node: its GPUs and its tenants.
 *
 * A collection (collect.c) fills a snapshot from NVML and the region
 * files; readers (the HTTP handlers, the node-state writer, `gpupool top
 * --local`) only ever see finished snapshots, shared by reference count,
 * so a slow reader never holds up a collection and never sees half of one.
 */
#ifndef GP_AGENT_SNAP_H
#define GP_AGENT_SNAP_H

#include <stdint.h>

#include "common/nvml.h"
#include "gpupool/region.h"

#define GP_AGENT_MAX_GPUS 16
#define GP_AGENT_NAME_MAX 64   /* pod UID, container, namespace, NUL included */
#define GP_AGENT_POD_MAX 254   /* pod name (DNS subdomain), NUL included */

/* A process NVML lists on a card. */
struct gp_agent_proc {
	unsigned pid;       /* as NVML reports it (the host's PID namespace) */
	uint64_t mem;       /* bytes */
	int tenant;         /* index into snap->tenant; -1 unknown */
};

/* A physical card. */
struct gp_agent_gpu {
	unsigned index;                             /* NVML index */
	char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
	char model[NVML_DEVICE_NAME_V2_BUFFER_SIZE]; /* NVML name */
	char pci[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE]; /* bus id; "" unknown */
	int numa;                 /* NUMA node; -1 unknown */
	int answered;             /* NVML gave this collection's figures */
	int healthy;              /* 0: never offered (see why) */
	char why[160];            /* why not healthy */
	uint64_t mem_total, mem_used, mem_free; /* bytes, NVML's view */
	int util, mem_util;       /* percent busy over NVML's sample; -1 unknown */
	uint64_t xids;            /* XID events seen since the agent started */
	unsigned last_xid;        /* the latest one's code; 0 none */
	uint64_t ecc[2];          /* corrected, uncorrected (volatile); UINT64_MAX
	                             where the card does not report them */
	uint16_t link[GP_AGENT_MAX_GPUS]; /* docs/protocol.md link score to card i;
	                                     0 = SYS or unknown */
	unsigned nproc;
	struct gp_agent_proc *proc; /* owned by the snapshot */
};

/* A tenant's use of one card, from its region. */
struct gp_agent_tgpu {
	int gpu;                  /* index into snap->gpu; -1 not on this node */
	char uuid[GP_REGION_UUID_LEN];
	uint64_t limit;           /* budget, bytes; 0 = none */
	uint64_t used;            /* bytes held by its live processes */
	uint64_t peak;            /* highest use recorded */
	uint64_t refused;         /* allocations refused for the budget */
	unsigned core_limit;      /* percent; 0 = none */
	int core_policy;          /* GP_REGION_CORE_*; -1 a value this agent
	                             does not know */
	int priority;             /* GP_REGION_PRIO_*; -1 likewise */
	int metered;              /* the library meters its launches there (a
	                             compute limit or a priority other than
	                             normal, or figures already recorded) */
	uint64_t compute_ns;      /* device time its kernels used, cumulative */
	uint64_t throttled_ns;    /* time its launches were held back by its
	                             share or by priority, cumulative */
	double compute_pct;       /* compute_ns's rate since the previous
	                             collection: percent of the card; -1 unknown
	                             (not metered, first sight, region new) */
	double throttled_pct;     /* throttled_ns's, likewise; can pass 100
	                             (summed over the tenant's threads) */
	uint64_t active_ns;       /* CLOCK_MONOTONIC of its latest launch or
	                             copy, or of registration if none */
	uint64_t last_launch_ns, last_copy_ns; /* 0 = none yet */
	int util;                 /* percent: its processes' share of the card's
	                             time; -1 unknown */
};

/* A tenant: one container's region. */
struct gp_agent_tenant {
	char uid[GP_AGENT_NAME_MAX];       /* pod UID, from the path */
	char container[GP_AGENT_NAME_MAX]; /* container name, from the path */
	char ns[GP_AGENT_NAME_MAX];        /* from the pod; "" unknown */
	char pod[GP_AGENT_POD_MAX];        /* pod name; "" unknown */
	int exempt;               /* the pod opted out of the idle policy */
	uint64_t created_wall_ns; /* when the region was created */
	uint64_t region_id;       /* the region's random id: a region made
	                             again under the same name has another */
	unsigned nproc;           /* live processes */
	int *pids;                /* their PIDs as they see themselves; owned */
	unsigned ngpu;
	struct gp_agent_tgpu gpu[GP_REGION_MAX_DEVS];
};

struct gp_agent_snap {
	int refs;                 /* atomic; see gp_snap_ref */
	uint64_t mono_ns;         /* CLOCK_MONOTONIC when taken */
	uint64_t wall_ns;         /* and the wall time */
	uint64_t took_ns;         /* how long the collection took */
	char node[256];
	int nvml_ok;              /* GPUs could be listed */
	char nvml_err[160];       /* why not */
	unsigned ngpu;
	struct gp_agent_gpu gpu[GP_AGENT_MAX_GPUS];
	unsigned ntenant;
	struct gp_agent_tenant *tenant; /* owned */
	unsigned skipped;         /* region files that could not be read */
	unsigned capped;          /* regions left out for --max-tenants */
};

/* Seconds tenant t has been idle on its card g at the snapshot's time. */
double gp_snap_idle_s(const struct gp_agent_snap *s, const struct gp_agent_tgpu *g);

/* The names of a GP_REGION_CORE_* policy ("hard", "elastic", "off") and
 * a GP_REGION_PRIO_* priority ("low", "normal", "high"), as DESIGN.md's
 * tenant configuration spells them; NULL for any other value. */
const char *gp_snap_policy_name(int policy);
const char *gp_snap_priority_name(int priority);

/* Take / drop a reference; the last gp_snap_unref frees. */
struct gp_agent_snap *gp_snap_ref(struct gp_agent_snap *s);
void gp_snap_unref(struct gp_agent_snap *s);

/* A zeroed snapshot with one reference, or NULL. */
struct gp_agent_snap *gp_snap_new(void);

#endif
