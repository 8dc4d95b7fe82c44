/* config.c - see config.h. */
#include "hook/config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The variables this file knows, so that a misspelt GPUPOOL_* name is
 * reported instead of silently meaning "unlimited".  Names of other parts
 * (the simulator, the command) are listed too: they share the prefix. */
static const char *const known_prefixes[] = {
	"GPUPOOL_MEMORY_LIMIT", "GPUPOOL_CORE_LIMIT", "GPUPOOL_CORE_POLICY",
	"GPUPOOL_PRIORITY",     "GPUPOOL_REGION",     "GPUPOOL_LOG",
	"GPUPOOL_CONTEXT_SIZE", "GPUPOOL_SIM_GPUS",   "GPUPOOL_SIM_STATE",
	"GPUPOOL_NODE",         "GPUPOOL_PRIORITY_FLOOR", "GPUPOOL_PRIORITY_HOLDOFF",
};

static const char *lookup(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* Our variable if set, else HAMi's (NULL for none). *used names the one
 * taken, for error messages. */
static const char *pick(char *const *envp, const char *ours, const char *hami,
			const char **used)
{
	const char *v = lookup(envp, ours);

	*used = ours;
	if (!v && hami) {
		v = lookup(envp, hami);
		*used = hami;
	}
	return v;
}

static int fail(char *err, size_t n, const char *name, const char *value, const char *why)
{
	snprintf(err, n, "%s=%s: %s", name, value, why);
	return -EINVAL;
}

/* A memory limit into *out, and into *var the environment entry it came
 * from ("NAME=value": v points just past its '=').  HAMi writes 0 for "no
 * limit here": that is treated as unset, so both keep what they had (a
 * per-device 0 leaves the global limit in force: a device never ends up
 * unlimited by accident). */
static int parse_mem(const char *name, const char *v, int hami, struct gp_limit *out,
		     const char **var, char *err, size_t n)
{
	int rc;

	if (hami && strcmp(v, "0") == 0)
		return 0;
	*var = v - strlen(name) - 1;
	rc = gp_parse_limit(v, out);
	if (rc == -ERANGE)
		return fail(err, n, name, v,
			    "out of range (a size > 0, or a percentage in (0, 100]; "
			    "unset the variable for no limit)");
	if (rc)
		return fail(err, n, name, v,
			    "not a size (bytes, or with a unit as in 2GiB, 512MiB, 2G) "
			    "nor a percentage (50%)");
	return 0;
}

static int parse_core(const char *name, const char *v, int hami, unsigned *out,
		      char *err, size_t n)
{
	/* HAMi writes 0 for "no limit": unset, as for memory. */
	if (hami && strcmp(v, "0") == 0)
		return 0;
	if (gp_parse_percent(v, 1, 100, out))
		return fail(err, n, name, v, "not a percentage from 1 to 100");
	return 0;
}

/* A duration: decimal milliseconds ("250ms", "250", "0.5ms") or seconds
 * ("1s", "1.5s"), at most a minute; nanoseconds to *ns. */
static int parse_ms(const char *v, uint64_t *ns)
{
	uint64_t whole = 0, frac = 0, scale = 1, unit;
	const char *p = v;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((whole = whole * 10 + (uint64_t)(*p - '0')) > 60000)
			return -1;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -1;
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (scale < 1000000) { /* nanoseconds of a millisecond at most */
				frac = frac * 10 + (uint64_t)(*p - '0');
				scale *= 10;
			}
	}
	if (strcmp(p, "s") == 0)
		unit = 1000000000ULL;
	else if (strcmp(p, "ms") == 0 || *p == '\0')
		unit = 1000000ULL;
	else
		return -1;
	*ns = whole * unit + frac * unit / scale;
	return *ns > 60000000000ULL ? -1 : 0;
}

struct word {
	const char *text;
	int value;
};

static int parse_word(const char *name, const char *v, const struct word *w, int *out,
		      const char *expect, char *err, size_t n)
{
	for (; w->text; w++) {
		if (strcmp(v, w->text) == 0) {
			*out = w->value;
			return 0;
		}
	}
	return fail(err, n, name, v, expect);
}

static const struct word policies[] = {
	{"hard", GP_CORE_HARD}, {"elastic", GP_CORE_ELASTIC}, {"off", GP_CORE_OFF}, {NULL, 0}};
/* HAMi-core's GPU_CORE_UTILIZATION_POLICY words. */
static const struct word hami_policies[] = {
	{"force", GP_CORE_HARD}, {"default", GP_CORE_ELASTIC}, {"disable", GP_CORE_OFF}, {NULL, 0}};
static const struct word priorities[] = {
	{"high", GP_PRIO_HIGH}, {"normal", GP_PRIO_NORMAL}, {"low", GP_PRIO_LOW}, {NULL, 0}};
/* HAMi-core's CUDA_TASK_PRIORITY: 0 is its high priority, 1 its default. */
static const struct word hami_priorities[] = {
	{"0", GP_PRIO_HIGH}, {"1", GP_PRIO_NORMAL}, {NULL, 0}};

