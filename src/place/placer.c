/* placer.c - scoring nodes and choosing one, for every policy.
 *
 * A decision takes two passes over the candidates.  The first rejects what
 * does not fit (a cheap test on each node's compact state: host, card
 * count, type, then one pass over the cards) and computes the policy's cost
 * of the best way to put the pod on each node that does (lower is better).
 * The second picks among the cheapest.  fgd follows the paper's simulator:
 * its cost is the simulator's integer score, and among equal scores the
 * node whose name sorts first wins.  Ours treats costs within OURS_NEAR as
 * equal and prefers, among those, the node left with the least free GPU
 * compute, then the name that sorts first.  The other policies draw among
 * equal costs at random, as kube-scheduler does.  Only the winner gets a
 * full plan.
 *
 * The fragmentation-aware costs are the expensive ones: they evaluate the
 * fragmentation measure before and after each way of placing the pod.  So
 * the placer remembers each candidate's verdict (its cost, or why it does
 * not fit), keyed by the node's identity and version (bumped by every
 * change to the node), the request's shape and the workload's version, so
 * a decision after a commit recomputes only the node that changed.
 *
 * Memory decides the speed at 10,000 nodes and more, not arithmetic: a node
 * is about 5 KiB, so touching each candidate costs a cache and a TLB miss.
 * So a decision reads every candidate through two dense arrays, in order,
 * and touches a node only when its verdict is not known: the library's
 * summary table (pl_int.h: identity, version, host and card-count filters,
 * one cache line per node), and the cache, laid out as rows, one per
 * request shape, of one entry per candidate position.  A decision picks its
 * shape's row (the least recently used is given to a new shape) and walks
 * it alongside the candidates.  The rows and the per-candidate scratch
 * space are allocated when the candidate count grows, never per decision.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "place/pl_int.h"

#define MODEL_MEMO 16

/* The cache: at most ROWS_MAX request shapes (the trace's default list has
 * 151, its 64 most frequent make 97 % of the pods), fewer where ROW_BUDGET
 * bytes would not hold them, but never fewer than ROWS_MIN.  Untouched
 * rows cost address space only (calloc). */
#define ROWS_MAX 192
#define ROWS_MIN 4
#define ROW_BUDGET (64u << 20)
#define MAX_CLASSES 64

/* Ours' two parameters (docs/sched.md, "Ours"), chosen by a small sweep on
 * the benchmark's lists; every setting tried (0.002-0.01, 0.25-1) beat FGD
 * on every list. */
#define OURS_NEAR 0.04       /* costs this close (GPUs of expected
                                fragmentation) count as equal; about one
                                point of the simulator's FGD score */
#define OURS_CONTENTION 0.5  /* weight of the contention term */

/* One way to put the pod on a node. */
struct option {
	double cost;        /* the policy's cost; lower is better */
	double tie;         /* ours' second key: free compute left */
	int card;           /* the single card chosen, or -1 */
};

/* A candidate pass 1 kept for pass 2: one near the lowest cost so far. */
struct kept {
	struct option o;
	uint32_t i;         /* its position among the candidates */
};

/* A candidate's verdict in the row of one request shape: 32 bytes, so a
 * row of 12,000 candidates is 384 KiB, read in order. */
struct centry {
	uint64_t uid, version;  /* the node's when computed */
	double cost;            /* option.cost, before contention */
	float tie;              /* option.tie: free compute, an integer of at
	                           most 16,000, exact in a float */
	uint16_t gen;           /* valid while equal to its row's gen */
	int8_t card;            /* option.card */
	uint8_t why;            /* enum gp_reject; GP_FIT: cost is valid */
};

/* What a row of the cache holds. */
struct crow {
	uint64_t req, wversion; /* the request shape and workload version */
	uint64_t used;          /* the decision that last used it (LRU) */
	uint16_t gen;           /* entries of other gens are stale */
	bool valid;             /* holds a shape */
};

struct gp_placer {
	struct gp_policy pol;
	bool fgd_exact;             /* fgd as before: exact growth, random ties */
	const struct gp_workload *w;
	uint64_t wversion;          /* what fm was compiled from; 0 = none */
	struct gp__fmodel *fm;
	uint64_t rng;
	bool cache_on;              /* off: every node evaluated from its own
	                               struct, the reference for the checks */
	struct centry *cache;       /* nrows rows of ccap entries */
	size_t ccap;
	unsigned nrows;
	struct crow rows[ROWS_MAX];
	uint64_t tick;              /* decisions so far (LRU clock) */
	struct centry *row;         /* this decision's row; NULL = no cache */
	uint16_t rgen;              /* and its gen */
	/* per-request memo of card-model type checks */
	struct {
		uint64_t req, model;
		bool ok;
	} memo[MODEL_MEMO];
	unsigned memo_next;
	/* per-call normalisers (bestfit) */
	double cpu_max, gpu_max;
	/* per-call contention of node classes (ours) */
	unsigned ncls;
	uint64_t cls_hash[MAX_CLASSES];
	struct gp__nclass cls[MAX_CLASSES];
	double task_gpus;           /* GPUs the request asks for */
	/* per-call scratch, one per candidate */
	struct kept *kept;          /* gp_placer_choose's pass 1 for pass 2 */
	uint8_t *cidx;              /* class of each candidate; 255 = none */
	uint32_t *cslot;            /* each candidate's summary slot as last
	                               seen (checked against its owner) */
	size_t nopt;
};

