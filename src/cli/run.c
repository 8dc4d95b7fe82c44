/* run.c - `gpupool run`: start a program under the hook with a budget.
 *
 * The program gets libgpupool.so preloaded, its limits in the environment
 * and a fresh region file of its own (all its processes share the budget),
 * removed again when it ends.  gpupool waits for it, passes on the signals
 * a terminal or supervisor sends, and exits with its status.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/parse.h"

static const char help[] =
	"usage: gpupool run [options] [--] COMMAND [ARGS...]\n"
	"\n"
	"Run COMMAND with libgpupool.so preloaded, so that every CUDA program it\n"
	"starts shares one device-memory budget and sees a card of that size.\n"
	"\n"
	"options:\n"
	"  -m, --memory SIZE     budget per GPU: bytes, a size with a binary unit\n"
	"                        (2GiB, 512MiB, 2G) or a share of the card (50%)\n"
	"  -c, --cores PCT       compute share per GPU, 1-100\n"
	"      --policy P        hard (never more than --cores), elastic (default:\n"
	"                        idle time beyond it when nobody else wants the\n"
	"                        GPU) or off\n"
	"  -p, --priority P      high, normal (default) or low: low runs are held\n"
	"                        back while a high one has work on the GPU\n"
	"      --node PATH       the node file where runs see each other's demand\n"
	"                        (elastic shares, priority); every run that should\n"
	"                        arbitrate needs the same one.  Default: with\n"
	"                        --tenant, STATE-DIR/node; else none (elastic then\n"
	"                        acts as hard, priority does nothing)\n"
	"      --region PATH     share the budget with other runs given this path\n"
	"                        (default: a fresh region, removed at exit)\n"
	"      --tenant POD/CONTAINER  be the node agent's tenant POD/CONTAINER: the\n"
	"                        region STATE-DIR/tenants/POD/CONTAINER/region, kept\n"
	"                        after exit for the agent to show (and collect)\n"
	"      --state-dir DIR   the agent's state directory (default\n"
	"                        /var/lib/gpupool)\n"
	"      --sim             run on the simulated GPUs (build/sim); the machine\n"
	"                        is shared by every --sim run of this user unless\n"
	"                        GPUPOOL_SIM_STATE names another state file\n"
	"  -v, --verbose         let the library log what it does (GPUPOOL_LOG=info)\n"
	"  -h, --help            this text\n"
	"\n"
	"The exit status is COMMAND's (128+N if killed by signal N); 2 for a usage\n"
	"error, 1 if gpupool itself fails, 127 if COMMAND cannot be started.\n"
	"\n"
	"examples:\n"
	"  gpupool run --memory 4GiB -- python3 train.py\n"
	"  gpupool run --sim -m 2GiB -- ./my_cuda_program\n"
	"  gpupool run --sim -m 2GiB --state-dir /tmp/gp --tenant demo/main -- ./prog\n";

static pid_t child;

/* Pass on a signal sent to us by a process (kill, a supervisor).  One the
 * terminal generated (Ctrl-C) went to the whole foreground process group,
 * the program included: passing it on would deliver it twice. */
static void forward(int sig, siginfo_t *info, void *uctx)
{
	(void)uctx;
	if (child > 0 && (info->si_code == SI_USER || info->si_code == SI_QUEUE) &&
	    info->si_pid != child)
		kill(child, sig);
}

/* setenv that reports failure (only ENOMEM in practice). */
static int put(const char *k, const char *v)
{
	if (setenv(k, v, 1) == 0)
		return 0;
	fprintf(stderr, "gpupool run: cannot set %s: %s\n", k, strerror(errno));
	return -1;
}

/* Prepend `dir` to the colon list in variable `var`. */
static int prepend(const char *var, const char *dir)
{
	const char *old = getenv(var);
	char *v;
	int rc;

	if (asprintf(&v, "%s%s%s", dir, old && *old ? ":" : "", old ? old : "") < 0)
		return -1;
	rc = put(var, v);
	free(v);
	return rc;
}

