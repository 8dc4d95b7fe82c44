/* extender_int.h - what the extender's files share (extender*.c only).
 *
 *   extender.c        the daemon: HTTP routes for filter, prioritize,
 *                     healthz, start and stop
 *   extender_cache.c  the snapshot of nodes and allocations, refreshed by a
 *                     thread of its own; building placement nodes
 *   extender_bind.c   bind: lock the node, recompute, decide, annotate,
 *                     create the Binding
 *   extender_lock.c   the per-node bind lock on the Node object
 *
 * Threads: the event loop's thread handles every request and owns the
 * snapshot it took last (`struct gp__ext_snap`); the refresher thread only
 * builds new snapshots and hands them over under the cache's mutex.
 */
#ifndef GP_SCHED_EXTENDER_INT_H
#define GP_SCHED_EXTENDER_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/kube.h"
#include "sched/annot.h"
#include "sched/extender.h"
#include "gpupool/placement.h"
#include "sched/pod.h"

/* What pods hold on one node: their footprints, summed per GPU UUID. */
struct gp__ext_use {
	char *node;
	unsigned n, cap;
	struct gp_annot_hold *hold;
};

/* One node of the snapshot. */
struct gp__ext_node {
	char *name;
	struct gp_node *node;   /* with allocations; NULL when unusable */
	int rc;                 /* why unusable: -ENOENT no state, -EINVAL ... */
	char *why;              /* the reason, when unusable */
};

/* A pod this replica bound, counted until an API list shows it. */
struct gp__ext_assumed {
	char uid[GP_ANNOT_UID_MAX];
	char node[GP_NAME_MAX];
	int64_t bound_ms;
	unsigned nhold;
	struct gp_annot_hold hold[GP_MAX_GPUS];
};

/* A consistent view of the cluster at one moment. */
struct gp__ext_snap {
	struct gp__ext_node *nodes;   /* sorted by name */
	size_t nnodes;
	struct gp__ext_use *uses;     /* sorted by node name */
	size_t nuses;
	struct gp_workload *wl;       /* the GPU pods now running: what the
	                                 fragmentation measure expects */
	struct gp_placer *pl;         /* the policy, over wl */
	int64_t taken_ms;             /* wall time the API lists began */
	unsigned gpu_pods;
	struct gp__ext_assumed *extra; /* pods bound since it was built */
	size_t nextra;
};

struct gp__ext_cache;

/* The daemon. */
struct gp__ext {
	struct gp_ext_opts o;
	struct gp_kube *kube;
	struct gp_policy policy;
	char policy_text[64];
	struct gp__ext_cache *cache;
	struct gp__ext_snap *snap;   /* the loop thread's current view */
	struct gp_pod_req pr;        /* scratch for one request */
	char replica[96];            /* this process, in lock holders */
	unsigned long seq;           /* bind sequence, in lock holders */
	unsigned long n_filter, n_prioritize, n_bind, n_bind_failed;
	unsigned long rejected[GP_R__COUNT]; /* nodes filtered out, per cause */
};

/* --- extender_cache.c ----------------------------------------------------- */

/* Start the cache: one synchronous refresh (so the first request has a
 * view), then the refresher thread.  Returns 0 or a negative errno with
 * why. */
int gp__ext_cache_start(struct gp__ext_cache **out, struct gp_kube *kube,
			const struct gp_policy *policy, long resync_ms, long state_max_age_ms,
			char *why, size_t n);
void gp__ext_cache_stop(struct gp__ext_cache *c);

/* The newest snapshot: `cur` if nothing newer was built (then it is
 * returned as is), else the new one (and cur is freed). */
struct gp__ext_snap *gp__ext_cache_take(struct gp__ext_cache *c, struct gp__ext_snap *cur);

/* Ask for a refresh soon (a node was missing). */
void gp__ext_cache_kick(struct gp__ext_cache *c);

/* Record a pod this replica bound, so snapshots count it until the API
 * lists it. */
void gp__ext_cache_assume(struct gp__ext_cache *c, const struct gp__ext_assumed *a);

/* Health: wall ms of the last good refresh, and the last error ("" none). */
void gp__ext_cache_health(struct gp__ext_cache *c, int64_t *last_ok_ms, char *err, size_t n);

void gp__ext_snap_free(struct gp__ext_snap *s);

/* The snapshot's entry for a node, or NULL. */
struct gp__ext_node *gp__ext_snap_node(struct gp__ext_snap *s, const char *name);

/* What pods hold on a node in the snapshot, with the pods bound since it
 * was built: a new array in *out (free it) of *n holds.  0 or -ENOMEM. */
int gp__ext_snap_holds(const struct gp__ext_snap *s, const char *name, struct gp_annot_hold **out,
		       unsigned *n);

/* Build a placement node from a node's state and what pods hold on it
 * (holds may be NULL).  Allocations beyond a card's capacity (a node that
 * shrank) are clamped to it.  Returns 0 or -EINVAL with why. */
int gp__ext_build_node(const char *name, const struct gp_annot_node *st,
		       const struct gp_annot_hold *holds, unsigned nholds, struct gp_node **out,
		       char *why, size_t n);

/* The same node with nothing allocated (links left out): what fits on it
 * tells whether preemption could ever help.  NULL on out of memory. */
struct gp_node *gp__ext_empty_copy(const struct gp_node *n);

/* Read a Node object's GPU state, refusing one older than max_age_ms
 * (0 = no limit).  Returns as gp_annot_node_read, or -ESTALE. */
int gp__ext_node_state(json_t *node, long max_age_ms, struct gp_annot_node *st, char *why,
		       size_t n);

/* Add a pod's footprint to a use list (growing it).  0 or -ENOMEM. */
int gp__ext_use_add(struct gp__ext_use *u, const struct gp_annot_hold *h, unsigned nh);

/* Does a Pod object still hold its GPUs (not Succeeded or Failed)? */
bool gp__ext_pod_active(json_t *pod);

/* --- extender_lock.c ------------------------------------------------------ */

/* Take the bind lock of `node` for `pod` ("ns/name"), waiting up to the
 * configured time for another holder.  On 0, holder has the lock's holder
 * string and *node_obj the Node as locked (caller owns).  -EBUSY when the
 * node stayed locked by another; other errnos from the API; why says. */
int gp__ext_lock(struct gp__ext *x, const char *node, const char *pod, char *holder,
		 size_t holder_len, json_t **node_obj, char *why, size_t n);

/* Release it if we still hold it.  Failures are logged: the lock expires. */
void gp__ext_unlock(struct gp__ext *x, const char *node, const char *holder);

/* --- extender_bind.c ------------------------------------------------------ */

/* Bind a pod: the whole procedure of docs/sched.md (the extender).  Returns 0,
 * or a negative errno with the sentence for ExtenderBindingResult.Error in
 * why. */
int gp__ext_bind(struct gp__ext *x, const char *ns, const char *name, const char *uid,
		 const char *node, char *why, size_t n);

#endif
