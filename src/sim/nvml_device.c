/* nvml_device.c - NVML devices: count, handles, identity, memory. */
#include "sim/nvml_sim.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEV_MAGIC 0x4e564d4cu /* "NVML" */

/* The handles: nvmlDevice_t points at one of these. */
struct nvml_dev {
	uint32_t magic;
	unsigned index;
};

#define D(i) {DEV_MAGIC, i}
static const struct nvml_dev devs[GP_SIM_GPUS_MAX] = {
	D(0), D(1), D(2), D(3), D(4), D(5), D(6), D(7),
	D(8), D(9), D(10), D(11), D(12), D(13), D(14), D(15),
};
#undef D

static struct gp_sim_hdr *machine(void)
{
	return gp__sim_machine();
}

nvmlReturn_t gp__sim_nvml_dev(nvmlDevice_t device, unsigned *index)
{
	uintptr_t a = (uintptr_t)device, lo = (uintptr_t)devs;
	nvmlReturn_t rc = gp__sim_nvml_ready();

	if (rc)
		return rc;
	/* Only our own array's entries are followed. */
	if (a < lo || a >= lo + sizeof devs || (a - lo) % sizeof *devs)
		return NVML_ERROR_INVALID_ARGUMENT;
	const struct nvml_dev *d = &devs[(a - lo) / sizeof *devs];
	if (d->magic != DEV_MAGIC || d->index >= machine()->cfg.n)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (gp__sim_lost(d->index))
		return NVML_ERROR_GPU_IS_LOST;
	*index = d->index;
	return NVML_SUCCESS;
}

nvmlDevice_t gp__sim_nvml_handle(unsigned index)
{
	return (nvmlDevice_t)(uintptr_t)&devs[index];
}

static nvmlReturn_t get_count(unsigned *n)
{
	nvmlReturn_t rc = gp__sim_nvml_ready();

	if (rc)
		return rc;
	if (!n)
		return NVML_ERROR_INVALID_ARGUMENT;
	*n = machine()->cfg.n;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount)
{
	return get_count(deviceCount);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
	return get_count(deviceCount);
}

static nvmlReturn_t by_index(unsigned index, nvmlDevice_t *device)
{
	nvmlReturn_t rc = gp__sim_nvml_ready();

	if (rc)
		return rc;
	if (!device || index >= machine()->cfg.n)
		return NVML_ERROR_INVALID_ARGUMENT;
	*device = gp__sim_nvml_handle(index);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
	return by_index(index, device);
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	return by_index(index, device);
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
	struct gp_sim_hdr *h;
	nvmlReturn_t rc = gp__sim_nvml_ready();

	if (rc)
		return rc;
	if (!uuid || !device)
		return NVML_ERROR_INVALID_ARGUMENT;
	h = machine();
	for (unsigned i = 0; i < h->cfg.n; i++) {
		char s[GP_SIM_UUID_STR];
		gp__sim_gpu_uuid_str(i, h->cfg.gpu[i].model, s, sizeof s);
		if (strcasecmp(s, uuid) == 0) {
			*device = gp__sim_nvml_handle(i);
			return NVML_SUCCESS;
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device)
{
	unsigned domain = 0, bus, dev, fn;
	char tail;
	nvmlReturn_t rc = gp__sim_nvml_ready();

	if (rc)
		return rc;
	if (!pciBusId || !device)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (sscanf(pciBusId, "%x:%x:%x.%x%c", &domain, &bus, &dev, &fn, &tail) != 4) {
		domain = 0;
		if (sscanf(pciBusId, "%x:%x.%x%c", &bus, &dev, &fn, &tail) != 3)
			return NVML_ERROR_INVALID_ARGUMENT;
	}
	for (unsigned i = 0; i < machine()->cfg.n; i++) {
		if (domain == 0 && dev == 0 && fn == 0 && bus == gp__sim_gpu_pci_bus(i)) {
			*device = gp__sim_nvml_handle(i);
			return NVML_SUCCESS;
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
	unsigned i;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!index)
		return NVML_ERROR_INVALID_ARGUMENT;
	*index = i;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)
{
	return nvmlDeviceGetIndex(device, minorNumber); /* /dev/nvidia<index> */
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
	char s[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
	unsigned i;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	gp__sim_gpu_name(machine()->cfg.gpu[i].model, s, sizeof s);
	return gp__sim_nvml_copy_str(name, length, s);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
	char s[GP_SIM_UUID_STR];
	unsigned i;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	gp__sim_gpu_uuid_str(i, machine()->cfg.gpu[i].model, s, sizeof s);
	return gp__sim_nvml_copy_str(uuid, length, s);
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	unsigned i, bus;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!pci)
		return NVML_ERROR_INVALID_ARGUMENT;
	bus = gp__sim_gpu_pci_bus(i);
	memset(pci, 0, sizeof *pci);
	snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", bus);
	snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", bus);
	pci->domain = 0;
	pci->bus = bus;
	pci->device = 0;
	pci->pciDeviceId = (gp__sim_model(machine()->cfg.gpu[i].model)->pci_device << 16) | 0x10de;
	pci->pciSubSystemId = (0x16c1u << 16) | 0x10de;
	return NVML_SUCCESS;
}

/* total, in use by programs (the reservation not included), reserved. */
static void memory_of(unsigned i, uint64_t *total, uint64_t *used, uint64_t *reserved)
{
	*total = machine()->cfg.gpu[i].memory;
	*used = gp__sim_dev_used(i);
	*reserved = GP_SIM_DRIVER_RESERVED;
	if (*used > *total - *reserved)
		*used = *total - *reserved;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	uint64_t total, used, reserved;
	unsigned i;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!memory)
		return NVML_ERROR_INVALID_ARGUMENT;
	memory_of(i, &total, &used, &reserved);
	/* v1: the reservation counts as used. */
	memory->total = total;
	memory->used = used + reserved;
	memory->free = total - memory->used;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
	uint64_t total, used, reserved;
	unsigned i;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!memory)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (memory->version != nvmlMemory_v2)
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	memory_of(i, &total, &used, &reserved);
	memory->total = total;
	memory->reserved = reserved;
	memory->used = used;
	memory->free = total - reserved - used;
	return NVML_SUCCESS;
}
