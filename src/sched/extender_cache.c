/* extender_cache.c - the extender's live view of the cluster.
 *
 * Two watches (net/kubewatch.h) keep a store current: every Node's GPU
 * state and the pods it is binding (gpupool.io/binding), and every
 * unfinished pod that has a GPU allocation.  A builder thread turns the
 * store into immutable snapshots, a few milliseconds after it changes
 * (bursts of events coalesce) and at least every rebuild period (node
 * heartbeats and in-flight entries age without events).  The event loop
 * takes the newest snapshot at each request; a pod that is deleted or
 * finishes frees its GPUs in the view as soon as its event arrives.
 *
 * A pod counts once, by UID, from the first of:
 *   1. the pod as the API shows it: bound to a node, or given GPUs on one
 *      and not bound yet (until its allocation is older than the in-flight
 *      limit: a bind that never completed);
 *   2. a node's gpupool.io/binding entry (another replica's bind in flight,
 *      the pod's own update not seen yet);
 *   3. this replica's overlay: binds it is doing or just did, recorded
 *      the moment they are decided, so the next filter counts them before
 *      any API round trip (gp__ext_cache_assume / _forget).
 * The overlay changes the store's generation; the loop keeps serving from
 * the snapshot it amended itself until one built at that generation or
 * later arrives, so no decision is ever forgotten in between.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mcond.h"
#include "common/smap.h"
#include "net/kubewatch.h"
#include "sched/extender_int.h"

#define DEBOUNCE_MS 5        /* events within this are one rebuild */
#define MAX_OVERLAY 4096

/* Every unfinished pod (the watch drops the ones that finish). */
static const char pods_path[] = "/api/v1/pods?fieldSelector="
				"status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed";
static const char nodes_path[] = "/api/v1/nodes";

/* A Node as the store keeps it: parsed once per change. */
struct nent {
	int refs;                       /* atomic */
	char *name;
	int rc;                         /* gp_annot_node_read's */
	char *why;
	struct gp_annot_node st;
	struct gp_annot_binding *bind;  /* NULL when none */
};

/* A pod with a GPU allocation. */
struct pent {
	int refs;                       /* atomic */
	char uid[GP_ANNOT_UID_MAX];
	char node[GP_NAME_MAX];         /* bound there, or allocated there */
	bool bound;
	int64_t alloc_ms;               /* when the allocation was decided */
	unsigned nhold;
	struct gp_annot_hold hold[GP_MAX_GPUS];
	struct gp_pod_req pr;           /* its request, for the workload;
	                                   pr.nctr 0 when not read */
};

struct gp__ext_cache {
	struct gp__ext_cache_opts o;
	struct gp_kube_watch *wnodes, *wpods;
	struct gp_kube_watch_ops nodes_ops, pods_ops;
	pthread_t builder;
	bool started;
	pthread_mutex_t mu;             /* guards everything below */
	pthread_cond_t cv;
	bool stop;
	uint64_t gen;                   /* bumped by every change */
	uint64_t built_gen;             /* of the newest snapshot */
	struct gp_smap nodes;           /* name -> struct nent */
	struct gp_smap pods;            /* uid -> struct pent */
	struct gp_smap gone;            /* uid -> deleted (ms, as a pointer):
	                                   their binds in flight are over */
	struct gp__ext_assumed *ovl;    /* this replica's binds */
	size_t novl;
	struct gp__ext_snap *fresh;     /* built, not yet taken */
	int64_t last_build_ms;
};

static int64_t wall_ms(void)
{
	return (int64_t)(gp_wall_ns() / 1000000u);
}

/* --- store entries -------------------------------------------------------- */

static void nent_put(struct nent *e)
{
	if (!e || __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL))
		return;
	free(e->name);
	free(e->why);
	free(e->bind);
	free(e);
}

static void pent_put(struct pent *e)
{
	if (!e || __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL))
		return;
	gp_req_fini(&e->pr);
	free(e);
}

