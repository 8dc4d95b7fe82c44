/* test_top_draw.c - `gpupool top`'s drawing (src/cli/top_draw.c): the
 * agent's documents as lines that fit any window, in the order asked for,
 * whatever odd JSON comes in.
 *
 * The drawing belongs to the command, which is no library archive, so its
 * source is compiled in here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cli/top_draw.c"

#define FIXTURES "tests/fixtures/top/"

static json_t *gpus_doc, *tenants_doc;

static int setup(void **state)
{
	json_error_t je;

	(void)state;
	gpus_doc = json_load_file(FIXTURES "gpus.json", 0, &je);
	tenants_doc = json_load_file(FIXTURES "tenants.json", 0, &je);
	return gpus_doc && tenants_doc ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	json_decref(gpus_doc);
	json_decref(tenants_doc);
	return 0;
}

/* Every line printable ASCII and at most width wide; at most height lines. */
static void check_fits(const struct gp_top_frame *f, unsigned width, unsigned height)
{
	if (height)
		assert_true(f->n <= height);
	for (size_t i = 0; i < f->n; i++) {
		const char *t = f->line[i].text;

		assert_true(strlen(t) <= (width ? width : 80));
		for (; *t; t++)
			assert_true(*t >= 0x20 && *t < 0x7f);
	}
}

/* The line holding s, from line `from` on; -1 if none. */
static long find(const struct gp_top_frame *f, size_t from, const char *s)
{
	for (size_t i = from; i < f->n; i++)
		if (strstr(f->line[i].text, s))
			return (long)i;
	return -1;
}

static void draw(const json_t *g, const json_t *t, enum gp_top_sort sort, unsigned w, unsigned h,
		 struct gp_top_frame *f)
{
	struct gp_top_view v = {.gpus = g, .tenants = t, .source = "test", .sort = sort,
				.width = w, .height = h, .help = 1};

	assert_int_equal(gp__top_draw(&v, f), 0);
	check_fits(f, w, h);
}

static void test_canned(void **state)
{
	struct gp_top_frame f = {0};
	long g0, g1;

	(void)state;
	draw(gpus_doc, tenants_doc, GP_TOP_SORT_MEM, 160, 0, &f);
	g0 = find(&f, 0, "GPU 0  NVIDIA H100 80GB HBM3  ok");
	g1 = find(&f, 0, "GPU 1  NVIDIA A100-SXM4-40GB  UNHEALTHY");
	assert_true(g0 > 0 && g1 > g0);
	assert_true(find(&f, 0, "20.0 GiB / 80.0 GiB  util 45%") == g0);
	assert_true(find(&f, 0, "unhealthy: XID 79: GPU has fallen off the bus") == g1 + 1);
	/* Memory order under card 0; the trainer shows again under card 1. */
	assert_int_equal(find(&f, (size_t)g0, "ml/zeta-train/main"), g0 + 1);
	assert_int_equal(find(&f, (size_t)g0, "ml/beta-infer/server"), g0 + 2);
	assert_int_equal(find(&f, (size_t)g0, "8d1c2e3f-0000-4000-8000-00000000abcd/worker"),
			 g0 + 3);
	assert_int_equal(find(&f, (size_t)g1, "ml/zeta-train/main"), g1 + 2);
	assert_true(find(&f, 0, "12.0 GiB   16.0 GiB   15.0 GiB       0     2   38%     -     -"
				"            - norm      0s") == g0 + 1);
	assert_true(find(&f, (size_t)g0, "no budget") == g0 + 3);
	assert_true(find(&f, (size_t)g0, "2h00m") == g0 + 3);
	assert_true(find(&f, 0, "[|||||     ]  50%    2.0 GiB") == g0 + 2);
	/* Compute: used and held back over the agent's last interval, the
	 * limit with its policy, the priority; "-" where it is not metered. */
	assert_true(find(&f, 0, "UTIL  COMP   THR        SHARE PRIO    IDLE") > 0);
	assert_true(find(&f, 0, "5%   28%   12%  30% elastic high     12s") == g0 + 2);
	assert_true(find(&f, 0, "0%    0%    0%            -  low   2h00m") == g0 + 3);
	assert_true(find(&f, (size_t)g1, "-     -     -            - norm      3s") == g1 + 2);
	gp__top_frame_free(&f);
}

/* The share and priority columns give way to names before anything else
 * does; the compute figures stay. */
