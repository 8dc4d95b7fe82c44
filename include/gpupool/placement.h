/* placement.h - where a pod's GPU slices go: the placement library.
 *
 * Pure computation, no I/O: the scheduler extender (`gpupool sched`) and the
 * benchmark (bench/placement) build the same models and ask the same
 * questions.  docs/sched.md explains the model and the policies.
 *
 *   node      a machine: host CPU and memory, up to GP_MAX_GPUS GPUs, each
 *             with capacity, current allocations, NUMA node and pairwise
 *             link scores.  Opaque: it keeps precomputed summaries that make
 *             rejecting it cheap.  Built field by field (gp_node_new,
 *             gp_node_add_gpu, gp_node_set_link).
 *   request   a pod: its host CPU and memory and the containers that use
 *             GPUs (init containers flagged).  Opaque; containers are added
 *             from a plain struct (struct gp_ctr).
 *   plan      which GPU each container gets and how much; a plain struct the
 *             caller reads (to write annotations) and hands back to commit
 *             or release it on the node.
 *   policy    how to choose among nodes and among a node's GPUs; parsed from
 *             a string ("binpack", "spread,gpu=binpack", "fgd", "ours").
 *   workload  the expected mix of task types, which the fragmentation-aware
 *             policies (fgd, ours) optimise for; built from a pod list or
 *             from pods the scheduler has seen.
 *   placer    a policy plus a workload plus scratch space and caches: the
 *             object that scores nodes and chooses one.  No allocation per
 *             decision.
 *
 * Units: CPU in millicores, memory in bytes, GPU compute in percent of one
 * whole GPU (100 = the full card), GPU memory in bytes.
 *
 * Threads: a node, a request, a workload or a placer may be used by one
 * thread at a time; read-only calls may run in parallel, and a workload
 * no one changes may be read by several placers at once (the extender's
 * bind workers each plan with a placer of their own over the view's
 * workload).  The only lock is taken when a node is created or freed (the
 * library's table of node summaries).
 *
 * Errors: functions that can fail return 0 or a negative errno
 * (-EINVAL bad argument, -ENOSPC a cap reached, -ENOMEM); those that take an
 * `err` buffer (may be NULL) also write a sentence saying what was wrong.
 * Fit checks return an enum gp_reject, 0 meaning "fits".
 */
#ifndef GPUPOOL_PLACEMENT_H
#define GPUPOOL_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GP_PL_WUR __attribute__((warn_unused_result))

/* Hard caps.  Every input is checked against them. */
#define GP_MAX_GPUS 16u        /* GPUs per node */
#define GP_MAX_CONTAINERS 16u  /* GPU-using containers per pod (init + app) */
#define GP_NAME_MAX 254u       /* node name, NUL included (Kubernetes: 253) */
#define GP_ID_MAX 96u          /* GPU UUID or model name, NUL included */
#define GP_LIST_MAX 16u        /* entries in one include/exclude list */
#define GP_REASON_MAX 256u     /* a rejection reason, NUL included; longer
                                  reasons are cut at a character boundary */
#define GP_MAX_SLICES 1024u    /* tenants per GPU */
#define GP_WORKLOAD_MAX_TYPES 1024u /* distinct task types in a workload */

/* ---------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

struct gp_node;

/* One GPU as the caller describes it (from the node annotation, NVML or a
 * trace).  Zero-initialise, fill in, hand to gp_node_add_gpu(); the node
 * keeps a copy. */
struct gp_gpu {
	const char *uuid;     /* "GPU-8f2c..."; unique in the node, 1..GP_ID_MAX-1
	                         bytes; NULL or "" gets "gpu<index>" */
	const char *model;    /* card type, e.g. "NVIDIA-A100-SXM4-80GB"; matched
	                         by the type include/exclude lists; may be "" */
	uint64_t mem_bytes;   /* device memory; > 0 */
	unsigned compute;     /* compute capacity, 100 = one whole GPU; 0 means
	                         100 */
	unsigned slices;      /* most tenants at once (HAMi's split count),
	                         1..GP_MAX_SLICES; 0 means 1 */
	int numa;             /* NUMA node of the card, -1 when unknown (then it
	                         never satisfies a NUMA binding of 2+ GPUs) */
	bool unhealthy;       /* true: never chosen, counts as unavailable */

