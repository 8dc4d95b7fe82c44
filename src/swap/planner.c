/* planner.c - the hotswap planner (planner.h).
 *
 * One call works on a copy of the current placement (the replica table) and
 * on per-engine figures derived from it: memory used, when the engine's
 * earlier loads finish (loads on one engine run one after another: they share
 * its PCIe link), and the compute share its replicas' demand takes.  It then
 * fills deficits in two phases, minimums first, each new replica placed on
 * the engines where it is ready soonest, evicting only replicas their model
 * can spare.
 */
#include "swap/planner.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What a model may give up to make room, by phase: during the minimum phase
 * anything above the other model's minimum; during the demand phase only
 * what is above the replicas its demand wants. */
enum phase { PH_MIN, PH_DEMAND };

struct gp_planner {
	struct gp_planner_config c;
	double *low_since;       /* per model: since when demand has been below
	                            what its replicas minus one serve (NAN: not) */
	/* Scratch and output, sized by the capacities. */
	struct gp_plan_replica *rep;   /* the working placement */
	uint8_t *rep_new;              /* rep[i] is a load of this plan */
	size_t nrep;
	struct gp_plan_action *act;
	size_t nact, act_cap;
	uint32_t *count;               /* per model: replicas in rep */
	uint32_t *want;
	double *share;                 /* per model: compute share of one replica */
	double *min_met;
	uint8_t *skip;                 /* per model: placing failed this phase */
	uint64_t *used;                /* per engine: bytes of shards in rep */
	double *busy_until;            /* per engine: when its loads are done */
	double *busy;                  /* per engine: compute share taken */
	double *ready_tmp;             /* per replica: scratch for min_met */
	int truncated;
};

void gp_planner_config_default(struct gp_planner_config *c)
{
	*c = (struct gp_planner_config){
		.target_util = 0.7,
		.margin = 0.25,
		.hold_s = 120.0,
		.busy_weight_s = 10.0,
		.max_loads = 8,
		.max_models = 256,
		.max_engines = 256,
		.max_replicas = 1024,
	};
}

int gp_planner_config_check(const struct gp_planner_config *c, const char **bad_field)
{
	/* Table of checks: the first that fails names its field. */
	const struct {
		const char *name;
		int ok;
	} checks[] = {
		{"target_util", c->target_util > 0.0 && c->target_util <= 1.0},
		{"margin", c->margin >= 0.0 && isfinite(c->margin)},
		{"hold_s", c->hold_s >= 0.0 && isfinite(c->hold_s)},
		{"busy_weight_s", c->busy_weight_s >= 0.0 && isfinite(c->busy_weight_s)},
		{"max_loads", c->max_loads >= 1},
		{"max_models", c->max_models >= 1 && c->max_models <= 1u << 20},
		{"max_engines", c->max_engines >= 1 && c->max_engines <= 1u << 20},
		{"max_replicas", c->max_replicas >= 1 && c->max_replicas <= 1u << 24},
	};

	for (size_t i = 0; i < sizeof checks / sizeof *checks; i++)
		if (!checks[i].ok) {
			if (bad_field)
				*bad_field = checks[i].name;
			return -EINVAL;
		}
	if (bad_field)
		*bad_field = NULL;
	return 0;
}

void gp_planner_free(struct gp_planner *p)
{
	if (!p)
		return;
	free(p->low_since);
	free(p->rep);
	free(p->rep_new);
	free(p->act);
	free(p->count);
	free(p->want);
	free(p->share);
	free(p->min_met);
	free(p->skip);
	free(p->used);
	free(p->busy_until);
	free(p->busy);
	free(p->ready_tmp);
	free(p);
}

void gp_planner_reset(struct gp_planner *p)
{
	for (uint32_t m = 0; m < p->c.max_models; m++)
		p->low_since[m] = NAN;
}

