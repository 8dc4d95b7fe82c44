/* agent.c - what the node agent costs on a full node: 8 simulated cards
 * and 128 tenants.
 *
 *   agent --gpupool PATH [--gpus N] [--tenants N] [--workers N]
 *         [--interval DUR] [--scrapes N] [--warmup N] [--cpu-window S]
 *         [--idle-window S] [--scrape-every S] [--collections N] [--json FILE]
 *
 * The machine: a simulated node of N cards (GPUPOOL_SIM_GPUS, a private
 * GPUPOOL_SIM_STATE in a temp directory) and a state directory with one
 * tenant per pod (tenants/<pod-uid>/main/region).  Every tenant's region
 * registers all the cards, under the UUIDs the simulator reports for
 * them, with a budget and a charge, and is held live by this process (one
 * attached region per tenant: its lease is what the agent sees).  A few
 * worker processes (forked before this process touches CUDA) cuInit,
 * allocate on two cards each and attach to one tenant each, so NVML's
 * process lists are not empty and the agent joins processes to tenants.
 *
 * Then the real agent (`gpupool agent --sim --no-kube`, its default 1 s
 * collection interval) is started and measured from outside:
 *   - /metrics: --scrapes requests after --warmup ones, each a new
 *     connection on loopback (as Prometheus makes them), timed from
 *     connect() to the last byte: median, p99, max, the body size, and the
 *     CPU the agent's HTTP thread spent per request; a few /v1/tenants and
 *     /v1/gpus requests too;
 *   - memory: VmRSS and VmHWM of /proc/PID/status after the scrapes;
 *   - CPU: utime+stime of /proc/PID/stat (and, finer, the sum of its
 *     threads' /proc/PID/task/TID/schedstat) over --cpu-window seconds
 *     with one scrape every --scrape-every seconds, then over
 *     --idle-window seconds with none; as percent of one core, in total
 *     and by thread (told apart by where each waits, see sample_threads);
 *   - one collection: gpupool_agent_collect_duration_seconds (wall time of
 *     the agent's last collection), read by one scrape a second until
 *     --collections distinct collections are seen, and the collector
 *     thread's idle CPU divided by the collections made.
 *
 * Prints a table (figure, value, target, met) and, with --json, writes the
 * figures with their targets.  The agent is stopped with SIGTERM, the
 * workers and regions are released and the temp directory removed, also
 * when a step fails.
 */
#define __CUDA_API_VERSION_INTERNAL
#include <cuda.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "region/region.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define MAX_GPUS 16
#define MAX_TENANTS 4096
#define MAX_WORKERS 16
#define MAX_SCRAPES 100000
#define MAX_BODY (256u << 20) /* bytes of one HTTP answer */
#define UUID_LEN 64
#define CARD "H100-SXM-80GB:80GiB:132"
#define CARD_BYTES (80 * GiB)
#define TENANT_LIMIT (10 * GiB)  /* each tenant's budget per card */
#define WORKER_ALLOC GiB         /* what a worker allocates per card */
#define WORKER_CARDS 2           /* cards per worker */

/* --- options and state --------------------------------------------------- */

static struct {
	const char *gpupool, *json;
	unsigned gpus, tenants, workers, scrapes, warmup, collections;
	double cpu_window, idle_window, scrape_every;
	const char *interval;
} opt = {
	.gpus = 8, .tenants = 128, .workers = 4, .scrapes = 200, .warmup = 10, .collections = 20,
	.cpu_window = 30, .idle_window = 30, .scrape_every = 15, .interval = "1s",
};

static volatile sig_atomic_t stop_now; /* SIGINT/SIGTERM: clean up and leave */

