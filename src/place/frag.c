/* frag.c - the fragmentation measure of "Beware of Fragmentation" (Weng et
 * al., USENIX ATC '23), compiled for speed.
 *
 * The paper's definition, for a node n and one task type m:
 *   - m cannot run on n at all (too little CPU, no card of its type, fewer
 *     than k cards with enough free): every unallocated GPU share of n is a
 *     fragment for m;
 *   - m can run: the free share of each card that cannot take m's per-card
 *     demand is a fragment (a card with 0.3 free is a fragment for a task
 *     that needs 0.5 per card, and for any whole-GPU task);
 *   - m asks for no GPU: every free share counts (nothing of m will use it).
 * The node's fragmentation is the expectation over the workload,
 * F_n = sum_m p_m F_n(m), in GPUs.  FGD places a task where F grows least.
 *
 * Compiled form: the workload's types are grouped by their GPU shape (card
 * count, per-card compute and memory, exclusivity, type lists); inside a
 * group the host parts (CPU, memory) are sorted by CPU with running weight
 * sums, so "the share of this group that fits the node's free CPU" is a
 * binary search.  Which groups a card model accepts is worked out once per
 * model and remembered, with those groups sorted by per-card demand: on a
 * node of one model (every node of the trace) the cards' free compute is
 * sorted once and one sweep finds, for every group, how many cards take it
 * and how much the others hold.  With GP__F_HOSTMEM, host memory joins CPU
 * in the "can run" test (ours); the paper's measure looks at CPU and GPU
 * only.
 *
 * The contention measure of ours lives here too, as it reads the same
 * groups: see gp__fmodel_contention in pl_int.h and docs/sched.md.
 *
 * GP__F_BALANCE (ours) adds the GPU share a node's host CPU will strand:
 * with rho the host CPU the workload asks per unit of GPU (over the types
 * the node's card model takes, host-only tasks included), capped at the
 * node's own CPU per GPU, free cards beyond cpu_free / rho will find no
 * CPU to run with.  The paper's test sees CPU only once a task type no
 * longer fits at all; this sees a node drift towards that state.  The cap
 * at the node's own ratio keeps an idle node at zero: a node built with
 * less CPU per GPU than the workload asks is not penalised for it, only
 * for being pushed below its own ratio.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "place/pl_int.h"

#define MAX_MODELS 64u

/* Weight of the stranded share (GP__F_BALANCE) against the fragmentation
 * measure, in GPUs per GPU. */
#define BALANCE_WEIGHT 0.1

struct fentry {
	uint64_t cpu, mem;
	double weight;
	double cum;            /* weight of this entry and every one before it */
};

struct fgroup {
	uint8_t k, d, mem_pct;
	bool exclusive;
	uint64_t gmem;
	const struct gp__wtype *proto; /* for the type lists */
	double weight;         /* of all entries */
	unsigned first, n;     /* entries[first .. first+n), sorted by cpu */
	uint64_t max_mem;      /* largest host memory among the entries */
	bool needs_mem;        /* asks for device memory */
};

struct fmodel_model {
	uint64_t hash;
	uint8_t *ok;           /* per group: does this card model take it */
	uint16_t *compat;      /* groups with cards that it takes, by d */
	unsigned ncompat;
	double rho;            /* host CPU (millicores) the types it takes ask
	                          per percent of GPU; 0 = none asks for GPU */
	double w_const;        /* weight of the groups for which every free
	                          share of such a node is a fragment: the
	                          ones it cannot take, and host-only tasks */
};

struct gp__fmodel {
	const struct gp_workload *w;
	bool host_mem;
	bool balance;          /* GP__F_BALANCE */
	double total;          /* weight of all types */
	unsigned ngroups;
	struct fgroup *groups;
	struct fentry *entries;
	unsigned nmodels;
	struct fmodel_model models[MAX_MODELS];
	/* contention: per distinct set of classes that can host a type, the
	 * GPU demand of those types (for the class list with signature csig) */
	uint64_t csig;
	unsigned cnc, ncm;
	uint64_t *cmask;
	double *cdemand;
};

static bool same_gpu_shape(const struct gp__wtype *a, const struct gp__wtype *b)
{
	return a->k == b->k && a->d == b->d && a->mem_pct == b->mem_pct && a->gmem == b->gmem &&
	       a->exclusive == b->exclusive && a->types == b->types && a->no_types == b->no_types;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct fentry *x = a, *y = b;

	return x->cpu < y->cpu ? -1 : x->cpu > y->cpu;
}

