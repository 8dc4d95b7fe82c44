/* annot_node.c - a node's GPUs from its annotations: gpupool.io/node-state
 * (ours, JSON, versioned) and HAMi's hami.io/node-nvidia-register (legacy
 * "uuid,count,mem,cores,type,numa,health[,index,mode]:" text or its newer
 * JSON list) with hami.io/node-nvidia-score.  See docs/protocol.md. */
#include "common/errf.h"
#include "sched/annot.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "sched/annot_json.h"

/* Capacity limits a node state must respect (beyond placement.h's). */
#define MAX_COMPUTE 10000u              /* 100 whole cards of compute on one GPU */
#define MAX_MEM_BYTES ((uint64_t)1 << 44) /* 16 TiB of device memory */


static int find_uuid(const struct gp_annot_node *s, const char *uuid)
{
	for (unsigned i = 0; i < s->ngpu; i++)
		if (strcasecmp(s->gpu[i].uuid, uuid) == 0)
			return (int)i;
	return -1;
}

/* Append a GPU after checking what every source must satisfy. */
static int add_gpu(struct gp_annot_node *s, const struct gp_annot_gpu *g, char *why, size_t n)
{
	if (s->ngpu >= GP_MAX_GPUS)
		return gp_errf(why, n, -EINVAL, "more than %u GPUs", GP_MAX_GPUS);
	if (!g->uuid[0] || strchr(g->uuid, ','))
		return gp_errf(why, n, -EINVAL, "GPU %u: bad UUID '%s'", s->ngpu, g->uuid);
	if (find_uuid(s, g->uuid) >= 0)
		return gp_errf(why, n, -EINVAL, "GPU UUID %s appears twice", g->uuid);
	if (!g->mem_bytes || g->mem_bytes > MAX_MEM_BYTES)
		return gp_errf(why, n, -EINVAL, "GPU %s: memory %llu bytes is not plausible", g->uuid,
			    (unsigned long long)g->mem_bytes);
	s->gpu[s->ngpu++] = *g;
	return 0;
}

/* --- ours ----------------------------------------------------------------- */

static int parse_links(struct gp_annot_node *s, unsigned i, json_t *links, char *why, size_t n)
{
	const char *k;
	json_t *v;

	if (!links)
		return 0;
	if (!json_is_object(links))
		return gp_errf(why, n, -EINVAL, "GPU %s: 'links' must be an object", s->gpu[i].uuid);
	json_object_foreach(links, k, v) {
		int j = find_uuid(s, k);
		json_int_t x = json_integer_value(v);

		if (!json_is_integer(v) || x < 0 || x > 65535)
			return gp_errf(why, n, -EINVAL, "GPU %s: link to %s must be 0..65535",
				    s->gpu[i].uuid, k);
		if (j < 0 || (unsigned)j == i)
			continue; /* a card that went away, or itself: no link */
		if ((uint16_t)x > s->link[i][j])
			s->link[i][j] = s->link[j][i] = (uint16_t)x;
	}
	return 0;
}

