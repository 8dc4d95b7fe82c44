/* main.c - gpupool: entry point and the table of subcommands. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>

#include "cli/cli.h"

#ifndef GP_VERSION
#define GP_VERSION "0.1.0"
#endif

static const struct {
	const char *name;
	gp_cli_fn fn;
	const char *summary;
} commands[] = {
	{"agent", gp_cli_agent, "node agent: GPUs, tenants, metrics, node state, idle pods"},
	{"engine", gp_cli_engine, "model-serving data plane: load weights onto a GPU on request"},
	{"run", gp_cli_run, "run a program under a GPU memory budget"},
	{"scaler", gp_cli_scaler, "KEDA adapter: RabbitMQ consumer saturation and its forecast"},
	{"sched", gp_cli_sched, "kube-scheduler extender: fragmentation-aware vGPU placement"},
	{"swap", gp_cli_swap, "model hotswap: which models live on which engines of a pool"},
	{"top", gp_cli_top, "live view of a node's GPUs and tenants"},
	{"webhook", gp_cli_webhook, "admission webhook: routes GPU pods to gpupool, refuses bad ones"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: gpupool <command> [options] [--help]\n\n"
		   "gpupool shares GPUs between containers: hard device-memory budgets\n"
		   "inside unmodified CUDA programs, and the node and cluster parts that\n"
		   "build on them.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n`gpupool <command> --help` describes a command.\n");
}

int gp_cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "gpupool %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see `gpupool %s --help`)\n", cmd);
	return GP_EXIT_USAGE;
}

int gp_cli_self_dir(char *buf, unsigned long n)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);

	if (len < 0)
		return -errno;
	const char *d;

	exe[len] = '\0';
	d = dirname(exe);
	if (strlen(d) >= n)
		return -ENAMETOOLONG;
	strcpy(buf, d);
	return 0;
}

const char *gp_cli_runtime_dir(void)
{
	const char *d = getenv("XDG_RUNTIME_DIR");

	if (!d || !*d)
		d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

int gp_cli_sim_env(const char *cmd, char *simdir, unsigned long n)
{
	char dir[PATH_MAX], state[PATH_MAX];
	int rc = gp_cli_self_dir(dir, sizeof dir);

	if (rc) {
		fprintf(stderr, "gpupool %s: cannot find my own directory: %s\n", cmd,
			strerror(-rc));
		return -1;
	}
	if ((unsigned long)snprintf(simdir, n, "%s/sim", dir) >= n || access(simdir, X_OK)) {
		fprintf(stderr, "gpupool %s: --sim: %s: %s\n", cmd, simdir, strerror(errno));
		return -1;
	}
	snprintf(state, sizeof state, "%s/gpupool-sim-%u.state", gp_cli_runtime_dir(),
		 (unsigned)getuid());
	if (!getenv("GPUPOOL_SIM_STATE") && setenv("GPUPOOL_SIM_STATE", state, 1)) {
		fprintf(stderr, "gpupool %s: cannot set GPUPOOL_SIM_STATE: %s\n", cmd,
			strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return GP_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return GP_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("gpupool %s\n", GP_VERSION);
		return GP_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "gpupool: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return GP_EXIT_USAGE;
}
