/* test_sim_array.c - CUDA arrays: descriptors, the memory they are charged
 * (exactly what the memory-requirement queries report), copies in and out
 * (linear, 2-D, 3-D), mipmapped arrays and their levels, bad arguments. */
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define MiB (1ull << 20)

static CUcontext ctx;

static size_t free_now(void)
{
	size_t f, t;

	CU(cuMemGetInfo(&f, &t));
	return f;
}

static int setup(void **st)
{
	(void)st;
	return cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) ? -1 : 0;
}

static int teardown(void **st)
{
	(void)st;
	return cuDevicePrimaryCtxRelease(0) ? -1 : 0;
}

static void test_create_and_charge(void **st)
{
	size_t f0 = free_now();
	CUDA_ARRAY_DESCRIPTOR d = {.Width = 1000, .Height = 1000, .Format = CU_AD_FORMAT_FLOAT,
				   .NumChannels = 4};
	CUDA_ARRAY_DESCRIPTOR got;
	CUDA_ARRAY3D_DESCRIPTOR d3, got3;
	CUDA_ARRAY_MEMORY_REQUIREMENTS req;
	CUarray a, b;

	(void)st;
	CU(cuArrayCreate(&a, &d));
	CU(cuArrayGetDescriptor(&got, a));
	assert_int_equal(got.Width, 1000);
	assert_int_equal(got.NumChannels, 4);
	CU(cuArrayGetMemoryRequirements(&req, a, 0));
	/* 1000 * 1000 * 16 bytes, in 2 MiB granules. */
	assert_int_equal(req.size, 16 * MiB);
	assert_int_equal(req.alignment, 2 * MiB);
	assert_int_equal(f0 - free_now(), req.size);
	/* 3-D and layered. */
	memset(&d3, 0, sizeof d3);
	d3.Width = 64;
	d3.Height = 64;
	d3.Depth = 64;
	d3.Format = CU_AD_FORMAT_UNSIGNED_INT8;
	d3.NumChannels = 2;
	CU(cuArray3DCreate(&b, &d3));
	CU(cuArray3DGetDescriptor(&got3, b));
	assert_int_equal(got3.Depth, 64);
	assert_int_equal(cuArrayGetDescriptor(&got, b), CUDA_ERROR_INVALID_VALUE); /* 3-D */
	CU(cuArrayGetMemoryRequirements(&req, b, 0));
	assert_int_equal(req.size, 2 * MiB); /* 512 KiB rounded up */
	assert_int_equal(f0 - free_now(), 18 * MiB);
	CU(cuArrayDestroy(a));
	CU(cuArrayDestroy(b));
	assert_int_equal(free_now(), f0);
	assert_int_equal(cuArrayDestroy(a), CUDA_ERROR_INVALID_HANDLE);
	assert_int_equal(cuArrayGetMemoryRequirements(&req, a, 0), CUDA_ERROR_INVALID_HANDLE);
}

