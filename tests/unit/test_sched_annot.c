/* test_sched_annot.c - the annotation codecs (src/sched/annot*.c): node
 * state (ours and HAMi's register and scores), allocations (ours and
 * HAMi's), the bind lock, the binds in flight, times; round trips,
 * versions, range checks. */
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
#include "sched/annot.h"

#define GiB ((uint64_t)1 << 30)
#define MiB ((uint64_t)1 << 20)

static const char node_state[] =
	"{\"version\":1,\"updated\":\"2024-11-21T01:02:03.250Z\",\"future\":{\"x\":1},\"gpus\":["
	"{\"uuid\":\"GPU-0\",\"model\":\"NVIDIA A100-SXM4-80GB\",\"memoryBytes\":85899345920,"
	"\"compute\":100,\"slices\":10,\"numa\":0,\"healthy\":true,\"links\":{\"GPU-1\":120,"
	"\"GPU-gone\":5}},"
	"{\"uuid\":\"GPU-1\",\"memoryBytes\":85899345920,\"slices\":4,\"healthy\":false,"
	"\"links\":{\"GPU-0\":100}}]}";

static void test_node_state(void **state)
{
	struct gp_annot_node s, back;
	char why[256], *text;

	(void)state;
	assert_int_equal(gp_annot_node_parse(node_state, &s, why, sizeof why), 0);
	assert_int_equal(s.source, GP_SRC_GPUPOOL);
	assert_int_equal(s.ngpu, 2);
	assert_string_equal(s.gpu[0].model, "NVIDIA A100-SXM4-80GB");
	assert_int_equal(s.gpu[0].mem_bytes, 80 * GiB);
	assert_int_equal(s.gpu[0].slices, 10);
	assert_true(s.gpu[0].healthy);
	/* Defaults: compute 100, NUMA unknown, model "". */
	assert_int_equal(s.gpu[1].compute, 100);
	assert_int_equal(s.gpu[1].numa, -1);
	assert_string_equal(s.gpu[1].model, "");
	assert_false(s.gpu[1].healthy);
	/* Links are symmetric, the larger score wins; unknown GPUs ignored. */
	assert_int_equal(s.link[0][1], 120);
	assert_int_equal(s.link[1][0], 120);
	assert_int_equal(s.updated_ms, 1732150923250LL);
	/* What we write, we read back the same. */
	text = gp_annot_node_format(&s);
	assert_non_null(text);
	assert_int_equal(gp_annot_node_parse(text, &back, why, sizeof why), 0);
	free(text);
	assert_int_equal(back.ngpu, 2);
	assert_memory_equal(back.gpu, s.gpu, sizeof s.gpu);
	assert_memory_equal(back.link, s.link, sizeof s.link);
	assert_int_equal(back.updated_ms, s.updated_ms);
}

