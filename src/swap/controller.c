/* controller.c - `gpupool swap` (see controller.h).  The control thread
 * owns the pool's state and runs the rounds; after each it renders the JSON
 * and Prometheus documents the HTTP thread serves, under one lock. */
#include "swap/controller.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "net/http.h"
#include "net/loop.h"
#include "net/ready.h"
#include "net/prom.h"
#include "scaler/poller.h"
#include "swap/adapter.h"
#include "swap/catalog.h"

#define MAX_REPLICAS 1024u

struct rep {
	uint32_t model, n;
	uint32_t engine[GP_PLAN_MAX_SPAN];
	int loading;
	double since;  /* when its load was ordered */
	double eta;    /* the planner's estimate of its load time */
};

struct eng {
	int healthy;
	unsigned fails;
	char why[256];
	uint8_t *cached;  /* per model: loaded here before, so in its host cache */
	uint8_t *serves;  /* per model: the engine can hold it (a vLLM engine
	                     has a server for some models only) */
};

struct ctl {
	const struct gp_swap_config *c;
	const struct gp_swap_catalog *cat;
	const struct gp_swap_adapter **ad; /* per engine */
	struct eng *e;
	struct rep r[MAX_REPLICAS];
	size_t nr;
	double *demand;          /* per model, msg/s */
	struct gp_planner *planner;
	struct gp_poller *poller;
	long *queue_of;          /* per model: its poller index, or -1 */
	/* counters */
	uint64_t loads, unloads, failed_swaps, bytes, disk_bytes, rounds;
	double swap_seconds;     /* sum over completed loads */
	uint64_t swaps_done;
	/* what the HTTP thread serves */
	pthread_mutex_t lock;
	char *plan_json, *engines_json, *models_json, *metrics;
	int stop;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The adapter's view of engine e serving model m (a vLLM engine's server
 * for the model).  Returns 0, or -1 when e cannot serve m. */
static int refs(const struct ctl *x, size_t e, size_t m, struct gp_swap_engine_ref *er,
		struct gp_swap_model_ref *mr)
{
	const struct gp_swap_engine *ce = &x->cat->engines[e];
	const struct gp_swap_model *cm = &x->cat->models[m];
	long s = gp_swap_engine_serves(x->cat, e, m);

	if (s < 0)
		return -1;
	*er = (struct gp_swap_engine_ref){.kind = gp_swap_engine_kind_name(ce->kind),
					  .endpoint = ce->kind == GP_SWAP_ENGINE_VLLM
							      ? ce->servers[s].url
							      : ce->endpoint};
	*mr = (struct gp_swap_model_ref){.name = cm->name, .weights = cm->weights,
					 .bytes = cm->size, .queue = cm->queue};
	return 0;
}

/* 1. Health: an engine is lost after health_fails failures in a row. */
static void check_health(struct ctl *x)
{
	for (size_t e = 0; e < x->cat->nengines; e++) {
		const struct gp_swap_engine *ce = &x->cat->engines[e];
		struct gp_swap_engine_ref er = {.kind = gp_swap_engine_kind_name(ce->kind),
						.endpoint = ce->endpoint};
		char why[256] = "";
		int rc;

		if (ce->kind == GP_SWAP_ENGINE_VLLM) /* its servers answer for it */
			er.endpoint = ce->nservers ? ce->servers[0].url : NULL;
		rc = er.endpoint ? x->ad[e]->health(&er, why, sizeof why) : -ENOENT;
		if (rc == 0) {
			if (!x->e[e].healthy)
				gp_info("engine %s is healthy", ce->name);
			x->e[e].healthy = 1;
			x->e[e].fails = 0;
			x->e[e].why[0] = '\0';
			continue;
		}
		snprintf(x->e[e].why, sizeof x->e[e].why, "%s", why);
		if (++x->e[e].fails >= x->c->health_fails && x->e[e].healthy) {
			x->e[e].healthy = 0;
			gp_warn("engine %s is lost: %s", ce->name, why);
		}
	}
}

static void drop_replica(struct ctl *x, size_t i)
{
	x->r[i] = x->r[--x->nr];
}

