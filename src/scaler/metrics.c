/* metrics.c - see metrics.h. */
#include "scaler/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "scaler/poller.h"

typedef double (*getter)(const struct gp_poller_snap *s);

#define GETTER(fn, expr)                                                        \
	static double fn(const struct gp_poller_snap *s)                         \
	{                                                                        \
		return (double)(expr);                                           \
	}

GETTER(up, s->ok)
GETTER(saturation, s->fc.saturation)
GETTER(forecast_saturation, s->fc.forecast_saturation)
GETTER(desired_replicas, s->fc.desired_replicas)
GETTER(ready, s->raw.ready)
GETTER(unacked, s->raw.unacked)
GETTER(consumers, s->raw.consumers)
GETTER(publish_rate, s->raw.publish_rate)
GETTER(ack_rate, s->raw.ack_rate + s->raw.deliver_no_ack_rate)
GETTER(arrival_rate, s->fc.arrival_rate)
GETTER(arrival_forecast, s->fc.arrival_forecast)
GETTER(holding, s->fc.holding_s)
GETTER(target, s->queue->forecast.target)
GETTER(prefetch, s->queue->prefetch)
GETTER(warmup, s->queue->forecast.horizon_s)
GETTER(last_ok, (double)s->ok_wall_ns / 1e9)

enum shown {
	WHEN_OK,        /* only while the queue's figures are current */
	ALWAYS,         /* configuration and health */
	ONCE_POLLED,    /* after a first good poll */
};

static const struct family {
	const char *name;
	const char *help;
	enum shown shown;
	getter get;
} families[] = {
	{"gpupool_scaler_up", "1 if the queue's figures are current, 0 if RabbitMQ could not be "
			      "polled or answered garbage", ALWAYS, up},
	{"gpupool_scaler_saturation", "Consumer saturation: unacked messages / (consumers x "
				      "prefetch); 1 with no consumers and messages waiting",
	 WHEN_OK, saturation},
	{"gpupool_scaler_forecast_saturation", "Saturation the demand forecast one warm-up "
					       "horizon ahead puts on the ready replicas",
	 WHEN_OK, forecast_saturation},
	{"gpupool_scaler_desired_replicas", "Replicas that keep the forecast saturation at or "
					    "under the target", WHEN_OK, desired_replicas},
	{"gpupool_scaler_messages_ready", "Messages waiting in the queue (messages_ready)",
	 WHEN_OK, ready},
	{"gpupool_scaler_messages_unacknowledged", "Messages held by consumers "
						   "(messages_unacknowledged)", WHEN_OK, unacked},
	{"gpupool_scaler_consumers", "Consumers of the queue", WHEN_OK, consumers},
	{"gpupool_scaler_publish_rate", "Messages published per second, as RabbitMQ reports it",
	 WHEN_OK, publish_rate},
	{"gpupool_scaler_ack_rate", "Messages acknowledged (or delivered to auto-ack consumers) "
				    "per second", WHEN_OK, ack_rate},
	{"gpupool_scaler_arrival_rate", "Smoothed arrival rate behind the forecast, messages "
					"per second", WHEN_OK, arrival_rate},
	{"gpupool_scaler_arrival_forecast", "Arrival rate forecast one warm-up horizon ahead, "
					    "messages per second", WHEN_OK, arrival_forecast},
	{"gpupool_scaler_holding_seconds", "Smoothed time a message stays unacknowledged",
	 WHEN_OK, holding},
	{"gpupool_scaler_target", "Saturation target of the queue", ALWAYS, target},
	{"gpupool_scaler_prefetch", "Prefetch (basic.qos) of each consumer, as configured",
	 ALWAYS, prefetch},
	{"gpupool_scaler_warmup_seconds", "Warm-up horizon of the forecast", ALWAYS, warmup},
	{"gpupool_scaler_last_success_timestamp_seconds", "Wall time of the last good poll",
	 ONCE_POLLED, last_ok},
};

/* The pools of a hybrid queue (burst.h), in their `pool` label. */
static const char *const pool_names[] = {"onprem", "cloud"};

typedef double (*pool_getter)(const struct gp_poller_snap *s, int cloud);

static double pool_desired(const struct gp_poller_snap *s, int cloud)
{
	return cloud ? s->burst.cloud : s->burst.onprem;
}

static double pool_max(const struct gp_poller_snap *s, int cloud)
{
	return cloud ? s->queue->burst.cloud_max : s->queue->burst.onprem_max;
}

