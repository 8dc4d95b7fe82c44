/* extender_cache.c - the extender's view of the cluster, and how a
 * placement node is built from a Node's annotations and its pods'.
 *
 * A snapshot is built from two API lists taken one after the other: every
 * Node (their gpupool.io/node-state, or HAMi's register), and every pod
 * that is bound and not finished (their gpupool.io/allocation, or HAMi's
 * allocation).  Allocations are thus recomputed from the pods, never kept
 * only in memory: a restarted extender sees exactly what the cluster holds.
 * Pods this replica bound since the lists began are added on top
 * ("assumed") until a later list shows them.
 *
 * The snapshot serves filter and prioritize, which may be a resync period
 * behind; bind never trusts it and re-reads the node under its lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "sched/extender_int.h"

/* Pods we bound stay counted this long unless an API list shows them: the
 * API server's list cache may lag the binding by a little. */
#define ASSUME_GRACE_MS 30000
#define MAX_ASSUMED 4096

/* The lists: bound, unfinished pods only; served from the API server's
 * cache (resourceVersion=0), which is what list-heavy clients should use. */
static const char nodes_path[] = "/api/v1/nodes?resourceVersion=0";
static const char pods_path[] = "/api/v1/pods?resourceVersion=0&fieldSelector="
				"spec.nodeName%21%3D%2Cstatus.phase%21%3DSucceeded"
				"%2Cstatus.phase%21%3DFailed";

struct gp__ext_cache {
	struct gp_kube *kube;
	struct gp_policy policy;
	long resync_ms, max_age_ms;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;               /* guards everything below */
	pthread_cond_t cv;
	bool stop, kick;
	struct gp__ext_snap *fresh;       /* built, not yet taken */
	struct gp__ext_assumed *assumed;
	size_t nassumed;
	int64_t last_ok_ms;
	char last_err[256];
};

static int64_t wall_ms(void)
{
	return (int64_t)(gp_wall_ns() / 1000000u);
}

/* --- nodes ---------------------------------------------------------------- */

int gp__ext_node_state(json_t *node, long max_age_ms, struct gp_annot_node *st, char *why,
		       size_t n)
{
	json_t *ann = json_object_get(json_object_get(node, "metadata"), "annotations");
	int rc = gp_annot_node_read(ann, st, why, n);

	if (rc)
		return rc;
	if (max_age_ms > 0 && st->source == GP_SRC_GPUPOOL) {
		int64_t age = wall_ms() - st->updated_ms;
		if (!st->updated_ms || age > max_age_ms) {
			snprintf(why, n, "%s is %s (older than %ld s); is the gpupool agent running?",
				 GP_ANNOT_NODE_STATE, st->updated_ms ? "stale" : "undated",
				 max_age_ms / 1000);
			return -ESTALE;
		}
	}
	return 0;
}

int gp__ext_build_node(const char *name, const struct gp_annot_node *st,
		       const struct gp_annot_hold *holds, unsigned nholds, struct gp_node **out,
		       char *why, size_t n)
{
	struct gp_node *node;
	int rc;

	*out = NULL;
	rc = gp_node_new(&node, name, 0, 0, 0, 0);
	if (rc) {
		snprintf(why, n, "node name '%s' is not usable", name);
		return rc;
	}
	for (unsigned i = 0; i < st->ngpu; i++) {
		const struct gp_annot_gpu *a = &st->gpu[i];
		uint64_t mem = 0;
		unsigned compute = 0, tenants = 0;
		bool excl = false;
		struct gp_gpu g = {
			.uuid = a->uuid,
			.model = a->model,
			.mem_bytes = a->mem_bytes,
			.compute = a->compute,
			.slices = a->slices,
			.numa = a->numa,
			.unhealthy = !a->healthy,
		};

		for (unsigned h = 0; h < nholds; h++) {
			if (strcasecmp(holds[h].uuid, a->uuid))
				continue;
			mem += holds[h].mem_bytes;
			compute += holds[h].compute;
			tenants += holds[h].tenants;
			excl = excl || holds[h].exclusive;
		}
		if (mem > a->mem_bytes || compute > a->compute || tenants > a->slices)
			gp_info("node %s GPU %s: pods hold more than it has; counting it full", name,
				a->uuid);
		g.mem_used = mem > a->mem_bytes ? a->mem_bytes : mem;
		g.compute_used = compute > a->compute ? a->compute : compute;
		g.tenants = tenants > a->slices ? a->slices : tenants;
		g.exclusive = excl;
		rc = gp_node_add_gpu(node, &g, why, n);
		if (rc < 0)
			goto fail;
	}
	for (unsigned i = 0; i < st->ngpu; i++)
		for (unsigned j = i + 1; j < st->ngpu; j++)
			if (st->link[i][j] && (rc = gp_node_set_link(node, i, j, st->link[i][j]))) {
				snprintf(why, n, "link score %u between GPUs %u and %u refused",
					 st->link[i][j], i, j);
				goto fail;
			}
	*out = node;
	return 0;
fail:
	gp_node_free(node);
	return rc < 0 ? rc : -EINVAL;
}

