/* agent.c - see agent.h.  The collector thread and the daemon's start and
 * stop; the Kubernetes side is kubework.c, the routes httpapi.c. */
#include "agent/agent_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "agent/devplugin.h"
#include "agent/nodestate.h"
#include "common/clock.h"
#include "common/log.h"
#include "net/loop.h"
#include "net/ready.h"

struct gp_agent_snap *gp__agent_snap(struct gp_agent *a)
{
	struct gp_agent_snap *s;

	pthread_mutex_lock(&a->lock);
	s = gp_snap_ref(a->snap);
	pthread_mutex_unlock(&a->lock);
	return s;
}

static int pod_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct gp_agent_pod *)e)->uid);
}

/* gp_pod_lookup over the last pod list. */
static int lookup_pod(void *arg, const char *uid, char ns[GP_AGENT_NAME_MAX],
		      char pod[GP_AGENT_POD_MAX], int *exempt)
{
	struct gp_agent *a = arg;
	const struct gp_agent_pod *p;
	int found = 0;

	pthread_mutex_lock(&a->lock);
	p = a->npods ? bsearch(uid, a->pods, a->npods, sizeof *a->pods, pod_cmp) : NULL;
	if (p) {
		snprintf(ns, GP_AGENT_NAME_MAX, "%s", p->ns);
		snprintf(pod, GP_AGENT_POD_MAX, "%s", p->name);
		*exempt = p->exempt;
		found = 1;
	}
	pthread_mutex_unlock(&a->lock);
	return found;
}

void gp__agent_wait(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t deadline_ns)
{
	struct timespec ts = {(time_t)(deadline_ns / 1000000000ull),
			      (long)(deadline_ns % 1000000000ull)};

	pthread_cond_timedwait(cv, m, &ts);
}

/* Wake the collector now (the health thread's kick). */
static void kick(void *arg)
{
	struct gp_agent *a = arg;

	pthread_mutex_lock(&a->lock);
	a->collect_now = 1;
	pthread_cond_signal(&a->wake_collector);
	pthread_mutex_unlock(&a->lock);
}

/* May the tenant directory d be collected?  Only when a current pod list,
 * asked for after the directory last changed, shows its pod gone or
 * finished: a pod too new for the list is never mistaken for a dead one. */
static int collectable(struct gp_agent *a, const struct gp_tenant_stale *d)
{
	const struct gp_agent_pod *p;
	int ok;

	pthread_mutex_lock(&a->lock);
	ok = a->pods_ok && a->pods_wall_ns > d->changed_wall_ns + 1000000000ull;
	if (ok) {
		p = a->npods ? bsearch(d->uid, a->pods, a->npods, sizeof *a->pods, pod_cmp) : NULL;
		ok = !p || p->finished;
	}
	pthread_mutex_unlock(&a->lock);
	return ok;
}

static void gc(struct gp_agent *a, const struct gp_tenant_stale *stale, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc;

		if (!collectable(a, &stale[i]))
			continue;
		rc = gp_tenants_remove(a->cfg->state_dir, stale[i].uid, stale[i].container);
		if (rc == 0) {
			gp_info("collected tenant %s/%s: its pod is gone", stale[i].uid,
				stale[i].container);
			pthread_mutex_lock(&a->lock);
			a->counters.gc_removed++;
			pthread_mutex_unlock(&a->lock);
		} else if (rc != -EBUSY && rc != -ENOENT) {
			gp_warn("cannot remove tenant %s/%s: %s", stale[i].uid, stale[i].container,
				strerror(-rc));
		}
	}
}

/* Publish snapshot s (taking its reference): swap it in, note a node-state
 * change, hand the idle verdicts to the Kubernetes worker. */