static struct nent *nent_from(json_t *node)
{
	json_t *meta = json_object_get(node, "metadata");
	json_t *ann = json_object_get(meta, "annotations");
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *b = gp_annot_get(ann, GP_ANNOT_BINDING, NULL);
	struct nent *e;
	char why[GP_REASON_MAX];

	if (!name || !*name || !(e = calloc(1, sizeof *e)))
		return NULL;
	e->refs = 1;
	if (!(e->name = strdup(name))) {
		free(e);
		return NULL;
	}
	/* The heartbeat's age is judged when a snapshot is built, not here. */
	if ((e->rc = gp__ext_node_state(node, 0, &e->st, why, sizeof why)))
		e->why = strdup(why);
	if (b && (e->bind = malloc(sizeof *e->bind)) &&
	    gp_annot_binding_parse(b, e->bind, why, sizeof why)) {
		gp_warn("node %s: %s; its binds in flight are not counted", name, why);
		free(e->bind);
		e->bind = NULL;
	}
	return e;
}

/* The store's entry for a pod, or NULL when the pod holds no GPUs we
 * count (no allocation, finished, unreadable). */
static struct pent *pent_from(json_t *pod)
{
	json_t *meta = json_object_get(pod, "metadata");
	const char *uid = json_string_value(json_object_get(meta, "uid"));
	const char *node = json_string_value(json_object_get(json_object_get(pod, "spec"),
							      "nodeName"));
	struct gp_annot_alloc *a;
	struct pent *e = NULL;
	char why[GP_REASON_MAX];
	int rc;

	if (!uid || !*uid || strlen(uid) >= GP_ANNOT_UID_MAX || !gp__ext_pod_active(pod) ||
	    !(a = malloc(sizeof *a)))
		return NULL;
	rc = gp_annot_alloc_read(json_object_get(meta, "annotations"), a, why, sizeof why);
	if (rc) {
		if (rc != -ENOENT)
			/* We cannot tell what it holds: its cards are
			 * over-offered until it is fixed, which is why bind
			 * re-reads. */
			gp_warn("pod %s: %s", json_string_value(json_object_get(meta, "name")), why);
		goto out;
	}
	if (!(node && *node) && !a->node[0])
		goto out; /* HAMi's, not bound: nowhere to count it */
	if (!(e = calloc(1, sizeof *e)) || gp_req_init(&e->pr)) {
		free(e);
		e = NULL;
		goto out;
	}
	e->refs = 1;
	snprintf(e->uid, sizeof e->uid, "%s", uid);
	e->bound = node && *node;
	snprintf(e->node, sizeof e->node, "%s", e->bound ? node : a->node);
	e->alloc_ms = a->bound_ms;
	e->nhold = a->nhold;
	memcpy(e->hold, a->hold, a->nhold * sizeof *a->hold);
	if (e->bound && gp_req_from_pod(&e->pr, pod, why, sizeof why))
		e->pr.nctr = 0; /* counted, but not in the workload */
out:
	free(a);
	return e;
}

/* Replace (or with e NULL remove) a store entry; called with mu held. */
static void store_set(struct gp_smap *m, const char *key, void *e, void (*put)(void *))
{
	void *old = NULL;

	if (e) {
		if (gp_smap_put(m, key, e, &old)) {
			gp_warn("out of memory: %s is not in the view", key);
			put(e);
			old = gp_smap_del(m, key);
		}
	} else {
		old = gp_smap_del(m, key);
	}
	put(old);
}

static void nent_put_v(void *e)
{
	nent_put(e);
}

static void pent_put_v(void *e)
{
	pent_put(e);
}

static void changed(struct gp__ext_cache *c)
{
	c->gen++;
	pthread_cond_signal(&c->cv);
}

static void clear(struct gp_smap *m, void (*put)(void *))
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slot[i].key)
			put(m->slot[i].val);
	gp_smap_free(m);
}

/* --- the watches' callbacks ----------------------------------------------- */