struct gp_node *gp__ext_empty_copy(const struct gp_node *n)
{
	struct gp_node *e;
	unsigned ngpu = gp_node_gpu_count(n);

	if (gp_node_new(&e, gp_node_name(n), 0, 0, 0, 0))
		return NULL;
	for (unsigned i = 0; i < ngpu; i++) {
		struct gp_gpu g;
		char err[GP_REASON_MAX];

		if (gp_node_gpu(n, i, &g))
			goto fail;
		g.mem_used = 0;
		g.compute_used = 0;
		g.tenants = 0;
		g.exclusive = false;
		if (gp_node_add_gpu(e, &g, err, sizeof err) < 0)
			goto fail;
	}
	return e;
fail:
	gp_node_free(e);
	return NULL;
}

/* --- what pods hold ------------------------------------------------------- */

int gp__ext_use_add(struct gp__ext_use *u, const struct gp_annot_hold *h, unsigned nh)
{
	if (nh == 0)
		return 0;
	if (u->n + nh > u->cap) {
		unsigned cap = u->cap ? u->cap * 2 : 4;
		struct gp_annot_hold *g;
		while (cap < u->n + nh)
			cap *= 2;
		g = realloc(u->hold, cap * sizeof *g);
		if (!g)
			return -ENOMEM;
		u->hold = g;
		u->cap = cap;
	}
	memcpy(u->hold + u->n, h, nh * sizeof *h);
	u->n += nh;
	return 0;
}

bool gp__ext_pod_active(json_t *pod)
{
	const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"),
							       "phase"));

	return !phase || (strcmp(phase, "Succeeded") != 0 && strcmp(phase, "Failed") != 0);
}

/* A small open-addressing map from node name to its use list, for the
 * pass over every pod. */
struct use_map {
	struct gp__ext_use *uses;
	size_t n, cap;            /* uses */
	size_t *slot;             /* index + 1; 0 = empty */
	size_t nslot;             /* power of two */
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int grow_map(struct use_map *m)
{
	size_t nslot = m->nslot ? m->nslot * 2 : 256;
	size_t *slot = calloc(nslot, sizeof *slot);

	if (!slot)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		size_t k = hash(m->uses[i].node) & (nslot - 1);
		while (slot[k])
			k = (k + 1) & (nslot - 1);
		slot[k] = i + 1;
	}
	free(m->slot);
	m->slot = slot;
	m->nslot = nslot;
	return 0;
}

static struct gp__ext_use *map_get(struct use_map *m, const char *node)
{
	size_t k;

	if (m->n * 2 >= m->nslot && grow_map(m))
		return NULL;
	for (k = hash(node) & (m->nslot - 1); m->slot[k]; k = (k + 1) & (m->nslot - 1))
		if (strcmp(m->uses[m->slot[k] - 1].node, node) == 0)
			return &m->uses[m->slot[k] - 1];
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct gp__ext_use *g = realloc(m->uses, cap * sizeof *g);
		if (!g)
			return NULL;
		m->uses = g;
		m->cap = cap;
	}
	memset(&m->uses[m->n], 0, sizeof m->uses[m->n]);
	if (!(m->uses[m->n].node = strdup(node)))
		return NULL;
	m->slot[k] = ++m->n;
	return &m->uses[m->n - 1];
}

