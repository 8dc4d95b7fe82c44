/* visible.c - see visible.h. */
#include "sim/visible.h"

#include <string.h>
#include <strings.h>

#include "common/parse.h"

/* The machine index an entry names, or -1. */
static int lookup(const char *item, size_t len, const struct gp_sim_config *cfg)
{
	int found = -1;

	if (len == 0)
		return -1;
	if (item[0] >= '0' && item[0] <= '9') {
		unsigned long v = 0;
		for (size_t i = 0; i < len; i++) {
			if (item[i] < '0' || item[i] > '9' || v > 1000)
				return -1;
			v = v * 10 + (unsigned long)(item[i] - '0');
		}
		return v < cfg->n ? (int)v : -1;
	}
	if (len < 4 || strncmp(item, "GPU-", 4) != 0)
		return -1; /* MIG-..., negative numbers, words: invalid */
	for (unsigned d = 0; d < cfg->n; d++) {
		char uuid[GP_SIM_UUID_STR];
		gp__sim_gpu_uuid_str(d, cfg->gpu[d].model, uuid, sizeof uuid);
		if (len <= strlen(uuid) && strncasecmp(uuid, item, len) == 0) {
			if (found >= 0)
				return -1; /* ambiguous prefix */
			found = (int)d;
		}
	}
	return found;
}

int gp__sim_visible_parse(const char *env, const struct gp_sim_config *cfg, int *idx)
{
	const char *cur = env;
	const char *item;
	size_t len;
	int n = 0;

	if (!env) {
		for (unsigned d = 0; d < cfg->n; d++)
			idx[n++] = (int)d;
		return n;
	}
	while (n < GP_SIM_GPUS_MAX && (item = gp_list_next(&cur, ',', &len)) != NULL) {
		int d = lookup(item, len, cfg);
		int dup = 0;
		for (int i = 0; i < n; i++)
			dup |= idx[i] == d;
		if (d < 0 || dup)
			break;
		idx[n++] = d;
	}
	return n;
}
