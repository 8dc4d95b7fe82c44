/* forecast.c - consumer saturation and its forecast over the warm-up
 * horizon (see forecast.h for the contract, docs/scaler.md for the
 * reasoning and the measurements behind the defaults).
 *
 * The model, in queueing terms.  A consumer slot (one unit of prefetch of one
 * consumer) holds a message for `holding` seconds on average; Little's law
 * gives holding = unacked / ack rate.  Demand arriving at `lambda` msg/s
 * therefore occupies lambda x holding slots.  The pool ordered now is warm
 * one horizon from now, so it is sized for the arrival rate forecast for
 * then, plus the slots needed to drain the backlog that is already waiting.
 * Saturation (unacked / slots) is a measurement of the present and is capped
 * near 1 when the pool is short; the arrival rate is not capped, which is
 * why the forecast can ask for the right size in one step.
 */
#include "scaler/forecast.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* Observations closer together than this are the same instant: dividing by
 * a smaller interval would only amplify noise into the slope. */
#define MIN_DT 1e-3

/* Ceilings that keep every figure finite whatever the input: no broker
 * moves a billion messages a second, no message is held for four months,
 * and no pool has a trillion slots. */
#define MAX_RATE 1e9
#define MAX_HOLDING_S 1e7
#define MAX_SLOTS 1e12

/* The default drain time, in horizons.  Capacity ordered for a backlog
 * arrives one warm-up later and is released only as fast as the HPA's
 * scale-in policy allows (10 % a minute in deploy/keda), so a pool sized to
 * drain a surge's backlog within one horizon overshoots for many minutes
 * after it: three horizons cost fewer GPU-hours for the same misses on the
 * steps of bench/autoscale (docs/scaler.md). */
#define DRAIN_HORIZONS 3.0

struct gp_forecast {
	struct gp_forecast_config cfg;
	uint64_t samples;   /* observations that advanced the state */
	double t_last;      /* time of the last such observation */
	double level;       /* Holt: smoothed arrival rate, msg/s */
	double trend;       /* Holt: its slope, msg/s per second */
	double noise;       /* smoothed squared one-step forecast error of
	                       the arrival rate, (msg/s)^2 */
	int have_service;   /* u_avg and a_avg hold data */
	double u_avg;       /* smoothed unacked count, while active */
	double a_avg;       /* smoothed ack rate, while active */
};

/* Defaults: the horizon is the warm-up time the issue gives (60 s).  The
 * level half-life (30 s, six 5 s broker samples) averages away most of the
 * noise of single samples while lagging a ramp by well under the horizon;
 * the slope, a difference of noisy levels, needs a longer memory (90 s).
 * The service half-life only has to follow changes of the mix of requests,
 * which are slow.  4 sigma rarely fires on noise; the noise is remembered
 * as long as the HPA remembers its recommendations (300 s).  The backlog is
 * drained within three more horizons (DRAIN_HORIZONS).  Target 0.8 with two
 * sigmas of square-root headroom is the setting of bench/autoscale that
 * misses no more than a saturation threshold of 0.7 on any of its
 * workloads.  docs/scaler.md shows how these were checked. */
void gp_forecast_config_default(struct gp_forecast_config *c)
{
	c->target = 0.8;
	c->horizon_s = 60.0;
	c->level_halflife_s = 30.0;
	c->trend_halflife_s = 90.0;
	c->service_halflife_s = 60.0;
	c->drain_s = 0.0;
	c->jump_sigma = 4.0;
	c->noise_halflife_s = 300.0;
	c->headroom_sigma = 2.0;
	c->min_replicas = 0;
	c->max_replicas = 100;
	c->consumers_per_replica = 1;
}

/* A positive, finite number of seconds. */
static int seconds_ok(double s)
{
	return isfinite(s) && s > 0.0;
}

