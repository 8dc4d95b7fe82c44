/* test_hook_attack.c - programs that try to hold more device memory than
 * their budget, through every gap found in the accounting so far.
 *
 * The one property checked everywhere: at no instant may the tenant really
 * hold more than its budget on a card.  "Really" is what the (simulated)
 * driver says: NVML's per-process usedGpuMemory summed over the tenant's
 * processes, read by an observer child that is NOT under the hook (under
 * the hook NVML shows the tenant's charges, not the truth).  The observer
 * samples in a tight loop while the attack runs and once more when the
 * attacker holds what it got (libobs.h).
 *
 * Each test names the bug it reproduces.  Budgets are a few GiB on the
 * default 80 GiB H100, where one context costs SIM_CTX_H100 (520 MiB),
 * which counts too.  Every process a test starts is killed at teardown,
 * however the test ended.
 */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integration/libcu.h"
#include "integration/libobs.h"

/* A number a child reported (gpt_get's buffer is shared: one per call). */
static unsigned long long num(const struct gpt_proc *p, const char *key)
{
	return (unsigned long long)gpt_get_u64(p, key);
}

/* The core assertion: never more than the budget, at any sampled instant
 * nor at the end. */
static void assert_within(const char *what, struct obs_usage u, uint64_t budget)
{
	if (u.max > budget || u.last > budget)
		fail_msg("%s: the tenant really held up to %.0f MiB (%.0f MiB at the end) under a "
			 "%.0f MiB budget (%llu samples)",
			 what, obs_mib(u.max), obs_mib(u.last), obs_mib(budget),
			 (unsigned long long)u.samples);
	printf("# %s: peak %.0f MiB of %.0f MiB (%llu samples)\n", what, obs_mib(u.max),
	       obs_mib(budget), (unsigned long long)u.samples);
}

/* The usual attack: start `name` under the hook, let it set up ("ready"),
 * watch it attack until it holds what it got ("attacked"), then let it
 * finish.  Returns the finished process; *u is what the observer saw. */
static struct gpt_proc *attack(const char *name, const char *const args[], const char *const env[],
			       int dev, struct obs_usage *u)
{
	struct gpt_proc *p = obs_start(name, args, env, GPT_HOOK), *w;

	obs_expect(p, "ready", 30000);
	w = obs_watch_start(env, dev, &p->pid, 1);
	gpt_go(p);
	obs_expect(p, "attacked", 60000);
	*u = obs_watch_end(w);
	gpt_go(p);
	obs_finish(p);
	return p;
}

/* === 1. cuMemPoolDestroy with allocations live ===============================
 * Bug: destroying a pool gave its whole reserve back to the budget at once,
 * although the driver keeps the pool (and its memory) until the last
 * allocation from it is freed.  Looping create / allocate 1 GiB / destroy
 * held 6 x 1 GiB under a 2 GiB budget. */

static int child_pool_destroy(int argc, char **argv)
{
	CUmemPoolProps props = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
				.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
	CUdeviceptr p[8];
	CUmemoryPool pool;
	CUstream s;
	CUresult rc = CUDA_SUCCESS;
	unsigned n = 0;
	size_t f, t;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_setup(0);
	cu_ok(cuStreamCreate(&s, 0), "cuStreamCreate");
	out("ready", "1");
	child_wait_go();
	while (n < 6) {
		cu_ok(cuMemPoolCreate(&pool, &props), "cuMemPoolCreate");
		rc = cuMemAllocFromPoolAsync(&p[n], GiB, pool, s);
		if (rc == CUDA_SUCCESS)
			cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
		/* Legal with the allocation live: the pool lives until it is freed. */
		cu_ok(cuMemPoolDestroy(pool), "cuMemPoolDestroy");
		if (rc != CUDA_SUCCESS)
			break;
		n++;
	}
	out("got", "%u", n);
	out("refusal", "%d", (int)rc);
	out("attacked", "1");
	child_wait_go();
	for (unsigned i = 0; i < n; i++)
		cu_ok(cuMemFreeAsync(p[i], s), "cuMemFreeAsync");
	cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	cu_ok(cuMemGetInfo_v2(&f, &t), "cuMemGetInfo");
	out("after_free", "%zu", f);
	out("rest_rc", "%d", (int)cuMemAlloc_v2(&p[0], f));
	return 0;
}

static void test_pool_destroy_with_live_allocations(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL, NULL);
	struct obs_usage u;
	struct gpt_proc *p;

	(void)state;
	p = attack("pool_destroy", NULL, env, 0, &u);
	assert_within("pool create/allocate/destroy loop", u, 2 * GiB);
	/* A context and one 1 GiB allocation fit in 2 GiB; a second does not. */
	assert_int_equal(gpt_get_u64(p, "got"), 1);
	assert_int_equal(gpt_get_u64(p, "refusal"), CUDA_ERROR_OUT_OF_MEMORY);
	/* Freed, the destroyed pools' memory is the tenant's again. */
	assert_int_equal(gpt_get_u64(p, "after_free"), 2 * GiB - SIM_CTX_H100);
	assert_int_equal(gpt_get_u64(p, "rest_rc"), CUDA_SUCCESS);
}

/* === 2. cuDevicePrimaryCtxReset with the primary context retained ==========
 * Bug: a reset made the library forget the retains, which the driver keeps
 * (the context is deactivated, and a later retain reactivates the same
 * handle).  The next release then looked like the last one and gave back
 * the context and allocations that were still live; retain / allocate /
 * release in a loop held without bound. */

static int child_reset(int argc, char **argv)
{
	CUcontext c;
	CUdeviceptr p;
	CUresult rc = CUDA_SUCCESS;
	unsigned got = 0;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_ok(cuInit(0), "cuInit");
	for (int i = 0; i < 3; i++)
		cu_ok(cuDevicePrimaryCtxRetain(&c, 0), "cuDevicePrimaryCtxRetain");
	cu_ok(cuCtxSetCurrent(c), "cuCtxSetCurrent");
	out("ready", "1");
	child_wait_go();
	cu_ok(cuMemAlloc_v2(&p, GiB), "first allocation");
	/* Frees what the context holds and deactivates it; 3 retains remain. */
	cu_ok(cuDevicePrimaryCtxReset_v2(0), "cuDevicePrimaryCtxReset");
	for (int i = 0; i < 6; i++) {
		cu_ok(cuDevicePrimaryCtxRetain(&c, 0), "retain again"); /* reactivates it */
		cu_ok(cuCtxSetCurrent(c), "cuCtxSetCurrent");
		rc = cuMemAlloc_v2(&p, GiB);
		if (rc == CUDA_SUCCESS)
			got++;
		/* Not the last release: 3 retains remain, the context stays. */
		cu_ok(cuDevicePrimaryCtxRelease_v2(0), "cuDevicePrimaryCtxRelease");
	}
	out("got", "%u", got);
	out("refusal", "%d", (int)rc);
	out("attacked", "1");
	child_wait_go();
	/* The last three releases free everything; a fresh retain starts over. */
	for (int i = 0; i < 3; i++)
		cu_ok(cuDevicePrimaryCtxRelease_v2(0), "cuDevicePrimaryCtxRelease");
	cu_setup(0);
	out_meminfo("after");
	return 0;
}

