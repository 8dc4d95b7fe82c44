/* test_scaler_forecast.c - the saturation signal and its forecast
 * (src/scaler/forecast.h): edge cases of saturation, known answers on
 * synthetic steady states, ramps and steps, desired replicas and what the
 * HPA makes of the metric, and robustness to garbage. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "scaler/forecast.h"

#define POLL 5.0 /* seconds between observations, as the daemon polls */

/* An observation: `publish` and `ack` rates, counts, prefetch 1, replicas
 * unknown. */
static struct gp_forecast_obs obs(double t, double publish, double ack, uint64_t ready,
				  uint64_t unacked, uint32_t consumers)
{
	return (struct gp_forecast_obs){
		.t_s = t,
		.ready = ready,
		.unacked = unacked,
		.consumers = consumers,
		.prefetch = 1,
		.publish_rate = publish,
		.ack_rate = ack,
		.replicas = -1,
	};
}

/* Feed n steady observations from t = 0 (nothing ready); returns n, the
 * index of the next poll. */
static int steady(struct gp_forecast *f, int n, double publish, double ack, uint64_t unacked,
		  uint32_t consumers, struct gp_forecast_out *out)
{
	for (int i = 0; i < n; i++) {
		struct gp_forecast_obs o = obs(i * POLL, publish, ack, 0, unacked, consumers);
		gp_forecast_update(f, &o, out);
	}
	return n;
}

static struct gp_forecast *make(const struct gp_forecast_config *c)
{
	struct gp_forecast *f = NULL;

	assert_int_equal(gp_forecast_new(&f, c), 0);
	assert_non_null(f);
	return f;
}

/* The defaults with round figures the known answers below are worked out
 * for: target 0.7, no headroom, the backlog drained within one horizon.
 * Tests change what they need; test_headroom and test_backlog_no_headroom
 * cover the rest. */
static struct gp_forecast_config config(void)
{
	struct gp_forecast_config c;

	gp_forecast_config_default(&c);
	c.target = 0.7;
	c.headroom_sigma = 0.0;
	c.drain_s = c.horizon_s;
	return c;
}

/* The defaults are the documented ones and pass the check. */
static void test_config(void **state)
{
	struct gp_forecast_config c;
	const char *field = NULL;

	(void)state;
	gp_forecast_config_default(&c);
	assert_int_equal(gp_forecast_config_check(&c, &field), 0);
	assert_null(field);
	assert_float_equal(c.target, 0.8, 0.0);
	assert_float_equal(c.headroom_sigma, 2.0, 0.0);
	assert_float_equal(c.horizon_s, 60.0, 0.0);
	assert_float_equal(c.drain_s, 0.0, 0.0);
	assert_int_equal(c.consumers_per_replica, 1);
	assert_true(c.max_replicas >= 1);
	assert_true(c.min_replicas <= c.max_replicas);
}

/* One bad value per field: the check names exactly that field, and
 * gp_forecast_new refuses it. */
static void test_config_bad(void **state)
{
	static const struct {
		const char *field;
		size_t off;
		int is_u32;
		double value;
	} bad[] = {
#define B(f, v) {#f, offsetof(struct gp_forecast_config, f), 0, v}
#define U(f, v) {#f, offsetof(struct gp_forecast_config, f), 1, v}
		B(target, 0.0), B(target, 1.5), B(target, -0.1), B(target, NAN),
		B(horizon_s, 0.0), B(horizon_s, INFINITY), B(level_halflife_s, -1.0),
		B(trend_halflife_s, 0.0), B(service_halflife_s, NAN), B(drain_s, -5.0),
		B(jump_sigma, -1.0), B(jump_sigma, NAN), B(noise_halflife_s, 0.0),
		U(max_replicas, 0), U(consumers_per_replica, 0),
#undef B
#undef U
	};
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct gp_forecast_config c = config();
		struct gp_forecast *f = NULL;
		const char *field = NULL;

		if (bad[i].is_u32)
			*(uint32_t *)((char *)&c + bad[i].off) = (uint32_t)bad[i].value;
		else
			*(double *)((char *)&c + bad[i].off) = bad[i].value;
		assert_int_equal(gp_forecast_config_check(&c, &field), -EINVAL);
		assert_non_null(field);
		assert_string_equal(field, bad[i].field);
		assert_int_equal(gp_forecast_new(&f, &c), -EINVAL);
		assert_null(f);
	}
	/* min above max names min_replicas; NULL bad_field is allowed. */
	struct gp_forecast_config c = config();
	const char *field = NULL;
	c.min_replicas = 5;
	c.max_replicas = 4;
	assert_int_equal(gp_forecast_config_check(&c, &field), -EINVAL);
	assert_string_equal(field, "min_replicas");
	assert_int_equal(gp_forecast_config_check(&c, NULL), -EINVAL);
}

