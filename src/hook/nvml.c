/* nvml.c - the tenant's view of the card through NVML: nvidia-smi,
 * monitoring agents and the frameworks' memory queries see the budget as
 * the card's size, the tenant's usage as its usage, and the tenant's own
 * processes only.
 *
 * The tenant's devices are found by UUID.  In a process that has used CUDA
 * they are the devices set up at cuInit; in an NVML-only process (nvidia-
 * smi) a device's CUDA ordinal, which the per-device limits are written
 * against, is its position in CUDA_VISIBLE_DEVICES, as the driver reads
 * that list (indices or UUID prefixes, ending at the first invalid entry);
 * without that variable CUDA and NVML enumerate in the same (PCI) order.
 * Such a process only reads the region: it never registers devices.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "common/visible.h"
#include "hook/hook.h"

/* gp__need for NVML entry points, with NVML's error codes. */
#define GP_NEED_NVML(n)                                                      \
	do {                                                                     \
		CUresult need_rc_ = gp__need((void **)&gp__real_##n, GP_LIB_NVML);  \
		if (need_rc_ == CUDA_ERROR_NOT_INITIALIZED)                          \
			return NVML_ERROR_LIBRARY_NOT_FOUND;                             \
		if (need_rc_ != CUDA_SUCCESS)                                        \
			return NVML_ERROR_FUNCTION_NOT_FOUND;                            \
	} while (0)

/* The tenant's share of one device. */
struct view {
	uint64_t limit; /* budget, at most the card's size */
	int slot;       /* region entry; -1 while no process of the tenant has
	                   used the device (its usage is then 0) */
};

/* The CUDA ordinal of the GPU with NVML index `idx`, or -1 if CUDA cannot
 * see it in this process: its position in the machine's devices as
 * CUDA_VISIBLE_DEVICES lists them (common/visible.h, the same reading the
 * driver does). */
static int visible_ordinal(unsigned idx, unsigned count)
{
	char uuids[GP_REGION_MAX_DEVS][NVML_DEVICE_UUID_V2_BUFFER_SIZE];
	const char *names[GP_REGION_MAX_DEVS];
	int vis[GP_REGION_MAX_DEVS];
	unsigned n;

	if (count > GP_REGION_MAX_DEVS)
		count = GP_REGION_MAX_DEVS;
	for (unsigned i = 0; i < count; i++) {
		nvmlDevice_t h;
		uuids[i][0] = '\0';
		if (gp__real_nvmlDeviceGetHandleByIndex_v2(i, &h) == NVML_SUCCESS)
			(void)gp__real_nvmlDeviceGetUUID(h, uuids[i], sizeof uuids[i]);
		names[i] = uuids[i];
	}
	n = gp_visible_parse(getenv("CUDA_VISIBLE_DEVICES"), names, count, vis, GP_REGION_MAX_DEVS);
	for (unsigned k = 0; k < n; k++)
		if (vis[k] == (int)idx)
			return (int)k;
	return -1;
}

/* Fill *v for NVML device h whose real total is `total`.  Returns 1 when
 * the tenant has a budget on it (the figures are then virtual), else 0. */
static int tenant_view(nvmlDevice_t h, uint64_t total, struct view *v)
{
	char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
	unsigned idx, count;
	int k;

	if (gp__boot() || !gp__real_nvmlDeviceGetUUID ||
	    gp__real_nvmlDeviceGetUUID(h, uuid, sizeof uuid) != NVML_SUCCESS)
		return 0;
	for (int i = 0; i < __atomic_load_n(&gp__g.ndev, __ATOMIC_ACQUIRE); i++) {
		if (strcmp(gp__g.dev[i].uuid, uuid) == 0) {
			v->limit = gp__g.dev[i].limit;
			v->slot = gp__g.dev[i].slot;
			return v->limit != 0;
		}
	}
	if (!gp__real_nvmlDeviceGetIndex || !gp__real_nvmlDeviceGetCount_v2 ||
	    !gp__real_nvmlDeviceGetHandleByIndex_v2 ||
	    gp__real_nvmlDeviceGetIndex(h, &idx) != NVML_SUCCESS ||
	    gp__real_nvmlDeviceGetCount_v2(&count) != NVML_SUCCESS)
		return 0;
	/* A device some process of the tenant registered carries the budget
	 * it was given; otherwise ours is computed as cuInit would. */
	v->slot = gp_region_find(&gp__g.region, uuid);
	if (v->slot >= 0) {
		v->limit = gp__g.region.hdr->dev[v->slot].limit;
	} else {
		k = visible_ordinal(idx, count);
		if (k < 0 || k >= (int)GP_CONFIG_MAX_DEVS ||
		    !gp__config_has_mem(&gp__g.cfg, (unsigned)k))
			return 0;
		v->limit = gp_limit_bytes(&gp__g.cfg.mem[k], total);
	}
	if (v->limit > total)
		v->limit = total;
	return v->limit != 0;
}

/* What the tenant holds on the device right now. */
static uint64_t tenant_used(const struct view *v)
{
	uint64_t limit, used = 0;

	if (v->slot < 0)
		return 0;
	gp__pools_refresh(0);
	gp_region_sweep(&gp__g.region, 100000000ULL); /* dead processes, as in mem.c */
	gp_region_usage(&gp__g.region, (unsigned)v->slot, &limit, &used);
	return used;
}

static nvmlReturn_t init_gate(void)
{
	/* Fail closed here too: a bad configuration shows in nvidia-smi. */
	return gp__boot() ? NVML_ERROR_UNKNOWN : NVML_SUCCESS;
}

GP_EXPORT nvmlReturn_t nvmlInit_v2(void)
{
	GP_NEED_NVML(nvmlInit_v2);
	return init_gate() ? NVML_ERROR_UNKNOWN : gp__real_nvmlInit_v2();
}

GP_EXPORT nvmlReturn_t nvmlInit(void)
{
	GP_NEED_NVML(nvmlInit);
	return init_gate() ? NVML_ERROR_UNKNOWN : gp__real_nvmlInit();
}

GP_EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
	GP_NEED_NVML(nvmlInitWithFlags);
	return init_gate() ? NVML_ERROR_UNKNOWN : gp__real_nvmlInitWithFlags(flags);
}

