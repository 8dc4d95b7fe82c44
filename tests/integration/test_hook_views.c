/* test_hook_views.c - the corners of the virtual card and of the routes
 * around it: NVML's free clamped to what the card really has free when
 * other tenants hold it, with v1 and v2 agreeing about the driver's
 * reservation; the pre-3.2 32-bit cuMemGetInfo and cuDeviceTotalMem by
 * every route; warnings for limits that cannot apply; and a library
 * loaded with RTLD_DEEPBIND, which would otherwise bind the real driver,
 * while dlopen keeps its caller-relative search (RUNPATH, $ORIGIN). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nvml.h"
#include "integration/libcu.h"

/* Under ASan the sanitizer's own dlopen refuses RTLD_DEEPBIND outright. */
static int sanitized(void)
{
	const char *s = getenv("GP_SAN");
	return s && *s;
}

/* NVML memory of device 0, v1 and v2, as <prefix>_v1_* and <prefix>_v2_*. */
static void nvml_mem(const char *prefix)
{
	char v1[80], v2[80];

	snprintf(v1, sizeof v1, "%s_v1", prefix);
	snprintf(v2, sizeof v2, "%s_v2", prefix);
	out_nvml_memory(0, v1, v2);
	nvmlShutdown();
}

/* The card through cuMemGetInfo and NVML, as <prefix>_cu_* and
 * <prefix>_nvml_v1_* / _v2_*. */
static void report(const char *prefix)
{
	char k[64];

	snprintf(k, sizeof k, "%s_cu", prefix);
	out_meminfo(k);
	snprintf(k, sizeof k, "%s_nvml", prefix);
	nvml_mem(k);
}

/* Hold argv[0] GiB and report the card ("early"); once told to go on,
 * report it again ("late"). */
static int child_hold(int argc, char **argv)
{
	CUdeviceptr p;

	cu_setup(0);
	if (argc > 0 && atoi(argv[0]) > 0)
		cu_ok(cuMemAlloc_v2(&p, (size_t)atoi(argv[0]) * GiB), "alloc");
	report("early");
	out("ready", "1");
	child_wait_go();
	report("late");
	return 0;
}

/* An NVML-only process (nvidia-smi) of the tenant. */
static int child_smi(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	nvml_mem("smi");
	return 0;
}

typedef CUresult (*info32_fn)(unsigned int *, unsigned int *);
typedef CUresult (*total32_fn)(unsigned int *, CUdevice);

/* The 32-bit pair reached through one route, as <route>_free, _total,
 * _devtotal; -1 for a route that found nothing. */
static void legacy_report(const char *route, info32_fn info, total32_fn total)
{
	unsigned int f = 0, t = 0, b = 0;
	char k[64];

	snprintf(k, sizeof k, "%s_rc", route);
	out(k, "%d", info && total ? (int)(info(&f, &t) | total(&b, 0)) : -1);
	snprintf(k, sizeof k, "%s_free", route);
	out(k, "%u", f);
	snprintf(k, sizeof k, "%s_total", route);
	out(k, "%u", t);
	snprintf(k, sizeof k, "%s_devtotal", route);
	out(k, "%u", b);
}

static int child_legacy(int argc, char **argv)
{
	CUdriverProcAddressQueryResult st;
	void *h, *fi = NULL, *ft = NULL;

	(void)argc;
	(void)argv;
	cu_setup(0);
	out_meminfo("v2");
	/* Linked directly: cuda.h's internal mode declares the 32-bit ones. */
	legacy_report("direct", cuMemGetInfo, cuDeviceTotalMem);
	legacy_report("default", (info32_fn)dlsym(RTLD_DEFAULT, "cuMemGetInfo"),
		      (total32_fn)dlsym(RTLD_DEFAULT, "cuDeviceTotalMem"));
	h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return 98;
	legacy_report("handle", (info32_fn)dlsym(h, "cuMemGetInfo"),
		      (total32_fn)dlsym(h, "cuDeviceTotalMem"));
	/* CUDA 3.0 asked for these by name: the 32-bit variants. */
	cu_ok(cuGetProcAddress_v2("cuMemGetInfo", &fi, 3000, CU_GET_PROC_ADDRESS_DEFAULT, &st),
	      "proc cuMemGetInfo");
	cu_ok(cuGetProcAddress_v2("cuDeviceTotalMem", &ft, 3000, CU_GET_PROC_ADDRESS_DEFAULT, &st),
	      "proc cuDeviceTotalMem");
	legacy_report("proc", (info32_fn)fi, (total32_fn)ft);
	return 0;
}

/* Set CUDA up and leave: the hook's start-up warnings are the point. */
static int child_init(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cu_setup(0);
	return 0;
}