static int cmp_use(const void *a, const void *b)
{
	return strcmp(((const struct gp__ext_use *)a)->node, ((const struct gp__ext_use *)b)->node);
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct gp__ext_node *)a)->name,
		      ((const struct gp__ext_node *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* --- snapshots ------------------------------------------------------------ */

void gp__ext_snap_free(struct gp__ext_snap *s)
{
	if (!s)
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

/* Count every bound, unfinished pod's allocation, and learn the workload
 * from their requests.  `uids` gets the UIDs seen (strings owned by pods). */
static int scan_pods(json_t *pods, struct use_map *m, struct gp__ext_snap *s, const char ***uids,
		     size_t *nuids)
{
	json_t *items = json_object_get(pods, "items"), *pod;
	struct gp_annot_alloc *a = malloc(sizeof *a);
	struct gp_pod_req pr;
	size_t i;
	int rc = -ENOMEM;

	*uids = calloc(json_array_size(items) + 1, sizeof **uids);
	*nuids = 0;
	if (!a || !*uids || gp_req_init(&pr)) {
		free(a);
		return -ENOMEM;
	}
	json_array_foreach(items, i, pod) {
		json_t *meta = json_object_get(pod, "metadata");
		const char *node = json_string_value(json_object_get(json_object_get(pod, "spec"),
								      "nodeName"));
		const char *uid = json_string_value(json_object_get(meta, "uid"));
		char why[GP_REASON_MAX];
		struct gp__ext_use *u;
		int r;

		if (!node || !*node || !gp__ext_pod_active(pod))
			continue;
		r = gp_annot_alloc_read(json_object_get(meta, "annotations"), a, why, sizeof why);
		if (r == -ENOENT)
			continue;
		if (uid)
			(*uids)[(*nuids)++] = uid;
		if (r) {
			/* Unreadable: we cannot tell what it holds.  Say so; the
			 * node's cards it may use are then over-offered until the
			 * pod is fixed, which is why bind re-reads too. */
			gp_warn("pod %s on %s: %s",
				json_string_value(json_object_get(meta, "name")), node, why);
			continue;
		}
		if (!(u = map_get(m, node)) || gp__ext_use_add(u, a->hold, a->nhold))
			goto out;
		s->gpu_pods++;
		if (gp_req_from_pod(&pr, pod, why, sizeof why) == 0 && pr.nctr &&
		    gp_workload_add(s->wl, pr.req, 1.0))
			gp_debug("workload: pod not counted");
	}
	qsort(*uids, *nuids, sizeof **uids, cmp_str);
	rc = 0;
out:
	gp_req_fini(&pr);
	free(a);
	return rc;
}

/* Add the pods we bound that the lists do not show yet; forget those the
 * lists must show by now. */
static int merge_assumed(struct gp__ext_cache *c, struct use_map *m, const char **uids,
			 size_t nuids, int64_t list_ms)
{
	size_t keep = 0;
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->nassumed; i++) {
		struct gp__ext_assumed *a = &c->assumed[i];
		const char *key = a->uid;
		struct gp__ext_use *u;

		if (nuids && bsearch(&key, uids, nuids, sizeof *uids, cmp_str))
			continue; /* listed: counted from the API */
		if (a->bound_ms + ASSUME_GRACE_MS < list_ms)
			continue; /* gone since (deleted or finished) */
		c->assumed[keep++] = *a;
		if (!(u = map_get(m, a->node)) || gp__ext_use_add(u, a->hold, a->nhold))
			rc = -ENOMEM;
	}
	c->nassumed = keep;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* Build one snapshot from the API.  Returns it, or NULL with why. */
static struct gp__ext_snap *refresh(struct gp__ext_cache *c, char *why, size_t n)
{
	struct gp__ext_snap *s = calloc(1, sizeof *s);
	struct use_map m = {0};
	struct gp_kube_err e;
	json_t *nodes = NULL, *pods = NULL, *items, *node;
	const char **uids = NULL;
	size_t nuids = 0, i;
	int rc;

	if (!s || gp_workload_new(&s->wl)) {
		snprintf(why, n, "out of memory");
		goto fail;
	}
	s->taken_ms = wall_ms();
	if ((rc = gp_kube_get(c->kube, nodes_path, &nodes, &e)) ||
	    (rc = gp_kube_get(c->kube, pods_path, &pods, &e))) {
		snprintf(why, n, "%s", e.msg);
		goto fail;
	}
	if (!json_is_array(json_object_get(nodes, "items")) ||
	    !json_is_array(json_object_get(pods, "items"))) {
		snprintf(why, n, "a node or pod list has no items");
		goto fail;
	}
	if (scan_pods(pods, &m, s, &uids, &nuids) ||
	    merge_assumed(c, &m, uids, nuids, s->taken_ms)) {
		snprintf(why, n, "out of memory");
		goto fail;
	}
	items = json_object_get(nodes, "items");
	s->nodes = calloc(json_array_size(items) + 1, sizeof *s->nodes);
	if (!s->nodes) {
		snprintf(why, n, "out of memory");
		goto fail;
	}
	json_array_foreach(items, i, node) {
		const char *name = json_string_value(
			json_object_get(json_object_get(node, "metadata"), "name"));
		struct gp__ext_node *en = &s->nodes[s->nnodes];
		struct gp_annot_node st;
		char r[GP_REASON_MAX];
		struct gp__ext_use *u;

		if (!name || !*name)
			continue;
		en->name = strdup(name);
		en->rc = gp__ext_node_state(node, c->max_age_ms, &st, r, sizeof r);
		if (!en->rc) {
			u = map_get(&m, name);
			en->rc = gp__ext_build_node(name, &st, u ? u->hold : NULL, u ? u->n : 0,
						    &en->node, r, sizeof r);
		}
		if (en->rc)
			en->why = strdup(r);
		s->nnodes++;
	}
	qsort(s->nodes, s->nnodes, sizeof *s->nodes, cmp_node);
	qsort(m.uses, m.n, sizeof *m.uses, cmp_use);
	s->uses = m.uses;
	s->nuses = m.n;
	m.uses = NULL;
	m.n = 0;
	if (gp_placer_new(&s->pl, &c->policy, s->wl)) {
		snprintf(why, n, "cannot create the placer");
		goto fail;
	}
	free(m.slot);
	free(uids);
	json_decref(nodes);
	json_decref(pods);
	gp_debug("snapshot: %zu nodes, %u GPU pods", s->nnodes, s->gpu_pods);
	return s;
fail:
	for (i = 0; i < m.n; i++) {
		free(m.uses[i].node);
		free(m.uses[i].hold);
	}
	free(m.uses);
	free(m.slot);
	free(uids);
	json_decref(nodes);
	json_decref(pods);
	gp__ext_snap_free(s);
	return NULL;
}

/* Publish a new snapshot (or the reason there is none). */
static void publish(struct gp__ext_cache *c, struct gp__ext_snap *s, const char *why)
{
	pthread_mutex_lock(&c->mu);
	if (s) {
		gp__ext_snap_free(c->fresh);
		c->fresh = s;
		c->last_ok_ms = wall_ms();
		c->last_err[0] = '\0';
	} else {
		snprintf(c->last_err, sizeof c->last_err, "%s", why);
	}
	pthread_mutex_unlock(&c->mu);
}

static void *refresher(void *arg)
{
	struct gp__ext_cache *c = arg;

	for (;;) {
		struct timespec until;
		struct gp__ext_snap *s;
		char why[384];

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += c->resync_ms / 1000;
		until.tv_nsec += (c->resync_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&c->mu);
		while (!c->stop && !c->kick &&
		       pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
			;
		if (c->kick && !c->stop) {
			/* Asked early (a node was missing): at most once a
			 * second, however many requests ask. */
			struct timespec soon;
			clock_gettime(CLOCK_MONOTONIC, &soon);
			soon.tv_sec += 1;
			while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &soon) == 0)
				;
		}
		c->kick = false;
		if (c->stop) {
			pthread_mutex_unlock(&c->mu);
			return NULL;
		}
		pthread_mutex_unlock(&c->mu);
		s = refresh(c, why, sizeof why);
		if (!s)
			gp_warn("cluster refresh failed: %s", why);
		publish(c, s, why);
	}
}

int gp__ext_cache_start(struct gp__ext_cache **out, struct gp_kube *kube,
			const struct gp_policy *policy, long resync_ms, long state_max_age_ms,
			char *why, size_t n)
{
	struct gp__ext_cache *c = calloc(1, sizeof *c);
	pthread_condattr_t ca;
	struct gp__ext_snap *s;

	if (!c)
		return -ENOMEM;
	c->kube = kube;
	c->policy = *policy;
	c->resync_ms = resync_ms > 0 ? resync_ms : 10000;
	c->max_age_ms = state_max_age_ms;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	s = refresh(c, why, n);
	if (!s) {
		gp__ext_cache_stop(c);
		return -EIO;
	}
	publish(c, s, NULL);
	if (pthread_create(&c->thread, NULL, refresher, c)) {
		snprintf(why, n, "cannot start the refresher thread");
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
	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
	}
	gp__ext_snap_free(c->fresh);
	free(c->assumed);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

struct gp__ext_snap *gp__ext_cache_take(struct gp__ext_cache *c, struct gp__ext_snap *cur)
{
	struct gp__ext_snap *s;

	pthread_mutex_lock(&c->mu);
	s = c->fresh;
	c->fresh = NULL;
	pthread_mutex_unlock(&c->mu);
	if (!s)
		return cur;
	gp__ext_snap_free(cur);
	return s;
}

void gp__ext_cache_kick(struct gp__ext_cache *c)
{
	pthread_mutex_lock(&c->mu);
	c->kick = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

void gp__ext_cache_assume(struct gp__ext_cache *c, const struct gp__ext_assumed *a)
{
	pthread_mutex_lock(&c->mu);
	if (c->nassumed < MAX_ASSUMED) {
		struct gp__ext_assumed *g = realloc(c->assumed, (c->nassumed + 1) * sizeof *g);
		if (g) {
			c->assumed = g;
			c->assumed[c->nassumed++] = *a;
		}
	}
	pthread_mutex_unlock(&c->mu);
}

void gp__ext_cache_health(struct gp__ext_cache *c, int64_t *last_ok_ms, char *err, size_t n)
{
	pthread_mutex_lock(&c->mu);
	*last_ok_ms = c->last_ok_ms;
	snprintf(err, n, "%s", c->last_err);
	pthread_mutex_unlock(&c->mu);
}