int gp_planner_new(struct gp_planner **out, const struct gp_planner_config *c)
{
	struct gp_planner *p;
	size_t nm, ne, nr;

	*out = NULL;
	if (gp_planner_config_check(c, NULL))
		return -EINVAL;
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->c = *c;
	nm = c->max_models;
	ne = c->max_engines;
	nr = c->max_replicas;
	/* Every current replica may be unloaded once and every new one costs a
	 * load, so twice the replicas plus the engines' worth of partial
	 * unloads bounds a plan. */
	p->act_cap = 2 * nr + ne;
	p->low_since = calloc(nm, sizeof *p->low_since);
	p->rep = calloc(nr, sizeof *p->rep);
	p->rep_new = calloc(nr, 1);
	p->act = calloc(p->act_cap, sizeof *p->act);
	p->count = calloc(nm, sizeof *p->count);
	p->want = calloc(nm, sizeof *p->want);
	p->share = calloc(nm, sizeof *p->share);
	p->min_met = calloc(nm, sizeof *p->min_met);
	p->skip = calloc(nm, 1);
	p->used = calloc(ne, sizeof *p->used);
	p->busy_until = calloc(ne, sizeof *p->busy_until);
	p->busy = calloc(ne, sizeof *p->busy);
	p->ready_tmp = calloc(nr, sizeof *p->ready_tmp);
	if (!p->low_since || !p->rep || !p->rep_new || !p->act || !p->count || !p->want ||
	    !p->share || !p->min_met || !p->skip || !p->used || !p->busy_until || !p->busy ||
	    !p->ready_tmp) {
		gp_planner_free(p);
		return -ENOMEM;
	}
	gp_planner_reset(p);
	*out = p;
	return 0;
}

static const char *const op_names[] = {
	[GP_PLAN_LOAD] = "load",
	[GP_PLAN_UNLOAD] = "unload",
};

static const char *const why_names[] = {
	[GP_PLAN_WHY_MIN] = "min",       [GP_PLAN_WHY_DEMAND] = "demand",
	[GP_PLAN_WHY_ROOM] = "room",     [GP_PLAN_WHY_LOST] = "lost",
	[GP_PLAN_WHY_MAX] = "max",
};

const char *gp_plan_op_name(enum gp_plan_op op)
{
	return (unsigned)op < sizeof op_names / sizeof *op_names ? op_names[op] : "?";
}

const char *gp_plan_why_name(enum gp_plan_why why)
{
	return (unsigned)why < sizeof why_names / sizeof *why_names ? why_names[why] : "?";
}

/* --- helpers -------------------------------------------------------------- */

static uint64_t shard_bytes(const struct gp_plan_model *m)
{
	return (m->size_bytes + m->span - 1) / m->span;
}

/* Append an action; on a full table mark the plan truncated and return
 * NULL (the caller then stops changing the placement). */
static struct gp_plan_action *push_action(struct gp_planner *p, enum gp_plan_op op,
					  enum gp_plan_why why, const struct gp_plan_replica *r)
{
	struct gp_plan_action *a;

	if (p->nact == p->act_cap) {
		p->truncated = 1;
		return NULL;
	}
	a = &p->act[p->nact++];
	memset(a, 0, sizeof *a);
	a->op = op;
	a->why = why;
	a->src = GP_PLAN_SRC_NONE;
	a->model = r->model;
	a->nengines = r->nengines;
	memcpy(a->engine, r->engine, sizeof a->engine);
	return a;
}

/* Remove rep[i] from the working placement (swap with the last). */
static void drop_replica(struct gp_planner *p, const struct gp_plan_model *models, size_t i)
{
	const struct gp_plan_replica *r = &p->rep[i];
	uint64_t sh = shard_bytes(&models[r->model]);

	for (uint32_t k = 0; k < r->nengines; k++) {
		p->used[r->engine[k]] -= sh;
		p->busy[r->engine[k]] -= p->share[r->model];
	}
	p->count[r->model]--;
	p->rep[i] = p->rep[p->nrep - 1];
	p->rep_new[i] = p->rep_new[p->nrep - 1];
	p->nrep--;
}

