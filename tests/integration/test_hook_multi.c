/* test_hook_multi.c - one budget under concurrency: threads and processes
 * never over-admit, a SIGKILLed process's budget comes back within a
 * second, forked children are accounted, per-device budgets follow
 * CUDA_VISIBLE_DEVICES, and a stopped process makes nobody wait. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/nvml.h"
#include "integration/libcu.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- 16 threads ------------------------------------------------------------ */

static CUcontext storm_ctx;
static unsigned storm_total;

static void *storm_thread(void *arg)
{
	CUdeviceptr p[256];
	unsigned n = 0;

	(void)arg;
	cuCtxSetCurrent(storm_ctx);
	while (n < 256 && cuMemAlloc_v2(&p[n], 64 * MiB) == CUDA_SUCCESS)
		n++;
	__atomic_add_fetch(&storm_total, n, __ATOMIC_RELAXED);
	return NULL;
}

static int child_storm(int argc, char **argv)
{
	pthread_t t[16];
	size_t f0, f1, t0;

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuCtxGetCurrent(&storm_ctx), "ctx");
	cu_ok(cuMemGetInfo_v2(&f0, &t0), "info");
	for (int i = 0; i < 16; i++)
		pthread_create(&t[i], NULL, storm_thread, NULL);
	for (int i = 0; i < 16; i++)
		pthread_join(t[i], NULL);
	out("total", "%u", storm_total);
	out("free_before", "%zu", f0);
	cu_ok(cuMemGetInfo_v2(&f1, &t0), "info");
	out("free_after", "%zu", f1);
	return 0;
}

static void test_thread_storm(void **state)
{
	struct gpt_proc p;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=4GiB", NULL};
	uint64_t room = 4 * GiB - SIM_CTX_H100;

	(void)state;
	env[1] = gpt_env_region();
	gpt_run_child(&p, "storm", NULL, env, GPT_HOOK);
	/* Exactly what fits, from 16 threads racing for it. */
	assert_int_equal(gpt_get_u64(&p, "total"), room / (64 * MiB));
	assert_int_equal(gpt_get_u64(&p, "free_after"), room % (64 * MiB));
}

/* --- processes on one region ---------------------------------------------- */

/* Set up, say ready, wait for go, take 1 GiB chunks until refused, report,
 * hold until go again. */
static int child_grab(int argc, char **argv)
{
	CUdeviceptr p[64];
	unsigned n = 0;
	CUresult rc;

	(void)argc;
	(void)argv;
	cu_setup(0);
	out("ready", "1");
	child_wait_go();
	while (n < 64 && (rc = cuMemAlloc_v2(&p[n], GiB)) == CUDA_SUCCESS)
		n++;
	out("refusal", "%d", (int)rc);
	out("got", "%u", n);
	child_wait_go();
	return 0;
}

static void test_four_processes_one_budget(void **state)
{
	struct gpt_proc p[4];
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=8GiB", NULL};
	uint64_t total = 0;

	(void)state;
	env[1] = gpt_env_region();
	for (int i = 0; i < 4; i++)
		assert_int_equal(gpt_spawn_child(&p[i], "grab", NULL, env, GPT_HOOK), 0);
	for (int i = 0; i < 4; i++)
		if (gpt_wait_for(&p[i], "ready", 30000))
			fail_msg("child %d:\n%s", i, p[i].out);
	for (int i = 0; i < 4; i++)
		gpt_go(&p[i]); /* all race for the budget at once */
	for (int i = 0; i < 4; i++) {
		if (gpt_wait_for(&p[i], "got", 30000))
			fail_msg("child %d:\n%s", i, p[i].out);
		total += gpt_get_u64(&p[i], "got");
		assert_int_equal(gpt_get_u64(&p[i], "refusal"), CUDA_ERROR_OUT_OF_MEMORY);
	}
	/* Four contexts and then whole GiBs: exactly what fits, together. */
	assert_int_equal(total, (8 * GiB - 4 * SIM_CTX_H100) / GiB);
	for (int i = 0; i < 4; i++) {
		gpt_go(&p[i]);
		assert_int_equal(gpt_wait(&p[i], 30000), 0);
	}
}

