/* autoscale.c - the autoscaling benchmark: a discrete-event simulation of a
 * RabbitMQ queue feeding a pool of GPU workers that need a warm-up before they
 * serve, scaled by the Kubernetes HPA on four policies:
 *
 *   static      a fixed pool sized for the workload's peak (hindsight);
 *   keda-queue  KEDA's RabbitMQ scaler, QueueLength mode over HTTP (ready +
 *               unacked messages), AverageValue target per replica;
 *   threshold   consumer saturation (unacked / consumers x prefetch) as a
 *               Value metric with target 0.7;
 *   ours        forecast_saturation from src/scaler/forecast.h, the very
 *               code `gpupool scaler` serves, as a Value metric, target 0.7.
 *
 * The HPA is modelled as kube-controller-manager implements it (replica
 * calculator and behaviors): 15 s sync, 0.1 tolerance, Value metrics
 * multiplied by the ready pod count, AverageValue metrics divided by the
 * target, the scale-in stabilization window (the highest recommendation of
 * the last 300 s), the default scale-up rate limit (the larger of +100 % and
 * +4 pods per 15 s) and min/max replicas.  Metric values pass through the
 * milli-unit quantities the metrics API carries.
 *
 * The broker: messages wait FIFO; each worker holds one message at a time
 * (prefetch 1), so unacked = busy workers.  The management API's figures are
 * refreshed every 5 s (RabbitMQ's collect_statistics_interval) and rates are
 * the counts of the last interval divided by its length, as the management
 * plugin computes them.  Pods removed by a scale-in cancel their consumer and
 * finish the message they hold; warming pods are removed first, then idle
 * ones, then busy ones (newest first), as a ReplicaSet picks not-ready pods
 * first.  GPU time counts from a pod's creation (warming included) to its
 * end.
 *
 * Workloads: (a) a trace in the Azure LLM inference format
 * (TIMESTAMP,ContextTokens,GeneratedTokens), replayed as is; (b) a viral
 * surge: Poisson arrivals whose rate follows a shape given on the command
 * line, with token counts drawn from the trace; (c) the flash crowd: the
 * same surge with its rise and spike compressed to 1 s, a sudden step.
 * Service time = base + prefill x context tokens + decode x generated
 * tokens.
 *
 * The first --settle seconds are the policies' settling time: requests
 * arriving then are not scored and GPU time then is not counted.  Output: a
 * table on stdout and a JSON document (--json).
 */
#include "scaler/forecast.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 256              /* longest trace line accepted */
#define MAX_REQUESTS 20000000u    /* hard cap on requests per workload */
#define MAX_PODS 100000u          /* hard cap on pods created per run */
#define STATS_INTERVAL 5.0        /* RabbitMQ collect_statistics_interval */
#define HPA_TOLERANCE 0.1
#define SCALE_UP_PERIOD 15.0      /* default scale-up policies' period */

/* --- options -------------------------------------------------------------- */

struct opts {
	const char *trace;    /* CSV in the Azure format */
	const char *json;     /* where to write results; NULL = nowhere */
	FILE *timeline;       /* per-tick CSV of every run, or NULL */
	int run_trace, run_surge, run_flash;
	double slo;           /* a request waiting longer missed the SLO */
	double warmup;        /* pod creation to serving */
	double sync;          /* HPA sync period */
	double poll;          /* gpupool scaler's poll period */
	double settle;        /* unscored start */
	double target;        /* saturation target of threshold and ours */
	double keda_value;    /* KEDA QueueLength messages per replica */
	double stabilize;     /* HPA scale-in stabilization window */
	uint32_t min_replicas, max_replicas;
	double svc_base, svc_prefill, svc_decode; /* service-time model */
	uint64_t seed;
	struct shape {  /* the surge: rate multiples of `base` over phases */
		double base, lead, rise, rise_x, spike, peak, hold, fall, tail;
	} surge;
	/* ours: forecast.h knobs (defaults from gp_forecast_config_default) */
	struct gp_forecast_config fc;
};

/* --- workloads ------------------------------------------------------------ */

struct request {
	double t;   /* arrival, seconds from the workload's start */
	double svc; /* service time on one warm worker */
};

struct workload {
	const char *name;
	struct request *r;
	size_t n;
	double end;  /* last arrival */
};

struct tokens {
	uint32_t *ctx, *gen;
	size_t n;
};

/* Days from 1970-01-01 to a proleptic Gregorian date (the civil-calendar
 * count: shift the year to start in March so leap days come last). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD HH:MM:SS[.frac]" to seconds since the epoch.  Returns 0 or
 * -EINVAL. */
