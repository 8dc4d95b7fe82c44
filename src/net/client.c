/* client.c - see client.h. */
#include "net/client.h"

#include <curl/curl.h>
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

int gp_client_request(const char *method, const char *url, const char *const *headers,
		      const char *body, size_t body_len, const struct gp_client_opts *o,
		      struct gp_client_resp *r)
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
	c = curl_easy_init();
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
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
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
	if (cc == CURLE_OK) {
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
	curl_easy_cleanup(c);
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
