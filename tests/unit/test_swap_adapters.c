/* test_swap_adapters.c - the engine adapters (src/swap/adapter.h) against
 * a fake engine that replays the fixture files of
 * tests/fixtures/swap/adapters/ (README.md there gives their format): one
 * cmocka test per file, in which the fake checks every request the adapter
 * makes against the file's expected requests (method, path with query,
 * headers named, body as JSON) and answers the file's responses; any other
 * request fails the test, and so does one left unmade.
 *
 * Beside the files: an engine that refuses connections, one that never
 * answers (time limits), answers over the size cap, arguments refused
 * before anything is sent (and a name of exactly the cap that is sent),
 * the fake's own check catching a wrong request, many threads at once,
 * and every kind having fixtures for each of its four calls.
 *
 * The fake is libevent's evhttp on 127.0.0.1:0 in a thread of its own,
 * started and stopped by each test's setup and teardown, so it is stopped
 * even when a test fails; every request has a time limit. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "net/client.h"
#include "swap/adapter.h"

#define FIX "tests/fixtures/swap/adapters/"
#define TIMEOUT_MS 5000L /* every request of a fixture test */

static const char *const kinds[] = {"vllm", "triton", "gpupool"};
#define NKINDS (sizeof kinds / sizeof *kinds)

/* --- the fake engine ------------------------------------------------------ */

struct fake {
	char path[512];          /* the fixture file, "" for tests without one */
	struct event_base *base; /* the fake's loop, run by `thread` */
	struct evhttp *http;
	struct event *stop_ev;   /* fires when stop_pipe is written */
	int stop_pipe[2];
	pthread_t thread;
	int port;                /* where it listens on 127.0.0.1 */
	pthread_mutex_t mu;      /* guards what follows: the loop's thread
	                            writes, the test's thread reads */
	json_t *exchanges;       /* [{request, response}], owned */
	size_t next;             /* the exchange the next request must match */
	int failures;            /* requests that matched none */
	char why[2048];          /* what was wrong with them */
};

static const struct {
	enum evhttp_cmd_type cmd;
	const char *name;
} methods[] = {
	{EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_POST, "POST"},   {EVHTTP_REQ_PUT, "PUT"},
	{EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_HEAD, "HEAD"},   {EVHTTP_REQ_PATCH, "PATCH"},
	{EVHTTP_REQ_OPTIONS, "OPTIONS"},
};

static const char *method_name(enum evhttp_cmd_type c)
{
	for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
		if (methods[i].cmd == c)
			return methods[i].name;
	return "?";
}

static const struct {
	int status;
	const char *reason;
} reasons[] = {
	{200, "OK"},          {202, "Accepted"},           {400, "Bad Request"},
	{404, "Not Found"},   {500, "Internal Server Error"}, {503, "Service Unavailable"},
	{507, "Insufficient Storage"},
};

static const char *reason_of(int status)
{
	for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Status";
}

/* Note a request that is not the one expected (called with mu held). */
static void mismatch(struct fake *f, const char *method, const char *uri, const char *what)
{
	size_t at = strlen(f->why);

	f->failures++;
	snprintf(f->why + at, sizeof f->why - at, "\n  %s %s: %s", method, uri, what);
}

/* Does the request match the exchange's "request"?  NULL, or what differs. */
static const char *differs(json_t *want, struct evhttp_request *req, const char *method,
			   const char *uri, char *buf, size_t n)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	json_t *wbody = json_object_get(want, "body"), *headers = json_object_get(want, "headers");
	const char *key;
	json_t *value;

	const char *wmethod = json_string_value(json_object_get(want, "method"));
	const char *wpath = json_string_value(json_object_get(want, "path"));

	if (!wmethod || !wpath || strcmp(method, wmethod) != 0 || strcmp(uri, wpath) != 0) {
		snprintf(buf, n, "expected %s %s", wmethod ? wmethod : "(no method)",
			 wpath ? wpath : "(no path)");
		return buf;
	}
	json_object_foreach(headers, key, value) {
		const char *got = evhttp_find_header(evhttp_request_get_input_headers(req), key);
		if (!got || strcmp(got, json_string_value(value)) != 0) {
			snprintf(buf, n, "header %s: expected '%s', got '%s'", key,
				 json_string_value(value), got ? got : "(none)");
			return buf;
		}
	}
	if (!wbody) {
		if (len) {
			snprintf(buf, n, "expected no body, got %zu bytes", len);
			return buf;
		}
		return NULL;
	}
	{
		json_t *got = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
		int same = got && json_equal(got, wbody);
		json_decref(got);
		if (!same) {
			snprintf(buf, n, "body %.*s is not the expected JSON",
				 (int)(len > 200 ? 200 : len), body);
			return buf;
		}
	}
	return NULL;
}

