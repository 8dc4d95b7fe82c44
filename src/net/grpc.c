/* grpc.c - see grpc.h.
 *
 * One `struct conn` per accepted socket, holding an nghttp2 server session
 * fed from a libevent bufferevent; one `struct gp_grpc_call` per HTTP/2
 * stream, hung on the stream as nghttp2 user data and on its connection's
 * list (nghttp2_session_del does not report the streams it drops, so the
 * list is how a closing connection finds the calls it must end).
 *
 * Sending: a call's framed response messages wait in call->out; the
 * response's data provider hands them to nghttp2, defers when the buffer is
 * empty and the call is still open, and at the end submits the trailers.
 * nghttp2 writes into the bufferevent through send_cb, which pushes back
 * once 1 MiB is waiting for a slow reader.
 *
 * Re-entrancy: handlers run inside nghttp2's receive path, and cancel
 * callbacks inside its send path, so gp_grpc_send/finish never call into
 * nghttp2's I/O: they submit, and activate conn->flush, whose callback
 * sends.  A connection is closed only from libevent callbacks.
 *
 * Limits (gp_grpc_opts).  A request is "waiting" from its HEADERS until
 * its message is all there (END_STREAM), when the handler runs.  Waiting
 * requests are what a peer makes us hold at no cost to itself, so they sit
 * on two lists, oldest first (the server's and their connection's), and
 * every limit makes room by ending the oldest waiting request with
 * RESOURCE_EXHAUSTED, followed by RST_STREAM NO_ERROR so that its client
 * stops sending (RFC 9113 8.1):
 *  - their bytes, per connection (1 MiB) and in all (16 MiB).  The scaler
 *    runs in 64 MiB and KEDA's requests are a few hundred bytes, so a
 *    connection may still have a thousand in flight, and a few slow
 *    clients cannot take the server's memory;
 *  - their time: a request must arrive within 10 s of its headers;
 *  - calls at once in the server (4096; 1 to 2 KiB each, measured, with
 *    nghttp2's stream state), as one connection may open 1000.
 * Ending the oldest rather than the newcomer is what keeps a working
 * client served: its requests arrive whole, in one read, so they are never
 * the oldest waiting.  Flow control is left to nghttp2, which returns
 * window as bytes arrive: holding it back until a request is complete
 * would bound the bytes too, but one stalled request would then stall
 * every other stream of its connection.  Bytes are held nowhere else (the
 * socket's input is handed to nghttp2 at each read), so the caps bound it.
 *
 * SETTINGS_MAX_CONCURRENT_STREAMS is 1000, not the usual 100: KEDA keeps
 * a StreamIsActive call open per ScaledObject on its one connection, and
 * grpc-go holds back calls beyond the peer's limit, so at 100 streams its
 * IsActive and GetMetrics calls would wait for their deadline.  The caps
 * above, not this number, bound memory.
 *
 * At max_conns a newcomer closes (GOAWAY) the connection that has gone
 * longest without a call; only when each one has a call open is the
 * newcomer refused.  An idle grpc-go client reconnects by itself at its
 * next call, so idle connections (half-open, or an attacker's) never lock
 * out one that works.
 */
#include "net/grpc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "net/accept.h"
#include "net/addr.h"

#define DEFAULT_MAX_MESSAGE (4u << 20)
#define DEFAULT_MAX_STREAMS 1000u  /* see the file comment */
#define DEFAULT_MAX_CALLS 4096u
#define DEFAULT_MAX_CONNS 256u
#define DEFAULT_CONN_BUFFER (1u << 20)
#define DEFAULT_BUFFER (16u << 20)
/* KEDA polls every 30 s (pollingInterval) on one connection: 120 s keeps
 * it open across polls, even at a few times that interval, while
 * abandoned connections go soon.  Closing KEDA's costs little anyway:
 * grpc-go reconnects at its next call. */
#define DEFAULT_IDLE_S 120
/* KEDA's requests (a few hundred bytes) arrive at once; 10 s leaves a
 * request of max_message time over a slow link. */
#define DEFAULT_REQUEST_S 10
#define WRITE_TIMEOUT_S 30        /* a peer that takes none of our bytes */
#define MAX_HEADER_BYTES 16384u   /* request header block, as HTTP/2 counts it */
#define MAX_PATH 256u             /* longer method names are unknown anyway */
#define MAX_PENDING_OUT (1u << 20) /* per call, and per connection socket */
#define MAX_STATUS_MESSAGE 512u
#define MAX_DEADLINE_S (30L * 24 * 3600)

struct conn;

/* The waiting requests (see the file comment), oldest at the head: one
 * list per connection and one for the server, linked through the call's
 * wait[CONN] and wait[SRV]. */
enum { SRV, CONN };
struct waitq {
	struct gp_grpc_call *head, *tail;
};

