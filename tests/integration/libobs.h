/* libobs.h - the processes a test starts, and the observer that reads what
 * they really hold.
 *
 * For tests that check the hook's accounting against the truth: workloads
 * run under the hook and try to take (or give back) device memory, while an
 * observer child NOT under the hook sums NVML's per-process usedGpuMemory
 * over them.  Under the hook NVML shows the tenant's charges; outside it,
 * the (simulated) driver's own figures: what the processes really hold.
 *
 * Every process started here comes from one pool, so that a test's
 * teardown (obs_teardown) can kill whatever is still running however the
 * test ended (a failed assertion leaves the test's stack frame at once).
 * A program using the observer lists {"observe", obs_child_observe} in its
 * child table.
 */
#ifndef GP_TESTS_LIBOBS_H
#define GP_TESTS_LIBOBS_H

#include <stdint.h>
#include <sys/types.h>

#include "integration/libcu.h"

/* Seconds on the monotonic clock, for deadlines and durations. */
double obs_now_s(void);

/* Bytes as MiB, for messages. */
double obs_mib(uint64_t bytes);

/* --- the processes of a test ---------------------------------------------- */

/* Start child scenario `name` of this program (as gpt_spawn_child) in the
 * pool; fails the test if it cannot, or if the pool (16) is full. */
struct gpt_proc *obs_start(const char *name, const char *const args[], const char *const env[],
			   int flags);

/* Wait until p reports `key` (at most `ms`), or fail showing what it printed. */
void obs_expect(struct gpt_proc *p, const char *key, int ms);

/* Wait for p to exit and take it out of the pool; fail unless it exits 0. */
void obs_finish(struct gpt_proc *p);

/* SIGKILL p now, wait for it and take it out of the pool; returns what
 * gpt_wait returns (128 + SIGKILL when the kill is what ended it). */
int obs_kill(struct gpt_proc *p);

/* A grandchild the test learnt of (its pid, reported by a child): killed
 * at teardown too.  At most 8 a test. */
void obs_stray(pid_t pid);

/* cmocka teardown: SIGKILL and reap every process of the pool still
 * running, and every stray. */
int obs_teardown(void **state);

/* In children: die with the test program, never linger after it. */
void obs_child_start(void);

/* --- tenants ---------------------------------------------------------------- */

/* A tenant's environment entries, kept here because the libcu helpers that
 * make them return static buffers that the next call overwrites. */
struct obs_tenant {
	char state[512], region[512], limit[128];
	const char *env[8];
};

/* A tenant (a fresh region) on a fresh machine, or on the machine of
 * `state` (another tenant's state entry: its obs_tenant's .state), with
 * `limit` ("GPUPOOL_MEMORY_LIMIT=...") and up to two more entries (NULL
 * for none).  Returns t->env, valid as long as t. */
const char *const *obs_tenant(struct obs_tenant *t, const char *state, const char *limit,
				  const char *extra1, const char *extra2);

/* --- the observer -----------------------------------------------------------
 * "observe DEV PIDS [once]": NOT under the hook.  Sums NVML's usedGpuMemory
 * on device DEV (NVML index) over PIDS (a comma list, or "all": every
 * process on the machine), in a tight loop until SIGUSR1, then once more;
 * reports "max", "last" and "samples" (how many it took).  With "once",
 * only the one sample. */

/* The observer child, for the program's child table as "observe". */
int obs_child_observe(int argc, char **argv);

/* What a sampling observer saw. */
struct obs_usage {
	uint64_t max;     /* the peak seen */
	uint64_t last;    /* at the end, with the processes holding what they got */
	uint64_t samples;
};

/* Start sampling the real usage of `pids` (NULL: everyone) on device
 * `dev` of the machine in `env`; returns once sampling runs. */
struct gpt_proc *obs_watch_start(const char *const env[], int dev, const pid_t *pids, int npids);

/* Stop the observer w (one last sample) and return what it saw. */
struct obs_usage obs_watch_end(struct gpt_proc *w);

/* The real usage of `pids` (NULL: everyone) on `dev`, now. */
uint64_t obs_real_now(const char *const env[], int dev, const pid_t *pids, int npids);

/* Start `name` under the hook, read what it really holds on device 0 once
 * it reports `key` (it then waits in child_wait_go), let it finish (it
 * must exit 0).  Returns the finished process; *real is what it held. */
struct gpt_proc *obs_held(const char *name, const char *const args[], const char *const env[],
			  const char *key, uint64_t *real);

#endif
