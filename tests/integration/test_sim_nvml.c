/* test_sim_nvml.c - the simulated NVML: init reference counting, every
 * GPU regardless of CUDA_VISIBLE_DEVICES, handles and identity, memory v1
 * and v2 (the driver reservation), process lists with their
 * INSUFFICIENT_SIZE protocol, argument checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda.h>

#include "common/nvml.h"
#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define NV(x) assert_int_equal((x), NVML_SUCCESS)
#define MiB (1ull << 20)
#define RESERVED (64 * MiB)
#define CTX(sms) (256 * MiB + 2 * MiB * (sms))

static CUcontext ctx;

static void test_init_refcount(void **st)
{
	unsigned n;

	(void)st;
	assert_int_equal(nvmlShutdown(), NVML_ERROR_UNINITIALIZED);
	assert_int_equal(nvmlDeviceGetCount(&n), NVML_ERROR_UNINITIALIZED);
	NV(nvmlInit());
	NV(nvmlInitWithFlags(0));
	NV(nvmlShutdown());
	NV(nvmlDeviceGetCount(&n)); /* still one reference */
	NV(nvmlShutdown());
	assert_int_equal(nvmlDeviceGetCount_v2(&n), NVML_ERROR_UNINITIALIZED);
	assert_int_equal(nvmlInitWithFlags(0x80), NVML_ERROR_INVALID_ARGUMENT);
	NV(nvmlInit_v2());
}

static void test_system(void **st)
{
	char v[80];
	int cv;

	(void)st;
	NV(nvmlSystemGetDriverVersion(v, sizeof v));
	assert_true(strlen(v) > 4);
	assert_int_equal(nvmlSystemGetDriverVersion(v, 3), NVML_ERROR_INSUFFICIENT_SIZE);
	NV(nvmlSystemGetNVMLVersion(v, sizeof v));
	NV(nvmlSystemGetCudaDriverVersion_v2(&cv));
	assert_int_equal(cv, CUDA_VERSION);
	assert_string_equal(nvmlErrorString(NVML_ERROR_NOT_FOUND), "Not Found");
	assert_string_equal(nvmlErrorString((nvmlReturn_t)4242), "Unknown Error");
}

/* NVML sees both GPUs; CUDA_VISIBLE_DEVICES=1 shows CUDA only the second. */
static void test_devices(void **st)
{
	unsigned n, idx;
	int cn;
	nvmlDevice_t d0, d1, d;
	char name[96], uuid[96], cname[96];
	nvmlPciInfo_t pci;
	CUuuid cu;

	(void)st;
	NV(nvmlDeviceGetCount_v2(&n));
	assert_int_equal(n, 2);
	CU(cuDeviceGetCount(&cn));
	assert_int_equal(cn, 1);
	NV(nvmlDeviceGetHandleByIndex_v2(0, &d0));
	NV(nvmlDeviceGetHandleByIndex(1, &d1));
	assert_int_equal(nvmlDeviceGetHandleByIndex_v2(2, &d), NVML_ERROR_INVALID_ARGUMENT);
	NV(nvmlDeviceGetName(d1, name, sizeof name));
	assert_string_equal(name, "NVIDIA T4");
	CU(cuDeviceGetName(cname, sizeof cname, 0));
	assert_string_equal(cname, name); /* CUDA's device 0 is machine GPU 1 */
	assert_int_equal(nvmlDeviceGetName(d1, name, 4), NVML_ERROR_INSUFFICIENT_SIZE);
	NV(nvmlDeviceGetUUID(d1, uuid, sizeof uuid));
	assert_memory_equal(uuid, "GPU-", 4);
	CU(cuDeviceGetUuid(&cu, 0));
	{
		char hex[3];
		snprintf(hex, sizeof hex, "%02x", (unsigned char)cu.bytes[0]);
		assert_memory_equal(uuid + 4, hex, 2);
	}
	NV(nvmlDeviceGetHandleByUUID(uuid, &d));
	assert_ptr_equal(d, d1);
	assert_int_equal(nvmlDeviceGetHandleByUUID("GPU-nope", &d), NVML_ERROR_NOT_FOUND);
	NV(nvmlDeviceGetIndex(d1, &idx));
	assert_int_equal(idx, 1);
	NV(nvmlDeviceGetMinorNumber(d1, &idx));
	assert_int_equal(idx, 1);
	NV(nvmlDeviceGetPciInfo_v3(d1, &pci));
	assert_int_equal(pci.pciDeviceId & 0xffff, 0x10de);
	assert_int_equal(strlen(pci.busId), 16);
	NV(nvmlDeviceGetHandleByPciBusId_v2(pci.busId, &d));
	assert_ptr_equal(d, d1);
	NV(nvmlDeviceGetHandleByPciBusId_v2(pci.busIdLegacy, &d));
	assert_ptr_equal(d, d1);
	/* Bad handles are refused, not followed. */
	assert_int_equal(nvmlDeviceGetIndex((nvmlDevice_t)&idx, &idx), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceGetIndex(NULL, &idx), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceGetIndex(d1, NULL), NVML_ERROR_INVALID_ARGUMENT);
}

