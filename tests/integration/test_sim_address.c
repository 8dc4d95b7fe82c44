/* test_sim_address.c - device address space is reused, as with a real
 * driver: a program that allocates and frees far more than the address
 * window of a device (256 TiB) never runs out of it, whatever takes the
 * addresses (cuMemAlloc, pitch, pools, arrays, VMM reservations); freed
 * ranges are coalesced and handed out lowest first, stay 2 MiB aligned,
 * and a freed pointer is refused until its range is handed out again. */
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)
#define WINDOW (1ull << 48)  /* address window of one device (docs/sim.md) */

static CUcontext ctx;

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

/* 8 GiB allocated and freed three times as often as the window holds
 * them: the old never-reuse scheme failed at the 32,768th. */
static void test_alloc_free_forever(void **st)
{
	const unsigned n = 3 * (unsigned)(WINDOW / (8 * GiB));
	CUdeviceptr p, first = 0;

	(void)st;
	for (unsigned i = 0; i < n; i++) {
		CUresult rc = cuMemAlloc(&p, 8 * GiB);
		if (rc != CUDA_SUCCESS)
			fail_msg("allocation %u of %u failed: %d", i, n, (int)rc);
		if (p % (2 * MiB))
			fail_msg("allocation %u at 0x%llx is not 2 MiB aligned", i, (unsigned long long)p);
		if (!first)
			first = p;
		CU(cuMemFree(p));
	}
	/* Lowest first: the same range every time. */
	CU(cuMemAlloc(&p, 8 * GiB));
	assert_int_equal(p, first);
	CU(cuMemFree(p));
}

/* A freed pointer is refused by copies, memsets and frees until its range
 * is handed out again; then it is new, zeroed memory. */
static void test_stale_pointer(void **st)
{
	CUdeviceptr a, b;
	unsigned char buf[64];

	(void)st;
	memset(buf, 0xab, sizeof buf);
	CU(cuMemAlloc(&a, 4 * MiB));
	CU(cuMemcpyHtoD(a + 100, buf, sizeof buf));
	CU(cuMemFree(a));
	assert_int_equal(cuMemcpyHtoD(a, buf, 1), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemcpyDtoH(buf, a + 100, 1), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemsetD8(a, 0, 1), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemFree(a), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemAlloc(&b, 4 * MiB));
	assert_int_equal(b, a); /* reused */
	CU(cuMemcpyDtoH(buf, b + 100, sizeof buf));
	for (size_t i = 0; i < sizeof buf; i++)
		assert_int_equal(buf[i], 0);
	CU(cuMemFree(b));
}

/* Neighbouring freed ranges merge: two freed 2 MiB holes take a 4 MiB
 * allocation; a hole too small for a request is skipped. */
static void test_coalescing(void **st)
{
	CUdeviceptr a, b, c, d, e;

	(void)st;
	CU(cuMemAlloc(&a, 2 * MiB));
	CU(cuMemAlloc(&b, 2 * MiB));
	CU(cuMemAlloc(&c, 2 * MiB));
	assert_int_equal(b, a + 2 * MiB);
	assert_int_equal(c, b + 2 * MiB);
	CU(cuMemFree(a));
	CU(cuMemAlloc(&d, 4 * MiB)); /* a's hole is too small */
	assert_true(d > c);
	CU(cuMemFree(b));
	CU(cuMemAlloc(&e, 4 * MiB)); /* a and b merged */
	assert_int_equal(e, a);
	CU(cuMemFree(e));
	CU(cuMemFree(d));
	CU(cuMemFree(c));
	/* Everything merged back: the lowest address again. */
	CU(cuMemAlloc(&e, 6 * MiB));
	assert_int_equal(e, a);
	CU(cuMemFree(e));
}

/* Pitch, pool and array allocations give their addresses back too:
 * 64 GiB at a time, more than twice round the window. */
static void test_other_kinds(void **st)
{
	const unsigned n = 2 * (unsigned)(WINDOW / (64 * GiB)) + 10;
	CUDA_ARRAY_DESCRIPTOR ad = {
		.Width = 65536, .Height = 65536, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4,
	};
	CUdeviceptr p;
	CUstream s;
	CUarray arr;
	size_t pitch;

	(void)st;
	CU(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	for (unsigned i = 0; i < n; i++) {
		CUresult rc = cuMemAllocPitch(&p, &pitch, 64 * 1024, 1024 * 1024, 4);
		if (rc == CUDA_SUCCESS)
			rc = cuMemFree(p);
		if (rc == CUDA_SUCCESS)
			rc = cuMemAllocAsync(&p, 64 * GiB, s);
		if (rc == CUDA_SUCCESS)
			rc = cuMemFreeAsync(p, s);
		if (rc == CUDA_SUCCESS)
			rc = cuStreamSynchronize(s); /* the pool gives its 64 GiB back */
		if (rc == CUDA_SUCCESS)
			rc = cuArrayCreate(&arr, &ad); /* 64 GiB */
		if (rc == CUDA_SUCCESS)
			rc = cuArrayDestroy(arr);
		if (rc != CUDA_SUCCESS)
			fail_msg("round %u of %u failed: %d", i, n, (int)rc);
	}
	CU(cuStreamDestroy(s));
}

/* VMM reservations: 16 TiB reserved and freed four times round the VMM
 * window, with and without an alignment; one larger than the window is
 * out of memory. */
static void test_vmm_reservations(void **st)
{
	const unsigned n = 4 * (unsigned)(WINDOW / (16 * TiB));
	CUdeviceptr va, big, small, first = 0;

	(void)st;
	for (unsigned i = 0; i < n; i++) {
		size_t align = i % 2 ? 1 * TiB : 0;
		CUresult rc = cuMemAddressReserve(&va, 16 * TiB, align, 0, 0);
		if (rc != CUDA_SUCCESS)
			fail_msg("reservation %u of %u failed: %d", i, n, (int)rc);
		if (va % (align ? align : 2 * MiB))
			fail_msg("reservation %u at 0x%llx is misaligned", i, (unsigned long long)va);
		if (!first)
			first = va;
		CU(cuMemAddressFree(va, 16 * TiB));
	}
	assert_int_equal(cuMemAddressReserve(&va, WINDOW, 0, 0, 0), CUDA_ERROR_OUT_OF_MEMORY);
	/* An aligned reservation leaves the unaligned head free for the
	 * next one. */
	CU(cuMemAddressReserve(&va, 2 * MiB, 0, 0, 0));
	assert_int_equal(va, first);
	CU(cuMemAddressReserve(&big, 1 * GiB, 1 * GiB, 0, 0));
	assert_int_equal(big % GiB, 0);
	CU(cuMemAddressReserve(&small, 2 * MiB, 0, 0, 0));
	assert_int_equal(small, first + 2 * MiB);
	CU(cuMemAddressFree(small, 2 * MiB));
	CU(cuMemAddressFree(big, 1 * GiB));
	CU(cuMemAddressFree(va, 2 * MiB));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_free_forever),
		cmocka_unit_test(test_stale_pointer),
		cmocka_unit_test(test_coalescing),
		cmocka_unit_test(test_other_kinds),
		cmocka_unit_test(test_vmm_reservations),
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
