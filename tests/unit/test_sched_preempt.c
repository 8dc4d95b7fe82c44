/* test_sched_preempt.c - choosing preemption victims on a node
 * (src/sched/preempt.c): one cmocka test per case file in
 * tests/fixtures/sched/preempt/ (its README.md gives the format), plus the
 * label-selector and PodDisruptionBudget matching kube-scheduler's
 * preemption uses, as a table. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sched/pod.h"
#include "sched/preempt.h"

#define CASES "tests/fixtures/sched/preempt/"
#define GiB ((uint64_t)1 << 30)
#define MAX_CASES 64

static int64_t num(json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static const char *str(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : dflt;
}

/* The node's GPUs from the case's "gpus". */
static void read_gpus(json_t *gpus, struct gp_annot_node *st)
{
	json_t *g;
	size_t i;

	memset(st, 0, sizeof *st);
	st->source = GP_SRC_GPUPOOL;
	json_array_foreach(gpus, i, g) {
		struct gp_annot_gpu *a = &st->gpu[st->ngpu++];
		snprintf(a->uuid, sizeof a->uuid, "%s", str(g, "uuid", "GPU-x"));
		snprintf(a->model, sizeof a->model, "%s",
			 str(g, "model", "NVIDIA A100-SXM4-80GB"));
		a->mem_bytes = (uint64_t)num(g, "gib", 80) * GiB;
		a->compute = (unsigned)num(g, "compute", 100);
		a->slices = (unsigned)num(g, "slices", 10);
		a->numa = (int)num(g, "numa", 0);
		a->healthy = !json_is_false(json_object_get(g, "healthy"));
	}
}

/* A Pod object for PDB matching: name, namespace, labels. */
static json_t *pod_object(json_t *p)
{
	json_t *labels = json_object_get(p, "labels");

	return json_pack("{s:{s:s,s:s,s:o}}", "metadata", "name", str(p, "name", "?"), "namespace",
			 str(p, "namespace", "default"), "labels",
			 labels ? json_incref(labels) : json_object());
}

static void run_case(void **state)
{
	const char *file = *state;
	char path[512], why[GP_REASON_MAX * 2];
	json_error_t je;
	json_t *c, *pods, *pdbs, *expect, *p;
	struct gp_annot_node st;
	struct gp_preempt_pod pp[64];
	struct gp_annot_hold holds[64][GP_MAX_GPUS];
	uint32_t pdbix[64][16];
	int32_t allowed[16];
	struct gp_preempt_result *res = malloc(sizeof *res);
	struct gp_pod_req req;
	size_t i, npods, npdb;
	int rc;

	snprintf(path, sizeof path, CASES "%s", file);
	c = json_load_file(path, 0, &je);
	if (!c)
		fail_msg("%s: %s (line %d)", path, je.text, je.line);
	read_gpus(json_object_get(c, "gpus"), &st);
	pods = json_object_get(c, "pods");
	pdbs = json_object_get(c, "pdbs");
	expect = json_object_get(c, "expect");
	npods = json_array_size(pods);
	npdb = json_array_size(pdbs);
	assert_true(npods <= 64 && npdb <= 16);
	memset(pp, 0, sizeof pp);
	for (size_t d = 0; d < npdb; d++)
		allowed[d] = (int32_t)num(json_object_get(json_array_get(pdbs, d), "status"),
					  "disruptionsAllowed", 0);
	json_array_foreach(pods, i, p) {
		json_t *fp = json_object_get(p, "footprint"), *h, *obj = pod_object(p);
		size_t k;

		pp[i].priority = (int32_t)num(p, "priority", 0);
		pp[i].proposed = json_is_true(json_object_get(p, "proposed"));
		pp[i].hold = holds[i];
		json_array_foreach(fp, k, h) {
			struct gp_annot_hold *x = &holds[i][pp[i].nhold++];
			memset(x, 0, sizeof *x);
			snprintf(x->uuid, sizeof x->uuid, "%s", str(h, "uuid", "?"));
			x->mem_bytes = (uint64_t)num(h, "gib", 0) * GiB;
			x->compute = (unsigned)num(h, "compute", 0);
			x->tenants = (unsigned)num(h, "tenants", 1);
			x->exclusive = json_is_true(json_object_get(h, "exclusive"));
		}
		pp[i].pdb = pdbix[i];
		for (size_t d = 0; d < npdb; d++)
			if (gp_preempt_pdb_covers(json_array_get(pdbs, d), obj))
				pdbix[i][pp[i].npdb++] = (uint32_t)d;
		json_decref(obj);
	}
	assert_int_equal(gp_req_init(&req), 0);
	p = json_object_get(c, "preemptor");
	if (gp_req_from_pod(&req, p, why, sizeof why))
		fail_msg("%s: preemptor: %s", file, why);
	{
		struct gp_preempt_node in = {
			.name = "node-1",
			.st = &st,
			.pods = pp,
			.npods = npods,
			.pdb_allowed = allowed,
			.npdb = npdb,
			.budget = (unsigned)num(c, "budget", 0),
		};
		why[0] = '\0';
		rc = gp_preempt_select(&in, req.req, (int32_t)num(json_object_get(p, "spec"),
								   "priority", 0),
				       res, why, sizeof why);
	}
	if (json_object_get(expect, "error")) {
		if (rc != -ENOSPC || !strstr(why, str(expect, "why", "")))
			fail_msg("%s: rc %d '%s', want ENOSPC '%s'", file, rc, why,
				 str(expect, "why", ""));
	} else {
		json_t *want = json_object_get(expect, "victims");
		char got[512] = "", exp[512] = "";
		json_t *v;

		if (rc)
			fail_msg("%s: rc %d: %s", file, rc, why);
		for (size_t k = 0; k < res->nvictims; k++) {
			const char *nm = str(json_array_get(pods, res->victim[k]), "name", "?");
			snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", k ? "," : "",
				 nm);
		}
		json_array_foreach(want, i, v)
			snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%s", i ? "," : "",
				 json_string_value(v));
		if (strcmp(got, exp) != 0)
			fail_msg("%s: victims [%s], want [%s] (%u checks)", file, got, exp,
				 res->checks);
		assert_int_equal(res->pdb_violations, num(expect, "pdbViolations", 0));
		if (json_is_boolean(json_object_get(expect, "exact")) &&
		    res->exact != json_is_true(json_object_get(expect, "exact")))
			fail_msg("%s: exact %d, want %d", file, res->exact, !res->exact);
	}
	gp_req_fini(&req);
	json_decref(c);
	free(res);
}

