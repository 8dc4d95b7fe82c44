/* nvml.h - the NVIDIA Management Library, loaded at run time.
 *
 * The agent must start on any node, GPU or not, and with --sim talk to the
 * simulated library instead of the real one, so it does not link
 * libnvidia-ml: it dlopens it and looks up the functions it uses.  A
 * function missing from an older driver's library is left NULL (callers
 * check) rather than failing the load: the agent then reports less.
 */
#ifndef GP_AGENT_NVML_H
#define GP_AGENT_NVML_H

#include <stddef.h>

#include "common/nvml.h"

/* Every function the agent calls: X(name).  The first group is required. */
#define GP_NVML_REQUIRED(X)                                                  \
	X(nvmlInit_v2) X(nvmlShutdown) X(nvmlErrorString) X(nvmlDeviceGetCount_v2)   \
	X(nvmlDeviceGetHandleByIndex_v2) X(nvmlDeviceGetUUID) X(nvmlDeviceGetName)   \
	X(nvmlDeviceGetMemoryInfo)
#define GP_NVML_OPTIONAL(X)                                                  \
	X(nvmlDeviceGetPciInfo_v3) X(nvmlDeviceGetUtilizationRates)                 \
	X(nvmlDeviceGetComputeRunningProcesses_v3) X(nvmlDeviceGetProcessUtilization) \
	X(nvmlDeviceGetNumaNodeId) X(nvmlDeviceGetTopologyCommonAncestor)            \
	X(nvmlDeviceGetNvLinkState) X(nvmlDeviceGetNvLinkRemotePciInfo_v2)           \
	X(nvmlDeviceGetNvLinkRemoteDeviceType) X(nvmlDeviceGetTotalEccErrors)        \
	X(nvmlDeviceGetSupportedEventTypes) X(nvmlEventSetCreate)                    \
	X(nvmlDeviceRegisterEvents) X(nvmlEventSetWait_v2) X(nvmlEventSetFree)       \
	X(nvmlSystemGetDriverVersion)

struct gp_nvml {
	void *dl; /* the dlopen handle */
#define GP_NVML_FIELD(name) __typeof__(name) *name;
	GP_NVML_REQUIRED(GP_NVML_FIELD)
	GP_NVML_OPTIONAL(GP_NVML_FIELD)
#undef GP_NVML_FIELD
};

/* dlopen `path` (NULL: libnvidia-ml.so.1 from the library path), look the
 * functions up and call nvmlInit_v2.  Returns 0, or -ENOENT (the library
 * cannot be loaded), -ENOSYS (a required function is missing) or -EIO
 * (nvmlInit_v2 failed), with the reason in err. */
int gp_nvml_open(struct gp_nvml *n, const char *path, char *err, size_t len)
	__attribute__((warn_unused_result));

/* nvmlShutdown and dlclose; a closed or zeroed struct is left alone. */
void gp_nvml_close(struct gp_nvml *n);

/* NVML's description of rc (never NULL). */
const char *gp_nvml_str(const struct gp_nvml *n, nvmlReturn_t rc);

#endif
