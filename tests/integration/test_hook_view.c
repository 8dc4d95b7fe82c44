/* test_hook_view.c - one consistent virtual card: cuMemGetInfo,
 * cuDeviceTotalMem and NVML (memory v1/v2, process lists) all show the
 * budget as the card and the tenant's usage as its usage, clamped to the
 * physical card; NVML-only tools (nvidia-smi) see the same; other tenants
 * stay invisible; without a budget the real figures pass through. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nvml.h"
#include "integration/libcu.h"

/* NVML as a tool sees device 0: memory (v1 as <prefix>_total/_used/_free,
 * v2 as <prefix>_v2_*) and the process lists. */
static void nvml_report(const char *prefix)
{
	nvmlDevice_t h;
	nvmlProcessInfo_v1_t p1[8];
	nvmlProcessInfo_t p3[8];
	unsigned n = 0;
	char k[64];

	snprintf(k, sizeof k, "%s_v2", prefix);
	h = out_nvml_memory(0, prefix, k);
#define OUT(key, v)                                                                \
	do {                                                                       \
		snprintf(k, sizeof k, "%s_%s", prefix, key);                       \
		out(k, "%llu", (unsigned long long)(v));                           \
	} while (0)
	/* The count query: 0 slots. */
	OUT("count_rc", nvmlDeviceGetComputeRunningProcesses_v3(h, &n, NULL));
	OUT("count", n);
	n = 8;
	OUT("v3_rc", nvmlDeviceGetComputeRunningProcesses_v3(h, &n, p3));
	OUT("v3_n", n);
	for (unsigned i = 0; i < n; i++) {
		snprintf(k, sizeof k, "%s_pid_%u", prefix, p3[i].pid);
		out(k, "%llu", p3[i].usedGpuMemory);
	}
	n = 8;
	OUT("v1_rc", nvmlDeviceGetComputeRunningProcesses(h, &n, p1));
	OUT("v1_n", n);
	OUT("v1_used", n ? p1[0].usedGpuMemory : 0);
	nvmlShutdown();
#undef OUT
}

/* A CUDA process holding 1 GiB looks at itself through every interface. */
static int child_self(int argc, char **argv)
{
	CUdeviceptr p;
	size_t total;

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuMemAlloc_v2(&p, GiB), "alloc");
	out_meminfo("cu");
	cu_ok(cuDeviceTotalMem_v2(&total, 0), "total");
	out("cu_devtotal", "%zu", total);
	out("pid", "%d", (int)getpid());
	nvml_report("nvml");
	out("ready", "1");
	child_wait_go();
	return 0;
}

/* An NVML-only process: what nvidia-smi in the tenant's container sees. */
static int child_smi(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	nvml_report("smi");
	return 0;
}

static const struct gpt_child children[] = {
	{"self", child_self},
	{"smi", child_smi},
	{NULL, NULL},
};

