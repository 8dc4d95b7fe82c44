/* agent.c - `gpupool agent`: the command line of the node daemon
 * (src/agent/agent.h does the work). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "common/log.h"
#include "common/parse.h"
#include "net/client.h"
#include "scaler/options.h"

static const char help[] =
	"usage: gpupool agent [options]\n"
	"\n"
	"The node agent: finds the node's GPUs (NVML) and its tenants (the region\n"
	"files libgpupool.so writes under STATE-DIR/tenants/POD-UID/CONTAINER/),\n"
	"serves Prometheus metrics and JSON for both, writes the Node's\n"
	"gpupool.io/node-state annotation for `gpupool sched`, and acts on pods\n"
	"whose GPUs sit idle.  See docs/agent.md.\n"
	"\n"
	"node:\n"
	"      --state-dir DIR        tenants' regions live under DIR/tenants\n"
	"                             (default /var/lib/gpupool)\n"
	"      --node NAME            this node's name (default $NODE_NAME, else the\n"
	"                             host name)\n"
	"      --sim                  use the simulated GPUs (build/sim), the machine\n"
	"                             `gpupool run --sim` uses\n"
	"      --nvml PATH            the NVML library to load (default\n"
	"                             libnvidia-ml.so.1)\n"
	"      --interval DURATION    between collections (default 1s)\n"
	"      --max-tenants N        regions read per collection (default 1024)\n"
	"      --ignore-xid LIST      XIDs that leave a card healthy (default\n"
	"                             13,31,43,45,68,109: application errors)\n"
	"\n"
	"Kubernetes (used when --kubeconfig is given or in a pod):\n"
	"      --kubeconfig FILE      credentials (default: in-cluster)\n"
	"      --no-kube              never talk to the API server\n"
	"      --heartbeat DURATION   rewrite gpupool.io/node-state this often\n"
	"                             (default 30s; at once when a card changes)\n"
	"      --resync DURATION      re-list the node's pods this often (default 30s)\n"
	"      --slices N             tenants per card in the node state and devices\n"
	"                             per card for kubelet (default 10)\n"
	"      --device-plugin        serve kubelet's device-plugin API: the\n"
	"                             resources gpupool.io/vgpu and gpupool.io/vgpu-MODEL\n"
	"                             per card model; installs the library into\n"
	"                             STATE-DIR/lib first\n"
	"      --kubelet-dir DIR      kubelet's device-plugin directory (default\n"
	"                             /var/lib/kubelet/device-plugins)\n"
	"      --hami-names           register HAMi's nvidia.com/gpu instead (clusters\n"
	"                             moving from HAMi)\n"
	"      --lib PATH             the libgpupool.so to install (default: the one\n"
	"                             next to this gpupool)\n"
	"\n"
	"idle pods:\n"
	"      --idle-after DURATION  a pod whose tenants launched no kernel and made\n"
	"                             no copy for this long is idle: it is annotated\n"
	"                             gpupool.io/idle-since and an Event is recorded\n"
	"      --idle-action ACTION   mark (default) or evict (through the Eviction\n"
	"                             API, which honours PodDisruptionBudgets;\n"
	"                             a refused eviction is retried every --resync)\n"
	"      --idle-exec CMD        also run `sh -c CMD gpupool-idle NAMESPACE POD`\n"
	"                             once per idle episode (GPUPOOL_IDLE_NAMESPACE,\n"
	"                             _POD, _POD_UID, _SECONDS are set too)\n"
	"      --idle-exec-timeout DURATION  kill CMD after this (default 5m)\n"
	"                             Pods annotated gpupool.io/idle-exempt: \"true\"\n"
	"                             are left alone.\n"
	"\n"
	"serving:\n"
	"      --listen ADDR          HTTP address (default :9400; off)\n"
	"      --ready-file PATH      once serving, write {\"pid\",\"http_port\"} there\n"
	"  -v, --verbose              log more (GPUPOOL_LOG=info)\n"
	"  -h, --help                 this text\n"
	"\n"
	"HTTP: /metrics (Prometheus), /v1/gpus, /v1/tenants (JSON), /healthz.\n"
	"DURATION is 500ms, 5s, 1.5m, 1h or a number of seconds.\n"
	"\n"
	"examples:\n"
	"  gpupool agent --sim --state-dir /tmp/gp --listen 127.0.0.1:9400\n"
	"  gpupool agent --idle-after 8h --idle-action evict\n";

enum {
	O_STATE = 256, O_NODE, O_SIM, O_NVML, O_INTERVAL, O_MAX_TENANTS, O_IGNORE_XID, O_KUBECONFIG,
	O_NO_KUBE, O_HEARTBEAT, O_RESYNC, O_SLICES, O_IDLE_AFTER, O_IDLE_ACTION, O_IDLE_EXEC,
	O_IDLE_EXEC_TIMEOUT, O_LISTEN, O_READY, O_DEVICE_PLUGIN, O_KUBELET_DIR, O_HAMI_NAMES, O_LIB,
};

static const struct option longopts[] = {
	{"state-dir", required_argument, NULL, O_STATE},
	{"node", required_argument, NULL, O_NODE},
	{"sim", no_argument, NULL, O_SIM},
	{"nvml", required_argument, NULL, O_NVML},
	{"interval", required_argument, NULL, O_INTERVAL},
	{"max-tenants", required_argument, NULL, O_MAX_TENANTS},
	{"ignore-xid", required_argument, NULL, O_IGNORE_XID},
	{"kubeconfig", required_argument, NULL, O_KUBECONFIG},
	{"no-kube", no_argument, NULL, O_NO_KUBE},
	{"heartbeat", required_argument, NULL, O_HEARTBEAT},
	{"resync", required_argument, NULL, O_RESYNC},
	{"slices", required_argument, NULL, O_SLICES},
	{"idle-after", required_argument, NULL, O_IDLE_AFTER},
	{"idle-action", required_argument, NULL, O_IDLE_ACTION},
	{"idle-exec", required_argument, NULL, O_IDLE_EXEC},
	{"idle-exec-timeout", required_argument, NULL, O_IDLE_EXEC_TIMEOUT},
	{"listen", required_argument, NULL, O_LISTEN},
	{"ready-file", required_argument, NULL, O_READY},
	{"device-plugin", no_argument, NULL, O_DEVICE_PLUGIN},
	{"kubelet-dir", required_argument, NULL, O_KUBELET_DIR},
	{"hami-names", no_argument, NULL, O_HAMI_NAMES},
	{"lib", required_argument, NULL, O_LIB},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* A duration of at least min_ms into *ms. */
