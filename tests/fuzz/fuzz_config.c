/* fuzz_config.c - libFuzzer target for the tenant configuration parser
 * (gp__config_parse), against a model of DESIGN.md's "Tenant
 * configuration" contract.
 *
 * fuzz_parse feeds the parser raw lines, which rarely spell a variable
 * name; here every line names one through a table, so the fuzzer spends
 * its time on values and on mixtures: gpupool's variables with HAMi-core's
 * fallbacks, global limits with per-device ones (_0 .. _15, and beyond,
 * which must be ignored), valid values with invalid ones, repeated names.
 *
 * Input: lines, each "<selector byte><value>\n" (the value ends at the
 * newline or the input's end; a NUL ends it early, as in a real
 * environment):
 *   selector < 32: a fixed name, names[selector % NNAMES]
 *   32 .. 223:    a per-device name: kind (selector - 32) % 4 of
 *                 GPUPOOL_MEMORY_LIMIT_, CUDA_DEVICE_MEMORY_LIMIT_,
 *                 GPUPOOL_CORE_LIMIT_, CUDA_DEVICE_SM_LIMIT_, and index
 *                 (selector - 32) / 4 (0 .. 47)
 *   >= 224:       the value is the whole entry, name and all ("X=1", or
 *                 junk without '=')
 *
 * Checked: the parser succeeds exactly when the model finds no invalid
 * variable, and then every field is what the model says (in particular a
 * limit has bytes or ppm set, never both; cores are 0 or 1..100; policy and
 * priority are in range; the region is a non-empty value from the
 * environment); on failure the message names one of the invalid variables
 * with its value.  The value parsers themselves are fuzzed by fuzz_parse.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/parse.h"
#include "hook/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                     \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_config: check failed: %s (line %d)\n", #c, \
				__LINE__);                                                   \
			abort();                                                         \
		}                                                                    \
	} while (0)

#define MAX_ENV 64

static const char *const names[] = {
	"GPUPOOL_LOG",
	"GPUPOOL_MEMORY_LIMIT",
	"CUDA_DEVICE_MEMORY_LIMIT",
	"GPUPOOL_CORE_LIMIT",
	"CUDA_DEVICE_SM_LIMIT",
	"GPUPOOL_CORE_POLICY",
	"GPU_CORE_UTILIZATION_POLICY",
	"GPUPOOL_PRIORITY",
	"CUDA_TASK_PRIORITY",
	"GPUPOOL_REGION",
	"CUDA_DEVICE_MEMORY_SHARED_CACHE",
	"GPUPOOL_CONTEXT_SIZE",
	"GPUPOOL_SIM_GPUS",
	"GPUPOOL_NODE",
	"GPUPOOL_PRIORITY_FLOOR",
	"GPUPOOL_PRIORITY_HOLDOFF",
	"GPUPOOL_MEMORY_LIMIT_",
	"GPUPOOL_CORE_LIMIT_X",
};
#define NNAMES (sizeof names / sizeof *names)

static const char *const dev_prefix[] = {
	"GPUPOOL_MEMORY_LIMIT_", "CUDA_DEVICE_MEMORY_LIMIT_",
	"GPUPOOL_CORE_LIMIT_", "CUDA_DEVICE_SM_LIMIT_",
};

/* The environment as the model sees it: getenv's rule, the first entry
 * of a name wins. */
struct env {
	char *envp[MAX_ENV + 1];
	size_t n;
};

static const char *get(const struct env *e, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->envp[i], name, len) == 0 && e->envp[i][len] == '=')
			return e->envp[i] + len + 1;
	return NULL;
}

/* The variables the model finds invalid: "NAME=value" strings. */
struct bad {
	char what[24][64 + 8];
	const char *val[24];
	size_t n;
};

static void add_bad(struct bad *b, const char *name, const char *v)
{
	if (b->n < 24) {
		snprintf(b->what[b->n], sizeof b->what[b->n], "%s", name);
		b->val[b->n++] = v;
	}
}

/* Ours wins when set (valid or not); HAMi's is read only without ours. */
static const char *pick(const struct env *e, const char *ours, const char *hami,
			const char **name)
{
	const char *v = get(e, ours);

	*name = ours;
	if (!v && hami && (v = get(e, hami)))
		*name = hami;
	return v;
}

static int word(const char *v, const char *const *w, int *out)
{
	for (int i = 0; w[i]; i++)
		if (strcmp(v, w[i]) == 0) {
			*out = i;
			return 0;
		}
	return -1;
}

/* GPUPOOL_PRIORITY_HOLDOFF as docs/hook.md describes it: a decimal number
 * of milliseconds (no unit or "ms") or seconds ("s"), at most 60 s; digits
 * past the nanosecond are ignored. */
