/* kube.c - see kube.h. */
#include "net/kube.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "net/client.h"
#include "net/kubeconfig.h"

#define DEFAULT_TIMEOUT_MS 10000L
#define DEFAULT_MAX_BODY ((size_t)64 << 20)
#define DEFAULT_CONFLICT_RETRIES 5u

struct gp_kube {
	struct gp_kubeconfig kc;
	long timeout_ms;
	size_t max_body;
	unsigned retries;
	pthread_mutex_t lock;     /* guards the token below */
	char *token;              /* current bearer token, or NULL */
	struct timespec token_mtime;
	off_t token_size;
	atomic_ulong requests, conflicts;
};

static const char *const patch_types[] = {
	[GP_KUBE_MERGE_PATCH] = "application/merge-patch+json",
	[GP_KUBE_STRATEGIC_PATCH] = "application/strategic-merge-patch+json",
	[GP_KUBE_JSON_PATCH] = "application/json-patch+json",
};

static void seterr(struct gp_kube_err *e, long status, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void seterr(struct gp_kube_err *e, long status, const char *reason, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
}

int gp_kube_open(struct gp_kube **out, const struct gp_kube_opts *o, char *err, size_t n)
{
	struct gp_kube *k = calloc(1, sizeof *k);
	int rc;

	if (!k) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&k->lock, NULL);
	k->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	k->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
	k->retries = o->conflict_retries ? o->conflict_retries : DEFAULT_CONFLICT_RETRIES;
	if (o->kubeconfig)
		rc = gp_kubeconfig_load(&k->kc, o->kubeconfig, o->context, err, n);
	else
		rc = gp_kubeconfig_in_cluster(&k->kc, o->sa_dir, err, n);
	if (rc)
		goto fail;
	if (k->kc.token && !(k->token = strdup(k->kc.token))) {
		rc = -ENOMEM;
		goto fail;
	}
	gp_info("kubernetes API at %s (%s)", k->kc.server,
		o->kubeconfig ? "kubeconfig" : "in-cluster service account");
	*out = k;
	return 0;
fail:
	gp_kube_close(k);
	return rc;
}

void gp_kube_close(struct gp_kube *k)
{
	if (!k)
		return;
	gp_kubeconfig_free(&k->kc);
	free(k->token);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

const char *gp_kube_server(const struct gp_kube *k)
{
	return k->kc.server;
}

const char *gp_kube_namespace(const struct gp_kube *k)
{
	return k->kc.namespace;
}

void gp_kube_counters(const struct gp_kube *k, unsigned long *requests, unsigned long *conflicts)
{
	*requests = atomic_load(&k->requests);
	*conflicts = atomic_load(&k->conflicts);
}

/* Re-read the token file if it changed since we last read it.  Called with
 * k->lock held. */
static void refresh_token(struct gp_kube *k)
{
	struct stat st;
	char *buf;
	int fd;
	ssize_t r;

	if (!k->kc.token_file || stat(k->kc.token_file, &st))
		return;
	if (k->token && st.st_mtim.tv_sec == k->token_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == k->token_mtime.tv_nsec && st.st_size == k->token_size)
		return;
	if (st.st_size <= 0 || st.st_size > GP_KUBE_TOKEN_MAX_BYTES) {
		gp_warn("token file %s: size %lld is not that of a token", k->kc.token_file,
			(long long)st.st_size);
		return;
	}
	fd = open(k->kc.token_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	buf = malloc((size_t)st.st_size + 1);
	r = 0;
	while (buf && r < st.st_size) {
		ssize_t got = read(fd, buf + r, (size_t)(st.st_size - r));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		r += got;
	}
	close(fd);
	if (!buf || r <= 0) {
		free(buf);
		return;
	}
	while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == '\r' || buf[r - 1] == ' '))
		r--;
	buf[r] = '\0';
	free(k->token);
	k->token = buf;
	k->token_mtime = st.st_mtim;
	k->token_size = st.st_size;
}

/* The errno for an API status, from its code and reason. */
static int status_errno(long status, const char *reason)
{
	static const struct {
		long status;
		int err;
	} table[] = {
		{400, -EINVAL}, {401, -EACCES}, {403, -EACCES}, {404, -ENOENT}, {422, -EINVAL},
	};

	if (status == 409)
		return strcmp(reason, "AlreadyExists") == 0 ? -EEXIST : -ESTALE;
	for (size_t i = 0; i < sizeof table / sizeof *table; i++)
		if (table[i].status == status)
			return table[i].err;
	return -EIO;
}

/* The client options and headers every request carries. */
struct prep {
	struct gp_client_opts o;
	const char *headers[5];
	char ct[96];
	char *auth, *url;
};

static int prepare(struct gp_kube *k, const char *path, const char *ctype, struct prep *p,
		   struct gp_kube_err *e)
{
	int nh = 0;

