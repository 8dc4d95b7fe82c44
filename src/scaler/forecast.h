/* forecast.h - consumer saturation of a queue and its forecast over the
 * warm-up horizon: the signal `gpupool scaler` serves to KEDA, and the
 * policy the autoscaling benchmark calls "ours".
 *
 * One `struct gp_forecast` follows one queue.  The caller feeds it one
 * observation per poll of the broker (what RabbitMQ's management API says
 * about the queue) and reads back, from the same call:
 *
 *   saturation           unacked / (consumers x prefetch), now;
 *   forecast_saturation  the saturation the demand forecast one horizon ahead
 *                        would put on the replicas ready now;
 *   desired_replicas     the replicas that keep that forecast at or under the
 *                        target;
 *   the smoothed arrival and service rates behind the forecast.
 *
 * The arrival rate (publish rate) is smoothed with Holt's linear trend
 * (level + slope); a sample far above the forecast, measured against the
 * usual forecast error, is taken as a surge at once.  The service side is
 * smoothed with exponentially weighted averages of the unacked count and the
 * ack rate, whose ratio is the time a message spends in a consumer's hands
 * (Little's law).  All smoothing constants are half-lives in seconds, so
 * irregular or missed polls change nothing but the weight of each sample.
 * docs/scaler.md explains the method and the benchmark that chose
 * it.
 *
 * Pure computation: no I/O, no logging, no locks, and no allocation after
 * gp_forecast_new().  A gp_forecast is not thread-safe; use one per queue,
 * from one thread (or under the caller's lock).
 *
 * Input that is not sane is never rejected: the field is replaced by a safe
 * reading and a GP_FORECAST_F_* flag says so in the output, so a daemon can
 * count and log it.  Deciding that the broker itself answered garbage (and
 * serving 503 instead of a figure) is the caller's job, before it calls in.
 */
#ifndef GP_SCALER_FORECAST_H
#define GP_SCALER_FORECAST_H

#include <stdint.h>

struct gp_forecast; /* opaque: the smoothing state of one queue */

/* --- configuration -------------------------------------------------------- */

/* Start from gp_forecast_config_default() and override fields: fields may be
 * added at the end in later versions, with defaults that keep behaviour. */
struct gp_forecast_config {
	double target;            /* saturation the forecast is kept under,
	                             0 < target <= 1; default 0.8 */
	double horizon_s;         /* how far ahead to forecast: the workers'
	                             warm-up time, > 0; default 60 */
	double level_halflife_s;  /* half-life of the arrival-rate level, > 0;
	                             default 30 */
	double trend_halflife_s;  /* half-life of the arrival-rate slope, > 0;
	                             default 90 */
	double service_halflife_s; /* half-life of the unacked and ack-rate
	                              averages behind the service time, > 0;
	                              default 60 */
	double drain_s;           /* a backlog of ready messages is to be drained
	                             within this many seconds once capacity
	                             arrives, >= 0; 0 (the default) means
	                             three times horizon_s */
	uint32_t min_replicas;    /* floor of desired_replicas; default 0 */
	uint32_t max_replicas;    /* ceiling of desired_replicas, >= min and
	                             >= 1; default 100 */
	uint32_t consumers_per_replica; /* consumers (channels) one replica
	                                   opens on the queue, >= 1; default 1 */
	double jump_sigma;        /* an arrival-rate sample this many standard
	                             deviations of the usual forecast error above
	                             the forecast is a surge: the level takes it
	                             at once; >= 0, 0 = never; default 4 */
	double noise_halflife_s;  /* half-life of that error's variance, > 0;
	                             default 300 */
	double headroom_sigma;    /* slots kept free on top of the demand, in
	                             standard deviations of the busy count:
	                             headroom = headroom_sigma x sqrt(demand
	                             slots), the square-root staffing rule
	                             (busy slots of a Poisson stream vary by
	                             sqrt of their mean, so small pools need
	                             relatively more); >= 0; default 2 */
};

/* Fill `c` with the defaults listed above. */
void gp_forecast_config_default(struct gp_forecast_config *c);