/* Replicas on lost engines go; loads in flight are followed. */
static void follow_replicas(struct ctl *x, double now)
{
	for (size_t i = 0; i < x->nr;) {
		struct rep *r = &x->r[i];
		int lost = 0, loaded = 1, failed = 0;

		for (uint32_t k = 0; k < r->n; k++)
			lost |= !x->e[r->engine[k]].healthy;
		if (lost) {
			drop_replica(x, i);
			continue;
		}
		if (r->loading) {
			for (uint32_t k = 0; k < r->n; k++) {
				struct gp_swap_engine_ref er;
				struct gp_swap_model_ref mr;
				enum gp_swap_state st = GP_SWAP_UNKNOWN;
				char why[256];

				if (refs(x, r->engine[k], r->model, &er, &mr) ||
				    x->ad[r->engine[k]]->state(&er, &mr, &st, why, sizeof why))
					st = GP_SWAP_UNKNOWN;
				loaded &= st == GP_SWAP_LOADED;
				failed |= st == GP_SWAP_FAILED || st == GP_SWAP_UNLOADED;
			}
			if (failed) {
				gp_warn("load of %s failed", x->cat->models[r->model].name);
				x->failed_swaps++;
				drop_replica(x, i);
				continue;
			}
			if (loaded) {
				r->loading = 0;
				x->swaps_done++;
				x->swap_seconds += now - r->since;
				for (uint32_t k = 0; k < r->n; k++)
					x->e[r->engine[k]].cached[r->model] = 1;
			}
		}
		i++;
	}
}

/* 2. Demand from the queues' forecasts: the arrival rate forecast over the
 * horizon, and never less than what serves the messages already waiting or
 * held within one horizon (a queue nobody consumes has no ack rate and the
 * broker may report no publish rate yet; its backlog is demand all the
 * same).  A queue without current figures keeps its last demand. */
static void read_demand(struct ctl *x)
{
	for (size_t m = 0; m < x->cat->nmodels; m++) {
		struct gp_poller_snap s;
		double backlog;

		if (!x->poller || x->queue_of[m] < 0)
			continue;
		gp_poller_get(x->poller, (size_t)x->queue_of[m], &s);
		if (!s.ok)
			continue;
		backlog = (double)(s.raw.ready + s.raw.unacked) / x->c->horizon_s;
		x->demand[m] = fmax(fmax(s.fc.arrival_forecast, s.fc.arrival_rate), backlog);
	}
}

/* Run one load or unload on every engine of the action.  A load that
 * fails on one engine is taken back from the others. */
static void execute(struct ctl *x, const struct gp_plan_action *a, double now)
{
	char why[256];
	uint32_t done = 0;

	for (; done < a->nengines; done++) {
		struct gp_swap_engine_ref er;
		struct gp_swap_model_ref mr;
		const struct gp_swap_adapter *ad = x->ad[a->engine[done]];
		int rc = refs(x, a->engine[done], a->model, &er, &mr);

		if (!rc)
			rc = a->op == GP_PLAN_LOAD ? ad->load(&er, &mr, why, sizeof why)
						   : ad->unload(&er, &mr, why, sizeof why);
		else
			snprintf(why, sizeof why, "the engine cannot serve this model");
		if (rc) {
			gp_warn("%s of %s on %s: %s", gp_plan_op_name(a->op),
				x->cat->models[a->model].name, x->cat->engines[a->engine[done]].name,
				why);
			break;
		}
	}
	if (a->op == GP_PLAN_UNLOAD) {
		x->unloads++;
		for (size_t i = 0; i < x->nr; i++)
			if (x->r[i].model == a->model && x->r[i].engine[0] == a->engine[0]) {
				drop_replica(x, i);
				break;
			}
		return;
	}
	if (done < a->nengines) {
		for (uint32_t k = 0; k < done; k++) {
			struct gp_swap_engine_ref er;
			struct gp_swap_model_ref mr;
			if (!refs(x, a->engine[k], a->model, &er, &mr))
				x->ad[a->engine[k]]->unload(&er, &mr, why, sizeof why);
		}
		x->failed_swaps++;
		return;
	}
	if (x->nr == MAX_REPLICAS)
		return;
	x->loads++;
	x->bytes += a->bytes;
	x->disk_bytes += a->disk_bytes;
	x->r[x->nr] = (struct rep){.model = a->model, .n = a->nengines, .loading = 1,
				   .since = now, .eta = a->done_s - a->start_s};
	memcpy(x->r[x->nr].engine, a->engine, sizeof a->engine);
	x->nr++;
}

