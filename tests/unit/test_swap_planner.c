/* test_swap_planner.c - the hotswap planner (src/swap/planner.h), by known
 * answers: minimums are placed before demand; the fewest bytes move (what is
 * loaded stays, a host-cached copy beats disk); memory holds with several
 * small models on one engine; a model spanning two engines; an engine lost
 * restores minimums first, on the engines where they are ready soonest;
 * hysteresis keeps a replica through a dip shorter than the hold time; the
 * same input gives the same plan; bad input is refused. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "swap/planner.h"

#define GB 1000000000ull
#define HOST_BW 20e9
#define DISK_BW 2e9

static struct gp_plan_engine engine80(void)
{
	return (struct gp_plan_engine){.mem_bytes = 80 * GB, .host_bw = HOST_BW,
				       .disk_bw = DISK_BW, .healthy = 1};
}

static struct gp_plan_model model(uint64_t gb, uint32_t min, double demand)
{
	return (struct gp_plan_model){.size_bytes = gb * GB, .span = 1, .min_replicas = min,
				      .max_replicas = 8, .replica_rps = 1.0,
				      .demand_rps = demand};
}

static struct gp_plan_replica on(uint32_t m, uint32_t e)
{
	return (struct gp_plan_replica){.model = m, .nengines = 1, .engine = {e}};
}

static struct gp_planner *planner(double hold_s)
{
	struct gp_planner_config c;
	struct gp_planner *p;

	gp_planner_config_default(&c);
	c.hold_s = hold_s;
	c.target_util = 1.0;
	c.margin = 0.0;
	assert_int_equal(gp_planner_new(&p, &c), 0);
	return p;
}

/* Bytes of model shards on engine e in the target placement. */
static uint64_t used_on(const struct gp_plan *pl, const struct gp_plan_model *models, uint32_t e)
{
	uint64_t u = 0;
	for (size_t i = 0; i < pl->nreplicas; i++)
		for (uint32_t k = 0; k < pl->replicas[i].nengines; k++)
			if (pl->replicas[i].engine[k] == e)
				u += models[pl->replicas[i].model].size_bytes /
				     models[pl->replicas[i].model].span;
	return u;
}

static size_t count_loads(const struct gp_plan *pl, uint32_t m)
{
	size_t n = 0;
	for (size_t i = 0; i < pl->nactions; i++)
		n += pl->actions[i].op == GP_PLAN_LOAD && pl->actions[i].model == m;
	return n;
}

static void test_config(void **state)
{
	struct gp_planner_config c;
	const char *bad = NULL;

	(void)state;
	gp_planner_config_default(&c);
	assert_int_equal(gp_planner_config_check(&c, &bad), 0);
	assert_null(bad);
	c.target_util = 0.0;
	assert_int_equal(gp_planner_config_check(&c, &bad), -EINVAL);
	assert_string_equal(bad, "target_util");
	gp_planner_config_default(&c);
	c.max_loads = 0;
	assert_int_equal(gp_planner_config_check(&c, &bad), -EINVAL);
	assert_string_equal(bad, "max_loads");
	assert_string_equal(gp_plan_why_name(GP_PLAN_WHY_MIN), "min");
	assert_string_equal(gp_plan_op_name(GP_PLAN_UNLOAD), "unload");
}

/* Model 0 wants three replicas for demand, models 1-3 have a minimum of one
 * and no demand: the three minimum loads come first in the list. */
static void test_minimums_first(void **state)
{
	struct gp_plan_engine e[4] = {engine80(), engine80(), engine80(), engine80()};
	struct gp_plan_model m[4] = {model(10, 0, 3.0), model(10, 1, 0), model(10, 1, 0),
				     model(10, 1, 0)};
	struct gp_planner *p = planner(0);
	struct gp_plan pl;

	(void)state;
	assert_int_equal(gp_planner_plan(p, 0, m, 4, e, 4, NULL, 0, &pl), 0);
	assert_int_equal(pl.nactions, 6);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(pl.actions[i].op, GP_PLAN_LOAD);
		assert_int_equal(pl.actions[i].why, GP_PLAN_WHY_MIN);
		assert_int_equal(pl.actions[i].model, i + 1);
	}
	for (size_t i = 3; i < 6; i++) {
		assert_int_equal(pl.actions[i].why, GP_PLAN_WHY_DEMAND);
		assert_int_equal(pl.actions[i].model, 0);
	}
	assert_int_equal(pl.want[0], 3);
	assert_int_equal(pl.unmet_min, 0);
	assert_int_equal(pl.unmet_demand, 0);
	assert_int_equal(pl.bytes, 60 * GB);
	assert_int_equal(pl.disk_bytes, 60 * GB);
	gp_planner_free(p);
}