/* Whether rep[i] holds model m on engine e. */
static int holds(const struct gp_plan_replica *r, uint32_t m, uint32_t e)
{
	if (r->model != m)
		return 0;
	for (uint32_t k = 0; k < r->nengines; k++)
		if (r->engine[k] == e)
			return 1;
	return 0;
}

/* Replicas a model can spare in a phase, given the working counts. */
static uint32_t floor_of(const struct gp_planner *p, const struct gp_plan_model *models,
			 uint32_t m, enum phase ph)
{
	return ph == PH_MIN ? models[m].min_replicas : p->want[m];
}

/* The share of model m's wanted replicas it lacks with `have` of them. */
static double gap_of(const struct gp_planner *p, uint32_t m, uint32_t have)
{
	return p->want[m] > have ? (double)(p->want[m] - have) / p->want[m] : 0.0;
}

/* Whether a replica of model rm may be evicted to place one of model m,
 * and how readily: 1 for a replica its model can spare (above what its
 * demand wants, or above its minimum in the minimum phase), 2 for one a
 * demand load may take from a model that, even without it, lacks a smaller
 * share of its wanted replicas than m lacks by more than the margin (so
 * the trade improves the plan, and cannot be undone by the next round), 0
 * for none. */
static int victim_class(const struct gp_planner *p, const struct gp_plan_model *models,
			uint32_t rm, uint32_t m, enum phase ph)
{
	if (rm == m || p->count[rm] <= models[rm].min_replicas)
		return 0;
	if (p->count[rm] > floor_of(p, models, rm, ph))
		return 1;
	if (ph == PH_DEMAND &&
	    gap_of(p, rm, p->count[rm] - 1) + p->c.margin < gap_of(p, m, p->count[m]))
		return 2;
	return 0;
}

/* Whether rep[a] (of class ca) is a better eviction victim than rep[b]
 * (class cb): spare replicas before taken ones, then lower demand per
 * replica (it loses least), then the lower model, then the lower slot, so
 * the choice is deterministic. */
static int better_victim(const struct gp_planner *p, const struct gp_plan_model *models,
			 size_t a, int ca, size_t b, int cb)
{
	uint32_t ma = p->rep[a].model, mb = p->rep[b].model;
	double da = models[ma].demand_rps / (p->count[ma] ? p->count[ma] : 1);
	double db = models[mb].demand_rps / (p->count[mb] ? p->count[mb] : 1);

	if (ca != cb)
		return ca < cb;
	if (da != db)
		return da < db;
	if (ma != mb)
		return ma < mb;
	return a < b;
}

/* The victims on engine e that free `need` bytes for model `m` in phase ph,
 * best first, into vict[] (at most nvmax).  Counts are tentatively lowered
 * while choosing, and restored before returning.  Returns the number of
 * victims, or -1 when the engine cannot make the room.  *evicted gets the
 * bytes they free on e. */
static int choose_victims(struct gp_planner *p, const struct gp_plan_model *models, uint32_t m,
			  uint32_t e, uint64_t need, enum phase ph, size_t *vict, int nvmax,
			  uint64_t *evicted)
{
	int nv = 0, ok = 0;
	uint64_t freed = 0;

	while (freed < need) {
		size_t best = SIZE_MAX;
		int bclass = 0;
		for (size_t i = 0; i < p->nrep; i++) {
			const struct gp_plan_replica *r = &p->rep[i];
			int taken = 0, on = 0, cls;

			if (p->rep_new[i])
				continue;
			for (uint32_t k = 0; k < r->nengines; k++)
				on |= r->engine[k] == e;
			for (int v = 0; v < nv; v++)
				taken |= vict[v] == i;
			if (!on || taken)
				continue;
			cls = victim_class(p, models, r->model, m, ph);
			if (!cls)
				continue;
			if (best == SIZE_MAX || better_victim(p, models, i, cls, best, bclass)) {
				best = i;
				bclass = cls;
			}
		}
		if (best == SIZE_MAX || nv == nvmax)
			goto out;
		vict[nv++] = best;
		p->count[p->rep[best].model]--;
		freed += shard_bytes(&models[p->rep[best].model]);
	}
	ok = 1;
out:
	for (int v = 0; v < nv; v++)
		p->count[p->rep[vict[v]].model]++;
	*evicted = freed;
	return ok ? nv : -1;
}