static void test_node_state_refusals(void **state)
{
	static const struct {
		const char *text, *why;
		int rc;
	} bad[] = {
		{"{\"version\":2,\"gpus\":[]}", "version 2 is newer", -EPROTONOSUPPORT},
		{"{\"gpus\":[]}", "'version' is missing", -EINVAL},
		{"{\"version\":0,\"gpus\":[]}", "version 0 is not valid", -EINVAL},
		{"{\"version\":1}", "'gpus' must be a list", -EINVAL},
		{"[1]", "not a JSON object", -EINVAL},
		{"{\"version\":1,\"version\":1,\"gpus\":[]}", "not JSON", -EINVAL},
		{"{\"version\":1,\"gpus\":[{\"memoryBytes\":1,\"slices\":1,\"healthy\":true}]}",
		 "gpus[0]: 'uuid' is missing", -EINVAL},
		{"{\"version\":1,\"gpus\":[{\"uuid\":\"a\",\"memoryBytes\":0,\"slices\":1,\"healthy\":true}]}",
		 "'memoryBytes' is 0", -EINVAL},
		{"{\"version\":1,\"gpus\":[{\"uuid\":\"a\",\"memoryBytes\":1,\"slices\":0,\"healthy\":true}]}",
		 "'slices' is 0", -EINVAL},
		{"{\"version\":1,\"gpus\":[{\"uuid\":\"a\",\"memoryBytes\":1,\"slices\":1}]}",
		 "'healthy' is missing", -EINVAL},
		{"{\"version\":1,\"gpus\":[{\"uuid\":\"a\",\"memoryBytes\":1,\"slices\":1,\"healthy\":1}]}",
		 "'healthy' must be true or false", -EINVAL},
		{"{\"version\":1,\"gpus\":[{\"uuid\":\"a\",\"memoryBytes\":\"1\",\"slices\":1,\"healthy\":true}]}",
		 "'memoryBytes' must be an integer", -EINVAL},
		{"{\"version\":1,\"gpus\":[{\"uuid\":\"a\",\"memoryBytes\":1,\"slices\":1,\"healthy\":true},"
		 "{\"uuid\":\"A\",\"memoryBytes\":1,\"slices\":1,\"healthy\":true}]}",
		 "appears twice", -EINVAL},
		{"{\"version\":1,\"gpus\":[{\"uuid\":\"a\",\"memoryBytes\":1,\"slices\":1,\"healthy\":true,"
		 "\"links\":{\"b\":-1}}]}",
		 "must be 0..65535", -EINVAL},
		{"{\"version\":1,\"updated\":\"yesterday\",\"gpus\":[]}", "'updated'", -EINVAL},
	};
	struct gp_annot_node s;
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = gp_annot_node_parse(bad[i].text, &s, why, sizeof why);
		if (rc != bad[i].rc || !strstr(why, bad[i].why))
			fail_msg("case %zu: rc %d '%s', want %d '%s'", i, rc, why, bad[i].rc,
				 bad[i].why);
	}
}

static void test_node_state_caps(void **state)
{
	struct gp_annot_node s;
	char why[256], *text = malloc(32768), *big;
	size_t n = (size_t)sprintf(text, "{\"version\":1,\"gpus\":[");

	(void)state;
	for (int i = 0; i < 17; i++)
		n += (size_t)sprintf(text + n,
				     "%s{\"uuid\":\"G%d\",\"memoryBytes\":1,\"slices\":1,\"healthy\":true}",
				     i ? "," : "", i);
	strcpy(text + n, "]}");
	assert_int_equal(gp_annot_node_parse(text, &s, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "at most 16"));
	free(text);
	big = malloc(GP_ANNOT_MAX + 16);
	memset(big, ' ', GP_ANNOT_MAX + 8);
	big[GP_ANNOT_MAX + 8] = '\0';
	assert_int_equal(gp_annot_node_parse(big, &s, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "longer than"));
	free(big);
}

static void test_hami_register_legacy(void **state)
{
	struct gp_annot_node s;
	char why[256];

	(void)state;
	/* 7 fields (older HAMi) and 9 (index and mode); MIG cards are kept but
	 * never chosen. */
	assert_int_equal(gp_annot_hami_register_parse(
				 "GPU-a,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true:"
				 "GPU-b,4,16384,0,Tesla T4,1,False,1,hami-core:"
				 "GPU-c,7,40960,100,NVIDIA A100,0,true,2,mig:",
				 &s, why, sizeof why),
			 0);
	assert_int_equal(s.source, GP_SRC_HAMI);
	assert_int_equal(s.ngpu, 3);
	assert_string_equal(s.gpu[0].uuid, "GPU-a");
	assert_string_equal(s.gpu[0].model, "NVIDIA-Tesla V100-PCIE-32GB");
	assert_int_equal(s.gpu[0].mem_bytes, 32768 * MiB);
	assert_int_equal(s.gpu[0].slices, 10);
	assert_true(s.gpu[0].healthy);
	assert_int_equal(s.gpu[1].compute, 100); /* 0 cores reported: the whole card */
	assert_int_equal(s.gpu[1].numa, 1);
	assert_false(s.gpu[1].healthy);
	assert_false(s.gpu[2].healthy);
	/* Malformed entries are refused, not skipped. */
	assert_int_equal(gp_annot_hami_register_parse("GPU-a,10,32768,100,T4,0:", &s, why,
						      sizeof why),
			 -EINVAL);
	assert_non_null(strstr(why, "6 fields"));
	assert_int_equal(gp_annot_hami_register_parse("GPU-a,10,lots,100,T4,0,true:", &s, why,
						      sizeof why),
			 -EINVAL);
	assert_int_equal(gp_annot_hami_register_parse("GPU-a,10,1,100,T4,0,maybe:", &s, why,
						      sizeof why),
			 -EINVAL);
	assert_int_equal(gp_annot_hami_register_parse("nothing here", &s, why, sizeof why), -EINVAL);
}