static int duration(const char *v, uint64_t *ns)
{
	long double x = 0, f = 1, unit = 1e6L;
	const char *p = v;
	int digits = 0;

	while (*p >= '0' && *p <= '9') {
		x = x * 10 + (*p++ - '0');
		digits++;
		if (x > 60000)
			return -1;
	}
	if (!digits)
		return -1;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (int k = 0; *p >= '0' && *p <= '9'; p++, k++)
			if (k < 6)
				x += (*p - '0') * (f /= 10);
	}
	if (strcmp(p, "s") == 0)
		unit = 1e9L;
	else if (strcmp(p, "ms") != 0 && *p)
		return -1;
	if (x * unit > 60e9L + 0.5L)
		return -1;
	*ns = (uint64_t)(x * unit + 0.5L);
	return 0;
}

/* The model: the configuration DESIGN.md describes, or the invalid
 * variables. */
static void model(const struct env *e, struct gp__config *m, struct bad *b)
{
	static const char *const policies[] = {"hard", "elastic", "off", NULL};
	static const char *const hami_policies[] = {"force", "default", "disable", NULL};
	static const char *const prios[] = {"low", "normal", "high", NULL};
	static const char *const hami_prios[] = {"0", "1", NULL}; /* 0 high, 1 normal */
	struct gp_limit all_mem = {0, 0};
	unsigned all_core = 0;
	const char *v, *name;
	char ours[64], hami[64];
	int w;

	memset(m, 0, sizeof *m);
	m->policy = GP_CORE_ELASTIC;
	m->priority = GP_PRIO_NORMAL;
	m->holdoff_ns = GP_HOLDOFF_DEFAULT_NS;
	m->log_level = GP_LOG_WARN;
	b->n = 0;

	if ((v = get(e, "GPUPOOL_LOG")) && gp_log_parse_level(v, &m->log_level))
		add_bad(b, "GPUPOOL_LOG", v);

	/* Memory: a size or a percentage; HAMi writes 0 for "no limit". */
	if ((v = pick(e, "GPUPOOL_MEMORY_LIMIT", "CUDA_DEVICE_MEMORY_LIMIT", &name)) &&
	    !(name[0] == 'C' && strcmp(v, "0") == 0) && gp_parse_limit(v, &all_mem))
		add_bad(b, name, v);
	/* Cores: 1..100 percent; HAMi's 0 is "no limit": unset. */
	if ((v = pick(e, "GPUPOOL_CORE_LIMIT", "CUDA_DEVICE_SM_LIMIT", &name)) &&
	    !(name[0] == 'C' && strcmp(v, "0") == 0) && gp_parse_percent(v, 1, 100, &all_core))
		add_bad(b, name, v);
	for (unsigned i = 0; i < GP_CONFIG_MAX_DEVS; i++) {
		/* A per-device variable replaces the global one for its device;
		 * HAMi's per-device 0 is unset, so the global one stays. */
		m->mem[i] = all_mem;
		snprintf(ours, sizeof ours, "GPUPOOL_MEMORY_LIMIT_%u", i);
		snprintf(hami, sizeof hami, "CUDA_DEVICE_MEMORY_LIMIT_%u", i);
		if ((v = pick(e, ours, hami, &name)) && !(name[0] == 'C' && strcmp(v, "0") == 0) &&
		    gp_parse_limit(v, &m->mem[i]))
			add_bad(b, name, v);
		m->core[i] = all_core;
		snprintf(ours, sizeof ours, "GPUPOOL_CORE_LIMIT_%u", i);
		snprintf(hami, sizeof hami, "CUDA_DEVICE_SM_LIMIT_%u", i);
		if ((v = pick(e, ours, hami, &name)) && !(name[0] == 'C' && strcmp(v, "0") == 0) &&
		    gp_parse_percent(v, 1, 100, &m->core[i]))
			add_bad(b, name, v);
	}

	if ((v = get(e, "GPUPOOL_CORE_POLICY"))) {
		if (word(v, policies, &w))
			add_bad(b, "GPUPOOL_CORE_POLICY", v);
		else
			m->policy = (enum gp_core_policy)w;
	} else if ((v = get(e, "GPU_CORE_UTILIZATION_POLICY"))) {
		if (word(v, hami_policies, &w))
			add_bad(b, "GPU_CORE_UTILIZATION_POLICY", v);
		else
			m->policy = (enum gp_core_policy)w;
	}
	if ((v = get(e, "GPUPOOL_PRIORITY"))) {
		if (word(v, prios, &w))
			add_bad(b, "GPUPOOL_PRIORITY", v);
		else
			m->priority = (enum gp_priority)w;
	} else if ((v = get(e, "CUDA_TASK_PRIORITY"))) {
		if (word(v, hami_prios, &w))
			add_bad(b, "CUDA_TASK_PRIORITY", v);
		else
			m->priority = w == 0 ? GP_PRIO_HIGH : GP_PRIO_NORMAL;
	}
	if ((v = get(e, "GPUPOOL_PRIORITY_FLOOR")) && gp_parse_percent(v, 0, 100, &m->floor))
		add_bad(b, "GPUPOOL_PRIORITY_FLOOR", v);
	if ((v = get(e, "GPUPOOL_PRIORITY_HOLDOFF")) && duration(v, &m->holdoff_ns))
		add_bad(b, "GPUPOOL_PRIORITY_HOLDOFF", v);
	m->node = get(e, "GPUPOOL_NODE");
	if (m->node && !m->node[0])
		add_bad(b, "GPUPOOL_NODE", m->node);
	m->region = pick(e, "GPUPOOL_REGION", "CUDA_DEVICE_MEMORY_SHARED_CACHE", &name);
	if (m->region && !m->region[0])
		add_bad(b, name, m->region);
	if ((v = get(e, "GPUPOOL_CONTEXT_SIZE"))) {
		uint64_t sz;
		if (gp_parse_size(v, &sz))
			add_bad(b, "GPUPOOL_CONTEXT_SIZE", v);
		else
			m->context_size = sz;
	}
}

