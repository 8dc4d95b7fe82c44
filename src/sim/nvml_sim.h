/* nvml_sim.h - what the files of the simulated libnvidia-ml.so.1 share:
 * the init reference count and device handles.
 *
 * NVML sees the same machine as the driver of its process (it calls the
 * gp__sim_* functions libcuda.so.1 exports) but not CUDA_VISIBLE_DEVICES:
 * it lists every GPU of the machine, as the real NVML does.
 */
#ifndef GP_SIM_NVML_SIM_H
#define GP_SIM_NVML_SIM_H

#include "common/nvml.h"
#include "sim/fault.h"
#include "sim/state.h"

/* The driver version NVML reports (the R580 branch ships CUDA 13.0). */
#define GP_SIM_NVML_DRIVER "580.82.07"

/* NVML_SUCCESS when nvmlInit has been called more often than
 * nvmlShutdown, else NVML_ERROR_UNINITIALIZED. */
nvmlReturn_t gp__sim_nvml_ready(void);

/* Check a device handle: NVML_SUCCESS and the machine index in *index,
 * NVML_ERROR_UNINITIALIZED, NVML_ERROR_INVALID_ARGUMENT, or
 * NVML_ERROR_GPU_IS_LOST when the GPU has fallen off the bus (fault.h):
 * every query on a lost GPU's handle fails so, as on a real driver. */
nvmlReturn_t gp__sim_nvml_dev(nvmlDevice_t device, unsigned *index);

/* The handle of machine GPU `index` (< the machine's GPU count). */
nvmlDevice_t gp__sim_nvml_handle(unsigned index);

/* The event types every simulated GPU reports (nvml_health.c): Xid
 * errors and single- and double-bit ECC errors. */
unsigned long long gp__sim_nvml_supported_events(void);

/* Copy `s` into a caller's buffer of `length` bytes: NVML_SUCCESS, or
 * NVML_ERROR_INSUFFICIENT_SIZE when it does not fit with its NUL. */
nvmlReturn_t gp__sim_nvml_copy_str(char *buf, unsigned length, const char *s);

#endif
