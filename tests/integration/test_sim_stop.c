/* test_sim_stop.c - a stopped process never makes another wait: one
 * process allocates and frees as fast as it can (device memory, VMM,
 * pools, memory queries of the driver and NVML) and is stopped (SIGSTOP) at pseudo-random
 * moments; each time, another process allocates, frees and asks for free
 * memory, and must be done in well under a second.  With a real driver
 * the shared state lives in the kernel, where a stopped process holds
 * nothing; the simulator's memory paths take no cross-process lock for
 * the same reason (docs/sim.md, "How processes share a machine").
 *
 * The program is its own workloads: "--child churn" and "--child probe". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/nvml.h"
#include "integration/libcu.h"

#define ROUNDS 300
#define BUDGET_MS 15000     /* the whole test, whatever happens */
#define ROUND_LIMIT_MS 1000 /* a probe this late counts as blocked */
#define PROBE_MAX_US 200000 /* what "well under a second" means here */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static CUmemAllocationProp vmm_prop(void)
{
	CUmemAllocationProp prop;

	memset(&prop, 0, sizeof prop);
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = 0;
	return prop;
}

/* One round of every memory path: allocate and free device memory, a
 * VMM allocation and a pool allocation, and ask the driver and NVML how
 * much memory is in use and by whom.  The queries make no system call, so
 * a stop often lands inside one of them rather than after a system call. */
static void memory_round(CUstream s, const CUmemAllocationProp *prop, int with_pool,
			 int queries)
{
	CUmemGenericAllocationHandle h;
	nvmlProcessInfo_v1_t procs[8];
	nvmlMemory_t mem;
	nvmlDevice_t dev;
	CUdeviceptr p;
	size_t f, t;

	cu_ok(cuMemAlloc_v2(&p, 2 * MiB), "cuMemAlloc");
	cu_ok(cuMemFree_v2(p), "cuMemFree");
	cu_ok(cuMemCreate(&h, 2 * MiB, prop, 0), "cuMemCreate");
	cu_ok(cuMemRelease(h), "cuMemRelease");
	if (with_pool) {
		cu_ok(cuMemAllocAsync(&p, 2 * MiB, s), "cuMemAllocAsync");
		cu_ok(cuMemFreeAsync(p, s), "cuMemFreeAsync");
		cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	}
	if (nvmlDeviceGetHandleByIndex(0, &dev) != NVML_SUCCESS)
		cu_ok(CUDA_ERROR_UNKNOWN, "nvmlDeviceGetHandleByIndex");
	for (int q = 0; q < queries; q++) {
		unsigned n = 8;
		cu_ok(cuMemGetInfo_v2(&f, &t), "cuMemGetInfo");
		if (nvmlDeviceGetMemoryInfo(dev, &mem) != NVML_SUCCESS ||
		    nvmlDeviceGetComputeRunningProcesses(dev, &n, procs) != NVML_SUCCESS)
			cu_ok(CUDA_ERROR_UNKNOWN, "nvml query");
	}
}

/* Churn memory until killed (60 s at most). */
static int child_churn(int argc, char **argv)
{
	CUmemAllocationProp prop = vmm_prop();
	double end = now_ms() + 60000;
	CUstream s;

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
	if (nvmlInit_v2() != NVML_SUCCESS)
		return 3;
	out("churning", "1");
	for (unsigned long i = 0; now_ms() < end; i++)
		memory_round(s, &prop, i % 4 == 0, 16);
	return 0;
}

/* On each go: one round of memory calls, timed: took<k>=microseconds. */
static int child_probe(int argc, char **argv)
{
	CUmemAllocationProp prop = vmm_prop();
	CUstream s;
	char key[32];

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
	if (nvmlInit_v2() != NVML_SUCCESS)
		return 3;
	out("ready", "1");
	for (unsigned k = 0; k < ROUNDS; k++) {
		double t0;

		child_wait_go();
		t0 = now_ms();
		memory_round(s, &prop, 1, 1);
		snprintf(key, sizeof key, "took%u", k);
		out(key, "%.0f", (now_ms() - t0) * 1000);
	}
	return 0;
}