static void publish(struct gp_agent *a, struct gp_agent_snap *s)
{
	const struct gp_agent_config *c = a->cfg;
	char *key = s->nvml_ok ? gp_node_state(s, c->slices, -1) : NULL;
	struct gp_idle_pod *v = NULL;
	long nv = 0;
	int wake = 0;

	if (c->idle_after_ms)
		nv = gp_idle_judge(s, (double)c->idle_after_ms / 1000.0, &v);
	pthread_mutex_lock(&a->lock);
	gp_snap_unref(a->snap);
	a->snap = s;
	a->counters.collections++;
	if (key && (!a->state_key || strcmp(key, a->state_key) != 0)) {
		free(a->state_key);
		a->state_key = key;
		key = NULL;
		a->state_dirty = 1;
		wake = 1;
	}
	if (nv >= 0 && c->idle_after_ms) {
		free(a->verdicts);
		a->verdicts = v;
		a->nverdicts = nv;
		a->verdicts_new = 1;
		v = NULL;
		wake = 1;
	}
	if (wake)
		pthread_cond_signal(&a->wake_kube);
	pthread_mutex_unlock(&a->lock);
	free(key);
	free(v);
}

static void *collector(void *arg)
{
	struct gp_agent *a = arg;
	uint64_t period = a->cfg->interval_ms * 1000000ull;

	pthread_setname_np(pthread_self(), "gp-collect"); /* for top -H, perf */
	for (;;) {
		struct gp_agent_snap *s = NULL;
		struct gp_tenant_stale *stale = NULL;
		size_t nstale = 0;
		uint64_t next = gp_now_ns() + period;
		int rc = gp_collect(&a->col, &s, &stale, &nstale);

		if (rc) {
			gp_warn("collection failed: %s", strerror(-rc));
			pthread_mutex_lock(&a->lock);
			a->counters.collect_errors++;
			pthread_mutex_unlock(&a->lock);
		} else {
			publish(a, s);
			gc(a, stale, nstale);
		}
		free(stale);
		pthread_mutex_lock(&a->lock);
		while (!a->stop && !a->collect_now && gp_now_ns() < next)
			gp__agent_wait(&a->wake_collector, &a->lock, next);
		a->collect_now = 0;
		if (a->stop) {
			pthread_mutex_unlock(&a->lock);
			return NULL;
		}
		pthread_mutex_unlock(&a->lock);
	}
}

/* The agent keeps every tenant's region open between collections: a node
 * of a thousand tenants needs more descriptors than the usual soft limit
 * of 1024, so take the hard limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			gp_warn("cannot raise the descriptor limit: %s", strerror(errno));
	}
}

/* NVML, the cards and the health watcher.  An agent without NVML still
 * serves its tenants; it only never writes a node state. */
static void open_gpus(struct gp_agent *a)
{
	const struct gp_agent_config *c = a->cfg;
	int rc = gp_nvml_open(&a->nvml, c->nvml_path, a->nvml_err, sizeof a->nvml_err);

	if (!rc)
		rc = gp_gpus_open(&a->gpus, &a->nvml, a->nvml_err, sizeof a->nvml_err);
	if (rc) {
		gp_error("no GPUs: %s; serving tenants only, /healthz answers 503 (on the "
			 "simulator: --sim)", a->nvml_err);
		gp_nvml_close(&a->nvml);
		return;
	}
	rc = gp_health_start(&a->health, &a->nvml, a->gpus, c->nignore_xids ? c->ignore_xids : NULL,
			     c->nignore_xids, kick, a);
	if (rc)
		gp_warn("cannot watch XID events: %s", strerror(-rc));
	gp_info("%u GPU(s) found", gp_gpus_count(a->gpus));
}

static int open_kube(struct gp_agent *a)
{
	struct gp_kube_opts o = {.kubeconfig = a->cfg->kubeconfig, .timeout_ms = 10000};
	char err[512];
	int rc;

	if (!a->cfg->kube)
		return 0;
	rc = gp_kube_open(&a->kube, &o, err, sizeof err);
	if (rc)
		gp_error("cannot use the Kubernetes API: %s", err);
	return rc;
}

/* Allocate calls left at stop: their calls ended with the servers. */
static void free_jobs(struct gp_alloc_job *j)
{
	while (j) {
		struct gp_alloc_job *next = j->next;

		free(j);
		j = next;
	}
}

