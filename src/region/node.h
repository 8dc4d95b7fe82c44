/* node.h - the node file: per GPU, which processes of which tenants want
 * it now, with what share and priority (include/gpupool/node.h is its
 * layout).
 *
 * The hook publishes its own demand in slots it owns and reads everyone's
 * to arbitrate elastic shares and priority (src/hook/share.c).  Nothing
 * here waits: a slot is owned through its lease, written only by its
 * owner, and read with plain atomic loads.
 */
#ifndef GP_REGION_NODE_H
#define GP_REGION_NODE_H

#include <pthread.h>
#include <stdint.h>

#include "common/shm.h"
#include "gpupool/node.h"

struct gp_node {
	struct gp_shm shm;         /* the mapped file */
	struct gp_node_hdr *hdr;   /* == shm.base; NULL: no node file */
	pthread_mutex_t take_lock; /* one slot taken at a time in this process
	                              (its leases do not exclude each other) */
	uint64_t mine[GP_NODE_SLOTS / 64]; /* slots this process owns */
};

#define GP_NODE_INIT { .shm = GP_SHM_CLOSED, .hdr = NULL, .take_lock = PTHREAD_MUTEX_INITIALIZER }

/* Map the node file at `path`, creating it (readable and writable by every
 * user: tenants run as different users) if needed.  Returns 0, -EPROTO for
 * a file that is not a node file of this version, or another negative
 * errno. */
int gp_node_open(struct gp_node *n, const char *path) __attribute__((warn_unused_result));

/* Take a slot for this process on GPU `card` and fill it from `tmpl`
 * (card, tenant, pid, share, policy, priority; the demand starts at 0).
 * A slot whose owner died is taken over.  Returns its index, or -ENOSPC. */
int gp_node_take(struct gp_node *n, const struct gp_node_slot *tmpl);

/* Is slot `i` owned by a live process other than this one?  1 yes, 0 no
 * (its owner died; the slot is then freed so that readers stop looking
 * at it), or a negative errno.  One fcntl(2). */
int gp_node_alive(struct gp_node *n, unsigned i);

/* In a forked child: get an open file description of our own (see
 * gp_shm_reopen) and forget the parent's slots.  Returns 0 or a negative
 * errno (the child then runs without the node file). */
int gp_node_forked(struct gp_node *n);

/* The key of a GPU in the file: FNV-1a 64 of its UUID string, never 0. */
uint64_t gp_node_card(const char *uuid);

#endif
