/* sched.c - `gpupool sched`: the kube-scheduler extender.  Reads the
 * command line from a table of options and runs src/sched/extender.c. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/parse.h"
#include "net/client.h"
#include "sched/extender.h"
#include "sched/placement.h"

static const char help[] =
	"usage: gpupool sched [options]\n"
	"\n"
	"The kube-scheduler extender: places pods' vGPU requests on nodes and\n"
	"GPUs (filter, prioritize) and binds them (bind), over kube-scheduler's\n"
	"extender v1 HTTP API.  Node GPUs come from the gpupool.io/node-state\n"
	"annotation (or HAMi's hami.io/node-nvidia-register); what is allocated\n"
	"is recomputed from the pods' gpupool.io/allocation annotations.  See\n"
	"docs/sched.md (the extender) and deploy/kubernetes/.\n"
	"\n"
	"endpoints: POST /filter, POST /prioritize, POST /bind, GET /healthz\n"
	"\n"
	"options:\n"
	"  -l, --listen ADDR          host:port to serve on (default 127.0.0.1:8888;\n"
	"                             :8888 for every address, port 0 for any free one)\n"
	"      --ready-file PATH      once serving, write the URL there (for tests\n"
	"                             and supervisors)\n"
	"      --kubeconfig PATH      the API server from a kubeconfig (YAML or JSON;\n"
	"                             token or username/password users).  Default:\n"
	"                             in-cluster, from KUBERNETES_SERVICE_HOST/PORT\n"
	"                             and the service account\n"
	"      --context NAME         kubeconfig context (default: current-context)\n"
	"      --sa-dir DIR           in-cluster credentials: DIR/token and DIR/ca.crt\n"
	"                             (default /var/run/secrets/kubernetes.io/\n"
	"                             serviceaccount)\n"
	"  -p, --policy POLICY        placement policy (default ours): node=NAME with\n"
	"                             NAME one of ours, fgd, binpack, spread, bestfit,\n"
	"                             packing, random; gpu=binpack|spread (for\n"
	"                             binpack..random); topology=on|off.  E.g.\n"
	"                             \"binpack,gpu=spread\", \"fgd\"\n"
	"      --bind-lock-ttl DUR    a node's bind lock is void after this (15s): how\n"
	"                             long a crashed replica can block a node\n"
	"      --bind-lock-wait DUR   how long a bind waits for another's lock before\n"
	"                             failing (5s; kube-scheduler then retries)\n"
	"      --resync DUR           how often nodes and pods are re-read (10s)\n"
	"      --node-state-max-age DUR  refuse nodes whose node-state is older than\n"
	"                             this (needs the agent's \"updated\"; 0 = never, the\n"
	"                             default)\n"
	"      --api-timeout DUR      per Kubernetes API request (10s)\n"
	"      --conflict-retries N   re-reads after a 409 Conflict (5)\n"
	"      --max-body SIZE        largest request body accepted (32MiB); larger: 413\n"
	"      --max-list SIZE        largest API answer read, e.g. the pod list (64MiB)\n"
	"      --max-nodes N          most candidate nodes per request (10000); more: 400\n"
	"  -v, --verbose              log every bind and refresh (GPUPOOL_LOG=info)\n"
	"  -h, --help                 this text\n"
	"\n"
	"DUR is a whole number with a unit: ms, s, m or h (a bare number is\n"
	"seconds).  SIZE takes binary units (KiB, MiB, GiB).\n"
	"\n"
	"The daemon exits 0 on SIGTERM/SIGINT, 1 if it cannot start (the API is\n"
	"unreachable, the port is taken), 2 for a usage error.\n"
	"\n"
	"examples:\n"
	"  gpupool sched --listen :8888                       # in a cluster\n"
	"  gpupool sched --kubeconfig ~/.kube/config -p fgd -v  # from a laptop\n";

/* How an option's value is read, and where it goes. */
enum kind { K_STR, K_MS, K_SIZE, K_UINT, K_FLAG };

struct opt {
	const char *name;
	int short_name;
	enum kind kind;
	size_t off;      /* into struct cfg */
};

/* Everything the command line sets. */
struct cfg {
	struct gp_ext_opts e;
	int verbose, help;
};

#define E(m) (offsetof(struct cfg, e) + offsetof(struct gp_ext_opts, m))

static const struct opt opts[] = {
	{"listen", 'l', K_STR, E(listen)},
	{"ready-file", 0, K_STR, E(ready_file)},
	{"kubeconfig", 0, K_STR, E(kube.kubeconfig)},
	{"context", 0, K_STR, E(kube.context)},
	{"sa-dir", 0, K_STR, E(kube.sa_dir)},
	{"policy", 'p', K_STR, E(policy)},
	{"bind-lock-ttl", 0, K_MS, E(lock_ttl_ms)},
	{"bind-lock-wait", 0, K_MS, E(lock_wait_ms)},
	{"resync", 0, K_MS, E(resync_ms)},
	{"node-state-max-age", 0, K_MS, E(state_max_age_ms)},
	{"api-timeout", 0, K_MS, E(kube.timeout_ms)},
	{"conflict-retries", 0, K_UINT, E(kube.conflict_retries)},
	{"max-body", 0, K_SIZE, E(max_body)},
	{"max-list", 0, K_SIZE, E(kube.max_body)},
	{"max-nodes", 0, K_UINT, E(max_nodes)},
	{"verbose", 'v', K_FLAG, offsetof(struct cfg, verbose)},
	{"help", 'h', K_FLAG, offsetof(struct cfg, help)},
};

