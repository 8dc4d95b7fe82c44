/* test_sim_device.c - the simulated machine as CUDA sees it: cuInit and
 * its errors, enumeration, identity (names, UUIDs, PCI), the attribute
 * table, CUDA_VISIBLE_DEVICES, bad GPUPOOL_SIM_GPUS and a state file of
 * another configuration, and the error-name table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#include "common/nvml.h"
#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)

static const char *gpus = "H100-SXM-80GB:80GiB:132,A100-40GB:40GiB:108,L4:24GiB:58,T4:16GiB:40";
static char *state;

/* Run simwl with `env` and the commands in argv (NULL-terminated). */
static void simwl(struct gpt_proc *p, const char *const env[], const char *const cmds[])
{
	const char *argv[16];
	char *path = gpt_build_path("tests/integration/simwl");
	int n = 0;

	argv[n++] = path;
	for (int i = 0; cmds[i] && n < 15; i++)
		argv[n++] = cmds[i];
	argv[n] = NULL;
	assert_int_equal(gpt_run(p, argv, env, 0, 20000), 0);
	free(path);
}

/* UUID string of machine GPU i, from NVML (which ignores visibility). */
static void uuid_of(unsigned i, char *buf, size_t n)
{
	nvmlDevice_t d;

	assert_int_equal(nvmlDeviceGetHandleByIndex_v2(i, &d), NVML_SUCCESS);
	assert_int_equal(nvmlDeviceGetUUID(d, buf, (unsigned)n), NVML_SUCCESS);
}

/* Runs first: nothing works before cuInit, then cuInit checks its flags. */
static void test_before_init(void **st)
{
	int n, v;
	const char *s;

	(void)st;
	assert_int_equal(cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
	assert_int_equal(cuCtxSetCurrent(NULL), CUDA_ERROR_NOT_INITIALIZED);
	CU(cuDriverGetVersion(&v));
	assert_int_equal(v, CUDA_VERSION);
	CU(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s));
	assert_string_equal(s, "CUDA_ERROR_OUT_OF_MEMORY");
	assert_int_equal(cuInit(1), CUDA_ERROR_INVALID_VALUE);
	CU(cuInit(0));
	CU(cuInit(0)); /* idempotent */
	assert_int_equal(nvmlInit_v2(), NVML_SUCCESS);
}

static void test_enumeration(void **st)
{
	static const struct {
		const char *name;
		size_t mem;
		int sms, major, minor;
	} want[] = {
		{"NVIDIA H100-SXM-80GB", 80ull << 30, 132, 9, 0},
		{"NVIDIA A100-40GB", 40ull << 30, 108, 8, 0},
		{"NVIDIA L4", 24ull << 30, 58, 8, 9},
		{"NVIDIA T4", 16ull << 30, 40, 7, 5},
	};
	char name[64], bus[32], nvuuid[96], cuuuid[64];
	int n, v;
	size_t mem;
	CUdevice d, back;
	CUuuid u;

	(void)st;
	CU(cuDeviceGetCount(&n));
	assert_int_equal(n, 4);
	for (int i = 0; i < n; i++) {
		CU(cuDeviceGet(&d, i));
		CU(cuDeviceGetName(name, sizeof name, d));
		assert_string_equal(name, want[i].name);
		CU(cuDeviceTotalMem(&mem, d));
		assert_int_equal(mem, want[i].mem);
		CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d));
		assert_int_equal(v, want[i].sms);
		CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d));
		assert_int_equal(v, want[i].major);
		CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d));
		assert_int_equal(v, want[i].minor);
		/* The UUID bytes are NVML's "GPU-..." string. */
		CU(cuDeviceGetUuid(&u, d));
		snprintf(cuuuid, sizeof cuuuid,
			 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 (unsigned char)u.bytes[0], (unsigned char)u.bytes[1], (unsigned char)u.bytes[2],
			 (unsigned char)u.bytes[3], (unsigned char)u.bytes[4], (unsigned char)u.bytes[5],
			 (unsigned char)u.bytes[6], (unsigned char)u.bytes[7], (unsigned char)u.bytes[8],
			 (unsigned char)u.bytes[9], (unsigned char)u.bytes[10], (unsigned char)u.bytes[11],
			 (unsigned char)u.bytes[12], (unsigned char)u.bytes[13], (unsigned char)u.bytes[14],
			 (unsigned char)u.bytes[15]);
		uuid_of((unsigned)i, nvuuid, sizeof nvuuid);
		assert_string_equal(cuuuid, nvuuid);
		assert_int_equal(strlen(nvuuid), 40);
		/* PCI address round trip. */
		CU(cuDeviceGetPCIBusId(bus, sizeof bus, d));
		assert_int_equal(strlen(bus), 12);
		CU(cuDeviceGetByPCIBusId(&back, bus));
		assert_int_equal(back, d);
	}
	/* Distinct UUIDs. */
	for (unsigned i = 0; i < 4; i++)
		for (unsigned j = i + 1; j < 4; j++) {
			char a[96], b[96];
			uuid_of(i, a, sizeof a);
			uuid_of(j, b, sizeof b);
			assert_string_not_equal(a, b);
		}
	assert_int_equal(cuDeviceGet(&d, 4), CUDA_ERROR_INVALID_DEVICE);
	assert_int_equal(cuDeviceGet(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuDeviceGetName(name, sizeof name, 9), CUDA_ERROR_INVALID_DEVICE);
	assert_int_equal(cuDeviceGetByPCIBusId(&d, "0000:99:00.0"), CUDA_ERROR_INVALID_DEVICE);
	assert_int_equal(cuDeviceGetByPCIBusId(&d, "not a bus"), CUDA_ERROR_INVALID_VALUE);
	/* A short buffer gets a truncated, terminated name. */
	CU(cuDeviceGetName(name, 8, 0));
	assert_string_equal(name, "NVIDIA ");
}

