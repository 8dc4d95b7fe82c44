/* gpupool/node.h - the layout of the node file: who wants each GPU now.
 *
 * One file per node (GPUPOOL_NODE; the agent's `<state-dir>/node`, mounted
 * at /var/run/gpupool-node/node in every container).  Elastic compute
 * shares and priority need each tenant to know who else wants a card at
 * this moment; every process of every tenant that launches work under
 * libgpupool.so publishes it here, one slot per process and GPU.  This
 * layout is an ABI between the library and its readers (the agent):
 * change it only together with GP_NODE_VERSION.
 *
 * Concurrency: a process owns a slot while it holds the slot's lease (an
 * OFD lock on byte GP_LEASE_BASE + i, src/common/lease.h): the kernel
 * drops it when the process dies.  Only the owner writes its slot, with
 * relaxed atomic stores of whole fields; `state` is written last when a
 * slot is taken (release), so a reader that sees it active sees the rest.
 * Nothing here is ever locked: a reader takes each field as it finds it.
 * A dead owner stops refreshing `want_until_ns`, so its demand expires by
 * itself within the grace the library adds (well under a second); readers
 * that must act on a dead owner sooner (a low-priority tenant held back
 * by a high one) probe the lease.  A slot whose lease is free is taken
 * over by the next process that needs one.
 *
 * All integers are in host byte order; the file never leaves the node.
 */
#ifndef GPUPOOL_NODE_H
#define GPUPOOL_NODE_H

#include <stdint.h>

#define GP_NODE_MAGIC 0x4e6c6f6f70757067ULL /* "gpupoolN" in memory */
#define GP_NODE_VERSION 1u
#define GP_NODE_SLOTS 256u /* processes x GPUs publishing at once */

enum gp_node_slot_state {
	GP_NODE_FREE = 0,   /* never used */
	GP_NODE_ACTIVE = 1, /* owned by the holder of its lease, or by a dead
	                       process (lease free) until taken over */
};

/* One process on one GPU; one cache line, so that publishers do not
 * take each other's lines. */
struct gp_node_slot {
	uint32_t state;         /* enum gp_node_slot_state; written last */
	uint32_t gen;           /* bumped by each process that takes the slot */
	uint64_t card;          /* the GPU: FNV-1a 64 of its UUID string */
	uint64_t tenant;        /* the tenant: its region's `id` (processes of
	                           one tenant share one share) */
	int32_t pid;            /* as the owner sees itself */
	uint8_t core_limit;     /* compute share in percent; 0 = none */
	uint8_t core_policy;    /* GP_REGION_CORE_* (gpupool/region.h) */
	uint8_t priority;       /* GP_REGION_PRIO_* */
	uint8_t pad0;
	uint64_t want_until_ns; /* CLOCK_MONOTONIC until which the process
	                           wants the GPU: it has work queued there, or
	                           will launch again by then (its pacing
	                           point), plus a grace */
	uint64_t active_ns;     /* CLOCK_MONOTONIC of its latest launch there */
	uint64_t spare[2];      /* zero; for later versions */
};

struct gp_node_hdr {
	uint64_t magic;         /* GP_NODE_MAGIC; written last at creation */
	uint32_t version;       /* GP_NODE_VERSION */
	uint32_t size;          /* sizeof(struct gp_node_hdr) */
	uint32_t nslots;        /* GP_NODE_SLOTS */
	uint32_t used;          /* slots ever taken: readers scan [0, used) */
	uint64_t created_ns;    /* CLOCK_REALTIME at creation */
	uint64_t spare[4];
	struct gp_node_slot slot[GP_NODE_SLOTS] __attribute__((aligned(64)));
};

#endif