#ifdef __SANITIZE_ADDRESS__
#include <dlfcn.h>
/* A sanitizer build of libgpupool.so (make check) needs the ASan runtime
 * loaded before it: preload the one this gpupool runs with, first. */
static int preload_sanitizer(void)
{
	void *sym = dlsym(RTLD_DEFAULT, "__asan_init");
	Dl_info info;

	if (!sym || !dladdr(sym, &info) || !info.dli_fname)
		return 0;
	return prepend("LD_PRELOAD", info.dli_fname);
}
#else
static int preload_sanitizer(void)
{
	return 0;
}
#endif

/* Is s a tenant name (1-63 of [A-Za-z0-9._-], not starting with a dot:
 * what the agent reads)? */
static int name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", s[i]))
			return 0;
	return 1;
}

/* mkdir that accepts an existing directory. */
static int mkdir_ok(const char *path)
{
	if (mkdir(path, 0755) == 0 || errno == EEXIST)
		return 0;
	fprintf(stderr, "gpupool run: cannot create %s: %s\n", path, strerror(errno));
	return -1;
}

/* The region path of tenant "POD/CONTAINER" under state_dir, creating its
 * directories.  Returns 0, -EINVAL for a bad name, -EIO (said why). */
static int tenant_region(const char *tenant, const char *state_dir, char *out, size_t n)
{
	const char *slash = strchr(tenant, '/');
	char path[PATH_MAX];

	if (!slash || !name_ok(tenant, (size_t)(slash - tenant)) ||
	    !name_ok(slash + 1, strlen(slash + 1)))
		return -EINVAL;
	if ((size_t)snprintf(out, n, "%s/tenants/%s/region", state_dir, tenant) >= n) {
		fprintf(stderr, "gpupool run: --state-dir %s: path too long\n", state_dir);
		return -EIO;
	}
	snprintf(path, sizeof path, "%s/tenants", state_dir);
	if (mkdir_ok(state_dir) || mkdir_ok(path))
		return -EIO;
	snprintf(path, sizeof path, "%s/tenants/%.*s", state_dir, (int)(slash - tenant), tenant);
	if (mkdir_ok(path))
		return -EIO;
	snprintf(path, sizeof path, "%s/tenants/%s", state_dir, tenant);
	return mkdir_ok(path) ? -EIO : 0;
}

