/* test_hook_config.c - the hook fails closed: a configuration it cannot
 * read, a region it cannot use, or a tenant whose processes disagree about
 * the budget stops CUDA from starting, with a message naming the cause.
 * And `gpupool run`, the way users start programs under the hook. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nvml.h"
#include "integration/libcu.h"

/* cuInit, then an allocation, then NVML: report what each said. */
static int child_start(int argc, char **argv)
{
	CUdeviceptr p;
	CUcontext c;

	(void)argc;
	(void)argv;
	out("init_rc", "%d", (int)cuInit(0));
	out("retain_rc", "%d", (int)cuDevicePrimaryCtxRetain(&c, 0));
	cuCtxSetCurrent(c);
	out("alloc_rc", "%d", (int)cuMemAlloc_v2(&p, MiB));
	out("nvml_rc", "%d", (int)nvmlInit_v2());
	return 0;
}

static int child_hold(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cu_setup(0);
	out("ready", "1");
	child_wait_go();
	return 0;
}

/* Under `gpupool run -m 2GiB`: the card is 2 GiB and 3 GiB do not fit. */
static int child_over(int argc, char **argv)
{
	CUdeviceptr p;
	size_t f, t;

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuMemGetInfo_v2(&f, &t), "info");
	out("total", "%zu", t);
	out("over_rc", "%d", (int)cuMemAlloc_v2(&p, 3 * GiB));
	return 0;
}

static const struct gpt_child children[] = {
	{"start", child_start},
	{"over", child_over},
	{"hold", child_hold},
	{NULL, NULL},
};

static void start(struct gpt_proc *p, const char *var, const char *region)
{
	const char *env[] = {gpt_env_state(), region ? region : gpt_env_region(), var, NULL};

	gpt_run_child(p, "start", NULL, env, GPT_HOOK | GPT_STDERR);
}

static void test_bad_values_refuse_cuda(void **state)
{
	static const char *const bad[] = {
		"GPUPOOL_MEMORY_LIMIT=2 gigabytes", "GPUPOOL_MEMORY_LIMIT=0",
		"GPUPOOL_MEMORY_LIMIT_0=120%",       "GPUPOOL_CORE_LIMIT=0",
		"GPUPOOL_PRIORITY=urgent",           "GPUPOOL_CORE_POLICY=maybe",
		"GPUPOOL_LOG=chatty",                "CUDA_DEVICE_MEMORY_LIMIT=lots",
	};
	struct gpt_proc p;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char name[64];
		size_t n = strcspn(bad[i], "=");

		start(&p, bad[i], NULL);
		memcpy(name, bad[i], n);
		name[n] = '\0';
		if (gpt_get_u64(&p, "init_rc") != CUDA_ERROR_NOT_INITIALIZED)
			fail_msg("%s: cuInit returned %s", bad[i], gpt_get(&p, "init_rc"));
		assert_int_not_equal(gpt_get_u64(&p, "retain_rc"), CUDA_SUCCESS);
		assert_int_not_equal(gpt_get_u64(&p, "alloc_rc"), CUDA_SUCCESS);
		assert_int_equal(gpt_get_u64(&p, "nvml_rc"), NVML_ERROR_UNKNOWN);
		if (!gpt_has(&p, name) || !gpt_has(&p, "refusing to initialise CUDA"))
			fail_msg("%s: message does not say why:\n%s", bad[i], p.out);
	}
}

static void test_good_values_start(void **state)
{
	struct gpt_proc p;

	(void)state;
	start(&p, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL);
	assert_int_equal(gpt_get_u64(&p, "init_rc"), CUDA_SUCCESS);
	assert_int_equal(gpt_get_u64(&p, "alloc_rc"), CUDA_SUCCESS);
	/* A misspelt variable is reported, and does not stop anything. */
	start(&p, "GPUPOOL_MEMORY_LIMT=2GiB", NULL);
	assert_int_equal(gpt_get_u64(&p, "init_rc"), CUDA_SUCCESS);
	assert_true(gpt_has(&p, "unknown variable GPUPOOL_MEMORY_LIMT"));
}

