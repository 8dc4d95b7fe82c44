/* sched.c - `gpupool sched`: the kube-scheduler extender.  Reads the
 * command line from a table of options and runs src/sched/extender.c. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "common/log.h"
#include "common/parse.h"
#include "net/client.h"
#include "sched/extender.h"
#include "gpupool/placement.h"

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
	"      --resync DUR           rebuild the view this often even without changes (5s)\n"
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

/* Everything the command line sets. */
struct cfg {
	struct gp_ext_opts e;
	int verbose, help;
};

#define E(m) (offsetof(struct cfg, e) + offsetof(struct gp_ext_opts, m))

static const struct gp_cli_opt opts[] = {
	{"listen", 'l', GP_OPT_STR, E(listen), 0, 0},
	{"ready-file", 0, GP_OPT_STR, E(ready_file), 0, 0},
	{"kubeconfig", 0, GP_OPT_STR, E(kube.kubeconfig), 0, 0},
	{"context", 0, GP_OPT_STR, E(kube.context), 0, 0},
	{"sa-dir", 0, GP_OPT_STR, E(kube.sa_dir), 0, 0},
	{"policy", 'p', GP_OPT_STR, E(policy), 0, 0},
	{"bind-lock-ttl", 0, GP_OPT_MS, E(lock_ttl_ms), 0, 0},
	{"bind-lock-wait", 0, GP_OPT_MS, E(lock_wait_ms), 0, 0},
	{"resync", 0, GP_OPT_MS, E(resync_ms), 0, 0},
	{"node-state-max-age", 0, GP_OPT_MS, E(state_max_age_ms), 0, 0},
	{"api-timeout", 0, GP_OPT_MS, E(kube.timeout_ms), 0, 0},
	{"conflict-retries", 0, GP_OPT_UINT, E(kube.conflict_retries), 1, 1000000},
	{"max-body", 0, GP_OPT_SIZE, E(max_body), 1, (uint64_t)1 << 32},
	{"max-list", 0, GP_OPT_SIZE, E(kube.max_body), 1, (uint64_t)1 << 32},
	{"max-nodes", 0, GP_OPT_UINT, E(max_nodes), 1, 1000000},
	{"verbose", 'v', GP_OPT_FLAG, offsetof(struct cfg, verbose), 0, 0},
	{"help", 'h', GP_OPT_FLAG, offsetof(struct cfg, help), 0, 0},
};

#define NOPTS (sizeof opts / sizeof *opts)

int gp_cli_sched(int argc, char **argv)
{
	struct cfg c = {
		.e = {
			.listen = "127.0.0.1:8888",
			.policy = "ours",
			.lock_ttl_ms = 15000,
			.lock_wait_ms = 5000,
			.resync_ms = 5000,
			.max_body = 32u << 20,
			.max_nodes = 10000,
			.kube = {.timeout_ms = 10000, .max_body = (size_t)64 << 20,
				 .conflict_retries = 5},
		},
	};
	enum gp_log_level level;
	struct gp_policy pol;
	char why[GP_REASON_MAX];
	int rc;

	if ((rc = gp_cli_parse_opts("sched", opts, NOPTS, argc, argv, &c)))
		return rc;
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