static void warn_unknown(char *const *envp)
{
	for (; envp && *envp; envp++) {
		const char *e = *envp;
		int known = 0;
		if (strncmp(e, "GPUPOOL_", 8) != 0)
			continue;
		for (size_t i = 0; i < sizeof known_prefixes / sizeof *known_prefixes && !known; i++) {
			size_t n = strlen(known_prefixes[i]);
			if (strncmp(e, known_prefixes[i], n) != 0)
				continue;
			if (e[n] == '=')
				known = 1;
			else if (e[n] == '_' && strstr(known_prefixes[i], "_LIMIT")) {
				/* per-device variant: the index must be one we read */
				unsigned idx;
				char tail;
				known = sscanf(e + n + 1, "%u%c", &idx, &tail) == 2 && tail == '=' &&
					idx < GP_CONFIG_MAX_DEVS;
			}
		}
		if (!known)
			gp_warn("unknown variable %.*s ignored (per-device settings go up to _%u)",
				(int)strcspn(e, "="), e, GP_CONFIG_MAX_DEVS - 1);
	}
}

int gp__config_parse(struct gp__config *c, char *const *envp, char *err, size_t n)
{
	const char *v, *name;
	char ours[64], hami[64];
	struct gp_limit all_mem = {0, 0};
	const char *all_var = NULL;
	unsigned all_core = 0;
	int rc, word;

	memset(c, 0, sizeof *c);
	c->policy = GP_CORE_ELASTIC;
	c->priority = GP_PRIO_NORMAL;
	c->holdoff_ns = GP_HOLDOFF_DEFAULT_NS;
	c->log_level = GP_LOG_WARN;
	err[0] = '\0';

	v = lookup(envp, "GPUPOOL_LOG");
	if (v && gp_log_parse_level(v, &c->log_level))
		return fail(err, n, "GPUPOOL_LOG", v, "not one of error, warn, info, debug");

	v = pick(envp, "GPUPOOL_MEMORY_LIMIT", "CUDA_DEVICE_MEMORY_LIMIT", &name);
	if (v && (rc = parse_mem(name, v, name[0] == 'C', &all_mem, &all_var, err, n)))
		return rc;

	v = pick(envp, "GPUPOOL_CORE_LIMIT", "CUDA_DEVICE_SM_LIMIT", &name);
	if (v && (rc = parse_core(name, v, name[0] == 'C', &all_core, err, n)))
		return rc;
	for (unsigned i = 0; i < GP_CONFIG_MAX_DEVS; i++) {
		snprintf(ours, sizeof ours, "GPUPOOL_MEMORY_LIMIT_%u", i);
		snprintf(hami, sizeof hami, "CUDA_DEVICE_MEMORY_LIMIT_%u", i);
		c->mem[i] = all_mem;
		c->mem_var[i] = all_var;
		v = pick(envp, ours, hami, &name);
		if (v && (rc = parse_mem(name, v, name[0] == 'C', &c->mem[i], &c->mem_var[i], err,
					 n)))
			return rc;

		snprintf(ours, sizeof ours, "GPUPOOL_CORE_LIMIT_%u", i);
		snprintf(hami, sizeof hami, "CUDA_DEVICE_SM_LIMIT_%u", i);
		c->core[i] = all_core;
		v = pick(envp, ours, hami, &name);
		if (v && (rc = parse_core(name, v, name[0] == 'C', &c->core[i], err, n)))
			return rc;
	}

	v = lookup(envp, "GPUPOOL_CORE_POLICY");
	if (v) {
		if ((rc = parse_word("GPUPOOL_CORE_POLICY", v, policies, &word,
				     "not one of hard, elastic, off", err, n)))
			return rc;
		c->policy = (enum gp_core_policy)word;
	} else if ((v = lookup(envp, "GPU_CORE_UTILIZATION_POLICY"))) {
		if ((rc = parse_word("GPU_CORE_UTILIZATION_POLICY", v, hami_policies, &word,
				     "not one of default, force, disable", err, n)))
			return rc;
		c->policy = (enum gp_core_policy)word;
	}

	v = lookup(envp, "GPUPOOL_PRIORITY");
	if (v) {
		if ((rc = parse_word("GPUPOOL_PRIORITY", v, priorities, &word,
				     "not one of high, normal, low", err, n)))
			return rc;
		c->priority = (enum gp_priority)word;
	} else if ((v = lookup(envp, "CUDA_TASK_PRIORITY"))) {
		if ((rc = parse_word("CUDA_TASK_PRIORITY", v, hami_priorities, &word,
				     "not 0 (high) or 1 (normal)", err, n)))
			return rc;
		c->priority = (enum gp_priority)word;
	}

	v = lookup(envp, "GPUPOOL_PRIORITY_FLOOR");
	if (v && gp_parse_percent(v, 0, 100, &c->floor))
		return fail(err, n, "GPUPOOL_PRIORITY_FLOOR", v, "not a percentage from 0 to 100");
	v = lookup(envp, "GPUPOOL_PRIORITY_HOLDOFF");
	if (v && parse_ms(v, &c->holdoff_ns))
		return fail(err, n, "GPUPOOL_PRIORITY_HOLDOFF", v,
			    "not a duration from 0 to 60s (as in 250ms, 1s)");

	c->node = lookup(envp, "GPUPOOL_NODE");
	if (c->node && c->node[0] == '\0')
		return fail(err, n, "GPUPOOL_NODE", c->node, "empty path");

	c->region = pick(envp, "GPUPOOL_REGION", "CUDA_DEVICE_MEMORY_SHARED_CACHE", &name);
	if (c->region && c->region[0] == '\0')
		return fail(err, n, name, c->region, "empty path");

	v = lookup(envp, "GPUPOOL_CONTEXT_SIZE");
	if (v) {
		uint64_t sz;
		if (gp_parse_size(v, &sz))
			return fail(err, n, "GPUPOOL_CONTEXT_SIZE", v,
				    "not a size (bytes, or with a unit as in 300MiB)");
		c->context_size = sz;
	}
	warn_unknown(envp);
	return 0;
}
