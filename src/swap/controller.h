/* controller.h - `gpupool swap`: which models are active on which engines
 * of a fixed pool, kept in line with the traffic.
 *
 * Every round (--round, 2 s) the controller
 *   1. checks every engine's health through its adapter (adapter.h); an
 *      engine that fails --health-fails checks in a row is lost, and its
 *      replicas with it;
 *   2. reads each model's demand from its RabbitMQ queue with the scaler's
 *      poller and forecast (src/scaler/poller.h), reused as they are;
 *   3. asks the planner (planner.h) for the placement and the swaps that
 *      reach it: minimums first (failover), then demand, fewest bytes;
 *   4. runs the swaps through the adapters, and follows loads until the
 *      engines report them loaded.
 * It serves its state over HTTP: GET /v1/plan, /v1/engines, /v1/models,
 * /metrics (Prometheus) and /healthz.
 */
#ifndef GP_SWAP_CONTROLLER_H
#define GP_SWAP_CONTROLLER_H

#include <stddef.h>

#include "swap/planner.h"

struct gp_swap_catalog;

struct gp_swap_config {
	const struct gp_swap_catalog *catalog;
	const char *rabbit_password;  /* for catalog.rabbitmq.user, or NULL */
	const char *listen;           /* HTTP address */
	const char *ready_file;       /* {"pid","http_port"} once listening */
	double round_s;               /* between planning rounds, > 0 */
	unsigned health_fails;        /* failed checks in a row that lose an
	                                 engine, >= 1 */
	double horizon_s;             /* the demand forecast's horizon: about
	                                 a swap's time, > 0 */
	double host_bw, disk_bw;      /* bytes/s the planner assumes for a load
	                                 from host memory and from disk */
	struct gp_planner_config planner;
};

/* Run until SIGTERM/SIGINT.  Returns 0, or -errno after logging why it
 * could not start. */
int gp_swap_run(const struct gp_swap_config *c) __attribute__((warn_unused_result));

#endif