static struct gpt_proc churn, probe;

/* Kill whatever the test started, even when it failed half-way (a stopped
 * child is continued first, so that it dies at once). */
static int kill_children(void **st)
{
	struct gpt_proc *all[] = {&churn, &probe};

	(void)st;
	for (int i = 0; i < 2; i++) {
		if (all[i]->pid <= 0)
			continue;
		kill(all[i]->pid, SIGKILL);
		kill(all[i]->pid, SIGCONT);
		gpt_wait(all[i], 5000);
		all[i]->pid = 0;
	}
	return 0;
}

/* Wait until pid is stopped (state T in /proc/<pid>/stat).  1 if it is. */
static int stopped(pid_t pid)
{
	char path[64], buf[256], *rp;
	FILE *f;
	double end = now_ms() + 1000;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	while (now_ms() < end) {
		f = fopen(path, "r");
		if (!f)
			return 0;
		rp = fgets(buf, sizeof buf, f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (rp && (rp[2] == 'T' || rp[2] == 't'))
			return 1;
		usleep(50);
	}
	return 0;
}

static void test_stopped_process_blocks_nobody(void **st)
{
	const char *env[] = {gpt_env_state(), NULL};
	double start = now_ms(), worst_round = 0;
	uint64_t worst_us = 0;
	siginfo_t si;
	uint32_t x = 0x9e3779b9u; /* xorshift: the same moments every run */
	unsigned r;

	(void)st;
	assert_int_equal(gpt_spawn_child(&churn, "churn", NULL, env, 0), 0);
	assert_int_equal(gpt_wait_for(&churn, "churning", 20000), 0);
	assert_int_equal(gpt_spawn_child(&probe, "probe", NULL, env, 0), 0);
	assert_int_equal(gpt_wait_for(&probe, "ready", 20000), 0);
	for (r = 0; r < ROUNDS && now_ms() - start < BUDGET_MS; r++) {
		char key[32];
		double t0;
		uint64_t us;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		usleep(x % 3000); /* let it run into some other call */
		assert_int_equal(kill(churn.pid, SIGSTOP), 0);
		assert_true(stopped(churn.pid));
		snprintf(key, sizeof key, "took%u", r);
		t0 = now_ms();
		gpt_go(&probe);
		if (gpt_wait_for(&probe, key, ROUND_LIMIT_MS) != 0)
			fail_msg("round %u: no answer in %d ms while another process was "
				 "stopped; the probe said:\n%s", r, ROUND_LIMIT_MS, probe.out);
		if (now_ms() - t0 > worst_round)
			worst_round = now_ms() - t0;
		assert_int_equal(kill(churn.pid, SIGCONT), 0);
		us = gpt_get_u64(&probe, key);
		if (us > worst_us)
			worst_us = us;
		if (us >= PROBE_MAX_US)
			fail_msg("round %u: memory calls took %llu us while another process "
				 "was stopped", r, (unsigned long long)us);
	}
	assert_true(r >= 100); /* enough rounds ran in the time budget */
	/* The churning process survived all of it (still running: a failed
	 * call would have made it exit). */
	memset(&si, 0, sizeof si);
	assert_int_equal(waitid(P_PID, (id_t)churn.pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
	assert_int_equal(si.si_pid, 0);
	print_message("%u rounds; slowest probe %llu us, slowest round %.1f ms\n", r,
		      (unsigned long long)worst_us, worst_round);
}

int main(int argc, char **argv)
{
	static const struct gpt_child children[] = {
		{"churn", child_churn},
		{"probe", child_probe},
		{NULL, NULL},
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_stopped_process_blocks_nobody, kill_children),
	};

	gpt_child_dispatch(argc, argv, children);
	unsetenv("GPUPOOL_SIM_GPUS");
	unsetenv("CUDA_VISIBLE_DEVICES");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
