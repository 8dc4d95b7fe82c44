/* test_sched_extender.c - what the extender makes of pods and nodes before
 * placement decides: resource names, quantities and annotations into a
 * request (src/sched/pod.c), and node state plus pod footprints into a
 * placement node (src/sched/extender_cache.c).  Requests are checked by
 * what fits where, so the meaning (not the struct) is what is tested. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/clock.h"
#include "sched/extender_int.h"
#include "sched/pod.h"

#define GiB ((uint64_t)1 << 30)
#define MiB ((uint64_t)1 << 20)

/* A pod with one container's limits (JSON object text) and annotations. */
static json_t *pod(const char *limits, const char *annotations)
{
	char text[4096];
	json_error_t je;
	json_t *p;

	snprintf(text, sizeof text,
		 "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"uid\":\"u-1\","
		 "\"annotations\":%s},\"spec\":{\"containers\":[{\"name\":\"main\","
		 "\"resources\":{\"limits\":%s}}]}}",
		 annotations ? annotations : "{}", limits);
	p = json_loads(text, 0, &je);
	if (!p)
		fail_msg("bad test pod: %s", je.text);
	return p;
}

/* Read a pod; return 0 or the parse error, with why. */
static int read_pod(struct gp_pod_req *pr, const char *limits, const char *ann, char *why,
		    size_t n)
{
	json_t *p = pod(limits, ann);
	int rc = gp_req_from_pod(pr, p, why, n);

	json_decref(p);
	return rc;
}

/* A node: `n` cards of `model`, `gib` each, NUMA i % numa_nodes. */
static struct gp_node *node(const char *model, unsigned n, unsigned gib, unsigned numa_nodes,
			    const struct gp_annot_hold *holds, unsigned nholds)
{
	struct gp_annot_node st = {.source = GP_SRC_GPUPOOL, .ngpu = n};
	struct gp_node *gn;
	char why[256];

	for (unsigned i = 0; i < n; i++) {
		snprintf(st.gpu[i].uuid, sizeof st.gpu[i].uuid, "GPU-%u", i);
		snprintf(st.gpu[i].model, sizeof st.gpu[i].model, "%s", model);
		st.gpu[i].mem_bytes = (uint64_t)gib * GiB;
		st.gpu[i].compute = 100;
		st.gpu[i].slices = 8;
		st.gpu[i].numa = (int)(i % numa_nodes);
		st.gpu[i].healthy = true;
	}
	if (gp__ext_build_node("n1", &st, holds, nholds, &gn, why, sizeof why))
		fail_msg("build_node: %s", why);
	return gn;
}

static bool fits(struct gp_node *n, struct gp_pod_req *pr)
{
	char why[GP_REASON_MAX];

	return gp_fit(n, pr->req, why, sizeof why) == GP_FIT;
}

