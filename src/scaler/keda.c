/* keda.c - see keda.h. */
#include "scaler/keda.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "externalscaler.pb-c.h"
#include "scaler/poller.h"

#define TICK_MS 500 /* how often open streams are compared with the figures */

enum metric { FORECAST_SATURATION, SATURATION };

static const struct {
	const char *key;      /* in scalerMetadata */
	const char *slug;     /* in the metric name */
} metrics[] = {
	[FORECAST_SATURATION] = {"forecast_saturation", "forecast-saturation"},
	[SATURATION] = {"saturation", "saturation"},
};

/* The pools of a hybrid queue (burst.h), by their scalerMetadata names. */
enum pool { POOL_NONE, POOL_ONPREM, POOL_CLOUD };
static const char *const pool_names[] = {[POOL_ONPREM] = "onprem", [POOL_CLOUD] = "cloud"};

/* What a ScaledObjectRef asks for. */
struct ask {
	int queue;            /* poller index */
	enum metric metric;   /* without a pool */
	enum pool pool;       /* with one, the metric is its desired replicas */
};

struct stream {
	struct gp_keda *k;
	struct gp_grpc_call *call;
	struct ask ask;
	int last;             /* last result sent, -1 before the first */
	struct stream *prev, *next;
};

struct gp_keda {
	struct gp_poller *poller;
	struct event *tick;
	struct stream *streams;
};

static const char *meta(const Externalscaler__ScaledObjectRef *ref, const char *key)
{
	for (size_t i = 0; ref && i < ref->n_scalermetadata; i++)
		if (ref->scalermetadata[i]->key && strcmp(ref->scalermetadata[i]->key, key) == 0)
			return ref->scalermetadata[i]->value;
	return NULL;
}

/* Resolve the trigger's metadata.  Returns GP_GRPC_OK, or a status with
 * the reason in err. */
static enum gp_grpc_status resolve(struct gp_keda *k, const Externalscaler__ScaledObjectRef *ref,
				   struct ask *a, char *err, size_t n)
{
	const char *queue = meta(ref, "queue"), *vhost = meta(ref, "vhost");
	const char *metric = meta(ref, "metric"), *prefetch = meta(ref, "prefetch");
	const char *target = meta(ref, "target"), *pool = meta(ref, "pool");
	const struct gp_scaler_queue *q;
	struct gp_poller_snap s;

