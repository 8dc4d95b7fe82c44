/* extender_bind.c - POST /bind: place a pod's GPUs on the chosen node and
 * bind it there, so that two pods never receive mixed allocations, and a
 * pod is never bound without its allocation.
 *
 * The procedure (docs/sched.md (the extender), "Bind"), on a worker:
 *   1. read the pod; refuse if it was replaced (UID) or bound elsewhere; a
 *      pod already bound here with its allocation is done (a retry);
 *   2. wait for this replica's other binds to the node, then take the
 *      node's bind lock (extender_lock.c);
 *   3. under it, recompute what the node has given out from the API: the
 *      Node's state, the allocations of the pods bound to it now, and the
 *      binds in flight the node lists;
 *   4. choose GPUs by the policy; refuse if the pod no longer fits;
 *   5. write the decision to the pod (gpupool.io/allocation);
 *   6. release the lock, listing the pod among the node's binds in flight;
 *   7. create the Binding (the API server refuses a second one);
 *   8. if that failed, read the pod back before undoing anything: bound
 *      here after all (a late answer) is a success; refused for good, the
 *      allocation and the in-flight entry are taken back; no answer at all,
 *      both stay (they expire), so that a Binding the API server applies
 *      late still finds its allocation.
 * Nothing of the node's allocations is trusted from memory: step 3 makes a
 * restarted or second replica exactly as right as this one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/errf.h"
#include "common/log.h"
#include "sched/extender_int.h"

static int64_t wall_ms(void)
{
	return (int64_t)(gp_wall_ns() / 1000000u);
}

/* The allocation annotation for a plan on `gn`. */
static void plan_to_alloc(const struct gp__ext *x, const struct gp_pod_req *pr,
			  const struct gp_node *gn, const struct gp_plan *p, const char *node,
			  struct gp_annot_alloc *a)
{
	memset(a, 0, sizeof *a);
	a->source = GP_SRC_GPUPOOL;
	snprintf(a->node, sizeof a->node, "%s", node);
	snprintf(a->uid, sizeof a->uid, "%s", pr->uid);
	snprintf(a->policy, sizeof a->policy, "%s", x->policy_text);
	a->bound_ms = wall_ms();
	a->nctr = p->nctr < pr->nctr ? p->nctr : pr->nctr;
	for (unsigned c = 0; c < a->nctr; c++) {
		struct gp_annot_ctr *ct = &a->ctr[c];
		memcpy(ct->name, pr->ctr[c].name, sizeof ct->name);
		ct->init = pr->ctr[c].init;
		ct->priority = pr->ctr[c].priority;
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

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* What the pods bound to `node` hold now, read from the API; `skip_uid` is
 * the pod being bound.  *list keeps the list (the UIDs in *uids, sorted,
 * point into it). */
static int node_holds(struct gp__ext *x, const char *node, const char *skip_uid,
		      struct gp__ext_use *u, json_t **listp, const char ***uids, size_t *nuids,
		      char *why, size_t n)
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
	if (!(*uids = calloc(json_array_size(json_object_get(list, "items")) + 1, sizeof **uids))) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(json_object_get(list, "items"), i, pod) {
		json_t *meta = json_object_get(pod, "metadata");
		const char *uid = json_string_value(json_object_get(meta, "uid"));
		const char *on = json_string_value(json_object_get(json_object_get(pod, "spec"),
								    "nodeName"));
		char r[GP_REASON_MAX];
		int pr;

		if (!on || strcmp(on, node) != 0)
			continue;
		/* Bound here, finished or not: no longer in flight. */
		if (uid)
			(*uids)[(*nuids)++] = uid;
		if (!gp__ext_pod_active(pod) || (uid && skip_uid[0] && strcmp(uid, skip_uid) == 0))
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
	qsort(*uids, *nuids, sizeof **uids, cmp_str);
	rc = 0;
out:
	*listp = list;
	free(a);
	return rc;
}

/* Create the Binding.  *answered says whether the API server's answer is
 * a decision (it bound, or it refused), as opposed to none or a timeout
 * of its own, after which the binding may still happen. */
static int create_binding(struct gp__ext *x, const char *ns, const char *name, const char *uid,
			  const char *node, bool *answered, char *why, size_t n)
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
	*answered = e.status && e.status != 504 && strcmp(e.reason, "Timeout") != 0 &&
		    strcmp(e.reason, "ServerTimeout") != 0;
	if (rc)
		gp_errf(why, n, 0, "cannot bind pod %s/%s to %s: %s", ns, name, node, e.msg);
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

/* Binds in flight on a node, as it lists them: the entries that are not
 * expired, not bound (counted from the pods already), not of a pod the
 * watch saw deleted, and not `uid`. */
static int listed_holds(struct gp__ext *x, json_t *node_obj, const char *uid, const char **bound,
			size_t nbound, struct gp__ext_use *u)
{
	json_t *ann = json_object_get(json_object_get(node_obj, "metadata"), "annotations");
	const char *text = gp_annot_get(ann, GP_ANNOT_BINDING, NULL);
	struct gp_annot_binding *b;
	char why[GP_REASON_MAX];
	int64_t now = wall_ms();
	int rc = 0;

	if (!text)
		return 0;
	if (!(b = malloc(sizeof *b)))
		return -ENOMEM;
	if (gp_annot_binding_parse(text, b, why, sizeof why)) {
		gp_warn("%s; ignoring the binds it lists", why);
		b->n = 0;
	}
	for (unsigned i = 0; i < b->n && !rc; i++) {
		const char *id = b->pod[i].uid;
		if (b->pod[i].expires_ms <= now || strcmp(id, uid) == 0 ||
		    (nbound && bsearch(&id, bound, nbound, sizeof id, cmp_str)) ||
		    gp__ext_cache_gone(x->cache, id))
			continue;
		rc = gp__ext_use_add(u, b->pod[i].hold, b->pod[i].nhold);
	}
	free(b);
	return rc;
}

/* The GPUs the view chose (j->hint), as a plan on the fresh node `gn`, if
 * they are all there and still take the pod. */
static bool hinted(const struct gp__ext_bind_job *j, struct gp_node *gn, struct gp_plan *out)
{
	const struct gp_plan *h = &j->hint.plan;
	int to[GP_MAX_GPUS];
	struct gp_plan p = *h;

	if (!j->has_hint)
		return false;
	p.gpumask = 0;
	memset(p.hold, 0, sizeof p.hold);
	for (unsigned i = 0; i < GP_MAX_GPUS; i++) {
		to[i] = -1;
		if (!(h->gpumask & (1u << i)))
			continue;
		if ((to[i] = gp_node_find_gpu(gn, j->hint.uuid[i])) < 0)
			return false;
		p.gpumask |= (uint16_t)(1u << to[i]);
		p.hold[to[i]] = h->hold[i];
	}
	for (unsigned c = 0; c < h->nctr; c++)
		for (unsigned g = 0; g < h->ngrant[c]; g++) {
			if (h->grant[c][g].gpu >= GP_MAX_GPUS || to[h->grant[c][g].gpu] < 0)
				return false;
			p.grant[c][g].gpu = (uint8_t)to[h->grant[c][g].gpu];
		}
	/* The fresh node is this bind's own copy: trying is committing. */
	if (gp_node_commit(gn, &p))
		return false;
	*out = p;
	return true;
}

/* This replica's binds to one node take turns in steps 2-6, so that they
 * do not poll the API lock against each other. */
static void node_enter(struct gp__ext *x, const char *node)
{
	pthread_mutex_lock(&x->busy_mu);
	while (gp_smap_get(x->busy, node))
		pthread_cond_wait(&x->busy_cv, &x->busy_mu);
	if (gp_smap_put(x->busy, node, (void *)1, NULL))
		gp_warn("out of memory: binds to %s are not taking turns", node);
	pthread_mutex_unlock(&x->busy_mu);
}

static void node_leave(struct gp__ext *x, const char *node)
{
	pthread_mutex_lock(&x->busy_mu);
	gp_smap_del(x->busy, node);
	pthread_cond_broadcast(&x->busy_cv);
	pthread_mutex_unlock(&x->busy_mu);
}

/* Steps 2-6 for a pod that asks for GPUs: on 0, the pod carries its
 * allocation (text in *alloc_text) and the node lists it in flight. */
static int decide(struct gp__ext_bind_job *j, const struct gp_pod_req *pr, char **alloc_text)
{
	struct gp__ext *x = j->x;
	struct gp__ext_use use = {0};
	struct gp_annot_node st;
	struct gp_annot_alloc *a = malloc(sizeof *a);
	struct gp_annot_inflight *fl = malloc(sizeof *fl);
	struct gp_node *gn = NULL;
	struct gp_placer *pl = NULL;
	struct gp_plan plan;
	json_t *node_obj = NULL, *pods = NULL;
	const char **bound = NULL;
	size_t nbound = 0;
	char holder[160], pod[GP_NAME_MAX + 70], r[GP_REASON_MAX], *text = NULL;
	const char *node = j->node;
	bool locked = false;
	int rc;

	*alloc_text = NULL;
	if (!a || !fl) {
		free(a);
		free(fl);
		snprintf(j->why, sizeof j->why, "out of memory");
		return -ENOMEM;
	}
	snprintf(pod, sizeof pod, "%s/%s", j->ns, j->name);
	node_enter(x, node);
	if ((rc = gp__ext_lock(x, node, pod, holder, sizeof holder, &node_obj, j->why,
			       sizeof j->why)))
		goto out;
	locked = true;
	if ((rc = gp__ext_node_state(node_obj, x->o.state_max_age_ms, &st, r, sizeof r))) {
		snprintf(j->why, sizeof j->why, "node %s: %s", node, r);
		goto out;
	}
	if ((rc = node_holds(x, node, pr->uid, &use, &pods, &bound, &nbound, j->why,
			     sizeof j->why)))
		goto out;
	if ((rc = listed_holds(x, node_obj, pr->uid, bound, nbound, &use)) ||
	    (rc = gp_placer_new(&pl, &x->policy, j->snap ? j->snap->wl : NULL))) {
		snprintf(j->why, sizeof j->why, "out of memory");
		goto out;
	}
	if ((rc = gp__ext_build_node(node, &st, use.hold, use.n, &gn, r, sizeof r))) {
		snprintf(j->why, sizeof j->why, "node %s: %s", node, r);
		goto out;
	}
	if (!hinted(j, gn, &plan) && gp_placer_plan(pl, gn, pr->req, &plan, r, sizeof r) != GP_FIT) {
		gp_errf(j->why, sizeof j->why, 0, "pod %s no longer fits on node %s: %s", pod, node,
			r);
		rc = -ENOSPC;
		goto out;
	}
	plan_to_alloc(x, pr, gn, &plan, node, a);
	if (!(text = gp_annot_alloc_format(a))) {
		rc = -ENOMEM;
		snprintf(j->why, sizeof j->why, "out of memory");
		goto out;
	}
	if ((rc = annotate(x, j->ns, j->name, text, j->why, sizeof j->why)))
		goto out;
	memset(fl, 0, sizeof *fl);
	snprintf(fl->uid, sizeof fl->uid, "%s", pr->uid);
	gp_errf(fl->pod, sizeof fl->pod, 0, "%s", pod);
	fl->expires_ms = wall_ms() + x->o.inflight_ms;
	fl->nhold = a->nhold;
	memcpy(fl->hold, a->hold, a->nhold * sizeof *a->hold);
	{
		struct gp__ext_release rel = {.add = fl, .bound = bound, .nbound = nbound};
		if ((rc = gp__ext_unlock(x, node, holder, &rel, j->why, sizeof j->why))) {
			/* Nobody would count the pod in flight: take it back
			 * (and the lock, at out, if we still hold it). */
			unannotate(x, j->ns, j->name, text);
			goto out;
		}
		locked = false;
	}
	j->got = (struct gp__ext_assumed){.nhold = a->nhold};
	snprintf(j->got.uid, sizeof j->got.uid, "%s", pr->uid);
	snprintf(j->got.node, sizeof j->got.node, "%s", node);
	memcpy(j->got.hold, a->hold, a->nhold * sizeof *a->hold);
	*alloc_text = text;
	text = NULL;
out:
	if (locked) {
		char why[256];
		struct gp__ext_release none = {0};
		if (gp__ext_unlock(x, node, holder, &none, why, sizeof why))
			gp_warn("%s", why);
	}
	node_leave(x, node);
	gp_placer_free(pl);
	gp_node_free(gn);
	json_decref(node_obj);
	json_decref(pods);
	free(bound);
	free(use.hold);
	free(text);
	free(fl);
	free(a);
	return rc;
}

/* Step 8: the Binding failed with rc (answered: the API server refused).
 * Read the pod back: 0 when it is bound to our node after all (a retry
 * racing a late success); else rc, with *for_good set when the pod surely
 * is not (and will not be) bound there. */
static int settle(struct gp__ext_bind_job *j, int rc, bool answered, bool *for_good)
{
	char path[GP_NAME_MAX + 96];

	*for_good = answered;
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", j->ns, j->name);
	/* A Binding that timed out may still be applied: give it a moment. */
	for (unsigned t = 0; t < 3; t++) {
		struct gp_kube_err e;
		json_t *pod = NULL;
		const char *on, *uid;
		int g;

		if (t)
			gp_sleep_until_ns(gp_now_ns() + 300u * 1000000u);
		g = gp_kube_get(j->x->kube, path, &pod, &e);
		if (g == -ENOENT) {
			*for_good = true;
			return rc;
		}
		if (g)
			continue;
		on = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
		uid = json_string_value(json_object_get(json_object_get(pod, "metadata"), "uid"));
		if (uid && j->got.uid[0] && strcmp(uid, j->got.uid) != 0) {
			json_decref(pod);
			*for_good = true; /* replaced: not ours any more */
			return rc;
		}
		if (on && *on) {
			bool here = strcmp(on, j->node) == 0;
			json_decref(pod);
			if (here) {
				gp_info("pod %s/%s is bound to %s after all (%s)", j->ns, j->name,
					j->node, j->why);
				return 0;
			}
			*for_good = true;
			return rc;
		}
		json_decref(pod);
		if (*for_good)
			return rc;
	}
	return rc;
}

void gp__ext_bind(struct gp__ext_bind_job *j)
{
	struct gp__ext *x = j->x;
	char path[GP_NAME_MAX + 96], r[GP_REASON_MAX], *text = NULL;
	struct gp_kube_err e;
	struct gp_annot_alloc *a = NULL;
	struct gp_pod_req pr;
	json_t *pod = NULL;
	const char *bound;
	bool for_good, answered = false;
	int rc;

	j->got.nhold = 0;
	j->got.uid[0] = '\0';
	if ((rc = gp_req_init(&pr))) {
		snprintf(j->why, sizeof j->why, "out of memory");
		j->rc = rc;
		return;
	}
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", j->ns, j->name);
	if ((rc = gp_kube_get(x->kube, path, &pod, &e))) {
		snprintf(j->why, sizeof j->why, "cannot read pod %s/%s: %s", j->ns, j->name, e.msg);
		goto out;
	}
	if ((rc = gp_req_from_pod(&pr, pod, r, sizeof r))) {
		snprintf(j->why, sizeof j->why, "pod %s/%s: %s", j->ns, j->name, r);
		goto out;
	}
	if (j->uid[0] && strcmp(pr.uid, j->uid) != 0) {
		snprintf(j->why, sizeof j->why, "pod %s/%s was replaced (UID %s, the bind is for %s)",
			 j->ns, j->name, pr.uid, j->uid);
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
		if (strcmp(bound, j->node) == 0 &&
		    (pr.nctr == 0 ||
		     (gp_annot_alloc_read(ann, a, r, sizeof r) == 0 && strcmp(a->node, j->node) == 0))) {
			gp_info("pod %s/%s is already bound to %s", j->ns, j->name, j->node);
			rc = 0;
			goto out;
		}
		snprintf(j->why, sizeof j->why, "pod %s/%s is already bound to node %s", j->ns,
			 j->name, bound);
		rc = -EEXIST;
		goto out;
	}
	if (pr.nctr && (rc = decide(j, &pr, &text)))
		goto out;
	if (!(rc = create_binding(x, j->ns, j->name, pr.uid, j->node, &answered, j->why,
				  sizeof j->why))) {
		if (text)
			gp_info("bound %s/%s to %s: %s", j->ns, j->name, j->node, text);
		goto out;
	}
	if (!(rc = settle(j, rc, answered, &for_good)))
		goto out;
	if (text && for_good) {
		unannotate(x, j->ns, j->name, text);
		gp__ext_unlist(x, j->node, pr.uid);
	} else if (text) {
		size_t len = strlen(j->why);
		snprintf(j->why + len, sizeof j->why - len,
			 "; the allocation stays in case the API server applies the binding late");
	}
	j->got.nhold = 0;
out:
	if (!rc && j->got.nhold) {
		/* Until the pod's own event shows it bound (the API server's
		 * watch may lag the Binding a little). */
		j->got.bound = true;
		j->got.until_ms = wall_ms() + 30000;
	}
	j->rc = rc;
	gp_req_fini(&pr);
	free(text);
	free(a);
	json_decref(pod);
}
