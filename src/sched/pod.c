/* pod.c - see pod.h. */
#include "common/errf.h"
#include "sched/pod.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"

#define QTY_MAX ((uint64_t)1 << 53)
#define MODEL_PREFIX "gpupool.io/vgpu-"

/* What a resource name means. */
enum res_kind { R_COUNT, R_MEM_MIB, R_MEM_PCT, R_CORES, R_PRIO, R_MODEL, R__COUNT };

/* Which family a name belongs to: a container may not mix them. */
enum res_family { F_GPUPOOL = 1, F_HAMI = 2 };

static const struct {
	const char *name;
	enum res_kind kind;
	enum res_family family;
} resources[] = {
	{"gpupool.io/vgpu", R_COUNT, F_GPUPOOL},
	{"gpupool.io/vgpu-memory", R_MEM_MIB, F_GPUPOOL},
	{"gpupool.io/vgpu-memory-percent", R_MEM_PCT, F_GPUPOOL},
	{"gpupool.io/vgpu-cores", R_CORES, F_GPUPOOL},
	{"gpupool.io/priority", R_PRIO, F_GPUPOOL},
	{"nvidia.com/gpu", R_COUNT, F_HAMI},
	{"nvidia.com/gpumem", R_MEM_MIB, F_HAMI},
	{"nvidia.com/gpumem-percentage", R_MEM_PCT, F_HAMI},
	{"nvidia.com/gpucores", R_CORES, F_HAMI},
	{"nvidia.com/priority", R_PRIO, F_HAMI},
};

/* gpupool.io/vgpu-<model> takes any model name, so a misspelt memory or
 * cores name would read as a model: names this close to ours are refused
 * as typos instead.  A few likely confusions are listed outright. */
static const char *const reserved[] = {"memory", "memory-percent", "cores"};
static const char *const confusions[] = {"mem", "memory-percentage", "memory-pct", "gpumem",
					 "gpucores", "core", "memorypercent", "percent"};

/* The reserved name `model` is probably a misspelling of, or NULL. */
static const char *typo_of(const char *model)
{
	for (size_t i = 0; i < sizeof confusions / sizeof *confusions; i++)
		if (strcmp(model, confusions[i]) == 0)
			return strstr(model, "core") ? "cores"
			       : strstr(model, "perc") || strstr(model, "pct") ? "memory-percent"
										: "memory";
	for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
		if (gp_typo_distance(model, reserved[i]) <= 2)
			return reserved[i];
	return NULL;
}

/* Pod annotations, ours and HAMi's, by what they set. */
enum annot_kind { A_TYPES, A_NO_TYPES, A_UUIDS, A_NO_UUIDS, A_NUMA, A__COUNT };

static const struct {
	enum annot_kind kind;
	const char *ours, *hami;
} pod_annotations[] = {
	{A_TYPES, "gpupool.io/use-gputype", "nvidia.com/use-gputype"},
	{A_NO_TYPES, "gpupool.io/nouse-gputype", "nvidia.com/nouse-gputype"},
	{A_UUIDS, "gpupool.io/use-gpuuuid", "nvidia.com/use-gpuuuid"},
	{A_NO_UUIDS, "gpupool.io/nouse-gpuuuid", "nvidia.com/nouse-gpuuuid"},
	{A_NUMA, "gpupool.io/numa-bind", "nvidia.com/numa-bind"},
};


int gp_req_init(struct gp_pod_req *p)
{
	memset(p, 0, sizeof *p);
	return gp_request_new(&p->req);
}

void gp_req_fini(struct gp_pod_req *p)
{
	gp_request_free(p->req);
	p->req = NULL;
}

