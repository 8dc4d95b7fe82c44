/* metrics.c - see metrics.h. */
#include "agent/metrics.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/prom.h"

#ifndef GP_VERSION
#define GP_VERSION "0.1.0"
#endif

/* Labels are rendered once per scrape, without the closing brace, so that
 * a family's line is a name, a copy and a number. */
struct labels {
	char *gpu[GP_AGENT_MAX_GPUS];  /* {node,uuid,index,model */
	char **tgpu;                   /* per tenant card, in tenant order:
	                                  {node,uuid,model,namespace,pod,container,pod_uid */
	char *node;                    /* {node */
};

/* The labels of card g: {node,uuid,index,model */
static void gpu_labels(struct gp_prom *o, const struct gp_agent_snap *s, const struct gp_agent_gpu *g)
{
	char idx[16];

	gp_prom_adds(o, "{node=\"");
	gp_prom_esc(o, s->node);
	gp_prom_adds(o, "\",uuid=\"");
	gp_prom_esc(o, g->uuid);
	snprintf(idx, sizeof idx, "\",index=\"%u", g->index);
	gp_prom_adds(o, idx);
	gp_prom_adds(o, "\",model=\"");
	gp_prom_esc(o, g->model);
	gp_prom_add(o, "\"", 1);
}

/* --- physical cards ------------------------------------------------------- */

typedef int (*gpu_getter)(const struct gp_agent_gpu *g, double *v);

#define GPU_GETTER(fn, cond, expr)                                              \
	static int fn(const struct gp_agent_gpu *g, double *v)                   \
	{                                                                        \
		if (!(cond))                                                     \
			return 0;                                                \
		*v = (double)(expr);                                             \
		return 1;                                                        \
	}
GPU_GETTER(g_total, g->mem_total, g->mem_total)
GPU_GETTER(g_used, g->answered, g->mem_used)
GPU_GETTER(g_free, g->answered, g->mem_free)
GPU_GETTER(g_util, g->util >= 0, g->util / 100.0)
GPU_GETTER(g_mutil, g->mem_util >= 0, g->mem_util / 100.0)
GPU_GETTER(g_healthy, 1, g->healthy)
GPU_GETTER(g_xids, 1, g->xids)
GPU_GETTER(g_last_xid, 1, g->last_xid)
GPU_GETTER(g_procs, g->answered, g->nproc)

static const struct {
	const char *name, *type, *help;
	gpu_getter get;
} gpu_families[] = {
	{"gpupool_gpu_memory_total_bytes", "gauge", "Device memory of the card (NVML)", g_total},
	{"gpupool_gpu_memory_used_bytes", "gauge", "Device memory in use on the card, all "
						   "processes and the driver (NVML)", g_used},
	{"gpupool_gpu_memory_free_bytes", "gauge", "Device memory free on the card (NVML)",
	 g_free},
	{"gpupool_gpu_utilization_ratio", "gauge", "Share of NVML's last sample period in which "
						  "a kernel ran on the card", g_util},
	{"gpupool_gpu_memory_utilization_ratio", "gauge", "Share of NVML's last sample period "
							 "in which device memory was read or "
							 "written", g_mutil},
	{"gpupool_gpu_healthy", "gauge", "1 if the card is offered to tenants; 0 after a fatal "
					 "XID or once it stopped answering NVML", g_healthy},
	{"gpupool_gpu_xid_errors_total", "counter", "XID events seen since the agent started",
	 g_xids},
	{"gpupool_gpu_last_xid", "gauge", "Code of the latest XID event; 0 none", g_last_xid},
	{"gpupool_gpu_processes", "gauge", "Processes with a context on the card (NVML)",
	 g_procs},
};

