/* test_scaler_grpc.c - gpupool's gRPC layer (src/net/grpc.c): the framing
 * of messages (length prefixes, caps), grpc-timeout, and the server over
 * loopback TCP and a unix socket, driven by a raw nghttp2 client that can
 * send what well-behaved gRPC clients never do: oversized, compressed,
 * doubled or missing messages, the wrong content type, cancellations and
 * dropped connections; and what the server's limits do to clients that
 * hold requests half-sent, hold connections idle or open many streams. */
#include <errno.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <signal.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "externalscaler.pb-c.h"
#include "common/log.h"
#include "net/grpc.h"
#include "net/loop.h"
#include "unit/fdstarve.h"

/* --- framing ------------------------------------------------------------ */

static void test_frame_parse(void **state)
{
	static const struct {
		const char *what;
		uint8_t buf[16];
		size_t len, max;
		int rc;
		size_t msg_len, used;
	} cases[] = {
		{"nothing yet", {0}, 0, 100, 0, 0, 0},
		{"half a prefix", {0, 0, 0}, 3, 100, 0, 0, 0},
		{"empty message", {0, 0, 0, 0, 0}, 5, 100, 1, 0, 5},
		{"whole message", {0, 0, 0, 0, 3, 'a', 'b', 'c'}, 8, 100, 1, 3, 8},
		{"message and more", {0, 0, 0, 0, 1, 'a', 0, 0}, 8, 100, 1, 1, 6},
		{"message not all there", {0, 0, 0, 0, 9, 'a'}, 6, 100, 0, 0, 0},
		{"at the cap", {0, 0, 0, 0, 4, 1, 2, 3, 4}, 9, 4, 1, 4, 9},
		/* Known from the prefix alone: no need to buffer 4 GiB first. */
		{"over the cap", {0, 0, 0, 0, 5}, 5, 4, -EMSGSIZE, 0, 0},
		{"huge", {0, 0xff, 0xff, 0xff, 0xff}, 5, 1u << 20, -EMSGSIZE, 0, 0},
		{"big-endian length", {0, 0, 1, 0, 0}, 5, 65535, -EMSGSIZE, 0, 0},
		{"compressed", {1, 0, 0, 0, 1, 'x'}, 6, 100, -ENOTSUP, 0, 0},
		{"bad flag", {2, 0, 0, 0, 1, 'x'}, 6, 100, -EPROTO, 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const uint8_t *msg = NULL;
		size_t mlen = 0, used = 0;
		int rc = gp_grpc_frame_parse(cases[i].buf, cases[i].len, cases[i].max, &msg, &mlen,
					     &used);
		if (rc != cases[i].rc)
			fail_msg("%s: rc %d, want %d", cases[i].what, rc, cases[i].rc);
		if (rc == 1 && (mlen != cases[i].msg_len || used != cases[i].used ||
				msg != cases[i].buf + 5))
			fail_msg("%s: message %zu used %zu", cases[i].what, mlen, used);
	}
}

static void test_frame_header(void **state)
{
	uint8_t h[5];

	(void)state;
	assert_int_equal(gp_grpc_frame_header(h, 0x01020304), 0);
	assert_memory_equal(h, ((uint8_t[]){0, 1, 2, 3, 4}), 5);
	assert_int_equal(gp_grpc_frame_header(h, 0), 0);
	assert_memory_equal(h, ((uint8_t[]){0, 0, 0, 0, 0}), 5);
#if SIZE_MAX > UINT32_MAX
	assert_int_equal(gp_grpc_frame_header(h, (size_t)UINT32_MAX + 1), -EMSGSIZE);
#endif
}

static void test_timeout(void **state)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t ns;
	} cases[] = {
		{"1n", 0, 1},
		{"100m", 0, 100000000ull},
		{"5S", 0, 5000000000ull},
		{"2M", 0, 120000000000ull},
		{"1H", 0, 3600000000000ull},
		{"250u", 0, 250000ull},
		{"99999999S", 0, 99999999000000000ull},
		{"99999999H", 0, UINT64_MAX}, /* saturates */
		{"123456789S", -EINVAL, 0},   /* nine digits */
		{"", -EINVAL, 0},
		{"S", -EINVAL, 0},
		{"10", -EINVAL, 0},
		{"10s", -EINVAL, 0},          /* 's' is no unit; 'S' is */
		{"10SS", -EINVAL, 0},
		{"-1S", -EINVAL, 0},
		{" 1S", -EINVAL, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		uint64_t ns = 0;
		int rc = gp_grpc_parse_timeout(cases[i].s, &ns);
		if (rc != cases[i].rc || (rc == 0 && ns != cases[i].ns))
			fail_msg("'%s': rc %d ns %llu", cases[i].s, rc, (unsigned long long)ns);
	}
}

/* --- a server with test methods ------------------------------------------ */

#define MAX_MESSAGE 1024

/* Counted on the loop's thread, read after it is joined. */
static int cancelled;      /* Hang calls the server ended without finish */
static int hang_calls;
static int handler_errors; /* a gp_grpc_send that did not do as documented */

static struct gp_grpc *server; /* for Buffered; set before its thread starts */

#define CHECK(cond) ((cond) ? (void)0 : (void)handler_errors++)