/* Selectors and PDB coverage, as kube-scheduler's preemption reads them. */
static void test_selectors(void **state)
{
	static const struct {
		const char *selector, *labels;
		bool match;
	} cases[] = {
		{"{\"matchLabels\":{\"app\":\"a\"}}", "{\"app\":\"a\",\"x\":\"y\"}", true},
		{"{\"matchLabels\":{\"app\":\"a\"}}", "{\"app\":\"b\"}", false},
		{"{\"matchLabels\":{\"app\":\"a\"}}", "{}", false},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"In\",\"values\":[\"x\",\"y\"]}]}",
		 "{\"t\":\"y\"}", true},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"In\",\"values\":[\"x\"]}]}",
		 "{\"u\":\"x\"}", false},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"NotIn\",\"values\":[\"x\"]}]}",
		 "{\"u\":\"x\"}", true},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"NotIn\",\"values\":[\"x\"]}]}",
		 "{\"t\":\"x\"}", false},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"Exists\"}]}", "{\"t\":\"\"}", true},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"Exists\"}]}", "{\"u\":\"\"}", false},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"DoesNotExist\"}]}", "{\"u\":\"1\"}",
		 true},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"DoesNotExist\"}]}", "{\"t\":\"1\"}",
		 false},
		/* Both parts must hold. */
		{"{\"matchLabels\":{\"a\":\"1\"},\"matchExpressions\":[{\"key\":\"b\",\"operator\":\"Exists\"}]}",
		 "{\"a\":\"1\"}", false},
		/* Empty or null selectors match nothing (kube-scheduler's rule for
		 * preemption); malformed ones too. */
		{"{}", "{\"a\":\"1\"}", false},
		{"{\"matchLabels\":{},\"matchExpressions\":[]}", "{\"a\":\"1\"}", false},
		{"null", "{\"a\":\"1\"}", false},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}",
		 "{\"t\":\"2\"}", false},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"In\",\"values\":[]}]}",
		 "{\"t\":\"2\"}", false},
		{"{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"Exists\",\"values\":[\"x\"]}]}",
		 "{\"t\":\"x\"}", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		json_t *s = json_loads(cases[i].selector, JSON_DECODE_ANY, NULL);
		json_t *l = json_loads(cases[i].labels, 0, NULL);
		if (gp_preempt_selector_match(s, l) != cases[i].match)
			fail_msg("case %zu: %s on %s should be %s", i, cases[i].selector,
				 cases[i].labels, cases[i].match ? "a match" : "no match");
		json_decref(s);
		json_decref(l);
	}
}

