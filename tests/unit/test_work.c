/* test_work.c - the worker pool (src/net/work.c): jobs run off the loop's
 * thread, several at once; each done callback runs on the loop's thread;
 * freeing the pool finishes what was queued. */
#include <event2/event.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/work.h"

#define JOBS 64

struct ctx {
	struct event_base *base;
	pthread_t loop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int running, most;   /* jobs in run() at once, and the most seen */
	int done, off_loop, on_loop;
};

struct job {
	struct ctx *c;
	int gate;            /* run() waits until the test opens it */
};

static void run(void *arg)
{
	struct job *j = arg;
	struct ctx *c = j->c;

	pthread_mutex_lock(&c->mu);
	c->off_loop += !pthread_equal(pthread_self(), c->loop);
	c->running++;
	if (c->running > c->most)
		c->most = c->running;
	pthread_cond_broadcast(&c->cv);
	while (j->gate)
		pthread_cond_wait(&c->cv, &c->mu);
	c->running--;
	pthread_mutex_unlock(&c->mu);
}

static void done(void *arg)
{
	struct job *j = arg;
	struct ctx *c = j->c;

	c->on_loop += pthread_equal(pthread_self(), c->loop);
	if (++c->done == JOBS)
		event_base_loopbreak(c->base);
	free(j);
}

static void open_gates(evutil_socket_t fd, short what, void *arg)
{
	struct job **js = arg;
	struct ctx *c = js[0]->c;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&c->mu);
	/* Wait until four jobs run at once: the pool is truly parallel. */
	while (c->running < 4)
		pthread_cond_wait(&c->cv, &c->mu);
	for (int i = 0; i < 4; i++)
		js[i]->gate = 0;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void test_jobs_run_off_the_loop_and_finish_on_it(void **state)
{
	struct ctx c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct job *gated[4];
	struct gp_work *w;
	struct timeval soon = {0, 1000};

	(void)state;
	c.base = event_base_new();
	c.loop = pthread_self();
	assert_int_equal(gp_work_new(&w, c.base, 8), 0);
	for (int i = 0; i < JOBS; i++) {
		struct job *j = calloc(1, sizeof *j);
		j->c = &c;
		j->gate = i < 4;
		if (i < 4)
			gated[i] = j;
		assert_int_equal(gp_work_submit(w, run, done, j), 0);
	}
	event_base_once(c.base, -1, EV_TIMEOUT, open_gates, gated, &soon);
	alarm(30); /* a hang fails the test instead of the suite */
	event_base_dispatch(c.base);
	alarm(0);
	assert_int_equal(c.done, JOBS);
	assert_int_equal(c.off_loop, JOBS);
	assert_int_equal(c.on_loop, JOBS);
	assert_true(c.most >= 4);
	assert_int_equal(gp_work_busy(w), 0);
	gp_work_free(w);
	event_base_free(c.base);
}

static void test_free_finishes_the_queue(void **state)
{
	struct ctx c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct gp_work *w;

	(void)state;
	c.base = event_base_new();
	c.loop = pthread_self();
	assert_int_equal(gp_work_new(&w, c.base, 2), 0);
	for (int i = 0; i < JOBS; i++) {
		struct job *j = calloc(1, sizeof *j);
		j->c = &c;
		assert_int_equal(gp_work_submit(w, run, done, j), 0);
	}
	/* The loop never ran: freeing still runs every job and its done. */
	gp_work_free(w);
	assert_int_equal(c.done, JOBS);
	assert_int_equal(c.on_loop, JOBS);
	event_base_free(c.base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_run_off_the_loop_and_finish_on_it),
		cmocka_unit_test(test_free_finishes_the_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