/* Saturation: the definition and its edge cases. */
static void test_saturation(void **state)
{
	static const struct {
		uint64_t ready, unacked;
		uint32_t consumers, prefetch;
		double want;
	} cases[] = {
		{0, 0, 0, 1, 0.0},    /* no consumers, nothing waiting: idle */
		{5, 0, 0, 1, 1.0},    /* no consumers, messages ready: saturated */
		{0, 3, 0, 1, 1.0},    /* consumers just left, messages unacked */
		{0, 2, 4, 1, 0.5},    /* prefetch 1: share of busy consumers */
		{100, 4, 4, 1, 1.0},  /* all busy; the backlog does not count */
		{0, 4, 2, 4, 0.5},    /* prefetch 4: 4 of 8 slots */
		{0, 10, 2, 4, 1.25},  /* consumers hold more than configured */
		{0, 2, 4, 0, 0.5},    /* prefetch 0 reads as 1 */
		{UINT64_MAX, UINT64_MAX, 0, 1, 1.0}, /* no overflow in "waiting" */
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct gp_forecast_obs o = obs(0, 0, 0, cases[i].ready, cases[i].unacked,
					       cases[i].consumers);
		o.prefetch = cases[i].prefetch;
		assert_float_equal(gp_forecast_saturation(&o), cases[i].want, 1e-12);
	}
}

/* The first observation: no slope, level = the publish rate, and a service
 * time straight from Little's law when acks are flowing. */
static void test_first_sample(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;
	struct gp_forecast_obs o = obs(100.0, 10.0, 10.0, 0, 20, 40);

	(void)state;
	gp_forecast_update(f, &o, &out);
	assert_true(out.flags & GP_FORECAST_F_COLD);
	assert_false(out.flags & GP_FORECAST_F_NO_SERVICE);
	assert_int_equal(out.samples, 1);
	assert_float_equal(out.saturation, 0.5, 1e-12);
	assert_float_equal(out.arrival_rate, 10.0, 1e-12);
	assert_float_equal(out.arrival_trend, 0.0, 1e-12);
	assert_float_equal(out.arrival_forecast, 10.0, 1e-12);
	assert_float_equal(out.holding_s, 2.0, 1e-12);        /* 20 unacked / 10 per s */
	assert_float_equal(out.demand_slots, 20.0, 1e-9);     /* 10/s x 2 s */
	assert_float_equal(out.capacity_slots, 40.0, 1e-12);
	assert_int_equal(out.replicas, 40);
	assert_float_equal(out.forecast_saturation, 0.5, 1e-9);
	assert_int_equal(out.desired_replicas, 29); /* ceil(20 / 0.7) */
	gp_forecast_free(f);
}

/* A steady queue: every figure settles on the queueing answer. */
static void test_steady(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;

	(void)state;
	/* 6 msg/s, each held 3 s: 18 busy of 30 consumers. */
	for (int i = 0; i < 400; i++) {
		struct gp_forecast_obs o = obs(i * POLL, 6.0, 6.0, 0, 18, 30);
		gp_forecast_update(f, &o, &out);
	}
	assert_int_equal(out.flags, 0);
	assert_float_equal(out.arrival_rate, 6.0, 1e-9);
	assert_float_equal(out.arrival_trend, 0.0, 1e-9);
	assert_float_equal(out.service_rate, 6.0, 1e-9);
	assert_float_equal(out.holding_s, 3.0, 1e-9);
	assert_float_equal(out.demand_slots, 18.0, 1e-6);
	assert_float_equal(out.saturation, 0.6, 1e-12);
	assert_float_equal(out.forecast_saturation, 0.6, 1e-6);
	assert_int_equal(out.desired_replicas, 26); /* ceil(18 / 0.7) */
	gp_forecast_free(f);
}

/* A linear ramp, noiseless: Holt's method tracks it with no lag in steady
 * state, so the forecast is the ramp's value one horizon ahead. */
