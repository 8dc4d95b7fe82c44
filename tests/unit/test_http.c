/* test_http.c - the daemons' HTTP server and client, over loopback: routes
 * (exact, prefix, 404, 405), size caps, JSON in and out, path segments and
 * queries, and the client's own limits; and what the shared layer does for
 * every daemon: two Content-Length headers are a 400 that ends the
 * connection, raw bytes in a path and messages cut mid-character are
 * answered with valid JSON (never a 500), accepted sockets have
 * TCP_NODELAY, and running out of descriptors pauses accepts with one log
 * line instead of spinning; and the timeouts: a request trickled byte by
 * byte is cut off at its deadline (plain and over TLS), while a kept-alive
 * connection idle past that deadline, a pipelined pair and a handler that
 * replies late are all served, and an idle connection is closed at the
 * idle timeout. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <time.h>

#include "common/log.h"
#include "net/client.h"
#include "net/http.h"
#include "net/loop.h"
#include "unit/fdstarve.h"

static void echo(struct gp_http_req *rq, void *arg)
{
	char err[128];
	json_t *doc = gp_http_body_json(rq, err, sizeof err);

	(void)arg;
	if (!doc) {
		gp_http_reply_error(rq, 400, "%s", err);
		return;
	}
	gp_http_reply_json(rq, 200, json_pack("{s:o,s:s?}", "got", doc, "q",
					      gp_http_query(rq, "q")));
}

static void queues(struct gp_http_req *rq, void *arg)
{
	char vhost[64], queue[64];

	(void)arg;
	if (!gp_http_segment(rq, 2, vhost, sizeof vhost) ||
	    !gp_http_segment(rq, 3, queue, sizeof queue) || gp_http_segment(rq, 4, queue, 1)) {
		gp_http_reply_error(rq, 404, "want /v1/queues/VHOST/QUEUE");
		return;
	}
	gp_http_reply_json(rq, 200, json_pack("{s:s,s:s}", "vhost", vhost, "queue", queue));
}

/* Its own connection's TCP_NODELAY. */
static void nodelay(struct gp_http_req *rq, void *arg)
{
	int v = 0;
	socklen_t n = sizeof v;

	(void)arg;
	if (getsockopt(gp_http_conn_fd(rq), IPPROTO_TCP, TCP_NODELAY, &v, &n) != 0)
		v = -1;
	gp_http_reply_json(rq, 200, json_pack("{s:i}", "nodelay", v));
}

/* An error message longer than the layer's buffer, of two-byte
 * characters, so that the cut falls inside one. */
static void long_error(struct gp_http_req *rq, void *arg)
{
	char msg[1201];

	(void)arg;
	for (int i = 0; i < 600; i++)
		memcpy(msg + 2 * i, "\xc3\xa9", 2); /* é */
	msg[1200] = '\0';
	gp_http_reply_error(rq, 422, "x%s", msg);
}

static void quit(struct gp_http_req *rq, void *arg)
{
	gp_http_reply(rq, 200, "text/plain", "bye", 3);
	gp_loop_stop(arg);
}

static const struct gp_http_route routes[] = {
	{"POST", "/echo", echo},
	{"GET", "/v1/queues/*", queues},
	{"POST", "/quit", quit},
	{"GET", "/nodelay", nodelay},
	{"GET", "/long", long_error},
	{NULL, NULL, NULL},
};

static int port;

/* Send raw bytes on a fresh connection and read until the server closes
 * it or `ms` pass; the reply goes to out (NUL-terminated).  Returns the
 * bytes read, or -1. */
static int raw(const char *req, char *out, size_t n, int ms)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;
		if (poll(&p, 1, ms) != 1 || got + 1 >= n)
			break;
		r = read(fd, out + got, n - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	out[got] = '\0';
	close(fd);
	return (int)got;
}

/* How many times `needle` occurs in `s`. */
static int count(const char *s, const char *needle)
{
	int n = 0;

	for (; (s = strstr(s, needle)); s++)
		n++;
	return n;
}

static char base_url[64];
static int checks_failed;

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "check failed: %s\n", what);
		checks_failed++;
	}
}

