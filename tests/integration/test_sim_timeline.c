/* test_sim_timeline.c - execution and time on the simulator: launches are
 * asynchronous and validated; kernels of all streams and processes share
 * one device timeline; synchronizations sleep until completion; events
 * time kernels; host functions run after the work before them; NVML sees
 * utilization, and two processes time-slicing the device each get about
 * half of it; events complete in device order, behind other processes'
 * work; gpupool-simctl busy reports each process's device time.
 * Assertions are ranges: the machine running the tests is shared. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda.h>

#include "common/nvml.h"
#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)

static CUcontext ctx;
static CUmodule mod;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static CUfunction kernel(const char *name)
{
	CUfunction f;

	CU(cuModuleGetFunction(&f, mod, name));
	return f;
}

static CUresult launch(CUfunction f, CUstream s)
{
	return cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL);
}

static int setup(void **st)
{
	(void)st;
	if (cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) ||
	    cuModuleLoadData(&mod, "image") || nvmlInit())
		return -1;
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	nvmlShutdown();
	return cuDevicePrimaryCtxRelease(0) ? -1 : 0;
}

static void test_launch_validation(void **st)
{
	CUfunction spin = kernel("spin_10us"), f;
	CUlaunchConfig cfg;
	CUlaunchAttribute at;

	(void)st;
	assert_int_equal(cuModuleGetFunction(&f, mod, "matmul"), CUDA_ERROR_NOT_FOUND);
	assert_int_equal(cuModuleGetFunction(&f, mod, "spin_us"), CUDA_ERROR_NOT_FOUND);
	assert_int_equal(cuModuleGetFunction(&f, mod, "spin_9999999999999us"), CUDA_ERROR_NOT_FOUND);
	CU(cuModuleGetFunction(&f, mod, "spin_10us"));
	assert_ptr_equal(f, spin); /* the same handle for the same name */
	assert_int_equal(cuLaunchKernel(spin, 1, 1, 1, 1025, 1, 1, 0, NULL, NULL, NULL),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuLaunchKernel(spin, 1, 1, 1, 32, 32, 2, 0, NULL, NULL, NULL),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuLaunchKernel(spin, 0, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuLaunchKernel(spin, 1, 65536, 1, 1, 1, 1, 0, NULL, NULL, NULL),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 1 << 20, NULL, NULL, NULL),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL),
			 CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuLaunchKernel((CUfunction)&f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL),
			 CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(launch(spin, (CUstream)0x77), CUDA_ERROR_INVALID_HANDLE);
	/* fill_u32 needs its arguments. */
	assert_int_equal(launch(kernel("fill_u32"), NULL), CUDA_ERROR_INVALID_VALUE);
	/* cuLaunchKernelEx and cooperative limits (132 SMs x 2 blocks of 1024). */
	memset(&cfg, 0, sizeof cfg);
	cfg.gridDimX = 264;
	cfg.gridDimY = cfg.gridDimZ = 1;
	cfg.blockDimX = 1024;
	cfg.blockDimY = cfg.blockDimZ = 1;
	memset(&at, 0, sizeof at);
	at.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
	at.value.cooperative = 1;
	cfg.attrs = &at;
	cfg.numAttrs = 1;
	CU(cuLaunchKernelEx(&cfg, spin, NULL, NULL));
	cfg.gridDimX = 265;
	assert_int_equal(cuLaunchKernelEx(&cfg, spin, NULL, NULL),
			 CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE);
	assert_int_equal(cuLaunchCooperativeKernel(spin, 1000, 1, 1, 1024, 1, 1, 0, NULL, NULL),
			 CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE);
	CU(cuCtxSynchronize());
}

/* The CUDA 12 library API: context-independent kernels, launched either
 * through their CUfunction or as themselves; and the occupancy queries. */
