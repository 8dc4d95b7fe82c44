/* collect.h - take one snapshot of the node (snap.h).
 *
 * GPUs from gpus.h, tenants from tenants.h, then the joins: which NVML
 * process belongs to which tenant, each tenant's share of its cards'
 * time, each tenant's pod name; and against the previous snapshot, the
 * rates of the tenants' compute counters.  Used by the agent's collector thread and
 * by `gpupool top --local`, which has no agent to ask.
 */
#ifndef GP_AGENT_COLLECT_H
#define GP_AGENT_COLLECT_H

#include <stddef.h>

#include "agent/gpus.h"
#include "agent/snap.h"
#include "agent/tenants.h"

/* Names a tenant's pod: fills ns and pod (and *exempt: the pod opted out
 * of the idle policy) and returns 1, or returns 0 when the pod is unknown. */
typedef int (*gp_pod_lookup)(void *arg, const char *uid, char ns[GP_AGENT_NAME_MAX],
			     char pod[GP_AGENT_POD_MAX], int *exempt);

struct gp_collect {
	const char *state_dir;
	const char *node;         /* the node's name, copied into snapshots */
	unsigned max_tenants;
	struct gp_gpus *gpus;     /* NULL: NVML is not there (nvml_err says why) */
	const char *nvml_err;
	gp_pod_lookup pod;        /* NULL: pods unknown */
	void *pod_arg;
	const char *proc_root;    /* "/proc", or another for tests */
	struct gp_tenants *tenants; /* the tree as last walked: made by the
	                               first gp_collect, freed by
	                               gp_collect_done */
	struct gp_agent_snap *prev; /* a reference to the last snapshot
	                               taken, which rates are figured
	                               against; dropped by gp_collect_done */
};

/* Take a snapshot into *out (one reference, caller's) and the tenant
 * directories nothing holds into *stale (caller frees).  Returns 0 or a
 * negative errno (-ENOMEM; the state directory unreadable). */
int gp_collect(struct gp_collect *c, struct gp_agent_snap **out,
	       struct gp_tenant_stale **stale, size_t *nstale) __attribute__((warn_unused_result));

/* Free what collections kept (c itself is the caller's). */
void gp_collect_done(struct gp_collect *c);

#endif