int gp__fmodel_new(struct gp__fmodel **out, const struct gp_workload *w, unsigned flags)
{
	struct gp__fmodel *m = calloc(1, sizeof *m);
	unsigned *gi = NULL;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->w = w;
	m->host_mem = flags & GP__F_HOSTMEM;
	m->balance = flags & GP__F_BALANCE;

	m->groups = calloc(w->n ? w->n : 1, sizeof *m->groups);
	m->entries = calloc(w->n ? w->n : 1, sizeof *m->entries);
	m->cmask = calloc(w->n ? w->n : 1, sizeof *m->cmask);
	m->cdemand = calloc(w->n ? w->n : 1, sizeof *m->cdemand);
	gi = calloc(w->n ? w->n : 1, sizeof *gi);
	if (!m->groups || !m->entries || !m->cmask || !m->cdemand || !gi)
		goto fail;
	/* group the types by GPU shape */
	for (unsigned i = 0; i < w->n; i++) {
		const struct gp__wtype *t = &w->t[i];
		double tw = t->weight;
		unsigned g;

		if (!(tw > 0))
			continue;
		for (g = 0; g < m->ngroups; g++)
			if (same_gpu_shape(m->groups[g].proto, t))
				break;
		if (g == m->ngroups) {
			struct fgroup *G = &m->groups[m->ngroups++];

			G->k = t->k;
			G->d = t->d;
			G->mem_pct = t->mem_pct;
			G->gmem = t->gmem;
			G->exclusive = t->exclusive;
			G->needs_mem = t->mem_pct || t->gmem;
			G->proto = t;
		}
		gi[i] = g;
		m->groups[g].n++;
		m->groups[g].weight += tw;
		m->total += tw;
	}
	/* lay the entries out group by group, sorted by CPU */
	for (unsigned g = 0, at = 0; g < m->ngroups; g++) {
		m->groups[g].first = at;
		at += m->groups[g].n;
		m->groups[g].n = 0;
	}
	for (unsigned i = 0; i < w->n; i++) {
		const struct gp__wtype *t = &w->t[i];
		double tw = t->weight;
		struct fgroup *G;

		if (!(tw > 0))
			continue;
		G = &m->groups[gi[i]];
		m->entries[G->first + G->n++] = (struct fentry){.cpu = t->cpu, .mem = t->mem, .weight = tw};
		if (t->mem > G->max_mem)
			G->max_mem = t->mem;
	}
	for (unsigned g = 0; g < m->ngroups; g++) {
		struct fgroup *G = &m->groups[g];
		double cum = 0;

		qsort(m->entries + G->first, G->n, sizeof *m->entries, cmp_entry);
		for (unsigned e = 0; e < G->n; e++) {
			cum += m->entries[G->first + e].weight;
			m->entries[G->first + e].cum = cum;
		}
	}
	free(gi);
	*out = m;
	return 0;
fail:
	free(gi);
	gp__fmodel_free(m);
	return -ENOMEM;
}

void gp__fmodel_free(struct gp__fmodel *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < m->nmodels; i++) {
		free(m->models[i].ok);
		free(m->models[i].compat);
	}
	free(m->groups);
	free(m->entries);
	free(m->cmask);
	free(m->cdemand);
	free(m);
}

/* The groups a card model takes, remembered per model hash for the first
 * MAX_MODELS models (NULL past that, or without memory). */
static const struct fmodel_model *model_entry(struct gp__fmodel *m, const struct gp__gpu *gpu)
{
	struct fmodel_model *mm;
	double hcpu = 0, hgpu = 0;

	for (unsigned i = 0; i < m->nmodels; i++)
		if (m->models[i].hash == gpu->model_hash)
			return &m->models[i];
	if (m->nmodels == MAX_MODELS)
		return NULL;
	mm = &m->models[m->nmodels];
	*mm = (struct fmodel_model){.hash = gpu->model_hash};
	mm->ok = malloc(m->ngroups ? m->ngroups : 1);
	mm->compat = malloc((m->ngroups ? m->ngroups : 1) * sizeof *mm->compat);
	if (!mm->ok || !mm->compat) {
		free(mm->ok);
		free(mm->compat);
		return NULL;
	}
	for (unsigned g = 0; g < m->ngroups; g++) {
		const struct fgroup *G = &m->groups[g];
		unsigned j;

		mm->ok[g] = gp__wtype_accepts(m->w, G->proto, gpu->model);
		if (mm->ok[g] || G->k == 0) {
			/* the CPU per GPU of what can run here */
			for (unsigned e = 0; e < G->n; e++)
				hcpu += m->entries[G->first + e].weight * (double)m->entries[G->first + e].cpu;
			hgpu += G->weight * G->k * (G->exclusive ? 100u : G->d);
		}
		if (!mm->ok[g] || G->k == 0) {
			mm->w_const += G->weight;
			continue;
		}
		/* insertion by per-card demand, so one sweep serves them all */
		for (j = mm->ncompat; j > 0 && m->groups[mm->compat[j - 1]].d > G->d; j--)
			mm->compat[j] = mm->compat[j - 1];
		mm->compat[j] = (uint16_t)g;
		mm->ncompat++;
	}
	mm->rho = hgpu > 0 ? hcpu / hgpu : 0;
	m->nmodels++;
	return mm;
}

