/* kubework.c - the agent's Kubernetes worker: every call to the API
 * server happens on this thread, so a slow or absent API server never
 * holds up collections or scrapes.
 *
 * Its jobs, each on its own schedule: list the node's pods (every
 * --resync), patch gpupool.io/node-state (at once when the cards change,
 * else every --heartbeat), act on idle verdicts (mark, record an Event,
 * evict, run --idle-exec), and reap --idle-exec children, killing those
 * that overrun.  Failed calls are retried at the next round, never in a
 * tight loop.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/nodestate.h"
#include "common/clock.h"
#include "common/log.h"

#define IDLE_SINCE "gpupool.io/idle-since"
#define IDLE_EXEMPT "gpupool.io/idle-exempt"
#define RETRY_NS 5000000000ull      /* after a failed API call */
#define MAX_CHILDREN 16             /* --idle-exec commands at once */
#define MAX_ACTED 4096              /* pods remembered as acted on */
#define MAX_PODS 4096               /* pods kept from one list */

extern char **environ;

/* What the worker remembers of a pod it judged idle. */
struct acted {
	char uid[GP_AGENT_NAME_MAX];
	int exec_done;            /* --idle-exec ran for this idle episode */
	uint64_t evict_next_ns;   /* do not try evicting before */
	int seen;                 /* still judged in the latest round */
};

struct child {
	pid_t pid;
	uint64_t deadline_ns;
	char what[GP_AGENT_NAME_MAX + GP_AGENT_POD_MAX];
};

struct worker {
	struct gp_agent *a;
	uint64_t next_list, next_state;
	uint64_t last_state_ok;
	struct acted *acted;
	size_t nacted;
	struct child child[MAX_CHILDREN];
	unsigned nchild;
};

/* Names from the API go into URL paths: only DNS-name characters. */
static int dns_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '.'))
			return 0;
	return 1;
}

static int pod_by_uid(const void *x, const void *y)
{
	return strcmp(((const struct gp_agent_pod *)x)->uid, ((const struct gp_agent_pod *)y)->uid);
}

/* --- pods ----------------------------------------------------------------- */

static void list_pods(struct worker *w)
{
	struct gp_agent *a = w->a;
	struct gp_kube_err e;
	char path[512];
	json_t *list = NULL, *items, *it;
	struct gp_agent_pod *pods = NULL;
	size_t n = 0, i;
	uint64_t asked = gp_wall_ns();

	snprintf(path, sizeof path, "/api/v1/pods?fieldSelector=spec.nodeName%%3D%s",
		 a->cfg->node_name);
	if (gp_kube_get(a->kube, path, &list, &e) != 0) {
		gp_warn("cannot list the pods of node %s: %s", a->cfg->node_name, e.msg);
		pthread_mutex_lock(&a->lock);
		a->pods_ok = 0;
		pthread_mutex_unlock(&a->lock);
		return;
	}
	items = json_object_get(list, "items");
	pods = calloc(json_array_size(items) + 1, sizeof *pods);
	if (!pods)
		goto out;
	json_array_foreach(items, i, it) {
		json_t *md = json_object_get(it, "metadata"), *an = json_object_get(md, "annotations");
		const char *uid = json_string_value(json_object_get(md, "uid"));
		const char *ns = json_string_value(json_object_get(md, "namespace"));
		const char *name = json_string_value(json_object_get(md, "name"));
		const char *phase = json_string_value(
			json_object_get(json_object_get(it, "status"), "phase"));
		const char *ex = json_string_value(json_object_get(an, IDLE_EXEMPT));
		struct gp_agent_pod *p = &pods[n];

		if (!uid || !ns || !name || strlen(uid) >= sizeof p->uid ||
		    strlen(ns) >= sizeof p->ns || strlen(name) >= sizeof p->name || n >= MAX_PODS)
			continue;
		strcpy(p->uid, uid);
		strcpy(p->ns, ns);
		strcpy(p->name, name);
		p->exempt = ex && strcmp(ex, "true") == 0;
		p->marked = json_object_get(an, IDLE_SINCE) != NULL;
		p->finished = phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
		n++;
	}
	qsort(pods, n, sizeof *pods, pod_by_uid);
	pthread_mutex_lock(&a->lock);
	free(a->pods);
	a->pods = pods;
	a->npods = n;
	a->pods_ok = 1;
	a->pods_wall_ns = asked;
	pthread_mutex_unlock(&a->lock);
	pods = NULL;
out:
	free(pods);
	json_decref(list);
}

