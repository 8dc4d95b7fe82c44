/* compute_share.c - the tenants bench/compute_share.sh runs on a shared
 * simulated GPU to measure compute shares and priority colocation.
 *
 *   compute_share loop US SECONDS [graph K]
 *       keep the device fed with spin_<US>us kernels for SECONDS of wall
 *       time: one stream, at most D launches queued (launch i waits for
 *       the event recorded after launch i-D; D = 4 ms of device time in
 *       launches, at least 8: 80 for 50 us kernels, 8 for 20 ms ones;
 *       COMPUTE_SHARE_DEPTH overrides it).  With `graph K`, K such
 *       kernels are captured into a graph once and the graph is launched
 *       instead.  Prints launches=N kernels=N.
 *   compute_share infer US PERIOD_MS SECONDS [IDLE_S]
 *       a latency probe: every PERIOD_MS one spin_<US>us kernel, waited
 *       for (cuStreamQuery until done, then cuStreamSynchronize: a
 *       spinning wait, CUDA's default with fewer contexts than CPUs).  Two
 *       latencies of each: wall (from just before the launch until the
 *       wait returns) and device (from just before the launch until the
 *       kernel ended on the simulator's device timeline,
 *       gp__sim_timeline_by_pid: what the device did, without the host's
 *       delay in noticing).  The first kernel is launched at once and kept
 *       out of the statistics.  After SECONDS, stays alive IDLE_S more
 *       seconds without launching (so that a neighbour's resume after the
 *       hold-off is seen while this tenant is idle but present).  Prints,
 *       as key=value lines: count, p50_us, p99_us, max_us, mean_us,
 *       dev_p50_us, dev_p99_us, dev_max_us (of the periodic kernels),
 *       first_us (the first kernel's wall latency), first_launch_ns
 *       (CLOCK_MONOTONIC just before the first launch) and last_done_ns
 *       (just after the last completion).
 *   compute_share lowprobe US SECONDS
 *       `loop US SECONDS`, plus a thread that reads this process's device
 *       time from the simulator every millisecond (gp__sim_timeline_done,
 *       what `gpupool-simctl busy` prints: the device time of its kernels
 *       completed by now) and, at the end, prints the series as lines
 *       `sample T_NS BUSY_NS` after the loop's key=value lines.  The script
 *       computes the time to yield and the time to resume from it.
 *   compute_share region FILE
 *       what the tenant region FILE says of its first GPU: compute_ns (the
 *       device time the library charged the tenant) and throttled_ns, as
 *       key=value lines.  The script compares the charge with the device
 *       time the simulator saw.
 *
 * Programs run under LD_PRELOAD=libgpupool.so with a shared
 * GPUPOOL_SIM_STATE; every process is its own tenant (its own region)
 * unless the script gives several the same GPUPOOL_REGION.  All times are
 * CLOCK_MONOTONIC, the clock of the simulator's device timeline.
 */
#define __CUDA_API_VERSION_INTERNAL
#include <cuda.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "region/read.h"
#include "sim/timeline.h"

#define DEPTH_MIN 8          /* launches queued ahead at least (loop) */
#define DEPTH_MAX 1024       /* ... and at most */
#define AHEAD_US 4000        /* device time queued ahead (loop), when more
                                than DEPTH_MIN launches */
#define MAX_US 1000000L      /* longest kernel asked for: 1 s */
#define MAX_SECONDS 600.0
#define MAX_GRAPH 1000
#define MAX_PROBES 1000000
#define SAMPLE_NS 1000000ULL /* lowprobe's sampling period */

static CUfunction fn;
static CUstream stream;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ULL),
			      .tv_nsec = (long)(t % 1000000000ULL)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Report a failed CUDA call and return 1. */
static int fail(const char *what, CUresult rc)
{
	const char *name = NULL;

	cuGetErrorName(rc, &name);
	fprintf(stderr, "compute_share: %s: %s (%d)\n", what, name ? name : "?", (int)rc);
	return 1;
}

#define CK(call)                                                             \
	do {                                                                 \
		CUresult rc_ = (call);                                       \
		if (rc_ != CUDA_SUCCESS)                                     \
			return fail(#call, rc_);                             \
	} while (0)

/* Context, stream and the spin_<us>us function.  Returns 0 or 1. */
static int setup(long us)
{
	CUcontext ctx;
	CUmodule mod;
	char name[32];

	snprintf(name, sizeof name, "spin_%ldus", us);
	CK(cuInit(0));
	CK(cuDevicePrimaryCtxRetain(&ctx, 0));
	CK(cuCtxSetCurrent(ctx));
	CK(cuModuleLoadData(&mod, "bench"));
	CK(cuModuleGetFunction(&fn, mod, name));
	CK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
	return 0;
}

static CUresult launch1(void)
{
	return cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, stream, NULL, NULL);
}

/* Keep the device fed until `seconds` have passed: kernels of `us`, or a
 * graph of `k` of them when k > 0.  Returns 0 or 1. */
