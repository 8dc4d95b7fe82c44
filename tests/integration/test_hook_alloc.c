/* test_hook_alloc.c - every path that takes device memory is charged to the
 * tenant's budget, refused past it exactly as a full card refuses, and given
 * back when freed; what the hook charges is what the (simulated) driver
 * really takes. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nvml.h"
#include "integration/libcu.h"

#define CHUNK (256ULL << 20)

/* --- scenarios (run as children under the hook) --------------------------- */

/* Fill the budget exactly: what cuMemGetInfo calls free can be taken, one
 * granule more cannot, and freeing gives it all back. */
static int child_budget(int argc, char **argv)
{
	CUdeviceptr p, q;
	size_t f, t;

	(void)argc;
	(void)argv;
	cu_setup(0);
	out_meminfo("start");
	cu_ok(cuMemGetInfo_v2(&f, &t), "info");
	out("over_rc", "%d", (int)cuMemAlloc_v2(&p, f + (2 << 20)));
	out("exact_rc", "%d", (int)cuMemAlloc_v2(&p, f));
	out_meminfo("full");
	out("one_rc", "%d", (int)cuMemAlloc_v2(&q, 1));
	cu_ok(cuMemFree_v2(p), "cuMemFree");
	out_meminfo("end");
	out("zero_rc", "%d", (int)cuMemAlloc_v2(&p, 0));
	return 0;
}

/* One way of taking 256 MiB (or near it), and of giving it back. */
struct path {
	const char *name;
	CUresult (*take)(void **obj);
	CUresult (*give)(void *obj);
};

static CUstream stream;

