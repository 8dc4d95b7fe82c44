/* swap.c - `gpupool swap`: the command line of the model-hotswap controller
 * (src/swap/controller.c). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/parse.h"
#include "net/client.h"
#include "scaler/options.h"
#include "swap/catalog.h"
#include "swap/controller.h"

static const char help[] =
	"usage: gpupool swap --catalog FILE [options]\n"
	"\n"
	"Keep a fixed pool of inference engines serving the models the traffic wants:\n"
	"every round, check the engines, read each model's demand from its RabbitMQ\n"
	"queue, plan (every model at or above its minimum, memory per engine, fewest\n"
	"bytes moved, hysteresis) and swap models in and out through the engines'\n"
	"adapters (vLLM sleep mode, Triton's model repository, gpupool engine).\n"
	"State: GET /v1/plan, /v1/engines, /v1/models, /metrics, /healthz.\n"
	"\n"
	"options:\n"
	"      --catalog FILE      the models and engines (YAML; docs/swap.md)\n"
	"      --listen ADDR       HTTP address (default 127.0.0.1:8091; :PORT for all)\n"
	"      --round DURATION    between planning rounds (default 2s)\n"
	"      --health-fails N    failed health checks in a row that lose an engine\n"
	"                          (default 2)\n"
	"      --horizon DURATION  how far ahead demand is forecast (default 30s)\n"
	"      --host-bw GBPS      host memory to GPU, for planning (default 20)\n"
	"      --disk-bw GBPS      disk to GPU, for planning (default 2)\n"
	"      --target X          share of a replica's throughput demand may use\n"
	"                          before another is wanted, (0, 1] (default 0.7)\n"
	"      --hold DURATION     low demand must last this long before a replica may\n"
	"                          go (default 120s)\n"
	"      --ready-file PATH   once listening, write {\"pid\":..,\"http_port\":..}\n"
	"  -v, --verbose           log at info\n"
	"  -h, --help              this text\n"
	"\n"
	"The RabbitMQ password of the catalog's rabbitmq.user is read from its\n"
	"rabbitmq.password_file, or GPUPOOL_RABBITMQ_PASSWORD.\n";

/* A positive duration in seconds. */
static int seconds(const char *name, const char *v, double *out)
{
	double ms;

	if (gp_scaler_parse_duration(v, &ms) || !(ms > 0) || ms > 86400e3) {
		gp_cli_usage_error("swap", "--%s '%s': want a duration (500ms, 2s, 1m)", name, v);
		return -1;
	}
	*out = ms / 1000.0;
	return 0;
}

static int number(const char *name, const char *v, double lo, double hi, double *out)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v || *end || !isfinite(d) || d <= lo || d > hi) {
		gp_cli_usage_error("swap", "--%s '%s': want a number above %g and at most %g", name,
				   v, lo, hi);
		return -1;
	}
	*out = d;
	return 0;
}

/* The password file's first line. */
static int read_password(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");
	size_t got;

	if (!f)
		return -errno;
	got = fread(buf, 1, n - 1, f);
	fclose(f);
	buf[got] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

int gp_cli_swap(int argc, char **argv)
{
	static const struct option opts[] = {
		{"catalog", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'L'},
		{"round", required_argument, NULL, 'r'},   {"health-fails", required_argument, NULL, 'f'},
		{"horizon", required_argument, NULL, 'H'}, {"host-bw", required_argument, NULL, 'b'},
		{"disk-bw", required_argument, NULL, 'd'}, {"target", required_argument, NULL, 't'},
		{"hold", required_argument, NULL, 'o'},    {"ready-file", required_argument, NULL, 'R'},
		{"verbose", no_argument, NULL, 'v'},       {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gp_swap_config c = {.listen = "127.0.0.1:8091", .round_s = 2, .health_fails = 2,
				   .horizon_s = 30, .host_bw = 20e9, .disk_bw = 2e9};
	struct gp_swap_catalog *cat = NULL;
	const char *catalog = NULL;
	static char password[1024];
	char err[1024];
	int verbose = 0, opt, rc;
	uint64_t v;
	double d;

	gp_planner_config_default(&c.planner);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': catalog = optarg; break;
		case 'L': c.listen = optarg; break;
		case 'R': c.ready_file = optarg; break;
		case 'v': verbose = 1; break;
		case 'h': fputs(help, stdout); return GP_EXIT_OK;
		case 'r':
			if (seconds("round", optarg, &c.round_s))
				return GP_EXIT_USAGE;
			break;
		case 'H':
			if (seconds("horizon", optarg, &c.horizon_s))
				return GP_EXIT_USAGE;
			break;
		case 'o':
			if (seconds("hold", optarg, &c.planner.hold_s))
				return GP_EXIT_USAGE;
			break;
		case 'f':
			if (gp_parse_u64(optarg, &v) || v < 1 || v > 100)
				return gp_cli_usage_error("swap", "--health-fails '%s': want 1-100",
							  optarg);
			c.health_fails = (unsigned)v;
			break;
		case 'b':
		case 'd':
			if (number(opt == 'b' ? "host-bw" : "disk-bw", optarg, 0, 1e4, &d))
				return GP_EXIT_USAGE;
			*(opt == 'b' ? &c.host_bw : &c.disk_bw) = d * 1e9;
			break;
		case 't':
			if (number("target", optarg, 0, 1, &c.planner.target_util))
				return GP_EXIT_USAGE;
			break;
		default:
			return gp_cli_usage_error("swap", "unknown or incomplete option '%s' (see "
					"--help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return gp_cli_usage_error("swap", "unexpected argument '%s'", argv[optind]);
	if (!catalog)
		return gp_cli_usage_error("swap", "--catalog is required");
	gp_log_setup(verbose ? GP_LOG_INFO : GP_LOG_WARN, "swap");
	if (gp_client_init() != 0) {
		fprintf(stderr, "gpupool swap: cannot initialise the HTTP client\n");
		return GP_EXIT_FAIL;
	}
	if ((rc = gp_swap_catalog_load(catalog, &cat, err, sizeof err))) {
		fprintf(stderr, "gpupool swap: %s\n", err);
		return GP_EXIT_FAIL;
	}
	c.catalog = cat;
	if (cat->rabbitmq.password_file) {
		if ((rc = read_password(cat->rabbitmq.password_file, password, sizeof password))) {
			fprintf(stderr, "gpupool swap: rabbitmq.password_file %s: %s\n",
				cat->rabbitmq.password_file, strerror(-rc));
			gp_swap_catalog_free(cat);
			return GP_EXIT_FAIL;
		}
		c.rabbit_password = password;
	} else {
		c.rabbit_password = getenv("GPUPOOL_RABBITMQ_PASSWORD");
	}
	rc = gp_swap_run(&c);
	gp_swap_catalog_free(cat);
	return rc == 0 ? GP_EXIT_OK : GP_EXIT_FAIL;
}
