/* grpc_client.h - one unary gRPC call, blocking, over a unix socket.
 *
 * All the device plugin ever asks of kubelet is one Register call on
 * kubelet's socket, so this is the smallest client that does it right:
 * h2c with prior knowledge (HTTP/2 over the socket, no TLS), one stream, a
 * deadline on the whole call, and the answer's grpc-status.  It blocks the
 * calling thread: never call it on an event loop.
 */
#ifndef GP_NET_GRPC_CLIENT_H
#define GP_NET_GRPC_CLIENT_H

#include <stddef.h>

struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;

/* Call `method` ("/v1beta1.Registration/Register") on the server at unix
 * socket `path` with `req`; on success decode the answer as `resp_desc`
 * into *resp (free with protobuf_c_message_free_unpacked) when resp is not
 * NULL.  Returns 0, -ETIMEDOUT past timeout_ms, -ECONNREFUSED / -ENOENT
 * when nobody listens, -EREMOTEIO when the server answered a gRPC error
 * (its status and message in err), or another negative errno; err says
 * why in every failure. */
int gp_grpc_unary(const char *path, const char *method, const struct ProtobufCMessage *req,
		  const struct ProtobufCMessageDescriptor *resp_desc, struct ProtobufCMessage **resp,
		  int timeout_ms, char *err, size_t n) __attribute__((warn_unused_result));

#endif
