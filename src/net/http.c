/* http.c - see http.h. */
#include "net/http.h"

#include <errno.h>
#include <pthread.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <sys/queue.h>
#include <event2/util.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "net/accept.h"
#include "net/addr.h"

struct conn;

struct gp_http {
	struct evhttp *ev;
	struct evhttp_bound_socket *sock;
	const struct gp_http_route *routes;
	void *arg;
	int port;
	struct gp_accept_pause pause; /* accepts, when out of descriptors */
	struct gp_http *next;      /* in `servers` */
	struct event_base *base;
	/* The caller's bevcb (NULL: plain sockets); ours wraps it. */
	struct bufferevent *(*bevcb)(struct event_base *base, void *arg);
	void *bevcb_arg;
	struct timeval request_tv; /* the request deadline */
	struct conn **byfd;        /* watched connections by descriptor */
	int nbyfd;                 /* slots in byfd */
	int unwatched_logged;      /* said once that one could not be watched */
};

/* The request deadline of one connection.  evhttp's own timeout restarts
 * at every byte read, so it bounds silence, not a request; this bounds a
 * request.  It watches the bytes the connection's bufferevent puts in its
 * input buffer (after TLS, if any: an evbuffer callback, so no layer is
 * added and nothing is copied), arms a timer at the first byte of a
 * request, disarms it when evhttp hands the complete request to dispatch,
 * and listens again once the reply is sent.  Made at the connection's
 * first byte, freed by evhttp's close callback. */
enum conn_state {
	CONN_IDLE,    /* between requests: only the idle timeout applies */
	CONN_READING, /* a request has begun: the deadline runs */
	CONN_BUSY,    /* read whole, its reply not yet sent */
};

struct conn {
	struct gp_http *h;
	struct bufferevent *bev;
	struct evhttp_connection *evcon;
	struct event *deadline;
	int fd;
	enum conn_state state;
};

/* The servers of the process, for the accept error callback: libevent
 * hands it the listener and evhttp's own argument, not ours. */
static struct gp_http *servers;
static pthread_mutex_t servers_lock = PTHREAD_MUTEX_INITIALIZER;

struct gp_http_req {
	struct evhttp_request *ev;
	const char *path;          /* raw path, owned by the parsed URI */
	struct evkeyvalq query;    /* parsed lazily */
	int query_parsed;
	char *body;                /* copied and NUL-terminated lazily */
	size_t body_len;
	int heap;                  /* from gp_http_defer: freed by the reply */
};

static const char *method_name(enum evhttp_cmd_type c)
{
	static const struct {
		enum evhttp_cmd_type c;
		const char *name;
	} names[] = {
		{EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_POST, "POST"},
		{EVHTTP_REQ_HEAD, "HEAD"},     {EVHTTP_REQ_PUT, "PUT"},
		{EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_OPTIONS, "OPTIONS"},
		{EVHTTP_REQ_TRACE, "TRACE"},   {EVHTTP_REQ_CONNECT, "CONNECT"},
		{EVHTTP_REQ_PATCH, "PATCH"},
	};

	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (names[i].c == c)
			return names[i].name;
	return "?";
}

static int path_matches(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);

	if (n && pattern[n - 1] == '*')
		return strncmp(pattern, path, n - 1) == 0;
	return strcmp(pattern, path) == 0;
}

/* How many times the request carries header `name`.  evhttp reads the
 * body by the first Content-Length; a second, different one is how a
 * request is smuggled past a proxy that read the other. */
static int header_count(struct evhttp_request *ev, const char *name)
{
	const struct evkeyval *kv;
	int n = 0;

	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(ev), next)
		n += evutil_ascii_strcasecmp(kv->key, name) == 0;
	return n;
}

/* --- the request deadline ------------------------------------------------- */

static void start_deadline(struct conn *c)
{
	c->state = CONN_READING;
	evtimer_add(c->deadline, &c->h->request_tv);
}

