/* test_sim_memory.c - device memory on the simulator: allocation, the
 * 2 MiB charging granule, OOM exactly at capacity, contexts charged, lazy
 * backing, opaque addresses, copies and memsets that move real bytes,
 * managed and page-locked memory, pointer queries, faulting kernels and
 * concurrent use from 16 threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda.h>

#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

static CUcontext ctx;

static size_t free_now(void)
{
	size_t f, t;

	CU(cuMemGetInfo(&f, &t));
	return f;
}

/* Resident bytes of this process (shared pages included). */
static size_t rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, res = 0;

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%lu %lu", &size, &res), 2);
	fclose(f);
	return res * (size_t)sysconf(_SC_PAGESIZE);
}

static int setup(void **st)
{
	(void)st;
	if (cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx))
		return -1;
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	return cuDevicePrimaryCtxRelease(0) ? -1 : 0;
}

static void test_alloc_free(void **st)
{
	CUdeviceptr a, b;

	(void)st;
	CU(cuMemAlloc(&a, 1000));
	CU(cuMemAlloc(&b, 3 * MiB));
	/* Opaque, aligned, distinct device addresses. */
	assert_true(a >= 0x1000000000000000ull && b >= 0x1000000000000000ull);
	assert_int_equal(a % 512, 0);
	assert_int_equal(b % 512, 0);
	assert_true(b >= a + 1000 || a >= b + 3 * MiB);
	CU(cuMemFree(a));
	assert_int_equal(cuMemFree(a), CUDA_ERROR_INVALID_VALUE); /* twice */
	assert_int_equal(cuMemFree(b + 8), CUDA_ERROR_INVALID_VALUE); /* interior */
	assert_int_equal(cuMemFree(0x1234), CUDA_ERROR_INVALID_VALUE); /* unknown */
	CU(cuMemFree(b));
	CU(cuMemFree(0)); /* NULL is fine, as on the real driver */
	assert_int_equal(cuMemAlloc(&a, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemAlloc(NULL, 16), CUDA_ERROR_INVALID_VALUE);
}

/* Every allocation costs round_up(size, 2 MiB); pitch = round_up(w, 512). */
static void test_granule(void **st)
{
	size_t f0 = free_now(), pitch;
	CUdeviceptr a, p;

	(void)st;
	CU(cuMemAlloc(&a, 1));
	assert_int_equal(f0 - free_now(), 2 * MiB);
	CU(cuMemFree(a));
	CU(cuMemAlloc(&a, 2 * MiB + 1));
	assert_int_equal(f0 - free_now(), 4 * MiB);
	CU(cuMemFree(a));
	CU(cuMemAllocPitch(&p, &pitch, 1000, 3000, 4));
	assert_int_equal(pitch, 1024);
	assert_int_equal(f0 - free_now(), 4 * MiB); /* 1024 * 3000 = 2.93 MiB */
	CU(cuMemFree(p));
	assert_int_equal(cuMemAllocPitch(&p, &pitch, 1000, 10, 3), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemAllocPitch(&p, &pitch, 0, 10, 4), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(free_now(), f0);
}

/* What cuMemGetInfo calls free can be taken, and not a granule more. */
static void test_oom_at_capacity(void **st)
{
	size_t f = free_now(), t;
	CUdeviceptr a, b;

	(void)st;
	CU(cuMemGetInfo(&f, &t));
	assert_int_equal(t, 80 * GiB);
	assert_int_equal(f % (2 * MiB), 0);
	assert_int_equal(cuMemAlloc(&a, f + 1), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(cuMemAlloc(&a, 100 * GiB), CUDA_ERROR_OUT_OF_MEMORY);
	CU(cuMemAlloc(&a, f));
	assert_int_equal(free_now(), 0);
	assert_int_equal(cuMemAlloc(&b, 1), CUDA_ERROR_OUT_OF_MEMORY);
	CU(cuMemFree(a));
	assert_int_equal(free_now(), f);
}

/* A context costs 256 MiB + 2 MiB per SM, on the device, while it lives. */
static void test_context_cost(void **st)
{
	size_t f0 = free_now(), t;
	CUcontext c;

	(void)st;
	/* total - driver reservation (64 MiB) - our primary context */
	CU(cuMemGetInfo(&f0, &t));
	assert_int_equal(t - f0, 64 * MiB + 256 * MiB + 132 * 2 * MiB);
	CU(cuCtxCreate(&c, NULL, 0, 0));
	assert_int_equal(f0 - free_now(), 256 * MiB + 132 * 2 * MiB);
	CU(cuCtxDestroy(c));
	CU(cuCtxSetCurrent(ctx));
	assert_int_equal(free_now(), f0);
}

/* 60 GiB on an 80 GiB card costs only what is written. */
static void test_lazy_backing(void **st)
{
	size_t before = rss(), f0 = free_now();
	CUdeviceptr a;
	char buf[4096];

	(void)st;
	CU(cuMemAlloc(&a, 60 * GiB));
	assert_int_equal(f0 - free_now(), 60 * GiB);
	memset(buf, 7, sizeof buf);
	CU(cuMemcpyHtoD(a + 30 * GiB, buf, sizeof buf));
	CU(cuMemcpyHtoD(a + 60 * GiB - sizeof buf, buf, sizeof buf));
	memset(buf, 0, sizeof buf);
	CU(cuMemcpyDtoH(buf, a + 30 * GiB + 100, 1));
	assert_int_equal(buf[0], 7);
	/* Zeroing a big range costs nothing either. */
	CU(cuMemsetD8(a + GiB, 0, 8 * GiB));
	assert_true(rss() < before + 64 * MiB);
	CU(cuMemFree(a));
	assert_int_equal(free_now(), f0);
}

static void test_copies(void **st)
{
	enum { N = 1 << 20 };
	unsigned char *h = malloc(N), *g = malloc(N);
	CUdeviceptr a, b;
	CUstream s;

	(void)st;
	for (int i = 0; i < N; i++)
		h[i] = (unsigned char)(i * 7 + 3);
	CU(cuMemAlloc(&a, N));
	CU(cuMemAlloc(&b, N));
	CU(cuStreamCreate(&s, 0));
	CU(cuMemcpyHtoD(a, h, N));
	CU(cuMemcpyDtoD(b, a, N));
	memset(g, 0, N);
	CU(cuMemcpyDtoH(g, b, N));
	assert_memory_equal(g, h, N);
	/* Unified cuMemcpy and the async forms. */
	memset(g, 0, N);
	CU(cuMemcpyDtoDAsync(b + 1000, a, 5000, s));
	CU(cuMemcpyDtoHAsync(g, b + 1000, 5000, s));
	CU(cuStreamSynchronize(s));
	assert_memory_equal(g, h, 5000);
	CU(cuMemcpy((CUdeviceptr)(uintptr_t)g, a + 10, 100));
	assert_memory_equal(g, h + 10, 100);
	/* Out of range: an error, never a stray host access. */
	assert_int_equal(cuMemcpyHtoD(a + N - 10, h, 11), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemcpyDtoH(g, a + N, 1), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemcpyDtoD(a, 0x1000000000000000ull + (1ull << 47), 8),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemcpyHtoD(a, NULL, 8), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemcpyHtoD((CUdeviceptr)(uintptr_t)g, h, 8), CUDA_ERROR_INVALID_VALUE);
	/* Memsets of each width, 2-D too. */
	CU(cuMemsetD8(a, 0xab, 100));
	CU(cuMemsetD16(a + 100, 0x1234, 10));
	CU(cuMemsetD32Async(a + 120, 0xdeadbeef, 10, s));
	CU(cuMemcpyDtoH(g, a, 160));
	assert_int_equal(g[99], 0xab);
	assert_int_equal(*(uint16_t *)(g + 118), 0x1234);
	assert_int_equal(*(uint32_t *)(g + 156), 0xdeadbeef);
	assert_int_equal(cuMemsetD32(a + 2, 1, 4), CUDA_ERROR_INVALID_VALUE); /* misaligned */
	assert_int_equal(cuMemsetD8(a + N - 4, 1, 5), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemsetD2D8(a, 256, 0x5a, 16, 4));
	CU(cuMemcpyDtoH(g, a, 1024));
	assert_int_equal(g[256 * 3 + 15], 0x5a);
	assert_int_equal(g[256 * 3 + 16], h[256 * 3 + 16]); /* untouched past the width */
	/* A 2-D copy between pitched layouts. */
	{
		CUDA_MEMCPY2D c;
		memset(&c, 0, sizeof c);
		c.srcMemoryType = CU_MEMORYTYPE_HOST;
		c.srcHost = h;
		c.srcPitch = 100;
		c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
		c.dstDevice = b;
		c.dstPitch = 512;
		c.dstXInBytes = 8;
		c.dstY = 1;
		c.WidthInBytes = 50;
		c.Height = 10;
		CU(cuMemcpy2D(&c));
		CU(cuMemcpyDtoH(g, b, 512 * 12));
		for (int y = 0; y < 10; y++)
			assert_memory_equal(g + 512 * (y + 1) + 8, h + 100 * y, 50);
		c.WidthInBytes = 600; /* wider than the pitch */
		assert_int_equal(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
	}
	CU(cuStreamDestroy(s));
	CU(cuMemFree(a));
	CU(cuMemFree(b));
	assert_int_equal(cuMemcpyHtoD(a, h, 1), CUDA_ERROR_INVALID_VALUE); /* freed */
	free(h);
	free(g);
}

static void test_managed_and_host(void **st)
{
	size_t f0 = free_now();
	CUdeviceptr m, d, base;
	size_t size;
	unsigned flags;
	void *p;
	int *hp;

	(void)st;
	CU(cuMemAllocManaged(&m, 3 * MiB, CU_MEM_ATTACH_GLOBAL));
	assert_int_equal(f0 - free_now(), 4 * MiB);
	((char *)(uintptr_t)m)[5] = 42; /* a host address too */
	CU(cuMemsetD8(m + 6, 43, 1));
	assert_int_equal(((char *)(uintptr_t)m)[6], 43);
	/* Advice and prefetch: checked, nothing to move. */
	{
		CUmemLocation dev0 = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
		CUmemLocation dev7 = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 7};
		CUmemLocation host = {.type = CU_MEM_LOCATION_TYPE_HOST, .id = 0};
		CU(cuMemAdvise(m, MiB, CU_MEM_ADVISE_SET_READ_MOSTLY, dev0));
		CU(cuMemAdvise(m + MiB, MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, host));
		assert_int_equal(cuMemAdvise(m, 4 * MiB, CU_MEM_ADVISE_SET_READ_MOSTLY, dev0),
				 CUDA_ERROR_INVALID_VALUE); /* past the end */
		assert_int_equal(cuMemAdvise(m, MiB, CU_MEM_ADVISE_SET_ACCESSED_BY, dev7),
				 CUDA_ERROR_INVALID_DEVICE);
		CU(cuMemPrefetchAsync(m, 3 * MiB, dev0, 0, NULL));
		CU(cuMemPrefetchAsync(m, 3 * MiB, host, 0, NULL));
		assert_int_equal(cuMemPrefetchAsync(m, 3 * MiB, host, 1, NULL), CUDA_ERROR_INVALID_VALUE);
	}
	CU(cuMemFree(m));
	assert_int_equal(cuMemAllocManaged(&m, 4, 7), CUDA_ERROR_INVALID_VALUE);
	/* Page-locked host memory: not charged, device-mapped at its address. */
	CU(cuMemAllocHost(&p, 5000));
	CU(cuMemHostAlloc((void **)&hp, 4096, CU_MEMHOSTALLOC_DEVICEMAP));
	assert_int_equal(free_now(), f0);
	CU(cuMemHostGetDevicePointer(&d, hp, 0));
	assert_int_equal(d, (CUdeviceptr)(uintptr_t)hp);
	CU(cuMemHostGetFlags(&flags, hp));
	assert_true(flags & CU_MEMHOSTALLOC_DEVICEMAP);
	CU(cuMemsetD32(d, 77, 4));
	assert_int_equal(hp[3], 77);
	CU(cuMemGetAddressRange(&base, &size, (CUdeviceptr)(uintptr_t)p + 10));
	assert_int_equal(base, (CUdeviceptr)(uintptr_t)p);
	assert_int_equal(size, 5000);
	assert_int_equal(cuMemFreeHost((char *)p + 1), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemFreeHost(p));
	CU(cuMemFreeHost(hp));
	assert_int_equal(cuMemFreeHost(p), CUDA_ERROR_INVALID_VALUE);
	/* Registered memory. */
	p = malloc(8192);
	CU(cuMemHostRegister(p, 8192, 0));
	assert_int_equal(cuMemHostRegister(p, 100, 0), CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
	CU(cuMemHostGetDevicePointer(&d, (char *)p + 8, 0));
	CU(cuMemHostUnregister(p));
	assert_int_equal(cuMemHostUnregister(p), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
	free(p);
}

static void test_pointer_queries(void **st)
{
	CUdeviceptr a, m, base;
	unsigned type;
	unsigned long long id1, id2;
	int ordinal, managed;
	size_t size;
	CUcontext c;
	void *data[3];
	CUpointer_attribute attrs[3] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
					CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
					CU_POINTER_ATTRIBUTE_IS_MANAGED};

	(void)st;
	CU(cuMemAlloc(&a, 10000));
	CU(cuMemAllocManaged(&m, 100, CU_MEM_ATTACH_GLOBAL));
	CU(cuMemGetAddressRange(&base, &size, a + 9999));
	assert_int_equal(base, a);
	assert_int_equal(size, 10000);
	assert_int_equal(cuMemGetAddressRange(&base, &size, a + 10000), CUDA_ERROR_NOT_FOUND);
	CU(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, a + 5));
	assert_int_equal(type, CU_MEMORYTYPE_DEVICE);
	CU(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, a));
	assert_int_equal(ordinal, 0);
	CU(cuPointerGetAttribute(&c, CU_POINTER_ATTRIBUTE_CONTEXT, a));
	assert_ptr_equal(c, ctx);
	CU(cuPointerGetAttribute(&id1, CU_POINTER_ATTRIBUTE_BUFFER_ID, a));
	CU(cuPointerGetAttribute(&id2, CU_POINTER_ATTRIBUTE_BUFFER_ID, m));
	assert_int_not_equal(id1, id2);
	CU(cuPointerGetAttribute(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, m));
	assert_int_equal(managed, 1);
	CU(cuPointerGetAttribute(&base, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, a + 77));
	assert_int_equal(base, a);
	assert_int_equal(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, 0x42),
			 CUDA_ERROR_INVALID_VALUE);
	/* The plural form does not fail on foreign pointers. */
	data[0] = &type;
	data[1] = &ordinal;
	data[2] = &managed;
	CU(cuPointerGetAttributes(3, attrs, data, (CUdeviceptr)(uintptr_t)&type));
	assert_int_equal(type, 0);
	assert_int_equal(ordinal, -2);
	CU(cuPointerGetAttributes(3, attrs, data, m));
	assert_int_equal(type, CU_MEMORYTYPE_DEVICE);
	assert_int_equal(managed, 1);
	CU(cuMemFree(a));
	CU(cuMemFree(m));
}

/* fill_u32 writes real words; outside memory it faults the context, which
 * then reports CUDA_ERROR_ILLEGAL_ADDRESS until destroyed. */
static void test_kernels_write(void **st)
{
	CUcontext c;
	CUmodule mod;
	CUfunction fill;
	CUdeviceptr a;
	unsigned v = 0x01020304, out[4];
	size_t count = 1000;
	void *args[] = {&a, &v, &count};

	(void)st;
	CU(cuCtxCreate(&c, NULL, 0, 0));
	CU(cuModuleLoadData(&mod, "image"));
	CU(cuModuleGetFunction(&fill, mod, "fill_u32"));
	CU(cuMemAlloc(&a, count * 4));
	CU(cuLaunchKernel(fill, 4, 1, 1, 256, 1, 1, 0, NULL, args, NULL));
	CU(cuMemcpyDtoH(out, a + 4 * (count - 4), sizeof out));
	assert_int_equal(out[3], v);
	/* The `extra` form. */
	struct {
		CUdeviceptr p;
		unsigned v, pad;
		size_t n;
	} buf = {a, 7, 0, 2};
	size_t bsize = sizeof buf;
	void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &bsize,
			 CU_LAUNCH_PARAM_END};
	CU(cuLaunchKernel(fill, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra));
	CU(cuMemcpyDtoH(out, a, sizeof out));
	assert_int_equal(out[1], 7);
	assert_int_equal(out[2], v);
	/* Past the end: the launch succeeds, the fault sticks. */
	count = 1001;
	CU(cuLaunchKernel(fill, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
	assert_int_equal(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
	assert_int_equal(cuLaunchKernel(fill, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL),
			 CUDA_ERROR_ILLEGAL_ADDRESS);
	CU(cuCtxDestroy(c));
	CU(cuCtxSetCurrent(ctx));
	CU(cuCtxSynchronize());
}

/* 16 threads allocating, copying and freeing at once; all memory comes
 * back. */
static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	CUdeviceptr p[8] = {0};
	char buf[256];

	if (cuCtxSetCurrent(ctx))
		return (void *)1;
	for (int i = 0; i < 400; i++) {
		int k = (int)(rand_r(&seed) % 8);
		if (p[k]) {
			if (cuMemcpyDtoH(buf, p[k], sizeof buf) || buf[0] != (char)k ||
			    cuMemFree(p[k]))
				return (void *)2;
			p[k] = 0;
		} else {
			size_t n = 256 + rand_r(&seed) % (4 << 20);
			memset(buf, k, sizeof buf);
			if (cuMemAlloc(&p[k], n) || cuMemcpyHtoD(p[k], buf, sizeof buf))
				return (void *)3;
		}
	}
	for (int k = 0; k < 8; k++)
		if (p[k] && cuMemFree(p[k]))
			return (void *)4;
	return NULL;
}

static void test_threads(void **st)
{
	pthread_t t[16];
	size_t f0 = free_now();

	(void)st;
	for (uintptr_t i = 0; i < 16; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
	for (int i = 0; i < 16; i++) {
		void *r;
		pthread_join(t[i], &r);
		assert_null(r);
	}
	assert_int_equal(free_now(), f0);
}

/* A process's own use is charged to it, as NVML and the state show. */
static void test_no_context(void **st)
{
	CUdeviceptr a;
	size_t f, t;
	CUcontext cur;

	(void)st;
	CU(cuCtxPopCurrent(&cur));
	assert_int_equal(cuMemAlloc(&a, 16), CUDA_ERROR_INVALID_CONTEXT);
	assert_int_equal(cuMemGetInfo(&f, &t), CUDA_ERROR_INVALID_CONTEXT);
	CU(cuCtxPushCurrent(cur));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_free),
		cmocka_unit_test(test_granule),
		cmocka_unit_test(test_oom_at_capacity),
		cmocka_unit_test(test_context_cost),
		cmocka_unit_test(test_lazy_backing),
		cmocka_unit_test(test_copies),
		cmocka_unit_test(test_managed_and_host),
		cmocka_unit_test(test_pointer_queries),
		cmocka_unit_test(test_kernels_write),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_no_context),
	};

	unsetenv("GPUPOOL_SIM_GPUS");
	unsetenv("GPUPOOL_SIM_STATE");
	unsetenv("CUDA_VISIBLE_DEVICES");
	return cmocka_run_group_tests(tests, setup, teardown);
}