/* Render what the HTTP thread serves. */
static void publish(struct ctl *x, const struct gp_plan *plan)
{
	const struct gp_swap_catalog *cat = x->cat;
	json_t *acts = json_array(), *engs = json_array(), *mods = json_array();
	struct gp_prom p = {0};
	char *pj, *ej, *mj;

	for (size_t i = 0; plan && i < plan->nactions; i++) {
		const struct gp_plan_action *a = &plan->actions[i];
		json_t *on = json_array();
		for (uint32_t k = 0; k < a->nengines; k++)
			json_array_append_new(on, json_string(cat->engines[a->engine[k]].name));
		json_array_append_new(acts, json_pack("{s:s, s:s, s:s, s:o, s:I, s:f}", "op",
						      gp_plan_op_name(a->op), "why",
						      gp_plan_why_name(a->why), "model",
						      cat->models[a->model].name, "engines", on,
						      "bytes", (json_int_t)a->bytes, "done_s",
						      a->done_s));
	}
	for (size_t e = 0; e < cat->nengines; e++) {
		json_t *held = json_array();
		for (size_t i = 0; i < x->nr; i++)
			for (uint32_t k = 0; k < x->r[i].n; k++)
				if (x->r[i].engine[k] == e)
					json_array_append_new(held, json_pack(
						"{s:s, s:s}", "model", cat->models[x->r[i].model].name,
						"state", x->r[i].loading ? "loading" : "loaded"));
		json_array_append_new(engs, json_pack("{s:s, s:s, s:I, s:b, s:i, s:s, s:o}", "name",
						      cat->engines[e].name, "kind",
						      gp_swap_engine_kind_name(cat->engines[e].kind),
						      "memory", (json_int_t)cat->engines[e].memory,
						      "healthy", x->e[e].healthy, "failed_checks",
						      (int)x->e[e].fails, "error", x->e[e].why,
						      "models", held));
	}
	gp_prom_family(&p, "gpupool_swap_replicas", "gauge",
		       "Serving replicas of each model (loading ones excluded)");
	for (size_t m = 0; m < cat->nmodels; m++) {
		unsigned serving = 0, loading = 0;
		for (size_t i = 0; i < x->nr; i++)
			if (x->r[i].model == m)
				*(x->r[i].loading ? &loading : &serving) += 1;
		json_array_append_new(mods, json_pack(
			"{s:s, s:s, s:f, s:i, s:i, s:i, s:i, s:i, s:o}", "name", cat->models[m].name,
			"queue", cat->models[m].queue, "demand_rps", x->demand[m], "replicas",
			(int)serving, "loading", (int)loading, "min_replicas",
			(int)cat->models[m].min_replicas, "max_replicas",
			(int)cat->models[m].max_replicas, "want",
			plan ? (int)plan->want[m] : 0, "min_met_in_s",
			plan && isfinite(plan->min_met_s[m]) ? json_real(plan->min_met_s[m])
							       : json_null()));
		gp_prom_adds(&p, "gpupool_swap_replicas{model=\"");
		gp_prom_esc(&p, cat->models[m].name);
		gp_prom_adds(&p, "\"}");
		gp_prom_value(&p, serving);
	}
	gp_prom_family(&p, "gpupool_swap_swaps_total", "counter", "Loads and unloads ordered");
	gp_prom_adds(&p, "gpupool_swap_swaps_total{op=\"load\"}");
	gp_prom_value(&p, (double)x->loads);
	gp_prom_adds(&p, "gpupool_swap_swaps_total{op=\"unload\"}");
	gp_prom_value(&p, (double)x->unloads);
	gp_prom_family(&p, "gpupool_swap_failed_swaps_total", "counter", "Swaps that failed");
	gp_prom_adds(&p, "gpupool_swap_failed_swaps_total");
	gp_prom_value(&p, (double)x->failed_swaps);
	gp_prom_family(&p, "gpupool_swap_bytes_moved_total", "counter",
		       "Bytes of weights loaded onto GPUs");
	gp_prom_adds(&p, "gpupool_swap_bytes_moved_total");
	gp_prom_value(&p, (double)x->bytes);
	gp_prom_family(&p, "gpupool_swap_swap_seconds_total", "counter",
		       "Seconds from ordering a load to the engine reporting it loaded, summed");
	gp_prom_adds(&p, "gpupool_swap_swap_seconds_total");
	gp_prom_value(&p, x->swap_seconds);
	gp_prom_family(&p, "gpupool_swap_unmet_minimums", "gauge",
		       "Models whose minimum replicas the healthy engines cannot hold");
	gp_prom_adds(&p, "gpupool_swap_unmet_minimums");
	gp_prom_value(&p, plan ? plan->unmet_min : 0);
	gp_prom_family(&p, "gpupool_swap_engine_up", "gauge", "1 while an engine is healthy");
	for (size_t e = 0; e < cat->nengines; e++) {
		gp_prom_adds(&p, "gpupool_swap_engine_up{engine=\"");
		gp_prom_esc(&p, cat->engines[e].name);
		gp_prom_adds(&p, "\"}");
		gp_prom_value(&p, x->e[e].healthy);
	}
	pj = json_dumps(json_pack("{s:o, s:I, s:I, s:i, s:i}", "actions", acts, "bytes",
				  (json_int_t)(plan ? plan->bytes : 0), "disk_bytes",
				  (json_int_t)(plan ? plan->disk_bytes : 0), "unmet_minimums",
				  plan ? (int)plan->unmet_min : 0, "unmet_demand",
				  plan ? (int)plan->unmet_demand : 0),
			JSON_COMPACT);
	ej = json_dumps(json_pack("{s:o}", "engines", engs), JSON_COMPACT);
	mj = json_dumps(json_pack("{s:o}", "models", mods), JSON_COMPACT);
	pthread_mutex_lock(&x->lock);
	free(x->plan_json);
	free(x->engines_json);
	free(x->models_json);
	free(x->metrics);
	x->plan_json = pj;
	x->engines_json = ej;
	x->models_json = mj;
	x->metrics = gp_prom_take(&p);
	pthread_mutex_unlock(&x->lock);
}

