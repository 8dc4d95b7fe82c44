/* gpus.c - see gpus.h. */
#include "agent/gpus.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PROCS 4096  /* processes listed per card: more is a broken driver */
#define MAX_SAMPLES 4096

/* What the agent keeps of a card between collections. */
struct card {
	nvmlDevice_t h;
	struct gp_agent_gpu id;  /* identity, links; figures filled per collection */
	int lost;                /* stopped answering: unhealthy for good */
	int fatal;               /* a fatal XID was seen */
	unsigned long long last_sample_us; /* process utilization read up to */
};

struct gp_gpus {
	struct gp_nvml *nvml;
	unsigned n;
	pthread_mutex_t lock;    /* guards the health fields of card[] */
	struct card card[GP_AGENT_MAX_GPUS];
};

/* docs/protocol.md's link scale for a PCIe path. */
static unsigned pcie_score(nvmlGpuTopologyLevel_t level)
{
	switch (level) {
	case NVML_TOPOLOGY_INTERNAL: return 40;
	case NVML_TOPOLOGY_SINGLE: return 40;     /* PIX */
	case NVML_TOPOLOGY_MULTIPLE: return 30;   /* PXB */
	case NVML_TOPOLOGY_HOSTBRIDGE: return 20; /* PHB */
	case NVML_TOPOLOGY_NODE: return 10;       /* NODE */
	default: return 0;                        /* SYS */
	}
}

/* Bus ids compare case-insensitively and NVML pads the domain to 8 or 4
 * digits depending on the call, so compare from the bus number on. */
static int same_bus(const char *a, const char *b)
{
	const char *pa = strchr(a, ':'), *pb = strchr(b, ':');

	return pa && pb && strcasecmp(pa, pb) == 0 && *a && *b;
}

/* NVLinks of card i: to each other card (direct links), and to switches
 * (which reach every other card with switch links). */
static void count_nvlinks(struct gp_gpus *g, unsigned i, unsigned direct[], unsigned *switched)
{
	struct gp_nvml *nv = g->nvml;

	*switched = 0;
	if (!nv->nvmlDeviceGetNvLinkState)
		return;
	for (unsigned l = 0; l < NVML_NVLINK_MAX_LINKS; l++) {
		nvmlEnableState_t on;
		nvmlIntNvLinkDeviceType_t type = NVML_NVLINK_DEVICE_TYPE_GPU;
		nvmlPciInfo_t pci;

		if (nv->nvmlDeviceGetNvLinkState(g->card[i].h, l, &on) != NVML_SUCCESS ||
		    on != NVML_FEATURE_ENABLED)
			continue;
		if (nv->nvmlDeviceGetNvLinkRemoteDeviceType &&
		    nv->nvmlDeviceGetNvLinkRemoteDeviceType(g->card[i].h, l, &type) != NVML_SUCCESS)
			continue;
		if (type == NVML_NVLINK_DEVICE_TYPE_SWITCH) {
			(*switched)++;
			continue;
		}
		if (type != NVML_NVLINK_DEVICE_TYPE_GPU || !nv->nvmlDeviceGetNvLinkRemotePciInfo_v2 ||
		    nv->nvmlDeviceGetNvLinkRemotePciInfo_v2(g->card[i].h, l, &pci) != NVML_SUCCESS)
			continue;
		for (unsigned j = 0; j < g->n; j++)
			if (j != i && same_bus(pci.busId, g->card[j].id.pci))
				direct[j]++;
	}
}

/* Link scores between every pair: NVLink 100 + 10 k, else the PCIe path;
 * symmetric (the larger side). */
