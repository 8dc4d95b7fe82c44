/* options.h - the command line of `gpupool scaler`.
 *
 * Queue options (--vhost, --prefetch, --target, --warmup, ...) given before
 * the first --queue set the defaults of every queue; given after a --queue
 * they apply to that queue alone.  So
 *
 *   --prefetch 4 --queue a --queue b --target 0.8
 *
 * watches a and b with prefetch 4, and b alone with target 0.8.  The
 * hybrid-bursting options (--onprem-max, --cloud-warmup, --cloud-max,
 * --cloud-cost; burst.h) are queue options too.  The broker password
 * never comes from the command line (where `ps` shows it):
 * --password-file, or the GPUPOOL_RABBITMQ_PASSWORD environment variable.
 */
#ifndef GP_SCALER_OPTIONS_H
#define GP_SCALER_OPTIONS_H

#include <stddef.h>

#include "scaler/scaler.h"

#define GP_SCALER_MAX_QUEUES 256

struct gp_scaler_options {
	struct gp_scaler_config cfg;   /* what gp_scaler_run takes; its strings
	                                  point into argv or into this struct */
	struct gp_scaler_queue *queues; /* cfg.queues, owned */
	char *password;                /* owned, from the file or environment */
	int verbose;                   /* -v: log at info level */
	int help;                      /* --help was asked for */
};

/* The --help text. */
extern const char gp_scaler_help[];

/* Parse argv (argv[0] is "scaler") and the environment into *o.  Returns 0,
 * -EINVAL for a usage error (err names the bad argument), or -EIO when a
 * file named on the command line cannot be read (err says why).  Free *o
 * with gp_scaler_options_free in every case. */
int gp_scaler_options(int argc, char **argv, struct gp_scaler_options *o, char *err, size_t n)
	__attribute__((warn_unused_result));

void gp_scaler_options_free(struct gp_scaler_options *o);

/* A duration as users write it: "500ms", "5s", "1.5m", "1h", or a plain
 * number of seconds.  Returns 0 with milliseconds in *ms, or -EINVAL. */
int gp_scaler_parse_duration(const char *s, double *ms) __attribute__((warn_unused_result));

#endif