/* One row per rule: the first that fails names the field. */
int gp_forecast_config_check(const struct gp_forecast_config *c, const char **bad_field)
{
	const struct {
		int ok;
		const char *field;
	} rules[] = {
		{isfinite(c->target) && c->target > 0.0 && c->target <= 1.0, "target"},
		{seconds_ok(c->horizon_s), "horizon_s"},
		{seconds_ok(c->level_halflife_s), "level_halflife_s"},
		{seconds_ok(c->trend_halflife_s), "trend_halflife_s"},
		{seconds_ok(c->service_halflife_s), "service_halflife_s"},
		{c->drain_s == 0.0 || seconds_ok(c->drain_s), "drain_s"},
		{isfinite(c->jump_sigma) && c->jump_sigma >= 0.0, "jump_sigma"},
		{seconds_ok(c->noise_halflife_s), "noise_halflife_s"},
		{isfinite(c->headroom_sigma) && c->headroom_sigma >= 0.0, "headroom_sigma"},
		{c->max_replicas >= 1, "max_replicas"},
		{c->min_replicas <= c->max_replicas, "min_replicas"},
		{c->consumers_per_replica >= 1, "consumers_per_replica"},
	};
	for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
		if (!rules[i].ok) {
			if (bad_field)
				*bad_field = rules[i].field;
			return -EINVAL;
		}
	}
	return 0;
}

int gp_forecast_new(struct gp_forecast **out, const struct gp_forecast_config *c)
{
	struct gp_forecast *f;

	if (gp_forecast_config_check(c, NULL) != 0)
		return -EINVAL;
	f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	f->cfg = *c;
	if (f->cfg.drain_s == 0.0)
		f->cfg.drain_s = DRAIN_HORIZONS * f->cfg.horizon_s;
	*out = f;
	return 0;
}

void gp_forecast_free(struct gp_forecast *f)
{
	free(f);
}

void gp_forecast_reset(struct gp_forecast *f)
{
	struct gp_forecast_config c = f->cfg;

	*f = (struct gp_forecast){.cfg = c};
}

/* The weight a new sample gets after `dt` seconds under half-life `h`:
 * 1 - 2^(-dt/h), computed without cancellation for tiny dt. */
static double ewma_weight(double dt, double h)
{
	return -expm1(-dt * M_LN2 / h);
}

/* A rate as the broker reported it; flagged and read as 0 when it is not a
 * rate, as MAX_RATE when it is beyond any broker. */
static double sane_rate(double r, unsigned *flags)
{
	if (isfinite(r) && r >= 0.0 && r <= MAX_RATE)
		return r;
	*flags |= GP_FORECAST_F_BAD_RATE;
	return isfinite(r) && r > MAX_RATE ? MAX_RATE : 0.0;
}

/* Saturation from sanitized fields; see struct gp_forecast_out. */
static double saturation(uint64_t ready, uint64_t unacked, uint32_t consumers, uint32_t prefetch)
{
	if (consumers == 0)
		return ready > 0 || unacked > 0 ? 1.0 : 0.0;
	return (double)unacked / ((double)consumers * prefetch);
}

double gp_forecast_saturation(const struct gp_forecast_obs *o)
{
	return saturation(o->ready, o->unacked, o->consumers, o->prefetch ? o->prefetch : 1);
}

/* Advance Holt's linear trend by one sample `x` taken `dt` seconds after the
 * previous one.  The level moves toward x from where the old slope said it
 * would be; the slope moves toward the level's observed change per second.
 * Weights follow from dt and the half-lives, so any poll interval works.
 *
 * A sample further above the prediction than jump_sigma standard deviations
 * of the usual error is a level shift, not noise: the level takes it at once
 * and the slope restarts from zero.  Smoothing alone would take a few
 * half-lives to believe a surge, and Holt's slope would then overshoot a
 * step by extrapolating the catching-up as if it were growth.  Only upward
 * shifts are taken so: a lull is believed after smoothing, because
 * shrinking too early costs requests and growing too early costs only GPU
 * time.  Returns 1 when the sample was taken as a shift. */
static int holt_step(struct gp_forecast *f, double x, double dt)
{
	double a = ewma_weight(dt, f->cfg.level_halflife_s);
	double b = ewma_weight(dt, f->cfg.trend_halflife_s);
	double n = ewma_weight(dt, f->cfg.noise_halflife_s);
	double predicted = f->level + f->trend * dt;
	double err = x - predicted, level;
	int jump = f->cfg.jump_sigma > 0.0 && err > f->cfg.jump_sigma * sqrt(f->noise);

	f->noise += n * (err * err - f->noise);
	if (jump) {
		f->level = x;
		f->trend = 0.0;
		return 1;
	}
	level = a * x + (1.0 - a) * predicted;
	f->trend = b * (level - f->level) / dt + (1.0 - b) * f->trend;
	f->level = level;
	return 0;
}

