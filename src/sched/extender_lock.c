/* extender_lock.c - the per-node bind lock.
 *
 * A bind reads what a node has given out, decides, and writes the decision
 * and the Binding.  Two binds to one node at once (two replicas, or a
 * retry racing the original) could both read the same free card and give
 * it out twice.  So a bind first takes the node's lock: the
 * gpupool.io/bind-lock annotation naming a holder and an expiry, written
 * with the resourceVersion just read, so that of two writers the API
 * server accepts one and answers 409 to the other (who re-reads and finds
 * the lock taken).  A holder that dies leaves a lock that expires after
 * the TTL; the next bind takes it over.  Expiry is wall time: replicas'
 * clocks must agree to well within the TTL.
 *
 * The lock is held only while a bind decides and writes the pod's
 * allocation, not while the Binding is created (a slow API server would
 * otherwise serialise every bind to a node behind it).  So the release
 * also lists the pod in the node's gpupool.io/binding, with its footprint
 * and an expiry: the next holder counts it until the pod shows as bound.
 * One merge patch does both, under the resourceVersion just read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "sched/extender_int.h"

struct lock_args {
	const char *holder;
	const char *pod;
	int64_t now_ms, ttl_ms;
	struct gp_annot_lock seen;  /* the other holder, when busy */
};

static json_t *annotation_patch(const char *key, json_t *value)
{
	return json_pack("{s:{s:{s:o}}}", "metadata", "annotations", key, value);
}

