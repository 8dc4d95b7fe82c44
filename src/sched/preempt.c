/* preempt.c - the smallest set of lower-priority GPU pods to evict from a
 * node so that a pod fits there (preempt.h).
 *
 * The node is modelled as what every pod holds per card (summed by GPU
 * index), minus what the victims of a trial hold; each trial builds a
 * placement node from those sums and asks gp_fit.  Sums are clamped to
 * each card's capacity as the extender's cache does, so a node whose pods
 * hold more than it has (it shrank) reads as full, never as an error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sched/preempt.h"
#include "sched/extender_int.h"

/* What some pods hold on each card of the node, by GPU index. */

/* The state of one search. */
struct search {
	const struct gp_preempt_node *in;
	const struct gp_request *req;
	struct gp__ext_sums total;               /* every pod's holds but the proposed */
	size_t ncand;
	uint32_t *cand;                 /* candidates: indices into in->pods,
	                                   ascending */
	struct gp__ext_sums *cu;                 /* each candidate's holds */
	bool *must;                     /* per candidate: every answer has it */
	unsigned budget, checks;
	int32_t *allowed;               /* PDB allowances, scratch */
	uint32_t *list;                 /* pod indices, scratch */
};

/* Add (sign 1) or take away (sign -1) one pod's footprint. */
static void use_apply(struct gp__ext_sums *u, const struct gp__ext_sums *p, unsigned ngpu, int sign)
{
	for (unsigned g = 0; g < ngpu; g++) {
		if (sign > 0) {
			u->mem[g] += p->mem[g];
			u->compute[g] += p->compute[g];
			u->tenants[g] += p->tenants[g];
			u->excl[g] += p->excl[g];
		} else {
			u->mem[g] -= p->mem[g];
			u->compute[g] -= p->compute[g];
			u->tenants[g] -= p->tenants[g];
			u->excl[g] -= p->excl[g];
		}
	}
}

/* A pod's footprint by GPU index.  Holds on cards the node no longer
 * lists are dropped: they take nothing from the cards it has. */
static void pod_use(const struct gp_annot_node *st, const struct gp_preempt_pod *p, struct gp__ext_sums *u)
{
	memset(u, 0, sizeof *u);
	for (unsigned h = 0; h < p->nhold; h++)
		for (unsigned g = 0; g < st->ngpu; g++) {
			if (strcasecmp(p->hold[h].uuid, st->gpu[g].uuid))
				continue;
			u->mem[g] += p->hold[h].mem_bytes;
			u->compute[g] += p->hold[h].compute;
			u->tenants[g] += p->hold[h].tenants;
			u->excl[g] += p->hold[h].exclusive;
			break;
		}
}

static bool use_empty(const struct gp__ext_sums *u, unsigned ngpu)
{
	for (unsigned g = 0; g < ngpu; g++)
		if (u->mem[g] || u->compute[g] || u->tenants[g] || u->excl[g])
			return false;
	return true;
}

/* A placement node with `u` allocated (extender_node.c's translation). */
static int build(const struct gp_preempt_node *in, const struct gp__ext_sums *u,
		 struct gp_node **out, char *why, size_t n)
{
	return gp__ext_node_from(in->name, in->st, u, out, why, n);
}

/* Does the pod fit with the candidates rm[0..k-1] evicted (the proposed
 * ones always are)?  Returns 1, 0 (with the reason in why, if given), or a
 * negative errno. */
static int fits(struct search *s, const uint32_t *rm, size_t k, char *why, size_t n)
{
	struct gp__ext_sums u = s->total;
	struct gp_node *node;
	enum gp_reject r;
	char b[GP_REASON_MAX];
	int rc;

	for (size_t i = 0; i < k; i++)
		use_apply(&u, &s->cu[rm[i]], s->in->st->ngpu, -1);
	if ((rc = build(s->in, &u, &node, b, sizeof b))) {
		if (why)
			snprintf(why, n, "%s", b);
		return rc;
	}
	s->checks++;
	r = gp_fit(node, s->req, why, why ? n : 0);
	gp_node_free(node);
	return r == GP_FIT;
}

/* How many victims break a PDB: the proposed ones first, then rm[] (both
 * by pod index), each taking one from every PDB that covers it. */