/* Wait for the child, forwarding signals; returns the exit code to use. */
static int wait_child(void)
{
	struct sigaction sa = {.sa_sigaction = forward, .sa_flags = SA_SIGINFO};
	const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	int status;

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaction(sigs[i], &sa, NULL);
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("gpupool run: waitpid");
			return GP_EXIT_FAIL;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int gp_cli_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"memory", required_argument, NULL, 'm'}, {"cores", required_argument, NULL, 'c'},
		{"priority", required_argument, NULL, 'p'}, {"region", required_argument, NULL, 'r'},
		{"sim", no_argument, NULL, 's'},           {"verbose", no_argument, NULL, 'v'},
		{"tenant", required_argument, NULL, 't'},  {"state-dir", required_argument, NULL, 'S'},
		{"policy", required_argument, NULL, 'P'},  {"node", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	const char *memory = NULL, *cores = NULL, *priority = NULL, *region = NULL;
	const char *policy = NULL, *node = NULL;
	char tnode[PATH_MAX];
	const char *tenant = NULL, *state_dir = "/var/lib/gpupool";
	char dir[PATH_MAX], lib[PATH_MAX + 32], region_tmp[PATH_MAX] = "", tregion[PATH_MAX];
	int sim = 0, verbose = 0, c, rc;
	struct gp_limit lim;
	unsigned pct;

	/* '+': stop at the first non-option, which is COMMAND. */
	while ((c = getopt_long(argc, argv, "+m:c:p:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'm': memory = optarg; break;
		case 'c': cores = optarg; break;
		case 'p': priority = optarg; break;
		case 'r': region = optarg; break;
		case 's': sim = 1; break;
		case 't': tenant = optarg; break;
		case 'S': state_dir = optarg; break;
		case 'P': policy = optarg; break;
		case 'n': node = optarg; break;
		case 'v': verbose = 1; break;
		case 'h': fputs(help, stdout); return GP_EXIT_OK;
		default: return gp_cli_usage_error("run", "bad option");
		}
	}
	if (optind >= argc)
		return gp_cli_usage_error("run", "no COMMAND given");
	if (memory && gp_parse_limit(memory, &lim))
		return gp_cli_usage_error("run", "--memory %s: not a size (2GiB, 512MiB, bytes) or "
						 "a share (50%%) greater than 0", memory);
	if (cores && gp_parse_percent(cores, 1, 100, &pct))
		return gp_cli_usage_error("run", "--cores %s: not a percentage from 1 to 100", cores);
	if (priority && strcmp(priority, "high") && strcmp(priority, "normal") &&
	    strcmp(priority, "low"))
		return gp_cli_usage_error("run", "--priority %s: not high, normal or low", priority);
	if (policy && strcmp(policy, "hard") && strcmp(policy, "elastic") && strcmp(policy, "off"))
		return gp_cli_usage_error("run", "--policy %s: not hard, elastic or off", policy);
	if (node && !*node)
		return gp_cli_usage_error("run", "--node: empty path");

	if (tenant && region)
		return gp_cli_usage_error("run", "--tenant and --region both name the region");
	if (tenant) {
		rc = tenant_region(tenant, state_dir, tregion, sizeof tregion);
		if (rc == -EINVAL)
			return gp_cli_usage_error("run", "--tenant %s: want POD/CONTAINER, each 1-63 "
							 "of A-Z a-z 0-9 . _ -", tenant);
		if (rc)
			return GP_EXIT_FAIL;
		region = tregion;
		if (!node && (size_t)snprintf(tnode, sizeof tnode, "%s/node", state_dir) < sizeof tnode)
			node = tnode;
	}
	if ((rc = gp_cli_self_dir(dir, sizeof dir))) {
		fprintf(stderr, "gpupool run: cannot find my own directory: %s\n", strerror(-rc));
		return GP_EXIT_FAIL;
	}
	snprintf(lib, sizeof lib, "%s/libgpupool.so", dir);
	if (access(lib, R_OK)) {
		fprintf(stderr, "gpupool run: %s: %s (is gpupool built?)\n", lib, strerror(errno));
		return GP_EXIT_FAIL;
	}
	if (!region && !getenv("GPUPOOL_REGION")) {
		int fd;
		snprintf(region_tmp, sizeof region_tmp, "%s/gpupool-region-XXXXXX", gp_cli_runtime_dir());
		fd = mkstemp(region_tmp);
		if (fd < 0) {
			fprintf(stderr, "gpupool run: cannot create a region file in %s: %s\n",
				gp_cli_runtime_dir(), strerror(errno));
			return GP_EXIT_FAIL;
		}
		close(fd); /* the library sizes and initialises it */
		region = region_tmp;
	}

	if (prepend("LD_PRELOAD", lib) || preload_sanitizer() ||
	    (memory && put("GPUPOOL_MEMORY_LIMIT", memory)) ||
	    (cores && put("GPUPOOL_CORE_LIMIT", cores)) ||
	    (priority && put("GPUPOOL_PRIORITY", priority)) ||
	    (policy && put("GPUPOOL_CORE_POLICY", policy)) || (node && put("GPUPOOL_NODE", node)) ||
	    (region && put("GPUPOOL_REGION", region)) || (verbose && put("GPUPOOL_LOG", "info")))
		goto fail;
	if (sim) {
		char simdir[PATH_MAX];

		if (gp_cli_sim_env("run", simdir, sizeof simdir) || prepend("LD_LIBRARY_PATH", simdir))
			goto fail;
	}

	child = fork();
	if (child < 0) {
		perror("gpupool run: fork");
		goto fail;
	}
	if (child == 0) {
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "gpupool run: %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	rc = wait_child();
	if (region_tmp[0])
		unlink(region_tmp);
	return rc;
fail:
	if (region_tmp[0])
		unlink(region_tmp);
	return GP_EXIT_FAIL;
}
