/* extender_int.h - what the extender's files share (extender*.c only).
 *
 *   extender.c         the daemon: HTTP routes, start and stop
 *   extender_cache.c   the live view: a store kept by watches, snapshots
 *                      built from it by a thread of its own
 *   extender_node.c    a placement node from a Node's annotations
 *   extender_bind.c    bind: lock the node, recompute, decide, annotate,
 *                      release, create the Binding, settle failures
 *   extender_lock.c    the per-node bind lock on the Node object, and the
 *                      node's list of binds in flight
 *   extender_preempt.c preemption: the victims that free GPUs
 *   extender_metrics.c /metrics
 *
 * Threads: the event loop's thread answers every request and owns the
 * snapshot it took last (`struct gp__ext_snap`), which it amends with the
 * binds it hands out; binds and preemption run on worker threads
 * (net/work.h), which hold a reference to a snapshot only to read its
 * workload; the watch threads and the builder fill the cache.
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
#include "common/smap.h"
#include "net/http.h"
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

/* A pod this replica expects on a node (it answered the pod's filter or
 * prioritize), is binding, or bound: counted until the API shows it bound
 * (once bound) or until it expires. */
struct gp__ext_assumed {
	char uid[GP_ANNOT_UID_MAX];
	char node[GP_NAME_MAX];
	int64_t until_ms;             /* forgotten after this (wall ms) */
	bool bound;                   /* the Binding exists */
	unsigned nhold;
	struct gp_annot_hold hold[GP_MAX_GPUS];
};

/* A consistent view of the cluster at one moment. */
struct gp__ext_snap {
	int refs;                     /* atomic */
	uint64_t gen;                 /* of the store it was built from */
	struct gp__ext_node *nodes;   /* sorted by name */
	size_t nnodes;
	struct gp__ext_use *uses;     /* sorted by node name */
	size_t nuses;
	struct gp_workload *wl;       /* the GPU pods now running: what the
	                                 fragmentation measure expects */
	struct gp_placer *pl;         /* the policy, over wl */
	int64_t taken_ms;             /* wall time it was built */
	unsigned gpu_pods;
	struct gp__ext_assumed *extra; /* binds the loop added since built */
	size_t nextra;
};

/* GPUs the view chose for a pod: the bind takes the same ones when they
 * are still free on fresh data, so that the view and the API agree card
 * by card (see extender.c, "where recent pods are expected"). */
struct gp__ext_hint {
	struct gp_plan plan;                  /* by the view node's GPU indices */
	char uuid[GP_MAX_GPUS][GP_ID_MAX];    /* those GPUs */
};

struct gp__ext_expect {
	struct gp__ext_assumed as;
	struct gp__ext_hint hint;
};

struct gp__ext_cache;
struct gp__ext_metrics;
struct gp_work;

/* Pods recently filtered, by UID: a bind finds its pod's request here and
 * counts it in the view at once. */
#define GP__EXT_RECENT 256

/* The daemon. */
struct gp__ext {
	struct gp_ext_opts o;
	struct gp_kube *kube;
	struct gp_policy policy;
	char policy_text[64];
	struct gp__ext_cache *cache;
	struct gp_work *work;          /* binds and preemption */
	struct gp__ext_metrics *metrics;
	/* --- the loop's thread only --- */
	struct gp__ext_snap *snap;     /* the current view */
	uint64_t min_gen;              /* take no snapshot older than this */
	struct gp_pod_req pr;          /* scratch for one request */
	json_t *recent[GP__EXT_RECENT]; /* Pod objects of recent filters */
	unsigned recent_next;
	struct gp__ext_expect *expect;  /* where recent pods are counted in the
	                                   view (GP__EXT_RECENT, by UID) */
	unsigned expect_next;
	unsigned long n_filter, n_prioritize, n_bind, n_bind_failed, n_preempt;
	unsigned long rejected[GP_R__COUNT]; /* nodes filtered out, per cause */
	/* --- any thread --- */
	char replica[96];              /* this process, in lock holders */
	unsigned long seq;             /* bind sequence (atomic) */
	pthread_mutex_t busy_mu;       /* binds of this replica, per node: */
	pthread_cond_t busy_cv;        /* one at a time in the critical part */
	struct gp_smap *busy;
};

/* --- extender_args.c ------------------------------------------------------ */

/* A DNS-1123 subdomain of at most max bytes (node, pod, namespace names). */
bool gp__ext_dns_name(const char *s, size_t max);

