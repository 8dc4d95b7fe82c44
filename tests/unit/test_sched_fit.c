/* test_sched_fit.c - the placement library's models and fit checks: node and
 * request validation, every rejection reason with its sentence, each
 * request field, init containers, several containers together, commit and
 * release. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gpupool/placement.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)

/* A test GPU: zero fields take defaults (model T4, 16 GiB, 10 slices). */
struct tg {
	const char *uuid, *model;
	unsigned gib, used_pct, used_gib, tenants, slices;
	int numa;
	bool bad, excl;
};

static struct gp_node *mk(const char *name, uint64_t cpu, uint64_t mem_gib, const struct tg *g, unsigned n)
{
	struct gp_node *nd;
	char err[GP_REASON_MAX];

	assert_int_equal(gp_node_new(&nd, name, cpu, 0, mem_gib * GiB, 0), 0);
	for (unsigned i = 0; i < n; i++) {
		unsigned gib = g[i].gib ? g[i].gib : 16;
		struct gp_gpu x = {
			.uuid = g[i].uuid,
			.model = g[i].model ? g[i].model : "T4",
			.mem_bytes = gib * GiB,
			.compute = 100,
			.slices = g[i].slices ? g[i].slices : 10,
			.numa = g[i].numa,
			.unhealthy = g[i].bad,
			.mem_used = g[i].excl ? gib * GiB : g[i].used_gib * GiB,
			.compute_used = g[i].excl ? 100 : g[i].used_pct,
			.tenants = g[i].tenants ? g[i].tenants : (g[i].used_pct || g[i].used_gib || g[i].excl),
			.exclusive = g[i].excl,
		};
		int rc = gp_node_add_gpu(nd, &x, err, sizeof err);

		if (rc != (int)i)
			fail_msg("adding GPU %u: %d (%s)", i, rc, err);
	}
	return nd;
}

static struct gp_request *mkreq(uint64_t cpu, uint64_t mem_gib, const struct gp_ctr *c, unsigned n)
{
	struct gp_request *r;
	char err[GP_REASON_MAX];

	assert_int_equal(gp_request_new(&r), 0);
	gp_request_set_host(r, cpu, mem_gib * GiB);
	for (unsigned i = 0; i < n; i++) {
		int rc = gp_request_add_container(r, &c[i], err, sizeof err);

		if (rc != (int)i)
			fail_msg("adding container %u: %d (%s)", i, rc, err);
	}
	return r;
}

/* --- validation ----------------------------------------------------------- */