static void test_virtual_card(void **state)
{
	struct gpt_proc a, b, smi;
	const char *st = gpt_env_state();
	char sst[512], region_a[512], key[64];
	const char *env_a[] = {sst, region_a, "GPUPOOL_MEMORY_LIMIT=4GiB", NULL};
	const char *env_b[] = {sst, NULL, "GPUPOOL_MEMORY_LIMIT=6GiB", NULL};
	uint64_t used = SIM_CTX_H100 + GiB;

	(void)state;
	snprintf(sst, sizeof sst, "%s", st);
	snprintf(region_a, sizeof region_a, "%s", gpt_env_region());
	env_b[1] = gpt_env_region();
	assert_int_equal(gpt_spawn_child(&a, "self", NULL, env_a, GPT_HOOK), 0);
	if (gpt_wait_for(&a, "ready", 30000))
		fail_msg("tenant a:\n%s", a.out);
	assert_int_equal(gpt_get_u64(&a, "cu_total"), 4 * GiB);
	assert_int_equal(gpt_get_u64(&a, "cu_free"), 4 * GiB - used);
	assert_int_equal(gpt_get_u64(&a, "cu_devtotal"), 4 * GiB);
	/* NVML keeps the driver's reservation inside the budget's card, as a
	 * real card does: v2 reports it apart, v1 counts it as used. */
	assert_int_equal(gpt_get_u64(&a, "nvml_total"), 4 * GiB);
	assert_int_equal(gpt_get_u64(&a, "nvml_used"), used + SIM_RESERVED);
	assert_int_equal(gpt_get_u64(&a, "nvml_free"), 4 * GiB - SIM_RESERVED - used);
	assert_int_equal(gpt_get_u64(&a, "nvml_v2_total"), 4 * GiB);
	assert_int_equal(gpt_get_u64(&a, "nvml_v2_reserved"), SIM_RESERVED);
	assert_int_equal(gpt_get_u64(&a, "nvml_v2_used"), used);
	assert_int_equal(gpt_get_u64(&a, "nvml_v2_free"), gpt_get_u64(&a, "nvml_free"));
	assert_int_equal(gpt_get_u64(&a, "nvml_count_rc"), NVML_ERROR_INSUFFICIENT_SIZE);
	assert_int_equal(gpt_get_u64(&a, "nvml_count"), 1);
	assert_int_equal(gpt_get_u64(&a, "nvml_v3_rc"), NVML_SUCCESS);
	assert_int_equal(gpt_get_u64(&a, "nvml_v3_n"), 1);
	snprintf(key, sizeof key, "nvml_pid_%s", gpt_get(&a, "pid"));
	assert_int_equal(gpt_get_u64(&a, key), used);
	assert_int_equal(gpt_get_u64(&a, "nvml_v1_n"), 1);
	assert_int_equal(gpt_get_u64(&a, "nvml_v1_used"), used);

	/* Another tenant on the same GPU sees its own card and only itself. */
	assert_int_equal(gpt_spawn_child(&b, "self", NULL, env_b, GPT_HOOK), 0);
	if (gpt_wait_for(&b, "ready", 30000))
		fail_msg("tenant b:\n%s", b.out);
	assert_int_equal(gpt_get_u64(&b, "nvml_total"), 6 * GiB);
	assert_int_equal(gpt_get_u64(&b, "nvml_used"), used + SIM_RESERVED);
	assert_int_equal(gpt_get_u64(&b, "nvml_v3_n"), 1);
	snprintf(key, sizeof key, "nvml_pid_%s", gpt_get(&b, "pid"));
	assert_non_null(gpt_get(&b, key));

	/* nvidia-smi in tenant a's container: a's card, a's process. */
	gpt_run_child(&smi, "smi", NULL, env_a, GPT_HOOK);
	assert_int_equal(gpt_get_u64(&smi, "smi_total"), 4 * GiB);
	assert_int_equal(gpt_get_u64(&smi, "smi_used"), used + SIM_RESERVED);
	assert_int_equal(gpt_get_u64(&smi, "smi_v3_n"), 1);
	snprintf(key, sizeof key, "smi_pid_%s", gpt_get(&a, "pid"));
	assert_int_equal(gpt_get_u64(&smi, key), used);

	gpt_go(&a);
	gpt_go(&b);
	assert_int_equal(gpt_wait(&a, 30000), 0);
	assert_int_equal(gpt_wait(&b, 30000), 0);
}

/* A budget larger than the card shows the card: never more than physical. */
static void test_clamped_to_physical(void **state)
{
	struct gpt_proc p;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=100GiB", NULL};

	(void)state;
	env[1] = gpt_env_region();
	assert_int_equal(gpt_spawn_child(&p, "self", NULL, env, GPT_HOOK), 0);
	if (gpt_wait_for(&p, "ready", 30000))
		fail_msg("%s", p.out);
	assert_int_equal(gpt_get_u64(&p, "cu_total"), 80 * GiB);
	assert_int_equal(gpt_get_u64(&p, "cu_devtotal"), 80 * GiB);
	assert_int_equal(gpt_get_u64(&p, "nvml_total"), 80 * GiB);
	/* Free is the card's own (the driver keeps a reservation besides what
	 * processes hold), and NVML agrees. */
	assert_true(gpt_get_u64(&p, "cu_free") <= 80 * GiB - SIM_CTX_H100 - GiB);
	assert_true(gpt_get_u64(&p, "cu_free") > 79 * GiB - SIM_CTX_H100 - GiB);
	assert_int_equal(gpt_get_u64(&p, "nvml_free"), gpt_get_u64(&p, "cu_free"));
	gpt_go(&p);
	assert_int_equal(gpt_wait(&p, 30000), 0);
}

/* Without a budget the hook changes nothing anyone sees. */
static void test_no_budget_passes_through(void **state)
{
	struct gpt_proc p;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=", NULL};

	(void)state;
	env[1] = gpt_env_region();
	assert_int_equal(gpt_spawn_child(&p, "self", NULL, env, GPT_HOOK), 0);
	if (gpt_wait_for(&p, "ready", 30000))
		fail_msg("%s", p.out);
	assert_int_equal(gpt_get_u64(&p, "cu_total"), 80 * GiB);
	assert_int_equal(gpt_get_u64(&p, "nvml_total"), 80 * GiB);
	assert_int_equal(gpt_get_u64(&p, "nvml_used") + gpt_get_u64(&p, "nvml_free"), 80 * GiB);
	gpt_go(&p);
	assert_int_equal(gpt_wait(&p, 30000), 0);
}

int main(int argc, char **argv)
{
	gpt_child_dispatch(argc, argv, children);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_virtual_card),
		cmocka_unit_test(test_clamped_to_physical),
		cmocka_unit_test(test_no_budget_passes_through),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
