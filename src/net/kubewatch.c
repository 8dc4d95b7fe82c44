/* kubewatch.c - see kubewatch.h. */
#include "net/kubewatch.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mcond.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
/* The server ends each watch after this (jittered), and we resume: a
 * stream that is silently dead somewhere in between is replaced. */
#define WATCH_SECONDS 240

struct gp_kube_watch {
	struct gp_kube *kube;
	const struct gp_kube_watch_ops *ops;
	pthread_t thread;
	bool started;
	int cancel;                 /* atomic: ends the stream */
	pthread_mutex_t mu;         /* guards below, and the sleep */
	pthread_cond_t cv;
	char rv[128];               /* resume from here; "" = list again */
	unsigned long events;       /* seen by the current watch */
	bool watching;
	int64_t last_ok_ms;
	char err[384];
};

static int64_t wall_ms(void)
{
	return (int64_t)(gp_wall_ns() / 1000000u);
}

static void set_state(struct gp_kube_watch *w, bool watching, const char *err)
{
	pthread_mutex_lock(&w->mu);
	w->watching = watching;
	w->last_ok_ms = wall_ms();
	if (err)
		snprintf(w->err, sizeof w->err, "%s", err);
	pthread_mutex_unlock(&w->mu);
}

static void set_error(struct gp_kube_watch *w, const char *err)
{
	pthread_mutex_lock(&w->mu);
	w->watching = false;
	snprintf(w->err, sizeof w->err, "%s", err);
	pthread_mutex_unlock(&w->mu);
}

static void remember_rv(struct gp_kube_watch *w, json_t *obj)
{
	const char *rv = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

	if (rv && strlen(rv) < sizeof w->rv)
		strcpy(w->rv, rv); /* only this thread writes rv */
}

/* A full list: `consistent` reads from etcd (after a 410), else from the
 * API server's cache, which is what a list-heavy client should use. */
static int list(struct gp_kube_watch *w, bool consistent, char *why, size_t n)
{
	char path[1024];
	struct gp_kube_err e;
	json_t *doc = NULL, *items;
	int rc;

	snprintf(path, sizeof path, "%s%c%s", w->ops->path, strchr(w->ops->path, '?') ? '&' : '?',
		 consistent ? "resourceVersion=" : "resourceVersion=0");
	if ((rc = gp_kube_get(w->kube, path, &doc, &e))) {
		snprintf(why, n, "%s", e.msg);
		return rc;
	}
	items = json_object_get(doc, "items");
	if (!json_is_array(items)) {
		snprintf(why, n, "the %s list has no items", w->ops->what);
		json_decref(doc);
		return -EIO;
	}
	w->ops->relist(w->ops->arg, items);
	remember_rv(w, doc);
	json_decref(doc);
	set_state(w, false, "");
	return 0;
}

static int on_event(const char *type, json_t *obj, void *arg)
{
	struct gp_kube_watch *w = arg;

	w->events++;
	if (strcmp(type, "BOOKMARK") != 0)
		w->ops->event(w->ops->arg, type, obj);
	remember_rv(w, obj);
	return __atomic_load_n(&w->cancel, __ATOMIC_RELAXED);
}

/* Sleep ms unless stopped first; true when stopped. */
static bool pause_ms(struct gp_kube_watch *w, long ms)
{
	uint64_t until = gp_now_ns() + (uint64_t)ms * 1000000u;
	bool stop;

	pthread_mutex_lock(&w->mu);
	while (!__atomic_load_n(&w->cancel, __ATOMIC_RELAXED) &&
	       gp_mcond_wait_until(&w->cv, &w->mu, until) == 0)
		;
	stop = __atomic_load_n(&w->cancel, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&w->mu);
	return stop;
}

static void *run(void *arg)
{
	struct gp_kube_watch *w = arg;
	unsigned fails = 0, seed = (unsigned)gp_now_ns();
	bool relist = false;

	while (!__atomic_load_n(&w->cancel, __ATOMIC_RELAXED)) {
		char path[1024], why[384];
		struct gp_kube_err e;
		int rc;

		if (relist) {
			rc = list(w, true, why, sizeof why);
			if (!rc)
				relist = false;
		} else {
			snprintf(path, sizeof path,
				 "%s%cwatch=1&allowWatchBookmarks=true&resourceVersion=%s"
				 "&timeoutSeconds=%u",
				 w->ops->path, strchr(w->ops->path, '?') ? '&' : '?', w->rv,
				 WATCH_SECONDS - (unsigned)(rand_r(&seed) % 60));
			uint64_t t0 = gp_now_ns();

			set_state(w, true, NULL);
			w->events = 0;
			rc = gp_kube_watch(w->kube, path, on_event, w, &w->cancel, &e);
			snprintf(why, sizeof why, "%s", e.msg);
			/* A stream that ends at once with nothing in it (a proxy
			 * closing it, say) must not be reopened in a tight loop. */
			if (!rc && !w->events && gp_now_ns() - t0 < 1000000000u) {
				snprintf(why, sizeof why, "the watch ended at once, empty");
				rc = -EIO;
			}
			if (rc == -ENODATA) {
				gp_info("watch of %s: resourceVersion %s is gone; listing again",
					w->ops->what, w->rv);
				relist = true;
				fails = 0;
				continue;
			}
			if (!rc)
				set_state(w, false, NULL);
		}
		if (!rc) {
			fails = 0;
			continue;
		}
		if (__atomic_load_n(&w->cancel, __ATOMIC_RELAXED))
			break;
		set_error(w, why);
		fails++;
		{
			long ms = BACKOFF_MIN_MS << (fails < 6 ? fails - 1 : 6);
			ms = ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
			ms = ms / 2 + (long)(rand_r(&seed) % (unsigned)(ms / 2 + 1));
			gp_warn("%s of %s failed (%s); again in %ld ms", relist ? "list" : "watch",
				w->ops->what, why, ms);
			if (pause_ms(w, ms))
				break;
		}
	}
	return NULL;
}

int gp_kube_watch_start(struct gp_kube_watch **out, struct gp_kube *kube,
			const struct gp_kube_watch_ops *ops, char *why, size_t n)
{
	struct gp_kube_watch *w = calloc(1, sizeof *w);
	int rc;

	if (!w)
		return -ENOMEM;
	w->kube = kube;
	w->ops = ops;
	pthread_mutex_init(&w->mu, NULL);
	gp_mcond_init(&w->cv);
	if ((rc = list(w, false, why, n))) {
		gp_kube_watch_stop(w);
		return rc;
	}
	if (pthread_create(&w->thread, NULL, run, w)) {
		snprintf(why, n, "cannot start the %s watcher thread", ops->what);
		gp_kube_watch_stop(w);
		return -EAGAIN;
	}
	w->started = true;
	*out = w;
	return 0;
}

void gp_kube_watch_stop(struct gp_kube_watch *w)
{
	if (!w)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		__atomic_store_n(&w->cancel, 1, __ATOMIC_RELAXED);
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

bool gp_kube_watch_health(struct gp_kube_watch *w, int64_t *last_ok_ms, char *err, size_t n)
{
	bool ok;

	pthread_mutex_lock(&w->mu);
	*last_ok_ms = w->watching ? wall_ms() : w->last_ok_ms;
	snprintf(err, n, "%s", w->err);
	ok = w->watching || wall_ms() - w->last_ok_ms < 30000;
	pthread_mutex_unlock(&w->mu);
	return ok;
}