/* A 10 GB model whose weights are in engine 2's host memory goes there, from
 * host memory (0.5 s), not to engine 0 from disk (5 s); and what is loaded
 * is kept: a second plan with that replica as current moves nothing. */
static void test_fewest_bytes(void **state)
{
	uint8_t cached[1] = {1};
	struct gp_plan_engine e[3] = {engine80(), engine80(), engine80()};
	struct gp_plan_model m[1] = {model(10, 1, 0.5)};
	struct gp_plan_replica cur[1];
	struct gp_planner *p = planner(0);
	struct gp_plan pl;

	(void)state;
	e[2].cached = cached;
	assert_int_equal(gp_planner_plan(p, 0, m, 1, e, 3, NULL, 0, &pl), 0);
	assert_int_equal(pl.nactions, 1);
	assert_int_equal(pl.actions[0].engine[0], 2);
	assert_int_equal(pl.actions[0].src, GP_PLAN_SRC_HOST);
	assert_int_equal(pl.actions[0].disk_bytes, 0);
	assert_float_equal(pl.actions[0].done_s, 0.5, 1e-9);
	assert_float_equal(pl.min_met_s[0], 0.5, 1e-9);

	/* Loaded on engine 0 (not the cached one): it stays there. */
	cur[0] = on(0, 0);
	assert_int_equal(gp_planner_plan(p, 5, m, 1, e, 3, cur, 1, &pl), 0);
	assert_int_equal(pl.nactions, 0);
	assert_int_equal(pl.bytes, 0);
	assert_int_equal(pl.nreplicas, 1);
	assert_int_equal(pl.replicas[0].engine[0], 0);
	assert_float_equal(pl.min_met_s[0], 0.0, 0.0);
	gp_planner_free(p);
}

/* An engine that cannot serve a model (a vLLM engine without a server for
 * it) is never given it, even where it would be cheapest; a model no
 * healthy engine serves has its minimum unmet. */
static void test_serves(void **state)
{
	uint8_t cached[2] = {1, 1}, only0[2] = {1, 0}, none[2] = {0, 0};
	struct gp_plan_engine e[2] = {engine80(), engine80()};
	struct gp_plan_model m[2] = {model(10, 1, 0.5), model(10, 1, 0.5)};
	struct gp_planner *p = planner(0);
	struct gp_plan pl;

	(void)state;
	e[0].cached = cached; /* engine 0 is cheapest for both */
	e[0].serves = only0;  /* but serves model 0 alone */
	assert_int_equal(gp_planner_plan(p, 0, m, 2, e, 2, NULL, 0, &pl), 0);
	assert_int_equal(pl.nreplicas, 2);
	for (size_t i = 0; i < pl.nreplicas; i++)
		assert_int_equal(pl.replicas[i].engine[0], pl.replicas[i].model == 0 ? 0 : 1);
	assert_int_equal(pl.unmet_min, 0);

	e[1].serves = none;
	gp_planner_reset(p);
	assert_int_equal(gp_planner_plan(p, 0, m, 2, e, 2, NULL, 0, &pl), 0);
	assert_int_equal(pl.unmet_min, 1);
	assert_true(isinf(pl.min_met_s[1]));
	gp_planner_free(p);
}

/* Ten 7 GB models with a minimum of one share one 80 GB engine; an eleventh
 * of 15 GB does not fit: its minimum is reported unmet, never overcommitted. */
