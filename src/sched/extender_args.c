/* extender_args.c - reading what kube-scheduler sends: ExtenderArgs,
 * ExtenderBindingArgs, and the checks they share with
 * ExtenderPreemptionArgs (extender_preempt.c).  No I/O: the fuzz target
 * tests/fuzz/fuzz_extargs.c feeds these arbitrary JSON.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "sched/extender_int.h"

bool gp__ext_dns_name(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > max || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	return true;
}

int gp__ext_check_keys(json_t *obj, const char *const *known, const char *where, char *why,
		       size_t n)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		bool exact = false;
		const char *folded = NULL;

		for (const char *const *q = known; *q; q++) {
			if (strcmp(k, *q) == 0)
				exact = true;
			else if (strcasecmp(k, *q) == 0)
				folded = *q;
		}
		if (!exact && folded) {
			snprintf(why, n, "%s%skey '%.64s' is not '%s' (keys are case-sensitive)",
				 where ? where : "", where ? ": " : "", k, folded);
			return -EINVAL;
		}
		if (!exact)
			gp_debug("ignoring unknown key '%s'", k);
	}
	return 0;
}

void gp__ext_cands_free(struct gp__ext_cands *c)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->owned && c->owned[i])
			gp_node_free(c->node[i]);
	free(c->name);
	free(c->obj);
	free(c->node);
	free(c->owned);
	free(c->why);
	free(c->unresolvable);
	free(c->whybuf);
}

int gp__ext_read_args(json_t *args, unsigned max_nodes, struct gp__ext_cands *c, char *why,
		      size_t n)
{
	static const char *const keys[] = {"Pod", "Nodes", "NodeNames", NULL};
	json_t *pod = json_object_get(args, "Pod");
	json_t *nodes = json_object_get(args, "Nodes");
	json_t *names = json_object_get(args, "NodeNames");
	json_t *items = NULL, *v;
	size_t i;

	memset(c, 0, sizeof *c);
	if (!json_is_object(args)) {
		snprintf(why, n, "the body is not an ExtenderArgs object");
		return -EINVAL;
	}
	if (gp__ext_check_keys(args, keys, NULL, why, n))
		return -EINVAL;
	if (!json_is_object(pod)) {
		snprintf(why, n, "'Pod' is missing or not an object");
		return -EINVAL;
	}
	if (nodes && json_is_null(nodes))
		nodes = NULL;
	if (names && json_is_null(names))
		names = NULL;
	if (!!nodes == !!names) {
		snprintf(why, n, "give 'Nodes' (nodeCacheCapable: false) or 'NodeNames' "
				 "(nodeCacheCapable: true), not %s",
			 nodes ? "both" : "neither");
		return -EINVAL;
	}
	if (nodes) {
		items = json_object_get(nodes, "items");
		if (!json_is_object(nodes) || !json_is_array(items)) {
			snprintf(why, n, "'Nodes' is not a NodeList with 'items'");
			return -EINVAL;
		}
	} else if (!json_is_array(names)) {
		snprintf(why, n, "'NodeNames' is not a list");
		return -EINVAL;
	}
	c->n = json_array_size(nodes ? items : names);
	if (c->n > max_nodes) {
		snprintf(why, n, "%zu candidate nodes, more than --max-nodes %u", c->n, max_nodes);
		return -EINVAL;
	}
	c->name = calloc(c->n + 1, sizeof *c->name);
	c->obj = calloc(c->n + 1, sizeof *c->obj);
	c->node = calloc(c->n + 1, sizeof *c->node);
	c->owned = calloc(c->n + 1, sizeof *c->owned);
	c->why = calloc(c->n + 1, sizeof *c->why);
	c->unresolvable = calloc(c->n + 1, sizeof *c->unresolvable);
	c->whybuf = calloc(c->n + 1, GP_REASON_MAX);
	if (!c->name || !c->obj || !c->node || !c->owned || !c->why || !c->unresolvable ||
	    !c->whybuf) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(nodes ? items : names, i, v) {
		json_t *nm = nodes ? json_object_get(json_object_get(v, "metadata"), "name") : v;
		if (!json_is_string(nm) || !gp__ext_dns_name(json_string_value(nm), 253)) {
			snprintf(why, n, "%s[%zu] has no valid node name",
				 nodes ? "Nodes.items" : "NodeNames", i);
			return -EINVAL;
		}
		c->name[i] = json_string_value(nm);
		c->obj[i] = nodes ? v : NULL;
	}
	return 0;
}

int gp__ext_read_bind_args(json_t *args, struct gp__ext_bind_args *b, char *why, size_t n)
{
	static const char *const keys[] = {"PodName", "PodNamespace", "PodUID", "Node", NULL};
	const char *name, *ns, *uid, *node;
	json_t *u;

	if (!json_is_object(args)) {
		snprintf(why, n, "the body is not an ExtenderBindingArgs object");
		return -EINVAL;
	}
	if (gp__ext_check_keys(args, keys, NULL, why, n))
		return -EINVAL;
	name = json_string_value(json_object_get(args, "PodName"));
	ns = json_string_value(json_object_get(args, "PodNamespace"));
	node = json_string_value(json_object_get(args, "Node"));
	u = json_object_get(args, "PodUID");
	uid = json_is_string(u) ? json_string_value(u) : "";
	if (!gp__ext_dns_name(name, 253) || !gp__ext_dns_name(ns, 63) ||
	    !gp__ext_dns_name(node, 253) || (u && !json_is_string(u) && !json_is_null(u)) ||
	    strlen(uid) >= GP_ANNOT_UID_MAX || strpbrk(uid, "/?#% ")) {
		snprintf(why, n, "PodName, PodNamespace and Node must be Kubernetes names, PodUID a "
				 "string");
		return -EINVAL;
	}
	snprintf(b->ns, sizeof b->ns, "%s", ns);
	snprintf(b->name, sizeof b->name, "%s", name);
	snprintf(b->uid, sizeof b->uid, "%s", uid);
	snprintf(b->node, sizeof b->node, "%s", node);
	return 0;
}