/* --- small tools ----------------------------------------------------------- */

static uint64_t next_rand(struct gp_placer *pl)
{
	/* splitmix64: a tiny, well distributed generator; enough for ties */
	uint64_t z = (pl->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t req_key(const struct gp_request *r)
{
	return gp__hash_mix(gp__hash_mix(r->shape, r->cpu), r->mem);
}

static bool frag_policy(const struct gp_placer *pl)
{
	return pl->pol.node == GP_NODE_FGD || pl->pol.node == GP_NODE_OURS;
}

/* The pick rule for cards when the policy does not try every card. */
static struct gp__pick base_pick(const struct gp_placer *pl)
{
	return (struct gp__pick){
		.how = pl->pol.gpu == GP_GPU_SPREAD && !frag_policy(pl) ? GP__PICK_SPREAD : GP__PICK_BINPACK,
		.topology = pl->pol.topology,
		.fixed = -1,
	};
}

int gp_placer_new(struct gp_placer **out, const struct gp_policy *p, const struct gp_workload *w)
{
	struct gp_placer *pl;

	*out = NULL;
	if (!p || (unsigned)p->node >= GP_NODE__COUNT || (unsigned)p->gpu >= GP_GPU__COUNT)
		return -EINVAL;
	pl = calloc(1, sizeof *pl);
	if (!pl)
		return -ENOMEM;
	pl->pol = *p;
	pl->w = w;
	pl->rng = 1;
	pl->cache_on = true;
	*out = pl;
	return 0;
}

void gp_placer_free(struct gp_placer *pl)
{
	if (!pl)
		return;
	gp__fmodel_free(pl->fm);
	free(pl->cache);
	free(pl->kept);
	free(pl->cidx);
	free(pl->cslot);
	free(pl);
}

void gp_placer_seed(struct gp_placer *pl, uint64_t seed)
{
	pl->rng = seed;
}

void gp__placer_fgd_exact(struct gp_placer *pl, bool on)
{
	/* cached costs are of the other rule: forget them */
	if (pl->fgd_exact != on)
		for (unsigned i = 0; i < pl->nrows; i++)
			pl->rows[i].valid = false;
	pl->fgd_exact = on;
}

void gp__placer_cache(struct gp_placer *pl, bool on)
{
	pl->cache_on = on;
}

uint64_t gp__placer_rng(struct gp_placer *pl, const uint64_t *set)
{
	if (set)
		pl->rng = *set;
	return pl->rng;
}

/* Bring the compiled workload, the cache and the scratch space up to date
 * for a decision over n candidates.  Returns 0 or -ENOMEM. */
static int prepare(struct gp_placer *pl, size_t n)
{
	if (frag_policy(pl) && pl->w && pl->w->version != pl->wversion) {
		struct gp__fmodel *fm;

		if (gp__fmodel_new(&fm, pl->w, pl->pol.node == GP_NODE_OURS ? GP__F_HOSTMEM | GP__F_BALANCE : 0) < 0)
			return -ENOMEM;
		gp__fmodel_free(pl->fm);
		pl->fm = fm;
		pl->wversion = pl->w->version;
	}
	if (frag_policy(pl) && pl->cache_on && n > pl->ccap) {
		size_t rows = ROW_BUDGET / (n * sizeof(struct centry));
		struct centry *c;

		rows = rows > ROWS_MAX ? ROWS_MAX : rows < ROWS_MIN ? ROWS_MIN : rows;
		if (!(c = calloc(rows * n, sizeof *c)))
			return -ENOMEM;
		free(pl->cache);
		pl->cache = c;
		pl->ccap = n;
		pl->nrows = (unsigned)rows;
		memset(pl->rows, 0, sizeof pl->rows);
	}
	if (n > pl->nopt) {
		struct kept *o = realloc(pl->kept, n * sizeof *o);
		uint32_t *s;
		uint8_t *c;

		if (!o)
			return -ENOMEM;
		pl->kept = o;
		if (!(c = realloc(pl->cidx, n)))
			return -ENOMEM;
		pl->cidx = c;
		if (!(s = realloc(pl->cslot, n * sizeof *s)))
			return -ENOMEM;
		for (size_t i = pl->nopt; i < n; i++)
			s[i] = GP__NO_SLOT;
		pl->cslot = s;
		pl->nopt = n;
	}
	return 0;
}

/* Point pl->row at the row of request key rk under the current workload,
 * giving a new shape the least recently used row. */
static void pick_row(struct gp_placer *pl, uint64_t rk)
{
	struct crow *victim = NULL;

	pl->row = NULL;
	if (!pl->cache || !pl->cache_on || !frag_policy(pl))
		return;
	pl->tick++;
	for (unsigned i = 0; i < pl->nrows; i++) {
		struct crow *w = &pl->rows[i];

		if (w->valid && w->req == rk && w->wversion == pl->wversion) {
			victim = w;
			goto found;
		}
		if (!victim || (!w->valid && victim->valid) || (w->valid == victim->valid && w->used < victim->used))
			victim = w;
	}
	victim->valid = true;
	victim->req = rk;
	victim->wversion = pl->wversion;
	if (++victim->gen == 0) {
		/* after 65,535 reuses an entry's gen could match again: wipe */
		memset(pl->cache + (size_t)(victim - pl->rows) * pl->ccap, 0, pl->ccap * sizeof *pl->cache);
		victim->gen = 1;
	}
found:
	victim->used = pl->tick;
	pl->row = pl->cache + (size_t)(victim - pl->rows) * pl->ccap;
	pl->rgen = victim->gen;
}

/* Candidate i's entry in the summary table, or NULL when the cache is off
 * or the node has none.  The slot remembered from the last decision is
 * trusted while its entry's owner is still this node: then the node itself
 * is not touched. */
static inline const struct gp__hot *hot_get(struct gp_placer *pl, struct gp_node *const *nodes, size_t i)
{
	uint32_t s = pl->cslot[i];
	const struct gp__hot *h;

	if (!pl->cache_on)
		return NULL;
	if (s != GP__NO_SLOT) {
		h = gp__hot_at(s);
		if (atomic_load_explicit(&h->owner, memory_order_relaxed) == nodes[i])
			return h;
	}
	pl->cslot[i] = s = nodes[i]->slot;
	return s == GP__NO_SLOT ? NULL : gp__hot_at(s);
}

/* --- fit ------------------------------------------------------------------ */

/* Does a card of model hash `model` take the (simple) request's container,
 * by the memo alone?  1 or 0, or -1 when the memo does not know. */
static int type_memo(const struct gp_placer *pl, const struct gp_request *r, uint64_t rk, uint64_t model)
{
	const struct gp__ctr *c = &r->ctr[0];

	if (!c->nlist[GP__L_TYPES] && !c->nlist[GP__L_NO_TYPES])
		return 1;
	for (unsigned i = 0; i < MODEL_MEMO; i++)
		if (pl->memo[i].req == rk && pl->memo[i].model == model)
			return pl->memo[i].ok;
	return -1;
}

/* Does a card of this model take the (simple) request's container? */
static bool type_ok(struct gp_placer *pl, const struct gp_request *r, uint64_t rk, const struct gp__gpu *g)
{
	const struct gp__ctr *c = &r->ctr[0];
	unsigned i;
	int known = type_memo(pl, r, rk, g->model_hash);
	bool ok;

	if (known >= 0)
		return known;
	ok = gp__types_accept(r, c, g->model);
	i = pl->memo_next++ % MODEL_MEMO;
	pl->memo[i].req = rk;
	pl->memo[i].model = g->model_hash;
	pl->memo[i].ok = ok;
	return ok;
}

/* The fast rejection test for simple requests (at most one app container,
 * no init container, UUID list or NUMA binding): the filters of fit.c's
 * check_alone, in the same order so the reason is the same, on the compact
 * state.  Stores the cards that take the container in *mask. */
static enum gp_reject fast_check(struct gp_placer *pl, const struct gp_node *n, const struct gp_request *r,
				 uint64_t rk, unsigned *mask)
{
	const struct gp__ctr *c;
	unsigned k, m = 0, cnt[5] = {0};

	*mask = 0;
	if (r->cpu > n->st.cpu_free)
		return GP_R_CPU;
	if (r->mem > n->st.mem_free)
		return GP_R_MEMORY;
	if (r->nctr == 0)
		return GP_FIT;
	c = &r->ctr[0];
	k = c->gpus;
	if (n->st.ngpu < k)
		return GP_R_GPU_COUNT;
	/* The common rejection in a busy cluster: a uniform, plain node whose
	 * emptiest card has too little compute.  With the type accepted and
	 * no device memory asked for, compute is the first filter to fail. */
	if (k == 1 && n->plain && n->uniform && !c->exclusive && !c->mem_bytes && !c->mem_pct &&
	    c->compute > n->max_free_c && type_ok(pl, r, rk, &n->gpu[0]))
		return GP_R_COMPUTE;
	/* cnt[]: cards passing type, health, exclusivity, memory, compute */
	for (unsigned i = 0; i < n->ngpu; i++) {
		const struct gp__gstate *g = &n->st.g[i];

		if (!(n->uniform && i > 0 ? cnt[0] > 0 : type_ok(pl, r, rk, &n->gpu[i])))
			continue;
		cnt[0]++;
		if (!g->usable)
			continue;
		cnt[1]++;
		if (n->gpu[i].exclusive || (c->exclusive && !g->idle))
			continue;
		cnt[2]++;
		if (c->exclusive) {
			m |= 1u << i;
			continue;
		}
		if (g->free_m < gp__ctr_mem(c, g->cap_m))
			continue;
		cnt[3]++;
		if (g->free_c < c->compute)
			continue;
		cnt[4]++;
		if (g->free_t == 0)
			continue;
		m |= 1u << i;
	}
	*mask = m;
	if (cnt[0] < k)
		return GP_R_TYPE;
	if (cnt[1] < k)
		return GP_R_HEALTH;
	if (cnt[2] < k)
		return GP_R_EXCLUSIVE;
	if (!c->exclusive) {
		if (cnt[3] < k)
			return GP_R_GPU_MEMORY;
		if (cnt[4] < k)
			return GP_R_COMPUTE;
	}
	if ((unsigned)__builtin_popcount(m) < k)
		return GP_R_SLICES;
	return GP_FIT;
}

/* The first filters of fast_check, on the node's summary alone: the same
 * reason fast_check would give, or GP_FIT when the summary cannot tell
 * (then fast_check decides, on the node).  In a busy cluster this is where
 * most candidates end. */
static enum gp_reject hot_check(const struct gp_placer *pl, const struct gp__hot *h, const struct gp_request *r,
				uint64_t rk)
{
	const struct gp__ctr *c;

	if (r->cpu > h->cpu_free)
		return GP_R_CPU;
	if (r->mem > h->mem_free)
		return GP_R_MEMORY;
	if (r->nctr == 0)
		return GP_FIT;
	c = &r->ctr[0];
	if (h->ngpu < c->gpus)
		return GP_R_GPU_COUNT;
	if (c->gpus == 1 && (h->flags & (GP__HOT_PLAIN | GP__HOT_UNIFORM)) == (GP__HOT_PLAIN | GP__HOT_UNIFORM) &&
	    !c->exclusive && !c->mem_bytes && !c->mem_pct && c->compute > h->max_free_c &&
	    type_memo(pl, r, rk, h->model0) == 1)
		return GP_R_COMPUTE;
	return GP_FIT;
}

/* --- policy costs ------------------------------------------------------- */

static unsigned free_compute(const struct gp__nstate *s)
{
	unsigned f = 0;

	for (unsigned i = 0; i < s->ngpu; i++)
		if (s->g[i].usable)
			f += s->g[i].free_c;
	return f;
}

/* Allocated share of the node's GPU compute in state s (binpack, spread). */
static double used_share(const struct gp_node *n, const struct gp__nstate *s)
{
	if (n->cap_compute == 0) {
		/* no GPU: the host's CPU stands in */
		if (n->cpu == 0)
			return 0;
		return 1.0 - (double)s->cpu_free / (double)n->cpu;
	}
	return 1.0 - (double)free_compute(s) / n->cap_compute;
}

/* GPU-packing's tiers, lower first: only partly used cards (the fuller the
 * better); idle cards on a node in use (the fewer the better); an idle
 * node (the smaller the better). */
static double packing_cost(const struct gp_node *n, const struct gp__nstate *before, unsigned cards)
{
	unsigned idle_used = 0, free_on_used = 0, ncards = 0;

	if (!cards)
		return 0;
	for (unsigned i = 0; i < before->ngpu; i++) {
		if (!(cards & (1u << i)))
			continue;
		ncards++;
		if (before->g[i].idle && before->g[i].free_c == before->g[i].cap_c)
			idle_used++;
		else
			free_on_used += before->g[i].free_c;
	}
	if (n->idle_gpus == n->ngpu)
		return 2000.0 + n->ngpu;
	if (idle_used)
		return 1000.0 + idle_used;
	return (double)free_on_used / ncards;
}

/* Best-fit: what is left after placement, CPU and GPU weighted equally,
 * each relative to the largest node among the candidates. */
static double bestfit_cost(const struct gp_placer *pl, const struct gp__nstate *after)
{
	double cpu = after->cpu_free == UINT64_MAX ? 0 : (double)after->cpu_free;

	return 0.5 * cpu / (pl->cpu_max > 0 ? pl->cpu_max : 1) +
	       0.5 * free_compute(after) / (pl->gpu_max > 0 ? pl->gpu_max : 1);
}

/* The fragmentation of node n in state s, under the placer's model. */
static double frag_of(struct gp_placer *pl, const struct gp_node *n, const struct gp__nstate *s)
{
	return pl->fm ? gp__fmodel_eval(pl->fm, n, s) : 0;
}

/* FGD's score as the paper's simulator computes it (fgd_score.go):
 * int64(sigmoid((F_before - F_after) / 1000) * 100) with F in milli-GPUs,
 * i.e. the sigmoid of the fragmentation's decrease in GPUs, scaled to
 * 0-100 and truncated to an integer.  The truncation matters: near-equal
 * nodes tie (one point is about 0.04 GPU near zero), and the tie-break
 * then decides (gp_placer_choose: the node whose name sorts first). */
static double fgd_sim_score(double growth)
{
	return (double)(int64_t)(1.0 / (1.0 + exp(growth)) * 100.0);
}

/* The policy's cost of taking node n from state `before` to `after` by
 * using `cards`.  `fbefore` is frag_of(before) when already known (else
 * NAN). */
static struct option policy_cost(struct gp_placer *pl, const struct gp_node *n, const struct gp__nstate *before,
				 const struct gp__nstate *after, unsigned cards, double fbefore)
{
	struct option o = {.cost = 0, .tie = 0, .card = -1};

	switch (pl->pol.node) {
	case GP_NODE_BINPACK:
		o.cost = -used_share(n, after);
		break;
	case GP_NODE_SPREAD:
		o.cost = used_share(n, after);
		break;
	case GP_NODE_BESTFIT:
		o.cost = bestfit_cost(pl, after);
		break;
	case GP_NODE_PACKING:
		o.cost = packing_cost(n, before, cards);
		break;
	case GP_NODE_RANDOM:
		break;
	case GP_NODE_OURS:
		o.tie = free_compute(after);
		/* fall through */
	case GP_NODE_FGD:
		o.cost = frag_of(pl, n, after) - (isnan(fbefore) ? frag_of(pl, n, before) : fbefore);
		if (pl->pol.node == GP_NODE_FGD && !pl->fgd_exact)
			o.cost = -fgd_sim_score(o.cost);
		break;
	case GP_NODE__COUNT:
		break;
	}
	return o;
}

/* Cost of the best way to put a simple request on node n, whose cards in
 * `mask` take its container.  A single-card container under fgd or ours
 * tries every card (one per distinct card state) and keeps the first
 * cheapest, in index order, as the paper describes; otherwise the pick
 * rule chooses the cards.  Returns cost INFINITY if nothing fits. */
static struct option simple_cost(struct gp_placer *pl, const struct gp_node *n, const struct gp_request *r,
				 unsigned mask)
{
	struct option best = {.cost = INFINITY, .tie = INFINITY, .card = -1};
	const struct gp__ctr *c = r->nctr ? &r->ctr[0] : NULL;
	struct gp__nstate s = n->st;
	uint8_t set[GP_MAX_GPUS];
	struct gp__pick pick = base_pick(pl);
	unsigned cards = 0;

	if (s.cpu_free != UINT64_MAX)
		s.cpu_free -= r->cpu;
	if (s.mem_free != UINT64_MAX)
		s.mem_free -= r->mem;
	if (c && c->gpus == 1 && frag_policy(pl)) {
		double before = frag_of(pl, n, &n->st);

		for (unsigned i = 0; i < n->ngpu; i++) {
			const struct gp__gstate *g = &n->st.g[i];
			struct gp__nstate t = s;
			struct option o;
			bool dup = false;

			if (!(mask & (1u << i)))
				continue;
			for (unsigned j = 0; j < i && !dup; j++) {
				const struct gp__gstate *h = &n->st.g[j];

				dup = (mask & (1u << j)) && h->free_c == g->free_c && h->free_m == g->free_m &&
				      h->free_t == g->free_t && h->idle == g->idle && h->cap_m == g->cap_m &&
				      n->gpu[j].model_hash == n->gpu[i].model_hash;
			}
			if (dup)
				continue;
			gp__gstate_take(&t.g[i], c);
			o = policy_cost(pl, n, &n->st, &t, 1u << i, before);
			o.card = (int)i;
			if (o.cost < best.cost - 1e-12)
				best = o;
		}
		return best;
	}
	if (c) {
		if (!gp__choose_cards(n, &n->st, c, mask, &pick, set))
			return best;
		for (unsigned k = 0; k < c->gpus; k++) {
			gp__gstate_take(&s.g[set[k]], c);
			cards |= 1u << set[k];
		}
	}
	best = policy_cost(pl, n, &n->st, &s, cards, NAN);
	best.card = c && c->gpus == 1 ? set[0] : -1;
	return best;
}

/* --- contention (ours) ---------------------------------------------------- */

/* Sum the free compute per node class over the candidates, remember each
 * candidate's class, and work out each class's contention. */
static void set_contention(struct gp_placer *pl, struct gp_node *const *nodes, size_t n, const struct gp_request *r)
{
	unsigned last = 0;
	uint64_t freec[MAX_CLASSES]; /* summed as integers: no chain of
	                                floating-point adds, same result */

	pl->ncls = 0;
	pl->task_gpus = 0;
	if (pl->pol.node != GP_NODE_OURS || !pl->fm)
		return;
	for (unsigned i = 0; i < r->nctr; i++)
		if (!r->ctr[i].init)
			pl->task_gpus += r->ctr[i].gpus * r->ctr[i].compute / 100.0;
	if (pl->task_gpus <= 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct gp_node *nd = nodes[i];
		const struct gp__hot *hot = hot_get(pl, nodes, i);
		uint64_t h = hot ? hot->class_hash : nd->class_hash;
		unsigned k;

		pl->cidx[i] = UINT8_MAX;
		if (!(hot ? hot->ngpu : nd->st.ngpu))
			continue;
		/* nodes of a class tend to come together: try the last first */
		if (last < pl->ncls && pl->cls_hash[last] == h)
			k = last;
		else
			for (k = 0; k < pl->ncls; k++)
				if (pl->cls_hash[k] == h)
					break;
		if (k == pl->ncls) {
			if (pl->ncls == MAX_CLASSES)
				continue; /* past the cap: no contention for it */
			pl->cls_hash[k] = h;
			pl->cls[k] = (struct gp__nclass){.rep = &nd->gpu[0], .ngpu = nd->ngpu, .cpu = nd->cpu,
							 .mem = nd->mem};
			freec[k] = 0;
			pl->ncls++;
		}
		last = k;
		pl->cidx[i] = (uint8_t)k;
		freec[k] += hot ? hot->free_compute : nd->free_compute;
	}
	for (unsigned k = 0; k < pl->ncls; k++)
		pl->cls[k].freec = (double)freec[k];
	gp__fmodel_contention(pl->fm, pl->cls, pl->ncls);
}

/* --- per node --------------------------------------------------------------- */

/* Fit and cost of request r on candidate i (node nodes[i]).  Returns the
 * reason (GP_FIT with *o filled when it fits).  With the summary table and
 * the cache, the node itself is read only when neither knows the answer. */
static enum gp_reject node_cost(struct gp_placer *pl, struct gp_node *const *nodes, size_t i,
				const struct gp_request *r, uint64_t rk, struct option *o)
{
	const struct gp_node *n = nodes[i];
	enum gp_reject why;

	if (r->simple) {
		const struct gp__hot *h = hot_get(pl, nodes, i);
		struct centry *ce = NULL;
		unsigned mask;

		if (h) {
			if ((why = hot_check(pl, h, r, rk)) != GP_FIT)
				return why;
			if (pl->row) {
				ce = &pl->row[i];
				if (ce->gen == pl->rgen && ce->uid == h->uid && ce->version == h->version) {
					if (ce->why != GP_FIT)
						return (enum gp_reject)ce->why;
					*o = (struct option){.cost = ce->cost, .tie = ce->tie, .card = ce->card};
					goto contention;
				}
			}
		}
		if ((why = fast_check(pl, n, r, rk, &mask)) != GP_FIT) {
			if (ce)
				*ce = (struct centry){.uid = h->uid, .version = h->version, .gen = pl->rgen,
						      .card = -1, .why = (uint8_t)why};
			return why;
		}
		*o = simple_cost(pl, n, r, mask);
		if (isinf(o->cost))
			return GP_R_TOGETHER; /* fast_check said yes: cannot happen */
		if (ce)
			*ce = (struct centry){.uid = h->uid, .version = h->version, .cost = o->cost,
					      .tie = (float)o->tie, .gen = pl->rgen, .card = (int8_t)o->card,
					      .why = GP_FIT};
	} else {
		/* the general path: the core placement picks the cards */
		struct gp__pick pick = base_pick(pl);
		struct gp_plan p;
		struct gp__nstate s = n->st;

		if ((why = gp__place(n, r, &pick, &p, NULL, 0)) != GP_FIT)
			return why;
		gp__nstate_apply(&s, &p, r->cpu, r->mem);
		*o = policy_cost(pl, n, &n->st, &s, p.gpumask, NAN);
	}
contention:
	if (pl->ncls && pl->cidx[i] != UINT8_MAX)
		o->cost += OURS_CONTENTION * pl->task_gpus * pl->cls[pl->cidx[i]].k;
	return GP_FIT;
}

/* With the cache off every candidate is read from its own struct: ask
 * for the one PREFETCH_AHEAD places on, so that its memory arrives while
 * this one is worked on.  With the cache on, a node is read only when its
 * verdict is not known, so prefetching nodes would fetch what is not needed
 * (it did not help when tried); instead the summary line and the cache
 * entry of the candidate ROW_AHEAD places on are asked for.  Both arrays
 * are read in order, but past 10,000 candidates they come from L3 or
 * memory, and a candidate rejected by its summary skips its cache entry,
 * which may hide the stream from the hardware prefetcher. */
#define PREFETCH_AHEAD 16
#define ROW_AHEAD 32

static inline void prefetch_candidates(const struct gp_placer *pl, struct gp_node *const *nodes, size_t n,
				       size_t i)
{
	if (!pl->cache_on && i + PREFETCH_AHEAD < n) {
		const struct gp_node *nd = nodes[i + PREFETCH_AHEAD];

		__builtin_prefetch(&nd->uid);
		__builtin_prefetch(&nd->st.ngpu);
	} else if (pl->cache_on && i + ROW_AHEAD < n) {
		uint32_t s = pl->cslot[i + ROW_AHEAD];

		if (s != GP__NO_SLOT)
			__builtin_prefetch(gp__hot_at(s));
		if (pl->row)
			__builtin_prefetch(&pl->row[i + ROW_AHEAD]);
	}
}

/* The plan for option o (may be NULL) of request r on node n. */
static enum gp_reject plan_for(struct gp_placer *pl, const struct gp_node *n, const struct gp_request *r,
			       const struct option *o, struct gp_plan *plan, char *why, size_t whylen)
{
	struct gp__pick pick = base_pick(pl);

	if (o && o->card >= 0 && r->simple) {
		pick.how = GP__PICK_FIXED;
		pick.fixed = o->card;
	}
	return gp__place(n, r, &pick, plan, why, whylen);
}

/* Everything a pass over the candidates needs. */
static int begin(struct gp_placer *pl, struct gp_node *const *nodes, size_t n, const struct gp_request *r)
{
	if (n > INT32_MAX || prepare(pl, n) < 0)
		return -ENOMEM;
	pick_row(pl, req_key(r));
	pl->cpu_max = pl->gpu_max = 0;
	if (pl->pol.node == GP_NODE_BESTFIT)
		for (size_t i = 0; i < n; i++) {
			if ((double)nodes[i]->cpu > pl->cpu_max)
				pl->cpu_max = (double)nodes[i]->cpu;
			if ((double)nodes[i]->cap_compute > pl->gpu_max)
				pl->gpu_max = (double)nodes[i]->cap_compute;
		}
	set_contention(pl, nodes, n, r);
	return 0;
}

/* --- the public calls ---------------------------------------------------- */

enum gp_reject gp_placer_plan(struct gp_placer *pl, const struct gp_node *n, const struct gp_request *r,
			      struct gp_plan *plan, char *why, size_t whylen)
{
	struct gp_node *one = (struct gp_node *)n;
	struct option o;

	if (why && whylen)
		why[0] = '\0';
	if (begin(pl, &one, 1, r) < 0)
		return plan_for(pl, n, r, NULL, plan, why, whylen);
	pl->ncls = 0; /* one node: no contention to weigh */
	if (node_cost(pl, &one, 0, r, req_key(r), &o) != GP_FIT)
		return gp__place(n, r, NULL, plan, why, whylen); /* for the sentence */
	return plan_for(pl, n, r, &o, plan, why, whylen);
}

size_t gp_placer_score(struct gp_placer *pl, struct gp_node *const *nodes, size_t n, const struct gp_request *r,
		       double *out)
{
	uint64_t rk = req_key(r);
	double lo = INFINITY, hi = -INFINITY;
	size_t fits = 0;

	if (begin(pl, nodes, n, r) < 0) {
		/* out of memory: still say which nodes fit */
		for (size_t i = 0; i < n; i++)
			if ((out[i] = gp_fit(nodes[i], r, NULL, 0) == GP_FIT ? 1 : -1) > 0)
				fits++;
		return fits;
	}
	for (size_t i = 0; i < n; i++) {
		struct option o;

		prefetch_candidates(pl, nodes, n, i);
		if (node_cost(pl, nodes, i, r, rk, &o) != GP_FIT) {
			out[i] = NAN;
			continue;
		}
		out[i] = o.cost;
		fits++;
		lo = o.cost < lo ? o.cost : lo;
		hi = o.cost > hi ? o.cost : hi;
	}
	for (size_t i = 0; i < n; i++) {
		if (isnan(out[i]))
			out[i] = -1;
		else if (hi - lo <= 1e-12 * (fabs(lo) + 1))
			out[i] = 1;
		else
			out[i] = 1.0 - (out[i] - lo) / (hi - lo);
	}
	return fits;
}

/* strcmp of the names of candidates i and j.  Their first eight bytes come
 * from the summary table where both have an entry there: under fgd
 * hundreds of candidates may tie, and reading each one's name from its
 * node cost a cache miss apiece.  (The slot pass 1 saw is checked again:
 * requests that are not simple do not look at the table.) */
static int name_cmp(const struct gp_placer *pl, struct gp_node *const *nodes, size_t i, size_t j)
{
	uint32_t si = pl->cache_on ? pl->cslot[i] : GP__NO_SLOT, sj = pl->cache_on ? pl->cslot[j] : GP__NO_SLOT;

	if (si != GP__NO_SLOT && sj != GP__NO_SLOT &&
	    atomic_load_explicit(&gp__hot_at(si)->owner, memory_order_relaxed) == nodes[i] &&
	    atomic_load_explicit(&gp__hot_at(sj)->owner, memory_order_relaxed) == nodes[j]) {
		uint64_t a = gp__hot_name8(si), b = gp__hot_name8(sj);

		if (a != b)
			return a < b ? -1 : 1;
	}
	return strcmp(nodes[i]->name, nodes[j]->name);
}

/* Write "0/N nodes fit: 900 gpu-memory, 313 type" into d->why. */
static void summarise(struct gp_decision *d, size_t n)
{
	size_t used;

	gp__why(d->why, sizeof d->why, "0/%zu nodes fit", n);
	for (unsigned k = 1; k < GP_R__COUNT; k++) {
		used = strlen(d->why);
		if (d->rejected[k] && used + 1 < sizeof d->why)
			gp__why(d->why + used, sizeof d->why - used, "%s %u %s", used && strchr(d->why, ':') ? "," : ":",
				d->rejected[k], gp_reject_name(k));
	}
}

int gp_placer_choose(struct gp_placer *pl, struct gp_node *const *nodes, size_t n, const struct gp_request *r,
		     struct gp_decision *d)
{
	uint64_t rk = req_key(r);
	struct option best = {.cost = INFINITY, .tie = INFINITY, .card = -1};
	bool ours = pl->pol.node == GP_NODE_OURS;
	double lo = INFINITY, near, keep = INFINITY;
	size_t nkept = 0;
	unsigned ties = 0;

	memset(d->rejected, 0, sizeof d->rejected);
	d->node = -1;
	d->fits = 0;
	d->cost = 0;
	d->why[0] = '\0';
	if (begin(pl, nodes, n, r) < 0)
		return -ENOMEM;
	/* pass 1: fit and cost of every candidate, and the lowest cost.  Only
	 * candidates that may end near the lowest cost are kept for pass 2:
	 * those within twice the margin of the lowest cost so far (the bound
	 * lo + near(lo) only falls as lo does, so no candidate pass 2 wants is
	 * dropped; the factor 2 leaves room for rounding).  They are kept in
	 * candidate order, which pass 2 needs (random draws, fixed order). */
	for (size_t i = 0; i < n; i++) {
		struct option o;
		enum gp_reject why;

		prefetch_candidates(pl, nodes, n, i);
		why = node_cost(pl, nodes, i, r, rk, &o);

		if (why != GP_FIT) {
			d->rejected[why]++;
			continue;
		}
		d->fits++;
		if (o.cost < lo) {
			lo = o.cost;
			near = 1e-9 * (fabs(lo) > 1 ? fabs(lo) : 1);
			if (ours && OURS_NEAR > near)
				near = OURS_NEAR;
			keep = lo + 2 * near;
		}
		if (!isnan(o.cost) && !(o.cost > keep))
			pl->kept[nkept++] = (struct kept){.o = o, .i = (uint32_t)i};
	}
	if (!d->fits) {
		summarise(d, n);
		return 0;
	}
	/* pass 2: among the candidates near the lowest cost, the lowest second
	 * key (ours), then one at random */
	near = 1e-9 * (fabs(lo) > 1 ? fabs(lo) : 1);
	if (ours && OURS_NEAR > near)
		near = OURS_NEAR;
	for (size_t k = 0; k < nkept; k++) {
		const struct option *o = &pl->kept[k].o;
		size_t i = pl->kept[k].i;

		if (o->cost > lo + near)
			continue;
		if (ours || (pl->pol.node == GP_NODE_FGD && !pl->fgd_exact)) {
			/* fgd: the simulator's kube-scheduler (its selectHost):
			 * among the best scores, the lexicographically smallest
			 * name.  Ours: the node left with the least free GPU
			 * compute, then the same fixed order.  A fixed order
			 * fills the same nodes first where a random draw
			 * would spread small tasks over every equal node. */
			if (d->node >= 0) {
				if (ours && o->tie > best.tie + 1e-9)
					continue;
				if (!(ours && o->tie < best.tie - 1e-9) && name_cmp(pl, nodes, i, (size_t)d->node) >= 0)
					continue;
			}
			best = *o;
			d->node = (int)i;
			continue;
		}
		/* reservoir sampling: each tied candidate equally likely */
		if (next_rand(pl) % ++ties == 0) {
			best = *o;
			d->node = (int)i;
		}
	}
	d->cost = best.cost;
	if (plan_for(pl, nodes[d->node], r, &best, &d->plan, d->why, sizeof d->why) != GP_FIT)
		return -EINVAL; /* the fast test and the core disagree: a bug */
	return 0;
}