static void test_memory_info(void **st)
{
	nvmlDevice_t d;
	nvmlMemory_t m1;
	nvmlMemory_v2_t m2;
	CUdeviceptr p;
	size_t f, t;

	(void)st;
	NV(nvmlDeviceGetHandleByIndex(1, &d));
	CU(cuMemAlloc(&p, 100 * MiB));
	memset(&m2, 0, sizeof m2);
	assert_int_equal(nvmlDeviceGetMemoryInfo_v2(d, &m2), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
	m2.version = nvmlMemory_v2;
	NV(nvmlDeviceGetMemoryInfo_v2(d, &m2));
	NV(nvmlDeviceGetMemoryInfo(d, &m1));
	assert_int_equal(m2.total, 16ull << 30);
	assert_int_equal(m2.reserved, RESERVED);
	assert_int_equal(m2.used, CTX(40) + 100 * MiB);
	assert_int_equal(m2.free, m2.total - m2.reserved - m2.used);
	assert_int_equal(m1.used, m2.used + m2.reserved);
	assert_int_equal(m1.free, m2.free);
	CU(cuMemGetInfo(&f, &t));
	assert_int_equal(f, m2.free);
	assert_int_equal(t, m2.total);
	CU(cuMemFree(p));
	NV(nvmlDeviceGetMemoryInfo_v2(d, &m2));
	assert_int_equal(m2.used, CTX(40));
	assert_int_equal(nvmlDeviceGetMemoryInfo(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
}

static void test_process_lists(void **st)
{
	nvmlDevice_t d, d0;
	nvmlProcessInfo_v1_t p1[4];
	nvmlProcessInfo_t p3[4];
	unsigned n = 0;
	CUdeviceptr a;

	(void)st;
	NV(nvmlDeviceGetHandleByIndex(1, &d));
	NV(nvmlDeviceGetHandleByIndex(0, &d0));
	CU(cuMemAlloc(&a, 10 * MiB));
	/* Ask with no room: told how many there are. */
	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, NULL),
			 NVML_ERROR_INSUFFICIENT_SIZE);
	assert_int_equal(n, 1);
	n = 4;
	NV(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, p3));
	assert_int_equal(n, 1);
	assert_int_equal(p3[0].pid, (unsigned)getpid());
	assert_int_equal(p3[0].usedGpuMemory, CTX(40) + 10 * MiB);
	assert_int_equal(p3[0].gpuInstanceId, 0xFFFFFFFFu);
	assert_int_equal(p3[0].computeInstanceId, 0xFFFFFFFFu);
	n = 4;
	NV(nvmlDeviceGetComputeRunningProcesses(d, &n, p1));
	assert_int_equal(n, 1);
	assert_int_equal(p1[0].usedGpuMemory, CTX(40) + 10 * MiB);
	n = 4;
	NV(nvmlDeviceGetComputeRunningProcesses_v2(d0, &n, (nvmlProcessInfo_v2_t *)p3));
	assert_int_equal(n, 0); /* nothing of ours on the other GPU */
	n = 4;
	NV(nvmlDeviceGetGraphicsRunningProcesses_v3(d, &n, p3));
	assert_int_equal(n, 0);
	n = 2;
	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, NULL),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(d, NULL, p3),
			 NVML_ERROR_INVALID_ARGUMENT);
	CU(cuMemFree(a));
}

static void test_process_utilization_empty(void **st)
{
	nvmlDevice_t d0;
	nvmlProcessUtilizationSample_t s[4];
	unsigned n = 4;
	nvmlUtilization_t u;

	(void)st;
	NV(nvmlDeviceGetHandleByIndex(0, &d0));
	assert_int_equal(nvmlDeviceGetProcessUtilization(d0, s, &n, 0), NVML_ERROR_NOT_FOUND);
	NV(nvmlDeviceGetUtilizationRates(d0, &u));
	assert_int_equal(u.gpu, 0);
	assert_int_equal(u.memory, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_refcount),
		cmocka_unit_test(test_system),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_memory_info),
		cmocka_unit_test(test_process_lists),
		cmocka_unit_test(test_process_utilization_empty),
	};
	int rc;

	setenv("GPUPOOL_SIM_GPUS", "H100-SXM-80GB:80GiB:132,T4:16GiB:40", 1);
	setenv("CUDA_VISIBLE_DEVICES", "1", 1);
	unsetenv("GPUPOOL_SIM_STATE");
	if (cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	nvmlShutdown();
	cuDevicePrimaryCtxRelease(0);
	return rc;
}
