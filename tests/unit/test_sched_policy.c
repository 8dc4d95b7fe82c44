/* test_sched_policy.c - placement policies: parsing, what each one prefers
 * on small handmade nodes, the prioritize score, the decision summary, and
 * the placer's cache (decisions with and without it are the same). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "place/pl_int.h" /* gp__placer_cache, gp__placer_rng */
#include "gpupool/placement.h"

#define GiB (1ull << 30)

/* --- parsing ------------------------------------------------------------------ */

static const struct {
	const char *in;
	int rc;
	enum gp_node_policy node;
	enum gp_gpu_policy gpu;
	bool topology;
	const char *out;     /* gp_policy_format, or the error's substring */
} parse_cases[] = {
	{"ours", 0, GP_NODE_OURS, GP_GPU_BINPACK, true, "node=ours,topology=on"},
	{"fgd", 0, GP_NODE_FGD, GP_GPU_BINPACK, true, "node=fgd,topology=on"},
	{"binpack", 0, GP_NODE_BINPACK, GP_GPU_BINPACK, true, "node=binpack,gpu=binpack,topology=on"},
	{"spread,gpu=binpack", 0, GP_NODE_SPREAD, GP_GPU_BINPACK, true, "node=spread,gpu=binpack,topology=on"},
	{"node=binpack,gpu=spread,topology=off", 0, GP_NODE_BINPACK, GP_GPU_SPREAD, false,
	 "node=binpack,gpu=spread,topology=off"},
	{" Best-Fit ", 0, GP_NODE_BESTFIT, GP_GPU_BINPACK, true, "node=bestfit,gpu=binpack,topology=on"},
	{"gpu-packing", 0, GP_NODE_PACKING, GP_GPU_BINPACK, true, "node=packing,gpu=binpack,topology=on"},
	{"random-fit,topology=false", 0, GP_NODE_RANDOM, GP_GPU_BINPACK, false, "node=random,gpu=binpack,topology=off"},
	{"", -EINVAL, 0, 0, false, "empty item"},
	{"worstfit", -EINVAL, 0, 0, false, "unknown node policy \"worstfit\""},
	{"binpack,gpu=first", -EINVAL, 0, 0, false, "unknown GPU policy \"first\""},
	{"binpack,topology=maybe", -EINVAL, 0, 0, false, "topology takes on or off"},
	{"binpack,colour=red", -EINVAL, 0, 0, false, "unknown policy key \"colour\""},
	{"fgd,gpu=spread", -EINVAL, 0, 0, false, "does not apply to fgd"},
	{"binpack,,spread", -EINVAL, 0, 0, false, "empty item"},
};

static void test_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof parse_cases / sizeof *parse_cases; i++) {
		struct gp_policy p;
		char err[GP_REASON_MAX] = "", buf[128];
		int rc = gp_policy_parse(parse_cases[i].in, &p, err, sizeof err);

		if (rc != parse_cases[i].rc)
			fail_msg("\"%s\": rc %d (%s), want %d", parse_cases[i].in, rc, err, parse_cases[i].rc);
		if (rc < 0) {
			if (!strstr(err, parse_cases[i].out))
				fail_msg("\"%s\": error \"%s\", want \"%s\"", parse_cases[i].in, err, parse_cases[i].out);
			continue;
		}
		assert_int_equal(p.node, parse_cases[i].node);
		assert_int_equal(p.gpu, parse_cases[i].gpu);
		assert_int_equal(p.topology, parse_cases[i].topology);
		assert_string_equal(gp_policy_format(&p, buf, sizeof buf), parse_cases[i].out);
		/* what format writes, parse reads back */
		{
			struct gp_policy q;

			assert_int_equal(gp_policy_parse(buf, &q, NULL, 0), 0);
			assert_int_equal(p.node, q.node);
			assert_int_equal(p.gpu, q.gpu);
			assert_int_equal(p.topology, q.topology);
		}
	}
	{
		struct gp_policy p;

		assert_int_equal(gp_policy_parse(NULL, &p, NULL, 0), -EINVAL);
	}
}

/* --- small clusters ---------------------------------------------------------------- */

struct tg {
	const char *model;
	unsigned used_pct;
	int numa;
};

static struct gp_node *mk(const char *name, uint64_t cpu_free, uint64_t mem_free_gib, const struct tg *g, unsigned n)
{
	struct gp_node *nd;