/* Answer with the exchange's "response". */
static void answer(struct evhttp_request *req, json_t *resp)
{
	struct evbuffer *out = evbuffer_new();
	json_t *body = json_object_get(resp, "body"), *text = json_object_get(resp, "body_text");
	int status = (int)json_integer_value(json_object_get(resp, "status"));
	const char *key;
	json_t *value;

	json_object_foreach(json_object_get(resp, "headers"), key, value) {
		if (strcasecmp(key, "content-length") == 0)
			continue; /* evhttp writes the real one */
		evhttp_add_header(evhttp_request_get_output_headers(req), key,
				  json_string_value(value));
	}
	if (body) {
		char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		evbuffer_add(out, s, strlen(s));
		free(s);
	} else if (text) {
		evbuffer_add(out, json_string_value(text), json_string_length(text));
	}
	evhttp_send_reply(req, status, reason_of(status), out);
	evbuffer_free(out);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct fake *f = arg;
	const char *method = method_name(evhttp_request_get_command(req));
	const char *uri = evhttp_request_get_uri(req);
	json_t *ex, *resp = NULL;
	char buf[512];
	const char *what;

	pthread_mutex_lock(&f->mu);
	ex = json_array_get(f->exchanges, f->next);
	if (!ex) {
		mismatch(f, method, uri, "unexpected: no request left in the fixture");
	} else if ((what = differs(json_object_get(ex, "request"), req, method, uri, buf,
				   sizeof buf))) {
		mismatch(f, method, uri, what);
		f->next++;
	} else {
		resp = json_incref(json_object_get(ex, "response"));
		f->next++;
	}
	pthread_mutex_unlock(&f->mu);
	if (resp) {
		answer(req, resp);
		json_decref(resp);
	} else {
		struct evbuffer *out = evbuffer_new();
		evbuffer_add_printf(out, "{\"error\": \"%s\"}",
				    "the fake engine did not expect this request");
		evhttp_send_reply(req, 599, "Unexpected", out);
		evbuffer_free(out);
	}
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static void *fake_loop(void *arg)
{
	struct fake *f = arg;

	event_base_dispatch(f->base);
	return NULL;
}

/* Replace the script of exchanges (takes a reference). */
static void fake_script(struct fake *f, json_t *exchanges)
{
	pthread_mutex_lock(&f->mu);
	json_decref(f->exchanges);
	f->exchanges = exchanges;
	f->next = 0;
	pthread_mutex_unlock(&f->mu);
}

/* Every exchange made and nothing else: fail the test otherwise. */
static void fake_check(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	size_t want = json_array_size(f->exchanges), made = f->next;
	int failures = f->failures;
	pthread_mutex_unlock(&f->mu);
	if (failures)
		fail_msg("the fake engine saw %d wrong request(s):%s", failures, f->why);
	if (made != want)
		fail_msg("%zu of the %zu expected requests were made", made, want);
}

static int fake_start(void **state)
{
	struct fake *f = calloc(1, sizeof *f);
	struct evhttp_bound_socket *sock;
	struct sockaddr_in a;
	socklen_t alen = sizeof a;

	if (!f)
		return -1;
	if (*state)
		snprintf(f->path, sizeof f->path, "%s", (const char *)*state);
	pthread_mutex_init(&f->mu, NULL);
	f->exchanges = json_array();
	if (pipe(f->stop_pipe) != 0 || !(f->base = event_base_new()) ||
	    !(f->http = evhttp_new(f->base)))
		return -1;
	evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						    EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	evhttp_set_max_body_size(f->http, 1 << 20);
	evhttp_set_gencb(f->http, on_request, f);
	sock = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	if (!sock || getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&a, &alen))
		return -1;
	f->port = ntohs(a.sin_port);
	f->stop_ev = event_new(f->base, f->stop_pipe[0], EV_READ, on_stop, f->base);
	if (!f->stop_ev || event_add(f->stop_ev, NULL) ||
	    pthread_create(&f->thread, NULL, fake_loop, f))
		return -1;
	*state = f;
	return 0;
}