static int duration(const char *name, const char *v, double min_ms, uint64_t *ms)
{
	double d;

	if (gp_scaler_parse_duration(v, &d) || d < min_ms || d > 1e12) {
		gp_cli_usage_error("agent", "--%s '%s': want a duration of at least %gms (5s, 2m, "
					    "8h)", name, v, min_ms);
		return -1;
	}
	*ms = (uint64_t)d;
	return 0;
}

static int count(const char *name, const char *v, uint64_t lo, uint64_t hi, unsigned *out)
{
	uint64_t n;

	if (gp_parse_u64(v, &n) || n < lo || n > hi) {
		gp_cli_usage_error("agent", "--%s '%s': want an integer from %llu to %llu", name, v,
				   (unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

static int xids(const char *v, struct gp_agent_config *c)
{
	const char *cur = v, *item;
	size_t len;

	c->nignore_xids = 0;
	while ((item = gp_list_next(&cur, ',', &len))) {
		char buf[16];
		uint64_t x;

		if (len == 0 || len >= sizeof buf || c->nignore_xids >= GP_AGENT_MAX_XIDS)
			goto bad;
		memcpy(buf, item, len);
		buf[len] = '\0';
		if (gp_parse_u64(buf, &x) || x == 0 || x > 65535)
			goto bad;
		c->ignore_xids[c->nignore_xids++] = (unsigned)x;
	}
	return 0;
bad:
	gp_cli_usage_error("agent", "--ignore-xid '%s': want up to %u XID numbers, comma-separated",
			   v, GP_AGENT_MAX_XIDS);
	return -1;
}

/* A Node's name is a DNS subdomain; host names may come in capitals. */
static int node_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return 0;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", *s))
			return 0;
	return 1;
}

int gp_cli_agent(int argc, char **argv)
{
	static char host[HOST_NAME_MAX + 1], nvml[PATH_MAX + 32], lib[PATH_MAX + 32];
	struct gp_agent_config c = {
		.listen = ":9400", .state_dir = "/var/lib/gpupool", .interval_ms = 1000,
		.heartbeat_ms = 30000, .resync_ms = 30000, .idle_exec_timeout_ms = 300000,
		.slices = 10, .max_tenants = 1024, .kubelet_dir = "/var/lib/kubelet/device-plugins",
	};
	int sim = 0, no_kube = 0, verbose = 0, opt, rc;

	while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (opt) {
		case O_STATE: c.state_dir = optarg; break;
		case O_NODE: c.node_name = optarg; break;
		case O_SIM: sim = 1; break;
		case O_NVML: c.nvml_path = optarg; break;
		case O_INTERVAL:
			if (duration("interval", optarg, 50, &c.interval_ms))
				return GP_EXIT_USAGE;
			break;
		case O_MAX_TENANTS:
			if (count("max-tenants", optarg, 1, 65536, &c.max_tenants))
				return GP_EXIT_USAGE;
			break;
		case O_IGNORE_XID:
			if (xids(optarg, &c))
				return GP_EXIT_USAGE;
			break;
		case O_KUBECONFIG: c.kubeconfig = optarg; break;
		case O_NO_KUBE: no_kube = 1; break;
		case O_HEARTBEAT:
			if (duration("heartbeat", optarg, 1000, &c.heartbeat_ms))
				return GP_EXIT_USAGE;
			break;
		case O_RESYNC:
			if (duration("resync", optarg, 1000, &c.resync_ms))
				return GP_EXIT_USAGE;
			break;
		case O_SLICES:
			if (count("slices", optarg, 1, 1024, &c.slices))
				return GP_EXIT_USAGE;
			break;
		case O_IDLE_AFTER:
			if (duration("idle-after", optarg, 1000, &c.idle_after_ms))
				return GP_EXIT_USAGE;
			break;
		case O_IDLE_ACTION:
			if (strcmp(optarg, "mark") == 0)
				c.idle_action = GP_IDLE_MARK;
			else if (strcmp(optarg, "evict") == 0)
				c.idle_action = GP_IDLE_EVICT;
			else
				return gp_cli_usage_error("agent", "--idle-action '%s': want mark or "
								   "evict", optarg);
			break;
		case O_IDLE_EXEC:
			if (!*optarg)
				return gp_cli_usage_error("agent", "--idle-exec: empty command");
			c.idle_exec = optarg;
			break;
		case O_IDLE_EXEC_TIMEOUT:
			if (duration("idle-exec-timeout", optarg, 100, &c.idle_exec_timeout_ms))
				return GP_EXIT_USAGE;
			break;
		case O_LISTEN: c.listen = strcmp(optarg, "off") ? optarg : NULL; break;
		case O_READY: c.ready_file = optarg; break;
		case O_DEVICE_PLUGIN: c.device_plugin = 1; break;
		case O_KUBELET_DIR: c.kubelet_dir = optarg; break;
		case O_HAMI_NAMES: c.hami_names = 1; break;
		case O_LIB: c.lib = optarg; break;
		case 'v': verbose = 1; break;
		case 'h': fputs(help, stdout); return GP_EXIT_OK;
		default: return gp_cli_usage_error("agent", "bad option");
		}
	}
	if (optind < argc)
		return gp_cli_usage_error("agent", "unexpected argument '%s'", argv[optind]);
	if ((c.idle_action == GP_IDLE_EVICT || c.idle_exec) && !c.idle_after_ms)
		return gp_cli_usage_error("agent", "--idle-action evict and --idle-exec need "
						   "--idle-after");
	if (sim && c.nvml_path)
		return gp_cli_usage_error("agent", "--sim and --nvml name two NVML libraries");
	if (!c.node_name)
		c.node_name = getenv("NODE_NAME");
	if (!c.node_name || !*c.node_name) {
		if (gethostname(host, sizeof host - 1) != 0) {
			fprintf(stderr, "gpupool agent: no --node and no host name: %s\n",
				strerror(errno));
			return GP_EXIT_FAIL;
		}
		c.node_name = host;
	}
	if (!node_name_ok(c.node_name))
		return gp_cli_usage_error("agent", "--node '%s': not a node name (1-253 of a-z 0-9 "
						   ". -, as Kubernetes names nodes)", c.node_name);
	if (sim) {
		char simdir[PATH_MAX];

		if (gp_cli_sim_env("agent", simdir, sizeof simdir))
			return GP_EXIT_FAIL;
		snprintf(nvml, sizeof nvml, "%s/libnvidia-ml.so.1", simdir);
		c.nvml_path = nvml;
	}
	c.kube = !no_kube && (c.kubeconfig || getenv("KUBERNETES_SERVICE_HOST"));
	if ((c.hami_names || c.lib) && !c.device_plugin)
		return gp_cli_usage_error("agent", "--hami-names and --lib go with --device-plugin");
	if (c.device_plugin && !c.lib) {
		char dir[PATH_MAX];

		if (gp_cli_self_dir(dir, sizeof dir) == 0) {
			snprintf(lib, sizeof lib, "%s/libgpupool.so", dir);
			c.lib = lib;
		}
		if (!c.lib || access(c.lib, R_OK) != 0)
			return gp_cli_usage_error("agent", "--device-plugin: no libgpupool.so next "
							   "to gpupool: name it with --lib");
	}
	{
		enum gp_log_level level = GP_LOG_WARN;

		if (gp_log_parse_level(getenv("GPUPOOL_LOG"), &level) != 0)
			level = GP_LOG_WARN;
		if (verbose && level < GP_LOG_INFO)
			level = GP_LOG_INFO;
		gp_log_setup(level, "agent");
	}
	if (c.kube && gp_client_init() != 0) {
		fprintf(stderr, "gpupool agent: cannot initialise libcurl\n");
		return GP_EXIT_FAIL;
	}
	rc = gp_agent_run(&c);
	return rc ? GP_EXIT_FAIL : GP_EXIT_OK;
}
