/* nvml_health.c - what NVML says about a GPU's health: ECC error counters
 * and the event types it can report.  Faults are injected from outside
 * (gpupool-simctl, fault.h); a lost GPU answers NVML_ERROR_GPU_IS_LOST
 * here as everywhere (gp__sim_nvml_dev). */
#include "sim/nvml_sim.h"

/* The events the simulator raises: those fault injection can cause. */
#define SUPPORTED                                                            \
	(nvmlEventTypeSingleBitEccError | nvmlEventTypeDoubleBitEccError |   \
	 nvmlEventTypeXidCriticalError)

_Static_assert(GP_SIM_EV_SBE == nvmlEventTypeSingleBitEccError &&
		       GP_SIM_EV_DBE == nvmlEventTypeDoubleBitEccError &&
		       GP_SIM_EV_XID == nvmlEventTypeXidCriticalError,
	       "fault.h event types are the NVML event bits");

unsigned long long gp__sim_nvml_supported_events(void)
{
	return SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t errorType,
					 nvmlEccCounterType_t counterType,
					 unsigned long long *eccCounts)
{
	unsigned i;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!eccCounts || (errorType != NVML_MEMORY_ERROR_TYPE_CORRECTED &&
			   errorType != NVML_MEMORY_ERROR_TYPE_UNCORRECTED) ||
	    (counterType != NVML_VOLATILE_ECC && counterType != NVML_AGGREGATE_ECC))
		return NVML_ERROR_INVALID_ARGUMENT;
	/* Volatile (since the driver loaded) and aggregate (the card's life)
	 * are the same here: the simulated driver never reloads. */
	*eccCounts = gp__sim_ecc(i, errorType == NVML_MEMORY_ERROR_TYPE_UNCORRECTED);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *eventTypes)
{
	unsigned i;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!eventTypes)
		return NVML_ERROR_INVALID_ARGUMENT;
	*eventTypes = SUPPORTED;
	return NVML_SUCCESS;
}