static void test_hami_register_json_and_scores(void **state)
{
	struct gp_annot_node s;
	char why[256];

	(void)state;
	/* Go's omitempty: a missing "health" is false, a missing "numa" 0. */
	assert_int_equal(gp_annot_hami_register_parse(
				 "[{\"id\":\"GPU-x\",\"count\":10,\"devmem\":24576,\"devcore\":100,"
				 "\"type\":\"NVIDIA-L4\",\"health\":true,\"mode\":\"hami-core\"},"
				 "{\"id\":\"GPU-y\",\"count\":10,\"devmem\":24576,\"type\":\"NVIDIA-L4\","
				 "\"numa\":1}]",
				 &s, why, sizeof why),
			 0);
	assert_int_equal(s.ngpu, 2);
	assert_true(s.gpu[0].healthy);
	assert_int_equal(s.gpu[0].numa, 0);
	assert_false(s.gpu[1].healthy);
	assert_int_equal(s.gpu[1].numa, 1);
	assert_int_equal(gp_annot_hami_scores_parse(
				 "[{\"uuid\":\"GPU-x\",\"score\":{\"GPU-y\":60}},{\"uuid\":\"GPU-z\","
				 "\"score\":{\"GPU-x\":9}}]",
				 &s, why, sizeof why),
			 0);
	assert_int_equal(s.link[0][1], 60);
	assert_int_equal(s.link[1][0], 60);
	assert_int_equal(gp_annot_hami_scores_parse("{}", &s, why, sizeof why), -EINVAL);
}

static void test_node_read_precedence(void **state)
{
	json_t *ann = json_object();
	struct gp_annot_node s;
	char why[256];

	(void)state;
	assert_int_equal(gp_annot_node_read(ann, &s, why, sizeof why), -ENOENT);
	assert_non_null(strstr(why, "no gpupool.io/node-state annotation"));
	json_object_set_new(ann, GP_ANNOT_HAMI_REGISTER,
			    json_string("GPU-h,10,1024,100,T4,0,true:"));
	assert_int_equal(gp_annot_node_read(ann, &s, why, sizeof why), 0);
	assert_int_equal(s.source, GP_SRC_HAMI);
	json_object_set_new(ann, GP_ANNOT_NODE_STATE, json_string(node_state));
	assert_int_equal(gp_annot_node_read(ann, &s, why, sizeof why), 0);
	assert_int_equal(s.source, GP_SRC_GPUPOOL); /* ours wins */
	json_object_set_new(ann, GP_ANNOT_NODE_STATE, json_integer(1)); /* not a string */
	assert_int_equal(gp_annot_node_read(ann, &s, why, sizeof why), 0);
	assert_int_equal(s.source, GP_SRC_HAMI);
	json_decref(ann);
	assert_int_equal(gp_annot_node_read(NULL, &s, why, sizeof why), -ENOENT);
}