/* --- SIGKILL --------------------------------------------------------------- */

static int child_hold(int argc, char **argv)
{
	CUdeviceptr p;

	(void)argc;
	cu_setup(0);
	cu_ok(cuMemAlloc_v2(&p, strtoull(argv[0], NULL, 0)), "alloc");
	out("held", "1");
	child_wait_go();
	return 0;
}

/* Watch free until it reaches `want`; report how long that took. */
static int child_watch(int argc, char **argv)
{
	size_t want, f, t;
	CUdeviceptr p;
	double t0;

	(void)argc;
	want = strtoull(argv[0], NULL, 0);
	cu_setup(0);
	cu_ok(cuMemGetInfo_v2(&f, &t), "info");
	out("free_while_held", "%zu", f);
	out("watching", "1");
	child_wait_go();
	t0 = now_s();
	do {
		cu_ok(cuMemGetInfo_v2(&f, &t), "info");
	} while (f < want && now_s() - t0 < 5);
	out("seconds", "%.3f", now_s() - t0);
	out("free", "%zu", f);
	out("alloc_rc", "%d", (int)cuMemAlloc_v2(&p, want));
	return 0;
}

static void test_sigkill_gives_budget_back(void **state)
{
	struct gpt_proc holder, watcher;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=8GiB", NULL};
	const char *hold[] = {"0xC0000000", NULL}; /* 3 GiB */
	char want[32];
	const char *watch[] = {want, NULL};

	(void)state;
	env[1] = gpt_env_region();
	/* Once the holder is gone the watcher has all but its own context. */
	snprintf(want, sizeof want, "%llu", (unsigned long long)(8 * GiB - SIM_CTX_H100));
	assert_int_equal(gpt_spawn_child(&holder, "hold", hold, env, GPT_HOOK), 0);
	if (gpt_wait_for(&holder, "held", 30000))
		fail_msg("holder:\n%s", holder.out);
	assert_int_equal(gpt_spawn_child(&watcher, "watch", watch, env, GPT_HOOK), 0);
	if (gpt_wait_for(&watcher, "watching", 30000))
		fail_msg("watcher:\n%s", watcher.out);
	assert_int_equal(gpt_get_u64(&watcher, "free_while_held"),
			 8 * GiB - 2 * SIM_CTX_H100 - 3 * GiB);
	kill(holder.pid, SIGKILL);
	assert_int_equal(gpt_wait(&holder, 10000), 128 + SIGKILL);
	/* The holder is gone: without any daemon the watcher sees its budget
	 * come back, within a second, and can use it. */
	gpt_go(&watcher);
	assert_int_equal(gpt_wait(&watcher, 30000), 0);
	assert_int_equal(gpt_get_u64(&watcher, "free"), 8 * GiB - SIM_CTX_H100);
	if (atof(gpt_get(&watcher, "seconds")) >= 1.0)
		fail_msg("budget came back after %s s", gpt_get(&watcher, "seconds"));
	assert_int_equal(gpt_get_u64(&watcher, "alloc_rc"), CUDA_SUCCESS);
}

/* --- fork ------------------------------------------------------------------ */

/* The parent loads the hook but leaves CUDA to a forked child (the pattern
 * of worker pools): the child's memory is the tenant's, seen by the parent
 * once it uses CUDA itself, and given back when the child ends. */
