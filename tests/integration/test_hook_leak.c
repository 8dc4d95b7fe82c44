/* test_hook_leak.c - memory the driver has given back must be the tenant's
 * again: regressions for charges that outlived their memory.
 *
 * Each scenario runs under the hook, frees what it took by one of the
 * paths that leaked, and then holds still while an observer child NOT
 * under the hook reads what the process really holds (NVML's
 * usedGpuMemory).  The tenant's charge (cuMemGetInfo's total - free under
 * the hook) must equal it, and the whole rest of the budget must be
 * allocatable.  Budgets are a few GiB on the default 80 GiB H100, where a
 * context costs SIM_CTX_H100 (520 MiB).  Each test names the bug it
 * reproduces; every process a test starts is killed at teardown (the pool
 * and the observer are libobs.h's).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integration/libcu.h"
#include "integration/libobs.h"

/* --- the shape of the scenarios that hold still (12 to 14) -------------------
 * A child sets up (leak_begin), takes and gives back memory, reporting the
 * budget's free bytes on the way, then holds still (leak_end) while the
 * test reads what it really holds (leak_run). */

/* In children: device 0's primary context (and a stream in *s, if s),
 * then the budget's free bytes as "start_free"; returns them. */
static size_t leak_begin(CUstream *s)
{
	size_t f0, t;

	obs_child_start();
	cu_setup(0);
	if (s)
		cu_ok(cuStreamCreate(s, 0), "cuStreamCreate");
	cu_ok(cuMemGetInfo_v2(&f0, &t), "cuMemGetInfo");
	out("start_free", "%zu", f0);
	return f0;
}

/* In children: report the charge, say "holding" and wait while the test
 * reads what the process really holds; then report ("rest_rc") whether
 * all that was free at the start (f0) can be allocated again.  Returns
 * the child's exit code. */
static int leak_end(size_t f0)
{
	CUdeviceptr p;

	out("charged", "%zu", cu_charged());
	out("holding", "1");
	child_wait_go();
	out("rest_rc", "%d", (int)cuMemAlloc_v2(&p, f0));
	return 0;
}

/* Run scenario `name` (with `args`) as a fresh tenant with a budget of
 * `gib` GiB (and `extra`, an env entry or NULL), reading what it really
 * holds once it says "holding".  Its start is checked: the whole budget
 * but its context free, in *f0.  Returns the finished process; *real is
 * what it really held. */
static struct gpt_proc *leak_run(const char *name, const char *const args[], unsigned gib,
				 const char *extra, uint64_t *real, uint64_t *f0)
{
	struct obs_tenant te;
	char limit[64];
	struct gpt_proc *p;

	snprintf(limit, sizeof limit, "GPUPOOL_MEMORY_LIMIT=%uGiB", gib);
	p = obs_held(name, args, obs_tenant(&te, NULL, limit, extra, NULL), "holding", real);
	*f0 = gpt_get_u64(p, "start_free");
	assert_int_equal(*f0, gib * GiB - SIM_CTX_H100);
	return p;
}

/* The budget's free bytes that p reported as `key` are all it had at its
 * start (f0): `what` gave everything back. */
static void assert_free_again(const struct gpt_proc *p, const char *key, uint64_t f0,
			      const char *what)
{
	uint64_t f = gpt_get_u64(p, key);

	if (f != f0)
		fail_msg("%s: %.0f MiB of the budget free, %.0f MiB expected", what, obs_mib(f),
			 obs_mib(f0));
}

/* === 12. VMM memory freed by cuMemAddressFree ================================
 * Bug: memory whose handle was released while still mapped stayed charged
 * after cuMemAddressFree, which unmaps what is left of the reservation (and
 * so frees the memory): reserve, create 1 GiB, map, set access, release,
 * address free (no cuMemUnmap) leaked 1 GiB of budget each time. */

