/* fault.h - device health and fault injection: Xid errors, ECC error
 * counters, a GPU fallen off the bus.
 *
 * A real driver raises these itself; the simulator raises them only when
 * told (gpupool-simctl, simctl.c), so that tests of whatever watches GPU
 * health can make a fault happen.  They live in the machine state (struct
 * gp_sim_health in state.h), so every process of the machine sees them:
 * NVML reads them (nvml_health.c, nvml_event.c) through the functions
 * below, which libcuda.so.1 exports.
 *
 * Each device keeps a log of its last GP_SIM_EVENTS events, numbered 1, 2,
 * ... (`posted` is the newest).  Appending takes the machine lock;
 * reading takes none: a reader remembers the number it has seen and asks
 * for the next ones.
 */
#ifndef GP_SIM_FAULT_H
#define GP_SIM_FAULT_H

#include <stdint.h>

#include "sim/state.h"

/* Event types: the NVML event bits (nvmlEventType*), so NVML hands them
 * out unchanged. */
enum {
	GP_SIM_EV_SBE = 0x1,  /* single-bit (corrected) ECC error */
	GP_SIM_EV_DBE = 0x2,  /* double-bit (uncorrected) ECC error */
	GP_SIM_EV_XID = 0x8,  /* Xid critical error; data: the Xid code */
};

/* What gp__sim_fault injects. */
enum gp_sim_fault {
	GP_SIM_FAULT_XID = 1,         /* arg: the Xid code (> 0); an event */
	GP_SIM_FAULT_ECC_CORRECTED,   /* arg: errors (> 0) counted; one event */
	GP_SIM_FAULT_ECC_UNCORRECTED, /* likewise */
	GP_SIM_FAULT_LOSE,            /* the GPU falls off the bus (no event) */
	GP_SIM_FAULT_RESTORE,         /* it is back (as after a reset) */
};

/* Inject `fault` on machine GPU `dev` of this process's machine (opened
 * with gp__sim_machine_open).  Returns 0, -ENODEV (no machine open),
 * -EINVAL (no such GPU or fault, or `arg` 0 where a count or code is
 * needed) or the lock's negative errno. */
int gp__sim_fault(unsigned dev, int fault, uint64_t arg)
	__attribute__((warn_unused_result));

/* Has GPU `dev` fallen off the bus?  1 or 0 (0 for no such GPU). */
int gp__sim_lost(unsigned dev);

/* ECC errors counted on GPU `dev` since the machine was created:
 * uncorrected ones when `uncorrected`, else corrected ones. */
uint64_t gp__sim_ecc(unsigned dev, int uncorrected);

/* Number of GPU `dev`'s newest event (0: none yet, or no such GPU). */
uint64_t gp__sim_event_posted(unsigned dev);

/* The machine's health word: read it, look for events, and if there are
 * none sleep in gp__sim_event_sleep until it moves (or timeout_ns passes,
 * or gp__sim_event_wake is called).  0 without a machine. */
uint32_t gp__sim_event_word(void);
void gp__sim_event_sleep(uint32_t seen, uint64_t timeout_ns);

/* Wake every sleeper (an event was posted, or a set is being freed). */
void gp__sim_event_wake(void);

/* Read event number `seq` of GPU `dev` into *ev.  Returns 0, -EAGAIN (not
 * posted yet), -ENOENT (overwritten by newer events: more than
 * GP_SIM_EVENTS were posted since) or -EINVAL (no such GPU). */
int gp__sim_event_read(unsigned dev, uint64_t seq, struct gp_sim_hevent *ev)
	__attribute__((warn_unused_result));

#endif