static void test_foreign_region_refused(void **state)
{
	struct gpt_proc p;
	char *path = gpt_tmp_path("not-a-region"), env[512];
	FILE *f = fopen(path, "w");

	(void)state;
	assert_non_null(f);
	fputs("some other program's file\n", f);
	fclose(f);
	snprintf(env, sizeof env, "GPUPOOL_REGION=%s", path);
	start(&p, "GPUPOOL_MEMORY_LIMIT=2GiB", env);
	assert_int_equal(gpt_get_u64(&p, "init_rc"), CUDA_ERROR_NOT_INITIALIZED);
	assert_true(gpt_has(&p, "not a gpupool region"));
	/* ... and the file is left as it was. */
	f = fopen(path, "r");
	char line[64] = "";
	assert_non_null(fgets(line, sizeof line, f));
	fclose(f);
	assert_string_equal(line, "some other program's file\n");
	free(path);
}

/* Two processes of one tenant with different budgets: the second one is
 * refused rather than either budget silently winning. */
static void test_disagreeing_budget_refused(void **state)
{
	struct gpt_proc first, second;
	char st[512], region[512];
	const char *env[] = {st, region, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL};

	(void)state;
	snprintf(st, sizeof st, "%s", gpt_env_state());
	snprintf(region, sizeof region, "%s", gpt_env_region());
	assert_int_equal(gpt_spawn_child(&first, "hold", NULL, env, GPT_HOOK), 0);
	if (gpt_wait_for(&first, "ready", 30000))
		fail_msg("%s", first.out);
	env[2] = "GPUPOOL_MEMORY_LIMIT=3GiB";
	gpt_run_child(&second, "start", NULL, env, GPT_HOOK | GPT_STDERR);
	assert_int_equal(gpt_get_u64(&second, "init_rc"), CUDA_ERROR_NOT_INITIALIZED);
	assert_true(gpt_has(&second, "different memory limit"));
	gpt_go(&first);
	assert_int_equal(gpt_wait(&first, 30000), 0);
}

/* --- gpupool run ----------------------------------------------------------- */

static char gpupool[PATH_MAX], self[PATH_MAX];

static int cli(struct gpt_proc *p, const char *const args[])
{
	const char *argv[32] = {gpupool};
	size_t n = 1;
	const char *env[] = {gpt_env_state(), "GPUPOOL_REGION=", "GPUPOOL_MEMORY_LIMIT=", NULL};

	while (args[n - 1] && n < 31) {
		argv[n] = args[n - 1];
		n++;
	}
	argv[n] = NULL;
	return gpt_run(p, argv, env, GPT_STDERR, 60000);
}

static void test_run_under_budget(void **state)
{
	struct gpt_proc p;
	const char *args[] = {"run", "--sim", "--memory", "2GiB", "--", self, "--child", "start",
			      NULL};

	const char *over[] = {"run", "--sim", "-m", "2GiB", "--", self, "--child", "over", NULL};

	(void)state;
	assert_int_equal(cli(&p, args), 0);
	assert_int_equal(gpt_get_u64(&p, "init_rc"), CUDA_SUCCESS);
	assert_int_equal(gpt_get_u64(&p, "alloc_rc"), CUDA_SUCCESS);
	assert_int_equal(cli(&p, over), 0);
	assert_int_equal(gpt_get_u64(&p, "total"), 2 * GiB);
	assert_int_equal(gpt_get_u64(&p, "over_rc"), CUDA_ERROR_OUT_OF_MEMORY);
}

