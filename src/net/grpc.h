/* grpc.h - a small gRPC server: HTTP/2 (nghttp2) on the event loop,
 * messages in protobuf-c.
 *
 * gpupool speaks gRPC to Kubernetes components that call it: KEDA's
 * external scaler client, and kubelet's device-plugin client.  Both use
 * plain-text HTTP/2 with prior knowledge (h2c), over TCP or a unix socket,
 * and only unary and server-streaming calls; that is all this layer does.
 *
 * A server has a table of methods (full name -> handler and message
 * types).  For each call it checks the request (POST, content-type
 * application/grpc, a known method), collects the one request message
 * under a size cap, decodes it and runs the handler on the loop's thread.
 * The handler answers with gp_grpc_send (once for a unary call, any number
 * of times for a streaming one) and ends the call with gp_grpc_finish,
 * now or later.  Errors go out as grpc-status / grpc-message trailers.
 * A client's grpc-timeout is honoured: a call still open at its deadline
 * ends with DEADLINE_EXCEEDED.
 *
 * What a peer can make the server hold is bounded (see gp_grpc_opts): the
 * bytes of requests still arriving, per connection and in all; how long a
 * request may take to arrive; calls and connections at once.  Limits make
 * room by ending the oldest half-sent request or the idlest connection
 * before they turn a newcomer away, so clients that never finish a
 * request or never call cannot lock out one that works.
 */
#ifndef GP_NET_GRPC_H
#define GP_NET_GRPC_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct ProtobufCMessage;           /* protobuf-c's message base */
struct ProtobufCMessageDescriptor; /* and its type */
struct gp_grpc;                    /* a listening server */
struct gp_grpc_call;               /* one call (one HTTP/2 stream) */

/* The status codes of the gRPC protocol (grpc/doc/statuscodes.md). */
enum gp_grpc_status {
	GP_GRPC_OK = 0,
	GP_GRPC_CANCELLED = 1,
	GP_GRPC_UNKNOWN = 2,
	GP_GRPC_INVALID_ARGUMENT = 3,
	GP_GRPC_DEADLINE_EXCEEDED = 4,
	GP_GRPC_NOT_FOUND = 5,
	GP_GRPC_ALREADY_EXISTS = 6,
	GP_GRPC_PERMISSION_DENIED = 7,
	GP_GRPC_RESOURCE_EXHAUSTED = 8,
	GP_GRPC_FAILED_PRECONDITION = 9,
	GP_GRPC_ABORTED = 10,
	GP_GRPC_OUT_OF_RANGE = 11,
	GP_GRPC_UNIMPLEMENTED = 12,
	GP_GRPC_INTERNAL = 13,
	GP_GRPC_UNAVAILABLE = 14,
	GP_GRPC_DATA_LOSS = 15,
	GP_GRPC_UNAUTHENTICATED = 16,
};

/* A handler: `req` is the decoded request, valid only during the call of
 * the handler (copy what you keep).  `arg` is the server's.  The handler
 * must end the call with gp_grpc_finish, before returning or later. */
typedef void (*gp_grpc_handler)(struct gp_grpc_call *call, const struct ProtobufCMessage *req,
				void *arg);

struct gp_grpc_method {
	const char *name; /* "/package.Service/Method", as on the wire */
	const struct ProtobufCMessageDescriptor *request;
	const struct ProtobufCMessageDescriptor *response;
	int streaming;    /* nonzero: server-streaming (any number of replies) */
	gp_grpc_handler fn;
};

struct gp_grpc_opts {
	const char *listen;      /* "127.0.0.1:9090", "[::1]:9090", ":9090" (every
	                            IPv4 address, "[::]:9090" every address);
	                            port 0 picks a free one; or
	                            "unix:/path/to.sock" (an old socket there is
	                            replaced; the file is removed at stop) */
	size_t max_message;      /* request messages larger than this end with
	                            RESOURCE_EXHAUSTED; 0 = 4 MiB */
	unsigned max_streams;    /* concurrent calls per connection (HTTP/2
	                            SETTINGS_MAX_CONCURRENT_STREAMS); 0 = 1000 */
	unsigned max_calls;      /* calls open at once in the whole server; at
	                            the cap a new call ends the oldest request
	                            still arriving, else is refused; 0 = 4096 */
	unsigned max_conns;      /* connections at once: at the cap a new one
	                            closes the connection idle longest, or is
	                            closed itself when every one has a call
	                            open; 0 = 256 */
	size_t max_conn_buffer;  /* bytes of request messages still arriving
	                            held per connection; 0 = 1 MiB, and never
	                            less than max_message + 10 */
	size_t max_buffer;       /* the same for the whole server; 0 = 16 MiB,
	                            never less than max_conn_buffer.  At either
	                            cap the oldest requests still arriving end
	                            RESOURCE_EXHAUSTED to make room */
	int idle_timeout_s;      /* a connection with no open call for this long
	                            is closed; 0 = 120 */
	int request_timeout_s;   /* a request whose message has not all arrived
	                            this long after its headers ends
	                            RESOURCE_EXHAUSTED; 0 = 10 */
};

