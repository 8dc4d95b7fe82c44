/* snapjson.c - see snapjson.h. */
#include "agent/snapjson.h"

#include <stdio.h>

#include "common/clock.h"

/* An integer, or null when unknown (negative / UINT64_MAX). */
static json_t *maybe_int(long long v)
{
	return v < 0 ? json_null() : json_integer(v);
}

static json_t *maybe_u64(uint64_t v)
{
	return v == UINT64_MAX ? json_null() : json_integer((json_int_t)v);
}

static json_t *head(const struct gp_agent_snap *s)
{
	char when[40];

	gp_time_format((int64_t)(s->wall_ns / 1000000), when, sizeof when);
	return json_pack("{s:s, s:s}", "node", s->node, "updated", when);
}

static const char *tenant_label(const struct gp_agent_snap *s, int t, const char *what)
{
	if (t < 0 || (unsigned)t >= s->ntenant)
		return "";
	const struct gp_agent_tenant *tn = &s->tenant[t];

	return what[0] == 'n' ? tn->ns : what[0] == 'p' ? tn->pod : what[0] == 'u' ? tn->uid
								     : tn->container;
}

static json_t *gpu_json(const struct gp_agent_snap *s, const struct gp_agent_gpu *g)
{
	json_t *links = json_object(), *procs = json_array(), *o;

	for (unsigned j = 0; j < s->ngpu; j++)
		if (j != g->index && g->link[j])
			json_object_set_new(links, s->gpu[j].uuid, json_integer(g->link[j]));
	for (unsigned p = 0; p < g->nproc; p++) {
		int t = g->proc[p].tenant;

		json_array_append_new(
			procs, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s}", "pid",
					 (json_int_t)g->proc[p].pid, "memoryBytes",
					 (json_int_t)g->proc[p].mem, "podUID",
					 tenant_label(s, t, "uid"), "namespace",
					 tenant_label(s, t, "ns"), "pod", tenant_label(s, t, "pod"),
					 "container", tenant_label(s, t, "ctr")));
	}
	o = json_pack("{s:i, s:s, s:s, s:s, s:i, s:b, s:s, s:I, s:I, s:I, s:o, s:o, s:I, s:i, "
		      "s:o, s:o, s:o, s:o}",
		      "index", (int)g->index, "uuid", g->uuid, "model", g->model, "pciBusId", g->pci,
		      "numa", g->numa, "healthy", g->healthy, "unhealthyReason",
		      g->healthy ? "" : g->why, "memoryTotalBytes", (json_int_t)g->mem_total,
		      "memoryUsedBytes", (json_int_t)g->mem_used, "memoryFreeBytes",
		      (json_int_t)g->mem_free, "utilizationPercent", maybe_int(g->util),
		      "memoryUtilizationPercent", maybe_int(g->mem_util), "xidErrors",
		      (json_int_t)g->xids, "lastXid", (int)g->last_xid, "eccCorrected",
		      maybe_u64(g->ecc[0]), "eccUncorrected", maybe_u64(g->ecc[1]), "links",
		      links, "processes", procs);
	return o;
}

json_t *gp_snap_gpus_json(const struct gp_agent_snap *s)
{
	json_t *doc = head(s), *gpus = json_array();

	if (!doc || !gpus)
		goto oom;
	for (unsigned i = 0; i < s->ngpu; i++) {
		json_t *g = gpu_json(s, &s->gpu[i]);

		if (!g || json_array_append_new(gpus, g))
			goto oom;
	}
	json_object_set_new(doc, "nvml", s->nvml_ok ? json_string("ok") : json_string(s->nvml_err));
	json_object_set_new(doc, "gpus", gpus);
	return doc;
oom:
	json_decref(gpus);
	json_decref(doc);
	return NULL;
}

/* A string, or null when there is none. */
static json_t *maybe_str(const char *v)
{
	return v ? json_string(v) : json_null();
}

/* A real, or null when unknown (negative). */
static json_t *maybe_real(double v)
{
	return v < 0 ? json_null() : json_real(v);
}

static json_t *tgpu_json(const struct gp_agent_snap *s, const struct gp_agent_tgpu *g)
{
	const struct gp_agent_gpu *card = g->gpu >= 0 ? &s->gpu[g->gpu] : NULL;
	json_t *o = json_pack(
		"{s:s, s:o, s:s, s:I, s:I, s:I, s:I, s:i, s:o, s:o, s:f, s:f, s:o, s:o, s:o, s:f, "
		"s:b}",
		"uuid", g->uuid, "index", card ? json_integer(card->index) : json_null(), "model",
		card ? card->model : "", "limitBytes", (json_int_t)g->limit, "usedBytes",
		(json_int_t)g->used, "peakBytes", (json_int_t)g->peak, "refused",
		(json_int_t)g->refused, "coreLimit", (int)g->core_limit, "corePolicy",
		maybe_str(gp_snap_policy_name(g->core_policy)), "priority",
		maybe_str(gp_snap_priority_name(g->priority)), "computeSeconds",
		(double)g->compute_ns / 1e9, "throttledSeconds", (double)g->throttled_ns / 1e9,
		"computePercent", maybe_real(g->compute_pct), "throttledPercent",
		maybe_real(g->throttled_pct), "utilizationPercent", maybe_int(g->util),
		"idleSeconds", gp_snap_idle_s(s, g), "launched", g->last_launch_ns != 0);
	return o;
}

json_t *gp_snap_tenants_json(const struct gp_agent_snap *s)
{
	json_t *doc = head(s), *list = json_array();

	if (!doc || !list)
		goto oom;
	for (unsigned t = 0; t < s->ntenant; t++) {
		const struct gp_agent_tenant *tn = &s->tenant[t];
		json_t *gpus = json_array(), *pids = json_array(), *o;

		for (unsigned k = 0; k < tn->ngpu; k++)
			json_array_append_new(gpus, tgpu_json(s, &tn->gpu[k]));
		for (unsigned p = 0; p < tn->nproc; p++)
			json_array_append_new(pids, json_integer(tn->pids[p]));
		o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:i, s:o, s:o}", "podUID", tn->uid,
			      "container", tn->container, "namespace", tn->ns, "pod", tn->pod,
			      "idleExempt", tn->exempt, "processes", (int)tn->nproc, "pids", pids,
			      "gpus", gpus);
		if (!o || json_array_append_new(list, o))
			goto oom;
	}
	json_object_set_new(doc, "tenants", list);
	json_object_set_new(doc, "skipped", json_integer(s->skipped));
	json_object_set_new(doc, "capped", json_integer(s->capped));
	return doc;
oom:
	json_decref(list);
	json_decref(doc);
	return NULL;
}