	assert_int_equal(gp_node_new(&nd, name, 64000, 64000 - cpu_free, 256 * GiB, (256 - mem_free_gib) * GiB), 0);
	for (unsigned i = 0; i < n; i++) {
		struct gp_gpu x = {.model = g[i].model ? g[i].model : "T4", .mem_bytes = 16 * GiB, .compute = 100,
				   .slices = 10, .numa = g[i].numa, .compute_used = g[i].used_pct,
				   .tenants = g[i].used_pct > 0};

		assert_int_equal(gp_node_add_gpu(nd, &x, NULL, 0), (int)i);
	}
	return nd;
}

static struct gp_request *one(unsigned gpus, unsigned compute, uint64_t cpu, uint64_t mem_gib)
{
	struct gp_request *r;

	assert_int_equal(gp_request_new(&r), 0);
	gp_request_set_host(r, cpu, mem_gib * GiB);
	assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = gpus, .compute = compute}, NULL, 0), 0);
	return r;
}

/* Which candidate `policy` chooses for r, and on which first card. */
static int choose(const char *policy, const struct gp_workload *w, struct gp_node **nodes, size_t n,
		  const struct gp_request *r, uint64_t seed, int *card)
{
	struct gp_placer *pl;
	struct gp_policy p;
	struct gp_decision d;
	char err[GP_REASON_MAX];

	if (gp_policy_parse(policy, &p, err, sizeof err) < 0)
		fail_msg("%s: %s", policy, err);
	assert_int_equal(gp_placer_new(&pl, &p, w), 0);
	gp_placer_seed(pl, seed);
	assert_int_equal(gp_placer_choose(pl, nodes, n, r, &d), 0);
	if (card)
		*card = d.node >= 0 ? d.plan.grant[0][0].gpu : -1;
	gp_placer_free(pl);
	return d.node;
}

static struct gp_workload *wl1(unsigned gpus, unsigned compute, uint64_t cpu, uint64_t mem_gib, const char *types,
			       double weight, struct gp_workload *w)
{
	struct gp_request *r;

	if (!w)
		assert_int_equal(gp_workload_new(&w), 0);
	assert_int_equal(gp_request_new(&r), 0);
	gp_request_set_host(r, cpu, mem_gib * GiB);
	if (gpus)
		assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = gpus, .compute = compute,
									   .types = types},
						  NULL, 0),
				 0);
	assert_int_equal(gp_workload_add(w, r, weight), 0);
	gp_request_free(r);
	return w;
}

/* node binpack/spread, GPU binpack/spread, best-fit, GPU-packing */
static void test_simple_policies(void **state)
{
	struct gp_node *used = mk("used", 64000, 256, (const struct tg[]){{.used_pct = 50}, {0}}, 2);
	struct gp_node *idle = mk("idle", 64000, 256, (const struct tg[]){{0}, {0}}, 2);
	struct gp_node *nodes[2] = {used, idle};
	struct gp_request *r = one(1, 30, 1000, 1);
	int card;

	(void)state;
	for (uint64_t seed = 1; seed <= 5; seed++) {
		assert_int_equal(choose("binpack", NULL, nodes, 2, r, seed, &card), 0);
		assert_int_equal(card, 0); /* the fuller card */
		assert_int_equal(choose("binpack,gpu=spread", NULL, nodes, 2, r, seed, &card), 0);
		assert_int_equal(card, 1); /* the emptier card */
		assert_int_equal(choose("spread", NULL, nodes, 2, r, seed, NULL), 1);
		assert_int_equal(choose("bestfit", NULL, nodes, 2, r, seed, &card), 0);
		/* GPU-packing: a partly used card first */
		assert_int_equal(choose("packing", NULL, nodes, 2, r, seed, &card), 0);
		assert_int_equal(card, 0);
	}
	gp_request_free(r);
	/* GPU-packing: an idle card on a node in use beats an idle node */
	r = one(1, 60, 1000, 1);
	assert_int_equal(choose("packing", NULL, nodes, 2, r, 1, &card), 0);
	assert_int_equal(card, 1);
	gp_request_free(r);
	/* best-fit counts CPU as well: the node left with less CPU wins */
	{
		struct gp_node *cpu_busy = mk("busy", 8000, 256, (const struct tg[]){{0}, {0}}, 2);
		struct gp_node *both[2] = {idle, cpu_busy};

		r = one(1, 30, 1000, 1);
		assert_int_equal(choose("bestfit", NULL, both, 2, r, 1, NULL), 1);
		assert_int_equal(choose("spread", NULL, both, 2, r, 1, NULL) >= 0, true);
		gp_request_free(r);
		gp_node_free(cpu_busy);
	}
	gp_node_free(used);
	gp_node_free(idle);
}

