/* test_hook_share.c - compute shares and priority, measured on the
 * simulator's device timeline (`gpupool-simctl busy`: the device time each
 * process's kernels really took), never on what the hook says of itself:
 * hard limits alone and with HAMi's names, elastic alone with and without
 * the node file, two elastic tenants splitting the card, every launch
 * route paced, threads and a forked child sharing one tenant's share, a
 * low-priority tenant yielding to a high one and resuming after the
 * hold-off, a SIGKILLed high tenant releasing it, and the accounting the
 * agent reads.  The machine running the suite is shared and loaded, so the
 * tolerances here are wide; bench/compute_share holds the tight figures.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "integration/libcu.h"
#include "region/read.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts))
		;
}

/* --- the children ---------------------------------------------------------- */

typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
			      unsigned, unsigned, CUstream, void **, void **);

struct loop {
	const char *route;
	CUcontext ctx;
	CUfunction fn;
	CUstream s;
	CUgraphExec exec;
	launch_fn ptsz;
	uint64_t until;
	unsigned long launched;
};

/* One launch of l's kernel by its route, on its stream. */
static void launch_once(struct loop *l)
{
	const char *r = l->route;

	if (strcmp(r, "direct") == 0) {
		cu_ok(cuLaunchKernel(l->fn, 1, 1, 1, 32, 1, 1, 0, l->s, NULL, NULL), r);
	} else if (strcmp(r, "ptsz") == 0) {
		cu_ok(l->ptsz(l->fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL), r);
	} else if (strcmp(r, "ex") == 0) {
		CUlaunchConfig cfg = {.gridDimX = 1, .gridDimY = 1, .gridDimZ = 1, .blockDimX = 32,
				      .blockDimY = 1, .blockDimZ = 1, .hStream = l->s};
		cu_ok(cuLaunchKernelEx(&cfg, l->fn, NULL, NULL), r);
	} else if (strcmp(r, "coop") == 0) {
		cu_ok(cuLaunchCooperativeKernel(l->fn, 1, 1, 1, 32, 1, 1, 0, l->s, NULL), r);
	} else if (strcmp(r, "graph") == 0 || strcmp(r, "captured") == 0) {
		cu_ok(cuGraphLaunch(l->exec, l->s), r);
	} else {
		exit(98);
	}
	l->launched++;
}

/* A graph of two kernels: built node by node ("graph") or captured from
 * the stream ("captured": those launches run nothing and must not be
 * charged). */
static void make_graph(struct loop *l)
{
	CUgraph g;

	if (strcmp(l->route, "captured") == 0) {
		cu_ok(cuStreamBeginCapture_v2(l->s, CU_STREAM_CAPTURE_MODE_GLOBAL), "begin capture");
		for (int i = 0; i < 2; i++)
			cu_ok(cuLaunchKernel(l->fn, 1, 1, 1, 32, 1, 1, 0, l->s, NULL, NULL), "capture");
		cu_ok(cuStreamEndCapture(l->s, &g), "end capture");
	} else {
		CUDA_KERNEL_NODE_PARAMS k;
		CUgraphNode n[2];
		memset(&k, 0, sizeof k);
		k.func = l->fn;
		k.gridDimX = k.gridDimY = k.gridDimZ = 1;
		k.blockDimX = 32;
		k.blockDimY = k.blockDimZ = 1;
		cu_ok(cuGraphCreate(&g, 0), "graph");
		cu_ok(cuGraphAddKernelNode_v2(&n[0], g, NULL, 0, &k), "node");
		cu_ok(cuGraphAddKernelNode_v2(&n[1], g, &n[0], 1, &k), "node");
	}
	cu_ok(cuGraphInstantiateWithFlags(&l->exec, g, 0), "instantiate");
}

/* Launch until l->until, keeping a few kernels queued (waiting for the
 * one launched DEPTH before: the device never runs dry, and nothing is
 * queued far ahead on the host's side either). */
