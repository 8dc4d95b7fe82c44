/* test_sim_health.c - what a node agent discovers through the simulated
 * NVML, and the faults tests inject with gpupool-simctl: NUMA nodes and
 * PCIe topology, NVLinks to NVSwitches, Xid and ECC events delivered
 * across processes (only to the sets and devices registered for them),
 * ECC counters, a GPU fallen off the bus and back, simctl's usage errors.
 *
 * Every test runs on one shared machine (a state file): faults must be
 * seen by the real simctl program and by child processes.  Each test
 * leaves no GPU lost, and reads counters relative to where they were.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "integration/libcu.h"

#define NV(x) assert_int_equal((x), NVML_SUCCESS)
#define GPUS "H100-SXM-80GB:80GiB:132,H100-SXM-80GB:80GiB:132,A100-PCIE-40GB:40GiB:108,L4:24GiB:58"
#define NO_MIG 0xFFFFFFFFu
#define XID nvmlEventTypeXidCriticalError
#define SBE nvmlEventTypeSingleBitEccError
#define DBE nvmlEventTypeDoubleBitEccError

static char *simctl_path;

/* Run gpupool-simctl with up to four arguments (NULL-terminated) and the
 * extra environment `env`; returns its exit code, its stderr in p->out. */
static int simctl_env(struct gpt_proc *p, const char *const env[], const char *a,
		      const char *b, const char *c, const char *d)
{
	const char *argv[] = {simctl_path, a, b, c, d, NULL};

	return gpt_run(p, argv, env, GPT_STDERR, 10000);
}

/* Run gpupool-simctl on the test's machine; fails the test unless it
 * exits 0. */
static void simctl(const char *a, const char *b, const char *c, const char *d)
{
	struct gpt_proc p;
	int rc = simctl_env(&p, NULL, a, b, c, d);

	if (rc != 0)
		fail_msg("gpupool-simctl %s %s exited %d:\n%s", a, b ? b : "", rc, p.out);
}

