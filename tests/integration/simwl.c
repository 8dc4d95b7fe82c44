/* simwl.c - a workload on the simulated driver, for the simulator's
 * multi-process tests (tests/integration/test_sim_*.c).
 *
 * Runs the commands given as arguments, in order, and reports what it saw
 * as "key=value" lines on stdout (flushed at once, so a test can read them
 * while the program still runs):
 *
 *   init                 cuInit, retain and bind device 0's primary context
 *                        (reports init=<CUresult>, count=, uuid<i>=, name<i>=)
 *   try-init             cuInit only; reports init=<CUresult> and count=
 *   alloc SIZE           cuMemAlloc; ptr=0x..., alloc=<CUresult>
 *   fill BYTE            memset the last allocation to BYTE
 *   free                 cuMemFree the last allocation
 *   info                 cuMemGetInfo: free=, total=
 *   spin US N            N spin_<US>us kernels on a new stream (async);
 *                        spun=N when enqueued
 *   spin-sync US N       N times: one spin_<US>us kernel, then synchronize
 *                        (so that several such processes interleave)
 *   spin-pipe US N       N spin_<US>us kernels, one always queued behind
 *                        the running one (waits for kernel k-1 after
 *                        launching k): interleaves with other processes
 *                        and keeps the device busy even when slow to run
 *   sync                 cuCtxSynchronize; synced=<CUresult>
 *   ipc-export           IPC handle of the last allocation: ipc=<hex>
 *   ipc-import HEX       open it: imported=<CUresult>, byte0=<first byte>
 *   vmm-export SIZE BYTE cuMemCreate (shareable as an fd), map, fill with
 *                        BYTE, export: vmmfd=<fd> pid=<pid>
 *   vmm-import PID FD    import /proc/PID/fd/FD, map, read: vmm=<CUresult>,
 *                        vbyte0=<first byte>
 *   fork-alloc           fork; the child tries cuMemAlloc: child=<CUresult>
 *   fork-init            fork; the child runs cuInit + cuMemAlloc:
 *                        child_init=<CUresult> child_alloc=<CUresult>
 *   nvml-init            nvmlInit_v2: nvml=<nvmlReturn_t>
 *   stderr               send stderr to stdout from here on (to check
 *                        messages)
 *   sleep MS             sleep
 *   hold                 report held=1 and sleep until killed (<= 60 s)
 *   device I             retain device I's primary context and make it
 *                        current; device=<CUresult>
 *   stdin                read further commands from stdin, one line at a
 *                        time (words separated by spaces); ok=<line number>
 *                        after each line, so a test can drive the program
 *                        step by step; ends at end of input
 */
#define __CUDA_API_VERSION_INTERNAL
#include <cuda.h>

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/nvml.h"
#include "common/parse.h"

static CUdeviceptr last;
static size_t last_size;
static CUcontext ctx;

