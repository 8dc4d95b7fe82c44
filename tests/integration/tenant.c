/* tenant.c - a small CUDA program for the demo (and tests): ask for some
 * device memory, report what it asked, got and saw, optionally hold it.
 *
 *   tenant NAME SIZE [--hold]   run as a tenant (under gpupool run)
 *   tenant observe              NVML's view of the card, from outside
 *
 * Reports are "key=value" lines on stdout.
 */
#define __CUDA_API_VERSION_INTERNAL
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nvml.h"
#include "common/parse.h"

#define STEP (256ULL << 20)

static int fail(const char *what, CUresult rc)
{
	const char *name = "?";

	cuGetErrorName(rc, &name);
	fprintf(stderr, "tenant: %s: %s\n", what, name);
	return 1;
}

static int run(const char *name, const char *size, int hold)
{
	uint64_t ask, got = 0;
	CUcontext ctx;
	CUdeviceptr p;
	CUresult rc;
	size_t f, t;
	const char *result = "?";

	if (gp_parse_size(size, &ask)) {
		fprintf(stderr, "tenant: %s: not a size\n", size);
		return 2;
	}
	if ((rc = cuInit(0)))
		return fail("cuInit", rc);
	if ((rc = cuDevicePrimaryCtxRetain(&ctx, 0)) || (rc = cuCtxSetCurrent(ctx)))
		return fail("context", rc);
	if ((rc = cuMemGetInfo_v2(&f, &t)))
		return fail("cuMemGetInfo", rc);
	rc = cuMemAlloc_v2(&p, ask);
	cuGetErrorName(rc, &result);
	if (rc == CUDA_SUCCESS) {
		got = ask;
	} else {
		/* Refused: show that what fits is still there, in steps. */
		while (cuMemAlloc_v2(&p, STEP) == CUDA_SUCCESS)
			got += STEP;
	}
	printf("name=%s\nasked=%llu\nresult=%s\ngot=%llu\nsaw_total=%zu\nsaw_free=%zu\npid=%d\n",
	       name, (unsigned long long)ask, result, (unsigned long long)got, t, f, (int)getpid());
	if (hold) {
		char buf[64];
		printf("holding=1\n");
		fflush(stdout);
		while (read(STDIN_FILENO, buf, sizeof buf) > 0)
			;
	}
	return 0;
}

static int observe(void)
{
	nvmlDevice_t h;
	nvmlMemory_t m;
	nvmlProcessInfo_t procs[64];
	unsigned n = 64;
	char name[96];

	if (nvmlInit_v2() || nvmlDeviceGetHandleByIndex_v2(0, &h) ||
	    nvmlDeviceGetName(h, name, sizeof name) || nvmlDeviceGetMemoryInfo(h, &m) ||
	    nvmlDeviceGetComputeRunningProcesses_v3(h, &n, procs)) {
		fprintf(stderr, "tenant: NVML query failed\n");
		return 1;
	}
	printf("card=%s\ncard_total=%llu\ncard_used=%llu\n", name, m.total, m.used);
	for (unsigned i = 0; i < n; i++)
		printf("proc_%u=%llu\n", procs[i].pid, procs[i].usedGpuMemory);
	nvmlShutdown();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "observe") == 0)
		return observe();
	if (argc >= 3)
		return run(argv[1], argv[2], argc > 3 && strcmp(argv[3], "--hold") == 0);
	fprintf(stderr, "usage: tenant NAME SIZE [--hold] | tenant observe\n");
	return 2;
}