static void test_node_validation(void **state)
{
	struct gp_node *n;
	char err[GP_REASON_MAX], longname[300];
	static const struct {
		struct gp_gpu g;
		const char *want;
	} bad[] = {
		{{.model = "T4", .mem_bytes = 0}, "memory size is 0"},
		{{.model = "T4", .mem_bytes = GiB, .compute = 1001}, "over 1000"},
		{{.model = "T4", .mem_bytes = GiB, .slices = 5000}, "slices"},
		{{.model = "T4", .mem_bytes = GiB, .mem_used = 2 * GiB}, "more allocated"},
		{{.model = "T4", .mem_bytes = GiB, .compute_used = 101}, "more allocated"},
		{{.model = "T4", .mem_bytes = GiB, .slices = 2, .tenants = 3}, "more allocated"},
		{{.model = "T4", .mem_bytes = GiB, .numa = -2}, "NUMA"},
		{{.uuid = "GPU-a", .model = "T4", .mem_bytes = GiB}, "appears twice"},
		{{.uuid = "GPU-\x01", .model = "T4", .mem_bytes = GiB}, "control character"},
	};

	(void)state;
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_int_equal(gp_node_new(&n, longname, 1000, 0, 0, 0), -EINVAL);
	assert_null(n);
	assert_int_equal(gp_node_new(&n, "", 1000, 0, 0, 0), -EINVAL);
	assert_int_equal(gp_node_new(&n, "x", 1000, 2000, 0, 0), -EINVAL);
	assert_int_equal(gp_node_new(&n, "x", 1000, 0, GiB, 0), 0);
	assert_int_equal(gp_node_add_gpu(n, &(struct gp_gpu){.uuid = "GPU-a", .mem_bytes = GiB}, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = gp_node_add_gpu(n, &bad[i].g, err, sizeof err);

		if (rc != -EINVAL || !strstr(err, bad[i].want))
			fail_msg("case %zu: rc %d, \"%s\", want -EINVAL and \"%s\"", i, rc, err, bad[i].want);
	}
	assert_int_equal(gp_node_gpu_count(n), 1);
	for (unsigned i = 1; i < GP_MAX_GPUS; i++)
		assert_int_equal(gp_node_add_gpu(n, &(struct gp_gpu){.mem_bytes = GiB}, err, sizeof err), (int)i);
	assert_int_equal(gp_node_add_gpu(n, &(struct gp_gpu){.mem_bytes = GiB}, err, sizeof err), -ENOSPC);
	/* unnamed cards get "gpu<index>"; defaults: compute 100, one slice */
	{
		struct gp_gpu g;

		assert_int_equal(gp_node_gpu(n, 3, &g), 0);
		assert_string_equal(g.uuid, "gpu3");
		assert_int_equal(g.compute, 100);
		assert_int_equal(g.slices, 1);
		assert_int_equal(gp_node_find_gpu(n, "gpu-A"), 0); /* case-insensitive */
		assert_int_equal(gp_node_find_gpu(n, "nope"), -1);
		assert_int_equal(gp_node_gpu(n, 16, &g), -EINVAL);
	}
	assert_int_equal(gp_node_set_link(n, 0, 0, 10), -EINVAL);
	assert_int_equal(gp_node_set_link(n, 0, 16, 10), -EINVAL);
	assert_int_equal(gp_node_set_link(n, 0, 1, 70000), -EINVAL);
	assert_int_equal(gp_node_set_link(n, 0, 1, 100), 0);
	assert_int_equal(gp_node_set_host_used(n, 2000, 0), -EINVAL);
	assert_int_equal(gp_node_set_host_used(n, 500, GiB / 2), 0);
	assert_int_equal(gp_node_cpu_free(n), 500);
	assert_int_equal(gp_node_mem_free(n), GiB / 2);
	gp_node_free(n);
	/* untracked host resources never reject */
	assert_int_equal(gp_node_new(&n, "y", 0, 0, 0, 0), 0);
	assert_true(gp_node_cpu_free(n) == UINT64_MAX);
	gp_node_free(n);
}

static void test_request_validation(void **state)
{
	struct gp_request *r;
	char err[GP_REASON_MAX], longe[200], many[400];
	static const struct {
		struct gp_ctr c;
		const char *want;
	} bad[] = {
		{{.gpus = 0}, "GPU count 0"},
		{{.gpus = 17}, "GPU count 17"},
		{{.gpus = 1, .compute = 101}, "compute 101%"},
		{{.gpus = 1, .mem_pct = 101}, "memory share 101%"},
		{{.gpus = 1, .mem_pct = 50, .mem_bytes = 1}, "both in bytes and as a share"},
		{{.gpus = 1, .types = "A100,,H100"}, "empty entry"},
		{{.gpus = 1, .uuids = "GPU-\x02"}, "not printable"},
		{{.gpus = 1, .name = "c\n"}, "not printable"},
	};

	(void)state;
	assert_int_equal(gp_request_new(&r), 0);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = gp_request_add_container(r, &bad[i].c, err, sizeof err);

		if (rc != -EINVAL || !strstr(err, bad[i].want))
			fail_msg("case %zu: rc %d, \"%s\", want -EINVAL and \"%s\"", i, rc, err, bad[i].want);
	}
	memset(longe, 'a', sizeof longe - 1);
	longe[sizeof longe - 1] = '\0';
	assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1, .no_types = longe}, err, sizeof err),
			 -EINVAL);
	strcpy(many, "a");
	for (int i = 0; i < 20; i++)
		strcat(many, ",b");
	assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1, .no_uuids = many}, err, sizeof err),
			 -EINVAL);
	assert_non_null(strstr(err, "more than 16 entries"));
	assert_int_equal(gp_request_container_count(r), 0);
	for (unsigned i = 0; i < GP_MAX_CONTAINERS; i++)
		assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1}, err, sizeof err), (int)i);
	assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1}, err, sizeof err), -ENOSPC);
	gp_request_reset(r);
	assert_int_equal(gp_request_container_count(r), 0);
	/* GPUs at the peak: app containers add up, init containers do not */
	assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = 2}, err, sizeof err), 0);
	assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = 1}, err, sizeof err), 1);
	assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = 2, .init = true}, err, sizeof err), 2);
	assert_int_equal(gp_request_gpus(r), 3);
	assert_int_equal(gp_request_add_container(r, &(struct gp_ctr){.gpus = 5, .init = true}, err, sizeof err), 3);
	assert_int_equal(gp_request_gpus(r), 5);
	gp_request_free(r);
}