/* Listen and serve on `base`.  `methods` ends with a zeroed entry and must
 * outlive the server; `arg` goes to every handler.  Returns 0, -EINVAL for
 * a listen address that does not parse, -EEXIST for a unix path that
 * exists and is not a socket (it is left alone), or another negative
 * errno. */
int gp_grpc_start(struct gp_grpc **out, struct event_base *base, const struct gp_grpc_opts *o,
		  const struct gp_grpc_method *methods, void *arg)
	__attribute__((warn_unused_result));

/* The TCP port the server listens on (useful with port 0); 0 on a unix
 * socket. */
int gp_grpc_port(const struct gp_grpc *g);

/* Close every connection and stop listening.  Calls still open are ended:
 * their cancel callbacks run first (see gp_grpc_on_cancel). */
void gp_grpc_stop(struct gp_grpc *g);

/* Bytes of request messages held now for calls whose request is still
 * arriving (for tests and metrics; on the loop's thread). */
size_t gp_grpc_buffered(const struct gp_grpc *g);

/* --- a call (only on the loop's thread) ---------------------------------- */

/* Queue one response message.  Returns 0, -EPROTO for a second message on
 * a unary call or one after finish, -ENOBUFS if the client is too far
 * behind (more than 1 MiB unread: end the call), -ENOMEM. */
int gp_grpc_send(struct gp_grpc_call *call, const struct ProtobufCMessage *msg)
	__attribute__((warn_unused_result));

/* End the call with `status` and a message for humans (printf format,
 * NULL for none).  Messages already queued go out first.  The call must
 * not be used afterwards.  Ending a unary call OK without a reply is an
 * error the layer reports to the client as INTERNAL. */
void gp_grpc_finish(struct gp_grpc_call *call, enum gp_grpc_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* For a call the handler keeps open: `fn` runs once if the call ends
 * without gp_grpc_finish (the client cancelled or went away, the deadline
 * passed, the server stopped); the call must not be used after it. */
void gp_grpc_on_cancel(struct gp_grpc_call *call, void (*fn)(struct gp_grpc_call *, void *),
		       void *arg);

/* The method's full name, e.g. "/externalscaler.ExternalScaler/IsActive". */
const char *gp_grpc_call_method(const struct gp_grpc_call *call);

/* --- the wire format, for tests and tools -------------------------------- */

/* Look for one length-prefixed message at the start of buf[0..len): a
 * compressed-flag byte and a 4-byte big-endian length, then the message.
 * Returns 1 with *msg and *msg_len set and *used = 5 + msg_len when a whole
 * message is there, 0 when more bytes are needed, -EMSGSIZE when the
 * announced length exceeds `max` (known from the prefix alone), -ENOTSUP
 * for a compressed message (this server accepts identity only), -EPROTO
 * for a flag byte that is neither 0 nor 1. */
int gp_grpc_frame_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
			size_t *msg_len, size_t *used) __attribute__((warn_unused_result));

/* Write the 5-byte prefix of an uncompressed message of `len` bytes.
 * Returns -EMSGSIZE when len does not fit in 32 bits, else 0. */
int gp_grpc_frame_header(uint8_t out[5], size_t len) __attribute__((warn_unused_result));

/* Parse a grpc-timeout value ("100m", "5S", "2H": at most 8 digits and a
 * unit H M S m u n) into nanoseconds.  Returns 0 or -EINVAL. */
int gp_grpc_parse_timeout(const char *s, uint64_t *ns) __attribute__((warn_unused_result));

#endif
