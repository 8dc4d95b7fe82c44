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
#include "net/addr.h"

/* Accepts paused after the process ran out of descriptors (or memory)
 * resume after this long; the pause is logged once, not per attempt. */
#define ACCEPT_PAUSE_MS 500

struct gp_http {
	struct evhttp *ev;
	struct evhttp_bound_socket *sock;
	const struct gp_http_route *routes;
	void *arg;
	int port;
	struct event *resume;      /* re-enables accepts after a pause */
	uint64_t paused_logged_ns; /* when a pause was last logged */
	struct gp_http *next;      /* in `servers` */
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

/* Dispatch one request through the route table. */
static void dispatch(struct evhttp_request *ev, void *arg)
{
	struct gp_http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	struct gp_http_req rq = {.ev = ev};
	const char *method = method_name(evhttp_request_get_command(ev));
	int path_known = 0;

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

static void resume_accepts(evutil_socket_t fd, short what, void *arg)
{
	struct gp_http *h = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(evhttp_bound_socket_get_listener(h->sock));
}

/* accept(2) failed.  Out of descriptors or memory, the connection waits in
 * the backlog and the socket stays readable: accepting again at once would
 * spin at full CPU and log every attempt.  Pause accepts for a while
 * instead, and say so at most once a minute. */
static void accept_error(struct evconnlistener *l, void *arg)
{
	struct gp_http *h;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
	uint64_t now = gp_now_ns();

	(void)arg;
	pthread_mutex_lock(&servers_lock);
	for (h = servers; h && evhttp_bound_socket_get_listener(h->sock) != l; h = h->next)
		;
	pthread_mutex_unlock(&servers_lock);
	if (!h)
		return;
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		gp_warn("http: accept: %s", strerror(err));
		return;
	}
	evconnlistener_disable(l);
	if (!h->paused_logged_ns || now - h->paused_logged_ns >= 60000000000ULL) {
		gp_warn("http: accept: %s; pausing new connections (retrying every %d ms)",
			strerror(err), ACCEPT_PAUSE_MS);
		h->paused_logged_ns = now;
	}
	event_add(h->resume, &tv);
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
	h->ev = evhttp_new(base);
	if (!h->ev) {
		free(h);
		return -ENOMEM;
	}
	evhttp_set_max_body_size(h->ev, (ev_ssize_t)o->max_body);
	evhttp_set_max_headers_size(h->ev, (ev_ssize_t)(o->max_headers ? o->max_headers : 16384));
	evhttp_set_timeout(h->ev, o->timeout_s > 0 ? o->timeout_s : 30);
	evhttp_set_allowed_methods(h->ev, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						  EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
						  EVHTTP_REQ_HEAD);
	evhttp_set_gencb(h->ev, dispatch, h);
	if (o->bevcb)
		evhttp_set_bevcb(h->ev, o->bevcb, o->bevcb_arg);
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
	h->resume = evtimer_new(base, resume_accepts, h);
	if (!h->resume) {
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
	evhttp_free(h->ev);
	event_free(h->resume);
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
	memcpy(buf, dec, len + 1);
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
