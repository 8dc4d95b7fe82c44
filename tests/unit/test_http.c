/* test_http.c - the daemons' HTTP server and client, over loopback: routes
 * (exact, prefix, 404, 405), size caps, JSON in and out, path segments and
 * queries, and the client's own limits. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

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

static void quit(struct gp_http_req *rq, void *arg)
{
	gp_http_reply(rq, 200, "text/plain", "bye", 3);
	gp_loop_stop(arg);
}

static const struct gp_http_route routes[] = {
	{"POST", "/echo", echo},
	{"GET", "/v1/queues/*", queues},
	{"POST", "/quit", quit},
	{NULL, NULL, NULL},
};

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
	snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", gp_http_port(h));
	assert_int_equal(pthread_create(&t, NULL, client, NULL), 0);
	assert_int_equal(gp_loop_run(loop), 0);
	pthread_join(t, NULL);
	gp_http_stop(h);
	gp_loop_free(loop);
	assert_int_equal(checks_failed, 0);
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
		cmocka_unit_test(test_bad_listen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