static void test_compute_columns_make_room(void **state)
{
	struct gp_top_frame f = {0};
	long heads;

	(void)state;
	draw(gpus_doc, tenants_doc, GP_TOP_SORT_MEM, 120, 0, &f);
	heads = find(&f, 0, "TENANT");
	assert_true(heads > 0);
	assert_non_null(strstr(f.line[heads].text, "BUDGET"));
	assert_non_null(strstr(f.line[heads].text, "UTIL  COMP   THR    IDLE"));
	assert_null(strstr(f.line[heads].text, "SHARE"));
	assert_null(strstr(f.line[heads].text, "PRIO"));
	assert_true(find(&f, 0, "ml/beta-infer/server ") > heads);  /* whole */
	assert_true(find(&f, 0, "   5%   28%   12%     12s") > heads);
	/* Wide enough for every name up to NAME_WANT_W: priority first. */
	draw(gpus_doc, tenants_doc, GP_TOP_SORT_MEM, 132, 0, &f);
	heads = find(&f, 0, "TENANT");
	assert_non_null(strstr(f.line[heads].text, "THR PRIO    IDLE"));
	assert_null(strstr(f.line[heads].text, "SHARE"));
	/* Older agents send no compute fields: "-" and "?", never a crash. */
	{
		json_t *t = json_loads("{\"tenants\": [{\"pod\": \"p\", \"namespace\": \"n\", "
				       "\"container\": \"c\", \"gpus\": [{\"uuid\": \"GPU-b\", "
				       "\"coreLimit\": 40, \"usedBytes\": 1}]}]}", 0, NULL);

		assert_non_null(t);
		draw(NULL, t, GP_TOP_SORT_MEM, 200, 0, &f);
		assert_true(find(&f, 0, "     -     -        40% ?    ?") > 0);
		json_decref(t);
	}
	gp__top_frame_free(&f);
}

/* Each order puts a different tenant first under card 0. */
static void test_sorts(void **state)
{
	static const struct {
		enum gp_top_sort sort;
		const char *first;
	} cases[] = {
		{GP_TOP_SORT_MEM, "ml/zeta-train"},   {GP_TOP_SORT_PEAK, "ml/zeta-train"},
		{GP_TOP_SORT_REFUSED, "ml/beta-infer"}, {GP_TOP_SORT_IDLE, "8d1c2e3f"},
		{GP_TOP_SORT_NAME, "8d1c2e3f"},
	};
	struct gp_top_frame f = {0};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		long g0;

		draw(gpus_doc, tenants_doc, cases[i].sort, 120, 0, &f);
		g0 = find(&f, 0, "GPU 0");
		assert_true(g0 > 0);
		assert_non_null(strstr(f.line[g0 + 1].text, cases[i].first));
		assert_non_null(strstr(f.line[0].text, gp__top_sort_name(cases[i].sort)));
	}
	gp__top_frame_free(&f);
	assert_int_equal(gp__top_sort_key('r'), GP_TOP_SORT_REFUSED);
	assert_int_equal(gp__top_sort_key('n'), GP_TOP_SORT_NAME);
	assert_int_equal(gp__top_sort_key('x'), -1);
	assert_int_equal(gp__top_sort_parse("idle"), GP_TOP_SORT_IDLE);
	assert_int_equal(gp__top_sort_parse("size"), -1);
}

/* Any window, down to one cell: every line fits; a cut frame says so. */
static void test_small_windows(void **state)
{
	struct gp_top_frame f = {0};

	(void)state;
	for (unsigned w = 1; w <= 130; w += 3)
		for (unsigned h = 0; h <= 30; h += 5)
			draw(gpus_doc, tenants_doc, GP_TOP_SORT_NAME, w, h, &f);
	draw(gpus_doc, tenants_doc, GP_TOP_SORT_MEM, 60, 8, &f);
	assert_int_equal(f.n, 8);
	assert_non_null(strstr(f.line[7].text, "more line(s)"));
	/* Narrow: columns go, USED and the health marker stay. */
	draw(gpus_doc, tenants_doc, GP_TOP_SORT_MEM, 40, 0, &f);
	assert_true(find(&f, 0, "UNHEALTHY") > 0);
	assert_true(find(&f, 0, "USED") > 0);
	assert_true(find(&f, 0, "PEAK") < 0);
	draw(gpus_doc, tenants_doc, GP_TOP_SORT_MEM, 1000, 0, &f); /* capped */
	check_fits(&f, GP_TOP_MAX_WIDTH, 0);
	gp__top_frame_free(&f);
}

/* Documents of any shape: no crash, "?" for what is missing, no byte of
 * the data on screen that is not printable. */
