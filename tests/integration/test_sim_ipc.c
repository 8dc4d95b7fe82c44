/* test_sim_ipc.c - legacy CUDA IPC between processes: another process's
 * allocation opened here shows its bytes, is not charged to this process,
 * is reference counted per handle, and survives its exporter's death
 * without crashing the importer. */
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

static CUcontext ctx;

static int setup(void **st)
{
	(void)st;
	return cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) ||
			       nvmlInit()
		       ? -1
		       : 0;
}

static int teardown(void **st)
{
	(void)st;
	nvmlShutdown();
	return cuDevicePrimaryCtxRelease(0) ? -1 : 0;
}

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

static void parse_handle(const char *hex, CUipcMemHandle *h)
{
	assert_non_null(hex);
	assert_int_equal(strlen(hex), 2 * sizeof *h);
	for (size_t k = 0; k < sizeof *h; k++) {
		unsigned x;
		assert_int_equal(sscanf(hex + 2 * k, "%2x", &x), 1);
		h->reserved[k] = (char)x;
	}
}

/* Start an exporter holding 8 MiB of byte 42. */
static void exporter(struct gpt_proc *p, CUipcMemHandle *h)
{
	char *path = gpt_build_path("tests/integration/simwl");
	const char *argv[] = {path, "init", "alloc", "8MiB", "fill", "42", "ipc-export", "hold", NULL};

	assert_int_equal(gpt_spawn(p, argv, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(p, "held", 20000), 0);
	assert_int_equal(gpt_get_u64(p, "ipcrc"), 0);
	parse_handle(gpt_get(p, "ipc"), h);
	free(path);
}

static void test_open_read_write(void **st)
{
	struct gpt_proc p;
	CUipcMemHandle h;
	CUdeviceptr a, b;
	unsigned char buf[64];
	unsigned long long mine = usage_of(getpid());

	(void)st;
	exporter(&p, &h);
	assert_int_equal(usage_of(p.pid), 256 * MiB + 132 * 2 * MiB + 8 * MiB);
	CU(cuIpcOpenMemHandle(&a, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS));
	CU(cuMemcpyDtoH(buf, a + 8 * MiB - sizeof buf, sizeof buf));
	for (size_t i = 0; i < sizeof buf; i++)
		assert_int_equal(buf[i], 42);
	/* Not charged here. */
	assert_int_equal(usage_of(getpid()), mine);
	/* Opened twice: the same mapping, closed twice. */
	CU(cuIpcOpenMemHandle(&b, h, 0));
	assert_int_equal(a, b);
	CU(cuMemsetD8(a, 7, 16));
	CU(cuIpcCloseMemHandle(a));
	CU(cuMemcpyDtoH(buf, b, 16)); /* still open once */
	assert_int_equal(buf[15], 7);
	CU(cuIpcCloseMemHandle(b));
	assert_int_equal(cuIpcCloseMemHandle(a), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuMemcpyDtoH(buf, a, 1), CUDA_ERROR_INVALID_VALUE);
	/* The exporter's death releases its memory; an open mapping does not
	 * crash this process. */
	CU(cuIpcOpenMemHandle(&a, h, 0));
	kill(p.pid, SIGKILL);
	gpt_wait(&p, 5000);
	for (int i = 0; i < 100 && usage_of(p.pid); i++)
		usleep(20000);
	assert_int_equal(usage_of(p.pid), 0);
	CU(cuMemcpyDtoH(buf, a + 100, 1));
	CU(cuIpcCloseMemHandle(a));
	/* Its handle no longer opens. */
	assert_int_equal(cuIpcOpenMemHandle(&a, h, 0), CUDA_ERROR_INVALID_VALUE);
}

static void test_bad_handles(void **st)
{
	CUipcMemHandle h;
	CUdeviceptr a, p;

	(void)st;
	memset(&h, 0, sizeof h);
	assert_int_equal(cuIpcOpenMemHandle(&a, h, 0), CUDA_ERROR_INVALID_VALUE);
	memset(&h, 0x5a, sizeof h);
	assert_int_equal(cuIpcOpenMemHandle(&a, h, 0), CUDA_ERROR_INVALID_VALUE);
	/* Our own handle cannot be opened here, as on the real driver. */
	CU(cuMemAlloc(&p, MiB));
	CU(cuIpcGetMemHandle(&h, p));
	assert_int_equal(cuIpcOpenMemHandle(&a, h, 0), CUDA_ERROR_INVALID_CONTEXT);
	assert_int_equal(cuIpcOpenMemHandle(&a, h, 0x10), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuIpcGetMemHandle(&h, p + 512), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemFree(p));
	assert_int_equal(cuIpcGetMemHandle(&h, p), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuIpcCloseMemHandle(0x1234), CUDA_ERROR_INVALID_VALUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_read_write),
		cmocka_unit_test(test_bad_handles),
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