#define DEPTH 4
static void run_loop(struct loop *l)
{
	CUevent ev[DEPTH];

	for (int i = 0; i < DEPTH; i++)
		cu_ok(cuEventCreate(&ev[i], CU_EVENT_DISABLE_TIMING), "event");
	for (unsigned long i = 0; now_ns() < l->until; i++) {
		CUstream s = strcmp(l->route, "ptsz") == 0 ? CU_STREAM_PER_THREAD : l->s;
		if (i >= DEPTH)
			cu_ok(cuEventSynchronize(ev[i % DEPTH]), "wait");
		launch_once(l);
		cu_ok(cuEventRecord(ev[i % DEPTH], s), "record");
	}
	cu_ok(cuCtxSynchronize(), "sync");
	for (int i = 0; i < DEPTH; i++)
		cu_ok(cuEventDestroy_v2(ev[i]), "event destroy");
}

static void *loop_thread(void *arg)
{
	struct loop *l = arg;

	cu_ok(cuCtxSetCurrent(l->ctx), "set current");
	run_loop(l);
	return NULL;
}

/* "loop US MS ROUTE [threads N | fork]": keep the device fed with
 * spin_<US>us kernels for MS milliseconds by ROUTE (direct, ptsz, ex,
 * coop, graph, captured), from N threads or from this process and a
 * forked child.  Reports pid (and child=PID), start_ns and end_ns, then
 * waits for the test's go so that the test can read its device time. */
static int child_loop(int argc, char **argv)
{
	struct loop l[4];
	pthread_t th[4];
	CUmodule mod;
	char name[32];
	int threads = argc >= 5 && strcmp(argv[3], "threads") == 0 ? atoi(argv[4]) : 1;
	int forks = argc >= 4 && strcmp(argv[3], "fork") == 0;
	pid_t kid = -1;
	uint64_t start;

	if (argc < 3 || threads < 1 || threads > 4)
		return 98;
	if (forks) {
		/* The child initialises CUDA on its own (as with the real
		 * driver, it cannot use its parent's context). */
		kid = fork();
		if (kid < 0)
			return 97;
	}
	cu_setup(0);
	cu_ok(cuModuleLoadData(&mod, "share"), "module");
	snprintf(name, sizeof name, "spin_%sus", argv[0]);
	start = now_ns();
	for (int t = 0; t < threads; t++) {
		memset(&l[t], 0, sizeof l[t]);
		l[t].route = argv[2];
		cu_ok(cuCtxGetCurrent(&l[t].ctx), "current");
		l[t].until = start + strtoull(argv[1], NULL, 10) * 1000000ULL;
		cu_ok(cuModuleGetFunction(&l[t].fn, mod, name), "function");
		cu_ok(cuStreamCreate(&l[t].s, CU_STREAM_NON_BLOCKING), "stream");
		if (strcmp(l[t].route, "ptsz") == 0) {
			CUdriverProcAddressQueryResult st;
			void *f = NULL;
			cu_ok(cuGetProcAddress_v2("cuLaunchKernel", &f, 12000,
						  CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st),
			      "proc");
			l[t].ptsz = (launch_fn)f;
		}
		if (strcmp(l[t].route, "graph") == 0 || strcmp(l[t].route, "captured") == 0)
			make_graph(&l[t]);
	}
	if (kid == 0) {
		run_loop(&l[0]);
		/* Stay alive (its device time is read by pid) until the
		 * parent, told by the test, lets it go. */
		pause();
		_exit(0);
	}
	for (int t = 1; t < threads; t++)
		if (pthread_create(&th[t], NULL, loop_thread, &l[t]))
			return 96;
	run_loop(&l[0]);
	for (int t = 1; t < threads; t++)
		pthread_join(th[t], NULL);
	out("launched", "%lu", l[0].launched);
	out("start_ns", "%llu", (unsigned long long)start);
	out("end_ns", "%llu", (unsigned long long)now_ns());
	if (kid > 0)
		out("child", "%d", (int)kid);
	out("pid", "%d", (int)getpid());
	child_wait_go();
	if (kid > 0) {
		kill(kid, SIGKILL);
		waitpid(kid, NULL, 0);
	}
	return 0;
}