static char dir[4096];      /* our temp directory; "" = none made */
static char state_dir[4200];
static char uuids[MAX_GPUS][UUID_LEN];
static struct gp_region *regions; /* one per tenant, attached */
static unsigned nregions;
static pid_t workers[MAX_WORKERS];
static int worker_up[MAX_WORKERS] = {[0 ... MAX_WORKERS - 1] = -1};   /* read end */
static int worker_down[MAX_WORKERS] = {[0 ... MAX_WORKERS - 1] = -1}; /* write end */
static unsigned nworkers;
static pid_t agent_pid = -1;
static int agent_port;
static long clk_tck;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs("agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep s seconds, or less when told to stop.  Returns 0, or -1 if told. */
static int nap(double s)
{
	double end = now_s() + s;

	while (!stop_now) {
		double left = end - now_s();
		struct timespec ts;

		if (left <= 0)
			return 0;
		if (left > 0.1)
			left = 0.1;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_now = 1;
}

/* The pod UID of tenant t: a UUID, as Kubernetes names pods. */
static void pod_uid(unsigned t, char *buf, size_t n)
{
	snprintf(buf, n, "%08x-%04x-4%03x-8%03x-%012x", 0x5eed0000u + t, t & 0xffff, t & 0xfff,
		 (t * 7) & 0xfff, t * 2654435761u);
}

static void region_path(unsigned t, char *buf, size_t n)
{
	char uid[64];

	pod_uid(t, uid, sizeof uid);
	snprintf(buf, n, "%s/tenants/%s/main/region", state_dir, uid);
}

/* --- the CUDA workers ---------------------------------------------------- */

static int write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(int fd, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)write_all(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Read one line from fd within timeout_s (the lines are short, written in
 * one write each).  Returns its length, or -1 on EOF, error or timeout. */
static int read_line(int fd, char *buf, size_t n, double timeout_s)
{
	size_t got = 0;
	double end = now_s() + timeout_s;

	while (got + 1 < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)((end - now_s()) * 1000);
		ssize_t r;

		if (left <= 0 || stop_now)
			return -1;
		if (poll(&p, 1, left) <= 0)
			continue;
		r = read(fd, buf + got, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (buf[got] == '\n') {
			buf[got] = '\0';
			return (int)got;
		}
		got++;
	}
	return -1;
}

/* Worker k: a CUDA program on cards 2k and 2k+1 (mod the count), which
 * attaches to tenant k's region once told to.  Reports "uuid I UUID" for
 * every card (worker 0's are the ones used), "ready", then "attached";
 * leaves when its pipe from the parent closes. */
static void worker(unsigned k, int up, int down)
{
	struct gp_region r = GP_REGION_INIT;
	CUcontext ctx;
	CUdeviceptr p;
	int n = 0, devs[WORKER_CARDS];
	char path[4400], c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (cuInit(0) || cuDeviceGetCount(&n) || n <= 0 || n > MAX_GPUS) {
		say(up, "error cuInit or cuDeviceGetCount failed\n");
		_exit(1);
	}
	for (int i = 0; i < n; i++) {
		CUuuid u;
		const unsigned char *b = (const unsigned char *)u.bytes;
		CUdevice d;

		if (cuDeviceGet(&d, i) || cuDeviceGetUuid(&u, d)) {
			say(up, "error cuDeviceGetUuid %d failed\n", i);
			_exit(1);
		}
		if (i < MAX_GPUS)
			snprintf(uuids[i], sizeof uuids[i],
				 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
				 "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
				 b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
		say(up, "uuid %d %s\n", i, i < MAX_GPUS ? uuids[i] : "?");
	}
	for (int j = 0; j < WORKER_CARDS; j++) {
		CUdevice d;

		devs[j] = (int)((k * WORKER_CARDS + (unsigned)j) % (unsigned)n);
		if (cuDeviceGet(&d, devs[j]) || cuDevicePrimaryCtxRetain(&ctx, d) ||
		    cuCtxSetCurrent(ctx) || cuMemAlloc_v2(&p, WORKER_ALLOC)) {
			say(up, "error context or allocation on card %d failed\n", devs[j]);
			_exit(1);
		}
	}
	say(up, "ready\n");
	if (read(down, &c, 1) != 1)
		_exit(0);
	region_path(k, path, sizeof path);
	if (gp_region_open(&r, path) || gp_region_attach(&r)) {
		say(up, "error cannot attach %s\n", path);
		_exit(1);
	}
	for (int j = 0; j < WORKER_CARDS; j++) {
		int d = gp_region_device(&r, uuids[devs[j]], TENANT_LIMIT, CARD_BYTES);

		if (d < 0 || gp_region_charge(&r, (unsigned)d, WORKER_ALLOC, 0)) {
			say(up, "error cannot charge %s\n", path);
			_exit(1);
		}
	}
	say(up, "attached\n");
	while (read(down, &c, 1) > 0)
		;
	_exit(0);
}

static int start_workers(void)
{
	char line[256];

	for (unsigned k = 0; k < opt.workers; k++) {
		int up[2], down[2];
		pid_t pid;

		if (pipe(up) || pipe(down)) {
			fail("pipe: %s", strerror(errno));
			return -1;
		}
		pid = fork();
		if (pid < 0) {
			fail("fork: %s", strerror(errno));
			return -1;
		}
		if (pid == 0) {
			/* Hold no end of another worker's pipes: each must see its
			 * own EOF when the parent closes it. */
			for (unsigned j = 0; j < nworkers; j++) {
				close(worker_up[j]);
				close(worker_down[j]);
			}
			close(up[0]);
			close(down[1]);
			worker(k, up[1], down[0]);
		}
		close(up[1]);
		close(down[0]);
		workers[k] = pid;
		worker_up[k] = up[0];
		worker_down[k] = down[1];
		nworkers++;
	}
	for (unsigned k = 0; k < nworkers; k++) {
		for (;;) {
			unsigned i;
			char u[UUID_LEN];

			if (read_line(worker_up[k], line, sizeof line, 60) < 0) {
				fail("worker %u did not start", k);
				return -1;
			}
			if (strncmp(line, "error", 5) == 0) {
				fail("worker %u: %s", k, line);
				return -1;
			}
			if (sscanf(line, "uuid %u %63s", &i, u) == 2) {
				if (i >= MAX_GPUS || (k && strcmp(u, uuids[i]))) {
					fail("worker %u reports card %u as %s", k, i, u);
					return -1;
				}
				snprintf(uuids[i], sizeof uuids[i], "%s", u);
				continue;
			}
			if (strcmp(line, "ready") == 0)
				break;
		}
	}
	for (unsigned i = 0; i < opt.gpus; i++)
		if (!uuids[i][0]) {
			fail("the simulator reports no card %u", i);
			return -1;
		}
	return 0;
}

/* Tell the workers to attach to their tenants; wait until they have. */
static int attach_workers(void)
{
	char line[256];

	for (unsigned k = 0; k < nworkers; k++)
		if (write_all(worker_down[k], "g", 1)) {
			fail("worker %u is gone", k);
			return -1;
		}
	for (unsigned k = 0; k < nworkers; k++)
		if (read_line(worker_up[k], line, sizeof line, 30) < 0 ||
		    strcmp(line, "attached") != 0) {
			fail("worker %u did not attach: %s", k, line);
			return -1;
		}
	return 0;
}

static void stop_workers(void)
{
	double end = now_s() + 5;

	for (unsigned k = 0; k < nworkers; k++) {
		if (worker_down[k] >= 0)
			close(worker_down[k]);
		if (worker_up[k] >= 0)
			close(worker_up[k]);
		worker_down[k] = worker_up[k] = -1;
	}
	for (unsigned k = 0; k < nworkers; k++) {
		while (waitpid(workers[k], NULL, WNOHANG) == 0) {
			if (now_s() > end) {
				kill(workers[k], SIGKILL);
				waitpid(workers[k], NULL, 0);
				break;
			}
			usleep(10000);
		}
	}
	nworkers = 0;
}

/* --- the tenants --------------------------------------------------------- */

static int mkdirs(const char *path)
{
	char buf[4400];

	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0700) && errno != EEXIST ? -1 : 0;
}

/* Tenant t: a region on every card, budget TENANT_LIMIT, charged
 * 256 MiB x (1 + (t + card) % 8). */
static int make_tenants(void)
{
	regions = calloc(opt.tenants, sizeof *regions);
	if (!regions)
		return -1;
	for (unsigned t = 0; t < opt.tenants; t++) {
		struct gp_region *r = &regions[t];
		char path[4400], *slash;
		int rc;

		*r = (struct gp_region)GP_REGION_INIT;
		region_path(t, path, sizeof path);
		slash = strrchr(path, '/');
		*slash = '\0';
		if (mkdirs(path)) {
			fail("mkdir %s: %s", path, strerror(errno));
			return -1;
		}
		*slash = '/';
		rc = gp_region_open(r, path);
		if (!rc)
			rc = gp_region_attach(r);
		if (rc) {
			fail("region %s: %s", path, strerror(-rc));
			return -1;
		}
		nregions++;
		for (unsigned g = 0; g < opt.gpus; g++) {
			int d = gp_region_device(r, uuids[g], TENANT_LIMIT, CARD_BYTES);

			if (d < 0 || (rc = gp_region_charge(r, (unsigned)d,
							    256 * MiB * (1 + (t + g) % 8), 0))) {
				fail("region %s: cannot register or charge card %u", path, g);
				return -1;
			}
		}
	}
	return 0;
}

static void release_tenants(void)
{
	for (unsigned t = 0; t < nregions; t++) {
		struct gp_region *r = &regions[t];

		for (unsigned g = 0; g < opt.gpus && r->hdr; g++) {
			int d = gp_region_find(r, uuids[g]);

			if (d >= 0)
				gp_region_uncharge(r, (unsigned)d, 256 * MiB * (1 + (t + g) % 8));
		}
		gp_shm_close(&r->shm);
	}
	free(regions);
	regions = NULL;
	nregions = 0;
}

/* --- the agent ----------------------------------------------------------- */

static void print_agent_log(void);

static int start_agent(void)
{
	char ready[4400], log[4400];
	double end;

	snprintf(ready, sizeof ready, "%s/agent.ready", dir);
	snprintf(log, sizeof log, "%s/agent.log", dir);
	agent_pid = fork();
	if (agent_pid < 0) {
		fail("fork: %s", strerror(errno));
		return -1;
	}
	if (agent_pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		/* Nothing of ours: no region (its lease), no worker pipe. */
		closefrom(3);
		unsetenv("KUBERNETES_SERVICE_HOST");
		execl(opt.gpupool, opt.gpupool, "agent", "--sim", "--no-kube", "--node", "bench-node",
		      "--state-dir", state_dir, "--listen", "127.0.0.1:0", "--ready-file", ready,
		      "--interval", opt.interval, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", opt.gpupool, strerror(errno));
		_exit(127);
	}
	end = now_s() + 30;
	while (now_s() < end && !stop_now) {
		json_t *doc = json_load_file(ready, 0, NULL);

		if (doc) {
			json_int_t port = json_integer_value(json_object_get(doc, "http_port"));
			json_int_t pid = json_integer_value(json_object_get(doc, "pid"));

			json_decref(doc);
			if (pid != agent_pid) {
				fail("the ready file names pid %lld, not %d", (long long)pid,
				     (int)agent_pid);
				return -1;
			}
			agent_port = (int)port;
			return port > 0 ? 0 : -1;
		}
		if (waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
			agent_pid = -1;
			fail("the agent exited before it was ready");
			print_agent_log();
			return -1;
		}
		usleep(20000);
	}
	fail("the agent did not write %s", ready);
	return -1;
}

/* SIGTERM, then SIGKILL after 10 s.  Returns the exit status or -1. */
static int stop_agent(void)
{
	double end = now_s() + 10;
	int st = 0;

	if (agent_pid < 0)
		return -1;
	kill(agent_pid, SIGTERM);
	for (;;) {
		pid_t w = waitpid(agent_pid, &st, WNOHANG);

		if (w == agent_pid)
			break;
		if (w < 0 || now_s() > end) {
			kill(agent_pid, SIGKILL);
			waitpid(agent_pid, &st, 0);
			agent_pid = -1;
			return -1;
		}
		usleep(10000);
	}
	agent_pid = -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void print_agent_log(void)
{
	char path[4400], line[1024];
	FILE *f;

	snprintf(path, sizeof path, "%s/agent.log", dir);
	if (!(f = fopen(path, "r")))
		return;
	fprintf(stderr, "agent: the agent's log:\n");
	while (fgets(line, sizeof line, f))
		fprintf(stderr, "  %s", line);
	fclose(f);
}

/* --- HTTP ---------------------------------------------------------------- */

struct answer {
	char *buf;      /* the whole answer, NUL-terminated */
	size_t len, cap;
	int status;
	const char *body;
	size_t body_len;
};

/* GET path on the agent, one connection.  Returns 0 and fills a (the
 * buffer is reused between calls), or -1. */
static int get(const char *path, struct answer *a)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)agent_port)};
	char req[512];
	int fd, n, one = 1;
	const char *eoh;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			  "User-Agent: gpupool-bench\r\nAccept: text/plain\r\n"
			  "Connection: close\r\n\r\n", path, agent_port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) || write_all(fd, req, (size_t)n)) {
		close(fd);
		return -1;
	}
	a->len = 0;
	for (;;) {
		ssize_t r;

		if (a->cap - a->len < 65536 + 1) {
			size_t cap = a->cap ? a->cap * 2 : 1 << 20;
			char *m;

			if (cap > MAX_BODY || !(m = realloc(a->buf, cap))) {
				close(fd);
				return -1;
			}
			a->buf = m;
			a->cap = cap;
		}
		r = read(fd, a->buf + a->len, a->cap - a->len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		a->len += (size_t)r;
	}
	close(fd);
	a->buf[a->len] = '\0';
	if (sscanf(a->buf, "HTTP/1.%*d %d", &a->status) != 1 ||
	    !(eoh = strstr(a->buf, "\r\n\r\n")))
		return -1;
	a->body = eoh + 4;
	a->body_len = a->len - (size_t)(a->body - a->buf);
	return 0;
}

