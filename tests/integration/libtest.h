/* libtest.h - helpers for integration tests: start programs (workloads) with
 * a chosen environment, optionally under the hook, and read what they print.
 *
 * Workloads report results as "key=value" lines on stdout; tests read them
 * back with gpt_get*().  Every spawned process is waited for with a time
 * limit and killed if it overstays, so a hung workload fails its test
 * instead of hanging the suite.
 */
#ifndef GP_TESTS_LIBTEST_H
#define GP_TESTS_LIBTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* cmocka needs these before its header. */
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#define GPT_OUT_MAX 65536

struct gpt_proc {
	pid_t pid;
	int out_fd;              /* read end of the child's stdout */
	char out[GPT_OUT_MAX];   /* everything it printed (NUL-terminated) */
	size_t out_len;
	int status;              /* wait status once gpt_wait returned */
};

/* The build directory ($GP_BUILD, default "build"). */
const char *gpt_build(void);

/* "<build>/<rel>", newly allocated (the caller frees it). */
char *gpt_build_path(const char *rel);

/* A fresh path under $TMPDIR (the runner gives each program its own):
 * "<TMPDIR>/<name>.<pid>.<n>".  Caller frees.  The file is not created. */
char *gpt_tmp_path(const char *name);

/* Flags for gpt_spawn. */
enum {
	GPT_HOOK = 1,   /* preload the hook (and, in sanitizer builds, the
	                   sanitizer runtime before it) */
	GPT_STDERR = 2, /* capture stderr too (else it passes through) */
};

/* Start argv[0] (a path) with the current environment plus `env` ("K=V"
 * entries, NULL-terminated; "K=" with nothing after '=' removes K).
 * stdout is captured.  Returns 0 or -errno. */
int gpt_spawn(struct gpt_proc *p, const char *const argv[], const char *const env[], int flags);

/* Read output until the child exits or `timeout_ms` passes (then SIGKILL).
 * Returns the exit code (0-255), 128+signal if killed by a signal, or -1
 * on timeout. */
int gpt_wait(struct gpt_proc *p, int timeout_ms);

/* Read what the child printed so far until a line "key=..." appears or
 * `timeout_ms` passes.  Returns 0 when seen, -1 otherwise.  For
 * workloads that report and then wait (to be killed, say). */
int gpt_wait_for(struct gpt_proc *p, const char *key, int timeout_ms);

/* spawn + wait.  Returns what gpt_wait returns. */
int gpt_run(struct gpt_proc *p, const char *const argv[], const char *const env[],
	    int flags, int timeout_ms);

/* The value of the last "key=value" line, or NULL. Points into a static
 * buffer overwritten by the next call. */
const char *gpt_get(const struct gpt_proc *p, const char *key);

/* The value parsed as an unsigned integer; fails the test if absent. */
uint64_t gpt_get_u64(const struct gpt_proc *p, const char *key);

/* Does the captured output contain `needle`? */
int gpt_has(const struct gpt_proc *p, const char *needle);

#endif