/* "burst US N MS": N spin_<US>us kernels every MS milliseconds, each burst
 * synchronised, until killed (a high-priority service). */
static int child_burst(int argc, char **argv)
{
	CUmodule mod;
	CUfunction fn;
	char name[32];

	if (argc < 3)
		return 98;
	cu_setup(0);
	cu_ok(cuModuleLoadData(&mod, "share"), "module");
	snprintf(name, sizeof name, "spin_%sus", argv[0]);
	cu_ok(cuModuleGetFunction(&fn, mod, name), "function");
	out("pid", "%d", (int)getpid());
	for (int k = 0; k < 60000; k++) {
		for (int i = 0; i < atoi(argv[1]); i++)
			cu_ok(cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL), "launch");
		cu_ok(cuCtxSynchronize(), "sync");
		sleep_ms((unsigned)atoi(argv[2]));
	}
	return 0;
}

static const struct gpt_child children[] = {
	{"loop", child_loop},
	{"burst", child_burst},
	{NULL, NULL},
};

/* --- helpers --------------------------------------------------------------- */

/* One machine, and optionally a node file, per test. */
struct machine {
	char state[512], node[512];
};

static void machine(struct machine *m, int with_node)
{
	char *p = gpt_tmp_path("node");

	snprintf(m->state, sizeof m->state, "%s", gpt_env_state());
	if (with_node)
		snprintf(m->node, sizeof m->node, "GPUPOOL_NODE=%s", p);
	else
		m->node[0] = '\0';
	free(p);
}

/* The device time pid's kernels have completed, from the simulator. */
static uint64_t busy(const struct machine *m, int pid)
{
	char *ctl = gpt_build_path("sim/gpupool-simctl"), cmd[1024], line[256];
	uint64_t total = 0;
	FILE *f;

	snprintf(cmd, sizeof cmd, "%s %s busy %d", m->state, ctl, pid);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof line, f)) {
		const char *b = strstr(line, "busy_ns=");
		if (b)
			total += strtoull(b + 8, NULL, 10);
	}
	pclose(f);
	free(ctl);
	return total;
}

/* Run "loop US MS ROUTE [extra...]" as its own tenant with `env` and
 * return its share of the card over its run, in percent. */
static double share_of(const struct machine *m, const char *us, const char *ms, const char *route,
		       const char *extra, const char *const env[])
{
	const char *args[] = {us, ms, route, extra, extra ? "2" : NULL, NULL};
	const char *full[8];
	struct gpt_proc p;
	uint64_t b, span;
	int n = 0, kid;

	full[n++] = m->state;
	if (m->node[0])
		full[n++] = m->node;
	for (; env && *env && n < 7; env++)
		full[n++] = *env;
	full[n] = NULL;
	if (extra && strcmp(extra, "fork") == 0)
		args[4] = NULL;
	assert_int_equal(gpt_spawn_child(&p, "loop", args, full, GPT_HOOK), 0);
	assert_int_equal(gpt_wait_for(&p, "pid", 30000), 0);
	span = gpt_get_u64(&p, "end_ns") - gpt_get_u64(&p, "start_ns");
	b = busy(m, (int)gpt_get_u64(&p, "pid"));
	kid = gpt_get(&p, "child") ? (int)gpt_get_u64(&p, "child") : 0;
	if (kid)
		b += busy(m, kid);
	gpt_go(&p);
	assert_int_equal(gpt_wait(&p, 10000), 0);
	print_message("# %s %s us %s: share %.1f %%\n", route, us, extra ? extra : "",
		      100.0 * (double)b / (double)span);
	return 100.0 * (double)b / (double)span;
}

#define assert_near(got, want, tol)                                          \
	do {                                                                     \
		double got_ = (got);                                                 \
		if (got_ < (want) - (tol) || got_ > (want) + (tol))                  \
			fail_msg("%s = %.1f, want %.1f +- %.1f", #got, got_,             \
				 (double)(want), (double)(tol));                             \
	} while (0)