static int fake_stop(void **state)
{
	struct fake *f = *state;

	if (!f)
		return 0;
	if (write(f->stop_pipe[1], "x", 1) == 1)
		pthread_join(f->thread, NULL);
	event_free(f->stop_ev);
	evhttp_free(f->http);
	event_base_free(f->base);
	close(f->stop_pipe[0]);
	close(f->stop_pipe[1]);
	json_decref(f->exchanges);
	pthread_mutex_destroy(&f->mu);
	free(f);
	return 0;
}

/* --- running one call ----------------------------------------------------- */

static const struct {
	const char *name;
	int rc;
} errnos[] = {
	{"ok", 0},          {"EINVAL", -EINVAL},     {"EHOSTUNREACH", -EHOSTUNREACH},
	{"ETIMEDOUT", -ETIMEDOUT}, {"EMSGSIZE", -EMSGSIZE}, {"ENOENT", -ENOENT},
	{"EACCES", -EACCES}, {"EAGAIN", -EAGAIN},    {"EREMOTEIO", -EREMOTEIO},
	{"EPROTO", -EPROTO},
};

static int errno_of(const char *name)
{
	for (size_t i = 0; i < sizeof errnos / sizeof *errnos; i++)
		if (strcmp(errnos[i].name, name) == 0)
			return errnos[i].rc;
	fail_msg("unknown rc '%s' in a fixture", name);
	return 1;
}

static const char *const calls[] = {"load", "unload", "state", "health"};
#define NCALLS (sizeof calls / sizeof *calls)

/* Call `call` of the engine's adapter; the state, if asked, into *st. */
static int invoke(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
		  const char *call, enum gp_swap_state *st, char *err, size_t n)
{
	const struct gp_swap_adapter *a = gp_swap_adapter_find(e->kind);
	enum gp_swap_state ignored;

	assert_non_null(a);
	if (!st)
		st = &ignored;
	*st = (enum gp_swap_state)99; /* the call must set it */
	if (strcmp(call, "load") == 0)
		return a->load(e, m, err, n);
	if (strcmp(call, "unload") == 0)
		return a->unload(e, m, err, n);
	if (strcmp(call, "state") == 0)
		return a->state(e, m, st, err, n);
	if (strcmp(call, "health") == 0)
		return a->health(e, err, n);
	fail_msg("unknown call '%s'", call);
	return 1;
}

/* An error message must be there, printable ASCII, and start with the
 * engine's kind. */
static void check_message(const char *kind, const char *err)
{
	size_t k = strlen(kind);

	if (strncmp(err, kind, k) != 0 || err[k] != ':')
		fail_msg("message does not start with '%s:': %s", kind, err);
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			fail_msg("message has a byte 0x%02x: %s", (unsigned char)*p, err);
}

/* --- the fixture files ---------------------------------------------------- */

