/* device.c - device queries: cuDeviceGet*, attributes, PCI identity, peer
 * access.  CUdevice values are ordinals among the visible devices. */
#include "sim/context.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sim/state.h"

/* Where an attribute's value comes from. */
enum src {
	K,             /* the constant `k` */
	SMS,           /* configured SM count */
	CLOCK, MEMCLOCK, BUSW, L2, SMEM_SM, SMEM_OPTIN, THREADS_SM, BLOCKS_SM,
	CC_MAJOR, CC_MINOR,
	PCI_BUS,
	PERSIST_L2,    /* 3/5 of L2 */
	CLUSTER,       /* 1 from compute capability 9.0 */
	SYNC_DOMAINS,  /* 4 from 9.0, else 1 */
	BOARD,         /* machine index */
	PCI_IDS,       /* (device << 16) | vendor */
	PCI_SUBSYS,
	HOST_NUMA,     /* the NUMA node NVML reports (gp__sim_gpu_numa) */
};

static const struct {
	CUdevice_attribute a;
	enum src src;
	int k;
} attrs[] = {
	{CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, K, 1024},
	{CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, K, 1024},
	{CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y, K, 1024},
	{CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z, K, 64},
	{CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, K, 2147483647},
	{CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y, K, 65535},
	{CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z, K, 65535},
	{CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, K, 49152},
	{CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY, K, 65536},
	{CU_DEVICE_ATTRIBUTE_WARP_SIZE, K, 32},
	{CU_DEVICE_ATTRIBUTE_MAX_PITCH, K, 2147483647},
	{CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, K, 65536},
	{CU_DEVICE_ATTRIBUTE_CLOCK_RATE, CLOCK, 0},
	{CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT, K, 512},
	{CU_DEVICE_ATTRIBUTE_GPU_OVERLAP, K, 1},
	{CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, SMS, 0},
	{CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT, K, 0},
	{CU_DEVICE_ATTRIBUTE_INTEGRATED, K, 0},
	{CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY, K, 1},
	{CU_DEVICE_ATTRIBUTE_COMPUTE_MODE, K, CU_COMPUTEMODE_DEFAULT},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_WIDTH, K, 131072},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_WIDTH, K, 131072},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_HEIGHT, K, 65536},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH, K, 16384},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT, K, 16384},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH, K, 16384},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_HEIGHT, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_LAYERS, K, 2048},
	{CU_DEVICE_ATTRIBUTE_SURFACE_ALIGNMENT, K, 512},
	{CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS, K, 1},
	{CU_DEVICE_ATTRIBUTE_ECC_ENABLED, K, 1},
	{CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, PCI_BUS, 0},
	{CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, K, 0},
	{CU_DEVICE_ATTRIBUTE_TCC_DRIVER, K, 0},
	{CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, MEMCLOCK, 0},
	{CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, BUSW, 0},
	{CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, L2, 0},
	{CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, THREADS_SM, 0},
	{CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT, K, 2},
	{CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, K, 1},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_LAYERS, K, 2048},
	{CU_DEVICE_ATTRIBUTE_CAN_TEX2D_GATHER, K, 1},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_HEIGHT, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH_ALTERNATE, K, 8192},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT_ALTERNATE, K, 8192},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH_ALTERNATE, K, 32768},
	{CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, K, 0},
	{CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT, K, 32},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_LAYERS, K, 2046},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_WIDTH, K, 131072},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_HEIGHT, K, 65536},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_WIDTH, K, 16384},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_HEIGHT, K, 16384},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_DEPTH, K, 16384},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_LAYERS, K, 2048},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_HEIGHT, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_LAYERS, K, 2048},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_LAYERS, K, 2046},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LINEAR_WIDTH, K, 268435456},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_WIDTH, K, 131072},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_HEIGHT, K, 65000},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_PITCH, K, 2097120},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_HEIGHT, K, 32768},
	{CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CC_MAJOR, 0},
	{CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, CC_MINOR, 0},
	{CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH, K, 32768},
	{CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED, K, 1},
	{CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED, K, 1},
	{CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED, K, 1},
	{CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, SMEM_SM, 0},
	{CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, K, 65536},
	{CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, K, 1},
	{CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD, K, 0},
	{CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD_GROUP_ID, BOARD, 0},
	{CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO, K, 2},
	{CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS, K, 0},
	{CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS, K, 1},
	{CU_DEVICE_ATTRIBUTE_COMPUTE_PREEMPTION_SUPPORTED, K, 1},
	{CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM, K, 1},
	{CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_MEM_OPS_V1, K, 0},
	{CU_DEVICE_ATTRIBUTE_CAN_USE_64_BIT_STREAM_MEM_OPS_V1, K, 0},
	{CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_WAIT_VALUE_NOR_V1, K, 0},
	{CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH, K, 1},
	{CU_DEVICE_ATTRIBUTE_COOPERATIVE_MULTI_DEVICE_LAUNCH, K, 0},
	{CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, SMEM_OPTIN, 0},
	{CU_DEVICE_ATTRIBUTE_CAN_FLUSH_REMOTE_WRITES, K, 0},
	{CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED, K, 1},
	{CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES, K, 0},
	{CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST, K, 0},
	{CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, K, 1},
	{CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, K, 1},
	{CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_HANDLE_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_KMT_HANDLE_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR, BLOCKS_SM, 0},
	{CU_DEVICE_ATTRIBUTE_GENERIC_COMPRESSION_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE, PERSIST_L2, 0},
	{CU_DEVICE_ATTRIBUTE_MAX_ACCESS_POLICY_WINDOW_SIZE, K, 134213632},
	{CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK, K, 1024},
	{CU_DEVICE_ATTRIBUTE_SPARSE_CUDA_ARRAY_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED, K, 1},
	{CU_DEVICE_ATTRIBUTE_TIMELINE_SEMAPHORE_INTEROP_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, K, 1},
	{CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_FLUSH_WRITES_OPTIONS, K, 0},
	{CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WRITES_ORDERING, K, 0},
	{CU_DEVICE_ATTRIBUTE_MEMPOOL_SUPPORTED_HANDLE_TYPES, K, 0},
	{CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH, CLUSTER, 0},
	{CU_DEVICE_ATTRIBUTE_DEFERRED_MAPPING_CUDA_ARRAY_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_CAN_USE_64_BIT_STREAM_MEM_OPS, K, 0},
	{CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_WAIT_VALUE_NOR, K, 0},
	{CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_IPC_EVENT_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_MEM_SYNC_DOMAIN_COUNT, SYNC_DOMAINS, 0},
	{CU_DEVICE_ATTRIBUTE_TENSOR_MAP_ACCESS_SUPPORTED, CLUSTER, 0},
	{CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_UNIFIED_FUNCTION_POINTERS, K, 1},
	{CU_DEVICE_ATTRIBUTE_NUMA_CONFIG, K, 0},
	{CU_DEVICE_ATTRIBUTE_NUMA_ID, K, -1},
	{CU_DEVICE_ATTRIBUTE_MULTICAST_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_MPS_ENABLED, K, 0},
	{CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, HOST_NUMA, 0},
	{CU_DEVICE_ATTRIBUTE_D3D12_CIG_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_MEM_DECOMPRESS_ALGORITHM_MASK, K, 0},
	{CU_DEVICE_ATTRIBUTE_MEM_DECOMPRESS_MAXIMUM_LENGTH, K, 0},
	{CU_DEVICE_ATTRIBUTE_VULKAN_CIG_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_GPU_PCI_DEVICE_ID, PCI_IDS, 0},
	{CU_DEVICE_ATTRIBUTE_GPU_PCI_SUBSYSTEM_ID, PCI_SUBSYS, 0},
	{CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_HOST_NUMA_MEMORY_POOLS_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_HOST_NUMA_MULTINODE_IPC_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_HOST_MEMORY_POOLS_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_HOST_ALLOC_DMA_BUF_SUPPORTED, K, 0},
	{CU_DEVICE_ATTRIBUTE_ONLY_PARTIAL_HOST_NATIVE_ATOMIC_SUPPORTED, K, 0},
};