struct gp_grpc {
	struct event_base *base;
	struct evconnlistener *lis;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *h2opt;
	const struct gp_grpc_method *methods;
	void *arg;
	size_t max_message, max_conn_buffer, max_buffer;
	size_t buffered;      /* request bytes held by waiting calls */
	unsigned max_streams, max_calls, max_conns;
	unsigned nconns, ncalls; /* ncalls: until freed, ended ones too */
	int idle_timeout_s, request_timeout_s;
	int port;
	char *unix_path;      /* removed at stop */
	struct conn *conns;
	struct waitq waiting;
	struct event *request_timer; /* for the head of `waiting` */
	struct gp_accept_pause pause; /* accepts, when out of descriptors */
};

struct conn {
	struct gp_grpc *srv;
	struct bufferevent *bev;
	nghttp2_session *h2;
	struct gp_grpc_call *calls;
	unsigned ncalls;
	size_t buffered;      /* request bytes held by its waiting calls */
	uint64_t idle_since;  /* gp_now_ns when ncalls last became 0 */
	struct waitq waiting;
	struct event *flush;  /* sends what was submitted; see the file comment */
	struct conn *prev, *next;
};

struct gp_grpc_call {
	struct conn *conn;
	int32_t stream_id;
	const struct gp_grpc_method *method;
	/* The request, as its headers arrive. */
	char path[MAX_PATH];
	size_t header_bytes;
	unsigned post : 1, grpc_type : 1, path_too_long : 1, headers_too_big : 1,
		has_timeout : 1;
	uint64_t timeout_ns;
	struct evbuffer *in;  /* request bytes, at most max_message + 10 */
	size_t held;          /* of which counted in conn/srv->buffered */
	uint64_t begun;       /* gp_now_ns at its HEADERS */
	unsigned waiting : 1, eos : 1; /* on the wait lists; END_STREAM seen */
	struct {
		struct gp_grpc_call *prev, *next;
	} wait[2];            /* [SRV], [CONN]: see struct waitq */
	/* The response. */
	struct evbuffer *out; /* framed messages not yet given to nghttp2 */
	unsigned dispatched : 1, responded : 1, deferred : 1, finished : 1, closed : 1;
	unsigned sent;        /* messages queued so far */
	enum gp_grpc_status status;
	char *message;        /* percent-encoded, or NULL for none */
	struct event *deadline;
	void (*cancel_fn)(struct gp_grpc_call *, void *);
	void *cancel_arg;
	struct gp_grpc_call *prev, *next;
};

/* --- the wire format -------------------------------------------------------- */

int gp_grpc_frame_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
			size_t *msg_len, size_t *used)
{
	uint32_t n;

	if (len < 5)
		return 0;
	if (buf[0] != 0)
		return buf[0] == 1 ? -ENOTSUP : -EPROTO;
	n = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
	if (n > max)
		return -EMSGSIZE;
	if (len - 5 < n)
		return 0;
	*msg = buf + 5;
	*msg_len = n;
	*used = 5 + (size_t)n;
	return 1;
}

int gp_grpc_frame_header(uint8_t out[5], size_t len)
{
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	out[0] = 0;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
	return 0;
}

int gp_grpc_parse_timeout(const char *s, uint64_t *ns)
{
	static const struct {
		char unit;
		uint64_t ns;
	} units[] = {
		{'H', 3600000000000ull}, {'M', 60000000000ull}, {'S', 1000000000ull},
		{'m', 1000000ull},       {'u', 1000ull},        {'n', 1ull},
	};
	uint64_t v = 0;
	size_t i = 0;

	if (!s)
		return -EINVAL;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i == 8) /* the protocol allows at most 8 digits */
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0 || !s[i] || s[i + 1])
		return -EINVAL;
	for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
		if (units[u].unit != s[i])
			continue;
		/* 99999999H does not fit in 64 bits of nanoseconds: saturate. */
		*ns = v > UINT64_MAX / units[u].ns ? UINT64_MAX : v * units[u].ns;
		return 0;
	}
	return -EINVAL;
}

/* grpc-message is percent-encoded: every byte outside 0x20..0x7e, and '%'. */
static void percent_encode(const char *s, char *out, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s && o + 4 <= n; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch > 0x7e || ch == '%') {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
}

/* --- calls ------------------------------------------------------------------- */