static CUresult take_alloc(void **o)
{
	return cuMemAlloc_v2((CUdeviceptr *)o, CHUNK);
}
static CUresult give_alloc(void *o)
{
	return cuMemFree_v2((CUdeviceptr)o);
}
static CUresult take_pitch(void **o)
{
	size_t pitch;
	/* 1000-byte rows padded to the driver's pitch: charged pitch*height */
	return cuMemAllocPitch_v2((CUdeviceptr *)o, &pitch, 1000, CHUNK / 1024, 4);
}
static CUresult take_managed(void **o)
{
	return cuMemAllocManaged((CUdeviceptr *)o, CHUNK, CU_MEM_ATTACH_GLOBAL);
}
static CUresult take_async(void **o)
{
	return cuMemAllocAsync((CUdeviceptr *)o, CHUNK, stream);
}
static CUresult give_async(void *o)
{
	CUresult rc = cuMemFreeAsync((CUdeviceptr)o, stream);
	return rc ? rc : cuStreamSynchronize(stream);
}
static CUmemoryPool user_pool;
static CUresult take_pool(void **o)
{
	if (!user_pool) {
		CUmemPoolProps props = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
					.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
		CUresult rc = cuMemPoolCreate(&user_pool, &props);
		if (rc)
			return rc;
	}
	return cuMemAllocFromPoolAsync((CUdeviceptr *)o, CHUNK, user_pool, stream);
}
static CUresult take_vmm(void **o)
{
	CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
				    .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
	return cuMemCreate((CUmemGenericAllocationHandle *)o, CHUNK, &prop, 0);
}
static CUresult give_vmm(void *o)
{
	return cuMemRelease((CUmemGenericAllocationHandle)o);
}
static CUresult take_array(void **o)
{
	CUDA_ARRAY3D_DESCRIPTOR d = {.Width = 8192, .Height = 8192, .Depth = 0,
				     .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
	return cuArray3DCreate_v2((CUarray *)o, &d);
}
static CUresult give_array(void *o)
{
	return cuArrayDestroy((CUarray)o);
}
static CUresult take_array2d(void **o)
{
	CUDA_ARRAY_DESCRIPTOR d = {.Width = 8192, .Height = 8192, .Format = CU_AD_FORMAT_FLOAT,
				   .NumChannels = 1};
	return cuArrayCreate_v2((CUarray *)o, &d);
}
static CUresult take_mipmap(void **o)
{
	CUDA_ARRAY3D_DESCRIPTOR d = {.Width = 4096, .Height = 4096, .Format = CU_AD_FORMAT_FLOAT,
				     .NumChannels = 4};
	return cuMipmappedArrayCreate((CUmipmappedArray *)o, &d, 3);
}
static CUresult give_mipmap(void *o)
{
	return cuMipmappedArrayDestroy((CUmipmappedArray)o);
}
static CUresult take_ctx(void **o)
{
	CUcontext cur, c;
	CUresult rc;

	cuCtxGetCurrent(&cur);
	rc = cuCtxCreate_v2(&c, 0, 0);
	cuCtxSetCurrent(cur);
	*o = c;
	return rc;
}
static CUresult give_ctx(void *o)
{
	return cuCtxDestroy_v2((CUcontext)o);
}
/* A graph with one allocation node of CHUNK bytes, launched once: graph
 * memory is reserved at launch. */
static CUresult take_graph(void **o)
{
	CUgraph g;
	CUgraphExec e;
	CUgraphNode n;
	CUDA_MEM_ALLOC_NODE_PARAMS p;
	CUresult rc;

	memset(&p, 0, sizeof p);
	p.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	p.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	p.poolProps.location.id = 0;
	p.bytesize = CHUNK;
	if ((rc = cuGraphCreate(&g, 0)) || (rc = cuGraphAddMemAllocNode(&n, g, NULL, 0, &p)) ||
	    (rc = cuGraphInstantiateWithFlags(&e, g, 0)))
		return rc;
	rc = cuGraphLaunch(e, stream);
	if (rc == CUDA_SUCCESS)
		rc = cuStreamSynchronize(stream);
	*o = e;
	return rc;
}

static const struct path paths[] = {
	{"alloc", take_alloc, give_alloc},      {"pitch", take_pitch, give_alloc},
	{"managed", take_managed, give_alloc},  {"async", take_async, give_async},
	{"pool", take_pool, give_async},        {"vmm", take_vmm, give_vmm},
	{"array", take_array, give_array},      {"array2d", take_array2d, give_array},
	{"mipmap", take_mipmap, give_mipmap},   {"ctx", take_ctx, give_ctx},
	{"graph", take_graph, NULL},            {NULL, NULL, NULL},
};

static const struct path *find_path(const char *name)
{
	for (const struct path *p = paths; p->name; p++)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

/* Take objects through one path until refused; report how many, what the
 * refusal was, what one object costs (the drop in free), then give them all
 * back and report free again. */
static int child_fill(int argc, char **argv)
{
	const struct path *p = argc > 0 ? find_path(argv[0]) : NULL;
	void *objs[512];
	size_t f0, f1, t, f;
	unsigned n = 0;
	CUresult rc;

	if (!p)
		return 98;
	cu_setup(0);
	cu_ok(cuStreamCreate(&stream, 0), "cuStreamCreate");
	cu_ok(cuMemGetInfo_v2(&f0, &t), "info");
	while (n < 512 && (rc = p->take(&objs[n])) == CUDA_SUCCESS) {
		if (n == 0) {
			cu_ok(cuMemGetInfo_v2(&f1, &t), "info");
			out("unit", "%zu", f0 - f1);
		}
		n++;
	}
	out("count", "%u", n);
	out("refusal", "%d", (int)rc);
	out_meminfo("full");
	if (p->give) {
		for (unsigned i = 0; i < n; i++)
			cu_ok(p->give(objs[i]), "give back");
		if (user_pool)
			cu_ok(cuMemPoolTrimTo(user_pool, 0), "trim");
		cu_ok(cuMemGetInfo_v2(&f, &t), "info");
		out("back", "%d", f == f0);
	}
	return 0;
}

/* Take something through every path, report what the hook charged
 * (total - free), and hold until told to go on: the test compares with
 * what the simulated driver says this process holds. */
static int child_mix(int argc, char **argv)
{
	void *o;
	CUdeviceptr dp, va;
	CUmemGenericAllocationHandle h;
	CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
				    .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
	CUmemAccessDesc acc = {.location = prop.location, .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
	size_t f, t;

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuStreamCreate(&stream, 0), "cuStreamCreate");
	cu_ok(cuMemAlloc_v2(&dp, 1), "1-byte alloc");
	cu_ok(take_alloc(&o), "alloc");
	cu_ok(take_pitch(&o), "pitch");
	cu_ok(take_managed(&o), "managed");
	cu_ok(take_async(&o), "async");
	cu_ok(cuMemFreeAsync((CUdeviceptr)o, stream), "free async (stays reserved)");
	cu_ok(take_pool(&o), "pool");
	cu_ok(take_array(&o), "array");
	cu_ok(take_mipmap(&o), "mipmap");
	cu_ok(take_ctx(&o), "ctx");
	cu_ok(take_graph(&o), "graph");
	/* VMM: created, mapped, then released while mapped: still held. */
	cu_ok(cuMemCreate(&h, CHUNK, &prop, 0), "cuMemCreate");
	cu_ok(cuMemAddressReserve(&va, CHUNK, 0, 0, 0), "reserve");
	cu_ok(cuMemMap(va, CHUNK, 0, h, 0), "map");
	cu_ok(cuMemSetAccess(va, CHUNK, &acc, 1), "access");
	cu_ok(cuMemRelease(h), "release");
	cu_ok(cuMemGetInfo_v2(&f, &t), "info");
	out("charged", "%zu", t - f);
	out("ready", "1");
	child_wait_go();
	/* Unmapping frees the released handle's memory. */
	cu_ok(cuMemUnmap(va, CHUNK), "unmap");
	size_t f2;
	cu_ok(cuMemGetInfo_v2(&f2, &t), "info");
	out("unmap_freed", "%zu", f2 - f);
	return 0;
}

/* Freeing memory the hook never handed out goes to the driver untouched. */
static int child_foreign_free(int argc, char **argv)
{
	size_t f0, f1, t;

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuMemGetInfo_v2(&f0, &t), "info");
	out("rc", "%d", (int)cuMemFree_v2((CUdeviceptr)0x1000000000000000ULL + 4096));
	cu_ok(cuMemGetInfo_v2(&f1, &t), "info");
	out("unchanged", "%d", f0 == f1);
	return 0;
}

/* cuMemFree on a VMM mapping's address is the driver's business (it does
 * not free VMM memory); the mapping must still be accounted afterwards, so
 * that unmapping gives the memory back. */
static int child_vmm_wrong_free(int argc, char **argv)
{
	CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
				    .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
	CUmemAccessDesc acc = {.location = prop.location, .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;
	size_t f0, f1, t;

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuMemGetInfo_v2(&f0, &t), "info");
	cu_ok(cuMemCreate(&h, CHUNK, &prop, 0), "cuMemCreate");
	cu_ok(cuMemAddressReserve(&va, CHUNK, 0, 0, 0), "reserve");
	cu_ok(cuMemMap(va, CHUNK, 0, h, 0), "map");
	cu_ok(cuMemSetAccess(va, CHUNK, &acc, 1), "access");
	cu_ok(cuMemRelease(h), "release");
	out("free_rc", "%d", (int)cuMemFree_v2(va));
	cu_ok(cuMemUnmap(va, CHUNK), "unmap");
	cu_ok(cuMemAddressFree(va, CHUNK), "address free");
	cu_ok(cuMemGetInfo_v2(&f1, &t), "info");
	out("back", "%d", f1 == f0);
	return 0;
}

/* Destroying a context gives back its cost and what was allocated in it. */
static int child_ctx_destroy(int argc, char **argv)
{
	CUcontext c;
	CUdeviceptr p;
	size_t f0, f1, f2, t;

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuMemGetInfo_v2(&f0, &t), "info");
	cu_ok(cuCtxCreate_v2(&c, 0, 0), "cuCtxCreate");
	cu_ok(cuMemAlloc_v2(&p, CHUNK), "alloc in ctx");
	cu_ok(cuMemGetInfo_v2(&f1, &t), "info");
	out("held", "%zu", f0 - f1);
	cu_ok(cuCtxDestroy_v2(c), "cuCtxDestroy");
	cu_ok(cuMemGetInfo_v2(&f2, &t), "info");
	out("back", "%d", f2 == f0);
	return 0;
}

