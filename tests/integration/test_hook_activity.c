/* test_hook_activity.c - the hook stamps each GPU's activity in the region,
 * read back the way the node agent reads it (gp_region_read, never a
 * mapping): a kernel launch moves `last_launch_ns` of the GPU it ran on and
 * no other, a copy or memset moves `last_copy_ns`, whichever route the
 * program took to the entry point (direct linking, dlsym, cuGetProcAddress
 * with per-thread default stream variants, graphs); a thread switching
 * GPUs stamps each; calls the driver refuses stamp nothing; a tenant
 * without a budget is stamped too; a running process reads as live. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "integration/libcu.h"
#include "region/read.h"

#define TWO_GPUS "GPUPOOL_SIM_GPUS=H100-SXM-80GB:80GiB:132,A100-40GB:40GiB:108"

/* --- the children: steps "OP DEV ROUTE" ------------------------------------- */

static CUcontext primary[2];

/* Make device `dev`'s primary context current (retained once). */
static void use(int dev)
{
	if (!primary[dev])
		cu_ok(cuDevicePrimaryCtxRetain(&primary[dev], dev), "retain");
	cu_ok(cuCtxSetCurrent(primary[dev]), "set current");
}

/* The simulator's spin kernel, loaded in the current context. */
static CUfunction spin(void)
{
	CUmodule mod;
	CUfunction fn;

	cu_ok(cuModuleLoadData(&mod, "sim"), "module");
	cu_ok(cuModuleGetFunction(&fn, mod, "spin_10us"), "function");
	return fn;
}

/* Report which variant, from which library, a route handed out. */
static void out_fn(const char *key, void *fn)
{
	Dl_info info;
	char k[64];

	snprintf(k, sizeof k, "%s_sym", key);
	out(k, "%s", fn && dladdr(fn, &info) && info.dli_sname ? info.dli_sname : "?");
	snprintf(k, sizeof k, "%s_hook", key);
	out(k, "%d", fn && dladdr(fn, &info) && strstr(info.dli_fname, "libgpupool.so") != NULL);
}

/* cuGetProcAddress_v2 of `name` at CUDA 12.0 with `flags`. */
static void *proc(const char *name, cuuint64_t flags)
{
	CUdriverProcAddressQueryResult st;
	void *fn = NULL;

	cu_ok(cuGetProcAddress_v2(name, &fn, 12000, flags, &st), name);
	return fn;
}

typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
			      unsigned, unsigned, CUstream, void **, void **);
typedef CUresult (*launch_ex_fn)(const CUlaunchConfig *, CUfunction, void **, void **);
typedef CUresult (*coop_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
			    unsigned, unsigned, CUstream, void **);
typedef CUresult (*htod_fn)(CUdeviceptr, const void *, size_t);
typedef CUresult (*htod_async_fn)(CUdeviceptr, const void *, size_t, CUstream);
typedef CUresult (*dtoh_fn)(void *, CUdeviceptr, size_t);
typedef CUresult (*memset32_fn)(CUdeviceptr, unsigned int, size_t);