static void test_allocation_round_trip(void **state)
{
	struct gp_annot_alloc a = {0}, b;
	char why[256], *text;

	(void)state;
	strcpy(a.node, "node-1");
	strcpy(a.uid, "7c0e");
	strcpy(a.policy, "node=ours,topology=on");
	a.bound_ms = 1732150923000LL;
	a.nctr = 2;
	strcpy(a.ctr[0].name, "warmup");
	a.ctr[0].init = true;
	a.ctr[0].ngrant = 1;
	strcpy(a.ctr[0].grant[0].uuid, "GPU-0");
	a.ctr[0].grant[0].mem_bytes = 2 * GiB;
	strcpy(a.ctr[1].name, "main");
	a.ctr[1].priority = GP_PRIO_HIGH;
	a.ctr[1].ngrant = 2;
	strcpy(a.ctr[1].grant[0].uuid, "GPU-0");
	a.ctr[1].grant[0].mem_bytes = 10 * GiB;
	a.ctr[1].grant[0].compute = 30;
	strcpy(a.ctr[1].grant[1].uuid, "GPU-1");
	a.ctr[1].grant[1].mem_bytes = 80 * GiB;
	a.ctr[1].grant[1].compute = 100;
	a.ctr[1].grant[1].exclusive = true;
	a.nhold = 2;
	strcpy(a.hold[0].uuid, "GPU-0");
	a.hold[0].mem_bytes = 10 * GiB;
	a.hold[0].compute = 30;
	a.hold[0].tenants = 1;
	strcpy(a.hold[1].uuid, "GPU-1");
	a.hold[1].mem_bytes = 80 * GiB;
	a.hold[1].compute = 100;
	a.hold[1].tenants = 1;
	a.hold[1].exclusive = true;
	a.source = GP_SRC_GPUPOOL;
	text = gp_annot_alloc_format(&a);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"priority\":\"high\""));
	assert_non_null(strstr(text, "\"boundAt\":\"2024-11-21T01:02:03.000Z\""));
	assert_int_equal(gp_annot_alloc_parse(text, &b, why, sizeof why), 0);
	free(text);
	assert_memory_equal(&a, &b, sizeof a);
}

static void test_allocation_refusals(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{"{\"version\":1,\"containers\":[],\"footprint\":[]}", "'node' is missing"},
		{"{\"version\":1,\"node\":\"n\",\"footprint\":[]}", "'containers' must be a list"},
		{"{\"version\":1,\"node\":\"n\",\"containers\":[],\"footprint\":[{\"uuid\":\"g\","
		 "\"memoryBytes\":1,\"compute\":0,\"tenants\":0}]}",
		 "'tenants' is 0"},
		{"{\"version\":1,\"node\":\"n\",\"containers\":[],\"footprint\":[{\"uuid\":\"g\","
		 "\"memoryBytes\":1,\"compute\":0,\"tenants\":1},{\"uuid\":\"G\",\"memoryBytes\":1,"
		 "\"compute\":0,\"tenants\":1}]}",
		 "appears twice"},
		{"{\"version\":1,\"node\":\"n\",\"containers\":[{\"gpus\":[{\"uuid\":\"g\"}]}],"
		 "\"footprint\":[]}",
		 "'memoryBytes' is missing"},
		{"{\"version\":1,\"node\":\"n\",\"containers\":[{\"priority\":\"urgent\",\"gpus\":[]}],"
		 "\"footprint\":[]}",
		 "'priority' must be high, normal or low"},
	};
	struct gp_annot_alloc a;
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (gp_annot_alloc_parse(bad[i].text, &a, why, sizeof why) != -EINVAL ||
		    !strstr(why, bad[i].why))
			fail_msg("case %zu: said '%s', want '%s'", i, why, bad[i].why);
	assert_int_equal(gp_annot_alloc_parse("{\"version\":9}", &a, why, sizeof why),
			 -EPROTONOSUPPORT);
}