/* Unary: answers result = (name == "yes"). */
static void echo(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Externalscaler__ScaledObjectRef *r = (const void *)req;
	Externalscaler__IsActiveResponse resp = EXTERNALSCALER__IS_ACTIVE_RESPONSE__INIT;

	(void)arg;
	resp.result = r->name && strcmp(r->name, "yes") == 0;
	CHECK(gp_grpc_send(call, &resp.base) == 0);
	CHECK(gp_grpc_send(call, &resp.base) == -EPROTO); /* unary: one */
	gp_grpc_finish(call, GP_GRPC_OK, NULL);
}

/* Streaming: three messages, then OK. */
static void stream3(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	Externalscaler__IsActiveResponse resp = EXTERNALSCALER__IS_ACTIVE_RESPONSE__INIT;

	(void)req, (void)arg;
	for (int i = 0; i < 3; i++) {
		resp.result = i & 1;
		CHECK(gp_grpc_send(call, &resp.base) == 0);
	}
	gp_grpc_finish(call, GP_GRPC_OK, NULL);
}

static void on_hang_cancel(struct gp_grpc_call *call, void *arg)
{
	(void)call, (void)arg;
	cancelled++;
}

/* Streaming, never finished: only a cancel ends it. */
static void hang(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	(void)req, (void)arg;
	hang_calls++;
	gp_grpc_on_cancel(call, on_hang_cancel, NULL);
}

/* Unary that forgets to reply. */
static void no_reply(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	(void)req, (void)arg;
	gp_grpc_finish(call, GP_GRPC_OK, NULL);
}

/* An error with a message that needs percent-encoding. */
static void fail_call(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	(void)req, (void)arg;
	gp_grpc_finish(call, GP_GRPC_UNAVAILABLE, "broker down: 100%% gone\n");
}

/* Unary: the server's gp_grpc_buffered, as a metric value. */
static void buffered(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	Externalscaler__MetricValue v = EXTERNALSCALER__METRIC_VALUE__INIT, *vs[] = {&v};
	Externalscaler__GetMetricsResponse resp = EXTERNALSCALER__GET_METRICS_RESPONSE__INIT;

	(void)req, (void)arg;
	v.metricvalue = (int64_t)gp_grpc_buffered(server);
	resp.n_metricvalues = 1;
	resp.metricvalues = vs;
	CHECK(gp_grpc_send(call, &resp.base) == 0);
	gp_grpc_finish(call, GP_GRPC_OK, NULL);
}

static void quit(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	Externalscaler__IsActiveResponse resp = EXTERNALSCALER__IS_ACTIVE_RESPONSE__INIT;

	(void)req;
	CHECK(gp_grpc_send(call, &resp.base) == 0);
	gp_grpc_finish(call, GP_GRPC_OK, NULL);
	CHECK(gp_grpc_send(call, &resp.base) == -EPROTO); /* after finish */
	gp_loop_stop(arg);
}

#define REF &externalscaler__scaled_object_ref__descriptor
#define ACTIVE &externalscaler__is_active_response__descriptor
static const struct gp_grpc_method methods[] = {
	{"/t.T/Echo", REF, ACTIVE, 0, echo},
	{"/t.T/Stream", REF, ACTIVE, 1, stream3},
	{"/t.T/Hang", REF, ACTIVE, 1, hang},
	{"/t.T/NoReply", REF, ACTIVE, 0, no_reply},
	{"/t.T/Fail", REF, ACTIVE, 0, fail_call},
	{"/t.T/Quit", REF, ACTIVE, 0, quit},
	{"/t.T/Buffered", REF, &externalscaler__get_metrics_response__descriptor, 0, buffered},
	{NULL, NULL, NULL, 0, NULL},
};

/* --- a raw HTTP/2 client ---------------------------------------------------- */

struct result {
	int http;          /* :status */
	int grpc;          /* grpc-status, -1 if none came */
	char message[256]; /* grpc-message, still percent-encoded */
	uint8_t body[4096];
	size_t len;
	int closed;
	uint32_t rst;      /* RST_STREAM error code from the server, if any */
};

/* A request body.  `hold`: once it is sent the stream stays open, a
 * request that never finishes arriving. */
struct part {
	const uint8_t *buf;
	size_t len, off;
	int hold;
};

struct client {
	int fd;
	nghttp2_session *h2;
	struct result *r;    /* of the last call started, watched by pump */
	struct part body;    /* of calls made with start() */
	int settings;        /* the server's SETTINGS came */
	int goaway;          /* a GOAWAY came */
	int pings;           /* PING acknowledgements that came */
	int eof;             /* the server closed the connection */
};

static ssize_t c_send(nghttp2_session *s, const uint8_t *d, size_t n, int fl, void *u)
{
	struct client *c = u;
	ssize_t w = send(c->fd, d, n, MSG_NOSIGNAL);

	(void)s, (void)fl;
	return w < 0 ? (errno == EAGAIN ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE)
		     : w;
}

/* Each stream's result is its stream user data (see submit). */
static struct result *result_of(struct client *c, nghttp2_session *s, int32_t id)
{
	struct result *r = nghttp2_session_get_stream_user_data(s, id);

	return r ? r : c->r;
}