static void test_ramp(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;
	const double a = 2.0, b = 0.01; /* msg/s, msg/s per s */
	double t = 0;

	(void)state;
	for (int i = 0; i < 2000; i++) {
		t = i * POLL;
		struct gp_forecast_obs o = obs(t, a + b * t, a + b * t, 0, 1, 100);
		gp_forecast_update(f, &o, &out);
		assert_false(out.flags & GP_FORECAST_F_JUMP); /* a ramp is no surge */
	}
	assert_float_equal(out.arrival_trend, b, 1e-6);
	assert_float_equal(out.arrival_rate, a + b * t, 1e-4);
	assert_float_equal(out.arrival_forecast, a + b * (t + c.horizon_s), 1e-3);
	gp_forecast_free(f);
}

/* A step up well beyond the noise is a surge: the level takes it at once
 * and no slope is extrapolated from it. */
static void test_step_up(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f;
	struct gp_forecast_out out;
	int i;

	(void)state;
	c.max_replicas = 1000;
	f = make(&c);
	i = steady(f, 200, 10.0, 10.0, 20, 40, &out);
	struct gp_forecast_obs o = obs(i * POLL, 50.0, 10.0, 0, 20, 40);
	gp_forecast_update(f, &o, &out);
	assert_true(out.flags & GP_FORECAST_F_JUMP);
	assert_float_equal(out.arrival_rate, 50.0, 1e-12);
	assert_float_equal(out.arrival_trend, 0.0, 1e-12);
	assert_float_equal(out.arrival_forecast, 50.0, 1e-12);
	/* 50/s x 2 s held = 100 slots: 2.5 times the 40 there are. */
	assert_float_equal(out.forecast_saturation, 2.5, 1e-6);
	assert_int_equal(out.desired_replicas, 143); /* ceil(100 / 0.7) */
	gp_forecast_free(f);
}

/* With surge detection off, the same step is smoothed: after one sample of
 * dt seconds the level has moved 1 - 2^(-dt / half-life) of the way. */
static void test_step_smoothed(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f;
	struct gp_forecast_out out;
	int i;

	(void)state;
	c.jump_sigma = 0.0;
	f = make(&c);
	i = steady(f, 200, 10.0, 10.0, 20, 40, &out);
	struct gp_forecast_obs o = obs(i * POLL, 50.0, 10.0, 0, 20, 40);
	gp_forecast_update(f, &o, &out);
	assert_false(out.flags & GP_FORECAST_F_JUMP);
	assert_float_equal(out.arrival_rate, 10.0 + 40.0 * (1.0 - exp2(-POLL / 30.0)), 1e-9);
	gp_forecast_free(f);
}

/* A step down is never taken at once (a lull is believed after smoothing);
 * with the slope frozen the gap halves every level half-life, however the
 * polls are spaced. */
static void test_step_down_and_irregular_polls(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *fine, *coarse;
	struct gp_forecast_out a, b;
	int i;

	(void)state;
	c.trend_halflife_s = 1e12; /* the slope stays 0: pure exponential smoothing */
	fine = make(&c);
	coarse = make(&c);
	for (i = 0; i < 100; i++) {
		struct gp_forecast_obs o = obs(i * POLL, 50.0, 50.0, 0, 100, 200);
		gp_forecast_update(fine, &o, &a);
		gp_forecast_update(coarse, &o, &b);
	}
	double t0 = (i - 1) * POLL;
	for (int k = 1; k <= 6; k++) { /* six 5 s polls ... */
		struct gp_forecast_obs o = obs(t0 + k * POLL, 10.0, 50.0, 0, 100, 200);
		gp_forecast_update(fine, &o, &a);
		assert_false(a.flags & GP_FORECAST_F_JUMP);
	}
	struct gp_forecast_obs o = obs(t0 + 30.0, 10.0, 50.0, 0, 100, 200); /* ... or one 30 s */
	gp_forecast_update(coarse, &o, &b);
	assert_float_equal(a.arrival_rate, 30.0, 1e-6);
	assert_float_equal(b.arrival_rate, 30.0, 1e-6);
	gp_forecast_free(fine);
	gp_forecast_free(coarse);
}

/* A backlog adds the slots that drain it within drain_s, at full use: it is
 * work to do once, so the target's headroom is not put on it. */