static void run_fixture(void **state)
{
	struct fake *f = *state;
	json_error_t je;
	json_t *doc = json_load_file(f->path, JSON_REJECT_DUPLICATES, &je);
	json_t *expect, *model, *want_state, *want_err;
	char kind[32], endpoint[64], err[1024] = "", want[1024];
	const char *slash, *call;
	struct gp_swap_engine_ref e;
	struct gp_swap_model_ref m = {.name = "resnet50"};
	enum gp_swap_state got_state;
	int rc, want_rc;

	if (!doc)
		fail_msg("%s: %s (line %d)", f->path, je.text, je.line);
	/* The kind is the fixture's folder. */
	slash = strrchr(f->path, '/');
	assert_non_null(slash);
	snprintf(kind, sizeof kind, "%.*s", (int)(slash - f->path - strlen(FIX)),
		 f->path + strlen(FIX));
	snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", f->port);
	e = (struct gp_swap_engine_ref){.kind = kind, .endpoint = endpoint,
				    .query_timeout_ms = TIMEOUT_MS, .op_timeout_ms = TIMEOUT_MS};
	if ((model = json_object_get(doc, "model"))) {
		m.name = json_string_value(json_object_get(model, "name"));
		m.weights = json_string_value(json_object_get(model, "weights"));
		m.bytes = (uint64_t)json_integer_value(json_object_get(model, "bytes"));
	}
	call = json_string_value(json_object_get(doc, "call"));
	expect = json_object_get(doc, "expect");
	if (!call || !json_is_array(json_object_get(doc, "exchanges")) || !json_is_object(expect) ||
	    !json_is_string(json_object_get(doc, "about")))
		fail_msg("%s: needs about, call, exchanges and expect", f->path);
	fake_script(f, json_incref(json_object_get(doc, "exchanges")));

	rc = invoke(&e, &m, call, &got_state, err, sizeof err);
	fake_check(f); /* wrong requests first: they explain the rest */
	want_rc = errno_of(json_string_value(json_object_get(expect, "rc")));
	if (rc != want_rc)
		fail_msg("%s: rc %d (%s), expected %d; message: %s", f->path, rc, strerror(-rc),
			 want_rc, err);
	if (rc)
		check_message(kind, err);
	if ((want_state = json_object_get(expect, "state")) &&
	    strcmp(gp_swap_state_name(got_state), json_string_value(want_state)) != 0)
		fail_msg("%s: state %s, expected %s", f->path, gp_swap_state_name(got_state),
			 json_string_value(want_state));
	if ((want_err = json_object_get(expect, "error"))) {
		/* PORT stands for the fake's port. */
		const char *w = json_string_value(want_err), *p = strstr(w, "PORT");
		if (p)
			snprintf(want, sizeof want, "%.*s%d%s", (int)(p - w), w, f->port, p + 4);
		else
			snprintf(want, sizeof want, "%s", w);
		if (!strstr(err, want))
			fail_msg("%s: message '%s' does not say '%s'", f->path, err, want);
	}
	json_decref(doc);
}

/* Each kind has a fixture for each of its calls: "<call>-*.json". */
static void test_every_call_has_fixtures(void **state)
{
	(void)state;
	for (size_t k = 0; k < NKINDS; k++) {
		int seen[NCALLS] = {0};
		char dir[256];
		DIR *d;
		struct dirent *de;

		snprintf(dir, sizeof dir, FIX "%s", kinds[k]);
		assert_non_null(d = opendir(dir));
		while ((de = readdir(d)))
			for (size_t c = 0; c < NCALLS; c++)
				if (strncmp(de->d_name, calls[c], strlen(calls[c])) == 0 &&
				    de->d_name[strlen(calls[c])] == '-')
					seen[c] = 1;
		closedir(d);
		for (size_t c = 0; c < NCALLS; c++)
			if (!seen[c])
				fail_msg("%s has no %s-*.json fixture", dir, calls[c]);
	}
}

/* --- beside the files ----------------------------------------------------- */

static struct gp_swap_engine_ref engine_at(const char *kind, char *endpoint, size_t n, int port,
				       long timeout_ms)
{
	snprintf(endpoint, n, "http://127.0.0.1:%d", port);
	return (struct gp_swap_engine_ref){.kind = kind, .endpoint = endpoint,
				       .query_timeout_ms = timeout_ms,
				       .op_timeout_ms = timeout_ms};
}

static const struct gp_swap_model_ref full_model = {
	.name = "resnet50", .weights = "/var/cache/gpupool/resnet50.safetensors", .bytes = 102400};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A port nobody listens on: bound, then closed. */
static int closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Connection refused: -EHOSTUNREACH at once, for every call of every kind,
 * the message naming the engine and the URL. */
