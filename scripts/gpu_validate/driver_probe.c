/* driver_probe.c - what the CUDA driver API tells a program under gpupool.
 *
 * driver_check.py builds this with nvcc (or cc -lcuda) and runs it with and
 * without the library:
 *
 *   driver_probe OBS_FILE BUDGET_BYTES
 *
 * It observes, in the schema common.judge_budget() reads: cuMemGetInfo's
 * total and cuDeviceTotalMem; free memory around taking 3/4 of
 * BUDGET_BYTES, giving it back and taking it again; the result of taking
 * 5/4 of it (CUDA_ERROR_OUT_OF_MEMORY is what programs test for); and
 * whether a small allocation works after that.  It judges nothing.  The
 * JSON goes to OBS_FILE.tmp, then is renamed to OBS_FILE, so a reader never
 * sees half of it.  Exit status: 0 once written, 1 if it could not write,
 * 2 on bad arguments.
 */
#include <cuda.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes "key": value pairs after an opening brace, with the commas. */
struct json {
	FILE *f;
	int n;
};

static void jkey(struct json *j, const char *key)
{
	fprintf(j->f, "%s\"%s\": ", j->n++ ? ", " : "", key);
}

static void jstr(struct json *j, const char *key, const char *val)
{
	jkey(j, key);
	fputc('"', j->f);
	for (const char *p = val; *p; p++) {
		if (*p == '"' || *p == '\\')
			fputc('\\', j->f);
		if ((unsigned char)*p >= 0x20)
			fputc(*p, j->f);
	}
	fputc('"', j->f);
}

static void jnum(struct json *j, const char *key, unsigned long long val)
{
	jkey(j, key);
	fprintf(j->f, "%llu", val);
}

static void jbool(struct json *j, const char *key, int val)
{
	jkey(j, key);
	fputs(val ? "true" : "false", j->f);
}

/* Records "CALL: CUDA_ERROR_NAME (code)" or "ok" under key. */
static void jresult(struct json *j, const char *key, const char *call, CUresult rc)
{
	const char *name = NULL;
	char buf[160];

	if (rc == CUDA_SUCCESS) {
		jstr(j, key, "ok");
		return;
	}
	if (cuGetErrorName(rc, &name) != CUDA_SUCCESS || !name)
		name = "unknown CUresult";
	snprintf(buf, sizeof buf, "%s: %s (%d)", call, name, (int)rc);
	jstr(j, key, buf);
}

/* Whether libgpupool.so is mapped into this process. */
static int hooked(void)
{
	char line[4096];
	int found = 0;
	FILE *maps = fopen("/proc/self/maps", "r");

	if (!maps)
		return 0;
	while (!found && fgets(line, sizeof line, maps))
		found = strstr(line, "libgpupool.so") != NULL;
	fclose(maps);
	return found;
}

/* Allocates n bytes and writes them all, so that memory the driver never
 * backed faults here.  On failure nothing stays allocated, and *call names
 * the call that failed. */
static CUresult take(size_t n, CUdeviceptr *p, const char **call)
{
	CUresult rc;

	*call = "cuMemAlloc";
	rc = cuMemAlloc(p, n);
	if (rc != CUDA_SUCCESS)
		return rc;
	*call = "cuMemsetD8";
	rc = cuMemsetD8(*p, 1, n);
	if (rc == CUDA_SUCCESS) {
		*call = "cuCtxSynchronize";
		rc = cuCtxSynchronize();
	}
	if (rc != CUDA_SUCCESS)
		cuMemFree(*p);
	return rc;
}

/* A set-up call that must work for anything else to mean something. */
#define SETUP(call)                                             \
	do {                                                    \
		CUresult rc_ = (call);                          \
		if (rc_ != CUDA_SUCCESS) {                      \
			jresult(&j, "error", #call, rc_);       \
			goto out;                               \
		}                                               \
	} while (0)

int main(int argc, char **argv)
{
	struct json j = { NULL, 0 };
	char tmp[4096], name[256];
	unsigned long long budget;
	size_t total, props_total, free_mem, within, over;
	CUdevice dev;
	CUcontext ctx;
	CUdeviceptr p;
	CUresult rc;
	const char *call;
	char *end;
	int version;

	if (argc != 3) {
		fprintf(stderr, "usage: %s OBS_FILE BUDGET_BYTES\n", argv[0]);
		return 2;
	}
	errno = 0;
	budget = strtoull(argv[2], &end, 10);
	if (errno || *end || budget == 0) {
		fprintf(stderr, "%s: bad budget %s\n", argv[0], argv[2]);
		return 2;
	}
	within = budget * 3 / 4;
	over = budget * 5 / 4;
	snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
	j.f = fopen(tmp, "w");
	if (!j.f) {
		perror(tmp);
		return 1;
	}
	fputc('{', j.f);
	jnum(&j, "pid", (unsigned long long)getpid());
	jbool(&j, "hooked", hooked());

	SETUP(cuInit(0));
	SETUP(cuDriverGetVersion(&version));
	snprintf(name, sizeof name, "CUDA driver %d.%d", version / 1000,
		 version % 1000 / 10);
	jstr(&j, "version", name);
	SETUP(cuDeviceGet(&dev, 0));
	SETUP(cuDeviceGetName(name, sizeof name, dev));
	jstr(&j, "device", name);
	SETUP(cuDeviceTotalMem(&props_total, dev));
	jnum(&j, "props_total", props_total);
	SETUP(cuDevicePrimaryCtxRetain(&ctx, dev));
	SETUP(cuCtxSetCurrent(ctx));
	SETUP(cuMemGetInfo(&free_mem, &total));
	jnum(&j, "total", total);
	jnum(&j, "free_before", free_mem);

	rc = take(within, &p, &call);
	jresult(&j, "within", call, rc);
	if (rc == CUDA_SUCCESS) {
		SETUP(cuMemGetInfo(&free_mem, &total));
		jnum(&j, "free_during", free_mem);
		SETUP(cuMemFree(p));
		SETUP(cuMemGetInfo(&free_mem, &total));
		jnum(&j, "free_after", free_mem);
		rc = take(within, &p, &call);
		jresult(&j, "realloc", call, rc);
		if (rc == CUDA_SUCCESS)
			SETUP(cuMemFree(p));
	}

	rc = take(over, &p, &call);
	jresult(&j, "over", call, rc);
	jbool(&j, "over_is_oom", rc == CUDA_ERROR_OUT_OF_MEMORY);
	if (rc == CUDA_SUCCESS)
		SETUP(cuMemFree(p));

	rc = take(1 << 20, &p, &call);
	jresult(&j, "after_oom", call, rc);
	if (rc == CUDA_SUCCESS)
		SETUP(cuMemFree(p));
out:
	fputs("}\n", j.f);
	if (fclose(j.f) != 0 || rename(tmp, argv[1]) != 0) {
		perror(argv[1]);
		return 1;
	}
	return 0;
}
