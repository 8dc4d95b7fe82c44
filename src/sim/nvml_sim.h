/* nvml_sim.h - what the files of the simulated libnvidia-ml.so.1 share:
 * the init reference count and device handle checks.
 *
 * NVML sees the same machine as the driver of its process (it calls the
 * gp__sim_* functions libcuda.so.1 exports) but not CUDA_VISIBLE_DEVICES:
 * it lists every GPU of the machine, as the real NVML does.
 */
#ifndef GP_SIM_NVML_SIM_H
#define GP_SIM_NVML_SIM_H

#include "common/nvml.h"
#include "sim/state.h"

/* The driver version NVML reports (the R580 branch ships CUDA 13.0). */
#define GP_SIM_NVML_DRIVER "580.82.07"

/* NVML_SUCCESS when nvmlInit has been called more often than
 * nvmlShutdown, else NVML_ERROR_UNINITIALIZED. */
nvmlReturn_t gp__sim_nvml_ready(void);

/* Check a device handle: NVML_SUCCESS and the machine index in *index,
 * NVML_ERROR_UNINITIALIZED, or NVML_ERROR_INVALID_ARGUMENT. */
nvmlReturn_t gp__sim_nvml_dev(nvmlDevice_t device, unsigned *index);

/* Copy `s` into a caller's buffer of `length` bytes: NVML_SUCCESS, or
 * NVML_ERROR_INSUFFICIENT_SIZE when it does not fit with its NUL. */
nvmlReturn_t gp__sim_nvml_copy_str(char *buf, unsigned length, const char *s);

#endif
