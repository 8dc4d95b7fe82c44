/* limitwarn.c - see limitwarn.h. */
#include "hook/limitwarn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "hook/hook.h"

/* The per-device variables, ours and HAMi's.  HAMi writes 0 for "no
 * limit", which cannot be wrong for any device. */
static const struct {
	const char *prefix;
	int hami;
} per_device[] = {
	{"GPUPOOL_MEMORY_LIMIT_", 0},
	{"CUDA_DEVICE_MEMORY_LIMIT_", 1},
	{"GPUPOOL_CORE_LIMIT_", 0},
	{"CUDA_DEVICE_SM_LIMIT_", 1},
};

/* Per-device variables for visible devices ndev and up. */
static void warn_missing(int ndev)
{
	char name[64];
	const char *v;

	for (unsigned i = ndev < 0 ? 0 : (unsigned)ndev; i < GP_CONFIG_MAX_DEVS; i++) {
		for (size_t k = 0; k < sizeof per_device / sizeof *per_device; k++) {
			snprintf(name, sizeof name, "%s%u", per_device[k].prefix, i);
			v = getenv(name);
			if (!v || (per_device[k].hami && strcmp(v, "0") == 0))
				continue;
			gp_warn("%s=%s: no visible device %u (this process sees %d); ignored", name,
				v, i, ndev);
		}
	}
}

void gp__limit_warn(const struct gp__config *cfg, int ordinal, uint64_t physical)
{
	/* One bit per ordinal: devices can be set up again after a failure,
	 * or by two threads at once. */
	static unsigned warned;
	char size[32];
	uint64_t limit;
	int n;

	if (ordinal < 0 || ordinal >= (int)GP_CONFIG_MAX_DEVS ||
	    (__atomic_fetch_or(&warned, 1u << ordinal, __ATOMIC_RELAXED) & (1u << ordinal)))
		return;
	/* The caller sees one device at a time, so the count of visible
	 * devices is asked here, once, with the first. */
	if (ordinal == 0 && gp__real_cuDeviceGetCount && gp__real_cuDeviceGetCount(&n) == CUDA_SUCCESS)
		warn_missing(n);
	if (!gp__config_has_mem(cfg, (unsigned)ordinal))
		return;
	limit = gp_limit_bytes(&cfg->mem[ordinal], physical);
	if (limit <= physical || !cfg->mem_var[ordinal])
		return;
	gp_format_size(physical, size, sizeof size);
	gp_warn("%s is larger than device %d (%s): clamped to %s", cfg->mem_var[ordinal], ordinal,
		size, size);
}