static int c_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		    const uint8_t *value, size_t vl, uint8_t fl, void *u)
{
	struct result *r = result_of(u, s, f->hd.stream_id);
	char v[256];

	(void)fl;
	snprintf(v, sizeof v, "%.*s", (int)vl, value);
	if (nl == 7 && memcmp(name, ":status", 7) == 0)
		r->http = atoi(v);
	else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
		r->grpc = atoi(v);
	else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0)
		snprintf(r->message, sizeof r->message, "%s", v);
	return 0;
}

static int c_data(nghttp2_session *s, uint8_t fl, int32_t id, const uint8_t *d, size_t n, void *u)
{
	struct result *r = result_of(u, s, id);

	(void)fl;
	if (r->len + n <= sizeof r->body) {
		memcpy(r->body + r->len, d, n);
		r->len += n;
	}
	return 0;
}

static int c_close(nghttp2_session *s, int32_t id, uint32_t code, void *u)
{
	struct result *r = result_of(u, s, id);

	r->closed = 1;
	r->rst = code;
	return 0;
}

static int c_frame(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
	struct client *c = u;

	(void)s;
	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK))
		c->settings = 1;
	if (f->hd.type == NGHTTP2_GOAWAY)
		c->goaway = 1;
	if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK))
		c->pings++;
	return 0;
}

static ssize_t c_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t n, uint32_t *flags,
		      nghttp2_data_source *src, void *u)
{
	struct part *p = src->ptr;
	size_t left = p->len - p->off;

	(void)s, (void)id, (void)u;
	if (n > left)
		n = left;
	if (n == 0 && p->hold)
		return NGHTTP2_ERR_DEFERRED;
	if (n)
		memcpy(buf, p->buf + p->off, n);
	p->off += n;
	if (p->off == p->len && !p->hold)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void client_open(struct client *c, int fd)
{
	nghttp2_session_callbacks *cbs;

	memset(c, 0, sizeof *c);
	c->fd = fd;
	assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
	nghttp2_session_callbacks_set_send_callback(cbs, c_send);
	nghttp2_session_callbacks_set_on_header_callback(cbs, c_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, c_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, c_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, c_frame);
	assert_int_equal(nghttp2_session_client_new(&c->h2, cbs, c), 0);
	nghttp2_session_callbacks_del(cbs);
	assert_int_equal(nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

static void client_close(struct client *c)
{
	nghttp2_session_del(c->h2);
	close(c->fd);
}

/* Exchange frames until done(c, arg), the end of the connection, or `ms`
 * without a byte from the server; returns done's verdict.  A connection
 * the server closed (c->eof: read or write failed) is not used again. */
static int pump_until(struct client *c, int ms, int (*done)(struct client *, void *), void *arg)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	uint8_t buf[16384];

	while (!done(c, arg)) {
		if (!c->eof && nghttp2_session_send(c->h2) != 0)
			c->eof = 1;
		if (c->eof || poll(&p, 1, ms) <= 0)
			return done(c, arg);
		ssize_t n = recv(c->fd, buf, sizeof buf, 0);
		if (n <= 0) {
			c->eof = 1;
			continue;
		}
		assert_true(nghttp2_session_mem_recv(c->h2, buf, (size_t)n) == n);
	}
	return 1;
}

static int watched_closed(struct client *c, void *arg)
{
	(void)arg;
	return c->r->closed;
}

static int got_settings(struct client *c, void *arg)
{
	(void)arg;
	return c->settings;
}

static int never(struct client *c, void *arg)
{
	(void)c, (void)arg;
	return 0;
}

static int pinged(struct client *c, void *arg)
{
	return c->pings >= *(const int *)arg;
}

/* A PING round trip: the server has read all that `c` sent before, and
 * `c` has read all that the server sent on it before reading the PING. */
static void ping(struct client *c)
{
	int want = c->pings + 1;

	assert_int_equal(nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL), 0);
	assert_true(pump_until(c, 5000, pinged, &want));
}

/* Every body of n streams sent, or its stream closed. */
struct sending {
	const struct part *p;
	const struct result *r;
	int n;
};

static int all_sent(struct client *c, void *arg)
{
	const struct sending *s = arg;

	for (int k = 0; k < s->n; k++)
		if (!s->r[k].closed && s->p[k].off < s->p[k].len)
			return 0;
	return !nghttp2_session_want_write(c->h2);
}

/* Pump the session until the watched stream closes or `ms` pass. */
static void pump(struct client *c, int ms)
{
	pump_until(c, ms, watched_closed, NULL);
}

#define NVS(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}

/* Start one call with body `p` (framing included); `r` gets its result. */
static int32_t submit(struct client *c, struct result *r, const char *method, const char *path,
		      const char *type, const char *timeout, struct part *p)
{
	nghttp2_nv nv[] = {
		NVS(":method", method), NVS(":scheme", "http"), NVS(":authority", "test"),
		NVS(":path", path),     NVS("te", "trailers"),  NVS("content-type", type),
		NVS("grpc-timeout", timeout ? timeout : ""),
	};
	nghttp2_data_provider prd = {.source.ptr = p, .read_callback = c_body};

	memset(r, 0, sizeof *r);
	r->grpc = -1;
	c->r = r;
	return nghttp2_submit_request(c->h2, NULL, nv, timeout ? 7 : 6, &prd, r);
}

/* Start one call: `body` is sent as is (framing included). */
static int32_t start(struct client *c, struct result *r, const char *method, const char *path,
		     const char *type, const char *timeout, const void *body, size_t len)
{
	c->body = (struct part){.buf = body, .len = len};
	return submit(c, r, method, path, type, timeout, &c->body);
}

/* A framed ScaledObjectRef named `name`, into buf; returns its length. */
static size_t request(uint8_t *buf, size_t n, const char *name)
{
	Externalscaler__ScaledObjectRef ref = EXTERNALSCALER__SCALED_OBJECT_REF__INIT;
	size_t len;

	ref.name = (char *)name;
	len = protobuf_c_message_get_packed_size(&ref.base);
	assert_true(len + 5 <= n);
	assert_int_equal(gp_grpc_frame_header(buf, len), 0);
	protobuf_c_message_pack(&ref.base, buf + 5);
	return len + 5;
}

/* Call and wait for the end of the call. */
static void call(struct client *c, struct result *r, const char *path, const void *body,
		 size_t len, const char *type, const char *timeout)
{
	assert_true(start(c, r, "POST", path, type ? type : "application/grpc", timeout, body,
			  len) > 0);
	pump(c, 5000);
	assert_true(r->closed);
}

/* The messages of a result: count them, and check the first's field. */
static int messages(const struct result *r, int *first_result)
{
	size_t off = 0;
	int n = 0;

	while (off < r->len) {
		const uint8_t *msg;
		size_t mlen, used;
		assert_int_equal(gp_grpc_frame_parse(r->body + off, r->len - off, 4096, &msg, &mlen,
						     &used), 1);
		if (n == 0 && first_result) {
			Externalscaler__IsActiveResponse *a =
				externalscaler__is_active_response__unpack(NULL, mlen, msg);
			assert_non_null(a);
			*first_result = a->result;
			externalscaler__is_active_response__free_unpacked(a, NULL);
		}
		off += used;
		n++;
	}
	return n;
}

static int connect_to(int port, const char *unix_path)
{
	int fd;

	if (unix_path) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(un.sun_path, sizeof un.sun_path, "%s", unix_path);
		assert_int_equal(connect(fd, (struct sockaddr *)&un, sizeof un), 0);
	} else {
		struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		fd = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(fd, (struct sockaddr *)&in, sizeof in), 0);
	}
	return fd;
}

