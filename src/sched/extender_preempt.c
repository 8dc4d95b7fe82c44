/* extender_preempt.c - POST /preempt: which pods kube-scheduler should
 * evict so that a pod's GPUs fit (docs/sched.md (the extender),
 * "Preemption").
 *
 * kube-scheduler's preemption proposes, per candidate node, the victims
 * its own filters need (CPU, memory, ports ...; it never sees GPU memory,
 * compute, card types or NUMA: those resources are ignoredByScheduler).
 * For each node this reads the Node's GPU state and the pods bound to it
 * from the API, and answers the proposal plus the smallest set of further
 * GPU pods of lower priority whose removal lets the pod's GPUs fit
 * (preempt.c); a node where no such set exists is left out, so
 * kube-scheduler does not evict anyone there for nothing.
 *
 * Thread-safe by construction: it runs on a worker thread and touches only
 * x's options, policy and API client (which locks itself), never the
 * snapshot or the request scratch the event loop owns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sched/extender_int.h"
#include "sched/preempt.h"

/* Fit checks for one request, all nodes together: kube-scheduler waits
 * for the answer (httpTimeout) with its scheduling queue stalled. */
#define REQUEST_BUDGET 200000u

/* PDBs counted per pod.  The eviction API refuses a pod covered by more
 * than one, so more is a misconfiguration; the first few still count. */
#define PDBS_PER_POD 8u

static const char pdbs_path[] = "/apis/policy/v1/poddisruptionbudgets";


/* Read one Victims / MetaVictims value.  Returns 0 or -EINVAL with why. */
static int read_victims(json_t *v, const char *node, bool meta, struct gp__ext_proposal *p, char *why,
			size_t n)
{
	static const char *const keys[] = {"Pods", "NumPDBViolations", NULL};
	const char *form = meta ? "NodeNameToMetaVictims" : "NodeNameToVictims";
	json_t *pods = json_object_get(v, "Pods"), *pdb = json_object_get(v, "NumPDBViolations");
	json_t *e;
	size_t i;
	char where[300];

	snprintf(where, sizeof where, "%s[%s]", form, node);
	p->node = node;
	if (!json_is_object(v)) {
		snprintf(why, n, "%s is not an object", where);
		return -EINVAL;
	}
	if (gp__ext_check_keys(v, keys, where, why, n))
		return -EINVAL;
	if (pdb && !json_is_null(pdb) && !json_is_integer(pdb)) {
		snprintf(why, n, "%s.NumPDBViolations is not an integer", where);
		return -EINVAL;
	}
	p->pdb = json_is_integer(pdb) ? json_integer_value(pdb) : 0;
	if (pods && !json_is_null(pods) && !json_is_array(pods)) {
		snprintf(why, n, "%s.Pods is not a list", where);
		return -EINVAL;
	}
	p->n = json_is_array(pods) ? json_array_size(pods) : 0;
	if (p->n > GP_PREEMPT_MAX_PODS) {
		snprintf(why, n, "%s has %zu victims, more than %u", where, p->n,
			 GP_PREEMPT_MAX_PODS);
		return -EINVAL;
	}
	p->uid = calloc(p->n + 1, sizeof *p->uid);
	if (!p->uid) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(pods, i, e) {
		static const char *const meta_keys[] = {"UID", NULL};
		json_t *u = meta ? json_object_get(e, "UID")
				 : json_object_get(json_object_get(e, "metadata"), "uid");
		if (meta && json_is_object(e) && gp__ext_check_keys(e, meta_keys, where, why, n))
			return -EINVAL;
		if (!json_is_string(u) || !json_string_length(u) ||
		    json_string_length(u) >= GP_ANNOT_UID_MAX) {
			snprintf(why, n, "%s.Pods[%zu] has no valid %s", where, i,
				 meta ? "UID" : "metadata.uid");
			return -EINVAL;
		}
		p->uid[i] = json_string_value(u);
	}
	return 0;
}