static nvmlDevice_t dev(unsigned i)
{
	nvmlDevice_t d;

	NV(nvmlDeviceGetHandleByIndex_v2(i, &d));
	return d;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- child scenarios ------------------------------------------------------ */

/* Topology of another machine (GPUPOOL_SIM_GPUS from the test, a private
 * machine): every GPU's NUMA node and NVLink count, every pair's level. */
static int child_topology(int argc, char **argv)
{
	unsigned n;
	char key[32];

	(void)argc;
	(void)argv;
	if (nvmlInit_v2() || nvmlDeviceGetCount_v2(&n))
		return 96;
	out("n", "%u", n);
	for (unsigned i = 0; i < n; i++) {
		nvmlDevice_t a, b;
		unsigned node, links = 0;
		nvmlEnableState_t on;
		nvmlGpuTopologyLevel_t lvl;

		if (nvmlDeviceGetHandleByIndex_v2(i, &a) || nvmlDeviceGetNumaNodeId(a, &node))
			return 97;
		snprintf(key, sizeof key, "numa%u", i);
		out(key, "%u", node);
		while (links < NVML_NVLINK_MAX_LINKS && nvmlDeviceGetNvLinkState(a, links, &on) == 0)
			links++;
		snprintf(key, sizeof key, "links%u", i);
		out(key, "%u", links);
		for (unsigned j = 0; j < n; j++) {
			if (nvmlDeviceGetHandleByIndex_v2(j, &b) ||
			    nvmlDeviceGetTopologyCommonAncestor(a, b, &lvl))
				return 98;
			snprintf(key, sizeof key, "topo%u_%u", i, j);
			out(key, "%d", (int)lvl);
		}
	}
	nvmlShutdown();
	return 0;
}

/* Register for Xid errors of GPU argv[0], say ready=1, wait up to 10 s for
 * one event and report it. */
static int child_waiter(int argc, char **argv)
{
	nvmlEventSet_t set;
	nvmlEventData_t e;
	nvmlDevice_t d;
	unsigned index, got;
	nvmlReturn_t rc;

	if (argc < 1 || nvmlInit_v2())
		return 96;
	index = (unsigned)atoi(argv[0]);
	if (nvmlDeviceGetHandleByIndex_v2(index, &d) || nvmlEventSetCreate(&set) ||
	    nvmlDeviceRegisterEvents(d, XID, set))
		return 97;
	out("ready", "1");
	rc = nvmlEventSetWait_v2(set, &e, 10000);
	out("rc", "%d", (int)rc);
	if (rc == NVML_SUCCESS) {
		if (nvmlDeviceGetIndex(e.device, &got))
			return 98;
		out("index", "%u", got);
		out("type", "%llu", e.eventType);
		out("data", "%llu", e.eventData);
	}
	nvmlEventSetFree(set);
	nvmlShutdown();
	return 0;
}

/* What another process sees of GPU argv[0]: the codes of a few queries. */
static int child_query(int argc, char **argv)
{
	nvmlDevice_t d;
	nvmlMemory_t m;
	char name[96];
	unsigned n;

	if (argc < 1 || nvmlInit_v2())
		return 96;
	if (nvmlDeviceGetHandleByIndex_v2((unsigned)atoi(argv[0]), &d))
		return 97;
	out("memory", "%d", (int)nvmlDeviceGetMemoryInfo(d, &m));
	out("name", "%d", (int)nvmlDeviceGetName(d, name, sizeof name));
	out("count", "%d", (int)nvmlDeviceGetCount_v2(&n));
	out("n", "%u", n);
	nvmlShutdown();
	return 0;
}

static const struct gpt_child children[] = {
	{"topology", child_topology},
	{"waiter", child_waiter},
	{"query", child_query},
	{NULL, NULL},
};

/* --- tests ---------------------------------------------------------------- */

/* Pairs share a PCIe switch, halves share a NUMA node; CUDA's host NUMA id
 * agrees with NVML. */
static void test_numa_and_topology(void **st)
{
	static const unsigned want_node[] = {0, 0, 1, 1};
	static const int want[4][4] = {
		{NVML_TOPOLOGY_INTERNAL, NVML_TOPOLOGY_SINGLE, NVML_TOPOLOGY_SYSTEM, NVML_TOPOLOGY_SYSTEM},
		{NVML_TOPOLOGY_SINGLE, NVML_TOPOLOGY_INTERNAL, NVML_TOPOLOGY_SYSTEM, NVML_TOPOLOGY_SYSTEM},
		{NVML_TOPOLOGY_SYSTEM, NVML_TOPOLOGY_SYSTEM, NVML_TOPOLOGY_INTERNAL, NVML_TOPOLOGY_SINGLE},
		{NVML_TOPOLOGY_SYSTEM, NVML_TOPOLOGY_SYSTEM, NVML_TOPOLOGY_SINGLE, NVML_TOPOLOGY_INTERNAL},
	};
	nvmlGpuTopologyLevel_t lvl;
	unsigned node;
	int host;

	(void)st;
	for (unsigned i = 0; i < 4; i++) {
		NV(nvmlDeviceGetNumaNodeId(dev(i), &node));
		assert_int_equal(node, want_node[i]);
		assert_int_equal(cuDeviceGetAttribute(&host, CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, (int)i),
				 CUDA_SUCCESS);
		assert_int_equal(host, (int)want_node[i]);
		for (unsigned j = 0; j < 4; j++) {
			NV(nvmlDeviceGetTopologyCommonAncestor(dev(i), dev(j), &lvl));
			assert_int_equal(lvl, want[i][j]);
		}
	}
	assert_int_equal(nvmlDeviceGetNumaNodeId(dev(0), NULL), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceGetTopologyCommonAncestor(dev(0), dev(1), NULL),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceGetTopologyCommonAncestor(dev(0), (nvmlDevice_t)&node, &lvl),
			 NVML_ERROR_INVALID_ARGUMENT);
}

/* Larger and odd machines, in children: NODE between pairs of one node;
 * with 5 GPUs, 3 on node 0 and the pair (2, 3) split across nodes; an
 * A100 SXM has 12 NVLinks, one GPU is on node 0. */
static void test_topology_other_machines(void **st)
{
	const char *eight[] = {"GPUPOOL_SIM_GPUS=H100-SXM-80GB:80GiB:132,H100-SXM-80GB:80GiB:132,"
			       "H100-SXM-80GB:80GiB:132,H100-SXM-80GB:80GiB:132,"
			       "A100-SXM4-80GB:80GiB:108,A100-SXM4-80GB:80GiB:108,"
			       "T4:16GiB:40,T4:16GiB:40",
			       "GPUPOOL_SIM_STATE=", NULL};
	const char *five[] = {"GPUPOOL_SIM_GPUS=L4:24GiB:58,L4:24GiB:58,L4:24GiB:58,"
			      "L4:24GiB:58,L4:24GiB:58",
			      "GPUPOOL_SIM_STATE=", NULL};
	const char *one[] = {"GPUPOOL_SIM_GPUS=h100-sxm5-94gb:94GiB:132", "GPUPOOL_SIM_STATE=",
			     NULL};
	struct gpt_proc p;

	(void)st;
	gpt_run_child(&p, "topology", NULL, eight, 0);
	assert_int_equal(gpt_get_u64(&p, "n"), 8);
	for (unsigned i = 0; i < 8; i++) {
		char k[16];
		snprintf(k, sizeof k, "numa%u", i);
		assert_int_equal(gpt_get_u64(&p, k), i < 4 ? 0 : 1);
	}
	assert_int_equal(gpt_get_u64(&p, "topo0_1"), NVML_TOPOLOGY_SINGLE);
	assert_int_equal(gpt_get_u64(&p, "topo0_2"), NVML_TOPOLOGY_NODE);
	assert_int_equal(gpt_get_u64(&p, "topo3_1"), NVML_TOPOLOGY_NODE);
	assert_int_equal(gpt_get_u64(&p, "topo4_7"), NVML_TOPOLOGY_NODE);
	assert_int_equal(gpt_get_u64(&p, "topo6_7"), NVML_TOPOLOGY_SINGLE);
	assert_int_equal(gpt_get_u64(&p, "topo3_4"), NVML_TOPOLOGY_SYSTEM);
	assert_int_equal(gpt_get_u64(&p, "links0"), 18);
	assert_int_equal(gpt_get_u64(&p, "links4"), 12);
	assert_int_equal(gpt_get_u64(&p, "links6"), 0);

	gpt_run_child(&p, "topology", NULL, five, 0);
	assert_int_equal(gpt_get_u64(&p, "numa2"), 0);
	assert_int_equal(gpt_get_u64(&p, "numa3"), 1);
	assert_int_equal(gpt_get_u64(&p, "topo2_3"), NVML_TOPOLOGY_SYSTEM);
	assert_int_equal(gpt_get_u64(&p, "topo0_2"), NVML_TOPOLOGY_NODE);
	assert_int_equal(gpt_get_u64(&p, "topo3_4"), NVML_TOPOLOGY_NODE);

	/* One GPU: node 0; "sxm" in any case counts. */
	gpt_run_child(&p, "topology", NULL, one, 0);
	assert_int_equal(gpt_get_u64(&p, "numa0"), 0);
	assert_int_equal(gpt_get_u64(&p, "links0"), 18);
	assert_int_equal(gpt_get_u64(&p, "topo0_0"), NVML_TOPOLOGY_INTERNAL);
}

/* An H100 SXM has 18 links, all to NVSwitches; PCIe cards have none. */
static void test_nvlink(void **st)
{
	nvmlEnableState_t on;
	nvmlIntNvLinkDeviceType_t type;
	nvmlPciInfo_t pci, pci1;
	nvmlDevice_t d;

	(void)st;
	for (unsigned link = 0; link < NVML_NVLINK_MAX_LINKS; link++) {
		on = NVML_FEATURE_DISABLED;
		NV(nvmlDeviceGetNvLinkState(dev(0), link, &on));
		assert_int_equal(on, NVML_FEATURE_ENABLED);
		type = NVML_NVLINK_DEVICE_TYPE_UNKNOWN;
		NV(nvmlDeviceGetNvLinkRemoteDeviceType(dev(0), link, &type));
		assert_int_equal(type, NVML_NVLINK_DEVICE_TYPE_SWITCH);
		NV(nvmlDeviceGetNvLinkRemotePciInfo_v2(dev(0), link, &pci));
		NV(nvmlDeviceGetNvLinkRemotePciInfo_v2(dev(1), link, &pci1));
		/* Both GPUs reach the same switch on the same link. */
		assert_string_equal(pci.busId, pci1.busId);
		assert_int_equal(pci.pciDeviceId & 0xffff, 0x10de);
		assert_int_equal(pci.pciDeviceId >> 16, 0x22a3);
		assert_int_equal(strlen(pci.busId), 16);
		/* A switch is not a GPU. */
		assert_int_equal(nvmlDeviceGetHandleByPciBusId_v2(pci.busId, &d), NVML_ERROR_NOT_FOUND);
	}
	NV(nvmlDeviceGetNvLinkRemotePciInfo_v2(dev(0), 0, &pci));
	assert_string_equal(pci.busId, "00000000:05:00.0");
	assert_string_equal(pci.busIdLegacy, "0000:05:00.0");
	NV(nvmlDeviceGetNvLinkRemotePciInfo_v2(dev(0), 3, &pci1));
	assert_string_not_equal(pci.busId, pci1.busId);
	/* Past the last link. */
	assert_int_equal(nvmlDeviceGetNvLinkState(dev(0), NVML_NVLINK_MAX_LINKS, &on),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceGetNvLinkState(dev(0), 0, NULL), NVML_ERROR_INVALID_ARGUMENT);
	/* PCIe cards. */
	for (unsigned i = 2; i < 4; i++) {
		assert_int_equal(nvmlDeviceGetNvLinkState(dev(i), 0, &on), NVML_ERROR_NOT_SUPPORTED);
		assert_int_equal(nvmlDeviceGetNvLinkRemoteDeviceType(dev(i), 0, &type),
				 NVML_ERROR_NOT_SUPPORTED);
		assert_int_equal(nvmlDeviceGetNvLinkRemotePciInfo_v2(dev(i), 0, &pci),
				 NVML_ERROR_NOT_SUPPORTED);
	}
}

/* An Xid injected by gpupool-simctl reaches a set of this process and a
 * set of another process. */
static void test_xid_across_processes(void **st)
{
	nvmlEventSet_t set;
	nvmlEventData_t e;
	struct gpt_proc child;
	unsigned idx;
	int rc;

	(void)st;
	NV(nvmlEventSetCreate(&set));
	NV(nvmlDeviceRegisterEvents(dev(1), XID, set));
	simctl("xid", "1", "79", NULL);
	memset(&e, 0, sizeof e);
	NV(nvmlEventSetWait_v2(set, &e, 5000));
	NV(nvmlDeviceGetIndex(e.device, &idx));
	assert_int_equal(idx, 1);
	assert_ptr_equal(e.device, dev(1));
	assert_int_equal(e.eventType, XID);
	assert_int_equal(e.eventData, 79);
	assert_int_equal(e.gpuInstanceId, NO_MIG);
	assert_int_equal(e.computeInstanceId, NO_MIG);
	/* Delivered once. */
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 50), NVML_ERROR_TIMEOUT);

	/* A process that waits while another injects. */
	assert_int_equal(gpt_spawn_child(&child, "waiter", (const char *const[]){"1", NULL}, NULL, 0),
			 0);
	assert_int_equal(gpt_wait_for(&child, "ready", 10000), 0);
	simctl("xid", "1", "43", NULL);
	rc = gpt_wait(&child, 15000);
	if (rc != 0)
		fail_msg("waiter exited %d:\n%s", rc, child.out);
	assert_int_equal(gpt_get_u64(&child, "rc"), NVML_SUCCESS);
	assert_int_equal(gpt_get_u64(&child, "index"), 1);
	assert_int_equal(gpt_get_u64(&child, "type"), XID);
	assert_int_equal(gpt_get_u64(&child, "data"), 43);
	/* This process's set got it too. */
	NV(nvmlEventSetWait_v2(set, &e, 5000));
	assert_int_equal(e.eventData, 43);
	NV(nvmlEventSetFree(set));
}