static void test_primary_reset_keeps_retains(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL, NULL);
	struct obs_usage u;
	struct gpt_proc *p;

	(void)state;
	p = attack("reset", NULL, env, 0, &u);
	assert_within("retain/allocate/release after a reset", u, 2 * GiB);
	/* After the reset: the context again and 1 GiB, then nothing more. */
	assert_int_equal(gpt_get_u64(p, "got"), 1);
	assert_int_equal(gpt_get_u64(p, "refusal"), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(gpt_get_u64(p, "after_free"), 2 * GiB - SIM_CTX_H100);
}

/* === 3. Graph memory reserved by an upload at instantiation =================
 * Bug: cuGraphInstantiateWithParams with CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD
 * makes the driver reserve the graph's memory at once, and that reserve was
 * neither checked nor charged: a 4 GiB allocation node ran under a 2 GiB
 * budget.  cuGraphUpload and cuGraphLaunch of such a graph were already
 * refused; they stay covered here. */

/* Add an allocation node of `bytes` on device `dev` to g. */
static void add_alloc_node(CUgraph g, size_t bytes, int dev)
{
	CUDA_MEM_ALLOC_NODE_PARAMS p;
	CUgraphNode n;

	memset(&p, 0, sizeof p);
	p.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	p.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	p.poolProps.location.id = dev;
	p.bytesize = bytes;
	cu_ok(cuGraphAddMemAllocNode(&n, g, NULL, 0, &p), "cuGraphAddMemAllocNode");
}

/* Make graph g's memory reserved the way `mode` says; the call's result. */
static CUresult graph_reserve(CUgraph g, const char *mode, CUstream s)
{
	CUDA_GRAPH_INSTANTIATE_PARAMS ip = {.flags = CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD,
					    .hUploadStream = s};
	CUgraphExec e;
	CUresult rc;

	if (strcmp(mode, "params") == 0)
		return cuGraphInstantiateWithParams(&e, g, &ip);
	if (strcmp(mode, "params_ptsz") == 0)
		return cuGraphInstantiateWithParams_ptsz(&e, g, &ip);
	cu_ok(cuGraphInstantiateWithFlags(&e, g, 0), "cuGraphInstantiateWithFlags");
	if (strcmp(mode, "upload") == 0)
		return cuGraphUpload(e, s);
	rc = cuGraphLaunch(e, s);
	if (rc == CUDA_SUCCESS)
		cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	return rc;
}

static int child_graph_upload(int argc, char **argv)
{
	CUgraph big, small;
	CUstream s;

	if (argc < 1)
		return 98;
	obs_child_start();
	cu_setup(0);
	cu_ok(cuStreamCreate(&s, 0), "cuStreamCreate");
	cu_ok(cuGraphCreate(&big, 0), "cuGraphCreate");
	add_alloc_node(big, 4 * GiB, 0);
	cu_ok(cuGraphCreate(&small, 0), "cuGraphCreate");
	add_alloc_node(small, GiB, 0);
	out("ready", "1");
	child_wait_go();
	out("big_rc", "%d", (int)graph_reserve(big, argv[0], s));
	out("attacked", "1");
	child_wait_go();
	/* One that fits is admitted, and what it reserved is charged. */
	out("small_rc", "%d", (int)graph_reserve(small, argv[0], s));
	out_free("small_free");
	return 0;
}

static void graph_upload(const char *mode)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL, NULL);
	const char *args[] = {mode, NULL};
	char what[64];
	struct obs_usage u;
	struct gpt_proc *p;

	p = attack("graph_upload", args, env, 0, &u);
	snprintf(what, sizeof what, "4 GiB graph, %s", mode);
	assert_within(what, u, 2 * GiB);
	if (gpt_get_u64(p, "big_rc") != CUDA_ERROR_OUT_OF_MEMORY)
		fail_msg("%s: a 4 GiB graph under a 2 GiB budget returned %d", mode,
			 (int)gpt_get_u64(p, "big_rc"));
	assert_int_equal(gpt_get_u64(p, "small_rc"), CUDA_SUCCESS);
	assert_int_equal(gpt_get_u64(p, "small_free"), 2 * GiB - SIM_CTX_H100 - GiB);
}

static void test_graph_instantiate_upload(void **s) { (void)s; graph_upload("params"); }
static void test_graph_instantiate_upload_ptsz(void **s) { (void)s; graph_upload("params_ptsz"); }
static void test_graph_upload(void **s) { (void)s; graph_upload("upload"); }
static void test_graph_launch(void **s) { (void)s; graph_upload("launch"); }

/* === 4. Graph memory nodes on two GPUs ======================================
 * Bug: all of a graph's allocation nodes were charged to the device of the
 * first one, so device 1's graph reserve never counted against device 1's
 * budget: a 3 GiB node on device 1 ran under a 2 GiB budget there whenever
 * a node on device 0 came first. */

#define TWO_H100 "GPUPOOL_SIM_GPUS=H100-SXM-80GB:80GiB:132,H100-SXM-80GB:80GiB:132"

static int child_graph_2dev(int argc, char **argv)
{
	CUcontext c0, c1;
	CUgraph a, b;
	CUgraphExec ea, eb;
	CUstream s;
	CUresult rc;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_setup(0);
	cu_ok(cuCtxGetCurrent(&c0), "cuCtxGetCurrent");
	cu_ok(cuDevicePrimaryCtxRetain(&c1, 1), "retain device 1");
	cu_ok(cuStreamCreate(&s, 0), "cuStreamCreate");
	cu_ok(cuGraphCreate(&a, 0), "cuGraphCreate");
	add_alloc_node(a, 64 * MiB, 0); /* first: the one the bug charged all to */
	add_alloc_node(a, 3 * GiB, 1);
	cu_ok(cuGraphInstantiateWithFlags(&ea, a, 0), "instantiate");
	out("ready", "1");
	child_wait_go();
	rc = cuGraphLaunch(ea, s);
	if (rc == CUDA_SUCCESS)
		cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	out("big_rc", "%d", (int)rc);
	out("attacked", "1");
	child_wait_go();
	/* 1 GiB on each device fits both budgets; each device is charged its
	 * own node. */
	cu_ok(cuGraphCreate(&b, 0), "cuGraphCreate");
	add_alloc_node(b, GiB, 0);
	add_alloc_node(b, GiB, 1);
	cu_ok(cuGraphInstantiateWithFlags(&eb, b, 0), "instantiate");
	rc = cuGraphLaunch(eb, s);
	if (rc == CUDA_SUCCESS)
		cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	out("small_rc", "%d", (int)rc);
	cu_ok(cuCtxSetCurrent(c1), "cuCtxSetCurrent");
	out_free("free1");
	cu_ok(cuCtxSetCurrent(c0), "cuCtxSetCurrent");
	out_free("free0");
	return 0;
}

static void test_graph_nodes_charged_to_their_device(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT_0=8GiB",
					    "GPUPOOL_MEMORY_LIMIT_1=2GiB", TWO_H100);
	struct obs_usage u;
	struct gpt_proc *p;

	(void)state;
	p = attack("graph_2dev", NULL, env, 1, &u);
	assert_within("device 1, graph with a 3 GiB node there", u, 2 * GiB);
	assert_int_equal(gpt_get_u64(p, "big_rc"), CUDA_ERROR_OUT_OF_MEMORY);
	assert_int_equal(gpt_get_u64(p, "small_rc"), CUDA_SUCCESS);
	assert_int_equal(gpt_get_u64(p, "free1"), 2 * GiB - SIM_CTX_H100 - GiB);
	assert_int_equal(gpt_get_u64(p, "free0"), 8 * GiB - SIM_CTX_H100 - GiB);
}