static void find_links(struct gp_gpus *g)
{
	unsigned direct[GP_AGENT_MAX_GPUS][GP_AGENT_MAX_GPUS] = {{0}};
	unsigned sw[GP_AGENT_MAX_GPUS];

	for (unsigned i = 0; i < g->n; i++)
		count_nvlinks(g, i, direct[i], &sw[i]);
	for (unsigned i = 0; i < g->n; i++) {
		for (unsigned j = 0; j < g->n; j++) {
			nvmlGpuTopologyLevel_t level;
			unsigned s = 0, k = direct[i][j];

			if (i == j)
				continue;
			/* Through switches each card reaches the other with as
			 * many links as the poorer of the two has. */
			if (sw[i] && sw[j])
				k += sw[i] < sw[j] ? sw[i] : sw[j];
			if (k)
				s = 100 + 10 * k;
			else if (g->nvml->nvmlDeviceGetTopologyCommonAncestor &&
				 g->nvml->nvmlDeviceGetTopologyCommonAncestor(
					 g->card[i].h, g->card[j].h, &level) == NVML_SUCCESS)
				s = pcie_score(level);
			if (s > 65535)
				s = 65535;
			if (s > g->card[i].id.link[j])
				g->card[i].id.link[j] = g->card[j].id.link[i] = (uint16_t)s;
		}
	}
}

/* The NUMA node from sysfs, for drivers whose NVML does not say. */
static int sysfs_numa(const char *bus_id)
{
	char path[128], dom[16], rest[32];
	const char *colon = strchr(bus_id, ':');
	int node = -1;
	FILE *f;

	if (!colon || colon - bus_id > 8)
		return -1;
	/* NVML: "00000000:1B:00.0"; sysfs: "0000:1b:00.0". */
	snprintf(dom, sizeof dom, "%.*s", (int)(colon - bus_id), bus_id);
	snprintf(rest, sizeof rest, "%s", colon + 1);
	for (char *p = rest; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	snprintf(path, sizeof path, "/sys/bus/pci/devices/%04lx:%s/numa_node",
		 strtoul(dom, NULL, 16) & 0xffff, rest);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &node) != 1)
		node = -1;
	fclose(f);
	return node < -1 || node > 1023 ? -1 : node;
}

/* Identity of card i: what never changes. */
static int identify(struct gp_gpus *g, unsigned i, char *err, size_t len)
{
	struct gp_nvml *nv = g->nvml;
	struct card *c = &g->card[i];
	nvmlReturn_t rc;
	unsigned numa;

	c->id.index = i;
	c->id.numa = -1;
	c->id.healthy = 1;
	rc = nv->nvmlDeviceGetHandleByIndex_v2(i, &c->h);
	if (rc == NVML_SUCCESS)
		rc = nv->nvmlDeviceGetUUID(c->h, c->id.uuid, sizeof c->id.uuid);
	if (rc != NVML_SUCCESS) {
		snprintf(err, len, "card %u: cannot read its UUID: %s", i, gp_nvml_str(nv, rc));
		return -EIO;
	}
	if (nv->nvmlDeviceGetName(c->h, c->id.model, sizeof c->id.model) != NVML_SUCCESS)
		snprintf(c->id.model, sizeof c->id.model, "NVIDIA GPU");
	if (nv->nvmlDeviceGetPciInfo_v3) {
		nvmlPciInfo_t pci;

		if (nv->nvmlDeviceGetPciInfo_v3(c->h, &pci) == NVML_SUCCESS)
			snprintf(c->id.pci, sizeof c->id.pci, "%s", pci.busId);
	}
	if (nv->nvmlDeviceGetNumaNodeId && nv->nvmlDeviceGetNumaNodeId(c->h, &numa) == NVML_SUCCESS &&
	    numa <= 1023)
		c->id.numa = (int)numa;
	else if (c->id.pci[0])
		c->id.numa = sysfs_numa(c->id.pci);
	return 0;
}