static void test_backlog(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f;
	struct gp_forecast_out out;

	(void)state;
	c.drain_s = 30.0;
	f = make(&c);
	/* 5 msg/s held 2 s = 10 busy of 10; 150 ready: 150 x 2 / 30 = 10 more. */
	for (int i = 0; i < 300; i++) {
		struct gp_forecast_obs o = obs(i * POLL, 5.0, 5.0, 150, 10, 10);
		gp_forecast_update(f, &o, &out);
	}
	assert_float_equal(out.saturation, 1.0, 1e-12);
	assert_float_equal(out.demand_slots, 20.0, 1e-6);
	/* 10 / 0.7 + 10 = 24.29 slots, as a saturation at the target: x 0.7 / 10 */
	assert_float_equal(out.forecast_saturation, 1.7, 1e-6);
	assert_int_equal(out.desired_replicas, 25);
	assert_int_equal(out.backlog, 150);
	gp_forecast_free(f);
}

/* The demand never reads below the slots busy now, so a publish rate the
 * broker stops reporting cannot scale a working pool in. */
static void test_floor_busy(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;

	(void)state;
	for (int i = 0; i < 300; i++) {
		struct gp_forecast_obs o = obs(i * POLL, 0.0, 4.0, 0, 12, 16);
		gp_forecast_update(f, &o, &out);
	}
	assert_float_equal(out.arrival_forecast, 0.0, 1e-9);
	assert_float_equal(out.demand_slots, 12.0, 1e-6);
	assert_float_equal(out.forecast_saturation, 0.75, 1e-6);
	assert_int_equal(out.desired_replicas, 18); /* ceil(12 / 0.7) */
	gp_forecast_free(f);
}

/* Before any ack, there is no service time: the forecast is the saturation
 * itself, which still scales a busy pool out. */
static void test_no_service(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;
	struct gp_forecast_obs o;

	(void)state;
	for (int i = 0; i < 3; i++) {
		o = obs(i * POLL, 3.0, 0.0, 7, 4, 4);
		gp_forecast_update(f, &o, &out);
	}
	assert_true(out.flags & GP_FORECAST_F_NO_SERVICE);
	assert_float_equal(out.holding_s, 0.0, 0.0);
	assert_float_equal(out.forecast_saturation, 1.0, 1e-12);
	assert_int_equal(out.desired_replicas, 6); /* ceil(4 x 1 / 0.7) */
	gp_forecast_free(f);
}

/* Scaling from zero: no consumer, messages waiting.  Without history the
 * answer is the HPA's ceil(1 / target); with a learned service time it is
 * the demand's size. */
static void test_scale_from_zero(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;
	struct gp_forecast_obs o = obs(0, 0.0, 0.0, 5, 0, 0);
	int i;

	(void)state;
	gp_forecast_update(f, &o, &out);
	assert_float_equal(out.saturation, 1.0, 0.0);
	assert_int_equal(out.replicas, 1);
	assert_float_equal(out.forecast_saturation, 1.0, 1e-12);
	assert_int_equal(out.desired_replicas, 2);

	/* Nothing waiting, no consumer: idle, zero replicas wanted. */
	o = obs(POLL, 0.0, 0.0, 0, 0, 0);
	gp_forecast_update(f, &o, &out);
	assert_float_equal(out.saturation, 0.0, 0.0);
	assert_int_equal(out.desired_replicas, 0);

	/* Learn 2 s per message at 1 msg/s, then lose every consumer. */
	gp_forecast_reset(f);
	i = steady(f, 200, 1.0, 1.0, 2, 4, &out);
	for (int k = 0; k < 100; k++, i++) {
		o = obs(i * POLL, 0.0, 0.0, 0, 0, 0); /* idle: the service time stays */
		gp_forecast_update(f, &o, &out);
	}
	o = obs(i * POLL, 0.0, 0.0, 420, 0, 0); /* 420 ready: 420 x 2 / 60 = 14 slots */
	gp_forecast_update(f, &o, &out);
	assert_float_equal(out.holding_s, 2.0, 1e-9);
	assert_true(out.demand_slots >= 14.0 - 1e-6);
	assert_true(out.demand_slots < 14.5);
	assert_int_equal(out.desired_replicas, 14); /* the backlog's 14, no headroom */
	/* An HPA at zero replicas asks for ceil(metric / target): the same. */
	assert_int_equal((uint32_t)ceil(out.forecast_saturation / c.target - 1e-9),
			 out.desired_replicas);
	gp_forecast_free(f);
}