static long call(const char *method, const char *path, const char *body,
		 struct gp_client_resp *r, size_t max_body)
{
	char url[256];
	struct gp_client_opts o = {.timeout_ms = 5000, .max_body = max_body};

	snprintf(url, sizeof url, "%s%s", base_url, path);
	if (gp_client_request(method, url, NULL, body, body ? strlen(body) : 0, &o, r))
		return -1;
	return r->status;
}

/* The client side, on its own thread while the loop runs. */
static void *client(void *arg)
{
	struct gp_client_resp r;
	char *big;

	(void)arg;
	expect(call("POST", "/echo?q=a%20b", "{\"x\":1}", &r, 0) == 200 &&
		       strcmp(r.body, "{\"got\":{\"x\":1},\"q\":\"a b\"}") == 0,
	       "echo");
	gp_client_free(&r);
	expect(call("POST", "/echo", "{nope", &r, 0) == 400 && strstr(r.body, "not JSON"),
	       "bad JSON is 400 with a reason");
	gp_client_free(&r);
	expect(call("POST", "/echo", "{\"a\":1,\"a\":2}", &r, 0) == 400, "duplicate keys refused");
	gp_client_free(&r);
	expect(call("GET", "/v1/queues/%2F/jobs", NULL, &r, 0) == 200 &&
		       strcmp(r.body, "{\"vhost\":\"/\",\"queue\":\"jobs\"}") == 0,
	       "segments are decoded");
	gp_client_free(&r);
	expect(call("GET", "/v1/queues/x", NULL, &r, 0) == 404, "handler 404");
	gp_client_free(&r);
	expect(call("GET", "/nowhere", NULL, &r, 0) == 404 && strstr(r.body, "/nowhere"),
	       "unknown path 404");
	gp_client_free(&r);
	expect(call("GET", "/echo", NULL, &r, 0) == 405, "wrong method 405");
	gp_client_free(&r);
	big = malloc(70000);
	memset(big, ' ', 69999);
	big[69999] = '\0';
	expect(call("POST", "/echo", big, &r, 0) == 413, "body over the cap 413");
	gp_client_free(&r);
	free(big);
	expect(call("GET", "/v1/queues/%2F/jobs", NULL, &r, 8) == -1 && strstr(r.err, "larger"),
	       "client refuses a response over its cap");
	{
		char buf[8192];
		/* The body by the first length, then bytes that would be a
		 * request of their own: one 400, and the connection closed
		 * (the smuggled GET never answered). */
		expect(raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n"
			   "Content-Length: 48\r\n\r\n{\"x\":1}GET /nowhere HTTP/1.1\r\n"
			   "Host: x\r\n\r\n",
			   buf, sizeof buf, 3000) > 0 &&
			       strncmp(buf, "HTTP/1.1 400", 12) == 0 && count(buf, "HTTP/1.1") == 1 &&
			       strstr(buf, "Content-Length"),
		       "two Content-Length headers: one 400, connection closed");
		/* A segment that decodes to bytes that are not UTF-8: the
		 * handler's 404, not a 500 from JSON refusing it. */
		expect(raw("GET /v1/queues/%ff/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			   buf, sizeof buf, 3000) > 0 &&
			       strncmp(buf, "HTTP/1.1 404", 12) == 0 && strstr(buf, "{\"error\":"),
		       "a segment decoding to non-UTF-8 is a 404 with a JSON reason");
		/* Bad percent escapes are kept as they are. */
		expect(raw("GET /v1/queues/%zz/%C3%A9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			   buf, sizeof buf, 3000) > 0 &&
			       strncmp(buf, "HTTP/1.1 200", 12) == 0 &&
			       strstr(buf, "{\"vhost\":\"%zz\",\"queue\":\"\xc3\xa9\"}"),
		       "a bad percent escape is kept, a good one decoded");
		/* A control byte in the request target: refused, not a 500. */
		expect(raw("GET /a\x01b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf,
			   sizeof buf, 3000) > 0 &&
			       (strncmp(buf, "HTTP/1.1 400", 12) == 0 ||
				strncmp(buf, "HTTP/1.1 404", 12) == 0),
		       "a control byte in a path is a 400 or 404");
		/* Raw bytes that are not UTF-8 in a path: a 404 in JSON. */
		expect(raw("GET /caf\xe9\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf,
			   sizeof buf, 3000) > 0 &&
			       strncmp(buf, "HTTP/1.1 404", 12) == 0 && strstr(buf, "{\"error\":"),
		       "a raw non-UTF-8 path is a 404 with a JSON reason");
	}
	expect(call("GET", "/long", NULL, &r, 0) == 422 && strstr(r.body, "\"error\":\"x\xc3\xa9"),
	       "a message cut mid-character is still its 4xx, not a 500");
	gp_client_free(&r);
	expect(call("GET", "/nodelay", NULL, &r, 0) == 200 &&
		       strcmp(r.body, "{\"nodelay\":1}") == 0,
	       "accepted sockets have TCP_NODELAY");
	gp_client_free(&r);
	expect(call("POST", "/quit", "", &r, 0) == 200, "quit");
	gp_client_free(&r);
	return NULL;
}

static void test_server_and_client(void **state)
{
	struct gp_loop *loop = gp_loop_new();
	struct gp_http_opts o = {.listen = "127.0.0.1:0", .max_body = 65536, .idle_timeout_s = 5};
	struct gp_http *h;
	pthread_t t;

	(void)state;
	assert_non_null(loop);
	assert_int_equal(gp_client_init(), 0);
	assert_int_equal(gp_http_start(&h, gp_loop_base(loop), &o, routes, loop), 0);
	port = gp_http_port(h);
	snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", port);
	assert_int_equal(pthread_create(&t, NULL, client, NULL), 0);
	assert_int_equal(gp_loop_run(loop), 0);
	pthread_join(t, NULL);
	gp_http_stop(h);
	gp_loop_free(loop);
	assert_int_equal(checks_failed, 0);
}

/* A server out of descriptors: it pauses accepts and says so once, rather
 * than spinning on accept(2) and logging every try; once descriptors are
 * free again it serves.  The server runs in a child whose descriptor
 * limit leaves it three more; the test holds 8 connections open,
 * then lets them go. */
static void test_out_of_descriptors(void **state)
{
	int errp[2], portp[2], conns[8], status;
	char log[65536];
	size_t got = 0;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(errp), 0);
	assert_int_equal(pipe(portp), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gp_loop *loop = gp_loop_new();
		struct gp_http_opts o = {.listen = "127.0.0.1:0", .max_body = 1024, .idle_timeout_s = 5};
		struct gp_http *h;
		int p;

		dup2(errp[1], 2);
		close(errp[0]);
		gp_log_setup(GP_LOG_WARN, "test");
		close(portp[0]);
		alarm(20); /* never outlive the test */
		if (!loop || gp_http_start(&h, gp_loop_base(loop), &o, routes, loop))
			_exit(3);
		p = gp_http_port(h);
		if (write(portp[1], &p, sizeof p) != sizeof p)
			_exit(4);
		if (fdstarve_limit() != 0)
			_exit(5);
		_exit(gp_loop_run(loop) == 0 ? 0 : 6);
	}
	close(errp[1]);
	close(portp[1]);
	assert_int_equal(read(portp[0], &port, sizeof port), sizeof port);
	close(portp[0]);
	for (int i = 0; i < 8; i++)
		assert_true((conns[i] = fdstarve_connect(port)) >= 0);
	got = fdstarve_log(errp[0], log, sizeof log, 1500);
	for (int i = 0; i < 8; i++)
		close(conns[i]);
	usleep(700000); /* past the next retry */
	snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", port);
	{
		struct gp_client_resp r;
		long st = call("POST", "/quit", "", &r, 0);
		if (st == 200)
			gp_client_free(&r);
		if (st != 200) {
			kill(pid, SIGKILL);
			fail_msg("the server did not serve again once descriptors were free (%ld)", st);
		}
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(errp[0]);
	if (count(log, "pausing new connections") != 1)
		fail_msg("want one pause line, got %d in %zu bytes of log:\n%.2000s",
			 count(log, "pausing new connections"), got, log);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* --- timeouts ------------------------------------------------------------- */

/* The server side of the timeout tests: request deadline 1 s, idle 2 s. */
#define DEADLINE_MS 1000
#define IDLE_MS 2000

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ms_sleep(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* A reply sent later than the deadline, from a timer: the handler's time
 * is not the client's. */
static void late_reply(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gp_http_reply(arg, 200, "text/plain", "late", 4);
}

static void slow(struct gp_http_req *rq, void *arg)
{
	struct gp_http_req *d = gp_http_defer(rq);
	struct timeval tv = {1, 500000};

	if (!d) {
		gp_http_reply_error(rq, 500, "out of memory");
		return;
	}
	if (event_base_once(gp_loop_base(arg), -1, EV_TIMEOUT, late_reply, d, &tv) != 0)
		gp_http_reply_error(d, 500, "no timer");
}


static void ok(struct gp_http_req *rq, void *arg)
{
	(void)arg;
	gp_http_reply(rq, 200, "text/plain", "ok", 2);
}

/* One side of a connection, plain or TLS, for the client thread. */
struct side {
	int fd;
	SSL *ssl;
};

static int side_write(struct side *s, const char *p, size_t n)
{
	if (s->ssl)
		return SSL_write(s->ssl, p, (int)n) == (int)n ? 0 : -1;
	return send(s->fd, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Read what is there, waiting up to ms for it.  Returns bytes, 0 at the
 * end of the connection, -1 after ms with nothing. */
static int side_read(struct side *s, char *p, size_t n, int ms)
{
	struct pollfd pf = {.fd = s->fd, .events = POLLIN};
	int r;

	if (!(s->ssl && SSL_pending(s->ssl)) && poll(&pf, 1, ms) != 1)
		return -1;
	r = s->ssl ? SSL_read(s->ssl, p, (int)n) : (int)read(s->fd, p, n);
	return r > 0 ? r : 0;
}

static SSL_CTX *client_ctx;

static int side_open(struct side *s, int tls)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {5, 0};

	s->ssl = NULL;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (s->fd < 0)
		return -1;
	/* Never block a test for long, whatever the server does. */
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(s->fd, (struct sockaddr *)&a, sizeof a) != 0)
		goto fail;
	if (!tls)
		return 0;
	s->ssl = SSL_new(client_ctx);
	if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1 || SSL_connect(s->ssl) != 1)
		goto fail;
	return 0;
fail:
	if (s->ssl)
		SSL_free(s->ssl);
	s->ssl = NULL;
	close(s->fd);
	s->fd = -1;
	return -1;
}

static void side_close(struct side *s)
{
	if (s->ssl)
		SSL_free(s->ssl);
	if (s->fd >= 0)
		close(s->fd);
	s->ssl = NULL;
	s->fd = -1;
}

/* Send `req` in pieces of `piece` bytes `gap_ms` apart, then read `want`
 * replies (headers and a Content-Length body each).  Returns the last
 * one's status, or -1 (one not 200 before it, or no reply in time). */
static int exchange_n(struct side *s, const char *req, size_t piece, int gap_ms, int want)
{
	char buf[4096];
	size_t len = strlen(req), got = 0, at = 0;
	uint64_t until;
	int status = -1;

	for (size_t off = 0; off < len; off += piece) {
		size_t k = len - off < piece ? len - off : piece;
		if (off && gap_ms)
			ms_sleep(gap_ms);
		if (side_write(s, req + off, k) != 0)
			return -1;
	}
	until = now_ms() + 5000;
	while (want > 0) {
		const char *end, *cl;
		int r;
		buf[got] = '\0';
		end = strstr(buf + at, "\r\n\r\n");
		cl = strstr(buf + at, "Content-Length: ");
		if (end && cl && cl < end && got >= (size_t)(end + 4 - buf) + (size_t)atoi(cl + 16)) {
			if (status != -1 && status != 200)
				return -1;
			status = strncmp(buf + at, "HTTP/1.1 ", 9) == 0 ? atoi(buf + at + 9) : -1;
			at = (size_t)(end + 4 - buf) + (size_t)atoi(cl + 16);
			want--;
			continue;
		}
		if (got + 1 >= sizeof buf || now_ms() > until)
			return -1;
		r = side_read(s, buf + got, sizeof buf - 1 - got, 100);
		if (r == 0)
			return -1;
		if (r > 0)
			got += (size_t)r;
	}
	return status;
}

static int exchange(struct side *s, const char *req, size_t piece, int gap_ms)
{
	return exchange_n(s, req, piece, gap_ms, 1);
}

/* Send `req` a byte every 100 ms until the server closes the connection.
 * Returns how long after the first byte it closed (ms), or -1 if it did
 * not within 5 s. */
static long trickle(struct side *s, const char *req)
{
	uint64_t t0 = now_ms();
	char c;

	for (size_t i = 0; now_ms() - t0 < 5000; i++) {
		int r;
		if (side_write(s, req + i % strlen(req), 1) != 0)
			return (long)(now_ms() - t0); /* closed under the write */
		r = side_read(s, &c, 1, 100);
		if (r == 0)
			return (long)(now_ms() - t0);
		if (r > 0)
			return -1; /* a reply: not what a partial request gets */
	}
	return -1;
}

/* How long (ms) until the server closes an idle connection, or -1 past
 * `ms`. */
static long until_closed(struct side *s, int ms)
{
	uint64_t t0 = now_ms();
	char c;

	while (now_ms() - t0 < (uint64_t)ms)
		if (side_read(s, &c, 1, 100) == 0)
			return (long)(now_ms() - t0);
	return -1;
}

static void *timeout_client(void *arg)
{
	int tls = *(int *)arg;
	const char *get = "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n";
	struct side s;
	long t;

	/* A request that never ends is cut off at its deadline. */
	if (side_open(&s, tls) == 0) {
		t = trickle(&s, "GET /ok HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		expect(t >= DEADLINE_MS - 100 && t < DEADLINE_MS + 900,
		       "a trickled request is cut off at its deadline");
		if (t < DEADLINE_MS - 100 || t >= DEADLINE_MS + 900)
			fprintf(stderr, "  (tls %d: closed after %ld ms)\n", tls, t);
		side_close(&s);
	} else {
		expect(0, "connect");
	}
	/* A kept-alive connection: each request has its own deadline, and
	 * idleness longer than it is fine. */
	if (side_open(&s, tls) == 0) {
		expect(exchange(&s, get, 8, 150) == 200, "a request sent in pieces within the deadline");
		ms_sleep(700); /* 1.3 s and more since the first request's first byte */
		expect(exchange(&s, get, 8, 150) == 200, "the next request has a deadline of its own");
		ms_sleep(DEADLINE_MS + 500); /* idle past the deadline, not past idle */
		expect(exchange(&s, get, 1000, 0) == 200, "an idle kept-alive connection outlives the deadline");
		expect(exchange(&s, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", 1000, 0) == 200,
		       "a handler replying after the deadline is not cut off");
		/* Two requests in one write: the second's deadline starts
		 * once the first is answered; both answered. */
		expect(exchange_n(&s, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
				      "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n",
				  1000, 0, 2) == 200,
		       "pipelined requests are both answered");
		/* After all that, a request that never ends still meets
		 * a deadline: it restarts with each request. */
		t = trickle(&s, "GET /ok HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		expect(t >= DEADLINE_MS - 100 && t < DEADLINE_MS + 900,
		       "a later request on a kept-alive connection has the deadline too");
		side_close(&s);
	} else {
		expect(0, "connect");
	}
	/* Idle after a reply: closed at the idle timeout, not before. */
	if (side_open(&s, tls) == 0) {
		expect(exchange(&s, get, 1000, 0) == 200, "a request before idling");
		t = until_closed(&s, IDLE_MS + 2000);
		expect(t >= IDLE_MS - 600 && t < IDLE_MS + 1500, "an idle connection closes at the idle timeout");
		side_close(&s);
	} else {
		expect(0, "connect");
	}
	/* Stop the server. */
	if (side_open(&s, tls) == 0) {
		expect(exchange(&s, "POST /quit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 1000, 0) == 200,
		       "quit");
		side_close(&s);
	}
	return NULL;
}

static const struct gp_http_route timeout_routes2[] = {
	{"GET", "/slow", slow},
	{"GET", "/ok", ok},
	{"POST", "/quit", quit},
	{NULL, NULL, NULL},
};

static SSL_CTX *server_ctx;

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);

	return ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						    BEV_OPT_CLOSE_ON_FREE)
		   : NULL;
}

/* The loop stops by itself if the client thread never gets to /quit. */
static void watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	expect(0, "the test finished in time");
	gp_loop_stop(arg);
}