/* The value of the first sample of `name` (with labels) in a metrics
 * body, or NAN. */
static double sample(const char *body, const char *name)
{
	char key[256];
	const char *p;

	snprintf(key, sizeof key, "\n%s{", name);
	if (!(p = strstr(body, key)) || !(p = strstr(p + 1, "} ")))
		return NAN;
	return strtod(p + 2, NULL);
}

/* Samples of `name` (lines starting "name{"), and how many of them contain
 * `also` (NULL: none asked). */
static unsigned count_lines(const char *body, const char *name, const char *also,
			    unsigned *with)
{
	char key[256];
	unsigned n = 0;

	snprintf(key, sizeof key, "\n%s{", name);
	if (with)
		*with = 0;
	for (const char *p = body; (p = strstr(p, key)); p++) {
		const char *eol = strchr(p + 1, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		n++;
		if (also && with && memmem(p, len, also, strlen(also)))
			(*with)++;
	}
	return n;
}

/* --- /proc --------------------------------------------------------------- */

/* utime + stime of the process in clock ticks, or -1. */
static long long cpu_ticks(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command's ")": state is field 3, utime 14, stime 15. */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* CPU time of all the process's threads now (schedstat, ns), or -1. */
static long long cpu_ns(pid_t pid)
{
	char path[64];
	struct dirent *e;
	long long sum = 0;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	if (!(d = opendir(path)))
		return -1;
	while ((e = readdir(d))) {
		char p2[384];
		unsigned long long ns;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		if (!(f = fopen(p2, "r")))
			continue;
		if (fscanf(f, "%llu", &ns) == 1)
			sum += (long long)ns;
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* A "Key:  N kB" field of /proc/PID/status in KiB, or -1. */
static long status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* --- statistics ---------------------------------------------------------- */

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile q (0..1] of v[0..n) (sorted in place). */
static double pct(double *v, size_t n, double q)
{
	size_t k;

	if (!n)
		return NAN;
	qsort(v, n, sizeof *v, dbl_cmp);
	k = (size_t)ceil(q * (double)n);
	return v[k ? k - 1 : 0];
}

/* Median of v[0..n): the mean of the two middle values when n is even. */
static double median(double *v, size_t n)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof *v, dbl_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* --- the run ------------------------------------------------------------- */

/* Collection durations seen, one per collection (by collections_total). */
static double *coll;
static size_t ncoll, capcoll;
static double last_collection = -1;

static void note_collection(const char *body)
{
	double n = sample(body, "gpupool_agent_collections_total");
	double d = sample(body, "gpupool_agent_collect_duration_seconds");

	if (isnan(n) || isnan(d) || n == last_collection)
		return;
	last_collection = n;
	if (ncoll == capcoll) {
		size_t cap = capcoll ? capcoll * 2 : 256;
		double *m = realloc(coll, cap * sizeof *m);

		if (!m)
			return;
		coll = m;
		capcoll = cap;
	}
	coll[ncoll++] = d;
}

/* What the agent saw, from one /metrics body. */
struct seen {
	double tenants, gpus;
	unsigned procs, procs_joined, tenant_series, tenant_series_joined, lines;
};

static void look(const char *body, struct seen *s)
{
	s->tenants = sample(body, "gpupool_agent_tenants");
	s->gpus = count_lines(body, "gpupool_gpu_info", NULL, NULL);
	s->procs = count_lines(body, "gpupool_process_memory_used_bytes", "pod_uid=\"5eed",
			       &s->procs_joined);
	s->tenant_series = count_lines(body, "gpupool_tenant_memory_used_bytes", "model=\"\"",
				       &s->tenant_series_joined);
	/* A tenant's card that the agent did not find among NVML's has no model. */
	s->tenant_series_joined = s->tenant_series - s->tenant_series_joined;
	s->lines = 0;
	for (const char *p = body; *p; p++)
		s->lines += *p == '\n';
}

/* Wait for a collection that sees every card, tenant and worker. */
static int wait_full(struct answer *a, struct seen *s)
{
	double end = now_s() + 60;

	while (now_s() < end && !stop_now) {
		if (get("/metrics", a) == 0 && a->status == 200) {
			look(a->body, s);
			if (s->tenants == opt.tenants && s->gpus == opt.gpus &&
			    s->procs >= nworkers * WORKER_CARDS &&
			    s->procs_joined >= nworkers * WORKER_CARDS &&
			    s->tenant_series_joined == opt.tenants * opt.gpus)
				return 0;
		}
		usleep(100000);
	}
	fail("the agent did not see the whole machine in 60 s: %g tenants of %u, %g cards of "
	     "%u, %u NVML processes (%u joined to tenants), %u of %u tenant series on a known "
	     "card", s->tenants, opt.tenants, s->gpus, opt.gpus, s->procs, s->procs_joined,
	     s->tenant_series_joined, opt.tenants * opt.gpus);
	return -1;
}

/* One timed GET; ms, or NAN on failure. */
static double timed_get(const char *path, struct answer *a)
{
	double t0 = now_s();

	if (get(path, a) || a->status != 200)
		return NAN;
	return (now_s() - t0) * 1e3;
}

/* The agent's threads, told apart by the names it gives them
 * (/proc/PID/task/TID/comm, sampled every 0.1 s): gp-health waits for NVML
 * events, the main thread runs the HTTP loop, gp-collect and gp-kube the
 * collections and the Kubernetes calls. */
enum { TH_NVML_WAIT, TH_HTTP, TH_CONDVAR, TH_OTHER, NTH };
static const char *const th_key[NTH] = {"nvml_event_wait", "http_loop", "condvar_wait",
					 "other"};
static const char *const th_label[NTH] = {
	"the health watcher (gp-health), asleep in NVML's event wait",
	"the HTTP event loop (renders the scrapes)",
	"the collector and the Kubernetes worker (gp-collect, gp-kube)",
	"other threads",
};
static const char *const th_short[NTH] = {"health watcher (NVML events)", "HTTP loop",
					  "collector + kube worker", "other threads"};
#define MAX_THREADS 64

struct thr {
	int tid;
	long long ns0, ns1;  /* schedstat at the window's start and end */
	unsigned hits[NTH];  /* samples of its kind */
};

struct cpu_result {
	double elapsed_s;      /* the window as measured */
	double pct_stat;       /* utime+stime, % of one core */
	double pct_sched;      /* schedstat of every thread, % of one core */
	double cpu_s;          /* the same, seconds */
	double collections;    /* collections the agent made in the window */
	unsigned scrapes;      /* /metrics requests made in it */
	double pct_by[NTH];    /* schedstat by kind of thread, % of one core */
	unsigned threads;
};

static long long task_ns(int tid)
{
	char path[96];
	unsigned long long ns;
	FILE *f;
	int ok;

	snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)agent_pid, tid);
	if (!(f = fopen(path, "r")))
		return -1;
	ok = fscanf(f, "%llu", &ns) == 1;
	fclose(f);
	return ok ? (long long)ns : -1;
}

static int task_kind(int tid)
{
	char path[96], w[128] = "";
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)agent_pid, tid);
	if (!(f = fopen(path, "r")))
		return -1;
	if (!fgets(w, sizeof w, f))
		w[0] = '\0';
	fclose(f);
	if (strstr(w, "gp-health"))
		return TH_NVML_WAIT;
	if (strstr(w, "gp-collect") || strstr(w, "gp-kube"))
		return TH_CONDVAR;
	return tid == agent_pid ? TH_HTTP : TH_OTHER;
}

