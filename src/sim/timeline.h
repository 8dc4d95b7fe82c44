/* timeline.h - the device timelines: one per GPU, shared by every process.
 *
 * A GPU without MPS time-slices: one kernel at a time, whoever launched
 * it.  A kernel starts at max(now, the device's busy-until, its stream's
 * previous completion) and occupies the device for its duration.  Each
 * scheduled stretch is kept in a bounded ring of busy intervals per device
 * (back-to-back kernels of one process merge into one interval), from which
 * NVML derives device and per-process utilization; each process's slot
 * also counts the device time it scheduled, cumulatively, from which
 * gpupool-simctl reports exactly what each process's kernels have run.
 */
#ifndef GP_SIM_TIMELINE_H
#define GP_SIM_TIMELINE_H

#include <stdint.h>

#include "sim/state.h"

/* Busy time of one process over a window. */
struct gp_sim_pidbusy {
	int pid;
	uint64_t busy_ns;    /* any kernel */
	uint64_t mem_ns;     /* memory-bound kernels */
	uint64_t last_ns;    /* end of its last interval in the window */
};

/* Device time one process's kernels have completed on a device. */
struct gp_sim_procbusy {
	int pid;
	uint64_t busy_ns;
};

/* Schedule `dur_ns` of device time of `kind` (GP_SIM_BUSY_*) for this
 * process on device `dev`, starting no earlier than `not_before`.  Returns
 * the completion time (CLOCK_MONOTONIC ns); the start goes to *start when
 * not NULL.  Zero-length work takes no interval.  The duration is added
 * to the process's cumulative figure (busy_ns of its slot). */
uint64_t gp__sim_timeline_run(unsigned dev, uint64_t not_before, uint64_t dur_ns,
			      uint32_t kind, uint64_t *start);

/* When a command queued now on device `dev`, no earlier than `not_before`,
 * reaches the device: max(now, not_before, the device's busy-until).  A
 * GPU without MPS runs a context's commands only when it gets to that
 * context's work, so an event recorded behind other processes' kernels
 * completes after them; it takes no device time and no interval. */
uint64_t gp__sim_timeline_tail(unsigned dev, uint64_t not_before);

/* Device utilization over the last `window_ns` ending now, in percent:
 * any kernel (gpu) and memory-bound kernels (mem). */
void gp__sim_timeline_util(unsigned dev, uint64_t window_ns, unsigned *gpu, unsigned *mem);

/* Busy time per process over [from, to): one entry per process that had
 * any, at most `cap`; returns the number filled. */
unsigned gp__sim_timeline_by_pid(unsigned dev, uint64_t from, uint64_t to,
				 struct gp_sim_pidbusy *out, unsigned cap);

/* Device time completed by now on device `dev`, per live process that
 * ran kernels there: its cumulative figure minus the part of its
 * intervals that lies after now.  Fills up to `cap` entries (in slot
 * order) and returns how many there are.  Exact while at most GP_SIM_RING
 * intervals are queued ahead of now.  Sweeps dead processes first
 * (rate-limited). */
unsigned gp__sim_timeline_done(unsigned dev, struct gp_sim_procbusy *out, unsigned cap);

/* A process died: drop its intervals that have not started yet and cut
 * the running one at `now`, when they are the newest on the device (work
 * queued behind them by others keeps its schedule).  Machine lock held. */
void gp__sim_timeline_forget_locked(struct gp_sim_hdr *h, unsigned dev, int pid, uint64_t now);

#endif
