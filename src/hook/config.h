/* config.h - the tenant configuration the hook reads from its environment.
 *
 * gpupool's own variables (DESIGN.md, "Tenant configuration") win; HAMi-core's
 * are honoured when ours are unset, so the library drops into a HAMi
 * deployment.  Parsing is strict: any value that does not parse makes the
 * whole configuration invalid, and the hook then refuses to initialise CUDA
 * rather than run without limits.
 */
#ifndef GP_HOOK_CONFIG_H
#define GP_HOOK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "common/parse.h"
#include "gpupool/region.h"

/* Devices a tenant can be given per-device settings for (_0 .. _15). */
#define GP_CONFIG_MAX_DEVS GP_REGION_MAX_DEVS

enum gp_core_policy {
	GP_CORE_HARD = 0,    /* always capped at the core limit */
	GP_CORE_ELASTIC = 1, /* capped only while others want the GPU */
	GP_CORE_OFF = 2,     /* core limits ignored */
};

enum gp_priority { GP_PRIO_LOW = 0, GP_PRIO_NORMAL = 1, GP_PRIO_HIGH = 2 };

/* GPUPOOL_PRIORITY_HOLDOFF when unset: long enough that the gaps of an
 * inference server between requests do not let low tenants in and out. */
#define GP_HOLDOFF_DEFAULT_NS 250000000ULL

struct gp__config {
	struct gp_limit mem[GP_CONFIG_MAX_DEVS]; /* per visible device; a zero
	                                          limit (bytes = ppm = 0)
	                                          means unlimited */
	const char *mem_var[GP_CONFIG_MAX_DEVS]; /* the "NAME=value" entry of
	                                          envp each limit came from,
	                                          for messages; NULL: none */
	unsigned core[GP_CONFIG_MAX_DEVS]; /* compute share 1-100; 0 = none */
	enum gp_core_policy policy;
	enum gp_priority priority;
	unsigned floor;           /* GPUPOOL_PRIORITY_FLOOR: percent a low
	                             tenant keeps while a high one is busy */
	uint64_t holdoff_ns;      /* GPUPOOL_PRIORITY_HOLDOFF: how long a high
	                             tenant must be idle before low ones resume */
	const char *node;         /* GPUPOOL_NODE (points into envp); NULL:
	                             no node file, no cross-tenant arbitration */
	enum gp_log_level log_level;
	const char *region;       /* GPUPOOL_REGION (points into envp); NULL:
	                             a region private to the process */
	unsigned long long context_size; /* GPUPOOL_CONTEXT_SIZE; 0 = measure */
};

/* Parse the configuration from `envp` (an environ-style NULL-terminated
 * array of "NAME=value").  Returns 0, or -EINVAL with a message for the
 * user in `err` naming the variable and what is wrong with it.  Unknown
 * GPUPOOL_* names produce a warning through the logger, not an error. */
int gp__config_parse(struct gp__config *c, char *const *envp, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Does device i have a memory limit? */
static inline int gp__config_has_mem(const struct gp__config *c, unsigned i)
{
	return c->mem[i].bytes != 0 || c->mem[i].ppm != 0;
}

#endif
