/* test_sched_frag.c - the fragmentation measure of "Beware of Fragmentation"
 * (ATC '23) on worked examples, and the workload model it is taken
 * against.
 *
 * Each example is worked by hand in its comment: F_n(m) is the free GPU
 * share of node n that task type m cannot use (all of it when m cannot run
 * on n), and F_n = sum_m p_m F_n(m). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gpupool/placement.h"
#include "place/pl_int.h" /* gp__fmodel_*: ours' flags */

#define GiB (1ull << 30)

/* A node with one card per entry of used[] (percent of compute in use). */
static struct gp_node *mk(const char *model, uint64_t cpu_free, uint64_t mem_gib, const unsigned *used, unsigned n)
{
	struct gp_node *nd;

	assert_int_equal(gp_node_new(&nd, "n", 64000, 64000 - cpu_free, mem_gib * GiB, 0), 0);
	for (unsigned i = 0; i < n; i++) {
		struct gp_gpu g = {.model = model, .mem_bytes = 16 * GiB, .compute = 100, .slices = 100,
				   .compute_used = used[i], .tenants = used[i] > 0};
		int rc = gp_node_add_gpu(nd, &g, NULL, 0);

		assert_int_equal(rc, (int)i);
	}
	return nd;
}

/* A task type: k cards of d percent, host CPU and memory, a type list. */
struct tt {
	unsigned k, d;
	uint64_t cpu, mem_gib;
	const char *types;
	double weight;
};

static struct gp_workload *wl(const struct tt *t, unsigned n)
{
	struct gp_workload *w;
	struct gp_request *r;

	assert_int_equal(gp_workload_new(&w), 0);
	assert_int_equal(gp_request_new(&r), 0);
	for (unsigned i = 0; i < n; i++) {
		gp_request_reset(r);
		gp_request_set_host(r, t[i].cpu, t[i].mem_gib * GiB);
		if (t[i].k) {
			struct gp_ctr c = {.gpus = t[i].k, .compute = t[i].d, .types = t[i].types};

			assert_true(gp_request_add_container(r, &c, NULL, 0) >= 0);
		}
		assert_int_equal(gp_workload_add(w, r, t[i].weight), 0);
	}
	gp_request_free(r);
	return w;
}

static const struct {
	const char *label;
	const char *model;
	uint64_t cpu_free;
	unsigned used[4], ngpu;
	struct tt types[3];
	unsigned ntypes;
	double want;       /* GPUs */
} examples[] = {
	/* m = 1 x 0.5: card 1 (0.3 free) cannot take it -> 0.3 */
	{"one type, one fragment", "T4", 64000, {0, 70}, 2, {{1, 50, 0, 0, NULL, 1}}, 1, 0.3},
	/* A = 1 x 0.5, B = 1 x 1.0, equally likely: both can run (card 0 is
	 * idle) and card 1's 0.3 is a fragment for both -> 0.3 */
	{"two types, both run", "T4", 64000, {0, 70}, 2, {{1, 50, 0, 0, NULL, 1}, {1, 100, 0, 0, NULL, 1}}, 2, 0.3},
	/* cards 0.6 and 0.3 free: A runs (0.3 is a fragment); B cannot run
	 * anywhere -> all 0.9; 0.5 * 0.3 + 0.5 * 0.9 = 0.6 */
	{"a type that cannot run", "T4", 64000, {40, 70}, 2, {{1, 50, 0, 0, NULL, 1}, {1, 100, 0, 0, NULL, 1}}, 2, 0.6},
	/* A needs 8 cores, the node has 4 free: it cannot run -> all 1.3 */
	{"too little CPU", "T4", 4000, {0, 70}, 2, {{1, 50, 8000, 0, NULL, 1}}, 1, 1.3},
	/* 2 whole cards: two idle cards take it, the 0.4 is a fragment */
	{"multi-GPU runs", "T4", 64000, {0, 0, 60}, 3, {{2, 100, 0, 0, NULL, 1}}, 1, 0.4},
	/* 2 whole cards, one idle card: cannot run -> 1.0 + 0.4 + 0.4 */
	{"multi-GPU cannot run", "T4", 64000, {0, 60, 60}, 3, {{2, 100, 0, 0, NULL, 1}}, 1, 1.8},
	/* a host-only task uses no GPU: every free share counts */
	{"host-only task", "T4", 64000, {0, 70}, 2, {{0, 0, 1000, 0, NULL, 1}}, 1, 1.3},
	/* a task for A100 cards only cannot run on T4 -> all 1.3; with a
	 * second type that runs (fragment 0.3) weighted 3:1 -> 0.25 * 1.3 +
	 * 0.75 * 0.3 = 0.55 */
	{"card type", "T4", 64000, {0, 70}, 2, {{1, 50, 0, 0, "A100", 1}, {1, 50, 0, 0, NULL, 3}}, 2, 0.55},
	/* a full node has nothing to fragment */
	{"full node", "T4", 64000, {100, 100}, 2, {{1, 50, 0, 0, NULL, 1}}, 1, 0},
	/* an idle node for a 0.5 task: nothing is lost */
	{"idle node", "T4", 64000, {0, 0, 0, 0}, 4, {{1, 50, 0, 0, NULL, 1}}, 1, 0},
};

