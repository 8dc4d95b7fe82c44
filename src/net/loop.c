/* loop.c - see loop.h. */
#include "net/loop.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>

#include "common/log.h"

struct gp_loop {
	struct event_base *base;
	struct event *sig[2]; /* SIGINT, SIGTERM */
};

/* Replies already queued get this long to reach their clients. */
static const struct timeval grace = {.tv_sec = 0, .tv_usec = 100000};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	gp_info("signal %d: stopping", (int)sig);
	event_base_loopexit(arg, &grace);
}

struct gp_loop *gp_loop_new(void)
{
	static const int sigs[2] = {SIGINT, SIGTERM};
	struct gp_loop *l = calloc(1, sizeof *l);

	if (!l)
		return NULL;
	signal(SIGPIPE, SIG_IGN);
	l->base = event_base_new();
	if (!l->base)
		goto fail;
	for (int i = 0; i < 2; i++) {
		l->sig[i] = evsignal_new(l->base, sigs[i], on_signal, l->base);
		if (!l->sig[i] || event_add(l->sig[i], NULL))
			goto fail;
	}
	return l;
fail:
	gp_loop_free(l);
	return NULL;
}

struct event_base *gp_loop_base(struct gp_loop *l)
{
	return l->base;
}

int gp_loop_run(struct gp_loop *l)
{
	return event_base_dispatch(l->base) < 0 ? -1 : 0;
}

void gp_loop_stop(struct gp_loop *l)
{
	event_base_loopexit(l->base, &grace);
}

void gp_loop_free(struct gp_loop *l)
{
	if (!l)
		return;
	for (int i = 0; i < 2; i++)
		if (l->sig[i])
			event_free(l->sig[i]);
	if (l->base)
		event_base_free(l->base);
	free(l);
}