int gp_agent_run(const struct gp_agent_config *c)
{
	struct gp_agent *a = calloc(1, sizeof *a);
	struct gp_loop *loop = gp_loop_new();
	struct gp_http *http = NULL;
	int rc = -ENOMEM, ready = 0;

	if (!a || !loop) {
		gp_error("out of memory");
		goto out;
	}
	a->cfg = c;
	raise_fd_limit();
	pthread_mutex_init(&a->lock, NULL);
	{
		/* Deadlines are monotonic: a wall-clock step must not stall us. */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&a->wake_collector, &ca);
		pthread_cond_init(&a->wake_kube, &ca);
		pthread_condattr_destroy(&ca);
	}
	open_gpus(a);
	a->col = (struct gp_collect){.state_dir = c->state_dir, .node = c->node_name,
				     .max_tenants = c->max_tenants, .gpus = a->gpus,
				     .nvml_err = a->nvml_err, .pod = lookup_pod, .pod_arg = a,
				     .proc_root = "/proc"};
	a->counters.idle_after_s = (double)c->idle_after_ms / 1000.0;
	rc = open_kube(a);
	if (rc)
		goto out;
	rc = -pthread_create(&a->collector, NULL, collector, a);
	if (rc) {
		gp_error("cannot start the collector: %s", strerror(-rc));
		goto out;
	}
	a->collector_on = 1;
	rc = gp__kubework_start(a);
	if (rc) {
		gp_error("cannot start the Kubernetes worker: %s", strerror(-rc));
		goto out;
	}
	a->kubework_on = 1;
	if (c->listen) {
		struct gp_http_opts o = {.listen = c->listen, .max_body = 4096,
					 .max_headers = 16384};

		rc = gp_http_start(&http, gp_loop_base(loop), &o, gp__agent_routes, a);
		if (rc) {
			gp_error("cannot listen for HTTP on %s: %s", c->listen, strerror(-rc));
			goto out;
		}
	}
	if (c->device_plugin) {
		/* The per-model resources come from the cards of a first
		 * collection: wait for it (a few milliseconds). */
		for (int i = 0; i < 500; i++) {
			struct gp_agent_snap *s = gp__agent_snap(a);

			gp_snap_unref(s);
			if (s)
				break;
			struct timespec ts = {0, 10000000};

			nanosleep(&ts, NULL);
		}
		rc = gp_devplugin_start(&a->dp, a, gp_loop_base(loop));
		if (rc) {
			gp_error("cannot start the device plugin: %s", strerror(-rc));
			goto out;
		}
	}
	if (c->ready_file) {
		rc = gp_ready_write(c->ready_file, http ? gp_http_port(http) : 0, -1);
		if (rc) {
			gp_error("cannot write %s: %s", c->ready_file, strerror(-rc));
			goto out;
		}
		ready = 1;
	}
	gp_info("agent for node %s: state %s, HTTP %s, Kubernetes %s", c->node_name, c->state_dir,
		c->listen ? c->listen : "off", a->kube ? gp_kube_server(a->kube) : "off");
	rc = gp_loop_run(loop) ? -EIO : 0;
out:
	if (ready)
		unlink(c->ready_file);
	if (a)
		gp_devplugin_stop(a->dp);
	gp_http_stop(http);
	if (a) {
		pthread_mutex_lock(&a->lock);
		a->stop = 1;
		pthread_cond_broadcast(&a->wake_collector);
		pthread_cond_broadcast(&a->wake_kube);
		pthread_mutex_unlock(&a->lock);
		if (a->collector_on)
			pthread_join(a->collector, NULL);
		if (a->kubework_on)
			gp__kubework_join(a);
		gp_health_stop(a->health);
		gp_collect_done(&a->col);
		gp_gpus_close(a->gpus);
		gp_nvml_close(&a->nvml);
		gp_kube_close(a->kube);
		gp_snap_unref(a->snap);
		free(a->state_key);
		free(a->verdicts);
		free(a->pods);
		free_jobs(a->alloc_todo);
		free_jobs(a->alloc_done);
		pthread_cond_destroy(&a->wake_kube);
		pthread_cond_destroy(&a->wake_collector);
		pthread_mutex_destroy(&a->lock);
		free(a);
	}
	gp_loop_free(loop);
	return rc;
}