/* dlopen the test libraries (in argv[0]) by full path and by the bare names
 * only their RUNPATH resolves, and allocate past a 2 GiB budget from a
 * library loaded with RTLD_DEEPBIND. */
static int child_dlopen(int argc, char **argv)
{
	char path[1024];
	void *h, *(*open_fn)(const char *, int), *(*alloc_fn)(void);
	CUresult (*dso_alloc)(CUdeviceptr *, size_t);
	CUdeviceptr p;
	int deep = !sanitized();

	if (argc < 1)
		return 97;
	cu_setup(0);
	/* This program's own search does not reach the test libraries' folder. */
	out("self_peer1", "%d", dlopen("libgptpeer1.so", RTLD_NOW) != NULL);
	snprintf(path, sizeof path, "%s/libgptcuda.so", argv[0]);
	h = dlopen(path, RTLD_NOW | (deep ? RTLD_DEEPBIND : 0));
	if (!h) {
		out("error", "%s", dlerror());
		return 98;
	}
	alloc_fn = (void *(*)(void))dlsym(h, "gpt_dso_alloc_fn");
	dso_alloc = (CUresult(*)(CUdeviceptr *, size_t))dlsym(h, "gpt_dso_alloc");
	open_fn = (void *(*)(const char *, int))dlsym(h, "gpt_dso_open");
	if (!alloc_fn || !dso_alloc || !open_fn)
		return 97;
	out("bound_to_hook", "%d", alloc_fn() == (void *)cuMemAlloc_v2);
	out("alloc_rc", "%d", (int)dso_alloc(&p, 3 * GiB));
	/* Only libgptcuda.so's RUNPATH ($ORIGIN) holds these: the search must
	 * be made for it, not for whoever forwarded the call.  peer1 takes
	 * the stub's fast path, peer2 (RTLD_DEEPBIND) the other. */
	out("peer1", "%d", open_fn("libgptpeer1.so", RTLD_NOW) != NULL);
	out("peer2", "%d", open_fn("libgptpeer2.so", RTLD_NOW | (deep ? RTLD_DEEPBIND : 0)) != NULL);
	return 0;
}

static const struct gpt_child children[] = {
	{"hold", child_hold},
	{"smi", child_smi},
	{"legacy", child_legacy},
	{"init", child_init},
	{"dlopen", child_dlopen},
	{NULL, NULL},
};

/* Tenant a has a 40 GiB budget and holds 1 GiB.  Alone on the card it
 * sees its usage and the driver's reservation in a 40 GiB card.  Then
 * tenant b (no budget) fills the card to 3 GiB free: a's card keeps its
 * 40 GiB total, but free is only what is really free, in cuMemGetInfo,
 * NVML v1 and v2 and a's nvidia-smi alike.  Throughout, v2's used +
 * reserved + free is the total and v1's used is v2's plus the
 * reservation. */
