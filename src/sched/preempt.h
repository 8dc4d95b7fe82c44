/* preempt.h - which pods to evict from one node so that a pod's GPUs fit
 * there: the pure half of the extender's POST /preempt (no I/O).
 *
 * kube-scheduler proposes victims for its own resources (CPU, memory,
 * ports ...) and never sees GPU memory, compute, card types or NUMA; the
 * extender (extender_preempt.c) reads the node and its pods and asks this
 * module for the victims on the GPU side:
 *
 *   victims = the scheduler's proposal (always kept: it needs them)
 *           + the smallest set of further GPU pods of strictly lower
 *             priority than the preemptor whose removal lets the pod fit
 *             (placement.h's gp_fit on the node's cards);
 *   among sets of that size: fewer PodDisruptionBudget violations, then
 *   the lowest highest victim priority, then the lowest sum of priorities
 *   (kube-scheduler's own order for choosing among nodes).
 *
 * The search is exact within a budget of fit checks (pods that every
 * solution needs are found first, then sets are enumerated by size); past
 * the budget the answer is an irreducible set from a greedy pass (every
 * victim needed, but a smaller set may exist), and says so.
 *
 * PDBs are matched as kube-scheduler's preemption matches them
 * (gp_preempt_pdb_covers): same namespace, a non-empty selector that
 * matches the pod's labels, the pod not already in status.disruptedPods;
 * each victim takes one from every matching PDB's disruptionsAllowed, and a
 * victim that takes one below zero is a violation.
 */
#ifndef GP_SCHED_PREEMPT_H
#define GP_SCHED_PREEMPT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sched/annot.h"
#include "gpupool/placement.h"

#define GP_PREEMPT_MAX_PODS 1024u      /* pods of one node (Kubernetes allows
                                          110 by default, a few hundred
                                          configured) */
#define GP_PREEMPT_MAX_CANDIDATES 128u /* GPU pods that may be chosen on one
                                          node; past it the lowest-priority
                                          ones are */
#define GP_PREEMPT_BUDGET 20000u       /* fit checks per node by default
                                          (each a few microseconds) */

/* One pod bound to the node, as the extender read it. */
struct gp_preempt_pod {
	int32_t priority;                  /* spec.priority; 0 when absent */
	bool proposed;                     /* kube-scheduler's victim: evicted
	                                      whatever this module finds */
	unsigned nhold;                    /* 0: holds no GPU on this node */
	const struct gp_annot_hold *hold;  /* its footprint (borrowed) */
	unsigned npdb;                     /* the PDBs that cover it, as ... */
	const uint32_t *pdb;               /* ... indices into pdb_allowed */
};

/* The node and everything bound to it. */
struct gp_preempt_node {
	const char *name;
	const struct gp_annot_node *st;    /* its GPUs */
	const struct gp_preempt_pod *pods; /* active pods bound to it */
	size_t npods;                      /* <= GP_PREEMPT_MAX_PODS */
	const int32_t *pdb_allowed;        /* status.disruptionsAllowed per PDB */
	size_t npdb;
	unsigned budget;                   /* fit checks; 0 = GP_PREEMPT_BUDGET */
};

struct gp_preempt_result {
	size_t nvictims;                   /* proposed ones included */
	uint32_t victim[GP_PREEMPT_MAX_PODS]; /* indices into pods, highest
	                                      priority first (kube-scheduler
	                                      reads the first as the highest) */
	size_t nadded;                     /* victims beyond the proposal */
	unsigned pdb_violations;           /* over all victims */
	unsigned checks;                   /* fit checks spent */
	bool exact;                        /* the set is a smallest one; false:
	                                      irreducible, from the greedy pass */
};

/* Choose the victims on one node for a pod asking `req` with `priority`.
 * Returns 0 with *out filled (nvictims may be 0 when the pod fits on the
 * node's GPUs with nothing evicted and nothing was proposed),
 * -ENOSPC when even evicting every lower-priority pod leaves too little
 * (why says what is missing), -EINVAL for a node state the placement
 * library refuses or too many pods (why says), -ENOMEM. */
int gp_preempt_select(const struct gp_preempt_node *in, const struct gp_request *req,
		      int32_t priority, struct gp_preempt_result *out, char *why, size_t n)
	__attribute__((warn_unused_result));

/* Does a label selector (metav1.LabelSelector: matchLabels and
 * matchExpressions with In, NotIn, Exists, DoesNotExist) match `labels`
 * (an object of strings, or NULL)?  A NULL or empty selector matches
 * nothing here, as in kube-scheduler's preemption; an operator it does not
 * know matches nothing (as a selector that fails to parse there). */
bool gp_preempt_selector_match(json_t *selector, json_t *labels);

/* Does PodDisruptionBudget `pdb` cover `pod` for preemption: same
 * namespace, its selector matches the pod's labels, and the pod is not
 * already in status.disruptedPods (being evicted: counted already). */
bool gp_preempt_pdb_covers(json_t *pdb, json_t *pod);

#endif
