/* test_config.c - the hook's configuration: our variables, HAMi's
 * fallbacks, and refusal of anything that does not parse. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hook/config.h"

#define GiB (1ULL << 30)
#define MiB (1ULL << 20)

static struct gp__config c;
static char err[512];

static int parse(char *const *envp)
{
	return gp__config_parse(&c, envp, err, sizeof err);
}

static void test_defaults(void **state)
{
	char *env[] = {"PATH=/bin", NULL};

	(void)state;
	assert_int_equal(parse(env), 0);
	for (unsigned i = 0; i < GP_CONFIG_MAX_DEVS; i++) {
		assert_false(gp__config_has_mem(&c, i));
		assert_int_equal(c.core[i], 0);
	}
	assert_int_equal(c.policy, GP_CORE_ELASTIC); /* DESIGN.md: the default */
	assert_int_equal(c.priority, GP_PRIO_NORMAL);
	assert_int_equal(c.floor, 0);
	assert_int_equal(c.holdoff_ns, GP_HOLDOFF_DEFAULT_NS);
	assert_null(c.node);
	assert_int_equal(c.log_level, GP_LOG_WARN);
	assert_null(c.region);
	assert_int_equal(c.context_size, 0);
}

static void test_ours(void **state)
{
	char *env[] = {"GPUPOOL_MEMORY_LIMIT=2GiB", "GPUPOOL_MEMORY_LIMIT_1=50%",
		       "GPUPOOL_CORE_LIMIT=30", "GPUPOOL_CORE_LIMIT_2=70",
		       "GPUPOOL_CORE_POLICY=elastic", "GPUPOOL_PRIORITY=low",
		       "GPUPOOL_REGION=/tmp/r", "GPUPOOL_LOG=debug",
		       "GPUPOOL_CONTEXT_SIZE=300MiB", "GPUPOOL_NODE=/run/n",
		       "GPUPOOL_PRIORITY_FLOOR=10", "GPUPOOL_PRIORITY_HOLDOFF=1.5s", NULL};

	(void)state;
	assert_int_equal(parse(env), 0);
	assert_string_equal(c.node, "/run/n");
	assert_int_equal(c.floor, 10);
	assert_int_equal(c.holdoff_ns, 1500000000ULL);
	assert_int_equal(c.mem[0].bytes, 2 * GiB);
	assert_int_equal(c.mem[1].ppm, 500000);
	assert_int_equal(c.mem[2].bytes, 2 * GiB); /* the global one */
	assert_int_equal(c.core[0], 30);
	assert_int_equal(c.core[2], 70);
	assert_int_equal(c.policy, GP_CORE_ELASTIC);
	assert_int_equal(c.priority, GP_PRIO_LOW);
	assert_string_equal(c.region, "/tmp/r");
	assert_int_equal(c.log_level, GP_LOG_DEBUG);
	assert_int_equal(c.context_size, 300 * MiB);
}

static void test_hami_fallbacks(void **state)
{
	char *env[] = {"CUDA_DEVICE_MEMORY_LIMIT=4000m", "CUDA_DEVICE_MEMORY_LIMIT_1=0",
		       "CUDA_DEVICE_SM_LIMIT=0", "CUDA_DEVICE_SM_LIMIT_3=25",
		       "GPU_CORE_UTILIZATION_POLICY=force", "CUDA_TASK_PRIORITY=0",
		       "CUDA_DEVICE_MEMORY_SHARED_CACHE=/tmp/hami.cache", NULL};

	(void)state;
	assert_int_equal(parse(env), 0);
	assert_int_equal(c.mem[0].bytes, 4000 * MiB);
	/* HAMi's 0 = "none here": unset, so the global limit stays in force
	 * (a device never ends up unlimited by accident). */
	assert_int_equal(c.mem[1].bytes, 4000 * MiB);
	assert_int_equal(c.core[0], 0);
	assert_int_equal(c.core[3], 25);
	assert_int_equal(c.policy, GP_CORE_HARD);
	assert_int_equal(c.priority, GP_PRIO_HIGH);
	assert_string_equal(c.region, "/tmp/hami.cache");
}

static void test_ours_win(void **state)
{
	char *env[] = {"CUDA_DEVICE_MEMORY_LIMIT=1G", "GPUPOOL_MEMORY_LIMIT=3G",
		       "CUDA_DEVICE_MEMORY_LIMIT_0=5G", "GPUPOOL_REGION=/a",
		       "CUDA_DEVICE_MEMORY_SHARED_CACHE=/b", "GPUPOOL_PRIORITY=high",
		       "CUDA_TASK_PRIORITY=1", NULL};

	(void)state;
	assert_int_equal(parse(env), 0);
	/* Per-device beats global; a per-device HAMi value still fills a
	 * device ours leaves unset. */
	assert_int_equal(c.mem[0].bytes, 5 * GiB);
	assert_int_equal(c.mem[1].bytes, 3 * GiB);
	assert_string_equal(c.region, "/a");
	assert_int_equal(c.priority, GP_PRIO_HIGH);
}

/* Every malformed value is refused with a message naming it. */
static void test_refusals(void **state)
{
	static const char *const bad[] = {
		"GPUPOOL_MEMORY_LIMIT=lots",    "GPUPOOL_MEMORY_LIMIT=0",
		"GPUPOOL_MEMORY_LIMIT=",        "GPUPOOL_MEMORY_LIMIT=150%",
		"GPUPOOL_MEMORY_LIMIT_3=-1G",   "GPUPOOL_CORE_LIMIT=0",
		"GPUPOOL_CORE_LIMIT=101",       "GPUPOOL_CORE_LIMIT_0=half",
		"GPUPOOL_CORE_POLICY=soft",     "GPUPOOL_PRIORITY=urgent",
		"GPUPOOL_LOG=loud",             "GPUPOOL_REGION=",
		"GPUPOOL_CONTEXT_SIZE=big",     "CUDA_DEVICE_MEMORY_LIMIT=1x",
		"CUDA_DEVICE_SM_LIMIT=200",     "GPU_CORE_UTILIZATION_POLICY=sometimes",
		"CUDA_TASK_PRIORITY=2",         "GPUPOOL_NODE=",
		"GPUPOOL_PRIORITY_FLOOR=101",   "GPUPOOL_PRIORITY_FLOOR=some",
		"GPUPOOL_PRIORITY_HOLDOFF=2m",  "GPUPOOL_PRIORITY_HOLDOFF=-1s",
		"GPUPOOL_PRIORITY_HOLDOFF=61s", "GPUPOOL_PRIORITY_HOLDOFF=",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *env[] = {(char *)bad[i], NULL};
		char name[64];
		size_t n = strcspn(bad[i], "=");

		if (parse(env) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
		memcpy(name, bad[i], n);
		name[n] = '\0';
		if (!strstr(err, name))
			fail_msg("message for %s does not name it: %s", bad[i], err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),       cmocka_unit_test(test_ours),
		cmocka_unit_test(test_hami_fallbacks), cmocka_unit_test(test_ours_win),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
