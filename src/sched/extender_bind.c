/* extender_bind.c - POST /bind: place a pod's GPUs on the chosen node and
 * bind it there, so that two pods never receive mixed allocations.
 *
 * The procedure (docs/sched.md (the extender), "Bind"):
 *   1. read the pod; refuse if it was replaced (UID) or bound elsewhere; a
 *      pod already bound here with its allocation is done (a retry);
 *   2. take the node's bind lock (extender_lock.c);
 *   3. under it, recompute what the node has given out from the API: the
 *      Node's state and the allocations of the pods bound to it now;
 *   4. choose GPUs by the policy; refuse if the pod no longer fits;
 *   5. write the decision to the pod (gpupool.io/allocation), then create
 *      the Binding (the API server refuses a second one);
 *   6. release the lock.
 * Nothing of the node's allocations is trusted from memory: step 3 makes a
 * restarted or second replica exactly as right as this one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "sched/extender_int.h"

static int64_t wall_ms(void)
{
	return (int64_t)(gp_wall_ns() / 1000000u);
}

/* The allocation annotation for a plan on `gn`. */
static void plan_to_alloc(const struct gp__ext *x, const struct gp_node *gn,
			  const struct gp_plan *p, const char *node, struct gp_annot_alloc *a)
{
	memset(a, 0, sizeof *a);
	a->source = GP_SRC_GPUPOOL;
	snprintf(a->node, sizeof a->node, "%s", node);
	snprintf(a->uid, sizeof a->uid, "%s", x->pr.uid);
	snprintf(a->policy, sizeof a->policy, "%s", x->policy_text);
	a->bound_ms = wall_ms();
	a->nctr = p->nctr < x->pr.nctr ? p->nctr : x->pr.nctr;
	for (unsigned c = 0; c < a->nctr; c++) {
		struct gp_annot_ctr *ct = &a->ctr[c];
		memcpy(ct->name, x->pr.ctr[c].name, sizeof ct->name);
		ct->init = x->pr.ctr[c].init;
		ct->priority = x->pr.ctr[c].priority;
		ct->ngrant = p->ngrant[c];
		for (unsigned i = 0; i < p->ngrant[c]; i++) {
			const struct gp_grant *g = &p->grant[c][i];
			struct gp_gpu gpu;
			if (gp_node_gpu(gn, g->gpu, &gpu))
				continue;
			snprintf(ct->grant[i].uuid, sizeof ct->grant[i].uuid, "%s", gpu.uuid);
			ct->grant[i].mem_bytes = g->mem_bytes;
			ct->grant[i].compute = g->compute;
			ct->grant[i].exclusive = g->exclusive;
		}
	}
	for (unsigned i = 0; i < GP_MAX_GPUS; i++) {
		struct gp_annot_hold *h = &a->hold[a->nhold];
		struct gp_gpu gpu;

		if (!(p->gpumask & (1u << i)) || gp_node_gpu(gn, i, &gpu))
			continue;
		snprintf(h->uuid, sizeof h->uuid, "%s", gpu.uuid);
		h->mem_bytes = p->hold[i].mem_bytes;
		h->compute = p->hold[i].compute;
		h->tenants = p->hold[i].tenants;
		h->exclusive = p->hold[i].exclusive;
		a->nhold++;
	}
}

/* Count a pod we just bound in the snapshot the loop serves from, so the
 * next filter sees it, and in the ones built later until the API shows it. */
static void assume(struct gp__ext *x, const char *node, const struct gp_annot_alloc *a)
{
	struct gp__ext_assumed as = {.bound_ms = a->bound_ms, .nhold = a->nhold};
	struct gp__ext_node *en = x->snap ? gp__ext_snap_node(x->snap, node) : NULL;

	snprintf(as.uid, sizeof as.uid, "%s", a->uid);
	snprintf(as.node, sizeof as.node, "%s", node);
	memcpy(as.hold, a->hold, a->nhold * sizeof *a->hold);
	gp__ext_cache_assume(x->cache, &as);
	if (x->snap) { /* for nodes that arrive as objects (nodeCacheCapable: false) */
		struct gp__ext_assumed *g =
			realloc(x->snap->extra, (x->snap->nextra + 1) * sizeof *g);
		if (g) {
			x->snap->extra = g;
			g[x->snap->nextra++] = as;
		}
	}
	if (en && en->node) {
		/* The snapshot's node may number its GPUs differently from the
		 * fresh one: translate by UUID. */
		struct gp_plan p;
		memset(&p, 0, sizeof p);
		for (unsigned i = 0; i < a->nhold; i++) {
			int k = gp_node_find_gpu(en->node, a->hold[i].uuid);
			if (k < 0)
				return; /* changed since: the next refresh has it */
			p.gpumask |= (uint16_t)(1u << k);
			p.hold[k].mem_bytes = a->hold[i].mem_bytes;
			p.hold[k].compute = (uint16_t)a->hold[i].compute;
			p.hold[k].tenants = (uint16_t)a->hold[i].tenants;
			p.hold[k].exclusive = a->hold[i].exclusive;
		}
		if (gp_node_commit(en->node, &p))
			gp_debug("snapshot of %s is behind; the next refresh catches up", node);
	}
}

