/* cli.h - the gpupool command: its subcommands and what they share. */
#ifndef GP_CLI_CLI_H
#define GP_CLI_CLI_H

/* Exit codes of every subcommand (DESIGN.md, "Command line"). */
enum { GP_EXIT_OK = 0, GP_EXIT_FAIL = 1, GP_EXIT_USAGE = 2 };

/* A subcommand: argv[0] is its name.  Returns the process exit code. */
typedef int (*gp_cli_fn)(int argc, char **argv);

int gp_cli_agent(int argc, char **argv);
int gp_cli_engine(int argc, char **argv);
int gp_cli_run(int argc, char **argv);
int gp_cli_top(int argc, char **argv);
int gp_cli_scaler(int argc, char **argv);
int gp_cli_sched(int argc, char **argv);
int gp_cli_swap(int argc, char **argv);
int gp_cli_webhook(int argc, char **argv);

/* Print "gpupool <cmd>: <message>" to stderr; returns GP_EXIT_USAGE so a
 * caller can `return gp_cli_usage_error(...)`. */
int gp_cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The directory holding the running gpupool binary (where libgpupool.so and
 * sim/ are found), into buf.  Returns 0 or -errno. */
int gp_cli_self_dir(char *buf, unsigned long n);

/* A directory for runtime files: $XDG_RUNTIME_DIR, else $TMPDIR, else /tmp. */
const char *gp_cli_runtime_dir(void);

/* Point this process at the simulated machine every --sim command of this
 * user shares: GPUPOOL_SIM_STATE (unless already set) and the directory of
 * the simulated libraries, into simdir.  Returns 0, or -1 after printing
 * why as "gpupool <cmd>: ...". */
int gp_cli_sim_env(const char *cmd, char *simdir, unsigned long n);

#endif