/* One kernel launch on the current device by `route`. */
static void launch(const char *route)
{
	CUfunction fn = spin();

	if (strcmp(route, "direct") == 0) {
		cu_ok(cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL), route);
	} else if (strcmp(route, "procaddr-ptsz") == 0) {
		launch_fn f = (launch_fn)proc("cuLaunchKernel",
					      CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
		out_fn(route, (void *)f);
		cu_ok(f(fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL), route);
	} else if (strcmp(route, "procaddr-ex") == 0) {
		CUlaunchConfig cfg = {.gridDimX = 1, .gridDimY = 1, .gridDimZ = 1,
				      .blockDimX = 32, .blockDimY = 1, .blockDimZ = 1};
		void *g = NULL;
		launch_ex_fn f;
		/* The CUDA 11 entry point, without a status argument. */
		cu_ok(cuGetProcAddress("cuLaunchKernelEx", &g, 12000, CU_GET_PROC_ADDRESS_DEFAULT),
		      route);
		f = (launch_ex_fn)g;
		out_fn(route, g);
		cu_ok(f(&cfg, fn, NULL, NULL), route);
	} else if (strcmp(route, "dlsym-coop-ptsz") == 0) {
		void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
		coop_fn f = h ? (coop_fn)dlsym(h, "cuLaunchCooperativeKernel_ptsz") : NULL;
		out_fn(route, (void *)f);
		if (!f)
			exit(97);
		cu_ok(f(fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL), route);
	} else if (strcmp(route, "graph") == 0) {
		CUDA_KERNEL_NODE_PARAMS k;
		CUgraphExec exec;
		CUgraphNode node;
		CUgraph g;
		memset(&k, 0, sizeof k);
		k.func = fn;
		k.gridDimX = k.gridDimY = k.gridDimZ = 1;
		k.blockDimX = 32;
		k.blockDimY = k.blockDimZ = 1;
		cu_ok(cuGraphCreate(&g, 0), "graph");
		cu_ok(cuGraphAddKernelNode_v2(&node, g, NULL, 0, &k), "kernel node");
		cu_ok(cuGraphInstantiateWithFlags(&exec, g, 0), "instantiate");
		cu_ok(cuGraphLaunch(exec, NULL), route);
	} else {
		exit(98);
	}
	cu_ok(cuCtxSynchronize(), "sync");
}

