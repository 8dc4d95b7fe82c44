/* loop.h - the event loop a daemon runs on, and its orderly end.
 *
 * SIGINT and SIGTERM stop the loop, after a short grace for replies already
 * queued (the daemon then cleans up and exits 0); SIGPIPE is ignored, so a peer closing early fails a write instead of
 * killing the daemon.
 */
#ifndef GP_NET_LOOP_H
#define GP_NET_LOOP_H

struct event_base;
struct gp_loop;

/* A new event loop with the signal handling above, or NULL. */
struct gp_loop *gp_loop_new(void);

/* The libevent base, to register servers and timers on. */
struct event_base *gp_loop_base(struct gp_loop *l);

/* Run until a stop signal or gp_loop_stop.  0, or -1 on loop failure. */
int gp_loop_run(struct gp_loop *l);

/* Make gp_loop_run return, from the loop's thread, after a grace of
 * 100 ms in which replies already queued still go out. */
void gp_loop_stop(struct gp_loop *l);

void gp_loop_free(struct gp_loop *l);

#endif