static void test_nvml_free_clamped_by_others(void **state)
{
	struct gpt_proc a, b, smi;
	char sst[512], ra[512], rb[512];
	const char *env_a[] = {sst, ra, "GPUPOOL_MEMORY_LIMIT=40GiB", NULL};
	const char *env_b[] = {sst, rb, "GPUPOOL_MEMORY_LIMIT=", NULL};
	const char *one[] = {"1", NULL}, *many[] = {"75", NULL};
	const uint64_t total = 40 * GiB, used = SIM_CTX_H100 + GiB;
	const uint64_t phys_free = 80 * GiB - SIM_RESERVED - 2 * SIM_CTX_H100 - 76 * GiB;
	char k[64];

	(void)state;
	snprintf(sst, sizeof sst, "%s", gpt_env_state());
	snprintf(ra, sizeof ra, "%s", gpt_env_region());
	snprintf(rb, sizeof rb, "%s", gpt_env_region());
	assert_int_equal(gpt_spawn_child(&a, "hold", one, env_a, GPT_HOOK), 0);
	if (gpt_wait_for(&a, "ready", 30000))
		fail_msg("tenant a:\n%s", a.out);
	assert_int_equal(gpt_spawn_child(&b, "hold", many, env_b, GPT_HOOK), 0);
	if (gpt_wait_for(&b, "ready", 30000))
		fail_msg("tenant b:\n%s", b.out);
	gpt_run_child(&smi, "smi", NULL, env_a, GPT_HOOK);
	gpt_go(&a);
	assert_int_equal(gpt_wait(&a, 30000), 0);
	gpt_go(&b);
	assert_int_equal(gpt_wait(&b, 30000), 0);

#define GET(p, pre, key) (snprintf(k, sizeof k, "%s_%s", pre, key), gpt_get_u64(p, k))
	/* Alone: the budget's card less the reservation and a's usage.  The
	 * budget does not charge the reservation, so cuMemGetInfo (what a
	 * can still allocate) has that much more. */
	assert_int_equal(GET(&a, "early_cu", "total"), total);
	assert_int_equal(GET(&a, "early_cu", "free"), total - used);
	assert_int_equal(GET(&a, "early_nvml", "v2_total"), total);
	assert_int_equal(GET(&a, "early_nvml", "v2_reserved"), SIM_RESERVED);
	assert_int_equal(GET(&a, "early_nvml", "v2_used"), used);
	assert_int_equal(GET(&a, "early_nvml", "v2_free"), total - SIM_RESERVED - used);
	assert_int_equal(GET(&a, "early_nvml", "v1_total"), total);
	assert_int_equal(GET(&a, "early_nvml", "v1_used"), used + SIM_RESERVED);
	assert_int_equal(GET(&a, "early_nvml", "v1_free"), total - SIM_RESERVED - used);

	/* b, without a budget, sees the card as it is. */
	assert_int_equal(GET(&b, "early_nvml", "v1_total"), 80 * GiB);
	assert_int_equal(GET(&b, "early_nvml", "v1_free"), phys_free);
	assert_int_equal(GET(&b, "early_nvml", "v2_free"), phys_free);
	assert_int_equal(GET(&b, "early_cu", "free"), phys_free);

	/* With b there: free is what is really free, for every reader. */
	assert_int_equal(GET(&a, "late_cu", "total"), total);
	assert_int_equal(GET(&a, "late_cu", "free"), phys_free);
	for (int i = 0; i < 2; i++) {
		const struct gpt_proc *p = i ? &smi : &a;
		const char *pre = i ? "smi" : "late_nvml";
		assert_int_equal(GET(p, pre, "v2_total"), total);
		assert_int_equal(GET(p, pre, "v2_reserved"), SIM_RESERVED);
		assert_int_equal(GET(p, pre, "v2_free"), phys_free);
		assert_int_equal(GET(p, pre, "v2_used"), total - SIM_RESERVED - phys_free);
		assert_int_equal(GET(p, pre, "v1_total"), total);
		assert_int_equal(GET(p, pre, "v1_free"), phys_free);
		assert_int_equal(GET(p, pre, "v1_used"), total - phys_free);
	}
#undef GET
}

/* The 32-bit entry points by direct linking, dlsym (RTLD_DEFAULT and the
 * driver's handle) and cuGetProcAddress at version 3000 show the budget:
 * a 3 GiB card as the _v2 ones do, and a 6 GiB one saturated at 4 GiB - 1
 * as the driver saturates a real card. */
static void test_legacy_32bit_entry_points(void **state)
{
	static const char *const routes[] = {"direct", "default", "handle", "proc"};
	const char *env3[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=3GiB", NULL};
	struct gpt_proc p;
	char k[64];

	(void)state;
	env3[1] = gpt_env_region();
	gpt_run_child(&p, "legacy", NULL, env3, GPT_HOOK);
	assert_int_equal(gpt_get_u64(&p, "v2_total"), 3 * GiB);
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
		snprintf(k, sizeof k, "%s_rc", routes[i]);
		if (strcmp(gpt_get(&p, k), "0") != 0)
			fail_msg("route %s: rc %s\n%s", routes[i], gpt_get(&p, k), p.out);
		snprintf(k, sizeof k, "%s_total", routes[i]);
		assert_int_equal(gpt_get_u64(&p, k), 3 * GiB);
		snprintf(k, sizeof k, "%s_devtotal", routes[i]);
		assert_int_equal(gpt_get_u64(&p, k), 3 * GiB);
		snprintf(k, sizeof k, "%s_free", routes[i]);
		assert_int_equal(gpt_get_u64(&p, k), gpt_get_u64(&p, "v2_free"));
	}

	const char *env6[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=6GiB", NULL};
	env6[1] = gpt_env_region();
	gpt_run_child(&p, "legacy", NULL, env6, GPT_HOOK);
	assert_int_equal(gpt_get_u64(&p, "v2_total"), 6 * GiB);
	assert_int_equal(gpt_get_u64(&p, "v2_free"), 6 * GiB - SIM_CTX_H100);
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
		snprintf(k, sizeof k, "%s_total", routes[i]);
		assert_int_equal(gpt_get_u64(&p, k), UINT_MAX);
		snprintf(k, sizeof k, "%s_devtotal", routes[i]);
		assert_int_equal(gpt_get_u64(&p, k), UINT_MAX);
		snprintf(k, sizeof k, "%s_free", routes[i]);
		assert_int_equal(gpt_get_u64(&p, k), UINT_MAX);
	}
}