/* One copy or memset on the current device by `route`. */
static void copy(const char *route)
{
	static char host[4096];
	CUdeviceptr d;

	cu_ok(cuMemAlloc_v2(&d, sizeof host), "alloc");
	if (strcmp(route, "htod") == 0) {
		cu_ok(cuMemcpyHtoD_v2(d, host, sizeof host), route);
	} else if (strcmp(route, "procaddr-memset-ptds") == 0) {
		memset32_fn f = (memset32_fn)proc("cuMemsetD32",
						  CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
		out_fn(route, (void *)f);
		cu_ok(f(d, 7, sizeof host / 4), route);
	} else if (strcmp(route, "procaddr-async-ptsz") == 0) {
		htod_async_fn f = (htod_async_fn)proc(
			"cuMemcpyHtoDAsync", CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
		out_fn(route, (void *)f);
		cu_ok(f(d, host, sizeof host, NULL), route);
	} else if (strcmp(route, "procaddr-htod") == 0) {
		htod_fn f = (htod_fn)proc("cuMemcpyHtoD", CU_GET_PROC_ADDRESS_DEFAULT);
		out_fn(route, (void *)f);
		cu_ok(f(d, host, sizeof host), route);
	} else if (strcmp(route, "dlsym-dtoh-ptds") == 0) {
		dtoh_fn f = (dtoh_fn)dlsym(RTLD_DEFAULT, "cuMemcpyDtoH_v2_ptds");
		out_fn(route, (void *)f);
		if (!f)
			exit(97);
		cu_ok(f(host, d, sizeof host), route);
	} else {
		exit(98);
	}
	cu_ok(cuCtxSynchronize(), "sync");
	cu_ok(cuMemFree_v2(d), "free");
}

/* Calls the driver refuses: they must leave every stamp alone. */
static void refused(void)
{
	static char host[64];

	out("launch_rc", "%d", (int)cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
	out("copy_rc", "%d", (int)cuMemcpyHtoD_v2(0, host, sizeof host));
	out("memset_rc", "%d", (int)cuMemsetD8_v2(0, 0, 16));
}

/* "act [OP DEV ROUTE]...": the steps in order, in one thread.  OP is
 * launch, copy, fail (ROUTE ignored) or wait (DEV and ROUTE ignored: say
 * "ready" and wait for the test's go).  Reports the UUIDs of both GPUs as
 * the region names them. */
static int child_act(int argc, char **argv)
{
	cu_ok(cuInit(0), "cuInit");
	for (int dev = 0; dev < 2; dev++) {
		CUuuid u;
		const unsigned char *b = (const unsigned char *)u.bytes;
		char key[16];
		cu_ok(cuDeviceGetUuid_v2(&u, dev), "uuid");
		snprintf(key, sizeof key, "uuid%d", dev);
		out(key,
		    "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		    b[12], b[13], b[14], b[15]);
	}
	for (int i = 0; i + 2 < argc; i += 3) {
		const char *op = argv[i], *route = argv[i + 2];
		if (strcmp(op, "wait") == 0) {
			out("ready", "1");
			child_wait_go();
			continue;
		}
		use(atoi(argv[i + 1]));
		if (strcmp(op, "launch") == 0)
			launch(route);
		else if (strcmp(op, "copy") == 0)
			copy(route);
		else if (strcmp(op, "fail") == 0)
			refused();
		else
			return 98;
	}
	return 0;
}

static const struct gpt_child children[] = {
	{"act", child_act},
	{NULL, NULL},
};

/* --- the tests ------------------------------------------------------------- */

/* A tenant of its own on a machine of its own with two GPUs. */
struct tenant {
	char state[512], region[512], path[512], uuid[2][GP_REGION_UUID_LEN];
	const char *env[5];
};

static void tenant(struct tenant *t, const char *limit)
{
	snprintf(t->state, sizeof t->state, "%s", gpt_env_state());
	snprintf(t->region, sizeof t->region, "%s", gpt_env_region());
	snprintf(t->path, sizeof t->path, "%s", strchr(t->region, '=') + 1);
	t->uuid[0][0] = t->uuid[1][0] = '\0';
	t->env[0] = t->state;
	t->env[1] = t->region;
	t->env[2] = TWO_GPUS;
	t->env[3] = limit;
	t->env[4] = NULL;
}

static uint64_t coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t fine_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The stamps of one GPU as the reader found them. */
struct stamps {
	uint64_t registered, launch, copy, live_used;
	unsigned nlive;
};

/* Read the tenant's region as the agent does and take GPU `dev`'s stamps
 * (all zero while the region or the GPU's entry does not exist yet). */
static struct stamps read_gpu(const struct tenant *t, int dev)
{
	struct gp_region_copy *c = malloc(sizeof *c);
	struct stamps s = {0};
	int fd = open(t->path, O_RDONLY | O_CLOEXEC);

	assert_non_null(c);
	if (fd < 0) {
		free(c);
		return s;
	}
	assert_int_equal(gp_region_read(fd, c), 0);
	close(fd);
	s.nlive = c->nlive;
	for (uint32_t d = 0; d < c->hdr.ndevs; d++) {
		if (!t->uuid[dev][0] || strcmp(c->hdr.dev[d].uuid, t->uuid[dev]) != 0)
			continue;
		s.registered = c->hdr.dev[d].registered_ns;
		s.launch = c->hdr.dev[d].last_launch_ns;
		s.copy = c->hdr.dev[d].last_copy_ns;
		s.live_used = c->live_used[d];
	}
	free(c);
	return s;
}

/* Run "act" with `args` in tenant t (learning its UUIDs), after waiting
 * out the hook's 10 ms rewrite interval so that any stamp it makes shows.
 * *t0 is the coarse clock before the child started. */
static void act(struct tenant *t, const char *const args[], struct gpt_proc *p, uint64_t *t0)
{
	struct timespec pause = {0, 20 * 1000000L};

	nanosleep(&pause, NULL);
	*t0 = coarse_ns();
	gpt_run_child(p, "act", args, t->env, GPT_HOOK);
	snprintf(t->uuid[0], sizeof t->uuid[0], "%s", gpt_get(p, "uuid0"));
	snprintf(t->uuid[1], sizeof t->uuid[1], "%s", gpt_get(p, "uuid1"));
}

/* Stamp `got` was made by a call between t0 and now. */
#define assert_stamped(got, t0)                                              \
	do {                                                                     \
		assert_true((got) >= (t0));                                          \
		assert_true((got) <= fine_ns());                                     \
	} while (0)

/* A launch on device 1 moves GPU 1's launch stamp and nothing else; one on
 * device 0 then moves GPU 0's, leaving GPU 1's where it was.  Both entries
 * carry their registration time.  (A tenant with a budget.) */
static void test_launch_moves_its_gpu_only(void **state)
{
	const char *on1[] = {"launch", "1", "direct", NULL}, *on0[] = {"launch", "0", "direct", NULL};
	struct stamps g0, g1, h0, h1;
	struct tenant t;
	struct gpt_proc p;
	uint64_t t0;

	(void)state;
	tenant(&t, "GPUPOOL_MEMORY_LIMIT=8GiB");
	act(&t, on1, &p, &t0);
	g0 = read_gpu(&t, 0);
	g1 = read_gpu(&t, 1);
	assert_true(g0.registered >= t0 && g1.registered >= t0); /* both GPUs registered */
	assert_stamped(g1.launch, t0);
	assert_int_equal(g0.launch, 0);
	assert_int_equal(g0.copy, 0);
	assert_int_equal(g1.copy, 0);
	assert_int_equal(g1.nlive, 0); /* the child is gone */

	act(&t, on0, &p, &t0);
	h0 = read_gpu(&t, 0);
	h1 = read_gpu(&t, 1);
	assert_stamped(h0.launch, t0);
	assert_true(h0.launch > g1.launch);
	assert_int_equal(h1.launch, g1.launch);
	assert_int_equal(h0.copy, 0);
	assert_int_equal(h1.copy, 0);
	assert_int_equal(h0.registered, g0.registered); /* registered once */
	assert_int_equal(h1.registered, g1.registered);
}

/* Copies and memsets move the copy stamp of their GPU, by every route, and
 * never the launch stamp.  (A tenant without a budget: stamped too.) */
static void test_copy_routes(void **state)
{
	static const struct {
		int dev;
		const char *route, *sym; /* the variant the route must reach */
	} cases[] = {
		{0, "htod", NULL},
		{1, "procaddr-memset-ptds", "cuMemsetD32_v2_ptds"},
		{0, "procaddr-async-ptsz", "cuMemcpyHtoDAsync_v2_ptsz"},
		{1, "procaddr-htod", "cuMemcpyHtoD_v2"},
		{0, "dlsym-dtoh-ptds", "cuMemcpyDtoH_v2_ptds"},
	};
	struct tenant t;
	struct gpt_proc p;
	uint64_t t0;

	(void)state;
	tenant(&t, NULL);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char dev[4], key[64];
		const char *args[] = {"copy", dev, cases[i].route, NULL};
		struct stamps before = read_gpu(&t, !cases[i].dev), other, mine;
		snprintf(dev, sizeof dev, "%d", cases[i].dev);
		act(&t, args, &p, &t0);
		if (cases[i].sym) {
			snprintf(key, sizeof key, "%s_sym", cases[i].route);
			assert_string_equal(gpt_get(&p, key), cases[i].sym);
			snprintf(key, sizeof key, "%s_hook", cases[i].route);
			assert_int_equal(gpt_get_u64(&p, key), 1);
		}
		mine = read_gpu(&t, cases[i].dev);
		other = read_gpu(&t, !cases[i].dev);
		assert_stamped(mine.copy, t0);
		assert_int_equal(mine.launch, 0);
		assert_int_equal(other.launch, 0);
		if (i > 0) /* the other GPU's copy stamp stayed */
			assert_int_equal(other.copy, before.copy);
	}
}

/* Launches through cuGetProcAddress (per-thread default stream variant,
 * and the CUDA 11 entry point), dlsym of a _ptsz name, and graphs all
 * stamp their GPU. */
static void test_launch_routes(void **state)
{
	static const struct {
		int dev;
		const char *route, *sym;
	} cases[] = {
		{0, "procaddr-ptsz", "cuLaunchKernel_ptsz"},
		{1, "procaddr-ex", "cuLaunchKernelEx"},
		{0, "dlsym-coop-ptsz", "cuLaunchCooperativeKernel_ptsz"},
		{1, "graph", NULL},
	};
	struct tenant t;
	struct gpt_proc p;
	uint64_t t0;

	(void)state;
	tenant(&t, NULL);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char dev[4], key[64];
		const char *args[] = {"launch", dev, cases[i].route, NULL};
		struct stamps before = read_gpu(&t, !cases[i].dev), other, mine;
		snprintf(dev, sizeof dev, "%d", cases[i].dev);
		act(&t, args, &p, &t0);
		if (cases[i].sym) {
			snprintf(key, sizeof key, "%s_sym", cases[i].route);
			assert_string_equal(gpt_get(&p, key), cases[i].sym);
			snprintf(key, sizeof key, "%s_hook", cases[i].route);
			assert_int_equal(gpt_get_u64(&p, key), 1);
		}
		mine = read_gpu(&t, cases[i].dev);
		other = read_gpu(&t, !cases[i].dev);
		assert_stamped(mine.launch, t0);
		assert_int_equal(other.launch, before.launch);
		assert_int_equal(mine.copy, 0);
	}
}

/* One thread launching on GPU 0, then at once on GPU 1 (well within the
 * stamps' 10 ms), then copying on GPU 0 again: each GPU gets its stamps. */
static void test_thread_switching_gpus(void **state)
{
	const char *args[] = {"launch", "0", "direct", "launch", "1", "direct",
			      "copy", "0", "htod", NULL};
	struct stamps g0, g1;
	struct tenant t;
	struct gpt_proc p;
	uint64_t t0;

	(void)state;
	tenant(&t, NULL);
	act(&t, args, &p, &t0);
	g0 = read_gpu(&t, 0);
	g1 = read_gpu(&t, 1);
	assert_stamped(g0.launch, t0);
	assert_stamped(g1.launch, t0);
	assert_stamped(g0.copy, t0);
	assert_int_equal(g1.copy, 0);
}

/* Calls the driver refuses stamp nothing. */
static void test_refused_calls_stamp_nothing(void **state)
{
	const char *args[] = {"fail", "1", "-", NULL};
	struct stamps g0, g1;
	struct tenant t;
	struct gpt_proc p;
	uint64_t t0;

	(void)state;
	tenant(&t, NULL);
	act(&t, args, &p, &t0);
	assert_true(gpt_get_u64(&p, "launch_rc") != CUDA_SUCCESS);
	assert_true(gpt_get_u64(&p, "copy_rc") != CUDA_SUCCESS);
	assert_true(gpt_get_u64(&p, "memset_rc") != CUDA_SUCCESS);
	g0 = read_gpu(&t, 0);
	g1 = read_gpu(&t, 1);
	assert_true(g1.registered >= t0);
	assert_int_equal(g0.launch + g0.copy + g1.launch + g1.copy, 0);
}

/* While the process runs the reader counts it live, with its charge (its
 * context) on the GPU it used; its launch is already stamped. */
static void test_running_process_reads_live(void **state)
{
	const char *args[] = {"launch", "1", "direct", "wait", "-", "-", NULL};
	struct stamps g1;
	struct tenant t;
	struct gpt_proc p;
	uint64_t t0 = coarse_ns();

	(void)state;
	tenant(&t, "GPUPOOL_MEMORY_LIMIT=8GiB");
	assert_int_equal(gpt_spawn_child(&p, "act", args, t.env, GPT_HOOK), 0);
	assert_int_equal(gpt_wait_for(&p, "ready", 30000), 0);
	snprintf(t.uuid[1], sizeof t.uuid[1], "%s", gpt_get(&p, "uuid1"));
	g1 = read_gpu(&t, 1);
	assert_int_equal(g1.nlive, 1);
	assert_true(g1.live_used > 0); /* its context on GPU 1 */
	assert_stamped(g1.launch, t0);
	gpt_go(&p);
	assert_int_equal(gpt_wait(&p, 30000), 0);
	g1 = read_gpu(&t, 1);
	assert_int_equal(g1.nlive, 0);
	assert_int_equal(g1.live_used, 0);
}

int main(int argc, char **argv)
{
	gpt_child_dispatch(argc, argv, children);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_launch_moves_its_gpu_only),
		cmocka_unit_test(test_copy_routes),
		cmocka_unit_test(test_launch_routes),
		cmocka_unit_test(test_thread_switching_gpus),
		cmocka_unit_test(test_refused_calls_stamp_nothing),
		cmocka_unit_test(test_running_process_reads_live),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