	memset(p, 0, sizeof *p);
	p->o = (struct gp_client_opts){
		.timeout_ms = k->timeout_ms,
		.max_body = k->max_body,
		.ca_file = k->kc.ca_file,
		.ca_pem = k->kc.ca_data,
		.ca_pem_len = k->kc.ca_len,
		.cert_pem = k->kc.cert_pem,
		.cert_pem_len = k->kc.cert_len,
		.key_pem = k->kc.key_pem,
		.key_pem_len = k->kc.key_len,
		.insecure = k->kc.insecure,
		.user = k->kc.user,
		.password = k->kc.password,
	};
	/* The token goes in a header of our own: no length limit but ours. */
	pthread_mutex_lock(&k->lock);
	refresh_token(k);
	if (k->token && asprintf(&p->auth, "Authorization: Bearer %s", k->token) < 0)
		p->auth = NULL;
	pthread_mutex_unlock(&k->lock);
	if (asprintf(&p->url, "%s%s", k->kc.server, path) < 0) {
		p->url = NULL;
		seterr(e, 0, NULL, "out of memory");
		return -ENOMEM;
	}
	p->headers[nh++] = "Accept: application/json";
	p->headers[nh++] = "User-Agent: gpupool";
	if (ctype) {
		snprintf(p->ct, sizeof p->ct, "Content-Type: %s", ctype);
		p->headers[nh++] = p->ct;
	}
	if (p->auth)
		p->headers[nh++] = p->auth;
	p->headers[nh] = NULL;
	atomic_fetch_add(&k->requests, 1);
	return 0;
}

static void prep_free(struct prep *p)
{
	free(p->auth);
	free(p->url);
}

/* An answer that is not 2xx: its Status object into e, the errno back. */
static int failed(const char *method, const char *path, const struct gp_client_resp *r,
		  json_t *doc, struct gp_kube_err *e)
{
	const char *reason = json_string_value(json_object_get(doc, "reason"));
	const char *msg = json_string_value(json_object_get(doc, "message"));

	seterr(e, r->status, reason, "%s %s: %ld %s", method, path, r->status,
	       msg ? msg : (reason ? reason : "(no message)"));
	return status_errno(r->status, reason ? reason : "");
}

/* One request.  `body` is serialised when not NULL.  Returns 0 with the
 * parsed answer in *out (when out is not NULL), or an errno as in kube.h. */
static int call(struct gp_kube *k, const char *method, const char *path, const char *ctype,
		json_t *body, json_t **out, struct gp_kube_err *e)
{
	struct gp_client_resp r;
	struct prep p;
	char *text = NULL;
	json_t *doc = NULL;
	json_error_t je;
	int rc;

	memset(e, 0, sizeof *e);
	if (out)
		*out = NULL;
	if ((rc = prepare(k, path, ctype, &p, e)))
		goto out;
	if (body && !(text = json_dumps(body, JSON_COMPACT))) {
		rc = -ENOMEM;
		seterr(e, 0, NULL, "out of memory");
		goto out;
	}
	if (gp_client_request(method, p.url, p.headers, text, text ? strlen(text) : 0, &p.o,
			      &r)) {
		seterr(e, 0, NULL, "%s", r.err);
		rc = -EHOSTUNREACH;
		goto out;
	}
	doc = r.len ? json_loadb(r.body, r.len, 0, &je) : NULL;
	if (r.status >= 200 && r.status < 300) {
		if (!doc && out) {
			seterr(e, r.status, NULL, "%s %s: answer is not JSON", method, path);
			rc = -EIO;
		} else {
			rc = 0;
			if (out) {
				*out = doc;
				doc = NULL;
			}
		}
	} else {
		rc = failed(method, path, &r, doc, e);
	}
	gp_client_free(&r);
	gp_debug("kube %s %s -> %ld (%d)", method, path, e->status ? e->status : 200L, rc);
out:
	json_decref(doc);
	free(text);
	prep_free(&p);
	return rc;
}

struct watch {
	gp_kube_event_fn fn;
	void *arg;
	struct gp_kube_err *e;
	int rc;
};

static int on_event(const char *line, size_t len, void *arg)
{
	struct watch *w = arg;
	json_error_t je;
	json_t *ev = json_loadb(line, len, 0, &je);
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	int stop;

	if (!type || !json_is_object(obj)) {
		seterr(w->e, 200, NULL, "watch event is not {type, object}: %s",
		       ev ? "fields missing" : je.text);
		w->rc = -EIO;
		json_decref(ev);
		return 1;
	}
	if (strcmp(type, "ERROR") == 0) {
		/* A Status: 410 Gone when our resourceVersion is too old. */
		json_t *code = json_object_get(obj, "code");
		const char *msg = json_string_value(json_object_get(obj, "message"));
		const char *reason = json_string_value(json_object_get(obj, "reason"));
		long status = json_is_integer(code) ? (long)json_integer_value(code) : 500;
		seterr(w->e, status, reason, "watch: %ld %s", status, msg ? msg : "(no message)");
		w->rc = status == 410 ? -ENODATA : status_errno(status, reason ? reason : "");
		json_decref(ev);
		return 1;
	}
	stop = w->fn(type, obj, w->arg);
	json_decref(ev);
	return stop;
}

