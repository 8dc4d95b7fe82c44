/* nvml_topology.c - where the GPUs sit: NUMA nodes, the PCIe tree between
 * two GPUs, NVLinks.
 *
 * The layout is that of a two-socket server (machine.h): GPUs in pairs
 * behind one PCIe switch, the first half of them on NUMA node 0 and the
 * rest on node 1; SXM GPUs have all their NVLinks to the baseboard's
 * NVSwitches, PCIe cards have none.
 */
#include "sim/nvml_sim.h"

#include <stdio.h>
#include <string.h>

/* NVSwitch k of the baseboard sits on PCI bus NVSWITCH_BUS + k (domain 0),
 * clear of the GPUs' buses (machine.c). */
#define NVSWITCH_BUS 0x05u

nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node)
{
	unsigned i;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!node)
		return NVML_ERROR_INVALID_ARGUMENT;
	*node = gp__sim_gpu_numa(i, gp__sim_machine()->cfg.n);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t device1, nvmlDevice_t device2,
						 nvmlGpuTopologyLevel_t *pathInfo)
{
	unsigned a, b, n;
	nvmlReturn_t rc = gp__sim_nvml_dev(device1, &a);

	if (rc == NVML_SUCCESS)
		rc = gp__sim_nvml_dev(device2, &b);
	if (rc)
		return rc;
	if (!pathInfo)
		return NVML_ERROR_INVALID_ARGUMENT;
	n = gp__sim_machine()->cfg.n;
	if (a == b)
		*pathInfo = NVML_TOPOLOGY_INTERNAL;
	else if (gp__sim_gpu_numa(a, n) != gp__sim_gpu_numa(b, n))
		*pathInfo = NVML_TOPOLOGY_SYSTEM;
	/* A pair shares a PCIe switch; with an odd count the pair that
	 * straddles the two nodes cannot, so the node test comes first. */
	else if (a / 2 == b / 2)
		*pathInfo = NVML_TOPOLOGY_SINGLE;
	else
		*pathInfo = NVML_TOPOLOGY_NODE;
	return NVML_SUCCESS;
}

/* Check an NVLink query: NVML_SUCCESS with the machine index in *index,
 * NVML_ERROR_NOT_SUPPORTED for a GPU without NVLinks (what real PCIe
 * cards answer), NVML_ERROR_INVALID_ARGUMENT for a link number the GPU
 * does not have or a NULL `out`; and what gp__sim_nvml_dev refuses. */
static nvmlReturn_t nvlink(nvmlDevice_t device, unsigned link, const void *out, unsigned *index)
{
	int links;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, index);

	if (rc)
		return rc;
	links = gp__sim_gpu_nvlinks(gp__sim_machine()->cfg.gpu[*index].model);
	if (links <= 0)
		return NVML_ERROR_NOT_SUPPORTED;
	if (link >= (unsigned)links || !out)
		return NVML_ERROR_INVALID_ARGUMENT;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link,
				      nvmlEnableState_t *isActive)
{
	unsigned i;
	nvmlReturn_t rc = nvlink(device, link, isActive, &i);

	if (rc)
		return rc;
	*isActive = NVML_FEATURE_ENABLED;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkRemoteDeviceType(nvmlDevice_t device, unsigned int link,
						 nvmlIntNvLinkDeviceType_t *pNvLinkDeviceType)
{
	unsigned i;
	nvmlReturn_t rc = nvlink(device, link, pNvLinkDeviceType, &i);

	if (rc)
		return rc;
	*pNvLinkDeviceType = NVML_NVLINK_DEVICE_TYPE_SWITCH;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned int link,
						 nvmlPciInfo_t *pci)
{
	const struct gp_sim_model *m;
	unsigned i, bus, switches;
	nvmlReturn_t rc = nvlink(device, link, pci, &i);

	if (rc)
		return rc;
	m = gp__sim_model(gp__sim_machine()->cfg.gpu[i].model);
	switches = m->nvswitches > 0 ? (unsigned)m->nvswitches : 1;
	/* Links are dealt round the switches (link k to switch k % count),
	 * the same for every GPU: every GPU of the machine reaches every
	 * switch, as on an HGX baseboard. */
	bus = (NVSWITCH_BUS + link % switches) & 0xffu;
	memset(pci, 0, sizeof *pci);
	snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", bus);
	snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", bus);
	pci->bus = bus;
	pci->pciDeviceId = (m->nvswitch_pci_device << 16) | 0x10de;
	pci->pciSubSystemId = (0x1796u << 16) | 0x10de;
	return NVML_SUCCESS;
}
