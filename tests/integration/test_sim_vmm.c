/* test_sim_vmm.c - virtual memory management: physical allocations are
 * charged at creation and freed only once released AND unmapped
 * everywhere; mappings need access; contiguous mappings read as one
 * range; handles export as file descriptors and import uncharged, within
 * a process and across processes. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda.h>

#include "common/nvml.h"
#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define MiB (1ull << 20)
#define G (2 * MiB)

static CUcontext ctx;
static CUmemAllocationProp prop;
static CUmemAccessDesc rw;

static size_t free_now(void)
{
	size_t f, t;

	CU(cuMemGetInfo(&f, &t));
	return f;
}

static int setup(void **st)
{
	(void)st;
	if (cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) || nvmlInit())
		return -1;
	memset(&prop, 0, sizeof prop);
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = 0;
	prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
	rw.location = prop.location;
	rw.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	nvmlShutdown();
	return cuDevicePrimaryCtxRelease(0) ? -1 : 0;
}

static void test_granularity_and_create(void **st)
{
	size_t g, f0 = free_now();
	CUmemGenericAllocationHandle h;
	CUmemAllocationProp got;

	(void)st;
	CU(cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
	assert_int_equal(g, G);
	CU(cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
	assert_int_equal(g, G);
	assert_int_equal(cuMemCreate(&h, G + 4096, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemCreate(&h, 0, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemCreate(&h, 3 * G, &prop, 0));
	assert_int_equal(f0 - free_now(), 3 * G); /* charged at create */
	CU(cuMemGetAllocationPropertiesFromHandle(&got, h));
	assert_int_equal(got.location.id, 0);
	assert_int_equal(got.requestedHandleTypes, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
	CU(cuMemRelease(h));
	assert_int_equal(free_now(), f0);
	assert_int_equal(cuMemRelease(h), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemRelease(0x1234), CUDA_ERROR_INVALID_VALUE);
	prop.location.id = 3;
	assert_int_equal(cuMemCreate(&h, G, &prop, 0), CUDA_ERROR_INVALID_DEVICE);
	prop.location.id = 0;
}

/* Released but mapped: still charged; unmapped too: freed (and the other
 * order). */
static void test_refcount(void **st)
{
	size_t f0 = free_now();
	CUmemGenericAllocationHandle h, h2;
	CUdeviceptr va;
	char b = 0;

	(void)st;
	CU(cuMemAddressReserve(&va, 4 * G, 0, 0, 0));
	assert_int_equal(free_now(), f0); /* address space is free */
	CU(cuMemCreate(&h, 2 * G, &prop, 0));
	CU(cuMemMap(va, 2 * G, 0, h, 0));
	CU(cuMemSetAccess(va, 2 * G, &rw, 1));
	CU(cuMemRelease(h));
	assert_int_equal(f0 - free_now(), 2 * G);
	CU(cuMemsetD8(va + 100, 5, 1));
	CU(cuMemcpyDtoH(&b, va + 100, 1));
	assert_int_equal(b, 5);
	/* Retain through the address: one more release needed. */
	CU(cuMemRetainAllocationHandle(&h2, (void *)(uintptr_t)(va + G)));
	assert_int_equal(h2, h);
	CU(cuMemRelease(h2));
	CU(cuMemUnmap(va, 2 * G));
	assert_int_equal(free_now(), f0);
	/* Other order: unmap first, then release. */
	CU(cuMemCreate(&h, G, &prop, 0));
	CU(cuMemMap(va + G, G, 0, h, 0));
	CU(cuMemUnmap(va + G, G));
	assert_int_equal(f0 - free_now(), G);
	CU(cuMemRelease(h));
	assert_int_equal(free_now(), f0);
	CU(cuMemAddressFree(va, 4 * G));
	assert_int_equal(cuMemAddressFree(va, 4 * G), CUDA_ERROR_INVALID_VALUE);
}

/* Two allocations mapped back to back are one range for copies; access
 * must be granted; bad mappings are refused. */
