/* httpapi.c - the agent's HTTP routes: /metrics, /v1/gpus, /v1/tenants,
 * /healthz.  Each renders the latest snapshot; none waits for NVML, the
 * regions or the API server. */
#include "agent/agent_int.h"

#include <stdlib.h>
#include <string.h>

#include "agent/snapjson.h"
#include "common/clock.h"

/* The snapshot, or a 503 already sent. */
static struct gp_agent_snap *need_snap(struct gp_http_req *rq, struct gp_agent *a)
{
	struct gp_agent_snap *s = gp__agent_snap(a);

	if (!s)
		gp_http_reply_error(rq, 503, "no collection finished yet");
	return s;
}

static void metrics(struct gp_http_req *rq, void *arg)
{
	struct gp_agent *a = arg;
	struct gp_agent_snap *s = need_snap(rq, a);
	struct gp_agent_counters c;
	char *text;
	size_t len;

	if (!s)
		return;
	pthread_mutex_lock(&a->lock);
	c = a->counters;
	pthread_mutex_unlock(&a->lock);
	if (gp_agent_metrics(s, &c, &text, &len) != 0) {
		gp_snap_unref(s);
		gp_http_reply_error(rq, 500, "out of memory");
		return;
	}
	gp_snap_unref(s);
	gp_http_reply_owned(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

static void doc(struct gp_http_req *rq, struct gp_agent *a,
		json_t *(*render)(const struct gp_agent_snap *))
{
	struct gp_agent_snap *s = need_snap(rq, a);
	json_t *d;

	if (!s)
		return;
	d = render(s);
	gp_snap_unref(s);
	if (!d) {
		gp_http_reply_error(rq, 500, "out of memory");
		return;
	}
	gp_http_reply_json(rq, 200, d);
}

static void gpus(struct gp_http_req *rq, void *arg)
{
	doc(rq, arg, gp_snap_gpus_json);
}

static void tenants(struct gp_http_req *rq, void *arg)
{
	doc(rq, arg, gp_snap_tenants_json);
}

/* 200 while collections are current and NVML answers; 503 with why. */
static void healthz(struct gp_http_req *rq, void *arg)
{
	struct gp_agent *a = arg;
	struct gp_agent_snap *s = need_snap(rq, a);
	uint64_t age, limit = 3 * a->cfg->interval_ms * 1000000ull + 5000000000ull;

	if (!s)
		return;
	age = gp_now_ns() - s->mono_ns;
	if (!s->nvml_ok)
		gp_http_reply_error(rq, 503, "NVML: %s", s->nvml_err);
	else if (age > limit)
		gp_http_reply_error(rq, 503, "the last collection is %.1f s old",
				    (double)age / 1e9);
	else
		gp_http_reply(rq, 200, "text/plain", "ok\n", 3);
	gp_snap_unref(s);
}

const struct gp_http_route gp__agent_routes[] = {
	{"GET", "/metrics", metrics},
	{"GET", "/v1/gpus", gpus},
	{"GET", "/v1/tenants", tenants},
	{"GET", "/healthz", healthz},
	{NULL, NULL, NULL},
};