static void test_hami_allocation(void **state)
{
	struct gp_annot_alloc a;
	char why[256];
	json_t *ann;

	(void)state;
	/* Two containers; GPU-1 used by both; GPU-2 at 100 % is exclusive. */
	assert_int_equal(gp_annot_hami_alloc_parse("GPU-1,NVIDIA,1000,30:GPU-2,NVIDIA,2000,100:;"
						    "GPU-1,NVIDIA,500,0:;;",
						    &a, why, sizeof why),
			 0);
	assert_int_equal(a.source, GP_SRC_HAMI);
	assert_int_equal(a.nctr, 2);
	assert_int_equal(a.ctr[0].ngrant, 2);
	assert_int_equal(a.nhold, 2);
	assert_string_equal(a.hold[0].uuid, "GPU-1");
	assert_int_equal(a.hold[0].mem_bytes, 1500 * MiB);
	assert_int_equal(a.hold[0].compute, 30);
	assert_int_equal(a.hold[0].tenants, 2);
	assert_false(a.hold[0].exclusive);
	assert_true(a.hold[1].exclusive);
	assert_int_equal(gp_annot_hami_alloc_parse("GPU-1,NVIDIA,x,1:;", &a, why, sizeof why),
			 -EINVAL);
	assert_int_equal(gp_annot_hami_alloc_parse("GPU-1,NVIDIA:;", &a, why, sizeof why), -EINVAL);
	/* Through the annotations: ours first, else HAMi's, else none. */
	ann = json_pack("{s:s}", GP_ANNOT_HAMI_ALLOCATED, "GPU-9,NVIDIA,10,0:;");
	assert_int_equal(gp_annot_alloc_read(ann, &a, why, sizeof why), 0);
	assert_int_equal(a.hold[0].mem_bytes, 10 * MiB);
	json_object_clear(ann);
	assert_int_equal(gp_annot_alloc_read(ann, &a, why, sizeof why), -ENOENT);
	json_decref(ann);
}

static void test_lock(void **state)
{
	struct gp_annot_lock l = {.expires_ms = 4102444800123LL}, m;
	char why[256], *text;

	(void)state;
	strcpy(l.holder, "host/42/7");
	strcpy(l.pod, "ml/train-0");
	text = gp_annot_lock_format(&l);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"expires\":\"2100-01-01T00:00:00.123Z\""));
	assert_int_equal(gp_annot_lock_parse(text, &m, why, sizeof why), 0);
	free(text);
	assert_memory_equal(&l, &m, sizeof l);
	assert_int_equal(gp_annot_lock_parse("{\"version\":1,\"holder\":\"h\"}", &m, why, sizeof why),
			 -EINVAL);
	assert_non_null(strstr(why, "'expires'"));
	assert_int_equal(gp_annot_lock_parse("locked", &m, why, sizeof why), -EINVAL);
}