/* One round: health, replicas, demand, plan, swaps, publish. */
static void round_once(struct ctl *x)
{
	const struct gp_swap_catalog *cat = x->cat;
	struct gp_plan_model pm[GP_SWAP_MAX_MODELS];
	struct gp_plan_engine pe[GP_SWAP_MAX_ENGINES];
	struct gp_plan_replica cur[MAX_REPLICAS];
	struct gp_plan plan;
	double now = now_s();
	int rc;

	check_health(x);
	follow_replicas(x, now);
	read_demand(x);
	for (size_t m = 0; m < cat->nmodels; m++)
		pm[m] = (struct gp_plan_model){
			.size_bytes = cat->models[m].size,
			.span = cat->models[m].engines_per_replica,
			.min_replicas = cat->models[m].min_replicas,
			.max_replicas = cat->models[m].max_replicas,
			.replica_rps = cat->models[m].throughput,
			.demand_rps = x->demand[m],
		};
	for (size_t e = 0; e < cat->nengines; e++)
		pe[e] = (struct gp_plan_engine){.mem_bytes = cat->engines[e].memory,
						.host_bw = x->c->host_bw, .disk_bw = x->c->disk_bw,
						.healthy = x->e[e].healthy, .cached = x->e[e].cached,
						.serves = x->e[e].serves};
	for (size_t i = 0; i < x->nr; i++) {
		cur[i] = (struct gp_plan_replica){.model = x->r[i].model, .nengines = x->r[i].n};
		memcpy(cur[i].engine, x->r[i].engine, sizeof cur[i].engine);
		cur[i].ready_s = x->r[i].loading ? fmax(x->r[i].eta - (now - x->r[i].since), 0.1) : 0;
	}
	rc = gp_planner_plan(x->planner, now, pm, cat->nmodels, pe, cat->nengines, cur, x->nr,
			     &plan);
	if (rc) {
		gp_warn("the planner refused this round's figures (%s)", strerror(-rc));
		publish(x, NULL);
		return;
	}
	for (size_t i = 0; i < plan.nactions; i++)
		execute(x, &plan.actions[i], now);
	x->rounds++;
	publish(x, &plan);
}