/* --- node state ----------------------------------------------------------- */

/* Patch the node state from the latest snapshot.  Returns 0 or -errno. */
static int write_state(struct worker *w)
{
	struct gp_agent *a = w->a;
	struct gp_agent_snap *s = gp__agent_snap(a);
	struct gp_kube_err e;
	char path[512], *text;
	json_t *patch;
	int rc;

	if (!s || !s->nvml_ok) {
		gp_snap_unref(s);
		return -EAGAIN; /* never publish a node without its cards */
	}
	text = gp_node_state(s, a->cfg->slices, (long long)(gp_wall_ns() / 1000000));
	gp_snap_unref(s);
	patch = text ? json_pack("{s:{s:{s:s}}}", "metadata", "annotations",
				 GP_NODE_STATE_ANNOTATION, text)
		     : NULL;
	free(text);
	if (!patch)
		return -ENOMEM;
	snprintf(path, sizeof path, "/api/v1/nodes/%s", a->cfg->node_name);
	rc = gp_kube_patch(a->kube, path, GP_KUBE_MERGE_PATCH, patch, NULL, &e);
	json_decref(patch);
	pthread_mutex_lock(&a->lock);
	if (rc) {
		a->counters.state_errors++;
		a->state_dirty = 1;
	} else {
		a->counters.state_writes++;
	}
	pthread_mutex_unlock(&a->lock);
	if (rc)
		gp_warn("cannot write the node state of %s: %s", a->cfg->node_name, e.msg);
	return rc;
}

/* --- idle actions --------------------------------------------------------- */

static struct acted *acted_of(struct worker *w, const char *uid, int add)
{
	for (size_t i = 0; i < w->nacted; i++)
		if (strcmp(w->acted[i].uid, uid) == 0)
			return &w->acted[i];
	if (!add || w->nacted >= MAX_ACTED)
		return NULL;
	struct acted *m = realloc(w->acted, (w->nacted + 1) * sizeof *m);

	if (!m)
		return NULL;
	w->acted = m;
	memset(&m[w->nacted], 0, sizeof *m);
	snprintf(m[w->nacted].uid, sizeof m->uid, "%s", uid);
	return &m[w->nacted++];
}

static int patch_mark(struct worker *w, const struct gp_idle_pod *p, const char *since)
{
	struct gp_kube_err e;
	char path[512];
	json_t *patch = json_pack("{s:{s:{s:o}}}", "metadata", "annotations", IDLE_SINCE,
				  since ? json_string(since) : json_null());
	int rc;

	if (!patch)
		return -ENOMEM;
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", p->ns, p->pod);
	rc = gp_kube_patch(w->a->kube, path, GP_KUBE_MERGE_PATCH, patch, NULL, &e);
	json_decref(patch);
	if (rc)
		gp_warn("cannot %s pod %s/%s: %s", since ? "mark idle" : "unmark", p->ns, p->pod,
			e.msg);
	return rc;
}

static void event(struct worker *w, const struct gp_idle_pod *p, const char *reason,
		  const char *msg)
{
	struct gp_kube_err e;
	char path[512], now[40], gen[GP_AGENT_POD_MAX + 2];
	json_t *ev;

	gp_time_format((int64_t)(gp_wall_ns() / 1000000000ull) * 1000, now, sizeof now);
	/* metav1.Time is whole seconds: drop the milliseconds. */
	memmove(now + 19, now + 23, strlen(now + 23) + 1);
	snprintf(gen, sizeof gen, "%s.", p->pod);
	ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s, s:s, "
		       "s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:s}",
		       "apiVersion", "v1", "kind", "Event", "metadata", "generateName", gen,
		       "namespace", p->ns, "involvedObject", "apiVersion", "v1", "kind", "Pod",
		       "name", p->pod, "namespace", p->ns, "uid", p->uid, "reason", reason,
		       "message", msg, "type", "Normal", "source", "component", "gpupool-agent",
		       "host", w->a->cfg->node_name, "firstTimestamp", now, "lastTimestamp", now,
		       "count", 1, "reportingComponent", "gpupool-agent", "reportingInstance",
		       w->a->cfg->node_name);
	if (!ev)
		return;
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/events", p->ns);
	if (gp_kube_post(w->a->kube, path, ev, NULL, &e) != 0)
		gp_warn("cannot record an event for pod %s/%s: %s", p->ns, p->pod, e.msg);
	json_decref(ev);
}