/* A pod's spec.priority: 0 when absent (no PriorityClass, as Kubernetes
 * reads it). */
static int32_t pod_priority(json_t *pod)
{
	json_t *v = json_object_get(json_object_get(pod, "spec"), "priority");
	json_int_t p = json_is_integer(v) ? json_integer_value(v) : 0;

	return p < INT32_MIN ? INT32_MIN : p > INT32_MAX ? INT32_MAX : (int32_t)p;
}

/* --- PodDisruptionBudgets ------------------------------------------------- */

struct pdbs {
	bool known;                /* listed; false: counted as none (why logged) */
	json_t *list;              /* the PodDisruptionBudgetList */
	json_t *items;
	int32_t *allowed;          /* status.disruptionsAllowed per item */
	size_t n;
};

/* List every PDB once per request.  A cluster that refuses the list (no
 * RBAC for it yet, or no policy/v1) still gets GPU-aware preemption: the
 * violations are then kube-scheduler's own count, and the log says why. */
static int pdbs_load(struct gp__ext *x, struct pdbs *d)
{
	struct gp_kube_err e;
	json_t *v;
	size_t i;

	memset(d, 0, sizeof *d);
	if (gp_kube_get(x->kube, pdbs_path, &d->list, &e)) {
		gp_warn("preempt: cannot list PodDisruptionBudgets (%s); using kube-scheduler's "
			"count of violations",
			e.msg);
		return 0;
	}
	d->items = json_object_get(d->list, "items");
	d->n = json_array_size(d->items);
	if (!(d->allowed = calloc(d->n + 1, sizeof *d->allowed)))
		return -ENOMEM;
	json_array_foreach(d->items, i, v) {
		json_t *a = json_object_get(json_object_get(v, "status"), "disruptionsAllowed");
		json_int_t n = json_is_integer(a) ? json_integer_value(a) : 0;
		d->allowed[i] = n < 0 ? 0 : n > INT32_MAX ? INT32_MAX : (int32_t)n;
	}
	d->known = true;
	return 0;
}

static void pdbs_free(struct pdbs *d)
{
	json_decref(d->list);
	free(d->allowed);
}

/* --- one node ------------------------------------------------------------- */

/* What one node's pods were read into. */
struct node_pods {
	size_t n;
	struct gp_preempt_pod *pod;
	const char **uid;              /* borrowed from `list` */
	struct gp_annot_hold *hold;    /* all footprints, GP_MAX_GPUS per pod */
	uint32_t *pdb;                 /* all PDB indices, PDBS_PER_POD per pod */
	json_t *list;
};

static void node_pods_free(struct node_pods *np)
{
	free(np->pod);
	free(np->uid);
	free(np->hold);
	free(np->pdb);
	json_decref(np->list);
}

/* Read the active pods bound to `node` with their priority, footprint and
 * PDBs; mark kube-scheduler's proposed victims.  Returns 0, -ENOMEM, or
 * another negative errno with why (the node is then left out). */
