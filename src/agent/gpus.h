/* gpus.h - the node's physical cards, as NVML reports them.
 *
 * What does not change while the agent runs (identity, PCI address, NUMA
 * node, the links between cards) is read once at open; figures (memory,
 * utilization, processes, ECC counters) at each collection.  Health is
 * the agent's verdict: a card turns unhealthy when it stops answering
 * NVML (it fell off the bus: GPU_IS_LOST), or when the event thread
 * (health.h) reports a fatal XID for it; it stays unhealthy until the
 * agent restarts, since a card that logged a fatal XID needs a reset.
 */
#ifndef GP_AGENT_GPUS_H
#define GP_AGENT_GPUS_H

#include <stddef.h>

#include "agent/nvml.h"
#include "agent/snap.h"

struct gp_gpus;

/* Find the cards of `nvml` (which must outlive the result).  Returns 0 or
 * -EIO with the reason in err (NVML cannot list its cards). */
int gp_gpus_open(struct gp_gpus **out, struct gp_nvml *nvml, char *err, size_t len)
	__attribute__((warn_unused_result));
void gp_gpus_close(struct gp_gpus *g);

unsigned gp_gpus_count(const struct gp_gpus *g);

/* NVML's handle of card i (for event registration). */
nvmlDevice_t gp_gpus_handle(const struct gp_gpus *g, unsigned i);

/* The card whose handle is h, or -1. */
int gp_gpus_index(const struct gp_gpus *g, nvmlDevice_t h);

/* Record an XID (from any thread); `fatal` makes the card unhealthy. */
void gp_gpus_note_xid(struct gp_gpus *g, unsigned i, unsigned xid, int fatal);

/* Fill s->gpu[] (and s->ngpu) with the cards' current figures and their
 * process lists.  Per-process utilization since the previous call goes to
 * *util (pid, percent pairs; caller frees) when util is not NULL.
 * Returns 0 or -ENOMEM. */
struct gp_pid_util {
	unsigned pid;
	unsigned gpu;  /* card index */
	unsigned sm;   /* percent */
};
int gp_gpus_collect(struct gp_gpus *g, struct gp_agent_snap *s, struct gp_pid_util **util,
		    size_t *nutil) __attribute__((warn_unused_result));

#endif
