/* addr.h - the listen addresses daemons take on their command line.
 *
 * "host:port", "[v6addr]:port" or ":port" (every IPv4 address: "::" would
 * fail in pods without IPv6).  Port 0 asks for a free one.  The HTTP and
 * gRPC servers read their --listen values through here, so both take the
 * same forms and reject the same mistakes.
 */
#ifndef GP_NET_ADDR_H
#define GP_NET_ADDR_H

#include <stddef.h>

/* Split `s` into host (into host[hn]; "0.0.0.0" for ":port") and port.
 * Returns 0, or -EINVAL for anything else (no port, a port that is not a
 * number in 0-65535, an unclosed '[', a host that does not fit). */
int gp_addr_split(const char *s, char *host, size_t hn, int *port)
	__attribute__((warn_unused_result));

#endif