struct target {
	int port;
	const char *unix_path;
};

/* Every case, on one connection, then the dropped-connection case. */
static void client_main(const struct target *t)
{
	static uint8_t big[MAX_MESSAGE * 2];
	uint8_t buf[512], two[1024];
	struct client c, c2;
	struct result r;
	size_t n;
	int first = -1;

	client_open(&c, connect_to(t->port, t->unix_path));

	n = request(buf, sizeof buf, "yes");
	call(&c, &r, "/t.T/Echo", buf, n, NULL, NULL);
	assert_int_equal(r.http, 200);
	assert_int_equal(r.grpc, GP_GRPC_OK);
	assert_int_equal(messages(&r, &first), 1);
	assert_int_equal(first, 1);

	/* Also "application/grpc+proto". */
	call(&c, &r, "/t.T/Stream", buf, n, "application/grpc+proto", NULL);
	assert_int_equal(r.grpc, GP_GRPC_OK);
	assert_int_equal(messages(&r, &first), 3);

	call(&c, &r, "/t.T/Nope", buf, n, NULL, NULL);
	assert_int_equal(r.http, 200);
	assert_int_equal(r.grpc, GP_GRPC_UNIMPLEMENTED);
	assert_non_null(strstr(r.message, "/t.T/Nope"));

	/* Over the cap: refused from the prefix, before the body is in. */
	memset(big, 0, sizeof big);
	assert_int_equal(gp_grpc_frame_header(big, sizeof big - 5), 0);
	call(&c, &r, "/t.T/Echo", big, sizeof big, NULL, NULL);
	assert_int_equal(r.grpc, GP_GRPC_RESOURCE_EXHAUSTED);
	assert_int_equal(messages(&r, NULL), 0);

	buf[0] = 1; /* compressed */
	call(&c, &r, "/t.T/Echo", buf, n, NULL, NULL);
	assert_int_equal(r.grpc, GP_GRPC_UNIMPLEMENTED);
	assert_non_null(strstr(r.message, "compressed"));
	buf[0] = 0;

	memcpy(two, buf, n);
	memcpy(two + n, buf, n);
	call(&c, &r, "/t.T/Echo", two, 2 * n, NULL, NULL);
	assert_int_equal(r.grpc, GP_GRPC_INTERNAL);
	assert_non_null(strstr(r.message, "more than one"));

	call(&c, &r, "/t.T/Echo", buf, 0, NULL, NULL);
	assert_int_equal(r.grpc, GP_GRPC_INTERNAL);
	assert_non_null(strstr(r.message, "no message"));

	call(&c, &r, "/t.T/Echo", buf, n - 1, NULL, NULL); /* cut short */
	assert_int_equal(r.grpc, GP_GRPC_INTERNAL);

	memcpy(two, buf, 5);
	memset(two + 5, 0xff, n - 5); /* not a ScaledObjectRef */
	call(&c, &r, "/t.T/Echo", two, n, NULL, NULL);
	assert_int_equal(r.grpc, GP_GRPC_INTERNAL);

	call(&c, &r, "/t.T/NoReply", buf, n, NULL, NULL);
	assert_int_equal(r.grpc, GP_GRPC_INTERNAL);

	call(&c, &r, "/t.T/Fail", buf, n, NULL, NULL);
	assert_int_equal(r.grpc, GP_GRPC_UNAVAILABLE);
	assert_string_equal(r.message, "broker down: 100%25 gone%0A");

	call(&c, &r, "/t.T/Echo", buf, n, "application/json", NULL);
	assert_int_equal(r.http, 415);
	assert_int_equal(r.grpc, -1);

	/* The server ends a call at the client's deadline (this client has
	 * no deadline of its own), and tells the handler. */
	call(&c, &r, "/t.T/Hang", buf, n, NULL, "200m");
	assert_int_equal(r.grpc, GP_GRPC_DEADLINE_EXCEEDED);

	/* A client cancel (RST_STREAM) reaches the handler too. */
	int32_t id = start(&c, &r, "POST", "/t.T/Hang", "application/grpc", NULL, buf, n);
	assert_true(id > 0);
	pump(&c, 200);
	assert_false(r.closed);
	assert_int_equal(nghttp2_submit_rst_stream(c.h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL), 0);
	pump(&c, 200);
	assert_true(r.closed);

	/* The connection still serves. */
	call(&c, &r, "/t.T/Echo", buf, n, NULL, "5S");
	assert_int_equal(r.grpc, GP_GRPC_OK);

	/* A connection dropped with a call open: the handler hears of it. */
	client_open(&c2, connect_to(t->port, t->unix_path));
	assert_true(start(&c2, &r, "POST", "/t.T/Hang", "application/grpc", NULL, buf, n) > 0);
	pump(&c2, 200);
	client_close(&c2);

	call(&c, &r, "/t.T/Quit", buf, n, NULL, NULL);
	assert_int_equal(r.grpc, GP_GRPC_OK);
	client_close(&c);
}