/* random-fit: any node that fits, each drawn at some point; never one
 * that does not fit; the same seed gives the same choice */
static void test_random(void **state)
{
	struct gp_node *a = mk("a", 64000, 256, (const struct tg[]){{0}}, 1);
	struct gp_node *b = mk("b", 64000, 256, (const struct tg[]){{0}}, 1);
	struct gp_node *full = mk("full", 64000, 256, (const struct tg[]){{.used_pct = 100}}, 1);
	struct gp_node *nodes[3] = {a, full, b};
	struct gp_request *r = one(1, 50, 0, 0);
	unsigned hits[3] = {0};

	(void)state;
	for (uint64_t seed = 1; seed <= 64; seed++) {
		int k = choose("random", NULL, nodes, 3, r, seed, NULL);

		assert_true(k == 0 || k == 2);
		hits[k]++;
		assert_int_equal(choose("random", NULL, nodes, 3, r, seed, NULL), k);
	}
	assert_true(hits[0] > 8 && hits[2] > 8);
	gp_request_free(r);
	gp_node_free(a);
	gp_node_free(b);
	gp_node_free(full);
}

/* Topology: a 2-card container takes the linked pair; NUMA binding takes
 * a set on one NUMA node. */
static void test_topology(void **state)
{
	struct gp_node *n = mk("n", 64000, 256, (const struct tg[]){{.numa = 0}, {.numa = 0}, {.numa = 1}, {.numa = 1}}, 4);
	struct gp_request *r = one(2, 100, 0, 0);
	struct gp_placer *pl;
	struct gp_policy p;
	struct gp_plan plan;

	(void)state;
	assert_int_equal(gp_node_set_link(n, 0, 1, 10), 0);
	assert_int_equal(gp_node_set_link(n, 2, 3, 160), 0); /* NV6 */
	assert_int_equal(gp_node_set_link(n, 1, 2, 20), 0);
	assert_int_equal(gp_policy_parse("binpack", &p, NULL, 0), 0);
	assert_int_equal(gp_placer_new(&pl, &p, NULL), 0);
	assert_int_equal(gp_placer_plan(pl, n, r, &plan, NULL, 0), GP_FIT);
	assert_int_equal(plan.gpumask, 0xc);
	gp_placer_free(pl);
	p.topology = false; /* then the pick order: cards 0 and 1 */
	assert_int_equal(gp_placer_new(&pl, &p, NULL), 0);
	assert_int_equal(gp_placer_plan(pl, n, r, &plan, NULL, 0), GP_FIT);
	assert_int_equal(plan.gpumask, 0x3);
	gp_placer_free(pl);
	gp_request_free(r);
	/* NUMA binding with card 1 busy: only NUMA node 1 has two free cards */
	{
		struct gp_node *m = mk("m", 64000, 256,
				       (const struct tg[]){{.numa = 0}, {.numa = 0, .used_pct = 90}, {.numa = 1}, {.numa = 1}}, 4);
		struct gp_request *rb;

		assert_int_equal(gp_request_new(&rb), 0);
		assert_int_equal(gp_request_add_container(rb, &(struct gp_ctr){.gpus = 2, .compute = 50, .numa_bind = true},
						  NULL, 0),
				 0);
		p.topology = false;
		assert_int_equal(gp_placer_new(&pl, &p, NULL), 0);
		assert_int_equal(gp_placer_plan(pl, m, rb, &plan, NULL, 0), GP_FIT);
		assert_int_equal(plan.gpumask, 0xc);
		gp_placer_free(pl);
		gp_request_free(rb);
		gp_node_free(m);
	}
	gp_node_free(n);
}

/* FGD steers by the growth of fragmentation (test_sched_frag.c works the
 * arithmetic): between a node where the 0.5 task can fill a 0.6 sliver and
 * an idle node, it takes the sliver. */
