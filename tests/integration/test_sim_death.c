/* test_sim_death.c - processes that die (SIGKILL) or exit holding device
 * memory: another process sees the memory come back within a second, an
 * allocation that needs it gets it at once, and work the dead process had
 * queued stops occupying the device. */
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cuda.h>

#include "common/nvml.h"
#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

static CUcontext ctx;
static nvmlDevice_t dev;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned long long used(void)
{
	nvmlMemory_v2_t m = {.version = nvmlMemory_v2};

	assert_int_equal(nvmlDeviceGetMemoryInfo_v2(dev, &m), NVML_SUCCESS);
	return m.used;
}

static int listed(int pid)
{
	nvmlProcessInfo_t p[16];
	unsigned n = 16;

	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(dev, &n, p), NVML_SUCCESS);
	for (unsigned i = 0; i < n; i++)
		if ((int)p[i].pid == pid)
			return 1;
	return 0;
}

static void start(struct gpt_proc *p, const char *const cmds[])
{
	char *path = gpt_build_path("tests/integration/simwl");
	const char *argv[12] = {path};
	int n = 1;

	for (int i = 0; cmds[i] && n < 11; i++)
		argv[n++] = cmds[i];
	argv[n] = NULL;
	assert_int_equal(gpt_spawn(p, argv, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(p, "held", 20000), 0);
	free(path);
}

static int setup(void **st)
{
	(void)st;
	if (cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) || nvmlInit() ||
	    nvmlDeviceGetHandleByIndex(0, &dev))
		return -1;
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	nvmlShutdown();
	return cuDevicePrimaryCtxRelease(0) ? -1 : 0;
}

/* Killed holding 8 GiB: NVML shows it back within a second. */
static void test_sigkill_releases(void **st)
{
	const char *cmds[] = {"init", "alloc", "8GiB", "hold", NULL};
	unsigned long long base = used();
	struct gpt_proc p;
	double t0;

	(void)st;
	start(&p, cmds);
	assert_int_equal(used() - base, 256 * MiB + 264 * MiB + 8 * GiB);
	assert_true(listed(p.pid));
	t0 = now_ms();
	kill(p.pid, SIGKILL);
	gpt_wait(&p, 5000);
	while (used() != base && now_ms() - t0 < 2000)
		usleep(5000);
	assert_int_equal(used(), base);
	assert_true(now_ms() - t0 < 1000);
	assert_false(listed(p.pid));
}

/* Killed holding nearly the whole card: the allocation that needs the
 * memory succeeds at once. */
static void test_allocation_reclaims(void **st)
{
	const char *cmds[] = {"init", "alloc", "70GiB", "hold", NULL};
	struct gpt_proc p;
	CUdeviceptr a;

	(void)st;
	start(&p, cmds);
	assert_int_equal(gpt_get_u64(&p, "alloc"), 0);
	kill(p.pid, SIGKILL);
	gpt_wait(&p, 5000);
	CU(cuMemAlloc(&a, 70 * GiB));
	CU(cuMemFree(a));
}

/* A process that exits normally is gone as well. */
static void test_exit_releases(void **st)
{
	char *path = gpt_build_path("tests/integration/simwl");
	const char *argv[] = {path, "init", "alloc", "1GiB", NULL};
	unsigned long long base = used();
	struct gpt_proc p;
	double t0;

	(void)st;
	assert_int_equal(gpt_run(&p, argv, NULL, 0, 20000), 0);
	t0 = now_ms();
	while (used() != base && now_ms() - t0 < 2000)
		usleep(5000);
	assert_int_equal(used(), base);
	free(path);
}

/* Ten seconds of kernels queued by a process that is then killed do not
 * hold the device: ours runs right away. */
static void test_queued_work_dies(void **st)
{
	const char *cmds[] = {"init", "spin", "100000", "100", "hold", NULL};
	struct gpt_proc p;
	CUmodule m;
	CUfunction f;
	double t0;

	(void)st;
	start(&p, cmds);
	kill(p.pid, SIGKILL);
	gpt_wait(&p, 5000);
	t0 = now_ms();
	while (listed(p.pid) && now_ms() - t0 < 2000) /* looking reclaims */
		usleep(5000);
	assert_false(listed(p.pid));
	CU(cuModuleLoadData(&m, "image"));
	CU(cuModuleGetFunction(&f, m, "spin_1000us"));
	t0 = now_ms();
	CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
	CU(cuCtxSynchronize());
	assert_true(now_ms() - t0 < 1000);
	CU(cuModuleUnload(m));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigkill_releases),
		cmocka_unit_test(test_allocation_reclaims),
		cmocka_unit_test(test_exit_releases),
		cmocka_unit_test(test_queued_work_dies),
	};
	char *state = gpt_tmp_path("state");
	int rc;

	unsetenv("GPUPOOL_SIM_GPUS");
	unsetenv("CUDA_VISIBLE_DEVICES");
	setenv("GPUPOOL_SIM_STATE", state, 1);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	free(state);
	return rc;
}