int gp_req_quantity(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		int exp10;        /* decimal exponent */
		unsigned shift;   /* binary exponent */
	} suffixes[] = {
		{"", 0, 0},   {"n", -9, 0}, {"u", -6, 0},  {"m", -3, 0},  {"k", 3, 0},
		{"M", 6, 0},  {"G", 9, 0},  {"T", 12, 0},  {"P", 15, 0},  {"E", 18, 0},
		{"Ki", 0, 10}, {"Mi", 0, 20}, {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50},
		{"Ei", 0, 60},
	};
	uint64_t mant = 0;
	int digits = 0, frac = 0, exp10 = 0;
	unsigned shift = 0;
	const char *p = s;
	size_t i;

	if (!s)
		return -EINVAL;
	if (*p == '+')
		p++;
	for (; isdigit((unsigned char)*p); p++, digits++) {
		if (mant > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		mant = mant * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, digits++, frac++) {
			if (mant > (UINT64_MAX - 9) / 10)
				return -EINVAL;
			mant = mant * 10 + (uint64_t)(*p - '0');
		}
	}
	if (!digits)
		return -EINVAL;
	if ((*p == 'e' || *p == 'E') && (isdigit((unsigned char)p[1]) ||
					  ((p[1] == '-' || p[1] == '+') && isdigit((unsigned char)p[2])))) {
		char *end;
		long e = strtol(p + 1, &end, 10);
		if (*end || e < -30 || e > 30)
			return -EINVAL;
		exp10 = (int)e;
	} else {
		for (i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
			if (strcmp(p, suffixes[i].suffix) == 0)
				break;
		if (i == sizeof suffixes / sizeof *suffixes)
			return -EINVAL;
		exp10 = suffixes[i].exp10;
		shift = suffixes[i].shift;
	}
	exp10 -= frac;
	for (; exp10 < 0; exp10++) {
		if (mant % 10)
			return -EINVAL; /* not a whole number */
		mant /= 10;
	}
	for (; exp10 > 0; exp10--) {
		if (mant > QTY_MAX / 10)
			return -EINVAL;
		mant *= 10;
	}
	if (shift && mant > (QTY_MAX >> shift))
		return -EINVAL;
	mant <<= shift;
	if (mant > QTY_MAX)
		return -EINVAL;
	*out = mant;
	return 0;
}

/* Normalise: lowercase, each run of non-[a-z0-9] one '-', no '-' at the
 * ends.  Writes at most n-1 bytes; returns the length written. */
static size_t normalise(const char *s, char *buf, size_t n)
{
	size_t o = 0;
	bool dash = false;

	for (; *s && o + 1 < n; s++) {
		char c = (char)tolower((unsigned char)*s);
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (dash && o > 0 && o + 2 < n)
				buf[o++] = '-';
			buf[o++] = c;
			dash = false;
		} else {
			dash = true;
		}
	}
	buf[o] = '\0';
	return o;
}

/* --- one container -------------------------------------------------------- */

struct ctr_res {
	bool has[R__COUNT];
	uint64_t val[R__COUNT];
	char model[GP_ID_MAX];     /* R_MODEL: the name's model part */
	enum res_family family;
};

/* Read one resource map (limits or requests) into r; values already set
 * (from limits) win.  Returns 0 or -EINVAL with why. */