/* How many times `needle` occurs in the output. */
static int count(const struct gpt_proc *p, const char *needle)
{
	int n = 0;

	for (const char *s = p->out; (s = strstr(s, needle)); s++)
		n++;
	return n;
}

/* A limit for a device the process cannot see, and one larger than the
 * card, each get one warning naming the variable that set it. */
static void test_limit_warnings(void **state)
{
	struct gpt_proc p;
	const char *env[] = {gpt_env_state(),
			     NULL,
			     "GPUPOOL_MEMORY_LIMIT=100GiB",
			     "GPUPOOL_MEMORY_LIMIT_3=8GiB",
			     "CUDA_DEVICE_SM_LIMIT_2=50",
			     "CUDA_DEVICE_MEMORY_LIMIT_5=0", /* HAMi's "none": nothing to say */
			     NULL};

	(void)state;
	env[1] = gpt_env_region();
	gpt_run_child(&p, "init", NULL, env, GPT_HOOK | GPT_STDERR);
	assert_int_equal(count(&p, "GPUPOOL_MEMORY_LIMIT_3=8GiB: no visible device 3"), 1);
	assert_int_equal(count(&p, "CUDA_DEVICE_SM_LIMIT_2=50: no visible device 2"), 1);
	assert_int_equal(count(&p, "CUDA_DEVICE_MEMORY_LIMIT_5"), 0);
	assert_int_equal(count(&p, "GPUPOOL_MEMORY_LIMIT=100GiB is larger than device 0 "
				   "(80 GiB): clamped to 80 GiB"),
			 1);

	/* HAMi's per-device variable beats our all-devices one (config.c):
	 * the warning names the one in force.  A limit that fits says
	 * nothing. */
	const char *hami[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=100GiB",
			      "CUDA_DEVICE_MEMORY_LIMIT_0=90G", NULL};
	hami[1] = gpt_env_region();
	gpt_run_child(&p, "init", NULL, hami, GPT_HOOK | GPT_STDERR);
	assert_int_equal(count(&p, "CUDA_DEVICE_MEMORY_LIMIT_0=90G is larger than device 0"), 1);
	assert_int_equal(count(&p, "GPUPOOL_MEMORY_LIMIT=100GiB"), 0);

	const char *fits[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=80GiB", NULL};
	fits[1] = gpt_env_region();
	gpt_run_child(&p, "init", NULL, fits, GPT_HOOK | GPT_STDERR);
	assert_int_equal(count(&p, "is larger than"), 0);
	assert_int_equal(count(&p, "no visible device"), 0);
}

/* A library loaded with RTLD_DEEPBIND binds its driver calls to the hook
 * (the flag is cleared, and said so at info level), so its allocation past
 * the budget is refused; and dlopen through the hook still searches the
 * calling library's RUNPATH, on both paths of the stub.  Under ASan the
 * sanitizer's own dlopen stands in front of ours: it refuses
 * RTLD_DEEPBIND and is itself the caller glibc sees, so only the binding
 * is checked there. */
static void test_dlopen_deepbind_and_runpath(void **state)
{
	struct gpt_proc p;
	char dir[1024];
	const char *args[] = {dir, NULL};
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=2GiB",
			     "GPUPOOL_LOG=info", NULL};

	(void)state;
	snprintf(dir, sizeof dir, "%s/tests/integration/dso", gpt_build());
	env[1] = gpt_env_region();
	gpt_run_child(&p, "dlopen", args, env, GPT_HOOK | GPT_STDERR);
	assert_int_equal(gpt_get_u64(&p, "bound_to_hook"), 1);
	assert_int_equal(gpt_get_u64(&p, "alloc_rc"), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(gpt_get_u64(&p, "self_peer1"), 0);
	if (sanitized())
		return;
	assert_int_equal(count(&p, "libgptcuda.so): RTLD_DEEPBIND cleared"), 1);
	assert_int_equal(gpt_get_u64(&p, "peer1"), 1);
	assert_int_equal(gpt_get_u64(&p, "peer2"), 1);

	/* Without the hook the same program finds the same libraries (the
	 * search is the calling library's, not an accident of the hook's). */
	gpt_run_child(&p, "dlopen", args, env, 0);
	assert_int_equal(gpt_get_u64(&p, "peer1"), 1);
	assert_int_equal(gpt_get_u64(&p, "peer2"), 1);
}

int main(int argc, char **argv)
{
	gpt_child_dispatch(argc, argv, children);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nvml_free_clamped_by_others),
		cmocka_unit_test(test_legacy_32bit_entry_points),
		cmocka_unit_test(test_limit_warnings),
		cmocka_unit_test(test_dlopen_deepbind_and_runpath),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