/* What the HPA computes from the metric, ceil(ready pods x metric / target),
 * is desired_replicas, whatever the prefetch, consumers per replica and
 * ready count. */
static void test_hpa_consistency(void **state)
{
	static const double rooms[] = {0.0, 2.0};
	static const uint32_t prefetches[] = {1, 2, 4, 10};
	static const uint32_t per_replica[] = {1, 2, 3};
	static const uint32_t consumers[] = {0, 1, 3, 8, 40};
	static const double rates[] = {0.0, 0.3, 2.0, 17.5};

	(void)state;
	for (size_t h = 0; h < 2; h++)
	for (size_t p = 0; p < 4; p++)
	for (size_t k = 0; k < 3; k++)
	for (size_t n = 0; n < 5; n++)
	for (size_t r = 0; r < 4; r++) {
		struct gp_forecast_config c = config();
		struct gp_forecast *f;
		struct gp_forecast_out out;

		c.consumers_per_replica = per_replica[k];
		c.headroom_sigma = rooms[h];
		c.max_replicas = 100000;
		f = make(&c);
		for (int i = 0; i < 50; i++) {
			struct gp_forecast_obs o = obs(i * POLL, rates[r], rates[r] + 0.5, 3,
						       consumers[n] * prefetches[p] / 2,
						       consumers[n]);
			o.prefetch = prefetches[p];
			gp_forecast_update(f, &o, &out);
		}
		double hpa = ceil((double)out.replicas * out.forecast_saturation / c.target - 1e-9);
		assert_int_equal((uint32_t)hpa, out.desired_replicas);
		gp_forecast_free(f);
	}
}

/* Square-root staffing: headroom_sigma x sqrt(the arrivals' slots) kept
 * free, which is a smaller share of a bigger pool. */
static void test_headroom(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *small, *big;
	struct gp_forecast_out a, b;

	(void)state;
	c.headroom_sigma = 2.0;
	c.max_replicas = 100000;
	small = make(&c);
	big = make(&c);
	/* 5 msg/s held 2 s: 10 slots, 2 x sqrt(10) = 6.32 more; (16.32) / 0.7
	 * = 23.3 slots: 24 replicas.  500 msg/s: 1000 slots + 63.2. */
	steady(small, 200, 5.0, 5.0, 10, 10, &a);
	steady(big, 200, 500.0, 500.0, 1000, 1000, &b);
	assert_float_equal(a.demand_slots, 10.0, 1e-6);
	assert_float_equal(a.headroom_slots, 2.0 * sqrt(10.0), 1e-6);
	assert_int_equal(a.desired_replicas, 24);
	assert_float_equal(a.forecast_saturation, (10.0 + 2.0 * sqrt(10.0)) / 10.0, 1e-6);
	assert_float_equal(b.headroom_slots, 2.0 * sqrt(1000.0), 1e-3);
	assert_int_equal(b.desired_replicas, (uint32_t)ceil((1000.0 + 2.0 * sqrt(1000.0)) / 0.7));
	assert_true(a.headroom_slots / a.demand_slots > 5 * b.headroom_slots / b.demand_slots);
	gp_forecast_free(small);
	gp_forecast_free(big);
}

/* By default a backlog is drained over three horizons. */
static void test_default_drain(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f;
	struct gp_forecast_out out;

	(void)state;
	c.drain_s = 0.0; /* the default: 3 x 60 s */
	f = make(&c);
	for (int i = 0; i < 300; i++) {
		struct gp_forecast_obs o = obs(i * POLL, 5.0, 5.0, 180, 10, 10);
		gp_forecast_update(f, &o, &out);
	}
	/* 10 busy slots, and 180 x 2 s / 180 s = 2 to drain the backlog */
	assert_float_equal(out.demand_slots, 12.0, 1e-6);
	assert_int_equal(out.desired_replicas, (uint32_t)ceil(10.0 / 0.7 + 2.0));
	gp_forecast_free(f);
}

/* A longer horizon extrapolates the slope further: on a ramp it wants at
 * least as many replicas, and on a flat load the same. */
