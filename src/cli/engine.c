/* engine.c - `gpupool engine`: the command line of the model-serving data
 * plane (src/swap/engine.c). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/parse.h"
#include "swap/engine.h"

static const char help[] =
	"usage: gpupool engine --models-dir DIR [options]\n"
	"\n"
	"Load models' weights (safetensors files under DIR) into one GPU's memory on\n"
	"request and report what it holds; `gpupool swap` drives it.  Weights come\n"
	"from disk through pinned buffers on several streams, and stay in a pinned\n"
	"host cache for the next load.\n"
	"\n"
	"HTTP API: POST /v1/models/NAME/load {\"weights\": PATH}, POST\n"
	"/v1/models/NAME/unload, GET /v1/models, GET /healthz (docs/swap.md).\n"
	"\n"
	"options:\n"
	"      --models-dir DIR    weights must lie under DIR (required)\n"
	"      --listen ADDR       HTTP address (default 127.0.0.1:8090; :PORT for all)\n"
	"      --gpu N             the device (default 0)\n"
	"      --host-cache SIZE   pinned host memory for weights (default 0: none;\n"
	"                          e.g. 64GiB)\n"
	"      --chunk SIZE        bytes per copy (default 16MiB)\n"
	"      --streams N         copy streams, 1-16 (default 2)\n"
	"      --verify            checksum every load (a CPU pass over the bytes)\n"
	"      --sim               use the simulated GPUs (build/sim)\n"
	"      --lib PATH          the driver library (default libcuda.so.1)\n"
	"      --ready-file PATH   once listening, write {\"pid\":..,\"http_port\":..}\n"
	"\n"
	"serving (a load naming a \"queue\" consumes it while the model is loaded):\n"
	"      --amqp HOST:PORT    the RabbitMQ broker (default: none, no serving)\n"
	"      --amqp-user NAME    (default guest)\n"
	"      --amqp-password-file FILE   (default: the password guest)\n"
	"      --amqp-vhost VHOST  (default /)\n"
	"      --prefetch N        each consumer's prefetch, 1-1000 (default 1)\n"
	"      --svc-base S, --svc-prefill S, --svc-decode S\n"
	"                          service time = base + prefill x context tokens +\n"
	"                          decode x generated tokens (0.05, 0.0001, 0.012)\n"
	"  -v, --verbose           log at info\n"
	"  -h, --help              this text\n";

int gp_cli_engine(int argc, char **argv)
{
	static const struct option opts[] = {
		{"models-dir", required_argument, NULL, 'd'}, {"listen", required_argument, NULL, 'L'},
		{"gpu", required_argument, NULL, 'g'},        {"host-cache", required_argument, NULL, 'c'},
		{"chunk", required_argument, NULL, 'k'},      {"streams", required_argument, NULL, 's'},
		{"verify", no_argument, NULL, 'V'},           {"sim", no_argument, NULL, 'S'},
		{"lib", required_argument, NULL, 'l'},        {"ready-file", required_argument, NULL, 'r'},
		{"verbose", no_argument, NULL, 'v'},          {"help", no_argument, NULL, 'h'},
		{"amqp", required_argument, NULL, 'A'},       {"amqp-user", required_argument, NULL, 'U'},
		{"amqp-password-file", required_argument, NULL, 'P'},
		{"amqp-vhost", required_argument, NULL, 'H'}, {"prefetch", required_argument, NULL, 'p'},
		{"svc-base", required_argument, NULL, 'B'},   {"svc-prefill", required_argument, NULL, 'F'},
		{"svc-decode", required_argument, NULL, 'D'},
		{NULL, 0, NULL, 0},
	};
	struct gp_engine_config c = {.listen = "127.0.0.1:8090", .amqp_user = "guest",
				     .amqp_password = "guest", .amqp_vhost = "/", .prefetch = 1,
				     .svc_base = 0.05, .svc_prefill = 0.0001, .svc_decode = 0.012};
	static char simlib[PATH_MAX + 16], host[256], password[256];
	const char *password_file = NULL;
	int sim = 0, verbose = 0, opt;
	uint64_t v;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': c.models_dir = optarg; break;
		case 'L': c.listen = optarg; break;
		case 'l': c.lib = optarg; break;
		case 'r': c.ready_file = optarg; break;
		case 'V': c.verify = 1; break;
		case 'S': sim = 1; break;
		case 'v': verbose = 1; break;
		case 'h': fputs(help, stdout); return GP_EXIT_OK;
		case 'g':
			if (gp_parse_u64(optarg, &v) || v > 1023)
				return gp_cli_usage_error("engine", "--gpu '%s': want 0-1023", optarg);
			c.gpu = (int)v;
			break;
		case 'c':
		case 'k':
			if (gp_parse_size(optarg, &v) || (opt == 'k' && (v < 4096 || v > (1ull << 30))))
				return gp_cli_usage_error("engine", "--%s '%s': want a size%s",
							  opt == 'c' ? "host-cache" : "chunk", optarg,
							  opt == 'k' ? " from 4KiB to 1GiB" : "");
			if (opt == 'c')
				c.host_cache = v;
			else
				c.chunk = (size_t)v;
			break;
		case 's':
			if (gp_parse_u64(optarg, &v) || v < 1 || v > 16)
				return gp_cli_usage_error("engine", "--streams '%s': want 1-16", optarg);
			c.streams = (unsigned)v;
			break;
		case 'A': {
			const char *colon = strrchr(optarg, ':');
			if (!colon || colon == optarg || (size_t)(colon - optarg) >= sizeof host ||
			    gp_parse_u64(colon + 1, &v) || v < 1 || v > 65535)
				return gp_cli_usage_error("engine", "--amqp '%s': want HOST:PORT",
							  optarg);
			snprintf(host, sizeof host, "%.*s", (int)(colon - optarg), optarg);
			c.amqp_host = host;
			c.amqp_port = (int)v;
			break;
		}
		case 'U': c.amqp_user = optarg; break;
		case 'P': password_file = optarg; break;
		case 'H': c.amqp_vhost = optarg; break;
		case 'p':
			if (gp_parse_u64(optarg, &v) || v < 1 || v > 1000)
				return gp_cli_usage_error("engine", "--prefetch '%s': want 1-1000", optarg);
			c.prefetch = (unsigned)v;
			break;
		case 'B':
		case 'F':
		case 'D': {
			char *end;
			double d = strtod(optarg, &end);
			if (end == optarg || *end || !(d >= 0 && d <= 3600))
				return gp_cli_usage_error("engine", "--%s '%s': want seconds from 0 "
							  "to 3600", opt == 'B' ? "svc-base"
							  : opt == 'F' ? "svc-prefill" : "svc-decode", optarg);
			*(opt == 'B' ? &c.svc_base : opt == 'F' ? &c.svc_prefill : &c.svc_decode) = d;
			break;
		}
		default:
			return gp_cli_usage_error("engine", "unknown or incomplete option '%s' (see "
					"--help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return gp_cli_usage_error("engine", "unexpected argument '%s'", argv[optind]);
	if (!c.models_dir)
		return gp_cli_usage_error("engine", "--models-dir is required");
	if (sim && c.lib)
		return gp_cli_usage_error("engine", "--sim and --lib name two drivers");
	if (password_file) {
		FILE *f = fopen(password_file, "r");
		size_t n = f ? fread(password, 1, sizeof password - 1, f) : 0;
		if (!f) {
			fprintf(stderr, "gpupool engine: --amqp-password-file %s: %s\n", password_file,
				strerror(errno));
			return GP_EXIT_FAIL;
		}
		fclose(f);
		password[n] = '\0';
		if (n && password[n - 1] == '\n')
			password[n - 1] = '\0';
		c.amqp_password = password;
	}
	gp_log_setup(verbose ? GP_LOG_INFO : GP_LOG_WARN, "engine");
	if (sim) {
		char dir[PATH_MAX];
		if (gp_cli_sim_env("engine", dir, sizeof dir))
			return GP_EXIT_FAIL;
		snprintf(simlib, sizeof simlib, "%.*s/libcuda.so.1", PATH_MAX - 1, dir);
		c.lib = simlib;
	}
	return gp_engine_run(&c) == 0 ? GP_EXIT_OK : GP_EXIT_FAIL;
}
