/* test_sim_share.c - a VMM allocation shared between processes through a
 * file descriptor stays charged to its exporter (its per-process usage in
 * NVML and the device's used memory) for as long as any process holds it
 * -- by handle or by mapping, exporter or importer -- and is never charged
 * to an importer.  This test process only watches, through NVML, two
 * others: an exporter and an importer, letting go in either order, or
 * dying.
 *
 * The program is its own workloads: "--child export" and "--child import". */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/nvml.h"
#include "integration/libcu.h"

#define SIZE (64 * MiB)
#define BYTE 77

static nvmlDevice_t dev;
static struct gpt_proc exporter, importer, late;

/* --- the workloads ------------------------------------------------------ */

static CUmemAccessDesc rw_access(void)
{
	CUmemAccessDesc a;

	memset(&a, 0, sizeof a);
	a.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	a.location.id = 0;
	a.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	return a;
}

/* Sleep until killed (60 s at most: never linger). */
static int hold(void)
{
	sleep(60);
	return 0;
}

/* Create SIZE bytes shareable as a file descriptor, map them, fill them
 * with BYTE and export them (fd=, exported=1).  On go: unmap and release
 * everything (released=1), then hold. */
static int child_export(int argc, char **argv)
{
	CUmemAllocationProp prop;
	CUmemAccessDesc rw = rw_access();
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;
	int fd = -1;

	(void)argc;
	(void)argv;
	cu_setup(0);
	memset(&prop, 0, sizeof prop);
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location = rw.location;
	prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
	cu_ok(cuMemCreate(&h, SIZE, &prop, 0), "cuMemCreate");
	cu_ok(cuMemAddressReserve(&va, SIZE, 0, 0, 0), "cuMemAddressReserve");
	cu_ok(cuMemMap(va, SIZE, 0, h, 0), "cuMemMap");
	cu_ok(cuMemSetAccess(va, SIZE, &rw, 1), "cuMemSetAccess");
	cu_ok(cuMemsetD8_v2(va, BYTE, SIZE), "cuMemsetD8");
	cu_ok(cuMemExportToShareableHandle(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
	      "cuMemExportToShareableHandle");
	out("fd", "%d", fd);
	out("exported", "1");
	child_wait_go();
	cu_ok(cuMemUnmap(va, SIZE), "cuMemUnmap");
	cu_ok(cuMemAddressFree(va, SIZE), "cuMemAddressFree");
	cu_ok(cuMemRelease(h), "cuMemRelease");
	out("released", "1");
	return hold(); /* the exported descriptor stays open */
}

/* Import /proc/PID/fd/FD (import=<CUresult>); if that worked, map it and
 * read its first byte (byte=), imported=1.  On go: read again (byte2=),
 * unmap and release (released=1), then hold. */
static int child_import(int argc, char **argv)
{
	CUmemAccessDesc rw = rw_access();
	CUmemGenericAllocationHandle h;
	CUdeviceptr va;
	unsigned char b = 0;
	char path[64];
	CUresult rc;
	int fd;

	if (argc < 2)
		return 2;
	cu_setup(0);
	snprintf(path, sizeof path, "/proc/%s/fd/%s", argv[0], argv[1]);
	fd = open(path, O_RDWR | O_CLOEXEC);
	rc = cuMemImportFromShareableHandle(&h, (void *)(intptr_t)fd,
					    CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
	if (fd >= 0)
		close(fd);
	out("import", "%d", (int)rc);
	if (rc)
		return hold();
	cu_ok(cuMemAddressReserve(&va, SIZE, 0, 0, 0), "cuMemAddressReserve");
	cu_ok(cuMemMap(va, SIZE, 0, h, 0), "cuMemMap");
	cu_ok(cuMemSetAccess(va, SIZE, &rw, 1), "cuMemSetAccess");
	cu_ok(cuMemcpyDtoH_v2(&b, va + SIZE - 1, 1), "cuMemcpyDtoH");
	out("byte", "%u", b);
	out("imported", "1");
	child_wait_go();
	cu_ok(cuMemcpyDtoH_v2(&b, va, 1), "cuMemcpyDtoH");
	out("byte2", "%u", b);
	cu_ok(cuMemRelease(h), "cuMemRelease"); /* still mapped: lives on */
	cu_ok(cuMemUnmap(va, SIZE), "cuMemUnmap");
	cu_ok(cuMemAddressFree(va, SIZE), "cuMemAddressFree");
	out("released", "1");
	return hold();
}

/* --- the observer ------------------------------------------------------- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* NVML's usage of pid on device 0; -1 if it is not listed. */
static long long usage_of(int pid)
{
	nvmlProcessInfo_t p[16];
	unsigned n = 16;

	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(dev, &n, p), NVML_SUCCESS);
	for (unsigned i = 0; i < n; i++)
		if ((int)p[i].pid == pid)
			return (long long)p[i].usedGpuMemory;
	return -1;
}

/* NVML's used memory of device 0 (the driver reservation excluded). */
static unsigned long long dev_used(void)
{
	nvmlMemory_v2_t m = {.version = nvmlMemory_v2};

	assert_int_equal(nvmlDeviceGetMemoryInfo_v2(dev, &m), NVML_SUCCESS);
	return m.used;
}

/* Wait (3 s at most) until pid is no longer listed: it died and has been
 * reclaimed. */
static void wait_unlisted(int pid)
{
	double end = now_ms() + 3000;

	while (usage_of(pid) >= 0) {
		if (now_ms() > end)
			fail_msg("process %d is still listed 3 s after its death", pid);
		usleep(10000);
	}
}

static void kill_one(struct gpt_proc *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGKILL);
	gpt_wait(p, 5000);
	p->pid = 0;
}