int gp_annot_node_parse(const char *text, struct gp_annot_node *s, char *why, size_t n)
{
	json_t *doc, *gpus, *g, *upd;
	size_t i;
	int rc;

	memset(s, 0, sizeof *s);
	s->source = GP_SRC_GPUPOOL;
	if (!(doc = gp__annot_load(text, GP_ANNOT_NODE_STATE, why, n)))
		return -EINVAL;
	if ((rc = gp__annot_version(doc, GP_ANNOT_NODE_STATE, why, n)))
		goto out;
	rc = -EINVAL;
	gpus = json_object_get(doc, "gpus");
	if (!json_is_array(gpus)) {
		gp_errf(why, n, 0, "%s: 'gpus' must be a list", GP_ANNOT_NODE_STATE);
		goto out;
	}
	upd = json_object_get(doc, "updated");
	if (upd && (!json_is_string(upd) ||
		    gp_annot_time_parse(json_string_value(upd), &s->updated_ms))) {
		gp_errf(why, n, 0, "%s: 'updated' is not an RFC 3339 time", GP_ANNOT_NODE_STATE);
		goto out;
	}
	if (json_array_size(gpus) > GP_MAX_GPUS) {
		gp_errf(why, n, 0, "%s: %zu GPUs, at most %u are supported", GP_ANNOT_NODE_STATE,
		     json_array_size(gpus), GP_MAX_GPUS);
		goto out;
	}
	json_array_foreach(gpus, i, g) {
		struct gp_annot_gpu x = {0};
		char where[64];
		uint64_t compute, slices;

		snprintf(where, sizeof where, "%s gpus[%zu]", GP_ANNOT_NODE_STATE, i);
		if (!json_is_object(g)) {
			gp_errf(why, n, 0, "%s is not an object", where);
			goto out;
		}
		if (gp__annot_str(g, "uuid", true, x.uuid, sizeof x.uuid, where, why, n) ||
		    gp__annot_str(g, "model", false, x.model, sizeof x.model, where, why, n) ||
		    gp__annot_u64(g, "memoryBytes", true, 1, MAX_MEM_BYTES, 0, &x.mem_bytes, where,
				  why, n) ||
		    gp__annot_u64(g, "compute", false, 1, MAX_COMPUTE, 100, &compute, where, why,
				  n) ||
		    gp__annot_u64(g, "slices", true, 1, GP_MAX_SLICES, 1, &slices, where, why, n) ||
		    gp__annot_int(g, "numa", false, -1, 1023, -1, &x.numa, where, why, n) ||
		    gp__annot_bool(g, "healthy", true, false, &x.healthy, where, why, n))
			goto out;
		x.compute = (unsigned)compute;
		x.slices = (unsigned)slices;
		if (add_gpu(s, &x, why, n))
			goto out;
	}
	/* Links name other GPUs by UUID: read them once all GPUs are known. */
	json_array_foreach(gpus, i, g)
		if (parse_links(s, (unsigned)i, json_object_get(g, "links"), why, n))
			goto out;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

char *gp_annot_node_format(const struct gp_annot_node *s)
{
	json_t *doc = json_object(), *gpus = json_array();
	char when[40], *text;

	json_object_set_new(doc, "version", json_integer(GP_ANNOT_VERSION));
	if (s->updated_ms) {
		gp_time_format(s->updated_ms, when, sizeof when);
		json_object_set_new(doc, "updated", json_string(when));
	}
	for (unsigned i = 0; i < s->ngpu; i++) {
		const struct gp_annot_gpu *g = &s->gpu[i];
		json_t *o = json_object(), *links = json_object();

		json_object_set_new(o, "uuid", json_string(g->uuid));
		if (g->model[0])
			json_object_set_new(o, "model", json_string(g->model));
		json_object_set_new(o, "memoryBytes", json_integer((json_int_t)g->mem_bytes));
		json_object_set_new(o, "compute", json_integer(g->compute));
		json_object_set_new(o, "slices", json_integer(g->slices));
		json_object_set_new(o, "numa", json_integer(g->numa));
		json_object_set_new(o, "healthy", json_boolean(g->healthy));
		for (unsigned j = 0; j < s->ngpu; j++)
			if (j != i && s->link[i][j])
				json_object_set_new(links, s->gpu[j].uuid,
						    json_integer(s->link[i][j]));
		if (json_object_size(links))
			json_object_set_new(o, "links", links);
		else
			json_decref(links);
		json_array_append_new(gpus, o);
	}
	json_object_set_new(doc, "gpus", gpus);
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return text;
}

/* --- HAMi ----------------------------------------------------------------- */

/* strconv.ParseBool's spellings. */
static int parse_gobool(const char *s, size_t len, bool *out)
{
	static const char *const t[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const f[] = {"0", "f", "F", "false", "FALSE", "False"};

	for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
		if (strlen(t[i]) == len && memcmp(s, t[i], len) == 0) {
			*out = true;
			return 0;
		}
		if (strlen(f[i]) == len && memcmp(s, f[i], len) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* A decimal integer field of a legacy entry, lo..hi. */
static int field_int(const char *s, size_t len, long long lo, long long hi, long long *out)
{
	char buf[24], *end;
	long long v;

	if (len == 0 || len >= sizeof buf)
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Copy a field into a fixed buffer; -EINVAL if it does not fit. */
static int field_str(const char *s, size_t len, char *buf, size_t cap)
{
	if (len >= cap)
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

/* HAMi's devices in MIG mode are carved by HAMi itself; we place on whole
 * cards only, so such a card is kept but never chosen. */
static void hami_mode(struct gp_annot_gpu *g, const char *mode)
{
	if (mode[0] && strcmp(mode, "hami-core") != 0)
		g->healthy = false;
}

static void hami_defaults(struct gp_annot_gpu *g, long long count, long long cores)
{
	g->slices = count <= 0 ? 1 : count > GP_MAX_SLICES ? GP_MAX_SLICES : (unsigned)count;
	g->compute = cores <= 0 ? 100 : cores > MAX_COMPUTE ? MAX_COMPUTE : (unsigned)cores;
}

/* One legacy entry: id,count,devmem(MiB),devcore,type,numa,health[,index,mode]. */
static int hami_legacy_entry(struct gp_annot_node *s, const char *e, size_t len, char *why,
			     size_t n)
{
	const char *f[10];
	size_t fl[10];
	unsigned nf = 0;
	long long count, mem, cores, numa, index;
	char mode[32] = "";
	struct gp_annot_gpu g = {0};
	const char *p = e, *end = e + len;

	while (nf < 10) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		f[nf] = p;
		fl[nf] = c ? (size_t)(c - p) : (size_t)(end - p);
		nf++;
		if (!c)
			break;
		p = c + 1;
	}
	if (nf != 7 && nf != 9)
		return gp_errf(why, n, -EINVAL, "%s: entry '%.*s' has %u fields, not 7 or 9",
			    GP_ANNOT_HAMI_REGISTER, (int)(len > 60 ? 60 : len), e, nf);
	if (field_str(f[0], fl[0], g.uuid, sizeof g.uuid) ||
	    field_int(f[1], fl[1], 0, 1 << 20, &count) ||
	    field_int(f[2], fl[2], 1, (long long)(MAX_MEM_BYTES >> 20), &mem) ||
	    field_int(f[3], fl[3], 0, 1 << 20, &cores) ||
	    field_str(f[4], fl[4], g.model, sizeof g.model) ||
	    field_int(f[5], fl[5], -1, 1023, &numa) || parse_gobool(f[6], fl[6], &g.healthy))
		return gp_errf(why, n, -EINVAL, "%s: entry '%.*s' does not parse",
			    GP_ANNOT_HAMI_REGISTER, (int)(len > 60 ? 60 : len), e);
	if (nf == 9 && (field_int(f[7], fl[7], 0, 1 << 20, &index) ||
			field_str(f[8], fl[8], mode, sizeof mode)))
		return gp_errf(why, n, -EINVAL, "%s: entry '%.*s' has a bad index or mode",
			    GP_ANNOT_HAMI_REGISTER, (int)(len > 60 ? 60 : len), e);
	g.mem_bytes = (uint64_t)mem << 20;
	g.numa = (int)numa;
	hami_defaults(&g, count, cores);
	hami_mode(&g, mode);
	return add_gpu(s, &g, why, n);
}

/* HAMi's newer JSON list: [{"id","count","devmem","devcore","type","numa",
 * "health","index","mode"}], written by Go with omitempty (so a missing
 * "health" is false and a missing number 0). */
static int hami_json(struct gp_annot_node *s, const char *text, char *why, size_t n)
{
	json_error_t je;
	json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je), *d;
	size_t i;
	int rc = -EINVAL;

	if (!json_is_array(doc)) {
		gp_errf(why, n, 0, "%s is not a JSON list", GP_ANNOT_HAMI_REGISTER);
		goto out;
	}
	json_array_foreach(doc, i, d) {
		struct gp_annot_gpu g = {0};
		char where[64], mode[32];
		uint64_t count, mem, cores;

		snprintf(where, sizeof where, "%s[%zu]", GP_ANNOT_HAMI_REGISTER, i);
		if (!json_is_object(d)) {
			gp_errf(why, n, 0, "%s is not an object", where);
			goto out;
		}
		if (gp__annot_str(d, "id", true, g.uuid, sizeof g.uuid, where, why, n) ||
		    gp__annot_u64(d, "count", false, 0, 1 << 20, 0, &count, where, why, n) ||
		    gp__annot_u64(d, "devmem", true, 1, MAX_MEM_BYTES >> 20, 0, &mem, where, why,
				  n) ||
		    gp__annot_u64(d, "devcore", false, 0, 1 << 20, 0, &cores, where, why, n) ||
		    gp__annot_str(d, "type", false, g.model, sizeof g.model, where, why, n) ||
		    gp__annot_int(d, "numa", false, -1, 1023, 0, &g.numa, where, why, n) ||
		    gp__annot_bool(d, "health", false, false, &g.healthy, where, why, n) ||
		    gp__annot_str(d, "mode", false, mode, sizeof mode, where, why, n))
			goto out;
		g.mem_bytes = mem << 20;
		hami_defaults(&g, (long long)count, (long long)cores);
		hami_mode(&g, mode);
		if (add_gpu(s, &g, why, n))
			goto out;
	}
	rc = 0;
out:
	if (!doc)
		gp_errf(why, n, 0, "%s is not JSON: %s", GP_ANNOT_HAMI_REGISTER, je.text);
	json_decref(doc);
	return rc;
}

int gp_annot_hami_register_parse(const char *text, struct gp_annot_node *s, char *why, size_t n)
{
	size_t len = strnlen(text, GP_ANNOT_MAX + 1);
	const char *p = text, *end;

	memset(s, 0, sizeof *s);
	s->source = GP_SRC_HAMI;
	if (len > GP_ANNOT_MAX)
		return gp_errf(why, n, -EINVAL, "%s is longer than %u bytes", GP_ANNOT_HAMI_REGISTER,
			    GP_ANNOT_MAX);
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '[')
		return hami_json(s, text, why, n);
	if (!strchr(text, ':'))
		return gp_errf(why, n, -EINVAL, "%s has no ':'-separated device entries",
			    GP_ANNOT_HAMI_REGISTER);
	end = text + len;
	while (p < end) {
		const char *c = memchr(p, ':', (size_t)(end - p));
		size_t l = c ? (size_t)(c - p) : (size_t)(end - p);
		int rc;

		if (l && (rc = hami_legacy_entry(s, p, l, why, n)))
			return rc;
		p += l + 1;
	}
	return 0;
}

int gp_annot_hami_scores_parse(const char *text, struct gp_annot_node *s, char *why, size_t n)
{
	json_error_t je;
	json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je), *d;
	size_t i;
	int rc = -EINVAL;

	if (strnlen(text, GP_ANNOT_MAX + 1) > GP_ANNOT_MAX || !json_is_array(doc)) {
		gp_errf(why, n, 0, "%s is not a JSON list", GP_ANNOT_HAMI_SCORE);
		goto out;
	}
	json_array_foreach(doc, i, d) {
		json_t *id = json_object_get(d, "uuid");
		int a = json_is_string(id) ? find_uuid(s, json_string_value(id)) : -1;

		if (!json_is_object(d)) {
			gp_errf(why, n, 0, "%s[%zu] is not an object", GP_ANNOT_HAMI_SCORE, i);
			goto out;
		}
		if (a < 0)
			continue;
		if (parse_links(s, (unsigned)a, json_object_get(d, "score"), why, n))
			goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

int gp_annot_node_read(json_t *annotations, struct gp_annot_node *out, char *why, size_t n)
{
	bool too_long;
	const char *ours = gp_annot_get(annotations, GP_ANNOT_NODE_STATE, &too_long);
	const char *hami, *scores;
	int rc;

	if (too_long)
		return gp_errf(why, n, -EINVAL, "%s is longer than %u bytes", GP_ANNOT_NODE_STATE,
			    GP_ANNOT_MAX);
	if (ours)
		return gp_annot_node_parse(ours, out, why, n);
	hami = gp_annot_get(annotations, GP_ANNOT_HAMI_REGISTER, &too_long);
	if (!hami) {
		memset(out, 0, sizeof *out);
		return too_long ? gp_errf(why, n, -EINVAL, "%s is longer than %u bytes",
				       GP_ANNOT_HAMI_REGISTER, GP_ANNOT_MAX)
				: gp_errf(why, n, -ENOENT,
				       "no %s annotation (is the gpupool agent running there?)",
				       GP_ANNOT_NODE_STATE);
	}
	if ((rc = gp_annot_hami_register_parse(hami, out, why, n)))
		return rc;
	scores = gp_annot_get(annotations, GP_ANNOT_HAMI_SCORE, NULL);
	if (scores && (rc = gp_annot_hami_scores_parse(scores, out, why, n)))
		return rc;
	return 0;
}