#define MAX_VICTIMS 32 /* replicas evicted from one engine for one load */

/* One engine's offer for a shard of model m. */
struct offer {
	uint32_t e;
	double cost;      /* what the choice minimizes, seconds */
	double load_s;    /* the copy itself */
	uint64_t evicted; /* bytes evicted on e */
	int from_disk;
	int nv;
	size_t vict[MAX_VICTIMS];
};

static int offer_better(const struct offer *a, const struct offer *b)
{
	if (a->cost != b->cost)
		return a->cost < b->cost;
	if (a->evicted != b->evicted)
		return a->evicted < b->evicted;
	return a->e < b->e;
}

/* Place one new replica of model m: pick its engines, emit the unloads that
 * make room and the load.  Returns 1 when placed, 0 when no set of engines
 * can take it now, -1 when a table filled up. */
static int place(struct gp_planner *p, const struct gp_plan_model *models,
		 const struct gp_plan_engine *engines, size_t ne, uint32_t m, enum phase ph)
{
	const struct gp_plan_model *md = &models[m];
	uint64_t sh = shard_bytes(md);
	struct offer best[GP_PLAN_MAX_SPAN], o;
	uint32_t nbest = 0;
	struct gp_plan_replica nr;
	struct gp_plan_action *a;
	double start = 0.0, load_s = 0.0, busy;
	int disk = 0;
	static_assert(MAX_VICTIMS * GP_PLAN_MAX_SPAN <= 256, "victims fit the stack");
	struct gp_plan_replica victims[GP_PLAN_MAX_SPAN][MAX_VICTIMS];

	if (p->nrep == p->c.max_replicas) {
		p->truncated = 1;
		return -1;
	}
	for (uint32_t e = 0; e < ne; e++) {
		int dup = 0;

		if (!engines[e].healthy || engines[e].mem_bytes < sh ||
		    (engines[e].serves && !engines[e].serves[m]))
			continue;
		for (size_t i = 0; i < p->nrep && !dup; i++)
			dup = holds(&p->rep[i], m, e);
		if (dup)
			continue;
		memset(&o, 0, sizeof o);
		o.e = e;
		if (p->used[e] + sh > engines[e].mem_bytes) {
			o.nv = choose_victims(p, models, m, e, p->used[e] + sh - engines[e].mem_bytes,
					      ph, o.vict, MAX_VICTIMS, &o.evicted);
			if (o.nv < 0)
				continue;
		}
		/* Demand loads do not crowd an engine whose compute is taken
		 * (by what stays there after the evictions). */
		busy = p->busy[e];
		for (int v = 0; v < o.nv; v++)
			busy -= p->share[p->rep[o.vict[v]].model];
		if (ph == PH_DEMAND && busy > 1e-9 && busy + p->share[m] > 1.0 + 1e-9)
			continue;
		o.from_disk = !(engines[e].cached && engines[e].cached[m]);
		o.load_s = (double)sh / (o.from_disk ? engines[e].disk_bw : engines[e].host_bw);
		o.cost = p->busy_until[e] + o.load_s;
		/* Restores race for time: there compute only breaks near-ties
		 * (at most a second). */
		o.cost += (ph == PH_DEMAND ? p->c.busy_weight_s : 1.0) * fmax(busy, 0.0);
		/* Keep the span's best offers, sorted (insertion). */
		if (nbest < md->span)
			nbest++;
		else if (!offer_better(&o, &best[nbest - 1]))
			continue;
		uint32_t k = nbest - 1;
		while (k > 0 && offer_better(&o, &best[k - 1])) {
			best[k] = best[k - 1];
			k--;
		}
		best[k] = o;
	}
	if (nbest < md->span)
		return 0;
	/* Two engines of a span may have picked the same victim (a replica on
	 * both; evicting it once serves both), or replicas of one model that
	 * can spare only one of them: then this span is refused. */
	for (uint32_t k = 0; k < md->span; k++) {
		start = fmax(start, p->busy_until[best[k].e]);
		load_s = fmax(load_s, best[k].load_s);
		disk |= best[k].from_disk;
		for (int v = 0; v < best[k].nv; v++) {
			uint32_t rm = p->rep[best[k].vict[v]].model, n = 0;
			for (uint32_t k2 = 0; k2 < md->span; k2++)
				for (int v2 = 0; v2 < best[k2].nv; v2++)
					n += p->rep[best[k2].vict[v2]].model == rm;
			/* n counts a shared victim once per engine: harmless, it
			 * only makes the test stricter. */
			if (p->count[rm] < n + models[rm].min_replicas && md->span > 1)
				return 0;
		}
	}
	memset(&nr, 0, sizeof nr);
	nr.model = m;
	nr.nengines = md->span;
	for (uint32_t k = 0; k < md->span; k++)
		nr.engine[k] = best[k].e;
	/* Unloads first.  Victims are found again by content: dropping one
	 * moves another into its slot. */
	for (uint32_t k = 0; k < md->span; k++) {
		for (int v = 0; v < best[k].nv; v++)
			victims[k][v] = p->rep[best[k].vict[v]];
	}
	for (uint32_t k = 0; k < md->span; k++) {
		for (int v = 0; v < best[k].nv; v++) {
			size_t idx = SIZE_MAX;
			for (size_t i = 0; i < p->nrep && idx == SIZE_MAX; i++)
				if (!p->rep_new[i] &&
				    memcmp(&p->rep[i], &victims[k][v], sizeof victims[k][v]) == 0)
					idx = i;
			if (idx == SIZE_MAX)
				continue; /* already evicted for another engine of the span */
			if (!push_action(p, GP_PLAN_UNLOAD, GP_PLAN_WHY_ROOM, &victims[k][v]))
				return -1;
			drop_replica(p, models, idx);
		}
	}
	a = push_action(p, GP_PLAN_LOAD, ph == PH_MIN ? GP_PLAN_WHY_MIN : GP_PLAN_WHY_DEMAND, &nr);
	if (!a)
		return -1;
	a->src = disk ? GP_PLAN_SRC_DISK : GP_PLAN_SRC_HOST;
	a->bytes = sh * md->span;
	for (uint32_t k = 0; k < md->span; k++)
		if (best[k].from_disk)
			a->disk_bytes += sh;
	a->start_s = start;
	a->done_s = start + load_s;
	nr.ready_s = a->done_s;
	for (uint32_t k = 0; k < md->span; k++) {
		p->used[nr.engine[k]] += sh;
		p->busy_until[nr.engine[k]] = a->done_s;
		p->busy[nr.engine[k]] += p->share[m];
	}
	p->rep[p->nrep] = nr;
	p->rep_new[p->nrep] = 1;
	p->nrep++;
	p->count[m]++;
	return 1;
}

