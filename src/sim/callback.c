/* callback.c - host functions (cuLaunchHostFunc, cuStreamAddCallback)
 * run on a thread of the simulator once the stream work before them is
 * done, as the real driver runs them on a driver thread.
 *
 * One worker thread, started on demand and gone when the queue is empty,
 * runs the queued functions in order of due time (enqueue order for equal
 * times, which keeps each stream's own order).  It holds no lock while a
 * function runs.  Each pending function is counted in its stream and its
 * context so that synchronizations and destruction can wait for it.
 */
#include "sim/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "common/clock.h"

struct cb {
	struct gp_sim_list link;
	uint64_t due;               /* CLOCK_MONOTONIC ns */
	uint64_t seq;
	int kind;                   /* 0: CUhostFn, 1: CUstreamCallback */
	void *fn;
	void *data;
	CUstream handle;            /* what a CUstreamCallback is passed */
	unsigned *stream_pending;
	unsigned *ctx_pending;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t work;        /* CLOCK_MONOTONIC */
	pthread_cond_t done;
	int cond_ready;
	struct gp_sim_list q;
	int running;                /* a worker exists */
	uint64_t seq;
} cbq = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
	.q = GP_SIM_LIST_INIT(cbq.q),
};

static struct cb *earliest(void)
{
	struct cb *best = NULL;

	for (struct gp_sim_list *l = cbq.q.next; l != &cbq.q; l = l->next) {
		struct cb *c = gp_sim_container(l, struct cb, link);
		if (!best || c->due < best->due || (c->due == best->due && c->seq < best->seq))
			best = c;
	}
	return best;
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cbq.mu);
	for (;;) {
		struct cb *c = earliest();
		uint64_t now = gp_now_ns();

		if (!c)
			break;
		if (c->due > now) {
			struct timespec ts = {(time_t)(c->due / 1000000000ull),
					      (long)(c->due % 1000000000ull)};
			pthread_cond_timedwait(&cbq.work, &cbq.mu, &ts);
			continue;
		}
		gp_sim_list_del(&c->link);
		pthread_mutex_unlock(&cbq.mu);
		if (c->kind == 0)
			((CUhostFn)c->fn)(c->data);
		else
			((CUstreamCallback)c->fn)(c->handle, CUDA_SUCCESS, c->data);
		pthread_mutex_lock(&cbq.mu);
		__atomic_sub_fetch(c->stream_pending, 1, __ATOMIC_RELEASE);
		__atomic_sub_fetch(c->ctx_pending, 1, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&cbq.done);
		free(c);
	}
	cbq.running = 0;
	pthread_mutex_unlock(&cbq.mu);
	return NULL;
}

CUresult gp__sim_callback_add_locked(struct gp_sim_stream *s, CUstream handle, uint64_t due,
				     int kind, void *fn, void *data)
{
	struct cb *c = calloc(1, sizeof *c);
	CUresult rc = CUDA_SUCCESS;

	if (!c)
		return CUDA_ERROR_OUT_OF_MEMORY;
	c->due = due;
	c->kind = kind;
	c->fn = fn;
	c->data = data;
	c->handle = handle;
	c->stream_pending = &s->cb_pending;
	c->ctx_pending = &s->ctx->cb_pending;
	pthread_mutex_lock(&cbq.mu);
	if (!cbq.cond_ready) {
		pthread_condattr_t a;
		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&cbq.work, &a);
		pthread_condattr_destroy(&a);
		cbq.cond_ready = 1;
	}
	if (!cbq.running) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, worker, NULL))
			rc = CUDA_ERROR_OUT_OF_MEMORY;
		else
			cbq.running = 1;
		pthread_attr_destroy(&a);
	}
	if (rc == CUDA_SUCCESS) {
		c->seq = cbq.seq++;
		gp_sim_list_add(&cbq.q, &c->link);
		__atomic_add_fetch(&s->cb_pending, 1, __ATOMIC_RELEASE);
		__atomic_add_fetch(&s->ctx->cb_pending, 1, __ATOMIC_RELEASE);
		pthread_cond_signal(&cbq.work);
	} else {
		free(c);
	}
	pthread_mutex_unlock(&cbq.mu);
	return rc;
}

void gp__sim_callback_wait(unsigned *pending)
{
	pthread_mutex_lock(&cbq.mu);
	while (__atomic_load_n(pending, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&cbq.done, &cbq.mu);
	pthread_mutex_unlock(&cbq.mu);
}
