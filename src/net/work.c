/* work.c - see work.h.
 *
 * Workers take jobs from one FIFO under a mutex; a finished job moves to
 * the done list and an eventfd wakes the loop, which runs every finished
 * job's done callback in one go.  No libevent call is made off the loop's
 * thread, so libevent needs no locking of its own.
 */
#include "net/work.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

struct job {
	struct job *next;
	void (*run)(void *);
	void (*done)(void *);
	void *arg;
};

struct gp_work {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;   /* queued */
	struct job *fin;           /* finished, done not yet run (any order) */
	unsigned busy;             /* queued + running */
	int stop;
	int efd;
	struct event *ev;
	unsigned nthreads;
	pthread_t *threads;
};

static void *worker(void *arg)
{
	struct gp_work *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct job *j;
		uint64_t one = 1;

		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->head)
			break; /* stopping, and nothing left */
		j = w->head;
		if (!(w->head = j->next))
			w->tail = NULL;
		pthread_mutex_unlock(&w->mu);
		j->run(j->arg);
		pthread_mutex_lock(&w->mu);
		j->next = w->fin;
		w->fin = j;
		/* Cannot fail but by overflow of a 64-bit counter. */
		if (write(w->efd, &one, sizeof one) < 0)
			gp_debug("work: eventfd: %m");
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* On the loop: run the done callbacks of every finished job. */
static void finish(struct gp_work *w)
{
	struct job *j;

	pthread_mutex_lock(&w->mu);
	j = w->fin;
	w->fin = NULL;
	pthread_mutex_unlock(&w->mu);
	while (j) {
		struct job *next = j->next;
		if (j->done)
			j->done(j->arg);
		free(j);
		pthread_mutex_lock(&w->mu);
		w->busy--;
		pthread_mutex_unlock(&w->mu);
		j = next;
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		gp_debug("work: eventfd: %m");
	finish(arg);
}

int gp_work_new(struct gp_work **out, struct event_base *base, unsigned threads)
{
	struct gp_work *w = calloc(1, sizeof *w);

	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->threads = calloc(threads ? threads : 1, sizeof *w->threads);
	if (w->efd < 0 || !w->threads ||
	    !(w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, on_wake, w)) ||
	    event_add(w->ev, NULL)) {
		gp_work_free(w);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < (threads ? threads : 1); i++) {
		if (pthread_create(&w->threads[i], NULL, worker, w)) {
			gp_work_free(w);
			return -EAGAIN;
		}
		w->nthreads++;
	}
	*out = w;
	return 0;
}

int gp_work_submit(struct gp_work *w, void (*run)(void *), void (*done)(void *), void *arg)
{
	struct job *j = malloc(sizeof *j);

	if (!j)
		return -ENOMEM;
	*j = (struct job){.run = run, .done = done, .arg = arg};
	pthread_mutex_lock(&w->mu);
	if (w->tail)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	w->busy++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

unsigned gp_work_busy(struct gp_work *w)
{
	unsigned n;

	pthread_mutex_lock(&w->mu);
	n = w->busy;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void gp_work_free(struct gp_work *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	finish(w);
	if (w->ev)
		event_free(w->ev);
	if (w->efd >= 0)
		close(w->efd);
	free(w->threads);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