static void gpus(struct gp_prom *o, const struct gp_agent_snap *s, const struct labels *l)
{
	char num[16];

	gp_prom_family(o, "gpupool_gpu_info", "gauge",
	       "A card of the node: its PCI bus id and NUMA node as labels; always 1");
	for (unsigned i = 0; i < s->ngpu; i++) {
		gp_prom_adds(o, "gpupool_gpu_info");
		gp_prom_adds(o, l->gpu[i]);
		gp_prom_adds(o, ",pci_bus_id=\"");
		gp_prom_esc(o, s->gpu[i].pci);
		snprintf(num, sizeof num, "\",numa=\"%d\"}", s->gpu[i].numa);
		gp_prom_adds(o, num);
		gp_prom_value(o, 1);
	}
	for (size_t k = 0; k < sizeof gpu_families / sizeof *gpu_families; k++) {
		gp_prom_family(o, gpu_families[k].name, gpu_families[k].type, gpu_families[k].help);
		for (unsigned i = 0; i < s->ngpu; i++) {
			double v;

			if (!gpu_families[k].get(&s->gpu[i], &v))
				continue;
			gp_prom_adds(o, gpu_families[k].name);
			gp_prom_adds(o, l->gpu[i]);
			gp_prom_add(o, "}", 1);
			gp_prom_value(o, v);
		}
	}
	gp_prom_family(o, "gpupool_gpu_ecc_errors_total", "counter",
	       "ECC errors since the driver loaded (volatile counters), by type");
	for (unsigned i = 0; i < s->ngpu; i++)
		for (int t = 0; t < 2; t++) {
			if (s->gpu[i].ecc[t] == UINT64_MAX)
				continue;
			gp_prom_adds(o, "gpupool_gpu_ecc_errors_total");
			gp_prom_adds(o, l->gpu[i]);
			gp_prom_adds(o, t ? ",type=\"uncorrected\"}" : ",type=\"corrected\"}");
			gp_prom_value(o, (double)s->gpu[i].ecc[t]);
		}
	gp_prom_family(o, "gpupool_gpu_link_score", "gauge",
	       "Link score to another card of the node (docs/protocol.md: SYS 0, NODE 10, PHB "
	       "20, PXB 30, PIX 40, NVk 100+10k)");
	for (unsigned i = 0; i < s->ngpu; i++)
		for (unsigned j = 0; j < s->ngpu; j++) {
			if (i == j)
				continue;
			gp_prom_adds(o, "gpupool_gpu_link_score");
			gp_prom_adds(o, l->gpu[i]);
			gp_prom_adds(o, ",peer_uuid=\"");
			gp_prom_esc(o, s->gpu[j].uuid);
			gp_prom_add(o, "\"}", 2);
			gp_prom_value(o, s->gpu[i].link[j]);
		}
}

/* --- processes and tenants ------------------------------------------------ */

/* {node,uuid,model,namespace,pod,container,pod_uid of a tenant's card (t
 * NULL: a process of no known tenant). */
static void tenant_labels(struct gp_prom *o, const struct gp_agent_snap *s,
			  const struct gp_agent_gpu *g, const char *uuid,
			  const struct gp_agent_tenant *t)
{
	gp_prom_adds(o, "{node=\"");
	gp_prom_esc(o, s->node);
	gp_prom_adds(o, "\",uuid=\"");
	gp_prom_esc(o, g ? g->uuid : uuid);
	gp_prom_adds(o, "\",model=\"");
	gp_prom_esc(o, g ? g->model : "");
	gp_prom_adds(o, "\",namespace=\"");
	gp_prom_esc(o, t ? t->ns : "");
	gp_prom_adds(o, "\",pod=\"");
	gp_prom_esc(o, t ? t->pod : "");
	gp_prom_adds(o, "\",container=\"");
	gp_prom_esc(o, t ? t->container : "");
	gp_prom_adds(o, "\",pod_uid=\"");
	gp_prom_esc(o, t ? t->uid : "");
	gp_prom_add(o, "\"", 1);
}