static void test_quantities(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {{"0", 0},	      {"1", 1},		 {"+3", 3},	     {"10Gi", 10 * GiB},
		    {"2Ki", 2048},     {"1k", 1000},	 {"5e3", 5000},	     {"2.0", 2},
		    {"1.5k", 1500},    {"2000m", 2},	 {"1E2", 100},	     {"3M", 3000000}};
	static const char *const bad[] = {"",	   "-1",  "500m", "1.5", "1Qi", "1 ", " 1",
					  "0x10", "1e",  "e3",	"1Ei", "99999999999999999999",
					  ".5",	  "1e-1"};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		if (gp_req_quantity(good[i].s, &v) || v != good[i].v)
			fail_msg("'%s' read as %llu", good[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (gp_req_quantity(bad[i], &v) == 0)
			fail_msg("accepted quantity '%s'", bad[i]);
}

static void test_gpupool_names(void **state)
{
	struct gp_pod_req pr;
	struct gp_annot_hold half = {.uuid = "GPU-0", .mem_bytes = 40 * GiB, .compute = 50,
				     .tenants = 1};
	struct gp_node *idle = node("NVIDIA A100-SXM4-80GB", 2, 80, 2, NULL, 0);
	struct gp_node *busy = node("NVIDIA A100-SXM4-80GB", 1, 80, 1, &half, 1);
	char why[512];

	(void)state;
	assert_int_equal(gp_req_init(&pr), 0);
	/* Memory in MiB per vGPU. */
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":\"1\",\"gpupool.io/vgpu-memory\":"
				       "\"40960\"}",
				  NULL, why, sizeof why),
			 0);
	assert_int_equal(pr.nctr, 1);
	assert_string_equal(pr.ctr[0].name, "main");
	assert_string_equal(pr.ns, "ns");
	assert_string_equal(pr.uid, "u-1");
	assert_true(fits(busy, &pr)); /* exactly the 40 GiB left */
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":\"1\",\"gpupool.io/vgpu-memory\":"
				       "\"40961\"}",
				  NULL, why, sizeof why),
			 0);
	assert_false(fits(busy, &pr));
	/* A bare count takes the whole card's memory (HAMi's default). */
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":1}", NULL, why, sizeof why), 0);
	assert_true(fits(idle, &pr));
	assert_false(fits(busy, &pr));
	/* Memory alone means one vGPU; a percentage of the card. */
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu-memory-percent\":\"50\"}", NULL, why,
				  sizeof why),
			 0);
	assert_int_equal(gp_request_gpus(pr.req), 1);
	assert_true(fits(busy, &pr));
	/* 100 % cores is the whole card, exclusively. */
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":\"1\",\"gpupool.io/vgpu-memory\":"
				       "\"1024\",\"gpupool.io/vgpu-cores\":\"100\"}",
				  NULL, why, sizeof why),
			 0);
	assert_false(fits(busy, &pr));
	assert_true(fits(idle, &pr));
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":\"1\",\"gpupool.io/vgpu-memory\":"
				       "\"1024\",\"gpupool.io/vgpu-cores\":\"50\"}",
				  NULL, why, sizeof why),
			 0);
	assert_true(fits(busy, &pr));
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":\"1\",\"gpupool.io/vgpu-memory\":"
				       "\"1024\",\"gpupool.io/vgpu-cores\":\"51\"}",
				  NULL, why, sizeof why),
			 0);
	assert_false(fits(busy, &pr));
	/* Priority. */
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":\"1\",\"gpupool.io/priority\":\"2\"}",
				  NULL, why, sizeof why),
			 0);
	assert_int_equal(pr.ctr[0].priority, GP_PRIO_LOW);
	/* No GPU resource: nothing to place. */
	assert_int_equal(read_pod(&pr, "{\"cpu\":\"2\",\"example.com/foo\":\"1\"}", NULL, why,
				  sizeof why),
			 0);
	assert_int_equal(pr.nctr, 0);
	gp_node_free(idle);
	gp_node_free(busy);
	gp_req_fini(&pr);
}

