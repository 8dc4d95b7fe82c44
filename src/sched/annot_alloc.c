/* annot_alloc.c - a pod's GPU allocation: gpupool.io/allocation (ours,
 * written at bind time for the device plugin and read back to recompute
 * what a node has given out) and HAMi's hami.io/vgpu-devices-allocated.
 * See docs/protocol.md. */
#include "common/errf.h"
#include "sched/annot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "sched/annot_json.h"


static const char *const prio_names[] = {
	[GP_PRIO_UNSET] = "", [GP_PRIO_HIGH] = "high", [GP_PRIO_NORMAL] = "normal",
	[GP_PRIO_LOW] = "low",
};


char *gp_annot_alloc_format(const struct gp_annot_alloc *a)
{
	json_t *doc = json_object(), *ctrs = json_array();
	char when[40], *text;

	json_object_set_new(doc, "version", json_integer(GP_ANNOT_VERSION));
	json_object_set_new(doc, "node", json_string(a->node));
	if (a->uid[0])
		json_object_set_new(doc, "podUID", json_string(a->uid));
	if (a->policy[0])
		json_object_set_new(doc, "policy", json_string(a->policy));
	if (a->bound_ms) {
		gp_time_format(a->bound_ms, when, sizeof when);
		json_object_set_new(doc, "boundAt", json_string(when));
	}
	for (unsigned c = 0; c < a->nctr; c++) {
		const struct gp_annot_ctr *ct = &a->ctr[c];
		json_t *o = json_object(), *gpus = json_array();

		/* An unnamed container (HAMi's, or read without one) has no
		 * "name": the reader refuses an empty one. */
		if (ct->name[0])
			json_object_set_new(o, "name", json_string(ct->name));
		json_object_set_new(o, "init", json_boolean(ct->init));
		if (ct->priority != GP_PRIO_UNSET)
			json_object_set_new(o, "priority", json_string(prio_names[ct->priority]));
		for (unsigned i = 0; i < ct->ngrant; i++) {
			const struct gp_annot_grant *g = &ct->grant[i];
			json_array_append_new(gpus,
					      json_pack("{s:s,s:I,s:i,s:b}", "uuid", g->uuid,
							"memoryBytes", (json_int_t)g->mem_bytes,
							"compute", (int)g->compute, "exclusive",
							(int)g->exclusive));
		}
		json_object_set_new(o, "gpus", gpus);
		json_array_append_new(ctrs, o);
	}
	json_object_set_new(doc, "containers", ctrs);
	json_object_set_new(doc, "footprint", gp__annot_holds_json(a->hold, a->nhold));
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return text;
}

static int parse_priority(json_t *o, enum gp_annot_priority *p, const char *where, char *why,
			  size_t n)
{
	json_t *v = json_object_get(o, "priority");

	*p = GP_PRIO_UNSET;
	if (!v)
		return 0;
	for (unsigned i = GP_PRIO_HIGH; i <= GP_PRIO_LOW; i++)
		if (json_is_string(v) && strcmp(json_string_value(v), prio_names[i]) == 0) {
			*p = (enum gp_annot_priority)i;
			return 0;
		}
	return gp_errf(why, n, -EINVAL, "%s: 'priority' must be high, normal or low", where);
}

static int parse_container(json_t *o, struct gp_annot_ctr *c, const char *where, char *why,
			   size_t n)
{
	json_t *gpus = json_object_get(o, "gpus"), *g;
	size_t i;

	if (!json_is_object(o))
		return gp_errf(why, n, -EINVAL, "%s is not an object", where);
	if (gp__annot_str(o, "name", false, c->name, sizeof c->name, where, why, n) ||
	    gp__annot_bool(o, "init", false, false, &c->init, where, why, n) ||
	    parse_priority(o, &c->priority, where, why, n))
		return -EINVAL;
	if (!json_is_array(gpus) || json_array_size(gpus) > GP_MAX_GPUS)
		return gp_errf(why, n, -EINVAL, "%s: 'gpus' must be a list of at most %u", where,
			    GP_MAX_GPUS);
	json_array_foreach(gpus, i, g) {
		struct gp_annot_grant *gr = &c->grant[c->ngrant];
		char w[96];
		uint64_t compute;

		snprintf(w, sizeof w, "%s gpus[%zu]", where, i);
		if (!json_is_object(g))
			return gp_errf(why, n, -EINVAL, "%s is not an object", w);
		if (gp__annot_str(g, "uuid", true, gr->uuid, sizeof gr->uuid, w, why, n) ||
		    gp__annot_u64(g, "memoryBytes", true, 0, GP__ANNOT_MAX_MEM, 0, &gr->mem_bytes, w,
				  why, n) ||
		    gp__annot_u64(g, "compute", true, 0, 10000, 0, &compute, w, why, n) ||
		    gp__annot_bool(g, "exclusive", false, false, &gr->exclusive, w, why, n))
			return -EINVAL;
		gr->compute = (unsigned)compute;
		c->ngrant++;
	}
	return 0;
}