#define NV(name, value)                                                               \
	{                                                                             \
		(uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, strlen(value), \
			NGHTTP2_NV_FLAG_NONE                                          \
	}

/* Have what was submitted sent, from the loop (see the file comment). */
static void conn_kick(struct conn *c)
{
	event_active(c->flush, 0, 0);
}

/* A connection with no call open may idle only so long; one whose peer
 * takes none of our bytes for WRITE_TIMEOUT_S is gone, calls or not
 * (libevent runs the write timeout only while output waits). */
static void conn_update_timeout(struct conn *c)
{
	struct timeval tv = {.tv_sec = c->srv->idle_timeout_s}, wtv = {.tv_sec = WRITE_TIMEOUT_S};

	bufferevent_set_timeouts(c->bev, c->ncalls ? NULL : &tv, &wtv);
}

static void wait_push(struct waitq *q, struct gp_grpc_call *call, int w)
{
	call->wait[w].prev = q->tail;
	call->wait[w].next = NULL;
	if (q->tail)
		q->tail->wait[w].next = call;
	else
		q->head = call;
	q->tail = call;
}

static void wait_remove(struct waitq *q, struct gp_grpc_call *call, int w)
{
	if (call->wait[w].prev)
		call->wait[w].prev->wait[w].next = call->wait[w].next;
	else
		q->head = call->wait[w].next;
	if (call->wait[w].next)
		call->wait[w].next->wait[w].prev = call->wait[w].prev;
	else
		q->tail = call->wait[w].prev;
}

/* The call's request is complete or the call ended: it waits no more, and
 * the request bytes it held are freed and no longer counted. */
static void call_unwait(struct gp_grpc_call *call)
{
	struct conn *c = call->conn;

	if (call->waiting) {
		wait_remove(&c->srv->waiting, call, SRV);
		wait_remove(&c->waiting, call, CONN);
		call->waiting = 0;
	}
	c->buffered -= call->held;
	c->srv->buffered -= call->held;
	call->held = 0;
	evbuffer_drain(call->in, evbuffer_get_length(call->in));
}

static void call_free(struct gp_grpc_call *call)
{
	struct conn *c = call->conn;

	call_unwait(call);
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	c->srv->ncalls--;
	if (--c->ncalls == 0)
		c->idle_since = gp_now_ns();
	if (call->deadline)
		event_free(call->deadline);
	evbuffer_free(call->in);
	evbuffer_free(call->out);
	free(call->message);
	free(call);
	conn_update_timeout(c);
}

/* Tell the application a call it kept is gone, once. */
static void call_cancelled(struct gp_grpc_call *call)
{
	void (*fn)(struct gp_grpc_call *, void *) = call->cancel_fn;

	call->cancel_fn = NULL;
	if (fn && !call->finished)
		fn(call, call->cancel_arg);
}

/* Trailers: grpc-status, and grpc-message when there is one. */
static int submit_trailers(struct gp_grpc_call *call)
{
	char status[16];

	snprintf(status, sizeof status, "%d", (int)call->status);
	nghttp2_nv nv[2] = {NV("grpc-status", status),
			    NV("grpc-message", call->message ? call->message : "")};

	return nghttp2_submit_trailer(call->conn->h2, call->stream_id, nv, call->message ? 2 : 1);
}

/* The response body: the queued messages, then the trailers. */
static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct gp_grpc_call *call = src->ptr;
	size_t n = 0;

	(void)s, (void)stream_id, (void)user;
	if (evbuffer_get_length(call->out)) {
		int got = evbuffer_remove(call->out, buf, length);
		if (got < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		n = (size_t)got;
	}
	if (evbuffer_get_length(call->out))
		return (ssize_t)n;
	if (!call->finished) {
		if (n)
			return (ssize_t)n;
		call->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	if (submit_trailers(call) != 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return (ssize_t)n;
}

/* Headers for a response with a body; messages and trailers follow. */
static int submit_response(struct gp_grpc_call *call)
{
	nghttp2_nv nv[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
	nghttp2_data_provider prd = {.source.ptr = call, .read_callback = read_body};

	call->responded = 1;
	return nghttp2_submit_response(call->conn->h2, call->stream_id, nv, 2, &prd);
}

/* A response of headers only: plain HTTP (status != 200: not a gRPC
 * request at all) or gRPC's Trailers-Only form. */
static int submit_headers_only(struct gp_grpc_call *call, const char *http_status)
{
	char status[16];
	size_t n = call->message ? 4 : 3;

	snprintf(status, sizeof status, "%d", (int)call->status);
	nghttp2_nv nv[] = {
		NV(":status", http_status), NV("content-type", "application/grpc"),
		NV("grpc-status", status), NV("grpc-message", call->message ? call->message : ""),
	};
	if (strcmp(http_status, "200") != 0)
		n = 1;
	call->responded = 1;
	return nghttp2_submit_response(call->conn->h2, call->stream_id, nv, n, NULL);
}

/* End a call: see gp_grpc_finish.  `http_status` other than "200" answers
 * a request that is not gRPC. */
static void call_end(struct gp_grpc_call *call, const char *http_status,
		     enum gp_grpc_status status, const char *msg)
{
	int rc;

	if (call->finished || call->closed)
		return;
	call->finished = 1;
	call->cancel_fn = NULL;
	call_unwait(call);
	if (call->deadline)
		event_del(call->deadline);
	if (!call->method || call->method->streaming || status != GP_GRPC_OK) {
		call->status = status;
	} else if (call->sent != 1) {
		call->status = GP_GRPC_INTERNAL;
		msg = "the server ended a unary call without a reply";
	} else {
		call->status = GP_GRPC_OK;
	}
	if (msg && *msg) {
		size_t n = strlen(msg) * 3 + 1; /* each byte encodes to at most 3 */
		call->message = malloc(n);  /* none when out of memory: still an answer */
		if (call->message)
			percent_encode(msg, call->message, n);
	}
	if (!call->responded)
		rc = submit_headers_only(call, http_status); /* see also on_frame_send */
	else if (call->deferred)
		rc = nghttp2_session_resume_data(call->conn->h2, call->stream_id);
	else
		rc = 0; /* the data provider is still running: it sees `finished` */
	call->deferred = 0;
	if (rc)
		nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE, call->stream_id,
					  NGHTTP2_INTERNAL_ERROR);
	conn_kick(call->conn);
}

void gp_grpc_finish(struct gp_grpc_call *call, enum gp_grpc_status status, const char *fmt, ...)
{
	char msg[MAX_STATUS_MESSAGE] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	}
	call_end(call, "200", status, msg);
}

int gp_grpc_send(struct gp_grpc_call *call, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	size_t queued = evbuffer_get_length(call->out);
	struct evbuffer_iovec v;
	uint8_t *p;

	if (call->finished || call->closed || (!call->method->streaming && call->sent))
		return -EPROTO;
	if (queued && queued + len + 5 > MAX_PENDING_OUT)
		return -ENOBUFS;
	if (evbuffer_reserve_space(call->out, (ev_ssize_t)(len + 5), &v, 1) != 1)
		return -ENOMEM;
	p = v.iov_base;
	if (gp_grpc_frame_header(p, len) != 0)
		return -EMSGSIZE;
	protobuf_c_message_pack(msg, p + 5);
	v.iov_len = len + 5;
	if (evbuffer_commit_space(call->out, &v, 1) != 0)
		return -ENOMEM;
	call->sent++;
	if (!call->responded) {
		if (submit_response(call) != 0)
			return -ENOMEM;
	} else if (call->deferred) {
		call->deferred = 0;
		nghttp2_session_resume_data(call->conn->h2, call->stream_id);
	}
	conn_kick(call->conn);
	return 0;
}

void gp_grpc_on_cancel(struct gp_grpc_call *call, void (*fn)(struct gp_grpc_call *, void *),
		       void *arg)
{
	call->cancel_fn = fn;
	call->cancel_arg = arg;
}

const char *gp_grpc_call_method(const struct gp_grpc_call *call)
{
	return call->method ? call->method->name : call->path;
}

/* The client's deadline passed with the call still open. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct gp_grpc_call *call = arg;

	(void)fd, (void)what;
	call_cancelled(call);
	call_end(call, "200", GP_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
}

/* End the oldest waiting request of `q` (links `w`) other than `spare`,
 * to make room.  Returns 0, or -1 when there is none. */
static int evict_waiting(struct waitq *q, int w, struct gp_grpc_call *spare, const char *why)
{
	struct gp_grpc_call *old = q->head;

	if (old && old == spare)
		old = old->wait[w].next;
	if (!old)
		return -1;
	call_end(old, "200", GP_GRPC_RESOURCE_EXHAUSTED, why);
	return 0;
}

/* Arm the request timer for the oldest waiting request, unless it is
 * armed (for an older one that left: it then runs for nothing, and arms
 * again). */
static void arm_request_timer(struct gp_grpc *srv)
{
	struct gp_grpc_call *old = srv->waiting.head;
	uint64_t now = gp_now_ns(), end, left;
	struct timeval tv;

	if (!old || evtimer_pending(srv->request_timer, NULL))
		return;
	end = old->begun + (uint64_t)srv->request_timeout_s * 1000000000u;
	left = end > now ? end - now : 0;
	tv.tv_sec = (time_t)(left / 1000000000u);
	tv.tv_usec = (suseconds_t)(left % 1000000000u / 1000u);
	evtimer_add(srv->request_timer, &tv);
}

/* Requests that have taken request_timeout_s to arrive, and not all of
 * it, end (see the file comment). */
static void on_request_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gp_grpc *srv = arg;
	/* A millisecond of slack: libevent's clock may run a hair ahead. */
	uint64_t now = gp_now_ns() + 1000000u, limit = (uint64_t)srv->request_timeout_s * 1000000000u;
	struct gp_grpc_call *old;
	char why[96];

	(void)fd, (void)what;
	snprintf(why, sizeof why, "the request message did not arrive within %d s",
		 srv->request_timeout_s);
	while ((old = srv->waiting.head) && now - old->begun >= limit)
		call_end(old, "200", GP_GRPC_RESOURCE_EXHAUSTED, why);
	arm_request_timer(srv);
}

/* End a call whose request bytes did not frame (rc from gp_grpc_frame_parse,
 * 1 meaning a whole message with more bytes after it). */
static void frame_error(struct gp_grpc_call *call, int rc)
{
	size_t max = call->conn->srv->max_message;

	if (rc == -EMSGSIZE)
		gp_grpc_finish(call, GP_GRPC_RESOURCE_EXHAUSTED,
			       "request message larger than %zu bytes", max);
	else if (rc == -ENOTSUP)
		gp_grpc_finish(call, GP_GRPC_UNIMPLEMENTED,
			       "compressed messages are not supported (identity only)");
	else if (rc == 1)
		gp_grpc_finish(call, GP_GRPC_INTERNAL,
			       "more than one request message for a call that takes one");
	else if (rc == 0 && evbuffer_get_length(call->in) == 0)
		gp_grpc_finish(call, GP_GRPC_INTERNAL, "the request carries no message");
	else
		gp_grpc_finish(call, GP_GRPC_INTERNAL, "malformed or incomplete request message");
}

/* The request is complete: decode it and run the handler. */
static void dispatch(struct gp_grpc_call *call)
{
	struct gp_grpc *srv = call->conn->srv;
	size_t len = evbuffer_get_length(call->in), mlen = 0, used = 0;
	const uint8_t *buf = evbuffer_pullup(call->in, -1), *msg = NULL;
	ProtobufCMessage *req;
	int rc;

	if (call->dispatched || call->finished)
		return;
	call->dispatched = 1;
	rc = gp_grpc_frame_parse(buf, len, srv->max_message, &msg, &mlen, &used);
	if (rc != 1 || used != len) {
		frame_error(call, rc);
		return;
	}
	req = protobuf_c_message_unpack(call->method->request, NULL, mlen, msg);
	call_unwait(call); /* decoded: its bytes go before the handler runs */
	if (!req) {
		gp_grpc_finish(call, GP_GRPC_INTERNAL, "request is not a valid %s",
			       call->method->request->name);
		return;
	}
	gp_debug("grpc: %s", call->method->name);
	call->method->fn(call, req, srv->arg);
	protobuf_c_message_free_unpacked(req, NULL);
}

/* The request headers are all there: is this a call we serve? */
static void check_request(struct gp_grpc_call *call)
{
	struct gp_grpc *srv = call->conn->srv;

	if (call->headers_too_big) {
		call_end(call, "431", GP_GRPC_INTERNAL, NULL);
		return;
	}
	if (!call->post) {
		call_end(call, "405", GP_GRPC_INTERNAL, NULL);
		return;
	}
	if (!call->grpc_type) {
		call_end(call, "415", GP_GRPC_INTERNAL, NULL);
		return;
	}
	for (const struct gp_grpc_method *m = srv->methods; m->name && !call->path_too_long; m++) {
		if (strcmp(m->name, call->path) == 0) {
			call->method = m;
			break;
		}
	}
	if (!call->method) {
		gp_grpc_finish(call, GP_GRPC_UNIMPLEMENTED, "unknown method %s", call->path);
		return;
	}
	if (call->has_timeout) {
		uint64_t s = call->timeout_ns / 1000000000u;
		struct timeval tv = {
			.tv_sec = s > (uint64_t)MAX_DEADLINE_S ? MAX_DEADLINE_S : (time_t)s,
			.tv_usec = (suseconds_t)(call->timeout_ns % 1000000000u / 1000u),
		};
		call->deadline = evtimer_new(srv->base, on_deadline, call);
		if (!call->deadline || evtimer_add(call->deadline, &tv) != 0) {
			gp_grpc_finish(call, GP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
	}
}

/* --- nghttp2 callbacks ----------------------------------------------------- */

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *user)
{
	struct conn *c = user;

	(void)s, (void)flags;
	/* A reader this far behind gets no more until the socket drains
	 * (on_write sends again). */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) >= MAX_PENDING_OUT)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (bufferevent_write(c->bev, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)len;
}

/* A new call.  At max_calls it ends the oldest waiting request to make
 * room (see the file comment), else it is refused with REFUSED_STREAM,
 * which gRPC clients retry by themselves.  Ended calls count until their
 * streams close, which a peer that does not read may delay: past twice
 * the cap, new calls are refused whatever waits. */
static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct conn *c = user;
	struct gp_grpc *srv = c->srv;
	struct gp_grpc_call *call;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (srv->ncalls >= srv->max_calls &&
	    (srv->ncalls / 2 >= srv->max_calls ||
	     evict_waiting(&srv->waiting, SRV, NULL, "the server is at its limit of calls") != 0)) {
		gp_debug("grpc: %u calls open, refusing another", srv->ncalls);
		return nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
						 NGHTTP2_REFUSED_STREAM) == 0
			       ? 0
			       : NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	call = calloc(1, sizeof *call);
	if (!call)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	call->conn = c;
	call->stream_id = f->hd.stream_id;
	call->in = evbuffer_new();
	call->out = evbuffer_new();
	if (!call->in || !call->out) {
		if (call->in)
			evbuffer_free(call->in);
		if (call->out)
			evbuffer_free(call->out);
		free(call);
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	c->ncalls++;
	srv->ncalls++;
	call->begun = gp_now_ns();
	call->waiting = 1; /* until its message is all there */
	wait_push(&srv->waiting, call, SRV);
	wait_push(&c->waiting, call, CONN);
	arm_request_timer(srv);
	conn_update_timeout(c);
	nghttp2_session_set_stream_user_data(s, f->hd.stream_id, call);
	return 0;
}

/* "application/grpc", alone or followed by "+proto", ";..." and such. */
static int is_grpc_type(const uint8_t *v, size_t n)
{
	static const char t[] = "application/grpc";
	size_t tn = sizeof t - 1;

	return n >= tn && memcmp(v, t, tn) == 0 && (n == tn || v[tn] == '+' || v[tn] == ';');
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct gp_grpc_call *call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)flags, (void)user;
	if (!call || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers from the client carry nothing we use */
	call->header_bytes += namelen + valuelen + 32; /* RFC 7540 6.5.2 */
	if (call->header_bytes > MAX_HEADER_BYTES) {
		call->headers_too_big = 1;
		return 0;
	}
#define IS(lit) (namelen == sizeof(lit) - 1 && memcmp(name, lit, namelen) == 0)
	if (IS(":method")) {
		call->post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
	} else if (IS(":path")) {
		if (valuelen >= sizeof call->path) {
			call->path_too_long = 1;
			valuelen = sizeof call->path - 1;
		}
		memcpy(call->path, value, valuelen);
		call->path[valuelen] = '\0';
	} else if (IS("content-type")) {
		call->grpc_type = is_grpc_type(value, valuelen);
	} else if (IS("grpc-timeout")) {
		char v[16];
		if (valuelen < sizeof v) {
			memcpy(v, value, valuelen);
			v[valuelen] = '\0';
			call->has_timeout = gp_grpc_parse_timeout(v, &call->timeout_ns) == 0;
		}
	}
#undef IS
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct gp_grpc_call *call;

	(void)user;
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (!call)
		return 0;
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
		call->eos = 1;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		check_request(call);
	if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->finished)
		dispatch(call);
	return 0;
}