/* Every attribute the header knows has a value; plausible ones check out. */
static void test_attributes(void **st)
{
	int v, tpb, bx, sms;

	(void)st;
	for (int a = 1; a < CU_DEVICE_ATTRIBUTE_MAX; a++)
		assert_int_equal(cuDeviceGetAttribute(&v, (CUdevice_attribute)a, 0), CUDA_SUCCESS);
	CU(cuDeviceGetAttribute(&tpb, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 0));
	CU(cuDeviceGetAttribute(&bx, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, 0));
	assert_int_equal(tpb, 1024);
	assert_int_equal(bx, 1024);
	CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_WARP_SIZE, 0));
	assert_int_equal(v, 32);
	CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, 0));
	assert_int_equal(v, 1);
	CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0));
	assert_int_equal(v, 1);
	CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, 0));
	assert_int_equal(v, 1);
	CU(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 3));
	assert_int_equal(sms, 40);
	CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, 1));
	assert_true(v > 0 && v < 256);
	assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MAX, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuDeviceGetAttribute(&v, (CUdevice_attribute)0, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuDeviceGetAttribute(NULL, CU_DEVICE_ATTRIBUTE_WARP_SIZE, 0),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_WARP_SIZE, -1),
			 CUDA_ERROR_INVALID_DEVICE);
	CU(cuDeviceCanAccessPeer(&v, 0, 1));
	assert_int_equal(v, 1);
	CU(cuDeviceCanAccessPeer(&v, 1, 1));
	assert_int_equal(v, 0);
}

/* Run simwl under CUDA_VISIBLE_DEVICES=vis: the number it sees and the
 * first 8 hex digits of its device 0's UUID ("" when none). */
static int visible(const char *vis, char *uuid0, size_t n)
{
	char env[256];
	const char *e[] = {env, NULL};
	const char *cmds[] = {"init", NULL};
	struct gpt_proc p;
	const char *v;

	snprintf(env, sizeof env, "CUDA_VISIBLE_DEVICES=%s", vis);
	simwl(&p, e, cmds);
	if (gpt_get_u64(&p, "init") != 0)
		return -(int)gpt_get_u64(&p, "init");
	v = gpt_get(&p, "uuid0");
	snprintf(uuid0, n, "%s", v ? v : "");
	return (int)gpt_get_u64(&p, "count");
}

static void test_visible_devices(void **st)
{
	char u[4][96], got[32], pre[32], arg[128];

	(void)st;
	for (unsigned i = 0; i < 4; i++)
		uuid_of(i, u[i], sizeof u[i]);
	assert_int_equal(visible("2,0", got, sizeof got), 2);
	assert_memory_equal(got, u[2] + 4, 8);
	assert_int_equal(visible("3", got, sizeof got), 1);
	assert_memory_equal(got, u[3] + 4, 8);
	/* A full UUID, then a unique prefix of one. */
	snprintf(arg, sizeof arg, "%s,0", u[1]);
	assert_int_equal(visible(arg, got, sizeof got), 2);
	assert_memory_equal(got, u[1] + 4, 8);
	/* The shortest prefix that names device 3 alone. */
	for (size_t len = 5; len <= strlen(u[3]); len++) {
		int unique = 1;
		for (unsigned j = 0; j < 3; j++)
			unique &= strncmp(u[j], u[3], len) != 0;
		if (unique) {
			snprintf(pre, sizeof pre, "%.*s", (int)len, u[3]);
			break;
		}
	}
	assert_int_equal(visible(pre, got, sizeof got), 1);
	assert_memory_equal(got, u[3] + 4, 8);
	/* Enumeration stops at the first invalid or repeated entry. */
	assert_int_equal(visible("1,7,2", got, sizeof got), 1);
	assert_int_equal(visible("1,2,1,3", got, sizeof got), 2);
	assert_int_equal(visible("0,GPU-nonsense,1", got, sizeof got), 1);
	/* Nothing visible: cuInit says so. */
	/* (libtest treats "K=" as removing K, so a blank stands for empty.) */
	assert_int_equal(visible(" ", got, sizeof got), -CUDA_ERROR_NO_DEVICE);
	assert_int_equal(visible("-1", got, sizeof got), -CUDA_ERROR_NO_DEVICE);
	assert_int_equal(visible("GPU-", got, sizeof got), -CUDA_ERROR_NO_DEVICE); /* ambiguous */
	assert_int_equal(visible("MIG-0", got, sizeof got), -CUDA_ERROR_NO_DEVICE);
}

