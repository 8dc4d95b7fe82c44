/* state.h - the simulated machine shared by every process that uses it.
 *
 * One mapped file (GPUPOOL_SIM_STATE, or a private memfd when unset) holds
 * the configuration, the device memory in use, what each process holds,
 * the exported VMM allocations, the device timelines and each device's
 * health (fault.h).  Processes take a slot with a lease (lease.h): when
 * one dies, however it dies, the next process that looks finds the lease
 * free and gives its memory back, as the real driver does when a process
 * goes away.
 *
 * Memory figures are updated without any lock (atomics only), so that no
 * process, a stopped one included, can make another's allocation wait: a
 * real driver keeps them in the kernel, where a stopped process holds
 * nothing.  The rules (docs/sim.md, "How processes share a machine"):
 * a device's `used` is the admission counter, raised by a compare-and-swap
 * that checks the capacity; a process's own figure follows it on a charge
 * and goes first on an uncharge, so a process that dies between the two
 * steps leaves an over-count, never an under-count; and bytes leave the
 * device's figure only after being taken from a process's figure (by its
 * owner, by the reclaim of a dead slot, or by the last holder of a shared
 * allocation), so no charge is ever given back twice.  Attaching and
 * reclaiming a slot are serialised by its lease.  A robust mutex guards
 * the device timelines only; its critical sections are a few loads and
 * stores and never sleep, and memory paths never wait for it.
 *
 * libnvidia-ml.so.1 calls the gp__sim_* functions declared here (they are
 * exported by libcuda.so.1), so that NVML and the driver of one process
 * always look at the same machine.
 */
#ifndef GP_SIM_STATE_H
#define GP_SIM_STATE_H

#include <pthread.h>
#include <stdint.h>

#include "sim/machine.h"

#define GP_SIM_STATE_MAGIC 0x4d495347u /* "GSIM" */
#define GP_SIM_STATE_VERSION 4u
#define GP_SIM_STATE_PROCS 128  /* process slots */
#define GP_SIM_RING 1024        /* busy intervals kept per device */
#define GP_SIM_SHARES 1024      /* exported VMM allocations at a time */
#define GP_SIM_EVENTS 64        /* health events kept per device */

/* Kinds of busy interval on a device timeline. */
enum {
	GP_SIM_BUSY_SM = 1,   /* a compute kernel (spin_*) */
	GP_SIM_BUSY_MEM = 2,  /* a memory-bound kernel (fill_u32) */
};

/* One stretch of device time taken by one process. */
struct gp_sim_busy {
	uint64_t start_ns;    /* CLOCK_MONOTONIC */
	uint64_t end_ns;
	int32_t pid;
	uint32_t kind;        /* GP_SIM_BUSY_* */
};

/* Dynamic state of one device. */
struct gp_sim_devstate {
	uint64_t used;            /* bytes in use by all processes: the
	                             admission counter (atomic; see above).
	                             The driver reservation is not included */
	uint64_t busy_until_ns;   /* when the last scheduled kernel ends */
	uint32_t head;            /* ring index of the newest interval */
	uint32_t count;           /* valid intervals in the ring */
	struct gp_sim_busy ring[GP_SIM_RING];
};

/* One health event (fault.h) in a device's log.  A slot is being written
 * while its `seq` is 0; readers check `seq` before and after reading the
 * rest (a seqlock), so a slot rewritten meanwhile is never half-read. */
struct gp_sim_hevent {
	uint64_t seq;             /* 1, 2, ... per device; 0 while written */
	uint64_t type;            /* GP_SIM_EV_* (the NVML event bit) */
	uint64_t data;            /* the Xid code for Xid events, else 0 */
};

/* Health of one device: what fault injection (gpupool-simctl) changed.
 * Every field is atomic; events are appended under the machine lock
 * (two injectors at once must not take the same slot), read without it. */
struct gp_sim_health {
	uint32_t lost;            /* 1: fallen off the bus (NVML: GPU_IS_LOST) */
	uint32_t pad_;
	uint64_t ecc[2];          /* corrected, uncorrected errors so far */
	uint64_t posted;          /* seq of the newest event (0: none yet);
	                             raised after its slot is written */
	struct gp_sim_hevent log[GP_SIM_EVENTS]; /* event seq s is at s % size */
};

enum {
	GP_SIM_PROC_FREE = 0,
	GP_SIM_PROC_ACTIVE = 1,
	GP_SIM_PROC_DEAD = 2,   /* its owner died; its memory is given back,
	                           its kernels not yet dropped from the
	                           timelines (that needs the lock) */
};

/* One process using the machine (it called cuInit).  Written by its owner
 * only, except at attach and reclaim (by whoever holds the slot's lease)
 * and by the last holder of a shared allocation (share.h). */
struct gp_sim_proc {
	uint32_t state;                   /* GP_SIM_PROC_*, written last at
	                                     attach, first at reclaim */
	int32_t pid;
	uint64_t attached_ns;
	uint64_t gen;                     /* this incarnation of the slot:
	                                     unique in the machine, never 0 */
	uint64_t used[GP_SIM_GPUS_MAX];   /* bytes it holds per device:
	                                     allocations, pools, contexts
	                                     (atomic) */
	uint32_t contexts[GP_SIM_GPUS_MAX]; /* live contexts per device (atomic) */
	uint64_t busy_ns[GP_SIM_GPUS_MAX];  /* device time of the kernels it
	                                     scheduled per device, cumulative
	                                     (under the machine lock, like
	                                     the timelines; cleared at
	                                     attach): the ground truth of
	                                     gpupool-simctl busy */
};

