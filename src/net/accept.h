/* accept.h - what a listener does when accept(2) fails for want of
 * descriptors or memory.
 *
 * The connection then waits in the backlog and the listening socket stays
 * readable: accepting again at once spins at full CPU and logs every
 * attempt.  Instead accepts pause for a while (500 ms) and resume by
 * themselves, and the pause is logged at most once a minute.  Both of the
 * daemons' servers (net/http.c, net/grpc.c) use it.
 */
#ifndef GP_NET_ACCEPT_H
#define GP_NET_ACCEPT_H

#include <stdint.h>

struct event;
struct event_base;
struct evconnlistener;

struct gp_accept_pause {
	struct evconnlistener *lis;
	struct event *resume;
	uint64_t logged_ns;        /* when a pause was last logged */
	const char *what;          /* "http", "grpc": for the log */
};

/* Set up for listener `l` on `base`.  0 or -ENOMEM. */
int gp_accept_pause_init(struct gp_accept_pause *p, struct event_base *base,
			 struct evconnlistener *l, const char *what)
	__attribute__((warn_unused_result));

void gp_accept_pause_fini(struct gp_accept_pause *p);

/* From the listener's error callback: pause on EMFILE, ENFILE, ENOBUFS or
 * ENOMEM (logged once a minute); log anything else. */
void gp_accept_pause_error(struct gp_accept_pause *p, int err);

#endif