/* Refuse a key that is a known one in another case: a client that sends it
 * expects us to read it, and silently dropping it would answer a question
 * that was not asked.  Other unknown keys are ignored.  0 or -EINVAL with
 * why (prefixed with "<where>: " when where is not NULL). */
int gp__ext_check_keys(json_t *obj, const char *const *known, const char *where, char *why,
		       size_t n);

/* The nodes of one filter or prioritize call. */
struct gp__ext_cands {
	size_t n;
	const char **name;           /* borrowed from the request */
	json_t **obj;                /* the Node objects (Nodes form), or NULL */
	struct gp_node **node;       /* usable ones; NULL where not */
	bool *owned;                 /* node[i] built for this call (free it) */
	const char **why;            /* why not usable */
	bool *unresolvable;          /* ... and waiting would not help */
	char *whybuf;                /* storage of built reasons */
};

/* Read ExtenderArgs into the candidate list (names borrowed from args; the
 * pod is read by the caller).  Returns 0, or -EINVAL with why (a 400), or
 * -ENOMEM.  Free c with gp__ext_cands_free in every case. */
int gp__ext_read_args(json_t *args, unsigned max_nodes, struct gp__ext_cands *c, char *why,
		      size_t n);
void gp__ext_cands_free(struct gp__ext_cands *c);

struct gp__ext_bind_args {
	char ns[64], name[GP_NAME_MAX], uid[GP_ANNOT_UID_MAX], node[GP_NAME_MAX];
};

/* Read ExtenderBindingArgs.  0, or -EINVAL with why (a 400). */
int gp__ext_read_bind_args(json_t *args, struct gp__ext_bind_args *b, char *why, size_t n);

/* --- extender_cache.c ----------------------------------------------------- */

struct gp__ext_cache_opts {
	struct gp_policy policy;
	long rebuild_ms;          /* rebuild at least this often (ages); 0 = 5 s */
	long state_max_age_ms;    /* node state older than this is unusable */
	long inflight_ms;         /* a bind not visible after this is forgotten */
};

/* Start the cache: list nodes and pods (so the first request has a view),
 * then watch them.  Returns 0 or a negative errno with why. */
int gp__ext_cache_start(struct gp__ext_cache **out, struct gp_kube *kube,
			const struct gp__ext_cache_opts *o, char *why, size_t n);
void gp__ext_cache_stop(struct gp__ext_cache *c);

/* The newest snapshot built at generation min_gen or later: `cur` if there
 * is none (then it is returned as is), else the new one (cur is put). */
struct gp__ext_snap *gp__ext_cache_take(struct gp__ext_cache *c, struct gp__ext_snap *cur,
					uint64_t min_gen);

/* Count a bind of this replica (by UID, replacing what was counted for it)
 * / stop counting it.  Both return the store's generation after. */
uint64_t gp__ext_cache_assume(struct gp__ext_cache *c, const struct gp__ext_assumed *a);
uint64_t gp__ext_cache_forget(struct gp__ext_cache *c, const char *uid);

/* Health: true while both watches are live; *last_ok_ms the older of their
 * last good moments, err their last errors ("" none). */
bool gp__ext_cache_health(struct gp__ext_cache *c, int64_t *last_ok_ms, char *err, size_t n);

/* Did the watch see this pod deleted (or finish) lately? */
bool gp__ext_cache_gone(struct gp__ext_cache *c, const char *uid);

struct gp__ext_snap *gp__ext_snap_get(struct gp__ext_snap *s);
void gp__ext_snap_put(struct gp__ext_snap *s);

/* The snapshot's entry for a node, or NULL. */
struct gp__ext_node *gp__ext_snap_node(struct gp__ext_snap *s, const char *name);

/* What pods hold on a node in the snapshot, with the loop's additions: a
 * new array in *out (free it) of *n holds.  0 or -ENOMEM. */
int gp__ext_snap_holds(const struct gp__ext_snap *s, const char *name, struct gp_annot_hold **out,
		       unsigned *n);

/* --- extender_node.c ------------------------------------------------------ */

/* What a node's cards have given out, summed per card (index as in the
 * node state). */
struct gp__ext_sums {
	uint64_t mem[GP_MAX_GPUS];
	uint64_t compute[GP_MAX_GPUS];
	uint64_t tenants[GP_MAX_GPUS];
	uint32_t excl[GP_MAX_GPUS];      /* exclusive holders */
};

/* Build a placement node from a node's state and what its cards have given
 * out (u may be NULL: nothing).  Allocations beyond a card count it full.
 * Returns 0, -EINVAL with why, or -ENOMEM. */
int gp__ext_node_from(const char *name, const struct gp_annot_node *st,
		      const struct gp__ext_sums *u, struct gp_node **out, char *why, size_t n);

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