/* Decide from the node as read: take the lock, or report it busy. */
static int take(json_t *node, json_t **patch, void *arg, struct gp_kube_err *e)
{
	struct lock_args *a = arg;
	json_t *ann = json_object_get(json_object_get(node, "metadata"), "annotations");
	const char *cur = gp_annot_get(ann, GP_ANNOT_LOCK, NULL);
	struct gp_annot_lock l;
	char why[GP_REASON_MAX], *text;

	a->now_ms = (int64_t)(gp_wall_ns() / 1000000u);
	if (cur) {
		if (gp_annot_lock_parse(cur, &l, why, sizeof why)) {
			gp_warn("%s; taking the lock over", why);
		} else if (strcmp(l.holder, a->holder) != 0 && l.expires_ms > a->now_ms) {
			a->seen = l;
			snprintf(e->msg, sizeof e->msg, "locked by %.100s for pod %.200s for %lld ms more",
				 l.holder, l.pod, (long long)(l.expires_ms - a->now_ms));
			return -EBUSY;
		} else if (strcmp(l.holder, a->holder) != 0) {
			gp_info("bind lock of %s (pod %s) expired; taking it over", l.holder,
				l.pod);
		}
	}
	memset(&l, 0, sizeof l);
	snprintf(l.holder, sizeof l.holder, "%s", a->holder);
	snprintf(l.pod, sizeof l.pod, "%s", a->pod);
	l.expires_ms = a->now_ms + a->ttl_ms;
	if (!(text = gp_annot_lock_format(&l)))
		return -ENOMEM;
	*patch = annotation_patch(GP_ANNOT_LOCK, json_string(text));
	free(text);
	return *patch ? 0 : -ENOMEM;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct drop_args {
	const char *holder;        /* NULL: leave the lock alone */
	const struct gp__ext_release *r;
	const char *forget;        /* a UID to remove, or NULL */
};

/* The node's binds in flight, updated: expired ones, those of pods now
 * bound and `forget` go; `add` comes in.  Returns the new annotation value
 * (JSON null when empty), or NULL when it is unchanged. */
static json_t *binding_update(json_t *ann, const struct drop_args *a, struct gp_kube_err *e)
{
	const char *cur = gp_annot_get(ann, GP_ANNOT_BINDING, NULL);
	struct gp_annot_binding *b = malloc(sizeof *b);
	int64_t now = (int64_t)(gp_wall_ns() / 1000000u);
	const struct gp_annot_inflight *add = a->r ? a->r->add : NULL;
	unsigned keep = 0, had;
	char why[GP_REASON_MAX], *text;
	json_t *v;

	if (!b)
		return NULL;
	if (!cur || gp_annot_binding_parse(cur, b, why, sizeof why)) {
		if (cur)
			gp_warn("%s; writing it anew", why);
		b->n = 0;
	}
	had = b->n;
	for (unsigned i = 0; i < b->n; i++) {
		const char *uid = b->pod[i].uid;
		if (b->pod[i].expires_ms <= now || (a->forget && strcmp(uid, a->forget) == 0) ||
		    (add && strcmp(uid, add->uid) == 0) ||
		    (a->r && a->r->nbound &&
		     bsearch(&uid, a->r->bound, a->r->nbound, sizeof uid, cmp_str)))
			continue;
		b->pod[keep++] = b->pod[i];
	}
	b->n = keep;
	if (add) {
		if (b->n == GP_ANNOT_BINDING_MAX) {
			snprintf(e->msg, sizeof e->msg, "%u binds already in flight on this node",
				 GP_ANNOT_BINDING_MAX);
			free(b);
			return NULL;
		}
		b->pod[b->n++] = *add;
	}
	if (!add && keep == had) {
		free(b);
		return NULL;
	}
	text = b->n ? gp_annot_binding_format(b) : NULL;
	v = b->n ? (text ? json_string(text) : NULL) : json_null();
	free(text);
	free(b);
	return v;
}

/* Release the lock if it is still ours, updating the binds in flight. */
static int drop(json_t *node, json_t **patch, void *arg, struct gp_kube_err *e)
{
	const struct drop_args *a = arg;
	json_t *ann = json_object_get(json_object_get(node, "metadata"), "annotations");
	const char *cur = gp_annot_get(ann, GP_ANNOT_LOCK, NULL);
	struct gp_annot_lock l;
	char why[GP_REASON_MAX];
	bool ours = a->holder && cur && !gp_annot_lock_parse(cur, &l, why, sizeof why) &&
		    strcmp(l.holder, a->holder) == 0;
	json_t *binding;

	if (a->holder && !ours) {
		/* Expired and taken over: what we decided may have been
		 * decided against; the caller must not go on. */
		snprintf(e->msg, sizeof e->msg, "the bind lock expired before the release");
		return -ETIMEDOUT;
	}
	e->msg[0] = '\0';
	binding = binding_update(ann, a, e);
	if (!binding && e->msg[0])
		return -ENOSPC;
	if (!binding && !ours)
		return 1; /* nothing to change */
	*patch = json_pack("{s:{s:{}}}", "metadata", "annotations");
	if (!*patch) {
		json_decref(binding);
		return -ENOMEM;
	}
	ann = json_object_get(json_object_get(*patch, "metadata"), "annotations");
	if (ours)
		json_object_set_new(ann, GP_ANNOT_LOCK, json_null());
	if (binding)
		json_object_set_new(ann, GP_ANNOT_BINDING, binding);
	return 0;
}

int gp__ext_lock(struct gp__ext *x, const char *node, const char *pod, char *holder,
		 size_t holder_len, json_t **node_obj, char *why, size_t n)
{
	struct lock_args a = {.holder = holder, .pod = pod, .ttl_ms = x->o.lock_ttl_ms};
	struct gp_kube_err e;
	char path[GP_NAME_MAX + 32];
	uint64_t deadline = gp_now_ns() + (uint64_t)x->o.lock_wait_ms * 1000000u;
	unsigned waits = 0;
	int rc;

	snprintf(holder, holder_len, "%s/%lu", x->replica,
		 __atomic_add_fetch(&x->seq, 1, __ATOMIC_RELAXED));
	snprintf(path, sizeof path, "/api/v1/nodes/%s", node);
	for (;;) {
		rc = gp_kube_update(x->kube, path, GP_KUBE_MERGE_PATCH, take, &a, node_obj, &e);
		if (rc != -EBUSY)
			break;
		if (gp_now_ns() >= deadline) {
			snprintf(why, n, "node %s is busy: %s (waited %ld ms)", node, e.msg,
				 x->o.lock_wait_ms);
			return -EBUSY;
		}
		/* Back off 20..100 ms, with some spread so waiters do not
		 * retry in lockstep. */
		waits++;
		gp_sleep_until_ns(gp_now_ns() +
				  (uint64_t)(20 + (waits * 37 + (unsigned)holder[0] * 13) % 80) * 1000000u);
	}
	if (rc) {
		snprintf(why, n, "cannot lock node %s: %s", node, e.msg);
		return rc;
	}
	gp_debug("locked %s as %s for %s", node, holder, pod);
	return 0;
}

int gp__ext_unlock(struct gp__ext *x, const char *node, const char *holder,
		   const struct gp__ext_release *r, char *why, size_t n)
{
	struct drop_args a = {.holder = holder, .r = r};
	struct gp_kube_err e;
	char path[GP_NAME_MAX + 32];
	int rc;

	snprintf(path, sizeof path, "/api/v1/nodes/%s", node);
	rc = gp_kube_update(x->kube, path, GP_KUBE_MERGE_PATCH, drop, &a, NULL, &e);
	if (rc)
		snprintf(why, n, "cannot release the bind lock of %s (it expires by itself): %s",
			 node, e.msg);
	else
		gp_debug("unlocked %s (%s)", node, holder);
	return rc;
}

void gp__ext_unlist(struct gp__ext *x, const char *node, const char *uid)
{
	struct drop_args a = {.forget = uid};
	struct gp_kube_err e;
	char path[GP_NAME_MAX + 32];

	snprintf(path, sizeof path, "/api/v1/nodes/%s", node);
	if (gp_kube_update(x->kube, path, GP_KUBE_MERGE_PATCH, drop, &a, NULL, &e))
		gp_warn("cannot take pod %s off the binds in flight of %s (it expires): %s", uid,
			node, e.msg);
}