static void run_timeouts(int tls)
{
	struct gp_loop *loop = gp_loop_new();
	struct gp_http_opts o = {.listen = "127.0.0.1:0", .max_body = 1024,
				 .idle_timeout_s = IDLE_MS / 1000,
				 .request_timeout_s = DEADLINE_MS / 1000};
	struct timeval limit = {30, 0};
	struct event *dog;
	struct gp_http *h;
	pthread_t t;

	assert_non_null(loop);
	if (tls) {
		server_ctx = SSL_CTX_new(TLS_server_method());
		client_ctx = SSL_CTX_new(TLS_client_method());
		assert_non_null(server_ctx);
		assert_non_null(client_ctx);
		assert_int_equal(SSL_CTX_use_certificate_chain_file(server_ctx,
				 "tests/fixtures/sched/tls/server.crt"), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(server_ctx,
				 "tests/fixtures/sched/tls/server.key", SSL_FILETYPE_PEM), 1);
		o.bevcb = tls_bev;
		o.bevcb_arg = server_ctx;
	}
	checks_failed = 0;
	assert_int_equal(gp_http_start(&h, gp_loop_base(loop), &o, timeout_routes2, loop), 0);
	dog = evtimer_new(gp_loop_base(loop), watchdog, loop);
	assert_non_null(dog);
	evtimer_add(dog, &limit);
	port = gp_http_port(h);
	assert_int_equal(pthread_create(&t, NULL, timeout_client, &tls), 0);
	assert_int_equal(gp_loop_run(loop), 0);
	pthread_join(t, NULL);
	event_free(dog);
	gp_http_stop(h);
	gp_loop_free(loop);
	if (tls) {
		SSL_CTX_free(server_ctx);
		SSL_CTX_free(client_ctx);
	}
	assert_int_equal(checks_failed, 0);
}