#define NOPTS (sizeof opts / sizeof *opts)

/* A duration: digits and a unit (ms, s, m, h; none = s).  Milliseconds,
 * at most a day.  Returns 0 or -EINVAL. */
static int parse_ms(const char *s, long *out)
{
	static const struct {
		const char *unit;
		long ms;
	} units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || v > 86400000L)
		return -EINVAL;
	for (size_t i = 0; i < sizeof units / sizeof *units; i++)
		if (strcmp(end, units[i].unit) == 0) {
			if (v * units[i].ms > 86400000L)
				return -EINVAL;
			*out = v * units[i].ms;
			return 0;
		}
	return -EINVAL;
}

/* Store one option's value into cfg.  Returns 0 or a usage error. */
static int set(struct cfg *c, const struct opt *o, const char *val)
{
	char *p = (char *)c + o->off;
	uint64_t u;

	switch (o->kind) {
	case K_STR:
		if (!*val)
			return gp_cli_usage_error("sched", "--%s: empty value", o->name);
		*(const char **)p = val;
		return 0;
	case K_MS:
		if (parse_ms(val, (long *)p))
			return gp_cli_usage_error("sched",
						  "--%s: '%s' is not a duration (e.g. 15s, 500ms)",
						  o->name, val);
		return 0;
	case K_SIZE:
		if (gp_parse_size(val, &u) || u == 0 || u > ((uint64_t)1 << 32))
			return gp_cli_usage_error("sched", "--%s: '%s' is not a size up to 4GiB",
						  o->name, val);
		*(size_t *)p = (size_t)u;
		return 0;
	case K_UINT:
		if (gp_parse_u64(val, &u) || u == 0 || u > 1000000)
			return gp_cli_usage_error("sched", "--%s: '%s' is not a number 1..1000000",
						  o->name, val);
		*(unsigned *)p = (unsigned)u;
		return 0;
	case K_FLAG:
		*(int *)p = 1;
		return 0;
	}
	return GP_EXIT_USAGE;
}

int gp_cli_sched(int argc, char **argv)
{
	struct cfg c = {
		.e = {
			.listen = "127.0.0.1:8888",
			.policy = "ours",
			.lock_ttl_ms = 15000,
			.lock_wait_ms = 5000,
			.resync_ms = 10000,
			.max_body = 32u << 20,
			.max_nodes = 10000,
			.kube = {.timeout_ms = 10000, .max_body = (size_t)64 << 20,
				 .conflict_retries = 5},
		},
	};
	struct option lo[NOPTS + 1];
	char shorts[2 * NOPTS + 2], *sp = shorts;
	enum gp_log_level level;
	struct gp_policy pol;
	char why[GP_REASON_MAX];
	int ch, idx, rc;

	memset(lo, 0, sizeof lo);
	for (size_t i = 0; i < NOPTS; i++) {
		int arg = opts[i].kind == K_FLAG ? no_argument : required_argument;
		lo[i] = (struct option){opts[i].name, arg, NULL, opts[i].short_name ? opts[i].short_name
										     : 256 + (int)i};
		if (opts[i].short_name) {
			*sp++ = (char)opts[i].short_name;
			if (arg == required_argument)
				*sp++ = ':';
		}
	}
	*sp = '\0';
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, lo, &idx)) != -1) {
		const struct opt *o = NULL;

		if (ch == '?' || ch == ':')
			return gp_cli_usage_error("sched", "unknown option or missing value: '%s'",
						  argv[optind - 1]);
		for (size_t i = 0; i < NOPTS; i++)
			if (ch == (opts[i].short_name ? opts[i].short_name : 256 + (int)i))
				o = &opts[i];
		if (!o)
			return gp_cli_usage_error("sched", "unknown option '%s'", argv[optind - 1]);
		if ((rc = set(&c, o, optarg)))
			return rc;
	}
	if (c.help) {
		fputs(help, stdout);
		return GP_EXIT_OK;
	}
	if (optind < argc)
		return gp_cli_usage_error("sched", "unexpected argument '%s'", argv[optind]);
	if (c.e.lock_ttl_ms < 1000)
		return gp_cli_usage_error("sched", "--bind-lock-ttl must be at least 1s");
	if (c.e.resync_ms < 100)
		return gp_cli_usage_error("sched", "--resync must be at least 100ms");
	if (c.e.kube.timeout_ms < 100)
		return gp_cli_usage_error("sched", "--api-timeout must be at least 100ms");
	if (gp_policy_parse(c.e.policy, &pol, why, sizeof why))
		return gp_cli_usage_error("sched", "--policy: %s", why);
	if (gp_log_parse_level(getenv("GPUPOOL_LOG"), &level) != 0)
		level = GP_LOG_WARN;
	if (c.verbose && level < GP_LOG_INFO)
		level = GP_LOG_INFO;
	gp_log_setup(level, "sched");
	if (gp_client_init() != 0) {
		fprintf(stderr, "gpupool sched: cannot initialise libcurl\n");
		return GP_EXIT_FAIL;
	}
	return gp_extender_run(&c.e) ? GP_EXIT_FAIL : GP_EXIT_OK;
}