/* Room for `len` more request bytes of `call` under both caps, made by
 * ending older waiting requests.  Returns 0, or -1 when only ending this
 * one would do. */
static int make_room(struct gp_grpc_call *call, size_t len)
{
	struct conn *c = call->conn;
	struct gp_grpc *srv = c->srv;

	while (c->buffered + len > srv->max_conn_buffer)
		if (evict_waiting(&c->waiting, CONN, call,
				  "the connection holds too many unfinished requests") != 0)
			return -1;
	while (srv->buffered + len > srv->max_buffer)
		if (evict_waiting(&srv->waiting, SRV, call,
				  "the server holds too many unfinished requests") != 0)
			return -1;
	return 0;
}

/* The answer to a call whose request is still arriving has gone out: ask
 * the client to stop sending (RST_STREAM NO_ERROR, RFC 9113 8.1), which
 * also frees the stream now rather than when the client is done.  Not
 * before: nghttp2 drops what it has not sent of a stream being reset. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct gp_grpc_call *call;

	(void)user;
	if (!(f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (call && !call->eos &&
	    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *user)
{
	struct gp_grpc_call *call = nghttp2_session_get_stream_user_data(s, stream_id);
	struct gp_grpc *srv;
	size_t have, max;

	(void)flags, (void)user;
	if (!call || call->finished || !call->waiting)
		return 0;
	srv = call->conn->srv;
	max = srv->max_message;
	have = evbuffer_get_length(call->in);
	/* One message and a second prefix are enough to tell what is wrong. */
	if (have + len > max + 10) {
		const uint8_t *msg;
		size_t mlen, used;
		evbuffer_add(call->in, data, len > 10 ? 10 : len);
		frame_error(call, gp_grpc_frame_parse(evbuffer_pullup(call->in, -1),
						      evbuffer_get_length(call->in), max, &msg,
						      &mlen, &used));
		return 0;
	}
	if (make_room(call, len) != 0) {
		call_end(call, "200", GP_GRPC_RESOURCE_EXHAUSTED,
			 "the server holds too many unfinished requests");
		return 0;
	}
	if (evbuffer_add(call->in, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	call->held += len;
	call->conn->buffered += len;
	srv->buffered += len;
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *user)
{
	struct gp_grpc_call *call = nghttp2_session_get_stream_user_data(s, stream_id);

	(void)error_code, (void)user;
	if (!call)
		return 0;
	call->closed = 1;
	call_cancelled(call);
	nghttp2_session_set_stream_user_data(s, stream_id, NULL);
	call_free(call);
	return 0;
}

/* --- connections ------------------------------------------------------------ */

static void conn_close(struct conn *c)
{
	struct gp_grpc *srv = c->srv;

	while (c->calls) {
		struct gp_grpc_call *call = c->calls;
		call->closed = 1;
		call_cancelled(call);
		call_free(call);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	nghttp2_session_del(c->h2);
	bufferevent_free(c->bev);
	event_free(c->flush);
	free(c);
}

/* Send what nghttp2 has; close when the session is over (both sides done
 * and the socket drained) or broken. */
static void conn_pump(struct conn *c)
{
	if (nghttp2_session_send(c->h2) != 0 ||
	    (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
	     evbuffer_get_length(bufferevent_get_output(c->bev)) == 0))
		conn_close(c);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	conn_pump(arg);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	ssize_t used;

	used = nghttp2_session_mem_recv(c->h2, evbuffer_pullup(in, -1), len);
	if (used < 0) {
		gp_debug("grpc: dropping a connection: %s", nghttp2_strerror((int)used));
		conn_close(c);
		return;
	}
	evbuffer_drain(in, (size_t)used);
	conn_pump(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_pump(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_close(arg);
}

/* Make room for a new connection: GOAWAY to `c`, which has no call open,
 * and close it.  The frame goes to the socket at once, best effort (an
 * idle peer's socket has room for it), so that the slot is free now.  A
 * bufferevent's output drains only through the bufferevent (it is frozen
 * at the start); this one is about to be freed, so we drain it. */
static void conn_evict(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	/* nghttp2_session_send reports the end of the session it has just
	 * sent (NGHTTP2_ERR_EOF): not a failure here. */
	if (nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR) == 0)
		(void)nghttp2_session_send(c->h2);
	evbuffer_unfreeze(out, 1);
	if (evbuffer_get_length(out) && evbuffer_write(out, bufferevent_getfd(c->bev)) < 0)
		gp_debug("grpc: GOAWAY to an idle connection: %s", strerror(errno));
	conn_close(c);
}

/* The connection that has gone longest without a call, or NULL when
 * every one has a call open. */
static struct conn *idlest(struct gp_grpc *srv)
{
	struct conn *best = NULL;

	/* Newest first: on a tie the older one wins. */
	for (struct conn *c = srv->conns; c; c = c->next)
		if (!c->ncalls && (!best || c->idle_since <= best->idle_since))
			best = c;
	return best;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct gp_grpc *srv = arg;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->max_streams},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BYTES},
	};
	struct conn *c;
	int one = 1;

	(void)l, (void)salen;
	if (srv->nconns >= srv->max_conns) {
		struct conn *idle = idlest(srv);
		if (!idle) {
			gp_warn("grpc: %u connections open, each with a call, refusing another",
				srv->nconns);
			evutil_closesocket(fd);
			return;
		}
		gp_debug("grpc: %u connections open, closing the idlest", srv->nconns);
		conn_evict(idle);
	}
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c = calloc(1, sizeof *c);
	if (!c)
		goto fail;
	c->srv = srv;
	c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		free(c);
		goto fail;
	}
	c->flush = event_new(srv->base, -1, 0, on_flush, c);
	if (!c->flush || nghttp2_session_server_new2(&c->h2, srv->cbs, c, srv->h2opt) != 0) {
		if (c->flush)
			event_free(c->flush);
		bufferevent_free(c->bev);
		free(c);
		return;
	}
	c->idle_since = gp_now_ns();
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_update_timeout(c);
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv) != 0) {
		conn_close(c);
		return;
	}
	conn_pump(c);
	return;
