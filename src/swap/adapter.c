/* adapter.c - the table of engine adapters and what they share; see
 * adapter.h and adapter_int.h. */
#include "swap/adapter_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errf.h"

static const struct gp_swap_adapter *const adapters[] = {
	&gp__swap_vllm,
	&gp__swap_triton,
	&gp__swap_gpupool,
};

const struct gp_swap_adapter *gp_swap_adapter_find(const char *kind)
{
	if (!kind)
		return NULL;
	for (size_t i = 0; i < sizeof adapters / sizeof *adapters; i++)
		if (strcmp(adapters[i]->kind, kind) == 0)
			return adapters[i];
	return NULL;
}

static const char *const state_names[] = {
	[GP_SWAP_UNKNOWN] = "unknown",   [GP_SWAP_UNLOADED] = "unloaded",
	[GP_SWAP_LOADING] = "loading",   [GP_SWAP_LOADED] = "loaded",
	[GP_SWAP_UNLOADING] = "unloading", [GP_SWAP_FAILED] = "failed",
};

const char *gp_swap_state_name(enum gp_swap_state s)
{
	if ((unsigned)s >= sizeof state_names / sizeof *state_names)
		return "unknown";
	return state_names[s];
}

long gp__swap_query_ms(const struct gp_swap_engine_ref *e)
{
	return e->query_timeout_ms > 0 ? e->query_timeout_ms : GP_SWAP_QUERY_TIMEOUT_MS;
}

long gp__swap_op_ms(const struct gp_swap_engine_ref *e)
{
	return e->op_timeout_ms > 0 ? e->op_timeout_ms : GP_SWAP_OP_TIMEOUT_MS;
}

/* Printable ASCII only, so that the message is safe in a log line and in
 * JSON whatever the engine sent. */
static int printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

int gp__swap_check(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m, char *err,
		   size_t n)
{
	const char *kind = e && e->kind ? e->kind : "engine";
	size_t len;

	if (!e || !e->endpoint)
		return gp_errf(err, n, -EINVAL, "%s: no endpoint", kind);
	len = strlen(e->endpoint);
	if (strncmp(e->endpoint, "http://", 7) != 0 && strncmp(e->endpoint, "https://", 8) != 0)
		return gp_errf(err, n, -EINVAL,
			       "%s: endpoint '%.80s' is not an http:// or https:// URL", kind,
			       e->endpoint);
	if (len >= GP_SWAP_REF_URL_MAX / 2 || !printable(e->endpoint, len))
		return gp_errf(err, n, -EINVAL,
			       "%s: endpoint longer than %d bytes or with control characters", kind,
			       GP_SWAP_REF_URL_MAX / 2 - 1);
	if (!m)
		return 0;
	if (!m->name || !*m->name)
		return gp_errf(err, n, -EINVAL, "%s: %s: no model name", kind, e->endpoint);
	len = strlen(m->name);
	if (len > GP_SWAP_REF_NAME_MAX)
		return gp_errf(err, n, -EINVAL, "%s: %s: model name of %zu bytes (at most %d)",
			       kind, e->endpoint, len, GP_SWAP_REF_NAME_MAX);
	if (!printable(m->name, len))
		return gp_errf(err, n, -EINVAL, "%s: %s: model name with control characters", kind,
			       e->endpoint);
	return 0;
}

int gp__swap_url(char *url, const struct gp_swap_engine_ref *e, const char *path, const char *name,
		 char *err, size_t n)
{
	static const char token[] = "{name}";
	const char *kind = e->kind ? e->kind : "engine";
	size_t base = strlen(e->endpoint), at = 0;
	char *esc = NULL;

	while (base && e->endpoint[base - 1] == '/')
		base--;
	if (name && !(esc = gp_client_escape(name)))
		return gp_errf(err, n, -ENOMEM, "%s: out of memory", kind);
	if (base >= GP_SWAP_REF_URL_MAX)
		goto long_url;
	memcpy(url, e->endpoint, base);
	at = base;
	for (const char *p = path; *p;) {
		const char *piece = p;
		size_t plen = 1;

		if (esc && strncmp(p, token, sizeof token - 1) == 0) {
			piece = esc;
			plen = strlen(esc);
			p += sizeof token - 1;
		} else {
			p++;
		}
		if (at + plen >= GP_SWAP_REF_URL_MAX)
			goto long_url;
		memcpy(url + at, piece, plen);
		at += plen;
	}
	url[at] = '\0';
	free(esc);
	return 0;
long_url:
	free(esc);
	url[0] = '\0';
	return gp_errf(err, n, -EINVAL, "%s: %s: request URL longer than %d bytes", kind,
		       e->endpoint, GP_SWAP_REF_URL_MAX - 1);
}