static void test_examples(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
		struct gp_node *n = mk(examples[i].model, examples[i].cpu_free, 256, examples[i].used, examples[i].ngpu);
		struct gp_workload *w = wl(examples[i].types, examples[i].ntypes);
		double f = gp_frag(n, w);

		if (fabs(f - examples[i].want) > 1e-9)
			fail_msg("%s: F = %.6f, want %.6f", examples[i].label, f, examples[i].want);
		gp_workload_free(w);
		gp_node_free(n);
	}
}

/* The paper's measure ignores host memory: a task that needs more memory
 * than the node has left still "runs" for it (ours counts memory; see
 * test_sched_policy.c). */
static void test_memory_ignored(void **state)
{
	static const unsigned used[] = {0, 70};
	struct gp_node *n = mk("T4", 64000, 8, used, 2);
	struct gp_workload *w = wl((const struct tt[]){{1, 50, 0, 64, NULL, 1}}, 1);

	(void)state;
	assert_true(fabs(gp_frag(n, w) - 0.3) < 1e-9);
	gp_workload_free(w);
	gp_node_free(n);
}

/* FGD's step, by hand: a 0.5 task on cards (1.0, 0.6) with A = 1 x 0.5 and
 * B = 1 x 1.0 equally likely.  Before: A loses nothing, B loses card 1's
 * 0.6 -> F = 0.3.  On card 0 -> (0.5, 0.6): A loses nothing, B cannot run
 * (1.1) -> 0.55, growth +0.25.  On card 1 -> (1.0, 0.1): A and B lose 0.1
 * -> 0.1, growth -0.2.  FGD takes card 1. */
static void test_gradient(void **state)
{
	static const unsigned used[] = {0, 40};
	struct gp_node *n = mk("T4", 64000, 256, used, 2);
	struct gp_workload *w = wl((const struct tt[]){{1, 50, 0, 0, NULL, 1}, {1, 100, 0, 0, NULL, 1}}, 2);
	struct gp_request *r;
	struct gp_placer *pl;
	struct gp_policy pol;
	struct gp_decision d;
	struct gp_node *nodes[1] = {n};

	(void)state;
	assert_true(fabs(gp_frag(n, w) - 0.3) < 1e-9);
	assert_int_equal(gp_request_new(&r), 0);
	assert_true(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1, .compute = 50}, NULL, 0) == 0);
	assert_int_equal(gp_policy_parse("fgd", &pol, NULL, 0), 0);
	assert_int_equal(gp_placer_new(&pl, &pol, w), 0);
	assert_int_equal(gp_placer_choose(pl, nodes, 1, r, &d), 0);
	assert_int_equal(d.node, 0);
	assert_int_equal(d.plan.grant[0][0].gpu, 1);
	/* fgd's cost is the paper's simulator's score, negated:
	 * int(100 * sigmoid(0.2)) = int(54.98) */
	assert_true(d.cost == -54.0);
	assert_int_equal(gp_node_commit(n, &d.plan), 0);
	assert_true(fabs(gp_frag(n, w) - 0.1) < 1e-9);
	gp_placer_free(pl);
	gp_request_free(r);
	gp_workload_free(w);
	gp_node_free(n);
}