static void build(struct env *e, char *buf, size_t size, char *scratch)
{
	size_t i = 0;
	char *out = scratch;

	e->n = 0;
	while (i < size && e->n < MAX_ENV) {
		unsigned sel = (uint8_t)buf[i++];
		size_t start = i, len;
		while (i < size && buf[i] != '\n')
			i++;
		buf[i] = '\0'; /* buf has room for it past `size` */
		len = strnlen(buf + start, i - start);
		i++;
		e->envp[e->n++] = out;
		if (sel < 32)
			out += sprintf(out, "%s=", names[sel % NNAMES]);
		else if (sel < 224)
			out += sprintf(out, "%s%u=", dev_prefix[(sel - 32) % 4], (sel - 32) / 4);
		memcpy(out, buf + start, len);
		out += len;
		*out++ = '\0';
	}
	e->envp[e->n] = NULL;
}

static int same_limit(const struct gp_limit *a, const struct gp_limit *b)
{
	return a->bytes == b->bytes && a->ppm == b->ppm;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Each entry grows by at most its longest name and '=' */
	char *buf = malloc(size + 1), *scratch = malloc(size + MAX_ENV * 48);
	struct env e;
	struct gp__config c, m;
	struct bad b;
	char err[256];
	int rc;

	if (!buf || !scratch)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	gp_log_setup(GP_LOG_ERROR, "fuzz"); /* unknown-variable warnings are noise */
	build(&e, buf, size, scratch);

	memset(&c, 0xa5, sizeof c); /* nothing may be left unset */
	memset(err, 0xa5, sizeof err);
	rc = gp__config_parse(&c, e.envp, err, sizeof err);
	model(&e, &m, &b);
	CHECK(rc == 0 || rc == -EINVAL);
	CHECK(memchr(err, '\0', sizeof err)); /* a terminated message */
	if (rc == 0) {
		CHECK(b.n == 0);
		for (unsigned i = 0; i < GP_CONFIG_MAX_DEVS; i++) {
			CHECK(c.mem[i].bytes == 0 || c.mem[i].ppm == 0); /* one or none */
			CHECK(c.mem[i].ppm <= 1000000);
			CHECK(same_limit(&c.mem[i], &m.mem[i]));
			CHECK(c.core[i] <= 100 && c.core[i] == m.core[i]);
			CHECK(gp__config_has_mem(&c, i) == (m.mem[i].bytes || m.mem[i].ppm));
		}
		CHECK(c.policy == m.policy && c.policy <= GP_CORE_OFF);
		CHECK(c.priority == m.priority && c.priority <= GP_PRIO_HIGH);
		CHECK(c.log_level == m.log_level && c.log_level <= GP_LOG_DEBUG);
		CHECK(c.region == m.region); /* the very value in envp */
		CHECK(!c.region || c.region[0]);
		CHECK(c.context_size == m.context_size);
		CHECK(c.floor == m.floor && c.floor <= 100);
		CHECK(c.holdoff_ns == m.holdoff_ns && c.holdoff_ns <= 60000000000ULL);
		CHECK(c.node == m.node && (!c.node || c.node[0]));
	} else {
		int named = 0;
		CHECK(b.n > 0);
		CHECK(err[0] != '\0');
		/* "NAME=value: why" for one of the invalid variables (the
		 * message may be cut at sizeof err) */
		for (size_t k = 0; k < b.n && !named; k++) {
			char want[sizeof err];
			int n = snprintf(want, sizeof want, "%s=%s: ", b.what[k], b.val[k]);
			size_t cmp = (size_t)n < sizeof want - 1 ? (size_t)n : sizeof want - 1;
			named = strncmp(err, want, cmp) == 0;
		}
		CHECK(named);
	}
	free(buf);
	free(scratch);
	return 0;
}