static int child_fork_worker(int argc, char **argv)
{
	int to_parent[2], to_child[2], status;
	char c;
	size_t f, t;
	pid_t kid;

	(void)argc;
	(void)argv;
	if (pipe(to_parent) || pipe(to_child))
		return 98;
	kid = fork();
	if (kid == 0) {
		CUdeviceptr p;
		cu_setup(0);
		cu_ok(cuMemAlloc_v2(&p, GiB), "child alloc");
		(void)!write(to_parent[1], "a", 1);
		(void)!read(to_child[0], &c, 1);
		_exit(0);
	}
	if (read(to_parent[0], &c, 1) != 1)
		return 97;
	cu_setup(0);
	cu_ok(cuMemGetInfo_v2(&f, &t), "info");
	out("free_with_child", "%zu", f);
	(void)!write(to_child[1], "b", 1);
	waitpid(kid, &status, 0);
	out("child_status", "%d", status);
	usleep(200 * 1000); /* past the sweep interval */
	cu_ok(cuMemGetInfo_v2(&f, &t), "info");
	out("free_after_child", "%zu", f);
	return 0;
}

/* A process that already uses CUDA forks: the child cannot use its parent's
 * CUDA (as with the real driver) and, when it exits, takes none of its
 * parent's budget with it. */
static int child_fork_after_init(int argc, char **argv)
{
	CUdeviceptr p;
	size_t f0, f1, t;
	int status;
	pid_t kid;

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuMemAlloc_v2(&p, GiB), "alloc");
	cu_ok(cuMemGetInfo_v2(&f0, &t), "info");
	kid = fork();
	if (kid == 0) {
		CUdeviceptr q;
		CUresult rc = cuMemAlloc_v2(&q, GiB);
		_exit(rc == CUDA_SUCCESS ? 1 : 0);
	}
	waitpid(kid, &status, 0);
	out("child_refused", "%d", WIFEXITED(status) && WEXITSTATUS(status) == 0);
	usleep(200 * 1000); /* past the sweep interval */
	cu_ok(cuMemGetInfo_v2(&f1, &t), "info");
	out("unchanged", "%d", f0 == f1);
	return 0;
}

static void test_fork(void **state)
{
	struct gpt_proc p;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=8GiB", NULL};

	(void)state;
	env[1] = gpt_env_region();
	gpt_run_child(&p, "fork_worker", NULL, env, GPT_HOOK);
	assert_int_equal(gpt_get_u64(&p, "free_with_child"), 8 * GiB - 2 * SIM_CTX_H100 - GiB);
	assert_int_equal(gpt_get_u64(&p, "child_status"), 0);
	assert_int_equal(gpt_get_u64(&p, "free_after_child"), 8 * GiB - SIM_CTX_H100);

	env[0] = gpt_env_state();
	env[1] = gpt_env_region();
	gpt_run_child(&p, "fork_after_init", NULL, env, GPT_HOOK);
	assert_int_equal(gpt_get_u64(&p, "child_refused"), 1);
	assert_int_equal(gpt_get_u64(&p, "unchanged"), 1);
}

/* --- CUDA_VISIBLE_DEVICES --------------------------------------------------- */

#define TWO_GPUS "GPUPOOL_SIM_GPUS=H100-SXM-80GB:80GiB:132,A100-40GB:40GiB:108"

/* NVML first (as nvidia-smi, before any CUDA), then CUDA: both must agree
 * on which physical GPU each per-device budget applies to. */
static int child_visible(int argc, char **argv)
{
	nvmlDevice_t h;
	nvmlMemory_t m;
	size_t total;
	int n;
	char name[64];

	(void)argc;
	(void)argv;
	if (nvmlInit_v2() != NVML_SUCCESS)
		return 96;
	for (unsigned i = 0; i < 2; i++) {
		char key[32];
		if (nvmlDeviceGetHandleByIndex_v2(i, &h) || nvmlDeviceGetMemoryInfo(h, &m))
			return 95;
		snprintf(key, sizeof key, "nvml%u_total", i);
		out(key, "%llu", m.total);
	}
	cu_ok(cuInit(0), "cuInit");
	cu_ok(cuDeviceGetCount(&n), "count");
	out("count", "%d", n);
	for (int i = 0; i < n; i++) {
		char key[32];
		cu_ok(cuDeviceTotalMem_v2(&total, i), "total");
		cu_ok(cuDeviceGetName(name, sizeof name, i), "name");
		snprintf(key, sizeof key, "cuda%d_total", i);
		out(key, "%zu", total);
		snprintf(key, sizeof key, "cuda%d_name", i);
		out(key, "%s", name);
	}
	return 0;
}

