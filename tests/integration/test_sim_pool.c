/* test_sim_pool.c - the stream-ordered allocator: pools charge the device
 * for what they have reserved, grow in 2 MiB granules, keep freed memory
 * until a synchronization point trims them to max(release threshold, used),
 * and report exactly that through their attributes. */
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define MiB (1ull << 20)

static CUcontext ctx;
static CUstream s;

static size_t free_now(void)
{
	size_t f, t;

	CU(cuMemGetInfo(&f, &t));
	return f;
}

static cuuint64_t attr(CUmemoryPool p, CUmemPool_attribute a)
{
	cuuint64_t v = 0;

	CU(cuMemPoolGetAttribute(p, a, &v));
	return v;
}

#define RESERVED(p) attr(p, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT)
#define USED(p) attr(p, CU_MEMPOOL_ATTR_USED_MEM_CURRENT)

static int setup(void **st)
{
	(void)st;
	if (cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) ||
	    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING))
		return -1;
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	cuStreamDestroy(s);
	return cuDevicePrimaryCtxRelease(0) ? -1 : 0;
}

/* Reserved grows by granules and is charged; freed memory stays reserved
 * until the stream is synchronized. */
static void test_grow_and_trim(void **st)
{
	size_t f0 = free_now();
	CUmemoryPool pool, cur;
	CUdeviceptr a, b, c;

	(void)st;
	CU(cuDeviceGetDefaultMemPool(&pool, 0));
	CU(cuDeviceGetMemPool(&cur, 0));
	assert_ptr_equal(pool, cur);
	{
		/* The CUDA 13 forms by location. */
		CUmemLocation l = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
		CU(cuMemGetMemPool(&cur, &l, CU_MEM_ALLOCATION_TYPE_PINNED));
		assert_ptr_equal(pool, cur);
		CU(cuMemGetDefaultMemPool(&cur, &l, CU_MEM_ALLOCATION_TYPE_PINNED));
		assert_ptr_equal(pool, cur);
		l.id = 3;
		assert_int_equal(cuMemGetMemPool(&cur, &l, CU_MEM_ALLOCATION_TYPE_PINNED),
				 CUDA_ERROR_INVALID_DEVICE);
	}
	assert_int_equal(RESERVED(pool), 0);
	CU(cuMemAllocAsync(&a, 1 * MiB, s));
	assert_int_equal(RESERVED(pool), 2 * MiB);
	assert_int_equal(USED(pool), 1 * MiB);
	assert_int_equal(f0 - free_now(), 2 * MiB);
	CU(cuMemAllocAsync(&b, 1 * MiB, s));
	assert_int_equal(RESERVED(pool), 2 * MiB); /* fits the granule held */
	CU(cuMemAllocAsync(&c, 1 * MiB + 1, s));
	assert_int_equal(USED(pool), 3 * MiB + 512);
	assert_int_equal(RESERVED(pool), 4 * MiB);
	assert_int_equal(f0 - free_now(), 4 * MiB);
	CU(cuMemsetD8Async(c, 9, 1 * MiB + 1, s));
	CU(cuMemFreeAsync(a, s));
	CU(cuMemFreeAsync(b, s));
	assert_int_equal(USED(pool), 1 * MiB + 512);
	assert_int_equal(RESERVED(pool), 4 * MiB); /* not before a sync */
	CU(cuStreamSynchronize(s));
	assert_int_equal(RESERVED(pool), 2 * MiB); /* round_up(used) */
	CU(cuMemFreeAsync(c, s));
	CU(cuStreamSynchronize(s));
	assert_int_equal(RESERVED(pool), 0);
	assert_int_equal(free_now(), f0);
	assert_int_equal(attr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), 4 * MiB);
	assert_int_equal(attr(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH), 3 * MiB + 512);
	assert_int_equal(cuMemFreeAsync(c, s), CUDA_ERROR_INVALID_VALUE); /* twice */
}

/* The release threshold keeps memory reserved across syncs; TrimTo and
 * every kind of synchronization apply it. */
static void test_threshold(void **st)
{
	cuuint64_t thr = 16 * MiB, zero = 0;
	size_t f0 = free_now();
	CUmemoryPool pool;
	CUdeviceptr a;
	CUevent e;

	(void)st;
	CU(cuDeviceGetDefaultMemPool(&pool, 0));
	CU(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &thr));
	assert_int_equal(attr(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD), 16 * MiB);
	CU(cuMemAllocAsync(&a, 40 * MiB, s));
	CU(cuMemFreeAsync(a, s));
	CU(cuStreamSynchronize(s));
	assert_int_equal(RESERVED(pool), 16 * MiB);
	assert_int_equal(f0 - free_now(), 16 * MiB);
	CU(cuMemPoolTrimTo(pool, 4 * MiB));
	assert_int_equal(RESERVED(pool), 4 * MiB);
	/* An event synchronization trims too. */
	CU(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &zero));
	CU(cuEventCreate(&e, 0));
	CU(cuEventRecord(e, s));
	CU(cuEventSynchronize(e));
	assert_int_equal(RESERVED(pool), 0);
	CU(cuEventDestroy(e));
	/* ... and a context synchronization. */
	CU(cuMemAllocAsync(&a, 4 * MiB, s));
	CU(cuMemFreeAsync(a, s));
	assert_int_equal(RESERVED(pool), 4 * MiB);
	CU(cuCtxSynchronize());
	assert_int_equal(RESERVED(pool), 0);
	assert_int_equal(free_now(), f0);
}

