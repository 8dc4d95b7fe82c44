/* test_sim_context.c - contexts on the simulator: primary contexts are
 * reference counted and cost device memory while active; created contexts
 * stack per thread; destroying a context destroys what it owns; bad
 * handles are errors, never crashes. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <cuda.h>

#include "common/nvml.h"
#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define MiB (1ull << 20)
#define CTX_COST (256 * MiB + 2 * MiB * 132)

/* Device memory in use, as NVML v2 reports it (all processes). */
static unsigned long long used(void)
{
	nvmlDevice_t d;
	nvmlMemory_v2_t m = {.version = nvmlMemory_v2};

	assert_int_equal(nvmlDeviceGetHandleByIndex_v2(0, &d), NVML_SUCCESS);
	assert_int_equal(nvmlDeviceGetMemoryInfo_v2(d, &m), NVML_SUCCESS);
	return m.used;
}

static void test_primary_refcount(void **st)
{
	unsigned long long u0 = used();
	unsigned flags;
	int active;
	CUcontext a, b;

	(void)st;
	CU(cuDevicePrimaryCtxGetState(0, &flags, &active));
	assert_int_equal(active, 0);
	CU(cuDevicePrimaryCtxRetain(&a, 0));
	CU(cuDevicePrimaryCtxRetain(&b, 0));
	assert_ptr_equal(a, b);
	CU(cuDevicePrimaryCtxGetState(0, &flags, &active));
	assert_int_equal(active, 1);
	assert_int_equal(used() - u0, CTX_COST);
	CU(cuDevicePrimaryCtxRelease(0));
	assert_int_equal(used() - u0, CTX_COST); /* one reference left */
	CU(cuDevicePrimaryCtxRelease(0));
	assert_int_equal(used(), u0);
	assert_int_equal(cuDevicePrimaryCtxRelease(0), CUDA_ERROR_INVALID_CONTEXT);
	/* Retained again: the same handle, charged again. */
	CU(cuDevicePrimaryCtxRetain(&b, 0));
	assert_ptr_equal(a, b);
	assert_int_equal(used() - u0, CTX_COST);
	CU(cuDevicePrimaryCtxRelease(0));
	assert_int_equal(cuDevicePrimaryCtxRetain(&a, 5), CUDA_ERROR_INVALID_DEVICE);
	assert_int_equal(cuDevicePrimaryCtxRetain(NULL, 0), CUDA_ERROR_INVALID_VALUE);
}

/* Reset destroys the primary context's allocations and gives its memory
 * back; a later retain starts afresh. */
static void test_primary_reset(void **st)
{
	unsigned long long u0 = used();
	CUcontext c;
	CUdeviceptr p;
	int active;
	unsigned flags;

	(void)st;
	CU(cuDevicePrimaryCtxRetain(&c, 0));
	CU(cuCtxSetCurrent(c));
	CU(cuMemAlloc(&p, 64 * MiB));
	assert_int_equal(used() - u0, CTX_COST + 64 * MiB);
	CU(cuDevicePrimaryCtxReset(0));
	assert_int_equal(used(), u0);
	CU(cuDevicePrimaryCtxGetState(0, &flags, &active));
	assert_int_equal(active, 0);
	assert_int_equal(cuMemAlloc(&p, 1), CUDA_ERROR_CONTEXT_IS_DESTROYED);
	CU(cuDevicePrimaryCtxRetain(&c, 0));
	assert_int_equal(cuMemFree(p), CUDA_ERROR_INVALID_VALUE); /* gone with the reset */
	CU(cuDevicePrimaryCtxSetFlags(0, CU_CTX_SCHED_BLOCKING_SYNC));
	CU(cuDevicePrimaryCtxGetState(0, &flags, &active));
	assert_int_equal(flags, CU_CTX_SCHED_BLOCKING_SYNC);
	assert_int_equal(cuDevicePrimaryCtxSetFlags(0, 0x1000), CUDA_ERROR_INVALID_VALUE);
	CU(cuDevicePrimaryCtxRelease(0));
	CU(cuDevicePrimaryCtxRelease(0));
	CU(cuCtxSetCurrent(NULL));
	assert_int_equal(used(), u0);
}