static int run_loop(long us, double seconds, int k)
{
	static CUevent ev[DEPTH_MAX];
	CUgraph graph = NULL;
	CUgraphExec exec = NULL;
	uint64_t end = now_ns() + (uint64_t)(seconds * 1e9), launches = 0;
	long depth = AHEAD_US / (us * (k > 0 ? k : 1));
	const char *d = getenv("COMPUTE_SHARE_DEPTH"); /* for experiments */

	if (d && *d)
		depth = atol(d);
	depth = depth < DEPTH_MIN ? DEPTH_MIN : depth > DEPTH_MAX ? DEPTH_MAX : depth;
	for (int i = 0; i < depth; i++)
		CK(cuEventCreate(&ev[i], CU_EVENT_DISABLE_TIMING));
	if (k > 0) {
		CK(cuStreamBeginCapture_v2(stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
		for (int i = 0; i < k; i++)
			CK(launch1());
		CK(cuStreamEndCapture(stream, &graph));
		CK(cuGraphInstantiateWithFlags(&exec, graph, 0));
	}
	while (now_ns() < end) {
		CUevent e = ev[launches % (uint64_t)depth];
		if (launches >= (uint64_t)depth)
			CK(cuEventSynchronize(e));
		if (exec)
			CK(cuGraphLaunch(exec, stream));
		else
			CK(launch1());
		CK(cuEventRecord(e, stream));
		launches++;
	}
	CK(cuStreamSynchronize(stream));
	printf("launches=%llu\nkernels=%llu\n", (unsigned long long)launches,
	       (unsigned long long)(launches * (uint64_t)(k > 0 ? k : 1)));
	if (exec) {
		CK(cuGraphExecDestroy(exec));
		CK(cuGraphDestroy(graph));
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The q-quantile of sorted v[0..n) (nearest rank). */
static uint64_t quantile(const uint64_t *v, size_t n, double q)
{
	size_t r = (size_t)(q * (double)n + 0.999999);

	return v[r ? r - 1 : 0];
}

/* When this process's latest kernel on GPU 0 that ended after `from`
 * ended on the device timeline (what the simulator recorded: not when
 * this process noticed), or 0 if none did. */
static uint64_t device_end(uint64_t from)
{
	struct gp_sim_pidbusy list[GP_SIM_STATE_PROCS];
	unsigned n = gp__sim_timeline_by_pid(0, from, now_ns() + 1, list, GP_SIM_STATE_PROCS);
	int me = getpid();

	for (unsigned i = 0; i < n && i < GP_SIM_STATE_PROCS; i++)
		if (list[i].pid == me)
			return list[i].last_ns;
	return 0;
}

/* Wait for the stream as the CUDA runtime does by default with fewer
 * contexts than CPUs (cudaDeviceScheduleAuto: spin): poll it, then
 * cuStreamSynchronize (which returns at once).  A sleeping wait would add
 * the host's wake-up time, which on a small busy machine varies more than
 * the whole kernel takes. */
static CUresult wait_done(void)
{
	CUresult rc;

	while ((rc = cuStreamQuery(stream)) == CUDA_ERROR_NOT_READY)
		;
	return rc == CUDA_SUCCESS ? cuStreamSynchronize(stream) : rc;
}

/* One kernel every `period_ns` for `seconds`, each waited for; then idle
 * for `idle_s`.  Returns 0 or 1. */
static int run_infer(double period_ms, double seconds, double idle_s)
{
	uint64_t period = (uint64_t)(period_ms * 1e6), start, end, t, first, first_lat, done = 0;
	uint64_t sum = 0;
	uint64_t *lat, *dlat;
	size_t n = 0, cap = (size_t)(seconds * 1e3 / period_ms) + 2;

	if (cap > MAX_PROBES)
		cap = MAX_PROBES;
	lat = malloc(cap * sizeof *lat);
	dlat = malloc(cap * sizeof *dlat);
	if (!lat || !dlat)
		return 1;
	/* Latencies are a few tens of microseconds: the default 50 us timer
	 * slack of the sleeps (ours and the simulator's) would dominate. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	/* The first kernel is kept out of the statistics (first-use costs;
	 * and it is the one that finds a neighbour's work on the device:
	 * first_us) but it is when this tenant arrives (first_launch_ns). */
	first = now_ns();
	CK(launch1());
	CK(wait_done());
	start = now_ns();
	first_lat = start - first;
	end = start + (uint64_t)(seconds * 1e9);
	for (t = start; t < end && n < cap; t += period) {
		sleep_until(t);
		uint64_t a = now_ns();
		CK(launch1());
		CK(wait_done());
		done = now_ns();
		uint64_t e = device_end(a);
		dlat[n] = e > a ? e - a : done - a;
		lat[n++] = done - a;
		sum += done - a;
		if (done > t + period) /* never queue probes behind a late one */
			t = done - period;
	}
	sleep_until(done + (uint64_t)(idle_s * 1e9));
	if (n == 0) {
		free(lat);
		free(dlat);
		return 1;
	}
	qsort(lat, n, sizeof *lat, cmp_u64);
	qsort(dlat, n, sizeof *dlat, cmp_u64);
	printf("dev_p50_us=%.1f\ndev_p99_us=%.1f\ndev_max_us=%.1f\n", quantile(dlat, n, 0.50) / 1e3,
	       quantile(dlat, n, 0.99) / 1e3, dlat[n - 1] / 1e3);
	printf("count=%zu\np50_us=%.1f\np99_us=%.1f\nmax_us=%.1f\nmean_us=%.1f\nfirst_us=%.1f\n"
	       "first_launch_ns=%llu\nlast_done_ns=%llu\n",
	       n, quantile(lat, n, 0.50) / 1e3, quantile(lat, n, 0.99) / 1e3, lat[n - 1] / 1e3,
	       (double)sum / (double)n / 1e3, first_lat / 1e3, (unsigned long long)first,
	       (unsigned long long)done);
	free(lat);
	free(dlat);
	return 0;
}

/* lowprobe's sampler: this process's completed device time on GPU 0,
 * every SAMPLE_NS, until told to stop. */
struct series {
	uint64_t *t, *busy;
	size_t n, cap;
	int stop;
};

static uint64_t own_busy(void)
{
	static struct gp_sim_procbusy list[GP_SIM_STATE_PROCS];
	unsigned n = gp__sim_timeline_done(0, list, GP_SIM_STATE_PROCS);
	int me = getpid();

	for (unsigned i = 0; i < n && i < GP_SIM_STATE_PROCS; i++)
		if (list[i].pid == me)
			return list[i].busy_ns;
	return 0;
}

static void *sampler(void *arg)
{
	struct series *s = arg;

	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	for (uint64_t t = now_ns(); !__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE) && s->n < s->cap;
	     t += SAMPLE_NS) {
		sleep_until(t);
		uint64_t b = own_busy();
		s->t[s->n] = now_ns();
		s->busy[s->n] = b;
		s->n++;
	}
	return NULL;
}

static int run_lowprobe(long us, double seconds)
{
	struct series s = {.cap = (size_t)(seconds * 1e9 / SAMPLE_NS) + 1000};
	pthread_t th;
	int rc;

	s.t = calloc(s.cap, sizeof *s.t);
	s.busy = calloc(s.cap, sizeof *s.busy);
	if (!s.t || !s.busy || pthread_create(&th, NULL, sampler, &s) != 0)
		return 1;
	rc = run_loop(us, seconds, 0);
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	for (size_t i = 0; i < s.n; i++)
		printf("sample %llu %llu\n", (unsigned long long)s.t[i],
		       (unsigned long long)s.busy[i]);
	free(s.t);
	free(s.busy);
	return rc;
}

/* region FILE: what the tenant's region says of its first GPU.  Returns
 * 0 or 1. */
static int run_region(const char *path)
{
	static struct gp_region_copy c;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0) {
		fprintf(stderr, "compute_share: %s: %s\n", path, strerror(errno));
		return 1;
	}
	rc = gp_region_read(fd, &c);
	close(fd);
	if (rc || c.hdr.ndevs < 1) {
		fprintf(stderr, "compute_share: %s: %s\n", path, rc ? strerror(-rc) : "no GPU yet");
		return 1;
	}
	printf("compute_ns=%llu\nthrottled_ns=%llu\n", (unsigned long long)c.hdr.dev[0].compute_ns,
	       (unsigned long long)c.hdr.dev[0].throttled_ns);
	return 0;
}

/* Parse a number lo..hi from `s`; exits with 2 on anything else. */
static double num(const char *s, double lo, double hi, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "compute_share: %s '%s' is not a number in %g..%g\n", what, s, lo,
			hi);
		exit(2);
	}
	return v;
}