static void test_library_and_occupancy(void **st)
{
	CUlibrary lib;
	CUkernel k;
	CUfunction f;
	const char *name;
	int n, grid, block;

	(void)st;
	CU(cuLibraryLoadData(&lib, "image", NULL, NULL, 0, NULL, NULL, 0));
	CU(cuLibraryGetKernel(&k, lib, "spin_5us"));
	assert_int_equal(cuLibraryGetKernel(&k, lib, "nope"), CUDA_ERROR_NOT_FOUND);
	CU(cuLibraryGetKernel(&k, lib, "spin_5us"));
	CU(cuKernelGetFunction(&f, k));
	CU(cuFuncGetName(&name, f));
	assert_string_equal(name, "spin_5us");
	CU(launch(f, NULL));
	CU(launch((CUfunction)k, NULL));
	CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, f, 256, 0));
	assert_int_equal(n, 8); /* 2048 threads per SM */
	CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, f, 1024, 0));
	assert_int_equal(n, 2);
	CU(cuOccupancyMaxPotentialBlockSize(&grid, &block, f, NULL, 0, 0));
	assert_true(block >= 32 && block <= 1024 && block % 32 == 0);
	assert_true(grid >= 132);
	assert_int_equal(cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, f, 2048, 0),
			 CUDA_ERROR_INVALID_VALUE);
	CU(cuCtxSynchronize());
	CU(cuLibraryUnload(lib));
	assert_int_equal(launch(f, NULL), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuLibraryUnload(lib), CUDA_ERROR_INVALID_HANDLE);
}