/* What the pods bound to `node` hold now, read from the API; `skip_uid` is
 * the pod being bound. */
static int node_holds(struct gp__ext *x, const char *node, const char *skip_uid,
		      struct gp__ext_use *u, char *why, size_t n)
{
	char path[GP_NAME_MAX + 64];
	struct gp_kube_err e;
	struct gp_annot_alloc *a = malloc(sizeof *a);
	json_t *list = NULL, *pod;
	size_t i;
	int rc;

	if (!a)
		return -ENOMEM;
	snprintf(path, sizeof path, "/api/v1/pods?fieldSelector=spec.nodeName%%3D%s", node);
	if ((rc = gp_kube_get(x->kube, path, &list, &e))) {
		snprintf(why, n, "cannot list the pods of node %s: %s", node, e.msg);
		goto out;
	}
	json_array_foreach(json_object_get(list, "items"), i, pod) {
		json_t *meta = json_object_get(pod, "metadata");
		const char *uid = json_string_value(json_object_get(meta, "uid"));
		const char *on = json_string_value(json_object_get(json_object_get(pod, "spec"),
								    "nodeName"));
		char r[GP_REASON_MAX];
		int pr;

		if (!on || strcmp(on, node) != 0 || !gp__ext_pod_active(pod) ||
		    (uid && skip_uid[0] && strcmp(uid, skip_uid) == 0))
			continue;
		pr = gp_annot_alloc_read(json_object_get(meta, "annotations"), a, r, sizeof r);
		if (pr == -ENOENT)
			continue;
		if (pr) {
			/* We cannot tell which cards it holds: placing next to it
			 * could double-book them.  Refuse until it is fixed. */
			snprintf(why, n, "node %s: pod %s has an unreadable allocation (%s)", node,
				 json_string_value(json_object_get(meta, "name")), r);
			rc = -EINVAL;
			goto out;
		}
		if ((rc = gp__ext_use_add(u, a->hold, a->nhold)))
			goto out;
	}
	rc = 0;
out:
	json_decref(list);
	free(a);
	return rc;
}

static int create_binding(struct gp__ext *x, const char *ns, const char *name, const char *uid,
			  const char *node, char *why, size_t n)
{
	char path[GP_NAME_MAX + 128];
	struct gp_kube_err e;
	json_t *b = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s}}", "apiVersion", "v1", "kind",
			      "Binding", "metadata", "name", name, "namespace", ns, "target",
			      "apiVersion", "v1", "kind", "Node", "name", node);
	int rc;

	if (!b)
		return -ENOMEM;
	if (uid[0])
		json_object_set_new(json_object_get(b, "metadata"), "uid", json_string(uid));
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s/binding", ns, name);
	rc = gp_kube_post(x->kube, path, b, NULL, &e);
	json_decref(b);
	if (rc)
		snprintf(why, n, "cannot bind pod %s/%s to %s: %s", ns, name, node, e.msg);
	return rc;
}

/* Write the allocation annotation on the pod (a strategic merge patch, as
 * kubectl annotate does). */
static int annotate(struct gp__ext *x, const char *ns, const char *name, const char *value,
		    char *why, size_t n)
{
	char path[GP_NAME_MAX + 96];
	struct gp_kube_err e;
	json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", GP_ANNOT_ALLOC,
				  value);
	int rc;

	if (!patch)
		return -ENOMEM;
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", ns, name);
	rc = gp_kube_patch(x->kube, path, GP_KUBE_STRATEGIC_PATCH, patch, NULL, &e);
	json_decref(patch);
	if (rc)
		snprintf(why, n, "cannot annotate pod %s/%s: %s", ns, name, e.msg);
	return rc;
}

/* Take back the allocation we wrote when the binding failed.  A JSON
 * patch, so that the removal is conditional: it applies only while the
 * annotation is still the one we wrote (a retry may have written anew). */
static void unannotate(struct gp__ext *x, const char *ns, const char *name, const char *value)
{
	static const char ptr[] = "/metadata/annotations/gpupool.io~1allocation";
	char path[GP_NAME_MAX + 96];
	struct gp_kube_err e;
	json_t *ops = json_pack("[{s:s,s:s,s:s},{s:s,s:s}]", "op", "test", "path", ptr, "value",
				value, "op", "remove", "path", ptr);

	if (!ops)
		return;
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", ns, name);
	if (gp_kube_patch(x->kube, path, GP_KUBE_JSON_PATCH, ops, NULL, &e))
		gp_warn("cannot take back the allocation of unbound pod %s/%s (it names no "
			"binding, so it holds nothing): %s",
			ns, name, e.msg);
	json_decref(ops);
}