/* Which groups a card model takes: the remembered answer, or worked out
 * into tmp. */
static const uint8_t *model_ok(struct gp__fmodel *m, const struct gp__gpu *gpu, uint8_t *tmp)
{
	const struct fmodel_model *mm = model_entry(m, gpu);

	if (mm)
		return mm->ok;
	for (unsigned g = 0; g < m->ngroups; g++)
		tmp[g] = gp__wtype_accepts(m->w, m->groups[g].proto, gpu->model);
	return tmp;
}

/* Weight of group G's entries that fit the host's free CPU (and memory). */
static double host_fit_weight(const struct gp__fmodel *m, const struct fgroup *G, const struct gp__nstate *s)
{
	const struct fentry *e = m->entries + G->first;
	unsigned lo = 0, hi = G->n;
	double w = 0;

	/* entries [0, lo) have cpu <= cpu_free */
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (e[mid].cpu <= s->cpu_free)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!m->host_mem || G->max_mem <= s->mem_free)
		return lo ? e[lo - 1].cum : 0;
	for (unsigned i = 0; i < lo; i++)
		if (e[i].mem <= s->mem_free)
			w += e[i].weight;
	return w;
}

/* Does a card in state g take one task of group G? */
static bool card_takes(const struct fgroup *G, const struct gp__gstate *g)
{
	if (!g->usable || g->free_t == 0)
		return false;
	if (G->exclusive)
		return g->idle;
	return g->free_c >= G->d && g->free_m >= (G->mem_pct ? gp__pct_of(g->cap_m, G->mem_pct) : G->gmem);
}

/* Group G's part of the fragmentation, given how many cards take it, the
 * free compute of the others and the node's total free compute. */
static double group_frag(const struct gp__fmodel *m, const struct fgroup *G, const struct gp__nstate *s,
			 unsigned cards, unsigned lost, unsigned total)
{
	double fit;

	if (cards < G->k)
		return G->weight * total;
	fit = host_fit_weight(m, G, s);
	return fit * lost + (G->weight - fit) * total;
}

/* Nodes whose cards are all of one model: the groups that model takes, in
 * order of per-card demand, against the node's free compute sorted once. */
static double eval_uniform(const struct gp__fmodel *m, const struct fmodel_model *mm, const struct gp__nstate *s,
			   unsigned total)
{
	unsigned open[GP_MAX_GPUS], prefix[GP_MAX_GPUS + 1], nopen = 0, idle = 0, idle_free = 0, j;
	double frag = mm->w_const * total;

	for (unsigned i = 0; i < s->ngpu; i++) {
		const struct gp__gstate *g = &s->g[i];

		if (!g->usable || g->free_t == 0)
			continue;
		if (g->idle) {
			idle++;
			idle_free += g->free_c;
		}
		for (j = nopen; j > 0 && open[j - 1] < g->free_c; j--)
			open[j] = open[j - 1];
		open[j] = g->free_c;
		nopen++;
	}
	prefix[0] = 0;
	for (j = 0; j < nopen; j++)
		prefix[j + 1] = prefix[j] + open[j];
	/* groups come by rising demand: the count of cards that take them
	 * only falls */
	j = nopen;
	for (unsigned c = 0; c < mm->ncompat; c++) {
		const struct fgroup *G = &m->groups[mm->compat[c]];

		if (G->exclusive) {
			frag += group_frag(m, G, s, idle, total - idle_free, total);
		} else if (G->needs_mem) {
			unsigned cards = 0, lost = 0;

			for (unsigned i = 0; i < s->ngpu; i++) {
				if (card_takes(G, &s->g[i]))
					cards++;
				else if (s->g[i].usable)
					lost += s->g[i].free_c;
			}
			frag += group_frag(m, G, s, cards, lost, total);
		} else {
			while (j > 0 && open[j - 1] < G->d)
				j--;
			frag += group_frag(m, G, s, j, total - prefix[j], total);
		}
	}
	return frag;
}

/* GP__F_BALANCE: the free GPU share (percent) of node n in state s that its
 * free host CPU leaves without CPU at the workload's CPU per GPU (capped at
 * the node's own), times BALANCE_WEIGHT. */
static double stranded(const struct fmodel_model *mm, const struct gp_node *n, const struct gp__nstate *s,
		       unsigned total)
{
	double rho, own, left;

	if (!mm || !(mm->rho > 0) || !n->cpu || !n->cap_compute || s->cpu_free == UINT64_MAX)
		return 0;
	own = (double)n->cpu / n->cap_compute;
	rho = mm->rho < own ? mm->rho : own;
	left = total - (double)s->cpu_free / rho;
	return left > 0 ? BALANCE_WEIGHT * left : 0;
}