static void test_garbage(void **state)
{
	static const char *const docs[][2] = {
		{"{}", "{}"},
		{"{\"gpus\": 7}", "{\"tenants\": \"x\"}"},
		{"{\"gpus\": [1, null, \"x\", [], {}]}", "{\"tenants\": [1, null, {}, {\"gpus\": 3}]}"},
		{"{\"node\": 5, \"nvml\": [1], \"gpus\": [{\"index\": -3, \"model\": 7, "
		 "\"healthy\": \"yes\", \"memoryUsedBytes\": \"lots\", \"memoryTotalBytes\": -1, "
		 "\"utilizationPercent\": 1e300, \"xidErrors\": 1e300, \"lastXid\": \"x\"}]}",
		 "{\"skipped\": 3, \"capped\": -1, \"tenants\": [{\"podUID\": 1, \"pod\": \"\\u001b[2J"
		 "\\u0007evil\\ud83d\\ude00\", \"namespace\": null, \"container\": [], \"processes\": "
		 "\"two\", \"gpus\": [{\"uuid\": 42, \"index\": 0, \"limitBytes\": 1e30, \"usedBytes\": "
		 "2e30, \"peakBytes\": -5, \"refused\": 1e40, \"idleSeconds\": 1e300, "
		 "\"utilizationPercent\": -1}, {\"uuid\": \"GPU-nowhere\", \"limitBytes\": 0}, {}]}]}"},
		{"{\"gpus\": [{\"uuid\": \"GPU-a\", \"healthy\": false}]}",
		 "{\"tenants\": [{\"pod\": \"p\", \"container\": \"c\", \"gpus\": [{\"uuid\": "
		 "\"GPU-b\", \"limitBytes\": 10, \"usedBytes\": 20}]}]}"},
	};
	struct gp_top_frame f = {0};

	(void)state;
	for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
		json_t *g = json_loads(docs[i][0], 0, NULL), *t = json_loads(docs[i][1], 0, NULL);

		assert_non_null(g);
		assert_non_null(t);
		for (unsigned w = 5; w <= 200; w += 65) {
			draw(g, t, GP_TOP_SORT_IDLE, w, 0, &f);
			draw(g, NULL, GP_TOP_SORT_MEM, w, 0, &f);
			draw(NULL, t, GP_TOP_SORT_REFUSED, w, 0, &f);
		}
		json_decref(g);
		json_decref(t);
	}
	/* A tenant on a card the node does not list gets a card of its own. */
	{
		json_t *g = json_loads(docs[4][0], 0, NULL), *t = json_loads(docs[4][1], 0, NULL);

		draw(g, t, GP_TOP_SORT_MEM, 120, 0, &f);
		assert_true(find(&f, 0, "GPU ?  GPU-b  (not among this node's cards)") > 0);
		assert_true(find(&f, 0, "GPU ?  ?  UNHEALTHY") > 0);
		draw(NULL, t, GP_TOP_SORT_MEM, 120, 0, &f);
		assert_true(find(&f, 0, "card list unavailable") > 0);
		json_decref(g);
		json_decref(t);
	}
	draw(NULL, NULL, GP_TOP_SORT_MEM, 80, 0, &f); /* nothing yet: title and help */
	assert_true(find(&f, 0, "TENANT") < 0);
	assert_true(find(&f, 0, "keys:") == 1);
	gp__top_frame_free(&f);
}

/* The fetch error shows under the title. */
static void test_error(void **state)
{
	struct gp_top_frame f = {0};
	struct gp_top_view v = {.source = "http://x", .error = "cannot reach the agent at x",
				.width = 80, .interactive = 1};

	(void)state;
	assert_int_equal(gp__top_draw(&v, &f), 0);
	assert_int_equal(f.n, 2);
	assert_non_null(strstr(f.line[0].text, "q quit"));
	assert_string_equal(f.line[1].text, "cannot reach the agent at x");
	assert_int_equal(f.line[1].style, GP_TOP_BAD);
	/* A long one wraps at blanks, over at most four lines. */
	v.error = "cannot reach the agent at http://127.0.0.1:9400: Couldn't connect to server; "
		  "retrying every 1s";
	v.width = 30;
	assert_int_equal(gp__top_draw(&v, &f), 0);
	check_fits(&f, 30, 0);
	assert_int_equal(f.n, 5);
	assert_string_equal(f.line[1].text, "cannot reach the agent at");
	assert_string_equal(f.line[2].text, "http://127.0.0.1:9400:");
	assert_string_equal(f.line[4].text, "retrying every 1s");
	gp__top_frame_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canned),        cmocka_unit_test(test_sorts),
		cmocka_unit_test(test_small_windows), cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_error),         cmocka_unit_test(test_compute_columns_make_room),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
