/* nvml_process.c - what NVML derives from the device timeline and the
 * process slots: utilization, running processes, per-process
 * utilization. */
#include "sim/nvml_sim.h"

#include <pthread.h>
#include <string.h>

#include "common/clock.h"
#include "sim/timeline.h"

#define SAMPLE_NS 1000000000ull   /* the sample period: the last second */
#define NO_MIG 0xFFFFFFFFu

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
	unsigned i, gpu, mem;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!utilization)
		return NVML_ERROR_INVALID_ARGUMENT;
	gp__sim_timeline_util(i, SAMPLE_NS, &gpu, &mem);
	utilization->gpu = gpu > 100 ? 100 : gpu;
	utilization->memory = mem > 100 ? 100 : mem;
	return NVML_SUCCESS;
}

/* Fill the caller's array with the processes using device i: `shape`
 * 1 for nvmlProcessInfo_v1_t, 2 for nvmlProcessInfo_v2_t; `compute` 0
 * lists graphics processes (there are none on the simulator). */
static nvmlReturn_t running(nvmlDevice_t device, unsigned *count, void *infos, int shape,
			    int compute)
{
	struct gp_sim_procinfo p[GP_SIM_STATE_PROCS];
	unsigned i, n = 0;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!count || (*count && !infos))
		return NVML_ERROR_INVALID_ARGUMENT;
	if (compute)
		n = gp__sim_dev_procs(i, p, GP_SIM_STATE_PROCS);
	if (n > *count) {
		*count = n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	for (unsigned k = 0; k < n; k++) {
		if (shape == 1) {
			nvmlProcessInfo_v1_t *o = (nvmlProcessInfo_v1_t *)infos + k;
			o->pid = (unsigned)p[k].pid;
			o->usedGpuMemory = p[k].used;
		} else {
			nvmlProcessInfo_v2_t *o = (nvmlProcessInfo_v2_t *)infos + k;
			o->pid = (unsigned)p[k].pid;
			o->usedGpuMemory = p[k].used;
			o->gpuInstanceId = NO_MIG;
			o->computeInstanceId = NO_MIG;
		}
	}
	*count = n;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
						  nvmlProcessInfo_v1_t *infos)
{
	return running(device, infoCount, infos, 1, 1);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
						     nvmlProcessInfo_v2_t *infos)
{
	return running(device, infoCount, infos, 2, 1);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
						     nvmlProcessInfo_t *infos)
{
	return running(device, infoCount, infos, 2, 1);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
						   nvmlProcessInfo_v1_t *infos)
{
	return running(device, infoCount, infos, 1, 0);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
						      nvmlProcessInfo_v2_t *infos)
{
	return running(device, infoCount, infos, 2, 0);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
						      nvmlProcessInfo_t *infos)
{
	return running(device, infoCount, infos, 2, 0);
}

/* CLOCK_REALTIME minus CLOCK_MONOTONIC, read once: every timestamp this
 * process hands out converts the same way, so a sample's timeStamp passed
 * back as lastSeenTimeStamp matches exactly. */
static uint64_t offset;
static pthread_once_t offset_once = PTHREAD_ONCE_INIT;

static void read_offset(void)
{
	offset = gp_wall_ns() - gp_now_ns();
}

static uint64_t wall_offset(void)
{
	pthread_once(&offset_once, read_offset);
	return offset;
}

/* One sample per process that ran on the device after lastSeenTimeStamp
 * (CPU time in microseconds since the epoch, as NVML's timestamps are):
 * its share of the last sample period, stamped with the end of its latest
 * activity.  NVML_ERROR_NOT_FOUND when there is none. */
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
					     nvmlProcessUtilizationSample_t *utilization,
					     unsigned int *processSamplesCount,
					     unsigned long long lastSeenTimeStamp)
{
	struct gp_sim_pidbusy b[GP_SIM_STATE_PROCS];
	uint64_t now = gp_now_ns(), off = wall_offset();
	uint64_t from = now > SAMPLE_NS ? now - SAMPLE_NS : 0;
	unsigned i, n, k = 0;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	if (!processSamplesCount)
		return NVML_ERROR_INVALID_ARGUMENT;
	n = gp__sim_timeline_by_pid(i, from, now, b, GP_SIM_STATE_PROCS);
	/* Keep those active since lastSeen. */
	for (unsigned j = 0; j < n; j++)
		if ((b[j].last_ns + off) / 1000ull > lastSeenTimeStamp)
			b[k++] = b[j];
	if (k == 0) {
		*processSamplesCount = 0;
		return NVML_ERROR_NOT_FOUND;
	}
	if (!utilization || *processSamplesCount < k) {
		*processSamplesCount = k;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	for (unsigned j = 0; j < k; j++) {
		nvmlProcessUtilizationSample_t *s = &utilization[j];
		memset(s, 0, sizeof *s);
		s->pid = (unsigned)b[j].pid;
		s->timeStamp = (b[j].last_ns + off) / 1000ull;
		s->smUtil = (unsigned)(b[j].busy_ns * 100 / (now - from));
		s->memUtil = (unsigned)(b[j].mem_ns * 100 / (now - from));
		if (s->smUtil > 100)
			s->smUtil = 100;
		if (s->memUtil > 100)
			s->memUtil = 100;
	}
	*processSamplesCount = k;
	return NVML_SUCCESS;
}