/* Advance the unacked and ack-rate averages.  Only samples with activity
 * count: an idle queue says nothing about how long a message takes, and the
 * holding time learned before an idle spell is what scaling from zero needs
 * afterwards. */
static void service_step(struct gp_forecast *f, double unacked, double ack, double dt)
{
	double w;

	if (unacked <= 0.0 && ack <= 0.0)
		return;
	if (!f->have_service) {
		f->u_avg = unacked;
		f->a_avg = ack;
		f->have_service = 1;
		return;
	}
	w = ewma_weight(dt, f->cfg.service_halflife_s);
	f->u_avg += w * (unacked - f->u_avg);
	f->a_avg += w * (ack - f->a_avg);
}

/* Seconds a message stays unacked, or 0 when not learned yet (no ack seen,
 * or auto-ack consumers that leave nothing unacked). */
static double holding_time(const struct gp_forecast *f)
{
	if (!f->have_service || f->a_avg <= 0.0 || f->u_avg <= 0.0)
		return 0.0;
	return fmin(f->u_avg / f->a_avg, MAX_HOLDING_S);
}

/* What a forecast asks of the pool, in consumer slots. */
struct need {
	double demand;   /* slots the forecast demand occupies */
	double headroom; /* slots kept free on top of it */
	double slots;    /* slots to provision: (demand from arrivals +
	                    headroom) / target + the backlog's drain */
};

/* Square-root staffing: the busy slots of a Poisson stream of demand D
 * vary by sqrt(D), so keeping headroom_sigma x sqrt(D) free covers its
 * noise at a cost that shrinks, relative to D, as the pool grows. */
static double headroom(const struct gp_forecast_config *c, double demand)
{
	return c->headroom_sigma * sqrt(demand);
}

/* A waiting message needs a slot, whatever the averages say: this is what
 * scales from zero, and it keeps the metric above zero while anything
 * waits.  The cap keeps the figures finite. */
static void floor_need(const struct gp_forecast_out *out, struct need *n)
{
	if ((out->backlog > 0 || out->unacked > 0) && n->slots < 1.0)
		n->slots = 1.0;
	n->slots = n->slots <= MAX_SLOTS ? n->slots : MAX_SLOTS;
	n->demand = n->demand <= MAX_SLOTS ? n->demand : MAX_SLOTS;
}

/* The pool that serves `arrivals` msg/s, each held for the holding time,
 * with the target's share of it free plus the square-root headroom, and
 * drains the backlog within drain_s.  The backlog is work to do once, not
 * a rate that fluctuates: its slots get no headroom, which keeps a pool
 * that comes back from a surge's backlog from overshooting by 1/target.
 * Never below the slots busy on average now over the target (a publish
 * rate the broker stopped reporting must not read as an idle queue while
 * consumers are plainly working).  Needs a holding time. */
static void need_at(const struct gp_forecast *f, const struct gp_forecast_out *out,
		    double arrivals, struct need *n)
{
	const struct gp_forecast_config *c = &f->cfg;
	double steady = arrivals * out->holding_s;
	double drain = (double)out->backlog * out->holding_s / c->drain_s;

	n->headroom = headroom(c, steady);
	n->demand = fmax(steady + drain, f->u_avg);
	n->slots = fmax((steady + n->headroom) / c->target + drain, f->u_avg / c->target);
	floor_need(out, n);
}

/* The replicas that provide `slots`, within the configured bounds. */
static uint32_t replicas_for(const struct gp_forecast_config *c, double slots,
			     double slots_per_replica, unsigned *flags)
{
	/* The small allowance keeps an exact multiple from rounding up on
	 * floating-point noise. */
	double need = ceil(slots / slots_per_replica - 1e-9);

	if (need < 0.0)
		need = 0.0;
	if (need < c->min_replicas)
		need = c->min_replicas;
	if (need > c->max_replicas) {
		need = c->max_replicas;
		*flags |= GP_FORECAST_F_AT_MAX;
	}
	return (uint32_t)need;
}

/* The whole update: sanitize, advance the smoothing (unless time did not
 * move forward), then derive the figures. */
