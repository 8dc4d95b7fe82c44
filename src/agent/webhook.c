/* webhook.c - see webhook.h. */
#include "agent/webhook.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/errf.h"
#include "common/log.h"
#include "net/http.h"
#include "net/loop.h"
#include "sched/pod.h"

#define API_VERSION "admission.k8s.io/v1"
#define DEFAULT_SCHEDULER "gpupool-scheduler"
#define UID_MAX 128u        /* an AdmissionRequest uid (Kubernetes: 36) */
#define WHY_MAX 512u        /* a refusal or error message */
#define PEM_MAX (1u << 20)  /* a certificate chain or key file */

/* ===========================================================================
 * The review: pure, no I/O.
 * ======================================================================== */

/* What a GPU resource name is, for the webhook's own checks and patches.
 * Its meaning and most checks are sched/pod.c's (the extender's parser);
 * this table only says where to look. */
enum name_kind { N_COUNT, N_MEMORY, N_PERCENT, N_CORES, N_PRIORITY, N__COUNT };

static const struct {
	const char *name;
	enum name_kind kind;
	bool hami;
} gpu_names[] = {
	{"gpupool.io/vgpu", N_COUNT, false},
	{"gpupool.io/vgpu-memory", N_MEMORY, false},
	{"gpupool.io/vgpu-memory-percent", N_PERCENT, false},
	{"gpupool.io/vgpu-cores", N_CORES, false},
	{"gpupool.io/priority", N_PRIORITY, false},
	{"nvidia.com/gpu", N_COUNT, true},
	{"nvidia.com/gpumem", N_MEMORY, true},
	{"nvidia.com/gpumem-percentage", N_PERCENT, true},
	{"nvidia.com/gpucores", N_CORES, true},
	{"nvidia.com/priority", N_PRIORITY, true},
};

#define OURS "gpupool.io/"
#define MODEL_PREFIX "gpupool.io/vgpu-"

/* What one container asks for, limits first (as the extender reads it). */
struct scan {
	char name[64];             /* the container's name, or "#<index>" */
	char path[48];             /* its JSON pointer: "/spec/containers/3" */
	bool gpu;                  /* names one of our or HAMi's GPU resources */
	bool hami;                 /* HAMi's names (nvidia.com/) */
	bool has[N__COUNT];        /* the kind is named, in limits or requests */
	bool num[N__COUNT];        /* ... and its value is a whole number */
	uint64_t val[N__COUNT];    /* ... which is this */
	const char *key[N__COUNT]; /* ... under this name */
	bool req_gpu;              /* GPU names appear in requests */
	json_t *resources;         /* borrowed: the object, or NULL */
	json_t *limits;            /* borrowed: the object, or NULL */
	json_t *requests;          /* borrowed: the object, or NULL */
	const char *unknown;       /* the first gpupool.io/ name none of ours */
};

/* A resource value as a whole number: a JSON integer, or a quantity
 * string.  Returns false when it is neither (the parser says why). */
static bool whole(json_t *v, uint64_t *out)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return true;
	}
	return json_is_string(v) && gp_req_quantity(json_string_value(v), out) == 0;
}

/* Read one resources map (limits or requests) into s; what limits set
 * first wins. */
static void scan_map(json_t *map, struct scan *s, bool requests)
{
	const char *key;
	json_t *v;

	json_object_foreach(map, key, v) {
		int kind = -1;
		bool hami = false;

		for (size_t i = 0; i < sizeof gpu_names / sizeof *gpu_names; i++)
			if (strcmp(key, gpu_names[i].name) == 0) {
				kind = (int)gpu_names[i].kind;
				hami = gpu_names[i].hami;
			}
		if (kind < 0 && strncmp(key, OURS, strlen(OURS)) == 0) {
			/* gpupool.io/vgpu-<model> is a count on cards of that
			 * model; any other name of ours is a mistake the parser
			 * refuses, and we may suggest the name meant. */
			if (strncmp(key, MODEL_PREFIX, strlen(MODEL_PREFIX)) == 0)
				kind = N_COUNT;
			else if (!s->unknown)
				s->unknown = key;
			s->gpu = true;
		}
		if (kind < 0)
			continue; /* another domain's resource: not ours */
		s->gpu = true;
		s->hami |= hami;
		if (requests)
			s->req_gpu = true;
		if (s->has[kind])
			continue;
		s->has[kind] = true;
		s->key[kind] = key;
		s->num[kind] = whole(v, &s->val[kind]);
	}
}

