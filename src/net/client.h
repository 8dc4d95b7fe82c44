/* client.h - HTTP requests to the services gpupool talks to: the
 * Kubernetes API, the RabbitMQ management API.
 *
 * One blocking call per request on libcurl: TLS trusting a CA (file or
 * in-memory PEM) or not verified, client certificates, bearer-token or
 * basic authentication, a time limit and a hard cap on the response body.
 * Thread-safe once gp_client_init has run; each thread keeps its
 * connections open between requests.
 */
#ifndef GP_NET_CLIENT_H
#define GP_NET_CLIENT_H

#include <stddef.h>

struct gp_client_opts {
	long timeout_ms;      /* whole request; 0 = 10 s */
	long idle_ms;         /* a stream: silence that drops it; 0 = timeout_ms */
	size_t max_body;      /* larger responses fail; 0 = 8 MiB */
	const char *ca_file;  /* TLS trust; NULL = the system's ... */
	const char *ca_pem;   /* ... or CA certificates in PEM, in memory */
	size_t ca_pem_len;
	const char *cert_pem; /* TLS client certificate (PEM, in memory) ... */
	size_t cert_pem_len;
	const char *key_pem;  /* ... and its private key (PEM, unencrypted) */
	size_t key_pem_len;
	int insecure;         /* skip TLS verification (tests, never prod) */
	const char *bearer;   /* "Authorization: Bearer <token>", any length */
	const char *user;     /* basic authentication, with password */
	const char *password;
};

struct gp_client_resp {
	long status;      /* HTTP status; 0 if none came */
	char *body;       /* NUL-terminated; owned, free with gp_client_free */
	size_t len;
	char err[256];    /* why the request failed, when it did */
};

/* Call once, before any thread makes a request (libcurl's global init). */
int gp_client_init(void);

/* method + url, optional extra headers (NULL-terminated "Name: value"
 * list) and body.  Returns 0 when a response came (whatever its status),
 * -1 when none did (refused, timed out, too large, TLS): see resp->err. */
int gp_client_request(const char *method, const char *url, const char *const *headers,
		      const char *body, size_t body_len, const struct gp_client_opts *o,
		      struct gp_client_resp *resp) __attribute__((warn_unused_result));

/* GET a stream of lines (a Kubernetes watch): each complete line goes to
 * on_line as it arrives; on_line returning nonzero ends the stream.  The
 * stream may last as long as the server keeps it; it is dropped when
 * nothing arrives for o->idle_ms (TCP keep-alive probes find a dead peer
 * sooner), and ends within about a second once
 * *cancel (read atomically; may be NULL) becomes nonzero.  A line longer
 * than o->max_body fails it.  Returns 0 when a response came: 2xx, its
 * lines delivered (resp->body is then empty), or any other status with
 * its body in resp as for gp_client_request; -1 when none did. */
int gp_client_stream(const char *url, const char *const *headers,
		     const struct gp_client_opts *o,
		     int (*on_line)(const char *line, size_t len, void *arg), void *arg,
		     const int *cancel, struct gp_client_resp *resp)
	__attribute__((warn_unused_result));

void gp_client_free(struct gp_client_resp *resp);

/* Percent-encode s for use in a URL path segment or query value. Returns
 * a new string (free it), or NULL. */
char *gp_client_escape(const char *s);

#endif