static void nodes_relist(void *arg, json_t *items)
{
	struct gp__ext_cache *c = arg;
	struct gp_smap fresh = {0};
	json_t *v;
	size_t i;

	/* Parsed outside the lock: the loop must never wait on it. */
	json_array_foreach(items, i, v) {
		struct nent *e = nent_from(v);
		if (e && gp_smap_put(&fresh, e->name, e, NULL))
			nent_put(e);
	}
	pthread_mutex_lock(&c->mu);
	clear(&c->nodes, nent_put_v);
	c->nodes = fresh;
	changed(c);
	pthread_mutex_unlock(&c->mu);
}

static void nodes_event(void *arg, const char *type, json_t *obj)
{
	struct gp__ext_cache *c = arg;
	const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"),
							      "name"));
	struct nent *e = strcmp(type, "DELETED") ? nent_from(obj) : NULL;

	if (!name)
		return;
	pthread_mutex_lock(&c->mu);
	store_set(&c->nodes, name, e, nent_put_v);
	changed(c);
	pthread_mutex_unlock(&c->mu);
}

static void pods_relist(void *arg, json_t *items)
{
	struct gp__ext_cache *c = arg;
	struct gp_smap fresh = {0};
	json_t *v;
	size_t i;

	json_array_foreach(items, i, v) {
		struct pent *e = pent_from(v);
		if (e && gp_smap_put(&fresh, e->uid, e, NULL))
			pent_put(e);
	}
	pthread_mutex_lock(&c->mu);
	clear(&c->pods, pent_put_v);
	c->pods = fresh;
	changed(c);
	pthread_mutex_unlock(&c->mu);
}

static void pods_event(void *arg, const char *type, json_t *obj)
{
	struct gp__ext_cache *c = arg;
	const char *uid = json_string_value(json_object_get(json_object_get(obj, "metadata"),
							     "uid"));
	struct pent *e = strcmp(type, "DELETED") ? pent_from(obj) : NULL;

	if (!uid)
		return;
	pthread_mutex_lock(&c->mu);
	if (!strcmp(type, "DELETED") &&
	    gp_smap_put(&c->gone, uid, (void *)(intptr_t)wall_ms(), NULL))
		gp_debug("out of memory: deleted pod %s may count until its bind expires", uid);
	if (e || gp_smap_get(&c->pods, uid)) {
		store_set(&c->pods, uid, e, pent_put_v);
		changed(c);
	}
	pthread_mutex_unlock(&c->mu);
}

/* Forget deletions older than any bind in flight.  Called with mu held. */
static void prune_gone(struct gp__ext_cache *c, int64_t now)
{
	for (size_t i = 0; i < c->gone.cap; i++)
		while (c->gone.slot[i].key &&
		       (int64_t)(intptr_t)c->gone.slot[i].val + c->o.inflight_ms < now)
			gp_smap_del(&c->gone, c->gone.slot[i].key); /* shifts the next in */
}

bool gp__ext_cache_gone(struct gp__ext_cache *c, const char *uid)
{
	bool gone;

	pthread_mutex_lock(&c->mu);
	gone = gp_smap_get(&c->gone, uid) != NULL;
	pthread_mutex_unlock(&c->mu);
	return gone;
}

/* --- snapshots ------------------------------------------------------------ */

static int cmp_use(const void *a, const void *b)
{
	return strcmp(((const struct gp__ext_use *)a)->node, ((const struct gp__ext_use *)b)->node);
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct gp__ext_node *)a)->name,
		      ((const struct gp__ext_node *)b)->name);
}

