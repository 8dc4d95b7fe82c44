/* allocate.c - see allocate.h. */
#include "agent/allocate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sched/annot.h"
#include "sched/pod.h"

/* How many of `resource` container c asks for (limits first, as kubelet
 * counts them), 0 when none. */
static uint64_t asks(json_t *c, const char *resource)
{
	json_t *res = json_object_get(c, "resources");
	const char *v = json_string_value(json_object_get(json_object_get(res, "limits"), resource));
	uint64_t q = 0;

	if (!v)
		v = json_string_value(json_object_get(json_object_get(res, "requests"), resource));
	if (!v || gp_req_quantity(v, &q) != 0)
		return 0;
	return q;
}

static int consumed(json_t *annotations, const char *container)
{
	const char *t = json_string_value(json_object_get(annotations, GP_ALLOC_CONSUMED));
	json_t *list, *it;
	size_t i;
	int hit = 0;

	if (!t || !(list = json_loads(t, 0, NULL)))
		return 0;
	json_array_foreach(list, i, it)
		if (json_is_string(it) && strcmp(json_string_value(it), container) == 0)
			hit = 1;
	json_decref(list);
	return hit;
}

/* The next container of pod p not handed out yet, if it asks for exactly
 * `count` of `resource`: its spec object, or NULL. */
static json_t *next_container(json_t *p, json_t *ann, const char *resource, unsigned count)
{
	static const char *const lists[] = {"initContainers", "containers"};
	json_t *spec = json_object_get(p, "spec");

	for (int l = 0; l < 2; l++) {
		json_t *cs = json_object_get(spec, lists[l]), *c;
		size_t i;

		json_array_foreach(cs, i, c) {
			const char *name = json_string_value(json_object_get(c, "name"));
			uint64_t q;

			if (!name || !(q = asks(c, resource)) || consumed(ann, name))
				continue;
			/* The first GPU container not handed out is the one
			 * kubelet is admitting: it goes in spec order. */
			return q == count ? c : NULL;
		}
	}
	return NULL;
}

static int64_t created_ms(json_t *p)
{
	const char *t = json_string_value(
		json_object_get(json_object_get(p, "metadata"), "creationTimestamp"));
	int64_t ms = 0;

	return t && gp_annot_time_parse(t, &ms) == 0 ? ms : 0;
}

/* Fill g from allocation a's container `name` of pod p. */
static int grant(json_t *p, const struct gp_annot_alloc *a, const char *name,
		 struct gp_alloc_grant *g, char *why, size_t n)
{
	json_t *md = json_object_get(p, "metadata");
	static const char *const prio[] = {"", "high", "normal", "low"};

	memset(g, 0, sizeof *g);
	snprintf(g->ns, sizeof g->ns, "%s", json_string_value(json_object_get(md, "namespace")));
	snprintf(g->pod, sizeof g->pod, "%s", json_string_value(json_object_get(md, "name")));
	snprintf(g->uid, sizeof g->uid, "%s", json_string_value(json_object_get(md, "uid")));
	snprintf(g->container, sizeof g->container, "%s", name);
	for (unsigned i = 0; i < a->nctr; i++) {
		const struct gp_annot_ctr *c = &a->ctr[i];

		if (strcmp(c->name, name) != 0)
			continue;
		snprintf(g->priority, sizeof g->priority, "%s", prio[c->priority]);
		for (unsigned k = 0; k < c->ngrant && k < GP_ALLOC_MAX_GPUS; k++) {
			snprintf(g->uuid[k], sizeof g->uuid[k], "%s", c->grant[k].uuid);
			g->mem_bytes[k] = c->grant[k].mem_bytes;
			g->compute[k] = c->grant[k].compute;
		}
		g->ngpu = c->ngrant < GP_ALLOC_MAX_GPUS ? c->ngrant : GP_ALLOC_MAX_GPUS;
		return 0;
	}
	snprintf(why, n, "pod %s/%s: its allocation names no container %s", g->ns, g->pod, name);
	return -EINVAL;
}

int gp_alloc_choose(json_t *pods, const char *node, const char *resource, unsigned count,
		    struct gp_alloc_grant *g, size_t *index, char *why, size_t n)
{
	json_t *items = json_object_get(pods, "items"), *p, *best = NULL;
	const char *best_name = NULL, *best_ctr = NULL;
	struct gp_annot_alloc a, best_a;
	int64_t best_bound = 0, best_created = 0;
	size_t i;

	if (!json_is_array(items)) {
		snprintf(why, n, "the pod list has no items");
		return -EINVAL;
	}
	json_array_foreach(items, i, p) {
		json_t *md = json_object_get(p, "metadata"), *ann = json_object_get(md, "annotations");
		const char *phase = json_string_value(json_object_get(json_object_get(p, "status"),
								      "phase"));
		const char *pn = json_string_value(json_object_get(md, "name"));
		json_t *c;
		char err[256];
		int64_t cr;

		if (!pn || (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))) ||
		    json_object_get(md, "deletionTimestamp"))
			continue;
		if (gp_annot_alloc_read(ann, &a, err, sizeof err) != 0 ||
		    (a.node[0] && strcmp(a.node, node) != 0))
			continue;
		if (!(c = next_container(p, ann, resource, count)))
			continue;
		cr = created_ms(p);
		if (best && (a.bound_ms > best_bound ||
			     (a.bound_ms == best_bound &&
			      (cr > best_created || (cr == best_created && strcmp(pn, best_name) > 0)))))
			continue;
		best = p;
		best_ctr = json_string_value(json_object_get(c, "name"));
		best_a = a;
		best_bound = a.bound_ms;
		best_created = cr;
		best_name = pn;
		*index = i;
	}
	if (!best) {
		snprintf(why, n, "no pod bound to node %s waits for %u %s: a pod must be placed by "
				 "gpupool's scheduler (its gpupool.io/allocation) before kubelet "
				 "starts it", node, count, resource);
		return -ENOENT;
	}
	return grant(best, &best_a, best_ctr, g, why, n);
}