int gp_annot_alloc_parse(const char *text, struct gp_annot_alloc *a, char *why, size_t n)
{
	json_t *doc, *ctrs, *fp, *v, *t;
	size_t i;
	int rc;

	memset(a, 0, sizeof *a);
	a->source = GP_SRC_GPUPOOL;
	if (!(doc = gp__annot_load(text, GP_ANNOT_ALLOC, why, n)))
		return -EINVAL;
	if ((rc = gp__annot_version(doc, GP_ANNOT_ALLOC, why, n)))
		goto out;
	rc = -EINVAL;
	if (gp__annot_str(doc, "node", true, a->node, sizeof a->node, GP_ANNOT_ALLOC, why, n) ||
	    gp__annot_str(doc, "podUID", false, a->uid, sizeof a->uid, GP_ANNOT_ALLOC, why, n))
		goto out;
	v = json_object_get(doc, "policy");
	if (json_is_string(v)) {
		/* Informational, so a long one is cut, but at a character
		 * boundary: half a UTF-8 character could not be written back. */
		const char *pol = json_string_value(v);
		size_t cut = strnlen(pol, sizeof a->policy - 1);

		while (cut > 0 && ((unsigned char)pol[cut] & 0xC0) == 0x80)
			cut--;
		memcpy(a->policy, pol, cut);
		a->policy[cut] = '\0';
	}
	t = json_object_get(doc, "boundAt");
	if (t && (!json_is_string(t) || gp_annot_time_parse(json_string_value(t), &a->bound_ms))) {
		gp_errf(why, n, 0, "%s: 'boundAt' is not an RFC 3339 time", GP_ANNOT_ALLOC);
		goto out;
	}
	ctrs = json_object_get(doc, "containers");
	fp = json_object_get(doc, "footprint");
	if (!json_is_array(ctrs) || json_array_size(ctrs) > GP_MAX_CONTAINERS) {
		gp_errf(why, n, 0, "%s: 'containers' must be a list of at most %u", GP_ANNOT_ALLOC,
		     GP_MAX_CONTAINERS);
		goto out;
	}
	json_array_foreach(ctrs, i, v) {
		char where[64];
		snprintf(where, sizeof where, "%s containers[%zu]", GP_ANNOT_ALLOC, i);
		if (parse_container(v, &a->ctr[a->nctr], where, why, n))
			goto out;
		a->nctr++;
	}
	if (gp__annot_holds_read(fp, a->hold, &a->nhold, GP_ANNOT_ALLOC " footprint", why, n))
		goto out;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/* Add one HAMi device use to the footprint: amounts add up per card, each
 * use is one tenant, and 100 % compute is HAMi's exclusive use. */
static int hami_hold(struct gp_annot_alloc *a, const struct gp_annot_grant *g, char *why,
		     size_t n)
{
	struct gp_annot_hold *h = NULL;

	for (unsigned j = 0; j < a->nhold; j++)
		if (strcasecmp(a->hold[j].uuid, g->uuid) == 0)
			h = &a->hold[j];
	if (!h) {
		if (a->nhold >= GP_MAX_GPUS)
			return gp_errf(why, n, -EINVAL, "%s: more than %u GPUs",
				    GP_ANNOT_HAMI_ALLOCATED, GP_MAX_GPUS);
		h = &a->hold[a->nhold++];
		memset(h, 0, sizeof *h);
		memcpy(h->uuid, g->uuid, sizeof h->uuid);
	}
	h->mem_bytes += g->mem_bytes;
	h->compute += g->compute;
	h->tenants++;
	h->exclusive = h->exclusive || g->compute >= 100;
	return 0;
}

/* One "UUID,Type,MiB,cores" device use. */
static int hami_device(const char *e, size_t len, struct gp_annot_grant *g, char *why, size_t n)
{
	const char *f[4], *p = e, *end = e + len;
	size_t fl[4];
	char num[24];
	unsigned nf = 0;
	unsigned long long v[2];

	while (nf < 4) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		f[nf] = p;
		fl[nf] = c ? (size_t)(c - p) : (size_t)(end - p);
		nf++;
		if (!c)
			break;
		p = c + 1;
	}
	if (nf < 4 || fl[0] == 0 || fl[0] >= sizeof g->uuid)
		return gp_errf(why, n, -EINVAL, "%s: '%.*s' is not UUID,Type,MiB,cores",
			    GP_ANNOT_HAMI_ALLOCATED, (int)(len > 60 ? 60 : len), e);
	memset(g, 0, sizeof *g);
	memcpy(g->uuid, f[0], fl[0]);
	for (int k = 0; k < 2; k++) {
		char *q;
		size_t l = fl[2 + k];
		/* The last field may carry further ",..." in newer HAMi: cut it. */
		const char *comma = memchr(f[2 + k], ',', l);
		if (comma)
			l = (size_t)(comma - f[2 + k]);
		if (l == 0 || l >= sizeof num)
			goto bad;
		memcpy(num, f[2 + k], l);
		num[l] = '\0';
		v[k] = strtoull(num, &q, 10);
		if (*q || v[k] > (k ? 10000ull : GP__ANNOT_MAX_MEM >> 20))
			goto bad;
	}
	g->mem_bytes = (uint64_t)v[0] << 20;
	g->compute = (unsigned)v[1];
	g->exclusive = v[1] >= 100;
	return 0;
bad:
	return gp_errf(why, n, -EINVAL, "%s: '%.*s' has a bad amount", GP_ANNOT_HAMI_ALLOCATED,
		    (int)(len > 60 ? 60 : len), e);
}