static void test_attributes(void **st)
{
	CUmemoryPool pool;
	cuuint64_t v = 5, zero = 0;
	int reuse;

	(void)st;
	CU(cuDeviceGetDefaultMemPool(&pool, 0));
	CU(cuMemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &reuse));
	assert_int_equal(reuse, 1);
	reuse = 0;
	CU(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &reuse));
	CU(cuMemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &reuse));
	assert_int_equal(reuse, 0);
	/* Current figures are read-only; watermarks only reset to 0. */
	assert_int_equal(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &v),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &v),
			 CUDA_ERROR_INVALID_VALUE);
	CU(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, &zero));
	assert_int_equal(attr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), RESERVED(pool));
	assert_int_equal(cuMemPoolGetAttribute(pool, (CUmemPool_attribute)99, &v),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemPoolGetAttribute((CUmemoryPool)&v, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &v),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemPoolDestroy(pool), CUDA_ERROR_INVALID_VALUE); /* the default */
}

/* Created pools: their own accounting, a size limit, current-pool
 * selection, and destruction deferred to the last free. */
static void test_user_pool(void **st)
{
	size_t f0 = free_now();
	CUmemPoolProps props;
	CUmemoryPool pool, cur, def;
	CUdeviceptr a, b;

	(void)st;
	memset(&props, 0, sizeof props);
	props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	props.location.id = 0;
	props.maxSize = 8 * MiB;
	CU(cuMemPoolCreate(&pool, &props));
	CU(cuMemAllocFromPoolAsync(&a, 6 * MiB, pool, s));
	assert_int_equal(RESERVED(pool), 6 * MiB);
	assert_int_equal(cuMemAllocFromPoolAsync(&b, 3 * MiB, pool, s), CUDA_ERROR_OUT_OF_MEMORY);
	CU(cuDeviceSetMemPool(0, pool));
	CU(cuDeviceGetMemPool(&cur, 0));
	assert_ptr_equal(cur, pool);
	CU(cuMemAllocAsync(&b, 1 * MiB, s)); /* from the current pool */
	assert_int_equal(USED(pool), 7 * MiB);
	CU(cuPointerGetAttribute(&cur, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, b));
	assert_ptr_equal(cur, pool);
	/* Destroyed with allocations out: it lives until they are freed. */
	CU(cuMemPoolDestroy(pool));
	CU(cuDeviceGetDefaultMemPool(&def, 0));
	CU(cuDeviceGetMemPool(&cur, 0));
	assert_ptr_equal(cur, def);
	assert_int_equal(f0 - free_now(), 8 * MiB);
	CU(cuMemFreeAsync(a, s));
	assert_int_equal(f0 - free_now(), 2 * MiB);
	CU(cuMemFree(b)); /* cuMemFree takes stream-ordered memory too */
	assert_int_equal(free_now(), f0);
	props.location.id = 7;
	assert_int_equal(cuMemPoolCreate(&pool, &props), CUDA_ERROR_INVALID_VALUE);
	props.location.id = 0;
	props.allocType = CU_MEM_ALLOCATION_TYPE_INVALID;
	assert_int_equal(cuMemPoolCreate(&pool, &props), CUDA_ERROR_INVALID_VALUE);
}

/* A pool cannot grow past the device. */
static void test_pool_oom(void **st)
{
	size_t f0 = free_now();
	CUdeviceptr a;
	CUmemoryPool pool;

	(void)st;
	CU(cuDeviceGetDefaultMemPool(&pool, 0));
	assert_int_equal(cuMemAllocAsync(&a, f0 + 1, s), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(RESERVED(pool), 0);
	CU(cuMemAllocAsync(&a, f0, s));
	assert_int_equal(free_now(), 0);
	CU(cuMemFreeAsync(a, s));
	CU(cuStreamSynchronize(s));
	assert_int_equal(free_now(), f0);
	assert_int_equal(cuMemAllocAsync(&a, 0, s), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemAllocAsync(&a, 16, (CUstream)0x99), CUDA_ERROR_INVALID_HANDLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow_and_trim),
		cmocka_unit_test(test_threshold),
		cmocka_unit_test(test_attributes),
		cmocka_unit_test(test_user_pool),
		cmocka_unit_test(test_pool_oom),
	};

	setenv("GPUPOOL_SIM_GPUS", "A100-40GB:40GiB:108", 1);
	unsetenv("GPUPOOL_SIM_STATE");
	unsetenv("CUDA_VISIBLE_DEVICES");
	return cmocka_run_group_tests(tests, setup, teardown);
}