static int read_resources(json_t *map, struct ctr_res *r, const char *ctr, char *why, size_t n)
{
	const char *key;
	json_t *v;

	if (map && !json_is_object(map))
		return gp_errf(why, n, -EINVAL, "container %s: resources are not an object", ctr);
	json_object_foreach(map, key, v) {
		enum res_kind kind = R__COUNT;
		enum res_family fam = 0;
		const char *model = NULL;
		uint64_t q;

		for (size_t i = 0; i < sizeof resources / sizeof *resources; i++)
			if (strcmp(key, resources[i].name) == 0) {
				kind = resources[i].kind;
				fam = resources[i].family;
			}
		if (kind == R__COUNT && strncmp(key, MODEL_PREFIX, strlen(MODEL_PREFIX)) == 0) {
			const char *t = typo_of(key + strlen(MODEL_PREFIX));
			if (t)
				return gp_errf(why, n, -EINVAL,
					    "container %s: %s is not a gpupool resource (did you "
					    "mean " MODEL_PREFIX "%s?)",
					    ctr, key, t);
			kind = R_MODEL;
			fam = F_GPUPOOL;
			model = key + strlen(MODEL_PREFIX);
		}
		if (kind == R__COUNT) {
			if (strncmp(key, "gpupool.io/", 11) == 0)
				return gp_errf(why, n, -EINVAL, "container %s: %s is not a gpupool resource", ctr,
					    key);
			continue; /* another domain's resource: not ours to judge */
		}
		if (json_is_integer(v) && json_integer_value(v) >= 0)
			q = (uint64_t)json_integer_value(v);
		else if (!json_is_string(v) || gp_req_quantity(json_string_value(v), &q))
			return gp_errf(why, n, -EINVAL, "container %s: %s is not a whole-number quantity", ctr,
				    key);
		if (r->family && r->family != fam)
			return gp_errf(why, n, -EINVAL,
				    "container %s: mixes gpupool.io and nvidia.com GPU resources; "
				    "use one family",
				    ctr);
		r->family = fam;
		if (kind == R_MODEL) {
			char norm[GP_ID_MAX];
			if (!normalise(model, norm, sizeof norm) || strlen(model) >= GP_ID_MAX - 2)
				return gp_errf(why, n, -EINVAL, "container %s: %s names no card model", ctr, key);
			if (r->has[R_MODEL] && strcmp(r->model, norm) != 0)
				return gp_errf(why, n, -EINVAL,
					    "container %s: asks for two card models (%s and %s); "
					    "one per container",
					    ctr, r->model, norm);
			memcpy(r->model, norm, sizeof norm);
		}
		if (!r->has[kind]) {
			r->has[kind] = true;
			r->val[kind] = q;
		}
	}
	return 0;
}

/* The pod-level GPU annotations, ours or HAMi's (not both). */
struct pod_annots {
	const char *val[A__COUNT];
	const char *key[A__COUNT];
};

static int read_pod_annots(json_t *annotations, struct pod_annots *pa, char *why, size_t n)
{
	memset(pa, 0, sizeof *pa);
	for (size_t i = 0; i < sizeof pod_annotations / sizeof *pod_annotations; i++) {
		enum annot_kind k = pod_annotations[i].kind;
		bool long1, long2;
		const char *o = gp_annot_get(annotations, pod_annotations[i].ours, &long1);
		const char *h = gp_annot_get(annotations, pod_annotations[i].hami, &long2);

		if (long1 || long2)
			return gp_errf(why, n, -EINVAL, "annotation %s is too long",
				    long1 ? pod_annotations[i].ours : pod_annotations[i].hami);
		if (o && h)
			return gp_errf(why, n, -EINVAL, "both %s and %s are set; give one",
				    pod_annotations[i].ours, pod_annotations[i].hami);
		pa->val[k] = o ? o : h;
		pa->key[k] = o ? pod_annotations[i].ours : pod_annotations[i].hami;
	}
	return 0;
}