struct gp__ext_snap *gp__ext_snap_get(struct gp__ext_snap *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void gp__ext_snap_put(struct gp__ext_snap *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (size_t i = 0; i < s->nnodes; i++) {
		free(s->nodes[i].name);
		free(s->nodes[i].why);
		gp_node_free(s->nodes[i].node);
	}
	for (size_t i = 0; i < s->nuses; i++) {
		free(s->uses[i].node);
		free(s->uses[i].hold);
	}
	free(s->nodes);
	free(s->uses);
	free(s->extra);
	gp_placer_free(s->pl);
	gp_workload_free(s->wl);
	free(s);
}

struct gp__ext_node *gp__ext_snap_node(struct gp__ext_snap *s, const char *name)
{
	struct gp__ext_node key = {.name = (char *)name};

	return s->nnodes ? bsearch(&key, s->nodes, s->nnodes, sizeof key, cmp_node) : NULL;
}

int gp__ext_snap_holds(const struct gp__ext_snap *s, const char *name, struct gp_annot_hold **out,
		       unsigned *n)
{
	struct gp__ext_use key = {.node = (char *)name}, acc = {0};
	const struct gp__ext_use *u =
		s->nuses ? bsearch(&key, s->uses, s->nuses, sizeof key, cmp_use) : NULL;

	if (u && gp__ext_use_add(&acc, u->hold, u->n))
		goto oom;
	for (size_t i = 0; i < s->nextra; i++)
		if (strcmp(s->extra[i].node, name) == 0 &&
		    gp__ext_use_add(&acc, s->extra[i].hold, s->extra[i].nhold))
			goto oom;
	*out = acc.hold;
	*n = acc.n;
	return 0;
oom:
	free(acc.hold);
	return -ENOMEM;
}

/* What a build works from: the store's entries (referenced) and a copy of
 * the overlay, taken under the lock in O(entries). */
struct inputs {
	struct nent **nodes;
	size_t nnodes;
	struct pent **pods;
	size_t npods;
	struct gp__ext_assumed *ovl;
	size_t novl;
	struct gp_smap gone;            /* a copy */
	uint64_t gen;
};

static void inputs_free(struct inputs *in)
{
	for (size_t i = 0; i < in->nnodes; i++)
		nent_put(in->nodes[i]);
	for (size_t i = 0; i < in->npods; i++)
		pent_put(in->pods[i]);
	free(in->nodes);
	free(in->pods);
	free(in->ovl);
	gp_smap_free(&in->gone);
}

/* Called with mu held. */
static int inputs_take(struct gp__ext_cache *c, struct inputs *in)
{
	memset(in, 0, sizeof *in);
	in->nodes = malloc((c->nodes.n + 1) * sizeof *in->nodes);
	in->pods = malloc((c->pods.n + 1) * sizeof *in->pods);
	in->ovl = malloc((c->novl + 1) * sizeof *in->ovl);
	if (!in->nodes || !in->pods || !in->ovl) {
		inputs_free(in);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->nodes.cap; i++)
		if (c->nodes.slot[i].key) {
			struct nent *e = c->nodes.slot[i].val;
			__atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
			in->nodes[in->nnodes++] = e;
		}
	for (size_t i = 0; i < c->pods.cap; i++)
		if (c->pods.slot[i].key) {
			struct pent *e = c->pods.slot[i].val;
			__atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
			in->pods[in->npods++] = e;
		}
	if (c->novl)
		memcpy(in->ovl, c->ovl, c->novl * sizeof *c->ovl);
	in->novl = c->novl;
	in->gen = c->gen;
	for (size_t i = 0; i < c->gone.cap; i++)
		if (c->gone.slot[i].key && gp_smap_put(&in->gone, c->gone.slot[i].key, (void *)1, NULL)) {
			inputs_free(in);
			return -ENOMEM;
		}
	return 0;
}

/* Add holds to a node's use list, unless the pod was counted already. */
static int count(struct gp_smap *uses, struct gp_smap *seen, const char *uid, const char *node,
		 const struct gp_annot_hold *h, unsigned nh)
{
	struct gp__ext_use *u;

	if (gp_smap_get(seen, uid))
		return 0;
	if (gp_smap_put(seen, uid, (void *)1, NULL))
		return -ENOMEM;
	if (!(u = gp_smap_get(uses, node))) {
		if (!(u = calloc(1, sizeof *u)) || !(u->node = strdup(node)) ||
		    gp_smap_put(uses, node, u, NULL)) {
			if (u)
				free(u->node);
			free(u);
			return -ENOMEM;
		}
	}
	return gp__ext_use_add(u, h, nh);
}

static struct gp__ext_snap *build(const struct gp__ext_cache *c, const struct inputs *in,
				  char *why, size_t n)
{
	struct gp__ext_snap *s = calloc(1, sizeof *s);
	struct gp_smap uses = {0}, seen = {0};
	int64_t now = wall_ms();
	int rc = 0;

	if (!s || gp_workload_new(&s->wl))
		goto oom;
	s->refs = 1;
	s->gen = in->gen;
	s->taken_ms = now;
	/* 1. the pods as the API shows them */
	for (size_t i = 0; i < in->npods && !rc; i++) {
		const struct pent *p = in->pods[i];

		if (!p->bound && p->alloc_ms + c->o.inflight_ms < now)
			continue; /* a bind that never completed */
		rc = count(&uses, &seen, p->uid, p->node, p->hold, p->nhold);
		if (p->bound) {
			s->gpu_pods++;
			if (p->pr.nctr && gp_workload_add(s->wl, p->pr.req, 1.0))
				gp_debug("workload: pod %s not counted", p->uid);
		}
	}
	/* 2. binds in flight, as nodes list them */
	for (size_t i = 0; i < in->nnodes && !rc; i++) {
		const struct gp_annot_binding *b = in->nodes[i]->bind;

		for (unsigned k = 0; b && k < b->n && !rc; k++)
			if (b->pod[k].expires_ms > now && !gp_smap_get(&in->gone, b->pod[k].uid))
				rc = count(&uses, &seen, b->pod[k].uid, in->nodes[i]->name,
					   b->pod[k].hold, b->pod[k].nhold);
	}
	/* 3. ours */
	for (size_t i = 0; i < in->novl && !rc; i++)
		if (!gp_smap_get(&in->gone, in->ovl[i].uid))
			rc = count(&uses, &seen, in->ovl[i].uid, in->ovl[i].node, in->ovl[i].hold,
			   in->ovl[i].nhold);
	if (rc)
		goto oom;
	if (!(s->nodes = calloc(in->nnodes + 1, sizeof *s->nodes)) ||
	    !(s->uses = calloc(uses.n + 1, sizeof *s->uses)))
		goto oom;
	for (size_t i = 0; i < in->nnodes; i++) {
		const struct nent *e = in->nodes[i];
		struct gp__ext_node *en = &s->nodes[s->nnodes++];
		const struct gp__ext_use *u = gp_smap_get(&uses, e->name);
		char r[GP_REASON_MAX];

		if (!(en->name = strdup(e->name)))
			goto oom;
		en->rc = e->rc;
		if (e->rc) {
			snprintf(r, sizeof r, "%s", e->why ? e->why : "node state unusable");
		} else if (c->o.state_max_age_ms > 0 && e->st.source == GP_SRC_GPUPOOL &&
			   (!e->st.updated_ms || now - e->st.updated_ms > c->o.state_max_age_ms)) {
			en->rc = -ESTALE;
			snprintf(r, sizeof r,
				 "%s is %s (older than %ld s); is the gpupool agent running?",
				 GP_ANNOT_NODE_STATE, e->st.updated_ms ? "stale" : "undated",
				 c->o.state_max_age_ms / 1000);
		} else {
			en->rc = gp__ext_build_node(e->name, &e->st, u ? u->hold : NULL,
						    u ? u->n : 0, &en->node, r, sizeof r);
		}
		if (en->rc && !(en->why = strdup(r)))
			goto oom;
	}
	for (size_t i = 0; i < uses.cap; i++)
		if (uses.slot[i].key) {
			s->uses[s->nuses++] = *(struct gp__ext_use *)uses.slot[i].val;
			free(uses.slot[i].val);
			uses.slot[i].val = NULL;
		}
	qsort(s->nodes, s->nnodes, sizeof *s->nodes, cmp_node);
	qsort(s->uses, s->nuses, sizeof *s->uses, cmp_use);
	if (gp_placer_new(&s->pl, &c->o.policy, s->wl)) {
		snprintf(why, n, "cannot create the placer");
		goto fail;
	}
	gp_smap_free(&uses);
	gp_smap_free(&seen);
	return s;
oom:
	snprintf(why, n, "out of memory");
fail:
	for (size_t i = 0; i < uses.cap; i++)
		if (uses.slot[i].key && uses.slot[i].val) {
			struct gp__ext_use *u = uses.slot[i].val;
			free(u->node);
			free(u->hold);
			free(u);
		}
	gp_smap_free(&uses);
	gp_smap_free(&seen);
	gp__ext_snap_put(s);
	return NULL;
}

/* Forget overlay entries the API now shows, or that are too old.  Called
 * with mu held. */
static void prune_overlay(struct gp__ext_cache *c, int64_t now)
{
	size_t keep = 0;

	for (size_t i = 0; i < c->novl; i++) {
		const struct gp__ext_assumed *a = &c->ovl[i];
		const struct pent *p = gp_smap_get(&c->pods, a->uid);

		if ((a->bound && p && p->bound) || a->until_ms < now)
			continue; /* done and visible, or given up */
		c->ovl[keep++] = *a;
	}
	c->novl = keep;
}

/* Build from the store now; publish unless a newer one is out. */
static void rebuild(struct gp__ext_cache *c)
{
	struct inputs in;
	struct gp__ext_snap *s;
	char why[256];

	pthread_mutex_lock(&c->mu);
	prune_overlay(c, wall_ms());
	prune_gone(c, wall_ms());
	if (inputs_take(c, &in)) {
		pthread_mutex_unlock(&c->mu);
		gp_warn("cannot rebuild the cluster view: out of memory");
		return;
	}
	pthread_mutex_unlock(&c->mu);
	s = build(c, &in, why, sizeof why);
	inputs_free(&in);
	if (!s) {
		gp_warn("cannot rebuild the cluster view: %s", why);
		return;
	}
	pthread_mutex_lock(&c->mu);
	if (s->gen >= c->built_gen) {
		gp__ext_snap_put(c->fresh);
		c->fresh = s;
		c->built_gen = s->gen;
		s = NULL;
	}
	c->last_build_ms = wall_ms();
	pthread_mutex_unlock(&c->mu);
	gp__ext_snap_put(s);
}

static void *builder(void *arg)
{
	struct gp__ext_cache *c = arg;
	uint64_t done = 0;

	for (;;) {
		uint64_t until = gp_now_ns() + (uint64_t)c->o.rebuild_ms * 1000000u;

		pthread_mutex_lock(&c->mu);
		while (!c->stop && c->gen == done && gp_mcond_wait_until(&c->cv, &c->mu, until) == 0)
			;
		if (c->stop) {
			pthread_mutex_unlock(&c->mu);
			return NULL;
		}
		if (c->gen != done) {
			/* Let a burst of events finish first. */
			until = gp_now_ns() + DEBOUNCE_MS * 1000000u;
			while (!c->stop && gp_mcond_wait_until(&c->cv, &c->mu, until) == 0)
				;
		}
		done = c->gen;
		pthread_mutex_unlock(&c->mu);
		rebuild(c);
	}
}

/* --- the cache's life ----------------------------------------------------- */

int gp__ext_cache_start(struct gp__ext_cache **out, struct gp_kube *kube,
			const struct gp__ext_cache_opts *o, char *why, size_t n)
{
	struct gp__ext_cache *c = calloc(1, sizeof *c);
	int rc;

	if (!c)
		return -ENOMEM;
	c->o = *o;
	if (c->o.rebuild_ms <= 0)
		c->o.rebuild_ms = 5000;
	pthread_mutex_init(&c->mu, NULL);
	gp_mcond_init(&c->cv);
	c->nodes_ops = (struct gp_kube_watch_ops){"nodes", nodes_path, nodes_relist, nodes_event,
						  c};
	c->pods_ops = (struct gp_kube_watch_ops){"pods", pods_path, pods_relist, pods_event, c};
	if ((rc = gp_kube_watch_start(&c->wnodes, kube, &c->nodes_ops, why, n)) ||
	    (rc = gp_kube_watch_start(&c->wpods, kube, &c->pods_ops, why, n))) {
		gp__ext_cache_stop(c);
		return rc;
	}
	rebuild(c); /* the first request has a view */
	if (!c->fresh) {
		snprintf(why, n, "cannot build the first view of the cluster (out of memory)");
		gp__ext_cache_stop(c);
		return -ENOMEM;
	}
	if (pthread_create(&c->builder, NULL, builder, c)) {
		snprintf(why, n, "cannot start the view's builder thread");
		gp__ext_cache_stop(c);
		return -EAGAIN;
	}
	c->started = true;
	*out = c;
	return 0;
}

void gp__ext_cache_stop(struct gp__ext_cache *c)
{
	if (!c)
		return;
	/* The watches first: their callbacks take the lock. */
	gp_kube_watch_stop(c->wnodes);
	gp_kube_watch_stop(c->wpods);
	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->builder, NULL);
	}
	clear(&c->nodes, nent_put_v);
	clear(&c->pods, pent_put_v);
	gp_smap_free(&c->gone);
	gp__ext_snap_put(c->fresh);
	free(c->ovl);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