/* --- shares ---------------------------------------------------------------- */

/* Hard 30 %, alone: never more, even with the card idle; and not much
 * less.  With and without a node file. */
static void test_hard_alone(void **state)
{
	const char *env[] = {"GPUPOOL_CORE_LIMIT=30", "GPUPOOL_CORE_POLICY=hard", NULL};
	struct machine m;

	(void)state;
	machine(&m, 1);
	assert_near(share_of(&m, "1000", "1200", "direct", NULL, env), 30, 6);
	machine(&m, 0);
	assert_near(share_of(&m, "1000", "1200", "direct", NULL, env), 30, 6);
}

/* HAMi-core's names, when ours are unset: its "force" is our hard. */
static void test_hami_names(void **state)
{
	const char *env[] = {"CUDA_DEVICE_SM_LIMIT=40", "GPU_CORE_UTILIZATION_POLICY=force", NULL};
	struct machine m;

	(void)state;
	machine(&m, 1);
	assert_near(share_of(&m, "1000", "1000", "direct", NULL, env), 40, 7);
}

/* Elastic (the default) alone takes the idle card when it can see that
 * nobody else wants it; without the node file it cannot, and acts as
 * hard. */
static void test_elastic_alone(void **state)
{
	const char *env[] = {"GPUPOOL_CORE_LIMIT=30", NULL};
	struct machine m;

	(void)state;
	machine(&m, 1);
	assert_true(share_of(&m, "1000", "1000", "direct", NULL, env) > 85);
	machine(&m, 0);
	assert_near(share_of(&m, "1000", "1000", "direct", NULL, env), 30, 6);
}

/* Two elastic tenants wanting the card at once split it 30/70 between
 * them, measured over a window in which both run. */
static void test_elastic_pair(void **state)
{
	const char *a_args[] = {"1000", "2500", "direct", NULL};
	const char *b_args[] = {"1000", "2500", "direct", NULL};
	const char *a_env[] = {NULL, NULL, "GPUPOOL_CORE_LIMIT=30", NULL};
	const char *b_env[] = {NULL, NULL, "GPUPOOL_CORE_LIMIT=70", NULL};
	struct gpt_proc a, b;
	struct machine m;
	uint64_t a0, b0, a1, b1, t0, t1;
	int pa, pb;

	(void)state;
	machine(&m, 1);
	a_env[0] = b_env[0] = m.state;
	a_env[1] = b_env[1] = m.node;
	assert_int_equal(gpt_spawn_child(&a, "loop", a_args, a_env, GPT_HOOK), 0);
	assert_int_equal(gpt_spawn_child(&b, "loop", b_args, b_env, GPT_HOOK), 0);
	/* Both report their pids only at the end: find them by their
	 * process ids, which are the children's (no exec in between). */
	pa = a.pid;
	pb = b.pid;
	sleep_ms(700);
	t0 = now_ns();
	a0 = busy(&m, pa);
	b0 = busy(&m, pb);
	sleep_ms(1200);
	t1 = now_ns();
	a1 = busy(&m, pa);
	b1 = busy(&m, pb);
	assert_int_equal(gpt_wait_for(&a, "pid", 30000), 0);
	assert_int_equal(gpt_wait_for(&b, "pid", 30000), 0);
	gpt_go(&a);
	gpt_go(&b);
	assert_int_equal(gpt_wait(&a, 10000), 0);
	assert_int_equal(gpt_wait(&b, 10000), 0);
	print_message("# pair: %.1f %% / %.1f %%\n", 100.0 * (double)(a1 - a0) / (double)(t1 - t0),
		      100.0 * (double)(b1 - b0) / (double)(t1 - t0));
	assert_near(100.0 * (double)(a1 - a0) / (double)(t1 - t0), 30, 7);
	assert_near(100.0 * (double)(b1 - b0) / (double)(t1 - t0), 70, 7);
}