static int stopping(struct ctl *x)
{
	int s;

	pthread_mutex_lock(&x->lock);
	s = x->stop;
	pthread_mutex_unlock(&x->lock);
	return s;
}

static void *control(void *arg)
{
	struct ctl *x = arg;

	while (!stopping(x)) {
		double t0 = now_s(), left;

		round_once(x);
		for (left = x->c->round_s - (now_s() - t0); left > 0 && !stopping(x); left -= 0.05)
			usleep(left < 0.05 ? (useconds_t)(left * 1e6) : 50000);
	}
	return NULL;
}

/* HTTP: the latest rendering of each document. */
static void serve_doc(struct gp_http_req *rq, struct ctl *x, char **doc, const char *type)
{
	char *copy;

	pthread_mutex_lock(&x->lock);
	copy = *doc ? strdup(*doc) : NULL;
	pthread_mutex_unlock(&x->lock);
	if (!copy) {
		gp_http_reply_error(rq, 503, "no planning round has finished yet");
		return;
	}
	gp_http_reply_owned(rq, 200, type, copy, strlen(copy));
}

static void get_plan(struct gp_http_req *rq, void *arg)
{
	serve_doc(rq, arg, &((struct ctl *)arg)->plan_json, "application/json");
}

static void get_engines(struct gp_http_req *rq, void *arg)
{
	serve_doc(rq, arg, &((struct ctl *)arg)->engines_json, "application/json");
}

static void get_models(struct gp_http_req *rq, void *arg)
{
	serve_doc(rq, arg, &((struct ctl *)arg)->models_json, "application/json");
}

static void get_metrics(struct gp_http_req *rq, void *arg)
{
	serve_doc(rq, arg, &((struct ctl *)arg)->metrics, "text/plain; version=0.0.4");
}

static void get_healthz(struct gp_http_req *rq, void *arg)
{
	(void)arg;
	gp_http_reply_json(rq, 200, json_pack("{s:s}", "status", "ok"));
}

static const struct gp_http_route routes[] = {
	{"GET", "/v1/plan", get_plan},       {"GET", "/v1/engines", get_engines},
	{"GET", "/v1/models", get_models},   {"GET", "/metrics", get_metrics},
	{"GET", "/healthz", get_healthz},    {NULL, NULL, NULL},
};

/* Watch every model's queue with the scaler's poller. */
static int start_poller(struct ctl *x)
{
	const struct gp_swap_catalog *cat = x->cat;
	struct gp_scaler_queue *q = calloc(cat->nmodels, sizeof *q);
	struct gp_rabbit_conn conn = {.url = cat->rabbitmq.url, .user = cat->rabbitmq.user,
				      .password = x->c->rabbit_password, .timeout_ms = 2000};
	size_t n = 0;
	int rc;

	if (!q)
		return -ENOMEM;
	for (size_t m = 0; m < cat->nmodels; m++) {
		snprintf(q[n].vhost, sizeof q[n].vhost, "%s", cat->models[m].vhost);
		snprintf(q[n].name, sizeof q[n].name, "%s", cat->models[m].queue);
		q[n].prefetch = 1;
		gp_forecast_config_default(&q[n].forecast);
		q[n].forecast.horizon_s = x->c->horizon_s;
		q[n].forecast.max_replicas = GP_SWAP_REPLICAS_MAX;
		n++;
	}
	rc = gp_poller_start(&x->poller, &conn, q, n, 1000);
	free(q);
	if (rc)
		return rc;
	for (size_t m = 0; m < cat->nmodels; m++)
		x->queue_of[m] = gp_poller_find(x->poller, cat->models[m].vhost,
						cat->models[m].queue);
	return 0;
}

