/* test_hook_routes.c - the hook is reached every way a program reaches the
 * driver: direct linking, dlsym on a dlopen'ed driver (and RTLD_DEFAULT),
 * cuGetProcAddress and _v2 with versions and per-thread-stream flags; and
 * dlsym's own semantics (RTLD_NEXT) survive the interposition. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "common/nvml.h"
#include "integration/libcu.h"

/* Which object a function pointer lives in: "hook", "sim" or "other". */
static const char *owner(void *fn)
{
	Dl_info info;

	if (!fn || !dladdr(fn, &info) || !info.dli_fname)
		return "none";
	if (strstr(info.dli_fname, "libgpupool.so"))
		return "hook";
	if (strstr(info.dli_fname, "libcuda.so") || strstr(info.dli_fname, "libnvidia-ml.so"))
		return "sim";
	return "other";
}

/* The name dladdr gives for fn (which variant we got). */
static const char *symbol(void *fn)
{
	Dl_info info;

	return fn && dladdr(fn, &info) && info.dli_sname ? info.dli_sname : "?";
}

typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);

/* Allocate past a 2 GiB budget through fn: must be refused. */
static void over_budget(const char *key, alloc_fn fn)
{
	CUdeviceptr p;
	out(key, "%d", fn ? (int)fn(&p, 3 * GiB) : -1);
}

static int child_direct(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cu_setup(0);
	over_budget("direct_rc", cuMemAlloc_v2);
	return 0;
}

static int child_dlsym(int argc, char **argv)
{
	void *h, *f;

	(void)argc;
	(void)argv;
	h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return 98;
	cu_setup(0);
	f = dlsym(h, "cuMemAlloc_v2");
	out("handle_owner", "%s", owner(f));
	over_budget("handle_rc", (alloc_fn)f);
	f = dlsym(RTLD_DEFAULT, "cuMemAlloc_v2");
	out("default_owner", "%s", owner(f));
	over_budget("default_rc", (alloc_fn)f);
	/* Not interposed: the driver's own. */
	out("module_owner", "%s", owner(dlsym(h, "cuModuleLoad")));
	/* Absent from the driver: absent through the hook too. */
	out("missing", "%p", dlsym(h, "cuNoSuchFunction"));
	/* NVML through its handle. */
	void *n = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	out("nvml_owner", "%s", owner(n ? dlsym(n, "nvmlDeviceGetMemoryInfo") : NULL));
	out("nvml_plain_owner", "%s", owner(n ? dlsym(n, "nvmlDeviceGetName") : NULL));
	/* RTLD_NEXT resolves relative to the caller (this program): the next
	 * object defining dlsym after it is the preloaded hook. A C wrapper
	 * would have answered for the hook itself and found libc's. */
	out("next_dlsym_owner", "%s", owner(dlsym(RTLD_NEXT, "dlsym")));
	out("next_puts", "%d", dlsym(RTLD_NEXT, "puts") == (void *)puts);
	return 0;
}

/* cuGetProcAddress_v2 of `name` at `version` with `flags`. */
static void *proc(const char *name, int version, cuuint64_t flags, CUresult *rc,
		  CUdriverProcAddressQueryResult *st)
{
	void *fn = NULL;

	*rc = cuGetProcAddress_v2(name, &fn, version, flags, st);
	return fn;
}

static int child_procaddr(int argc, char **argv)
{
	CUdriverProcAddressQueryResult st;
	CUresult rc;
	void *f;

	(void)argc;
	(void)argv;
	cu_setup(0);
	f = proc("cuMemAlloc", 12000, CU_GET_PROC_ADDRESS_DEFAULT, &rc, &st);
	out("alloc_owner", "%s", owner(f));
	out("alloc_sym", "%s", symbol(f));
	over_budget("alloc_rc", (alloc_fn)f);
	f = proc("cuMemAlloc", CUDA_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &rc, &st);
	out("alloc_latest_sym", "%s", symbol(f));
	f = proc("cuMemAllocAsync", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &rc, &st);
	out("async_ptsz_sym", "%s", symbol(f));
	out("async_ptsz_owner", "%s", owner(f));
	f = proc("cuMemAllocAsync", 12000, CU_GET_PROC_ADDRESS_LEGACY_STREAM, &rc, &st);
	out("async_legacy_sym", "%s", symbol(f));
	f = proc("cuLaunchKernel", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &rc, &st);
	out("launch_ptsz_sym", "%s", symbol(f));
	f = proc("cuCtxCreate", 11040, CU_GET_PROC_ADDRESS_DEFAULT, &rc, &st);
	out("ctx_v3_sym", "%s", symbol(f));
	f = proc("cuGetProcAddress", 12000, CU_GET_PROC_ADDRESS_DEFAULT, &rc, &st);
	out("self_owner", "%s", owner(f));
	f = proc("cuModuleLoad", 12000, CU_GET_PROC_ADDRESS_DEFAULT, &rc, &st);
	out("module_owner", "%s", owner(f));
	f = proc("cuNoSuchThing", 12000, CU_GET_PROC_ADDRESS_DEFAULT, &rc, &st);
	out("unknown_rc", "%d", (int)rc);
	/* The pre-3.2 (32-bit) cuMemAlloc is not accounted: refused. */
	f = proc("cuMemAlloc", 3000, CU_GET_PROC_ADDRESS_DEFAULT, &rc, &st);
	out("old_rc", "%d", (int)rc);
	out("old_fn", "%p", f);
	/* The CUDA 11 entry point without a status argument. */
	void *g = NULL;
	rc = cuGetProcAddress("cuMemAlloc", &g, 11000, CU_GET_PROC_ADDRESS_DEFAULT);
	out("v1_owner", "%s", owner(g));
	over_budget("v1_rc", (alloc_fn)g);
	return 0;
}

