/* scaler.h - `gpupool scaler`, the KEDA adapter: runs the daemon.
 *
 * The daemon polls RabbitMQ's management API for the configured queues on
 * a background thread (poller.h) and serves the figures on an HTTP server
 * (httpapi.h: KEDA's metrics-api scaler, Prometheus, health) and a gRPC
 * server (keda.h: KEDA's external scaler), on one event loop, until SIGINT
 * or SIGTERM.  docs/scaler.md describes it for users.
 */
#ifndef GP_SCALER_SCALER_H
#define GP_SCALER_SCALER_H

#include <stddef.h>
#include <stdint.h>

#include "scaler/poller.h"
#include "scaler/rabbit.h"

struct gp_scaler_config {
	struct gp_rabbit_conn rabbit;          /* the management API */
	const struct gp_scaler_queue *queues;  /* what to watch, at least one */
	size_t nqueues;
	uint64_t interval_ms;                  /* between polls of a queue */
	const char *http_listen;               /* NULL: no HTTP server */
	const char *grpc_listen;               /* NULL: no gRPC server; also
	                                          "unix:/path" */
	const char *ready_file;                /* written once both listen (JSON:
	                                          pid and ports), removed at
	                                          exit; NULL for none */
};

/* Run until a stop signal.  Returns 0 after an orderly stop, or a negative
 * errno when the daemon could not start (the reason is logged). */
int gp_scaler_run(const struct gp_scaler_config *c) __attribute__((warn_unused_result));

#endif
