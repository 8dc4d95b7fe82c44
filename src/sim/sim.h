/* sim.h - what every file of the simulated CUDA driver (libcuda.so.1) shares:
 * the driver header in its internal mode, the process lock, the entry
 * check and the visible devices (the modelling constants are in
 * machine.h).
 *
 * The simulator is one process-local object graph (contexts, streams,
 * allocations, ...) guarded by one process lock, on top of one machine
 * state shared by every process through a mapped file (state.h).  Lock
 * order: the process lock, then the machine lock; nothing sleeps or waits
 * on a device completion while holding either.
 */
#ifndef GP_SIM_SIM_H
#define GP_SIM_SIM_H

/* Declares both the legacy and the versioned names (cuMemAlloc and
 * cuMemAlloc_v2, cuLaunchKernel and cuLaunchKernel_ptsz ...) so that every
 * exported variant is defined against its own prototype. */
#define __CUDA_API_VERSION_INTERNAL
#include <cuda.h>

#include <stddef.h>
#include <stdint.h>

#include "sim/machine.h"

/* Internal functions returning a CUresult: the caller must look at it. */
#define GP_SIM_WUR __attribute__((warn_unused_result))

/* The version this driver reports (cuDriverGetVersion, NVML). */
#define GP_SIM_DRIVER_VERSION CUDA_VERSION

/* --- the process lock --------------------------------------------------- */

/* Guards every process-local table of the simulator.  Not recursive:
 * functions named *_locked expect it held. */
void gp__sim_lock(void);
void gp__sim_unlock(void);

/* --- entry ------------------------------------------------------------- */

/* CUDA_SUCCESS when the driver may be used by this call: cuInit succeeded
 * in this process.  CUDA_ERROR_NOT_INITIALIZED before cuInit and forever in
 * a child forked from a process that had initialised the driver. */
CUresult gp__sim_ready(void);

/* An argument error, reported as such only when the driver is usable
 * (before cuInit every call says CUDA_ERROR_NOT_INITIALIZED). */
static inline CUresult gp__sim_arg_error(CUresult code)
{
	CUresult r = gp__sim_ready();

	return r != CUDA_SUCCESS ? r : code;
}

/* First statement of every entry point that needs cuInit. */
#define GP_SIM_ENTER()                                                       \
	do {                                                                     \
		CUresult enter_rc_ = gp__sim_ready();                                \
		if (enter_rc_ != CUDA_SUCCESS)                                       \
			return enter_rc_;                                                \
	} while (0)

/* --- devices as this process sees them (CUDA_VISIBLE_DEVICES) ---------- */

/* Number of visible devices (after cuInit). */
int gp__sim_visible_count(void);

/* Machine index of visible ordinal `ordinal`, or -1 if out of range. */
int gp__sim_visible_index(int ordinal);

/* Visible ordinal of machine index `index`, or -1 if it is not visible. */
int gp__sim_visible_ordinal(int index);

#endif