/* === 5. Contexts charged only after the driver made them ====================
 * Bug: a context was charged after the driver had created it (and, when it
 * did not fit, destroyed again), so threads and processes creating contexts
 * at once really held many more than the budget allows: 16.6 GiB of
 * contexts were seen under a small budget. */

static pthread_barrier_t bar;
static volatile int stop_flag;
static unsigned round_ok, errors;
static int first_error;

static void note_error(CUresult rc)
{
	if (__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED) == 0)
		first_error = (int)rc;
}

/* A fresh process whose 8 threads all retain the primary context at once,
 * retrying while refused (for up to a second). */
static volatile double retain_end;
static unsigned retained;

static void *retain_thread(void *arg)
{
	CUcontext c;
	CUresult rc;

	(void)arg;
	pthread_barrier_wait(&bar);
	do
		rc = cuDevicePrimaryCtxRetain(&c, 0);
	while (rc == CUDA_ERROR_OUT_OF_MEMORY && obs_now_s() < retain_end);
	if (rc == CUDA_SUCCESS)
		__atomic_add_fetch(&retained, 1, __ATOMIC_RELAXED);
	else if (rc != CUDA_ERROR_OUT_OF_MEMORY)
		note_error(rc);
	return NULL;
}

static int child_retain_burst(int argc, char **argv)
{
	pthread_t t[8];

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_ok(cuInit(0), "cuInit");
	pthread_barrier_init(&bar, NULL, 8);
	out("ready", "1");
	child_wait_go();
	retain_end = obs_now_s() + 1;
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, retain_thread, NULL);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	out("retained", "%u", retained);
	out("errors", "%u", errors);
	out("first_error", "%d", first_error);
	out("attacked", "1");
	child_wait_go();
	return 0;
}

static void test_primary_retain_race(void **state)
{
	enum { NP = 6 };

	(void)state;
	for (int round = 0; round < 3; round++) {
		struct obs_tenant te;
		const char *const *env =
			obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL, NULL);
		struct gpt_proc *p[NP], *w;
		pid_t pids[NP];
		unsigned with_ctx = 0;
		struct obs_usage u;

		for (int i = 0; i < NP; i++) {
			p[i] = obs_start("retain_burst", NULL, env, GPT_HOOK);
			pids[i] = p[i]->pid;
		}
		for (int i = 0; i < NP; i++)
			obs_expect(p[i], "ready", 30000);
		w = obs_watch_start(env, 0, pids, NP);
		for (int i = 0; i < NP; i++)
			gpt_go(p[i]);
		for (int i = 0; i < NP; i++)
			obs_expect(p[i], "attacked", 30000);
		u = obs_watch_end(w);
		for (int i = 0; i < NP; i++) {
			if (gpt_get_u64(p[i], "errors"))
				fail_msg("retain failed otherwise than out of memory: %s",
					 gpt_get(p[i], "first_error"));
			with_ctx += gpt_get_u64(p[i], "retained") > 0;
		}
		printf("# round %d: %u of %d processes got a context\n", round, with_ctx, NP);
		assert_within("6 fresh processes x 8 threads retaining", u, 2 * GiB);
		/* Three contexts fit in 2 GiB, four do not. */
		if (with_ctx < 1 || with_ctx > 3)
			fail_msg("%u processes got a context; 1 to 3 fit", with_ctx);
		for (int i = 0; i < NP; i++) {
			gpt_go(p[i]);
			obs_finish(p[i]);
		}
	}
}

/* The first tenant's overshoot must not cost a neighbour on the same card
 * anything.  The card is exactly the two budgets big (plus the driver's 64
 * MiB), tenant 1 holds all of its budget in contexts and keeps trying to
 * create more, tenant 2 holds all of its budget and keeps freeing and
 * re-taking 1 GiB of it.  Only if tenant 1 really takes memory past its
 * budget can tenant 2's allocation find the card full. */

#define B1_MIB 1560ULL /* tenant 1: three contexts */
#define B2_MIB 4096ULL /* tenant 2 */
/* 64 MiB driver reservation + B1 + B2: the card is full when both are. */
#define NEIGHBOUR_GPUS "GPUPOOL_SIM_GPUS=H100-SXM-80GB:5720MiB:132"

/* Create contexts (and destroy any that is admitted) until retain_end. */
static void *ctx_hammer_thread(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&bar);
	while (obs_now_s() < retain_end) {
		CUcontext c;
		CUresult rc = cuCtxCreate_v2(&c, 0, 0);

		if (rc == CUDA_SUCCESS) {
			__atomic_add_fetch(&retained, 1, __ATOMIC_RELAXED);
			cuCtxDestroy_v2(c);
		} else if (rc != CUDA_ERROR_OUT_OF_MEMORY) {
			note_error(rc);
		}
	}
	return NULL;
}

static int child_ctx_hammer(int argc, char **argv)
{
	pthread_t t[14];
	CUcontext c;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_setup(0);
	for (int i = 0; i < 2; i++)
		cu_ok(cuCtxCreate_v2(&c, 0, 0), "cuCtxCreate (within the budget)");
	pthread_barrier_init(&bar, NULL, 14);
	out("ready", "1");
	child_wait_go();
	retain_end = obs_now_s() + 2;
	for (int i = 0; i < 14; i++)
		pthread_create(&t[i], NULL, ctx_hammer_thread, NULL);
	for (int i = 0; i < 14; i++)
		pthread_join(t[i], NULL);
	out("admitted", "%u", retained);
	out("errors", "%u", errors);
	out("first_error", "%d", first_error);
	out("attacked", "1");
	child_wait_go();
	return 0;
}

/* Fill the budget, then free and re-take 1 GiB of it for 2 s, counting the
 * re-takes the card refused. */
static int child_neighbour(int argc, char **argv)
{
	CUdeviceptr chunk[3], rest;
	unsigned loops = 0, failures = 0; /* loops whose re-take was refused */
	int first = 0;
	size_t f, t;
	double end;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_setup(0);
	for (int i = 0; i < 3; i++)
		cu_ok(cuMemAlloc_v2(&chunk[i], GiB), "cuMemAlloc");
	cu_ok(cuMemGetInfo_v2(&f, &t), "cuMemGetInfo");
	cu_ok(cuMemAlloc_v2(&rest, f), "the rest of the budget");
	out("rest", "%zu", f);
	out("ready", "1");
	child_wait_go();
	end = obs_now_s() + 2;
	while (obs_now_s() < end) {
		CUresult rc;

		cu_ok(cuMemFree_v2(chunk[0]), "cuMemFree");
		rc = cuMemAlloc_v2(&chunk[0], GiB);
		if (rc != CUDA_SUCCESS && failures++ == 0)
			first = (int)rc;
		while (rc != CUDA_SUCCESS) { /* get it back before going on */
			if (obs_now_s() > end + 10)
				cu_ok(rc, "re-taking 1 GiB of its own budget, for 10 s");
			rc = cuMemAlloc_v2(&chunk[0], GiB);
		}
		loops++;
	}
	out("loops", "%u", loops);
	out("failures", "%u", failures);
	out("first_failure", "%d", first);
	out("attacked", "1");
	child_wait_go();
	return 0;
}

