/* libtest.c - see libtest.h. */
#include "integration/libtest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *gpt_build(void)
{
	const char *b = getenv("GP_BUILD");
	return b && *b ? b : "build";
}

char *gpt_build_path(const char *rel)
{
	char *s;
	if (asprintf(&s, "%s/%s", gpt_build(), rel) < 0)
		abort();
	return s;
}

char *gpt_tmp_path(const char *name)
{
	static int n;
	const char *dir = getenv("TMPDIR");
	char *s;
	if (asprintf(&s, "%s/%s.%d.%d", dir && *dir ? dir : "/tmp", name, (int)getpid(), n++) < 0)
		abort();
	return s;
}

static int env_has_key(const char *entry, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
	return strncmp(entry, kv, klen) == 0 && entry[klen] == '=';
}

/* Build the child's environment: ours, minus keys overridden in `env`,
 * plus `env` (except "K=" removals), plus LD_PRELOAD for the hook (a new
 * string, returned in *preload for the caller to free). */
static char **child_env(const char *const env[], int hook, char **preload)
{
	size_t n = 0, extra = 0, k = 0;
	char **out;

	while (environ[n])
		n++;
	while (env && env[extra])
		extra++;
	out = calloc(n + extra + 2, sizeof *out);
	if (!out)
		abort();
	for (size_t i = 0; i < n; i++) {
		int drop = hook && strncmp(environ[i], "LD_PRELOAD=", 11) == 0;
		for (size_t j = 0; j < extra && !drop; j++)
			drop = env_has_key(environ[i], env[j]);
		if (!drop)
			out[k++] = environ[i];
	}
	for (size_t j = 0; j < extra; j++) {
		const char *eq = strchr(env[j], '=');
		if (eq && eq[1] == '\0')
			continue; /* "K=": removal only */
		out[k++] = (char *)env[j];
	}
	if (hook) {
		char *pre;
		const char *san = getenv("GP_SAN");
		const char *asan = "";
		char asan_path[512] = "";
		if (san && *san) {
			/* The ASan runtime must come first among preloads. */
			FILE *f = popen("gcc -print-file-name=libasan.so", "r");
			if (f && fgets(asan_path, sizeof asan_path, f))
				asan_path[strcspn(asan_path, "\n")] = '\0';
			if (f)
				pclose(f);
			asan = asan_path;
		}
		if (asprintf(&pre, "LD_PRELOAD=%s%s%s/libgpupool.so", asan, *asan ? " " : "",
			     gpt_build()) < 0)
			abort();
		out[k++] = *preload = pre;
	}
	out[k] = NULL;
	return out;
}

int gpt_spawn(struct gpt_proc *p, const char *const argv[], const char *const env[], int flags)
{
	int pipefd[2];
	char **envp, *preload = NULL;

	memset(p, 0, sizeof *p);
	p->pid = -1;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	envp = child_env(env, flags & GPT_HOOK, &preload);
	fflush(NULL);
	p->pid = fork();
	if (p->pid < 0) {
		int e = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		free(envp);
		free(preload);
		return -e;
	}
	if (p->pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		if (flags & GPT_STDERR)
			dup2(pipefd[1], STDERR_FILENO);
		execve(argv[0], (char *const *)argv, envp);
		fprintf(stderr, "libtest: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	free(envp);
	free(preload);
	close(pipefd[1]);
	p->out_fd = pipefd[0];
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Read available output, waiting at most `ms`.  Returns 0 on EOF. */
static int pump(struct gpt_proc *p, int ms)
{
	struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
	ssize_t n;

	if (p->out_fd < 0)
		return 0;
	if (poll(&pfd, 1, ms) <= 0)
		return 1;
	n = read(p->out_fd, p->out + p->out_len, sizeof p->out - 1 - p->out_len);
	if (n <= 0) {
		close(p->out_fd);
		p->out_fd = -1;
		return 0;
	}
	p->out_len += (size_t)n;
	p->out[p->out_len] = '\0';
	if (p->out_len == sizeof p->out - 1) { /* full: drop the oldest half */
		memmove(p->out, p->out + sizeof p->out / 2, p->out_len - sizeof p->out / 2);
		p->out_len -= sizeof p->out / 2;
		p->out[p->out_len] = '\0';
	}
	return 1;
}

int gpt_wait(struct gpt_proc *p, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;

	while (pump(p, 50)) {
		if (now_ms() > deadline)
			break;
	}
	for (;;) {
		pid_t r = waitpid(p->pid, &p->status, WNOHANG);
		if (r == p->pid)
			break;
		if (now_ms() > deadline) {
			fprintf(stderr, "libtest: pid %d overstayed %d ms; killing it\n",
				(int)p->pid, timeout_ms);
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &p->status, 0);
			if (p->out_fd >= 0)
				close(p->out_fd);
			p->out_fd = -1;
			return -1;
		}
		usleep(2000);
	}
	if (p->out_fd >= 0) /* the child is gone; drain what is left */
		while (pump(p, 0))
			;
	if (WIFEXITED(p->status))
		return WEXITSTATUS(p->status);
	return 128 + WTERMSIG(p->status);
}

int gpt_wait_for(struct gpt_proc *p, const char *key, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;

	while (!gpt_get(p, key)) {
		if (now_ms() > deadline || !pump(p, 20))
			return gpt_get(p, key) ? 0 : -1;
	}
	return 0;
}

int gpt_run(struct gpt_proc *p, const char *const argv[], const char *const env[],
	    int flags, int timeout_ms)
{
	int rc = gpt_spawn(p, argv, env, flags);
	return rc ? rc : gpt_wait(p, timeout_ms);
}

const char *gpt_get(const struct gpt_proc *p, const char *key)
{
	static char value[4096];
	size_t klen = strlen(key);
	const char *hit = NULL;

	for (const char *line = p->out; line && *line;) {
		const char *nl = strchr(line, '\n');
		if (!nl)
			break; /* an incomplete last line is not a report yet */
		if (strncmp(line, key, klen) == 0 && line[klen] == '=')
			hit = line;
		line = nl + 1;
	}
	if (!hit)
		return NULL;
	hit += klen + 1;
	size_t n = strcspn(hit, "\n");
	if (n >= sizeof value)
		n = sizeof value - 1;
	memcpy(value, hit, n);
	value[n] = '\0';
	return value;
}

uint64_t gpt_get_u64(const struct gpt_proc *p, const char *key)
{
	const char *v = gpt_get(p, key);
	char *end;
	unsigned long long x;

	if (!v)
		fail_msg("workload did not report %s; it printed:\n%s", key, p->out);
	x = strtoull(v, &end, 0);
	if (*end != '\0')
		fail_msg("%s=%s is not a number", key, v);
	return x;
}

int gpt_has(const struct gpt_proc *p, const char *needle)
{
	return strstr(p->out, needle) != NULL;
}