static void test_unreachable(void **state)
{
	int port = closed_port();

	(void)state;
	for (size_t k = 0; k < NKINDS; k++)
		for (size_t c = 0; c < NCALLS; c++) {
			char endpoint[64], err[512] = "", where[64];
			struct gp_swap_engine_ref e =
				engine_at(kinds[k], endpoint, sizeof endpoint, port, 3000);
			enum gp_swap_state st;
			int rc = invoke(&e, &full_model, calls[c], &st, err, sizeof err);

			if (rc != -EHOSTUNREACH)
				fail_msg("%s %s: rc %d, message %s", kinds[k], calls[c], rc, err);
			check_message(kinds[k], err);
			snprintf(where, sizeof where, "127.0.0.1:%d", port);
			assert_non_null(strstr(err, where));
			if (strcmp(calls[c], "state") == 0)
				assert_int_equal(st, GP_SWAP_UNKNOWN);
		}
}

/* A server that accepts connections (the kernel does) and never answers:
 * each call ends at its own time limit with -ETIMEDOUT. */
static void test_timeout(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	for (size_t k = 0; k < NKINDS; k++)
		for (size_t c = 0; c < NCALLS; c++) {
			char endpoint[64], err[512] = "";
			struct gp_swap_engine_ref e = engine_at(kinds[k], endpoint, sizeof endpoint,
							    ntohs(a.sin_port), 200);
			long start = now_ms(), took;
			int rc = invoke(&e, &full_model, calls[c], NULL, err, sizeof err);

			took = now_ms() - start;
			if (rc != -ETIMEDOUT || took < 150 || took > 3000) {
				close(fd);
				fail_msg("%s %s: rc %d after %ld ms: %s", kinds[k], calls[c], rc,
					 took, err);
			}
			check_message(kinds[k], err);
		}
	close(fd);
}

/* Answers over GP_SWAP_MAX_BODY, a success and an error alike, fail with
 * -EMSGSIZE: the engine cannot make the controller hold its garbage. */
static void test_oversized(void **state)
{
	struct fake *f = *state;
	size_t big = GP_SWAP_MAX_BODY + 1;
	char *text = malloc(big + 1), endpoint[64], err[512] = "";
	struct gp_swap_engine_ref e = engine_at("vllm", endpoint, sizeof endpoint, f->port, TIMEOUT_MS);
	enum gp_swap_state st;
	json_t *script;

	assert_non_null(text);
	memset(text, 'x', big);
	text[big] = '\0';
	script = json_pack("[{s:{s:s,s:s},s:{s:i,s:s}},{s:{s:s,s:s},s:{s:i,s:s}}]",
			   "request", "method", "GET", "path", "/is_sleeping",
			   "response", "status", 200, "body_text", text,
			   "request", "method", "POST", "path", "/wake_up",
			   "response", "status", 500, "body_text", text);
	free(text);
	assert_non_null(script);
	fake_script(f, script);
	assert_int_equal(gp_swap_adapter_find("vllm")->state(&e, &full_model, &st, err, sizeof err),
			 -EMSGSIZE);
	assert_int_equal(st, GP_SWAP_UNKNOWN);
	check_message("vllm", err);
	assert_non_null(strstr(err, "larger than"));
	assert_int_equal(gp_swap_adapter_find("vllm")->load(&e, &full_model, err, sizeof err),
			 -EMSGSIZE);
	fake_check(f);
}

/* Arguments refused before anything is sent (the fake expects nothing),
 * and a name of exactly GP_SWAP_REF_NAME_MAX bytes that is sent. */
