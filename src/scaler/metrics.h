/* metrics.h - the scaler's figures in Prometheus' text format (0.0.4).
 *
 * One gauge family per figure, labelled by vhost and queue.  The figures of
 * a queue whose poll failed are left out rather than written as 0 (a
 * dashboard or alert must not read "idle" into "unknown");
 * gpupool_scaler_up says which queues are current.  A queue consumed by an
 * on-premises and a cloud pool (burst.h) also has gpupool_scaler_pool_*
 * families with a `pool` label ("onprem", "cloud").
 */
#ifndef GP_SCALER_METRICS_H
#define GP_SCALER_METRICS_H

#include <stddef.h>

struct gp_poller;

/* Render every watched queue.  Returns 0 with a new NUL-terminated text in
 * *out (free it) and its length in *len, or -ENOMEM. */
int gp_scaler_metrics(struct gp_poller *p, char **out, size_t *len)
	__attribute__((warn_unused_result));

#endif