static void processes(struct gp_prom *o, const struct gp_agent_snap *s)
{
	char pid[32];

	gp_prom_family(o, "gpupool_process_memory_used_bytes", "gauge",
	       "Device memory a process holds on a card (NVML), with its tenant's pod when "
	       "known");
	for (unsigned i = 0; i < s->ngpu; i++) {
		const struct gp_agent_gpu *g = &s->gpu[i];

		for (unsigned p = 0; p < g->nproc; p++) {
			int t = g->proc[p].tenant;

			gp_prom_adds(o, "gpupool_process_memory_used_bytes");
			tenant_labels(o, s, g, NULL, t >= 0 ? &s->tenant[t] : NULL);
			snprintf(pid, sizeof pid, ",pid=\"%u\"}", g->proc[p].pid);
			gp_prom_adds(o, pid);
			gp_prom_value(o, (double)g->proc[p].mem);
		}
	}
}

typedef int (*tenant_getter)(const struct gp_agent_snap *s, const struct gp_agent_tenant *t,
			     const struct gp_agent_tgpu *g, double *v);

#define TENANT_GETTER(fn, cond, expr)                                           \
	static int fn(const struct gp_agent_snap *s, const struct gp_agent_tenant *t, \
		      const struct gp_agent_tgpu *g, double *v)                  \
	{                                                                        \
		(void)s;                                                         \
		(void)t;                                                         \
		(void)g;                                                         \
		if (!(cond))                                                     \
			return 0;                                                \
		*v = (double)(expr);                                             \
		return 1;                                                        \
	}
TENANT_GETTER(t_limit, g->limit, g->limit)
TENANT_GETTER(t_used, 1, g->used)
TENANT_GETTER(t_peak, 1, g->peak)
TENANT_GETTER(t_refused, 1, g->refused)
TENANT_GETTER(t_procs, 1, t->nproc)
/* Milliseconds are all a human or an alert needs. */
TENANT_GETTER(t_idle, 1, (double)(uint64_t)(gp_snap_idle_s(s, g) * 1000.0 + 0.5) / 1000.0)
TENANT_GETTER(t_util, g->util >= 0, g->util / 100.0)
TENANT_GETTER(t_core, g->core_limit, g->core_limit / 100.0)
/* Counters of every tenant, metered or not (then they stay 0): a series
 * that appears only once a limit is set would break rate() across it. */
TENANT_GETTER(t_compute, 1, g->compute_ns / 1e9)
TENANT_GETTER(t_throttled, 1, g->throttled_ns / 1e9)

static const struct {
	const char *name, *type, *help;
	tenant_getter get;
} tenant_families[] = {
	{"gpupool_tenant_memory_limit_bytes", "gauge", "Device-memory budget of the tenant on "
						       "the card; absent when it has none",
	 t_limit},
	{"gpupool_tenant_memory_used_bytes", "gauge", "Device memory the tenant's live "
						      "processes hold on the card", t_used},
	{"gpupool_tenant_memory_peak_bytes", "gauge", "Most device memory the tenant held on "
						      "the card at once", t_peak},
	{"gpupool_tenant_refused_allocations_total", "counter", "Allocations refused because "
								"they would exceed the budget",
	 t_refused},
	{"gpupool_tenant_processes", "gauge", "Live processes of the tenant", t_procs},
	{"gpupool_tenant_idle_seconds", "gauge", "Seconds since the tenant's last kernel launch "
						 "or copy on the card (or since it first used "
						 "it)", t_idle},
	{"gpupool_tenant_utilization_ratio", "gauge", "Share of the card's time the tenant's "
						      "kernels took over NVML's last sample",
	 t_util},
	{"gpupool_tenant_core_limit_ratio", "gauge", "Compute share the tenant is limited to; "
						     "absent when unlimited", t_core},
	{"gpupool_tenant_compute_seconds_total", "counter", "Device time the tenant's kernels "
							    "used on the card (metered only "
							    "with a compute limit or a "
							    "priority other than normal; else "
							    "0)", t_compute},
	{"gpupool_tenant_throttled_seconds_total", "counter", "Time the tenant's kernel "
							      "launches were held back by its "
							      "compute share or by priority, "
							      "summed over its threads",
	 t_throttled},
};