static void test_pdb_covers(void **state)
{
	json_t *pdb = json_loads(
		"{\"metadata\":{\"name\":\"d\",\"namespace\":\"ml\"},\"spec\":{\"selector\":"
		"{\"matchLabels\":{\"app\":\"a\"}}},\"status\":{\"disruptionsAllowed\":1,"
		"\"disruptedPods\":{\"going\":\"2024-11-21T01:00:00Z\"}}}",
		0, NULL);
	json_t *here = json_loads(
		"{\"metadata\":{\"name\":\"p\",\"namespace\":\"ml\",\"labels\":{\"app\":\"a\"}}}", 0,
		NULL);
	json_t *elsewhere = json_loads(
		"{\"metadata\":{\"name\":\"p\",\"namespace\":\"web\",\"labels\":{\"app\":\"a\"}}}", 0,
		NULL);
	json_t *going = json_loads(
		"{\"metadata\":{\"name\":\"going\",\"namespace\":\"ml\",\"labels\":{\"app\":\"a\"}}}",
		0, NULL);
	json_t *bare = json_loads("{\"metadata\":{\"name\":\"q\",\"namespace\":\"ml\"}}", 0, NULL);

	(void)state;
	assert_true(gp_preempt_pdb_covers(pdb, here));
	assert_false(gp_preempt_pdb_covers(pdb, elsewhere)); /* another namespace */
	assert_false(gp_preempt_pdb_covers(pdb, going));     /* being evicted already */
	assert_false(gp_preempt_pdb_covers(pdb, bare));      /* no labels */
	json_decref(pdb);
	json_decref(here);
	json_decref(elsewhere);
	json_decref(going);
	json_decref(bare);
}

/* A node whose pods hold more than it has (it shrank) reads as full, and
 * too many pods are refused, not searched. */
static void test_overcommitted_and_caps(void **state)
{
	struct gp_annot_node st;
	struct gp_annot_hold h = {.uuid = "GPU-0", .mem_bytes = 100 * GiB, .tenants = 1};
	struct gp_preempt_pod pods[2] = {{.priority = 0, .nhold = 1, .hold = &h},
					 {.priority = 0, .nhold = 1, .hold = &h}};
	struct gp_preempt_result *res = malloc(sizeof *res);
	struct gp_pod_req req;
	json_t *gpus = json_loads("[{\"uuid\":\"GPU-0\"}]", 0, NULL);
	json_t *pod = json_loads(
		"{\"metadata\":{\"name\":\"p\",\"namespace\":\"d\"},\"spec\":{\"containers\":"
		"[{\"name\":\"m\",\"resources\":{\"limits\":{\"gpupool.io/vgpu-memory\":\"1024\"}}}]}}",
		0, NULL);
	struct gp_preempt_node in = {.name = "n", .pods = pods, .npods = 2};
	char why[GP_REASON_MAX];

	(void)state;
	read_gpus(gpus, &st);
	in.st = &st;
	assert_int_equal(gp_req_init(&req), 0);
	assert_int_equal(gp_req_from_pod(&req, pod, why, sizeof why), 0);
	/* Two pods each "holding" 100 GiB of an 80 GiB card: both must go. */
	assert_int_equal(gp_preempt_select(&in, req.req, 1, res, why, sizeof why), 0);
	assert_int_equal(res->nvictims, 2);
	in.npods = GP_PREEMPT_MAX_PODS + 1;
	assert_int_equal(gp_preempt_select(&in, req.req, 1, res, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "more than"));
	gp_req_fini(&req);
	json_decref(gpus);
	json_decref(pod);
	free(res);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	static struct CMUnitTest tests[MAX_CASES + 3];
	static char *names[MAX_CASES];
	size_t n = 0, t = 0;
	DIR *d = opendir(CASES);
	struct dirent *e;
	int rc;

	if (!d) {
		fprintf(stderr, "cannot open %s (run from the repository root)\n", CASES);
		return 1;
	}
	while ((e = readdir(d)) && n < MAX_CASES) {
		size_t len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, by_name);
	for (size_t i = 0; i < n; i++) {
		struct CMUnitTest c = {names[i], run_case, NULL, NULL, names[i]};
		tests[t++] = c;
	}
	tests[t++] = (struct CMUnitTest)cmocka_unit_test(test_selectors);
	tests[t++] = (struct CMUnitTest)cmocka_unit_test(test_pdb_covers);
	tests[t++] = (struct CMUnitTest)cmocka_unit_test(test_overcommitted_and_caps);
	rc = _cmocka_run_group_tests("test_sched_preempt", tests, t, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	return rc;
}
