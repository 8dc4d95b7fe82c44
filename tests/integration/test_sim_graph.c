/* test_sim_graph.c - CUDA graphs: built by hand and by stream capture,
 * instantiated and launched (they move real bytes); graph memory reserved
 * at upload/launch, kept after frees until trimmed, refused when the card
 * is full; capture's rules (unsafe calls, legacy stream, fork/join). */
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define MiB (1ull << 20)

static CUcontext ctx;
static CUstream s;
static CUfunction fill;

static size_t free_now(void)
{
	size_t f, t;

	CU(cuMemGetInfo(&f, &t));
	return f;
}

static cuuint64_t gmem(CUgraphMem_attribute a)
{
	cuuint64_t v = 0;

	CU(cuDeviceGetGraphMemAttribute(0, a, &v));
	return v;
}

static int setup(void **st)
{
	CUmodule m;

	(void)st;
	if (cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) ||
	    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) || cuModuleLoadData(&m, "image") ||
	    cuModuleGetFunction(&fill, m, "fill_u32"))
		return -1;
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	cuStreamDestroy(s);
	return cuDevicePrimaryCtxRelease(0) ? -1 : 0;
}

static CUDA_MEMCPY3D dtoh(void *dst, CUdeviceptr src, size_t n)
{
	CUDA_MEMCPY3D c;

	memset(&c, 0, sizeof c);
	c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
	c.srcDevice = src;
	c.dstMemoryType = CU_MEMORYTYPE_HOST;
	c.dstHost = dst;
	c.WidthInBytes = n;
	c.Height = 1;
	c.Depth = 1;
	return c;
}

/* memset -> fill kernel -> copy to host, wired by hand. */
static void test_manual_graph(void **st)
{
	enum { N = 256 };
	unsigned host[N];
	CUdeviceptr d;
	CUgraph g;
	CUgraphExec x;
	CUgraphNode ms, k, cp, nodes[4];
	size_t n = 4, count = N / 2;
	unsigned v = 0xabcd;
	void *args[] = {&d, &v, &count};
	CUDA_MEMSET_NODE_PARAMS mp;
	CUDA_KERNEL_NODE_PARAMS kp;
	CUDA_MEMCPY3D c;
	CUgraphNodeType type;

	(void)st;
	CU(cuMemAlloc(&d, N * 4));
	CU(cuGraphCreate(&g, 0));
	memset(&mp, 0, sizeof mp);
	mp.dst = d;
	mp.value = 7;
	mp.elementSize = 4;
	mp.width = N;
	mp.height = 1;
	CU(cuGraphAddMemsetNode(&ms, g, NULL, 0, &mp, ctx));
	memset(&kp, 0, sizeof kp);
	kp.func = fill;
	kp.gridDimX = kp.gridDimY = kp.gridDimZ = 1;
	kp.blockDimX = 128;
	kp.blockDimY = kp.blockDimZ = 1;
	kp.kernelParams = args;
	CU(cuGraphAddKernelNode(&k, g, &ms, 1, &kp));
	c = dtoh(host, d, sizeof host);
	CU(cuGraphAddMemcpyNode(&cp, g, &k, 1, &c, ctx));
	CU(cuGraphGetNodes(g, nodes, &n));
	assert_int_equal(n, 3);
	CU(cuGraphNodeGetType(k, &type));
	assert_int_equal(type, CU_GRAPH_NODE_TYPE_KERNEL);
	n = 4;
	CU(cuGraphGetRootNodes(g, nodes, &n));
	assert_int_equal(n, 1);
	assert_ptr_equal(nodes[0], ms);
	assert_int_equal(cuGraphAddKernelNode(&k, g, &k, 1, NULL), CUDA_ERROR_INVALID_VALUE);
	CU(cuGraphInstantiate(&x, g, 0));
	/* The kernel's arguments were copied at node creation. */
	v = 0;
	memset(host, 0, sizeof host);
	CU(cuGraphLaunch(x, s));
	CU(cuStreamSynchronize(s));
	assert_int_equal(host[0], 0xabcd);
	assert_int_equal(host[N / 2 - 1], 0xabcd);
	assert_int_equal(host[N / 2], 7);
	/* Launch again. */
	memset(host, 0, sizeof host);
	CU(cuGraphLaunch(x, s));
	CU(cuStreamSynchronize(s));
	assert_int_equal(host[N - 1], 7);
	CU(cuGraphExecDestroy(x));
	CU(cuGraphDestroy(g));
	assert_int_equal(cuGraphLaunch(x, s), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuGraphDestroy(g), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemFree(d));
}