/* gpupool_tenant_info: what is not a number about a tenant on a card, as
 * labels, so that dashboards can join it to the figures. */
static void tenant_info(struct gp_prom *o, const struct gp_agent_snap *s, const struct labels *l)
{
	size_t n = 0;

	gp_prom_family(o, "gpupool_tenant_info", "gauge",
	       "A tenant on a card: its compute policy (hard, elastic, off) and priority (low, "
	       "normal, high) as labels; always 1");
	for (unsigned t = 0; t < s->ntenant; t++) {
		const struct gp_agent_tenant *tn = &s->tenant[t];

		for (unsigned i = 0; i < tn->ngpu; i++, n++) {
			const struct gp_agent_tgpu *g = &tn->gpu[i];
			const char *pol = gp_snap_policy_name(g->core_policy);
			const char *pri = gp_snap_priority_name(g->priority);

			gp_prom_adds(o, "gpupool_tenant_info");
			gp_prom_adds(o, l->tgpu[n]);
			gp_prom_adds(o, ",core_policy=\"");
			gp_prom_adds(o, pol ? pol : "unknown");
			gp_prom_adds(o, "\",priority=\"");
			gp_prom_adds(o, pri ? pri : "unknown");
			gp_prom_adds(o, "\"}");
			gp_prom_value(o, 1);
		}
	}
}

static void tenants(struct gp_prom *o, const struct gp_agent_snap *s, const struct labels *l)
{
	tenant_info(o, s, l);
	for (size_t k = 0; k < sizeof tenant_families / sizeof *tenant_families; k++) {
		size_t n = 0;

		gp_prom_family(o, tenant_families[k].name, tenant_families[k].type,
		       tenant_families[k].help);
		for (unsigned t = 0; t < s->ntenant; t++) {
			const struct gp_agent_tenant *tn = &s->tenant[t];

			for (unsigned i = 0; i < tn->ngpu; i++, n++) {
				double v;

				if (!tenant_families[k].get(s, tn, &tn->gpu[i], &v))
					continue;
				gp_prom_adds(o, tenant_families[k].name);
				gp_prom_adds(o, l->tgpu[n]);
				gp_prom_add(o, "}", 1);
				gp_prom_value(o, v);
			}
		}
	}
}

/* --- the agent ------------------------------------------------------------ */

static void agent(struct gp_prom *o, const struct gp_agent_snap *s, const struct gp_agent_counters *c,
		  const struct labels *l)
{
	const struct {
		const char *name, *type, *help;
		double v;
	} fams[] = {
		{"gpupool_agent_nvml_up", "gauge", "1 if NVML answered the last collection",
		 s->nvml_ok},
		{"gpupool_agent_tenants", "gauge", "Tenants (region files) read", s->ntenant},
		{"gpupool_agent_regions_skipped", "gauge", "Region files that could not be read at "
							   "the last collection", s->skipped},
		{"gpupool_agent_regions_capped", "gauge", "Tenant directories left unread for "
							  "--max-tenants", s->capped},
		{"gpupool_agent_collect_duration_seconds", "gauge", "How long the last collection "
								    "took", s->took_ns / 1e9},
		{"gpupool_agent_last_collect_timestamp_seconds", "gauge", "Wall time of the last "
									  "collection",
		 (double)(s->wall_ns / 1000000) / 1000.0},
		{"gpupool_agent_collections_total", "counter", "Collections done", c->collections},
		{"gpupool_agent_collect_errors_total", "counter", "Collections that failed",
		 c->collect_errors},
		{"gpupool_agent_node_state_writes_total", "counter", "gpupool.io/node-state "
								     "patches applied",
		 c->state_writes},
		{"gpupool_agent_node_state_errors_total", "counter", "gpupool.io/node-state "
								     "patches that failed",
		 c->state_errors},
		{"gpupool_agent_tenants_collected_total", "counter", "Tenant directories removed "
								     "after their pod was gone",
		 c->gc_removed},
		{"gpupool_agent_idle_marked_total", "counter", "Pods marked idle", c->idle_marked},
		{"gpupool_agent_idle_evicted_total", "counter", "Idle pods evicted",
		 c->idle_evicted},
		{"gpupool_agent_idle_exec_total", "counter", "--idle-exec commands run",
		 c->idle_exec},
		{"gpupool_agent_idle_after_seconds", "gauge", "The idle policy's threshold; 0 off",
		 c->idle_after_s},
	};

	gp_prom_family(o, "gpupool_agent_info", "gauge", "The agent's version; always 1");
	gp_prom_adds(o, "gpupool_agent_info");
	gp_prom_adds(o, l->node);
	gp_prom_adds(o, ",version=\"" GP_VERSION "\"}");
	gp_prom_value(o, 1);
	for (size_t k = 0; k < sizeof fams / sizeof *fams; k++) {
		gp_prom_family(o, fams[k].name, fams[k].type, fams[k].help);
		gp_prom_adds(o, fams[k].name);
		gp_prom_adds(o, l->node);
		gp_prom_add(o, "}", 1);
		gp_prom_value(o, fams[k].v);
	}
}