static void test_ctx_overshoot_spares_neighbour(void **state)
{
	struct obs_tenant t1, t2;
	const char *const *e1 =
		obs_tenant(&t1, NULL, "GPUPOOL_MEMORY_LIMIT=1560MiB", NEIGHBOUR_GPUS, NULL);
	const char *const *e2 =
		obs_tenant(&t2, t1.state, "GPUPOOL_MEMORY_LIMIT=4GiB", NEIGHBOUR_GPUS, NULL);
	struct gpt_proc *hammer, *nb, *w;
	struct obs_usage u;

	(void)state;
	nb = obs_start("neighbour", NULL, e2, GPT_HOOK);
	obs_expect(nb, "ready", 30000);
	assert_int_equal(gpt_get_u64(nb, "rest"), B2_MIB * MiB - SIM_CTX_H100 - 3 * GiB);
	hammer = obs_start("ctx_hammer", NULL, e1, GPT_HOOK);
	obs_expect(hammer, "ready", 30000);
	w = obs_watch_start(e1, 0, &hammer->pid, 1);
	gpt_go(hammer);
	gpt_go(nb);
	obs_expect(hammer, "attacked", 30000);
	obs_expect(nb, "attacked", 30000);
	u = obs_watch_end(w);
	printf("# neighbour: %llu of %llu re-takes refused (first: %d)\n", num(nb, "failures"),
	       num(nb, "loops"), (int)num(nb, "first_failure"));
	assert_within("tenant 1, creating contexts past its budget", u, B1_MIB * MiB);
	if (gpt_get_u64(hammer, "errors"))
		fail_msg("cuCtxCreate failed otherwise than out of memory: %s",
			 gpt_get(hammer, "first_error"));
	assert_int_equal(gpt_get_u64(hammer, "admitted"), 0);
	if (num(nb, "failures"))
		fail_msg("the neighbour was refused memory of its own budget in %llu of %llu "
			 "tries (first error %d): tenant 1 took it",
			 num(nb, "failures"), num(nb, "loops"), (int)num(nb, "first_failure"));
	gpt_go(hammer);
	gpt_go(nb);
	obs_finish(hammer);
	obs_finish(nb);
}

/* --- rounds of threads ------------------------------------------------------
 * `n` threads run `fn`, which loops: wait at the barrier (start of a round;
 * return if stop_flag), take, add what it got to round_ok, wait (all
 * took), give back, wait (all gave back).  The main thread ends the rounds
 * after `seconds` and reports how many there were and the least and most
 * taken in one. */

static CUcontext main_ctx;

static void storm(void *(*fn)(void *), int n, double seconds)
{
	pthread_t t[16];
	unsigned rounds = 0, min_ok = UINT_MAX, max_ok = 0;
	double end;

	pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, fn, NULL);
	out("ready", "1");
	child_wait_go();
	end = obs_now_s() + seconds;
	for (;;) {
		stop_flag = obs_now_s() > end;
		pthread_barrier_wait(&bar);
		if (stop_flag)
			break;
		pthread_barrier_wait(&bar);
		if (round_ok < min_ok)
			min_ok = round_ok;
		if (round_ok > max_ok)
			max_ok = round_ok;
		round_ok = 0;
		rounds++;
		pthread_barrier_wait(&bar);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);
	out("rounds", "%u", rounds);
	out("min_ok", "%u", min_ok);
	out("max_ok", "%u", max_ok);
	out("errors", "%u", errors);
	out("first_error", "%d", first_error);
}

/* 16 threads of one process create a context each, all at once; those
 * that got one destroy it (the first bug of section 5, in threads). */
static void *ctx_storm_thread(void *arg)
{
	(void)arg;
	for (;;) {
		CUcontext c;
		CUresult rc;

		pthread_barrier_wait(&bar);
		if (stop_flag)
			return NULL;
		rc = cuCtxCreate_v2(&c, 0, 0);
		if (rc == CUDA_SUCCESS)
			__atomic_add_fetch(&round_ok, 1, __ATOMIC_RELAXED);
		else if (rc != CUDA_ERROR_OUT_OF_MEMORY)
			note_error(rc);
		pthread_barrier_wait(&bar);
		if (rc == CUDA_SUCCESS && (rc = cuCtxDestroy_v2(c)) != CUDA_SUCCESS)
			note_error(rc);
		pthread_barrier_wait(&bar);
	}
}

static int child_ctx_storm(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	obs_child_start();
	cu_setup(0);
	storm(ctx_storm_thread, 16, 3);
	out("attacked", "1");
	child_wait_go();
	return 0;
}

static void test_ctx_create_storm(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL, NULL);
	struct obs_usage u;
	struct gpt_proc *p;

	(void)state;
	p = attack("ctx_storm", NULL, env, 0, &u);
	printf("# %llu rounds, %llu..%llu contexts created per round\n", num(p, "rounds"),
	       num(p, "min_ok"), num(p, "max_ok"));
	assert_within("16 threads creating contexts", u, 2 * GiB);
	if (gpt_get_u64(p, "errors"))
		fail_msg("cuCtxCreate failed otherwise than out of memory: %s",
			 gpt_get(p, "first_error"));
	/* The primary context and two more fit: never more at once. */
	assert_int_equal(gpt_get_u64(p, "max_ok"), 2);
}

/* === 6. Pitch padding charged after the driver took it =====================
 * Bug: cuMemAllocPitch was charged width x height first and the pitch
 * padding only once the driver had allocated it, so near the budget's edge
 * the padding was really held past the budget (and then freed again).
 * 513-byte rows are padded to 1024: the driver takes twice the first
 * charge. */

#define PITCH_ROWS (256u << 10) /* 513 x 256 Ki: charged 130 MiB first, takes 256 MiB */

static void *pitch_thread(void *arg)
{
	CUdeviceptr p[8];
	size_t pitch;

	(void)arg;
	cuCtxSetCurrent(main_ctx);
	for (;;) {
		unsigned n = 0, refused = 0;

		pthread_barrier_wait(&bar);
		if (stop_flag)
			return NULL;
		while (n < 8 && refused < 16) {
			CUresult rc = cuMemAllocPitch_v2(&p[n], &pitch, 513, PITCH_ROWS, 4);
			if (rc == CUDA_SUCCESS) {
				n++;
			} else if (rc == CUDA_ERROR_OUT_OF_MEMORY) {
				refused++;
			} else {
				note_error(rc);
				break;
			}
		}
		__atomic_add_fetch(&round_ok, n, __ATOMIC_RELAXED);
		pthread_barrier_wait(&bar);
		for (unsigned i = 0; i < n; i++)
			cuMemFree_v2(p[i]);
		pthread_barrier_wait(&bar);
	}
}

static int child_pitch_storm(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	obs_child_start();
	cu_setup(0);
	cu_ok(cuCtxGetCurrent(&main_ctx), "cuCtxGetCurrent");
	storm(pitch_thread, 16, 3);
	out("attacked", "1");
	child_wait_go();
	return 0;
}

static void test_pitch_padding_race(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL, NULL);
	struct obs_usage u;
	struct gpt_proc *p;

	(void)state;
	p = attack("pitch_storm", NULL, env, 0, &u);
	printf("# %llu rounds, %llu..%llu pitched allocations per round\n", num(p, "rounds"),
	       num(p, "min_ok"), num(p, "max_ok"));
	assert_within("16 threads allocating padded rows at the edge", u, 2 * GiB);
	if (gpt_get_u64(p, "errors"))
		fail_msg("cuMemAllocPitch failed otherwise than out of memory: %s",
			 gpt_get(p, "first_error"));
	/* (2 GiB - context) / 256 MiB = 5.97: five fit, never six. */
	assert_int_equal(gpt_get_u64(p, "max_ok"), 5);
}