static void test_hami_names_and_annotations(void **state)
{
	struct gp_pod_req pr;
	struct gp_node *a100 = node("NVIDIA A100-SXM4-80GB", 2, 80, 2, NULL, 0);
	struct gp_node *t4 = node("Tesla T4", 4, 15, 1, NULL, 0);
	char why[512];

	(void)state;
	assert_int_equal(gp_req_init(&pr), 0);
	assert_int_equal(read_pod(&pr, "{\"nvidia.com/gpu\":\"2\",\"nvidia.com/gpumem\":\"8000\","
				       "\"nvidia.com/priority\":\"1\"}",
				  "{\"nvidia.com/use-gputype\":\"Tesla T4,V100\"}", why, sizeof why),
			 0);
	assert_int_equal(pr.ctr[0].priority, GP_PRIO_NORMAL); /* HAMi: 1 is its default */
	assert_true(fits(t4, &pr));
	assert_false(fits(a100, &pr));
	assert_int_equal(read_pod(&pr, "{\"nvidia.com/gpu\":\"1\"}",
				  "{\"nvidia.com/nouse-gputype\":\"a100\"}", why, sizeof why),
			 0);
	assert_false(fits(a100, &pr));
	assert_true(fits(t4, &pr));
	/* UUIDs: exact. */
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":\"1\"}",
				  "{\"gpupool.io/use-gpuuuid\":\"GPU-3\"}", why, sizeof why),
			 0);
	assert_true(fits(t4, &pr));
	assert_false(fits(a100, &pr));
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":\"1\"}",
				  "{\"gpupool.io/nouse-gpuuuid\":\"GPU-0,GPU-1\"}", why, sizeof why),
			 0);
	assert_false(fits(a100, &pr));
	/* NUMA binding: a100's two cards are on two NUMA nodes. */
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu\":\"2\",\"gpupool.io/vgpu-memory\":\"1\"}",
				  "{\"nvidia.com/numa-bind\":\"true\"}", why, sizeof why),
			 0);
	assert_false(fits(a100, &pr));
	assert_true(fits(t4, &pr));
	gp_node_free(a100);
	gp_node_free(t4);
	gp_req_fini(&pr);
}

static void test_per_model_names(void **state)
{
	struct gp_pod_req pr;
	struct gp_node *a100 = node("NVIDIA A100-SXM4-80GB", 1, 80, 1, NULL, 0);
	struct gp_node *a10 = node("NVIDIA A10", 1, 24, 1, NULL, 0);
	char why[512];

	(void)state;
	assert_int_equal(gp_req_init(&pr), 0);
	/* Whole words, in a run: a100 and a100-sxm4 name the A100, a10 does
	 * not; a10 names the A10. */
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu-a100\":\"1\"}", NULL, why, sizeof why), 0);
	assert_true(fits(a100, &pr));
	assert_false(fits(a10, &pr));
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu-a100-sxm4\":\"1\"}", NULL, why,
				  sizeof why),
			 0);
	assert_true(fits(a100, &pr));
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu-a10\":\"1\"}", NULL, why, sizeof why), 0);
	assert_false(fits(a100, &pr));
	assert_true(fits(a10, &pr));
	assert_int_equal(read_pod(&pr, "{\"gpupool.io/vgpu-a100-80gb\":\"1\"}", NULL, why,
				  sizeof why),
			 0);
	assert_false(fits(a100, &pr)); /* not a run of its words */
	gp_node_free(a100);
	gp_node_free(a10);
	gp_req_fini(&pr);
}

