/* httpapi.h - the scaler's HTTP endpoints.
 *
 *   GET /v1/queues/{vhost}/{queue}  the figures of one queue as JSON, for
 *                                   KEDA's metrics-api scaler (valueLocation
 *                                   "forecast_saturation", "saturation" or
 *                                   "desired_replicas"; for a queue with
 *                                   two pools also
 *                                   "pools.onprem.desired_replicas" and
 *                                   "pools.cloud.desired_replicas"); 404 for
 *                                   a queue not watched, 503 when RabbitMQ
 *                                   could not be polled or answered garbage
 *   GET /metrics                    Prometheus text (metrics.h)
 *   GET /healthz                    200 when every queue is current, else 503
 *                                   naming those that are not (readiness)
 *   GET /livez                      200 while the daemon serves (liveness)
 */
#ifndef GP_SCALER_HTTPAPI_H
#define GP_SCALER_HTTPAPI_H

#include "net/http.h"

/* The route table; the server's `arg` must be the struct gp_poller. */
extern const struct gp_http_route gp_scaler_routes[];

#endif
