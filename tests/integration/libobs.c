/* libobs.c - see libobs.h. */
#include "integration/libobs.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "common/nvml.h"

double obs_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double obs_mib(uint64_t bytes)
{
	return (double)bytes / (double)MiB;
}

/* --- the processes of a test ------------------------------------------------
 * A static pool rather than the test's locals: a failed assertion leaves
 * the test's stack frame, and teardown must still find what runs. */

#define NPROC 16
static struct gpt_proc procs[NPROC];
static int proc_live[NPROC];
static pid_t strays[8];
static int nstrays;

struct gpt_proc *obs_start(const char *name, const char *const args[], const char *const env[],
			   int flags)
{
	for (int i = 0; i < NPROC; i++) {
		if (proc_live[i])
			continue;
		if (gpt_spawn_child(&procs[i], name, args, env, flags))
			fail_msg("cannot start child %s", name);
		proc_live[i] = 1;
		return &procs[i];
	}
	fail_msg("more than %d processes in one test", NPROC);
	return NULL;
}

void obs_expect(struct gpt_proc *p, const char *key, int ms)
{
	if (gpt_wait_for(p, key, ms))
		fail_msg("child %d did not report %s; it printed:\n%s", (int)p->pid, key, p->out);
}

void obs_finish(struct gpt_proc *p)
{
	int rc = gpt_wait(p, 60000);

	proc_live[p - procs] = 0;
	if (rc != 0)
		fail_msg("child %d exited %d; it printed:\n%s", (int)p->pid, rc, p->out);
}

int obs_kill(struct gpt_proc *p)
{
	int rc;

	kill(p->pid, SIGKILL);
	rc = gpt_wait(p, 10000);
	proc_live[p - procs] = 0; /* reaped: teardown must not wait for it again */
	return rc;
}

void obs_stray(pid_t pid)
{
	if (nstrays == (int)(sizeof strays / sizeof strays[0]))
		fail_msg("more than %d strays in one test", nstrays);
	strays[nstrays++] = pid;
}

int obs_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NPROC; i++) {
		if (!proc_live[i])
			continue;
		kill(procs[i].pid, SIGKILL);
		gpt_wait(&procs[i], 10000);
		proc_live[i] = 0;
	}
	for (int i = 0; i < nstrays; i++)
		kill(strays[i], SIGKILL);
	nstrays = 0;
	return 0;
}

void obs_child_start(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* --- tenants ---------------------------------------------------------------- */

const char *const *obs_tenant(struct obs_tenant *t, const char *state, const char *limit,
				  const char *extra1, const char *extra2)
{
	int n = 0;

	snprintf(t->state, sizeof t->state, "%s", state ? state : gpt_env_state());
	snprintf(t->region, sizeof t->region, "%s", gpt_env_region());
	snprintf(t->limit, sizeof t->limit, "%s", limit);
	t->env[n++] = t->state;
	t->env[n++] = t->region;
	t->env[n++] = t->limit;
	if (extra1)
		t->env[n++] = extra1;
	if (extra2)
		t->env[n++] = extra2;
	t->env[n] = NULL;
	return t->env;
}

/* --- the observer ----------------------------------------------------------- */

/* One sample: usedGpuMemory summed over `pids` (npids 0: everyone).  A
 * failed query counts as nothing held rather than ending the watch. */
static uint64_t sample(nvmlDevice_t h, const int *pids, int npids)
{
	nvmlProcessInfo_t info[128];
	unsigned n = 128;
	uint64_t sum = 0;

	if (nvmlDeviceGetComputeRunningProcesses_v3(h, &n, info) != NVML_SUCCESS)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		int mine = npids == 0;
		for (int j = 0; j < npids && !mine; j++)
			mine = (unsigned)pids[j] == info[i].pid;
		if (mine)
			sum += info[i].usedGpuMemory;
	}
	return sum;
}

int obs_child_observe(int argc, char **argv)
{
	int pids[64], npids = 0, once = argc > 2 && strcmp(argv[2], "once") == 0;
	uint64_t max = 0, last, samples = 0;
	nvmlDevice_t h;
	sigset_t pend;
	double t0 = obs_now_s();

	obs_child_start();
	if (argc < 2)
		return 98;
	if (strcmp(argv[1], "all") != 0)
		for (char *s = argv[1]; *s && npids < 64; s += *s == ',')
			pids[npids++] = (int)strtol(s, &s, 10);
	if (nvmlInit_v2() != NVML_SUCCESS ||
	    nvmlDeviceGetHandleByIndex_v2((unsigned)atoi(argv[0]), &h) != NVML_SUCCESS)
		return 96;
	if (!once)
		out("observing", "1");
	while (!once) {
		last = sample(h, pids, npids);
		if (last > max)
			max = last;
		/* Checking for the stop signal costs a system call: every 64
		 * samples keeps the loop tight. */
		if ((++samples & 63) == 0) {
			sigpending(&pend);
			if (sigismember(&pend, SIGUSR1) || obs_now_s() - t0 > 60)
				break;
		}
	}
	last = sample(h, pids, npids); /* what the processes hold now */
	if (last > max)
		max = last;
	out("max", "%llu", (unsigned long long)max);
	out("last", "%llu", (unsigned long long)last);
	out("samples", "%llu", (unsigned long long)samples + 1);
	nvmlShutdown();
	return 0;
}

/* `pids` as the observer's PIDS argument, in buf (NULL pids: "all"). */
static const char *pid_list(char *buf, size_t n, const pid_t *pids, int npids)
{
	size_t len = 0;

	if (!pids)
		return "all";
	buf[0] = '\0';
	for (int i = 0; i < npids && len < n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%d", i ? "," : "", (int)pids[i]);
	return buf;
}

/* Start an observer of `pids` on `dev`: sampling until told to stop, or
 * (once) a single sample. */
static struct gpt_proc *observer(const char *const env[], int dev, const pid_t *pids, int npids,
				 int once)
{
	char devs[8], list[512];
	const char *args[] = {devs, NULL, once ? "once" : NULL, NULL};

	snprintf(devs, sizeof devs, "%d", dev);
	args[1] = pid_list(list, sizeof list, pids, npids);
	return obs_start("observe", args, env, 0);
}

struct gpt_proc *obs_watch_start(const char *const env[], int dev, const pid_t *pids, int npids)
{
	struct gpt_proc *w = observer(env, dev, pids, npids, 0);

	obs_expect(w, "observing", 30000);
	return w;
}

struct obs_usage obs_watch_end(struct gpt_proc *w)
{
	struct obs_usage u;

	gpt_go(w);
	obs_finish(w);
	u.max = gpt_get_u64(w, "max");
	u.last = gpt_get_u64(w, "last");
	u.samples = gpt_get_u64(w, "samples");
	return u;
}

uint64_t obs_real_now(const char *const env[], int dev, const pid_t *pids, int npids)
{
	struct gpt_proc *w = observer(env, dev, pids, npids, 1);

	obs_finish(w);
	return gpt_get_u64(w, "last");
}

struct gpt_proc *obs_held(const char *name, const char *const args[], const char *const env[],
			  const char *key, uint64_t *real)
{
	struct gpt_proc *p = obs_start(name, args, env, GPT_HOOK);

	obs_expect(p, key, 30000);
	*real = obs_real_now(env, 0, &p->pid, 1);
	gpt_go(p);
	obs_finish(p);
	return p;
}
