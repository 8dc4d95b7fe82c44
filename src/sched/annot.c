/* annot.c - helpers shared by the annotation codecs: times, lookups and
 * the strict JSON member readers of annot_json.h. */
#include "common/errf.h"
#include "sched/annot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sched/annot_json.h"

int gp_annot_time_parse(const char *s, int64_t *ms)
{
	struct tm tm;
	const char *p;
	int64_t frac = 0, scale = 1000, off = 0;
	time_t t;

	if (!s)
		return -EINVAL;
	memset(&tm, 0, sizeof tm);
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '.') {
		int digits = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3) {
				frac = frac * 10 + (*p - '0');
				scale /= 10;
			}
		if (!digits)
			return -EINVAL;
		frac *= scale;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
		   p[2] <= '9' && p[3] == ':' && p[4] >= '0' && p[4] <= '9' && p[5] >= '0' &&
		   p[5] <= '9') {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (*p == '-')
			off = -off;
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	/* Before 1970 is no time anything of ours was written, and
	 * gp_time_format cannot write it back: refuse it rather than read a
	 * time that changes when written. */
	if ((int64_t)t - off < 0)
		return -EINVAL;
	*ms = ((int64_t)t - off) * 1000 + frac;
	return 0;
}

const char *gp_annot_get(json_t *annotations, const char *key, bool *too_long)
{
	json_t *v = json_object_get(annotations, key);

	if (too_long)
		*too_long = false;
	if (!json_is_string(v))
		return NULL;
	if (json_string_length(v) > GP_ANNOT_MAX) {
		if (too_long)
			*too_long = true;
		return NULL;
	}
	return json_string_value(v);
}

/* --- strict member readers (annot_json.h) --------------------------------- */


/* The one integer reader; the typed ones below only narrow its result.
 * Every range used fits a json_int_t (memory tops out at 2^44). */