static void free_labels(struct labels *l, size_t ntgpu)
{
	for (unsigned i = 0; i < GP_AGENT_MAX_GPUS; i++)
		free(l->gpu[i]);
	for (size_t i = 0; l->tgpu && i < ntgpu; i++)
		free(l->tgpu[i]);
	free(l->tgpu);
	free(l->node);
}

/* Render every label set once.  Returns 0 or -ENOMEM. */
static int make_labels(const struct gp_agent_snap *s, struct labels *l, size_t *ntgpu)
{
	struct gp_prom o = {0};
	size_t n = 0;

	*ntgpu = 0;
	for (unsigned t = 0; t < s->ntenant; t++)
		n += s->tenant[t].ngpu;
	l->tgpu = calloc(n ? n : 1, sizeof *l->tgpu);
	if (!l->tgpu)
		return -ENOMEM;
	for (unsigned i = 0; i < s->ngpu; i++) {
		gpu_labels(&o, s, &s->gpu[i]);
		if (!(l->gpu[i] = gp_prom_take(&o)))
			return -ENOMEM;
	}
	for (unsigned t = 0; t < s->ntenant; t++) {
		const struct gp_agent_tenant *tn = &s->tenant[t];

		for (unsigned i = 0; i < tn->ngpu; i++) {
			const struct gp_agent_tgpu *g = &tn->gpu[i];

			tenant_labels(&o, s, g->gpu >= 0 ? &s->gpu[g->gpu] : NULL, g->uuid, tn);
			if (!(l->tgpu[(*ntgpu)++] = gp_prom_take(&o)))
				return -ENOMEM;
		}
	}
	gp_prom_adds(&o, "{node=\"");
	gp_prom_esc(&o, s->node);
	gp_prom_add(&o, "\"", 1);
	return (l->node = gp_prom_take(&o)) ? 0 : -ENOMEM;
}

int gp_agent_metrics(const struct gp_agent_snap *s, const struct gp_agent_counters *c,
		     char **out, size_t *len)
{
	struct labels l = {0};
	struct gp_prom o = {0};
	size_t ntgpu;
	int rc = make_labels(s, &l, &ntgpu);

	if (!rc) {
		/* Room for the usual size up front: about 2.2 KiB per tenant
		 * card (eleven families) and 4 KiB per card. */
		o.p = malloc(o.cap = 65536 + ntgpu * 2200 + s->ngpu * 4096);
		o.oom = !o.p;
		gpus(&o, s, &l);
		processes(&o, s);
		tenants(&o, s, &l);
		agent(&o, s, c, &l);
		*len = o.len;
		*out = gp_prom_take(&o);
		rc = *out ? 0 : -ENOMEM;
	}
	free_labels(&l, ntgpu);
	return rc;
}