static unsigned violations(struct search *s, const uint32_t *rm, size_t k)
{
	const struct gp_preempt_node *in = s->in;
	unsigned count = 0;
	size_t n = 0;

	if (!in->npdb)
		return 0;
	memcpy(s->allowed, in->pdb_allowed, in->npdb * sizeof *s->allowed);
	for (size_t i = 0; i < in->npods; i++)
		if (in->pods[i].proposed)
			s->list[n++] = (uint32_t)i;
	for (size_t i = 0; i < k; i++)
		s->list[n++] = s->cand[rm[i]];
	for (size_t i = 0; i < n; i++) {
		const struct gp_preempt_pod *p = &in->pods[s->list[i]];
		bool broken = false;

		for (unsigned j = 0; j < p->npdb; j++)
			if (p->pdb[j] < in->npdb && --s->allowed[p->pdb[j]] < 0)
				broken = true;
		count += broken;
	}
	return count;
}

/* How good a set of added victims is: lower is better, field by field. */
struct score {
	unsigned pdb;
	int64_t max_prio, sum_prio;
};

static struct score score_of(struct search *s, const uint32_t *rm, size_t k)
{
	struct score sc = {.pdb = violations(s, rm, k), .max_prio = INT64_MIN};

	for (size_t i = 0; i < k; i++) {
		int64_t p = s->in->pods[s->cand[rm[i]]].priority;
		sc.max_prio = p > sc.max_prio ? p : sc.max_prio;
		sc.sum_prio += p;
	}
	return sc;
}

static bool better(const struct score *a, const struct score *b)
{
	if (a->pdb != b->pdb)
		return a->pdb < b->pdb;
	if (a->max_prio != b->max_prio)
		return a->max_prio < b->max_prio;
	return a->sum_prio < b->sum_prio;
}

/* n choose k, saturating at UINT32_MAX. */
static uint64_t choose(size_t n, size_t k)
{
	uint64_t c = 1;

	if (k > n)
		return 0;
	for (size_t i = 1; i <= k; i++) {
		c = c * (n - k + i) / i;
		if (c > UINT32_MAX)
			return UINT32_MAX;
	}
	return c;
}

static uint64_t mem_of(const struct gp__ext_sums *u)
{
	uint64_t m = 0;

	for (unsigned g = 0; g < GP_MAX_GPUS; g++)
		m += u->mem[g];
	return m;
}

/* Candidates in the order the greedy pass tries to keep them (put back):
 * small footprints first, so the few victims it leaves are the large pods
 * (fewest victims); then higher priority, then PDB-covered ones.  qsort_r
 * (glibc): preemptions run on several threads, so no comparator context
 * may live in a static. */
