/* opts.h - a daemon's command line as a table: long (and short) options,
 * each read by its kind into a field of the subcommand's configuration.
 * One parser for every table, so that each option kind is checked and
 * reported the same way in every subcommand. */
#ifndef GP_CLI_OPTS_H
#define GP_CLI_OPTS_H

#include <stddef.h>
#include <stdint.h>

enum gp_opt_kind {
	GP_OPT_STR,  /* const char *, not empty */
	GP_OPT_MS,   /* long, milliseconds: "500ms", "15s", "2m", "1h"; a bare
	                number is seconds; at most a day */
	GP_OPT_SIZE, /* size_t, bytes ("64MiB"), within [lo, hi] */
	GP_OPT_UINT, /* unsigned, within [lo, hi] */
	GP_OPT_NAME, /* const char *, a Kubernetes name (DNS subdomain) */
	GP_OPT_FLAG, /* int, set to 1; takes no value */
};

struct gp_cli_opt {
	const char *name;          /* "listen" for --listen */
	int short_name;            /* 'l', or 0 */
	enum gp_opt_kind kind;
	size_t off;                /* offset of the field in the configuration */
	uint64_t lo, hi;           /* bounds of SIZE and UINT values */
};

/* Parse argv (argv[0] is the subcommand) into cfg by the n options of
 * `table`.  Returns 0 with optind past the options, or GP_EXIT_USAGE after
 * saying which argument is wrong as "gpupool <cmd>: ...". */
int gp_cli_parse_opts(const char *cmd, const struct gp_cli_opt *table, size_t n, int argc,
		      char **argv, void *cfg);

#endif