static void test_run_exit_codes(void **state)
{
	struct gpt_proc p;
	const char *exit7[] = {"run", "--", "/bin/sh", "-c", "exit 7", NULL};
	const char *killed[] = {"run", "--", "/bin/sh", "-c", "kill -9 $$", NULL};
	const char *missing[] = {"run", "--", "/nonexistent/program", NULL};
	const char *region[] = {"run", "--", "/bin/sh", "-c", "echo region=$GPUPOOL_REGION", NULL};

	(void)state;
	assert_int_equal(cli(&p, exit7), 7);
	assert_int_equal(cli(&p, killed), 128 + 9);
	assert_int_equal(cli(&p, missing), 127);
	assert_true(gpt_has(&p, "/nonexistent/program"));
	assert_int_equal(cli(&p, region), 0);
	/* The region it made for the run is gone afterwards. */
	assert_int_equal(access(gpt_get(&p, "region"), F_OK), -1);
}

/* A signal sent to gpupool run (by a supervisor) reaches the program, once;
 * the exit status is the program's. */
static void test_run_forwards_signals(void **state)
{
	struct gpt_proc p;
	const char *argv[] = {gpupool, "run", "--", "/bin/sh", "-c",
			      "trap 'echo got=term; exit 3' TERM; echo ready=1; "
			      "while :; do sleep 0.05; done", NULL};
	const char *env[] = {"GPUPOOL_REGION=", "GPUPOOL_MEMORY_LIMIT=", NULL};

	(void)state;
	assert_int_equal(gpt_spawn(&p, argv, env, 0), 0);
	if (gpt_wait_for(&p, "ready", 30000))
		fail_msg("%s", p.out);
	kill(p.pid, SIGTERM);
	assert_int_equal(gpt_wait(&p, 30000), 3);
	assert_string_equal(gpt_get(&p, "got"), "term");
}

static void test_run_usage_errors(void **state)
{
	static const struct {
		const char *args[8];
		const char *says; /* the message names what was wrong */
	} cases[] = {
		{{"run", NULL}, "no COMMAND"},
		{{"run", "--memory", "lots", "--", "true", NULL}, "--memory lots"},
		{{"run", "--memory", "0", "--", "true", NULL}, "--memory 0"},
		{{"run", "--cores", "150", "--", "true", NULL}, "--cores 150"},
		{{"run", "--priority", "urgent", "--", "true", NULL}, "--priority urgent"},
		{{"run", "--bogus", "--", "true", NULL}, "bogus"},
		{{"frobnicate", NULL}, "unknown command 'frobnicate'"},
	};
	struct gpt_proc p;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int rc = cli(&p, cases[i].args);
		if (rc != 2 || !gpt_has(&p, cases[i].says))
			fail_msg("case %zu: exit %d, want 2 and \"%s\":\n%s", i, rc, cases[i].says,
				 p.out);
	}
	const char *help[] = {"run", "--help", NULL};
	assert_int_equal(cli(&p, help), 0);
	assert_true(gpt_has(&p, "usage: gpupool run"));
	/* Printed as is, not through printf: one percent sign. */
	assert_true(gpt_has(&p, "share of the card (50%)"));
	assert_false(gpt_has(&p, "%%"));
	const char *top[] = {"--help", NULL};
	assert_int_equal(cli(&p, top), 0);
	assert_true(gpt_has(&p, "run a program under a GPU memory budget"));
}

int main(int argc, char **argv)
{
	char *b;

	gpt_child_dispatch(argc, argv, children);
	b = gpt_build_path("gpupool");
	if (!realpath(b, gpupool) || !realpath("/proc/self/exe", self))
		return 1;
	free(b);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_values_refuse_cuda),
		cmocka_unit_test(test_good_values_start),
		cmocka_unit_test(test_foreign_region_refused),
		cmocka_unit_test(test_disagreeing_budget_refused),
		cmocka_unit_test(test_run_under_budget),
		cmocka_unit_test(test_run_exit_codes),
		cmocka_unit_test(test_run_forwards_signals),
		cmocka_unit_test(test_run_usage_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