/* Replicas model m's demand wants, with the hysteresis band: scale up at
 * target_util; a replica above ceil(demand (1 + margin) / target) is kept
 * until demand has stayed that low for hold_s.  Updates the model's timer. */
static uint32_t wanted(struct gp_planner *p, const struct gp_plan_model *md, uint32_t m,
		       uint32_t have, double now)
{
	double cap = md->replica_rps * p->c.target_util;
	double up = ceil(md->demand_rps / cap - 1e-9);
	double keep = ceil(md->demand_rps * (1.0 + p->c.margin) / cap - 1e-9);
	uint32_t w;

	if (up < 0.0)
		up = 0.0;
	if (keep < up)
		keep = up;
	if (up > md->max_replicas)
		up = md->max_replicas;
	if (keep > md->max_replicas)
		keep = md->max_replicas;
	if ((double)have <= keep) {
		p->low_since[m] = NAN;
		w = (double)have > up ? have : (uint32_t)up;
	} else {
		if (isnan(p->low_since[m]))
			p->low_since[m] = now;
		w = now - p->low_since[m] >= p->c.hold_s ? (uint32_t)keep : have;
	}
	if (w < md->min_replicas)
		w = md->min_replicas;
	if (w > md->max_replicas)
		w = md->max_replicas;
	return w;
}