/* --- the workload model ----------------------------------------------------- */

static void test_workload(void **state)
{
	struct gp_workload *w;
	struct gp_request *r;

	(void)state;
	assert_int_equal(gp_workload_new(&w), 0);
	assert_int_equal(gp_request_new(&r), 0);
	assert_int_equal(gp_workload_types(w), 0);
	gp_request_set_host(r, 1000, GiB);
	assert_true(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1, .compute = 50, .types = "T4,A10"}, NULL,
					     0) == 0);
	/* the same shape merges; weights add up */
	assert_int_equal(gp_workload_add(w, r, 1), 0);
	assert_int_equal(gp_workload_add(w, r, 2), 0);
	assert_int_equal(gp_workload_types(w), 1);
	assert_true(gp_workload_total(w) == 3);
	/* a different type list is a different shape, as is another CPU */
	gp_request_reset(r);
	gp_request_set_host(r, 1000, GiB);
	assert_true(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1, .compute = 50, .types = "T4"}, NULL, 0) == 0);
	assert_int_equal(gp_workload_add(w, r, 1), 0);
	gp_request_set_host(r, 2000, GiB);
	assert_int_equal(gp_workload_add(w, r, 1), 0);
	assert_int_equal(gp_workload_types(w), 3);
	/* bad weights */
	assert_int_equal(gp_workload_add(w, r, 0), -EINVAL);
	assert_int_equal(gp_workload_add(w, r, -1), -EINVAL);
	assert_int_equal(gp_workload_add(w, r, NAN), -EINVAL);
	/* decay scales every weight */
	gp_workload_decay(w, 0.5);
	assert_true(fabs(gp_workload_total(w) - 2.5) < 1e-12);
	gp_workload_decay(w, 2); /* out of range: ignored */
	assert_true(fabs(gp_workload_total(w) - 2.5) < 1e-12);
	gp_workload_free(w);

	/* full: a new shape replaces the lightest only if it weighs more */
	assert_int_equal(gp_workload_new(&w), 0);
	for (unsigned i = 0; i < GP_WORKLOAD_MAX_TYPES; i++) {
		gp_request_reset(r);
		gp_request_set_host(r, 1000 + i, 0);
		assert_int_equal(gp_workload_add(w, r, i == 7 ? 0.5 : 1), 0);
	}
	assert_int_equal(gp_workload_types(w), GP_WORKLOAD_MAX_TYPES);
	gp_request_reset(r);
	gp_request_set_host(r, 1, 0);
	assert_int_equal(gp_workload_add(w, r, 0.25), 0); /* lighter: dropped */
	assert_true(fabs(gp_workload_total(w) - (GP_WORKLOAD_MAX_TYPES - 0.5)) < 1e-9);
	assert_int_equal(gp_workload_add(w, r, 2), 0);    /* heavier: replaces the 0.5 */
	assert_int_equal(gp_workload_types(w), GP_WORKLOAD_MAX_TYPES);
	assert_true(fabs(gp_workload_total(w) - (GP_WORKLOAD_MAX_TYPES + 1)) < 1e-9);
	gp_workload_free(w);
	gp_request_free(r);
}