/* What the release changes in the node's gpupool.io/binding besides: */
struct gp__ext_release {
	const struct gp_annot_inflight *add;  /* this bind, now in flight; or NULL */
	const char *const *bound;             /* UIDs of pods now bound there */
	size_t nbound;                        /* (their entries go), sorted */
};

/* Release the lock if we still hold it, and update the node's binds in
 * flight (expired entries go too) in the same write.  Returns 0, or a
 * negative errno with why: then the lock expires by itself, and `add`
 * is not recorded. */
int gp__ext_unlock(struct gp__ext *x, const char *node, const char *holder,
		   const struct gp__ext_release *r, char *why, size_t n);

/* Remove a pod's entry from a node's binds in flight (a bind that failed
 * for good), without the lock: best effort, logged. */
void gp__ext_unlist(struct gp__ext *x, const char *node, const char *uid);

/* --- extender_bind.c ------------------------------------------------------ */

/* One bind, from the loop to a worker and back. */
struct gp__ext_bind_job {
	struct gp__ext *x;
	struct gp_http_req *rq;          /* to answer; NULL in tests */
	char ns[64], name[GP_NAME_MAX], uid[GP_ANNOT_UID_MAX], node[GP_NAME_MAX];
	struct gp__ext_snap *snap;       /* referenced: its workload guides the
	                                    choice of GPUs */
	char counted[GP_ANNOT_UID_MAX];  /* the loop counts it in the view
	                                    under this UID; "" not */
	bool has_hint;
	struct gp__ext_hint hint;        /* the GPUs it counts it on */
	uint64_t t0_ns;
	/* the outcome */
	int rc;
	char why[768];
	struct gp__ext_assumed got;      /* what it holds, when bound with GPUs */
};

/* Bind a pod: the whole procedure of docs/sched.md (the extender), on a
 * worker thread.  Sets j->rc (0, or a negative errno with the sentence
 * for ExtenderBindingResult.Error in j->why) and j->got. */
void gp__ext_bind(struct gp__ext_bind_job *j);

/* --- extender_preempt.c --------------------------------------------------- */

/* The victims kube-scheduler proposed on one node, read from either form. */
struct gp__ext_proposal {
	const char *node;
	size_t n;
	const char **uid;          /* borrowed from the request */
	json_int_t pdb;            /* its NumPDBViolations */
};

/* ExtenderPreemptionArgs as read (pointers into the request). */
struct gp__ext_preempt_args {
	json_t *pod;
	struct gp_pod_req req;
	bool req_ok;               /* req initialised */
	int32_t prio;              /* the preemptor's spec.priority */
	size_t np;
	struct gp__ext_proposal *pr;
};

/* Read ExtenderPreemptionArgs (NodeNameToMetaVictims or
 * NodeNameToVictims).  Returns 0, -EINVAL with why (a 400), or -ENOMEM;
 * free a with gp__ext_preempt_args_free in every case. */
int gp__ext_preempt_read(json_t *args, unsigned max_nodes, struct gp__ext_preempt_args *a,
			 char *why, size_t n);
void gp__ext_preempt_args_free(struct gp__ext_preempt_args *a);

/* POST /preempt: ExtenderPreemptionArgs in, ExtenderPreemptionResult out
 * (in *result).  Blocking (it may call the API) and thread-safe: it runs
 * on a worker thread, touching only x's options, policy and API client.
 * Returns 0, -EINVAL for a malformed request (why says), or another
 * negative errno with why. */
int gp__ext_preempt(struct gp__ext *x, json_t *args, json_t **result, char *why, size_t n);

/* --- extender_metrics.c (loop thread only) ------------------------------- */

enum gp__ext_verb { GP__EXT_FILTER, GP__EXT_PRIORITIZE, GP__EXT_BIND, GP__EXT_PREEMPT,
		    GP__EXT_VERBS };

struct gp__ext_metrics *gp__ext_metrics_new(void);
void gp__ext_metrics_free(struct gp__ext_metrics *m);
/* A request of `v` answered ns after it arrived. */
void gp__ext_metrics_observe(struct gp__ext_metrics *m, enum gp__ext_verb v, uint64_t ns);
void gp__ext_metrics_bind(struct gp__ext_metrics *m, int rc, uint64_t ns);
void gp__ext_metrics_preempt(struct gp__ext_metrics *m, int rc, uint64_t ns, json_t *res);
/* The exposition, as a string to free; NULL when out of memory. */
char *gp__ext_metrics_text(const struct gp__ext *x);

#endif