static void test_fgd(void **state)
{
	struct gp_node *sliver = mk("sliver", 64000, 256, (const struct tg[]){{0}, {.used_pct = 40}}, 2);
	struct gp_node *idle = mk("idle", 64000, 256, (const struct tg[]){{0}, {0}}, 2);
	struct gp_node *nodes[2] = {idle, sliver};
	struct gp_workload *w = wl1(1, 50, 0, 0, NULL, 1, NULL);
	struct gp_request *r = one(1, 50, 0, 0);
	int card;

	(void)state;
	wl1(1, 100, 0, 0, NULL, 1, w);
	for (uint64_t seed = 1; seed <= 8; seed++) {
		assert_int_equal(choose("fgd", w, nodes, 2, r, seed, &card), 1);
		assert_int_equal(card, 1);
		assert_int_equal(choose("ours", w, nodes, 2, r, seed, &card), 1);
		assert_int_equal(card, 1);
	}
	gp_request_free(r);
	gp_workload_free(w);
	gp_node_free(sliver);
	gp_node_free(idle);
}

/* Ours, first idea: host memory counts.  After the pod, node a would keep
 * 60 GiB, too little for the 64 GiB tasks to come; node b keeps 190 GiB.
 * FGD (CPU and GPU only) sees no difference: a tie, which goes to the
 * name that sorts first, whatever the candidates' order or the seed. */
static void test_ours_memory(void **state)
{
	struct gp_node *a = mk("a", 64000, 70, (const struct tg[]){{0}, {0}}, 2);
	struct gp_node *b = mk("b", 64000, 200, (const struct tg[]){{0}, {0}}, 2);
	struct gp_node *nodes[2] = {a, b}, *rev[2] = {b, a};
	struct gp_workload *w = wl1(1, 50, 1000, 64, NULL, 1, NULL);
	struct gp_request *r = one(1, 50, 1000, 10);

	(void)state;
	for (uint64_t seed = 1; seed <= 32; seed++) {
		assert_int_equal(choose("ours", w, nodes, 2, r, seed, NULL), 1);
		assert_int_equal(choose("fgd", w, nodes, 2, r, seed, NULL), 0);
		assert_int_equal(choose("fgd", w, rev, 2, r, seed, NULL), 1);
	}
	gp_request_free(r);
	gp_workload_free(w);
	gp_node_free(a);
	gp_node_free(b);
}

/* Ours, second idea: among (nearly) equal costs, the node left with the
 * least free GPU compute.  A 0.5 task on an idle card costs nothing
 * either way; ours packs it beside the 0.3 sliver that stays a sliver. */
static void test_ours_packs_ties(void **state)
{
	struct gp_node *idle = mk("idle", 64000, 256, (const struct tg[]){{0}, {0}}, 2);
	struct gp_node *busy = mk("busy", 64000, 256, (const struct tg[]){{0}, {.used_pct = 70}}, 2);
	struct gp_node *zidle = mk("zidle", 64000, 256, (const struct tg[]){{0}, {0}}, 2);
	struct gp_node *nodes[2] = {idle, busy}, *rev[2] = {busy, idle};
	struct gp_node *named[2] = {zidle, busy}, *named_rev[2] = {busy, zidle};
	struct gp_workload *w = wl1(1, 50, 0, 0, NULL, 1, NULL);
	struct gp_request *r = one(1, 50, 0, 0);

	(void)state;
	for (uint64_t seed = 1; seed <= 32; seed++) {
		assert_int_equal(choose("ours", w, nodes, 2, r, seed, NULL), 1);
		assert_int_equal(choose("ours", w, rev, 2, r, seed, NULL), 0);
		/* fgd: a tie, to the name that sorts first ("busy" < "idle",
		 * "busy" < "zidle": the same node both times here) */
		assert_int_equal(choose("fgd", w, nodes, 2, r, seed, NULL), 1);
		assert_int_equal(choose("fgd", w, named_rev, 2, r, seed, NULL), 0);
		/* ours' fuller-node rule comes before the name */
		assert_int_equal(choose("ours", w, named, 2, r, seed, NULL), 1);
	}
	gp_node_free(zidle);
	gp_request_free(r);
	gp_workload_free(w);
	gp_node_free(idle);
	gp_node_free(busy);
}