/* A workload that changes is seen by the placer's next decision. */
static void test_workload_changes(void **state)
{
	static const unsigned used[] = {0, 40};
	struct gp_node *n = mk("T4", 64000, 256, used, 2);
	struct gp_workload *w = wl((const struct tt[]){{1, 50, 0, 0, NULL, 1}}, 1);
	struct gp_request *r, *big;
	struct gp_placer *pl;
	struct gp_policy pol;
	struct gp_decision d;
	struct gp_node *nodes[1] = {n};

	(void)state;
	assert_int_equal(gp_request_new(&r), 0);
	assert_true(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1, .compute = 50}, NULL, 0) == 0);
	assert_int_equal(gp_policy_parse("fgd", &pol, NULL, 0), 0);
	assert_int_equal(gp_placer_new(&pl, &pol, w), 0);
	/* with only 0.5 tasks to come, card 0 leaves (0.5, 0.6), nothing
	 * unusable, while card 1 would leave a 0.1 sliver */
	assert_int_equal(gp_placer_choose(pl, nodes, 1, r, &d), 0);
	assert_int_equal(d.plan.grant[0][0].gpu, 0);
	assert_true(d.cost == -50.0); /* growth 0: int(100 * sigmoid(0)) */
	/* once whole-card tasks are expected too, keeping card 0 idle wins */
	assert_int_equal(gp_request_new(&big), 0);
	assert_true(gp_request_add_container(big, &(struct gp_ctr){.gpus = 1, .compute = 100}, NULL, 0) == 0);
	assert_int_equal(gp_workload_add(w, big, 1), 0);
	assert_int_equal(gp_placer_choose(pl, nodes, 1, r, &d), 0);
	assert_int_equal(d.plan.grant[0][0].gpu, 1);
	gp_placer_free(pl);
	gp_request_free(big);
	gp_request_free(r);
	gp_workload_free(w);
	gp_node_free(n);
}

/* Ours' balance term (GP__F_BALANCE), by hand.  To come: A = 1 x 0.5 with
 * 8 cores and a host-only task of 8 cores, equally likely: 16 cores per
 * 0.5 GPU, rho = 32 cores per GPU.  The paper's part: A runs wherever it
 * has 8 cores and a card (nothing lost), the host-only task makes every
 * free share a fragment: F = 0.5 * free GPUs.
 *   - 2 idle T4 cards, 64 cores in all (32 per GPU, rho' = 32), 32 free:
 *     the free CPU serves 32 / 32 = 1 GPU of the 2 free, 1 GPU stranded:
 *     + 0.1 * 1 = 0.1 -> 1.1 (the paper's measure: 1.0);
 *   - the same with 64 cores free: nothing stranded -> 1.0;
 *   - 4 idle cards, 64 cores (16 per GPU: rho' = 16, the node's own ratio
 *     caps the workload's), all free: 64 / 16 = 4 GPUs served, an idle
 *     node adds nothing -> 2.0; with 32 cores free, 2 GPUs stranded ->
 *     2.0 + 0.2 = 2.2. */
static void test_balance(void **state)
{
	static const unsigned idle[] = {0, 0, 0, 0};
	static const struct {
		uint64_t cpu_free;
		unsigned ngpu;
		double paper, ours;
	} cases[] = {
		{32000, 2, 1.0, 1.1},
		{64000, 2, 1.0, 1.0},
		{64000, 4, 2.0, 2.0},
		{32000, 4, 2.0, 2.2},
	};
	struct gp_workload *w = wl((const struct tt[]){{1, 50, 8000, 0, NULL, 1}, {0, 0, 8000, 0, NULL, 1}}, 2);
	struct gp__fmodel *ours, *hostmem;

	(void)state;
	assert_int_equal(gp__fmodel_new(&ours, w, GP__F_HOSTMEM | GP__F_BALANCE), 0);
	assert_int_equal(gp__fmodel_new(&hostmem, w, GP__F_HOSTMEM), 0);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct gp_node *n = mk("T4", cases[i].cpu_free, 256, idle, cases[i].ngpu);
		double fp = gp_frag(n, w), fm = gp__fmodel_eval(hostmem, n, &n->st), fo = gp__fmodel_eval(ours, n, &n->st);

		if (fabs(fp - cases[i].paper) > 1e-9 || fabs(fm - cases[i].paper) > 1e-9 ||
		    fabs(fo - cases[i].ours) > 1e-9)
			fail_msg("case %zu: paper %.6f, host memory %.6f, ours %.6f; want %.6f and %.6f", i, fp, fm,
				 fo, cases[i].paper, cases[i].ours);
		gp_node_free(n);
	}
	gp__fmodel_free(ours);
	gp__fmodel_free(hostmem);
	gp_workload_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_examples), cmocka_unit_test(test_memory_ignored),
		cmocka_unit_test(test_gradient), cmocka_unit_test(test_workload),
		cmocka_unit_test(test_workload_changes), cmocka_unit_test(test_balance),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