fail:
	gp_warn("grpc: out of memory accepting a connection");
	evutil_closesocket(fd);
}

/* accept(2) failed: out of descriptors, pause instead of spinning. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct gp_grpc *srv = arg;

	(void)l;
	gp_accept_pause_error(&srv->pause, EVUTIL_SOCKET_ERROR());
}

/* --- the server ----------------------------------------------------------- */

/* A --listen address (net/addr.h) into an address to bind. */
static int tcp_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char host[256], port[8];
	int p, rc = -EINVAL;

	if (gp_addr_split(s, host, sizeof host, &p))
		return -EINVAL;
	snprintf(port, sizeof port, "%d", p);
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
		return -EINVAL;
	if (res->ai_addrlen <= sizeof *ss) {
		memcpy(ss, res->ai_addr, res->ai_addrlen);
		*len = res->ai_addrlen;
		rc = 0;
	}
	freeaddrinfo(res);
	return rc;
}

/* "unix:/path" (also "unix:///path"): replace an old socket there. */
static int unix_address(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	struct stat st;

	if (strncmp(path, "//", 2) == 0)
		path += 2;
	if (!*path || strlen(path) >= sizeof un->sun_path)
		return -EINVAL;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST; /* never remove what is not a socket */
		unlink(path);
	}
	memset(un, 0, sizeof *un);
	un->sun_family = AF_UNIX;
	strcpy(un->sun_path, path);
	*len = (socklen_t)sizeof *un;
	return 0;
}