static void test_bad_arguments(void **state)
{
	struct fake *f = *state;
	char endpoint[64], err[512], longname[GP_SWAP_REF_NAME_MAX + 2], longurl[GP_SWAP_REF_URL_MAX];
	char path[GP_SWAP_REF_NAME_MAX + 64];
	struct gp_swap_engine_ref good = engine_at("triton", endpoint, sizeof endpoint, f->port,
					       TIMEOUT_MS);
	struct {
		const char *kind, *endpoint, *name, *weights, *call;
		uint64_t bytes;
	} bad[] = {
		{"triton", endpoint, NULL, NULL, "load", 0},
		{"triton", endpoint, "", NULL, "unload", 0},
		{"triton", endpoint, longname, NULL, "state", 0},
		{"triton", endpoint, "res\nnet", NULL, "load", 0},
		{"vllm", endpoint, "res\x7fnet", NULL, "state", 0},
		{"vllm", NULL, "resnet50", NULL, "health", 0},
		{"vllm", "ftp://127.0.0.1/", "resnet50", NULL, "load", 0},
		{"vllm", "127.0.0.1:8000", "resnet50", NULL, "health", 0},
		{"gpupool", longurl, "resnet50", NULL, "health", 0},
		{"gpupool", "http://x\r\nHost: evil", "resnet50", NULL, "health", 0},
		{"gpupool", endpoint, "resnet50", NULL, "load", 100},
		{"gpupool", endpoint, "resnet50", "", "load", 100},
		{"gpupool", endpoint, "resnet50", "/w", "load", (uint64_t)INT64_MAX + 1},
		{"gpupool", endpoint, "resnet50", "/w\xff\xfe", "load", 100},
	};
	enum gp_swap_state st;

	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0'; /* GP_SWAP_REF_NAME_MAX + 1 bytes */
	memcpy(longurl, "http://", 7);
	memset(longurl + 7, 'h', sizeof longurl - 8);
	longurl[sizeof longurl - 1] = '\0';
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct gp_swap_engine_ref e = {.kind = bad[i].kind, .endpoint = bad[i].endpoint};
		struct gp_swap_model_ref m = {.name = bad[i].name, .weights = bad[i].weights,
					  .bytes = bad[i].bytes};
		int rc;

		err[0] = '\0';
		rc = invoke(&e, &m, bad[i].call, &st, err, sizeof err);
		if (rc != -EINVAL)
			fail_msg("case %zu (%s %s): rc %d, message %s", i, bad[i].kind,
				 bad[i].call, rc, err);
		check_message(bad[i].kind, err);
		/* No buffer for the message: still refused, nothing written. */
		assert_int_equal(invoke(&e, &m, bad[i].call, &st, NULL, 0), -EINVAL);
	}
	fake_check(f); /* nothing was sent */

	/* Exactly at the cap: sent, percent-encoding and all. */
	longname[GP_SWAP_REF_NAME_MAX] = '\0';
	snprintf(path, sizeof path, "/v2/models/%s/ready", longname);
	fake_script(f, json_pack("[{s:{s:s,s:s},s:{s:i}}]", "request", "method", "GET", "path",
				 path, "response", "status", 200));
	{
		struct gp_swap_model_ref m = {.name = longname};
		const struct gp_swap_adapter *a = gp_swap_adapter_find("triton");
		assert_int_equal(a->state(&good, &m, &st, err, sizeof err), 0);
		assert_int_equal(st, GP_SWAP_LOADED);
	}
	fake_check(f);
}

/* The fake's check is not vacuous: a request other than the expected one
 * is caught (and answered with an error, which the adapter reports). */
static void test_fake_catches_wrong_request(void **state)
{
	struct fake *f = *state;
	char endpoint[64], err[512] = "";
	struct gp_swap_engine_ref e = engine_at("vllm", endpoint, sizeof endpoint, f->port, TIMEOUT_MS);

	fake_script(f, json_pack("[{s:{s:s,s:s},s:{s:i}}]", "request", "method", "POST", "path",
				 "/wake_up", "response", "status", 200));
	assert_int_equal(gp_swap_adapter_find("vllm")->unload(&e, &full_model, err, sizeof err),
			 -EREMOTEIO);
	assert_non_null(strstr(err, "HTTP 599"));
	/* Another one, beyond the script. */
	assert_int_equal(gp_swap_adapter_find("vllm")->health(&e, err, sizeof err), -EREMOTEIO);
	pthread_mutex_lock(&f->mu);
	assert_int_equal(f->failures, 2);
	assert_non_null(strstr(f->why, "POST /sleep?level=1: expected POST /wake_up"));
	assert_non_null(strstr(f->why, "GET /health: unexpected"));
	f->failures = 0;
	pthread_mutex_unlock(&f->mu);
}

