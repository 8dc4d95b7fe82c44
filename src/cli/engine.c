/* engine.c - `gpupool engine`: the command line of the model-serving data
 * plane (src/swap/engine.c). */
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
		{NULL, 0, NULL, 0},
	};
	struct gp_engine_config c = {.listen = "127.0.0.1:8090"};
	static char simlib[PATH_MAX + 16];
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