/* --- every rejection reason ----------------------------------------------- */

static const struct tg two_t4[] = {{.uuid = "GPU-1234", .numa = 0}, {.uuid = "GPU-5678", .used_pct = 50, .used_gib = 4, .numa = 1}};

static const struct {
	const char *label;
	uint64_t cpu, mem_gib;   /* request host */
	struct gp_ctr c;
	const struct tg *gpus;   /* node (NULL: two_t4) */
	unsigned ngpu;
	enum gp_reject want;
	const char *why;         /* substring of the sentence */
} reasons[] = {
	{"fits", 1000, 1, {.gpus = 1, .compute = 50}, NULL, 0, GP_FIT, ""},
	{"cpu", 8000, 1, {.gpus = 1}, NULL, 0, GP_R_CPU, "needs 8000m CPU, node has 4000m free"},
	{"memory", 1000, 64, {.gpus = 1}, NULL, 0, GP_R_MEMORY, "needs 65536 MiB of memory, node has 32768 MiB free"},
	{"count", 0, 0, {.gpus = 4}, NULL, 0, GP_R_GPU_COUNT, "needs 4 GPUs, node has 2"},
	{"type excluded", 0, 0, {.gpus = 1, .no_types = "t4"}, NULL, 0, GP_R_TYPE, "card type T4 excluded"},
	{"type missing", 0, 0, {.gpus = 1, .types = "A100,H100"}, NULL, 0, GP_R_TYPE,
	 "needs card type A100|H100, node has T4"},
	{"type is a whole word", 0, 0, {.gpus = 1, .types = "T"}, NULL, 0, GP_R_TYPE,
	 "needs card type T, node has T4"},
	{"uuid excluded", 0, 0, {.gpus = 1, .uuids = "GPU-1234", .no_uuids = "gpu-1234"}, NULL, 0, GP_R_UUID,
	 "needs GPU GPU-1234, not on this node (or excluded)"},
	{"uuid absent", 0, 0, {.gpus = 1, .uuids = "GPU-9999"}, NULL, 0, GP_R_UUID, "needs GPU GPU-9999"},
	{"uuid too few", 0, 0, {.gpus = 2, .no_uuids = "GPU-5678"}, NULL, 0, GP_R_UUID,
	 "needs 2 GPUs with an allowed UUID, node has 1"},
	{"health", 0, 0, {.gpus = 2}, (const struct tg[]){{.uuid = "a"}, {.uuid = "b", .bad = true}}, 2, GP_R_HEALTH,
	 "1 of the 2 GPUs that qualify is unhealthy"},
	{"gpu memory", 0, 0, {.gpus = 1, .mem_bytes = 20000 * MiB}, NULL, 0, GP_R_GPU_MEMORY,
	 "no GPU with 20000 MiB free (largest 16384 MiB on GPU-1234)"},
	{"gpu memory pct", 0, 0, {.gpus = 2, .mem_pct = 80}, NULL, 0, GP_R_GPU_MEMORY,
	 "needs 2 GPUs with 13107 MiB free, node has 1"},
	{"compute", 0, 0, {.gpus = 2, .compute = 60}, NULL, 0, GP_R_COMPUTE, "needs 2 GPUs with 60% compute free, node has 1"},
	{"compute one", 0, 0, {.gpus = 1, .compute = 60},
	 (const struct tg[]){{.uuid = "a", .used_pct = 50}, {.uuid = "b", .used_pct = 70}}, 2, GP_R_COMPUTE,
	 "no GPU with 60% compute free (largest 50% on a)"},
	{"slices", 0, 0, {.gpus = 1},
	 (const struct tg[]){{.uuid = "a", .used_pct = 10, .tenants = 2, .slices = 2}}, 1, GP_R_SLICES,
	 "needs 1 GPU with a free tenant slot, node has 0 (1 full)"},
	{"exclusive wants idle", 0, 0, {.gpus = 2, .exclusive = true}, NULL, 0, GP_R_EXCLUSIVE,
	 "exclusive use needs 2 idle GPUs, node has 1"},
	{"held exclusively", 0, 0, {.gpus = 2, .compute = 10},
	 (const struct tg[]){{.uuid = "a"}, {.uuid = "b", .excl = true}}, 2, GP_R_EXCLUSIVE,
	 "1 of the 2 that qualify is held exclusively"},
	{"numa", 0, 0, {.gpus = 4, .numa_bind = true},
	 (const struct tg[]){{.numa = 0}, {.numa = 0}, {.numa = 1}, {.numa = 1}}, 4, GP_R_NUMA,
	 "needs 4 GPUs on one NUMA node, node has at most 2"},
	{"numa unknown", 0, 0, {.gpus = 2, .numa_bind = true},
	 (const struct tg[]){{.numa = -1}, {.numa = -1}}, 2, GP_R_NUMA, "node has at most 1"},
	{"named container", 0, 0, {.name = "infer", .gpus = 1, .mem_bytes = 20000 * MiB}, NULL, 0, GP_R_GPU_MEMORY,
	 "container infer: no GPU with 20000 MiB free"},
};