/* An allocation node with a free node: reserved at upload, kept after the
 * free, given back by the trim. */
static void test_graph_memory(void **st)
{
	size_t f0 = free_now();
	CUgraph g;
	CUgraphExec x;
	CUgraphNode an, fn;
	CUDA_MEM_ALLOC_NODE_PARAMS ap;
	CUdeviceptr freed;

	(void)st;
	CU(cuGraphCreate(&g, 0));
	memset(&ap, 0, sizeof ap);
	ap.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	ap.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	ap.poolProps.location.id = 0;
	ap.bytesize = 7 * MiB;
	CU(cuGraphAddMemAllocNode(&an, g, NULL, 0, &ap));
	assert_true(ap.dptr != 0); /* fixed at creation */
	CU(cuGraphAddMemFreeNode(&fn, g, &an, 1, ap.dptr));
	CU(cuGraphMemFreeNodeGetParams(fn, &freed));
	assert_int_equal(freed, ap.dptr);
	CU(cuGraphInstantiateWithFlags(&x, g, 0));
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 0);
	CU(cuGraphUpload(x, s));
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 8 * MiB);
	assert_int_equal(f0 - free_now(), 8 * MiB);
	CU(cuGraphLaunch(x, s));
	CU(cuStreamSynchronize(s));
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 0);
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_USED_MEM_HIGH), 7 * MiB);
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 8 * MiB); /* kept */
	CU(cuDeviceGraphMemTrim(0));
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 0);
	assert_int_equal(free_now(), f0);
	CU(cuGraphExecDestroy(x));
	CU(cuGraphDestroy(g));
}

/* An allocation left live by a launch: usable, freed by cuMemFree, and a
 * relaunch before that is refused unless the graph frees on launch. */
static void test_graph_memory_outlives_launch(void **st)
{
	CUgraph g;
	CUgraphExec x, y;
	CUgraphNode an;
	CUDA_MEM_ALLOC_NODE_PARAMS ap;
	cuuint64_t zero = 0;
	unsigned char b = 0;

	(void)st;
	CU(cuGraphCreate(&g, 0));
	memset(&ap, 0, sizeof ap);
	ap.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	ap.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	ap.bytesize = 3 * MiB;
	CU(cuGraphAddMemAllocNode(&an, g, NULL, 0, &ap));
	CU(cuGraphInstantiateWithFlags(&x, g, 0));
	assert_int_equal(cuMemsetD8(ap.dptr, 1, 1), CUDA_ERROR_INVALID_VALUE); /* not yet */
	CU(cuGraphLaunch(x, s));
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 3 * MiB);
	CU(cuMemsetD8(ap.dptr + 3 * MiB - 1, 9, 1));
	CU(cuMemcpyDtoH(&b, ap.dptr + 3 * MiB - 1, 1));
	assert_int_equal(b, 9);
	assert_int_equal(cuGraphLaunch(x, s), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemFree(ap.dptr));
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 0);
	CU(cuGraphLaunch(x, s));
	CU(cuGraphExecDestroy(x));
	/* Auto-free on launch. */
	CU(cuGraphInstantiateWithFlags(&y, g, CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH));
	CU(cuGraphLaunch(y, s)); /* frees the live one first */
	CU(cuGraphLaunch(y, s));
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 3 * MiB);
	CU(cuMemFreeAsync(ap.dptr, s));
	CU(cuGraphExecDestroy(y));
	CU(cuGraphDestroy(g));
	CU(cuDeviceSetGraphMemAttribute(0, CU_GRAPH_MEM_ATTR_USED_MEM_HIGH, &zero));
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_USED_MEM_HIGH), 0);
	CU(cuDeviceGraphMemTrim(0));
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 0);
}