static void visible(struct gpt_proc *p, const char *cvd, const char *limits0,
		    const char *limits1)
{
	const char *env[] = {gpt_env_state(), NULL, TWO_GPUS, cvd, limits0, limits1, NULL};

	env[1] = gpt_env_region();
	gpt_run_child(p, "visible", NULL, env, GPT_HOOK);
}

static void test_visible_devices(void **state)
{
	struct gpt_proc p;
	char uuid_env[128];
	char uuid1[96];
	nvmlDevice_t h;

	(void)state;
	/* Indices, reordered: ordinal 0 is the A100, ordinal 1 the H100. */
	visible(&p, "CUDA_VISIBLE_DEVICES=1,0", "GPUPOOL_MEMORY_LIMIT_0=1GiB",
		"GPUPOOL_MEMORY_LIMIT_1=3GiB");
	assert_int_equal(gpt_get_u64(&p, "count"), 2);
	assert_string_equal(gpt_get(&p, "cuda0_name"), "NVIDIA A100-40GB");
	assert_int_equal(gpt_get_u64(&p, "cuda0_total"), 1 * GiB);
	assert_int_equal(gpt_get_u64(&p, "cuda1_total"), 3 * GiB);
	assert_int_equal(gpt_get_u64(&p, "nvml1_total"), 1 * GiB); /* A100 */
	assert_int_equal(gpt_get_u64(&p, "nvml0_total"), 3 * GiB); /* H100 */

	/* A UUID prefix, one device, a percentage: half of the A100. */
	setenv("GPUPOOL_SIM_GPUS", TWO_GPUS + strlen("GPUPOOL_SIM_GPUS="), 1);
	char *probe = gpt_tmp_path("uuid-probe");
	setenv("GPUPOOL_SIM_STATE", probe, 1);
	free(probe);
	assert_int_equal(nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(nvmlDeviceGetHandleByIndex_v2(1, &h), NVML_SUCCESS);
	assert_int_equal(nvmlDeviceGetUUID(h, uuid1, sizeof uuid1), NVML_SUCCESS);
	nvmlShutdown();
	snprintf(uuid_env, sizeof uuid_env, "CUDA_VISIBLE_DEVICES=%.12s", uuid1);
	visible(&p, uuid_env, "GPUPOOL_MEMORY_LIMIT=50%", NULL);
	assert_int_equal(gpt_get_u64(&p, "count"), 1);
	assert_string_equal(gpt_get(&p, "cuda0_name"), "NVIDIA A100-40GB");
	assert_int_equal(gpt_get_u64(&p, "cuda0_total"), 20 * GiB);
	assert_int_equal(gpt_get_u64(&p, "nvml1_total"), 20 * GiB);
	assert_int_equal(gpt_get_u64(&p, "nvml0_total"), 80 * GiB); /* not visible: real */

	/* A UUID entry matching no GPU ends the list: the A100 after it is
	 * not visible, so neither CUDA nor NVML applies ordinal 1's budget. */
	snprintf(uuid_env, sizeof uuid_env, "CUDA_VISIBLE_DEVICES=0,GPU-ffffffff,%.12s", uuid1);
	visible(&p, uuid_env, "GPUPOOL_MEMORY_LIMIT_0=1GiB", "GPUPOOL_MEMORY_LIMIT_2=2GiB");
	assert_int_equal(gpt_get_u64(&p, "count"), 1);
	assert_int_equal(gpt_get_u64(&p, "cuda0_total"), 1 * GiB);
	assert_int_equal(gpt_get_u64(&p, "nvml0_total"), 1 * GiB);
	assert_int_equal(gpt_get_u64(&p, "nvml1_total"), 40 * GiB);
}

/* --- a stopped process ---------------------------------------------------- */

/* Allocate and free as fast as possible until killed: the process the test
 * stops at random moments, inside the hook's accounting or the driver's
 * as it happens. */
static int child_churn(int argc, char **argv)
{
	CUdeviceptr p;

	(void)argc;
	(void)argv;
	cu_setup(0);
	out("ready", "1");
	for (;;) {
		if (cuMemAlloc_v2(&p, 64 * MiB) == CUDA_SUCCESS)
			cuMemFree_v2(p);
	}
	return 0;
}

/* At each go: one allocation and free, timed, reported as r<N>=<us>. */
static int child_probe(int argc, char **argv)
{
	CUdeviceptr p;
	char key[16];

	(void)argc;
	(void)argv;
	cu_setup(0);
	out("ready", "1");
	for (int n = 0;; n++) {
		double t0;
		child_wait_go();
		t0 = now_s();
		cu_ok(cuMemAlloc_v2(&p, 64 * MiB), "alloc");
		cu_ok(cuMemFree_v2(p), "free");
		snprintf(key, sizeof key, "r%d", n);
		out(key, "%.0f", (now_s() - t0) * 1e6);
	}
	return 0;
}

/* A process of the tenant stopped (SIGSTOP) at a random point of its
 * allocation loop, possibly inside the region's accounting, must not make
 * another process's allocation wait (docs/hook.md, "The lock, and its
 * waiting rule"): charges take no lock. */
static void test_stopped_process_blocks_nobody(void **state)
{
	struct gpt_proc churn, probe;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=8GiB", NULL};
	unsigned seed = 42, worst = 0;
	char key[16];
	int status;

	(void)state;
	env[1] = gpt_env_region();
	assert_int_equal(gpt_spawn_child(&churn, "churn", NULL, env, GPT_HOOK), 0);
	assert_int_equal(gpt_spawn_child(&probe, "probe", NULL, env, GPT_HOOK), 0);
	if (gpt_wait_for(&churn, "ready", 30000) || gpt_wait_for(&probe, "ready", 30000)) {
		kill(churn.pid, SIGKILL);
		fail_msg("children did not start:\n%s\n%s", churn.out, probe.out);
	}
	for (int n = 0; n < 300; n++) {
		struct timespec pause = {0, (long)(rand_r(&seed) % 2000) * 1000};
		unsigned us;

		nanosleep(&pause, NULL);
		kill(churn.pid, SIGSTOP);
		if (waitpid(churn.pid, &status, WUNTRACED) != churn.pid || !WIFSTOPPED(status))
			break;
		gpt_go(&probe);
		snprintf(key, sizeof key, "r%d", n);
		if (gpt_wait_for(&probe, key, 5000)) {
			kill(churn.pid, SIGKILL);
			kill(probe.pid, SIGKILL);
			fail_msg("round %d: an allocation waited more than 5 s for a stopped "
				 "process", n);
		}
		us = (unsigned)gpt_get_u64(&probe, key);
		worst = us > worst ? us : worst;
		kill(churn.pid, SIGCONT);
	}
	kill(churn.pid, SIGKILL);
	kill(probe.pid, SIGKILL);
	gpt_wait(&churn, 10000);
	gpt_wait(&probe, 10000);
	printf("# 300 rounds: the slowest allocation+free took %u us\n", worst);
	/* Nothing waits for the stopped process: far below the 2 s a stopped
	 * lock holder used to cost. */
	assert_true(worst < 200000);
}

static const struct gpt_child children[] = {
	{"storm", child_storm},
	{"grab", child_grab},
	{"churn", child_churn},
	{"probe", child_probe},
	{"hold", child_hold},
	{"watch", child_watch},
	{"fork_worker", child_fork_worker},
	{"fork_after_init", child_fork_after_init},
	{"visible", child_visible},
	{NULL, NULL},
};

int main(int argc, char **argv)
{
	gpt_child_dispatch(argc, argv, children);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thread_storm),
		cmocka_unit_test(test_four_processes_one_budget),
		cmocka_unit_test(test_sigkill_gives_budget_back),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_visible_devices),
		cmocka_unit_test(test_stopped_process_blocks_nobody),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