/* The tenant's memory figures for device h, a card of the budget's size
 * that keeps the driver's reservation (docs/hook.md, "One virtual card"):
 *
 *   total    = the budget (tenant_view keeps it at most the card)
 *   reserved = the driver's reservation, at most total
 *   free     = total - reserved - the tenant's usage, never below 0 and
 *              never more than the card really has free (`real_free`:
 *              other tenants may hold the rest)
 *   used     = total - reserved - free (v2); v1 adds the reservation
 *
 * so that, as on a real card, v2's used + free + reserved == total and v1
 * shows the same free with the reservation inside used.  When free is
 * clamped by what others hold, used grows by that much: the tenant cannot
 * have it either.  Returns 1 when the tenant has a budget on h (the
 * figures are then filled in), else 0: the real figures stand. */
struct memview {
	uint64_t total, reserved, used, free;
};

static int memory_view(nvmlDevice_t h, uint64_t real_total, uint64_t real_free,
		       uint64_t reserved, struct memview *m)
{
	struct view v;
	uint64_t rest, t;

	if (!tenant_view(h, real_total, &v))
		return 0;
	m->total = v.limit;
	m->reserved = reserved < v.limit ? reserved : v.limit;
	rest = m->total - m->reserved;
	/* The same clamping rule as cuMemGetInfo, on the card less the
	 * reservation. */
	gp__virtual(rest, tenant_used(&v), real_free, rest, &m->free, &t);
	m->used = rest - m->free;
	return 1;
}

GP_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
	struct memview m;
	nvmlReturn_t rc;

	GP_NEED_NVML(nvmlDeviceGetMemoryInfo);
	rc = gp__real_nvmlDeviceGetMemoryInfo(device, memory);
	if (rc != NVML_SUCCESS)
		return rc;
	/* v1 does not say how much of its `used` is the driver's reservation;
	 * v2 does.  A driver without v2 leaves it at 0: all of it is free to
	 * the tenant then, as it was before v2 existed. */
	if (gp__need((void **)&gp__real_nvmlDeviceGetMemoryInfo_v2, GP_LIB_NVML) ||
	    gp__real_nvmlDeviceGetMemoryInfo_v2(device, &m2) != NVML_SUCCESS)
		m2.reserved = 0;
	if (!memory_view(device, memory->total, memory->free, m2.reserved, &m))
		return rc;
	memory->total = m.total;
	memory->free = m.free;
	memory->used = m.used + m.reserved;
	return rc;
}