static void report(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%s=", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* The spin_<us>us kernel of the simulator's module, and a stream for it. */
static void spin_kernel(const char *us, CUfunction *fn, CUstream *s)
{
	CUmodule mod;
	char name[64];

	snprintf(name, sizeof name, "spin_%sus", us);
	cuModuleLoadData(&mod, "sim");
	cuModuleGetFunction(fn, mod, name);
	cuStreamCreate(s, CU_STREAM_NON_BLOCKING);
}

static void msleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

static int cmd_init(void)
{
	CUresult rc = cuInit(0);
	int n = 0;

	report("init", "%d", (int)rc);
	if (rc)
		return 0;
	cuDeviceGetCount(&n);
	report("count", "%d", n);
	for (int i = 0; i < n; i++) {
		char name[128], key[32];
		CUuuid u;
		cuDeviceGetName(name, sizeof name, i);
		cuDeviceGetUuid_v2(&u, i);
		snprintf(key, sizeof key, "name%d", i);
		report(key, "%s", name);
		snprintf(key, sizeof key, "uuid%d", i);
		report(key, "%02x%02x%02x%02x", (unsigned char)u.bytes[0], (unsigned char)u.bytes[1],
		       (unsigned char)u.bytes[2], (unsigned char)u.bytes[3]);
	}
	if (cuDevicePrimaryCtxRetain(&ctx, 0) == CUDA_SUCCESS)
		cuCtxSetCurrent(ctx);
	return 0;
}

static int run(int argc, char **argv);

/* The stdin command: one line of commands at a time. */
static int run_stdin(void)
{
	char line[512];
	int n = 0;

	while (fgets(line, sizeof line, stdin)) {
		char *words[32], *save = NULL, *w;
		int nw = 0, rc;

		for (w = strtok_r(line, " \t\n", &save); w && nw < 32; w = strtok_r(NULL, " \t\n", &save))
			words[nw++] = w;
		rc = run(nw, words);
		if (rc)
			return rc;
		report("ok", "%d", ++n);
	}
	return 0;
}

/* Run the commands argv[0..argc). */
static int run(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *c = argv[i];
		uint64_t v;
		CUresult rc;

		if (!strcmp(c, "init")) {
			cmd_init();
		} else if (!strcmp(c, "try-init")) {
			int n = -1;
			rc = cuInit(0);
			report("init", "%d", (int)rc);
			if (cuDeviceGetCount(&n) == CUDA_SUCCESS)
				report("count", "%d", n);
		} else if (!strcmp(c, "alloc") && i + 1 < argc) {
			if (gp_parse_size(argv[++i], &v))
				return 2;
			rc = cuMemAlloc_v2(&last, (size_t)v);
			last_size = (size_t)v;
			report("alloc", "%d", (int)rc);
			report("ptr", "0x%llx", (unsigned long long)last);
		} else if (!strcmp(c, "fill") && i + 1 < argc) {
			rc = cuMemsetD8_v2(last, (unsigned char)atoi(argv[++i]), last_size);
			report("filled", "%d", (int)rc);
		} else if (!strcmp(c, "free")) {
			report("freed", "%d", (int)cuMemFree_v2(last));
		} else if (!strcmp(c, "info")) {
			size_t f = 0, t = 0;
			rc = cuMemGetInfo_v2(&f, &t);
			report("info", "%d", (int)rc);
			report("free", "%zu", f);
			report("total", "%zu", t);
		} else if (!strcmp(c, "spin") && i + 2 < argc) {
			CUfunction fn;
			CUstream s;
			int n;
			spin_kernel(argv[i + 1], &fn, &s);
			n = atoi(argv[i + 2]);
			i += 2;
			for (int k = 0; k < n; k++)
				if (cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL))
					return 3;
			report("spun", "%d", n);
		} else if (!strcmp(c, "spin-sync") && i + 2 < argc) {
			CUfunction fn;
			CUstream s;
			int n;
			spin_kernel(argv[i + 1], &fn, &s);
			n = atoi(argv[i + 2]);
			i += 2;
			report("spinning", "%d", n);
			for (int k = 0; k < n; k++)
				if (cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL) ||
				    cuStreamSynchronize(s))
					return 3;
			report("spun", "%d", n);
		} else if (!strcmp(c, "spin-pipe") && i + 2 < argc) {
			CUfunction fn;
			CUstream s;
			CUevent ev[2];
			int n;
			spin_kernel(argv[i + 1], &fn, &s);
			n = atoi(argv[i + 2]);
			i += 2;
			cuEventCreate(&ev[0], CU_EVENT_DISABLE_TIMING);
			cuEventCreate(&ev[1], CU_EVENT_DISABLE_TIMING);
			report("spinning", "%d", n);
			for (int k = 0; k < n; k++) {
				if (cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL) ||
				    cuEventRecord(ev[k % 2], s) ||
				    (k > 0 && cuEventSynchronize(ev[(k - 1) % 2])))
					return 3;
			}
			if (cuStreamSynchronize(s))
				return 3;
			report("spun", "%d", n);
		} else if (!strcmp(c, "nvml-init")) {
			report("nvml", "%d", (int)nvmlInit_v2());
		} else if (!strcmp(c, "stderr")) {
			dup2(STDOUT_FILENO, STDERR_FILENO);
		} else if (!strcmp(c, "sync")) {
			report("synced", "%d", (int)cuCtxSynchronize());
		} else if (!strcmp(c, "ipc-export")) {
			CUipcMemHandle h;
			char hex[2 * sizeof h + 1];
			rc = cuIpcGetMemHandle(&h, last);
			for (size_t k = 0; k < sizeof h; k++)
				snprintf(hex + 2 * k, 3, "%02x", (unsigned char)h.reserved[k]);
			report("ipcrc", "%d", (int)rc);
			report("ipc", "%s", hex);
		} else if (!strcmp(c, "ipc-import") && i + 1 < argc) {
			CUipcMemHandle h;
			const char *hex = argv[++i];
			CUdeviceptr p = 0;
			unsigned char b = 0;
			for (size_t k = 0; k < sizeof h && hex[2 * k]; k++) {
				unsigned x;
				sscanf(hex + 2 * k, "%2x", &x);
				h.reserved[k] = (char)x;
			}
			rc = cuIpcOpenMemHandle_v2(&p, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
			report("imported", "%d", (int)rc);
			if (!rc) {
				cuMemcpyDtoH_v2(&b, p, 1);
				report("byte0", "%u", b);
				last = p;
			}
		} else if (!strcmp(c, "ipc-close")) {
			report("closed", "%d", (int)cuIpcCloseMemHandle(last));
		} else if (!strcmp(c, "vmm-export") && i + 2 < argc) {
			CUmemAllocationProp prop;
			CUmemGenericAllocationHandle h;
			CUmemAccessDesc ad;
			CUdeviceptr va;
			int fd = -1;
			if (gp_parse_size(argv[++i], &v))
				return 2;
			memset(&prop, 0, sizeof prop);
			prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
			prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
			prop.location.id = 0;
			prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
			memset(&ad, 0, sizeof ad);
			ad.location = prop.location;
			ad.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
			rc = cuMemCreate(&h, v, &prop, 0);
			if (!rc)
				rc = cuMemAddressReserve(&va, v, 0, 0, 0);
			if (!rc)
				rc = cuMemMap(va, v, 0, h, 0);
			if (!rc)
				rc = cuMemSetAccess(va, v, &ad, 1);
			if (!rc)
				rc = cuMemsetD8_v2(va, (unsigned char)atoi(argv[++i]), v);
			if (!rc)
				rc = cuMemExportToShareableHandle(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
			report("vmmexp", "%d", (int)rc);
			report("vmmfd", "%d", fd);
			report("pid", "%d", (int)getpid());
		} else if (!strcmp(c, "vmm-import") && i + 2 < argc) {
			char path[64];
			CUmemGenericAllocationHandle h;
			CUmemAllocationProp prop;
			CUmemAccessDesc ad;
			CUdeviceptr va;
			unsigned char b = 0;
			int fd;
			snprintf(path, sizeof path, "/proc/%s/fd/%s", argv[i + 1], argv[i + 2]);
			i += 2;
			fd = open(path, O_RDWR);
			rc = cuMemImportFromShareableHandle(&h, (void *)(intptr_t)fd,
							    CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
			if (fd >= 0)
				close(fd);
			if (!rc)
				rc = cuMemGetAllocationPropertiesFromHandle(&prop, h);
			size_t sz = 2 << 20;
			memset(&ad, 0, sizeof ad);
			ad.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
			ad.location.id = 0;
			ad.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
			if (!rc)
				rc = cuMemAddressReserve(&va, sz, 0, 0, 0);
			if (!rc)
				rc = cuMemMap(va, sz, 0, h, 0);
			if (!rc)
				rc = cuMemSetAccess(va, sz, &ad, 1);
			if (!rc)
				rc = cuMemcpyDtoH_v2(&b, va, 1);
			report("vmm", "%d", (int)rc);
			report("vbyte0", "%u", b);
		} else if (!strcmp(c, "fork-alloc") || !strcmp(c, "fork-init")) {
			int p[2], st;
			pid_t pid;
			if (pipe(p))
				return 4;
			fflush(stdout);
			pid = fork();
			if (pid == 0) {
				CUdeviceptr d;
				int r[2];
				close(p[0]);
				r[0] = (int)cuInit(0);
				if (!strcmp(c, "fork-init") && r[0] == 0) {
					CUcontext cc;
					cuDevicePrimaryCtxRetain(&cc, 0);
					cuCtxSetCurrent(cc);
				}
				r[1] = (int)cuMemAlloc_v2(&d, 1 << 20);
				if (write(p[1], r, sizeof r) != (ssize_t)sizeof r)
					_exit(1);
				_exit(0);
			}
			close(p[1]);
			int r[2] = {-1, -1};
			if (read(p[0], r, sizeof r) != (ssize_t)sizeof r)
				r[0] = r[1] = -1;
			close(p[0]);
			waitpid(pid, &st, 0);
			if (!strcmp(c, "fork-alloc")) {
				report("child", "%d", r[1]);
			} else {
				report("child_init", "%d", r[0]);
				report("child_alloc", "%d", r[1]);
			}
		} else if (!strcmp(c, "sleep") && i + 1 < argc) {
			msleep(atol(argv[++i]));
		} else if (!strcmp(c, "hold")) {
			report("held", "1");
			for (int k = 0; k < 600; k++)
				msleep(100);
		} else if (!strcmp(c, "device") && i + 1 < argc) {
			CUcontext dctx;

			rc = cuDevicePrimaryCtxRetain(&dctx, atoi(argv[++i]));
			if (rc == CUDA_SUCCESS && (rc = cuCtxSetCurrent(dctx)) == CUDA_SUCCESS)
				ctx = dctx;
			report("device", "%d", (int)rc);
		} else if (!strcmp(c, "stdin")) {
			int r = run_stdin();

			if (r)
				return r;
		} else {
			fprintf(stderr, "simwl: unknown command '%s'\n", c);
			return 2;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	return run(argc - 1, argv + 1);
}
