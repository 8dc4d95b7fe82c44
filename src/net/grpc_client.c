/* grpc_client.c - see grpc_client.h. */
#include "net/grpc_client.h"

#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "net/grpc.h"

#define MAX_ANSWER (1u << 20) /* a Register answer is empty; a cap anyway */

struct call {
	int fd;
	uint64_t deadline_ns;
	const uint8_t *out;       /* the framed request */
	size_t out_len, out_off;
	uint8_t *in;              /* the answer's DATA, framed */
	size_t in_len;
	int status;               /* grpc-status; -1 none yet */
	char message[256];        /* grpc-message */
	int http_status;
	int closed;               /* our stream ended */
	int too_big;
};

/* Wait until fd is ready for `events` or the deadline.  0, or -ETIMEDOUT
 * / -errno. */
static int wait_fd(struct call *c, short events)
{
	for (;;) {
		uint64_t now = gp_now_ns();
		struct pollfd p = {.fd = c->fd, .events = events};
		int r;

		if (now >= c->deadline_ns)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)((c->deadline_ns - now) / 1000000 + 1));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *arg)
{
	struct call *c = arg;
	ssize_t n;

	(void)s;
	(void)flags;
	n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK
							       : NGHTTP2_ERR_CALLBACK_FAILURE;
	return n;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
			 uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct call *c = arg;
	size_t n = c->out_len - c->out_off;

	(void)s;
	(void)id;
	(void)src;
	if (n > len)
		n = len;
	memcpy(buf, c->out + c->out_off, n);
	c->out_off += n;
	if (c->out_off == c->out_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *arg)
{
	struct call *c = arg;

	(void)s;
	(void)f;
	(void)flags;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		c->http_status = atoi((const char *)value);
	else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
		c->status = atoi((const char *)value);
	else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
		snprintf(c->message, sizeof c->message, "%.*s", (int)valuelen, value);
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		   void *arg)
{
	struct call *c = arg;
	uint8_t *m;

	(void)s;
	(void)flags;
	(void)id;
	if (c->in_len + len > MAX_ANSWER) {
		c->too_big = 1;
		return 0;
	}
	m = realloc(c->in, c->in_len + len + 1);
	if (!m)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	c->in = m;
	memcpy(c->in + c->in_len, data, len);
	c->in_len += len;
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *arg)
{
	struct call *c = arg;

	(void)s;
	(void)id;
	(void)code;
	c->closed = 1;
	return 0;
}

static int connect_unix(const char *path, char *err, size_t n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, n, "%s: socket path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;

		snprintf(err, n, "cannot connect to %s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	return fd;
}

/* Drive the session until our stream closes or the deadline passes. */
static int run(nghttp2_session *s, struct call *c, char *err, size_t n)
{
	uint8_t buf[16384];

	while (!c->closed) {
		int rc = nghttp2_session_send(s);
		ssize_t got;

		if (rc != 0) {
			snprintf(err, n, "HTTP/2: %s", nghttp2_strerror(rc));
			return -EPROTO;
		}
		rc = wait_fd(c, POLLIN | (nghttp2_session_want_write(s) ? POLLOUT : 0));
		if (rc) {
			snprintf(err, n, "%s", rc == -ETIMEDOUT ? "no answer in time" : strerror(-rc));
			return rc;
		}
		got = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (got == 0) {
			snprintf(err, n, "the server closed the connection");
			return -ECONNRESET;
		}
		if (got < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			snprintf(err, n, "recv: %s", strerror(errno));
			return -errno;
		}
		if (nghttp2_session_mem_recv(s, buf, (size_t)got) < 0) {
			snprintf(err, n, "HTTP/2: the server sent garbage");
			return -EPROTO;
		}
	}
	return 0;
}

int gp_grpc_unary(const char *path, const char *method, const struct ProtobufCMessage *req,
		  const struct ProtobufCMessageDescriptor *resp_desc, struct ProtobufCMessage **resp,
		  int timeout_ms, char *err, size_t n)
{
	struct call c = {.fd = -1, .status = -1,
			 .deadline_ns = gp_now_ns() + (uint64_t)timeout_ms * 1000000ull};
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_session *s = NULL;
	size_t len = protobuf_c_message_get_packed_size(req);
	uint8_t *out = malloc(len + 5);
	char tmo[32];
	int rc;

	if (resp)
		*resp = NULL;
	if (!out || gp_grpc_frame_header(out, len)) {
		free(out);
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	protobuf_c_message_pack(req, out + 5);
	c.out = out;
	c.out_len = len + 5;
	snprintf(tmo, sizeof tmo, "%dm", timeout_ms);
	const nghttp2_nv hdrs[] = {
#define NV(k, v) {(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE}
		NV(":method", "POST"), NV(":scheme", "http"), NV(":path", method),
		NV(":authority", "localhost"), NV("content-type", "application/grpc"),
		NV("te", "trailers"), NV("grpc-timeout", tmo),
#undef NV
	};
	nghttp2_data_provider body = {.read_callback = read_body};

	rc = connect_unix(path, err, n);
	if (rc < 0)
		goto out;
	c.fd = rc;
	fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
	if (nghttp2_session_callbacks_new(&cb) != 0) {
		rc = -ENOMEM;
		goto out;
	}
	nghttp2_session_callbacks_set_send_callback(cb, on_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	if (nghttp2_session_client_new(&s, cb, &c) != 0 ||
	    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0) != 0 ||
	    nghttp2_submit_request(s, NULL, hdrs, sizeof hdrs / sizeof *hdrs, &body, NULL) < 0) {
		snprintf(err, n, "HTTP/2: cannot start the call");
		rc = -ENOMEM;
		goto out;
	}
	rc = run(s, &c, err, n);
	if (rc)
		goto out;
	if (c.status != 0) {
		snprintf(err, n, "%s answered %s: grpc-status %d%s%s", path, method, c.status,
			 c.message[0] ? ": " : "", c.message);
		rc = c.status < 0 ? -EPROTO : -EREMOTEIO;
		goto out;
	}
	if (resp) {
		const uint8_t *msg;
		size_t mlen, used;

		if (c.too_big || gp_grpc_frame_parse(c.in ? c.in : (const uint8_t *)"", c.in_len,
						      MAX_ANSWER, &msg, &mlen, &used) != 1 ||
		    !(*resp = protobuf_c_message_unpack(resp_desc, NULL, mlen, msg))) {
			snprintf(err, n, "%s answered %s with no message it could read", path, method);
			rc = -EPROTO;
			goto out;
		}
	}
	rc = 0;
out:
	if (s)
		nghttp2_session_del(s);
	if (cb)
		nghttp2_session_callbacks_del(cb);
	if (c.fd >= 0)
		close(c.fd);
	free(c.in);
	free(out);
	return rc;
}