static int cmp_keep(const void *a, const void *b, void *ctx)
{
	const struct search *s = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	const struct gp_preempt_pod *px = &s->in->pods[s->cand[x]], *py = &s->in->pods[s->cand[y]];
	uint64_t mx = mem_of(&s->cu[x]), my = mem_of(&s->cu[y]);

	if (mx != my)
		return mx < my ? -1 : 1;
	if (px->priority != py->priority)
		return px->priority > py->priority ? -1 : 1;
	if ((px->npdb > 0) != (py->npdb > 0))
		return px->npdb > 0 ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Lowest priority first, then pod index: which candidates to keep when a
 * node has more than GP_PREEMPT_MAX_CANDIDATES. */
static int cmp_prio(const void *a, const void *b, void *ctx)
{
	const struct gp_preempt_node *in = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int32_t px = in->pods[x].priority, py = in->pods[y].priority;

	if (px != py)
		return px < py ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* The greedy pass: evict every candidate, then put back each one whose
 * return still lets the pod fit.  Leaves the evicted ones in rm (sorted),
 * their number in *k.  Returns 0 or a negative errno. */
static int greedy(struct search *s, uint32_t *rm, size_t *k)
{
	uint32_t *order = malloc((s->ncand + 1) * sizeof *order);
	bool *out = calloc(s->ncand + 1, sizeof *out);
	size_t no = 0, n;
	int rc = 0;

	if (!order || !out) {
		rc = -ENOMEM;
		goto done;
	}
	for (size_t c = 0; c < s->ncand; c++) {
		out[c] = true;
		if (!s->must[c])
			order[no++] = (uint32_t)c;
	}
	qsort_r(order, no, sizeof *order, cmp_keep, s);
	for (size_t i = 0; i < no; i++) {
		out[order[i]] = false;
		n = 0;
		for (size_t c = 0; c < s->ncand; c++)
			if (out[c])
				rm[n++] = (uint32_t)c;
		if ((rc = fits(s, rm, n, NULL, 0)) < 0)
			goto done;
		if (!rc)
			out[order[i]] = true; /* needed: evict it after all */
	}
	rc = 0;
	n = 0;
	for (size_t c = 0; c < s->ncand; c++)
		if (out[c])
			rm[n++] = (uint32_t)c;
	*k = n;
done:
	free(order);
	free(out);
	return rc;
}

/* The exhaustive pass: sets of the must-haves plus j others, j growing,
 * until a size has a set that fits (the best of them goes to best[]) or
 * the budget cannot pay for the next size.  `limit` is the most others
 * worth trying (the greedy answer's).  *ruled_out is the largest size
 * whose every set was tried and failed.  Returns 1 found, 0 not, <0
 * error. */
static int exhaustive(struct search *s, size_t limit, uint32_t *best, size_t *nbest,
		      size_t *ruled_out)
{
	size_t nr = 0;
	uint32_t *rest = malloc((s->ncand + 1) * sizeof *rest);
	uint32_t *rm = malloc((s->ncand + 1) * sizeof *rm);
	size_t *ix = malloc((s->ncand + 1) * sizeof *ix);
	int rc = 0;

	if (!rest || !rm || !ix) {
		rc = -ENOMEM;
		goto done;
	}
	*ruled_out = 0;
	for (size_t c = 0; c < s->ncand; c++)
		if (!s->must[c])
			rest[nr++] = (uint32_t)c;
	for (size_t j = 1; j <= limit && j <= nr; j++) {
		struct score top = {0};
		bool found = false;

		if (s->checks + choose(nr, j) > s->budget)
			break;
		for (size_t i = 0; i < j; i++)
			ix[i] = i;
		for (;;) {
			size_t k = 0, i;
			int f;

			for (size_t c = 0; c < s->ncand; c++)
				if (s->must[c])
					rm[k++] = (uint32_t)c;
			for (i = 0; i < j; i++)
				rm[k++] = rest[ix[i]];
			qsort(rm, k, sizeof *rm, cmp_u32);
			if ((f = fits(s, rm, k, NULL, 0)) < 0) {
				rc = f;
				goto done;
			}
			if (f) {
				struct score sc = score_of(s, rm, k);
				if (!found || better(&sc, &top)) {
					top = sc;
					memcpy(best, rm, k * sizeof *rm);
					*nbest = k;
					found = true;
				}
			}
			/* The next combination of j out of nr, in order. */
			for (i = j; i-- > 0;)
				if (ix[i] < nr - j + i)
					break;
			if (i == (size_t)-1)
				break;
			ix[i]++;
			for (size_t t = i + 1; t < j; t++)
				ix[t] = ix[t - 1] + 1;
		}
		if (found) {
			rc = 1;
			goto done;
		}
		*ruled_out = j;
	}
done:
	free(rest);
	free(rm);
	free(ix);
	return rc;
}

/* Victims in kube-scheduler's order: highest priority first (it reads
 * the first as the highest), then pod index. */
static int cmp_victim(const void *a, const void *b, void *ctx)
{
	const struct gp_preempt_node *in = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int32_t px = in->pods[x].priority, py = in->pods[y].priority;

	if (px != py)
		return px > py ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Fill the result from the added candidates rm[0..k-1]. */
static void finish(struct search *s, const uint32_t *rm, size_t k, bool exact,
		   struct gp_preempt_result *out)
{
	const struct gp_preempt_node *in = s->in;

	out->nvictims = 0;
	for (size_t i = 0; i < in->npods; i++)
		if (in->pods[i].proposed)
			out->victim[out->nvictims++] = (uint32_t)i;
	for (size_t i = 0; i < k; i++)
		out->victim[out->nvictims++] = s->cand[rm[i]];
	out->nadded = k;
	out->pdb_violations = violations(s, rm, k);
	out->checks = s->checks;
	out->exact = exact;
	qsort_r(out->victim, out->nvictims, sizeof *out->victim, cmp_victim, (void *)in);
}

int gp_preempt_select(const struct gp_preempt_node *in, const struct gp_request *req,
		      int32_t priority, struct gp_preempt_result *out, char *why, size_t n)
{
	struct search s = {.in = in, .req = req};
	const struct gp_annot_node *st = in->st;
	uint32_t *rm = NULL, *best = NULL;
	size_t k = 0, nbest = 0;
	struct gp_node *probe = NULL;
	char r[GP_REASON_MAX];
	int rc;

	memset(out, 0, sizeof *out);
	if (in->npods > GP_PREEMPT_MAX_PODS) {
		snprintf(why, n, "%zu pods on node %s, more than the %u preemption considers",
			 in->npods, in->name, GP_PREEMPT_MAX_PODS);
		return -EINVAL;
	}
	s.budget = in->budget ? in->budget : GP_PREEMPT_BUDGET;
	s.cand = calloc(in->npods + 1, sizeof *s.cand);
	s.cu = calloc(in->npods + 1, sizeof *s.cu);
	s.must = calloc(in->npods + 1, sizeof *s.must);
	s.allowed = calloc(in->npdb + 1, sizeof *s.allowed);
	s.list = calloc(in->npods + 1, sizeof *s.list);
	rm = calloc(in->npods + 1, sizeof *rm);
	best = calloc(in->npods + 1, sizeof *best);
	if (!s.cand || !s.cu || !s.must || !s.allowed || !s.list || !rm || !best) {
		snprintf(why, n, "out of memory");
		rc = -ENOMEM;
		goto out;
	}

	/* What everyone but the proposed victims holds, and who may go. */
	for (size_t i = 0; i < in->npods; i++) {
		const struct gp_preempt_pod *p = &in->pods[i];
		struct gp__ext_sums u;

		if (p->proposed)
			continue;
		pod_use(st, p, &u);
		use_apply(&s.total, &u, st->ngpu, 1);
		if (p->priority < priority && !use_empty(&u, st->ngpu))
			s.cand[s.ncand++] = (uint32_t)i;
	}
	if (s.ncand > GP_PREEMPT_MAX_CANDIDATES) {
		qsort_r(s.cand, s.ncand, sizeof *s.cand, cmp_prio, (void *)in);
		s.ncand = GP_PREEMPT_MAX_CANDIDATES;
		qsort(s.cand, s.ncand, sizeof *s.cand, cmp_u32);
	}
	for (size_t c = 0; c < s.ncand; c++)
		pod_use(st, &in->pods[s.cand[c]], &s.cu[c]);

	/* The node's state must be one the placement library takes. */
	if ((rc = build(in, &s.total, &probe, why, n)))
		goto out;
	gp_node_free(probe);

	/* Room already, with the scheduler's own victims gone? */
	if ((rc = fits(&s, NULL, 0, NULL, 0)) < 0)
		goto out;
	if (rc) {
		finish(&s, NULL, 0, true, out);
		rc = 0;
		goto out;
	}
	/* Room with every lower-priority GPU pod gone?  If not, never. */
	for (size_t c = 0; c < s.ncand; c++)
		rm[c] = (uint32_t)c;
	if ((rc = fits(&s, rm, s.ncand, r, sizeof r)) < 0)
		goto out;
	if (!rc) {
		snprintf(why, n, "even with every lower-priority GPU pod evicted (%zu): %s",
			 s.ncand, r);
		rc = -ENOSPC;
		goto out;
	}
	/* Must-haves: the pod does not fit with only that one kept. */
	for (size_t c = 0; c < s.ncand; c++) {
		size_t m = 0;
		for (size_t d = 0; d < s.ncand; d++)
			if (d != c)
				rm[m++] = (uint32_t)d;
		if ((rc = fits(&s, rm, m, NULL, 0)) < 0)
			goto out;
		s.must[c] = !rc;
	}
	k = 0;
	for (size_t c = 0; c < s.ncand; c++)
		if (s.must[c])
			rm[k++] = (uint32_t)c;
	if ((rc = fits(&s, rm, k, NULL, 0)) < 0)
		goto out;
	if (rc) {
		/* Every answer holds them all: this one is the smallest. */
		finish(&s, rm, k, true, out);
		rc = 0;
		goto out;
	}
	if ((rc = greedy(&s, rm, &k)) < 0)
		goto out;
	{
		size_t nmust = 0, ruled_out;
		for (size_t c = 0; c < s.ncand; c++)
			nmust += s.must[c];
		if ((rc = exhaustive(&s, k - nmust, best, &nbest, &ruled_out)) < 0)
			goto out;
		if (rc)
			finish(&s, best, nbest, true, out);
		else /* the greedy answer; smallest if every smaller size failed */
			finish(&s, rm, k, ruled_out + 1 >= k - nmust, out);
	}
	rc = 0;
out:
	if (rc == -ENOMEM)
		snprintf(why, n, "out of memory");
	free(s.cand);
	free(s.cu);
	free(s.must);
	free(s.allowed);
	free(s.list);
	free(rm);
	free(best);
	return rc;
}

/* --- PodDisruptionBudgets ------------------------------------------------- */

static bool in_values(json_t *values, const char *v)
{
	json_t *e;
	size_t i;

	json_array_foreach(values, i, e)
		if (json_is_string(e) && strcmp(json_string_value(e), v) == 0)
			return true;
	return false;
}

/* One matchExpressions entry.  An entry that does not parse matches
 * nothing (kube-scheduler skips a PDB whose selector fails to convert). */
static bool expr_match(json_t *e, json_t *labels)
{
	const char *key = json_string_value(json_object_get(e, "key"));
	const char *op = json_string_value(json_object_get(e, "operator"));
	json_t *values = json_object_get(e, "values");
	const char *have = json_string_value(json_object_get(labels, key ? key : ""));
	size_t nv = json_is_array(values) ? json_array_size(values) : 0;

	if (!key || !op || (values && !json_is_null(values) && !json_is_array(values)))
		return false;
	if (strcmp(op, "In") == 0)
		return nv && have && in_values(values, have);
	if (strcmp(op, "NotIn") == 0)
		return nv && (!have || !in_values(values, have));
	if (strcmp(op, "Exists") == 0)
		return !nv && have;
	if (strcmp(op, "DoesNotExist") == 0)
		return !nv && !have;
	return false;
}

bool gp_preempt_selector_match(json_t *selector, json_t *labels)
{
	json_t *ml = json_object_get(selector, "matchLabels");
	json_t *me = json_object_get(selector, "matchExpressions");
	const char *key;
	json_t *v;
	size_t terms = 0, i;

	if (!json_is_object(selector))
		return false;
	if (ml && !json_is_null(ml)) {
		if (!json_is_object(ml))
			return false;
		json_object_foreach(ml, key, v) {
			const char *have = json_string_value(json_object_get(labels, key));
			terms++;
			if (!json_is_string(v) || !have || strcmp(have, json_string_value(v)))
				return false;
		}
	}
	if (me && !json_is_null(me)) {
		if (!json_is_array(me))
			return false;
		json_array_foreach(me, i, v) {
			terms++;
			if (!expr_match(v, labels))
				return false;
		}
	}
	return terms > 0; /* an empty selector matches nothing here */
}

bool gp_preempt_pdb_covers(json_t *pdb, json_t *pod)
{
	json_t *pm = json_object_get(pod, "metadata"), *dm = json_object_get(pdb, "metadata");
	json_t *labels = json_object_get(pm, "labels");
	const char *pns = json_string_value(json_object_get(pm, "namespace"));
	const char *dns = json_string_value(json_object_get(dm, "namespace"));
	const char *name = json_string_value(json_object_get(pm, "name"));
	json_t *disrupted = json_object_get(json_object_get(pdb, "status"), "disruptedPods");

	if (!pns || !dns || strcmp(pns, dns) != 0)
		return false;
	if (!json_is_object(labels) || json_object_size(labels) == 0)
		return false; /* no labels: no PDB matches (kube-scheduler's shortcut) */
	if (!gp_preempt_selector_match(json_object_get(json_object_get(pdb, "spec"), "selector"),
				       labels))
		return false;
	/* Already being evicted: the API server has counted it. */
	return !(name && json_is_object(disrupted) && json_object_get(disrupted, name));
}