static void test_refusals(void **state)
{
	static const struct {
		const char *limits, *ann, *why;
	} bad[] = {
		{"{\"gpupool.io/vgpu\":\"1\",\"gpupool.io/vgpu-memroy\":\"1\"}", NULL,
		 "gpupool.io/vgpu-memroy is not a gpupool resource (did you mean "
		 "gpupool.io/vgpu-memory?)"},
		{"{\"gpupool.io/vgpu-core\":\"50\"}", NULL, "did you mean gpupool.io/vgpu-cores?"},
		{"{\"gpupool.io/vgpu-mem\":\"50\"}", NULL, "did you mean gpupool.io/vgpu-memory?"},
		{"{\"gpupool.io/gpu\":\"1\"}", NULL, "gpupool.io/gpu is not a gpupool resource"},
		{"{\"gpupool.io/vgpu\":\"1\",\"nvidia.com/gpumem\":\"1\"}", NULL, "mixes gpupool.io"},
		{"{\"gpupool.io/vgpu-a100\":\"1\",\"gpupool.io/vgpu-h100\":\"1\"}", NULL,
		 "two card models"},
		{"{\"gpupool.io/vgpu-a100\":\"1\",\"gpupool.io/vgpu\":\"1\"}", NULL,
		 "gives both gpupool.io/vgpu and gpupool.io/vgpu-a100"},
		{"{\"gpupool.io/vgpu-a100\":\"1\"}", "{\"gpupool.io/use-gputype\":\"h100\"}",
		 "a per-model resource"},
		{"{\"gpupool.io/vgpu\":\"17\"}", NULL, "asks for 17 GPUs"},
		{"{\"gpupool.io/vgpu\":\"1\",\"gpupool.io/vgpu-memory\":\"1\","
		 "\"gpupool.io/vgpu-memory-percent\":\"5\"}",
		 NULL, "both a memory size and a memory percentage"},
		{"{\"gpupool.io/vgpu-memory-percent\":\"101\"}", NULL, "over 100"},
		{"{\"gpupool.io/vgpu-cores\":\"150\"}", NULL, "cores 150% is over 100"},
		{"{\"gpupool.io/vgpu\":\"1\",\"gpupool.io/priority\":\"3\"}", NULL, "priority 3"},
		{"{\"nvidia.com/gpu\":\"1\",\"nvidia.com/priority\":\"2\"}", NULL, "0 (high), 1 (normal)"},
		{"{\"gpupool.io/vgpu\":\"0.5\"}", NULL, "not a whole-number quantity"},
		{"{\"gpupool.io/vgpu\":true}", NULL, "not a whole-number quantity"},
		{"{\"gpupool.io/vgpu\":\"1\"}", "{\"gpupool.io/numa-bind\":\"sure\"}",
		 "gpupool.io/numa-bind must be true or false"},
		{"{\"gpupool.io/vgpu\":\"1\"}",
		 "{\"gpupool.io/use-gputype\":\"a\",\"nvidia.com/use-gputype\":\"b\"}",
		 "both gpupool.io/use-gputype and nvidia.com/use-gputype"},
		{"[]", NULL, "resources are not an object"},
	};
	struct gp_pod_req pr;
	char why[512];

	(void)state;
	assert_int_equal(gp_req_init(&pr), 0);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = read_pod(&pr, bad[i].limits, bad[i].ann, why, sizeof why);
		if (rc != -EINVAL || !strstr(why, bad[i].why))
			fail_msg("case %zu: rc %d '%s', want '%s'", i, rc, why, bad[i].why);
	}
	gp_req_fini(&pr);
}

static void test_containers(void **state)
{
	static const char text[] =
		"{\"metadata\":{\"name\":\"multi\"},\"spec\":{"
		"\"initContainers\":["
		"{\"name\":\"fetch\",\"resources\":{\"limits\":{\"gpupool.io/vgpu\":\"1\","
		"\"gpupool.io/vgpu-memory\":\"1024\"}}},"
		"{\"name\":\"proxy\",\"restartPolicy\":\"Always\",\"resources\":{\"requests\":{"
		"\"gpupool.io/vgpu\":\"1\",\"gpupool.io/vgpu-memory\":\"2048\"}}},"
		"{\"name\":\"setup\"}],"
		"\"containers\":["
		"{\"name\":\"main\",\"resources\":{\"limits\":{\"gpupool.io/vgpu\":\"2\","
		"\"gpupool.io/vgpu-memory\":\"4096\"},\"requests\":{\"gpupool.io/vgpu\":\"1\"}}},"
		"{\"name\":\"log\",\"resources\":{\"limits\":{\"cpu\":\"1\"}}}]}}";
	struct gp_pod_req pr;
	char why[512];
	json_t *p = json_loads(text, 0, NULL);

	(void)state;
	assert_int_equal(gp_req_init(&pr), 0);
	assert_int_equal(gp_req_from_pod(&pr, p, why, sizeof why), 0);
	assert_string_equal(pr.ns, "default");
	assert_int_equal(pr.nctr, 3); /* setup and log use no GPU */
	assert_string_equal(pr.ctr[0].name, "fetch");
	assert_true(pr.ctr[0].init);
	assert_string_equal(pr.ctr[1].name, "proxy");
	assert_false(pr.ctr[1].init); /* a sidecar runs beside the app */
	assert_string_equal(pr.ctr[2].name, "main");
	assert_false(pr.ctr[2].init);
	assert_int_equal(gp_request_container_count(pr.req), 3);
	assert_int_equal(gp_request_gpus(pr.req), 3); /* limits win: main has 2 */
	json_decref(p);
	/* Structure errors name the place. */
	p = json_loads("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"containers\":[{}]}}", 0, NULL);
	assert_int_equal(gp_req_from_pod(&pr, p, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "spec.containers[0] has no valid name"));
	json_decref(p);
	p = json_loads("{\"spec\":{}}", 0, NULL);
	assert_int_equal(gp_req_from_pod(&pr, p, why, sizeof why), -EINVAL);
	json_decref(p);
	gp_req_fini(&pr);
}