/* fgd follows the paper's simulator (its fgd_score.go and the selectHost
 * of its kube-scheduler): the score is int(100 * sigmoid(F_before -
 * F_after)), an integer, and among the best scores the name that sorts
 * first wins.  Tasks to come: 1 x 0.5 and 1 x 1.0, equally likely; a
 * 0.5 task goes on the sliver card of either node:
 *   b: (1.0, 0.6) -> (1.0, 0.1): F 0.3 -> 0.1, growth -0.2,
 *      score int(100 * sigmoid(0.2)) = int(54.98) = 54;
 *   a: (1.0, 0.65) -> (1.0, 0.15): F 0.325 -> 0.15, growth -0.175,
 *      score int(54.36) = 54.
 * Equal scores: a wins by its name although b's exact growth is lower
 * (what the exact variant, kept for the benchmark, takes). */
static void test_fgd_simulator_rules(void **state)
{
	struct gp_node *b = mk("b", 64000, 256, (const struct tg[]){{0}, {.used_pct = 40}}, 2);
	struct gp_node *a = mk("a", 64000, 256, (const struct tg[]){{0}, {.used_pct = 35}}, 2);
	struct gp_node *nodes[2] = {b, a};
	struct gp_workload *w = wl1(1, 50, 0, 0, NULL, 1, NULL);
	struct gp_request *r = one(1, 50, 0, 0);
	struct gp_placer *pl;
	struct gp_policy p;
	struct gp_decision d;

	(void)state;
	wl1(1, 100, 0, 0, NULL, 1, w);
	assert_int_equal(gp_policy_parse("fgd", &p, NULL, 0), 0);
	assert_int_equal(gp_placer_new(&pl, &p, w), 0);
	for (uint64_t seed = 1; seed <= 8; seed++) {
		gp_placer_seed(pl, seed);
		assert_int_equal(gp_placer_choose(pl, nodes, 2, r, &d), 0);
		assert_int_equal(d.node, 1);                  /* a, by name */
		assert_int_equal(d.plan.grant[0][0].gpu, 1);  /* its sliver */
		assert_true(d.cost == -54.0);                 /* the integer score */
	}
	/* the exact variant: the lower growth wins */
	gp__placer_fgd_exact(pl, true);
	assert_int_equal(gp_placer_choose(pl, nodes, 2, r, &d), 0);
	assert_int_equal(d.node, 0);
	assert_true(fabs(d.cost - -0.2) < 1e-9);
	gp_placer_free(pl);
	/* one point apart (a 30 % used sliver: growth -0.15, score 53):
	 * then the score decides, not the name */
	gp_node_free(a);
	a = mk("a", 64000, 256, (const struct tg[]){{0}, {.used_pct = 30}}, 2);
	nodes[1] = a;
	assert_int_equal(choose("fgd", w, nodes, 2, r, 1, NULL), 0);
	gp_request_free(r);
	gp_workload_free(w);
	gp_node_free(a);
	gp_node_free(b);
}

/* Ours, third idea: contention.  One X card and four Y cards; tasks to
 * come: unconstrained (10), X-only (2), Y-only (2).  For FGD the X card
 * and a Y card are alike (each loses what the other type cannot use:
 * growth -0.071 either way); the tie goes to the name "x", spending the
 * one card the X-only tasks have.  Ours weighs the X-only tasks' demand
 * against X's small capacity and uses a Y card (docs/sched.md works the
 * numbers). */
static void test_ours_contention(void **state)
{
	struct gp_node *n[5];
	struct gp_workload *w = wl1(1, 50, 0, 0, NULL, 10, NULL);
	struct gp_request *r = one(1, 50, 0, 0);

	(void)state;
	wl1(1, 50, 0, 0, "X", 2, w);
	wl1(1, 50, 0, 0, "Y", 2, w);
	n[0] = mk("x", 64000, 256, (const struct tg[]){{.model = "X"}}, 1);
	for (int i = 1; i < 5; i++)
		n[i] = mk("y", 64000, 256, (const struct tg[]){{.model = "Y"}}, 1);
	for (uint64_t seed = 1; seed <= 8; seed++) {
		assert_int_equal(choose("fgd", w, n, 5, r, seed, NULL), 0);
		assert_true(choose("ours", w, n, 5, r, seed, NULL) > 0);
	}
	for (int i = 0; i < 5; i++)
		gp_node_free(n[i]);
	gp_request_free(r);
	gp_workload_free(w);
}

/* --- the prioritize score and the decision --------------------------------- */