/* The deadline passed before the request was read whole: close the
 * connection (evhttp frees the unfinished request, and its close callback
 * frees c). */
static void deadline_hit(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state != CONN_READING)
		return;
	gp_debug("http: a request on descriptor %d not complete after %ld s; closing it", c->fd,
		 (long)c->h->request_tv.tv_sec);
	evhttp_connection_free(c->evcon);
}

/* Bytes came in: the first after a reply begins the next request. */
static void more_bytes(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	(void)in;
	if (info->n_added && c->state == CONN_IDLE)
		start_deadline(c);
}

/* The reply went out whole; bytes already here (pipelined) begin the next
 * request now. */
static void reply_sent(struct evhttp_request *ev, void *arg)
{
	struct conn *c = arg;

	(void)ev;
	c->state = CONN_IDLE;
	if (evbuffer_get_length(bufferevent_get_input(c->bev)))
		start_deadline(c);
}

/* evhttp closes the connection: forget it. */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct conn *c = arg;

	(void)evcon;
	if (c->fd < c->h->nbyfd && c->h->byfd[c->fd] == c)
		c->h->byfd[c->fd] = NULL;
	evbuffer_remove_cb(bufferevent_get_input(c->bev), more_bytes, c);
	event_free(c->deadline);
	free(c);
}

static struct gp_http *server_of(const struct evhttp *ev)
{
	struct gp_http *h;

	pthread_mutex_lock(&servers_lock);
	for (h = servers; h && h->ev != ev; h = h->next)
		;
	pthread_mutex_unlock(&servers_lock);
	return h;
}

/* Index c by its descriptor.  Returns 0 or -ENOMEM. */
static int byfd_put(struct gp_http *h, struct conn *c)
{
	if (c->fd >= h->nbyfd) {
		int n = h->nbyfd ? h->nbyfd : 64;
		struct conn **t;
		while (n <= c->fd)
			n *= 2;
		t = realloc(h->byfd, (size_t)n * sizeof *t);
		if (!t)
			return -ENOMEM;
		memset(t + h->nbyfd, 0, (size_t)(n - h->nbyfd) * sizeof *t);
		h->byfd = t;
		h->nbyfd = n;
	}
	h->byfd[c->fd] = c;
	return 0;
}

/* The first bytes of a connection (an evbuffer callback on its input, set
 * by new_bev): begin watching it, and its first request's deadline.  Done
 * here rather than at accept, because evhttp gives no hook after it has
 * made the connection, and a connection that never sends a byte must cost
 * nothing (health probes connect and close).  evhttp passes the
 * connection as its bufferevent callbacks' argument (libevent 2.0 to
 * 2.2); it is checked against the bufferevent before use. */
static void first_bytes(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct bufferevent *bev = arg;
	struct evhttp_connection *evcon;
	struct gp_http *h;
	struct conn *c;
	void *cbarg = NULL;

	if (!info->n_added)
		return;
	evbuffer_remove_cb(in, first_bytes, bev); /* once, whatever follows */
	bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
	evcon = cbarg;
	if (!evcon || evhttp_connection_get_bufferevent(evcon) != bev)
		return;
	h = server_of(evhttp_connection_get_server(evcon));
	if (!h)
		return;
	c = calloc(1, sizeof *c);
	if (!c)
		goto fail;
	c->h = h;
	c->bev = bev;
	c->evcon = evcon;
	c->fd = bufferevent_getfd(bev);
	c->deadline = evtimer_new(h->base, deadline_hit, c);
	if (c->fd < 0 || !c->deadline || byfd_put(h, c) != 0)
		goto fail;
	if (!evbuffer_add_cb(in, more_bytes, c)) {
		h->byfd[c->fd] = NULL;
		goto fail;
	}
	evhttp_connection_set_closecb(evcon, conn_closed, c);
	start_deadline(c);
	return;
fail:
	if (!h->unwatched_logged) {
		gp_warn("http: cannot watch a connection (out of memory?): it is served without a request deadline");
		h->unwatched_logged = 1;
	}
	if (c && c->deadline)
		event_free(c->deadline);
	free(c);
}

