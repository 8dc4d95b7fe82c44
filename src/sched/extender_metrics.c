/* extender_metrics.c - GET /metrics: what the extender does and what the
 * cluster's cards have given out, in Prometheus' text format.
 *
 * Everything here runs on the loop's thread (handlers and the done
 * callbacks of workers), so the counters need no locking.  Per-card
 * figures come from the view the extender decides on; docs/sched.md maps
 * them to the names HAMi's scheduler exports.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/prom.h"
#include "net/work.h"
#include "sched/extender_int.h"

/* Request latency buckets, seconds: filter lives around a millisecond,
 * bind around an API round trip or a few. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				0.1,    0.25,  0.5,    1,     2.5,  5,    10};
#define NB (sizeof bounds / sizeof *bounds)

static const char *const verb_names[GP__EXT_VERBS] = {
	[GP__EXT_FILTER] = "filter", [GP__EXT_PRIORITIZE] = "prioritize",
	[GP__EXT_BIND] = "bind",     [GP__EXT_PREEMPT] = "preempt",
};

struct gp__ext_metrics {
	struct {
		unsigned long bucket[NB + 1]; /* the last: +Inf only */
		unsigned long count;
		double sum;
	} lat[GP__EXT_VERBS];
	unsigned long binds_ok, binds_failed;
	unsigned long preempt_ok, preempt_failed, victims;
};

struct gp__ext_metrics *gp__ext_metrics_new(void)
{
	return calloc(1, sizeof(struct gp__ext_metrics));
}

void gp__ext_metrics_free(struct gp__ext_metrics *m)
{
	free(m);
}

void gp__ext_metrics_observe(struct gp__ext_metrics *m, enum gp__ext_verb v, uint64_t ns)
{
	double s = (double)ns / 1e9;
	size_t b = 0;

	if (!m || (unsigned)v >= GP__EXT_VERBS)
		return;
	while (b < NB && s > bounds[b])
		b++;
	m->lat[v].bucket[b]++;
	m->lat[v].count++;
	m->lat[v].sum += s;
}

void gp__ext_metrics_bind(struct gp__ext_metrics *m, int rc, uint64_t ns)
{
	if (!m)
		return;
	gp__ext_metrics_observe(m, GP__EXT_BIND, ns);
	if (rc)
		m->binds_failed++;
	else
		m->binds_ok++;
}

void gp__ext_metrics_preempt(struct gp__ext_metrics *m, int rc, uint64_t ns, json_t *res)
{
	const char *node;
	json_t *v;

	if (!m)
		return;
	gp__ext_metrics_observe(m, GP__EXT_PREEMPT, ns);
	if (rc) {
		m->preempt_failed++;
		return;
	}
	m->preempt_ok++;
	json_object_foreach(json_object_get(res, "NodeNameToMetaVictims"), node, v)
		m->victims += json_array_size(json_object_get(v, "Pods"));
}

static void counter(struct gp_prom *o, const char *name, const char *labels, double v)
{
	gp_prom_adds(o, name);
	gp_prom_adds(o, labels);
	gp_prom_value(o, v);
}

static void latency(struct gp_prom *o, const struct gp__ext_metrics *m)
{
	static const char name[] = "gpupool_sched_request_duration_seconds";
	char buf[64];

	gp_prom_family(o, name, "histogram",
		       "Time from a request's arrival to its answer, per extender verb");
	for (unsigned v = 0; v < GP__EXT_VERBS; v++) {
		unsigned long cum = 0;

		for (size_t b = 0; b <= NB; b++) {
			cum += m->lat[v].bucket[b];
			gp_prom_adds(o, name);
			gp_prom_adds(o, "_bucket{verb=\"");
			gp_prom_adds(o, verb_names[v]);
			if (b < NB)
				snprintf(buf, sizeof buf, "\",le=\"%g\"}", bounds[b]);
			else
				snprintf(buf, sizeof buf, "\",le=\"+Inf\"}");
			gp_prom_adds(o, buf);
			gp_prom_value(o, (double)cum);
		}
		snprintf(buf, sizeof buf, "{verb=\"%s\"}", verb_names[v]);
		gp_prom_adds(o, name);
		gp_prom_adds(o, "_sum");
		counter(o, "", buf, m->lat[v].sum);
		gp_prom_adds(o, name);
		gp_prom_adds(o, "_count");
		counter(o, "", buf, (double)m->lat[v].count);
	}
}

/* One line of a per-card family: name{node,uuid,model} value. */
static void card(struct gp_prom *o, const char *name, const char *node, const struct gp_gpu *g,
		 double v)
{
	gp_prom_adds(o, name);
	gp_prom_adds(o, "{node=\"");
	gp_prom_esc(o, node);
	gp_prom_adds(o, "\",uuid=\"");
	gp_prom_esc(o, g->uuid);
	gp_prom_adds(o, "\",model=\"");
	gp_prom_esc(o, g->model ? g->model : "");
	gp_prom_adds(o, "\"}");
	gp_prom_value(o, v);
}