int gp_gpus_open(struct gp_gpus **out, struct gp_nvml *nvml, char *err, size_t len)
{
	struct gp_gpus *g = calloc(1, sizeof *g);
	unsigned n = 0;
	nvmlReturn_t rc;

	if (!g)
		return -ENOMEM;
	g->nvml = nvml;
	pthread_mutex_init(&g->lock, NULL);
	rc = nvml->nvmlDeviceGetCount_v2(&n);
	if (rc != NVML_SUCCESS) {
		snprintf(err, len, "cannot count the GPUs: %s", gp_nvml_str(nvml, rc));
		goto fail;
	}
	if (n > GP_AGENT_MAX_GPUS) {
		snprintf(err, len, "%u GPUs: at most %u per node are supported", n,
			 GP_AGENT_MAX_GPUS);
		goto fail;
	}
	g->n = n;
	for (unsigned i = 0; i < n; i++)
		if (identify(g, i, err, len))
			goto fail;
	find_links(g);
	*out = g;
	return 0;
fail:
	pthread_mutex_destroy(&g->lock);
	free(g);
	return -EIO;
}

void gp_gpus_close(struct gp_gpus *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g);
}

unsigned gp_gpus_count(const struct gp_gpus *g)
{
	return g->n;
}

nvmlDevice_t gp_gpus_handle(const struct gp_gpus *g, unsigned i)
{
	return i < g->n ? g->card[i].h : NULL;
}

int gp_gpus_index(const struct gp_gpus *g, nvmlDevice_t h)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->card[i].h == h)
			return (int)i;
	return -1;
}

void gp_gpus_note_xid(struct gp_gpus *g, unsigned i, unsigned xid, int fatal)
{
	if (i >= g->n)
		return;
	pthread_mutex_lock(&g->lock);
	g->card[i].id.xids++;
	g->card[i].id.last_xid = xid;
	if (fatal && !g->card[i].fatal) {
		g->card[i].fatal = 1;
		snprintf(g->card[i].id.why, sizeof g->card[i].id.why, "fatal XID %u", xid);
	}
	pthread_mutex_unlock(&g->lock);
}

/* A card stopped answering: unhealthy for good (called with the lock). */
static void lose(struct card *c, const char *what, const char *reason)
{
	if (!c->lost && !c->fatal)
		snprintf(c->id.why, sizeof c->id.why, "%s: %s", what, reason);
	c->lost = 1;
}

/* The processes on card c into out->proc. */
static int list_procs(struct gp_gpus *g, struct card *c, struct gp_agent_gpu *out)
{
	struct gp_nvml *nv = g->nvml;
	unsigned n = 0;
	nvmlProcessInfo_t *info;
	nvmlReturn_t rc;

	if (!nv->nvmlDeviceGetComputeRunningProcesses_v3)
		return 0;
	rc = nv->nvmlDeviceGetComputeRunningProcesses_v3(c->h, &n, NULL);
	if (rc == NVML_SUCCESS || n == 0)
		return 0;
	if (rc != NVML_ERROR_INSUFFICIENT_SIZE)
		return 0;
	/* Room for a few that start meanwhile. */
	n = n + 16 > MAX_PROCS ? MAX_PROCS : n + 16;
	info = calloc(n, sizeof *info);
	out->proc = calloc(n, sizeof *out->proc);
	if (!info || !out->proc) {
		free(info);
		free(out->proc);
		out->proc = NULL;
		return -ENOMEM;
	}
	if (nv->nvmlDeviceGetComputeRunningProcesses_v3(c->h, &n, info) == NVML_SUCCESS) {
		for (unsigned k = 0; k < n; k++) {
			out->proc[k].pid = info[k].pid;
			out->proc[k].mem = info[k].usedGpuMemory;
			out->proc[k].tenant = -1;
		}
		out->nproc = n;
	}
	free(info);
	return 0;
}