	if (!queue || !*queue) {
		snprintf(err, n, "scalerMetadata has no 'queue'");
		return GP_GRPC_INVALID_ARGUMENT;
	}
	if (!vhost || !*vhost)
		vhost = "/";
	a->queue = gp_poller_find(k->poller, vhost, queue);
	if (a->queue < 0) {
		snprintf(err, n, "queue '%.255s' in vhost '%.255s' is not watched by this scaler",
			 queue, vhost);
		return GP_GRPC_NOT_FOUND;
	}
	a->metric = FORECAST_SATURATION;
	a->pool = POOL_NONE;
	if (pool) {
		if (strcmp(pool, "onprem") == 0) {
			a->pool = POOL_ONPREM;
		} else if (strcmp(pool, "cloud") == 0) {
			a->pool = POOL_CLOUD;
		} else {
			snprintf(err, n, "scalerMetadata pool '%.64s': want onprem or cloud", pool);
			return GP_GRPC_INVALID_ARGUMENT;
		}
		/* A pool is served one figure; a metric naming another is a
		 * ScaledObject that expects something else. */
		if (metric && strcmp(metric, "desired_replicas") != 0) {
			snprintf(err, n, "scalerMetadata metric '%.64s' with pool '%s': a pool's "
					 "metric is its desired_replicas", metric, pool);
			return GP_GRPC_INVALID_ARGUMENT;
		}
	} else if (metric) {
		size_t m = 0;
		while (m < sizeof metrics / sizeof *metrics && strcmp(metrics[m].key, metric) != 0)
			m++;
		if (m == sizeof metrics / sizeof *metrics) {
			snprintf(err, n, "scalerMetadata metric '%.64s': want forecast_saturation or "
					 "saturation", metric);
			return GP_GRPC_INVALID_ARGUMENT;
		}
		a->metric = (enum metric)m;
	}
	gp_poller_get(k->poller, (size_t)a->queue, &s);
	q = s.queue;
	if (a->pool != POOL_NONE && !q->burst.onprem_max) {
		snprintf(err, n, "scalerMetadata pool '%s': queue '%s' in vhost '%s' has no "
				 "on-premises and cloud pools (start the scaler with --onprem-max "
				 "for it, or leave out 'pool')", pool, q->name, q->vhost);
		return GP_GRPC_INVALID_ARGUMENT;
	}
	if (prefetch) {
		uint64_t v;
		if (gp_parse_u64(prefetch, &v) != 0 || v != q->prefetch) {
			snprintf(err, n, "scalerMetadata prefetch '%.32s' differs from the scaler's "
					 "prefetch %u for queue '%s': configure it in one place",
				 prefetch, (unsigned)q->prefetch, q->name);
			return GP_GRPC_INVALID_ARGUMENT;
		}
	}
	if (target) {
		char *end;
		double v = strtod(target, &end);
		/* NaN compares false with everything: test it, not the gap. */
		if (end == target || *end || !isfinite(v) || fabs(v - q->forecast.target) > 1e-9) {
			snprintf(err, n, "scalerMetadata target '%.32s' differs from the scaler's "
					 "target %g for queue '%s': configure it in one place",
				 target, q->forecast.target, q->name);
			return GP_GRPC_INVALID_ARGUMENT;
		}
	}
	return GP_GRPC_OK;
}

/* A metric name Kubernetes accepts: lowercase letters, digits, '-'. */
static void metric_name(const struct gp_scaler_queue *q, const struct ask *a, char *out, size_t n)
{
	size_t o = a->pool != POOL_NONE
			   ? (size_t)snprintf(out, n, "gpupool-%s-desired-replicas-",
					      pool_names[a->pool])
			   : (size_t)snprintf(out, n, "gpupool-%s-", metrics[a->metric].slug);

	for (const char *s = q->name; *s && o + 1 < n && o < 200; s++)
		out[o++] = isalnum((unsigned char)*s) ? (char)tolower((unsigned char)*s) : '-';
	out[o] = '\0';
}

/* A pool's desired replica count. */
static uint32_t pool_desired(const struct ask *a, const struct gp_poller_snap *s)
{
	return a->pool == POOL_ONPREM ? s->burst.onprem : s->burst.cloud;
}

/* A pool is active while it wants a replica, so that the cloud pool can
 * sit at zero (minReplicaCount 0) while on-premises copes.  The queue as
 * a whole is active while messages wait too. */
static int is_active(const struct ask *a, const struct gp_poller_snap *s)
{
	if (a->pool != POOL_NONE)
		return pool_desired(a, s) > 0;
	return s->fc.desired_replicas > 0 || s->raw.ready + s->raw.unacked > 0;
}

/* The current snapshot of a, or the call ended UNAVAILABLE (returns -1). */
static int current(struct gp_keda *k, struct gp_grpc_call *call, const struct ask *a,
		   struct gp_poller_snap *s)
{
	gp_poller_get(k->poller, (size_t)a->queue, s);
	if (s->ok)
		return 0;
	gp_grpc_finish(call, GP_GRPC_UNAVAILABLE, "%s", s->error);
	return -1;
}

static void is_active_call(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	Externalscaler__IsActiveResponse resp = EXTERNALSCALER__IS_ACTIVE_RESPONSE__INIT;
	struct gp_poller_snap s;
	struct ask a;
	char err[1024];
	enum gp_grpc_status st = resolve(arg, (const Externalscaler__ScaledObjectRef *)req, &a,
					 err, sizeof err);

	if (st) {
		gp_grpc_finish(call, st, "%s", err);
		return;
	}
	if (current(arg, call, &a, &s))
		return;
	resp.result = is_active(&a, &s);
	if (gp_grpc_send(call, &resp.base) != 0) {
		gp_grpc_finish(call, GP_GRPC_INTERNAL, "cannot queue the reply");
		return;
	}
	gp_grpc_finish(call, GP_GRPC_OK, NULL);
}

