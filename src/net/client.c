/* client.c - see client.h. */
#include "net/client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS 10000L
#define DEFAULT_MAX_BODY (8u << 20)

struct sink {
	struct gp_client_resp *r;
	size_t max;
	int overflow;
};

static size_t collect(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	char *grown;

	if (s->r->len + n > s->max) {
		s->overflow = 1;
		return 0; /* makes curl fail the transfer */
	}
	grown = realloc(s->r->body, s->r->len + n + 1);
	if (!grown)
		return 0;
	memcpy(grown + s->r->len, data, n);
	s->r->body = grown;
	s->r->len += n;
	s->r->body[s->r->len] = '\0';
	return n;
}

int gp_client_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* One easy handle per thread, kept between requests: its connection cache
 * keeps the connection (and the TLS session) to the API server alive, so
 * a bind's half-dozen calls do not each pay a TCP and TLS handshake.  The
 * key's destructor cleans up when a worker thread exits. */
static pthread_key_t handle_key;
static pthread_once_t handle_once = PTHREAD_ONCE_INIT;
static int handle_key_ok;

static void handle_free(void *h)
{
	curl_easy_cleanup(h);
}

static void handle_key_make(void)
{
	handle_key_ok = pthread_key_create(&handle_key, handle_free) == 0;
}

static CURL *thread_handle(void)
{
	CURL *c;

	pthread_once(&handle_once, handle_key_make);
	if (!handle_key_ok)
		return curl_easy_init();
	if ((c = pthread_getspecific(handle_key))) {
		curl_easy_reset(c); /* options go; connections stay */
		return c;
	}
	if ((c = curl_easy_init()) && pthread_setspecific(handle_key, c)) {
		curl_easy_cleanup(c);
		return NULL;
	}
	return c;
}

static void handle_done(CURL *c)
{
	if (!handle_key_ok)
		curl_easy_cleanup(c);
}

/* A stream's receiver: whole lines to the caller, or (an answer that is
 * not 2xx) the body into the response as usual. */
struct lines {
	CURL *c;
	struct sink *sink;
	int (*on_line)(const char *line, size_t len, void *arg);
	void *arg;
	const int *cancel;
	char *buf;           /* the line being received */
	size_t len, cap;
	int status_known, ok, stopped;
};

static size_t split(char *data, size_t size, size_t nmemb, void *arg)
{
	struct lines *l = arg;
	size_t n = size * nmemb;

	if (!l->status_known) {
		long st = 0;
		curl_easy_getinfo(l->c, CURLINFO_RESPONSE_CODE, &st);
		l->ok = st >= 200 && st < 300;
		l->status_known = 1;
	}
	if (!l->ok)
		return collect(data, size, nmemb, l->sink);
	for (size_t i = 0; i < n; i++) {
		if (data[i] == '\n') {
			if (l->len && l->on_line(l->buf ? l->buf : "", l->len, l->arg)) {
				l->stopped = 1;
				return 0;
			}
			l->len = 0;
			continue;
		}
		if (l->len + 2 > l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 4096;
			char *g;
			if (l->len + 2 > l->sink->max || !(g = realloc(l->buf, cap))) {
				l->sink->overflow = 1; /* one line over the cap */
				return 0;
			}
			l->buf = g;
			l->cap = cap;
		}
		l->buf[l->len++] = data[i];
		l->buf[l->len] = '\0';
	}
	return n;
}

/* Called about once a second while a stream is open: a nonzero *cancel
 * ends it. */
static int check_cancel(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const int *cancel = arg;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED);
}

static int perform(const char *method, const char *url, const char *const *headers,
		   const char *body, size_t body_len, const struct gp_client_opts *o,
		   struct gp_client_resp *r, struct lines *stream)
{
	struct gp_client_opts none = {0};
	struct sink sink = {.r = r};
	struct curl_slist *hl = NULL;
	char *auth = NULL;
	CURL *c;
	CURLcode cc;
	int rc = -1;