/* strconv.ParseBool, as HAMi reads numa-bind. */
static int parse_bool(const char *s, bool *out)
{
	static const char *const t[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const f[] = {"0", "f", "F", "false", "FALSE", "False"};

	for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
		if (strcmp(s, t[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, f[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Turn one container's resources into a placement container.  Returns 1
 * when it asks for GPUs (c filled), 0 when not, -EINVAL with why. */
static int to_ctr(const struct ctr_res *r, const struct pod_annots *pa, const char *types,
		  const char *no_types, const char *name, struct gp_ctr *c,
		  enum gp_annot_priority *prio, char model_type[GP_ID_MAX], char *why, size_t n)
{
	uint64_t count = 0;
	bool numa = false;

	*prio = GP_PRIO_UNSET;
	if (r->has[R_COUNT] && r->has[R_MODEL])
		return gp_errf(why, n, -EINVAL, "container %s: gives both gpupool.io/vgpu and %s%s; use one",
			    name, MODEL_PREFIX, r->model);
	if (r->has[R_COUNT])
		count = r->val[R_COUNT];
	else if (r->has[R_MODEL])
		count = r->val[R_MODEL];
	else if (r->has[R_MEM_MIB] || r->has[R_MEM_PCT] || r->has[R_CORES])
		count = 1;
	if (r->has[R_PRIO]) {
		uint64_t v = r->val[R_PRIO];
		/* HAMi has two levels, 0 high and 1 its default: our normal (the
		 * hook reads CUDA_TASK_PRIORITY the same way). */
		if (r->family == F_HAMI && v <= 1)
			*prio = v == 0 ? GP_PRIO_HIGH : GP_PRIO_NORMAL;
		else if (r->family == F_GPUPOOL && v <= 2)
			*prio = (enum gp_annot_priority)(GP_PRIO_HIGH + v);
		else
			return gp_errf(why, n, -EINVAL, "container %s: priority %llu is not one of %s", name,
				    (unsigned long long)v,
				    r->family == F_HAMI ? "0 (high), 1 (normal)"
							: "0 (high), 1 (normal), 2 (low)");
	}
	if (count == 0)
		return 0;
	if (count > GP_MAX_GPUS)
		return gp_errf(why, n, -EINVAL, "container %s: asks for %llu GPUs; a node has at most %u", name,
			    (unsigned long long)count, GP_MAX_GPUS);
	if (r->has[R_MEM_MIB] && r->val[R_MEM_MIB] && r->has[R_MEM_PCT] && r->val[R_MEM_PCT])
		return gp_errf(why, n, -EINVAL, "container %s: gives both a memory size and a memory percentage",
			    name);
	if (r->has[R_MEM_PCT] && r->val[R_MEM_PCT] > 100)
		return gp_errf(why, n, -EINVAL, "container %s: memory percentage %llu is over 100", name,
			    (unsigned long long)r->val[R_MEM_PCT]);
	if (r->has[R_CORES] && r->val[R_CORES] > 100)
		return gp_errf(why, n, -EINVAL, "container %s: cores %llu%% is over 100", name,
			    (unsigned long long)r->val[R_CORES]);
	if (r->has[R_MEM_MIB] && r->val[R_MEM_MIB] > ((uint64_t)1 << 24))
		return gp_errf(why, n, -EINVAL, "container %s: %llu MiB of device memory is not plausible",
			    name, (unsigned long long)r->val[R_MEM_MIB]);
	if (pa->val[A_NUMA] && parse_bool(pa->val[A_NUMA], &numa))
		return gp_errf(why, n, -EINVAL, "%s must be true or false", pa->key[A_NUMA]);
	memset(c, 0, sizeof *c);
	c->name = name;
	c->gpus = (unsigned)count;
	if (r->has[R_MEM_MIB] && r->val[R_MEM_MIB])
		c->mem_bytes = r->val[R_MEM_MIB] << 20;
	else if (r->has[R_MEM_PCT] && r->val[R_MEM_PCT])
		c->mem_pct = (unsigned)r->val[R_MEM_PCT];
	else
		c->mem_pct = 100; /* a bare count takes the whole card's memory */
	c->compute = r->has[R_CORES] ? (unsigned)r->val[R_CORES] : 0;
	c->exclusive = c->compute == 100;
	c->numa_bind = numa;
	c->no_types = no_types;
	c->uuids = pa->val[A_UUIDS];
	c->no_uuids = pa->val[A_NO_UUIDS];
	if (r->has[R_MODEL]) {
		if (types && *types)
			return gp_errf(why, n, -EINVAL,
				    "container %s: a per-model resource (%s%s) and %s together; "
				    "use one",
				    name, MODEL_PREFIX, r->model, pa->key[A_TYPES]);
		/* Placement matches type entries as whole words, so the
		 * model part of the name is the entry as it stands. */
		snprintf(model_type, GP_ID_MAX, "%s", r->model);
		c->types = model_type;
	} else {
		c->types = types;
	}
	return 1;
}

/* Copy a metadata string into buf, -EINVAL if missing or too long. */
static int meta_str(json_t *meta, const char *key, bool required, char *buf, size_t cap,
		    char *why, size_t n)
{
	json_t *v = json_object_get(meta, key);

	buf[0] = '\0';
	if (!v && !required)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap)
		return gp_errf(why, n, -EINVAL, "pod metadata.%s is missing or longer than %zu bytes", key,
			    cap - 1);
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

int gp_req_from_pod(struct gp_pod_req *p, json_t *pod, char *why, size_t n)
{
	static const struct {
		const char *key;
		bool init;
	} lists[] = {{"initContainers", true}, {"containers", false}};
	json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
	struct pod_annots pa;

	gp_request_reset(p->req);
	p->nctr = 0;
	if (!json_is_object(pod) || !json_is_object(meta) || !json_is_object(spec))
		return gp_errf(why, n, -EINVAL, "the pod has no metadata or spec");
	if (meta_str(meta, "name", true, p->name, sizeof p->name, why, n) ||
	    meta_str(meta, "namespace", false, p->ns, sizeof p->ns, why, n) ||
	    meta_str(meta, "uid", false, p->uid, sizeof p->uid, why, n))
		return -EINVAL;
	if (!p->ns[0])
		strcpy(p->ns, "default");
	if (read_pod_annots(json_object_get(meta, "annotations"), &pa, why, n))
		return -EINVAL;
	for (size_t l = 0; l < sizeof lists / sizeof *lists; l++) {
		json_t *arr = json_object_get(spec, lists[l].key), *ctr;
		size_t i;

		if (arr && !json_is_array(arr))
			return gp_errf(why, n, -EINVAL, "spec.%s is not a list", lists[l].key);
		json_array_foreach(arr, i, ctr) {
			json_t *res = json_object_get(ctr, "resources");
			json_t *nm = json_object_get(ctr, "name");
			json_t *restart = json_object_get(ctr, "restartPolicy");
			struct ctr_res r = {0};
			struct gp_ctr c;
			enum gp_annot_priority prio;
			char name[GP_ANNOT_CTR_NAME_MAX], model_type[GP_ID_MAX], err[GP_REASON_MAX];
			int rc;

			if (!json_is_string(nm) || json_string_length(nm) == 0 ||
			    json_string_length(nm) >= sizeof name)
				return gp_errf(why, n, -EINVAL, "spec.%s[%zu] has no valid name", lists[l].key, i);
			memcpy(name, json_string_value(nm), json_string_length(nm) + 1);
			if (res && !json_is_object(res))
				return gp_errf(why, n, -EINVAL, "container %s: resources is not an object", name);
			if (read_resources(json_object_get(res, "limits"), &r, name, why, n) ||
			    read_resources(json_object_get(res, "requests"), &r, name, why, n))
				return -EINVAL;
			rc = to_ctr(&r, &pa, pa.val[A_TYPES], pa.val[A_NO_TYPES], name, &c, &prio,
				    model_type, why, n);
			if (rc <= 0) {
				if (rc < 0)
					return rc;
				continue;
			}
			/* A sidecar (an init container that keeps running) holds
			 * its GPUs beside the app containers. */
			c.init = lists[l].init &&
				 !(json_is_string(restart) &&
				   strcmp(json_string_value(restart), "Always") == 0);
			rc = gp_request_add_container(p->req, &c, err, sizeof err);
			if (rc == -ENOSPC)
				return gp_errf(why, n, -EINVAL, "more than %u containers use GPUs",
					    GP_MAX_CONTAINERS);
			if (rc < 0)
				return gp_errf(why, n, -EINVAL, "container %s: %s", name, err);
			memcpy(p->ctr[p->nctr].name, name, sizeof name);
			p->ctr[p->nctr].init = c.init;
			p->ctr[p->nctr].priority = prio;
			p->nctr++;
		}
	}
	return 0;
}