/* Evict through the Eviction API: the API server refuses (429) while a
 * PodDisruptionBudget forbids it; we try again later. */
static int evict(struct worker *w, const struct gp_idle_pod *p)
{
	struct gp_kube_err e;
	char path[512];
	json_t *body = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "policy/v1", "kind",
				 "Eviction", "metadata", "name", p->pod, "namespace", p->ns);
	int rc;

	if (!body)
		return -ENOMEM;
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s/eviction", p->ns, p->pod);
	rc = gp_kube_post(w->a->kube, path, body, NULL, &e);
	json_decref(body);
	if (rc)
		gp_warn("cannot evict idle pod %s/%s%s: %s", p->ns, p->pod,
			e.status == 429 ? " (a PodDisruptionBudget forbids it now)" : "", e.msg);
	else
		gp_info("evicted idle pod %s/%s", p->ns, p->pod);
	return rc;
}

/* Start --idle-exec for p: sh -c CMD gpupool-idle NAMESPACE POD, with the
 * same in GPUPOOL_IDLE_* variables, in a process group of its own so an
 * overrun can be killed whole. */
static int run_exec(struct worker *w, const struct gp_idle_pod *p)
{
	const struct gp_agent_config *c = w->a->cfg;
	char e_ns[96], e_pod[GP_AGENT_POD_MAX + 32], e_uid[96], e_s[64];
	char **env = NULL;
	size_t n = 0;
	posix_spawnattr_t at;
	pid_t pid;
	int rc;

	if (w->nchild >= MAX_CHILDREN) {
		gp_warn("--idle-exec: %u commands still running; pod %s waits", w->nchild, p->uid);
		return -EAGAIN;
	}
	while (environ[n])
		n++;
	env = calloc(n + 5, sizeof *env);
	if (!env)
		return -ENOMEM;
	memcpy(env, environ, n * sizeof *env);
	snprintf(e_ns, sizeof e_ns, "GPUPOOL_IDLE_NAMESPACE=%s", p->ns);
	snprintf(e_pod, sizeof e_pod, "GPUPOOL_IDLE_POD=%s", p->pod);
	snprintf(e_uid, sizeof e_uid, "GPUPOOL_IDLE_POD_UID=%s", p->uid);
	snprintf(e_s, sizeof e_s, "GPUPOOL_IDLE_SECONDS=%.0f", p->idle_s);
	env[n] = e_ns;
	env[n + 1] = e_pod;
	env[n + 2] = e_uid;
	env[n + 3] = e_s;
	char *argv[] = {"sh", "-c", (char *)c->idle_exec, "gpupool-idle", (char *)p->ns,
			(char *)p->pod, NULL};

	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&at, 0);
	rc = posix_spawn(&pid, "/bin/sh", NULL, &at, argv, env);
	posix_spawnattr_destroy(&at);
	free(env);
	if (rc) {
		gp_warn("--idle-exec: cannot start /bin/sh: %s", strerror(rc));
		return -rc;
	}
	struct child *ch = &w->child[w->nchild++];

	ch->pid = pid;
	ch->deadline_ns = gp_now_ns() + c->idle_exec_timeout_ms * 1000000ull;
	snprintf(ch->what, sizeof ch->what, "%s/%s", p->ns[0] ? p->ns : "-",
		 p->pod[0] ? p->pod : p->uid);
	gp_info("--idle-exec started for idle pod %s (pid %d)", ch->what, (int)pid);
	pthread_mutex_lock(&w->a->lock);
	w->a->counters.idle_exec++;
	pthread_mutex_unlock(&w->a->lock);
	return 0;
}

