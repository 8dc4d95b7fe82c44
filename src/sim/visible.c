/* visible.c - see visible.h.  The reading itself is common/visible.c, shared
 * with the hook so that the hook's NVML view and the simulated driver agree
 * on which GPU is which ordinal. */
#include "sim/visible.h"

#include "common/visible.h"

int gp__sim_visible_parse(const char *env, const struct gp_sim_config *cfg, int *idx)
{
	char uuids[GP_SIM_GPUS_MAX][GP_SIM_UUID_STR];
	const char *names[GP_SIM_GPUS_MAX];

	for (unsigned d = 0; d < cfg->n && d < GP_SIM_GPUS_MAX; d++) {
		gp__sim_gpu_uuid_str(d, cfg->gpu[d].model, uuids[d], sizeof uuids[d]);
		names[d] = uuids[d];
	}
	return (int)gp_visible_parse(env, names, cfg->n, idx, GP_SIM_GPUS_MAX);
}
