/* http.h - the HTTP/1.1 server every gpupool daemon answers on.
 *
 * A thin layer over libevent's evhttp: a table of routes (method + path,
 * exact or a prefix ending in '*'), hard caps on header and body sizes
 * (431 / 413 before a handler sees anything), JSON replies, and 404/405
 * for what no route takes.  What no handler should have to think of is
 * done here for every daemon: a request with two Content-Length headers
 * is a 400 that closes the connection, error messages are made valid
 * UTF-8 (a path of raw bytes is a 404, not a 500), replies are sent
 * without Nagle's delay, and running out of descriptors pauses accepts
 * instead of spinning on them.  Handlers run on the event loop's thread, one
 * at a time, and must reply exactly once.
 */
#ifndef GP_NET_HTTP_H
#define GP_NET_HTTP_H

#include <jansson.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
struct gp_http;     /* a listening server */
struct gp_http_req; /* one request; valid until its handler replies */

typedef void (*gp_http_handler)(struct gp_http_req *rq, void *arg);

struct gp_http_route {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* "/filter", or a prefix ending in a star */
	gp_http_handler fn;
};

struct gp_http_opts {
	const char *listen;  /* "127.0.0.1:8080", "[::1]:8080", ":8080" (every
	                        address); port 0 picks a free one */
	size_t max_body;     /* larger request bodies are refused with 413 */
	size_t max_headers;  /* more header bytes than this: 431 */
	int timeout_s;       /* a client silent this long is dropped */
	/* Optional: makes each accepted connection's bufferevent, e.g. TLS
	 * over the socket (evhttp_set_bevcb; evhttp sets the descriptor).
	 * NULL: plain HTTP.  It must not return NULL: evhttp would then
	 * serve that connection in plain text. */
	struct bufferevent *(*bevcb)(struct event_base *base, void *arg);
	void *bevcb_arg;     /* passed to bevcb */
};

/* Listen and serve on `base`.  `routes` ends with a zeroed entry and must
 * outlive the server; `arg` is passed to every handler.  Returns 0, or a
 * negative errno (-EINVAL for a listen address that does not parse). */
int gp_http_start(struct gp_http **out, struct event_base *base, const struct gp_http_opts *o,
		  const struct gp_http_route *routes, void *arg) __attribute__((warn_unused_result));

/* The port the server really listens on (useful with port 0). */
int gp_http_port(const struct gp_http *h);

void gp_http_stop(struct gp_http *h);

/* --- the request ---------------------------------------------------------- */

const char *gp_http_method(const struct gp_http_req *rq);

/* The path as sent (still percent-encoded), without the query. */
const char *gp_http_path(const struct gp_http_req *rq);

/* Path segment i (0-based; "/a/b%2Fc" has "a" and "b/c"), percent-decoded
 * into buf.  Returns buf, or NULL if there is no such segment or it does
 * not fit. */
const char *gp_http_segment(const struct gp_http_req *rq, unsigned i, char *buf, size_t n);

/* A query parameter, decoded, or NULL. */
const char *gp_http_query(struct gp_http_req *rq, const char *key);

/* A request header, or NULL. */
const char *gp_http_header(const struct gp_http_req *rq, const char *name);

/* The connection's socket (diagnostics: its peer, its options), or -1. */
int gp_http_conn_fd(const struct gp_http_req *rq);

/* The body, NUL-terminated (it may contain NULs before *len). */
const char *gp_http_body(struct gp_http_req *rq, size_t *len);

/* The body parsed as JSON; NULL with a message in err when it is not. */
json_t *gp_http_body_json(struct gp_http_req *rq, char *err, size_t n);

/* --- the reply (exactly one per request) ---------------------------------- */

void gp_http_reply(struct gp_http_req *rq, int status, const char *content_type,
		   const char *body, size_t len);

/* The same with a body from malloc, which the reply takes over (and
 * frees once sent): no copy of a large body. */
void gp_http_reply_owned(struct gp_http_req *rq, int status, const char *content_type,
			 char *body, size_t len);

/* Reply with `doc` serialised (compact); takes ownership of doc. */
void gp_http_reply_json(struct gp_http_req *rq, int status, json_t *doc);

/* Reply {"error": "<message>"} with `status`. */
void gp_http_reply_error(struct gp_http_req *rq, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
