/* hook_overhead.c - the loops bench/hook_overhead.sh counts instructions in.
 *
 *   hook_overhead launch N   N cuLaunchKernel calls (a 1 us spin kernel)
 *   hook_overhead alloc N    N cuMemAlloc + cuMemFree pairs of 1 MiB
 *   hook_overhead which      the file that serves cuMemAlloc_v2 and
 *                            cuLaunchKernel here (the script checks that
 *                            the hooked run really is hooked, and the
 *                            other one not)
 *
 * Only the measured loop runs inside the function named bench_<mode>, so
 * callgrind's --toggle-collect=bench_<mode> counts exactly it; running the
 * same program with and without the hook, at two values of N, isolates the
 * instructions the hook adds per call.
 */
#define __CUDA_API_VERSION_INTERNAL
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static CUfunction fn;

__attribute__((noinline)) static int bench_launch(long n)
{
	for (long i = 0; i < n; i++)
		if (cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL))
			return 1;
	return 0;
}

__attribute__((noinline)) static int bench_alloc(long n)
{
	CUdeviceptr p;

	for (long i = 0; i < n; i++)
		if (cuMemAlloc_v2(&p, 1 << 20) || cuMemFree_v2(p))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	CUcontext ctx;
	CUmodule mod;
	CUdeviceptr warm;
	long n;
	int rc;

	if (argc == 2 && strcmp(argv[1], "which") == 0) {
		/* Through dlsym, as any caller would resolve them. */
		void *fns[] = {dlsym(RTLD_DEFAULT, "cuMemAlloc_v2"),
			       dlsym(RTLD_DEFAULT, "cuLaunchKernel")};
		for (int i = 0; i < 2; i++) {
			Dl_info info;
			if (!fns[i] || !dladdr(fns[i], &info))
				return 1;
			printf("%s\n", info.dli_fname);
		}
		return 0;
	}
	if (argc != 3 || (n = atol(argv[2])) <= 0) {
		fprintf(stderr, "usage: hook_overhead launch|alloc N | which\n");
		return 2;
	}
	if (cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) ||
	    cuModuleLoadData(&mod, "bench") || cuModuleGetFunction(&fn, mod, "spin_1us")) {
		fprintf(stderr, "hook_overhead: CUDA setup failed\n");
		return 1;
	}
	/* Warm every path once outside the measured loop (lazy resolution,
	 * first-use tables), so the loop sees the steady state. */
	if (cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL) ||
	    cuMemAlloc_v2(&warm, 1 << 20) || cuMemFree_v2(warm))
		return 1;
	if (strcmp(argv[1], "launch") == 0)
		rc = bench_launch(n);
	else if (strcmp(argv[1], "alloc") == 0)
		rc = bench_alloc(n);
	else
		return 2;
	cuCtxSynchronize();
	return rc;
}
