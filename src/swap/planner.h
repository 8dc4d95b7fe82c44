/* planner.h - the hotswap planner: which models are active on which engines
 * of a fixed pool, and the swaps that get there.
 *
 * GPUs are reserved, so the pool is fixed; what changes is which models it
 * serves.  Every few seconds the controller (or the benchmark) hands the
 * planner the models (size, minimum and maximum replicas, the demand forecast
 * over the swap horizon), the engines (memory, health, what each one's host
 * has cached, bandwidths) and what is loaded now, and gets back the target
 * placement and an ordered list of actions (unload, load) with what each one
 * costs in bytes and seconds.
 *
 * Guarantees, for every call that returns 0:
 *   - Order: replicas lost with an unhealthy engine are dropped first; then
 *     every model below its minimum is restored (failover) before any replica
 *     is added for demand.  The minimum phase is not capped by max_loads.
 *   - Memory: on every healthy engine the shards of the target placement fit
 *     in mem_bytes, at every point of the action list (each load comes after
 *     the unloads that make its room).  Several models may share an engine;
 *     two replicas of one model never do.
 *   - No model is taken below its minimum to make room.  For another
 *     model's demand, a model gives up first the replicas its own demand no
 *     longer wants (after hysteresis); one it wants is taken only when the
 *     share of wanted replicas it then lacks is smaller, by more than
 *     `margin`, than the share the receiving model lacks (the trade improves
 *     the plan and the next round will not undo it).
 *   - Fewest bytes: replicas already loaded (or loading) are kept, never
 *     moved; a new replica goes to the engines where it is ready first
 *     (weights in that engine's host cache beat disk; an engine busy with
 *     earlier loads waits for them), then where it evicts the fewest bytes.
 *     Replicas beyond what demand wants are not unloaded eagerly: they stay
 *     as a warm cache until their memory is needed.
 *   - Hysteresis: a replica is added when demand exceeds target_util of the
 *     replicas' throughput; one becomes evictable only after demand has stayed
 *     below what the replicas minus one serve at target_util / (1 + margin)
 *     for hold_s seconds.
 *   - Deterministic: the same inputs (and the same history of calls) give the
 *     same plan; ties go to the lower model or engine index.
 *
 * Pure computation: no I/O, no logging; all memory is allocated by
 * gp_planner_new() and a call to gp_planner_plan() allocates nothing.  Not
 * thread-safe: one planner per pool, from one thread.
 */
#ifndef GP_SWAP_PLANNER_H
#define GP_SWAP_PLANNER_H

#include <stddef.h>
#include <stdint.h>

#define GP_PLAN_MAX_SPAN 8 /* most engines one replica may span */

struct gp_planner; /* opaque: capacities, configuration, hysteresis state */

/* Start from gp_planner_config_default() and override fields. */
struct gp_planner_config {
	double target_util; /* share of a replica's throughput demand may use
	                       before another replica is wanted, (0, 1];
	                       default 0.7 */
	double margin;      /* a replica is kept while demand needs it at
	                       target_util / (1 + margin); >= 0; default 0.25 */
	double hold_s;      /* demand must stay below that for this long before
	                       a replica becomes evictable, >= 0; default 120 */
	double busy_weight_s; /* for demand loads, an engine whose compute is
	                         fully taken counts as this many seconds of extra
	                         wait (spreads busy models), >= 0; default 10 */
	uint32_t max_loads; /* demand loads per call, >= 1 (minimum restores
	                       are not capped); default 8 */
	uint32_t max_models;   /* capacity: models per call, >= 1; default 256 */
	uint32_t max_engines;  /* capacity: engines per call, >= 1; default 256 */
	uint32_t max_replicas; /* capacity: replicas in a placement, >= 1;
	                          default 1024 */
};

void gp_planner_config_default(struct gp_planner_config *c);

/* Returns 0, or -EINVAL with *bad_field (when not NULL) naming the field. */
int gp_planner_config_check(const struct gp_planner_config *c, const char **bad_field)
	__attribute__((warn_unused_result));

/* Allocate a planner with a copy of `c`.  Returns 0, -EINVAL, -ENOMEM. */
int gp_planner_new(struct gp_planner **out, const struct gp_planner_config *c)
	__attribute__((warn_unused_result));
void gp_planner_free(struct gp_planner *p);

/* --- inputs --------------------------------------------------------------- */

struct gp_plan_model {
	uint64_t size_bytes;   /* GPU memory one replica needs, all its engines
	                          together; each engine holds size / span,
	                          rounded up */
	uint32_t span;         /* engines one replica spans, 1..GP_PLAN_MAX_SPAN
	                          (a 140 GB model on 80 GB engines: 2) */
	uint32_t min_replicas; /* kept at all times, restored first on failure */
	uint32_t max_replicas; /* never more; >= min_replicas */
	double replica_rps;    /* requests/s one replica serves at full use, > 0 */
	double demand_rps;     /* forecast demand over the swap horizon, >= 0 */
};