/* Add the agent's threads not yet in t[] (a thread born in the window
 * counts from 0), and one sample of where each waits. */
static void sample_threads(struct thr *t, unsigned *n, int first)
{
	char path[64];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/task", (int)agent_pid);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d))) {
		int tid = atoi(e->d_name), k;
		unsigned i;

		if (tid <= 0)
			continue;
		for (i = 0; i < *n && t[i].tid != tid; i++)
			;
		if (i == *n) {
			if (*n == MAX_THREADS)
				continue;
			memset(&t[i], 0, sizeof t[i]);
			t[i].tid = tid;
			t[i].ns0 = first ? task_ns(tid) : 0;
			if (t[i].ns0 < 0)
				continue;
			(*n)++;
		}
		if ((k = task_kind(tid)) >= 0)
			t[i].hits[k]++;
	}
	closedir(d);
}

/* CPU of the agent over `window` seconds with a /metrics scrape every
 * `every` seconds (0: none), in total and by kind of thread. */
static int cpu_window(double window, double every, struct answer *a, struct cpu_result *r)
{
	struct thr thr[MAX_THREADS];
	unsigned nthr = 0;
	long long t0, t1, n0, n1;
	double s0, s1, c0 = NAN, c1 = NAN, next = 0;

	memset(r, 0, sizeof *r);
	if (get("/metrics", a) == 0 && a->status == 200)
		c0 = sample(a->body, "gpupool_agent_collections_total");
	s0 = now_s();
	t0 = cpu_ticks(agent_pid);
	n0 = cpu_ns(agent_pid);
	sample_threads(thr, &nthr, 1);
	for (;;) {
		double t = now_s() - s0;

		if (t >= window)
			break;
		if (every > 0 && t >= next) {
			if (get("/metrics", a) || a->status != 200) {
				fail("a scrape failed in the CPU window");
				return -1;
			}
			r->scrapes++;
			next += every;
			continue;
		}
		if (nap(fmin(0.1, fmin(window - t, every > 0 ? next - t : window - t))))
			return -1;
		sample_threads(thr, &nthr, 0);
	}
	t1 = cpu_ticks(agent_pid);
	n1 = cpu_ns(agent_pid);
	s1 = now_s();
	for (unsigned i = 0; i < nthr; i++) {
		unsigned best = TH_OTHER;

		thr[i].ns1 = task_ns(thr[i].tid);
		if (thr[i].ns1 < 0) /* gone: its time is lost from the breakdown */
			thr[i].ns1 = thr[i].ns0;
		for (unsigned k = 0; k < NTH; k++)
			if (thr[i].hits[k] > thr[i].hits[best])
				best = k;
		r->pct_by[best] += (double)(thr[i].ns1 - thr[i].ns0);
	}
	if (get("/metrics", a) == 0 && a->status == 200)
		c1 = sample(a->body, "gpupool_agent_collections_total");
	if (t0 < 0 || t1 < 0) {
		fail("cannot read /proc/%d/stat", (int)agent_pid);
		return -1;
	}
	r->elapsed_s = s1 - s0;
	r->threads = nthr;
	for (unsigned k = 0; k < NTH; k++)
		r->pct_by[k] = 100.0 * r->pct_by[k] / 1e9 / r->elapsed_s;
	r->pct_stat = 100.0 * (double)(t1 - t0) / (double)clk_tck / r->elapsed_s;
	r->cpu_s = n0 >= 0 && n1 >= 0 ? (double)(n1 - n0) / 1e9 : NAN;
	r->pct_sched = 100.0 * r->cpu_s / r->elapsed_s;
	r->collections = c1 - c0;
	return 0;
}

