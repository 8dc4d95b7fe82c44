/* workload.c - the task mix the fragmentation-aware policies aim at.
 *
 * FGD measures a node's fragmentation against the tasks expected to come
 * (the paper's "target workload"): a list of task types with their
 * popularity.  A type is a pod's shape reduced to what decides whether it
 * fits a node: host CPU and memory, the number of GPUs, per-GPU compute and
 * device memory, exclusivity and card-type lists.  For pods with several
 * GPU containers the shape is approximated by the widest container (most
 * GPUs, then most compute) with the pod's total GPU count; UUID lists are
 * left out, as they tie a task to particular cards rather than describe
 * what it needs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/parse.h"
#include "place/pl_int.h"

int gp_workload_new(struct gp_workload **out)
{
	struct gp_workload *w = calloc(1, sizeof *w);

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->strs_cap = 64;
	w->strs = malloc(w->strs_cap);
	if (!w->strs) {
		free(w);
		return -ENOMEM;
	}
	w->strs[0] = '\0';
	w->strs_len = 1;
	*out = w;
	return 0;
}

void gp_workload_free(struct gp_workload *w)
{
	if (!w)
		return;
	free(w->t);
	free(w->strs);
	free(w);
}

unsigned gp_workload_types(const struct gp_workload *w)
{
	return w->n;
}

double gp_workload_total(const struct gp_workload *w)
{
	return w->total;
}

/* Store the entries of list l of c joined by ',' and return the offset (0
 * for an empty list, or when the store cannot grow). */
static uint32_t put_list(struct gp_workload *w, const struct gp_request *r, const struct gp__ctr *c, int l)
{
	size_t need = 0, at;

	if (!c->nlist[l])
		return 0;
	for (unsigned i = 0; i < c->nlist[l]; i++)
		need += strlen(gp__str(r, c->list[l][i])) + 1;
	if (w->strs_len + need > w->strs_cap) {
		size_t cap = w->strs_cap;
		char *s;

		while (cap < w->strs_len + need)
			cap *= 2;
		if (cap > UINT32_MAX || !(s = realloc(w->strs, cap)))
			return 0;
		w->strs = s;
		w->strs_cap = cap;
	}
	at = w->strs_len;
	for (unsigned i = 0; i < c->nlist[l]; i++) {
		const char *e = gp__str(r, c->list[l][i]);
		size_t len = strlen(e);

		memcpy(w->strs + w->strs_len, e, len);
		w->strs_len += len;
		w->strs[w->strs_len++] = i + 1 < c->nlist[l] ? ',' : '\0';
	}
	/* the same list is usually stored already: share it */
	for (uint32_t off = 1; off < at;) {
		size_t len = strlen(w->strs + off);

		if (strcmp(w->strs + off, w->strs + at) == 0) {
			w->strs_len = at; /* a duplicate: drop the copy */
			return off;
		}
		off += (uint32_t)len + 1;
	}
	return (uint32_t)at;
}

int gp_workload_add(struct gp_workload *w, const struct gp_request *r, double weight)
{
	struct gp__wtype t = {0};
	const struct gp__ctr *wide = NULL;
	unsigned lightest = 0;

	if (!(weight > 0) || weight > 1e12)
		return -EINVAL;
	for (unsigned i = 0; i < r->nctr; i++) {
		const struct gp__ctr *c = &r->ctr[i];

		if (!wide || c->gpus > wide->gpus || (c->gpus == wide->gpus && c->compute > wide->compute))
			wide = c;
	}
	t.weight = weight;
	t.cpu = r->cpu;
	t.mem = r->mem;
	t.k = (uint8_t)gp_request_gpus(r);
	if (wide) {
		t.d = wide->compute;
		t.mem_pct = wide->mem_pct;
		t.gmem = wide->mem_bytes;
		t.exclusive = wide->exclusive;
	}
	t.key = gp__hash_mix(gp__hash_mix(t.cpu, t.mem),
			     (uint64_t)t.k | (uint64_t)t.d << 8 | (uint64_t)t.mem_pct << 16 |
				     (uint64_t)t.exclusive << 24);
	t.key = gp__hash_mix(t.key, t.gmem);
	if (wide)
		for (int l = GP__L_TYPES; l <= GP__L_NO_TYPES; l++)
			for (unsigned i = 0; i < wide->nlist[l]; i++)
				t.key = gp__hash_mix(t.key, gp__hash_ci(gp__str(r, wide->list[l][i])) + (uint64_t)l);
	for (unsigned i = 0; i < w->n; i++) {
		if (w->t[i].key == t.key) {
			w->t[i].weight += weight;
			w->total += weight;
			w->version++;
			return 0;
		}
		if (w->t[i].weight < w->t[lightest].weight)
			lightest = i;
	}
	if (wide) {
		t.types = put_list(w, r, wide, GP__L_TYPES);
		t.no_types = put_list(w, r, wide, GP__L_NO_TYPES);
		if ((wide->nlist[GP__L_TYPES] && !t.types) || (wide->nlist[GP__L_NO_TYPES] && !t.no_types))
			return -ENOMEM;
	}
	if (w->n == w->cap) {
		if (w->cap == GP_WORKLOAD_MAX_TYPES) {
			/* full: the new shape displaces the lightest if it weighs more */
			if (w->t[lightest].weight >= weight)
				return 0;
			w->total -= w->t[lightest].weight;
			w->t[lightest] = t;
			w->total += weight;
			w->version++;
			return 0;
		} else {
			unsigned cap = w->cap ? w->cap * 2 : 32;
			struct gp__wtype *nt;

			if (cap > GP_WORKLOAD_MAX_TYPES)
				cap = GP_WORKLOAD_MAX_TYPES;
			nt = realloc(w->t, cap * sizeof *nt);
			if (!nt)
				return -ENOMEM;
			w->t = nt;
			w->cap = cap;
		}
	}
	w->t[w->n++] = t;
	w->total += weight;
	w->version++;
	return 0;
}

void gp_workload_decay(struct gp_workload *w, double factor)
{
	if (!(factor > 0) || factor > 1)
		return;
	w->total = 0;
	for (unsigned i = 0; i < w->n; i++) {
		w->t[i].weight *= factor;
		w->total += w->t[i].weight;
	}
	w->version++;
}

/* Does the comma list at `off` hold an entry contained in model? */
static bool list_hits(const struct gp_workload *w, uint32_t off, const char *model)
{
	const char *cur = w->strs + off, *item;
	size_t len;

	while ((item = gp_list_next(&cur, ',', &len))) {
		char e[GP_ID_MAX];

		if (len == 0 || len >= sizeof e)
			continue;
		memcpy(e, item, len);
		e[len] = '\0';
		if (strcasestr(model, e))
			return true;
	}
	return false;
}

bool gp__wtype_accepts(const struct gp_workload *w, const struct gp__wtype *t, const char *model)
{
	if (t->types && !list_hits(w, t->types, model))
		return false;
	return !(t->no_types && list_hits(w, t->no_types, model));
}

double gp_frag(const struct gp_node *n, const struct gp_workload *w)
{
	struct gp__fmodel *m;
	double f;

	if (!w || w->n == 0 || gp__fmodel_new(&m, w, 0) < 0)
		return 0;
	f = gp__fmodel_eval(m, n, &n->st);
	gp__fmodel_free(m);
	return f;
}