/* === 7. cuMemAllocAsync: check, then act ====================================
 * Bug: an allocation that the pool's free reserve could serve skipped the
 * pre-charge, and two threads could both decide so at once: one took the
 * free reserve, the other grew the pool past the budget (seen in 4 of 5,000
 * rounds).  Each round here: the pool holds 1 GiB of free reserve (its
 * release threshold keeps it), the budget has less than 1 GiB left, and two
 * threads allocate 1 GiB at the same instant: one may succeed, never
 * both. */

/* A barrier that spins (for ~100 us, then yields), so that both sides
 * leave it at the same instant. */
struct spin {
	unsigned n, count, gen;
};

static void spin_wait(struct spin *b)
{
	unsigned gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);

	if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->n) {
		__atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&b->gen, gen + 1, __ATOMIC_RELEASE);
		return;
	}
	for (unsigned i = 0; __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen; i++)
		if (i > 100000)
			sched_yield();
}

static struct spin race_bar = {.n = 2};
static CUstream race_s[2];
static CUdeviceptr race_p[2];
static CUresult race_rc[2];
static unsigned race_delay[2]; /* this round's head start of the other side */

/* Burn `n` iterations.  One side starts up to ~2048 iterations after the
 * other, differently in every round: the rounds then sweep the gap between
 * the two allocations across the window, whatever the threads' systematic
 * lag (without it, whole runs of 20,000 rounds missed; with it, every run
 * tried hit within ~15,000 rounds on the unfixed library). */
static void stagger(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++)
		;
}

static void *race_thread(void *arg)
{
	(void)arg;
	cuCtxSetCurrent(main_ctx);
	for (;;) {
		spin_wait(&race_bar); /* go */
		if (stop_flag)
			return NULL;
		stagger(race_delay[1]);
		race_rc[1] = cuMemAllocAsync(&race_p[1], GiB, race_s[1]);
		spin_wait(&race_bar); /* both allocated */
		spin_wait(&race_bar); /* the main thread has cleaned up */
	}
}

static uint64_t pool_reserved(CUmemoryPool pool)
{
	cuuint64_t v = 0;

	cu_ok(cuMemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &v), "reserved");
	return v;
}

static int child_async_race(int argc, char **argv)
{
	cuuint64_t keep = UINT64_MAX;
	unsigned rounds = 0, both = 0, one = 0, none = 0;
	uint64_t max_reserved = 0;
	unsigned seed = (unsigned)getpid();
	CUmemoryPool pool;
	CUdeviceptr p;
	pthread_t t;
	double end;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_setup(0);
	cu_ok(cuCtxGetCurrent(&main_ctx), "cuCtxGetCurrent");
	for (int i = 0; i < 2; i++)
		cu_ok(cuStreamCreate(&race_s[i], CU_STREAM_NON_BLOCKING), "cuStreamCreate");
	cu_ok(cuDeviceGetDefaultMemPool(&pool, 0), "cuDeviceGetDefaultMemPool");
	cu_ok(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep), "threshold");
	/* 1 GiB of free reserve; the budget then has 2 GiB - 520 MiB - 1 GiB. */
	cu_ok(cuMemAllocAsync(&p, GiB, race_s[0]), "priming allocation");
	cu_ok(cuMemFreeAsync(p, race_s[0]), "cuMemFreeAsync");
	cu_ok(cuStreamSynchronize(race_s[0]), "cuStreamSynchronize");
	out("primed", "%llu", (unsigned long long)pool_reserved(pool));
	out("primed_charge", "%zu", cu_charged());
	pthread_create(&t, NULL, race_thread, NULL);
	out("ready", "1");
	child_wait_go();
	end = obs_now_s() + 8;
	for (;;) {
		uint64_t r;

		stop_flag = rounds >= 50000 || both >= 10 || obs_now_s() > end;
		race_delay[0] = race_delay[1] = 0;
		race_delay[rand_r(&seed) % 2] = rand_r(&seed) % 2048;
		spin_wait(&race_bar);
		if (stop_flag)
			break;
		stagger(race_delay[0]);
		race_rc[0] = cuMemAllocAsync(&race_p[0], GiB, race_s[0]);
		spin_wait(&race_bar);
		r = pool_reserved(pool);
		if (r > max_reserved)
			max_reserved = r;
		for (int i = 0; i < 2; i++)
			if (race_rc[i] != CUDA_SUCCESS && race_rc[i] != CUDA_ERROR_OUT_OF_MEMORY)
				note_error(race_rc[i]);
		if (race_rc[0] == CUDA_SUCCESS && race_rc[1] == CUDA_SUCCESS)
			both++;
		else if (race_rc[0] == CUDA_SUCCESS || race_rc[1] == CUDA_SUCCESS)
			one++;
		else
			none++;
		for (int i = 0; i < 2; i++) {
			if (race_rc[i] == CUDA_SUCCESS)
				cu_ok(cuMemFreeAsync(race_p[i], race_s[i]), "cuMemFreeAsync");
			cu_ok(cuStreamSynchronize(race_s[i]), "cuStreamSynchronize");
		}
		/* Back to 1 GiB of free reserve for the next round. */
		cu_ok(cuMemPoolTrimTo(pool, GiB), "cuMemPoolTrimTo");
		rounds++;
		spin_wait(&race_bar);
	}
	pthread_join(t, NULL);
	out("rounds", "%u", rounds);
	out("both", "%u", both);
	out("one", "%u", one);
	out("none", "%u", none);
	out("max_reserved", "%llu", (unsigned long long)max_reserved);
	out("errors", "%u", errors);
	out("first_error", "%d", first_error);
	out("attacked", "1");
	child_wait_go();
	return 0;
}

static void test_async_alloc_race(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL, NULL);
	struct obs_usage u;
	struct gpt_proc *p;
	uint64_t both, max_reserved;

	(void)state;
	/* No sampling observer here: the child sees for itself when both were
	 * admitted, and the race needs both cores for its two threads. */
	p = obs_start("async_race", NULL, env, GPT_HOOK);
	obs_expect(p, "ready", 30000);
	gpt_go(p);
	obs_expect(p, "attacked", 60000);
	u.max = u.last = obs_real_now(env, 0, &p->pid, 1);
	u.samples = 1;
	gpt_go(p);
	obs_finish(p);
	assert_int_equal(gpt_get_u64(p, "primed"), GiB);
	assert_int_equal(gpt_get_u64(p, "primed_charge"), SIM_CTX_H100 + GiB);
	both = gpt_get_u64(p, "both");
	max_reserved = gpt_get_u64(p, "max_reserved");
	printf("# %llu rounds: both admitted %llu, one %llu, none %llu; pool peaked at %.0f MiB\n",
	       num(p, "rounds"), num(p, "both"), num(p, "one"), num(p, "none"),
	       obs_mib(max_reserved));
	if (gpt_get_u64(p, "errors"))
		fail_msg("cuMemAllocAsync failed otherwise than out of memory: %s",
			 gpt_get(p, "first_error"));
	if (both || SIM_CTX_H100 + max_reserved > 2 * GiB)
		fail_msg("in %llu of %llu rounds both 1 GiB allocations were admitted: the pool "
			 "grew to %.0f MiB, %.0f MiB with the context, under a 2048 MiB budget",
			 (unsigned long long)both, num(p, "rounds"), obs_mib(max_reserved),
			 obs_mib(max_reserved + SIM_CTX_H100));
	assert_within("two threads allocating from the pool's reserve", u, 2 * GiB);
}

