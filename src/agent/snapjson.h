/* snapjson.h - a snapshot as the JSON of /v1/gpus and /v1/tenants.
 *
 * The agent serves these documents and `gpupool top` reads them (built
 * here for --local), so the format lives in one place; docs/agent.md
 * lists the fields.  Memory in bytes, times in seconds, utilization in
 * percent; an unknown figure is null, never 0.
 */
#ifndef GP_AGENT_SNAPJSON_H
#define GP_AGENT_SNAPJSON_H

#include <jansson.h>

#include "agent/snap.h"

/* {"node", "updated", "nvml", "gpus": [...]}; NULL on out-of-memory. */
json_t *gp_snap_gpus_json(const struct gp_agent_snap *s);

/* {"node", "updated", "tenants": [...], "skipped", "capped"}. */
json_t *gp_snap_tenants_json(const struct gp_agent_snap *s);

#endif