static void test_desired_at(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f;
	struct gp_forecast_out out;
	int i;

	(void)state;
	c.max_replicas = 100000;
	f = make(&c);
	i = steady(f, 200, 10.0, 10.0, 20, 40, &out);
	assert_int_equal(gp_forecast_desired_at(f, &out, 180.0), out.desired_replicas);
	assert_int_equal(gp_forecast_desired_at(f, &out, NAN), out.desired_replicas);
	for (int k = 0; k < 60; k++, i++) { /* +0.1 msg/s each second */
		double rate = 10.0 + 0.5 * k;
		struct gp_forecast_obs o = obs(i * POLL, rate, rate, 0, (uint64_t)(2 * rate), 400);
		gp_forecast_update(f, &o, &out);
	}
	assert_true(out.arrival_trend > 0.05);
	assert_true(gp_forecast_desired_at(f, &out, 180.0) > out.desired_replicas);
	gp_forecast_free(f);
}

/* Given ready replicas override the consumers as the basis. */
static void test_replicas_given(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;
	struct gp_forecast_obs o = obs(0, 10.0, 10.0, 0, 20, 40);

	(void)state;
	o.replicas = 20; /* e.g. two consumers per pod that the config ignores */
	gp_forecast_update(f, &o, &out);
	assert_int_equal(out.replicas, 20);
	assert_float_equal(out.capacity_slots, 20.0, 0.0);
	assert_float_equal(out.forecast_saturation, 1.0, 1e-9);
	o = obs(POLL, 10.0, 10.0, 0, 20, 40);
	o.replicas = 0; /* none ready: relative to one, as the HPA's rule from zero */
	gp_forecast_update(f, &o, &out);
	assert_int_equal(out.replicas, 1);
	gp_forecast_free(f);
}

/* min and max bound desired_replicas; reaching max is flagged. */
static void test_bounds(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f;
	struct gp_forecast_out out;
	struct gp_forecast_obs o;

	(void)state;
	c.min_replicas = 3;
	c.max_replicas = 10;
	f = make(&c);
	o = obs(0, 0.0, 0.0, 0, 0, 5);
	gp_forecast_update(f, &o, &out);
	assert_int_equal(out.desired_replicas, 3);
	assert_false(out.flags & GP_FORECAST_F_AT_MAX);
	o = obs(POLL, 100.0, 100.0, 0, 50, 50);
	gp_forecast_update(f, &o, &out);
	assert_int_equal(out.desired_replicas, 10);
	assert_true(out.flags & GP_FORECAST_F_AT_MAX);
	gp_forecast_free(f);
}

/* Garbage in: flagged, read safely, never a NaN or infinity out. */
static void test_garbage(void **state)
{
	static const double bad_rates[] = {NAN, INFINITY, -INFINITY, -1.0, -1e300};
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;
	struct gp_forecast_obs o;

	(void)state;
	for (size_t i = 0; i < sizeof bad_rates / sizeof *bad_rates; i++) {
		o = obs((double)i * POLL, bad_rates[i], bad_rates[i], 1, 2, 4);
		gp_forecast_update(f, &o, &out);
		assert_true(out.flags & GP_FORECAST_F_BAD_RATE);
		assert_float_equal(out.arrival_rate, 0.0, 0.0);
		assert_true(isfinite(out.forecast_saturation));
		assert_true(out.desired_replicas >= 1); /* messages wait */
	}

	/* prefetch 0 is flagged and read as 1. */
	o = obs(100.0, 1.0, 1.0, 0, 2, 4);
	o.prefetch = 0;
	gp_forecast_update(f, &o, &out);
	assert_true(out.flags & GP_FORECAST_F_PREFETCH_0);
	assert_float_equal(out.saturation, 0.5, 1e-12);

	/* Absurd values, alternating with ordinary ones for long enough to
	 * reach any overflow: every figure stays finite, and absurd demand
	 * asks for max_replicas. */
	static const double wild_rates[] = {1e308, 1e-300, 0.0, DBL_MAX, 5.0, 1e-320};
	gp_forecast_reset(f);
	for (int i = 0; i < 600; i++) {
		int wild = (i / 7) % 2 == 0;
		double r = wild_rates[i % 6];
		o = wild ? obs(i * POLL, r, wild_rates[(i + 1) % 6], UINT64_MAX, UINT64_MAX,
			       UINT32_MAX)
			 : obs(i * POLL, 5.0, 5.0, 3, 10, 20);
		if (wild)
			o.prefetch = UINT32_MAX;
		gp_forecast_update(f, &o, &out);
		const double figures[] = {
			out.saturation,   out.forecast_saturation, out.arrival_rate,
			out.arrival_trend, out.arrival_forecast,   out.service_rate,
			out.holding_s,    out.demand_slots,        out.capacity_slots,
		};
		for (size_t k = 0; k < sizeof figures / sizeof *figures; k++)
			assert_true(isfinite(figures[k]));
		if (wild)
			assert_int_equal(out.desired_replicas, c.max_replicas);
	}
	gp_forecast_free(f);
}