int gp_grpc_start(struct gp_grpc **out, struct event_base *base, const struct gp_grpc_opts *o,
		  const struct gp_grpc_method *methods, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	struct gp_grpc *g;
	int is_unix, rc;

	if (!o->listen)
		return -EINVAL;
	is_unix = strncmp(o->listen, "unix:", 5) == 0;
	rc = is_unix ? unix_address(o->listen + 5, &ss, &sl) : tcp_address(o->listen, &ss, &sl);
	if (rc)
		return rc;
	g = calloc(1, sizeof *g);
	if (!g)
		return -ENOMEM;
	g->base = base;
	g->methods = methods;
	g->arg = arg;
	g->max_message = o->max_message ? o->max_message : DEFAULT_MAX_MESSAGE;
	g->max_streams = o->max_streams ? o->max_streams : DEFAULT_MAX_STREAMS;
	g->max_calls = o->max_calls ? o->max_calls : DEFAULT_MAX_CALLS;
	g->max_conns = o->max_conns ? o->max_conns : DEFAULT_MAX_CONNS;
	/* One request of the largest size must always fit, alone. */
	g->max_conn_buffer = o->max_conn_buffer ? o->max_conn_buffer : DEFAULT_CONN_BUFFER;
	if (g->max_conn_buffer < g->max_message + 10)
		g->max_conn_buffer = g->max_message + 10;
	g->max_buffer = o->max_buffer ? o->max_buffer : DEFAULT_BUFFER;
	if (g->max_buffer < g->max_conn_buffer)
		g->max_buffer = g->max_conn_buffer;
	g->idle_timeout_s = o->idle_timeout_s > 0 ? o->idle_timeout_s : DEFAULT_IDLE_S;
	g->request_timeout_s = o->request_timeout_s > 0 ? o->request_timeout_s : DEFAULT_REQUEST_S;
	rc = -ENOMEM;
	g->request_timer = evtimer_new(base, on_request_timer, g);
	if (!g->request_timer || nghttp2_option_new(&g->h2opt) != 0 ||
	    nghttp2_session_callbacks_new(&g->cbs) != 0)
		goto fail;
	/* nghttp2 would keep up to max_streams closed streams per connection
	 * for RFC 7540 priorities, which gRPC does not use. */
	nghttp2_option_set_no_closed_streams(g->h2opt, 1);
	nghttp2_session_callbacks_set_send_callback(g->cbs, send_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(g->cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(g->cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(g->cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g->cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_send_callback(g->cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(g->cbs, on_stream_close);
	if (is_unix) {
		const char *p = o->listen + 5;
		g->unix_path = strdup(strncmp(p, "//", 2) == 0 ? p + 2 : p);
		if (!g->unix_path) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	errno = 0;
	g->lis = evconnlistener_new_bind(base, on_accept, g,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
						 (is_unix ? 0 : LEV_OPT_REUSEABLE),
					 128, (struct sockaddr *)&ss, (int)sl);
	if (!g->lis) {
		rc = errno ? -errno : -EADDRNOTAVAIL;
		free(g->unix_path);
		g->unix_path = NULL; /* not ours to remove */
		goto fail;
	}
	if ((rc = gp_accept_pause_init(&g->pause, base, g->lis, "grpc"))) {
		evconnlistener_free(g->lis);
		if (g->unix_path)
			unlink(g->unix_path);
		goto fail;
	}
	evconnlistener_set_error_cb(g->lis, on_accept_error);
	if (!is_unix) {
		sl = sizeof ss;
		if (getsockname(evconnlistener_get_fd(g->lis), (struct sockaddr *)&ss, &sl) == 0)
			g->port = ntohs(ss.ss_family == AF_INET6
						? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	}
	*out = g;
	return 0;
fail:
	nghttp2_session_callbacks_del(g->cbs); /* these two take NULL */
	nghttp2_option_del(g->h2opt);
	if (g->request_timer)
		event_free(g->request_timer);
	free(g->unix_path);
	free(g);
	return rc;
}

int gp_grpc_port(const struct gp_grpc *g)
{
	return g->port;
}

size_t gp_grpc_buffered(const struct gp_grpc *g)
{
	return g->buffered;
}

void gp_grpc_stop(struct gp_grpc *g)
{
	if (!g)
		return;
	if (g->lis)
		evconnlistener_free(g->lis);
	gp_accept_pause_fini(&g->pause);
	while (g->conns)
		conn_close(g->conns);
	if (g->unix_path)
		unlink(g->unix_path);
	nghttp2_session_callbacks_del(g->cbs);
	nghttp2_option_del(g->h2opt);
	event_free(g->request_timer);
	free(g->unix_path);
	free(g);
}