/* Scan container `ctr`, entry i of spec.<list>. */
static void scan_container(json_t *ctr, const char *list, size_t i, struct scan *s)
{
	json_t *nm = json_object_get(ctr, "name");

	memset(s, 0, sizeof *s);
	if (json_is_string(nm) && json_string_length(nm) > 0)
		snprintf(s->name, sizeof s->name, "%s", json_string_value(nm));
	else
		snprintf(s->name, sizeof s->name, "#%zu", i);
	snprintf(s->path, sizeof s->path, "/spec/%s/%zu", list, i);
	s->resources = json_object_get(ctr, "resources");
	if (!json_is_object(s->resources)) {
		s->resources = NULL;
		return;
	}
	s->limits = json_object_get(s->resources, "limits");
	s->requests = json_object_get(s->resources, "requests");
	if (!json_is_object(s->limits))
		s->limits = NULL;
	if (!json_is_object(s->requests))
		s->requests = NULL;
	scan_map(s->limits, s, false);
	scan_map(s->requests, s, true);
}

/* The gpupool resource an unknown gpupool.io/ name was probably meant to
 * be, or NULL.  The parser already suggests for gpupool.io/vgpu-<typo>;
 * this covers the names outside that prefix: a misspelt gpupool.io/vgpu,
 * a dropped "vgpu-", HAMi's words under our domain. */
static const char *suggest(const char *key)
{
	static const struct {
		const char *said, *meant;
	} aliases[] = {
		{"gpu", "vgpu"},
		{"gpus", "vgpu"},
		{"gpumem", "vgpu-memory"},
		{"gpumem-percentage", "vgpu-memory-percent"},
		{"gpucores", "vgpu-cores"},
		{"memory", "vgpu-memory"},
		{"memory-percent", "vgpu-memory-percent"},
		{"cores", "vgpu-cores"},
	};
	static const char *const ours[] = {"vgpu", "vgpu-memory", "vgpu-memory-percent",
					   "vgpu-cores", "priority"};
	const char *s = key + strlen(OURS);
	const char *best = NULL;
	unsigned bd = 3;

	for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
		if (strcmp(s, aliases[i].said) == 0)
			return aliases[i].meant;
	for (size_t i = 0; i < sizeof ours / sizeof *ours; i++) {
		unsigned d = gp_typo_distance(s, ours[i]);
		/* Two edits in a four-letter word is another word. */
		if (d < bd && (d <= 1 || strlen(ours[i]) > 4)) {
			bd = d;
			best = ours[i];
		}
	}
	return best;
}