/* A bad GPUPOOL_SIM_GPUS fails cuInit and nvmlInit, naming the item. */
static void test_bad_config(void **st)
{
	static const struct {
		const char *gpus, *needle;
	} bad[] = {
		{"H100:80GiB", "'H100:80GiB'"},
		{"H100:80GiB:132,A100:forty:108", "'A100:forty:108'"},
		{"H100:80GiB:0", "'H100:80GiB:0'"},
		{"H100:1MiB:10", "'H100:1MiB:10'"},
		{" ", "empty item"},
		{"H1@0:80GiB:132", "character '@'"},
	};

	(void)st;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char env[128];
		const char *e[] = {env, "GPUPOOL_SIM_STATE=", NULL};
		const char *cmds[] = {"stderr", "try-init", "nvml-init", NULL};
		struct gpt_proc p;

		snprintf(env, sizeof env, "GPUPOOL_SIM_GPUS=%s", bad[i].gpus);
		simwl(&p, e, cmds);
		assert_int_equal(gpt_get_u64(&p, "init"), CUDA_ERROR_INVALID_VALUE);
		assert_int_not_equal(gpt_get_u64(&p, "nvml"), NVML_SUCCESS);
		if (!gpt_has(&p, bad[i].needle))
			fail_msg("no '%s' in: %s", bad[i].needle, p.out);
	}
}

/* A state file made for other GPUs is refused with a clear message; the
 * same configuration shares the machine. */
static void test_state_mismatch(void **st)
{
	char env[512];
	const char *e[] = {"GPUPOOL_SIM_GPUS=T4:16GiB:40", env, NULL};
	const char *same[] = {env, NULL};
	const char *cmds[] = {"stderr", "try-init", NULL};
	struct gpt_proc p;

	(void)st;
	snprintf(env, sizeof env, "GPUPOOL_SIM_STATE=%s", state);
	simwl(&p, e, cmds);
	assert_int_equal(gpt_get_u64(&p, "init"), CUDA_ERROR_INVALID_VALUE);
	assert_true(gpt_has(&p, "describes GPUs"));
	simwl(&p, same, cmds);
	assert_int_equal(gpt_get_u64(&p, "init"), CUDA_SUCCESS);
	assert_int_equal(gpt_get_u64(&p, "count"), 4);
}

static void test_error_names(void **st)
{
	const char *s;

	(void)st;
	CU(cuGetErrorName(CUDA_SUCCESS, &s));
	assert_string_equal(s, "CUDA_SUCCESS");
	CU(cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s));
	assert_string_equal(s, "out of memory");
	CU(cuGetErrorName(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, &s));
	assert_string_equal(s, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED");
	CU(cuGetErrorString(CUDA_ERROR_INVALID_VALUE, &s));
	assert_string_equal(s, "invalid argument");
	/* Every defined code from 0 to 999 that has a name has a string. */
	for (int c = 0; c <= 999; c++) {
		const char *a, *b;
		CUresult r1 = cuGetErrorName((CUresult)c, &a), r2 = cuGetErrorString((CUresult)c, &b);
		assert_int_equal(r1, r2);
		if (r1 == CUDA_SUCCESS)
			assert_true(strncmp(a, "CUDA_", 5) == 0 && b && *b);
		else
			assert_null(a);
	}
	assert_int_equal(cuGetErrorName((CUresult)12345, &s), CUDA_ERROR_INVALID_VALUE);
	assert_null(s);
	assert_int_equal(cuGetErrorString(CUDA_SUCCESS, NULL), CUDA_ERROR_INVALID_VALUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_before_init),
		cmocka_unit_test(test_enumeration),
		cmocka_unit_test(test_attributes),
		cmocka_unit_test(test_visible_devices),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_state_mismatch),
		cmocka_unit_test(test_error_names),
	};
	int rc;

	state = gpt_tmp_path("state");
	setenv("GPUPOOL_SIM_GPUS", gpus, 1);
	setenv("GPUPOOL_SIM_STATE", state, 1);
	unsetenv("CUDA_VISIBLE_DEVICES");
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	nvmlShutdown();
	free(state);
	return rc;
}