/* IPC: the exporter allocates and publishes a handle; the importer (same
 * tenant) maps it without being charged: it is the exporter's memory. */
static int child_ipc_export(int argc, char **argv)
{
	CUdeviceptr p;
	CUipcMemHandle h;
	char hex[2 * sizeof h + 1];

	(void)argc;
	(void)argv;
	cu_setup(0);
	cu_ok(cuMemAlloc_v2(&p, CHUNK), "alloc");
	cu_ok(cuMemsetD32_v2(p, 0x5eed, CHUNK / 4), "memset");
	cu_ok(cuIpcGetMemHandle(&h, p), "cuIpcGetMemHandle");
	for (size_t i = 0; i < sizeof h; i++)
		sprintf(hex + 2 * i, "%02x", (unsigned char)h.reserved[i]);
	out("handle", "%s", hex);
	child_wait_go();
	return 0;
}

static int child_ipc_import(int argc, char **argv)
{
	CUipcMemHandle h;
	CUdeviceptr p;
	uint32_t v = 0;
	size_t f0, f1, t;

	if (argc < 1 || strlen(argv[0]) != 2 * sizeof h)
		return 98;
	for (size_t i = 0; i < sizeof h; i++)
		sscanf(argv[0] + 2 * i, "%2hhx", (unsigned char *)&h.reserved[i]);
	cu_setup(0);
	cu_ok(cuMemGetInfo_v2(&f0, &t), "info");
	cu_ok(cuIpcOpenMemHandle_v2(&p, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), "open");
	cu_ok(cuMemcpyDtoH_v2(&v, p + 4096, sizeof v), "read");
	cu_ok(cuMemGetInfo_v2(&f1, &t), "info");
	out("value", "%u", v);
	out("charged", "%zu", f0 - f1);
	cu_ok(cuIpcCloseMemHandle(p), "close");
	return 0;
}