/* An elastic neighbour SIGKILLed in the middle: its demand stops counting
 * within a second, and the survivor takes the card. */
static void test_dead_neighbour_forgotten(void **state)
{
	const char *args[] = {"1000", "4000", "direct", NULL};
	const char *a_env[] = {NULL, NULL, "GPUPOOL_CORE_LIMIT=30", NULL};
	const char *b_env[] = {NULL, NULL, "GPUPOOL_CORE_LIMIT=70", NULL};
	struct gpt_proc a, b;
	struct machine m;
	uint64_t a0, a1, t0, t1, k;

	(void)state;
	machine(&m, 1);
	a_env[0] = b_env[0] = m.state;
	a_env[1] = b_env[1] = m.node;
	assert_int_equal(gpt_spawn_child(&a, "loop", args, a_env, GPT_HOOK), 0);
	assert_int_equal(gpt_spawn_child(&b, "loop", args, b_env, GPT_HOOK), 0);
	sleep_ms(700);
	t0 = now_ns();
	a0 = busy(&m, a.pid);
	sleep_ms(500);
	t1 = now_ns();
	a1 = busy(&m, a.pid);
	assert_near(100.0 * (double)(a1 - a0) / (double)(t1 - t0), 30, 8);
	kill(b.pid, SIGKILL);
	assert_int_equal(gpt_wait(&b, 10000), 128 + SIGKILL);
	k = now_ns();
	sleep_ms(1000);
	t0 = now_ns();
	a0 = busy(&m, a.pid);
	sleep_ms(500);
	t1 = now_ns();
	a1 = busy(&m, a.pid);
	print_message("# survivor from %.0f ms after the kill: %.1f %%\n", (double)(t0 - k) / 1e6,
		      100.0 * (double)(a1 - a0) / (double)(t1 - t0));
	assert_true(100.0 * (double)(a1 - a0) / (double)(t1 - t0) > 85);
	assert_int_equal(gpt_wait_for(&a, "pid", 30000), 0);
	gpt_go(&a);
	assert_int_equal(gpt_wait(&a, 10000), 0);
}

/* Every route that puts work on the SMs is paced: each, at 40 % hard,
 * gets about 40 % (unpaced it would get nearly all of the card).  A graph
 * captured from a stream is charged when it runs, not when captured. */
static void test_routes(void **state)
{
	static const char *const routes[] = {"direct", "ptsz", "ex", "coop", "graph", "captured"};
	const char *env[] = {"GPUPOOL_CORE_LIMIT=40", "GPUPOOL_CORE_POLICY=hard", NULL};
	struct machine m;

	(void)state;
	machine(&m, 0);
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
		double s = share_of(&m, "1000", "700", routes[i], NULL, env);
		if (s < 28 || s > 50)
			fail_msg("route %s: share %.1f, want 40 +- 10", routes[i], s);
	}
}

/* Threads of one process, and a forked child with the parent (one tenant:
 * one region), share one share between them. */
static void test_threads_and_fork(void **state)
{
	char region[600];
	const char *env[] = {"GPUPOOL_CORE_LIMIT=40", "GPUPOOL_CORE_POLICY=hard", region, NULL};
	struct machine m;

	(void)state;
	machine(&m, 0);
	snprintf(region, sizeof region, "%s", gpt_env_region());
	assert_near(share_of(&m, "1000", "1000", "direct", "threads", env), 40, 7);
	snprintf(region, sizeof region, "%s", gpt_env_region());
	assert_near(share_of(&m, "1000", "1000", "direct", "fork", env), 40, 7);
}

/* --- priority -------------------------------------------------------------- */

/* Samples of a process's device time over time. */
struct trace {
	uint64_t t[400], b[400];
	int n;
};

static void sample(const struct machine *m, int pid, struct trace *tr)
{
	if (tr->n < 400) {
		tr->b[tr->n] = busy(m, pid);
		tr->t[tr->n] = now_ns();
		tr->n++;
	}
}