static int check_inputs(const struct gp_planner *p, double now, const struct gp_plan_model *models,
			size_t nm, const struct gp_plan_engine *engines, size_t ne,
			const struct gp_plan_replica *cur, size_t ncur)
{
	if (!isfinite(now) || nm > p->c.max_models || ne > p->c.max_engines ||
	    ncur > p->c.max_replicas || (nm && !models) || (ne && !engines) || (ncur && !cur))
		return -EINVAL;
	for (size_t m = 0; m < nm; m++) {
		const struct gp_plan_model *md = &models[m];
		if (md->span < 1 || md->span > GP_PLAN_MAX_SPAN || md->size_bytes == 0 ||
		    md->min_replicas > md->max_replicas || !(md->replica_rps > 0.0) ||
		    !isfinite(md->replica_rps) || !(md->demand_rps >= 0.0) ||
		    !isfinite(md->demand_rps))
			return -EINVAL;
	}
	for (size_t e = 0; e < ne; e++)
		if (!(engines[e].host_bw > 0.0) || !(engines[e].disk_bw > 0.0))
			return -EINVAL;
	for (size_t i = 0; i < ncur; i++) {
		const struct gp_plan_replica *r = &cur[i];
		if (r->model >= nm || r->nengines != models[r->model].span || !(r->ready_s >= 0.0) ||
		    !isfinite(r->ready_s))
			return -EINVAL;
		for (uint32_t k = 0; k < r->nengines; k++) {
			if (r->engine[k] >= ne)
				return -EINVAL;
			for (uint32_t j = 0; j < k; j++)
				if (r->engine[j] == r->engine[k])
					return -EINVAL;
		}
	}
	return 0;
}

/* Seconds until model m has its minimum serving, from the working table. */
static double min_met_time(struct gp_planner *p, const struct gp_plan_model *md, uint32_t m)
{
	size_t n = 0;

	if (md->min_replicas == 0)
		return 0.0;
	for (size_t i = 0; i < p->nrep; i++)
		if (p->rep[i].model == m) {
			/* Insertion sort into ready_tmp; counts are small. */
			double t = p->rep[i].ready_s;
			size_t k = n++;
			while (k > 0 && p->ready_tmp[k - 1] > t) {
				p->ready_tmp[k] = p->ready_tmp[k - 1];
				k--;
			}
			p->ready_tmp[k] = t;
		}
	return n < md->min_replicas ? INFINITY : p->ready_tmp[md->min_replicas - 1];
}

/* The model with the largest unmet share of its wanted replicas that has
 * not failed this phase, or UINT32_MAX. */
static uint32_t neediest(const struct gp_planner *p, size_t nm)
{
	uint32_t best = UINT32_MAX;
	double bgap = 0.0;

	for (uint32_t m = 0; m < nm; m++) {
		double gap;
		if (p->skip[m] || p->count[m] >= p->want[m])
			continue;
		gap = (double)(p->want[m] - p->count[m]) / p->want[m];
		if (best == UINT32_MAX || gap > bgap) {
			best = m;
			bgap = gap;
		}
	}
	return best;
}