/* evhttp's bevcb: the caller's bufferevent (or a plain socket one, as
 * evhttp would make), with first_bytes watching what arrives. */
static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
	struct gp_http *h = arg;
	struct bufferevent *bev = h->bevcb ? h->bevcb(base, h->bevcb_arg)
					   : bufferevent_socket_new(base, -1, 0);

	/* Without the callback (out of memory) it is served unwatched. */
	if (bev)
		(void)evbuffer_add_cb(bufferevent_get_input(bev), first_bytes, bev);
	return bev;
}

/* The watched connection a request came on, or NULL. */
static struct conn *conn_of(const struct gp_http *h, struct evhttp_request *ev)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	int fd = bev ? bufferevent_getfd(bev) : -1;

	if (fd < 0 || fd >= h->nbyfd || !h->byfd[fd] || h->byfd[fd]->evcon != evcon)
		return NULL;
	return h->byfd[fd];
}

/* Dispatch one request through the route table. */
static void dispatch(struct evhttp_request *ev, void *arg)
{
	struct gp_http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	struct gp_http_req rq = {.ev = ev};
	const char *method = method_name(evhttp_request_get_command(ev));
	int path_known = 0;
	struct conn *c = conn_of(h, ev);

	/* Read whole: the deadline stops; the handler's time is its own. */
	if (c) {
		evtimer_del(c->deadline);
		c->state = CONN_BUSY;
		evhttp_request_set_on_complete_cb(ev, reply_sent, c);
	}
	rq.path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!rq.path || !*rq.path)
		rq.path = "/";
	if (header_count(ev, "Content-Length") > 1) {
		/* Whatever followed the first length is not a request of its
		 * own: answer and close the connection. */
		evhttp_add_header(evhttp_request_get_output_headers(ev), "Connection", "close");
		gp_http_reply_error(&rq, 400, "more than one Content-Length header");
		goto out;
	}
	for (const struct gp_http_route *r = h->routes; r->path; r++) {
		if (!path_matches(r->path, rq.path))
			continue;
		path_known = 1;
		if (strcmp(r->method, method) == 0) {
			r->fn(&rq, h->arg);
			goto out;
		}
	}
	if (path_known)
		gp_http_reply_error(&rq, 405, "method %s not allowed on %s", method, rq.path);
	else
		gp_http_reply_error(&rq, 404, "no such resource: %s", rq.path);
out:
	if (rq.query_parsed)
		evhttp_clear_headers(&rq.query);
	free(rq.body);
}

struct gp_http_req *gp_http_defer(struct gp_http_req *rq)
{
	struct gp_http_req *d = calloc(1, sizeof *d);

	if (!d)
		return NULL;
	/* The body moves over; the parsed query does not (a TAILQ head
	 * cannot be copied): the copy parses it again if asked. */
	d->ev = rq->ev;
	d->path = rq->path;
	d->body = rq->body;
	d->body_len = rq->body_len;
	d->heap = 1;
	rq->body = NULL;
	return d;
}

/* After the reply: a deferred request is freed with what it holds. */
static void done(struct gp_http_req *rq)
{
	if (!rq->heap)
		return;
	if (rq->query_parsed)
		evhttp_clear_headers(&rq->query);
	free(rq->body);
	free(rq);
}

/* accept(2) failed (net/accept.h).  The callback gets evhttp's argument,
 * not ours: find the server by its listener. */
static void accept_error(struct evconnlistener *l, void *arg)
{
	struct gp_http *h;
	int err = EVUTIL_SOCKET_ERROR();

	(void)arg;
	pthread_mutex_lock(&servers_lock);
	for (h = servers; h && h->pause.lis != l; h = h->next)
		;
	pthread_mutex_unlock(&servers_lock);
	if (h)
		gp_accept_pause_error(&h->pause, err);
}