static void *loop_main(void *arg)
{
	return (void *)(intptr_t)gp_loop_run(arg);
}

static void serve(const char *listen, const char *unix_path)
{
	struct gp_loop *loop = gp_loop_new();
	struct gp_grpc_opts o = {.listen = listen, .max_message = MAX_MESSAGE};
	struct target t = {.unix_path = unix_path};
	struct gp_grpc *g;
	pthread_t th;
	void *rc;

	assert_non_null(loop);
	cancelled = hang_calls = handler_errors = 0;
	assert_int_equal(gp_grpc_start(&g, gp_loop_base(loop), &o, methods, loop), 0);
	t.port = gp_grpc_port(g);
	assert_true(unix_path || t.port > 0);
	/* The server on its own thread; the client, which asserts, on ours. */
	assert_int_equal(pthread_create(&th, NULL, loop_main, loop), 0);
	client_main(&t);
	pthread_join(th, &rc);
	assert_null(rc);
	gp_grpc_stop(g);
	gp_loop_free(loop);
	/* Deadline, RST_STREAM and the dropped connection: every Hang call
	 * was ended and its handler told, once. */
	assert_int_equal(hang_calls, 3);
	assert_int_equal(cancelled, 3);
	assert_int_equal(handler_errors, 0);
}

static void test_server_tcp(void **state)
{
	(void)state;
	serve("127.0.0.1:0", NULL);
}

static void test_server_unix(void **state)
{
	char dir[] = "/tmp/gp-grpc-XXXXXX", path[64], listen[80];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/s.sock", dir);
	snprintf(listen, sizeof listen, "unix:%s", path);
	serve(listen, path);
	assert_int_equal(access(path, F_OK), -1); /* removed at stop */
	rmdir(dir);
}

static void test_bad_listen(void **state)
{
	static const char *const bad[] = {"9090", "host:", "127.0.0.1:99999", "[::1]9090",
					  ":x", "unix:", "nosuchhost.invalid:80"};
	struct gp_loop *loop = gp_loop_new();
	struct gp_grpc *g;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct gp_grpc_opts o = {.listen = bad[i]};
		int rc = gp_grpc_start(&g, gp_loop_base(loop), &o, methods, NULL);
		if (rc != -EINVAL)
			fail_msg("'%s': %d", bad[i], rc);
	}
	/* A path that is not a socket is never removed to make room. */
	{
		struct gp_grpc_opts o = {.listen = "unix:/etc/hostname"};
		assert_int_equal(gp_grpc_start(&g, gp_loop_base(loop), &o, methods, NULL), -EEXIST);
		assert_int_equal(access("/etc/hostname", F_OK), 0);
	}
	gp_loop_free(loop);
}

/* Out of descriptors: accepts pause (one log line) instead of spinning on
 * the readable listener, and resume once descriptors are free. */
