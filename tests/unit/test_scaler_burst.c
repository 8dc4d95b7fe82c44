/* test_scaler_burst.c - hybrid bursting (src/scaler/burst.h): the split of
 * a queue's replicas between an on-premises pool of fixed capacity and a
 * cloud pool that warms up slower.  On-premises fills first, the cloud is
 * ordered on the cloud warm-up horizon, scale-in releases the cloud first,
 * the caps hold; and, with the real forecast on a ramp, the cloud is
 * ordered early enough to be warm when on-premises saturates. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scaler/burst.h"
#include "scaler/forecast.h"

#define CAP 8 /* on-premises capacity in the tests below */

static struct gp_burst_config hybrid(uint32_t onprem_max, uint32_t cloud_max)
{
	struct gp_burst_config c;

	gp_burst_config_default(&c);
	c.onprem_max = onprem_max;
	c.cloud_max = cloud_max;
	return c;
}

static struct gp_burst_out split(const struct gp_burst_config *c, uint32_t near, uint32_t far)
{
	struct gp_burst_out o = {99, 99, 99, 99};

	gp_burst_split(c, near, far, &o);
	assert_int_equal(o.near, near);
	assert_int_equal(o.far, far);
	return o;
}

/* The defaults are the documented ones; off, any configuration checks. */
static void test_config(void **state)
{
	struct gp_burst_config c, zero = {0};
	const char *field = NULL;

	(void)state;
	gp_burst_config_default(&c);
	assert_int_equal(c.onprem_max, 0);
	assert_float_equal(c.cloud_warmup_s, 180.0, 0.0);
	assert_float_equal(c.cloud_cost, 3.0, 0.0);
	assert_int_equal(gp_burst_config_check(&c, &field), 0);
	assert_null(field);
	assert_int_equal(gp_burst_config_check(&zero, &field), 0);
	c = hybrid(CAP, 10);
	assert_int_equal(gp_burst_config_check(&c, NULL), 0);
}

