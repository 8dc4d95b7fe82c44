/* ready.h - the ready file every daemon writes once it listens, so that a
 * test or a supervisor learns its ports (port 0 picks free ones) and knows
 * it serves: {"pid": P, "http_port": H, "grpc_port": G}, written to a
 * temporary name and renamed, so a reader sees all of it or nothing. */
#ifndef GP_NET_READY_H
#define GP_NET_READY_H

/* Write `path`; a port below 0 is left out.  Returns 0 or -errno. */
int gp_ready_write(const char *path, int http_port, int grpc_port)
	__attribute__((warn_unused_result));

#endif