static void test_score(void **state)
{
	struct gp_node *a = mk("a", 64000, 256, (const struct tg[]){{.used_pct = 60}}, 1);
	struct gp_node *b = mk("b", 64000, 256, (const struct tg[]){{.used_pct = 20}}, 1);
	struct gp_node *c = mk("c", 64000, 256, (const struct tg[]){{0}}, 1);
	struct gp_node *full = mk("full", 64000, 256, (const struct tg[]){{.used_pct = 90}}, 1);
	struct gp_node *nodes[4] = {a, b, c, full};
	struct gp_request *r = one(1, 30, 0, 0);
	struct gp_placer *pl;
	struct gp_policy p;
	double s[4];

	(void)state;
	assert_int_equal(gp_policy_parse("binpack", &p, NULL, 0), 0);
	assert_int_equal(gp_placer_new(&pl, &p, NULL), 0);
	assert_int_equal(gp_placer_score(pl, nodes, 4, r, s), 3);
	/* used after: 0.9, 0.5, 0.3 -> 1, (0.5-0.3)/0.6, 0 */
	assert_true(fabs(s[0] - 1) < 1e-9);
	assert_true(fabs(s[1] - 1.0 / 3) < 1e-9);
	assert_true(fabs(s[2]) < 1e-9);
	assert_true(s[3] == -1);
	gp_placer_free(pl);
	/* all equal: all 1 */
	assert_int_equal(gp_policy_parse("random", &p, NULL, 0), 0);
	assert_int_equal(gp_placer_new(&pl, &p, NULL), 0);
	assert_int_equal(gp_placer_score(pl, nodes, 4, r, s), 3);
	assert_true(s[0] == 1 && s[1] == 1 && s[2] == 1 && s[3] == -1);
	gp_placer_free(pl);
	gp_request_free(r);
	gp_node_free(a);
	gp_node_free(b);
	gp_node_free(c);
	gp_node_free(full);
}

static void test_decision_summary(void **state)
{
	struct gp_node *cpu = mk("cpu", 500, 256, (const struct tg[]){{0}}, 1);
	struct gp_node *a100 = mk("a100", 64000, 256, (const struct tg[]){{.model = "A100"}}, 1);
	struct gp_node *full1 = mk("f1", 64000, 256, (const struct tg[]){{.used_pct = 80}}, 1);
	struct gp_node *full2 = mk("f2", 64000, 256, (const struct tg[]){{.used_pct = 90}}, 1);
	struct gp_node *nodes[4] = {cpu, a100, full1, full2};
	struct gp_request *r;
	struct gp_placer *pl;
	struct gp_policy p;
	struct gp_decision d;

	(void)state;
	assert_int_equal(gp_request_new(&r), 0);
	gp_request_set_host(r, 1000, 0);
	assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1, .compute = 50, .types = "T4"}, NULL, 0),
			 0);
	assert_int_equal(gp_policy_parse("ours", &p, NULL, 0), 0);
	assert_int_equal(gp_placer_new(&pl, &p, NULL), 0);
	assert_int_equal(gp_placer_choose(pl, nodes, 4, r, &d), 0);
	assert_int_equal(d.node, -1);
	assert_int_equal(d.fits, 0);
	assert_int_equal(d.rejected[GP_R_CPU], 1);
	assert_int_equal(d.rejected[GP_R_TYPE], 1);
	assert_int_equal(d.rejected[GP_R_COMPUTE], 2);
	assert_string_equal(d.why, "0/4 nodes fit: 1 cpu, 1 type, 2 compute");
	gp_placer_free(pl);
	gp_request_free(r);
	gp_node_free(cpu);
	gp_node_free(a100);
	gp_node_free(full1);
	gp_node_free(full2);
}

/* A name for node i: half of them share their first eight bytes, so that
 * ties are broken both by the summary table's name prefixes and by strcmp. */
static const char *cache_name(char *buf, size_t n, int i, int gen)
{
	snprintf(buf, n, i % 2 ? "%02d-node-g%d" : "samepref-%02d-g%d", i, gen);
	return buf;
}

/* A cached cost is never stale: a placer with its cache and one without,
 * from the same random state, make the same decisions through a run of
 * commits, for every policy that caches; also when candidates change
 * places in the list and nodes are freed and made again (a new node may
 * take the old one's address and its summary slot). */
