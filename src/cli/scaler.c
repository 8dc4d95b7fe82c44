/* scaler.c - `gpupool scaler`: the KEDA adapter daemon.  Parses the command
 * line (src/scaler/options.c) and runs the daemon (src/scaler/daemon.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "common/log.h"
#include "net/client.h"
#include "scaler/options.h"

int gp_cli_scaler(int argc, char **argv)
{
	struct gp_scaler_options o;
	enum gp_log_level level;
	char err[512] = "";
	int rc = gp_scaler_options(argc, argv, &o, err, sizeof err), code = GP_EXIT_OK;

	if (rc == 0 && o.help) {
		fputs(gp_scaler_help, stdout);
		goto out;
	}
	if (rc == -EINVAL) {
		code = gp_cli_usage_error("scaler", "%s", err);
		goto out;
	}
	if (rc) {
		fprintf(stderr, "gpupool scaler: %s\n", err[0] ? err : "out of memory");
		code = GP_EXIT_FAIL;
		goto out;
	}
	if (gp_log_parse_level(getenv("GPUPOOL_LOG"), &level) != 0)
		level = GP_LOG_WARN;
	if (o.verbose && level < GP_LOG_INFO)
		level = GP_LOG_INFO;
	gp_log_setup(level, "scaler");
	if (gp_client_init() != 0) {
		fprintf(stderr, "gpupool scaler: cannot initialise libcurl\n");
		code = GP_EXIT_FAIL;
		goto out;
	}
	code = gp_scaler_run(&o.cfg) ? GP_EXIT_FAIL : GP_EXIT_OK;
out:
	gp_scaler_options_free(&o);
	return code;
}