/* --- output -------------------------------------------------------------- */

struct figure {
	const char *key, *label, *unit;
	double value;
	double target;  /* NAN: reported only */
	int below;      /* met when value < target (else <=) */
};

static int met(const struct figure *f)
{
	return f->below ? f->value < f->target : f->value <= f->target;
}

static void table(const struct figure *f, size_t n)
{
	printf("\nagent: gpupool agent on %u simulated cards x %u tenants (%u CUDA processes), "
	       "interval %s\n\n", opt.gpus, opt.tenants, nworkers, opt.interval);
	printf("  %-40s %12s %12s  %s\n", "figure", "value", "target", "met");
	for (size_t i = 0; i < n; i++) {
		char v[32], t[32];

		snprintf(v, sizeof v, "%.*f", f[i].value < 10 ? 3 : 1, f[i].value);
		if (isnan(f[i].target))
			snprintf(t, sizeof t, "-");
		else
			snprintf(t, sizeof t, "%s %g", f[i].below ? "<" : "<=", f[i].target);
		printf("  %-40s %12s %12s  %s\n", f[i].label, v, t,
		       isnan(f[i].target) ? "" : met(&f[i]) ? "yes" : "NO");
	}
}

static json_t *jnum(double v)
{
	return isnan(v) ? json_null() : json_real(v);
}