	if (!o)
		o = &none;
	memset(r, 0, sizeof *r);
	sink.max = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
	c = thread_handle();
	if (!c) {
		snprintf(r->err, sizeof r->err, "out of memory");
		return -1;
	}
	for (; headers && *headers; headers++)
		hl = curl_slist_append(hl, *headers);
	if (o->bearer) {
		/* Tokens (OIDC, service accounts) can be long: no fixed buffer. */
		if (asprintf(&auth, "Authorization: Bearer %s", o->bearer) < 0) {
			snprintf(r->err, sizeof r->err, "out of memory");
			goto out;
		}
		hl = curl_slist_append(hl, auth);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	if (stream) {
		/* No limit on the whole: a stream is as long as the server
		 * keeps it.  A silent one is dropped after the timeout. */
		stream->c = c;
		stream->sink = &sink;
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, split);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, stream);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
				 o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
				 (o->idle_ms ? o->idle_ms
					     : o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS) /
						 1000 +
					 1);
		curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 15L);
		curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 5L);
		if (stream->cancel) {
			curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, check_cancel);
			curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)stream->cancel);
			curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		}
	} else {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
				 o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS);
	}
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	}
	if (o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	if (o->ca_pem) {
		struct curl_blob b = {(void *)o->ca_pem, o->ca_pem_len, CURL_BLOB_COPY};
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
	}
	if (o->cert_pem && o->key_pem) {
		struct curl_blob cb = {(void *)o->cert_pem, o->cert_pem_len, CURL_BLOB_COPY};
		struct curl_blob kb = {(void *)o->key_pem, o->key_pem_len, CURL_BLOB_COPY};
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cb);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
		curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &kb);
	}
	if (o->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (o->user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, o->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, o->password ? o->password : "");
	}
	cc = curl_easy_perform(c);
	if (stream && (stream->stopped || cc == CURLE_ABORTED_BY_CALLBACK))
		cc = CURLE_OK; /* ended by us: what came is the answer */
	if (cc == CURLE_OK || (stream && cc == CURLE_OPERATION_TIMEDOUT && stream->ok)) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
		if (!r->body) {
			r->body = calloc(1, 1);
			if (!r->body) {
				snprintf(r->err, sizeof r->err, "out of memory");
				goto out;
			}
		}
		rc = 0;
	} else if (sink.overflow) {
		snprintf(r->err, sizeof r->err, "response from %s larger than %zu bytes", url,
			 sink.max);
	} else {
		snprintf(r->err, sizeof r->err, "%s %s: %s", method, url, curl_easy_strerror(cc));
	}
out:
	if (rc)
		gp_client_free(r);
	curl_slist_free_all(hl);
	free(auth);
	handle_done(c);
	return rc;
}

int gp_client_request(const char *method, const char *url, const char *const *headers,
		      const char *body, size_t body_len, const struct gp_client_opts *o,
		      struct gp_client_resp *r)
{
	return perform(method, url, headers, body, body_len, o, r, NULL);
}

int gp_client_stream(const char *url, const char *const *headers,
		     const struct gp_client_opts *o,
		     int (*on_line)(const char *line, size_t len, void *arg), void *arg,
		     const int *cancel, struct gp_client_resp *r)
{
	struct lines l = {.on_line = on_line, .arg = arg, .cancel = cancel};
	int rc = perform("GET", url, headers, NULL, 0, o, r, &l);

	if (rc == 0 && l.ok && l.len && !l.stopped)
		l.on_line(l.buf, l.len, arg); /* a last line without its newline */
	free(l.buf);
	return rc;
}

void gp_client_free(struct gp_client_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

char *gp_client_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0), *copy;

	if (!e)
		return NULL;
	copy = strdup(e); /* callers free with free(), not curl_free() */
	curl_free(e);
	return copy;
}