static void test_mappings(void **st)
{
	enum { N = 64 };
	CUmemGenericAllocationHandle h1, h2;
	unsigned long long flags;
	CUdeviceptr va, base;
	size_t size;
	char in[N], out[N];

	(void)st;
	for (int i = 0; i < N; i++)
		in[i] = (char)i;
	CU(cuMemAddressReserve(&va, 4 * G, 4 * G, 0, 0));
	assert_int_equal(va % (4 * G), 0);
	CU(cuMemCreate(&h1, G, &prop, 0));
	CU(cuMemCreate(&h2, 2 * G, &prop, 0));
	CU(cuMemMap(va, G, 0, h1, 0));
	CU(cuMemMap(va + G, G, G, h2, 0)); /* the second half of h2 */
	assert_int_equal(cuMemMap(va, G, 0, h2, 0), CUDA_ERROR_INVALID_VALUE); /* overlap */
	assert_int_equal(cuMemMap(va + 2 * G, G, 2 * G, h2, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemMap(va + 3 * G, 2 * G, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
	/* No access yet: not usable. */
	assert_int_equal(cuMemcpyHtoD(va, in, N), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemGetAccess(&flags, &prop.location, va));
	assert_int_equal(flags, CU_MEM_ACCESS_FLAGS_PROT_NONE);
	CU(cuMemSetAccess(va, 2 * G, &rw, 1));
	CU(cuMemGetAccess(&flags, &prop.location, va + G));
	assert_int_equal(flags, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
	assert_int_equal(cuMemSetAccess(va, 3 * G, &rw, 1), CUDA_ERROR_INVALID_VALUE); /* unmapped */
	/* Across the boundary of the two mappings. */
	CU(cuMemcpyHtoD(va + G - N / 2, in, N));
	CU(cuMemcpyDtoH(out, va + G - N / 2, N));
	assert_memory_equal(in, out, N);
	CU(cuMemGetAddressRange(&base, &size, va + G + 5));
	assert_int_equal(base, va + G);
	assert_int_equal(size, G);
	/* Unmap must cover whole mappings. */
	assert_int_equal(cuMemUnmap(va, G / 2), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemUnmap(va, 2 * G));
	assert_int_equal(cuMemcpyDtoH(out, va, 1), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemRelease(h1));
	CU(cuMemRelease(h2));
	/* Freeing a range with mappings left unmaps them. */
	CU(cuMemCreate(&h1, G, &prop, 0));
	CU(cuMemMap(va, G, 0, h1, 0));
	CU(cuMemRelease(h1));
	CU(cuMemAddressFree(va, 4 * G));
	assert_int_equal(cuMemAddressReserve(&va, G + 1, 0, 0, 0), CUDA_ERROR_INVALID_VALUE);
}

/* Export as an fd, import: the importer sees the bytes and is not charged. */
static void test_export_import_local(void **st)
{
	CUmemGenericAllocationHandle h, imp;
	CUdeviceptr a, b;
	size_t f0;
	int fd = -1;
	char c = 0;

	(void)st;
	CU(cuMemCreate(&h, G, &prop, 0));
	CU(cuMemExportToShareableHandle(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0));
	assert_true(fd >= 0);
	f0 = free_now();
	CU(cuMemImportFromShareableHandle(&imp, (void *)(intptr_t)fd,
					  CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR));
	close(fd);
	assert_int_equal(free_now(), f0);
	CU(cuMemAddressReserve(&a, G, 0, 0, 0));
	CU(cuMemAddressReserve(&b, G, 0, 0, 0));
	CU(cuMemMap(a, G, 0, h, 0));
	CU(cuMemMap(b, G, 0, imp, 0));
	CU(cuMemSetAccess(a, G, &rw, 1));
	CU(cuMemSetAccess(b, G, &rw, 1));
	CU(cuMemsetD8(a + 12345, 99, 1));
	CU(cuMemcpyDtoH(&c, b + 12345, 1));
	assert_int_equal(c, 99);
	CU(cuMemUnmap(a, G));
	CU(cuMemUnmap(b, G));
	CU(cuMemAddressFree(a, G));
	CU(cuMemAddressFree(b, G));
	CU(cuMemRelease(imp));
	CU(cuMemRelease(h));
	/* Not shareable unless asked for at creation. */
	prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
	CU(cuMemCreate(&h, G, &prop, 0));
	assert_int_equal(cuMemExportToShareableHandle(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
			 CUDA_ERROR_INVALID_VALUE);
	CU(cuMemRelease(h));
	prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
	assert_int_equal(cuMemImportFromShareableHandle(&imp, (void *)(intptr_t)0,
							CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR),
			 CUDA_ERROR_INVALID_VALUE); /* stdin is no allocation */
}

/* NVML usage of a pid on device 0 (0 if absent). */
static unsigned long long usage_of(int pid)
{
	nvmlDevice_t d;
	nvmlProcessInfo_t p[16];
	unsigned n = 16;

	assert_int_equal(nvmlDeviceGetHandleByIndex(0, &d), NVML_SUCCESS);
	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, p), NVML_SUCCESS);
	for (unsigned i = 0; i < n; i++)
		if ((int)p[i].pid == pid)
			return p[i].usedGpuMemory;
	return 0;
}

/* Another process exports; this one imports through /proc and is not
 * charged for it. */
static void test_export_import_processes(void **st)
{
	char *path = gpt_build_path("tests/integration/simwl");
	const char *argv[] = {path, "init", "vmm-export", "4MiB", "77", "hold", NULL};
	struct gpt_proc p;
	unsigned long long mine = usage_of(getpid()), theirs;
	char fdpath[64];
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;
	unsigned char b = 0;
	int fd;

	(void)st;
	assert_int_equal(gpt_spawn(&p, argv, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(&p, "held", 20000), 0);
	assert_int_equal(gpt_get_u64(&p, "vmmexp"), 0);
	theirs = usage_of(p.pid);
	assert_int_equal(theirs, 256 * MiB + 132 * G + 4 * MiB);
	snprintf(fdpath, sizeof fdpath, "/proc/%d/fd/%d", (int)p.pid, (int)gpt_get_u64(&p, "vmmfd"));
	fd = open(fdpath, O_RDWR);
	assert_true(fd >= 0);
	CU(cuMemImportFromShareableHandle(&h, (void *)(intptr_t)fd,
					  CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR));
	close(fd);
	CU(cuMemAddressReserve(&va, 4 * MiB, 0, 0, 0));
	CU(cuMemMap(va, 4 * MiB, 0, h, 0));
	CU(cuMemSetAccess(va, 4 * MiB, &rw, 1));
	CU(cuMemcpyDtoH(&b, va + 3 * MiB, 1));
	assert_int_equal(b, 77);
	assert_int_equal(usage_of(getpid()), mine);
	assert_int_equal(usage_of(p.pid), theirs);
	CU(cuMemUnmap(va, 4 * MiB));
	CU(cuMemAddressFree(va, 4 * MiB));
	CU(cuMemRelease(h));
	kill(p.pid, SIGKILL);
	gpt_wait(&p, 5000);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_granularity_and_create),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_mappings),
		cmocka_unit_test(test_export_import_local),
		cmocka_unit_test(test_export_import_processes),
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