static int read_pods(struct gp__ext *x, const char *node, const struct gp__ext_proposal *pr,
		     const struct pdbs *d, struct node_pods *np, char *why, size_t n)
{
	char path[GP_NAME_MAX + 64], r[GP_REASON_MAX];
	struct gp_kube_err e;
	struct gp_annot_alloc *a = malloc(sizeof *a);
	json_t *items, *pod;
	size_t i, cap;
	int rc;

	memset(np, 0, sizeof *np);
	if (!a)
		return -ENOMEM;
	snprintf(path, sizeof path, "/api/v1/pods?fieldSelector=spec.nodeName%%3D%s", node);
	if ((rc = gp_kube_get(x->kube, path, &np->list, &e))) {
		snprintf(why, n, "cannot list its pods: %s", e.msg);
		goto out;
	}
	items = json_object_get(np->list, "items");
	cap = json_array_size(items);
	if (cap > GP_PREEMPT_MAX_PODS) {
		snprintf(why, n, "%zu pods, more than the %u preemption considers", cap,
			 GP_PREEMPT_MAX_PODS);
		rc = -E2BIG;
		goto out;
	}
	np->pod = calloc(cap + 1, sizeof *np->pod);
	np->uid = calloc(cap + 1, sizeof *np->uid);
	np->hold = calloc((cap + 1) * GP_MAX_GPUS, sizeof *np->hold);
	np->pdb = calloc((cap + 1) * PDBS_PER_POD, sizeof *np->pdb);
	if (!np->pod || !np->uid || !np->hold || !np->pdb) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(items, i, pod) {
		json_t *meta = json_object_get(pod, "metadata");
		const char *uid = json_string_value(json_object_get(meta, "uid"));
		const char *on = json_string_value(json_object_get(json_object_get(pod, "spec"),
								    "nodeName"));
		struct gp_preempt_pod *p = &np->pod[np->n];
		size_t k = np->n;
		int ar;

		if (!uid || !on || strcmp(on, node) != 0 || !gp__ext_pod_active(pod))
			continue;
		ar = gp_annot_alloc_read(json_object_get(meta, "annotations"), a, r, sizeof r);
		if (ar && ar != -ENOENT) {
			/* We cannot tell which cards it holds; bind refuses
			 * this node for the same reason. */
			snprintf(why, n, "pod %s has an unreadable allocation (%s)",
				 json_string_value(json_object_get(meta, "name")), r);
			rc = -EINVAL;
			goto out;
		}
		np->uid[k] = uid;
		p->priority = pod_priority(pod);
		p->hold = &np->hold[k * GP_MAX_GPUS];
		p->nhold = ar ? 0 : a->nhold;
		memcpy(&np->hold[k * GP_MAX_GPUS], a->hold, p->nhold * sizeof *a->hold);
		for (size_t v = 0; v < pr->n; v++)
			if (strcmp(pr->uid[v], uid) == 0)
				p->proposed = true;
		p->pdb = &np->pdb[k * PDBS_PER_POD];
		for (size_t j = 0; d->known && j < d->n && p->npdb < PDBS_PER_POD; j++)
			if (gp_preempt_pdb_covers(json_array_get(d->items, j), pod))
				np->pdb[k * PDBS_PER_POD + p->npdb++] = (uint32_t)j;
		np->n++;
	}
	rc = 0;
out:
	free(a);
	return rc;
}

/* The answer for one node: its MetaVictims in *entry, or NULL when the
 * node is left out (why says, for the log).  Returns 0 or -ENOMEM. */