GP_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
	struct memview m;
	nvmlReturn_t rc;

	GP_NEED_NVML(nvmlDeviceGetMemoryInfo_v2);
	rc = gp__real_nvmlDeviceGetMemoryInfo_v2(device, memory);
	if (rc != NVML_SUCCESS ||
	    !memory_view(device, memory->total, memory->free, memory->reserved, &m))
		return rc;
	memory->total = m.total;
	memory->reserved = m.reserved;
	memory->used = m.used;
	memory->free = m.free;
	return rc;
}

typedef nvmlReturn_t (*list_fn)(nvmlDevice_t, unsigned int *, void *);

/* The process list through `real`, with entries `esz` bytes long (v1 and
 * v2 layouts both start with pid, then usedGpuMemory at offset 8): only the
 * tenant's processes, each with the memory charged to it. */
static nvmlReturn_t process_list(nvmlDevice_t h, unsigned int *count, void *infos, size_t esz,
				 list_fn real)
{
	nvmlMemory_t m;
	struct view v;
	unsigned char *buf = NULL;
	unsigned int n = 0, kept = 0;
	nvmlReturn_t rc;

	if (!count || gp__need((void **)&gp__real_nvmlDeviceGetMemoryInfo, GP_LIB_NVML) ||
	    gp__real_nvmlDeviceGetMemoryInfo(h, &m) != NVML_SUCCESS || !tenant_view(h, m.total, &v))
		return real(h, count, infos);
	/* Processes come and go between asking the count and the list. */
	for (int tries = 0; tries < 4; tries++) {
		n = 0;
		rc = real(h, &n, NULL);
		if (rc != NVML_SUCCESS && rc != NVML_ERROR_INSUFFICIENT_SIZE)
			return rc;
		n += 8;
		free(buf);
		buf = calloc(n, esz);
		if (!buf)
			return NVML_ERROR_MEMORY;
		rc = real(h, &n, buf);
		if (rc != NVML_ERROR_INSUFFICIENT_SIZE)
			break;
	}
	if (rc != NVML_SUCCESS)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		unsigned char *e = buf + i * esz;
		unsigned int pid;
		uint64_t used;

		memcpy(&pid, e, sizeof pid);
		if (v.slot < 0 || !gp_region_proc_used(&gp__g.region, (int)pid, (unsigned)v.slot, &used))
			continue;
		memcpy(e + offsetof(nvmlProcessInfo_v1_t, usedGpuMemory), &used, sizeof used);
		memmove(buf + kept * esz, e, esz);
		kept++;
	}
	if (*count < kept || (kept && !infos)) {
		*count = kept;
		rc = NVML_ERROR_INSUFFICIENT_SIZE;
		goto out;
	}
	if (kept)
		memcpy(infos, buf, kept * esz);
	*count = kept;
out:
	free(buf);
	return rc;
}

_Static_assert(offsetof(nvmlProcessInfo_v1_t, usedGpuMemory) ==
		       offsetof(nvmlProcessInfo_v2_t, usedGpuMemory),
	       "both process layouts keep usedGpuMemory in one place");

#define PROCESS_HOOK(name, type)                                                     \
	GP_EXPORT nvmlReturn_t name(nvmlDevice_t device, unsigned int *infoCount,      \
				    type *infos)                                       \
	{                                                                              \
		GP_NEED_NVML(name);                                                    \
		return process_list(device, infoCount, infos, sizeof(type),            \
				    (list_fn)gp__real_##name);                         \
	}

PROCESS_HOOK(nvmlDeviceGetComputeRunningProcesses, nvmlProcessInfo_v1_t)
PROCESS_HOOK(nvmlDeviceGetComputeRunningProcesses_v2, nvmlProcessInfo_v2_t)
PROCESS_HOOK(nvmlDeviceGetComputeRunningProcesses_v3, nvmlProcessInfo_t)
PROCESS_HOOK(nvmlDeviceGetGraphicsRunningProcesses, nvmlProcessInfo_v1_t)
PROCESS_HOOK(nvmlDeviceGetGraphicsRunningProcesses_v2, nvmlProcessInfo_v2_t)
PROCESS_HOOK(nvmlDeviceGetGraphicsRunningProcesses_v3, nvmlProcessInfo_t)
