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

/* Remove the lock if it is still ours. */
static int drop(json_t *node, json_t **patch, void *arg, struct gp_kube_err *e)
{
	const char *holder = arg;
	json_t *ann = json_object_get(json_object_get(node, "metadata"), "annotations");
	const char *cur = gp_annot_get(ann, GP_ANNOT_LOCK, NULL);
	struct gp_annot_lock l;
	char why[GP_REASON_MAX];

	(void)e;
	if (!cur || gp_annot_lock_parse(cur, &l, why, sizeof why) ||
	    strcmp(l.holder, holder) != 0)
		return 1; /* not ours (any more): leave it */
	*patch = annotation_patch(GP_ANNOT_LOCK, json_null());
	return *patch ? 0 : -ENOMEM;
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

	snprintf(holder, holder_len, "%s/%lu", x->replica, ++x->seq);
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
				  (uint64_t)(20 + (waits * 37 + (unsigned)x->seq * 13) % 80) * 1000000u);
	}
	if (rc) {
		snprintf(why, n, "cannot lock node %s: %s", node, e.msg);
		return rc;
	}
	gp_debug("locked %s as %s for %s", node, holder, pod);
	return 0;
}

void gp__ext_unlock(struct gp__ext *x, const char *node, const char *holder)
{
	struct gp_kube_err e;
	char path[GP_NAME_MAX + 32];
	int rc;

	snprintf(path, sizeof path, "/api/v1/nodes/%s", node);
	rc = gp_kube_update(x->kube, path, GP_KUBE_MERGE_PATCH, drop, (void *)holder, NULL, &e);
	if (rc)
		gp_warn("cannot release the bind lock of %s (it expires by itself): %s", node,
			e.msg);
	else
		gp_debug("unlocked %s (%s)", node, holder);
}