static void test_memory_shared(void **state)
{
	struct gp_plan_engine e[1] = {engine80()};
	struct gp_plan_model m[11];
	struct gp_planner *p = planner(0);
	struct gp_plan pl;

	(void)state;
	for (int i = 0; i < 10; i++)
		m[i] = model(7, 1, 0);
	m[10] = model(15, 1, 0);
	assert_int_equal(gp_planner_plan(p, 0, m, 11, e, 1, NULL, 0, &pl), 0);
	assert_int_equal(pl.nreplicas, 10);
	assert_true(used_on(&pl, m, 0) <= 80 * GB);
	assert_int_equal(used_on(&pl, m, 0), 70 * GB);
	assert_int_equal(pl.unmet_min, 1);
	assert_true(isinf(pl.min_met_s[10]));
	/* Loads on one engine run one after another. */
	assert_float_equal(pl.min_met_s[9], 10 * 3.5, 1e-6);
	gp_planner_free(p);
}

/* A 140 GB model spans two 80 GB engines, 70 GB on each; engine 0 holds a
 * 20 GB model that must stay, so the pair is engines 1 and 2. */
static void test_two_engine_model(void **state)
{
	struct gp_plan_engine e[3] = {engine80(), engine80(), engine80()};
	struct gp_plan_model m[2] = {model(20, 1, 0), model(140, 1, 0)};
	struct gp_plan_replica cur[1] = {on(0, 0)};
	struct gp_planner *p = planner(0);
	struct gp_plan pl;

	(void)state;
	m[1].span = 2;
	assert_int_equal(gp_planner_plan(p, 0, m, 2, e, 3, cur, 1, &pl), 0);
	assert_int_equal(pl.nactions, 1);
	assert_int_equal(pl.actions[0].nengines, 2);
	assert_int_equal(pl.actions[0].engine[0], 1);
	assert_int_equal(pl.actions[0].engine[1], 2);
	assert_int_equal(pl.actions[0].bytes, 140 * GB);
	/* Both shards from disk in parallel: 70 GB / 2 GB/s. */
	assert_float_equal(pl.actions[0].done_s, 35.0, 1e-9);
	assert_int_equal(used_on(&pl, m, 1), 70 * GB);
	assert_int_equal(used_on(&pl, m, 2), 70 * GB);
	gp_planner_free(p);
}

/* Engine 0 holds models 0 and 1 (minimum one each) and fails.  Model 0's
 * weights are cached on engine 2, model 1's on engine 3; engine 3 is full
 * with a replica of model 3 that no demand wants (it is evicted), and model
 * 2 wants a replica for demand.  Minimums come first, each from host memory
 * on its cached engine, and are met within the host copy time; the demand
 * load comes after them. */
static void test_failover(void **state)
{
	uint8_t c2[4] = {1, 0, 0, 0}, c3[4] = {0, 1, 0, 0};
	struct gp_plan_engine e[4] = {engine80(), engine80(), engine80(), engine80()};
	struct gp_plan_model m[4] = {model(30, 1, 0.5), model(30, 1, 0.5), model(30, 0, 0.5),
				     model(70, 0, 0)};
	struct gp_plan_replica cur[3] = {on(0, 0), on(1, 0), on(3, 3)};
	struct gp_planner *p = planner(0);
	struct gp_plan pl;

	(void)state;
	e[0].healthy = 0;
	e[2].cached = c2;
	e[3].cached = c3;
	assert_int_equal(gp_planner_plan(p, 0, m, 4, e, 4, cur, 3, &pl), 0);
	assert_int_equal(pl.nactions, 4);
	assert_int_equal(pl.actions[0].op, GP_PLAN_LOAD);
	assert_int_equal(pl.actions[0].why, GP_PLAN_WHY_MIN);
	assert_int_equal(pl.actions[0].model, 0);
	assert_int_equal(pl.actions[0].engine[0], 2);
	assert_int_equal(pl.actions[0].src, GP_PLAN_SRC_HOST);
	assert_int_equal(pl.actions[1].op, GP_PLAN_UNLOAD);
	assert_int_equal(pl.actions[1].why, GP_PLAN_WHY_ROOM);
	assert_int_equal(pl.actions[1].model, 3);
	assert_int_equal(pl.actions[2].op, GP_PLAN_LOAD);
	assert_int_equal(pl.actions[2].model, 1);
	assert_int_equal(pl.actions[2].engine[0], 3);
	assert_int_equal(pl.actions[2].src, GP_PLAN_SRC_HOST);
	assert_int_equal(pl.actions[3].why, GP_PLAN_WHY_DEMAND);
	assert_int_equal(pl.actions[3].model, 2);
	/* Engine 1 is free; 2 and 3 are busy with the restores. */
	assert_int_equal(pl.actions[3].engine[0], 1);
	assert_float_equal(pl.min_met_s[0], 1.5, 1e-9);
	assert_float_equal(pl.min_met_s[1], 1.5, 1e-9);
	assert_int_equal(pl.unmet_min, 0);
	for (uint32_t k = 1; k < 4; k++)
		assert_true(used_on(&pl, m, k) <= 80 * GB);
	gp_planner_free(p);
}