/* Per-process utilization of card i since the last call, appended. */
static int sample_util(struct gp_gpus *g, unsigned i, struct gp_pid_util **util, size_t *nutil)
{
	struct gp_nvml *nv = g->nvml;
	struct card *c = &g->card[i];
	nvmlProcessUtilizationSample_t *s;
	unsigned n = 0;
	unsigned long long last = c->last_sample_us;

	if (!nv->nvmlDeviceGetProcessUtilization ||
	    nv->nvmlDeviceGetProcessUtilization(c->h, NULL, &n, last) !=
		    NVML_ERROR_INSUFFICIENT_SIZE || n == 0)
		return 0;
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	s = calloc(n, sizeof *s);
	if (!s)
		return -ENOMEM;
	if (nv->nvmlDeviceGetProcessUtilization(c->h, s, &n, last) == NVML_SUCCESS) {
		struct gp_pid_util *more = realloc(*util, (*nutil + n) * sizeof **util);

		if (!more) {
			free(s);
			return -ENOMEM;
		}
		*util = more;
		for (unsigned k = 0; k < n; k++) {
			/* Several samples of one process: keep the latest. */
			size_t j;

			for (j = 0; j < *nutil; j++)
				if (more[j].pid == s[k].pid && more[j].gpu == i)
					break;
			more[j] = (struct gp_pid_util){s[k].pid, i, s[k].smUtil > 100 ? 100 : s[k].smUtil};
			if (j == *nutil)
				(*nutil)++;
			if (s[k].timeStamp > c->last_sample_us)
				c->last_sample_us = s[k].timeStamp;
		}
	}
	free(s);
	return 0;
}

int gp_gpus_collect(struct gp_gpus *g, struct gp_agent_snap *s, struct gp_pid_util **util,
		    size_t *nutil)
{
	struct gp_nvml *nv = g->nvml;
	int rc = 0;

	if (util) {
		*util = NULL;
		*nutil = 0;
	}
	s->ngpu = g->n;
	for (unsigned i = 0; i < g->n; i++) {
		struct card *c = &g->card[i];
		struct gp_agent_gpu *out = &s->gpu[i];
		nvmlMemory_t mem;
		nvmlUtilization_t u;
		nvmlReturn_t r;

		pthread_mutex_lock(&g->lock);
		*out = c->id;
		pthread_mutex_unlock(&g->lock);
		out->util = out->mem_util = -1;
		out->ecc[0] = out->ecc[1] = UINT64_MAX;
		out->proc = NULL;
		out->nproc = 0;
		out->answered = 0;
		r = nv->nvmlDeviceGetMemoryInfo(c->h, &mem);
		if (r != NVML_SUCCESS) {
			pthread_mutex_lock(&g->lock);
			lose(c, "memory info", gp_nvml_str(nv, r));
			snprintf(out->why, sizeof out->why, "%s", c->id.why);
			pthread_mutex_unlock(&g->lock);
			out->healthy = 0;
			out->mem_used = out->mem_free = 0;
			continue;
		}
		/* The size is kept for a card that stops answering later. */
		pthread_mutex_lock(&g->lock);
		c->id.mem_total = mem.total;
		pthread_mutex_unlock(&g->lock);
		out->answered = 1;
		out->mem_total = mem.total;
		out->mem_used = mem.used;
		out->mem_free = mem.free;
		if (nv->nvmlDeviceGetUtilizationRates &&
		    nv->nvmlDeviceGetUtilizationRates(c->h, &u) == NVML_SUCCESS) {
			out->util = u.gpu > 100 ? 100 : (int)u.gpu;
			out->mem_util = u.memory > 100 ? 100 : (int)u.memory;
		}
		if (nv->nvmlDeviceGetTotalEccErrors) {
			for (int t = 0; t < 2; t++) {
				unsigned long long v;

				if (nv->nvmlDeviceGetTotalEccErrors(c->h, (nvmlMemoryErrorType_t)t,
								    NVML_VOLATILE_ECC, &v) ==
				    NVML_SUCCESS)
					out->ecc[t] = v;
			}
		}
		pthread_mutex_lock(&g->lock);
		out->healthy = !c->lost && !c->fatal;
		pthread_mutex_unlock(&g->lock);
		if (!rc)
			rc = list_procs(g, c, out);
		if (!rc && util)
			rc = sample_util(g, i, util, nutil);
	}
	return rc;
}