/* Graph memory that does not fit: cuGraphLaunch says so. */
static void test_graph_memory_oom(void **st)
{
	size_t f0 = free_now();
	CUgraph g;
	CUgraphExec x;
	CUgraphNode an;
	CUDA_MEM_ALLOC_NODE_PARAMS ap;

	(void)st;
	CU(cuGraphCreate(&g, 0));
	memset(&ap, 0, sizeof ap);
	ap.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	ap.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	ap.bytesize = f0 + 2 * MiB;
	CU(cuGraphAddMemAllocNode(&an, g, NULL, 0, &ap));
	CU(cuGraphInstantiateWithFlags(&x, g, 0));
	assert_int_equal(cuGraphLaunch(x, s), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(cuGraphUpload(x, s), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(free_now(), f0);
	CU(cuGraphExecDestroy(x));
	CU(cuGraphDestroy(g));
}

/* Captured work becomes nodes (allocation and free included) instead of
 * running; the graph then does it. */
static void test_capture(void **st)
{
	enum { N = 1024 };
	unsigned host[N];
	CUgraph g;
	CUgraphExec x;
	CUdeviceptr d = 0;
	CUstreamCaptureStatus status;
	cuuint64_t id;
	const CUgraphNode *deps;
	size_t ndeps, n = 16, count = N;
	unsigned v = 0x600d;
	void *args[] = {&d, &v, &count};
	CUgraphNode nodes[16];
	CUgraphNodeType type;
	static const CUgraphNodeType want[] = {
		CU_GRAPH_NODE_TYPE_MEM_ALLOC, CU_GRAPH_NODE_TYPE_MEMSET, CU_GRAPH_NODE_TYPE_KERNEL,
		CU_GRAPH_NODE_TYPE_MEMCPY, CU_GRAPH_NODE_TYPE_MEM_FREE};

	(void)st;
	CU(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CU(cuStreamIsCapturing(s, &status));
	assert_int_equal(status, CU_STREAM_CAPTURE_STATUS_ACTIVE);
	CU(cuMemAllocAsync(&d, N * 4, s));
	assert_true(d != 0);
	CU(cuMemsetD32Async(d, 1, N, s));
	CU(cuLaunchKernel(fill, 1, 1, 1, 32, 1, 1, 0, s, args, NULL));
	CU(cuMemcpyDtoHAsync(host, d, sizeof host, s));
	CU(cuMemFreeAsync(d, s));
	CU(cuStreamGetCaptureInfo(s, &status, &id, &g, &deps, NULL, &ndeps));
	assert_int_equal(status, CU_STREAM_CAPTURE_STATUS_ACTIVE);
	assert_int_equal(ndeps, 1);
	CU(cuStreamEndCapture(s, &g));
	CU(cuStreamIsCapturing(s, &status));
	assert_int_equal(status, CU_STREAM_CAPTURE_STATUS_NONE);
	CU(cuGraphGetNodes(g, nodes, &n));
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		CU(cuGraphNodeGetType(nodes[i], &type));
		assert_int_equal(type, want[i]);
	}
	/* Nothing ran during capture. */
	memset(host, 0, sizeof host);
	assert_int_equal(cuMemsetD8(d, 0, 1), CUDA_ERROR_INVALID_VALUE);
	CU(cuGraphInstantiateWithFlags(&x, g, 0));
	CU(cuGraphLaunch(x, s));
	CU(cuStreamSynchronize(s));
	assert_int_equal(host[0], 0x600d);
	assert_int_equal(host[N - 1], 0x600d);
	assert_int_equal(gmem(CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 0);
	CU(cuGraphExecDestroy(x));
	CU(cuGraphDestroy(g));
	CU(cuDeviceGraphMemTrim(0));
}

/* What a capture refuses. */
static void test_capture_rules(void **st)
{
	CUgraph g = (CUgraph)0x1;
	CUdeviceptr p;
	CUstreamCaptureStatus status;
	CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_RELAXED;

	(void)st;
	/* The legacy stream cannot capture. */
	assert_int_equal(cuStreamBeginCapture(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL),
			 CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	/* cuMemAlloc during a global capture invalidates it. */
	CU(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	assert_int_equal(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL),
			 CUDA_ERROR_ILLEGAL_STATE);
	assert_int_equal(cuMemAlloc(&p, 16), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	CU(cuStreamIsCapturing(s, &status));
	assert_int_equal(status, CU_STREAM_CAPTURE_STATUS_INVALIDATED);
	assert_int_equal(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	assert_null(g);
	/* ... unless this thread is relaxed. */
	CU(cuThreadExchangeStreamCaptureMode(&mode));
	CU(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CU(cuMemAlloc(&p, 16));
	CU(cuMemFree(p));
	/* Synchronizing a capturing stream is refused too. */
	assert_int_equal(cuStreamSynchronize(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	assert_int_equal(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	CU(cuThreadExchangeStreamCaptureMode(&mode));
	assert_int_equal(mode, CU_STREAM_CAPTURE_MODE_RELAXED);
	/* Work on the legacy stream would join a blocking capture. */
	{
		CUstream blocking;
		CU(cuStreamCreate(&blocking, 0));
		CU(cuStreamBeginCapture(blocking, CU_STREAM_CAPTURE_MODE_RELAXED));
		assert_int_equal(cuMemsetD8Async(0, 0, 0, NULL), CUDA_SUCCESS); /* nothing to do */
		CU(cuMemAlloc(&p, 16));
		assert_int_equal(cuMemsetD8Async(p, 0, 16, NULL), CUDA_ERROR_STREAM_CAPTURE_IMPLICIT);
		assert_int_equal(cuStreamEndCapture(blocking, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
		CU(cuMemFree(p));
		CU(cuStreamDestroy(blocking));
	}
	assert_int_equal(cuStreamEndCapture(s, &g), CUDA_ERROR_ILLEGAL_STATE); /* not capturing */
}

/* Fork/join through events: a second stream joins the capture. */
static void test_capture_fork_join(void **st)
{
	CUstream s2;
	CUevent fork_ev, join_ev;
	CUgraph g;
	CUgraphNode nodes[8], deps[4];
	size_t n = 8, nd = 4;
	CUmodule m;
	CUfunction spin;

	(void)st;
	CU(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
	CU(cuEventCreate(&fork_ev, CU_EVENT_DISABLE_TIMING));
	CU(cuEventCreate(&join_ev, CU_EVENT_DISABLE_TIMING));
	CU(cuModuleLoadData(&m, "image"));
	CU(cuModuleGetFunction(&spin, m, "spin_10us"));
	CU(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
	CU(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));
	CU(cuEventRecord(fork_ev, s));
	assert_int_equal(cuEventQuery(fork_ev), CUDA_ERROR_CAPTURED_EVENT);
	CU(cuStreamWaitEvent(s2, fork_ev, 0));
	CU(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, s2, NULL, NULL)); /* branch A */
	CU(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));  /* branch B */
	CU(cuEventRecord(join_ev, s2));
	CU(cuStreamWaitEvent(s, join_ev, 0));
	CU(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));  /* after both */
	CU(cuStreamEndCapture(s, &g));
	CU(cuGraphGetNodes(g, nodes, &n));
	assert_int_equal(n, 4);
	CU(cuGraphNodeGetDependencies(nodes[3], deps, NULL, &nd));
	assert_int_equal(nd, 2); /* the join */
	CU(cuGraphDestroy(g));
	CU(cuEventDestroy(fork_ev));
	CU(cuEventDestroy(join_ev));
	CU(cuStreamDestroy(s2));
	CU(cuModuleUnload(m));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manual_graph),
		cmocka_unit_test(test_graph_memory),
		cmocka_unit_test(test_graph_memory_outlives_launch),
		cmocka_unit_test(test_graph_memory_oom),
		cmocka_unit_test(test_capture),
		cmocka_unit_test(test_capture_rules),
		cmocka_unit_test(test_capture_fork_join),
	};

	setenv("GPUPOOL_SIM_GPUS", "L4:24GiB:58", 1);
	unsetenv("GPUPOOL_SIM_STATE");
	unsetenv("CUDA_VISIBLE_DEVICES");
	return cmocka_run_group_tests(tests, setup, teardown);
}