/* === 8. Gaming the context's cost ============================================
 * (a) GPUPOOL_CONTEXT_SIZE is for when the cost cannot be measured; set to
 * 2 MiB it overrode the measured 520 MiB, and the tenant got 518 MiB more
 * than its budget.  (b) A VMM charge taken before the first context, or
 * released while it is being created, was mistaken for (or against) the
 * context's cost when the library measured it (NVML's figure for the
 * process minus what it had charged): afterwards the charge must equal
 * what the process really holds. */

static int child_fill_granules(int argc, char **argv)
{
	CUdeviceptr p;
	unsigned n = 0;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_setup(0);
	out_meminfo("start");
	while (n < 4096 && cuMemAlloc_v2(&p, 2 * MiB) == CUDA_SUCCESS)
		n++;
	out("granules", "%u", n);
	out("attacked", "1");
	child_wait_go();
	return 0;
}

static void test_context_size_cannot_undercut_measured(void **state)
{
	struct obs_tenant te;
	const char *const *env =
		obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", "GPUPOOL_CONTEXT_SIZE=2MiB",
			   NULL);
	struct gpt_proc *p;
	uint64_t real;

	(void)state;
	p = obs_held("fill_granules", NULL, env, "attacked", &real);
	if (real > 2 * GiB)
		fail_msg("with GPUPOOL_CONTEXT_SIZE=2MiB the tenant really holds %.0f MiB under a "
			 "2048 MiB budget (%s granules of 2 MiB after its context)",
			 obs_mib(real), gpt_get(p, "granules"));
	assert_int_equal(gpt_get_u64(p, "start_free"), 2 * GiB - SIM_CTX_H100);
	assert_int_equal(gpt_get_u64(p, "granules"), (2 * GiB - SIM_CTX_H100) / (2 * MiB));
}

/* cuMemCreate before any context (the driver allows it), then the first
 * context; report the charge with the handle and after releasing it. */
static int child_vmm_first(int argc, char **argv)
{
	CUmemGenericAllocationHandle h;
	CUcontext c;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_ok(cuInit(0), "cuInit");
	cu_ok(cuMemCreate(&h, GiB, &cu_vmm_prop0, 0), "cuMemCreate before any context");
	cu_ok(cuDevicePrimaryCtxRetain(&c, 0), "cuDevicePrimaryCtxRetain");
	cu_ok(cuCtxSetCurrent(c), "cuCtxSetCurrent");
	out("charged_with_handle", "%zu", cu_charged());
	cu_ok(cuMemRelease(h), "cuMemRelease");
	out("charged", "%zu", cu_charged());
	out("attacked", "1");
	child_wait_go();
	return 0;
}

static void test_vmm_before_first_context(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL, NULL);
	struct gpt_proc *p;
	uint64_t real;

	(void)state;
	p = obs_held("vmm_first", NULL, env, "attacked", &real);
	assert_int_equal(real, SIM_CTX_H100); /* the scenario: only the context is left */
	assert_int_equal(gpt_get_u64(p, "charged_with_handle"), GiB + SIM_CTX_H100);
	assert_int_equal(gpt_get_u64(p, "charged"), real);
}

/* The same, with another thread releasing and re-creating the handle while
 * the first context is being created. */
static CUmemGenericAllocationHandle churn_h;
static volatile int churn_started;
static unsigned churn_loops;

static void *vmm_churn(void *arg)
{
	int have = 1;

	(void)arg;
	__atomic_store_n(&churn_started, 1, __ATOMIC_RELEASE);
	while (!stop_flag && churn_loops < 1000000) {
		CUresult rc = cuMemRelease(churn_h);
		if (rc != CUDA_SUCCESS) {
			note_error(rc);
			return NULL;
		}
		have = 0;
		rc = cuMemCreate(&churn_h, GiB, &cu_vmm_prop0, 0);
		if (rc != CUDA_SUCCESS) {
			if (rc != CUDA_ERROR_OUT_OF_MEMORY)
				note_error(rc);
			break;
		}
		have = 1;
		churn_loops++;
	}
	if (have)
		cuMemRelease(churn_h);
	return NULL;
}

static int child_vmm_race_first(int argc, char **argv)
{
	CUcontext c;
	CUresult rc;
	pthread_t t;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_ok(cuInit(0), "cuInit");
	cu_ok(cuMemCreate(&churn_h, GiB, &cu_vmm_prop0, 0), "cuMemCreate before any context");
	pthread_create(&t, NULL, vmm_churn, NULL);
	while (!__atomic_load_n(&churn_started, __ATOMIC_ACQUIRE))
		sched_yield();
	for (double until = obs_now_s() + 0.0002; obs_now_s() < until;)
		; /* let it get going */
	rc = cuDevicePrimaryCtxRetain(&c, 0);
	stop_flag = 1;
	pthread_join(t, NULL);
	out("churn_loops", "%u", churn_loops);
	out("errors", "%u", errors);
	out("first_error", "%d", first_error);
	out("retain_rc", "%d", (int)rc);
	if (rc == CUDA_SUCCESS) {
		cu_ok(cuCtxSetCurrent(c), "cuCtxSetCurrent");
		out("charged", "%zu", cu_charged());
	}
	out("attacked", "1");
	child_wait_go();
	return 0;
}

/* One fresh process of the race: NULL if its first context was charged
 * what it really costs, else what went wrong (in a static buffer). */
static const char *vmm_race_round(void)
{
	static char why[160];
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=2GiB", NULL, NULL);
	struct gpt_proc *p;
	uint64_t real, charged;

	p = obs_held("vmm_race_first", NULL, env, "attacked", &real);
	if (num(p, "errors"))
		fail_msg("the VMM churn failed: %d", (int)num(p, "first_error"));
	/* At most 1 GiB of VMM and the context: that fits in 2 GiB. */
	if (num(p, "retain_rc") != CUDA_SUCCESS) {
		snprintf(why, sizeof why, "the first context was refused (%d), %llu churn loops",
			 (int)num(p, "retain_rc"), num(p, "churn_loops"));
		return why;
	}
	assert_int_equal(real, SIM_CTX_H100); /* the scenario: only the context is left */
	charged = gpt_get_u64(p, "charged");
	if (charged == real)
		return NULL;
	snprintf(why, sizeof why, "charged %.0f MiB, really holds %.0f MiB, %llu churn loops",
		 obs_mib(charged), obs_mib(real), num(p, "churn_loops"));
	return why;
}

static void test_vmm_released_while_first_context(void **state)
{
	char report[4096] = "";
	size_t len = 0;
	unsigned bad = 0;

	(void)state;
	for (int round = 0; round < 24; round++) {
		const char *why = vmm_race_round();
		if (why && len < sizeof report) {
			bad++;
			len += (size_t)snprintf(report + len, sizeof report - len,
						"  round %d: %s\n", round, why);
		}
	}
	if (bad)
		fail_msg("in %u of 24 fresh processes the first context was mismeasured:\n%s", bad,
			 report);
}

/* === 9. Everything at once ===================================================
 * Four processes x 16 threads on one region, each thread taking and giving
 * back memory through every path (cuMemAlloc, pitch, managed, stream-ordered
 * with free and sync, VMM, arrays, created contexts, primary retains) and
 * holding up to four objects, for 3 s.  Bug: 7.1 GiB really held under a
 * 6 GiB budget. */