static const struct gpt_child children[] = {
	{"budget", child_budget},
	{"fill", child_fill},
	{"mix", child_mix},
	{"foreign_free", child_foreign_free},
	{"ctx_destroy", child_ctx_destroy},
	{"vmm_wrong_free", child_vmm_wrong_free},
	{"ipc_export", child_ipc_export},
	{"ipc_import", child_ipc_import},
	{NULL, NULL},
};

/* --- tests ---------------------------------------------------------------- */

static void test_budget_exact(void **state)
{
	struct gpt_proc p;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL};

	(void)state;
	env[1] = gpt_env_region();
	gpt_run_child(&p, "budget", NULL, env, GPT_HOOK);
	assert_int_equal(gpt_get_u64(&p, "start_total"), 2 * GiB);
	/* The context is the tenant's too. */
	assert_int_equal(gpt_get_u64(&p, "start_free"), 2 * GiB - SIM_CTX_H100);
	assert_int_equal(gpt_get_u64(&p, "over_rc"), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(gpt_get_u64(&p, "exact_rc"), CUDA_SUCCESS);
	assert_int_equal(gpt_get_u64(&p, "full_free"), 0);
	assert_int_equal(gpt_get_u64(&p, "one_rc"), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(gpt_get_u64(&p, "end_free"), gpt_get_u64(&p, "start_free"));
	/* Bad arguments reach the driver, which says what is wrong. */
	assert_int_equal(gpt_get_u64(&p, "zero_rc"), CUDA_ERROR_INVALID_VALUE);
}

/* Each path: under a 4 GiB budget, objects of `unit` bytes fit exactly
 * floor((4 GiB - context) / unit) times, the next is refused with
 * CUDA_ERROR_OUT_OF_MEMORY, and giving them back restores the budget. */
static void fill(const char *path, int gives_back)
{
	struct gpt_proc p;
	const char *args[] = {path, NULL};
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=4GiB", NULL};
	uint64_t unit, count, room = 4 * GiB - SIM_CTX_H100;

	env[1] = gpt_env_region();
	gpt_run_child(&p, "fill", args, env, GPT_HOOK);
	unit = gpt_get_u64(&p, "unit");
	count = gpt_get_u64(&p, "count");
	if (unit == 0 || unit % (2 << 20))
		fail_msg("%s: unit %llu is not whole granules", path, (unsigned long long)unit);
	if (count != room / unit)
		fail_msg("%s: %llu objects of %llu bytes fit, want %llu", path,
			 (unsigned long long)count, (unsigned long long)unit,
			 (unsigned long long)(room / unit));
	assert_int_equal(gpt_get_u64(&p, "refusal"), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(gpt_get_u64(&p, "full_free"), room - count * unit);
	if (gives_back)
		assert_int_equal(gpt_get_u64(&p, "back"), 1);
}

static void test_fill_alloc(void **s) { (void)s; fill("alloc", 1); }
static void test_fill_pitch(void **s) { (void)s; fill("pitch", 1); }
static void test_fill_managed(void **s) { (void)s; fill("managed", 1); }
static void test_fill_async(void **s) { (void)s; fill("async", 1); }
static void test_fill_pool(void **s) { (void)s; fill("pool", 1); }
static void test_fill_vmm(void **s) { (void)s; fill("vmm", 1); }
static void test_fill_array(void **s) { (void)s; fill("array", 1); }
static void test_fill_array2d(void **s) { (void)s; fill("array2d", 1); }
static void test_fill_mipmap(void **s) { (void)s; fill("mipmap", 1); }
static void test_fill_ctx(void **s) { (void)s; fill("ctx", 1); }
static void test_fill_graph(void **s) { (void)s; fill("graph", 0); }

/* What the hook charged for a mix of every path equals what the simulated
 * driver says the process holds (NVML, read here without the hook). */
static void test_charges_match_driver(void **state)
{
	struct gpt_proc p;
	const char *st = gpt_env_state();
	const char *env[] = {st, NULL, "GPUPOOL_MEMORY_LIMIT=16GiB", NULL};
	nvmlProcessInfo_t infos[8];
	unsigned n = 8;
	nvmlDevice_t dev;
	uint64_t sim_used = 0;

	(void)state;
	env[1] = gpt_env_region();
	assert_int_equal(gpt_spawn_child(&p, "mix", NULL, env, GPT_HOOK), 0);
	if (gpt_wait_for(&p, "ready", 30000))
		fail_msg("mix child did not get ready:\n%s", p.out);
	setenv("GPUPOOL_SIM_STATE", st + strlen("GPUPOOL_SIM_STATE="), 1);
	assert_int_equal(nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(nvmlDeviceGetHandleByIndex_v2(0, &dev), NVML_SUCCESS);
	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(dev, &n, infos), NVML_SUCCESS);
	for (unsigned i = 0; i < n; i++)
		if (infos[i].pid == (unsigned)p.pid)
			sim_used = infos[i].usedGpuMemory;
	nvmlShutdown();
	assert_int_equal(gpt_get_u64(&p, "charged"), sim_used);
	gpt_go(&p);
	assert_int_equal(gpt_wait(&p, 30000), 0);
	assert_int_equal(gpt_get_u64(&p, "unmap_freed"), CHUNK);
}

static void test_foreign_free(void **state)
{
	struct gpt_proc p;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL};

	(void)state;
	env[1] = gpt_env_region();
	gpt_run_child(&p, "foreign_free", NULL, env, GPT_HOOK);
	assert_int_equal(gpt_get_u64(&p, "rc"), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(gpt_get_u64(&p, "unchanged"), 1);
}

static void test_ctx_destroy(void **state)
{
	struct gpt_proc p;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=4GiB", NULL};

	(void)state;
	env[1] = gpt_env_region();
	gpt_run_child(&p, "ctx_destroy", NULL, env, GPT_HOOK);
	assert_int_equal(gpt_get_u64(&p, "held"), SIM_CTX_H100 + CHUNK);
	assert_int_equal(gpt_get_u64(&p, "back"), 1);
}

static void test_vmm_wrong_free(void **state)
{
	struct gpt_proc p;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=4GiB", NULL};

	(void)state;
	env[1] = gpt_env_region();
	gpt_run_child(&p, "vmm_wrong_free", NULL, env, GPT_HOOK);
	assert_int_not_equal(gpt_get_u64(&p, "free_rc"), CUDA_SUCCESS);
	assert_int_equal(gpt_get_u64(&p, "back"), 1);
}

static void test_ipc_import_not_charged(void **state)
{
	struct gpt_proc ex, im;
	const char *env[] = {gpt_env_state(), NULL, "GPUPOOL_MEMORY_LIMIT=4GiB", NULL};
	const char *args[2] = {NULL, NULL};
	char handle[160];

	(void)state;
	env[1] = gpt_env_region();
	assert_int_equal(gpt_spawn_child(&ex, "ipc_export", NULL, env, GPT_HOOK), 0);
	if (gpt_wait_for(&ex, "handle", 30000))
		fail_msg("exporter:\n%s", ex.out);
	snprintf(handle, sizeof handle, "%s", gpt_get(&ex, "handle"));
	args[0] = handle;
	gpt_run_child(&im, "ipc_import", args, env, GPT_HOOK);
	assert_int_equal(gpt_get_u64(&im, "value"), 0x5eed);
	assert_int_equal(gpt_get_u64(&im, "charged"), 0);
	gpt_go(&ex);
	assert_int_equal(gpt_wait(&ex, 30000), 0);
}

int main(int argc, char **argv)
{
	gpt_child_dispatch(argc, argv, children);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_exact),
		cmocka_unit_test(test_fill_alloc),
		cmocka_unit_test(test_fill_pitch),
		cmocka_unit_test(test_fill_managed),
		cmocka_unit_test(test_fill_async),
		cmocka_unit_test(test_fill_pool),
		cmocka_unit_test(test_fill_vmm),
		cmocka_unit_test(test_fill_array),
		cmocka_unit_test(test_fill_array2d),
		cmocka_unit_test(test_fill_mipmap),
		cmocka_unit_test(test_fill_ctx),
		cmocka_unit_test(test_fill_graph),
		cmocka_unit_test(test_charges_match_driver),
		cmocka_unit_test(test_foreign_free),
		cmocka_unit_test(test_ctx_destroy),
		cmocka_unit_test(test_vmm_wrong_free),
		cmocka_unit_test(test_ipc_import_not_charged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