/* A lost engine under a two-engine replica: the healthy half is unloaded. */
static void test_lost_half(void **state)
{
	struct gp_plan_engine e[4] = {engine80(), engine80(), engine80(), engine80()};
	struct gp_plan_model m[1] = {model(140, 1, 0)};
	struct gp_plan_replica cur[1] = {{.model = 0, .nengines = 2, .engine = {0, 1}}};
	struct gp_planner *p = planner(0);
	struct gp_plan pl;

	(void)state;
	m[0].span = 2;
	e[1].healthy = 0;
	assert_int_equal(gp_planner_plan(p, 0, m, 1, e, 4, cur, 1, &pl), 0);
	assert_int_equal(pl.nactions, 2);
	assert_int_equal(pl.actions[0].op, GP_PLAN_UNLOAD);
	assert_int_equal(pl.actions[0].why, GP_PLAN_WHY_LOST);
	assert_int_equal(pl.actions[0].nengines, 1);
	assert_int_equal(pl.actions[0].engine[0], 0);
	assert_int_equal(pl.actions[1].why, GP_PLAN_WHY_MIN);
	assert_int_equal(pl.actions[1].engine[0], 0);
	assert_int_equal(pl.actions[1].engine[1], 2);
	gp_planner_free(p);
}

/* One engine, full: model 0 has a replica there with no demand left (min 0),
 * model 1 wants one.  With a hold of 120 s a dip of 60 s evicts nothing; the
 * dip ends (demand returns) and a new one restarts the clock; only after
 * 120 s of continuous low demand is model 0's replica evicted for model 1. */
static void test_hysteresis(void **state)
{
	struct gp_plan_engine e[1] = {engine80()};
	struct gp_plan_model m[2] = {model(60, 0, 0.0), model(60, 0, 0.5)};
	struct gp_plan_replica cur[1] = {on(0, 0)};
	struct gp_planner *p = planner(120);
	struct gp_plan pl;

	(void)state;
	assert_int_equal(gp_planner_plan(p, 0, m, 2, e, 1, cur, 1, &pl), 0);
	assert_int_equal(pl.nactions, 0);
	assert_int_equal(pl.want[0], 1);
	assert_int_equal(pl.unmet_demand, 1);
	assert_int_equal(gp_planner_plan(p, 60, m, 2, e, 1, cur, 1, &pl), 0);
	assert_int_equal(pl.nactions, 0);
	m[0].demand_rps = 0.5; /* back */
	assert_int_equal(gp_planner_plan(p, 90, m, 2, e, 1, cur, 1, &pl), 0);
	assert_int_equal(pl.nactions, 0);
	m[0].demand_rps = 0.0; /* a second dip */
	assert_int_equal(gp_planner_plan(p, 100, m, 2, e, 1, cur, 1, &pl), 0);
	assert_int_equal(gp_planner_plan(p, 200, m, 2, e, 1, cur, 1, &pl), 0);
	assert_int_equal(pl.nactions, 0);
	assert_int_equal(gp_planner_plan(p, 220, m, 2, e, 1, cur, 1, &pl), 0);
	assert_int_equal(pl.nactions, 2);
	assert_int_equal(pl.actions[0].op, GP_PLAN_UNLOAD);
	assert_int_equal(pl.actions[0].model, 0);
	assert_int_equal(pl.actions[1].op, GP_PLAN_LOAD);
	assert_int_equal(pl.actions[1].model, 1);
	gp_planner_free(p);
}

/* A minimum is never evicted for demand, and demand loads stop at
 * max_loads. */