static int parse_timestamp(const char *s, double *out)
{
	int y, mo, d, h, mi, n = 0;
	double sec;

	if (sscanf(s, "%4d-%2d-%2d %2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    s[n] != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    !(sec >= 0.0 && sec < 61.0))
		return -EINVAL;
	*out = (double)days_from_civil(y, mo, d) * 86400.0 + h * 3600.0 + mi * 60.0 + sec;
	return 0;
}

/* A token count: decimal digits, at most 10^7. */
static int parse_tokens(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v > 10000000ul)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int cmp_request(const void *a, const void *b)
{
	double x = ((const struct request *)a)->t, y = ((const struct request *)b)->t;
	return (x > y) - (x < y);
}

static double service_time(const struct opts *o, uint32_t ctx, uint32_t gen)
{
	return o->svc_base + o->svc_prefill * ctx + o->svc_decode * gen;
}

/* Read a trace: a header line, then TIMESTAMP,ContextTokens,GeneratedTokens.
 * Fills `w` (times relative to the first arrival, sorted) and `tk` (the
 * token pairs, for the surge to draw from).  Returns 0, or -1 after printing
 * what is wrong and where. */
static int load_trace(const struct opts *o, struct workload *w, struct tokens *tk)
{
	FILE *f = fopen(o->trace, "r");
	char line[MAX_LINE + 2];
	size_t cap = 0, lineno = 0;
	double t0 = 0.0;
	int rc = -1;

	memset(w, 0, sizeof *w);
	memset(tk, 0, sizeof *tk);
	if (!f) {
		fprintf(stderr, "autoscale: --trace %s: %s\n", o->trace, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		size_t len = strlen(line);
		char *ts, *c, *g, *save = NULL;
		double t;
		uint32_t ctx, gen;

		lineno++;
		if (len > MAX_LINE || (len == sizeof line - 1 && line[len - 1] != '\n')) {
			fprintf(stderr, "autoscale: %s:%zu: line longer than %d bytes\n", o->trace,
				lineno, MAX_LINE);
			goto out;
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (lineno == 1 && strncmp(line, "TIMESTAMP", 9) == 0)
			continue;
		if (len == 0)
			continue;
		ts = strtok_r(line, ",", &save);
		c = strtok_r(NULL, ",", &save);
		g = strtok_r(NULL, ",", &save);
		if (!ts || !c || !g || strtok_r(NULL, ",", &save) || parse_timestamp(ts, &t) ||
		    parse_tokens(c, &ctx) || parse_tokens(g, &gen)) {
			fprintf(stderr,
				"autoscale: %s:%zu: expected TIMESTAMP,ContextTokens,GeneratedTokens "
				"(YYYY-MM-DD HH:MM:SS.frac, two counts)\n",
				o->trace, lineno);
			goto out;
		}
		if (w->n == MAX_REQUESTS) {
			fprintf(stderr, "autoscale: %s: more than %u requests\n", o->trace,
				MAX_REQUESTS);
			goto out;
		}
		if (w->n == cap) {
			cap = cap ? cap * 2 : 4096;
			w->r = realloc(w->r, cap * sizeof *w->r);
			tk->ctx = realloc(tk->ctx, cap * sizeof *tk->ctx);
			tk->gen = realloc(tk->gen, cap * sizeof *tk->gen);
			if (!w->r || !tk->ctx || !tk->gen) {
				fprintf(stderr, "autoscale: out of memory\n");
				exit(1);
			}
		}
		w->r[w->n] = (struct request){.t = t, .svc = service_time(o, ctx, gen)};
		tk->ctx[w->n] = ctx;
		tk->gen[w->n] = gen;
		w->n++;
	}
	if (ferror(f)) {
		fprintf(stderr, "autoscale: %s: read error\n", o->trace);
		goto out;
	}
	if (w->n < 2) {
		fprintf(stderr, "autoscale: %s: fewer than two requests\n", o->trace);
		goto out;
	}
	qsort(w->r, w->n, sizeof *w->r, cmp_request);
	t0 = w->r[0].t;
	for (size_t i = 0; i < w->n; i++)
		w->r[i].t -= t0;
	w->end = w->r[w->n - 1].t;
	w->name = "trace";
	tk->n = w->n;
	rc = 0;
out:
	fclose(f);
	return rc;
}

/* splitmix64: a small, fast, well-mixed generator; enough for arrivals. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double rng_unit(uint64_t *s)
{
	return ((double)(rng_next(s) >> 11) + 1.0) / 9007199254740992.0;
}

/* The surge's arrival rate at time t, req/s: base for `lead`; growing
 * exponentially to rise_x times base over `rise`; on to `peak` times base
 * over `spike`; holding there for `hold`; decaying exponentially back to base
 * over `fall`; base for `tail`. */
static double surge_rate(const struct shape *sh, double t)
{
	const struct {
		double len, from, to;
	} ph[] = {
		{sh->lead, 1.0, 1.0},
		{sh->rise, 1.0, sh->rise_x},
		{sh->spike, sh->rise_x, sh->peak},
		{sh->hold, sh->peak, sh->peak},
		{sh->fall, sh->peak, 1.0},
		{sh->tail, 1.0, 1.0},
	};
	for (size_t i = 0; i < sizeof ph / sizeof *ph; i++) {
		if (t < ph[i].len)
			return sh->base * ph[i].from * pow(ph[i].to / ph[i].from, t / ph[i].len);
		t -= ph[i].len;
	}
	return 0.0;
}

/* Generate a surge by thinning a Poisson process at the highest rate; token
 * pairs are drawn uniformly from the trace. */
static int make_surge(const struct opts *o, const struct shape *sh, const char *name,
		      const struct tokens *tk, struct workload *w)
{
	double len = sh->lead + sh->rise + sh->spike + sh->hold + sh->fall + sh->tail;
	double peak = sh->base * fmax(fmax(sh->peak, sh->rise_x), 1.0);
	uint64_t rng = o->seed;
	size_t cap = 0;
	double t = 0.0;

	memset(w, 0, sizeof *w);
	w->name = name;
	for (;;) {
		t += -log(rng_unit(&rng)) / peak;
		if (t >= len)
			break;
		if (rng_unit(&rng) * peak > surge_rate(sh, t))
			continue;
		if (w->n == MAX_REQUESTS) {
			fprintf(stderr, "autoscale: the %s has more than %u requests; lower "
					"--surge-base\n", name, MAX_REQUESTS);
			return -1;
		}
		if (w->n == cap) {
			cap = cap ? cap * 2 : 4096;
			w->r = realloc(w->r, cap * sizeof *w->r);
			if (!w->r) {
				fprintf(stderr, "autoscale: out of memory\n");
				exit(1);
			}
		}
		size_t k = rng_next(&rng) % tk->n;
		w->r[w->n++] = (struct request){.t = t, .svc = service_time(o, tk->ctx[k], tk->gen[k])};
	}
	if (w->n < 2) {
		fprintf(stderr, "autoscale: the %s has fewer than two requests\n", name);
		return -1;
	}
	w->end = w->r[w->n - 1].t;
	return 0;
}

/* The offered load (busy workers needed on average) of the busiest `win`
 * seconds, windows sliding in 1 s steps. */
static double peak_load(const struct workload *w, double win)
{
	double best = 0.0, sum = 0.0;
	size_t lo = 0;

	for (size_t hi = 0; hi < w->n; hi++) {
		sum += w->r[hi].svc;
		while (w->r[lo].t < w->r[hi].t - win)
			sum -= w->r[lo++].svc;
		if (w->r[hi].t >= win && sum / win > best)
			best = sum / win;
	}
	return best;
}

/* Mean offered load over [0, len). */
static double mean_load(const struct workload *w, double len)
{
	double sum = 0.0;
	for (size_t i = 0; i < w->n && w->r[i].t < len; i++)
		sum += w->r[i].svc;
	return sum / len;
}

/* --- the simulated pool ---------------------------------------------------- */

enum pod_state { POD_WARMING, POD_IDLE, POD_BUSY, POD_GONE };

struct pod {
	enum pod_state st;
	int draining;       /* removed by a scale-in: finishes, takes nothing */
	double created;
	double ready_at;    /* end of warm-up */
	uint32_t gen;       /* invalidates stale heap events */
};

struct event {
	double t;
	uint32_t pod, gen;
};

/* The HPA's memory: recommendations (for stabilization) and scale events
 * (for rate limits). */
struct hpa_rec {
	double t;
	int64_t replicas;
};

enum metric_type { METRIC_VALUE, METRIC_AVERAGE_VALUE };

struct sim;

/* A policy: how the HPA is fed (or not, for static). */
struct policy {
	const char *name;
	int autoscaled;
	enum metric_type type;
	double (*target)(const struct opts *o);
	double (*metric)(struct sim *s);    /* read at each HPA sync */
};

struct broker_view {  /* the management API's figures at the last refresh */
	uint64_t ready, unacked;
	uint32_t consumers;
	double publish_rate, ack_rate;
};

struct sim {
	const struct opts *o;
	const struct workload *w;
	const struct policy *p;

	struct pod *pods;
	size_t npods, cap_pods;
	uint32_t *idle;     /* stack of idle pod ids */
	size_t nidle;
	struct event *heap; /* warm-ups and completions, by time */
	size_t nheap, cap_heap;

	size_t next;        /* next request to arrive */
	size_t qhead;       /* oldest waiting request: [qhead, next) wait */
	uint64_t busy;      /* pods holding a message */
	uint64_t warm;      /* ready pods, not draining */
	uint64_t spec;      /* pods not draining: the Deployment's replicas */

	uint64_t published, acked;         /* broker counters */
	uint64_t published_prev, acked_prev;
	struct broker_view view;

	struct hpa_rec recs[512];          /* recommendations, oldest first */
	size_t nrecs;
	struct hpa_rec events[512];        /* scale changes (+ up, - down) */
	size_t nevents;

	struct gp_forecast *fc;            /* ours */
	struct gp_forecast_out fc_out;

	/* results */
	double *waits;
	size_t nwaits;
	double gpu_s;       /* pod-seconds after settle */
	uint64_t max_pods;
	double t_end;
};

static void heap_push(struct sim *s, double t, uint32_t pod)
{
	size_t i;

	if (s->nheap == s->cap_heap) {
		s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 256;
		s->heap = realloc(s->heap, s->cap_heap * sizeof *s->heap);
		if (!s->heap) {
			fprintf(stderr, "autoscale: out of memory\n");
			exit(1);
		}
	}
	i = s->nheap++;
	while (i > 0 && s->heap[(i - 1) / 2].t > t) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = (struct event){t, pod, s->pods[pod].gen};
}

static struct event heap_pop(struct sim *s)
{
	struct event top = s->heap[0], last = s->heap[--s->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && s->heap[c + 1].t < s->heap[c].t)
			c++;
		if (s->heap[c].t >= last.t)
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nheap)
		s->heap[i] = last;
	return top;
}

/* Account a pod's GPU time, the part after the settling period. */
static void charge(struct sim *s, const struct pod *p, double until)
{
	double from = fmax(p->created, s->o->settle);
	if (until > from)
		s->gpu_s += until - from;
}

static void pod_end(struct sim *s, uint32_t id, double t)
{
	charge(s, &s->pods[id], t);
	s->pods[id].st = POD_GONE;
	s->pods[id].gen++;
}

/* Hand the oldest waiting message to pod `id` (idle, warm, not draining). */
static void start(struct sim *s, uint32_t id, double t)
{
	const struct request *r = &s->w->r[s->qhead];
	double wait = t - r->t;

	if (r->t >= s->o->settle)
		s->waits[s->nwaits++] = wait;
	s->qhead++;
	s->busy++;
	s->pods[id].st = POD_BUSY;
	heap_push(s, t + r->svc, id);
}

/* A pod is free (warm-up done, or a message acked): take the next message or
 * go idle. */
static void pod_free(struct sim *s, uint32_t id, double t)
{
	if (s->qhead < s->next) {
		start(s, id, t);
	} else {
		s->pods[id].st = POD_IDLE;
		s->idle[s->nidle++] = id;
	}
}

static void pod_create(struct sim *s, double t, int warm)
{
	uint32_t id;

	if (s->npods == MAX_PODS) {
		fprintf(stderr, "autoscale: more than %u pods created; lower --max\n", MAX_PODS);
		exit(1);
	}
	if (s->npods == s->cap_pods) {
		s->cap_pods = s->cap_pods ? s->cap_pods * 2 : 256;
		s->pods = realloc(s->pods, s->cap_pods * sizeof *s->pods);
		s->idle = realloc(s->idle, s->cap_pods * sizeof *s->idle);
		if (!s->pods || !s->idle) {
			fprintf(stderr, "autoscale: out of memory\n");
			exit(1);
		}
	}
	id = (uint32_t)s->npods++;
	s->pods[id] = (struct pod){.st = POD_WARMING, .created = t, .ready_at = t + s->o->warmup};
	s->spec++;
	if (warm) {
		s->pods[id].ready_at = t;
		s->warm++;
		pod_free(s, id, t);
	} else {
		heap_push(s, s->pods[id].ready_at, id);
	}
}

/* Remove one pod, in the order a ReplicaSet deletes them: not ready first,
 * then idle, then busy; newest first within each.  Returns 0, or -1 if none
 * is left to remove. */
static int pod_remove(struct sim *s, double t)
{
	static const enum pod_state order[] = {POD_WARMING, POD_IDLE, POD_BUSY};

	for (size_t k = 0; k < sizeof order / sizeof *order; k++) {
		for (size_t i = s->npods; i-- > 0;) {
			struct pod *p = &s->pods[i];
			if (p->st != order[k] || p->draining)
				continue;
			s->spec--;
			if (p->st == POD_WARMING) {
				pod_end(s, (uint32_t)i, t);
			} else if (p->st == POD_IDLE) {
				for (size_t j = 0; j < s->nidle; j++) {
					if (s->idle[j] == i) {
						s->idle[j] = s->idle[--s->nidle];
						break;
					}
				}
				s->warm--;
				pod_end(s, (uint32_t)i, t);
			} else {
				p->draining = 1; /* ends when its message is acked */
				s->warm--;
			}
			return 0;
		}
	}
	return -1;
}

static void scale_to(struct sim *s, uint64_t n, double t)
{
	while (s->spec < n)
		pod_create(s, t, 0);
	while (s->spec > n && pod_remove(s, t) == 0)
		;
	if (s->spec > s->max_pods)
		s->max_pods = s->spec;
}

/* --- the metrics each policy reads --------------------------------------- */

/* Refresh the management API's figures (every STATS_INTERVAL). */
static void broker_refresh(struct sim *s)
{
	s->view.ready = s->next - s->qhead;
	s->view.unacked = s->busy;
	s->view.consumers = (uint32_t)s->warm;
	s->view.publish_rate = (double)(s->published - s->published_prev) / STATS_INTERVAL;
	s->view.ack_rate = (double)(s->acked - s->acked_prev) / STATS_INTERVAL;
	s->published_prev = s->published;
	s->acked_prev = s->acked;
}

/* gpupool scaler's poll: one observation into the forecast. */
static void ours_poll(struct sim *s, double t)
{
	struct gp_forecast_obs ob = {
		.t_s = t,
		.ready = s->view.ready,
		.unacked = s->view.unacked,
		.consumers = s->view.consumers,
		.prefetch = 1,
		.publish_rate = s->view.publish_rate,
		.ack_rate = s->view.ack_rate,
		.replicas = -1, /* the daemon does not watch the Deployment */
	};
	gp_forecast_update(s->fc, &ob, &s->fc_out);
}

static double metric_none(struct sim *s)
{
	(void)s;
	return 0.0;
}

static double metric_queue_length(struct sim *s)
{
	return (double)(s->view.ready + s->view.unacked);
}

static double metric_saturation(struct sim *s)
{
	struct gp_forecast_obs ob = {
		.ready = s->view.ready,
		.unacked = s->view.unacked,
		.consumers = s->view.consumers,
		.prefetch = 1,
	};
	return gp_forecast_saturation(&ob);
}

static double metric_forecast(struct sim *s)
{
	return s->fc_out.forecast_saturation;
}

static double target_none(const struct opts *o)
{
	(void)o;
	return 1.0;
}

static double target_keda(const struct opts *o)
{
	return o->keda_value;
}

static double target_saturation(const struct opts *o)
{
	return o->target;
}

static const struct policy policies[] = {
	{"static", 0, METRIC_VALUE, target_none, metric_none},
	{"keda-queue", 1, METRIC_AVERAGE_VALUE, target_keda, metric_queue_length},
	{"threshold", 1, METRIC_VALUE, target_saturation, metric_saturation},
	{"ours", 1, METRIC_VALUE, target_saturation, metric_forecast},
};
#define NPOLICIES (sizeof policies / sizeof *policies)

/* --- the HPA ---------------------------------------------------------------- */

/* A metric as the external metrics API carries it: a milli-quantity. */
static double milli(double v)
{
	return floor(v * 1000.0) / 1000.0;
}

/* The replica calculator: the proposal before behaviors. */
static int64_t hpa_proposal(struct sim *s)
{
	double m = milli(s->p->metric(s)), target = s->p->target(s->o);
	int64_t cur = (int64_t)s->spec;

	if (s->p->type == METRIC_VALUE) {
		double ratio = m / target;
		if (cur == 0)
			return (int64_t)ceil(ratio);
		if (fabs(1.0 - ratio) <= HPA_TOLERANCE)
			return cur;
		return (int64_t)ceil(ratio * (double)s->warm);
	}
	/* AverageValue: against status.replicas (warming pods included). */
	if (cur > 0 && fabs(1.0 - m / (target * (double)cur)) <= HPA_TOLERANCE)
		return cur;
	return (int64_t)ceil(m / target);
}

/* One sync: proposal, stabilization, rate limits, min/max, then scale. */
static void hpa_sync(struct sim *s, double t)
{
	const struct opts *o = s->o;
	int64_t cur = (int64_t)s->spec, prop = hpa_proposal(s), up = prop, down = prop, rec;
	int64_t added = 0, deleted = 0;
	size_t k = 0;

	/* Keep the recommendations of the window, plus this one. */
	for (size_t i = 0; i < s->nrecs; i++)
		if (s->recs[i].t > t - o->stabilize)
			s->recs[k++] = s->recs[i];
	s->nrecs = k;
	for (size_t i = 0; i < s->nrecs; i++)
		if (s->recs[i].replicas > down)
			down = s->recs[i].replicas;
	if (s->nrecs < sizeof s->recs / sizeof *s->recs)
		s->recs[s->nrecs++] = (struct hpa_rec){t, prop};

	/* Scale up at once (window 0: up = the proposal); scale in only to the
	 * highest recommendation of the window. */
	rec = cur;
	if (rec < up)
		rec = up;
	if (rec > down)
		rec = down;

	k = 0;
	for (size_t i = 0; i < s->nevents; i++)
		if (s->events[i].t > t - SCALE_UP_PERIOD)
			s->events[k++] = s->events[i];
	s->nevents = k;
	for (size_t i = 0; i < s->nevents; i++) {
		if (s->events[i].replicas > 0)
			added += s->events[i].replicas;
		else
			deleted -= s->events[i].replicas;
	}
	if (rec > cur) {
		int64_t start = cur - added + deleted;
		int64_t limit = start * 2 > start + 4 ? start * 2 : start + 4;
		if (limit < cur)
			limit = cur;
		if (limit > o->max_replicas)
			limit = o->max_replicas;
		if (rec > limit)
			rec = limit;
	} else if (rec < cur) {
		/* The default scale-down policy (100 % per 15 s) limits nothing. */
		if (rec < o->min_replicas)
			rec = o->min_replicas;
	}
	if (rec != cur) {
		if (s->nevents < sizeof s->events / sizeof *s->events)
			s->events[s->nevents++] = (struct hpa_rec){t, rec - cur};
		scale_to(s, (uint64_t)rec, t);
	}
}

/* --- the run ---------------------------------------------------------------- */

struct result {
	const char *workload, *policy;
	size_t requests, missed;
	double gpu_hours, p50, p99, max_wait;
	uint64_t max_pods, static_pods;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *v, size_t n, double q)
{
	size_t k;

	if (n == 0)
		return 0.0;
	k = (size_t)ceil(q * (double)n);
	return v[k ? k - 1 : 0];
}

/* Simulate workload `w` under policy `p`.  `initial` pods start warm; for
 * static that is the whole pool. */
static void run(const struct opts *o, const struct workload *w, const struct policy *p,
		uint64_t initial, struct result *res)
{
	struct sim s = {.o = o, .w = w, .p = p};
	double tick = 0.0;
	uint64_t ticks = 0;
	uint64_t sync_every = (uint64_t)llround(o->sync / STATS_INTERVAL);
	uint64_t poll_every = (uint64_t)llround(o->poll / STATS_INTERVAL);

	s.waits = malloc(w->n * sizeof *s.waits);
	if (!s.waits) {
		fprintf(stderr, "autoscale: out of memory\n");
		exit(1);
	}
	if (gp_forecast_new(&s.fc, &o->fc) != 0) {
		fprintf(stderr, "autoscale: bad forecast configuration\n");
		exit(1);
	}
	for (uint64_t i = 0; i < initial; i++)
		pod_create(&s, 0.0, 1);
	s.max_pods = s.spec;
	/* The HPA seeds its scale-in window with the replicas it finds, so a
	 * fresh controller does not scale in on its first sample. */
	s.recs[s.nrecs++] = (struct hpa_rec){0.0, (int64_t)initial};

	for (;;) {
		double ta = s.next < w->n ? w->r[s.next].t : INFINITY;
		double te = s.nheap ? s.heap[0].t : INFINITY;

		if (s.next == w->n && s.qhead == w->n && s.busy == 0)
			break;
		if (te <= ta && te <= tick) {
			struct event e = heap_pop(&s);
			struct pod *pd = &s.pods[e.pod];
			if (e.gen != pd->gen)
				continue;
			if (pd->st == POD_WARMING) {
				s.warm++;
				pod_free(&s, e.pod, e.t);
			} else { /* a completion */
				s.busy--;
				s.acked++;
				if (pd->draining)
					pod_end(&s, e.pod, e.t);
				else
					pod_free(&s, e.pod, e.t);
			}
			s.t_end = e.t;
		} else if (ta <= tick) {
			s.next++;
			s.published++;
			if (s.nidle)
				start(&s, s.idle[--s.nidle], ta);
		} else {
			broker_refresh(&s);
			if (ticks % poll_every == 0)
				ours_poll(&s, tick);
			if (o->timeline)
				fprintf(o->timeline, "%s,%s,%.0f,%llu,%llu,%llu,%llu,%.3f,%.3f,%.3f,%u\n",
					w->name, p->name, tick, (unsigned long long)s.spec,
					(unsigned long long)s.warm, (unsigned long long)s.view.unacked,
					(unsigned long long)s.view.ready, s.view.publish_rate,
					metric_saturation(&s), s.fc_out.forecast_saturation,
					s.fc_out.desired_replicas);
			if (p->autoscaled && ticks > 0 && ticks % sync_every == 0)
				hpa_sync(&s, tick);
			ticks++;
			tick = (double)ticks * STATS_INTERVAL;
		}
	}
	for (size_t i = 0; i < s.npods; i++)
		if (s.pods[i].st != POD_GONE)
			charge(&s, &s.pods[i], s.t_end);

	qsort(s.waits, s.nwaits, sizeof *s.waits, cmp_double);
	*res = (struct result){
		.workload = w->name,
		.policy = p->name,
		.requests = s.nwaits,
		.gpu_hours = s.gpu_s / 3600.0,
		.p50 = percentile(s.waits, s.nwaits, 0.50),
		.p99 = percentile(s.waits, s.nwaits, 0.99),
		.max_wait = s.nwaits ? s.waits[s.nwaits - 1] : 0.0,
		.max_pods = s.max_pods,
		.static_pods = p->autoscaled ? 0 : initial,
	};
	for (size_t i = 0; i < s.nwaits; i++)
		res->missed += s.waits[i] > o->slo;
	gp_forecast_free(s.fc);
	free(s.waits);
	free(s.pods);
	free(s.idle);
	free(s.heap);
}

/* --- reporting -------------------------------------------------------------- */

/* Percent reduction of `ours` against `base` (positive = ours is lower). */
static double reduction(double ours, double base)
{
	if (base == 0.0)
		return ours == 0.0 ? 0.0 : -INFINITY;
	return 100.0 * (base - ours) / base;
}

static json_t *result_json(const struct result *r)
{
	json_t *j = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:I}", "policy", r->policy,
			      "requests", (json_int_t)r->requests, "slo_missed",
			      (json_int_t)r->missed, "slo_missed_pct",
			      r->requests ? 100.0 * (double)r->missed / (double)r->requests : 0.0,
			      "gpu_hours", r->gpu_hours, "p50_wait_s", r->p50, "p99_wait_s", r->p99,
			      "max_wait_s", r->max_wait, "max_pods", (json_int_t)r->max_pods);
	if (r->static_pods)
		json_object_set_new(j, "static_pods", json_integer((json_int_t)r->static_pods));
	return j;
}

/* Number for JSON: a finite value, or null. */
static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* Print the table of one workload and the targets' verdicts; return its JSON. */
static json_t *report(const struct opts *o, const struct workload *w, const struct result *r,
		      double peak, double mean)
{
	const struct result *st = &r[0], *keda = &r[1], *thr = &r[2], *ours = &r[3];
	double vs_keda = reduction((double)ours->missed, (double)keda->missed);
	double vs_static = reduction(ours->gpu_hours, st->gpu_hours);
	double vs_thr_miss = reduction((double)ours->missed, (double)thr->missed);
	double vs_thr_gpu = reduction(ours->gpu_hours, thr->gpu_hours);
	int t1 = vs_keda >= 85.0, t2 = vs_static >= 55.0;
	int t3 = ours->missed < thr->missed && ours->gpu_hours <= thr->gpu_hours;
	int tie = ours->missed == 0 && thr->missed == 0 && ours->gpu_hours <= thr->gpu_hours;
	json_t *rows = json_array(), *doc;

	printf("\n%s: %zu requests over %.0f s, offered load mean %.1f / peak(60 s) %.1f "
	       "GPUs; scored after %.0f s\n",
	       w->name, w->n, w->end, mean, peak, o->settle);
	printf("%-11s %9s %10s %8s %10s %10s %10s %8s\n", "policy", "requests", "SLO-missed",
	       "missed%", "GPU-hours", "p50-wait", "p99-wait", "max-pods");
	for (size_t i = 0; i < NPOLICIES; i++) {
		printf("%-11s %9zu %10zu %7.2f%% %10.2f %9.2fs %9.2fs %8llu\n", r[i].policy,
		       r[i].requests, r[i].missed,
		       r[i].requests ? 100.0 * (double)r[i].missed / (double)r[i].requests : 0.0,
		       r[i].gpu_hours, r[i].p50, r[i].p99, (unsigned long long)r[i].max_pods);
		json_array_append_new(rows, result_json(&r[i]));
	}
	printf("ours vs keda-queue: %.1f %% fewer SLO misses (target >= 85 %%): %s\n", vs_keda,
	       t1 ? "met" : "MISSED");
	printf("ours vs static:     %.1f %% fewer GPU-hours (target >= 55 %%): %s\n", vs_static,
	       t2 ? "met" : "MISSED");
	printf("ours vs threshold:  %.1f %% fewer SLO misses, %.1f %% fewer GPU-hours "
	       "(target: fewer misses, no more GPU-hours): %s\n",
	       vs_thr_miss, vs_thr_gpu,
	       t3 ? "met"
	       : tie ? "MISSED (a tie: neither misses a request)"
		     : "MISSED");

	doc = json_pack("{s:s, s:I, s:f, s:f, s:f, s:o}", "workload", w->name, "requests",
			(json_int_t)w->n, "duration_s", w->end, "offered_load_mean", mean,
			"offered_load_peak_60s", peak, "policies", rows);
	json_object_set_new(doc, "targets",
			    json_pack("{s:o, s:b, s:o, s:b, s:o, s:o, s:b}",
				      "vs_keda_slo_miss_reduction_pct", num(vs_keda),
				      "vs_keda_met", t1, "vs_static_gpu_hour_reduction_pct",
				      num(vs_static), "vs_static_met", t2,
				      "vs_threshold_slo_miss_reduction_pct", num(vs_thr_miss),
				      "vs_threshold_gpu_hour_reduction_pct", num(vs_thr_gpu),
				      "vs_threshold_met", t3));
	if (tie)
		json_object_set_new(json_object_get(doc, "targets"), "vs_threshold_note",
				    json_string("tie: neither policy misses a request"));
	return doc;
}

/* Run all policies on one workload. */
static json_t *bench_workload(const struct opts *o, const struct workload *w)
{
	struct result r[NPOLICIES];
	double peak = peak_load(w, 60.0), first = mean_load(w, fmin(o->settle, w->end));
	uint64_t static_pods = (uint64_t)ceil(peak / o->target - 1e-9);
	uint64_t initial = (uint64_t)ceil(first / o->target - 1e-9);

	if (static_pods < o->min_replicas)
		static_pods = o->min_replicas;
	if (initial < o->min_replicas)
		initial = o->min_replicas;
	if (initial > o->max_replicas)
		initial = o->max_replicas;
	for (size_t i = 0; i < NPOLICIES; i++)
		run(o, w, &policies[i], policies[i].autoscaled ? initial : static_pods, &r[i]);
	return report(o, w, r, peak, mean_load(w, w->end));
}

/* --- command line ----------------------------------------------------------- */

static const char usage_text[] =
	"usage: autoscale [options]\n"
	"\n"
	"Simulate a RabbitMQ queue feeding GPU workers that warm up before serving,\n"
	"scaled by the Kubernetes HPA on four policies (static peak, KEDA queue\n"
	"length, saturation threshold, gpupool's forecast), on a replayed trace and\n"
	"on a synthetic viral surge.  Prints a table per workload; --json writes\n"
	"the figures.\n"
	"\n"
	"workloads:\n"
	"  --trace FILE        CSV TIMESTAMP,ContextTokens,GeneratedTokens (default\n"
	"                      ../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv);\n"
	"                      the surge draws its token counts from it too\n"
	"  --no-trace          skip the trace replay\n"
	"  --no-surge          skip the surge\n"
	"  --no-flash          skip the flash crowd: the surge with its rise and\n"
	"                      spike compressed to 1 s each (a sudden step)\n"
	"  --surge-base R      surge base rate, requests/s (default 2)\n"
	"  --surge-lead S      seconds at base before the rise (1800)\n"
	"  --surge-rise S      seconds over which the rate grows to rise-x times base (10800)\n"
	"  --surge-rise-x X    growth over the rise (3)\n"
	"  --surge-spike S     seconds from rise-x to peak times base (1200)\n"
	"  --surge-peak X      peak, times base (7)\n"
	"  --surge-hold S      seconds at the peak (1800)\n"
	"  --surge-fall S      seconds of exponential decay back to base (3600)\n"
	"  --surge-tail S      seconds at base at the end (1800)\n"
	"  --seed N            seed of the surge's arrivals and token draws (1)\n"
	"\n"
	"model:\n"
	"  --slo S             a request waiting longer than S seconds misses (30)\n"
	"  --warmup S          pod creation to serving, seconds (60)\n"
	"  --svc-base S        service time = base + prefill x context tokens\n"
	"  --svc-prefill S       + decode x generated tokens; defaults 0.05 s,\n"
	"  --svc-decode S        0.0001 s and 0.012 s (a 13B model at batch 1)\n"
	"  --settle S          unscored start while the policies settle (300)\n"
	"\n"
	"autoscaling:\n"
	"  --sync S            HPA sync period (15)\n"
	"  --poll S            gpupool scaler's poll period, a multiple of 5 (5)\n"
	"  --stabilize S       HPA scale-in stabilization window (300)\n"
	"  --min N, --max N    replica bounds (1, 1000)\n"
	"  --target X          saturation target of threshold and ours (0.7)\n"
	"  --keda-value N      KEDA QueueLength messages per replica (5)\n"
	"  --level-hl S, --trend-hl S, --service-hl S\n"
	"                      ours: smoothing half-lives (forecast.h defaults)\n"
	"  --drain S           ours: backlog drain time (the warm-up)\n"
	"  --jump-sigma X      ours: surge detection threshold, 0 = off (4)\n"
	"  --noise-hl S        ours: half-life of the rate's noise estimate (300)\n"
	"\n"
	"  --json FILE         write the results as JSON\n"
	"  --timeline FILE     write every run's state every 5 s as CSV\n"
	"  --help              this text\n";

/* A number within [lo, hi], the whole argument; names the option on error. */
static int opt_double(const char *name, const char *arg, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (end == arg || *end != '\0' || errno || !isfinite(v) || v < lo || v > hi) {
		fprintf(stderr, "autoscale: --%s %s: expected a number in [%g, %g]\n", name, arg,
			lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

enum {
	O_TRACE = 256, O_NO_TRACE, O_NO_SURGE, O_NO_FLASH, O_JSON, O_SLO, O_WARMUP, O_SYNC, O_POLL,
	O_SETTLE, O_TARGET, O_KEDA, O_STABILIZE, O_MIN, O_MAX, O_SVC_BASE, O_SVC_PREFILL,
	O_SVC_DECODE, O_SEED, O_S_BASE, O_S_LEAD, O_S_RISE, O_S_RISE_X, O_S_SPIKE, O_S_PEAK,
	O_S_HOLD, O_S_FALL, O_S_TAIL, O_LEVEL_HL, O_TREND_HL, O_SERVICE_HL, O_DRAIN, O_JUMP,
	O_NOISE_HL, O_TIMELINE,
	O_HELP,
};

/* Numeric options: where each goes and its bounds (table, not if-chain). */
static const struct numopt {
	int id;
	const char *name;
	size_t off;
	double lo, hi;
} numopts[] = {
#define NO(id, name, field, lo, hi) {id, name, offsetof(struct opts, field), lo, hi}
	NO(O_SLO, "slo", slo, 0.001, 1e6),
	NO(O_WARMUP, "warmup", warmup, 0, 1e5),
	NO(O_SYNC, "sync", sync, 5, 3600),
	NO(O_POLL, "poll", poll, 5, 3600),
	NO(O_SETTLE, "settle", settle, 0, 1e6),
	NO(O_TARGET, "target", target, 0.01, 1),
	NO(O_KEDA, "keda-value", keda_value, 0.001, 1e6),
	NO(O_STABILIZE, "stabilize", stabilize, 0, 3600),
	NO(O_SVC_BASE, "svc-base", svc_base, 0, 3600),
	NO(O_SVC_PREFILL, "svc-prefill", svc_prefill, 0, 10),
	NO(O_SVC_DECODE, "svc-decode", svc_decode, 0, 10),
	NO(O_S_BASE, "surge-base", surge.base, 0.001, 1e4),
	NO(O_S_LEAD, "surge-lead", surge.lead, 0, 1e6),
	NO(O_S_RISE, "surge-rise", surge.rise, 1, 1e6),
	NO(O_S_RISE_X, "surge-rise-x", surge.rise_x, 0.01, 1000),
	NO(O_S_SPIKE, "surge-spike", surge.spike, 1, 1e6),
	NO(O_S_PEAK, "surge-peak", surge.peak, 0.01, 1000),
	NO(O_S_HOLD, "surge-hold", surge.hold, 0, 1e6),
	NO(O_S_FALL, "surge-fall", surge.fall, 1, 1e6),
	NO(O_S_TAIL, "surge-tail", surge.tail, 0, 1e6),
	NO(O_LEVEL_HL, "level-hl", fc.level_halflife_s, 0.1, 1e5),
	NO(O_TREND_HL, "trend-hl", fc.trend_halflife_s, 0.1, 1e5),
	NO(O_SERVICE_HL, "service-hl", fc.service_halflife_s, 0.1, 1e5),
	NO(O_DRAIN, "drain", fc.drain_s, 0.1, 1e5),
	NO(O_JUMP, "jump-sigma", fc.jump_sigma, 0, 1e3),
	NO(O_NOISE_HL, "noise-hl", fc.noise_halflife_s, 0.1, 1e5),
#undef NO
};

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"trace", required_argument, NULL, O_TRACE},
		{"no-trace", no_argument, NULL, O_NO_TRACE},
		{"no-surge", no_argument, NULL, O_NO_SURGE},
		{"no-flash", no_argument, NULL, O_NO_FLASH},
		{"json", required_argument, NULL, O_JSON},
		{"slo", required_argument, NULL, O_SLO},
		{"warmup", required_argument, NULL, O_WARMUP},
		{"sync", required_argument, NULL, O_SYNC},
		{"poll", required_argument, NULL, O_POLL},
		{"settle", required_argument, NULL, O_SETTLE},
		{"target", required_argument, NULL, O_TARGET},
		{"keda-value", required_argument, NULL, O_KEDA},
		{"stabilize", required_argument, NULL, O_STABILIZE},
		{"min", required_argument, NULL, O_MIN},
		{"max", required_argument, NULL, O_MAX},
		{"svc-base", required_argument, NULL, O_SVC_BASE},
		{"svc-prefill", required_argument, NULL, O_SVC_PREFILL},
		{"svc-decode", required_argument, NULL, O_SVC_DECODE},
		{"seed", required_argument, NULL, O_SEED},
		{"surge-base", required_argument, NULL, O_S_BASE},
		{"surge-lead", required_argument, NULL, O_S_LEAD},
		{"surge-rise", required_argument, NULL, O_S_RISE},
		{"surge-rise-x", required_argument, NULL, O_S_RISE_X},
		{"surge-spike", required_argument, NULL, O_S_SPIKE},
		{"surge-peak", required_argument, NULL, O_S_PEAK},
		{"surge-hold", required_argument, NULL, O_S_HOLD},
		{"surge-fall", required_argument, NULL, O_S_FALL},
		{"surge-tail", required_argument, NULL, O_S_TAIL},
		{"level-hl", required_argument, NULL, O_LEVEL_HL},
		{"trend-hl", required_argument, NULL, O_TREND_HL},
		{"service-hl", required_argument, NULL, O_SERVICE_HL},
		{"drain", required_argument, NULL, O_DRAIN},
		{"jump-sigma", required_argument, NULL, O_JUMP},
		{"noise-hl", required_argument, NULL, O_NOISE_HL},
		{"timeline", required_argument, NULL, O_TIMELINE},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		const struct numopt *n = NULL;
		char *end;
		unsigned long long v;

		for (size_t i = 0; i < sizeof numopts / sizeof *numopts; i++)
			if (numopts[i].id == c)
				n = &numopts[i];
		if (n) {
			if (opt_double(n->name, optarg, n->lo, n->hi, (double *)((char *)o + n->off)))
				return 2;
			continue;
		}
		switch (c) {
		case O_TRACE: o->trace = optarg; break;
		case O_NO_TRACE: o->run_trace = 0; break;
		case O_NO_SURGE: o->run_surge = 0; break;
		case O_NO_FLASH: o->run_flash = 0; break;
		case O_JSON: o->json = optarg; break;
		case O_TIMELINE:
			if (o->timeline)
				fclose(o->timeline);
			o->timeline = fopen(optarg, "w");
			if (!o->timeline) {
				fprintf(stderr, "autoscale: --timeline %s: %s\n", optarg,
					strerror(errno));
				return 2;
			}
			fputs("workload,policy,t,replicas,ready_pods,unacked,queued,publish_rate,"
			      "saturation,forecast_saturation,desired\n", o->timeline);
			break;
		case O_MIN:
		case O_MAX:
		case O_SEED:
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end || errno ||
			    (c != O_SEED && v > 100000)) {
				fprintf(stderr, "autoscale: --%s %s: expected a whole number%s\n",
					c == O_MIN ? "min" : c == O_MAX ? "max" : "seed", optarg,
					c == O_SEED ? "" : " up to 100000");
				return 2;
			}
			if (c == O_MIN)
				o->min_replicas = (uint32_t)v;
			else if (c == O_MAX)
				o->max_replicas = (uint32_t)v;
			else
				o->seed = v;
			break;
		case O_HELP: fputs(usage_text, stdout); exit(0);
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "autoscale: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (o->max_replicas < 1 || o->min_replicas > o->max_replicas) {
		fprintf(stderr, "autoscale: --min %u --max %u: need 1 <= max and min <= max\n",
			o->min_replicas, o->max_replicas);
		return 2;
	}
	if (fmod(o->poll, STATS_INTERVAL) != 0.0 || fmod(o->sync, STATS_INTERVAL) != 0.0) {
		fprintf(stderr, "autoscale: --poll and --sync must be multiples of %g s (the "
				"broker's statistics interval)\n", STATS_INTERVAL);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.trace = "../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv",
		.run_trace = 1, .run_surge = 1, .run_flash = 1,
		.slo = 30, .warmup = 60, .sync = 15, .poll = 5, .settle = 300,
		.target = 0.7, .keda_value = 5, .stabilize = 300,
		.min_replicas = 1, .max_replicas = 1000,
		.svc_base = 0.05, .svc_prefill = 0.0001, .svc_decode = 0.012,
		.seed = 1,
		.surge = {.base = 2, .lead = 1800, .rise = 10800, .rise_x = 3, .spike = 1200,
			  .peak = 7, .hold = 1800, .fall = 3600, .tail = 1800},
	};
	struct workload trace, surge;
	struct tokens tk;
	json_t *doc, *runs;
	int rc;
	const char *bad;

	gp_forecast_config_default(&o.fc);
	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	o.fc.target = o.target;
	o.fc.horizon_s = o.warmup > 0 ? o.warmup : o.sync;
	o.fc.min_replicas = o.min_replicas;
	o.fc.max_replicas = o.max_replicas;
	if (gp_forecast_config_check(&o.fc, &bad) != 0) {
		fprintf(stderr, "autoscale: forecast configuration: bad %s\n", bad);
		return 2;
	}
	if (load_trace(&o, &trace, &tk) != 0)
		return 1;

	runs = json_array();
	printf("autoscale: warm-up %.0f s, SLO %.0f s, HPA sync %.0f s, tolerance %.1f, "
	       "scale-in window %.0f s; service = %.3f + %.5f ctx + %.4f gen s\n",
	       o.warmup, o.slo, o.sync, HPA_TOLERANCE, o.stabilize, o.svc_base, o.svc_prefill,
	       o.svc_decode);
	if (o.run_trace)
		json_array_append_new(runs, bench_workload(&o, &trace));
	if (o.run_surge) {
		if (make_surge(&o, &o.surge, "surge", &tk, &surge) != 0)
			return 1;
		json_array_append_new(runs, bench_workload(&o, &surge));
		free(surge.r);
	}
	if (o.run_flash) {
		struct shape flash = o.surge;

		flash.rise = flash.spike = 1.0;
		if (make_surge(&o, &flash, "flash", &tk, &surge) != 0)
			return 1;
		json_array_append_new(runs, bench_workload(&o, &surge));
		free(surge.r);
	}

	doc = json_pack(
		"{s:s, s:{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:{s:f, s:f, s:f}, "
		"s:{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}, s:I, "
		"s:{s:f, s:f, s:f, s:f, s:f, s:f}}, s:o}",
		"benchmark", "autoscale", "config", "slo_s", o.slo, "warmup_s", o.warmup,
		"hpa_sync_s", o.sync, "poll_s", o.poll, "settle_s", o.settle, "target", o.target,
		"keda_value", o.keda_value, "stabilize_s", o.stabilize, "min_replicas",
		(json_int_t)o.min_replicas, "max_replicas", (json_int_t)o.max_replicas, "service",
		"base_s", o.svc_base, "prefill_s_per_token", o.svc_prefill, "decode_s_per_token",
		o.svc_decode, "surge", "base_rps", o.surge.base, "lead_s", o.surge.lead,
		"rise_s", o.surge.rise, "rise_x", o.surge.rise_x, "spike_s", o.surge.spike,
		"peak_x", o.surge.peak, "hold_s", o.surge.hold, "fall_s", o.surge.fall, "tail_s",
		o.surge.tail, "seed", (json_int_t)o.seed,
		"forecast", "level_halflife_s", o.fc.level_halflife_s, "trend_halflife_s",
		o.fc.trend_halflife_s, "service_halflife_s", o.fc.service_halflife_s, "drain_s",
		o.fc.drain_s ? o.fc.drain_s : o.fc.horizon_s, "jump_sigma", o.fc.jump_sigma,
		"noise_halflife_s", o.fc.noise_halflife_s, "workloads", runs);
	json_object_set_new(json_object_get(doc, "config"), "trace", json_string(o.trace));
	rc = 0;
	if (o.json && json_dump_file(doc, o.json, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0) {
		fprintf(stderr, "autoscale: --json %s: cannot write\n", o.json);
		rc = 1;
	}
	json_decref(doc);
	if (o.timeline && fclose(o.timeline) != 0) {
		fprintf(stderr, "autoscale: --timeline: write error\n");
		rc = 1;
	}
	free(trace.r);
	free(tk.ctx);
	free(tk.gen);
	return rc;
}