enum { OP_ALLOC, OP_PITCH, OP_MANAGED, OP_ASYNC, OP_VMM, OP_ARRAY, OP_CTX, OP_PRIMARY, OP_N };
static const char *const op_names[OP_N] = {"alloc", "pitch", "managed", "async",
					   "vmm",   "array", "ctx",     "primary"};
static int mix_ops[OP_N], mix_nops; /* the paths in use ("mix_storm OPS": a comma list) */
static int mix_release_mapped;        /* "vmm_released": always release VMM handles mapped */

struct obj {
	int op;
	CUdeviceptr p;           /* ALLOC, PITCH, MANAGED, ASYNC; VMM: the reservation */
	size_t size;             /* VMM */
	CUmemGenericAllocationHandle h;
	int released;            /* VMM: handle released while mapped */
	CUarray a;
	CUcontext c;
};

static double mix_end;
static unsigned mix_taken, mix_refused;

static CUresult take(struct obj *o, unsigned *seed, CUstream s)
{
	size_t size = (1 + rand_r(seed) % 4) * 64 * MiB, pitch;
	CUmemAccessDesc acc = {.location = cu_vmm_prop0.location,
			       .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
	CUDA_ARRAY3D_DESCRIPTOR ad = {.Width = 4096, .Height = size / (4096 * 4 * 4),
				      .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
	CUcontext cur;
	CUresult rc;

	memset(o, 0, sizeof *o);
	o->op = mix_ops[rand_r(seed) % (unsigned)mix_nops];
	switch (o->op) {
	case OP_ALLOC:
		return cuMemAlloc_v2(&o->p, size);
	case OP_PITCH: /* 513-byte rows, padded to twice that */
		return cuMemAllocPitch_v2(&o->p, &pitch, 513, size / 2048, 4);
	case OP_MANAGED:
		return cuMemAllocManaged(&o->p, size, CU_MEM_ATTACH_GLOBAL);
	case OP_ASYNC:
		return cuMemAllocAsync(&o->p, size, s);
	case OP_VMM:
		o->size = size;
		if ((rc = cuMemAddressReserve(&o->p, size, 0, 0, 0)))
			return rc;
		if ((rc = cuMemCreate(&o->h, size, &cu_vmm_prop0, 0))) {
			cuMemAddressFree(o->p, size);
			return rc;
		}
		if ((rc = cuMemMap(o->p, size, 0, o->h, 0)) ||
		    (rc = cuMemSetAccess(o->p, size, &acc, 1))) {
			cuMemRelease(o->h);
			cuMemAddressFree(o->p, size);
			return rc;
		}
		o->released = mix_release_mapped || rand_r(seed) % 2;
		return o->released ? cuMemRelease(o->h) : CUDA_SUCCESS;
	case OP_ARRAY:
		return cuArray3DCreate_v2(&o->a, &ad);
	case OP_CTX:
		/* Created contexts become current; keep allocating in the primary. */
		rc = cuCtxCreate_v2(&o->c, 0, 0);
		if (rc == CUDA_SUCCESS)
			cuCtxPopCurrent_v2(&cur);
		return rc;
	default:
		return cuDevicePrimaryCtxRetain(&o->c, 0);
	}
}

static CUresult give(struct obj *o, CUstream s)
{
	CUresult rc;

	switch (o->op) {
	case OP_ALLOC:
	case OP_PITCH:
	case OP_MANAGED:
		return cuMemFree_v2(o->p);
	case OP_ASYNC:
		rc = cuMemFreeAsync(o->p, s);
		return rc ? rc : cuStreamSynchronize(s);
	case OP_VMM:
		if ((rc = cuMemUnmap(o->p, o->size)))
			return rc;
		if (!o->released && (rc = cuMemRelease(o->h)))
			return rc;
		return cuMemAddressFree(o->p, o->size);
	case OP_ARRAY:
		return cuArrayDestroy(o->a);
	case OP_CTX:
		return cuCtxDestroy_v2(o->c);
	default:
		return cuDevicePrimaryCtxRelease_v2(0);
	}
}

static void *mix_thread(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + (unsigned)getpid();
	struct obj ring[4];
	unsigned head = 0, n = 0;
	CUstream s;
	CUresult rc;

	cuCtxSetCurrent(main_ctx);
	if ((rc = cuStreamCreate(&s, CU_STREAM_NON_BLOCKING))) {
		note_error(rc);
		return NULL;
	}
	while (obs_now_s() < mix_end) {
		if (n == 4) {
			if ((rc = give(&ring[head], s)))
				note_error(rc);
			head = (head + 1) % 4;
			n--;
		}
		rc = take(&ring[(head + n) % 4], &seed, s);
		if (rc == CUDA_SUCCESS) {
			n++;
			__atomic_add_fetch(&mix_taken, 1, __ATOMIC_RELAXED);
		} else if (rc == CUDA_ERROR_OUT_OF_MEMORY) {
			__atomic_add_fetch(&mix_refused, 1, __ATOMIC_RELAXED);
		} else {
			note_error(rc);
		}
	}
	for (; n; n--, head = (head + 1) % 4)
		if ((rc = give(&ring[head], s)))
			note_error(rc);
	return NULL;
}

static int child_mix_storm(int argc, char **argv)
{
	pthread_t t[16];

	for (int i = 0; i < OP_N; i++)
		if (argc < 1 || strcmp(argv[0], "all") == 0 || strstr(argv[0], op_names[i]))
			mix_ops[mix_nops++] = i;
	if (!mix_nops)
		return 98;
	mix_release_mapped = argc > 0 && strstr(argv[0], "vmm_released") != NULL;
	obs_child_start();
	cu_setup(0);
	cu_ok(cuCtxGetCurrent(&main_ctx), "cuCtxGetCurrent");
	out("ready", "1");
	child_wait_go();
	mix_end = obs_now_s() + 3;
	for (int i = 0; i < 16; i++)
		pthread_create(&t[i], NULL, mix_thread, (void *)(uintptr_t)i);
	for (int i = 0; i < 16; i++)
		pthread_join(t[i], NULL);
	out("charged_end", "%zu", cu_charged()); /* the tenant's, all processes */
	out("taken", "%u", mix_taken);
	out("refused", "%u", mix_refused);
	out("errors", "%u", errors);
	out("first_error", "%d", first_error);
	out("attacked", "1");
	child_wait_go();
	return 0;
}

static void test_mixed_storm(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=6GiB", NULL, NULL);
	struct gpt_proc *p[4], *w;
	pid_t pids[4];
	struct obs_usage u;

	(void)state;
	for (int i = 0; i < 4; i++) {
		p[i] = obs_start("mix_storm", NULL, env, GPT_HOOK);
		pids[i] = p[i]->pid;
	}
	for (int i = 0; i < 4; i++)
		obs_expect(p[i], "ready", 30000);
	w = obs_watch_start(env, 0, pids, 4);
	for (int i = 0; i < 4; i++)
		gpt_go(p[i]);
	for (int i = 0; i < 4; i++)
		obs_expect(p[i], "attacked", 60000);
	u = obs_watch_end(w);
	for (int i = 0; i < 4; i++) {
		printf("# process %d: %llu taken, %llu refused\n", i, num(p[i], "taken"),
		       num(p[i], "refused"));
		if (num(p[i], "errors"))
			fail_msg("process %d: %llu calls failed otherwise than out of memory "
				 "(first: %d)",
				 i, num(p[i], "errors"), (int)num(p[i], "first_error"));
	}
	assert_within("4 processes x 16 threads, every path", u, 6 * GiB);
	for (int i = 0; i < 4; i++) {
		gpt_go(p[i]);
		obs_finish(p[i]);
	}
}

/* Found by the storm above: with the simulator recycling virtual
 * addresses (as the real driver does), a cuMemAddressFree (or cuMemUnmap)
 * that updated its records only after the driver call could catch another
 * thread's mapping just made at the same address, dropping the last
 * reference of a handle released while mapped: that memory was uncharged
 * while still mapped (7.1 GiB really held under 6 GiB).  16 threads, each
 * releasing every handle while mapped, then unmapping and freeing the
 * range. */
static void test_vmm_recycled_addresses(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=6GiB", NULL, NULL);
	const char *args[] = {"vmm_released", NULL};
	struct obs_usage u;
	struct gpt_proc *p;

	(void)state;
	p = attack("mix_storm", args, env, 0, &u);
	printf("# %llu VMM allocations taken, %llu refused\n", num(p, "taken"), num(p, "refused"));
	if (num(p, "errors"))
		fail_msg("%llu VMM calls failed otherwise than out of memory (first: %d)",
			 num(p, "errors"), (int)num(p, "first_error"));
	assert_within("16 threads: map, release, unmap, free the range", u, 6 * GiB);
}

/* === 10. fork before any CUDA call, no GPUPOOL_REGION ========================
 * Bug: without GPUPOOL_REGION the region is the process's own, made at its
 * first CUDA call; children forked before that each made one of their own,
 * and each got a whole budget.  The parent forks three children before
 * touching CUDA; each takes a context and 64 MiB pieces until refused: all
 * together they must stay within the one budget. */

static int child_fork_family(int argc, char **argv)
{
	int up[2], down[2], bye[2], status;
	pid_t kids[3];
	char c;

	(void)argc;
	(void)argv;
	obs_child_start();
	/* up: kids to parent; down: "go" to each kid; bye: closed to end them. */
	if (pipe(up) || pipe(down) || pipe(bye))
		return 98;
	for (int i = 0; i < 3; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			return 97;
		if (kids[i] == 0) {
			CUcontext ctx;
			CUdeviceptr p;
			CUresult rc;
			unsigned n = 0;
			char key[32];

			close(up[0]);
			close(down[1]);
			close(bye[1]);
			rc = cuInit(0);
			if (rc == CUDA_SUCCESS)
				rc = cuDevicePrimaryCtxRetain(&ctx, 0);
			if (rc == CUDA_SUCCESS)
				rc = cuCtxSetCurrent(ctx);
			snprintf(key, sizeof key, "kid%d_setup", i);
			out(key, "%d", (int)rc);
			(void)!write(up[1], "r", 1);
			if (read(down[0], &c, 1) != 1)
				_exit(0);
			while (rc == CUDA_SUCCESS && n < 64 &&
			       cuMemAlloc_v2(&p, 64 * MiB) == CUDA_SUCCESS)
				n++;
			snprintf(key, sizeof key, "kid%d_got", i);
			out(key, "%u", n);
			(void)!write(up[1], "d", 1);
			while (read(bye[0], &c, 1) > 0)
				; /* hold until the parent closes the pipe */
			_exit(0);
		}
	}
	close(up[1]);
	close(down[0]);
	close(bye[0]);
	/* All set up before any allocates, so that each has its context. */
	for (int i = 0; i < 3; i++)
		if (read(up[0], &c, 1) != 1)
			return 96;
	(void)!write(down[1], "ggg", 3);
	for (int i = 0; i < 3; i++)
		if (read(up[0], &c, 1) != 1)
			return 95;
	out("held", "1");
	child_wait_go();
	close(bye[1]);
	for (int i = 0; i < 3; i++)
		waitpid(kids[i], &status, 0);
	return 0;
}

static void test_fork_family_shares_budget(void **state)
{
	char st[512];
	/* No region variable at all (nor HAMi's): the region is the parent's. */
	const char *env[] = {st, "GPUPOOL_MEMORY_LIMIT=2GiB", "GPUPOOL_REGION=",
			     "CUDA_DEVICE_MEMORY_SHARED_CACHE=", NULL};
	struct gpt_proc *p;
	uint64_t real, got = 0;

	(void)state;
	snprintf(st, sizeof st, "%s", gpt_env_state());
	p = obs_start("fork_family", NULL, env, GPT_HOOK);
	obs_expect(p, "held", 30000);
	real = obs_real_now(env, 0, NULL, 0); /* the family is all there is on this machine */
	for (int i = 0; i < 3; i++) {
		char key[32];
		snprintf(key, sizeof key, "kid%d_got", i);
		got += gpt_get_u64(p, key);
	}
	gpt_go(p);
	obs_finish(p);
	if (real > 2 * GiB)
		fail_msg("three children forked before any CUDA call really hold %.0f MiB under "
			 "their parent's 2048 MiB budget (%llu pieces of 64 MiB, and contexts)",
			 obs_mib(real), (unsigned long long)got);
	for (int i = 0; i < 3; i++) {
		char key[32];
		snprintf(key, sizeof key, "kid%d_setup", i);
		assert_int_equal(gpt_get_u64(p, key), CUDA_SUCCESS);
	}
	/* Three contexts, then what is left of one budget. */
	assert_int_equal(got, (2 * GiB - 3 * SIM_CTX_H100) / (64 * MiB));
}

/* --- the suite -------------------------------------------------------------- */

static const struct gpt_child children[] = {
	{"observe", obs_child_observe},
	{"pool_destroy", child_pool_destroy},
	{"reset", child_reset},
	{"graph_upload", child_graph_upload},
	{"graph_2dev", child_graph_2dev},
	{"ctx_storm", child_ctx_storm},
	{"retain_burst", child_retain_burst},
	{"ctx_hammer", child_ctx_hammer},
	{"neighbour", child_neighbour},
	{"pitch_storm", child_pitch_storm},
	{"async_race", child_async_race},
	{"fill_granules", child_fill_granules},
	{"vmm_first", child_vmm_first},
	{"vmm_race_first", child_vmm_race_first},
	{"mix_storm", child_mix_storm},
	{"fork_family", child_fork_family},
	{NULL, NULL},
};

#define T(f) cmocka_unit_test_teardown(f, obs_teardown)

int main(int argc, char **argv)
{
	gpt_child_dispatch(argc, argv, children);
	const struct CMUnitTest tests[] = {
		T(test_pool_destroy_with_live_allocations),
		T(test_primary_reset_keeps_retains),
		T(test_graph_instantiate_upload),
		T(test_graph_instantiate_upload_ptsz),
		T(test_graph_upload),
		T(test_graph_launch),
		T(test_graph_nodes_charged_to_their_device),
		T(test_ctx_create_storm),
		T(test_primary_retain_race),
		T(test_ctx_overshoot_spares_neighbour),
		T(test_pitch_padding_race),
		T(test_async_alloc_race),
		T(test_context_size_cannot_undercut_measured),
		T(test_vmm_before_first_context),
		T(test_vmm_released_while_first_context),
		T(test_mixed_storm),
		T(test_vmm_recycled_addresses),
		T(test_fork_family_shares_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