int gp_http_start(struct gp_http **out, struct event_base *base, const struct gp_http_opts *o,
		  const struct gp_http_route *routes, void *arg)
{
	int one = 1;
	char host[256];
	struct gp_http *h;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int port, rc;

	if ((rc = gp_addr_split(o->listen, host, sizeof host, &port)))
		return rc;
	h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->routes = routes;
	h->arg = arg;
	h->base = base;
	h->bevcb = o->bevcb;
	h->bevcb_arg = o->bevcb_arg;
	h->request_tv.tv_sec = o->request_timeout_s > 0 ? o->request_timeout_s
							: GP_HTTP_REQUEST_TIMEOUT_S;
	h->ev = evhttp_new(base);
	if (!h->ev) {
		free(h);
		return -ENOMEM;
	}
	evhttp_set_max_body_size(h->ev, (ev_ssize_t)o->max_body);
	evhttp_set_max_headers_size(h->ev, (ev_ssize_t)(o->max_headers ? o->max_headers : 16384));
	/* evhttp's timeout restarts at each byte read or written: it is the
	 * idle timeout; the request deadline is first_bytes' work. */
	evhttp_set_timeout(h->ev, o->idle_timeout_s > 0 ? o->idle_timeout_s : GP_HTTP_IDLE_TIMEOUT_S);
	evhttp_set_allowed_methods(h->ev, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						  EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
						  EVHTTP_REQ_HEAD);
	evhttp_set_gencb(h->ev, dispatch, h);
	evhttp_set_bevcb(h->ev, new_bev, h);
	h->sock = evhttp_bind_socket_with_handle(h->ev, host, (ev_uint16_t)port);
	if (!h->sock) {
		rc = errno ? -errno : -EADDRNOTAVAIL;
		evhttp_free(h->ev);
		free(h);
		return rc;
	}
	/* Accepted sockets inherit TCP_NODELAY from the listener (Linux): a
	 * reply larger than one segment must not wait for the client's
	 * delayed ACK (~40 ms on a kept-alive connection). */
	if (setsockopt(evhttp_bound_socket_get_fd(h->sock), IPPROTO_TCP, TCP_NODELAY, &one,
		       sizeof one) != 0)
		gp_warn("http: TCP_NODELAY: %s", strerror(errno));
	if (gp_accept_pause_init(&h->pause, base, evhttp_bound_socket_get_listener(h->sock),
				 "http")) {
		evhttp_free(h->ev);
		free(h);
		return -ENOMEM;
	}
	pthread_mutex_lock(&servers_lock);
	h->next = servers;
	servers = h;
	pthread_mutex_unlock(&servers_lock);
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(h->sock), accept_error);
	if (getsockname(evhttp_bound_socket_get_fd(h->sock), (struct sockaddr *)&ss, &sl) == 0)
		h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	*out = h;
	return 0;
}

int gp_http_port(const struct gp_http *h)
{
	return h->port;
}

void gp_http_stop(struct gp_http *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&servers_lock);
	for (struct gp_http **p = &servers; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
	pthread_mutex_unlock(&servers_lock);
	evhttp_free(h->ev); /* closes the connections: conn_closed for each */
	gp_accept_pause_fini(&h->pause);
	free(h->byfd);
	free(h);
}

int gp_http_conn_fd(const struct gp_http_req *rq)
{
	struct evhttp_connection *c = evhttp_request_get_connection(rq->ev);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;

	return bev ? bufferevent_getfd(bev) : -1;
}

const char *gp_http_method(const struct gp_http_req *rq)
{
	return method_name(evhttp_request_get_command(rq->ev));
}

const char *gp_http_path(const struct gp_http_req *rq)
{
	return rq->path;
}