/* One bad value per field, with hybrid on: the check names that field. */
static void test_config_bad(void **state)
{
	static const struct {
		double warmup, cost;
		uint32_t cloud_max;
		const char *field;
	} bad[] = {
		{0.0, 3, 10, "cloud_warmup_s"},  {-1.0, 3, 10, "cloud_warmup_s"},
		{NAN, 3, 10, "cloud_warmup_s"},  {INFINITY, 3, 10, "cloud_warmup_s"},
		{180, 0.0, 10, "cloud_cost"},    {180, NAN, 10, "cloud_cost"},
		{180, INFINITY, 10, "cloud_cost"}, {180, -2, 10, "cloud_cost"},
		{180, 3, 0, "cloud_max"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct gp_burst_config c = hybrid(CAP, bad[i].cloud_max);
		const char *field = NULL;

		c.cloud_warmup_s = bad[i].warmup;
		c.cloud_cost = bad[i].cost;
		assert_int_equal(gp_burst_config_check(&c, &field), -EINVAL);
		assert_non_null(field);
		assert_string_equal(field, bad[i].field);
		assert_int_equal(gp_burst_config_check(&c, NULL), -EINVAL);
		c.onprem_max = 0; /* off: not read */
		assert_int_equal(gp_burst_config_check(&c, NULL), 0);
	}
}

/* Up to the capacity everything goes on-premises. */
static void test_fills_onprem_first(void **state)
{
	struct gp_burst_config c = hybrid(CAP, 100);

	(void)state;
	for (uint32_t d = 0; d <= CAP; d++) {
		struct gp_burst_out o = split(&c, d, d);
		assert_int_equal(o.onprem, d);
		assert_int_equal(o.cloud, 0);
	}
	/* Beyond it, on-premises is full and the rest bursts. */
	struct gp_burst_out o = split(&c, CAP + 5, CAP + 5);
	assert_int_equal(o.onprem, CAP);
	assert_int_equal(o.cloud, 5);
}

/* Demand one cloud warm-up ahead beyond the capacity orders the cloud
 * now, while on-premises still has room: it must be warm by then. */
static void test_bursts_early_on_the_far_horizon(void **state)
{
	struct gp_burst_config c = hybrid(CAP, 100);
	struct gp_burst_out o;

	(void)state;
	o = split(&c, 5, 12);
	assert_int_equal(o.onprem, 5);
	assert_int_equal(o.cloud, 12 - CAP);
	o = split(&c, 5, CAP); /* far reaches the capacity: not yet */
	assert_int_equal(o.cloud, 0);
	o = split(&c, 0, CAP + 1); /* even from an idle queue */
	assert_int_equal(o.onprem, 0);
	assert_int_equal(o.cloud, 1);
}

/* A falling forecast (far below near) keeps the cloud that serves the
 * present. */
static void test_falling_forecast_keeps_present_cloud(void **state)
{
	struct gp_burst_config c = hybrid(CAP, 100);
	struct gp_burst_out o = split(&c, 12, 3);

	(void)state;
	assert_int_equal(o.onprem, CAP);
	assert_int_equal(o.cloud, 12 - CAP);
}

/* As demand falls from far above the capacity to zero, the cloud count
 * reaches zero before the on-premises count leaves its cap. */
static void test_scale_in_releases_cloud_first(void **state)
{
	struct gp_burst_config c = hybrid(CAP, 100);
	uint32_t prev_cloud = UINT32_MAX, prev_onprem = UINT32_MAX;

	(void)state;
	for (int d = 3 * CAP; d >= 0; d--) {
		/* far at or below near: the forecast falls */
		struct gp_burst_out o = split(&c, (uint32_t)d, (uint32_t)(d / 2));
		assert_true(o.cloud <= prev_cloud && o.onprem <= prev_onprem);
		if (o.onprem < CAP)
			assert_int_equal(o.cloud, 0);
		if (o.cloud > 0)
			assert_int_equal(o.onprem, CAP);
		assert_int_equal(o.onprem + o.cloud, (uint32_t)d); /* nothing lost */
		prev_cloud = o.cloud;
		prev_onprem = o.onprem;
	}
	assert_int_equal(prev_cloud, 0);
	assert_int_equal(prev_onprem, 0);
}

/* The cloud stops at its ceiling; on-premises at its capacity. */
static void test_caps(void **state)
{
	struct gp_burst_config c = hybrid(CAP, 3);
	struct gp_burst_out o;

	(void)state;
	o = split(&c, 100, 200);
	assert_int_equal(o.onprem, CAP);
	assert_int_equal(o.cloud, 3);
	o = split(&c, UINT32_MAX, UINT32_MAX); /* no overflow */
	assert_int_equal(o.onprem, CAP);
	assert_int_equal(o.cloud, 3);
	c = hybrid(1, 1);
	o = split(&c, 2, 2);
	assert_int_equal(o.onprem, 1);
	assert_int_equal(o.cloud, 1);
}

/* Nothing wanted, nothing ordered; hybrid off is no split at all. */
static void test_zero_and_off(void **state)
{
	struct gp_burst_config c = hybrid(CAP, 100);
	struct gp_burst_out o = split(&c, 0, 0);

	(void)state;
	assert_int_equal(o.onprem, 0);
	assert_int_equal(o.cloud, 0);
	c = hybrid(0, 100);
	o = split(&c, 50, 70);
	assert_int_equal(o.onprem, 50);
	assert_int_equal(o.cloud, 0);
}

/* The forecast on a linear ramp of arrivals, split as the daemon splits
 * it.  Arrivals 2 + 0.02 t msg/s, each held 2 s, prefetch 1, target 1:
 * the demand is 4 + 0.04 t replicas, which passes the on-premises
 * capacity of 40 at t = 900 s.  A cloud worker ordered at t serves at
 * t + 180, so the cloud must be ordered by t = 720 (plus a poll); ordering
 * on the on-premises horizon (60 s) would be 120 s late. */
static void test_ramp_cloud_is_warm_when_onprem_saturates(void **state)
{
	const double poll = 5.0, slope = 0.02, hold = 2.0, cap = 40;
	const double saturates = (cap - 2 * hold) / (slope * hold); /* 900 s */
	struct gp_forecast_config fc;
	struct gp_burst_config bc = hybrid((uint32_t)cap, 100);
	struct gp_forecast *f = NULL;
	double first_cloud = -1, first_near = -1;

	(void)state;
	gp_forecast_config_default(&fc);
	fc.target = 1.0;
	fc.headroom_sigma = 0.0; /* the demand itself, for round figures */
	fc.horizon_s = 60.0;
	fc.max_replicas = 1000;
	assert_int_equal(gp_forecast_new(&f, &fc), 0);
	for (double t = 0; t <= 1200 && (first_cloud < 0 || first_near < 0); t += poll) {
		double rate = 2 + slope * t;
		struct gp_forecast_obs obs = {
			.t_s = t,
			.unacked = (uint64_t)llround(rate * hold),
			.consumers = 1000,
			.prefetch = 1,
			.publish_rate = rate,
			.ack_rate = rate,
			.replicas = -1,
		};
		struct gp_forecast_out out;
		struct gp_burst_out o;
		gp_forecast_update(f, &obs, &out);
		/* The second horizon at the first's length is the first. */
		assert_int_equal(gp_forecast_desired_at(f, &out, fc.horizon_s),
				 out.desired_replicas);
		gp_burst_split(&bc, out.desired_replicas,
			       gp_forecast_desired_at(f, &out, bc.cloud_warmup_s), &o);
		assert_true(o.far >= o.near); /* a rising ramp */
		if (o.cloud > 0 && first_cloud < 0)
			first_cloud = t;
		if (o.near > cap && first_near < 0)
			first_near = t;
	}
	gp_forecast_free(f);
	print_message("cloud ordered at %.0f s; on-premises saturates at %.0f s; the near "
		      "horizon alone would order at %.0f s\n", first_cloud, saturates, first_near);
	assert_true(first_cloud >= 0 && first_near >= 0);
	/* Warm in time (within one poll), and not wastefully early. */
	assert_true(first_cloud + bc.cloud_warmup_s <= saturates + poll);
	assert_true(first_cloud + bc.cloud_warmup_s >= saturates - 60);
	/* The near horizon alone would be late by the difference of the
	 * warm-ups. */
	assert_true(first_near + bc.cloud_warmup_s > saturates + 60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_bad),
		cmocka_unit_test(test_fills_onprem_first),
		cmocka_unit_test(test_bursts_early_on_the_far_horizon),
		cmocka_unit_test(test_falling_forecast_keeps_present_cloud),
		cmocka_unit_test(test_scale_in_releases_cloud_first),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_zero_and_off),
		cmocka_unit_test(test_ramp_cloud_is_warm_when_onprem_saturates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