int gp_annot_hami_alloc_parse(const char *text, struct gp_annot_alloc *a, char *why, size_t n)
{
	size_t len = strnlen(text, GP_ANNOT_MAX + 1);
	const char *p = text, *end = text + len;

	memset(a, 0, sizeof *a);
	a->source = GP_SRC_HAMI;
	if (len > GP_ANNOT_MAX)
		return gp_errf(why, n, -EINVAL, "%s is longer than %u bytes", GP_ANNOT_HAMI_ALLOCATED,
			    GP_ANNOT_MAX);
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *cend = semi ? semi : end, *q = p;
		struct gp_annot_ctr *c = &a->ctr[a->nctr < GP_MAX_CONTAINERS ? a->nctr : 0];

		memset(c, 0, sizeof *c);
		while (q < cend) {
			const char *colon = memchr(q, ':', (size_t)(cend - q));
			size_t l = colon ? (size_t)(colon - q) : (size_t)(cend - q);
			if (l) {
				if (c->ngrant >= GP_MAX_GPUS)
					return gp_errf(why, n, -EINVAL, "%s: a container with more than %u GPUs",
						    GP_ANNOT_HAMI_ALLOCATED, GP_MAX_GPUS);
				if (hami_device(q, l, &c->grant[c->ngrant], why, n) ||
				    hami_hold(a, &c->grant[c->ngrant], why, n))
					return -EINVAL;
				c->ngrant++;
			}
			q += l + 1;
		}
		if (c->ngrant) {
			if (a->nctr >= GP_MAX_CONTAINERS)
				return gp_errf(why, n, -EINVAL, "%s: more than %u containers",
					    GP_ANNOT_HAMI_ALLOCATED, GP_MAX_CONTAINERS);
			snprintf(c->name, sizeof c->name, "hami-%u", a->nctr);
			a->nctr++;
		}
		p = cend + 1;
	}
	return 0;
}

int gp_annot_alloc_read(json_t *annotations, struct gp_annot_alloc *a, char *why, size_t n)
{
	bool too_long;
	const char *ours = gp_annot_get(annotations, GP_ANNOT_ALLOC, &too_long);
	const char *hami;

	if (too_long)
		return gp_errf(why, n, -EINVAL, "%s is longer than %u bytes", GP_ANNOT_ALLOC,
			    GP_ANNOT_MAX);
	if (ours)
		return gp_annot_alloc_parse(ours, a, why, n);
	hami = gp_annot_get(annotations, GP_ANNOT_HAMI_ALLOCATED, &too_long);
	if (hami)
		return gp_annot_hami_alloc_parse(hami, a, why, n);
	memset(a, 0, sizeof *a);
	return too_long ? gp_errf(why, n, -EINVAL, "%s is longer than %u bytes",
			       GP_ANNOT_HAMI_ALLOCATED, GP_ANNOT_MAX)
			: -ENOENT;
}