int gp_planner_plan(struct gp_planner *p, double now, const struct gp_plan_model *models,
		    size_t nm, const struct gp_plan_engine *engines, size_t ne,
		    const struct gp_plan_replica *cur, size_t ncur, struct gp_plan *out)
{
	uint32_t loads = 0;
	int rc;

	memset(out, 0, sizeof *out);
	rc = check_inputs(p, now, models, nm, engines, ne, cur, ncur);
	if (rc)
		return rc;
	p->nrep = 0;
	p->nact = 0;
	p->truncated = 0;
	memset(p->count, 0, nm * sizeof *p->count);
	memset(p->used, 0, ne * sizeof *p->used);
	memset(p->busy_until, 0, ne * sizeof *p->busy_until);
	memset(p->busy, 0, ne * sizeof *p->busy);

	/* 1. The current placement: lost replicas go (their healthy parts are
	 * unloaded), replicas above max go, the rest is kept as is. */
	for (size_t i = 0; i < ncur; i++) {
		const struct gp_plan_replica *r = &cur[i];
		const struct gp_plan_model *md = &models[r->model];
		int lost = 0;

		for (uint32_t k = 0; k < r->nengines; k++)
			lost |= !engines[r->engine[k]].healthy;
		if (lost) {
			struct gp_plan_replica part = *r;
			part.nengines = 0;
			for (uint32_t k = 0; k < r->nengines; k++)
				if (engines[r->engine[k]].healthy)
					part.engine[part.nengines++] = r->engine[k];
			if (part.nengines)
				push_action(p, GP_PLAN_UNLOAD, GP_PLAN_WHY_LOST, &part);
			continue;
		}
		if (p->count[r->model] >= md->max_replicas) {
			push_action(p, GP_PLAN_UNLOAD, GP_PLAN_WHY_MAX, r);
			continue;
		}
		p->rep[p->nrep] = *r;
		p->rep_new[p->nrep] = 0;
		p->nrep++;
		p->count[r->model]++;
		for (uint32_t k = 0; k < r->nengines; k++) {
			p->used[r->engine[k]] += shard_bytes(md);
			p->busy_until[r->engine[k]] = fmax(p->busy_until[r->engine[k]], r->ready_s);
		}
	}

	/* 2. What demand wants, and the compute share a replica will carry. */
	for (uint32_t m = 0; m < nm; m++) {
		const struct gp_plan_model *md = &models[m];
		p->want[m] = wanted(p, md, m, p->count[m], now);
		p->share[m] = md->demand_rps / (md->replica_rps * (p->want[m] ? p->want[m] : 1));
		if (p->share[m] > 1.0)
			p->share[m] = 1.0;
	}
	for (size_t i = 0; i < p->nrep; i++)
		for (uint32_t k = 0; k < p->rep[i].nengines; k++)
			p->busy[p->rep[i].engine[k]] += p->share[p->rep[i].model];

	/* 3. Minimums first, in model order: failover is not capped. */
	memset(p->skip, 0, nm);
	for (uint32_t m = 0; m < nm; m++)
		while (!p->skip[m] && p->count[m] < models[m].min_replicas) {
			rc = place(p, models, engines, ne, m, PH_MIN);
			if (rc < 0)
				goto done;
			if (rc == 0)
				p->skip[m] = 1;
		}

	/* 4. Demand: one replica at a time to the model furthest below what it
	 * wants, up to max_loads. */
	memset(p->skip, 0, nm);
	while (loads < p->c.max_loads) {
		uint32_t m = neediest(p, nm);
		if (m == UINT32_MAX)
			break;
		rc = place(p, models, engines, ne, m, PH_DEMAND);
		if (rc < 0)
			goto done;
		if (rc == 0)
			p->skip[m] = 1;
		else
			loads++;
	}
done:
	for (uint32_t m = 0; m < nm; m++) {
		p->min_met[m] = min_met_time(p, &models[m], m);
		out->unmet_min += p->count[m] < models[m].min_replicas;
		out->unmet_demand += p->count[m] < p->want[m];
	}
	for (size_t i = 0; i < p->nact; i++) {
		out->bytes += p->act[i].bytes;
		out->disk_bytes += p->act[i].disk_bytes;
	}
	out->actions = p->act;
	out->nactions = p->nact;
	out->replicas = p->rep;
	out->nreplicas = p->nrep;
	out->want = p->want;
	out->min_met_s = p->min_met;
	out->truncated = p->truncated;
	return 0;
}