/* Adapters on many threads at once (as the controller's workers call
 * them): each gets its own answers. */
#define THREADS 4
#define CALLS_EACH 8

static void *health_worker(void *arg)
{
	const struct gp_swap_engine_ref *e = arg;
	long failures = 0;

	for (int i = 0; i < CALLS_EACH; i++) {
		char err[256];
		if (gp_swap_adapter_find("gpupool")->health(e, err, sizeof err) != 0)
			failures++;
	}
	return (void *)failures;
}

static void test_threads(void **state)
{
	struct fake *f = *state;
	char endpoint[64];
	struct gp_swap_engine_ref e = engine_at("gpupool", endpoint, sizeof endpoint, f->port,
					    TIMEOUT_MS);
	json_t *script = json_array();
	pthread_t t[THREADS];

	for (int i = 0; i < THREADS * CALLS_EACH; i++)
		json_array_append_new(script, json_pack("{s:{s:s,s:s},s:{s:i,s:{s:s}}}", "request",
							"method", "GET", "path", "/healthz",
							"response", "status", 200, "body",
							"status", "ok"));
	fake_script(f, script);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, health_worker, &e), 0);
	for (int i = 0; i < THREADS; i++) {
		void *failures;
		pthread_join(t[i], &failures);
		assert_int_equal((long)failures, 0);
	}
	fake_check(f);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t k = 0; k < NKINDS; k++) {
		const struct gp_swap_adapter *a = gp_swap_adapter_find(kinds[k]);
		assert_non_null(a);
		assert_string_equal(a->kind, kinds[k]);
		assert_true(a->load && a->unload && a->state && a->health);
	}
	assert_null(gp_swap_adapter_find("tgi"));
	assert_null(gp_swap_adapter_find("VLLM"));
	assert_null(gp_swap_adapter_find(NULL));
	assert_string_equal(gp_swap_state_name(GP_SWAP_LOADED), "loaded");
	assert_string_equal(gp_swap_state_name(GP_SWAP_UNLOADING), "unloading");
	assert_string_equal(gp_swap_state_name((enum gp_swap_state)42), "unknown");
}

/* --- main: one test per fixture file, then the rest ----------------------- */

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_every_call_has_fixtures),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test_setup_teardown(test_oversized, fake_start, fake_stop),
		cmocka_unit_test_setup_teardown(test_bad_arguments, fake_start, fake_stop),
		cmocka_unit_test_setup_teardown(test_fake_catches_wrong_request, fake_start,
						fake_stop),
		cmocka_unit_test_setup_teardown(test_threads, fake_start, fake_stop),
	};
	struct CMUnitTest tests[256];
	char *paths[240];
	size_t n = 0, np = 0;
	int rc;

	if (gp_client_init() != 0)
		return 1;
	for (size_t k = 0; k < NKINDS; k++) {
		char dir[256];
		DIR *d;
		struct dirent *de;

		snprintf(dir, sizeof dir, FIX "%s", kinds[k]);
		if (!(d = opendir(dir))) {
			fprintf(stderr, "%s: %s\n", dir, strerror(errno));
			return 1;
		}
		while ((de = readdir(d)) && np < sizeof paths / sizeof *paths) {
			size_t len = strlen(de->d_name);
			if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0 &&
			    asprintf(&paths[np], "%s/%s", dir, de->d_name) > 0)
				np++;
		}
		closedir(d);
	}
	qsort(paths, np, sizeof *paths, by_name);
	for (size_t i = 0; i < np; i++)
		tests[n++] = (struct CMUnitTest){.name = paths[i] + strlen(FIX),
						 .test_func = run_fixture,
						 .setup_func = fake_start,
						 .teardown_func = fake_stop,
						 .initial_state = paths[i]};
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		tests[n++] = fixed[i];
	rc = _cmocka_run_group_tests("swap_adapters", tests, n, NULL, NULL);
	for (size_t i = 0; i < np; i++)
		free(paths[i]);
	return rc;
}
