/* test_sim_robustness.c - the simulator never crashes on bad input: NULL
 * outputs, garbage and stale handles and out-of-range values are answered
 * with the real driver's error codes; and many threads using streams,
 * events, kernels and memory at once work. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#include "common/nvml.h"
#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define BAD(x) assert_int_not_equal((x), CUDA_SUCCESS)

static CUcontext ctx;
static CUmodule mod;

static int setup(void **st)
{
	(void)st;
	return cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) ||
			       cuModuleLoadData(&mod, "image")
		       ? -1
		       : 0;
}

static int teardown(void **st)
{
	(void)st;
	return cuDevicePrimaryCtxRelease(0) ? -1 : 0;
}

/* A pointer to something that is not a handle of anything. */
static char garbage[64];
#define G(type) ((type)(void *)garbage)

static void test_null_outputs(void **st)
{
	(void)st;
	assert_int_equal(cuDeviceGetCount(NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuDeviceGetName(NULL, 10, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuDeviceGetUuid(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuDeviceTotalMem(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuDeviceGetPCIBusId(NULL, 13, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuCtxGetCurrent(NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuCtxGetDevice(NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuCtxCreate(NULL, NULL, 0, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemGetInfo(NULL, NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemAllocPitch(NULL, NULL, 16, 16, 4), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemAllocHost(NULL, 16), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemAllocManaged(NULL, 16, CU_MEM_ATTACH_GLOBAL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuStreamCreate(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuEventCreate(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuModuleLoadData(NULL, "x"), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuModuleLoadData((CUmodule *)garbage, NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuModuleLoad((CUmodule *)garbage, "/nonexistent/image.cubin"),
			 CUDA_ERROR_FILE_NOT_FOUND);
	assert_int_equal(cuModuleGetFunction(NULL, mod, "spin_1us"), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemcpy2D(NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemcpy3D(NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuEventElapsedTime(NULL, G(CUevent), G(CUevent)), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuGraphCreate(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuGraphGetNodes(G(CUgraph), NULL, NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemCreate(NULL, 2 << 20, NULL, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemGetAllocationGranularity((size_t *)garbage, NULL, 0),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemPoolCreate(NULL, NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuArrayCreate(NULL, NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuPointerGetAttribute(NULL, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, 0),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuStreamIsCapturing(NULL, NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuThreadExchangeStreamCaptureMode(NULL), CUDA_ERROR_INVALID_VALUE);
}

/* Garbage handles of every kind: refused, never followed. */
static void test_garbage_handles(void **st)
{
	CUdeviceptr p;
	size_t n = 4;
	unsigned u;
	int i;
	float ms;
	CUgraphExec x;
	CUfunction f;
	CUmemGenericAllocationHandle h;

	(void)st;
	assert_int_equal(cuStreamQuery(G(CUstream)), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuStreamSynchronize(G(CUstream)), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuStreamDestroy(G(CUstream)), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuStreamGetFlags(G(CUstream), &u), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuEventRecord(G(CUevent), NULL), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuEventSynchronize(G(CUevent)), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuEventDestroy(G(CUevent)), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuEventElapsedTime(&ms, G(CUevent), G(CUevent)), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuModuleUnload(G(CUmodule)), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuModuleGetFunction(&f, G(CUmodule), "spin_1us"), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuFuncGetAttribute(&i, CU_FUNC_ATTRIBUTE_NUM_REGS, G(CUfunction)),
			 CUDA_ERROR_INVALID_HANDLE);
	BAD(cuMemPoolTrimTo(G(CUmemoryPool), 0));
	BAD(cuArrayDestroy(G(CUarray)));
	BAD(cuMipmappedArrayDestroy(G(CUmipmappedArray)));
	BAD(cuGraphDestroy(G(CUgraph)));
	BAD(cuGraphInstantiateWithFlags(&x, G(CUgraph), 0));
	BAD(cuGraphExecDestroy(G(CUgraphExec)));
	BAD(cuGraphLaunch(G(CUgraphExec), NULL));
	BAD(cuGraphNodeGetType(G(CUgraphNode), (CUgraphNodeType *)&u));
	BAD(cuGraphDestroyNode(G(CUgraphNode)));
	BAD(cuGraphGetNodes(G(CUgraph), NULL, &n));
	BAD(cuMemRelease((CUmemGenericAllocationHandle)(uintptr_t)garbage));
	BAD(cuMemMap(0x2000000000200000ull, 2 << 20, 0, (CUmemGenericAllocationHandle)7, 0));
	BAD(cuMemRetainAllocationHandle(&h, garbage));
	BAD(cuLibraryUnload(G(CUlibrary)));
	BAD(cuCtxDestroy(G(CUcontext)));
	BAD(cuCtxPushCurrent(G(CUcontext)));
	/* Wild device addresses. */
	BAD(cuMemFree(0x1000000000000000ull));
	BAD(cuMemFree(0xdeadbeef));
	BAD(cuMemsetD8(0x1000000000000000ull, 0, 16));
	BAD(cuMemsetD8((CUdeviceptr)(uintptr_t)garbage, 0, 16)); /* plain host memory */
	BAD(cuMemcpyDtoD(0x1234, 0x5678, 8));
	BAD(cuMemGetAddressRange(&p, NULL, 0x1000000000000008ull));
	BAD(cuMemcpyHtoD(0x2000000000000000ull, garbage, 8));
	/* Values out of range. */
	BAD(cuStreamCreate((CUstream *)garbage, 0x10));
	BAD(cuEventCreate((CUevent *)garbage, 0x100));
	BAD(cuCtxSetCacheConfig((CUfunc_cache)77));
	BAD(cuDevicePrimaryCtxSetFlags(99, 0));
	BAD(cuDeviceGetAttribute(&i, (CUdevice_attribute)-5, 0));
	BAD(cuMemAlloc(&p, (size_t)-1));
}

/* Threads creating streams and events, launching, copying and syncing at
 * once; afterwards every byte is given back. */
static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	CUfunction spin, fill;
	CUstream s;
	CUevent e;
	CUdeviceptr d;
	size_t count = 256;
	unsigned v, out[256];
	void *args[] = {&d, &v, &count};

	if (cuCtxSetCurrent(ctx) || cuModuleGetFunction(&spin, mod, "spin_20us") ||
	    cuModuleGetFunction(&fill, mod, "fill_u32"))
		return (void *)1;
	for (int i = 0; i < 40; i++) {
		v = rand_r(&seed);
		if (cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) || cuEventCreate(&e, 0) ||
		    cuMemAllocAsync(&d, count * 4, s) ||
		    cuLaunchKernel(spin, 1, 1, 1, 32, 1, 1, 0, s, NULL, NULL) ||
		    cuLaunchKernel(fill, 1, 1, 1, 32, 1, 1, 0, s, args, NULL) ||
		    cuMemcpyDtoHAsync(out, d, sizeof out, s) || cuEventRecord(e, s) ||
		    cuMemFreeAsync(d, s) || cuEventSynchronize(e) || out[count - 1] != v ||
		    cuStreamSynchronize(s) || cuEventDestroy(e) || cuStreamDestroy(s))
			return (void *)2;
	}
	return NULL;
}

static void test_threads(void **st)
{
	pthread_t t[16];
	size_t f0, f1, tot;

	(void)st;
	CU(cuCtxSynchronize());
	CU(cuMemGetInfo(&f0, &tot));
	for (uintptr_t i = 0; i < 16; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
	for (int i = 0; i < 16; i++) {
		void *r;
		pthread_join(t[i], &r);
		assert_null(r);
	}
	CU(cuCtxSynchronize());
	CU(cuMemGetInfo(&f1, &tot));
	assert_int_equal(f1, f0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null_outputs),
		cmocka_unit_test(test_garbage_handles),
		cmocka_unit_test(test_threads),
	};

	unsetenv("GPUPOOL_SIM_GPUS");
	unsetenv("GPUPOOL_SIM_STATE");
	unsetenv("CUDA_VISIBLE_DEVICES");
	return cmocka_run_group_tests(tests, setup, teardown);
}