struct gp__ext_snap *gp__ext_cache_take(struct gp__ext_cache *c, struct gp__ext_snap *cur,
					uint64_t min_gen)
{
	struct gp__ext_snap *s = NULL;

	pthread_mutex_lock(&c->mu);
	if (c->fresh && c->fresh->gen >= min_gen) {
		s = c->fresh;
		c->fresh = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	if (!s)
		return cur;
	gp__ext_snap_put(cur);
	return s;
}

uint64_t gp__ext_cache_assume(struct gp__ext_cache *c, const struct gp__ext_assumed *a)
{
	uint64_t gen;
	size_t i;

	pthread_mutex_lock(&c->mu);
	for (i = 0; i < c->novl && strcmp(c->ovl[i].uid, a->uid) != 0; i++)
		;
	if (i == c->novl && c->novl < MAX_OVERLAY) {
		struct gp__ext_assumed *g = realloc(c->ovl, (c->novl + 1) * sizeof *g);
		if (g) {
			c->ovl = g;
			c->novl++;
		}
	}
	if (i < c->novl)
		c->ovl[i] = *a;
	else
		gp_warn("too many binds at once: pod %s is not in the view until its event", a->uid);
	changed(c);
	gen = c->gen;
	pthread_mutex_unlock(&c->mu);
	return gen;
}

uint64_t gp__ext_cache_forget(struct gp__ext_cache *c, const char *uid)
{
	uint64_t gen;

	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->novl; i++)
		if (strcmp(c->ovl[i].uid, uid) == 0) {
			c->ovl[i] = c->ovl[--c->novl];
			break;
		}
	changed(c);
	gen = c->gen;
	pthread_mutex_unlock(&c->mu);
	return gen;
}

bool gp__ext_cache_health(struct gp__ext_cache *c, int64_t *last_ok_ms, char *err, size_t n)
{
	int64_t tn, tp;
	char en[192], ep[192];
	bool okn = gp_kube_watch_health(c->wnodes, &tn, en, sizeof en);
	bool okp = gp_kube_watch_health(c->wpods, &tp, ep, sizeof ep);

	*last_ok_ms = tn < tp ? tn : tp;
	snprintf(err, n, "%s%s%s", en, en[0] && ep[0] ? "; " : "", ep);
	return okn && okp;
}