	/* What is allocated on it now (all zero for an idle card). */
	uint64_t mem_used;    /* <= mem_bytes */
	unsigned compute_used; /* <= compute */
	unsigned tenants;     /* <= slices */
	bool exclusive;       /* held whole by one tenant: nothing else fits */
};

/* A node with no GPUs yet.  `name` is copied (1..GP_NAME_MAX-1 bytes).
 * `cpu_milli` and `mem_bytes` are the allocatable host CPU and memory,
 * `cpu_used`/`mem_used` what pods already request; a capacity of 0 means
 * "not tracked here" and never rejects (kube-scheduler checks host
 * resources itself).  Returns 0 and the node in *out (free it with
 * gp_node_free), -EINVAL, or -ENOMEM. */
int gp_node_new(struct gp_node **out, const char *name, uint64_t cpu_milli,
		uint64_t cpu_used, uint64_t mem_bytes, uint64_t mem_used) GP_PL_WUR;

void gp_node_free(struct gp_node *n);

/* Append a GPU; its index is the number of GPUs added before it.  Every
 * link score to the other GPUs starts at 0.  Returns the index (>= 0),
 * -ENOSPC past GP_MAX_GPUS, or -EINVAL (bad field, duplicate UUID) with the
 * reason in err. */
int gp_node_add_gpu(struct gp_node *n, const struct gp_gpu *g, char *err, size_t errlen) GP_PL_WUR;

/* Set the link score between GPUs a and b (symmetric; a != b).  Higher is
 * better; only the order matters.  Suggested scale, from `nvidia-smi topo
 * -m`: SYS 0, NODE 10, PHB 20, PXB 30, PIX 40, NV<k> 100 + 10k.  Used by the
 * topology-aware choice for multi-GPU containers.  Returns 0 or -EINVAL. */
int gp_node_set_link(struct gp_node *n, unsigned a, unsigned b, unsigned score) GP_PL_WUR;

/* Host usage changed outside this library (another pod without GPUs came or
 * went).  Returns 0, or -EINVAL if used exceeds a tracked capacity. */
int gp_node_set_host_used(struct gp_node *n, uint64_t cpu_used, uint64_t mem_used) GP_PL_WUR;

const char *gp_node_name(const struct gp_node *n);
unsigned gp_node_gpu_count(const struct gp_node *n);

/* GPU i as it stands now (allocations included).  The strings point into
 * the node and live as long as it.  Returns 0 or -EINVAL for a bad index. */
int gp_node_gpu(const struct gp_node *n, unsigned i, struct gp_gpu *out) GP_PL_WUR;

/* The index of the GPU with this UUID (exact, case-insensitive), or -1. */
int gp_node_find_gpu(const struct gp_node *n, const char *uuid);

/* Free host CPU and memory (capacity - used; UINT64_MAX when untracked). */
uint64_t gp_node_cpu_free(const struct gp_node *n);
uint64_t gp_node_mem_free(const struct gp_node *n);

/* ---------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

struct gp_request;

/* One container that uses GPUs, as the caller describes it.  Zero-initialise
 * (GP_CTR_INIT), fill in, hand to gp_request_add_container(); the request
 * keeps a copy of everything, strings included.  Every amount is per GPU. */
struct gp_ctr {
	const char *name;     /* for reasons and plans; may be NULL */
	bool init;            /* an init container (see "Init containers") */
	unsigned gpus;        /* GPUs, 1..GP_MAX_GPUS, each a distinct card */
	uint64_t mem_bytes;   /* device memory per GPU; or ... */
	unsigned mem_pct;     /* ... a share of each card's memory, 1-100.  At
	                         most one of the two is set; neither = no memory
	                         reserved */
	unsigned compute;     /* compute per GPU, percent 0-100; 0 = none
	                         reserved (best effort) */
	bool exclusive;       /* the whole card: only idle cards qualify and
	                         nothing else is placed on them */
	bool numa_bind;       /* all of this container's GPUs on one NUMA node */
	/* Comma-separated lists (NULL or "" = no constraint), at most
	 * GP_LIST_MAX entries of GP_ID_MAX-1 bytes each.  A type entry matches a
	 * card whose model contains its words as whole words, ignoring case and
	 * what separates them ("A100", "a100-sxm4" and "NVIDIA A100" match
	 * "NVIDIA-A100-SXM4-80GB"; "A10" does not): HAMi's substring rule
	 * without its surprises; a UUID entry matches
	 * exactly, ignoring case.  A card qualifies if it matches some entry of
	 * each non-empty include list and no entry of either exclude list. */
	const char *types;    /* card types allowed */
	const char *no_types; /* card types refused */
	const char *uuids;    /* cards allowed */
	const char *no_uuids; /* cards refused */
};
#define GP_CTR_INIT {0}

