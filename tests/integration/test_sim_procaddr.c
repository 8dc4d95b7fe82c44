/* test_sim_procaddr.c - cuGetProcAddress(_v2): the variant the real driver
 * would pick for a version and stream mode, the same address dlsym gives
 * for that variant's name, the documented failures, and every exported
 * entry point reachable through it. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)
#define LEGACY CU_GET_PROC_ADDRESS_LEGACY_STREAM
#define PTDS CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM

static void *lib;

/* The address cuGetProcAddress_v2 returns for (name, version, flags). */
static void *get(const char *name, int version, cuuint64_t flags)
{
	CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)-1;
	void *fn = (void *)0x1;

	CU(cuGetProcAddress_v2(name, &fn, version, flags, &st));
	assert_int_equal(st, CU_GET_PROC_ADDRESS_SUCCESS);
	return fn;
}

static void expect(const char *name, int version, cuuint64_t flags, const char *symbol)
{
	void *want = dlsym(lib, symbol);

	assert_non_null(want);
	if (get(name, version, flags) != want)
		fail_msg("%s @%d flags %llu is not %s", name, version, (unsigned long long)flags, symbol);
}

static void test_variants(void **st)
{
	(void)st;
	expect("cuMemAlloc", 12000, 0, "cuMemAlloc_v2");
	expect("cuMemAlloc", 3020, LEGACY, "cuMemAlloc_v2");
	expect("cuMemGetInfo", 12000, 0, "cuMemGetInfo_v2");
	expect("cuDeviceTotalMem", 12000, 0, "cuDeviceTotalMem_v2");
	expect("cuCtxCreate", 3020, 0, "cuCtxCreate_v2");
	expect("cuCtxCreate", 11040, 0, "cuCtxCreate_v3");
	expect("cuCtxCreate", 12040, 0, "cuCtxCreate_v3");
	expect("cuCtxCreate", 12050, 0, "cuCtxCreate_v4");
	expect("cuCtxDestroy", 12000, 0, "cuCtxDestroy_v2");
	expect("cuGetProcAddress", 11030, 0, "cuGetProcAddress");
	expect("cuGetProcAddress", 12000, 0, "cuGetProcAddress_v2");
	expect("cuMemcpyHtoD", 12000, LEGACY, "cuMemcpyHtoD_v2");
	expect("cuMemcpyHtoD", 12000, PTDS, "cuMemcpyHtoD_v2_ptds");
	expect("cuMemcpyHtoDAsync", 12000, PTDS, "cuMemcpyHtoDAsync_v2_ptsz");
	expect("cuLaunchKernel", 12000, 0, "cuLaunchKernel");
	expect("cuLaunchKernel", 12000, PTDS, "cuLaunchKernel_ptsz");
	expect("cuLaunchKernel", 6050, PTDS, "cuLaunchKernel"); /* no ptsz before 7.0 */
	expect("cuStreamSynchronize", 12000, PTDS, "cuStreamSynchronize_ptsz");
	expect("cuMemAllocAsync", 11020, 0, "cuMemAllocAsync");
	expect("cuMemAllocAsync", 12000, PTDS, "cuMemAllocAsync_ptsz");
	expect("cuStreamGetCaptureInfo", 11030, 0, "cuStreamGetCaptureInfo_v2");
	expect("cuStreamGetCaptureInfo", 12030, PTDS, "cuStreamGetCaptureInfo_v3_ptsz");
	expect("cuStreamBeginCapture", 10010, 0, "cuStreamBeginCapture_v2");
	expect("cuGraphInstantiate", 11000, 0, "cuGraphInstantiate_v2");
	expect("cuGraphInstantiate", 12000, 0, "cuGraphInstantiateWithFlags");
	expect("cuIpcOpenMemHandle", 11000, 0, "cuIpcOpenMemHandle_v2");
	expect("cuDevicePrimaryCtxRelease", 11000, 0, "cuDevicePrimaryCtxRelease_v2");
	expect("cuEventElapsedTime", 12080, 0, "cuEventElapsedTime_v2");
	expect("cuCtxSynchronize", 12080, 0, "cuCtxSynchronize");
	expect("cuCtxSynchronize", 13000, 0, "cuCtxSynchronize_v2");
	expect("cuMemCreate", CUDA_VERSION, 0, "cuMemCreate");
}