/* Check a configuration.  Returns 0, or -EINVAL with *bad_field (when
 * bad_field is not NULL) set to the name of the first offending field
 * ("target", "horizon_s", ...), for an error message that names it. */
int gp_forecast_config_check(const struct gp_forecast_config *c, const char **bad_field)
	__attribute__((warn_unused_result));

/* --- lifecycle ------------------------------------------------------------ */

/* Allocate the state for one queue, with a copy of `c` (which must pass
 * gp_forecast_config_check).  Returns 0 and the new state in *out, -EINVAL
 * for a bad configuration, -ENOMEM.  Free it with gp_forecast_free(). */
int gp_forecast_new(struct gp_forecast **out, const struct gp_forecast_config *c)
	__attribute__((warn_unused_result));

void gp_forecast_free(struct gp_forecast *f);

/* Forget all history, as if no observation had been made (e.g. after the
 * queue was deleted and re-created).  The configuration stays. */
void gp_forecast_reset(struct gp_forecast *f);

/* --- one poll ------------------------------------------------------------- */

/* What the broker says about the queue at one instant.  Fields map to the
 * RabbitMQ management API's GET /api/queues/{vhost}/{name}. */
struct gp_forecast_obs {
	double t_s;            /* when it was observed, in seconds on any
	                          monotonic clock (gp_now_ns() / 1e9) */
	uint64_t ready;        /* messages_ready: waiting in the queue */
	uint64_t unacked;      /* messages_unacknowledged: delivered to a
	                          consumer and not yet acknowledged */
	uint32_t consumers;    /* consumers */
	uint32_t prefetch;     /* prefetch (basic.qos) of each consumer, as
	                          configured for the queue; 1 makes saturation
	                          the share of busy consumers.  0 (AMQP's
	                          "unlimited", or unknown) reads as 1, flagged */
	double publish_rate;   /* message_stats.publish_details.rate, msg/s: the
	                          arrival rate.  Missing = 0; NaN, infinite or
	                          negative reads as 0, above 1e9 as 1e9, both
	                          flagged */
	double ack_rate;       /* message_stats.ack_details.rate, msg/s (add
	                          deliver_no_ack_details.rate for auto-ack
	                          consumers): the service rate.  Same rules */
	int64_t replicas;      /* ready replicas: pods serving now, warming
	                          ones excluded (the Deployment's
	                          status.readyReplicas), or -1 when unknown:
	                          then consumers / consumers_per_replica,
	                          rounded up, stand in for them.  The HPA
	                          multiplies a `Value` metric by the ready pod
	                          count, so this is the count the forecast
	                          saturation must be relative to */
};

/* Output flags: what was sanitized or estimated, one bit each. */
enum {
	GP_FORECAST_F_BAD_RATE = 1u << 0,     /* a rate was NaN, infinite or
	                                         negative (read as 0), or above
	                                         1e9 msg/s (read as 1e9) */
	GP_FORECAST_F_PREFETCH_0 = 1u << 1,   /* prefetch 0 was read as 1 */
	GP_FORECAST_F_TIME_BACK = 1u << 2,    /* t_s was not at least 1 ms after
	                                         the previous observation, or
	                                         not finite: the instant figures
	                                         are fresh, the smoothed ones
	                                         were not advanced.  A clock
	                                         that went back is followed from
	                                         its new reading on */
	GP_FORECAST_F_COLD = 1u << 3,         /* first observation: no slope yet */
	GP_FORECAST_F_NO_SERVICE = 1u << 4,   /* no service time learned yet (no
	                                         message acknowledged so far):
	                                         the forecast falls back to the
	                                         current saturation */
	GP_FORECAST_F_AT_MAX = 1u << 5,       /* desired_replicas was capped by
	                                         max_replicas */
	GP_FORECAST_F_JUMP = 1u << 6,         /* the publish rate jumped beyond
	                                         its noise: the smoothed rate
	                                         took the new value at once */
};