static void test_build_node_counts_holds(void **state)
{
	struct gp_annot_hold holds[] = {
		{.uuid = "gpu-0", .mem_bytes = 30 * GiB, .compute = 40, .tenants = 1},
		{.uuid = "GPU-0", .mem_bytes = 30 * GiB, .compute = 40, .tenants = 2},
		{.uuid = "GPU-1", .mem_bytes = 90 * GiB, .compute = 0, .tenants = 1}, /* too much */
		{.uuid = "GPU-9", .mem_bytes = 1 * GiB, .compute = 1, .tenants = 1},  /* gone */
	};
	struct gp_node *n = node("NVIDIA H100", 3, 80, 1, holds, 4), *e;
	struct gp_gpu g;

	(void)state;
	assert_int_equal(gp_node_gpu_count(n), 3);
	assert_int_equal(gp_node_gpu(n, 0, &g), 0);
	assert_int_equal(g.mem_used, 60 * GiB); /* UUIDs match ignoring case */
	assert_int_equal(g.compute_used, 80);
	assert_int_equal(g.tenants, 3);
	assert_string_equal(g.model, "NVIDIA H100"); /* as the node reports it */
	assert_int_equal(gp_node_gpu(n, 1, &g), 0);
	assert_int_equal(g.mem_used, 80 * GiB); /* clamped: counted full */
	assert_int_equal(gp_node_gpu(n, 2, &g), 0);
	assert_int_equal(g.mem_used, 0);
	e = gp__ext_empty_copy(n);
	assert_non_null(e);
	assert_int_equal(gp_node_gpu_count(e), 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(gp_node_gpu(e, i, &g), 0);
		assert_int_equal(g.mem_used, 0);
		assert_int_equal(g.tenants, 0);
	}
	gp_node_free(e);
	gp_node_free(n);
}

static void test_node_state_age(void **state)
{
	char text[512], why[256], when[40];
	json_t *obj;
	struct gp_annot_node st;
	int64_t now = (int64_t)(gp_wall_ns() / 1000000u);

	(void)state;
	gp_time_format(now - 120000, when, sizeof when);
	snprintf(text, sizeof text,
		 "{\"metadata\":{\"annotations\":{\"gpupool.io/node-state\":\"{\\\"version\\\":1,"
		 "\\\"updated\\\":\\\"%s\\\",\\\"gpus\\\":[]}\"}}}",
		 when);
	obj = json_loads(text, 0, NULL);
	assert_non_null(obj);
	assert_int_equal(gp__ext_node_state(obj, 0, &st, why, sizeof why), 0);
	assert_int_equal(gp__ext_node_state(obj, 300000, &st, why, sizeof why), 0);
	assert_int_equal(gp__ext_node_state(obj, 60000, &st, why, sizeof why), -ESTALE);
	assert_non_null(strstr(why, "stale"));
	json_decref(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quantities),
		cmocka_unit_test(test_gpupool_names),
		cmocka_unit_test(test_hami_names_and_annotations),
		cmocka_unit_test(test_per_model_names),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_build_node_counts_holds),
		cmocka_unit_test(test_node_state_age),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