static void reap(struct worker *w)
{
	uint64_t now = gp_now_ns();

	for (unsigned i = 0; i < w->nchild;) {
		struct child *ch = &w->child[i];
		int st;
		pid_t r = waitpid(ch->pid, &st, WNOHANG);

		if (r == ch->pid || (r < 0 && errno == ECHILD)) {
			if (r == ch->pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
				gp_warn("--idle-exec for %s failed (%s %d)", ch->what,
					WIFEXITED(st) ? "exit" : "signal",
					WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			*ch = w->child[--w->nchild];
			continue;
		}
		if (now > ch->deadline_ns) {
			gp_warn("--idle-exec for %s overran its timeout: killed", ch->what);
			kill(-ch->pid, SIGKILL);
			ch->deadline_ns = UINT64_MAX; /* reaped next round */
		}
		i++;
	}
}

/* The local view of pod p after we changed its annotation. */
static void note_marked(struct gp_agent *a, const char *uid, int marked)
{
	struct gp_agent_pod key, *p;

	snprintf(key.uid, sizeof key.uid, "%s", uid);
	pthread_mutex_lock(&a->lock);
	p = a->npods ? bsearch(&key, a->pods, a->npods, sizeof *a->pods, pod_by_uid) : NULL;
	if (p)
		p->marked = marked;
	pthread_mutex_unlock(&a->lock);
}

static int is_marked(struct gp_agent *a, const char *uid)
{
	struct gp_agent_pod key, *p;
	int m;

	snprintf(key.uid, sizeof key.uid, "%s", uid);
	pthread_mutex_lock(&a->lock);
	p = a->npods ? bsearch(&key, a->pods, a->npods, sizeof *a->pods, pod_by_uid) : NULL;
	m = p ? p->marked : -1;
	pthread_mutex_unlock(&a->lock);
	return m;
}

/* Act on one idle pod. */
static void on_idle(struct worker *w, const struct gp_idle_pod *p)
{
	struct gp_agent *a = w->a;
	const struct gp_agent_config *c = a->cfg;
	int marked = is_marked(a, p->uid);
	int named = a->kube && dns_ok(p->ns) && dns_ok(p->pod);
	struct acted *m;

	/* With an API server, act only on pods the last list named: a pod too
	 * new for it waits a resync rather than going unnamed to --idle-exec. */
	if (p->exempt || (a->kube && marked < 0))
		return;
	m = acted_of(w, p->uid, 1);
	if (!m)
		return;
	m->seen = 1;
	if (named && marked == 0) {
		char since[40], msg[256];

		gp_time_format((int64_t)(gp_wall_ns() / 1000000) - (int64_t)(p->idle_s * 1000), since,
			      sizeof since);
		if (patch_mark(w, p, since) == 0) {
			note_marked(a, p->uid, 1);
			snprintf(msg, sizeof msg,
				 "No kernel launch or copy on its GPUs for %.0f s (threshold %.0f s)%s",
				 p->idle_s, (double)c->idle_after_ms / 1000.0,
				 c->idle_action == GP_IDLE_EVICT ? "; evicting it" : "");
			event(w, p, "GPUIdle", msg);
			gp_info("pod %s/%s is idle (%.0f s)", p->ns, p->pod, p->idle_s);
			pthread_mutex_lock(&a->lock);
			a->counters.idle_marked++;
			pthread_mutex_unlock(&a->lock);
		}
	}
	if (c->idle_exec && !m->exec_done && run_exec(w, p) == 0)
		m->exec_done = 1;
	if (named && c->idle_action == GP_IDLE_EVICT && gp_now_ns() >= m->evict_next_ns) {
		/* Refused (a disruption budget): ask again next resync. */
		m->evict_next_ns = gp_now_ns() + c->resync_ms * 1000000ull;
		if (evict(w, p) == 0) {
			pthread_mutex_lock(&a->lock);
			a->counters.idle_evicted++;
			pthread_mutex_unlock(&a->lock);
		}
	}
}

/* A pod in use again: take the mark back and forget the episode. */
static void on_busy(struct worker *w, const struct gp_idle_pod *p)
{
	struct gp_agent *a = w->a;
	struct acted *m = acted_of(w, p->uid, 0);

	if (m)
		*m = w->acted[--w->nacted];
	if (a->kube && dns_ok(p->ns) && dns_ok(p->pod) && is_marked(a, p->uid) == 1 &&
	    patch_mark(w, p, NULL) == 0) {
		note_marked(a, p->uid, 0);
		gp_info("pod %s/%s is busy again", p->ns, p->pod);
	}
}

static void judge(struct worker *w, struct gp_idle_pod *v, long n)
{
	for (size_t i = 0; i < w->nacted; i++)
		w->acted[i].seen = 0;
	for (long i = 0; i < n; i++) {
		if (v[i].idle)
			on_idle(w, &v[i]);
		else
			on_busy(w, &v[i]);
	}
	/* Pods no longer judged (gone, or holding no GPU): forget them. */
	for (size_t i = 0; i < w->nacted;) {
		if (!w->acted[i].seen)
			w->acted[i] = w->acted[--w->nacted];
		else
			i++;
	}
}

/* --- the thread ----------------------------------------------------------- */

static void *work(void *arg)
{
	struct worker *w = arg;
	struct gp_agent *a = w->a;
	const struct gp_agent_config *c = a->cfg;

	pthread_setname_np(pthread_self(), "gp-kube");
	for (;;) {
		uint64_t now = gp_now_ns(), next = now + 3600000000000ull;
		struct gp_idle_pod *v = NULL;
		long nv = 0;
		int dirty;

		if (a->kube && now >= w->next_list) {
			list_pods(w);
			w->next_list = now + c->resync_ms * 1000000ull;
		}
		pthread_mutex_lock(&a->lock);
		dirty = a->state_dirty;
		a->state_dirty = 0;
		if (a->verdicts_new) {
			v = a->verdicts;
			nv = a->nverdicts;
			a->verdicts = NULL;
			a->verdicts_new = 0;
		}
		pthread_mutex_unlock(&a->lock);
		if (a->kube && (dirty || now >= w->next_state)) {
			int rc = write_state(w);

			w->next_state = now + (rc ? RETRY_NS : c->heartbeat_ms * 1000000ull);
			if (rc == -EAGAIN) {
				/* No cards yet: not an error; the first snapshot will
				 * mark the state dirty. */
				pthread_mutex_lock(&a->lock);
				a->state_dirty = 0;
				pthread_mutex_unlock(&a->lock);
			}
		}
		if (v)
			judge(w, v, nv);
		free(v);
		gp__allocate_work(a);
		reap(w);
		if (a->kube) {
			next = w->next_list < next ? w->next_list : next;
			next = w->next_state < next ? w->next_state : next;
		}
		if (w->nchild)
			next = now + 200000000ull < next ? now + 200000000ull : next;
		pthread_mutex_lock(&a->lock);
		while (!a->stop && !a->state_dirty && !a->verdicts_new && !a->alloc_todo &&
		       gp_now_ns() < next)
			gp__agent_wait(&a->wake_kube, &a->lock, next);
		if (a->stop) {
			pthread_mutex_unlock(&a->lock);
			break;
		}
		pthread_mutex_unlock(&a->lock);
	}
	/* Children outlive nobody: an agent going away takes them along. */
	for (unsigned i = 0; i < w->nchild; i++) {
		kill(-w->child[i].pid, SIGKILL);
		waitpid(w->child[i].pid, NULL, 0);
	}
	free(w->acted);
	free(w);
	return NULL;
}

int gp__kubework_start(struct gp_agent *a)
{
	struct worker *w = calloc(1, sizeof *w);
	int rc;

	if (!w)
		return -ENOMEM;
	w->a = a;
	rc = pthread_create(&a->kubework, NULL, work, w);
	if (rc) {
		free(w);
		return -rc;
	}
	return 0;
}

void gp__kubework_join(struct gp_agent *a)
{
	pthread_join(a->kubework, NULL);
}