static double pool_warmup(const struct gp_poller_snap *s, int cloud)
{
	return cloud ? s->queue->burst.cloud_warmup_s : s->queue->forecast.horizon_s;
}

static double pool_cost(const struct gp_poller_snap *s, int cloud)
{
	return cloud ? s->queue->burst.cloud_cost : 1.0;
}

/* Written only when some queue has two pools, for that queue's pools. */
static const struct pool_family {
	const char *name;
	const char *help;
	enum shown shown;
	pool_getter get;
} pool_families[] = {
	{"gpupool_scaler_pool_desired_replicas", "Replicas wanted from each pool of a queue "
						 "consumed by an on-premises and a cloud pool",
	 WHEN_OK, pool_desired},
	{"gpupool_scaler_pool_max_replicas", "Ceiling of each pool: the on-premises capacity, "
					     "the cloud maximum", ALWAYS, pool_max},
	{"gpupool_scaler_pool_warmup_seconds", "How long a new worker of each pool takes to "
					       "serve", ALWAYS, pool_warmup},
	{"gpupool_scaler_pool_cost_factor", "Cost of a GPU-hour of each pool, in on-premises "
					    "GPU-hours", ALWAYS, pool_cost},
};

/* A label value, escaped as the text format wants. */
static void label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void labels(FILE *f, const struct gp_poller_snap *s)
{
	fputs("{vhost=\"", f);
	label(f, s->queue->vhost);
	fputs("\",queue=\"", f);
	label(f, s->queue->name);
	fputc('"', f);
}

static void value(FILE *f, double v)
{
	if (isnan(v))
		fputs(" NaN\n", f);
	else if (isinf(v))
		fputs(v > 0 ? " +Inf\n" : " -Inf\n", f);
	else
		fprintf(f, " %.10g\n", v);
}

int gp_scaler_metrics(struct gp_poller *p, char **out, size_t *len)
{
	size_t n = gp_poller_count(p);
	struct gp_poller_snap *snaps = calloc(n ? n : 1, sizeof *snaps);
	size_t hybrid = 0;
	FILE *f;

	if (!snaps)
		return -ENOMEM;
	/* One copy per queue, so that every family shows the same instant. */
	for (size_t i = 0; i < n; i++)
		gp_poller_get(p, i, &snaps[i]);
	f = open_memstream(out, len);
	if (!f) {
		free(snaps);
		return -ENOMEM;
	}
	for (size_t m = 0; m < sizeof families / sizeof *families; m++) {
		const struct family *fam = &families[m];
		fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", fam->name, fam->help, fam->name);
		for (size_t i = 0; i < n; i++) {
			const struct gp_poller_snap *s = &snaps[i];
			if ((fam->shown == WHEN_OK && !s->ok) ||
			    (fam->shown == ONCE_POLLED && !s->ok_wall_ns))
				continue;
			fputs(fam->name, f);
			labels(f, s);
			fputc('}', f);
			value(f, fam->get(s));
		}
	}
	for (size_t i = 0; i < n; i++)
		hybrid += snaps[i].queue->burst.onprem_max != 0;
	for (size_t m = 0; hybrid && m < sizeof pool_families / sizeof *pool_families; m++) {
		const struct pool_family *fam = &pool_families[m];
		fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", fam->name, fam->help, fam->name);
		for (size_t i = 0; i < n; i++) {
			const struct gp_poller_snap *s = &snaps[i];
			if (!s->queue->burst.onprem_max || (fam->shown == WHEN_OK && !s->ok))
				continue;
			for (int cloud = 0; cloud <= 1; cloud++) {
				fputs(fam->name, f);
				labels(f, s);
				fprintf(f, ",pool=\"%s\"}", pool_names[cloud]);
				value(f, fam->get(s, cloud));
			}
		}
	}
	fputs("# HELP gpupool_scaler_polls_total Polls of RabbitMQ by result\n"
	      "# TYPE gpupool_scaler_polls_total counter\n", f);
	for (size_t i = 0; i < n; i++) {
		for (int ok = 1; ok >= 0; ok--) {
			fputs("gpupool_scaler_polls_total", f);
			labels(f, &snaps[i]);
			fprintf(f, ",result=\"%s\"}", ok ? "ok" : "error");
			value(f, (double)(ok ? snaps[i].polls_ok : snaps[i].polls_failed));
		}
	}
	free(snaps);
	if (fclose(f) != 0) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}