static void test_created_stack(void **st)
{
	unsigned long long u0 = used(), id1, id2;
	CUcontext a, b, cur;
	CUdevice dev;
	CUdeviceptr p;
	size_t v;

	(void)st;
	CU(cuCtxCreate(&a, NULL, 0, 1));
	CU(cuCtxCreate(&b, NULL, CU_CTX_SCHED_YIELD, 0));
	CU(cuCtxGetCurrent(&cur));
	assert_ptr_equal(cur, b);
	CU(cuCtxGetDevice(&dev));
	assert_int_equal(dev, 0);
	CU(cuCtxGetId(a, &id1));
	CU(cuCtxGetId(b, &id2));
	assert_int_not_equal(id1, id2);
	assert_int_equal(used() - u0, CTX_COST); /* device 1 is charged for a */
	CU(cuMemAlloc(&p, 10 * MiB));
	assert_int_equal(used() - u0, CTX_COST + 10 * MiB);
	/* Destroying the current context pops it and frees what it owned. */
	CU(cuCtxDestroy(b));
	assert_int_equal(used(), u0);
	CU(cuCtxGetCurrent(&cur));
	assert_ptr_equal(cur, a);
	CU(cuCtxGetDevice(&dev));
	assert_int_equal(dev, 1);
	CU(cuCtxGetLimit(&v, CU_LIMIT_STACK_SIZE));
	CU(cuCtxSetLimit(CU_LIMIT_STACK_SIZE, 4096));
	CU(cuCtxGetLimit(&v, CU_LIMIT_STACK_SIZE));
	assert_int_equal(v, 4096);
	assert_int_equal(cuCtxSetLimit(CU_LIMIT_MAX, 1), CUDA_ERROR_UNSUPPORTED_LIMIT);
	CU(cuCtxPopCurrent(&cur));
	assert_ptr_equal(cur, a);
	assert_int_equal(cuCtxPopCurrent(&cur), CUDA_ERROR_INVALID_CONTEXT);
	assert_int_equal(cuCtxGetDevice(&dev), CUDA_ERROR_INVALID_CONTEXT);
	CU(cuCtxPushCurrent(a));
	CU(cuCtxSynchronize());
	CU(cuCtxDestroy(a));
	CU(cuCtxGetCurrent(&cur));
	assert_null(cur);
}

static pthread_barrier_t bar;

/* Binds the context, lets the main thread destroy it, then uses it. */
static void *other_thread(void *arg)
{
	CUdevice d;
	intptr_t rc;

	cuCtxSetCurrent((CUcontext)arg);
	pthread_barrier_wait(&bar);
	pthread_barrier_wait(&bar);
	rc = cuCtxGetDevice(&d);
	cuCtxSetCurrent(NULL);
	return (void *)rc;
}

static void test_bad_handles(void **st)
{
	CUcontext c, prim;
	pthread_t t;
	void *r;

	(void)st;
	assert_int_equal(cuCtxDestroy((CUcontext)0x1234), CUDA_ERROR_INVALID_CONTEXT);
	assert_int_equal(cuCtxSetCurrent((CUcontext)(uintptr_t)&c), CUDA_ERROR_INVALID_CONTEXT);
	assert_int_equal(cuCtxPushCurrent(NULL), CUDA_ERROR_INVALID_CONTEXT);
	assert_int_equal(cuCtxCreate(&c, NULL, 0x12345, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuCtxCreate(&c, NULL, 0, 9), CUDA_ERROR_INVALID_DEVICE);
	CU(cuDevicePrimaryCtxRetain(&prim, 0));
	assert_int_equal(cuCtxDestroy(prim), CUDA_ERROR_INVALID_CONTEXT);
	CU(cuDevicePrimaryCtxRelease(0));
	/* A context destroyed while current in another thread. */
	CU(cuCtxCreate(&c, NULL, 0, 0));
	CU(cuCtxPopCurrent(NULL));
	pthread_barrier_init(&bar, NULL, 2);
	assert_int_equal(pthread_create(&t, NULL, other_thread, c), 0);
	pthread_barrier_wait(&bar);
	CU(cuCtxDestroy(c));
	pthread_barrier_wait(&bar);
	pthread_join(t, &r);
	pthread_barrier_destroy(&bar);
	assert_int_equal((intptr_t)r, CUDA_ERROR_CONTEXT_IS_DESTROYED);
	assert_int_equal(cuCtxDestroy(c), CUDA_ERROR_INVALID_CONTEXT);
}

/* The process shows in NVML's list while it has a context. */
static void test_nvml_sees_context(void **st)
{
	nvmlDevice_t d;
	nvmlProcessInfo_t p[8];
	unsigned n = 8, found = 0;
	CUcontext c;

	(void)st;
	CU(cuDevicePrimaryCtxRetain(&c, 0));
	assert_int_equal(nvmlDeviceGetHandleByIndex_v2(0, &d), NVML_SUCCESS);
	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, p), NVML_SUCCESS);
	for (unsigned i = 0; i < n; i++)
		if (p[i].pid == (unsigned)getpid()) {
			found = 1;
			assert_int_equal(p[i].usedGpuMemory, CTX_COST);
		}
	assert_true(found);
	CU(cuDevicePrimaryCtxRelease(0));
	n = 8;
	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, p), NVML_SUCCESS);
	for (unsigned i = 0; i < n; i++)
		assert_int_not_equal(p[i].pid, (unsigned)getpid());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_primary_refcount),
		cmocka_unit_test(test_primary_reset),
		cmocka_unit_test(test_created_stack),
		cmocka_unit_test(test_bad_handles),
		cmocka_unit_test(test_nvml_sees_context),
	};
	int rc;

	setenv("GPUPOOL_SIM_GPUS", "H100-SXM-80GB:80GiB:132,H100-SXM-80GB:80GiB:132", 1);
	unsetenv("GPUPOOL_SIM_STATE");
	unsetenv("CUDA_VISIBLE_DEVICES");
	if (cuInit(0) || nvmlInit_v2())
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	nvmlShutdown();
	return rc;
}