/* A VMM allocation exported as a shareable handle (share.h).  Every field
 * is atomic; the entry is free while `word` is 0. */
struct gp_sim_share {
	uint64_t word;            /* tag << 32 | processes holding it */
	uint64_t held[GP_SIM_STATE_PROCS / 64]; /* which slots hold it */
	uint64_t charge;          /* bytes still charged to the owner for it;
	                             taken (set to 0) exactly once */
	uint64_t owner_gen;       /* the owner's incarnation (0: none) */
	uint32_t owner;           /* the owner's slot */
	uint32_t dev;             /* machine index of its memory */
};

/* The file. */
struct gp_sim_hdr {
	uint32_t magic;           /* written last at creation */
	uint32_t version;
	uint64_t size;            /* sizeof(struct gp_sim_hdr) */
	char boot_id[40];         /* kernel boot id: timelines are monotonic
	                             times and do not survive a reboot */
	struct gp_sim_config cfg; /* the GPUs; fixed for the file's life */
	union {
		pthread_mutex_t m;
		char pad[64];
	} lock;                   /* robust; guards the timelines
	                             (busy_until_ns, head, count, ring) and
	                             the appending of health events */
	uint64_t last_sweep_ns;   /* rate limit of dead-process sweeps */
	uint64_t machine_id;      /* random, at creation: tells this machine's
	                             shareable handles from another's */
	uint64_t next_gen;        /* last slot incarnation handed out (atomic) */
	uint32_t next_tag;        /* last share tag handed out (atomic) */
	uint32_t health_word;     /* bumped, and its futex woken, after each
	                             health event: NVML's event waits sleep on
	                             it instead of polling (fault.h) */
	uint64_t changes;         /* bumped after each change of a process's
	                             figure, before the device's goes down:
	                             a reader of several processes' figures
	                             that sees it unchanged read one state */
	struct gp_sim_devstate dev[GP_SIM_GPUS_MAX];
	struct gp_sim_proc proc[GP_SIM_STATE_PROCS];
	struct gp_sim_share share[GP_SIM_SHARES];
	struct gp_sim_health health[GP_SIM_GPUS_MAX];
};

/* A process as NVML lists it. */
struct gp_sim_procinfo {
	int pid;
	uint64_t used;            /* bytes on the device */
	unsigned contexts;
};

/* Open this process's view of the machine, once: parse GPUPOOL_SIM_GPUS,
 * open or create GPUPOOL_SIM_STATE.  Thread-safe; later calls return the
 * first call's result.  Returns 0, -EINVAL (bad GPUPOOL_SIM_GPUS), -EPROTO
 * (state file of another configuration or layout) or another -errno; the
 * reason has been logged. */
int gp__sim_machine_open(void) __attribute__((warn_unused_result));

/* The machine (after a successful gp__sim_machine_open), else NULL. */
struct gp_sim_hdr *gp__sim_machine(void);

/* Lock / unlock the machine (never on a memory path: see above).  Lock
 * returns 0 or a negative errno; a dead holder's half-done timeline
 * update is repaired first. */
int gp__sim_state_lock(void) __attribute__((warn_unused_result));
void gp__sim_state_unlock(void);

/* Take a process slot for this process (cuInit).  0 or -ENOSPC/-errno. */
int gp__sim_proc_attach(void) __attribute__((warn_unused_result));

/* Charge `bytes` on device `dev` to this process.  0, or -ENOMEM when the
 * device is full even after giving back dead processes' memory. */
int gp__sim_charge(unsigned dev, uint64_t bytes) __attribute__((warn_unused_result));

/* Give back `bytes` charged with gp__sim_charge. */
void gp__sim_uncharge(unsigned dev, uint64_t bytes);

/* This process's slot and its incarnation (share.h).  -1 / 0 before
 * cuInit. */
int gp__sim_slot(uint64_t *gen);

/* Give back `bytes` on device `dev` charged to slot `slot` while
 * incarnation `gen` held it (another process's, possibly), unless that
 * process is gone: its memory was given back with its slot. */
void gp__sim_uncharge_slot(unsigned slot, uint64_t gen, unsigned dev, uint64_t bytes);

/* Count a context of this process on device `dev` (+1 / -1). */
void gp__sim_count_context(unsigned dev, int delta);

/* Reclaim the slots of dead processes, unless another sweep ran less than
 * `min_interval_ns` ago.  Returns the number of slots reclaimed. */
int gp__sim_sweep(uint64_t min_interval_ns);

/* How long sweeps triggered by queries wait between runs. */
#define GP_SIM_SWEEP_INTERVAL_NS 20000000ull   /* 20 ms */

/* Bytes in use on device `dev`, all processes (after a rate-limited
 * sweep).  The driver reservation is not included. */
uint64_t gp__sim_dev_used(unsigned dev);

/* The live processes with a context or memory on device `dev`: fills up
 * to `cap` entries and returns how many there are.  Reads without the
 * lock, again while figures changed meanwhile (a few times at most), so
 * that the list is one state of the machine, not a mix. */
unsigned gp__sim_dev_procs(unsigned dev, struct gp_sim_procinfo *out, unsigned cap);

/* Called in a forked child: give the child its own open file description
 * (so its leases are its own) and forget the parent's slot. */
void gp__sim_state_forked(void);

#endif
