/* extender_node.c - a placement node from a Node's annotations and what
 * its pods hold: the translation every view of the cluster shares (the
 * cache's snapshots, bind's fresh read, preemption's what-if).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/log.h"
#include "sched/extender_int.h"

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

static uint64_t clamp(uint64_t v, uint64_t cap)
{
	return v > cap ? cap : v;
}

int gp__ext_node_from(const char *name, const struct gp_annot_node *st,
		      const struct gp__ext_sums *u, struct gp_node **out, char *why, size_t n)
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
		/* Allocations beyond a card (a node that shrank) count it full. */
		struct gp_gpu g = {
			.uuid = a->uuid,
			.model = a->model,
			.mem_bytes = a->mem_bytes,
			.compute = a->compute,
			.slices = a->slices,
			.numa = a->numa,
			.unhealthy = !a->healthy,
			.mem_used = u ? clamp(u->mem[i], a->mem_bytes) : 0,
			.compute_used = u ? (unsigned)clamp(u->compute[i], a->compute ? a->compute : 100)
					  : 0,
			.tenants = u ? (unsigned)clamp(u->tenants[i], a->slices ? a->slices : 1) : 0,
			.exclusive = u && u->excl[i] > 0,
		};
		if ((rc = gp_node_add_gpu(node, &g, why, n)) < 0)
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
	return rc == -ENOMEM ? rc : -EINVAL;
}

int gp__ext_build_node(const char *name, const struct gp_annot_node *st,
		       const struct gp_annot_hold *holds, unsigned nholds, struct gp_node **out,
		       char *why, size_t n)
{
	struct gp__ext_sums u;

	memset(&u, 0, sizeof u);
	for (unsigned i = 0; i < st->ngpu; i++) {
		const struct gp_annot_gpu *a = &st->gpu[i];

		for (unsigned h = 0; h < nholds; h++) {
			if (strcasecmp(holds[h].uuid, a->uuid))
				continue;
			u.mem[i] += holds[h].mem_bytes;
			u.compute[i] += holds[h].compute;
			u.tenants[i] += holds[h].tenants;
			u.excl[i] += holds[h].exclusive;
		}
		if (u.mem[i] > a->mem_bytes || u.compute[i] > a->compute ||
		    u.tenants[i] > a->slices)
			gp_info("node %s GPU %s: pods hold more than it has; counting it full", name,
				a->uuid);
	}
	return gp__ext_node_from(name, st, &u, out, why, n);
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