static const struct gpt_child children[] = {
	{"direct", child_direct},
	{"dlsym", child_dlsym},
	{"procaddr", child_procaddr},
	{NULL, NULL},
};

static void run(struct gpt_proc *p, const char *name)
{
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL};

	env[1] = gpt_env_region();
	gpt_run_child(p, name, NULL, env, GPT_HOOK);
}

static void test_direct(void **state)
{
	struct gpt_proc p;

	(void)state;
	run(&p, "direct");
	assert_int_equal(gpt_get_u64(&p, "direct_rc"), CUDA_ERROR_OUT_OF_MEMORY);
}

static void test_dlsym(void **state)
{
	struct gpt_proc p;

	(void)state;
	run(&p, "dlsym");
	assert_string_equal(gpt_get(&p, "handle_owner"), "hook");
	assert_int_equal(gpt_get_u64(&p, "handle_rc"), CUDA_ERROR_OUT_OF_MEMORY);
	assert_string_equal(gpt_get(&p, "default_owner"), "hook");
	assert_int_equal(gpt_get_u64(&p, "default_rc"), CUDA_ERROR_OUT_OF_MEMORY);
	assert_string_equal(gpt_get(&p, "module_owner"), "sim");
	assert_string_equal(gpt_get(&p, "missing"), "(nil)");
	assert_string_equal(gpt_get(&p, "nvml_owner"), "hook");
	assert_string_equal(gpt_get(&p, "nvml_plain_owner"), "sim");
	assert_string_equal(gpt_get(&p, "next_dlsym_owner"), "hook");
	assert_int_equal(gpt_get_u64(&p, "next_puts"), 1);
}

static void test_procaddr(void **state)
{
	struct gpt_proc p;

	(void)state;
	run(&p, "procaddr");
	assert_string_equal(gpt_get(&p, "alloc_owner"), "hook");
	assert_string_equal(gpt_get(&p, "alloc_sym"), "cuMemAlloc_v2");
	assert_int_equal(gpt_get_u64(&p, "alloc_rc"), CUDA_ERROR_OUT_OF_MEMORY);
	assert_string_equal(gpt_get(&p, "alloc_latest_sym"), "cuMemAlloc_v2");
	assert_string_equal(gpt_get(&p, "async_ptsz_sym"), "cuMemAllocAsync_ptsz");
	assert_string_equal(gpt_get(&p, "async_ptsz_owner"), "hook");
	assert_string_equal(gpt_get(&p, "async_legacy_sym"), "cuMemAllocAsync");
	assert_string_equal(gpt_get(&p, "launch_ptsz_sym"), "cuLaunchKernel_ptsz");
	assert_string_equal(gpt_get(&p, "ctx_v3_sym"), "cuCtxCreate_v3");
	assert_string_equal(gpt_get(&p, "self_owner"), "hook");
	assert_string_equal(gpt_get(&p, "module_owner"), "sim");
	assert_int_equal(gpt_get_u64(&p, "unknown_rc"), CUDA_ERROR_NOT_FOUND);
	assert_int_equal(gpt_get_u64(&p, "old_rc"), CUDA_ERROR_NOT_FOUND);
	assert_string_equal(gpt_get(&p, "old_fn"), "(nil)");
	assert_string_equal(gpt_get(&p, "v1_owner"), "hook");
	assert_int_equal(gpt_get_u64(&p, "v1_rc"), CUDA_ERROR_OUT_OF_MEMORY);
}

int main(int argc, char **argv)
{
	gpt_child_dispatch(argc, argv, children);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct),
		cmocka_unit_test(test_dlsym),
		cmocka_unit_test(test_procaddr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