static void test_failures(void **st)
{
	CUdriverProcAddressQueryResult s;
	void *fn = (void *)0x1;

	(void)st;
	assert_int_equal(cuGetProcAddress_v2("cuFooBar", &fn, 12000, 0, &s), CUDA_ERROR_NOT_FOUND);
	assert_int_equal(s, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	assert_null(fn);
	fn = (void *)0x1;
	assert_int_equal(cuGetProcAddress_v2("cuMemAllocAsync", &fn, 11000, 0, &s),
			 CUDA_ERROR_NOT_FOUND);
	assert_int_equal(s, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
	assert_null(fn);
	assert_int_equal(cuGetProcAddress_v2("cuMemAlloc", &fn, CUDA_VERSION + 10, 0, &s),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuGetProcAddress_v2(NULL, &fn, 12000, 0, &s), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuGetProcAddress_v2("cuMemAlloc", NULL, 12000, 0, &s),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuGetProcAddress_v2("cuMemAlloc", &fn, 12000, 4, &s),
			 CUDA_ERROR_INVALID_VALUE);
	/* The status is optional; the v1 entry point has none. */
	CU(cuGetProcAddress_v2("cuInit", &fn, 12000, 0, NULL));
	{
		CUresult (*v1)(const char *, void **, int, cuuint64_t) =
			(CUresult(*)(const char *, void **, int, cuuint64_t))dlsym(lib, "cuGetProcAddress");
		assert_non_null(v1);
		assert_int_equal(v1("cuNope", &fn, 12000, 0), CUDA_ERROR_NOT_FOUND);
		assert_int_equal(v1("cuMemFree", &fn, 12000, 0), CUDA_SUCCESS);
		assert_ptr_equal(fn, dlsym(lib, "cuMemFree_v2"));
	}
}

/* cuGetExportTable: found through cuGetProcAddress; the simulator has no
 * table, so every id, the CUDA runtime's own among them, gets none and
 * CUDA_ERROR_INVALID_VALUE; NULL arguments too. */
static void check_export_table(void)
{
	/* The id the CUDA runtime asks for first (its "CudartInterface"). */
	static const CUuuid cudart = {{(char)0x6b, (char)0xd5, (char)0xfb, (char)0x6c,
				       (char)0x5b, (char)0xf4, (char)0xe7, (char)0x4a,
				       (char)0x89, (char)0x87, (char)0xd9, (char)0x39,
				       (char)0x12, (char)0xfd, (char)0x9d, (char)0xf9}};
	CUresult (*fn)(const void **, const CUuuid *);
	const void *table;
	CUuuid zero;

	memset(&zero, 0, sizeof zero);
	fn = (CUresult(*)(const void **, const CUuuid *))get("cuGetExportTable", 3000, 0);
	assert_ptr_equal((void *)fn, dlsym(lib, "cuGetExportTable"));
	table = (const void *)0x1;
	assert_int_equal(fn(&table, &cudart), CUDA_ERROR_INVALID_VALUE);
	assert_null(table);
	table = (const void *)0x1;
	assert_int_equal(fn(&table, &zero), CUDA_ERROR_INVALID_VALUE);
	assert_null(table);
	assert_int_equal(fn(NULL, &zero), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(fn(&table, NULL), CUDA_ERROR_INVALID_VALUE);
}

/* Before cuInit (test_callable initialises) the answers are the same. */
static void test_export_table(void **st)
{
	int n;

	(void)st;
	assert_int_equal(cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
	check_export_table();
}

/* The pointer is the driver function itself: calling it works, before and
 * after cuInit. */
static void test_callable(void **st)
{
	CUresult (*version)(int *);
	CUresult (*init)(unsigned);
	int v = 0;

	(void)st;
	version = (CUresult(*)(int *))get("cuDriverGetVersion", 12000, 0);
	CU(version(&v));
	assert_int_equal(v, CUDA_VERSION);
	init = (CUresult(*)(unsigned))get("cuInit", 12000, 0);
	CU(init(0));
	check_export_table();
}

/* Every cu* symbol the library exports can be obtained: some (base name,
 * version, mode) yields exactly its address. */
static void test_every_export(void **st)
{
	Dl_info info;
	char cmd[1200], line[256];
	FILE *f;
	int checked = 0;

	(void)st;
	assert_true(dladdr(dlsym(lib, "cuInit"), &info) && info.dli_fname);
	snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s' 2>/dev/null", info.dli_fname);
	f = popen(cmd, "r");
	if (!f)
		skip();
	while (fgets(line, sizeof line, f)) {
		char sym[200], base[200], *suffix;
		void *want, *got;
		int found = 0;

		if (sscanf(line, "%*s T %199s", sym) != 1 || strncmp(sym, "cu", 2) != 0)
			continue;
		want = dlsym(lib, sym);
		snprintf(base, sizeof base, "%s", sym);
		if ((suffix = strstr(base, "_pt")) != NULL)
			*suffix = '\0';
		if ((suffix = strrchr(base, '_')) != NULL && suffix[1] == 'v' &&
		    suffix[2] >= '0' && suffix[2] <= '9')
			*suffix = '\0';
		for (int v = 2000; v <= CUDA_VERSION && !found; v += 10) {
			for (int mode = 0; mode < 2 && !found; mode++) {
				CUdriverProcAddressQueryResult s;
				if (cuGetProcAddress_v2(base, &got, v, mode ? PTDS : LEGACY, &s) ==
					    CUDA_SUCCESS &&
				    got == want)
					found = 1;
			}
		}
		/* Exported under another base name (cuGraphInstantiateWithFlags
		 * is also "cuGraphInstantiate"). */
		if (!found && cuGetProcAddress_v2(sym, &got, CUDA_VERSION, LEGACY, NULL) == 0 &&
		    got == want)
			found = 1;
		if (!found)
			fail_msg("%s cannot be obtained through cuGetProcAddress", sym);
		checked++;
	}
	pclose(f);
	if (checked == 0)
		skip(); /* no nm here */
	assert_true(checked > 250);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_variants),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_export_table),
		cmocka_unit_test(test_callable),
		cmocka_unit_test(test_every_export),
	};
	int rc;

	unsetenv("GPUPOOL_SIM_GPUS");
	unsetenv("GPUPOOL_SIM_STATE");
	lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
	if (!lib)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	dlclose(lib);
	return rc;
}