/* Launches return at once; synchronization waits for the device time. */
static void test_async_and_sync(void **st)
{
	CUfunction k = kernel("spin_200000us");
	CUstream s;
	double t0, t1, t2;

	(void)st;
	CU(cuStreamCreate(&s, 0));
	t0 = now_ms();
	CU(launch(k, s));
	t1 = now_ms();
	assert_true(t1 - t0 < 100);
	assert_int_equal(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
	/* The NULL stream waits for blocking streams. */
	CU(cuStreamSynchronize(NULL));
	t2 = now_ms();
	assert_true(t2 - t0 >= 199);
	assert_true(t2 - t0 < 2000);
	CU(cuStreamQuery(s));
	CU(cuStreamDestroy(s));
}

/* Kernels of different streams share the device: they serialize. */
static void test_streams_share_device(void **st)
{
	CUfunction k = kernel("spin_100000us");
	CUstream a, b;
	double t0;

	(void)st;
	CU(cuStreamCreateWithPriority(&a, CU_STREAM_NON_BLOCKING, -1));
	CU(cuStreamCreate(&b, CU_STREAM_NON_BLOCKING));
	t0 = now_ms();
	CU(launch(k, a));
	CU(launch(k, b));
	CU(cuStreamSynchronize(b)); /* b's kernel ran after a's */
	assert_true(now_ms() - t0 >= 199);
	CU(cuStreamQuery(a));
	CU(cuStreamDestroy(a));
	CU(cuStreamDestroy(b));
}

static void test_events(void **st)
{
	CUfunction k = kernel("spin_50000us");
	CUevent a, b, untimed, never;
	CUstream s;
	float ms;

	(void)st;
	CU(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CU(cuEventCreate(&a, 0));
	CU(cuEventCreate(&b, CU_EVENT_BLOCKING_SYNC));
	CU(cuEventCreate(&untimed, CU_EVENT_DISABLE_TIMING));
	CU(cuEventCreate(&never, 0));
	CU(cuEventRecord(a, s));
	CU(launch(k, s));
	CU(launch(k, s));
	CU(cuEventRecord(b, s));
	CU(cuEventRecord(untimed, s));
	assert_int_equal(cuEventQuery(b), CUDA_ERROR_NOT_READY);
	assert_int_equal(cuEventElapsedTime(&ms, a, b), CUDA_ERROR_NOT_READY);
	CU(cuEventSynchronize(b));
	CU(cuEventQuery(b));
	CU(cuEventElapsedTime(&ms, a, b));
	/* Two 50 ms kernels back to back, from the timeline. */
	assert_true(ms >= 99.9f && ms < 400.0f);
	assert_int_equal(cuEventElapsedTime(&ms, a, untimed), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuEventElapsedTime(&ms, a, never), CUDA_ERROR_INVALID_HANDLE);
	CU(cuEventQuery(never)); /* never recorded: complete */
	assert_int_equal(cuEventCreate(&never, CU_EVENT_INTERPROCESS), CUDA_ERROR_INVALID_VALUE);
	/* A stream waits for an event of another stream. */
	{
		CUstream s2;
		CU(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
		CU(launch(k, s));
		CU(cuEventRecord(a, s));
		CU(cuStreamWaitEvent(s2, a, 0));
		assert_int_equal(cuStreamQuery(s2), CUDA_ERROR_NOT_READY);
		CU(cuStreamSynchronize(s2));
		CU(cuEventQuery(a));
		CU(cuStreamDestroy(s2));
	}
	CU(cuEventDestroy(a));
	CU(cuEventDestroy(b));
	CU(cuEventDestroy(untimed));
	CU(cuEventDestroy(never));
	assert_int_equal(cuEventQuery(a), CUDA_ERROR_INVALID_HANDLE);
	CU(cuStreamDestroy(s));
}

static double host_fn_time;
static volatile int cb_status = -1;
static CUstream cb_stream;

static void host_fn(void *arg)
{
	(void)arg;
	host_fn_time = now_ms();
}

static void stream_cb(CUstream h, CUresult status, void *arg)
{
	(void)arg;
	cb_stream = h;
	cb_status = (int)status;
}

/* Host functions run after the work before them, and synchronization
 * waits for them. */
static void test_host_functions(void **st)
{
	CUstream s;
	double t0;

	(void)st;
	CU(cuStreamCreate(&s, 0));
	host_fn_time = 0;
	t0 = now_ms();
	CU(launch(kernel("spin_100000us"), s));
	CU(cuLaunchHostFunc(s, host_fn, NULL));
	CU(cuStreamAddCallback(s, stream_cb, NULL, 0));
	assert_int_equal(cuStreamAddCallback(s, stream_cb, NULL, 1), CUDA_ERROR_INVALID_VALUE);
	CU(cuStreamSynchronize(s));
	assert_true(host_fn_time - t0 >= 99);
	assert_int_equal(cb_status, CUDA_SUCCESS);
	assert_ptr_equal(cb_stream, s);
	CU(cuStreamDestroy(s));
}

/* NVML's utilization follows the timeline. */
static void test_utilization(void **st)
{
	nvmlDevice_t d;
	nvmlUtilization_t u;
	nvmlProcessUtilizationSample_t smp[8];
	unsigned n = 8;
	int me = -1;

	(void)st;
	assert_int_equal(nvmlDeviceGetHandleByIndex(0, &d), NVML_SUCCESS);
	CU(launch(kernel("spin_600000us"), NULL));
	CU(cuCtxSynchronize());
	assert_int_equal(nvmlDeviceGetUtilizationRates(d, &u), NVML_SUCCESS);
	assert_true(u.gpu >= 40 && u.gpu <= 100);
	assert_int_equal(nvmlDeviceGetProcessUtilization(d, smp, &n, 0), NVML_SUCCESS);
	for (unsigned i = 0; i < n; i++)
		if (smp[i].pid == (unsigned)getpid())
			me = (int)i;
	assert_true(me >= 0);
	assert_true(smp[me].smUtil >= 40);
	/* Nothing new since that sample. */
	n = 8;
	assert_int_equal(nvmlDeviceGetProcessUtilization(d, smp, &n, smp[me].timeStamp),
			 NVML_ERROR_NOT_FOUND);
}

/* Two processes time-slicing the device: busy throughout, about half
 * each. */
static void test_two_processes(void **st)
{
	char *path = gpt_build_path("tests/integration/simwl");
	const char *argv[] = {path, "init", "spin-pipe", "20000", "60", NULL};
	struct gpt_proc a, b;
	nvmlDevice_t d;
	nvmlUtilization_t u;
	nvmlProcessUtilizationSample_t smp[8];
	unsigned n = 8, sa = 0, sb = 0;
	int na = 0, nb = 0;

	(void)st;
	assert_int_equal(nvmlDeviceGetHandleByIndex(0, &d), NVML_SUCCESS);
	assert_int_equal(gpt_spawn(&a, argv, NULL, 0), 0);
	assert_int_equal(gpt_spawn(&b, argv, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(&a, "spinning", 20000), 0);
	assert_int_equal(gpt_wait_for(&b, "spinning", 20000), 0);
	usleep(1200000); /* a full sample period with both at it */
	assert_int_equal(nvmlDeviceGetUtilizationRates(d, &u), NVML_SUCCESS);
	assert_int_equal(nvmlDeviceGetProcessUtilization(d, smp, &n, 0), NVML_SUCCESS);
	for (unsigned i = 0; i < n; i++) {
		if (smp[i].pid == (unsigned)a.pid)
			sa = smp[i].smUtil, na++;
		if (smp[i].pid == (unsigned)b.pid)
			sb = smp[i].smUtil, nb++;
	}
	assert_int_equal(gpt_wait(&a, 30000), 0);
	assert_int_equal(gpt_wait(&b, 30000), 0);
	assert_true(u.gpu >= 85);
	assert_int_equal(na, 1);
	assert_int_equal(nb, 1);
	assert_true(sa >= 20 && sa <= 80);
	assert_true(sb >= 20 && sb <= 80);
	assert_true(sa + sb >= 85);
	free(path);
}

/* Record a, a 5 ms kernel and b on s while another process has 200 ms of
 * kernels queued: directly, or as the event record nodes of a graph
 * (captured with CU_EVENT_RECORD_EXTERNAL) when `graph`.  Returns the
 * elapsed time from a to b. */
static float time_behind_other_process(CUstream s, CUevent a, CUevent b, int graph)
{
	char *path = gpt_build_path("tests/integration/simwl");
	const char *argv[] = {path, "init", "spin", "20000", "10", "sync", NULL};
	struct gpt_proc other;
	CUgraph g = NULL;
	CUgraphExec x = NULL;
	float ms = -1;

	if (graph) {
		CU(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_RELAXED));
		CU(cuEventRecordWithFlags(a, s, CU_EVENT_RECORD_EXTERNAL));
		CU(launch(kernel("spin_5000us"), s));
		CU(cuEventRecordWithFlags(b, s, CU_EVENT_RECORD_EXTERNAL));
		CU(cuStreamEndCapture(s, &g));
		CU(cuGraphInstantiateWithFlags(&x, g, 0));
	}
	assert_int_equal(gpt_spawn(&other, argv, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(&other, "spun", 20000), 0);
	if (graph) {
		CU(cuGraphLaunch(x, s));
	} else {
		CU(cuEventRecord(a, s));
		CU(launch(kernel("spin_5000us"), s));
		CU(cuEventRecord(b, s));
	}
	/* Our stream was idle, but the device is busy with the other's
	 * work (far from done: it was queued a moment ago). */
	assert_int_equal(cuEventQuery(a), CUDA_ERROR_NOT_READY);
	CU(cuEventSynchronize(b));
	CU(cuEventElapsedTime(&ms, a, b));
	assert_int_equal(gpt_wait(&other, 30000), 0);
	if (graph) {
		CU(cuGraphExecDestroy(x));
		CU(cuGraphDestroy(g));
	}
	free(path);
	return ms;
}

/* Events complete in device order: an event recorded while another
 * process's kernels are queued completes when the device gets to this
 * process's work, so the elapsed time between events around a kernel is
 * that kernel's duration, not the other process's work too. */
static void test_events_behind_other_process(void **st)
{
	CUevent a, b;
	CUstream s;
	float ms;

	(void)st;
	CU(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CU(cuEventCreate(&a, 0));
	CU(cuEventCreate(&b, 0));
	ms = time_behind_other_process(s, a, b, 0);
	assert_true(ms >= 4.99f && ms <= 5.01f);
	ms = time_behind_other_process(s, a, b, 1);
	assert_true(ms >= 4.99f && ms <= 5.01f);
	/* An event on an idle device completes at once. */
	CU(cuEventRecord(a, s));
	CU(cuEventSynchronize(a));
	CU(cuEventQuery(a));
	CU(cuEventDestroy(a));
	CU(cuEventDestroy(b));
	CU(cuStreamDestroy(s));
}

/* Run gpupool-simctl busy [PID] (NULL: all) with the extra environment
 * `env`; returns its exit code, its output in p->out. */
static int simctl_busy(struct gpt_proc *p, const char *pid, const char *const env[])
{
	char *path = gpt_build_path("sim/gpupool-simctl");
	const char *argv[] = {path, "busy", pid, NULL};
	int rc = gpt_run(p, argv, env, GPT_STDERR, 10000);

	free(path);
	return rc;
}

/* The busy_ns gpupool-simctl reports for `pid` on GPU 0 (-1: no line). */
static int64_t busy_of(const struct gpt_proc *p, int pid)
{
	int64_t found = -1;

	for (const char *l = p->out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		int lpid;
		unsigned gpu;
		unsigned long long ns;

		if (sscanf(l, "pid=%d gpu=%u busy_ns=%llu", &lpid, &gpu, &ns) == 3 &&
		    lpid == pid && gpu == 0) {
			assert_int_equal(found, -1); /* one line per process and GPU */
			found = (int64_t)ns;
		}
	}
	return found;
}

/* gpupool-simctl busy reports each live process's device time exactly:
 * what its kernels have completed, not what is still queued. */
static void test_simctl_busy(void **st)
{
	char *path = gpt_build_path("tests/integration/simwl");
	const char *a_argv[] = {path, "init", "spin-sync", "1000", "20", "hold", NULL};
	const char *b_argv[] = {path, "init", "spin-sync", "1000", "10", "hold", NULL};
	const char *c_argv[] = {path, "init", "spin", "100000", "5", "hold", NULL};
	const char *no_state[] = {"GPUPOOL_SIM_STATE=", NULL};
	struct gpt_proc a, b, c, ctl;
	char pid[32];
	int64_t x;

	(void)st;
	assert_int_equal(gpt_spawn(&a, a_argv, NULL, 0), 0);
	assert_int_equal(gpt_spawn(&b, b_argv, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(&a, "held", 20000), 0);
	assert_int_equal(gpt_wait_for(&b, "held", 20000), 0);
	assert_int_equal(simctl_busy(&ctl, NULL, NULL), 0);
	x = busy_of(&ctl, a.pid);
	assert_true(x >= 19900000 && x <= 20100000);
	x = busy_of(&ctl, b.pid);
	assert_true(x >= 9900000 && x <= 10100000);
	/* One process only. */
	snprintf(pid, sizeof pid, "%d", (int)b.pid);
	assert_int_equal(simctl_busy(&ctl, pid, NULL), 0);
	assert_int_equal(busy_of(&ctl, a.pid), -1);
	x = busy_of(&ctl, b.pid);
	assert_true(x >= 9900000 && x <= 10100000);
	kill(a.pid, SIGKILL);
	kill(b.pid, SIGKILL);
	gpt_wait(&a, 5000);
	gpt_wait(&b, 5000);

	/* 500 ms queued at once: only what has run so far counts. */
	assert_int_equal(gpt_spawn(&c, c_argv, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(&c, "held", 20000), 0);
	usleep(150000);
	snprintf(pid, sizeof pid, "%d", (int)c.pid);
	assert_int_equal(simctl_busy(&ctl, pid, NULL), 0);
	x = busy_of(&ctl, c.pid);
	assert_true(x >= 100000000 && x < 500000000);
	usleep(500000); /* all of it has run now */
	assert_int_equal(simctl_busy(&ctl, pid, NULL), 0);
	x = busy_of(&ctl, c.pid);
	assert_true(x >= 499900000 && x <= 500100000);
	kill(c.pid, SIGKILL);
	gpt_wait(&c, 5000);

	/* Usage and failures. */
	assert_int_equal(simctl_busy(&ctl, "x", NULL), 2);
	assert_true(gpt_has(&ctl, "PID 'x'"));
	assert_int_equal(simctl_busy(&ctl, "0", NULL), 2);
	assert_int_equal(simctl_busy(&ctl, NULL, no_state), 1);
	assert_true(gpt_has(&ctl, "GPUPOOL_SIM_STATE"));
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_launch_validation),
		cmocka_unit_test(test_library_and_occupancy),
		cmocka_unit_test(test_async_and_sync),
		cmocka_unit_test(test_streams_share_device),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_host_functions),
		cmocka_unit_test(test_utilization),
		cmocka_unit_test(test_two_processes),
		cmocka_unit_test(test_events_behind_other_process),
		cmocka_unit_test(test_simctl_busy),
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
