/* accept.c - see accept.h. */
#include "net/accept.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#define ACCEPT_PAUSE_MS 500

static void resume(evutil_socket_t fd, short what, void *arg)
{
	struct gp_accept_pause *p = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(p->lis);
}

int gp_accept_pause_init(struct gp_accept_pause *p, struct event_base *base,
			 struct evconnlistener *l, const char *what)
{
	memset(p, 0, sizeof *p);
	p->lis = l;
	p->what = what;
	p->resume = evtimer_new(base, resume, p);
	return p->resume ? 0 : -ENOMEM;
}

void gp_accept_pause_fini(struct gp_accept_pause *p)
{
	if (p->resume)
		event_free(p->resume);
	p->resume = NULL;
}

void gp_accept_pause_error(struct gp_accept_pause *p, int err)
{
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
	uint64_t now = gp_now_ns();

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		gp_warn("%s: accept: %s", p->what, strerror(err));
		return;
	}
	evconnlistener_disable(p->lis);
	if (!p->logged_ns || now - p->logged_ns >= 60000000000ULL) {
		gp_warn("%s: accept: %s; pausing new connections (retrying every %d ms)", p->what,
			strerror(err), ACCEPT_PAUSE_MS);
		p->logged_ns = now;
	}
	event_add(p->resume, &tv);
}