static int kill_children(void **st)
{
	(void)st;
	kill_one(&exporter);
	kill_one(&importer);
	kill_one(&late);
	return 0;
}

/* Start an exporter and an importer of its allocation; check that the
 * importer sees the bytes and that only the exporter is charged. */
static void start_pair(void)
{
	char pid[16], fd[16];
	const char *args[] = {pid, fd, NULL};

	assert_int_equal(gpt_spawn_child(&exporter, "export", NULL, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(&exporter, "exported", 20000), 0);
	snprintf(pid, sizeof pid, "%d", (int)exporter.pid);
	snprintf(fd, sizeof fd, "%s", gpt_get(&exporter, "fd"));
	assert_int_equal(gpt_spawn_child(&importer, "import", args, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(&importer, "imported", 20000), 0);
	assert_int_equal(gpt_get_u64(&importer, "byte"), BYTE);
	assert_int_equal(usage_of(exporter.pid), SIM_CTX_H100 + SIZE);
	assert_int_equal(usage_of(importer.pid), SIM_CTX_H100);
}

/* (a) The exporter lets go first: still charged to it while the importer
 * holds the memory; then (b) the importer lets go: freed.  Importing it
 * afterwards fails. */
static void test_exporter_first(void **st)
{
	char pid[16], fd[16];
	const char *args[] = {pid, fd, NULL};
	unsigned long long used;

	(void)st;
	start_pair();
	used = dev_used();
	gpt_go(&exporter);
	assert_int_equal(gpt_wait_for(&exporter, "released", 5000), 0);
	assert_int_equal(usage_of(exporter.pid), SIM_CTX_H100 + SIZE);
	assert_int_equal(usage_of(importer.pid), SIM_CTX_H100);
	assert_int_equal(dev_used(), used);
	gpt_go(&importer);
	assert_int_equal(gpt_wait_for(&importer, "released", 5000), 0);
	assert_int_equal(gpt_get_u64(&importer, "byte2"), BYTE);
	assert_int_equal(usage_of(exporter.pid), SIM_CTX_H100);
	assert_int_equal(usage_of(importer.pid), SIM_CTX_H100);
	assert_int_equal(dev_used(), used - SIZE);
	/* Freed: its descriptor (still open in the exporter) names nothing. */
	snprintf(pid, sizeof pid, "%d", (int)exporter.pid);
	snprintf(fd, sizeof fd, "%s", gpt_get(&exporter, "fd"));
	assert_int_equal(gpt_spawn_child(&late, "import", args, NULL, 0), 0);
	assert_int_equal(gpt_wait_for(&late, "import", 20000), 0);
	assert_int_equal(gpt_get_u64(&late, "import"), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(dev_used(), used - SIZE + SIM_CTX_H100);
}

/* (b) The importer lets go first: nothing changes; then the exporter:
 * freed. */
static void test_importer_first(void **st)
{
	unsigned long long used;

	(void)st;
	start_pair();
	used = dev_used();
	gpt_go(&importer);
	assert_int_equal(gpt_wait_for(&importer, "released", 5000), 0);
	assert_int_equal(usage_of(exporter.pid), SIM_CTX_H100 + SIZE);
	assert_int_equal(usage_of(importer.pid), SIM_CTX_H100);
	assert_int_equal(dev_used(), used);
	gpt_go(&exporter);
	assert_int_equal(gpt_wait_for(&exporter, "released", 5000), 0);
	assert_int_equal(usage_of(exporter.pid), SIM_CTX_H100);
	assert_int_equal(dev_used(), used - SIZE);
}

/* (c) The exporter dies while the importer maps the memory: it comes back
 * with the exporter's slot, as with legacy IPC; the importer keeps its
 * bytes, is still not charged, and letting go later gives back nothing
 * twice. */
static void test_exporter_dies(void **st)
{
	unsigned long long used;
	int pid;

	(void)st;
	start_pair();
	used = dev_used();
	pid = (int)exporter.pid;
	kill_one(&exporter);
	wait_unlisted(pid);
	assert_int_equal(dev_used(), used - SIZE - SIM_CTX_H100);
	assert_int_equal(usage_of(importer.pid), SIM_CTX_H100);
	gpt_go(&importer);
	assert_int_equal(gpt_wait_for(&importer, "released", 5000), 0);
	assert_int_equal(gpt_get_u64(&importer, "byte2"), BYTE);
	assert_int_equal(usage_of(importer.pid), SIM_CTX_H100);
	assert_int_equal(dev_used(), used - SIZE - SIM_CTX_H100);
}

/* (d) The importer dies holding the memory after the exporter let go:
 * the exporter is relieved of the charge once the importer is reclaimed. */
static void test_importer_dies(void **st)
{
	unsigned long long used;
	int pid;

	(void)st;
	start_pair();
	used = dev_used();
	gpt_go(&exporter);
	assert_int_equal(gpt_wait_for(&exporter, "released", 5000), 0);
	assert_int_equal(usage_of(exporter.pid), SIM_CTX_H100 + SIZE);
	pid = (int)importer.pid;
	kill_one(&importer);
	wait_unlisted(pid);
	assert_int_equal(usage_of(exporter.pid), SIM_CTX_H100);
	assert_int_equal(dev_used(), used - SIZE - SIM_CTX_H100);
}

static int setup(void **st)
{
	(void)st;
	return nvmlInit_v2() || nvmlDeviceGetHandleByIndex_v2(0, &dev) ? -1 : 0;
}

static int teardown(void **st)
{
	(void)st;
	return nvmlShutdown() ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const struct gpt_child children[] = {
		{"export", child_export},
		{"import", child_import},
		{NULL, NULL},
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_exporter_first, kill_children),
		cmocka_unit_test_teardown(test_importer_first, kill_children),
		cmocka_unit_test_teardown(test_exporter_dies, kill_children),
		cmocka_unit_test_teardown(test_importer_dies, kill_children),
	};
	char *state;
	int rc;

	gpt_child_dispatch(argc, argv, children);
	state = gpt_tmp_path("state");
	unsetenv("GPUPOOL_SIM_GPUS");
	unsetenv("CUDA_VISIBLE_DEVICES");
	setenv("GPUPOOL_SIM_STATE", state, 1);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	free(state);
	return rc;
}