static int usage(void)
{
	fprintf(stderr, "usage: compute_share loop US SECONDS [graph K]\n"
			"       compute_share infer US PERIOD_MS SECONDS [IDLE_S]\n"
			"       compute_share lowprobe US SECONDS\n"
			"       compute_share region FILE\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	long us;
	int rc;

	if (argc == 3 && strcmp(mode, "region") == 0)
		return run_region(argv[2]);
	if (argc < 4)
		return usage();
	us = (long)num(argv[2], 1, MAX_US, "US");
	if (strcmp(mode, "loop") == 0 && (argc == 4 || (argc == 6 && !strcmp(argv[4], "graph")))) {
		double secs = num(argv[3], 0.001, MAX_SECONDS, "SECONDS");
		int k = argc == 6 ? (int)num(argv[5], 1, MAX_GRAPH, "K") : 0;
		rc = setup(us) || run_loop(us, secs, k);
	} else if (strcmp(mode, "infer") == 0 && (argc == 5 || argc == 6)) {
		double period = num(argv[3], 0.01, 60000, "PERIOD_MS");
		double secs = num(argv[4], 0.001, MAX_SECONDS, "SECONDS");
		double idle = argc == 6 ? num(argv[5], 0, MAX_SECONDS, "IDLE_S") : 0;
		rc = setup(us) || run_infer(period, secs, idle);
	} else if (strcmp(mode, "lowprobe") == 0 && argc == 4) {
		double secs = num(argv[3], 0.001, MAX_SECONDS, "SECONDS");
		rc = setup(us) || run_lowprobe(us, secs);
	} else {
		return usage();
	}
	fflush(stdout);
	return rc;
}