/* Nothing happens: TIMEOUT after about timeoutms, and at once for 0. */
static void test_wait_timeout(void **st)
{
	nvmlEventSet_t set;
	nvmlEventData_t e;
	uint64_t t0, dt;

	(void)st;
	NV(nvmlEventSetCreate(&set));
	/* An empty set times out too. */
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 10), NVML_ERROR_TIMEOUT);
	NV(nvmlDeviceRegisterEvents(dev(0), XID | SBE | DBE, set));
	t0 = now_ms();
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 150), NVML_ERROR_TIMEOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 150);
	assert_true(dt < 3000);
	t0 = now_ms();
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 0), NVML_ERROR_TIMEOUT);
	assert_true(now_ms() - t0 < 1000);
	NV(nvmlEventSetFree(set));
}

/* A set receives only the events of the devices and types registered,
 * and only those after the registration. */
static void test_events_filtered(void **st)
{
	nvmlEventSet_t set;
	nvmlEventData_t e;

	(void)st;
	NV(nvmlEventSetCreate(&set));
	simctl("xid", "0", "13", NULL);          /* before registration */
	NV(nvmlDeviceRegisterEvents(dev(0), XID, set));
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 100), NVML_ERROR_TIMEOUT);
	simctl("xid", "1", "31", NULL);          /* another device */
	simctl("ecc", "0", "corrected", "1");    /* another type */
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 100), NVML_ERROR_TIMEOUT);
	simctl("xid", "0", "48", NULL);
	NV(nvmlEventSetWait_v2(set, &e, 5000));
	assert_ptr_equal(e.device, dev(0));
	assert_int_equal(e.eventType, XID);
	assert_int_equal(e.eventData, 48);
	/* Registering a type later starts it from then: the corrected ECC
	 * error above is not delivered. */
	NV(nvmlDeviceRegisterEvents(dev(0), SBE, set));
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 100), NVML_ERROR_TIMEOUT);
	/* Two devices: both events come, in either order. */
	NV(nvmlDeviceRegisterEvents(dev(1), XID, set));
	simctl("xid", "1", "62", NULL);
	simctl("xid", "0", "63", NULL);
	{
		unsigned long long sum = 0;
		for (int k = 0; k < 2; k++) {
			NV(nvmlEventSetWait_v2(set, &e, 5000));
			assert_int_equal(e.eventType, XID);
			assert_ptr_equal(e.device, dev(63 - (unsigned)e.eventData)); /* 62 on 1, 63 on 0 */
			sum += e.eventData;
		}
		assert_int_equal(sum, 62 + 63);
	}
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 50), NVML_ERROR_TIMEOUT);
	NV(nvmlEventSetFree(set));
}