const char *gp_http_segment(const struct gp_http_req *rq, unsigned i, char *buf, size_t n)
{
	const char *p = rq->path;
	size_t len;
	char *dec;

	while (*p == '/')
		p++;
	for (; i; i--) {
		p = strchr(p, '/');
		if (!p)
			return NULL;
		p++;
	}
	len = strcspn(p, "/");
	if (len == 0 || len > 3 * n) /* cannot decode to fit */
		return NULL;
	{
		char *raw = strndup(p, len);
		dec = raw ? evhttp_uridecode(raw, 0, &len) : NULL;
		free(raw);
	}
	if (!dec)
		return NULL;
	if (len >= n || memchr(dec, '\0', len)) {
		free(dec);
		return NULL;
	}
	/* Not UTF-8 ("%ff"): gp_utf8_fix would change it. */
	memcpy(buf, dec, len + 1);
	if (strcmp(gp_utf8_fix(buf), dec) != 0) {
		free(dec);
		return NULL;
	}
	free(dec);
	return buf;
}

const char *gp_http_query(struct gp_http_req *rq, const char *key)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(rq->ev);

	if (!rq->query_parsed) {
		const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
		TAILQ_INIT(&rq->query);
		if (q && evhttp_parse_query_str(q, &rq->query) != 0)
			evhttp_clear_headers(&rq->query);
		rq->query_parsed = 1;
	}
	return evhttp_find_header(&rq->query, key);
}

const char *gp_http_header(const struct gp_http_req *rq, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(rq->ev), name);
}

const char *gp_http_body(struct gp_http_req *rq, size_t *len)
{
	if (!rq->body) {
		struct evbuffer *in = evhttp_request_get_input_buffer(rq->ev);
		size_t n = evbuffer_get_length(in);
		rq->body = malloc(n + 1);
		if (!rq->body) {
			*len = 0;
			return "";
		}
		evbuffer_copyout(in, rq->body, n);
		rq->body[n] = '\0';
		rq->body_len = n;
	}
	*len = rq->body_len;
	return rq->body;
}

json_t *gp_http_body_json(struct gp_http_req *rq, char *err, size_t n)
{
	size_t len;
	const char *body = gp_http_body(rq, &len);
	json_error_t je;
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);

	if (!doc)
		snprintf(err, n, "body is not JSON: %s (line %d, column %d)", je.text, je.line,
			 je.column);
	return doc;
}

void gp_http_reply(struct gp_http_req *rq, int status, const char *content_type,
		   const char *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();

	if (content_type)
		evhttp_add_header(evhttp_request_get_output_headers(rq->ev), "Content-Type",
				  content_type);
	if (out && len)
		evbuffer_add(out, body, len);
	evhttp_send_reply(rq->ev, status, NULL, out);
	if (out)
		evbuffer_free(out);
	done(rq);
}

static void free_body(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

void gp_http_reply_owned(struct gp_http_req *rq, int status, const char *content_type,
			 char *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();

	if (content_type)
		evhttp_add_header(evhttp_request_get_output_headers(rq->ev), "Content-Type",
				  content_type);
	/* By reference: a large body is neither copied nor allocated twice;
	 * libevent frees it once it is written. */
	if (!out || !len || evbuffer_add_reference(out, body, len, free_body, NULL) != 0)
		free(body);
	evhttp_send_reply(rq->ev, status, NULL, out);
	if (out)
		evbuffer_free(out);
	done(rq);
}

void gp_http_reply_json(struct gp_http_req *rq, int status, json_t *doc)
{
	char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	if (!s) {
		json_decref(doc);
		gp_http_reply(rq, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
		return;
	}
	json_decref(doc);
	gp_http_reply_owned(rq, status, "application/json", s, strlen(s));
}

void gp_http_reply_error(struct gp_http_req *rq, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* A message may quote what the client sent (a path of raw bytes) or
	 * be cut by the buffer mid-character: JSON takes only UTF-8. */
	gp_http_reply_json(rq, status, json_pack("{s:s}", "error", gp_utf8_fix(msg)));
}
