/* http.h - the HTTP/1.1 server every gpupool daemon answers on.
 *
 * A thin layer over libevent's evhttp: a table of routes (method + path,
 * exact or a prefix ending in '*'), hard caps on header and body sizes
 * (431 / 413 before a handler sees anything), JSON replies, and 404/405
 * for what no route takes.  What no handler should have to think of is
 * done here for every daemon: a request with two Content-Length headers
 * is a 400 that closes the connection, error messages are made valid
 * UTF-8 (a path of raw bytes is a 404, not a 500), replies are sent
 * without Nagle's delay, running out of descriptors pauses accepts
 * instead of spinning on them, idle kept-alive connections outlive the
 * clients' own idle limit, and a request that arrives too slowly is cut
 * off (see gp_http_opts).  Handlers run on the event loop's thread, one
 * at a time, and must reply exactly once: before they return, or later
 * (from the loop's thread) on the request gp_http_defer gives them.
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

/* Defaults for the two timeouts below.  Idle: longer than the 90 s that
 * Go's HTTP client (kube-scheduler, KEDA) keeps an idle connection, so
 * that the server never closes one just as the client sends on it (the
 * client then sees EOF and fails the request).  Request: how long a client
 * may take to send one whole request. */
#define GP_HTTP_IDLE_TIMEOUT_S 120
#define GP_HTTP_REQUEST_TIMEOUT_S 30

struct gp_http_opts {
	const char *listen;  /* "127.0.0.1:8080", "[::1]:8080", ":8080" (every
	                        address); port 0 picks a free one */
	size_t max_body;     /* larger request bodies are refused with 413 */
	size_t max_headers;  /* more header bytes than this: 431 */
	/* A connection with no request in flight that stays silent this long
	 * is closed (also the limit on a reply the client does not read).
	 * 0: GP_HTTP_IDLE_TIMEOUT_S.  Keep it above the clients' own idle
	 * limit (90 s for Go). */
	int idle_timeout_s;
	/* A request's line, headers and body must all arrive within this
	 * long of its first byte, or the connection is closed without a
	 * reply: a client trickling bytes cannot hold a connection (every
	 * byte would restart the idle timeout).  The handler's own time does
	 * not count, and each request on a kept-alive connection has its own
	 * deadline.  Over TLS it counts from the first byte after the
	 * handshake.  0: GP_HTTP_REQUEST_TIMEOUT_S. */
	int request_timeout_s;
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
 * into buf.  Returns buf, or NULL if there is no such segment, it does
 * not fit, or it decodes to a NUL or to bytes that are not UTF-8 (no name
 * is either, and JSON could not quote it back: a handler answers 404). */
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

/* Keep the request past the handler's return, to reply later from the
 * loop's thread (after work done elsewhere).  The handler must no longer
 * use rq; the copy returned is valid until its reply, which frees it.  If
 * the client has gone meanwhile, the reply is dropped.  NULL when out of
 * memory: then reply to rq at once. */
struct gp_http_req *gp_http_defer(struct gp_http_req *rq) __attribute__((warn_unused_result));

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