static int annot_integer(json_t *obj, const char *key, bool required, json_int_t lo, json_int_t hi,
			 json_int_t def, json_int_t *out, const char *where, char *why, size_t n)
{
	json_t *v = json_object_get(obj, key);

	if (!v) {
		if (required)
			return gp_errf(why, n, -EINVAL, "%s: '%s' is missing", where, key);
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return gp_errf(why, n, -EINVAL, "%s: '%s' must be an integer", where, key);
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return gp_errf(why, n, -EINVAL, "%s: '%s' is %lld, not in %lld..%lld", where, key,
			       (long long)*out, (long long)lo, (long long)hi);
	return 0;
}

int gp__annot_u64(json_t *obj, const char *key, bool required, uint64_t lo, uint64_t hi,
		  uint64_t def, uint64_t *out, const char *where, char *why, size_t n)
{
	json_int_t x;
	int rc = annot_integer(obj, key, required, (json_int_t)lo, (json_int_t)hi, (json_int_t)def, &x,
			       where, why, n);

	if (!rc)
		*out = (uint64_t)x;
	return rc;
}

int gp__annot_int(json_t *obj, const char *key, bool required, int lo, int hi, int def, int *out,
		  const char *where, char *why, size_t n)
{
	json_int_t x;
	int rc = annot_integer(obj, key, required, lo, hi, def, &x, where, why, n);

	if (!rc)
		*out = (int)x;
	return rc;
}

int gp__annot_bool(json_t *obj, const char *key, bool required, bool def, bool *out,
		   const char *where, char *why, size_t n)
{
	json_t *v = json_object_get(obj, key);

	if (!v) {
		if (required)
			return gp_errf(why, n, -EINVAL, "%s: '%s' is missing", where, key);
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return gp_errf(why, n, -EINVAL, "%s: '%s' must be true or false", where, key);
	*out = json_is_true(v);
	return 0;
}

int gp__annot_str(json_t *obj, const char *key, bool required, char *buf, size_t cap,
		  const char *where, char *why, size_t n)
{
	json_t *v = json_object_get(obj, key);
	size_t len;

	buf[0] = '\0';
	if (!v) {
		if (required)
			return gp_errf(why, n, -EINVAL, "%s: '%s' is missing", where, key);
		return 0;
	}
	if (!json_is_string(v))
		return gp_errf(why, n, -EINVAL, "%s: '%s' must be a string", where, key);
	len = json_string_length(v);
	if (len == 0 || len >= cap || memchr(json_string_value(v), '\0', len))
		return gp_errf(why, n, -EINVAL, "%s: '%s' must be 1..%zu bytes", where, key, cap - 1);
	memcpy(buf, json_string_value(v), len + 1);
	return 0;
}

json_t *gp__annot_load(const char *text, const char *what, char *why, size_t n)
{
	json_error_t je;
	size_t len = strnlen(text, GP_ANNOT_MAX + 1);
	json_t *doc;

	if (len > GP_ANNOT_MAX) {
		gp_errf(why, n, -EINVAL, "%s is longer than %u bytes", what, GP_ANNOT_MAX);
		return NULL;
	}
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		gp_errf(why, n, -EINVAL, "%s is not JSON: %s (column %d)", what, je.text, je.column);
	else if (!json_is_object(doc)) {
		gp_errf(why, n, -EINVAL, "%s is not a JSON object", what);
		json_decref(doc);
		doc = NULL;
	}
	return doc;
}

int gp__annot_version(json_t *doc, const char *what, char *why, size_t n)
{
	json_t *v = json_object_get(doc, "version");

	if (!json_is_integer(v))
		return gp_errf(why, n, -EINVAL, "%s: 'version' is missing or not an integer", what);
	if (json_integer_value(v) > GP_ANNOT_VERSION) {
		snprintf(why, n, "%s: version %lld is newer than this extender reads (%d)", what,
			 (long long)json_integer_value(v), GP_ANNOT_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (json_integer_value(v) < 1)
		return gp_errf(why, n, -EINVAL, "%s: version %lld is not valid", what,
			   (long long)json_integer_value(v));
	return 0;
}

json_t *gp__annot_holds_json(const struct gp_annot_hold *h, unsigned nh)
{
	json_t *list = json_array();

	for (unsigned i = 0; list && i < nh; i++)
		if (json_array_append_new(list, json_pack("{s:s,s:I,s:i,s:i,s:b}", "uuid", h[i].uuid,
							  "memoryBytes",
							  (json_int_t)h[i].mem_bytes, "compute",
							  (int)h[i].compute, "tenants",
							  (int)h[i].tenants, "exclusive",
							  (int)h[i].exclusive))) {
			json_decref(list);
			return NULL;
		}
	return list;
}

int gp__annot_holds_read(json_t *list, struct gp_annot_hold *h, unsigned *nh, const char *where,
			 char *why, size_t n)
{
	json_t *v;
	size_t i;

	*nh = 0;
	if (!json_is_array(list) || json_array_size(list) > GP_MAX_GPUS) {
		gp_errf(why, n, 0, "%s must be a list of at most %u", where, GP_MAX_GPUS);
		return -EINVAL;
	}
	json_array_foreach(list, i, v) {
		struct gp_annot_hold *x = &h[*nh];
		char at[96];
		uint64_t compute, tenants;

		snprintf(at, sizeof at, "%s[%zu]", where, i);
		memset(x, 0, sizeof *x);
		if (!json_is_object(v)) {
			gp_errf(why, n, 0, "%s is not an object", at);
			return -EINVAL;
		}
		if (gp__annot_str(v, "uuid", true, x->uuid, sizeof x->uuid, at, why, n) ||
		    gp__annot_u64(v, "memoryBytes", true, 0, GP__ANNOT_MAX_MEM, 0, &x->mem_bytes, at,
				  why, n) ||
		    gp__annot_u64(v, "compute", true, 0, 10000, 0, &compute, at, why, n) ||
		    gp__annot_u64(v, "tenants", true, 1, GP_MAX_SLICES, 1, &tenants, at, why, n) ||
		    gp__annot_bool(v, "exclusive", false, false, &x->exclusive, at, why, n))
			return -EINVAL;
		for (unsigned j = 0; j < *nh; j++)
			if (strcasecmp(h[j].uuid, x->uuid) == 0) {
				gp_errf(why, n, 0, "%s: GPU %s appears twice", where, x->uuid);
				return -EINVAL;
			}
		x->compute = (unsigned)compute;
		x->tenants = (unsigned)tenants;
		(*nh)++;
	}
	return 0;
}