enum card_fig { MEM, MEM_USED, COMPUTE, COMPUTE_USED, TENANTS, SLICES, N_FIGS };

static const struct {
	const char *name, *help;
} card_families[N_FIGS] = {
	[MEM] = {"gpupool_sched_gpu_memory_bytes", "Device memory of the card"},
	[MEM_USED] = {"gpupool_sched_gpu_memory_allocated_bytes",
		      "Device memory given to pods (bound or being bound)"},
	[COMPUTE] = {"gpupool_sched_gpu_compute_percent", "Compute of the card (100 = one GPU)"},
	[COMPUTE_USED] = {"gpupool_sched_gpu_compute_allocated_percent",
			  "Compute given to pods, in percent of one GPU"},
	[TENANTS] = {"gpupool_sched_gpu_tenants", "Pod containers sharing the card"},
	[SLICES] = {"gpupool_sched_gpu_slices", "Most tenants the card takes at once"},
};

static void cards(struct gp_prom *o, const struct gp__ext_snap *s)
{
	for (unsigned f = 0; f < N_FIGS; f++) {
		gp_prom_family(o, card_families[f].name, "gauge", card_families[f].help);
		for (size_t i = 0; s && i < s->nnodes; i++) {
			const struct gp_node *n = s->nodes[i].node;
			unsigned ng = n ? gp_node_gpu_count(n) : 0;

			for (unsigned k = 0; k < ng; k++) {
				struct gp_gpu g;
				double v[N_FIGS];

				if (gp_node_gpu(n, k, &g))
					continue;
				v[MEM] = (double)g.mem_bytes;
				v[MEM_USED] = (double)g.mem_used;
				v[COMPUTE] = g.compute;
				v[COMPUTE_USED] = g.compute_used;
				v[TENANTS] = g.tenants;
				v[SLICES] = g.slices;
				card(o, card_families[f].name, s->nodes[i].name, &g, v[f]);
			}
		}
	}
}

char *gp__ext_metrics_text(const struct gp__ext *x)
{
	const struct gp__ext_metrics *m = x->metrics;
	struct gp_prom o = {0};
	int64_t last_ok;
	char err[256], buf[128];
	bool live = gp__ext_cache_health(x->cache, &last_ok, err, sizeof err);

	gp_prom_family(&o, "gpupool_sched_up", "gauge",
		       "1 while the watches of nodes and pods are live");
	counter(&o, "gpupool_sched_up", "", live);
	latency(&o, m);
	gp_prom_family(&o, "gpupool_sched_binds_total", "counter",
		       "Binds answered, by result (a failed bind is retried by kube-scheduler)");
	counter(&o, "gpupool_sched_binds_total", "{result=\"ok\"}", (double)m->binds_ok);
	counter(&o, "gpupool_sched_binds_total", "{result=\"failed\"}", (double)m->binds_failed);
	gp_prom_family(&o, "gpupool_sched_binds_in_flight", "gauge",
		       "Binds and preemptions being worked on now");
	counter(&o, "gpupool_sched_binds_in_flight", "", gp_work_busy(x->work));
	gp_prom_family(&o, "gpupool_sched_preemptions_total", "counter",
		       "Preemption requests answered, by result");
	counter(&o, "gpupool_sched_preemptions_total", "{result=\"ok\"}", (double)m->preempt_ok);
	counter(&o, "gpupool_sched_preemptions_total", "{result=\"failed\"}",
		(double)m->preempt_failed);
	gp_prom_family(&o, "gpupool_sched_preemption_victims_total", "counter",
		       "Pods named as victims in preemption answers (over candidate nodes)");
	counter(&o, "gpupool_sched_preemption_victims_total", "", (double)m->victims);
	gp_prom_family(&o, "gpupool_sched_rejected_nodes_total", "counter",
		       "Candidate nodes filter turned down, by cause");
	for (unsigned r = 1; r < GP_R__COUNT; r++) {
		snprintf(buf, sizeof buf, "{reason=\"%s\"}", gp_reject_name((enum gp_reject)r));
		counter(&o, "gpupool_sched_rejected_nodes_total", buf, (double)x->rejected[r]);
	}
	gp_prom_family(&o, "gpupool_sched_view_nodes", "gauge", "Nodes in the extender's view");
	counter(&o, "gpupool_sched_view_nodes", "", x->snap ? (double)x->snap->nnodes : 0);
	gp_prom_family(&o, "gpupool_sched_view_gpu_pods", "gauge",
		       "Bound pods holding GPUs in the extender's view");
	counter(&o, "gpupool_sched_view_gpu_pods", "", x->snap ? x->snap->gpu_pods : 0);
	cards(&o, x->snap);
	return gp_prom_take(&o);
}