static void test_out_of_descriptors(void **state)
{
	int errp[2], portp[2], conns[8], status, port, c;
	char log[65536], frame[9];
	size_t got = 0;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(errp), 0);
	assert_int_equal(pipe(portp), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gp_loop *loop = gp_loop_new();
		struct gp_grpc_opts o = {.listen = "127.0.0.1:0"};
		struct gp_grpc *g;
		int p;

		dup2(errp[1], 2);
		close(errp[0]);
		close(portp[0]);
		gp_log_setup(GP_LOG_WARN, "test");
		alarm(20); /* never outlive the test */
		if (!loop || gp_grpc_start(&g, gp_loop_base(loop), &o, methods, loop))
			_exit(3);
		p = gp_grpc_port(g);
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
	/* Serving again: a new connection gets the server's SETTINGS. */
	c = fdstarve_connect(port);
	assert_true(c >= 0);
	{
		struct pollfd pf = {.fd = c, .events = POLLIN};
		if (poll(&pf, 1, 5000) != 1 || read(c, frame, sizeof frame) != (ssize_t)sizeof frame) {
			kill(pid, SIGKILL);
			fail_msg("the server did not serve again once descriptors were free");
		}
	}
	close(c);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(errp[0]);
	{
		int n = 0;
		for (const char *q = log; (q = strstr(q, "pausing new connections")); q++)
			n++;
		if (n != 1 || got > 4096)
			fail_msg("want one pause line and a short log, got %d lines in %zu bytes:\n%.2000s",
				 n, got, log);
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* --- limits: what clients that misbehave cannot do to those that work ---- */

/* A server with options `o` on its own thread, for the tests below. */
struct bg {
	struct gp_loop *loop;
	struct gp_grpc *g;
	pthread_t th;
	int port;
};

static void bg_start(struct bg *b, const struct gp_grpc_opts *o)
{
	b->loop = gp_loop_new();
	assert_non_null(b->loop);
	cancelled = hang_calls = handler_errors = 0;
	assert_int_equal(gp_grpc_start(&b->g, gp_loop_base(b->loop), o, methods, b->loop), 0);
	server = b->g;
	b->port = gp_grpc_port(b->g);
	assert_int_equal(pthread_create(&b->th, NULL, loop_main, b->loop), 0);
}

/* Quit over a connection of its own (again while it is turned away: the
 * server may not have seen the tests' connections close yet), then join
 * and stop.  Every Hang call was ended and its handler told, once. */
static void bg_stop(struct bg *b)
{
	uint8_t buf[64];
	size_t n = request(buf, sizeof buf, "x");
	void *rc;
	int ok = 0;

	for (int i = 0; i < 40 && !ok; i++) {
		struct client c;
		struct result r;
		client_open(&c, connect_to(b->port, NULL));
		assert_true(start(&c, &r, "POST", "/t.T/Quit", "application/grpc", NULL, buf, n) > 0);
		pump(&c, 2000);
		ok = r.closed && r.grpc == GP_GRPC_OK;
		client_close(&c);
		if (!ok)
			usleep(50000);
	}
	assert_true(ok);
	pthread_join(b->th, &rc);
	assert_null(rc);
	gp_grpc_stop(b->g);
	gp_loop_free(b->loop);
	server = NULL;
	assert_int_equal(cancelled, hang_calls);
	assert_int_equal(handler_errors, 0);
}

/* A client whose preface and SETTINGS the server has answered. */
static void client_ready(struct client *c, int port)
{
	client_open(c, connect_to(port, NULL));
	assert_true(pump_until(c, 2000, got_settings, NULL));
	assert_int_equal(nghttp2_session_send(c->h2), 0); /* the ACK */
}

/* A unary Echo on `c`, answered OK. */
static void echo_ok(struct client *c)
{
	uint8_t buf[64];
	struct result r;

	call(c, &r, "/t.T/Echo", buf, request(buf, sizeof buf, "yes"), NULL, "5S");
	assert_int_equal(r.grpc, GP_GRPC_OK);
	assert_int_equal(messages(&r, NULL), 1);
}

/* The server's gp_grpc_buffered, asked over `c`. */
static long buffered_now(struct client *c)
{
	uint8_t buf[64];
	struct result r;
	const uint8_t *msg;
	size_t mlen, used;
	Externalscaler__GetMetricsResponse *m;
	long v;

	call(c, &r, "/t.T/Buffered", buf, request(buf, sizeof buf, "x"), NULL, "5S");
	assert_int_equal(r.grpc, GP_GRPC_OK);
	assert_int_equal(gp_grpc_frame_parse(r.body, r.len, sizeof r.body, &msg, &mlen, &used), 1);
	m = externalscaler__get_metrics_response__unpack(NULL, mlen, msg);
	assert_non_null(m);
	assert_int_equal(m->n_metricvalues, 1);
	v = (long)m->metricvalues[0]->metricvalue;
	externalscaler__get_metrics_response__free_unpacked(m, NULL);
	return v;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

#define HALF 16384     /* bytes each half-sent request sends */
#define ATTACKERS 4
#define STREAMS 32     /* per attacker connection */

/* Requests that never finish arriving hold at most max_conn_buffer bytes
 * per connection and max_buffer in all: past a cap the oldest of them end
 * RESOURCE_EXHAUSTED, and calls that arrive whole are still served, on
 * the same connection and on others.  Their bytes go with them. */
static void test_request_buffer_caps(void **state)
{
	static uint8_t half[HALF];
	static struct result r[ATTACKERS][STREAMS];
	static struct part part[ATTACKERS][STREAMS];
	struct gp_grpc_opts o = {.listen = "127.0.0.1:0", .max_message = 65536,
				 .max_conn_buffer = 256 << 10, .max_buffer = 512 << 10};
	struct client a[ATTACKERS], v;
	int open = 0, by_conn = 0, by_server = 0;
	struct timespec t0;
	struct bg b;
	long n;

	(void)state;
	memset(half, 'x', sizeof half);
	assert_int_equal(gp_grpc_frame_header(half, 60000), 0); /* under max_message */
	bg_start(&b, &o);
	client_ready(&v, b.port);
	for (int i = 0; i < ATTACKERS; i++) {
		client_ready(&a[i], b.port);
		for (int k = 0; k < STREAMS; k++) {
			part[i][k] = (struct part){.buf = half, .len = HALF, .hold = 1};
			assert_true(submit(&a[i], &r[i][k], "POST", "/t.T/Echo", "application/grpc",
					   NULL, &part[i][k]) > 0);
		}
		assert_true(pump_until(&a[i], 5000, all_sent,
				       &(struct sending){part[i], r[i], STREAMS}));
		if (i == 0) {
			ping(&a[0]);
			/* One connection: its own cap.  16 requests fit in 256 KiB. */
			n = buffered_now(&v);
			assert_true(n > 0 && n <= 256 << 10);
			for (int k = 0; k < STREAMS; k++)
				open += !r[0][k].closed;
			assert_int_equal(n, (long)open * HALF);
			assert_true(open <= 16);
			/* A call that arrives whole goes through on that very
			 * connection. */
			echo_ok(&a[0]);
		}
	}
	/* Two rounds: the server has read everything, then every attacker
	 * has read what that made the server answer it.  The server is at its
	 * total cap, so asking it, on v, ends one more request; hence ask
	 * first. */
	for (int i = 0; i < ATTACKERS; i++)
		ping(&a[i]);
	n = buffered_now(&v);
	for (int i = 0; i < ATTACKERS; i++)
		ping(&a[i]);
	open = 0;
	for (int i = 0; i < ATTACKERS; i++) {
		for (int k = 0; k < STREAMS; k++) {
			if (!r[i][k].closed) {
				open++;
				continue;
			}
			assert_int_equal(r[i][k].http, 200);
			assert_int_equal(r[i][k].grpc, GP_GRPC_RESOURCE_EXHAUSTED);
			by_conn += strstr(r[i][k].message, "connection holds") != NULL;
			by_server += strstr(r[i][k].message, "server holds") != NULL;
		}
	}
	/* At most 512 KiB held: 32 requests of 16 KiB; both caps acted. */
	assert_true(open <= 32);
	assert_int_equal(n, (long)open * HALF);
	assert_true(by_conn > 0 && by_server > 0);
	echo_ok(&v);
	/* Gone with their connections. */
	for (int i = 0; i < ATTACKERS; i++)
		client_close(&a[i]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((n = buffered_now(&v)) != 0 && ms_since(&t0) < 3000)
		usleep(20000);
	assert_int_equal(n, 0);
	client_close(&v);
	bg_stop(&b);
}

#define MAX_CONNS 8

/* Idle connections never lock a client out: at max_conns a newcomer
 * closes (GOAWAY) the connection that has gone longest without a call,
 * and is turned away only when every connection has a call open. */
static void test_idle_conn_eviction(void **state)
{
	struct gp_grpc_opts o = {.listen = "127.0.0.1:0", .max_message = MAX_MESSAGE,
				 .max_conns = MAX_CONNS};
	struct client c[MAX_CONNS + 1], x;
	struct result hang[MAX_CONNS + 1];
	struct part hp[MAX_CONNS + 1];
	uint8_t buf[64];
	size_t n = request(buf, sizeof buf, "x");
	struct bg b;

	(void)state;
	bg_start(&b, &o);
	for (int i = 0; i < MAX_CONNS; i++)
		client_ready(&c[i], b.port);
	/* The oldest connection calls: the idlest is now the second. */
	echo_ok(&c[0]);
	client_ready(&c[MAX_CONNS], b.port);
	echo_ok(&c[MAX_CONNS]);
	pump_until(&c[1], 2000, never, NULL);
	assert_true(c[1].goaway);
	assert_true(c[1].eof);
	client_close(&c[1]);
	/* The others still serve. */
	for (int i = 0; i <= MAX_CONNS; i++)
		if (i != 1)
			echo_ok(&c[i]);
	/* A call open on every connection: then a newcomer is turned away
	 * (the Echo after each Hang shows the server has the Hang). */
	for (int i = 0; i <= MAX_CONNS; i++) {
		if (i == 1)
			continue;
		hp[i] = (struct part){.buf = buf, .len = n};
		assert_true(submit(&c[i], &hang[i], "POST", "/t.T/Hang", "application/grpc", NULL,
				   &hp[i]) > 0);
		echo_ok(&c[i]);
		assert_false(hang[i].closed);
	}
	client_open(&x, connect_to(b.port, NULL));
	assert_false(pump_until(&x, 2000, got_settings, NULL));
	assert_true(x.eof);
	client_close(&x);
	for (int i = 0; i <= MAX_CONNS; i++)
		if (i != 1)
			client_close(&c[i]);
	bg_stop(&b);
	assert_int_equal(hang_calls, MAX_CONNS);
}

#define MANY 100 /* the old SETTINGS_MAX_CONCURRENT_STREAMS */

/* One connection with MANY long-lived streams (as KEDA keeps one
 * StreamIsActive per ScaledObject) and MANY requests half-sent: a unary
 * call on that same connection is still answered at once, where a
 * limit of MANY streams held it back in the client until its deadline. */
static void test_many_streams_one_conn(void **state)
{
	static struct result hang[MANY], half[MANY];
	static struct part hp[MANY], pp[MANY];
	struct gp_grpc_opts o = {.listen = "127.0.0.1:0", .max_message = MAX_MESSAGE};
	uint8_t buf[64], part[15] = {0};
	size_t n = request(buf, sizeof buf, "x");
	struct timespec t0;
	struct client c;
	struct result r;
	struct bg b;

	(void)state;
	assert_int_equal(gp_grpc_frame_header(part, 100), 0); /* 10 of 100 bytes */
	bg_start(&b, &o);
	client_ready(&c, b.port);
	for (int i = 0; i < MANY; i++) {
		hp[i] = (struct part){.buf = buf, .len = n};
		pp[i] = (struct part){.buf = part, .len = sizeof part, .hold = 1};
		assert_true(submit(&c, &hang[i], "POST", "/t.T/Hang", "application/grpc", NULL,
				   &hp[i]) > 0);
		assert_true(submit(&c, &half[i], "POST", "/t.T/Echo", "application/grpc", NULL,
				   &pp[i]) > 0);
	}
	ping(&c);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	call(&c, &r, "/t.T/Echo", buf, request(buf, sizeof buf, "yes"), NULL, "5S");
	assert_int_equal(r.grpc, GP_GRPC_OK);
	assert_true(ms_since(&t0) < 2000);
	for (int i = 0; i < MANY; i++)
		assert_false(hang[i].closed || half[i].closed);
	client_close(&c);
	bg_stop(&b);
	assert_int_equal(hang_calls, MANY);
}

#define CALLS 64

/* max_calls: a new call ends the oldest request still arriving, else
 * (only calls in progress) it is refused with REFUSED_STREAM; and a
 * request that has not all arrived within request_timeout_s ends. */
static void test_call_cap_and_request_timeout(void **state)
{
	static struct result half[40], hang[CALLS];
	static struct part pp[40], hp[CALLS];
	struct gp_grpc_opts o = {.listen = "127.0.0.1:0", .max_message = MAX_MESSAGE,
				 .max_calls = CALLS, .request_timeout_s = 1};
	uint8_t buf[64], part[15] = {0};
	size_t n = request(buf, sizeof buf, "x");
	struct client p, q;
	struct timespec t0;
	struct result r;
	struct bg b;

	(void)state;
	assert_int_equal(gp_grpc_frame_header(part, 100), 0);
	bg_start(&b, &o);
	client_ready(&p, b.port);
	client_ready(&q, b.port);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 40; i++) {
		pp[i] = (struct part){.buf = part, .len = sizeof part, .hold = 1};
		assert_true(submit(&p, &half[i], "POST", "/t.T/Echo", "application/grpc", NULL,
				   &pp[i]) > 0);
	}
	ping(&p);
	/* 40 half-sent + 30 streams + an Echo: 7 over the cap, and the 7
	 * oldest half-sent requests make room. */
	for (int i = 0; i < 30; i++) {
		hp[i] = (struct part){.buf = buf, .len = n};
		assert_true(submit(&q, &hang[i], "POST", "/t.T/Hang", "application/grpc", NULL,
				   &hp[i]) > 0);
	}
	ping(&q);
	echo_ok(&q);
	ping(&p);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(half[i].closed, i < 7);
		if (i < 7)
			assert_int_equal(half[i].grpc, GP_GRPC_RESOURCE_EXHAUSTED);
	}
	/* The rest end at their request timeout; the streams go on. */
	for (int i = 7; i < 40; i++) {
		p.r = &half[i];
		assert_true(pump_until(&p, 3000, watched_closed, NULL));
		assert_int_equal(half[i].grpc, GP_GRPC_RESOURCE_EXHAUSTED);
		assert_non_null(strstr(half[i].message, "did not arrive within 1 s"));
	}
	assert_true(ms_since(&t0) >= 900);
	/* CALLS streams in progress, none waiting: a new call is refused. */
	for (int i = 30; i < CALLS; i++) {
		hp[i] = (struct part){.buf = buf, .len = n};
		assert_true(submit(&q, &hang[i], "POST", "/t.T/Hang", "application/grpc", NULL,
				   &hp[i]) > 0);
	}
	ping(&q);
	call(&q, &r, "/t.T/Echo", buf, n, NULL, "5S");
	assert_int_equal(r.rst, NGHTTP2_REFUSED_STREAM);
	assert_int_equal(r.grpc, -1);
	for (int i = 0; i < CALLS; i++)
		assert_false(hang[i].closed);
	client_close(&p);
	client_close(&q);
	bg_stop(&b);
	assert_int_equal(hang_calls, CALLS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_parse),   cmocka_unit_test(test_frame_header),
		cmocka_unit_test(test_timeout),       cmocka_unit_test(test_server_tcp),
		cmocka_unit_test(test_out_of_descriptors),
		cmocka_unit_test(test_server_unix),   cmocka_unit_test(test_bad_listen),
		cmocka_unit_test(test_request_buffer_caps),
		cmocka_unit_test(test_idle_conn_eviction),
		cmocka_unit_test(test_many_streams_one_conn),
		cmocka_unit_test(test_call_cap_and_request_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