/* What one observation yields.  Rates are msg/s, times seconds. */
struct gp_forecast_out {
	double saturation;          /* unacked / (consumers x prefetch), >= 0.
	                               Exactly 1 when there are no consumers and
	                               messages are ready or unacked (so scaling
	                               from zero works), 0 when there are no
	                               consumers and no messages.  Not capped:
	                               above 1 means consumers hold more than the
	                               configured prefetch */
	double forecast_saturation; /* need x target / capacity_slots, where
	                               need = (arrivals' slots + headroom_slots)
	                               / target + the backlog's drain slots: the
	                               saturation that would put the pool needed
	                               one horizon ahead at the target, on the
	                               replicas ready now.  An HPA with a
	                               `Value` target of `target` on this metric
	                               asks for ceil(ready pods x forecast /
	                               target), which is desired_replicas (up to
	                               the HPA's 0.1 tolerance), from zero ready
	                               pods too: see `replicas` */
	uint32_t desired_replicas;  /* ceil(need / (consumers_per_replica x
	                               prefetch)): the arrivals forecast one
	                               horizon ahead with the headroom, at the
	                               target, plus the slots that drain the
	                               backlog within drain_s (work to do once:
	                               no headroom on it); never below the slots
	                               busy now over the target, at least 1
	                               while messages wait; within
	                               [min_replicas, max_replicas] */
	double arrival_rate;        /* smoothed publish rate (Holt level) */
	double arrival_trend;       /* its slope, msg/s per second */
	double arrival_forecast;    /* arrival rate one horizon ahead, >= 0 */
	double service_rate;        /* smoothed ack rate */
	double holding_s;           /* smoothed time a message stays unacked
	                               (unacked / ack rate); 0 until learned */
	/* Every double here is finite, whatever the input. */
	double demand_slots;        /* consumer slots (consumers x prefetch) the
	                               forecast demand occupies one horizon ahead:
	                               arrival_forecast x holding_s, plus the
	                               ready backlog drained within drain_s
	                               (ready x holding_s / drain_s), never below
	                               the smoothed unacked count (the slots busy
	                               now).  Without a holding time yet:
	                               saturation x capacity_slots */
	double headroom_slots;      /* headroom_sigma x sqrt(arrival_forecast x
	                               holding_s): kept free on top of the
	                               arrivals' slots; 0 without a holding time */
	double capacity_slots;      /* consumer slots of the ready replicas:
	                               replicas x consumers_per_replica x
	                               prefetch, > 0 */
	uint32_t replicas;          /* the ready replica count the figures are
	                               relative to: obs.replicas, or consumers /
	                               consumers_per_replica rounded up; never
	                               below 1, so that with no replica ready the
	                               HPA's scale-from-zero rule,
	                               ceil(metric / target), also yields
	                               desired_replicas */
	uint64_t backlog;           /* messages ready, as observed */
	uint64_t unacked;           /* messages unacknowledged, as observed */
	uint64_t samples;           /* observations taken since new/reset */
	unsigned flags;             /* GP_FORECAST_F_* */
};

/* Take one observation and compute the figures above into *out.  Never
 * fails: bad fields are sanitized and flagged (see struct gp_forecast_obs).
 * Costs a few dozen floating-point operations; allocates nothing. */
void gp_forecast_update(struct gp_forecast *f, const struct gp_forecast_obs *obs,
			struct gp_forecast_out *out);

/* The replicas wanted `horizon_s` seconds ahead instead of the configured
 * horizon, from the state the last gp_forecast_update() left and the output
 * it wrote to `last`: the same need (arrivals with headroom at the target,
 * plus the backlog's drain, never below the busy slots) with the slope
 * extrapolated over `horizon_s`, within
 * [min_replicas, max_replicas].  A pool that warms up slower (the cloud
 * pool of a hybrid setup, docs/scaler.md) must be ordered on this longer
 * horizon to be ready in time.  A horizon that is not positive and finite
 * reads as the configured one. */
uint32_t gp_forecast_desired_at(const struct gp_forecast *f, const struct gp_forecast_out *last,
				double horizon_s);

/* The saturation of one observation alone, as in gp_forecast_out. */
double gp_forecast_saturation(const struct gp_forecast_obs *obs);

#endif