/* Device time pid got between t0 and t1, interpolating the trace. */
static uint64_t got_between(const struct trace *tr, uint64_t t0, uint64_t t1)
{
	uint64_t b0 = 0, b1 = 0;

	for (int i = 0; i < tr->n; i++) {
		if (tr->t[i] <= t0)
			b0 = tr->b[i];
		if (tr->t[i] <= t1)
			b1 = tr->b[i];
	}
	return b1 - b0;
}

/* A low-priority tenant with the card to itself: a high one arrives, and
 * the low one stops within 100 ms; the high one stops, and after its
 * hold-off (100 ms here) the low one runs again within 100 ms.  While the
 * high one is busy, the low one gets (almost) nothing. */
static void test_priority_yield_resume(void **state)
{
	const char *low_args[] = {"1000", "4000", "direct", NULL};
	const char *high_args[] = {"500", "2", "2", NULL};
	const char *low_env[] = {NULL, NULL, "GPUPOOL_PRIORITY=low", "GPUPOOL_PRIORITY_HOLDOFF=100ms",
				 NULL};
	const char *high_env[] = {NULL, NULL, "GPUPOOL_PRIORITY=high", NULL};
	struct gpt_proc low, high;
	struct machine m;
	struct trace tr = {.n = 0};
	uint64_t h0, h1, got;

	(void)state;
	machine(&m, 1);
	low_env[0] = high_env[0] = m.state;
	low_env[1] = high_env[1] = m.node;
	assert_int_equal(gpt_spawn_child(&low, "loop", low_args, low_env, GPT_HOOK), 0);
	for (uint64_t end = now_ns() + 600000000ULL; now_ns() < end;)
		sample(&m, low.pid, &tr), sleep_ms(10);
	/* Alone, it runs. */
	assert_true(tr.b[tr.n - 1] - tr.b[tr.n / 2] > 100000000ULL);

	h0 = now_ns();
	assert_int_equal(gpt_spawn_child(&high, "burst", high_args, high_env, GPT_HOOK), 0);
	assert_int_equal(gpt_wait_for(&high, "pid", 10000), 0);
	for (uint64_t end = now_ns() + 1000000000ULL; now_ns() < end;)
		sample(&m, low.pid, &tr), sleep_ms(10);
	kill(high.pid, SIGTERM);
	assert_int_equal(gpt_wait(&high, 10000), 128 + SIGTERM);
	h1 = now_ns();
	for (uint64_t end = now_ns() + 700000000ULL; now_ns() < end;)
		sample(&m, low.pid, &tr), sleep_ms(10);

	/* Held back from 100 ms after the high tenant started (its start-up
	 * included: a fresh process needs a while to reach its first
	 * launch) until it stopped: at most a few kernels got through. */
	got = got_between(&tr, h0 + 300000000ULL, h1);
	if (got > 30000000ULL)
		fail_msg("low tenant got %.1f ms of device time while the high one ran",
			 (double)got / 1e6);
	/* Back within hold-off + 100 ms (+ slack for a loaded machine). */
	got = got_between(&tr, h1 + 300000000ULL, h1 + 600000000ULL);
	if (got < 100000000ULL)
		fail_msg("low tenant got only %.1f ms in the 300 ms after hold-off + 200 ms",
			 (double)got / 1e6);
	gpt_go(&low);
	assert_int_equal(gpt_wait(&low, 10000), 0);
}

/* A high tenant killed while it holds a low one back: the low one runs
 * again within a second (its lease is gone; default hold-off). */