/* Escape a JSON pointer token (RFC 6901: '~' as ~0, '/' as ~1) into buf. */
static void pointer_token(const char *s, char *buf, size_t n)
{
	size_t o = 0;

	for (; *s && o + 3 < n; s++) {
		if (*s == '~' || *s == '/') {
			buf[o++] = '~';
			buf[o++] = *s == '~' ? '0' : '1';
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
}

/* Append {"op": op, "path": path, "value": value} to ops; takes value. */
static int add_op(json_t *ops, const char *op, const char *path, json_t *value)
{
	json_t *o = json_pack("{s:s, s:s, s:o}", "op", op, "path", path, "value", value);

	return o ? json_array_append_new(ops, o) : -1;
}

/* The ops that give container s a vGPU count of 1: in its limits, and in
 * its requests when it gave GPU requests there.  Objects missing on the
 * way are created. */
static int add_count(json_t *ops, const struct scan *s)
{
	const char *name = s->hami ? "nvidia.com/gpu" : "gpupool.io/vgpu";
	char tok[64], path[160];

	pointer_token(name, tok, sizeof tok);
	if (!s->resources) {
		snprintf(path, sizeof path, "%s/resources", s->path);
		return add_op(ops, "add", path, json_pack("{s:{s:s}}", "limits", name, "1"));
	}
	if (!s->limits) {
		snprintf(path, sizeof path, "%s/resources/limits", s->path);
		if (add_op(ops, "add", path, json_pack("{s:s}", name, "1")))
			return -1;
	} else {
		snprintf(path, sizeof path, "%s/resources/limits/%s", s->path, tok);
		if (add_op(ops, "add", path, json_string("1")))
			return -1;
	}
	if (s->requests && s->req_gpu) {
		snprintf(path, sizeof path, "%s/resources/requests/%s", s->path, tok);
		if (add_op(ops, "add", path, json_string("1")))
			return -1;
	}
	return 0;
}

/* A copy of the pod the extender's parser can read at admission time:
 * a pod created through a controller has no name yet (only generateName),
 * and no uid; empty strings there would read as invalid.  Shallow: the
 * copy shares everything but the top level and metadata.  Returns a new
 * reference, or NULL without memory. */
static json_t *readable_pod(json_t *pod, json_t *request)
{
	json_t *copy = json_copy(pod), *meta = json_object_get(pod, "metadata");
	json_t *nm, *ns, *gen, *rname, *rns;
	char name[256];

	meta = json_is_object(meta) ? json_copy(meta) : json_object();
	if (!copy || !meta || json_object_set_new(copy, "metadata", meta)) {
		json_decref(copy);
		return NULL;
	}
	nm = json_object_get(meta, "name");
	if (!json_is_string(nm) || json_string_length(nm) == 0) {
		gen = json_object_get(meta, "generateName");
		rname = json_object_get(request, "name");
		if (json_is_string(rname) && json_string_length(rname) > 0)
			snprintf(name, sizeof name, "%.200s", json_string_value(rname));
		else if (json_is_string(gen) && json_string_length(gen) > 0)
			snprintf(name, sizeof name, "%.200s*", json_string_value(gen));
		else
			snprintf(name, sizeof name, "(unnamed)");
		if (json_object_set_new(meta, "name", json_string(name)))
			goto fail;
	}
	ns = json_object_get(meta, "namespace");
	if (!json_is_string(ns) || json_string_length(ns) == 0) {
		rns = json_object_get(request, "namespace");
		if (json_is_string(rns) && json_string_length(rns) > 0 && json_string_length(rns) < 64)
			json_object_set(meta, "namespace", rns);
		else
			json_object_del(meta, "namespace");
	}
	if (!json_is_string(json_object_get(meta, "uid")) ||
	    json_string_length(json_object_get(meta, "uid")) == 0)
		json_object_del(meta, "uid");
	return copy;
fail:
	json_decref(copy);
	return NULL;
}

/* What a pod review came to. */
struct outcome {
	json_t *ops;       /* the JSON patch so far (an array) */
	json_t *warnings;  /* strings for the AdmissionResponse */
	char why[WHY_MAX]; /* set: refused with this message */
};

/* Refuse: fill o->why.  Returns 1 (refused) for `return refuse(...)`. */
static int refuse(struct outcome *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct outcome *o, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(o->why, sizeof o->why, "gpupool: ");

	va_start(ap, fmt);
	vsnprintf(o->why + n, sizeof o->why - (size_t)n, fmt, ap);
	va_end(ap);
	return 1;
}

/* Add a warning (capped: Kubernetes may cut warnings over 120 chars). */
static void warn(struct outcome *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct outcome *o, const char *fmt, ...)
{
	char buf[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	json_array_append_new(o->warnings, json_string(buf));
}

/* The checks the extender's parser does not make, because it reads a
 * missing and a zero value alike: a percentage must be 1-100, and a count
 * of 0 beside memory or cores asks for GPU memory on no GPU.  Returns 1
 * when refused, else 0 (warnings may be added). */
static int own_checks(const struct scan *s, struct outcome *o)
{
	bool sized = s->has[N_MEMORY] || s->has[N_PERCENT] || s->has[N_CORES];

	if (s->has[N_COUNT] && s->num[N_COUNT] && s->val[N_COUNT] == 0) {
		if (sized)
			return refuse(o,
				      "container %s: %s is 0 but it asks for %s; ask for 1 to 16 "
				      "vGPUs, or drop the GPU resources",
				      s->name, s->key[N_COUNT],
				      s->key[s->has[N_MEMORY] ? N_MEMORY
						     : s->has[N_PERCENT] ? N_PERCENT
									 : N_CORES]);
		warn(o, "container %s: %s is 0, so it gets no GPU", s->name, s->key[N_COUNT]);
		return 0;
	}
	if (s->has[N_PERCENT] && s->num[N_PERCENT] && s->val[N_PERCENT] < 1)
		return refuse(o, "container %s: %s is 0; a memory percentage is 1 to 100", s->name,
			      s->key[N_PERCENT]);
	if (s->has[N_PRIORITY] && !s->hami && !s->has[N_COUNT] && !sized)
		warn(o, "container %s: %s without a GPU has no effect", s->name, s->key[N_PRIORITY]);
	return 0;
}

/* Judge one Pod CREATE: refuse it (o->why), or collect its patch and
 * warnings.  Returns 0, or -ENOMEM. */
static int judge_pod(const struct gp_webhook_opts *opts, json_t *pod, json_t *request,
		     struct outcome *o)
{
	static const char *const lists[] = {"initContainers", "containers"};
	json_t *spec = json_object_get(pod, "spec"), *copy = NULL, *sched;
	const char *want = opts->scheduler_name ? opts->scheduler_name : DEFAULT_SCHEDULER;
	struct scan *scans = NULL;
	struct gp_pod_req pr;
	size_t n = 0, k = 0;
	bool any = false, pr_ok = false;
	char why[WHY_MAX];
	int rc = -ENOMEM;

	for (size_t l = 0; l < 2; l++)
		n += json_array_size(json_object_get(spec, lists[l]));
	if (n == 0)
		return 0; /* no containers: not ours to judge (validation will be) */
	scans = calloc(n, sizeof *scans);
	if (!scans)
		return -ENOMEM;
	for (size_t l = 0; l < 2; l++) {
		json_t *arr = json_object_get(spec, lists[l]), *ctr;
		size_t i;

		json_array_foreach(arr, i, ctr) {
			scan_container(ctr, lists[l], i, &scans[k]);
			any |= scans[k++].gpu;
		}
	}
	if (!any) {
		rc = 0;
		goto out;
	}
	/* The extender's own reading: what it refuses, we refuse. */
	if (gp_req_init(&pr))
		goto out;
	pr_ok = true;
	if (!(copy = readable_pod(pod, request)))
		goto out;
	if (gp_req_from_pod(&pr, copy, why, sizeof why)) {
		const char *meant = NULL, *unknown = NULL;

		for (size_t i = 0; i < k && !unknown; i++)
			unknown = scans[i].unknown;
		if (unknown && strstr(why, unknown) && !strstr(why, "did you mean"))
			meant = suggest(unknown);
		if (meant)
			refuse(o, "%s (did you mean " OURS "%s?)", why, meant);
		else
			refuse(o, "%s", why);
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < k; i++)
		if (scans[i].gpu && own_checks(&scans[i], o)) {
			rc = 0;
			goto out;
		}
	if (pr.nctr == 0) {
		rc = 0; /* GPU names, but no GPU asked for (count 0, priority) */
		goto out;
	}
	for (size_t i = 0; i < k; i++) {
		const struct scan *s = &scans[i];
		if (s->gpu && !s->has[N_COUNT] &&
		    (s->has[N_MEMORY] || s->has[N_PERCENT] || s->has[N_CORES]) && add_count(o->ops, s))
			goto out;
	}
	sched = json_object_get(spec, "schedulerName");
	if (!sched || (json_is_string(sched) && (json_string_length(sched) == 0 ||
						 strcmp(json_string_value(sched), "default-scheduler") == 0))) {
		if (add_op(o->ops, sched ? "replace" : "add", "/spec/schedulerName", json_string(want)))
			goto out;
	} else if (!json_is_string(sched)) {
		refuse(o, "spec.schedulerName is not a string");
	} else if (strcmp(json_string_value(sched), want) != 0) {
		warn(o, "pod uses scheduler \"%.63s\": %s will not place its GPUs",
		     json_string_value(sched), want);
	}
	rc = 0;
out:
	if (pr_ok)
		gp_req_fini(&pr);
	json_decref(copy);
	free(scans);
	return rc;
}

/* A patch as the AdmissionResponse carries it: base64 of its JSON text.
 * Returns a new string, or NULL. */
static json_t *encode_patch(json_t *ops)
{
	char *text = json_dumps(ops, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0;
	unsigned char *b64 = text ? malloc(4 * ((len + 2) / 3) + 1) : NULL;
	json_t *s = NULL;

	if (b64 && len <= INT32_MAX) {
		EVP_EncodeBlock(b64, (const unsigned char *)text, (int)len);
		s = json_string((const char *)b64);
	}
	free(b64);
	free(text);
	return s;
}

/* {"error": why} with `status`, for a body that is not a review. */
static int bad(int status, json_t **out, enum gp_webhook_verdict *v, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(int status, json_t **out, enum gp_webhook_verdict *v, const char *fmt, ...)
{
	char why[WHY_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	*out = json_pack("{s:s}", "error", why);
	if (v)
		*v = GP_WH_MALFORMED;
	return *out ? status : 500;
}

/* A string member of obj, or NULL when absent or not a string. */
static const char *str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

int gp_webhook_review(const struct gp_webhook_opts *opts, const char *body, size_t len,
		      json_t **out, enum gp_webhook_verdict *verdict)
{
	size_t cap = opts->max_body ? opts->max_body : GP_WEBHOOK_MAX_BODY;
	json_t *doc, *req, *uid, *kind, *pod, *resp = NULL, *reply = NULL;
	struct outcome o = {0};
	const char *group, *kname, *sub, *op, *api;
	json_error_t je;
	int status = 500;

	*out = NULL;
	if (verdict)
		*verdict = GP_WH_MALFORMED;
	if (len > cap)
		return bad(413, out, verdict, "the AdmissionReview is %zu bytes, over the %zu-byte limit",
			   len, cap);
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return bad(400, out, verdict, "the body is not JSON: %s (line %d, column %d)", je.text,
			   je.line, je.column);
	if (!json_is_object(doc)) {
		status = bad(400, out, verdict, "the body is not a JSON object");
		goto out;
	}
	api = str(doc, "apiVersion");
	if (!api || strcmp(api, API_VERSION) != 0) {
		status = bad(400, out, verdict,
			     "apiVersion %.64s%s%s is not served: this webhook speaks " API_VERSION
			     " (admissionReviewVersions: [v1])",
			     api ? "\"" : "", api ? api : "(missing)", api ? "\"" : "");
		goto out;
	}
	if (!str(doc, "kind") || strcmp(str(doc, "kind"), "AdmissionReview") != 0) {
		status = bad(400, out, verdict, "kind must be AdmissionReview");
		goto out;
	}
	req = json_object_get(doc, "request");
	uid = json_object_get(req, "uid");
	kind = json_object_get(req, "kind");
	if (!json_is_object(req)) {
		status = bad(400, out, verdict, "request is missing or not an object");
		goto out;
	}
	if (!json_is_string(uid) || json_string_length(uid) == 0 ||
	    json_string_length(uid) > UID_MAX) {
		status = bad(400, out, verdict, "request.uid must be a string of 1 to %u bytes",
			     UID_MAX);
		goto out;
	}
	group = str(kind, "group");
	kname = str(kind, "kind");
	op = str(req, "operation");
	if (!json_is_object(kind) || !kname) {
		status = bad(400, out, verdict, "request.kind must be an object with a kind");
		goto out;
	}
	if (!op) {
		status = bad(400, out, verdict, "request.operation is missing");
		goto out;
	}
	resp = json_pack("{s:O, s:b}", "uid", uid, "allowed", 1);
	reply = json_pack("{s:s, s:s, s:O}", "apiVersion", API_VERSION, "kind", "AdmissionReview",
			  "response", resp);
	o.ops = json_array();
	o.warnings = json_array();
	if (!resp || !reply || !o.ops || !o.warnings)
		goto oom;
	sub = str(req, "subResource");
	if ((group && *group) || strcmp(kname, "Pod") != 0 || (sub && *sub) ||
	    strcmp(op, "CREATE") != 0) {
		status = 200; /* not a pod being created: not ours */
		if (verdict)
			*verdict = GP_WH_UNTOUCHED;
		goto done;
	}
	pod = json_object_get(req, "object");
	if (!json_is_object(pod)) {
		json_decref(reply);
		reply = NULL;
		status = bad(400, out, verdict, "request.object is missing or not an object");
		goto out;
	}
	if (judge_pod(opts, pod, req, &o))
		goto oom;
	status = 200;
	if (o.why[0]) {
		json_t *st = json_pack("{s:s, s:s, s:s, s:i}", "status", "Failure", "message", o.why,
				       "reason", "Invalid", "code", 422);
		if (!st || json_object_set_new(resp, "allowed", json_false()) ||
		    json_object_set_new(resp, "status", st))
			goto oom;
		if (verdict)
			*verdict = GP_WH_REFUSED;
	} else if (json_array_size(o.ops)) {
		json_t *p = encode_patch(o.ops);
		if (!p || json_object_set_new(resp, "patchType", json_string("JSONPatch")) ||
		    json_object_set_new(resp, "patch", p))
			goto oom;
		if (verdict)
			*verdict = GP_WH_PATCHED;
	} else if (verdict) {
		*verdict = GP_WH_UNTOUCHED;
	}
	if (json_array_size(o.warnings))
		json_object_set(resp, "warnings", o.warnings);
done:
	*out = reply;
	reply = NULL;
	goto out;
oom:
	status = 500;
	if (verdict)
		*verdict = GP_WH_MALFORMED;
out:
	json_decref(reply);
	json_decref(resp);
	json_decref(o.ops);
	json_decref(o.warnings);
	json_decref(doc);
	return status;
}

/* ===========================================================================
 * The daemon: HTTPS on libevent, certificates re-read as they rotate.
 * ======================================================================== */

/* What identifies a file's content without reading it: a Secret volume
 * swaps a symlink (new inode), cert-manager and editors rewrite in place
 * (new mtime, ctime or size). */
struct file_sig {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	bool ok; /* stat succeeded */
};

struct webhook {
	const struct gp_webhook_config *c;
	SSL_CTX *ctx;               /* what new connections use; never NULL once serving */
	struct file_sig cert, key;  /* the files as last tried */
	bool last_failed;           /* the last try failed (retried every check) */
	struct event *tick, *hup;
	struct gp_loop *loop;
	char not_after[32];         /* the certificate's end, RFC 3339 */
	char loaded_at[32];         /* when it was loaded, RFC 3339 */
	unsigned long reloads;      /* successful loads after the first */
	unsigned long count[GP_WH_MALFORMED + 1]; /* reviews by verdict */
};

static void stat_sig(const char *path, struct file_sig *s)
{
	struct stat st;

	memset(s, 0, sizeof *s);
	if (stat(path, &st) != 0)
		return;
	s->ok = true;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
	s->ctime = st.st_ctim;
}

static bool sig_equal(const struct file_sig *a, const struct file_sig *b)
{
	return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* OpenSSL's reason for the last failure, into buf. */
static const char *ssl_reason(char *buf, size_t n)
{
	unsigned long e = ERR_peek_last_error();

	if (!e)
		snprintf(buf, n, "unknown error");
	else
		ERR_error_string_n(e, buf, n);
	ERR_clear_error();
	return buf;
}

/* Keys with a passphrase are refused instead of prompting on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return 0;
}

/* A file we hand to OpenSSL must be a regular file of sane size. */
static int check_file(const char *what, const char *path, char *why, size_t n)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return gp_errf(why, n, -errno, "%s %s: %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return gp_errf(why, n, -EINVAL, "%s %s is not a regular file", what, path);
	if (st.st_size == 0 || (unsigned long long)st.st_size > PEM_MAX)
		return gp_errf(why, n, -EINVAL, "%s %s is %s (at most %u bytes)", what, path,
			       st.st_size ? "too large" : "empty", PEM_MAX);
	return 0;
}

/* A server context for the certificate chain and key files: TLS 1.2 or
 * later, no renegotiation.  Returns it (the caller owns it), or NULL with
 * the reason in why. */
static SSL_CTX *load_ctx(const char *cert, const char *key, char *not_after, size_t na,
			 char *why, size_t n)
{
	SSL_CTX *ctx = NULL;
	char e[256];
	struct tm tm;

	ERR_clear_error();
	if (check_file("--tls-cert", cert, why, n) || check_file("--tls-key", key, why, n))
		return NULL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		gp_errf(why, n, -ENOMEM, "cannot create a TLS context: %s", ssl_reason(e, sizeof e));
		return NULL;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		gp_errf(why, n, -EINVAL, "cannot require TLS 1.2: %s", ssl_reason(e, sizeof e));
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		gp_errf(why, n, -EINVAL, "--tls-cert %s: %s", cert, ssl_reason(e, sizeof e));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL checks the pair here already; say so plainly. */
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			gp_errf(why, n, -EINVAL, "--tls-key %s does not match --tls-cert %s", key,
				cert);
		} else {
			gp_errf(why, n, -EINVAL, "--tls-key %s: %s", key, ssl_reason(e, sizeof e));
		}
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		gp_errf(why, n, -EINVAL, "--tls-key %s does not match --tls-cert %s", key, cert);
		ERR_clear_error();
		goto fail;
	}
	not_after[0] = '\0';
	if (ASN1_TIME_to_tm(X509_get0_notAfter(SSL_CTX_get0_certificate(ctx)), &tm) == 1)
		strftime(not_after, na, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Now in RFC 3339 UTC, into buf. */
static void now_text(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Load the files again; on success new connections get the new context
 * (connections already open keep theirs, which OpenSSL reference-counts).
 * `why` says what prompted it.  Returns 0 or -EINVAL; a failure keeps the
 * old context and is logged once per change of the files. */
static int reload(struct webhook *w, const char *prompt, bool quiet_failure)
{
	char why[WHY_MAX], na[32];
	SSL_CTX *ctx;

	stat_sig(w->c->cert_file, &w->cert);
	stat_sig(w->c->key_file, &w->key);
	ctx = load_ctx(w->c->cert_file, w->c->key_file, na, sizeof na, why, sizeof why);
	if (!ctx) {
		if (!quiet_failure)
			gp_warn("%s: keeping the certificate loaded at %s: %s", prompt, w->loaded_at,
				why);
		w->last_failed = true;
		return -EINVAL;
	}
	SSL_CTX_free(w->ctx);
	w->ctx = ctx;
	w->last_failed = false;
	w->reloads++;
	memcpy(w->not_after, na, sizeof na);
	now_text(w->loaded_at, sizeof w->loaded_at);
	gp_info("%s: loaded %s (valid until %s)", prompt, w->c->cert_file,
		w->not_after[0] ? w->not_after : "?");
	return 0;
}

/* Every --reload-interval: reload when the files changed, or retry a
 * failed load quietly (a pair written one file at a time fails between
 * the two writes). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct webhook *w = arg;
	struct file_sig c, k;

	(void)fd;
	(void)what;
	stat_sig(w->c->cert_file, &c);
	stat_sig(w->c->key_file, &k);
	if (!sig_equal(&c, &w->cert) || !sig_equal(&k, &w->key))
		(void)reload(w, "certificate files changed", false);
	else if (w->last_failed)
		(void)reload(w, "certificate files changed", true);
}

static void on_hup(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)reload(arg, "SIGHUP", false);
}

/* evhttp's connection factory: every accepted socket speaks TLS with the
 * context current at accept time.  Never NULL: evhttp would then serve
 * the connection in plain text, so running out of memory here is fatal. */
static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	struct webhook *w = arg;
	SSL *ssl = SSL_new(w->ctx);
	struct bufferevent *bev;

	if (!ssl) {
		gp_error("out of memory for a TLS connection");
		abort();
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		gp_error("out of memory for a TLS connection");
		abort();
	}
	/* Clients that close without close_notify are common and harmless
	 * for request/response traffic. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* POST /mutate: one AdmissionReview. */
static void on_mutate(struct gp_http_req *rq, void *arg)
{
	struct webhook *w = arg;
	enum gp_webhook_verdict v;
	size_t len;
	const char *body = gp_http_body(rq, &len);
	json_t *reply;
	int status = gp_webhook_review(&w->c->review, body, len, &reply, &v);

	w->count[v]++;
	if (v == GP_WH_REFUSED || v == GP_WH_MALFORMED) {
		json_t *resp = json_object_get(reply, "response");
		const char *msg = v == GP_WH_REFUSED
					  ? json_string_value(json_object_get(
						    json_object_get(resp, "status"), "message"))
					  : json_string_value(json_object_get(reply, "error"));
		gp_info("%s: %s", v == GP_WH_REFUSED ? "refused" : "bad review",
			msg ? msg : "out of memory");
	}
	if (!reply) {
		gp_http_reply_error(rq, 500, "out of memory");
		return;
	}
	gp_http_reply_json(rq, status, reply);
}

/* GET /healthz: serving, and with which certificate. */
static void on_healthz(struct gp_http_req *rq, void *arg)
{
	struct webhook *w = arg;

	gp_http_reply_json(
		rq, 200,
		json_pack("{s:s, s:{s:s, s:s, s:i, s:b}, s:{s:i, s:i, s:i, s:i}}", "status", "ok",
			  "certificate", "notAfter", w->not_after, "loadedAt", w->loaded_at,
			  "reloads", (json_int_t)w->reloads, "lastReloadFailed", w->last_failed,
			  "reviews", "untouched", (json_int_t)w->count[GP_WH_UNTOUCHED], "patched",
			  (json_int_t)w->count[GP_WH_PATCHED], "refused",
			  (json_int_t)w->count[GP_WH_REFUSED], "malformed",
			  (json_int_t)w->count[GP_WH_MALFORMED]));
}

static const struct gp_http_route routes[] = {
	{"POST", "/mutate", on_mutate},
	{"GET", "/healthz", on_healthz},
	{NULL, NULL, NULL},
};

/* Write the ready file atomically: a reader sees all of it or nothing. */
static int write_ready(const char *path, int port)
{
	json_t *doc = json_pack("{s:i, s:i}", "pid", (int)getpid(), "https_port", port);
	char tmp[4096];
	int rc = 0;

	if (!doc)
		return -ENOMEM;
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
		json_decref(doc);
		return -ENAMETOOLONG;
	}
	if (json_dump_file(doc, tmp, JSON_COMPACT) != 0 || rename(tmp, path) != 0) {
		rc = -EIO;
		unlink(tmp);
	}
	json_decref(doc);
	return rc;
}

int gp_webhook_run(const struct gp_webhook_config *c)
{
	struct webhook *w = calloc(1, sizeof *w);
	size_t max_body = c->review.max_body ? c->review.max_body : GP_WEBHOOK_MAX_BODY;
	/* The review answers a body over the cap with 413 and its reason;
	 * evhttp reads 1 MiB more than that, and cuts a connection that
	 * sends still more (over TLS its own 413 rarely reaches a client
	 * that is still sending). */
	struct gp_http_opts ho = {.listen = c->listen, .max_body = max_body + ((size_t)1 << 20),
				  .max_headers = 16384,
				  .bevcb = tls_bev};
	struct gp_http *http = NULL;
	char why[WHY_MAX];
	int rc = -ENOMEM, ready = 0;

	if (!w || !(w->loop = gp_loop_new())) {
		gp_error("out of memory");
		goto out;
	}
	w->c = c;
	ho.bevcb_arg = w;
	stat_sig(c->cert_file, &w->cert);
	stat_sig(c->key_file, &w->key);
	w->ctx = load_ctx(c->cert_file, c->key_file, w->not_after, sizeof w->not_after, why,
			  sizeof why);
	if (!w->ctx) {
		gp_error("%s", why);
		rc = -EINVAL;
		goto out;
	}
	now_text(w->loaded_at, sizeof w->loaded_at);
	w->hup = evsignal_new(gp_loop_base(w->loop), SIGHUP, on_hup, w);
	if (!w->hup || event_add(w->hup, NULL)) {
		gp_error("cannot handle SIGHUP");
		goto out;
	}
	if (c->reload_ms > 0) {
		struct timeval tv = {.tv_sec = c->reload_ms / 1000,
				     .tv_usec = (c->reload_ms % 1000) * 1000};
		w->tick = event_new(gp_loop_base(w->loop), -1, EV_PERSIST, on_tick, w);
		if (!w->tick || event_add(w->tick, &tv)) {
			gp_error("cannot start the certificate check");
			goto out;
		}
	}
	rc = gp_http_start(&http, gp_loop_base(w->loop), &ho, routes, w);
	if (rc) {
		gp_error("cannot listen on %s: %s", c->listen, strerror(-rc));
		goto out;
	}
	if (c->ready_file) {
		rc = write_ready(c->ready_file, gp_http_port(http));
		if (rc) {
			gp_error("cannot write %s: %s", c->ready_file, strerror(-rc));
			goto out;
		}
		ready = 1;
	}
	gp_info("serving admission reviews on https://%s (port %d), scheduler %s, certificate "
		"valid until %s",
		c->listen, gp_http_port(http),
		c->review.scheduler_name ? c->review.scheduler_name : DEFAULT_SCHEDULER,
		w->not_after[0] ? w->not_after : "?");
	rc = gp_loop_run(w->loop) ? -EIO : 0;
out:
	if (ready)
		unlink(c->ready_file);
	gp_http_stop(http); /* closes connections: their SSLs go before the context */
	if (w) {
		if (w->tick)
			event_free(w->tick);
		if (w->hup)
			event_free(w->hup);
		SSL_CTX_free(w->ctx);
		gp_loop_free(w->loop);
		free(w);
	}
	return rc;
}