static int child_vmm_address_free(int argc, char **argv)
{
	CUmemAccessDesc acc = {.location = cu_vmm_prop0.location,
			       .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;
	size_t f0;
	char key[32];

	(void)argc;
	(void)argv;
	f0 = leak_begin(NULL);
	for (int i = 0; i < 3; i++) {
		cu_ok(cuMemAddressReserve(&va, GiB, 0, 0, 0), "cuMemAddressReserve");
		cu_ok(cuMemCreate(&h, GiB, &cu_vmm_prop0, 0), "cuMemCreate");
		cu_ok(cuMemMap(va, GiB, 0, h, 0), "cuMemMap");
		cu_ok(cuMemSetAccess(va, GiB, &acc, 1), "cuMemSetAccess");
		cu_ok(cuMemRelease(h), "cuMemRelease"); /* mapped: the memory lives on */
		cu_ok(cuMemAddressFree(va, GiB), "cuMemAddressFree"); /* unmaps: now it goes */
		snprintf(key, sizeof key, "free%d", i);
		out_free(key);
	}
	return leak_end(f0);
}

/* The common end of every test here: the charge is what the process really
 * holds (only its context is left), and the whole rest of the budget can
 * be taken. */
static void assert_all_back(const struct gpt_proc *p, uint64_t real, const char *what)
{
	uint64_t charged = gpt_get_u64(p, "charged");

	if (real != SIM_CTX_H100)
		fail_msg("%s: the process really holds %.0f MiB; only its context (%.0f MiB) was "
			 "expected (test mistake?)",
			 what, obs_mib(real), obs_mib(SIM_CTX_H100));
	if (charged != real)
		fail_msg("%s: the tenant is charged %.0f MiB for %.0f MiB it really holds: "
			 "%.0f MiB stay charged for memory the driver gave back",
			 what, obs_mib(charged), obs_mib(real), obs_mib(charged) - obs_mib(real));
	assert_int_equal(gpt_get_u64(p, "rest_rc"), CUDA_SUCCESS);
}

static void test_vmm_address_free_unmaps(void **state)
{
	struct gpt_proc *p;
	uint64_t real, f0;

	(void)state;
	p = leak_run("vmm_address_free", NULL, 4, NULL, &real, &f0);
	for (int i = 0; i < 3; i++) {
		char key[32], what[64];
		snprintf(key, sizeof key, "free%d", i);
		snprintf(what, sizeof what, "after %d rounds of release + cuMemAddressFree", i + 1);
		assert_free_again(p, key, f0, what);
	}
	assert_all_back(p, real, "VMM released, then its reservation freed");
}

/* === 13. cuMemFree of stream-ordered memory ==================================
 * Bug: cuMemFree (the synchronous one) of memory from cuMemAllocAsync, then
 * a synchronization, left the pool's shrunk reserve charged (1 GiB here)
 * until the next pool operation: only cuMemFreeAsync told the library to
 * look again at the next sync point. */

static int child_free_sync(int argc, char **argv)
{
	CUdeviceptr p;
	CUstream s;
	CUevent e;
	size_t f0;

	if (argc < 1)
		return 98;
	f0 = leak_begin(&s);
	cu_ok(cuMemAllocAsync(&p, GiB, s), "cuMemAllocAsync");
	cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	out_free("held_free");
	cu_ok(cuMemFree_v2(p), "cuMemFree of stream-ordered memory");
	if (strcmp(argv[0], "stream") == 0) {
		cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	} else if (strcmp(argv[0], "ctx") == 0) {
		cu_ok(cuCtxSynchronize(), "cuCtxSynchronize");
	} else {
		cu_ok(cuEventCreate(&e, 0), "cuEventCreate");
		cu_ok(cuEventRecord(e, s), "cuEventRecord");
		cu_ok(cuEventSynchronize(e), "cuEventSynchronize");
	}
	out_free("after_free");
	return leak_end(f0);
}

static void free_sync(const char *mode)
{
	const char *args[] = {mode, NULL};
	struct gpt_proc *p;
	uint64_t real, f0;
	char what[64];

	p = leak_run("free_sync", args, 2, NULL, &real, &f0);
	assert_int_equal(gpt_get_u64(p, "held_free"), f0 - GiB); /* the pool's reserve */
	snprintf(what, sizeof what, "cuMemFree + %s synchronize", mode);
	assert_free_again(p, "after_free", f0, what);
	assert_all_back(p, real, what);
}

static void test_sync_free_then_stream_sync(void **s) { (void)s; free_sync("stream"); }
static void test_sync_free_then_ctx_sync(void **s) { (void)s; free_sync("ctx"); }
static void test_sync_free_then_event_sync(void **s) { (void)s; free_sync("event"); }

/* === 14. The library's pool table ===========================================
 * Bug: every handle passed to cuMemAllocFromPoolAsync took a slot in a
 * 128-entry table before the driver had looked at it, garbage included;
 * once full, a real pool's memory was charged per allocation "for good"
 * and never came back.  130 calls with garbage handles, then a real pool:
 * allocate and free 1 GiB, trim, destroy: the budget must be whole.  The
 * same with 200 real pools alive at once, and with 300 created and
 * destroyed one after another. */

static const CUmemPoolProps pool_props0 = {
	.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
	.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
};

static int child_pool_garbage(int argc, char **argv)
{
	CUmemoryPool pool;
	CUdeviceptr p;
	CUstream s;
	unsigned admitted = 0;
	size_t f0;

	(void)argc;
	(void)argv;
	f0 = leak_begin(&s);
	for (unsigned i = 0; i < 130; i++) {
		/* Not pools: the driver refuses each (CUDA_ERROR_INVALID_VALUE). */
		CUmemoryPool junk = (CUmemoryPool)(uintptr_t)(0x7e5700000000ULL + 0x1040ULL * i);
		if (cuMemAllocFromPoolAsync(&p, 2 * MiB, junk, s) == CUDA_SUCCESS)
			admitted++;
	}
	out("junk_admitted", "%u", admitted);
	cu_ok(cuMemPoolCreate(&pool, &pool_props0), "cuMemPoolCreate");
	cu_ok(cuMemAllocFromPoolAsync(&p, GiB, pool, s), "cuMemAllocFromPoolAsync");
	cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	out_free("held_free");
	cu_ok(cuMemFreeAsync(p, s), "cuMemFreeAsync");
	cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	cu_ok(cuMemPoolTrimTo(pool, 0), "cuMemPoolTrimTo");
	cu_ok(cuMemPoolDestroy(pool), "cuMemPoolDestroy");
	out_free("after_free");
	return leak_end(f0);
}

static void test_pool_table_garbage_handles(void **state)
{
	struct gpt_proc *p;
	uint64_t real, f0;

	(void)state;
	p = leak_run("pool_garbage", NULL, 2, "GPUPOOL_LOG=error", &real, &f0);
	assert_int_equal(gpt_get_u64(p, "junk_admitted"), 0);
	assert_int_equal(gpt_get_u64(p, "held_free"), f0 - GiB);
	assert_free_again(p, "after_free", f0,
			  "after 130 garbage pool handles, a real pool's 1 GiB freed");
	assert_all_back(p, real, "a real pool after 130 garbage handles");
}

#define MANY 200

static int child_pool_many(int argc, char **argv)
{
	static CUmemoryPool pools[MANY];
	static CUdeviceptr ptrs[MANY];
	CUmemoryPool pool;
	CUdeviceptr p;
	CUstream s;
	size_t f0;

	(void)argc;
	(void)argv;
	f0 = leak_begin(&s);
	for (int i = 0; i < MANY; i++) {
		cu_ok(cuMemPoolCreate(&pools[i], &pool_props0), "cuMemPoolCreate");
		cu_ok(cuMemAllocFromPoolAsync(&ptrs[i], 8 * MiB, pools[i], s), "allocate 8 MiB");
	}
	cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	out_free("held_free");
	for (int i = 0; i < MANY; i++)
		cu_ok(cuMemFreeAsync(ptrs[i], s), "cuMemFreeAsync");
	cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
	for (int i = 0; i < MANY; i++) {
		cu_ok(cuMemPoolTrimTo(pools[i], 0), "cuMemPoolTrimTo");
		cu_ok(cuMemPoolDestroy(pools[i]), "cuMemPoolDestroy");
	}
	out_free("after_free");
	/* One after another: never more than one alive. */
	for (int i = 0; i < 300; i++) {
		cu_ok(cuMemPoolCreate(&pool, &pool_props0), "cuMemPoolCreate");
		cu_ok(cuMemAllocFromPoolAsync(&p, 8 * MiB, pool, s), "allocate 8 MiB");
		cu_ok(cuMemFreeAsync(p, s), "cuMemFreeAsync");
		cu_ok(cuStreamSynchronize(s), "cuStreamSynchronize");
		cu_ok(cuMemPoolDestroy(pool), "cuMemPoolDestroy");
	}
	out_free("churn_free");
	return leak_end(f0);
}

static void test_pool_table_many_pools(void **state)
{
	struct gpt_proc *p;
	uint64_t real, f0;

	(void)state;
	p = leak_run("pool_many", NULL, 4, "GPUPOOL_LOG=error", &real, &f0);
	assert_int_equal(gpt_get_u64(p, "held_free"), f0 - MANY * 8 * MiB);
	assert_free_again(p, "after_free", f0, "200 pools freed, trimmed and destroyed");
	assert_int_equal(gpt_get_u64(p, "churn_free"), f0);
	assert_all_back(p, real, "200 pools at once, then 300 one by one");
}

/* === 15. A SIGKILLed parent and its idle child ===============================
 * Bug: a process that used CUDA forked a child that never did; SIGKILLed,
 * the parent never gave its budget back while the child lived: the child's
 * inherited mapping of the region kept the parent's open file description,
 * and with it the parent's lease.  A third process of the tenant must see
 * the whole budget again within a second, while the child still runs. */

static int child_fork_idle(int argc, char **argv)
{
	CUdeviceptr p;
	pid_t kid;

	(void)argc;
	(void)argv;
	obs_child_start();
	cu_setup(0);
	cu_ok(cuMemAlloc_v2(&p, GiB), "cuMemAlloc");
	fflush(NULL);
	kid = fork();
	if (kid < 0)
		return 97;
	if (kid == 0) {
		/* Never touches CUDA, outlives its parent (the test kills it);
		 * leaves the test's output pipe alone. */
		int null = open("/dev/null", O_RDWR);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		for (int i = 0; i < 2000; i++)
			usleep(10000);
		_exit(0);
	}
	out("kid", "%d", (int)kid);
	out("held", "1");
	child_wait_go(); /* it is killed here */
	return 0;
}

/* Take the primary context, report free, then watch free until it reaches
 * `want` (at most 3 s); report how long that took, and whether `want`
 * bytes can be allocated. */
static int child_watch(int argc, char **argv)
{
	size_t want, f, t;
	CUdeviceptr p;
	double t0;

	if (argc < 1)
		return 98;
	obs_child_start();
	want = strtoull(argv[0], NULL, 0);
	cu_setup(0);
	t0 = obs_now_s();
	do
		cu_ok(cuMemGetInfo_v2(&f, &t), "cuMemGetInfo");
	while (f < want && obs_now_s() - t0 < 3);
	out("seconds", "%.3f", obs_now_s() - t0);
	out("free", "%zu", f);
	out("alloc_rc", "%d", (int)cuMemAlloc_v2(&p, want));
	return 0;
}

static void test_sigkill_parent_with_idle_child(void **state)
{
	struct obs_tenant te;
	const char *const *env = obs_tenant(&te, NULL, "GPUPOOL_MEMORY_LIMIT=4GiB", NULL, NULL);
	struct gpt_proc *parent, *w;
	char want[32];
	const char *args[] = {want, NULL};
	double seconds;
	pid_t kid;
	int kid_alive;

	(void)state;
	snprintf(want, sizeof want, "%llu", (unsigned long long)(4 * GiB - SIM_CTX_H100));
	parent = obs_start("fork_idle", NULL, env, GPT_HOOK);
	obs_expect(parent, "held", 30000);
	kid = (pid_t)gpt_get_u64(parent, "kid");
	obs_stray(kid);
	assert_int_equal(obs_kill(parent), 128 + SIGKILL);
	w = obs_start("watch", args, env, GPT_HOOK);
	obs_finish(w);
	kid_alive = kill(kid, 0) == 0;
	seconds = atof(gpt_get(w, "seconds"));
	printf("# the watcher waited %.3f s\n", seconds);
	assert_true(kid_alive); /* the scenario: the child outlived the watch */
	if (gpt_get_u64(w, "free") != 4 * GiB - SIM_CTX_H100)
		fail_msg("with the parent SIGKILLed and its idle child alive, %.0f MiB of the "
			 "budget is free after %.3f s; %.0f MiB expected",
			 obs_mib(gpt_get_u64(w, "free")), seconds, obs_mib(4 * GiB - SIM_CTX_H100));
	if (seconds >= 1.0)
		fail_msg("the budget came back after %.3f s", seconds);
	assert_int_equal(gpt_get_u64(w, "alloc_rc"), CUDA_SUCCESS);
}

/* --- the suite -------------------------------------------------------------- */

static const struct gpt_child children[] = {
	{"observe", obs_child_observe},
	{"vmm_address_free", child_vmm_address_free},
	{"free_sync", child_free_sync},
	{"pool_garbage", child_pool_garbage},
	{"pool_many", child_pool_many},
	{"fork_idle", child_fork_idle},
	{"watch", child_watch},
	{NULL, NULL},
};

#define T(f) cmocka_unit_test_teardown(f, obs_teardown)

int main(int argc, char **argv)
{
	gpt_child_dispatch(argc, argv, children);
	const struct CMUnitTest tests[] = {
		T(test_vmm_address_free_unmaps),
		T(test_sync_free_then_stream_sync),
		T(test_sync_free_then_ctx_sync),
		T(test_sync_free_then_event_sync),
		T(test_pool_table_garbage_handles),
		T(test_pool_table_many_pools),
		T(test_sigkill_parent_with_idle_child),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