/* ECC errors: counters (volatile = aggregate) and events of the
 * registered kind only. */
static void test_ecc(void **st)
{
	unsigned long long c0, u0, v, types;
	nvmlEventSet_t set;
	nvmlEventData_t e;

	(void)st;
	NV(nvmlDeviceGetSupportedEventTypes(dev(2), &types));
	assert_int_equal(types, XID | SBE | DBE);
	NV(nvmlDeviceGetTotalEccErrors(dev(2), NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC,
				       &c0));
	NV(nvmlDeviceGetTotalEccErrors(dev(2), NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
				       NVML_AGGREGATE_ECC, &u0));
	NV(nvmlEventSetCreate(&set));
	NV(nvmlDeviceRegisterEvents(dev(2), SBE, set));

	simctl("ecc", "2", "corrected", "3");
	NV(nvmlEventSetWait_v2(set, &e, 5000));
	assert_ptr_equal(e.device, dev(2));
	assert_int_equal(e.eventType, SBE);
	assert_int_equal(e.eventData, 0);
	NV(nvmlDeviceGetTotalEccErrors(dev(2), NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC,
				       &v));
	assert_int_equal(v, c0 + 3);
	NV(nvmlDeviceGetTotalEccErrors(dev(2), NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC,
				       &v));
	assert_int_equal(v, c0 + 3);

	/* Uncorrected: counted, but not delivered to a set without DBE. */
	simctl("ecc", "2", "uncorrected", "1");
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 100), NVML_ERROR_TIMEOUT);
	NV(nvmlDeviceGetTotalEccErrors(dev(2), NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
				       NVML_VOLATILE_ECC, &v));
	assert_int_equal(v, u0 + 1);
	NV(nvmlDeviceRegisterEvents(dev(2), DBE, set));
	simctl("ecc", "2", "uncorrected", "2");
	NV(nvmlEventSetWait_v2(set, &e, 5000));
	assert_int_equal(e.eventType, DBE);
	NV(nvmlDeviceGetTotalEccErrors(dev(2), NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
				       NVML_AGGREGATE_ECC, &v));
	assert_int_equal(v, u0 + 3);
	/* Other GPUs are untouched. */
	NV(nvmlDeviceGetTotalEccErrors(dev(3), NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
				       NVML_AGGREGATE_ECC, &v));
	assert_int_equal(v, 0);

	/* Argument checks; an unsupported type registers nothing. */
	assert_int_equal(nvmlDeviceGetTotalEccErrors(dev(2), (nvmlMemoryErrorType_t)7,
						     NVML_VOLATILE_ECC, &v),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceGetTotalEccErrors(dev(2), NVML_MEMORY_ERROR_TYPE_CORRECTED,
						     (nvmlEccCounterType_t)7, &v),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceGetTotalEccErrors(dev(2), NVML_MEMORY_ERROR_TYPE_CORRECTED,
						     NVML_VOLATILE_ECC, NULL),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceRegisterEvents(dev(3), XID | 0x4 /* PState */, set),
			 NVML_ERROR_NOT_SUPPORTED);
	simctl("xid", "3", "92", NULL);
	assert_int_equal(nvmlEventSetWait_v2(set, &e, 100), NVML_ERROR_TIMEOUT);
	NV(nvmlEventSetFree(set));
}