static void test_min_protected_and_cap(void **state)
{
	struct gp_plan_engine e[1] = {engine80()};
	struct gp_plan_model m[2] = {model(60, 1, 0.0), model(60, 0, 5.0)};
	struct gp_plan_replica cur[1] = {on(0, 0)};
	struct gp_planner *p = planner(0);
	struct gp_plan pl;

	(void)state;
	assert_int_equal(gp_planner_plan(p, 0, m, 2, e, 1, cur, 1, &pl), 0);
	assert_int_equal(pl.nactions, 0);
	assert_int_equal(pl.unmet_demand, 1);
	gp_planner_free(p);

	struct gp_planner_config c;
	struct gp_plan_engine e8[8];
	struct gp_plan_model big = model(10, 0, 8.0);
	gp_planner_config_default(&c);
	c.target_util = 1.0;
	c.max_loads = 3;
	for (int i = 0; i < 8; i++)
		e8[i] = engine80();
	assert_int_equal(gp_planner_new(&p, &c), 0);
	assert_int_equal(gp_planner_plan(p, 0, &big, 1, e8, 8, NULL, 0, &pl), 0);
	assert_int_equal(count_loads(&pl, 0), 3);
	/* One replica per engine, never two of a model on one. */
	for (size_t i = 0; i < pl.nactions; i++)
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(pl.actions[i].engine[0], pl.actions[j].engine[0]);
	gp_planner_free(p);
}

/* Two planners given the same input write the same plan. */
static void test_deterministic(void **state)
{
	uint8_t cached[6] = {0, 1, 0, 1, 0, 1};
	struct gp_plan_engine e[5];
	struct gp_plan_model m[6] = {model(30, 1, 2.0), model(20, 1, 0.1), model(70, 0, 1.0),
				     model(5, 2, 3.0),  model(40, 0, 0.0), model(140, 1, 0.5)};
	struct gp_plan_replica cur[2] = {on(1, 0), on(4, 3)};
	struct gp_planner *a = planner(30), *b = planner(30);
	struct gp_plan pa, pb;

	(void)state;
	m[5].span = 2;
	for (int i = 0; i < 5; i++) {
		e[i] = engine80();
		e[i].cached = i % 2 ? cached : NULL;
	}
	assert_int_equal(gp_planner_plan(a, 7, m, 6, e, 5, cur, 2, &pa), 0);
	assert_int_equal(gp_planner_plan(b, 7, m, 6, e, 5, cur, 2, &pb), 0);
	assert_true(pa.nactions > 0);
	assert_int_equal(pa.nactions, pb.nactions);
	assert_memory_equal(pa.actions, pb.actions, pa.nactions * sizeof *pa.actions);
	assert_int_equal(pa.nreplicas, pb.nreplicas);
	assert_memory_equal(pa.replicas, pb.replicas, pa.nreplicas * sizeof *pa.replicas);
	for (uint32_t k = 0; k < 5; k++)
		assert_true(used_on(&pa, m, k) <= 80 * GB);
	gp_planner_free(a);
	gp_planner_free(b);
}

static void test_bad_input(void **state)
{
	struct gp_plan_engine e[2] = {engine80(), engine80()};
	struct gp_plan_model m[1] = {model(10, 0, 0)};
	struct gp_plan_replica cur[1] = {on(1, 0)};
	struct gp_planner *p = planner(0);
	struct gp_plan pl;

	(void)state;
	assert_int_equal(gp_planner_plan(p, 0, m, 1, e, 2, cur, 1, &pl), -EINVAL);
	cur[0] = on(0, 2);
	assert_int_equal(gp_planner_plan(p, 0, m, 1, e, 2, cur, 1, &pl), -EINVAL);
	m[0].span = 0;
	assert_int_equal(gp_planner_plan(p, 0, m, 1, e, 2, NULL, 0, &pl), -EINVAL);
	m[0] = model(10, 0, NAN);
	assert_int_equal(gp_planner_plan(p, 0, m, 1, e, 2, NULL, 0, &pl), -EINVAL);
	gp_planner_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_minimums_first),
		cmocka_unit_test(test_fewest_bytes),
		cmocka_unit_test(test_serves),
		cmocka_unit_test(test_memory_shared),
		cmocka_unit_test(test_two_engine_model),
		cmocka_unit_test(test_failover),
		cmocka_unit_test(test_lost_half),
		cmocka_unit_test(test_hysteresis),
		cmocka_unit_test(test_min_protected_and_cap),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