static void stream_unlink(struct stream *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		st->k->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	free(st);
}

static void stream_cancelled(struct gp_grpc_call *call, void *arg)
{
	(void)call;
	stream_unlink(arg);
}

/* Bring one stream up to date: send a changed result, or end it when the
 * figures are not current.  Returns -1 when the stream is gone. */
static int stream_update(struct stream *st)
{
	Externalscaler__IsActiveResponse resp = EXTERNALSCALER__IS_ACTIVE_RESPONSE__INIT;
	struct gp_poller_snap s;
	int rc;

	gp_poller_get(st->k->poller, (size_t)st->ask.queue, &s);
	if (!s.ok) {
		gp_grpc_finish(st->call, GP_GRPC_UNAVAILABLE, "%s", s.error);
		stream_unlink(st);
		return -1;
	}
	if (is_active(&st->ask, &s) == st->last)
		return 0;
	resp.result = is_active(&st->ask, &s);
	rc = gp_grpc_send(st->call, &resp.base);
	if (rc) {
		gp_grpc_finish(st->call, GP_GRPC_RESOURCE_EXHAUSTED,
			       "the client does not read its stream (%s)", strerror(-rc));
		stream_unlink(st);
		return -1;
	}
	st->last = resp.result;
	return 0;
}

static void stream_is_active_call(struct gp_grpc_call *call, const ProtobufCMessage *req,
				  void *arg)
{
	struct gp_keda *k = arg;
	struct stream *st;
	struct ask a;
	char err[1024];
	enum gp_grpc_status rc = resolve(k, (const Externalscaler__ScaledObjectRef *)req, &a, err,
					 sizeof err);

	if (rc) {
		gp_grpc_finish(call, rc, "%s", err);
		return;
	}
	st = calloc(1, sizeof *st);
	if (!st) {
		gp_grpc_finish(call, GP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	st->k = k;
	st->call = call;
	st->ask = a;
	st->last = -1;
	st->next = k->streams;
	if (k->streams)
		k->streams->prev = st;
	k->streams = st;
	gp_grpc_on_cancel(call, stream_cancelled, st);
	stream_update(st); /* the current state at once */
}

static void get_metric_spec_call(struct gp_grpc_call *call, const ProtobufCMessage *req,
				 void *arg)
{
	Externalscaler__GetMetricSpecResponse resp = EXTERNALSCALER__GET_METRIC_SPEC_RESPONSE__INIT;
	Externalscaler__MetricSpec spec = EXTERNALSCALER__METRIC_SPEC__INIT;
	Externalscaler__MetricSpec *specs[1] = {&spec};
	struct gp_poller_snap s;
	char err[1024], name[256];
	struct ask a;
	enum gp_grpc_status rc = resolve(arg, (const Externalscaler__ScaledObjectRef *)req, &a,
					 err, sizeof err);

	if (rc) {
		gp_grpc_finish(call, rc, "%s", err);
		return;
	}
	/* The configuration alone: KEDA may ask before the broker answers. */
	gp_poller_get(((struct gp_keda *)arg)->poller, (size_t)a.queue, &s);
	metric_name(s.queue, &a, name, sizeof name);
	spec.metricname = name;
	/* A pool's metric is a replica count: with target 1 an AverageValue
	 * HPA asks for exactly that many replicas. */
	spec.targetsizefloat = a.pool != POOL_NONE ? 1.0 : s.queue->forecast.target;
	/* The integer field is for KEDA releases older than the float one. */
	spec.targetsize = (int64_t)ceil(spec.targetsizefloat);
	resp.n_metricspecs = 1;
	resp.metricspecs = specs;
	if (gp_grpc_send(call, &resp.base) != 0) {
		gp_grpc_finish(call, GP_GRPC_INTERNAL, "cannot queue the reply");
		return;
	}
	gp_grpc_finish(call, GP_GRPC_OK, NULL);
}

static void get_metrics_call(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Externalscaler__GetMetricsRequest *r = (const Externalscaler__GetMetricsRequest *)req;
	Externalscaler__GetMetricsResponse resp = EXTERNALSCALER__GET_METRICS_RESPONSE__INIT;
	Externalscaler__MetricValue mv = EXTERNALSCALER__METRIC_VALUE__INIT;
	Externalscaler__MetricValue *values[1] = {&mv};
	struct gp_poller_snap s;
	char err[1024], name[256];
	struct ask a;
	enum gp_grpc_status rc = resolve(arg, r->scaledobjectref, &a, err, sizeof err);

	if (rc) {
		gp_grpc_finish(call, rc, "%s", err);
		return;
	}
	if (current(arg, call, &a, &s))
		return;
	metric_name(s.queue, &a, name, sizeof name);
	/* KEDA asks by the name GetMetricSpec gave, less its "sN-" prefix. */
	mv.metricname = r->metricname && *r->metricname ? r->metricname : name;
	if (a.pool != POOL_NONE)
		mv.metricvaluefloat = (double)pool_desired(&a, &s);
	else
		mv.metricvaluefloat =
			a.metric == SATURATION ? s.fc.saturation : s.fc.forecast_saturation;
	mv.metricvalue = (int64_t)llround(mv.metricvaluefloat);
	resp.n_metricvalues = 1;
	resp.metricvalues = values;
	if (gp_grpc_send(call, &resp.base) != 0) {
		gp_grpc_finish(call, GP_GRPC_INTERNAL, "cannot queue the reply");
		return;
	}
	gp_grpc_finish(call, GP_GRPC_OK, NULL);
}

const struct gp_grpc_method gp_keda_methods[] = {
	{"/externalscaler.ExternalScaler/IsActive", &externalscaler__scaled_object_ref__descriptor,
	 &externalscaler__is_active_response__descriptor, 0, is_active_call},
	{"/externalscaler.ExternalScaler/StreamIsActive",
	 &externalscaler__scaled_object_ref__descriptor,
	 &externalscaler__is_active_response__descriptor, 1, stream_is_active_call},
	{"/externalscaler.ExternalScaler/GetMetricSpec",
	 &externalscaler__scaled_object_ref__descriptor,
	 &externalscaler__get_metric_spec_response__descriptor, 0, get_metric_spec_call},
	{"/externalscaler.ExternalScaler/GetMetrics",
	 &externalscaler__get_metrics_request__descriptor,
	 &externalscaler__get_metrics_response__descriptor, 0, get_metrics_call},
	{NULL, NULL, NULL, 0, NULL},
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gp_keda *k = arg;
	struct stream *st = k->streams, *next;

	(void)fd, (void)what;
	for (; st; st = next) {
		next = st->next;
		stream_update(st);
	}
}

int gp_keda_new(struct gp_keda **out, struct gp_poller *p, struct event_base *base)
{
	struct gp_keda *k = calloc(1, sizeof *k);
	struct timeval tv = {.tv_sec = 0, .tv_usec = TICK_MS * 1000};

	if (!k)
		return -ENOMEM;
	k->poller = p;
	k->tick = event_new(base, -1, EV_PERSIST, on_tick, k);
	if (!k->tick || event_add(k->tick, &tv) != 0) {
		gp_keda_free(k);
		return -ENOMEM;
	}
	*out = k;
	return 0;
}

void gp_keda_free(struct gp_keda *k)
{
	if (!k)
		return;
	while (k->streams) /* only if the gRPC server was not stopped first */
		stream_unlink(k->streams);
	if (k->tick)
		event_free(k->tick);
	free(k);
}