/* Time going backwards, standing still or not a number: the instant figures
 * are fresh, the smoothed ones stay; a clock that went back is followed from
 * its new reading. */
static void test_time(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;
	struct gp_forecast_obs o;
	double level;

	(void)state;
	for (int i = 0; i < 10; i++) {
		o = obs(1000.0 + i * POLL, 4.0, 4.0, 0, 2, 4);
		gp_forecast_update(f, &o, &out);
	}
	level = out.arrival_rate;
	uint64_t n = out.samples;

	static const double bad_t[] = {1045.0 /* same instant */, 1045.0005, 10.0 /* back */,
				       NAN, INFINITY};
	for (size_t i = 0; i < sizeof bad_t / sizeof *bad_t; i++) {
		o = obs(bad_t[i], 40.0, 4.0, 0, 3, 4);
		gp_forecast_update(f, &o, &out);
		assert_true(out.flags & GP_FORECAST_F_TIME_BACK);
		assert_float_equal(out.arrival_rate, level, 0.0);
		assert_int_equal(out.samples, n);
		assert_float_equal(out.saturation, 0.75, 1e-12); /* fresh */
	}
	/* The clock went back to 10: 15 is 5 s later and advances. */
	o = obs(15.0, 4.0, 4.0, 0, 2, 4);
	gp_forecast_update(f, &o, &out);
	assert_false(out.flags & GP_FORECAST_F_TIME_BACK);
	assert_int_equal(out.samples, n + 1);

	/* A first observation with no usable time still answers. */
	gp_forecast_reset(f);
	o = obs(NAN, 3.0, 3.0, 0, 6, 10);
	gp_forecast_update(f, &o, &out);
	assert_true(out.flags & GP_FORECAST_F_TIME_BACK);
	assert_true(out.flags & GP_FORECAST_F_COLD);
	assert_int_equal(out.samples, 0);
	assert_float_equal(out.arrival_rate, 3.0, 0.0);
	assert_float_equal(out.saturation, 0.6, 1e-12);
	gp_forecast_free(f);
}

/* reset forgets everything but the configuration. */
static void test_reset(void **state)
{
	struct gp_forecast_config c = config();
	struct gp_forecast *f = make(&c);
	struct gp_forecast_out out;
	struct gp_forecast_obs o;

	(void)state;
	for (int i = 0; i < 50; i++) {
		o = obs(i * POLL, 8.0, 8.0, 0, 16, 20);
		gp_forecast_update(f, &o, &out);
	}
	gp_forecast_reset(f);
	o = obs(0.0, 1.0, 0.0, 0, 0, 20); /* time restarts: fine after a reset */
	gp_forecast_update(f, &o, &out);
	assert_int_equal(out.samples, 1);
	assert_true(out.flags & GP_FORECAST_F_COLD);
	assert_true(out.flags & GP_FORECAST_F_NO_SERVICE);
	assert_float_equal(out.arrival_rate, 1.0, 0.0);
	gp_forecast_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_bad),
		cmocka_unit_test(test_saturation),
		cmocka_unit_test(test_first_sample),
		cmocka_unit_test(test_steady),
		cmocka_unit_test(test_ramp),
		cmocka_unit_test(test_step_up),
		cmocka_unit_test(test_step_smoothed),
		cmocka_unit_test(test_step_down_and_irregular_polls),
		cmocka_unit_test(test_backlog),
		cmocka_unit_test(test_floor_busy),
		cmocka_unit_test(test_no_service),
		cmocka_unit_test(test_scale_from_zero),
		cmocka_unit_test(test_hpa_consistency),
		cmocka_unit_test(test_headroom),
		cmocka_unit_test(test_default_drain),
		cmocka_unit_test(test_desired_at),
		cmocka_unit_test(test_replicas_given),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