static void test_reasons(void **state)
{
	bool seen[GP_R__COUNT] = {false};

	(void)state;
	for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++) {
		struct gp_node *n = reasons[i].gpus ? mk("n", 4000, 32, reasons[i].gpus, reasons[i].ngpu)
						     : mk("n", 4000, 32, two_t4, 2);
		struct gp_request *r = mkreq(reasons[i].cpu, reasons[i].mem_gib, &reasons[i].c, 1);
		char why[GP_REASON_MAX];
		enum gp_reject got = gp_fit(n, r, why, sizeof why);

		if (got != reasons[i].want || !strstr(why, reasons[i].why))
			fail_msg("%s: got %s \"%s\", want %s \"%s\"", reasons[i].label, gp_reject_name(got), why,
				 gp_reject_name(reasons[i].want), reasons[i].why);
		seen[got] = true;
		gp_request_free(r);
		gp_node_free(n);
	}
	/* GP_R_TOGETHER is covered by test_together */
	for (unsigned k = 0; k < GP_R__COUNT; k++)
		if (!seen[k] && k != GP_R_TOGETHER)
			fail_msg("no case for reason %s", gp_reject_name(k));
	assert_string_equal(gp_reject_name(GP_R_GPU_MEMORY), "gpu-memory");
	assert_string_equal(gp_reject_name((enum gp_reject)99), "unknown");
}