/* What the engine said, for a message: its JSON error ({"error": s},
 * {"error": {"message": s}}, FastAPI's {"detail": s}, {"message": s}) or
 * the start of the body, made printable ASCII.  Writes into out. */
static void excerpt(const struct gp_client_resp *r, char *out, size_t n)
{
	static const char *const keys[] = {"error", "detail", "message"};
	const char *text = r->body ? r->body : "";
	size_t len = r->len, i;
	json_t *doc = len ? json_loadb(r->body, len, 0, NULL) : NULL;

	for (i = 0; json_is_object(doc) && i < sizeof keys / sizeof *keys; i++) {
		json_t *v = json_object_get(doc, keys[i]);
		if (json_is_object(v))
			v = json_object_get(v, "message");
		if (json_is_string(v)) {
			text = json_string_value(v);
			len = json_string_length(v);
			break;
		}
	}
	if (!len)
		text = "(empty body)", len = strlen(text);
	for (i = 0; i + 1 < n && i < len && i < 200; i++) {
		unsigned char c = (unsigned char)text[i];
		out[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	if (n)
		out[i] = '\0';
	json_decref(doc);
}

/* Error statuses and what they mean to a caller; the rest -EREMOTEIO. */
static const struct {
	long status;
	int rc;
} status_rc[] = {
	{401, -EACCES}, {403, -EACCES}, {404, -ENOENT}, {429, -EAGAIN}, {503, -EAGAIN},
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gp__swap_http(const struct gp__swap_req *rq, struct gp_client_resp *resp, char *err,
		  size_t n)
{
	static const int ok_only[] = {200, 0};
	/* curl would label a body form data; an empty POST carries none. */
	static const char *const json_headers[] = {"Content-Type: application/json",
						   "Accept: application/json", NULL};
	static const char *const bare_headers[] = {"Content-Type:", "Accept: application/json",
						   NULL};
	struct gp_client_opts o = {.timeout_ms = rq->timeout_ms, .max_body = GP_SWAP_MAX_BODY};
	const char *body = rq->body;
	const int *accept = rq->accept ? rq->accept : ok_only;
	char what[256];
	long start = now_ms();
	int rc = -EREMOTEIO;

	if (!body && strcmp(rq->method, "POST") == 0)
		body = "";
	if (gp_client_request(rq->method, rq->url, rq->body ? json_headers : bare_headers, body,
			      body ? strlen(body) : 0, &o, resp) != 0) {
		/* client.c says "... larger than N bytes" of a capped answer;
		 * a transfer that ran its whole time limit timed out. */
		if (strstr(resp->err, "larger than"))
			rc = -EMSGSIZE;
		else if (now_ms() - start >= rq->timeout_ms)
			rc = -ETIMEDOUT;
		else
			rc = -EHOSTUNREACH;
		return gp_errf(err, n, rc, "%s: %s%s", rq->kind, resp->err,
			       rc == -ETIMEDOUT ? " (no answer in time)"
			       : rc == -EHOSTUNREACH ? " (engine unreachable)" : "");
	}
	for (const int *a = accept; *a; a++)
		if (resp->status == *a)
			return 0;
	if (resp->status >= 200 && resp->status < 400) {
		rc = -EPROTO;
	} else {
		for (size_t i = 0; i < sizeof status_rc / sizeof *status_rc; i++)
			if (status_rc[i].status == resp->status)
				rc = status_rc[i].rc;
	}
	excerpt(resp, what, sizeof what);
	gp_errf(err, n, rc, "%s: %s %s: HTTP %ld: %s%s%s", rq->kind, rq->method, rq->url,
		resp->status, what, rc == -ENOENT && rq->hint_404 ? "; " : "",
		rc == -ENOENT && rq->hint_404 ? rq->hint_404 : "");
	gp_client_free(resp);
	return rc;
}

json_t *gp__swap_json(const struct gp__swap_req *rq, const struct gp_client_resp *resp,
		      char *err, size_t n)
{
	json_error_t je;
	json_t *doc = json_loadb(resp->body ? resp->body : "", resp->len, JSON_REJECT_DUPLICATES,
				 &je);

	if (!doc) {
		char why[200];
		snprintf(why, sizeof why, "the answer is not JSON (%s)", je.text);
		gp__swap_bad_answer(rq, err, n, why);
	}
	return doc;
}

int gp__swap_bad_answer(const struct gp__swap_req *rq, char *err, size_t n, const char *what)
{
	gp_errf(err, n, -EPROTO, "%s: %s %s: %s", rq->kind, rq->method, rq->url, what);
	/* jansson quotes the bytes it choked on: keep the message ASCII. */
	for (size_t i = 0; err && i < n && err[i]; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] >= 0x7f)
			err[i] = '?';
	return -EPROTO;
}
