/* poller.c - see poller.h. */
#include "scaler/poller.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

struct slot {
	struct gp_scaler_queue cfg;
	struct gp_forecast *fc;   /* the poll thread's alone */
	int missing;              /* the broker said 404 last time */
	struct gp_poller_snap snap; /* guarded by the poller's lock */
};

struct gp_poller {
	struct gp_rabbit_conn conn;
	uint64_t interval_ns, stale_ns;
	struct slot *slots;
	size_t n;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;     /* guards snapshots, generation, stop */
	pthread_cond_t wake;      /* stop */
	int stop;
	uint64_t generation;
};

/* Poll one queue and publish what came of it. */
static void poll_one(struct gp_poller *p, struct slot *s)
{
	struct gp_rabbit_queue raw;
	struct gp_forecast_out out;
	struct gp_burst_out burst = {0};
	char err[sizeof s->snap.error];
	int rc = gp_rabbit_fetch_queue(&p->conn, s->cfg.vhost, s->cfg.name, &raw, err, sizeof err);
	uint64_t now = gp_now_ns();
	int was_ok;

	if (rc == 0) {
		struct gp_forecast_obs obs = {
			.t_s = (double)now / 1e9,
			.ready = raw.ready,
			.unacked = raw.unacked,
			.consumers = raw.consumers,
			.prefetch = s->cfg.prefetch,
			.publish_rate = raw.publish_rate,
			/* Auto-ack consumers are served without acks. */
			.ack_rate = raw.ack_rate + raw.deliver_no_ack_rate,
			.replicas = -1,
		};
		if (s->missing) /* deleted and created again: a new queue */
			gp_forecast_reset(s->fc);
		s->missing = 0;
		gp_forecast_update(s->fc, &obs, &out);
		if (s->cfg.burst.onprem_max)
			gp_burst_split(&s->cfg.burst, out.desired_replicas,
				       gp_forecast_desired_at(s->fc, &out,
							      s->cfg.burst.cloud_warmup_s),
				       &burst);
	} else if (rc == -ENOENT) {
		s->missing = 1;
	}

	pthread_mutex_lock(&p->lock);
	was_ok = s->snap.ok;
	s->snap.polled_ns = now;
	if (rc == 0) {
		s->snap.ok = 1;
		s->snap.error[0] = '\0';
		s->snap.raw = raw;
		s->snap.fc = out;
		s->snap.burst = burst;
		s->snap.ok_wall_ns = gp_wall_ns();
		s->snap.polls_ok++;
	} else {
		s->snap.ok = 0;
		memcpy(s->snap.error, err, sizeof err);
		memset(&s->snap.raw, 0, sizeof s->snap.raw);
		memset(&s->snap.fc, 0, sizeof s->snap.fc);
		memset(&s->snap.burst, 0, sizeof s->snap.burst);
		s->snap.polls_failed++;
	}
	pthread_mutex_unlock(&p->lock);

	/* Log changes, not every failed poll. */
	if (rc && (was_ok || s->snap.polls_failed == 1))
		gp_warn("queue '%s' in vhost '%s': %s", s->cfg.name, s->cfg.vhost, err);
	else if (!rc && !was_ok && s->snap.polls_failed)
		gp_info("queue '%s' in vhost '%s': polled again", s->cfg.name, s->cfg.vhost);
}

static void *run(void *arg)
{
	struct gp_poller *p = arg;
	struct timespec until;

	for (;;) {
		uint64_t start = gp_now_ns(), next = start + p->interval_ns;

		for (size_t i = 0; i < p->n; i++) {
			pthread_mutex_lock(&p->lock);
			int stop = p->stop;
			pthread_mutex_unlock(&p->lock);
			if (stop)
				return NULL;
			poll_one(p, &p->slots[i]);
		}
		pthread_mutex_lock(&p->lock);
		p->generation++;
		until.tv_sec = (time_t)(next / 1000000000u);
		until.tv_nsec = (long)(next % 1000000000u);
		while (!p->stop && gp_now_ns() < next)
			pthread_cond_timedwait(&p->wake, &p->lock, &until);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		pthread_mutex_unlock(&p->lock);
	}
}

static void free_slots(struct gp_poller *p)
{
	for (size_t i = 0; i < p->n; i++)
		gp_forecast_free(p->slots[i].fc);
	free(p->slots);
}

int gp_poller_start(struct gp_poller **out, const struct gp_rabbit_conn *conn,
		    const struct gp_scaler_queue *queues, size_t n, uint64_t interval_ms)
{
	struct gp_poller *p = calloc(1, sizeof *p);
	pthread_condattr_t ca;
	long timeout_ms = conn->timeout_ms > 0 ? conn->timeout_ms : 10000;
	int rc;

	if (!p)
		return -ENOMEM;
	p->conn = *conn;
	p->interval_ns = (interval_ms ? interval_ms : 1) * 1000000u;
	/* Queues are polled one after another, so one round may take a
	 * timeout per queue when the broker hangs; only a poll overdue beyond
	 * that means the thread is stuck. */
	p->stale_ns = 3 * p->interval_ns + (uint64_t)(n + 1) * (uint64_t)timeout_ms * 1000000u;
	p->slots = calloc(n ? n : 1, sizeof *p->slots);
	if (!p->slots) {
		free(p);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++, p->n++) {
		struct slot *s = &p->slots[i];
		s->cfg = queues[i];
		s->snap.queue = &s->cfg;
		snprintf(s->snap.error, sizeof s->snap.error, "not polled yet");
		if (queues[i].prefetch == 0 || gp_poller_find(p, queues[i].vhost, queues[i].name) >= 0 ||
		    gp_burst_config_check(&queues[i].burst, NULL) != 0)
			rc = -EINVAL;
		else
			rc = gp_forecast_new(&s->fc, &queues[i].forecast);
		if (rc) {
			free_slots(p);
			free(p);
			return rc;
		}
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* gp_now_ns's clock */
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&p->thread, NULL, run, p);
	if (rc) {
		gp_poller_stop(p);
		return -rc;
	}
	p->started = 1;
	*out = p;
	return 0;
}

void gp_poller_stop(struct gp_poller *p)
{
	if (!p)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->lock);
		p->stop = 1;
		pthread_cond_signal(&p->wake);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free_slots(p);
	free(p);
}

size_t gp_poller_count(const struct gp_poller *p)
{
	return p->n;
}

int gp_poller_find(const struct gp_poller *p, const char *vhost, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->slots[i].cfg.vhost, vhost) == 0 &&
		    strcmp(p->slots[i].cfg.name, name) == 0)
			return (int)i;
	return -1;
}

void gp_poller_get(struct gp_poller *p, size_t i, struct gp_poller_snap *out)
{
	uint64_t now = gp_now_ns();

	pthread_mutex_lock(&p->lock);
	*out = p->slots[i].snap;
	pthread_mutex_unlock(&p->lock);
	if (out->ok && now - out->polled_ns > p->stale_ns) {
		out->ok = 0;
		snprintf(out->error, sizeof out->error,
			 "no poll of RabbitMQ has finished for %.0f s (the broker is not answering)",
			 (double)(now - out->polled_ns) / 1e9);
	}
}

uint64_t gp_poller_generation(struct gp_poller *p)
{
	uint64_t g;

	pthread_mutex_lock(&p->lock);
	g = p->generation;
	pthread_mutex_unlock(&p->lock);
	return g;
}