/* An empty request.  Returns 0 and *out (free with gp_request_free), or
 * -ENOMEM. */
int gp_request_new(struct gp_request **out) GP_PL_WUR;
void gp_request_free(struct gp_request *r);

/* Forget everything, keeping the memory, so one request can be refilled
 * per pod without allocating. */
void gp_request_reset(struct gp_request *r);

/* The pod's host request as Kubernetes computes it (max of the largest init
 * container and the sum of app containers, plus overhead).  0 = none. */
void gp_request_set_host(struct gp_request *r, uint64_t cpu_milli, uint64_t mem_bytes);

/* Add a container.  Containers are numbered in the order added; plans use
 * those numbers.  A container with gpus == 0 is refused (leave it out: its
 * host resources are in the pod's); a request with no container at all is
 * a host-only pod, checked for CPU and memory only.  Returns its index
 * (>= 0), -ENOSPC past GP_MAX_CONTAINERS, or -EINVAL with the reason in
 * err. */
int gp_request_add_container(struct gp_request *r, const struct gp_ctr *c, char *err,
			     size_t errlen) GP_PL_WUR;

unsigned gp_request_container_count(const struct gp_request *r);

/* GPUs the pod holds at its peak: the app containers' GPUs together, or the
 * largest init container's if that is more (an upper bound of distinct
 * cards; containers may share a card). */
unsigned gp_request_gpus(const struct gp_request *r);

/* ---------------------------------------------------------------------------
 * Fit and plans
 *
 * Init containers: Kubernetes runs them one at a time, to completion,
 * before the app containers start.  So the pod's footprint on each GPU is
 * the larger of (a) what its app containers take there together and
 * (b) what any single init container takes there.  App containers are placed
 * first; each init container then goes, where its constraints allow, on
 * GPUs the footprint already covers, so it usually costs nothing extra.
 * The footprint (plan.hold) is what commit reserves and release returns;
 * it stays reserved for the pod's whole life, as Kubernetes keeps an init
 * container's requests in the pod's effective request.
 *
 * Containers of one pod may share a card (each is one tenant of it); the
 * GPUs of one container are always distinct cards.
 * ------------------------------------------------------------------------ */

/* Why a node (or a GPU) does not fit.  0 = fits.  Codes are stable: the
 * extender and tests compare them. */
enum gp_reject {
	GP_FIT = 0,
	GP_R_CPU,         /* not enough free host CPU */
	GP_R_MEMORY,      /* not enough free host memory */
	GP_R_GPU_COUNT,   /* fewer GPUs (usable ones) than a container needs */
	GP_R_TYPE,        /* no card of an allowed type / type excluded */
	GP_R_UUID,        /* no card with an allowed UUID / UUID excluded */
	GP_R_HEALTH,      /* the cards that qualify are unhealthy */
	GP_R_GPU_MEMORY,  /* no card with enough free device memory */
	GP_R_COMPUTE,     /* no card with enough free compute */
	GP_R_SLICES,      /* the cards that qualify have no tenant slot left */
	GP_R_EXCLUSIVE,   /* exclusive use needs an idle card, or a card is held
	                     exclusively */
	GP_R_NUMA,        /* not enough qualifying cards on one NUMA node */
	GP_R_TOGETHER,    /* each container fits alone, but not all of them at
	                     once */
	GP_R__COUNT
};

/* A short stable name for a reason code ("gpu-memory", "numa", ...). */
const char *gp_reject_name(enum gp_reject r);

/* The same cause in a few words for people ("no GPU with enough free
 * memory"), the same for every node it applies to: kube-scheduler groups
 * identical reasons into one line with a count. */
const char *gp_reject_text(enum gp_reject r);

/* One GPU given to one container. */
struct gp_grant {
	uint8_t gpu;          /* index of the GPU in the node */
	bool exclusive;       /* the whole card */
	uint16_t compute;     /* percent; the card's whole compute if exclusive */
	uint64_t mem_bytes;   /* bytes; mem_pct already resolved against the
	                         card; the whole card if exclusive */
};