static int preempt_node(struct gp__ext *x, const struct gp_pod_req *req, int32_t prio,
			const struct gp__ext_proposal *pr, const struct pdbs *d, unsigned *budget,
			json_t **entry, char *why, size_t n)
{
	char path[GP_NAME_MAX + 32], r[GP_REASON_MAX];
	struct gp_kube_err e;
	struct gp_annot_node st;
	struct node_pods np = {0};
	struct gp_preempt_result *res = malloc(sizeof *res);
	json_t *node_obj = NULL, *pods = NULL;
	size_t unknown = 0;
	int rc;

	*entry = NULL;
	if (!res)
		return -ENOMEM;
	snprintf(path, sizeof path, "/api/v1/nodes/%s", pr->node);
	if ((rc = gp_kube_get(x->kube, path, &node_obj, &e))) {
		snprintf(why, n, "cannot read the node: %s", e.msg);
		goto out;
	}
	if ((rc = gp__ext_node_state(node_obj, x->o.state_max_age_ms, &st, r, sizeof r))) {
		snprintf(why, n, "%s", r);
		goto out;
	}
	if ((rc = read_pods(x, pr->node, pr, d, &np, why, n)))
		goto out;
	{
		struct gp_preempt_node in = {
			.name = pr->node,
			.st = &st,
			.pods = np.pod,
			.npods = np.n,
			.pdb_allowed = d->allowed,
			.npdb = d->known ? d->n : 0,
			/* Each node its share, never past what the request has
			 * left (1: the greedy pass only). */
			.budget = *budget < GP_PREEMPT_BUDGET ? (*budget ? *budget : 1)
							      : GP_PREEMPT_BUDGET,
		};
		rc = gp_preempt_select(&in, req->req, prio, res, why, n);
		*budget = res->checks >= *budget ? 0 : *budget - res->checks;
	}
	if (rc)
		goto out;
	/* Victims kube-scheduler named that the API list does not show (its
	 * cache is ahead or behind ours): still its to evict, and holding
	 * nothing we can see.  Their priority is unknown: listed first. */
	if (!(pods = json_array()))
		goto oom;
	for (size_t v = 0; v < pr->n; v++) {
		bool seen = false;
		for (size_t k = 0; k < np.n && !seen; k++)
			seen = strcmp(np.uid[k], pr->uid[v]) == 0;
		if (!seen) {
			unknown++;
			if (json_array_append_new(pods, json_pack("{s:s}", "UID", pr->uid[v])))
				goto oom;
		}
	}
	for (size_t v = 0; v < res->nvictims; v++)
		if (json_array_append_new(pods, json_pack("{s:s}", "UID", np.uid[res->victim[v]])))
			goto oom;
	if (json_array_size(pods) == 0) {
		/* The pod's GPUs fit with nothing evicted, and kube-scheduler
		 * proposed nobody: it refuses an entry without victims, and
		 * there is nothing to preempt here. */
		snprintf(why, n, "the pod fits without evicting anyone");
		rc = -EEXIST;
		goto out;
	}
	*entry = json_pack("{s:O,s:I}", "Pods", pods, "NumPDBViolations",
			   d->known ? (json_int_t)res->pdb_violations : pr->pdb);
	if (!*entry)
		goto oom;
	gp_info("preempt %s/%s on %s: %zu victims (%zu proposed, %zu for GPUs%s), %u PDB "
		"violations, %u fit checks",
		req->ns, req->name, pr->node, json_array_size(pods), res->nvictims - res->nadded + unknown,
		res->nadded, res->exact ? "" : ", not proven smallest", res->pdb_violations,
		res->checks);
	rc = 0;
	goto out;
oom:
	rc = -ENOMEM;
out:
	if (rc == -ENOMEM)
		snprintf(why, n, "out of memory");
	json_decref(pods);
	json_decref(node_obj);
	node_pods_free(&np);
	free(res);
	return rc == -ENOMEM ? rc : 0;
}

/* --- the verb ------------------------------------------------------------- */

void gp__ext_preempt_args_free(struct gp__ext_preempt_args *a)
{
	for (size_t i = 0; a->pr && i < a->np; i++)
		free(a->pr[i].uid);
	free(a->pr);
	if (a->req_ok)
		gp_req_fini(&a->req);
	memset(a, 0, sizeof *a);
}