static void test_cache_consistent(void **state)
{
	static const char *const pols[] = {"fgd", "ours"};
	struct gp_node *nodes[12];
	struct gp_workload *w = NULL;
	struct gp_request *r;
	uint64_t rng = 42;
	char name[64];

	(void)state;
	w = wl1(1, 50, 4000, 16, NULL, 4, w);
	wl1(1, 25, 2000, 8, NULL, 3, w);
	wl1(2, 100, 16000, 64, NULL, 1, w);
	wl1(1, 100, 8000, 32, "V100", 1, w);
	wl1(0, 0, 4000, 8, NULL, 1, w);
	assert_int_equal(gp_request_new(&r), 0);
	for (size_t pi = 0; pi < 2; pi++) {
		struct gp_placer *hot, *cold;
		struct gp_policy p;

		for (int i = 0; i < 12; i++)
			nodes[i] = mk(cache_name(name, sizeof name, i, 0), 64000, 256,
				      (const struct tg[]){{.model = i % 3 ? "T4" : "V100"}, {.model = i % 3 ? "T4" : "V100"},
							  {.model = i % 3 ? "T4" : "V100"}, {.model = i % 3 ? "T4" : "V100"}},
				      4);
		assert_int_equal(gp_policy_parse(pols[pi], &p, NULL, 0), 0);
		assert_int_equal(gp_placer_new(&hot, &p, w), 0);
		assert_int_equal(gp_placer_new(&cold, &p, w), 0);
		gp__placer_cache(cold, false);
		for (int step = 0; step < 200; step++) {
			static const unsigned shapes[][3] = {{1, 50, 4}, {1, 25, 2}, {2, 100, 16}, {1, 100, 8}, {0, 0, 4}};
			const unsigned *sh = shapes[(rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 61 & 3];
			struct gp_decision dh, dc;
			uint64_t s0;

			gp_request_reset(r);
			gp_request_set_host(r, sh[2] * 1000, sh[2] * 4 * GiB);
			if (sh[0])
				assert_true(gp_request_add_container(r, &(struct gp_ctr){.gpus = sh[0], .compute = sh[1]},
								     NULL, 0) == 0);
			s0 = gp__placer_rng(hot, NULL);
			assert_int_equal(gp_placer_choose(hot, nodes, 12, r, &dh), 0);
			gp__placer_rng(cold, &s0);
			assert_int_equal(gp_placer_choose(cold, nodes, 12, r, &dc), 0);
			if (dh.node != dc.node || (dh.node >= 0 && fabs(dh.cost - dc.cost) > 1e-12))
				fail_msg("%s step %d: cached %d (%g), uncached %d (%g)", pols[pi], step, dh.node, dh.cost,
					 dc.node, dc.cost);
			if (dh.node >= 0)
				assert_int_equal(gp_node_commit(nodes[dh.node], &dh.plan), 0);
			else if (step % 7 == 0) /* make room now and then: releases bump versions too */
				for (int i = 0; i < 12; i++) {
					gp_node_free(nodes[i]);
					nodes[i] = mk(cache_name(name, sizeof name, i, step), 64000, 256,
						      (const struct tg[]){{0}, {0}, {0}, {0}}, 4);
				}
			if (step % 5 == 0) { /* two candidates change places */
				struct gp_node *t = nodes[step % 12];

				nodes[step % 12] = nodes[step * 7 % 12];
				nodes[step * 7 % 12] = t;
			}
			if (step % 11 == 0) { /* one node made again, empty */
				gp_node_free(nodes[step % 12]);
				nodes[step % 12] = mk(cache_name(name, sizeof name, step % 12, step + 1000), 64000, 256,
						      (const struct tg[]){{0}, {0}, {0}, {0}}, 4);
			}
		}
		gp_placer_free(hot);
		gp_placer_free(cold);
		for (int i = 0; i < 12; i++)
			gp_node_free(nodes[i]);
	}
	gp_request_free(r);
	gp_workload_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),          cmocka_unit_test(test_simple_policies),
		cmocka_unit_test(test_random),         cmocka_unit_test(test_topology),
		cmocka_unit_test(test_fgd),            cmocka_unit_test(test_fgd_simulator_rules),
		cmocka_unit_test(test_ours_memory),
		cmocka_unit_test(test_ours_packs_ties), cmocka_unit_test(test_ours_contention),
		cmocka_unit_test(test_score),          cmocka_unit_test(test_decision_summary),
		cmocka_unit_test(test_cache_consistent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
