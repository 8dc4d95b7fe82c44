/* libcu.c - see libcu.h. */
#include "integration/libcu.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const CUmemAllocationProp cu_vmm_prop0 = {
	.type = CU_MEM_ALLOCATION_TYPE_PINNED,
	.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
};

void gpt_child_dispatch(int argc, char **argv, const struct gpt_child *table)
{
	sigset_t set;

	if (argc < 3 || strcmp(argv[1], "--child") != 0)
		return;
	/* Blocked from the start, so a "go" sent early is not lost. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (const struct gpt_child *c = table; c->name; c++)
		if (strcmp(c->name, argv[2]) == 0)
			exit(c->fn(argc - 3, argv + 3));
	fprintf(stderr, "no child scenario %s\n", argv[2]);
	exit(98);
}

int gpt_spawn_child(struct gpt_proc *p, const char *name, const char *const args[],
		    const char *const env[], int flags)
{
	const char *argv[32] = {"/proc/self/exe", "--child", name};
	size_t n = 3;

	for (size_t i = 0; args && args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return gpt_spawn(p, argv, env, flags);
}

void gpt_run_child(struct gpt_proc *p, const char *name, const char *const args[],
		   const char *const env[], int flags)
{
	int rc;

	assert_int_equal(gpt_spawn_child(p, name, args, env, flags), 0);
	rc = gpt_wait(p, 60000);
	if (rc != 0)
		fail_msg("child %s exited %d; it printed:\n%s", name, rc, p->out);
}

const char *gpt_env_state(void)
{
	static char buf[512];
	char *path = gpt_tmp_path("sim-state");

	snprintf(buf, sizeof buf, "GPUPOOL_SIM_STATE=%s", path);
	free(path);
	return buf;
}

const char *gpt_env_region(void)
{
	static char buf[512];
	char *path = gpt_tmp_path("region");

	snprintf(buf, sizeof buf, "GPUPOOL_REGION=%s", path);
	free(path);
	return buf;
}

void out(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%s=", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void cu_ok(CUresult rc, const char *what)
{
	const char *name = NULL;

	if (rc == CUDA_SUCCESS)
		return;
	cuGetErrorName(rc, &name);
	fprintf(stderr, "%s failed: %d (%s)\n", what, (int)rc, name ? name : "?");
	out("failed", "%s:%d", what, (int)rc);
	exit(99);
}

void cu_setup(int dev)
{
	CUcontext ctx;

	cu_ok(cuInit(0), "cuInit");
	cu_ok(cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
	cu_ok(cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
}

void out_meminfo(const char *prefix)
{
	size_t f, t;
	char k[64];

	cu_ok(cuMemGetInfo_v2(&f, &t), "cuMemGetInfo");
	snprintf(k, sizeof k, "%s_free", prefix);
	out(k, "%zu", f);
	snprintf(k, sizeof k, "%s_total", prefix);
	out(k, "%zu", t);
}

void out_free(const char *key)
{
	size_t f, t;

	cu_ok(cuMemGetInfo_v2(&f, &t), "cuMemGetInfo");
	out(key, "%zu", f);
}

size_t cu_charged(void)
{
	size_t f, t;

	cu_ok(cuMemGetInfo_v2(&f, &t), "cuMemGetInfo");
	return t - f;
}

nvmlDevice_t out_nvml_memory(unsigned dev, const char *v1, const char *v2)
{
	nvmlDevice_t h;
	nvmlMemory_t m;
	nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
	char k[64];

	if (nvmlInit_v2() || nvmlDeviceGetHandleByIndex_v2(dev, &h) ||
	    nvmlDeviceGetMemoryInfo(h, &m) || nvmlDeviceGetMemoryInfo_v2(h, &m2))
		exit(96);
#define OUT(prefix, key, v)                                                        \
	do {                                                                       \
		snprintf(k, sizeof k, "%s_%s", prefix, key);                       \
		out(k, "%llu", (unsigned long long)(v));                           \
	} while (0)
	OUT(v1, "total", m.total);
	OUT(v1, "used", m.used);
	OUT(v1, "free", m.free);
	OUT(v2, "total", m2.total);
	OUT(v2, "reserved", m2.reserved);
	OUT(v2, "used", m2.used);
	OUT(v2, "free", m2.free);
#undef OUT
	return h;
}

void child_wait_go(void)
{
	sigset_t set;
	struct timespec limit = {.tv_sec = 30};

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigtimedwait(&set, NULL, &limit) != SIGUSR1) {
		fprintf(stderr, "child: no go signal in 30 s\n");
		exit(97);
	}
}

void gpt_go(const struct gpt_proc *p)
{
	kill(p->pid, SIGUSR1);
}