static json_t *cpu_json(const struct cpu_result *r, double every)
{
	json_t *o = json_object(), *by = json_object();

	json_object_set_new(o, "window_s", json_real(r->elapsed_s));
	json_object_set_new(o, "scrape_every_s", every > 0 ? json_real(every) : json_null());
	json_object_set_new(o, "scrapes", json_integer(r->scrapes));
	json_object_set_new(o, "collections", jnum(r->collections));
	json_object_set_new(o, "cpu_pct_stat", jnum(r->pct_stat));
	json_object_set_new(o, "cpu_pct_schedstat", jnum(r->pct_sched));
	json_object_set_new(o, "threads", json_integer(r->threads));
	for (unsigned k = 0; k < NTH; k++) {
		json_t *t = json_object();

		json_object_set_new(t, "threads", json_string(th_label[k]));
		json_object_set_new(t, "cpu_pct", jnum(r->pct_by[k]));
		json_object_set_new(by, th_key[k], t);
	}
	json_object_set_new(o, "by_thread_schedstat", by);
	return o;
}

static int write_json(const struct figure *f, size_t n, const struct seen *s, double body_kib,
		      const struct cpu_result *scr, const struct cpu_result *idle, int agent_exit)
{
	json_t *root = json_object(), *figs = json_object(), *setup = json_object(),
	       *machine = json_object(), *saw = json_object();
	struct utsname u;
	char date[32], when[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%Y-%m-%d", &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(root, "benchmark", json_string("agent"));
	json_object_set_new(root, "unit", json_string("per figure: ms, MiB, percent of one core"));
	json_object_set_new(
		root, "method",
		json_string("the real `gpupool agent --sim --no-kube` with its default 1 s "
			    "collection interval on a simulated node; tenants are region files "
			    "registering every card under the UUIDs the simulator reports, held "
			    "live by the benchmark process; CUDA worker processes on the simulator "
			    "fill NVML's process lists and are attached to tenants. Scrape time: a "
			    "new loopback TCP connection per request, connect() to last byte, after "
			    "warm-up requests; median and nearest-rank p99. RSS: VmRSS/VmHWM of "
			    "/proc/PID/status after the scrapes. CPU: utime+stime of /proc/PID/stat "
			    "(10 ms ticks; schedstat of every thread as a finer check) over a "
			    "window with one /metrics scrape every scrape_every_s, then over an "
			    "idle window with none; by thread from each thread's schedstat, a "
			    "thread's kind told by its name (comm sampled every 0.1 s). "
			    "Scrape CPU: the HTTP (main) thread's schedstat over the timed "
			    "scrapes / their number. Collection: the agent's own "
			    "gpupool_agent_collect_duration_seconds (wall time), read by one scrape "
			    "a second after the CPU windows, one value per collection; collector "
			    "CPU per collection = CPU of the condition-variable-waiting threads in "
			    "the idle window / collections in it."));
	json_object_set_new(root, "date", json_string(date));
	json_object_set_new(root, "time", json_string(when));
	uname(&u);
	json_object_set_new(machine, "cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(machine, "kernel", json_string(u.release));
	json_object_set_new(machine, "arch", json_string(u.machine));
	json_object_set_new(machine, "note",
			    json_string("a noisy shared 2-core VM: other builds and tests ran "
					"beside the benchmark, so wall times (scrape latency, "
					"collection duration) include preemption; CPU figures count "
					"only the agent's own CPU time"));
	json_object_set_new(root, "machine", machine);
	json_object_set_new(setup, "gpus", json_integer(opt.gpus));
	json_object_set_new(setup, "card", json_string(CARD));
	json_object_set_new(setup, "tenants", json_integer(opt.tenants));
	json_object_set_new(setup, "cards_per_tenant", json_integer(opt.gpus));
	json_object_set_new(setup, "cuda_processes", json_integer(nworkers));
	json_object_set_new(setup, "cards_per_cuda_process", json_integer(WORKER_CARDS));
	json_object_set_new(setup, "interval", json_string(opt.interval));
	json_object_set_new(setup, "scrapes", json_integer(opt.scrapes));
	json_object_set_new(setup, "warmup_scrapes", json_integer(opt.warmup));
	json_object_set_new(setup, "cpu_window_s", json_real(opt.cpu_window));
	json_object_set_new(setup, "scrape_every_s", json_real(opt.scrape_every));
	json_object_set_new(setup, "idle_window_s", json_real(opt.idle_window));
	json_object_set_new(setup, "collections_sampled", json_integer((json_int_t)ncoll));
	json_object_set_new(root, "setup", setup);
	json_object_set_new(saw, "tenants", jnum(s->tenants));
	json_object_set_new(saw, "gpus", jnum(s->gpus));
	json_object_set_new(saw, "nvml_processes", json_integer(s->procs));
	json_object_set_new(saw, "nvml_processes_joined_to_tenants", json_integer(s->procs_joined));
	json_object_set_new(saw, "tenant_card_series", json_integer(s->tenant_series));
	json_object_set_new(saw, "tenant_card_series_on_known_card",
			    json_integer(s->tenant_series_joined));
	json_object_set_new(saw, "metrics_lines", json_integer(s->lines));
	json_object_set_new(saw, "metrics_body_kib", json_real(body_kib));
	json_object_set_new(saw, "agent_exit_status", json_integer(agent_exit));
	json_object_set_new(root, "agent_saw", saw);
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "figure", json_string(f[i].label));
		json_object_set_new(o, "unit", json_string(f[i].unit));
		json_object_set_new(o, "value", jnum(f[i].value));
		if (!isnan(f[i].target)) {
			json_object_set_new(o, "target", json_real(f[i].target));
			json_object_set_new(o, "target_is", json_string(f[i].below ? "below" :
										     "at most"));
			json_object_set_new(o, "met", json_boolean(met(&f[i])));
		}
		json_object_set_new(figs, f[i].key, o);
	}
	json_object_set_new(root, "figures", figs);
	json_object_set_new(root, "cpu_scraped", cpu_json(scr, opt.scrape_every));
	json_object_set_new(root, "cpu_idle", cpu_json(idle, 0));
	if (json_dump_file(root, opt.json, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
		json_decref(root);
		fail("cannot write %s", opt.json);
		return -1;
	}
	json_decref(root);
	return 0;
}

/* --- main ---------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: agent --gpupool PATH [--gpus N] [--tenants N] [--workers N]\n"
		"             [--interval DUR] [--scrapes N] [--warmup N] [--cpu-window S]\n"
		"             [--idle-window S] [--scrape-every S] [--collections N]\n"
		"             [--json FILE]\n\n"
		"  --gpupool PATH     the gpupool command to run the agent of\n"
		"  --gpus N           simulated cards (default 8, at most %d)\n"
		"  --tenants N        tenants, each on every card (default 128)\n"
		"  --workers N        CUDA processes, each on 2 cards (default 4)\n"
		"  --interval DUR     the agent's --interval (default 1s)\n"
		"  --scrapes N        timed /metrics requests (default 200)\n"
		"  --warmup N         untimed ones before (default 10)\n"
		"  --cpu-window S     seconds of CPU measurement with scrapes (default 30)\n"
		"  --scrape-every S   one scrape per S seconds in it (default 15)\n"
		"  --idle-window S    seconds of CPU measurement with none (default 30)\n"
		"  --collections N    collection durations to read, one a second (default 20)\n"
		"  --json FILE        also write the figures as JSON\n"
		"Run with LD_LIBRARY_PATH naming the simulator (build/sim).\n",
		MAX_GPUS);
}

static int num(const char *name, const char *v, double lo, double hi, double *out)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v || *end || !(d >= lo && d <= hi)) {
		fail("--%s '%s': want a number from %g to %g", name, v, lo, hi);
		return -1;
	}
	*out = d;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"gpupool", required_argument, NULL, 'g'}, {"gpus", required_argument, NULL, 'n'},
		{"tenants", required_argument, NULL, 't'}, {"workers", required_argument, NULL, 'w'},
		{"interval", required_argument, NULL, 'i'}, {"scrapes", required_argument, NULL, 's'},
		{"warmup", required_argument, NULL, 'u'}, {"cpu-window", required_argument, NULL, 'c'},
		{"idle-window", required_argument, NULL, 'l'},
		{"scrape-every", required_argument, NULL, 'e'},
		{"collections", required_argument, NULL, 'k'},
		{"json", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct answer a = {0};
	struct seen seen = {0};
	struct figure fig[32];
	size_t nfig = 0, nlat = 0;
	double *lat = NULL, *aux = NULL, body_kib = 0, d;
	struct cpu_result cpu_scr = {0}, cpu_idle = {0};
	long long http_ns0 = -1, http_ns1 = -1;
	long rss = -1, hwm = -1;
	int o, rc = 1, agent_exit = -1;
	char gpus_env[MAX_GPUS * 32] = "", sim_state[4400];
	static char cpu_label[64];

	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (o) {
		case 'g': opt.gpupool = optarg; break;
		case 'i': opt.interval = optarg; break;
		case 'o': opt.json = optarg; break;
		case 'n':
			if (num("gpus", optarg, 1, MAX_GPUS, &d))
				return 2;
			opt.gpus = (unsigned)d;
			break;
		case 't':
			if (num("tenants", optarg, 1, MAX_TENANTS, &d))
				return 2;
			opt.tenants = (unsigned)d;
			break;
		case 'w':
			if (num("workers", optarg, 0, MAX_WORKERS, &d))
				return 2;
			opt.workers = (unsigned)d;
			break;
		case 's':
			if (num("scrapes", optarg, 1, MAX_SCRAPES, &d))
				return 2;
			opt.scrapes = (unsigned)d;
			break;
		case 'u':
			if (num("warmup", optarg, 0, MAX_SCRAPES, &d))
				return 2;
			opt.warmup = (unsigned)d;
			break;
		case 'k':
			if (num("collections", optarg, 1, 100000, &d))
				return 2;
			opt.collections = (unsigned)d;
			break;
		case 'c':
			if (num("cpu-window", optarg, 1, 86400, &opt.cpu_window))
				return 2;
			break;
		case 'l':
			if (num("idle-window", optarg, 1, 86400, &opt.idle_window))
				return 2;
			break;
		case 'e':
			if (num("scrape-every", optarg, 0.1, 86400, &opt.scrape_every))
				return 2;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !opt.gpupool) {
		usage(stderr);
		return 2;
	}
	if (opt.workers > opt.tenants)
		opt.workers = opt.tenants;
	clk_tck = sysconf(_SC_CLK_TCK);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	lat = calloc(opt.scrapes, sizeof *lat);
	aux = calloc(opt.scrapes, sizeof *aux);
	if (!lat || !aux)
		goto out;

	/* The machine: the simulator's environment is read at cuInit and
	 * nvmlInit, by the workers and the agent, all forked from here. */
	snprintf(dir, sizeof dir, "%s/gpupool-bench-agent.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		fail("mkdtemp %s: %s", dir, strerror(errno));
		dir[0] = '\0';
		goto out;
	}
	snprintf(state_dir, sizeof state_dir, "%s/state", dir);
	snprintf(sim_state, sizeof sim_state, "%s/sim.state", dir);
	for (unsigned i = 0; i < opt.gpus; i++)
		snprintf(gpus_env + strlen(gpus_env), sizeof gpus_env - strlen(gpus_env), "%s%s",
			 i ? "," : "", CARD);
	setenv("GPUPOOL_SIM_GPUS", gpus_env, 1);
	setenv("GPUPOOL_SIM_STATE", sim_state, 1);
	unsetenv("GPUPOOL_REGION");
	unsetenv("GPUPOOL_NODE");
	unsetenv("CUDA_VISIBLE_DEVICES");
	if (mkdirs(state_dir)) {
		fail("mkdir %s: %s", state_dir, strerror(errno));
		goto out;
	}
	if (start_workers() || make_tenants() || attach_workers() || start_agent())
		goto out;
	if (wait_full(&a, &seen))
		goto out;

	/* /metrics latency. */
	for (unsigned i = 0; i < opt.warmup; i++)
		if (isnan(timed_get("/metrics", &a))) {
			fail("a warm-up scrape failed");
			goto out;
		}
	http_ns0 = task_ns(agent_pid);
	for (unsigned i = 0; i < opt.scrapes && !stop_now; i++) {
		lat[nlat] = timed_get("/metrics", &a);
		if (isnan(lat[nlat])) {
			fail("scrape %u failed", i);
			goto out;
		}
		nlat++;
	}
	http_ns1 = task_ns(agent_pid);
	if (stop_now)
		goto out;
	look(a.body, &seen);
	body_kib = (double)a.body_len / 1024.0;
	rss = status_kib(agent_pid, "VmRSS");
	hwm = status_kib(agent_pid, "VmHWM");
	memcpy(aux, lat, nlat * sizeof *lat);
	fig[nfig++] = (struct figure){"scrape_ms_p50", "/metrics scrape, median (ms)", "ms",
				      median(aux, nlat), 20, 0};
	fig[nfig++] = (struct figure){"scrape_ms_p99", "/metrics scrape, p99 (ms)", "ms",
				      pct(aux, nlat, 0.99), NAN, 0};
	fig[nfig++] = (struct figure){"scrape_ms_max", "/metrics scrape, max (ms)", "ms",
				      aux[nlat - 1], NAN, 0};
	fig[nfig++] = (struct figure){"scrape_cpu_ms", "  agent CPU per scrape, HTTP thread (ms)",
				      "ms", http_ns0 >= 0 && http_ns1 >= 0 ?
						    (double)(http_ns1 - http_ns0) / 1e6 / (double)nlat : NAN,
				      NAN, 0};
	fig[nfig++] = (struct figure){"metrics_body_kib", "/metrics body (KiB)", "KiB", body_kib,
				      NAN, 0};
	{
		/* The JSON documents, fewer times: reported, no target. */
		static const char *const paths[] = {"/v1/tenants", "/v1/gpus"};
		static const char *const keys[] = {"tenants_ms_p50", "gpus_ms_p50"};
		static const char *const labels[] = {"/v1/tenants, median (ms)",
						     "/v1/gpus, median (ms)"};
		unsigned m = opt.scrapes < 20 ? opt.scrapes : 20;

		for (int k = 0; k < 2; k++) {
			for (unsigned i = 0; i < m; i++)
				if (isnan(aux[i] = timed_get(paths[k], &a))) {
					fail("GET %s failed", paths[k]);
					goto out;
				}
			fig[nfig++] = (struct figure){keys[k], labels[k], "ms", median(aux, m),
						      NAN, 0};
		}
	}
	fig[nfig++] = (struct figure){"rss_mib", "agent RSS after the scrapes (MiB)", "MiB",
				      rss / 1024.0, 32, 0};
	fig[nfig++] = (struct figure){"peak_rss_mib", "agent peak RSS, VmHWM (MiB)", "MiB",
				      hwm / 1024.0, 32, 0};

	/* CPU: with a scrape every --scrape-every seconds, then idle. */
	if (cpu_window(opt.cpu_window, opt.scrape_every, &a, &cpu_scr) ||
	    cpu_window(opt.idle_window, 0, &a, &cpu_idle))
		goto out;
	snprintf(cpu_label, sizeof cpu_label, "CPU, a scrape every %g s (%% core)",
		 opt.scrape_every);
	fig[nfig++] = (struct figure){"cpu_pct_scraped", cpu_label, "% of one core",
				      cpu_scr.pct_stat, 0.5, 1};
	fig[nfig++] = (struct figure){"cpu_pct_scraped_schedstat",
				      "  the same from schedstat (% core)", "% of one core",
				      cpu_scr.pct_sched, NAN, 0};
	for (unsigned k = 0; k < NTH; k++) {
		static char keys[NTH][64], labels[NTH][96];

		if (k == TH_OTHER && cpu_scr.pct_by[k] == 0)
			continue;
		snprintf(keys[k], sizeof keys[k], "cpu_pct_scraped_%s", th_key[k]);
		snprintf(labels[k], sizeof labels[k], "    %s", th_short[k]);
		fig[nfig++] = (struct figure){keys[k], labels[k], "% of one core",
					      cpu_scr.pct_by[k], NAN, 0};
	}
	fig[nfig++] = (struct figure){"cpu_pct_idle", "CPU, no scrapes (% core)", "% of one core",
				      cpu_idle.pct_stat, NAN, 0};
	fig[nfig++] = (struct figure){"cpu_pct_idle_schedstat",
				      "  the same from schedstat (% core)", "% of one core",
				      cpu_idle.pct_sched, NAN, 0};
	fig[nfig++] = (struct figure){"cpu_ms_per_collection",
				      "collector CPU per collection, idle (ms)", "ms",
				      cpu_idle.collections > 0 ? cpu_idle.pct_by[TH_CONDVAR] / 100.0 *
						      cpu_idle.elapsed_s * 1e3 /
						      cpu_idle.collections : NAN,
				      NAN, 0};
	/* One collection's wall time: the agent's own figure, read once a
	 * second (one scrape at a time, so the scrapes hardly compete with the
	 * collections), one value per collection. */
	{
		double end = now_s() + 3.0 * opt.collections + 10;

		while (ncoll < opt.collections && now_s() < end) {
			if (nap(1.0))
				goto out;
			if (get("/metrics", &a) == 0 && a.status == 200)
				note_collection(a.body);
		}
	}
	fig[nfig++] = (struct figure){"collect_ms_p50", "collection duration, median (ms)", "ms",
				      median(coll, ncoll) * 1e3, NAN, 0};
	fig[nfig++] = (struct figure){"collect_ms_max", "collection duration, max (ms)", "ms",
				      ncoll ? coll[ncoll - 1] * 1e3 : NAN, NAN, 0};
	agent_exit = stop_agent();
	if (agent_exit != 0)
		fail("the agent exited with status %d after SIGTERM", agent_exit);
	table(fig, nfig);
	printf("\n  %zu scrapes; %u /metrics lines; %zu collections seen; agent exit status %d\n",
	       nlat, seen.lines, ncoll, agent_exit);
	if (opt.json && write_json(fig, nfig, &seen, body_kib, &cpu_scr, &cpu_idle, agent_exit))
		goto out;
	rc = agent_exit == 0 ? 0 : 1;
out:
	if (agent_pid > 0) {
		if (rc)
			print_agent_log();
		stop_agent();
	}
	stop_workers();
	release_tenants();
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(a.buf);
	free(lat);
	free(aux);
	free(coll);
	if (stop_now)
		fail("interrupted");
	return rc;
}