static void test_bad_descriptors(void **st)
{
	CUDA_ARRAY3D_DESCRIPTOR d;
	CUarray a;

	(void)st;
	memset(&d, 0, sizeof d);
	d.Width = 16;
	d.Height = 16;
	d.Format = CU_AD_FORMAT_FLOAT;
	d.NumChannels = 3; /* 1, 2 or 4 */
	assert_int_equal(cuArray3DCreate(&a, &d), CUDA_ERROR_INVALID_VALUE);
	d.NumChannels = 1;
	d.Format = (CUarray_format)0x77;
	assert_int_equal(cuArray3DCreate(&a, &d), CUDA_ERROR_INVALID_VALUE);
	d.Format = CU_AD_FORMAT_FLOAT;
	d.Width = 0;
	assert_int_equal(cuArray3DCreate(&a, &d), CUDA_ERROR_INVALID_VALUE);
	d.Width = 16;
	d.Height = 8;
	d.Depth = 6;
	d.Flags = CUDA_ARRAY3D_CUBEMAP; /* faces must be square */
	assert_int_equal(cuArray3DCreate(&a, &d), CUDA_ERROR_INVALID_VALUE);
	d.Height = 16;
	CU(cuArray3DCreate(&a, &d));
	CU(cuArrayDestroy(a));
	d.Flags = CUDA_ARRAY3D_SPARSE;
	assert_int_equal(cuArray3DCreate(&a, &d), CUDA_ERROR_NOT_SUPPORTED);
	assert_int_equal(cuArray3DCreate(&a, NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuArrayDestroy((CUarray)&d), CUDA_ERROR_INVALID_HANDLE);
}

static void test_copies(void **st)
{
	enum { W = 100, H = 50 };
	CUDA_ARRAY_DESCRIPTOR d = {.Width = W, .Height = H, .Format = CU_AD_FORMAT_UNSIGNED_INT32,
				   .NumChannels = 1};
	unsigned *in = malloc(W * H * 4), *out = calloc(W * H, 4);
	CUarray a, b;
	CUdeviceptr dev;
	CUDA_MEMCPY2D c;

	(void)st;
	for (unsigned i = 0; i < W * H; i++)
		in[i] = i * 2654435761u;
	CU(cuArrayCreate(&a, &d));
	CU(cuArrayCreate(&b, &d));
	CU(cuMemcpyHtoA(a, 0, in, W * H * 4));
	CU(cuMemcpyAtoA(b, 0, a, 0, W * H * 4));
	CU(cuMemcpyAtoH(out, b, 0, W * H * 4));
	assert_memory_equal(in, out, W * H * 4);
	assert_int_equal(cuMemcpyHtoA(a, 4, in, W * H * 4), CUDA_ERROR_INVALID_VALUE); /* past end */
	/* Through device memory. */
	CU(cuMemAlloc(&dev, W * H * 4));
	CU(cuMemcpyAtoD(dev, a, 400, 800));
	CU(cuMemcpyDtoH(out, dev, 800));
	assert_memory_equal(out, in + 100, 800);
	/* A 2-D block from an array into a pitched host buffer. */
	memset(&c, 0, sizeof c);
	c.srcMemoryType = CU_MEMORYTYPE_ARRAY;
	c.srcArray = a;
	c.srcXInBytes = 40; /* column 10 */
	c.srcY = 5;
	c.dstMemoryType = CU_MEMORYTYPE_HOST;
	c.dstHost = out;
	c.dstPitch = 64;
	c.WidthInBytes = 64;
	c.Height = 3;
	CU(cuMemcpy2D(&c));
	for (int y = 0; y < 3; y++)
		assert_memory_equal((char *)out + 64 * y, in + (5 + y) * W + 10, 64);
	c.srcY = H - 2; /* runs off the bottom */
	assert_int_equal(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemFree(dev));
	CU(cuArrayDestroy(a));
	CU(cuArrayDestroy(b));
	free(in);
	free(out);
}

static void test_mipmapped(void **st)
{
	size_t f0 = free_now();
	CUDA_ARRAY3D_DESCRIPTOR d, got;
	CUDA_ARRAY_MEMORY_REQUIREMENTS req;
	CUmipmappedArray m;
	CUarray l0, l3;
	unsigned char buf[16] = {1, 2, 3}, back[16];

	(void)st;
	memset(&d, 0, sizeof d);
	d.Width = 1024;
	d.Height = 512;
	d.Format = CU_AD_FORMAT_UNSIGNED_INT8;
	d.NumChannels = 4;
	assert_int_equal(cuMipmappedArrayCreate(&m, &d, 12), CUDA_ERROR_INVALID_VALUE); /* max 11 */
	assert_int_equal(cuMipmappedArrayCreate(&m, &d, 0), CUDA_ERROR_INVALID_VALUE);
	CU(cuMipmappedArrayCreate(&m, &d, 4));
	CU(cuMipmappedArrayGetMemoryRequirements(&req, m, 0));
	/* 2 MiB + 512 KiB + 128 KiB + 32 KiB, rounded to the granule. */
	assert_int_equal(req.size, 4 * MiB);
	assert_int_equal(f0 - free_now(), req.size);
	CU(cuMipmappedArrayGetLevel(&l0, m, 0));
	CU(cuMipmappedArrayGetLevel(&l3, m, 3));
	assert_int_equal(cuMipmappedArrayGetLevel(&l3, m, 4), CUDA_ERROR_INVALID_VALUE);
	CU(cuArray3DGetDescriptor(&got, l3));
	assert_int_equal(got.Width, 128);
	assert_int_equal(got.Height, 64);
	CU(cuMemcpyHtoA(l3, 0, buf, sizeof buf));
	CU(cuMemcpyAtoH(back, l3, 0, sizeof back));
	assert_memory_equal(buf, back, sizeof buf);
	assert_int_equal(cuArrayDestroy(l0), CUDA_ERROR_INVALID_HANDLE); /* owned by m */
	CU(cuMipmappedArrayDestroy(m));
	assert_int_equal(free_now(), f0);
	assert_int_equal(cuArray3DGetDescriptor(&got, l3), CUDA_ERROR_INVALID_HANDLE);
}

/* Arrays belong to their context: destroying it frees them. */
static void test_context_owns_arrays(void **st)
{
	size_t f0 = free_now();
	CUDA_ARRAY_DESCRIPTOR d = {.Width = 4096, .Height = 1024, .Format = CU_AD_FORMAT_FLOAT,
				   .NumChannels = 1};
	CUcontext c;
	CUarray a;

	(void)st;
	CU(cuCtxCreate(&c, NULL, 0, 0));
	CU(cuArrayCreate(&a, &d));
	CU(cuCtxDestroy(c));
	CU(cuCtxSetCurrent(ctx));
	assert_int_equal(free_now(), f0);
	assert_int_equal(cuArrayDestroy(a), CUDA_ERROR_INVALID_HANDLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_and_charge),
		cmocka_unit_test(test_bad_descriptors),
		cmocka_unit_test(test_copies),
		cmocka_unit_test(test_mipmapped),
		cmocka_unit_test(test_context_owns_arrays),
	};

	unsetenv("GPUPOOL_SIM_GPUS");
	unsetenv("GPUPOOL_SIM_STATE");
	unsetenv("CUDA_VISIBLE_DEVICES");
	return cmocka_run_group_tests(tests, setup, teardown);
}