struct gp_plan_engine {
	uint64_t mem_bytes;    /* GPU memory for weights on this engine */
	double host_bw;        /* bytes/s host memory -> GPU, > 0 */
	double disk_bw;        /* bytes/s disk -> GPU, > 0 */
	int healthy;           /* 0: lost; its replicas are dropped */
	const uint8_t *cached; /* cached[m] != 0: model m's shard is in this
	                          engine's host memory; NULL: nothing cached.
	                          Owned by the caller */
	const uint8_t *serves; /* serves[m] != 0: this engine can hold model m
	                          (a vLLM engine has a server for some models
	                          only); NULL: every model.  Owned by the
	                          caller */
};

/* One replica: current (input) or target (output). */
struct gp_plan_replica {
	uint32_t model;                    /* model index */
	uint32_t nengines;                 /* == the model's span */
	uint32_t engine[GP_PLAN_MAX_SPAN]; /* engine indexes, distinct */
	double ready_s;                    /* seconds from now until it serves:
	                                      0 serving, > 0 still loading */
};

/* --- outputs -------------------------------------------------------------- */

enum gp_plan_op {
	GP_PLAN_LOAD,   /* copy the model's shard onto each engine */
	GP_PLAN_UNLOAD, /* free the model's shard on each engine */
};

enum gp_plan_why {
	GP_PLAN_WHY_MIN,    /* load: restores the model's minimum */
	GP_PLAN_WHY_DEMAND, /* load: the forecast demand wants it */
	GP_PLAN_WHY_ROOM,   /* unload: makes room for the load that follows */
	GP_PLAN_WHY_LOST,   /* unload: the rest of a replica that lost an engine */
	GP_PLAN_WHY_MAX,    /* unload: above the model's max_replicas */
};

enum gp_plan_src {
	GP_PLAN_SRC_NONE, /* unloads */
	GP_PLAN_SRC_HOST, /* every shard comes from host memory */
	GP_PLAN_SRC_DISK, /* at least one shard comes from disk */
};

struct gp_plan_action {
	enum gp_plan_op op;
	enum gp_plan_why why;
	enum gp_plan_src src;
	uint32_t model;
	uint32_t nengines;
	uint32_t engine[GP_PLAN_MAX_SPAN];
	uint64_t bytes;      /* copied onto GPUs by a load (all shards); 0 else */
	uint64_t disk_bytes; /* of those, read from disk */
	double start_s;      /* seconds from now the copy starts (after the
	                        engines' earlier loads); 0 for unloads */
	double done_s;       /* seconds from now the replica serves */
};

/* The plan; every pointer is into the planner and valid until its next
 * gp_planner_plan() or gp_planner_free(). */
struct gp_plan {
	const struct gp_plan_action *actions; /* in the order to run them */
	size_t nactions;
	const struct gp_plan_replica *replicas; /* target placement, with each
	                                           replica's ready_s */
	size_t nreplicas;
	const uint32_t *want;     /* per model: replicas demand wants after
	                             hysteresis, within [min, max] */
	const double *min_met_s;  /* per model: seconds from now until it has
	                             min_replicas serving replicas; 0 when it has
	                             them now (or min is 0); INFINITY when the
	                             healthy engines cannot hold them */
	uint32_t unmet_min;       /* models whose minimum could not be placed */
	uint32_t unmet_demand;    /* models short of `want` after this plan */
	uint64_t bytes;           /* sum of the loads' bytes */
	uint64_t disk_bytes;      /* sum of the loads' disk bytes */
	int truncated;            /* 1: the action or replica table filled up;
	                             the plan is valid but stops short */
};

/* Plan one round at time now_s (seconds, any monotonic clock; hysteresis
 * timers run on it).  `cur` is what is loaded or loading now.  Returns 0 and
 * the plan in *out, or -EINVAL (a model index, engine index or span out of
 * range, a count above the capacities, a bad number), leaving the
 * hysteresis state unchanged. */
int gp_planner_plan(struct gp_planner *p, double now_s, const struct gp_plan_model *models,
		    size_t nmodels, const struct gp_plan_engine *engines, size_t nengines,
		    const struct gp_plan_replica *cur, size_t ncur, struct gp_plan *out)
	__attribute__((warn_unused_result));

/* Forget the hysteresis history (all models as if never seen). */
void gp_planner_reset(struct gp_planner *p);

/* Names for logs and JSON. */
const char *gp_plan_op_name(enum gp_plan_op op);
const char *gp_plan_why_name(enum gp_plan_why why);

#endif