double gp__fmodel_eval(struct gp__fmodel *m, const struct gp_node *n, const struct gp__nstate *s)
{
	static _Thread_local uint8_t tmp[GP_MAX_GPUS][GP_WORKLOAD_MAX_TYPES];
	const uint8_t *ok[GP_MAX_GPUS];
	double frag = 0;
	unsigned total = 0;

	if (m->total <= 0 || n->ngpu == 0)
		return 0;
	for (unsigned i = 0; i < s->ngpu; i++)
		if (s->g[i].usable)
			total += s->g[i].free_c;
	if (total == 0)
		return 0;
	if (n->uniform) {
		const struct fmodel_model *mm = model_entry(m, &n->gpu[0]);

		if (mm)
			return eval_uniform(m, mm, s, total) / m->total / 100.0 +
			       (m->balance ? stranded(mm, n, s, total) / 100.0 : 0);
	}
	/* mixed models: every card answers for itself */
	for (unsigned i = 0; i < s->ngpu; i++)
		ok[i] = (i > 0 && n->uniform) ? ok[0] : model_ok(m, &n->gpu[i], tmp[i]);
	for (unsigned gi = 0; gi < m->ngroups; gi++) {
		const struct fgroup *G = &m->groups[gi];
		unsigned cards = 0, lost = 0;

		if (G->k == 0) {
			frag += G->weight * total;
			continue;
		}
		for (unsigned i = 0; i < s->ngpu; i++) {
			if (!s->g[i].usable)
				continue;
			if (ok[i][gi] && card_takes(G, &s->g[i]))
				cards++;
			else
				lost += s->g[i].free_c;
		}
		frag += group_frag(m, G, s, cards, lost, total);
	}
	return frag / m->total / 100.0 + (m->balance ? stranded(model_entry(m, &n->gpu[0]), n, s, total) / 100.0 : 0);
}

/* Work out, for the class list c, which classes can host each task type,
 * and the GPU demand of each distinct set of classes. */
static void contention_masks(struct gp__fmodel *m, const struct gp__nclass *c, unsigned nc)
{
	const struct fmodel_model *mm[64];
	double demand = 0;

	m->ncm = 0;
	for (unsigned i = 0; i < nc; i++)
		if (!(mm[i] = model_entry(m, c[i].rep)))
			return; /* too many models to remember: no contention */
	for (unsigned g = 0; g < m->ngroups; g++)
		demand += m->groups[g].weight * m->groups[g].k * m->groups[g].d;
	if (demand <= 0)
		return;
	for (unsigned g = 0; g < m->ngroups; g++) {
		const struct fgroup *G = &m->groups[g];

		if (G->k == 0)
			continue;
		for (unsigned e = 0; e < G->n; e++) {
			const struct fentry *t = &m->entries[G->first + e];
			uint64_t hosts = 0;
			unsigned j;

			for (unsigned i = 0; i < nc; i++)
				if (mm[i]->ok[g] && c[i].ngpu >= G->k && (!c[i].cpu || c[i].cpu >= t->cpu) &&
				    (!m->host_mem || !c[i].mem || c[i].mem >= t->mem))
					hosts |= 1ull << i;
			if (!hosts)
				continue;
			for (j = 0; j < m->ncm && m->cmask[j] != hosts; j++)
				;
			if (j == m->ncm) {
				m->cmask[j] = hosts;
				m->cdemand[j] = 0;
				m->ncm++;
			}
			m->cdemand[j] += t->weight * G->k * G->d / demand;
		}
	}
}

void gp__fmodel_contention(struct gp__fmodel *m, struct gp__nclass *c, unsigned nc)
{
	uint64_t sig = 0x9e37;
	double all = 0;

	for (unsigned i = 0; i < nc; i++) {
		c[i].k = 0;
		all += c[i].freec;
		sig = gp__hash_mix(sig, gp__hash_mix(c[i].rep->model_hash, c[i].ngpu));
		sig = gp__hash_mix(sig, gp__hash_mix(c[i].cpu, c[i].mem));
	}
	if (nc > 64 || all <= 0)
		return;
	if (sig != m->csig || nc != m->cnc) {
		contention_masks(m, c, nc);
		m->csig = sig;
		m->cnc = nc;
	}
	for (unsigned j = 0; j < m->ncm; j++) {
		double cap = 0, extra;

		for (uint64_t b = m->cmask[j]; b; b &= b - 1)
			cap += c[__builtin_ctzll(b)].freec;
		if (cap >= all)
			continue;
		extra = m->cdemand[j] * (cap > 0 ? all / cap - 1 : all);
		for (uint64_t b = m->cmask[j]; b; b &= b - 1)
			c[__builtin_ctzll(b)].k += extra;
	}
}