int gp_swap_run(const struct gp_swap_config *c)
{
	static struct ctl x; /* large: off the stack */
	const struct gp_swap_catalog *cat = c->catalog;
	struct gp_loop *loop = NULL;
	struct gp_http *http = NULL;
	pthread_t thread;
	int rc = -ENOMEM, started = 0, ready = 0;

	memset(&x, 0, sizeof x);
	x.c = c;
	x.cat = cat;
	pthread_mutex_init(&x.lock, NULL);
	x.ad = calloc(cat->nengines, sizeof *x.ad);
	x.e = calloc(cat->nengines, sizeof *x.e);
	x.demand = calloc(cat->nmodels, sizeof *x.demand);
	x.queue_of = calloc(cat->nmodels, sizeof *x.queue_of);
	if (!x.ad || !x.e || !x.demand || !x.queue_of)
		goto out;
	for (size_t e = 0; e < cat->nengines; e++) {
		x.ad[e] = gp_swap_adapter_find(gp_swap_engine_kind_name(cat->engines[e].kind));
		x.e[e].healthy = 1; /* until its checks fail */
		if (!x.ad[e] || !(x.e[e].cached = calloc(cat->nmodels, 1)) ||
		    !(x.e[e].serves = calloc(cat->nmodels, 1)))
			goto out;
		for (size_t m = 0; m < cat->nmodels; m++)
			x.e[e].serves[m] = gp_swap_engine_serves(cat, e, m) >= 0;
	}
	for (size_t m = 0; m < cat->nmodels; m++)
		x.queue_of[m] = -1;
	if ((rc = gp_planner_new(&x.planner, &c->planner)))
		goto out;
	if (cat->rabbitmq.url && (rc = start_poller(&x))) {
		gp_error("cannot poll RabbitMQ at %s: %s", cat->rabbitmq.url, strerror(-rc));
		goto out;
	}
	rc = -ENOMEM;
	if (!(loop = gp_loop_new()))
		goto out;
	{
		struct gp_http_opts o = {.listen = c->listen, .max_body = 1024, .max_headers = 16384};
		if ((rc = gp_http_start(&http, gp_loop_base(loop), &o, routes, &x))) {
			gp_error("cannot listen for HTTP on %s: %s", c->listen, strerror(-rc));
			goto out;
		}
	}
	if ((rc = -pthread_create(&thread, NULL, control, &x)))
		goto out;
	started = 1;
	if (c->ready_file) {
		if ((rc = gp_ready_write(c->ready_file, gp_http_port(http), -1))) {
			gp_error("cannot write %s: %s", c->ready_file, strerror(-rc));
			goto out;
		}
		ready = 1;
	}
	gp_info("%zu models on %zu engines, a round every %.1f s, HTTP %s", cat->nmodels,
		cat->nengines, c->round_s, c->listen);
	rc = gp_loop_run(loop) ? -EIO : 0;
out:
	if (started) {
		pthread_mutex_lock(&x.lock);
		x.stop = 1;
		pthread_mutex_unlock(&x.lock);
		pthread_join(thread, NULL);
	}
	if (ready)
		unlink(c->ready_file);
	gp_http_stop(http);
	gp_loop_free(loop);
	gp_poller_stop(x.poller);
	gp_planner_free(x.planner);
	for (size_t e = 0; x.e && e < cat->nengines; e++) {
		free(x.e[e].cached);
		free(x.e[e].serves);
	}
	free(x.e);
	free(x.ad);
	free(x.demand);
	free(x.queue_of);
	free(x.plan_json);
	free(x.engines_json);
	free(x.models_json);
	free(x.metrics);
	pthread_mutex_destroy(&x.lock);
	return rc;
}