/* A lost GPU: every query on its handle is GPU_IS_LOST, in every process,
 * while it still counts and has a handle; restored, it answers again. */
static void test_lost_and_restored(void **st)
{
	nvmlDevice_t d;
	nvmlMemory_t m;
	nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
	nvmlUtilization_t u;
	nvmlPciInfo_t pci;
	nvmlEventSet_t set;
	unsigned n, x;
	unsigned long long v;
	nvmlGpuTopologyLevel_t lvl;
	nvmlProcessInfo_t procs[4];
	char s[96];
	struct gpt_proc p;

	(void)st;
	NV(nvmlEventSetCreate(&set));
	simctl("lose", "3", NULL, NULL);
	NV(nvmlDeviceGetCount_v2(&n));
	assert_int_equal(n, 4);
	NV(nvmlDeviceGetHandleByIndex_v2(3, &d));
	assert_int_equal(nvmlDeviceGetMemoryInfo(d, &m), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetMemoryInfo_v2(d, &m2), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetUtilizationRates(d, &u), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetName(d, s, sizeof s), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetUUID(d, s, sizeof s), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetPciInfo_v3(d, &pci), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetIndex(d, &x), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetNumaNodeId(d, &x), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetTopologyCommonAncestor(dev(2), d, &lvl),
			 NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetTotalEccErrors(d, NVML_MEMORY_ERROR_TYPE_CORRECTED,
						     NVML_VOLATILE_ECC, &v),
			 NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceGetSupportedEventTypes(d, &v), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(nvmlDeviceRegisterEvents(d, XID, set), NVML_ERROR_GPU_IS_LOST);
	x = 4;
	assert_int_equal(nvmlDeviceGetComputeRunningProcesses_v3(d, &x, procs),
			 NVML_ERROR_GPU_IS_LOST);
	/* The others are fine. */
	NV(nvmlDeviceGetMemoryInfo(dev(2), &m));
	/* Another process sees it lost too. */
	gpt_run_child(&p, "query", (const char *const[]){"3", NULL}, NULL, 0);
	assert_int_equal(gpt_get_u64(&p, "memory"), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(gpt_get_u64(&p, "name"), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(gpt_get_u64(&p, "count"), NVML_SUCCESS);
	assert_int_equal(gpt_get_u64(&p, "n"), 4);

	simctl("restore", "3", NULL, NULL);
	NV(nvmlDeviceGetMemoryInfo(d, &m));
	NV(nvmlDeviceGetName(d, s, sizeof s));
	assert_string_equal(s, "NVIDIA L4");
	NV(nvmlDeviceRegisterEvents(d, XID, set));
	gpt_run_child(&p, "query", (const char *const[]){"3", NULL}, NULL, 0);
	assert_int_equal(gpt_get_u64(&p, "memory"), NVML_SUCCESS);
	/* Restoring a GPU that is not lost is harmless. */
	simctl("restore", "3", NULL, NULL);
	NV(nvmlEventSetFree(set));
}

/* A set that falls more than the log's length behind keeps the newest
 * events. */
static void test_event_log_overflow(void **st)
{
	nvmlEventSet_t set;
	nvmlEventData_t e;
	char code[16];
	unsigned got = 0;

	(void)st;
	NV(nvmlEventSetCreate(&set));
	NV(nvmlDeviceRegisterEvents(dev(2), XID, set));
	for (unsigned k = 1; k <= 70; k++) {
		snprintf(code, sizeof code, "%u", 1000 + k);
		simctl("xid", "2", code, NULL);
	}
	while (nvmlEventSetWait_v2(set, &e, 50) == NVML_SUCCESS) {
		got++;
		if (got == 1)
			assert_int_equal(e.eventData, 1000 + 70 - 64 + 1);
	}
	assert_int_equal(got, 64);
	assert_int_equal(e.eventData, 1070);
	NV(nvmlEventSetFree(set));
}

static nvmlEventSet_t freed_set;
static nvmlReturn_t freed_rc;

static void *wait_long(void *arg)
{
	nvmlEventData_t e;

	(void)arg;
	freed_rc = nvmlEventSetWait_v2(freed_set, &e, 20000);
	return NULL;
}

/* Argument checks, and a set freed by one thread while another waits on
 * it: the wait ends (INVALID_ARGUMENT) instead of using freed memory. */
static void test_set_arguments_and_free(void **st)
{
	nvmlEventSet_t set;
	nvmlEventData_t e;
	pthread_t t;
	uint64_t t0;
	int bogus;

	(void)st;
	assert_int_equal(nvmlEventSetCreate(NULL), NVML_ERROR_INVALID_ARGUMENT);
	NV(nvmlEventSetCreate(&set));
	assert_int_equal(nvmlEventSetWait_v2(set, NULL, 0), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlEventSetWait_v2((nvmlEventSet_t)&bogus, &e, 0),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceRegisterEvents(dev(0), XID, (nvmlEventSet_t)&bogus),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceRegisterEvents(dev(0), XID, NULL), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlDeviceRegisterEvents((nvmlDevice_t)&bogus, XID, set),
			 NVML_ERROR_INVALID_ARGUMENT);
	NV(nvmlEventSetFree(set));
	assert_int_equal(nvmlEventSetFree(set), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(nvmlEventSetFree(NULL), NVML_ERROR_INVALID_ARGUMENT);

	NV(nvmlEventSetCreate(&freed_set));
	NV(nvmlDeviceRegisterEvents(dev(0), XID, freed_set));
	t0 = now_ms();
	assert_int_equal(pthread_create(&t, NULL, wait_long, NULL), 0);
	usleep(50000);
	NV(nvmlEventSetFree(freed_set));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(freed_rc, NVML_ERROR_INVALID_ARGUMENT);
	assert_true(now_ms() - t0 < 5000);
}

/* Usage errors name the bad argument (exit 2); no machine is exit 1. */
static void test_simctl_usage(void **st)
{
	static const struct {
		const char *a, *b, *c, *d;
		int rc;
		const char *says;
	} cases[] = {
		{NULL, NULL, NULL, NULL, 2, "usage:"},
		{"--help", NULL, NULL, NULL, 0, "usage: gpupool-simctl"},
		{"frob", "1", NULL, NULL, 2, "'frob'"},
		{"xid", "1", NULL, NULL, 2, "xid takes 2"},
		{"xid", "x", "79", NULL, 2, "INDEX 'x'"},
		{"xid", "9", "79", NULL, 2, "INDEX '9': no such GPU"},
		{"xid", "1", "0", NULL, 2, "CODE '0'"},
		{"xid", "1", "79z", NULL, 2, "CODE '79z'"},
		{"ecc", "1", "sideways", "1", 2, "'sideways'"},
		{"ecc", "1", "corrected", "0", 2, "COUNT '0'"},
		{"ecc", "1", "corrected", NULL, 2, "ecc takes 3"},
		{"lose", "-1", NULL, NULL, 2, "INDEX '-1'"},
		{"restore", "1", "2", NULL, 2, "restore takes 1"},
	};
	const char *no_state[] = {"GPUPOOL_SIM_STATE=", NULL};
	struct gpt_proc p;

	(void)st;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int rc = simctl_env(&p, NULL, cases[i].a, cases[i].b, cases[i].c, cases[i].d);

		if (rc != cases[i].rc || !gpt_has(&p, cases[i].says))
			fail_msg("simctl %s %s: exit %d (want %d), said:\n%s", cases[i].a ? cases[i].a : "",
				 cases[i].b ? cases[i].b : "", rc, cases[i].rc, p.out);
	}
	assert_int_equal(simctl_env(&p, no_state, "xid", "1", "79", NULL), 1);
	assert_true(gpt_has(&p, "GPUPOOL_SIM_STATE"));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numa_and_topology),
		cmocka_unit_test(test_topology_other_machines),
		cmocka_unit_test(test_nvlink),
		cmocka_unit_test(test_xid_across_processes),
		cmocka_unit_test(test_wait_timeout),
		cmocka_unit_test(test_events_filtered),
		cmocka_unit_test(test_ecc),
		cmocka_unit_test(test_lost_and_restored),
		cmocka_unit_test(test_event_log_overflow),
		cmocka_unit_test(test_set_arguments_and_free),
		cmocka_unit_test(test_simctl_usage),
	};
	char *state;
	int rc;

	gpt_child_dispatch(argc, argv, children);
	setenv("GPUPOOL_SIM_GPUS", GPUS, 1);
	unsetenv("CUDA_VISIBLE_DEVICES");
	state = gpt_tmp_path("health-state");
	setenv("GPUPOOL_SIM_STATE", state, 1);
	free(state);
	simctl_path = gpt_build_path("sim/gpupool-simctl");
	if (cuInit(0) != CUDA_SUCCESS || nvmlInit_v2() != NVML_SUCCESS)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	nvmlShutdown();
	free(simctl_path);
	return rc;
}