/* The pod's footprint on one GPU: what commit adds and release removes. */
struct gp_hold {
	uint16_t compute;     /* percent */
	uint16_t tenants;     /* tenant slots (containers on the card at once) */
	bool exclusive;
	uint64_t mem_bytes;
};

/* Where a pod goes on one node.  Filled by a fit; read by the caller;
 * handed back to commit/release.  A plain value: copy it freely. */
struct gp_plan {
	uint8_t nctr;                            /* containers, as in the request */
	uint8_t ngrant[GP_MAX_CONTAINERS];       /* GPUs given to container c */
	struct gp_grant grant[GP_MAX_CONTAINERS][GP_MAX_GPUS];
	uint16_t gpumask;                        /* bit i: the pod holds GPU i */
	struct gp_hold hold[GP_MAX_GPUS];        /* footprint per GPU index */
	uint64_t cpu_milli;                      /* host CPU reserved */
	uint64_t mem_bytes;                      /* host memory reserved */
};

/* Can the pod run on the node as it stands?  Checks every constraint of
 * every container and of the containers together; does not choose by
 * policy (any feasible plan proves the fit).  Returns GP_FIT, or the reason
 * it does not fit with a sentence in why (may be NULL), e.g.
 * "container infer: no GPU with 20000 MiB free (largest 16384 MiB on
 * GPU-1234...)", "card type T4 excluded", "container train needs 4 GPUs on
 * one NUMA node, node has at most 2". */
enum gp_reject gp_fit(const struct gp_node *n, const struct gp_request *r, char *why,
		      size_t whylen);

/* Reserve a plan on its node: allocations grow by plan->hold and host
 * usage by the plan's CPU and memory.  The plan must come from a fit on
 * this node (or describe allocations read back from annotations).
 * Returns 0, or -ENOSPC (and changes nothing) if it no longer fits, or
 * -EINVAL for a plan naming GPUs the node lacks. */
int gp_node_commit(struct gp_node *n, const struct gp_plan *p) GP_PL_WUR;

/* Return a committed plan's resources.  Returns 0, or -EINVAL (and changes
 * nothing) if the node does not hold that much. */
int gp_node_release(struct gp_node *n, const struct gp_plan *p) GP_PL_WUR;

/* ---------------------------------------------------------------------------
 * Policies
 * ------------------------------------------------------------------------ */

/* How to rank nodes. */
enum gp_node_policy {
	GP_NODE_OURS = 0,   /* "ours": fragmentation-aware, CPU/memory-aware,
	                       with lookahead (docs/sched.md) - the default */
	GP_NODE_FGD,        /* "fgd": the paper's Fragmentation Gradient Descent */
	GP_NODE_BINPACK,    /* "binpack": the node with the most GPU compute
	                       allocated (HAMi's binpack) */
	GP_NODE_SPREAD,     /* "spread": the node with the least */
	GP_NODE_BESTFIT,    /* "bestfit": least weighted free CPU+memory+GPU
	                       left after placement */
	GP_NODE_PACKING,    /* "packing": GPU-packing - a partly used card, then
	                       a node already in use, then an idle node */
	GP_NODE_RANDOM,     /* "random": any node that fits (seeded) */
	GP_NODE__COUNT
};

/* How to choose a node's GPUs for a container (binpack..random policies;
 * fgd and ours choose GPUs by their own measure). */
enum gp_gpu_policy {
	GP_GPU_BINPACK = 0, /* "binpack": the fullest card that fits */
	GP_GPU_SPREAD,      /* "spread": the emptiest card */
	GP_GPU__COUNT
};

struct gp_policy {
	enum gp_node_policy node;
	enum gp_gpu_policy gpu;
	bool topology;      /* multi-GPU containers: prefer the set of cards with
	                       the best link scores, on one NUMA node, and nodes
	                       that offer such a set */
};

/* Parse a policy: comma-separated items, each `node=NAME`, `gpu=NAME`,
 * `topology=on|off`, or a bare node NAME (same as node=NAME).  Node names:
 * ours, fgd, binpack, spread, bestfit (best-fit), packing (gpu-packing),
 * random (random-fit).  Defaults: node=ours, gpu=binpack, topology=on.
 * gpu= with fgd or ours is an error (they pick GPUs themselves).  Returns 0,
 * or -EINVAL with the reason in err. */
int gp_policy_parse(const char *s, struct gp_policy *out, char *err, size_t errlen) GP_PL_WUR;