static void test_binding(void **state)
{
	struct gp_annot_binding *b = calloc(1, sizeof *b), *back = calloc(1, sizeof *back);
	char why[256], *text;
	static const char *const bad[] = {
		"{\"version\":1}",                                        /* no pods */
		"{\"version\":1,\"pods\":[{\"pod\":\"a/b\",\"expires\":\"2030-01-01T00:00:00Z\","
		"\"footprint\":[]}]}",                                     /* no uid */
		"{\"version\":1,\"pods\":[{\"uid\":\"u\",\"expires\":\"soon\",\"footprint\":[]}]}",
		"{\"version\":1,\"pods\":[{\"uid\":\"u\",\"expires\":\"2030-01-01T00:00:00Z\","
		"\"footprint\":[{\"uuid\":\"G\",\"memoryBytes\":1,\"compute\":0,\"tenants\":1},"
		"{\"uuid\":\"g\",\"memoryBytes\":1,\"compute\":0,\"tenants\":1}]}]}", /* GPU twice */
		"{\"version\":1,\"pods\":[{\"uid\":\"u\",\"expires\":\"2030-01-01T00:00:00Z\","
		"\"footprint\":[{\"uuid\":\"G\",\"memoryBytes\":-1,\"compute\":0,\"tenants\":1}]}]}",
		"[]",
	};

	(void)state;
	assert_non_null(b);
	assert_non_null(back);
	b->n = 2;
	snprintf(b->pod[0].uid, sizeof b->pod[0].uid, "uid-a");
	snprintf(b->pod[0].pod, sizeof b->pod[0].pod, "ml/a");
	b->pod[0].expires_ms = 1700000000123;
	b->pod[0].nhold = 2;
	snprintf(b->pod[0].hold[0].uuid, sizeof b->pod[0].hold[0].uuid, "GPU-0");
	b->pod[0].hold[0].mem_bytes = 20 * GiB;
	b->pod[0].hold[0].compute = 25;
	b->pod[0].hold[0].tenants = 1;
	snprintf(b->pod[0].hold[1].uuid, sizeof b->pod[0].hold[1].uuid, "GPU-1");
	b->pod[0].hold[1].mem_bytes = 80 * GiB;
	b->pod[0].hold[1].compute = 100;
	b->pod[0].hold[1].tenants = 1;
	b->pod[0].hold[1].exclusive = true;
	snprintf(b->pod[1].uid, sizeof b->pod[1].uid, "uid-b");
	b->pod[1].expires_ms = 1700000001000;
	text = gp_annot_binding_format(b);
	assert_non_null(text);
	assert_int_equal(gp_annot_binding_parse(text, back, why, sizeof why), 0);
	assert_int_equal(back->n, 2);
	assert_memory_equal(&back->pod[0], &b->pod[0], sizeof b->pod[0]);
	assert_string_equal(back->pod[1].uid, "uid-b");
	assert_int_equal(back->pod[1].nhold, 0);
	assert_true(back->pod[1].expires_ms == 1700000001000);
	free(text);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		why[0] = '\0';
		assert_int_equal(gp_annot_binding_parse(bad[i], back, why, sizeof why), -EINVAL);
		assert_true(strstr(why, "gpupool.io/binding") != NULL);
	}
	assert_int_equal(gp_annot_binding_parse("{\"version\":2,\"pods\":[]}", back, why,
						sizeof why),
			 -EPROTONOSUPPORT);
	free(b);
	free(back);
}

static void test_times(void **state)
{
	static const struct {
		const char *s;
		int64_t ms;
	} good[] = {
		{"1970-01-01T00:00:00Z", 0},
		{"2024-11-21T01:02:03Z", 1732150923000LL},
		{"2024-11-21T01:02:03.5Z", 1732150923500LL},
		{"2024-11-21T01:02:03.123456789Z", 1732150923123LL},
		{"2024-11-21T03:02:03+02:00", 1732150923000LL},
		{"2024-11-20T23:02:03-02:00", 1732150923000LL},
	};
	static const char *const bad[] = {"2024-11-21", "2024-11-21T01:02:03", "2024-11-21T01:02:03.Z",
					  "2024-11-21T01:02:03Zjunk", "soon", ""};
	char buf[40];
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		assert_int_equal(gp_annot_time_parse(good[i].s, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (gp_annot_time_parse(bad[i], &ms) == 0)
			fail_msg("accepted time '%s'", bad[i]);
	gp_time_format(1732150923045LL, buf, sizeof buf);
	assert_string_equal(buf, "2024-11-21T01:02:03.045Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_state),
		cmocka_unit_test(test_node_state_refusals),
		cmocka_unit_test(test_node_state_caps),
		cmocka_unit_test(test_hami_register_legacy),
		cmocka_unit_test(test_hami_register_json_and_scores),
		cmocka_unit_test(test_node_read_precedence),
		cmocka_unit_test(test_allocation_round_trip),
		cmocka_unit_test(test_allocation_refusals),
		cmocka_unit_test(test_hami_allocation),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_binding),
		cmocka_unit_test(test_times),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
