/* nvml.c - NVML initialization, errors and system queries. */
#include "sim/nvml_sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define __CUDA_API_VERSION_INTERNAL
#include <cuda.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned refs; /* nvmlInit calls not yet matched by nvmlShutdown */

nvmlReturn_t gp__sim_nvml_ready(void)
{
	return __atomic_load_n(&refs, __ATOMIC_ACQUIRE) ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

nvmlReturn_t gp__sim_nvml_copy_str(char *buf, unsigned length, const char *s)
{
	size_t n = strlen(s);

	if (!buf)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (n + 1 > length)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(buf, s, n + 1);
	return NVML_SUCCESS;
}

static nvmlReturn_t init(void)
{
	nvmlReturn_t rc = NVML_SUCCESS;
	int err;

	pthread_mutex_lock(&mu);
	if (refs == 0) {
		/* The machine the driver of this process uses (opened once). */
		err = gp__sim_machine_open();
		if (err == -EINVAL || err == -EPROTO)
			rc = NVML_ERROR_UNKNOWN;       /* bad configuration; logged */
		else if (err)
			rc = NVML_ERROR_DRIVER_NOT_LOADED;
	}
	if (rc == NVML_SUCCESS)
		__atomic_add_fetch(&refs, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlInit(void)
{
	return init();
}

nvmlReturn_t nvmlInit_v2(void)
{
	return init();
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
	/* NVML_INIT_FLAG_NO_GPUS (1), NVML_INIT_FLAG_NO_ATTACH (2). */
	if (flags & ~3u)
		return NVML_ERROR_INVALID_ARGUMENT;
	return init();
}

nvmlReturn_t nvmlShutdown(void)
{
	nvmlReturn_t rc = NVML_SUCCESS;

	pthread_mutex_lock(&mu);
	if (refs == 0)
		rc = NVML_ERROR_UNINITIALIZED;
	else
		__atomic_sub_fetch(&refs, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&mu);
	return rc;
}

static const struct {
	nvmlReturn_t code;
	const char *text;
} errors[] = {
	{NVML_SUCCESS, "Success"},
	{NVML_ERROR_UNINITIALIZED, "Uninitialized"},
	{NVML_ERROR_INVALID_ARGUMENT, "Invalid Argument"},
	{NVML_ERROR_NOT_SUPPORTED, "Not Supported"},
	{NVML_ERROR_NO_PERMISSION, "Insufficient Permissions"},
	{NVML_ERROR_ALREADY_INITIALIZED, "Already Initialized"},
	{NVML_ERROR_NOT_FOUND, "Not Found"},
	{NVML_ERROR_INSUFFICIENT_SIZE, "Insufficient Size"},
	{NVML_ERROR_INSUFFICIENT_POWER, "Insufficient External Power"},
	{NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded"},
	{NVML_ERROR_TIMEOUT, "Timeout"},
	{NVML_ERROR_IRQ_ISSUE, "Interrupt Request Issue"},
	{NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found"},
	{NVML_ERROR_FUNCTION_NOT_FOUND, "Function Not Found"},
	{NVML_ERROR_CORRUPTED_INFOROM, "Corrupted infoROM"},
	{NVML_ERROR_GPU_IS_LOST, "GPU is lost"},
	{NVML_ERROR_RESET_REQUIRED, "GPU requires restart"},
	{NVML_ERROR_OPERATING_SYSTEM, "The operating system has blocked the request."},
	{NVML_ERROR_LIB_RM_VERSION_MISMATCH, "RM has detected an NVML/RM version mismatch."},
	{NVML_ERROR_IN_USE, "In use by another client"},
	{NVML_ERROR_MEMORY, "Insufficient Memory"},
	{NVML_ERROR_NO_DATA, "No data"},
	{NVML_ERROR_VGPU_ECC_NOT_ENABLED,
	 "Requested vgpu operation is not available on target device becasue ECC is disabled"},
	{NVML_ERROR_INSUFFICIENT_RESOURCES, "Insufficient resources for request"},
	{NVML_ERROR_FREQ_NOT_SUPPORTED, "Frequency not supported"},
	{NVML_ERROR_ARGUMENT_VERSION_MISMATCH, "Argument version mismatch"},
	{NVML_ERROR_DEPRECATED, "Deprecated"},
	{NVML_ERROR_NOT_READY, "Not Ready"},
	{NVML_ERROR_GPU_NOT_FOUND, "GPU not found"},
	{NVML_ERROR_INVALID_STATE, "Invalid state"},
	{NVML_ERROR_UNKNOWN, "Unknown Error"},
};

const char *nvmlErrorString(nvmlReturn_t result)
{
	for (size_t i = 0; i < sizeof errors / sizeof *errors; i++)
		if (errors[i].code == result)
			return errors[i].text;
	return "Unknown Error";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
	nvmlReturn_t rc = gp__sim_nvml_ready();

	return rc ? rc : gp__sim_nvml_copy_str(version, length, GP_SIM_NVML_DRIVER);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
	char v[64];
	nvmlReturn_t rc = gp__sim_nvml_ready();

	snprintf(v, sizeof v, "%d.%s", CUDA_VERSION / 1000, GP_SIM_NVML_DRIVER);
	return rc ? rc : gp__sim_nvml_copy_str(version, length, v);
}

static nvmlReturn_t cuda_version(int *v)
{
	nvmlReturn_t rc = gp__sim_nvml_ready();

	if (rc)
		return rc;
	if (!v)
		return NVML_ERROR_INVALID_ARGUMENT;
	*v = CUDA_VERSION;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion)
{
	return cuda_version(cudaDriverVersion);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)
{
	return cuda_version(cudaDriverVersion);
}