/* Write the policy in the form gp_policy_parse reads.  Returns buf. */
char *gp_policy_format(const struct gp_policy *p, char *buf, size_t n);

/* ---------------------------------------------------------------------------
 * Workload: the task mix the fragmentation measure is taken against
 * ------------------------------------------------------------------------ */

struct gp_workload;

int gp_workload_new(struct gp_workload **out) GP_PL_WUR;
void gp_workload_free(struct gp_workload *w);

/* Count one pod (a trace row, or a pod the scheduler placed) with `weight`
 * (> 0; 1 per pod).  Pods of the same shape (host CPU and memory, GPUs per
 * container, compute, memory, exclusivity, type constraints) are one task
 * type whose weight adds up.  When GP_WORKLOAD_MAX_TYPES types exist, a new
 * shape replaces the lightest type if it weighs more, else it is dropped.
 * Returns 0, or -EINVAL. */
int gp_workload_add(struct gp_workload *w, const struct gp_request *r, double weight) GP_PL_WUR;

/* Multiply every weight by `factor` (0 < factor <= 1): lets a scheduler that
 * keeps observing forget old pods. */
void gp_workload_decay(struct gp_workload *w, double factor);

unsigned gp_workload_types(const struct gp_workload *w);
double gp_workload_total(const struct gp_workload *w);

/* The paper's fragmentation of a node against the workload: the expected
 * amount of the node's free GPU compute that a task drawn from the workload
 * could not use, in GPUs (1.0 = one whole card).  For one task type m, a
 * card's free compute is a fragment if m cannot run on the node at all, or
 * if m can but the card has less free than m needs per card.  0 for an
 * empty workload. */
double gp_frag(const struct gp_node *n, const struct gp_workload *w);

/* ---------------------------------------------------------------------------
 * Placer: scoring and choosing
 * ------------------------------------------------------------------------ */

struct gp_placer;

/* A placer for `p`.  `w` (may be NULL for policies that ignore it) is
 * borrowed, not copied: it must outlive the placer, and changes to it are
 * seen by later calls.  Returns 0 and *out, -EINVAL or -ENOMEM. */
int gp_placer_new(struct gp_placer **out, const struct gp_policy *p,
		  const struct gp_workload *w) GP_PL_WUR;
void gp_placer_free(struct gp_placer *pl);

/* Seed the random-fit policy and tie-breaking among equal nodes (default 1).
 * fgd and ours break ties by node name instead (the name that sorts first),
 * as the paper's simulator does: they use no random numbers. */
void gp_placer_seed(struct gp_placer *pl, uint64_t seed);

/* The plan this policy would use on this node: as gp_fit, but GPUs are
 * chosen by the policy.  Returns GP_FIT with *plan filled, or the reason. */
enum gp_reject gp_placer_plan(struct gp_placer *pl, const struct gp_node *n,
			      const struct gp_request *r, struct gp_plan *plan, char *why,
			      size_t whylen);

/* Score candidates for kube-scheduler's prioritize: out[i] in [0, 1] for a
 * node that fits (1 = the node gp_placer_choose would pick, others scaled
 * linearly by how much worse they are), -1 for one that does not.
 * Returns the number of nodes that fit. */
size_t gp_placer_score(struct gp_placer *pl, struct gp_node *const *nodes, size_t n,
		       const struct gp_request *r, double *out);

/* The outcome of choosing a node. */
struct gp_decision {
	int node;                  /* index into the candidates; -1 when none fits */
	struct gp_plan plan;       /* the plan on that node */
	double cost;               /* the policy's cost of the choice (lower is
	                              better; ours: the growth of fragmentation
	                              plus contention; fgd: minus the paper's
	                              simulator's integer score 0-100) */
	unsigned fits;             /* candidates that fit */
	unsigned rejected[GP_R__COUNT]; /* candidates rejected, per reason */
	char why[GP_REASON_MAX];   /* when none fits: a summary, e.g. "0/1213
	                              nodes fit: 900 gpu-memory, 313 type" */
};

/* Choose the best candidate for the pod.  Does not commit: call
 * gp_node_commit(nodes[d->node], &d->plan) to take it.  Returns 0 with *d
 * filled (d->node == -1 when nothing fits), or -EINVAL. */
int gp_placer_choose(struct gp_placer *pl, struct gp_node *const *nodes, size_t n,
		     const struct gp_request *r, struct gp_decision *d) GP_PL_WUR;

#endif