int gp__ext_preempt_read(json_t *args, unsigned max_nodes, struct gp__ext_preempt_args *a,
			 char *why, size_t n)
{
	static const char *const keys[] = {"Pod", "NodeNameToVictims", "NodeNameToMetaVictims",
					   NULL};
	json_t *pod = json_object_get(args, "Pod");
	json_t *full = json_object_get(args, "NodeNameToVictims");
	json_t *meta = json_object_get(args, "NodeNameToMetaVictims");
	json_t *map, *v;
	const char *node;
	char r[GP_REASON_MAX];
	int rc;

	memset(a, 0, sizeof *a);
	if (!json_is_object(args)) {
		snprintf(why, n, "the body is not an ExtenderPreemptionArgs object");
		return -EINVAL;
	}
	if (gp__ext_check_keys(args, keys, "ExtenderPreemptionArgs", why, n))
		return -EINVAL;
	if (!json_is_object(pod)) {
		snprintf(why, n, "'Pod' is missing or not an object");
		return -EINVAL;
	}
	if (full && json_is_null(full))
		full = NULL;
	if (meta && json_is_null(meta))
		meta = NULL;
	if (full && meta) {
		snprintf(why, n, "give 'NodeNameToMetaVictims' (nodeCacheCapable: true) or "
				 "'NodeNameToVictims' (false), not both");
		return -EINVAL;
	}
	map = meta ? meta : full;
	if (map && !json_is_object(map)) {
		snprintf(why, n, "'%s' is not an object of node names",
			 meta ? "NodeNameToMetaVictims" : "NodeNameToVictims");
		return -EINVAL;
	}
	if (json_object_size(map) > max_nodes) {
		snprintf(why, n, "%zu candidate nodes, more than --max-nodes %u",
			 json_object_size(map), max_nodes);
		return -EINVAL;
	}
	if (gp_req_init(&a->req)) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	a->req_ok = true;
	if ((rc = gp_req_from_pod(&a->req, pod, r, sizeof r))) {
		snprintf(why, n, "Pod: %s", r);
		return rc;
	}
	a->pod = pod;
	a->prio = pod_priority(pod);
	if (!(a->pr = calloc(json_object_size(map) + 1, sizeof *a->pr))) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	json_object_foreach(map, node, v) {
		if (!gp__ext_dns_name(node, 253)) {
			snprintf(why, n, "'%.253s' is not a node name", node);
			return -EINVAL;
		}
		if ((rc = read_victims(v, node, meta != NULL, &a->pr[a->np++], why, n)))
			return rc;
	}
	return 0;
}

int gp__ext_preempt(struct gp__ext *x, json_t *args, json_t **result, char *why, size_t n)
{
	struct gp__ext_preempt_args a;
	json_t *out = NULL;
	struct pdbs d = {0};
	unsigned budget = REQUEST_BUDGET;
	int rc;

	*result = NULL;
	if ((rc = gp__ext_preempt_read(args, x->o.max_nodes, &a, why, n)))
		goto out;
	if (!(out = json_object()) || json_object_set_new(out, "NodeNameToMetaVictims",
							  json_object())) {
		rc = -ENOMEM;
		goto out;
	}
	if (a.req.nctr > 0 && a.np > 0 && (rc = pdbs_load(x, &d)))
		goto out;
	for (size_t i = 0; i < a.np; i++) {
		const struct gp__ext_proposal *pr = &a.pr[i];
		json_t *entry = NULL;
		char nwhy[512];

		if (a.req.nctr == 0) {
			/* Not a GPU pod (kube-scheduler asks only for pods with a
			 * managed resource, so a client's test): nothing of ours
			 * is at stake, the proposal stands as it is. */
			json_t *uids = json_array();
			for (size_t k = 0; uids && k < pr->n; k++)
				json_array_append_new(uids, json_pack("{s:s}", "UID", pr->uid[k]));
			if (uids && pr->n)
				entry = json_pack("{s:o,s:I}", "Pods", uids, "NumPDBViolations",
						  pr->pdb);
			else
				json_decref(uids);
		} else if ((rc = preempt_node(x, &a.req, a.prio, pr, &d, &budget, &entry, nwhy,
					      sizeof nwhy))) {
			goto out;
		} else if (!entry) {
			gp_info("preempt %s/%s: node %s left out: %s", a.req.ns, a.req.name, pr->node,
				nwhy);
		}
		if (entry && json_object_set_new(json_object_get(out, "NodeNameToMetaVictims"),
						 pr->node, entry)) {
			rc = -ENOMEM;
			goto out;
		}
	}
	*result = out;
	out = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM)
		snprintf(why, n, "out of memory");
	gp__ext_preempt_args_free(&a);
	pdbs_free(&d);
	json_decref(out);
	return rc;
}