/* Steps 2-6 for a pod that asks for GPUs. */
static int place_and_bind(struct gp__ext *x, const char *ns, const char *name, const char *node,
			  char *why, size_t n)
{
	struct gp__ext_use use = {0};
	struct gp_annot_node st;
	struct gp_annot_alloc *a = malloc(sizeof *a);
	struct gp_node *gn = NULL;
	struct gp_plan plan;
	json_t *node_obj = NULL;
	char holder[160], pod[GP_NAME_MAX + 70], r[GP_REASON_MAX], *text = NULL;
	bool locked = false;
	int rc;

	if (!a)
		return -ENOMEM;
	snprintf(pod, sizeof pod, "%s/%s", ns, name);
	if ((rc = gp__ext_lock(x, node, pod, holder, sizeof holder, &node_obj, why, n)))
		goto out;
	locked = true;
	if ((rc = gp__ext_node_state(node_obj, x->o.state_max_age_ms, &st, r, sizeof r))) {
		snprintf(why, n, "node %s: %s", node, r);
		goto out;
	}
	if ((rc = node_holds(x, node, x->pr.uid, &use, why, n)))
		goto out;
	if ((rc = gp__ext_build_node(node, &st, use.hold, use.n, &gn, r, sizeof r))) {
		snprintf(why, n, "node %s: %s", node, r);
		goto out;
	}
	if (gp_placer_plan(x->snap->pl, gn, x->pr.req, &plan, r, sizeof r) != GP_FIT) {
		snprintf(why, n, "pod %s no longer fits on node %s: %s", pod, node, r);
		rc = -ENOSPC;
		goto out;
	}
	plan_to_alloc(x, gn, &plan, node, a);
	if (!(text = gp_annot_alloc_format(a))) {
		rc = -ENOMEM;
		snprintf(why, n, "out of memory");
		goto out;
	}
	if ((rc = annotate(x, ns, name, text, why, n)))
		goto out;
	if ((rc = create_binding(x, ns, name, x->pr.uid, node, why, n))) {
		unannotate(x, ns, name, text);
		goto out;
	}
	gp_info("bound %s to %s: %s", pod, node, text);
	assume(x, node, a);
out:
	if (locked)
		gp__ext_unlock(x, node, holder);
	gp_node_free(gn);
	json_decref(node_obj);
	free(use.hold);
	free(text);
	free(a);
	return rc;
}

int gp__ext_bind(struct gp__ext *x, const char *ns, const char *name, const char *uid,
		 const char *node, char *why, size_t n)
{
	char path[GP_NAME_MAX + 96], r[GP_REASON_MAX];
	struct gp_kube_err e;
	struct gp_annot_alloc *a = NULL;
	json_t *pod = NULL;
	const char *bound;
	int rc;

	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", ns, name);
	if ((rc = gp_kube_get(x->kube, path, &pod, &e))) {
		snprintf(why, n, "cannot read pod %s/%s: %s", ns, name, e.msg);
		goto out;
	}
	if ((rc = gp_req_from_pod(&x->pr, pod, r, sizeof r))) {
		snprintf(why, n, "pod %s/%s: %s", ns, name, r);
		goto out;
	}
	if (uid[0] && strcmp(x->pr.uid, uid) != 0) {
		snprintf(why, n, "pod %s/%s was replaced (UID %s, the bind is for %s)", ns, name,
			 x->pr.uid, uid);
		rc = -ESTALE;
		goto out;
	}
	bound = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
	if (bound && *bound) {
		json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
		if (!(a = malloc(sizeof *a))) {
			rc = -ENOMEM;
			goto out;
		}
		/* A retry of a bind that went through: say it is done. */
		if (strcmp(bound, node) == 0 &&
		    (x->pr.nctr == 0 ||
		     (gp_annot_alloc_read(ann, a, r, sizeof r) == 0 && strcmp(a->node, node) == 0))) {
			gp_info("pod %s/%s is already bound to %s", ns, name, node);
			rc = 0;
			goto out;
		}
		snprintf(why, n, "pod %s/%s is already bound to node %s", ns, name, bound);
		rc = -EEXIST;
		goto out;
	}
	if (x->pr.nctr == 0)
		rc = create_binding(x, ns, name, x->pr.uid, node, why, n);
	else
		rc = place_and_bind(x, ns, name, node, why, n);
out:
	free(a);
	json_decref(pod);
	return rc;
}