static void test_killed_high_releases_low(void **state)
{
	const char *low_args[] = {"1000", "3000", "direct", NULL};
	const char *high_args[] = {"1000", "4", "1", NULL};
	const char *low_env[] = {NULL, NULL, "GPUPOOL_PRIORITY=low", NULL};
	const char *high_env[] = {NULL, NULL, "GPUPOOL_PRIORITY=high", NULL};
	struct gpt_proc low, high;
	struct machine m;
	struct trace tr = {.n = 0};
	uint64_t k;

	(void)state;
	machine(&m, 1);
	low_env[0] = high_env[0] = m.state;
	low_env[1] = high_env[1] = m.node;
	assert_int_equal(gpt_spawn_child(&high, "burst", high_args, high_env, GPT_HOOK), 0);
	assert_int_equal(gpt_wait_for(&high, "pid", 10000), 0);
	assert_int_equal(gpt_spawn_child(&low, "loop", low_args, low_env, GPT_HOOK), 0);
	for (uint64_t end = now_ns() + 800000000ULL; now_ns() < end;)
		sample(&m, low.pid, &tr), sleep_ms(10);
	kill(high.pid, SIGKILL);
	assert_int_equal(gpt_wait(&high, 10000), 128 + SIGKILL);
	k = now_ns();
	for (uint64_t end = now_ns() + 1200000000ULL; now_ns() < end;)
		sample(&m, low.pid, &tr), sleep_ms(10);
	if (got_between(&tr, k - 400000000ULL, k) > 40000000ULL)
		fail_msg("the low tenant was not held back by the high one");
	if (got_between(&tr, k + 1000000000ULL, k + 1200000000ULL) < 50000000ULL)
		fail_msg("the low tenant did not run again within 1 s of the high one's death");
	gpt_go(&low);
	assert_int_equal(gpt_wait(&low, 10000), 0);
}

/* --- accounting ------------------------------------------------------------ */

/* The region carries what the agent shows: the tenant's device time (as
 * the simulator measured it, within 10 %), the time it was throttled, and
 * its share, policy and priority. */
static void test_accounting(void **state)
{
	char region[600];
	const char *env[] = {"GPUPOOL_CORE_LIMIT=25", "GPUPOOL_CORE_POLICY=hard",
			     "GPUPOOL_PRIORITY=low", region, NULL};
	const char *args[] = {"1000", "1000", "direct", NULL};
	const char *full[6];
	struct gp_region_copy *c = malloc(sizeof *c);
	struct machine m;
	struct gpt_proc p;
	uint64_t b, span;
	int fd;

	(void)state;
	assert_non_null(c);
	machine(&m, 0);
	snprintf(region, sizeof region, "%s", gpt_env_region());
	full[0] = m.state;
	for (int i = 0; i < 5; i++)
		full[i + 1] = env[i];
	assert_int_equal(gpt_spawn_child(&p, "loop", args, full, GPT_HOOK), 0);
	assert_int_equal(gpt_wait_for(&p, "pid", 30000), 0);
	b = busy(&m, (int)gpt_get_u64(&p, "pid"));
	span = gpt_get_u64(&p, "end_ns") - gpt_get_u64(&p, "start_ns");
	gpt_go(&p);
	assert_int_equal(gpt_wait(&p, 10000), 0);

	fd = open(strchr(region, '=') + 1, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(gp_region_read(fd, c), 0);
	close(fd);
	assert_int_equal(c->hdr.ndevs, 1);
	assert_int_equal(c->hdr.dev[0].core_limit, 25);
	assert_int_equal(c->hdr.dev[0].core_policy, GP_REGION_CORE_HARD);
	assert_int_equal(c->hdr.dev[0].priority, GP_REGION_PRIO_LOW);
	assert_near((double)c->hdr.dev[0].compute_ns / 1e6, (double)b / 1e6, (double)b / 1e7);
	/* Launching for `span` at 25 %, it waited for most of it. */
	assert_true(c->hdr.dev[0].throttled_ns > span / 2);
	assert_true(c->hdr.dev[0].throttled_ns < span);
	free(c);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hard_alone),
		cmocka_unit_test(test_hami_names),
		cmocka_unit_test(test_elastic_alone),
		cmocka_unit_test(test_elastic_pair),
		cmocka_unit_test(test_dead_neighbour_forgotten),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_threads_and_fork),
		cmocka_unit_test(test_priority_yield_resume),
		cmocka_unit_test(test_killed_high_releases_low),
		cmocka_unit_test(test_accounting),
	};

	gpt_child_dispatch(argc, argv, children);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
