/* keda.h - KEDA's external scaler service (proto/externalscaler.proto) on
 * gpupool's gRPC layer.
 *
 * The trigger's metadata (ScaledObjectRef.scalerMetadata) names the queue:
 *
 *   queue     required; it must be one the scaler watches (else NOT_FOUND)
 *   vhost     default "/"
 *   metric    "forecast_saturation" (default) or "saturation"
 *   prefetch  optional; when given it must equal the scaler's setting for
 *   target    the queue (else INVALID_ARGUMENT): the figures depend on them,
 *             so a ScaledObject that assumes other values is a mistake to
 *             report, not to serve
 *   pool      "onprem" or "cloud", for a queue with two pools (--onprem-max;
 *             else, or for another value, INVALID_ARGUMENT): the metric is
 *             that pool's desired replica count (burst.h) with target 1,
 *             and IsActive is "the pool wants a replica".  `metric`, when
 *             given with it, must be "desired_replicas"
 *
 * IsActive is true while messages wait or the forecast wants a replica;
 * StreamIsActive sends that at once and again whenever it changes;
 * GetMetricSpec gives the queue's target; GetMetrics the metric's value.
 * When the queue's figures are not current (RabbitMQ unreachable or
 * answering garbage) every call but GetMetricSpec ends UNAVAILABLE, and an
 * open stream ends so.  StreamMetricSpec is not served (UNIMPLEMENTED):
 * targets do not change while the scaler runs.
 */
#ifndef GP_SCALER_KEDA_H
#define GP_SCALER_KEDA_H

#include "net/grpc.h"

struct event_base;
struct gp_poller;
struct gp_keda;

/* The method table; the gRPC server's `arg` must be the struct gp_keda. */
extern const struct gp_grpc_method gp_keda_methods[];

/* The service over `p`, with a timer on `base` that pushes stream updates.
 * Returns 0 or -ENOMEM. */
int gp_keda_new(struct gp_keda **out, struct gp_poller *p, struct event_base *base)
	__attribute__((warn_unused_result));

/* Free the service.  Stop the gRPC server first: that ends open streams. */
void gp_keda_free(struct gp_keda *k);

#endif