/* The configured GPU behind visible ordinal `dev`, or NULL. */
static const struct gp_sim_gpu *gpu_of(CUdevice dev, int *index)
{
	int i = gp__sim_visible_index(dev);

	if (i < 0)
		return NULL;
	if (index)
		*index = i;
	return &gp__sim_machine()->cfg.gpu[i];
}

static int attr_value(enum src src, int k, const struct gp_sim_gpu *g, int index)
{
	const struct gp_sim_model *m = gp__sim_model(g->model);

	switch (src) {
	case K: return k;
	case SMS: return (int)g->sms;
	case CLOCK: return m->clock_khz;
	case MEMCLOCK: return m->mem_clock_khz;
	case BUSW: return m->bus_width;
	case L2: return m->l2_bytes;
	case SMEM_SM: return m->smem_per_sm;
	case SMEM_OPTIN: return m->smem_optin;
	case THREADS_SM: return m->threads_per_sm;
	case BLOCKS_SM: return m->blocks_per_sm;
	case CC_MAJOR: return m->cc_major;
	case CC_MINOR: return m->cc_minor;
	case PCI_BUS: return (int)gp__sim_gpu_pci_bus((unsigned)index);
	case PERSIST_L2: return m->l2_bytes / 5 * 3;
	case CLUSTER: return m->cc_major >= 9;
	case SYNC_DOMAINS: return m->cc_major >= 9 ? 4 : 1;
	case BOARD: return index;
	case PCI_IDS: return (int)((m->pci_device << 16) | 0x10de);
	case PCI_SUBSYS: return (int)((0x16c1u << 16) | 0x10de);
	case HOST_NUMA: return (int)gp__sim_gpu_numa((unsigned)index, gp__sim_machine()->cfg.n);
	}
	return 0;
}

CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
	const struct gp_sim_gpu *g;
	int index;

	GP_SIM_ENTER();
	if (!pi)
		return CUDA_ERROR_INVALID_VALUE;
	g = gpu_of(dev, &index);
	if (!g)
		return CUDA_ERROR_INVALID_DEVICE;
	for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++) {
		if (attrs[i].a == attrib) {
			*pi = attr_value(attrs[i].src, attrs[i].k, g, index);
			return CUDA_SUCCESS;
		}
	}
	return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
	GP_SIM_ENTER();
	if (!device)
		return CUDA_ERROR_INVALID_VALUE;
	if (gp__sim_visible_index(ordinal) < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	*device = ordinal;
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count)
{
	GP_SIM_ENTER();
	if (!count)
		return CUDA_ERROR_INVALID_VALUE;
	*count = gp__sim_visible_count();
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
	const struct gp_sim_gpu *g;

	GP_SIM_ENTER();
	if (!name || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	g = gpu_of(dev, NULL);
	if (!g)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_gpu_name(g->model, name, (size_t)len);
	return CUDA_SUCCESS;
}

static CUresult get_uuid(CUuuid *uuid, CUdevice dev)
{
	const struct gp_sim_gpu *g;
	int index;

	GP_SIM_ENTER();
	if (!uuid)
		return CUDA_ERROR_INVALID_VALUE;
	g = gpu_of(dev, &index);
	if (!g)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_gpu_uuid((unsigned)index, g->model, (unsigned char *)uuid->bytes);
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
	return get_uuid(uuid, dev);
}

CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
	return get_uuid(uuid, dev);
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
	const struct gp_sim_gpu *g;

	GP_SIM_ENTER();
	if (!bytes)
		return CUDA_ERROR_INVALID_VALUE;
	g = gpu_of(dev, NULL);
	if (!g)
		return CUDA_ERROR_INVALID_DEVICE;
	*bytes = (size_t)g->memory;
	return CUDA_SUCCESS;
}

/* The 32-bit legacy entry point: saturates at 4 GiB - 1. */
CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
	size_t b;
	CUresult rc;

	if (!bytes)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	rc = cuDeviceTotalMem_v2(&b, dev);
	if (!rc)
		*bytes = b > 0xffffffffu ? 0xffffffffu : (unsigned)b;
	return rc;
}

CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice dev)
{
	const struct gp_sim_gpu *g;

	GP_SIM_ENTER();
	if (!major || !minor)
		return CUDA_ERROR_INVALID_VALUE;
	g = gpu_of(dev, NULL);
	if (!g)
		return CUDA_ERROR_INVALID_DEVICE;
	*major = gp__sim_model(g->model)->cc_major;
	*minor = gp__sim_model(g->model)->cc_minor;
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev)
{
	int index;

	GP_SIM_ENTER();
	if (!pciBusId || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (!gpu_of(dev, &index))
		return CUDA_ERROR_INVALID_DEVICE;
	snprintf(pciBusId, (size_t)len, "0000:%02x:00.0", gp__sim_gpu_pci_bus((unsigned)index));
	return CUDA_SUCCESS;
}

/* Parse "[domain:]bus:device.function" (hex).  1 on success. */
static int parse_bus_id(const char *s, unsigned *domain, unsigned *bus, unsigned *device,
			unsigned *fn)
{
	unsigned v[4];
	int n = 0, digits = 0;
	char seps[3] = {0};

	v[0] = 0;
	for (; *s; s++) {
		if (isxdigit((unsigned char)*s)) {
			if (++digits > 8)
				return 0;
			v[n] = v[n] * 16 + (unsigned)(isdigit((unsigned char)*s)
							     ? *s - '0'
							     : tolower((unsigned char)*s) - 'a' + 10);
		} else if ((*s == ':' || *s == '.') && digits && n < 3) {
			seps[n++] = *s;
			v[n] = 0;
			digits = 0;
		} else {
			return 0;
		}
	}
	if (!digits)
		return 0;
	if (n == 3 && seps[0] == ':' && seps[1] == ':' && seps[2] == '.') {
		*domain = v[0], *bus = v[1], *device = v[2], *fn = v[3];
		return 1;
	}
	if (n == 2 && seps[0] == ':' && seps[1] == '.') {
		*domain = 0, *bus = v[0], *device = v[1], *fn = v[2];
		return 1;
	}
	return 0;
}

CUresult cuDeviceGetByPCIBusId(CUdevice *dev, const char *pciBusId)
{
	unsigned domain, bus, device, fn;

	GP_SIM_ENTER();
	if (!dev || !pciBusId)
		return CUDA_ERROR_INVALID_VALUE;
	if (!parse_bus_id(pciBusId, &domain, &bus, &device, &fn))
		return CUDA_ERROR_INVALID_VALUE;
	for (int i = 0; i < gp__sim_visible_count(); i++) {
		if (domain == 0 && device == 0 && fn == 0 &&
		    bus == gp__sim_gpu_pci_bus((unsigned)gp__sim_visible_index(i))) {
			*dev = i;
			return CUDA_SUCCESS;
		}
	}
	return CUDA_ERROR_INVALID_DEVICE;
}

CUresult cuDeviceCanAccessPeer(int *canAccessPeer, CUdevice dev, CUdevice peerDev)
{
	GP_SIM_ENTER();
	if (!canAccessPeer)
		return CUDA_ERROR_INVALID_VALUE;
	if (!gpu_of(dev, NULL) || !gpu_of(peerDev, NULL))
		return CUDA_ERROR_INVALID_DEVICE;
	*canAccessPeer = dev != peerDev;
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetP2PAttribute(int *value, CUdevice_P2PAttribute attrib, CUdevice srcDevice,
				 CUdevice dstDevice)
{
	GP_SIM_ENTER();
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	if (!gpu_of(srcDevice, NULL) || !gpu_of(dstDevice, NULL) || srcDevice == dstDevice)
		return CUDA_ERROR_INVALID_DEVICE;
	switch (attrib) {
	case CU_DEVICE_P2P_ATTRIBUTE_PERFORMANCE_RANK: *value = 0; break;
	case CU_DEVICE_P2P_ATTRIBUTE_ACCESS_SUPPORTED:
	case CU_DEVICE_P2P_ATTRIBUTE_NATIVE_ATOMIC_SUPPORTED:
	case CU_DEVICE_P2P_ATTRIBUTE_CUDA_ARRAY_ACCESS_SUPPORTED: *value = 1; break;
	default: return CUDA_ERROR_INVALID_VALUE;
	}
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetExecAffinitySupport(int *pi, CUexecAffinityType type, CUdevice dev)
{
	GP_SIM_ENTER();
	if (!pi || (unsigned)type >= CU_EXEC_AFFINITY_TYPE_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	if (!gpu_of(dev, NULL))
		return CUDA_ERROR_INVALID_DEVICE;
	*pi = type == CU_EXEC_AFFINITY_TYPE_SM_COUNT;
	return CUDA_SUCCESS;
}

/* --- peer access between contexts ------------------------------------------ */

CUresult cuCtxEnablePeerAccess(CUcontext peerContext, unsigned int Flags)
{
	struct gp_sim_ctx *c, *p;
	CUresult rc;

	GP_SIM_ENTER();
	if (Flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (!rc && (!peerContext || gp__sim_ctx_get_locked(peerContext, &p)))
		rc = CUDA_ERROR_INVALID_CONTEXT;
	if (!rc && p->dev == c->dev)
		rc = CUDA_ERROR_INVALID_DEVICE;
	if (!rc && (c->peers & (1u << p->dev)))
		rc = CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED;
	if (!rc)
		c->peers |= 1u << p->dev;
	gp__sim_unlock();
	return rc;
}

CUresult cuCtxDisablePeerAccess(CUcontext peerContext)
{
	struct gp_sim_ctx *c, *p;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (!rc && (!peerContext || gp__sim_ctx_get_locked(peerContext, &p)))
		rc = CUDA_ERROR_INVALID_CONTEXT;
	if (!rc && !(c->peers & (1u << p->dev)))
		rc = CUDA_ERROR_PEER_ACCESS_NOT_ENABLED;
	if (!rc)
		c->peers &= ~(1u << p->dev);
	gp__sim_unlock();
	return rc;
}