int gp_kube_watch(struct gp_kube *k, const char *path, gp_kube_event_fn fn, void *arg,
		  const int *cancel, struct gp_kube_err *e)
{
	struct watch w = {.fn = fn, .arg = arg, .e = e};
	struct gp_client_resp r;
	struct prep p;
	int rc;

	memset(e, 0, sizeof *e);
	if ((rc = prepare(k, path, NULL, &p, e)))
		goto out;
	/* The server ends a watch after its timeoutSeconds (ours ask for at
	 * most 5 minutes) and sends bookmarks about every minute. */
	p.o.idle_ms = 6 * 60 * 1000L;
	if (gp_client_stream(p.url, p.headers, &p.o, on_event, &w, cancel, &r)) {
		seterr(e, 0, NULL, "%s", r.err);
		rc = -EHOSTUNREACH;
		goto out;
	}
	if (r.status >= 200 && r.status < 300) {
		rc = w.rc;
	} else {
		json_error_t je;
		json_t *doc = r.len ? json_loadb(r.body, r.len, 0, &je) : NULL;
		rc = failed("GET", path, &r, doc, e);
		if (r.status == 410)
			rc = -ENODATA;
		json_decref(doc);
	}
	gp_client_free(&r);
out:
	prep_free(&p);
	return rc;
}

int gp_kube_get(struct gp_kube *k, const char *path, json_t **out, struct gp_kube_err *e)
{
	return call(k, "GET", path, NULL, NULL, out, e);
}

int gp_kube_patch(struct gp_kube *k, const char *path, enum gp_kube_patch type, json_t *patch,
		  json_t **out, struct gp_kube_err *e)
{
	if ((unsigned)type >= sizeof patch_types / sizeof *patch_types) {
		seterr(e, 0, NULL, "unknown patch type %d", (int)type);
		return -EINVAL;
	}
	return call(k, "PATCH", path, patch_types[type], patch, out, e);
}

int gp_kube_post(struct gp_kube *k, const char *path, json_t *body, json_t **out,
		 struct gp_kube_err *e)
{
	return call(k, "POST", path, "application/json", body, out, e);
}

int gp_kube_update(struct gp_kube *k, const char *path, enum gp_kube_patch type,
		   gp_kube_mutate_fn fn, void *arg, json_t **out, struct gp_kube_err *e)
{
	unsigned tries = k->retries + 1;
	int rc = -ESTALE;

	if (out)
		*out = NULL;
	if (type == GP_KUBE_JSON_PATCH) {
		seterr(e, 0, NULL, "read-modify-write takes a merge or strategic patch");
		return -EINVAL;
	}
	for (unsigned t = 0; t < tries; t++) {
		json_t *obj = NULL, *patch = NULL, *meta;
		json_t *rv;

		if ((rc = gp_kube_get(k, path, &obj, e)))
			return rc;
		rv = json_object_get(json_object_get(obj, "metadata"), "resourceVersion");
		if (!json_is_string(rv)) {
			seterr(e, 200, NULL, "GET %s: object has no metadata.resourceVersion", path);
			json_decref(obj);
			return -EIO;
		}
		memset(e, 0, sizeof *e);
		rc = fn(obj, &patch, arg, e);
		if (rc != 0) {
			json_decref(patch);
			if (rc == 1 && out) {
				*out = obj;
				return 0;
			}
			json_decref(obj);
			return rc == 1 ? 0 : rc;
		}
		meta = json_object_get(patch, "metadata");
		if (!json_is_object(patch) || (meta && !json_is_object(meta))) {
			seterr(e, 0, NULL, "patch for %s is not an object", path);
			json_decref(patch);
			json_decref(obj);
			return -EINVAL;
		}
		if (!meta) {
			meta = json_object();
			json_object_set_new(patch, "metadata", meta);
		}
		json_object_set(meta, "resourceVersion", rv);
		rc = gp_kube_patch(k, path, type, patch, out, e);
		json_decref(patch);
		json_decref(obj);
		if (rc != -ESTALE)
			return rc;
		atomic_fetch_add(&k->conflicts, 1);
		gp_info("%s changed under us (409 Conflict); re-reading (try %u of %u)", path,
			t + 1, tries);
	}
	seterr(e, 409, "Conflict", "%s kept changing: still conflicting after %u tries", path,
	       tries);
	return rc;
}
