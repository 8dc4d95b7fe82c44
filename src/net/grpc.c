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

#include "common/log.h"
#include "net/accept.h"
#include "net/addr.h"

#define DEFAULT_MAX_MESSAGE (4u << 20)
#define DEFAULT_MAX_STREAMS 100u
#define DEFAULT_MAX_CONNS 256u
#define DEFAULT_IDLE_S 300
#define MAX_HEADER_BYTES 16384u   /* request header block, as HTTP/2 counts it */
#define MAX_PATH 256u             /* longer method names are unknown anyway */
#define MAX_PENDING_OUT (1u << 20) /* per call, and per connection socket */
#define MAX_STATUS_MESSAGE 512u
#define MAX_DEADLINE_S (30L * 24 * 3600)

struct conn;

struct gp_grpc {
	struct event_base *base;
	struct evconnlistener *lis;
	nghttp2_session_callbacks *cbs;
	const struct gp_grpc_method *methods;
	void *arg;
	size_t max_message;
	unsigned max_streams, max_conns, nconns;
	int idle_timeout_s;
	int port;
	char *unix_path;      /* removed at stop */
	struct conn *conns;
	struct gp_accept_pause pause; /* accepts, when out of descriptors */
};

struct conn {
	struct gp_grpc *srv;
	struct bufferevent *bev;
	nghttp2_session *h2;
	struct gp_grpc_call *calls;
	unsigned ncalls;
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
	/* The response. */
	struct evbuffer *out; /* framed messages not yet given to nghttp2 */
	unsigned dispatched : 1, responded : 1, deferred : 1, finished : 1, closed : 1;
	unsigned sent;        /* messages queued so far */
	enum gp_grpc_status status;
	char message[MAX_STATUS_MESSAGE * 3 + 1]; /* percent-encoded */
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

/* A connection with no call open may idle only so long. */
static void conn_update_timeout(struct conn *c)
{
	struct timeval tv = {.tv_sec = c->srv->idle_timeout_s};

	bufferevent_set_timeouts(c->bev, c->ncalls ? NULL : &tv, NULL);
}

static void call_free(struct gp_grpc_call *call)
{
	struct conn *c = call->conn;

	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	c->ncalls--;
	if (call->deadline)
		event_free(call->deadline);
	evbuffer_free(call->in);
	evbuffer_free(call->out);
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
	nghttp2_nv nv[2] = {NV("grpc-status", status), NV("grpc-message", call->message)};

	return nghttp2_submit_trailer(call->conn->h2, call->stream_id, nv,
				      call->message[0] ? 2 : 1);
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
	size_t n = call->message[0] ? 4 : 3;

	snprintf(status, sizeof status, "%d", (int)call->status);
	nghttp2_nv nv[] = {
		NV(":status", http_status), NV("content-type", "application/grpc"),
		NV("grpc-status", status), NV("grpc-message", call->message),
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
	percent_encode(msg ? msg : "", call->message, sizeof call->message);
	if (!call->responded)
		rc = submit_headers_only(call, http_status);
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

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct conn *c = user;
	struct gp_grpc_call *call;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
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
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		check_request(call);
	if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->finished)
		dispatch(call);
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *user)
{
	struct gp_grpc_call *call = nghttp2_session_get_stream_user_data(s, stream_id);
	size_t have, max;

	(void)flags, (void)user;
	if (!call || call->finished)
		return 0;
	max = call->conn->srv->max_message;
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
	if (evbuffer_add(call->in, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
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
		gp_warn("grpc: %u connections open, refusing another", srv->nconns);
		evutil_closesocket(fd);
		return;
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
	if (!c->flush || nghttp2_session_server_new(&c->h2, srv->cbs, c) != 0) {
		if (c->flush)
			event_free(c->flush);
		bufferevent_free(c->bev);
		free(c);
		return;
	}
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
	g->max_conns = o->max_conns ? o->max_conns : DEFAULT_MAX_CONNS;
	g->idle_timeout_s = o->idle_timeout_s > 0 ? o->idle_timeout_s : DEFAULT_IDLE_S;
	if (nghttp2_session_callbacks_new(&g->cbs) != 0) {
		free(g);
		return -ENOMEM;
	}
	nghttp2_session_callbacks_set_send_callback(g->cbs, send_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(g->cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(g->cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(g->cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g->cbs, on_data_chunk);
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
	nghttp2_session_callbacks_del(g->cbs);
	free(g->unix_path);
	free(g);
	return rc;
}

int gp_grpc_port(const struct gp_grpc *g)
{
	return g->port;
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
	free(g->unix_path);
	free(g);
}
