/* metrics.h - a snapshot in Prometheus' text format (0.0.4).
 *
 * Physical cards (gpupool_gpu_*), the processes on them
 * (gpupool_process_*), virtual cards: each tenant's use of each card
 * (gpupool_tenant_*), and the agent itself (gpupool_agent_*).  Base units
 * (bytes, seconds, ratios 0-1), counters end in _total, HELP and TYPE
 * for every family; a figure the card does not report is left out, never
 * written as 0.  docs/agent.md lists them with their HAMi equivalents.
 */
#ifndef GP_AGENT_METRICS_H
#define GP_AGENT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "agent/snap.h"

/* The agent's own counters, rendered with the snapshot. */
struct gp_agent_counters {
	uint64_t collections, collect_errors;   /* collections done / failed */
	uint64_t state_writes, state_errors;    /* node-state patches */
	uint64_t gc_removed;                    /* tenant directories collected */
	uint64_t idle_marked, idle_evicted, idle_exec; /* idle actions taken */
	double idle_after_s;                    /* the policy's threshold; 0 off */
};

/* Render s (and c) into a new text.  Returns 0 with *out (free it) and
 * *len, or -ENOMEM. */
int gp_agent_metrics(const struct gp_agent_snap *s, const struct gp_agent_counters *c,
		     char **out, size_t *len) __attribute__((warn_unused_result));

#endif