static void test_request_deadline(void **state)
{
	(void)state;
	run_timeouts(0);
}

static void test_request_deadline_tls(void **state)
{
	(void)state;
	run_timeouts(1);
}

/* The defaults outlast Go's idle connections (90 s): a kube-scheduler or
 * KEDA POST must never meet a connection the server just closed. */
static void test_timeout_defaults(void **state)
{
	(void)state;
	assert_true(GP_HTTP_IDLE_TIMEOUT_S > 90);
	assert_true(GP_HTTP_REQUEST_TIMEOUT_S > 0 && GP_HTTP_REQUEST_TIMEOUT_S <= 30);
}

static void test_bad_listen(void **state)
{
	struct gp_loop *loop = gp_loop_new();
	struct gp_http *h;
	static const char *const bad[] = {"8080", "host:", "host:99999", "[::1]8080", ":x"};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct gp_http_opts o = {.listen = bad[i]};
		if (gp_http_start(&h, gp_loop_base(loop), &o, routes, NULL) != -22)
			fail_msg("accepted listen address %s", bad[i]);
	}
	gp_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_and_client),
		cmocka_unit_test(test_out_of_descriptors),
		cmocka_unit_test(test_bad_listen),
		cmocka_unit_test(test_request_deadline),
		cmocka_unit_test(test_request_deadline_tls),
		cmocka_unit_test(test_timeout_defaults),
	};

	signal(SIGPIPE, SIG_IGN); /* a write to a connection the server closed */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