/* A reason longer than the buffer is cut, still NUL-terminated. */
static void test_reason_truncated(void **state)
{
	struct gp_node *n = mk("n", 4000, 32, two_t4, 2);
	struct gp_request *r = mkreq(0, 0, &(struct gp_ctr){.gpus = 1, .mem_bytes = 20000 * MiB}, 1);
	char why[12];

	(void)state;
	memset(why, 'x', sizeof why);
	assert_int_equal(gp_fit(n, r, why, sizeof why), GP_R_GPU_MEMORY);
	assert_int_equal(strlen(why), sizeof why - 1);
	assert_int_equal(gp_fit(n, r, NULL, 0), GP_R_GPU_MEMORY);
	gp_request_free(r);
	gp_node_free(n);
}

/* --- each request field: what the plan grants ------------------------------ */

static void test_fields(void **state)
{
	static const struct tg cards[] = {
		{.uuid = "GPU-a", .model = "NVIDIA-A100-SXM4-40GB", .gib = 40, .numa = 0},
		{.uuid = "GPU-b", .model = "NVIDIA-A100-SXM4-40GB", .gib = 40, .numa = 0, .used_pct = 30, .used_gib = 8},
		{.uuid = "GPU-c", .model = "Tesla-T4", .gib = 16, .numa = 1},
		{.uuid = "GPU-d", .model = "Tesla-T4", .gib = 16, .numa = 1},
	};
	static const struct {
		const char *label;
		struct gp_ctr c;
		uint8_t gpu0;          /* first card granted */
		unsigned ngrant;
		unsigned compute;
		uint64_t mem;
		bool exclusive;
	} cases[] = {
		{"bytes", {.gpus = 1, .mem_bytes = 35 * GiB}, 0, 1, 0, 35 * GiB, false},
		{"percent of the card", {.gpus = 1, .mem_pct = 50, .types = "t4"}, 2, 1, 0, 8 * GiB, false},
		{"compute", {.gpus = 1, .compute = 70}, 1, 1, 70, 0, false},  /* binpack: the fuller card */
		/* binpack: among idle cards the one with the least memory */
		{"exclusive", {.gpus = 1, .exclusive = true, .compute = 5}, 2, 1, 100, 16 * GiB, true},
		{"type include, whole words, any case", {.gpus = 2, .types = "a100"}, 1, 2, 0, 0, false},
		{"type include, several words", {.gpus = 1, .types = "nvidia a100 sxm4"}, 1, 1, 0, 0, false},
		{"type include, a word is no prefix", {.gpus = 1, .types = "a10,t4"}, 2, 1, 0, 0, false},
		{"type exclude", {.gpus = 1, .no_types = "A100"}, 2, 1, 0, 0, false},
		{"uuid include", {.gpus = 1, .uuids = "gpu-d"}, 3, 1, 0, 0, false},
		{"uuid exclude", {.gpus = 3, .no_uuids = "GPU-a"}, 1, 3, 0, 0, false},
		{"numa", {.gpus = 2, .numa_bind = true, .compute = 80}, 2, 2, 80, 0, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct gp_node *n = mk("n", 0, 0, cards, 4);
		struct gp_request *r = mkreq(0, 0, &cases[i].c, 1);
		struct gp_placer *pl;
		struct gp_policy pol;
		struct gp_plan p;
		char why[GP_REASON_MAX];

		assert_int_equal(gp_policy_parse("binpack", &pol, NULL, 0), 0);
		assert_int_equal(gp_placer_new(&pl, &pol, NULL), 0);
		if (gp_placer_plan(pl, n, r, &p, why, sizeof why) != GP_FIT)
			fail_msg("%s: does not fit: %s", cases[i].label, why);
		assert_int_equal(p.nctr, 1);
		if (p.ngrant[0] != cases[i].ngrant || p.grant[0][0].gpu != cases[i].gpu0 ||
		    p.grant[0][0].compute != cases[i].compute || p.grant[0][0].mem_bytes != cases[i].mem ||
		    p.grant[0][0].exclusive != cases[i].exclusive)
			fail_msg("%s: %u grants, first on GPU %u with %u%% %llu B excl %d", cases[i].label, p.ngrant[0],
				 p.grant[0][0].gpu, p.grant[0][0].compute, (unsigned long long)p.grant[0][0].mem_bytes,
				 p.grant[0][0].exclusive);
		/* the cards of one container are distinct */
		for (unsigned a = 0; a < p.ngrant[0]; a++)
			for (unsigned b = a + 1; b < p.ngrant[0]; b++)
				assert_int_not_equal(p.grant[0][a].gpu, p.grant[0][b].gpu);
		gp_placer_free(pl);
		gp_request_free(r);
		gp_node_free(n);
	}
}

/* --- init containers and containers together ------------------------------ */

static void test_init_containers(void **state)
{
	struct gp_node *n = mk("n", 0, 0, (const struct tg[]){{.uuid = "a"}, {.uuid = "b"}}, 2);
	struct gp_plan p;
	struct gp_gpu g;
	struct gp_placer *pl;
	struct gp_policy pol;
	struct gp_request *r;

	(void)state;
	assert_int_equal(gp_policy_parse("binpack", &pol, NULL, 0), 0);
	assert_int_equal(gp_placer_new(&pl, &pol, NULL), 0);
	/* An init container larger than the app container reuses its card:
	 * the footprint is the larger of the two, one tenant. */
	r = mkreq(0, 0,
		  (const struct gp_ctr[]){{.name = "app", .gpus = 1, .compute = 40, .mem_bytes = 2 * GiB},
					  {.name = "warm", .init = true, .gpus = 1, .compute = 60, .mem_bytes = GiB}},
		  2);
	assert_int_equal(gp_placer_plan(pl, n, r, &p, NULL, 0), GP_FIT);
	assert_int_equal(p.grant[1][0].gpu, p.grant[0][0].gpu);
	assert_int_equal(p.gpumask, 1u << p.grant[0][0].gpu);
	assert_int_equal(p.hold[p.grant[0][0].gpu].compute, 60);
	assert_int_equal(p.hold[p.grant[0][0].gpu].mem_bytes, 2 * GiB);
	assert_int_equal(p.hold[p.grant[0][0].gpu].tenants, 1);
	assert_int_equal(gp_node_commit(n, &p), 0);
	assert_int_equal(gp_node_gpu(n, p.grant[0][0].gpu, &g), 0);
	assert_int_equal(g.compute_used, 60);
	assert_int_equal(g.tenants, 1);
	assert_int_equal(gp_node_release(n, &p), 0);
	gp_request_free(r);

	/* An init container on two cards: one shared with the app container,
	 * one more held for the pod's life (Kubernetes' effective request). */
	r = mkreq(0, 0,
		  (const struct gp_ctr[]){{.gpus = 1, .compute = 50}, {.init = true, .gpus = 2, .compute = 20}}, 2);
	assert_int_equal(gp_placer_plan(pl, n, r, &p, NULL, 0), GP_FIT);
	assert_int_equal(p.gpumask, 3);
	assert_int_equal(p.hold[p.grant[0][0].gpu].compute, 50);
	assert_int_equal(p.hold[p.grant[0][0].gpu ^ 1].compute, 20);
	gp_request_free(r);

	/* Init containers run one at a time: two of 70 % fit one card. */
	r = mkreq(0, 0,
		  (const struct gp_ctr[]){{.gpus = 1, .compute = 10, .uuids = "a"},
					  {.init = true, .gpus = 1, .compute = 70, .uuids = "a"},
					  {.init = true, .gpus = 1, .compute = 70, .uuids = "a"}},
		  3);
	assert_int_equal(gp_placer_plan(pl, n, r, &p, NULL, 0), GP_FIT);
	assert_int_equal(p.gpumask, 1);
	assert_int_equal(p.hold[0].compute, 70);
	gp_request_free(r);

	/* An init container that cannot fit even alone names itself. */
	{
		char why[GP_REASON_MAX];

		r = mkreq(0, 0,
			  (const struct gp_ctr[]){{.gpus = 1}, {.name = "big", .init = true, .gpus = 1, .mem_bytes = 20 * GiB}},
			  2);
		assert_int_equal(gp_fit(n, r, why, sizeof why), GP_R_GPU_MEMORY);
		assert_non_null(strstr(why, "container big:"));
		gp_request_free(r);
	}
	gp_placer_free(pl);
	gp_node_free(n);
}

static void test_together(void **state)
{
	struct gp_node *n = mk("n", 0, 0, (const struct tg[]){{.uuid = "a", .slices = 2}}, 1);
	struct gp_request *r;
	struct gp_plan p;
	char why[GP_REASON_MAX];

	(void)state;
	/* each fits alone, not both */
	r = mkreq(0, 0, (const struct gp_ctr[]){{.gpus = 1, .compute = 60}, {.gpus = 1, .compute = 60}}, 2);
	assert_int_equal(gp_fit(n, r, why, sizeof why), GP_R_TOGETHER);
	assert_non_null(strstr(why, "do not fit together"));
	gp_request_free(r);
	/* two containers sharing one card are two tenants */
	r = mkreq(0, 0, (const struct gp_ctr[]){{.gpus = 1, .compute = 40}, {.gpus = 1, .compute = 40}}, 2);
	{
		struct gp_placer *pl;
		struct gp_policy pol;

		assert_int_equal(gp_policy_parse("spread", &pol, NULL, 0), 0);
		assert_int_equal(gp_placer_new(&pl, &pol, NULL), 0);
		assert_int_equal(gp_placer_plan(pl, n, r, &p, NULL, 0), GP_FIT);
		assert_int_equal(p.hold[0].tenants, 2);
		assert_int_equal(p.hold[0].compute, 80);
		gp_placer_free(pl);
	}
	gp_request_free(r);
	/* three tenants on a two-slice card */
	r = mkreq(0, 0, (const struct gp_ctr[]){{.gpus = 1}, {.gpus = 1}, {.gpus = 1}}, 3);
	assert_int_equal(gp_fit(n, r, NULL, 0), GP_R_TOGETHER);
	gp_request_free(r);
	/* The search finds what the greedy first choice misses: the larger
	 * container would take card b (the fuller), leaving the other one a
	 * card with too little memory; the second branch swaps them. */
	gp_node_free(n);
	n = mk("n", 0, 0, (const struct tg[]){{.uuid = "a", .used_gib = 12}, {.uuid = "b", .used_pct = 50}}, 2);
	r = mkreq(0, 0,
		  (const struct gp_ctr[]){{.gpus = 1, .compute = 50, .mem_bytes = 2 * GiB},
					  {.gpus = 1, .compute = 40, .mem_bytes = 10 * GiB}},
		  2);
	assert_int_equal(gp_fit(n, r, why, sizeof why), GP_FIT);
	gp_request_free(r);
	gp_node_free(n);
}

/* A pod with no GPU container: host resources only. */
static void test_host_only(void **state)
{
	struct gp_node *n = mk("n", 4000, 8, two_t4, 2);
	struct gp_request *r = mkreq(3000, 4, NULL, 0);
	struct gp_plan p;
	struct gp_placer *pl;
	struct gp_policy pol;

	(void)state;
	assert_int_equal(gp_policy_parse("ours", &pol, NULL, 0), 0);
	assert_int_equal(gp_placer_new(&pl, &pol, NULL), 0);
	assert_int_equal(gp_placer_plan(pl, n, r, &p, NULL, 0), GP_FIT);
	assert_int_equal(p.gpumask, 0);
	assert_int_equal(gp_node_commit(n, &p), 0);
	assert_int_equal(gp_node_cpu_free(n), 1000);
	assert_int_equal(gp_fit(n, r, NULL, 0), GP_R_CPU);
	gp_placer_free(pl);
	gp_request_free(r);
	gp_node_free(n);
}

/* --- commit and release ------------------------------------------------------- */

static void test_commit_release(void **state)
{
	struct gp_node *n = mk("n", 8000, 64, (const struct tg[]){{.uuid = "a"}, {.uuid = "b"}}, 2);
	struct gp_request *r = mkreq(3000, 8, (const struct gp_ctr[]){{.gpus = 2, .compute = 60, .mem_pct = 25}}, 1);
	struct gp_request *x = mkreq(0, 0, (const struct gp_ctr[]){{.gpus = 1, .exclusive = true}}, 1);
	struct gp_plan p, q, e;
	struct gp_gpu g;

	(void)state;
	{
		struct gp_placer *pl;
		struct gp_policy pol;

		assert_int_equal(gp_policy_parse("binpack", &pol, NULL, 0), 0);
		assert_int_equal(gp_placer_new(&pl, &pol, NULL), 0);
		assert_int_equal(gp_placer_plan(pl, n, r, &p, NULL, 0), GP_FIT);
		assert_int_equal(gp_placer_plan(pl, n, x, &e, NULL, 0), GP_FIT);
		gp_placer_free(pl);
	}
	assert_int_equal(gp_node_commit(n, &p), 0);
	assert_int_equal(gp_node_cpu_free(n), 5000);
	assert_int_equal(gp_node_mem_free(n), 56 * GiB);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(gp_node_gpu(n, i, &g), 0);
		assert_int_equal(g.compute_used, 60);
		assert_int_equal(g.mem_used, 4 * GiB);
		assert_int_equal(g.tenants, 1);
	}
	/* the same again no longer fits: refused, nothing changed */
	assert_int_equal(gp_node_commit(n, &p), -ENOSPC);
	assert_int_equal(gp_node_cpu_free(n), 5000);
	assert_int_equal(gp_node_gpu(n, 0, &g), 0);
	assert_int_equal(g.compute_used, 60);
	/* an exclusive plan needs an idle card */
	assert_int_equal(gp_node_commit(n, &e), -ENOSPC);
	assert_int_equal(gp_node_release(n, &p), 0);
	assert_int_equal(gp_node_cpu_free(n), 8000);
	assert_int_equal(gp_node_gpu(n, 1, &g), 0);
	assert_int_equal(g.compute_used, 0);
	assert_int_equal(g.tenants, 0);
	/* releasing what is not held is refused, nothing changed */
	assert_int_equal(gp_node_release(n, &p), -EINVAL);
	/* exclusive: the card is held whole, then free again */
	assert_int_equal(gp_node_commit(n, &e), 0);
	assert_int_equal(gp_node_gpu(n, e.grant[0][0].gpu, &g), 0);
	assert_true(g.exclusive);
	assert_int_equal(g.mem_used, 16 * GiB);
	assert_int_equal(gp_fit(n, x, NULL, 0), GP_FIT); /* the other card */
	assert_int_equal(gp_node_release(n, &e), 0);
	assert_int_equal(gp_node_gpu(n, e.grant[0][0].gpu, &g), 0);
	assert_false(g.exclusive);
	assert_int_equal(g.tenants, 0);
	/* a plan naming a card the node lacks */
	memset(&q, 0, sizeof q);
	q.gpumask = 1u << 5;
	q.hold[5].tenants = 1;
	assert_int_equal(gp_node_commit(n, &q), -EINVAL);
	assert_int_equal(gp_node_release(n, &q), -EINVAL);
	/* a hold outside the mask is malformed */
	memset(&q, 0, sizeof q);
	q.hold[1].compute = 10;
	assert_int_equal(gp_node_commit(n, &q), -EINVAL);
	gp_request_free(r);
	gp_request_free(x);
	gp_node_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_validation), cmocka_unit_test(test_request_validation),
		cmocka_unit_test(test_reasons),         cmocka_unit_test(test_reason_truncated),
		cmocka_unit_test(test_fields),          cmocka_unit_test(test_init_containers),
		cmocka_unit_test(test_together),        cmocka_unit_test(test_host_only),
		cmocka_unit_test(test_commit_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