void gp_forecast_update(struct gp_forecast *f, const struct gp_forecast_obs *o,
			struct gp_forecast_out *out)
{
	const struct gp_forecast_config *c = &f->cfg;
	unsigned flags = 0;
	uint32_t prefetch = o->prefetch;
	double publish, ack, holding, slots_per_replica;
	struct need n;
	uint64_t basis;

	if (prefetch == 0) {
		prefetch = 1;
		flags |= GP_FORECAST_F_PREFETCH_0;
	}
	publish = sane_rate(o->publish_rate, &flags);
	ack = sane_rate(o->ack_rate, &flags);

	if (!isfinite(o->t_s) || (f->samples > 0 && !(o->t_s >= f->t_last + MIN_DT))) {
		/* Not advanced.  A clock that went back is followed from its new
		 * reading on, so one bad timestamp cannot freeze the forecast. */
		flags |= GP_FORECAST_F_TIME_BACK;
		if (isfinite(o->t_s) && o->t_s < f->t_last)
			f->t_last = o->t_s;
	} else if (f->samples == 0) {
		f->level = publish;
		f->trend = 0.0;
		/* A first guess of the noise that errs high (the variance of
		 * a Poisson count over one second), so that nothing reads as a
		 * jump before the real noise is known. */
		f->noise = fmax(publish, 1.0);
		service_step(f, (double)o->unacked, ack, 0.0);
		f->t_last = o->t_s;
		f->samples = 1;
	} else {
		double dt = o->t_s - f->t_last;

		if (holt_step(f, publish, dt))
			flags |= GP_FORECAST_F_JUMP;
		service_step(f, (double)o->unacked, ack, dt);
		f->t_last = o->t_s;
		f->samples++;
	}
	if (f->samples <= 1)
		flags |= GP_FORECAST_F_COLD;

	/* With no accepted observation at all (a first sample with a bad
	 * clock), the raw rates stand in for the smoothed ones. */
	out->arrival_rate = f->samples ? f->level : publish;
	out->arrival_trend = f->samples ? f->trend : 0.0;
	out->arrival_forecast = fmax(0.0, out->arrival_rate + out->arrival_trend * c->horizon_s);
	out->service_rate = f->samples && f->have_service ? f->a_avg : ack;
	holding = holding_time(f);
	out->holding_s = holding;

	out->saturation = saturation(o->ready, o->unacked, o->consumers, prefetch);
	basis = o->replicas >= 0 ? (uint64_t)o->replicas
				 : ((uint64_t)o->consumers + c->consumers_per_replica - 1) /
					   c->consumers_per_replica;
	if (basis < 1)
		basis = 1;
	if (basis > UINT32_MAX)
		basis = UINT32_MAX;
	slots_per_replica = (double)c->consumers_per_replica * prefetch;
	out->replicas = (uint32_t)basis;
	out->capacity_slots = (double)basis * slots_per_replica;

	out->backlog = o->ready;
	out->unacked = o->unacked;
	if (holding > 0.0) {
		need_at(f, out, out->arrival_forecast, &n);
	} else {
		flags |= GP_FORECAST_F_NO_SERVICE;
		n.demand = out->saturation * out->capacity_slots;
		n.headroom = 0.0;
		n.slots = n.demand / c->target;
		floor_need(out, &n);
	}
	out->demand_slots = n.demand;
	out->headroom_slots = n.headroom;
	/* The HPA asks for ceil(ready x metric / target): n.slots over the
	 * slots per replica, which is desired_replicas. */
	out->forecast_saturation = n.slots * c->target / out->capacity_slots;
	out->desired_replicas = replicas_for(c, n.slots, slots_per_replica, &flags);
	out->samples = f->samples;
	out->flags = flags;
}

uint32_t gp_forecast_desired_at(const struct gp_forecast *f, const struct gp_forecast_out *last,
				double horizon_s)
{
	double slots_per_replica = last->capacity_slots / (double)last->replicas;
	unsigned flags = 0;
	struct need n;

	if (!(isfinite(horizon_s) && horizon_s > 0.0))
		horizon_s = f->cfg.horizon_s;
	if (last->holding_s > 0.0)
		need_at(f, last, fmax(0.0, last->arrival_rate + last->arrival_trend * horizon_s),
			&n);
	else
		n.slots = last->forecast_saturation * last->capacity_slots / f->cfg.target;
	return replicas_for(&f->cfg, n.slots, slots_per_replica, &flags);
}
