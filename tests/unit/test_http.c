/* test_http.c - the daemons' HTTP server and client, over loopback: routes
 * (exact, prefix, 404, 405), size caps, JSON in and out, path segments and
 * queries, and the client's own limits; and what the shared layer does for
 * every daemon: two Content-Length headers are a 400 that ends the
 * connection, raw bytes in a path and messages cut mid-character are
 * answered with valid JSON (never a 500), accepted sockets have
 * TCP_NODELAY, and running out of descriptors pauses accepts with one log
 * line instead of spinning. */
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

#include "common/log.h"
#include "net/client.h"
#include "net/http.h"
#include "net/loop.h"

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
	struct gp_http_opts o = {.listen = "127.0.0.1:0", .max_body = 65536, .timeout_s = 5};
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
		struct gp_http_opts o = {.listen = "127.0.0.1:0", .max_body = 1024, .timeout_s = 5};
		struct rlimit rl;
		struct gp_http *h;
		int p, top = 0;

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
		/* New descriptors take the lowest free number: three more,
		 * whatever is open above them. */
		top = open("/dev/null", O_RDONLY);
		if (top < 0)
			_exit(5);
		close(top);
		rl.rlim_cur = rl.rlim_max = (rlim_t)top + 3;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(5);
		_exit(gp_loop_run(loop) == 0 ? 0 : 6);
	}
	close(errp[1]);
	close(portp[1]);
	assert_int_equal(read(portp[0], &port, sizeof port), sizeof port);
	close(portp[0]);
	for (int i = 0; i < 8; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		conns[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(conns[i] >= 0);
		/* The kernel completes the handshake from the backlog. */
		assert_int_equal(connect(conns[i], (struct sockaddr *)&a, sizeof a), 0);
	}
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	for (int t = 0; t < 15; t++) { /* 1.5 s of what it logs */
		ssize_t r;
		usleep(100000);
		while ((r = read(errp[0], log + got, sizeof log - 1 - got)) > 0)
			got += (size_t)r;
	}
	log[got] = '\0';
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
