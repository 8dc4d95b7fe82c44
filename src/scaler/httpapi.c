/* httpapi.c - see httpapi.h. */
#include "scaler/httpapi.h"

#include <stdlib.h>
#include <string.h>

#include "scaler/metrics.h"
#include "scaler/poller.h"

/* The forecast's flags by name, for humans reading the JSON. */
static const struct {
	unsigned bit;
	const char *name;
} flag_names[] = {
	{GP_FORECAST_F_BAD_RATE, "bad_rate"},     {GP_FORECAST_F_PREFETCH_0, "prefetch_0"},
	{GP_FORECAST_F_TIME_BACK, "time_back"},   {GP_FORECAST_F_COLD, "cold"},
	{GP_FORECAST_F_NO_SERVICE, "no_service"}, {GP_FORECAST_F_AT_MAX, "at_max"},
};

/* The per-pool figures of a hybrid queue.  Each pool's desired_replicas
 * is an absolute count, for an `AverageValue` target of 1 (the HPA then
 * asks for exactly that many). */
static json_t *pools_json(const struct gp_poller_snap *s)
{
	const struct gp_burst_config *bc = &s->queue->burst;

	return json_pack("{s:{s:I,s:I,s:f,s:f},s:{s:I,s:I,s:f,s:f,s:I}}",
			 "onprem",
			 "desired_replicas", (json_int_t)s->burst.onprem,
			 "max", (json_int_t)bc->onprem_max,
			 "warmup_s", s->queue->forecast.horizon_s,
			 "cost_factor", 1.0,
			 "cloud",
			 "desired_replicas", (json_int_t)s->burst.cloud,
			 "max", (json_int_t)bc->cloud_max,
			 "warmup_s", bc->cloud_warmup_s,
			 "cost_factor", bc->cloud_cost,
			 "total_replicas_ahead", (json_int_t)s->burst.far);
}

/* The JSON document of a good snapshot. */
static json_t *queue_json(const struct gp_poller_snap *s)
{
	const struct gp_forecast_out *fc = &s->fc;
	const struct gp_rabbit_queue *r = &s->raw;
	json_t *flags = json_array(), *doc;

	for (size_t i = 0; i < sizeof flag_names / sizeof *flag_names; i++)
		if (fc->flags & flag_names[i].bit)
			json_array_append_new(flags, json_string(flag_names[i].name));
	doc = json_pack(
		"{s:s,s:s,s:f,s:f,s:I,s:f,s:i,s:f,"
		"s:{s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f},"
		"s:{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:i,s:I,s:o},s:f}",
		"vhost", s->queue->vhost, "queue", s->queue->name, "saturation", fc->saturation,
		"forecast_saturation", fc->forecast_saturation, "desired_replicas",
		(json_int_t)fc->desired_replicas, "target", s->queue->forecast.target, "prefetch",
		(int)s->queue->prefetch, "warmup_s", s->queue->forecast.horizon_s,
		"counters",
		"messages_ready", (json_int_t)r->ready, "messages_unacknowledged",
		(json_int_t)r->unacked, "consumers", (json_int_t)r->consumers, "publish_rate",
		r->publish_rate, "ack_rate", r->ack_rate, "deliver_get_rate", r->deliver_get_rate,
		"deliver_no_ack_rate", r->deliver_no_ack_rate, "redeliver_rate", r->redeliver_rate,
		"forecast",
		"arrival_rate", fc->arrival_rate, "arrival_trend", fc->arrival_trend,
		"arrival_forecast", fc->arrival_forecast, "service_rate", fc->service_rate,
		"holding_s", fc->holding_s, "demand_slots", fc->demand_slots, "headroom_slots",
		fc->headroom_slots, "headroom_sigma", s->queue->forecast.headroom_sigma, "capacity_slots",
		fc->capacity_slots, "replicas", (int)fc->replicas, "samples",
		(json_int_t)fc->samples, "flags", flags,
		"polled_at", (double)s->ok_wall_ns / 1e9);
	if (doc && s->queue->burst.onprem_max)
		json_object_set_new(doc, "pools", pools_json(s));
	return doc;
}

static void get_queue(struct gp_http_req *rq, void *arg)
{
	struct gp_poller *p = arg;
	char vhost[GP_RABBIT_NAME_MAX + 1], name[GP_RABBIT_NAME_MAX + 1];
	const char *rest = gp_http_path(rq) + strlen("/v1/queues/");
	const char *slash = strchr(rest, '/');
	struct gp_poller_snap s;
	int i;

	/* Exactly two segments after the prefix (a '/' inside a name is %2F). */
	if (!slash || strchr(slash + 1, '/') || !gp_http_segment(rq, 2, vhost, sizeof vhost) ||
	    !gp_http_segment(rq, 3, name, sizeof name)) {
		gp_http_reply_error(rq, 404, "want /v1/queues/VHOST/QUEUE (the default vhost is %%2F)");
		return;
	}
	i = gp_poller_find(p, vhost, name);
	if (i < 0) {
		gp_http_reply_error(rq, 404, "queue '%s' in vhost '%s' is not watched by this scaler",
				    name, vhost);
		return;
	}
	gp_poller_get(p, (size_t)i, &s);
	if (!s.ok) {
		gp_http_reply_json(rq, 503, json_pack("{s:s,s:s,s:s}", "error", s.error, "vhost",
						      vhost, "queue", name));
		return;
	}
	gp_http_reply_json(rq, 200, queue_json(&s));
}

static void get_metrics(struct gp_http_req *rq, void *arg)
{
	char *text;
	size_t len;

	if (gp_scaler_metrics(arg, &text, &len) != 0) {
		gp_http_reply_error(rq, 500, "out of memory");
		return;
	}
	gp_http_reply(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

static void get_healthz(struct gp_http_req *rq, void *arg)
{
	struct gp_poller *p = arg;
	json_t *down = json_array();
	size_t n = gp_poller_count(p);
	struct gp_poller_snap s;

	for (size_t i = 0; i < n; i++) {
		gp_poller_get(p, i, &s);
		if (!s.ok)
			json_array_append_new(down, json_pack("{s:s,s:s,s:s}", "vhost",
							      s.queue->vhost, "queue",
							      s.queue->name, "error", s.error));
	}
	if (json_array_size(down))
		gp_http_reply_json(rq, 503, json_pack("{s:s,s:o}", "status", "unavailable",
						      "queues", down));
	else
		gp_http_reply_json(rq, 200, json_pack("{s:s,s:o}", "status", "ok", "queues", down));
}

static void get_livez(struct gp_http_req *rq, void *arg)
{
	(void)arg;
	gp_http_reply(rq, 200, "text/plain", "ok\n", 3);
}

const struct gp_http_route gp_scaler_routes[] = {
	{"GET", "/v1/queues/*", get_queue},
	{"GET", "/metrics", get_metrics},
	{"GET", "/healthz", get_healthz},
	{"GET", "/livez", get_livez},
	{NULL, NULL, NULL},
};
