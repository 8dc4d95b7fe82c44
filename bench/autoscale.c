/* autoscale.c - the autoscaling benchmark: a discrete-event simulation of a
 * RabbitMQ queue feeding a pool of GPU workers that need a warm-up before
 * they serve, scaled by the Kubernetes HPA, and the trade-off curve of every
 * policy (GPU-hours against SLO misses) over its knob.
 *
 * Policies, each as a competent operator would set it (docs/scaler.md):
 *
 *   static       fixed pools: the smallest that misses nothing (found by
 *                search, with hindsight) and the 60 s peak without headroom;
 *   keda-queue   KEDA's RabbitMQ scaler in QueueLength mode (ready + unacked
 *                messages, AverageValue), `value` swept from one message per
 *                replica (KEDA's advice: what one pod handles) up to 10;
 *   keda-rate    KEDA's RabbitMQ scaler in MessageRate mode (publish rate,
 *                AverageValue), `value` swept as a share of what one replica
 *                serves;
 *   threshold    consumer saturation as a Value metric, target swept 0.5-0.9;
 *   ours         forecast_saturation from src/scaler/forecast.h, the very
 *                code `gpupool scaler` serves, as a Value metric, its target
 *                and headroom swept.
 *
 * The HPA is modelled as kube-controller-manager implements it (replica
 * calculator and behaviors): 15 s sync, 0.1 tolerance, Value metrics
 * multiplied by the ready pod count, AverageValue metrics divided by the
 * target, the scale-in stabilization window (the highest recommendation of
 * the last 300 s, seeded with the starting replicas), the default scale-up
 * policies (the larger of +100 % and +4 pods per 15 s), and one of two
 * scale-down policies, the same for every policy: deploy/keda's (10 % per
 * 60 s) or the HPA default (100 % per 15 s).  Metric values pass through the
 * milli-unit quantities the metrics API carries.
 *
 * The broker: messages wait FIFO and go to consumers with credit (prefetch)
 * in turn.  A worker holds up to `prefetch` messages and serves up to
 * `batch` of them at once, each taking its service time stretched by the
 * batch factor; the rest wait in its prefetch buffer.  Consumers register
 * as pods become ready.  The management API's figures are refreshed every
 * 5 s (RabbitMQ's collect_statistics_interval) and rates are the counts of
 * the last interval over its length.  A scale-in removes warming pods
 * first, then idle ones, then busy ones (newest first); a removed worker
 * cancels its consumer and finishes what it holds.  GPU time counts from a
 * pod's creation (warm-up included) to its end.
 *
 * Workloads: a trace in the Azure LLM inference format replayed as is, and
 * shapes of Poisson arrivals with token counts drawn from the trace: the
 * smooth viral surge, 7x within 10 minutes, a 7x step, a 10x flash crowd of
 * 5 minutes, and the viral pattern (3x over 3 h, then a 7x step).  Each is
 * run at every warm-up and scored at every SLO, synthetic ones over several
 * seeds (averaged).
 *
 * Hybrid bursting (--hybrid): the viral pattern consumed by an on-premises
 * pool of fixed capacity and a cloud pool that warms up slower and costs
 * more, split by src/scaler/burst.h as the daemon splits it.
 *
 * Output: a table per workload, warm-up and HPA behaviour; the verdicts of
 * the targets; JSON (--json) and plot data for gnuplot (--plot-dir).
 */
#include "lib/numopt.h"
#include "lib/rng.h"
#include "scaler/burst.h"
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
#include <sys/stat.h>

#define MAX_LINE 256              /* longest trace line accepted */
#define MAX_REQUESTS 20000000u    /* hard cap on requests per workload */
#define MAX_PODS 200000u          /* hard cap on pods created per run */
#define MAX_PREFETCH 64u
#define MAX_LIST 8                /* SLOs, warm-ups, HPA modes */
#define MAX_SEEDS 20u
#define STATS_INTERVAL 5.0        /* RabbitMQ collect_statistics_interval */
#define HPA_TOLERANCE 0.1
#define SCALE_UP_PERIOD 15.0      /* default scale-up policies' period */
#define NPOOLS 2                  /* on-premises and cloud (hybrid) */

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "autoscale: out of memory\n");
		exit(1);
	}
	return p;
}

/* --- options -------------------------------------------------------------- */

/* A scale-down behavior: the HPA's stabilization window and one Percent
 * policy (the scale-up policies are the default for every mode). */
struct hpa_mode {
	const char *name;
	double down_pct, down_period;
};

static const struct hpa_mode hpa_modes[] = {
	{"keda", 10.0, 60.0},     /* deploy/keda's ScaledObjects */
	{"default", 100.0, 15.0}, /* the HPA's own default */
};
#define NHPA (sizeof hpa_modes / sizeof *hpa_modes)

struct opts {
	const char *trace;    /* CSV in the Azure format */
	const char *json;     /* where to write results; NULL = nowhere */
	const char *plot_dir; /* where to write gnuplot data; NULL = nowhere */
	FILE *timeline;       /* per-tick CSV of every run, or NULL */
	unsigned workloads;   /* bit i = shapes[i] (bit 0 = the trace) */
	int quick;            /* fewer knob values */
	int hybrid;           /* run the hybrid benchmark */
	double slo[MAX_LIST];
	size_t nslo;
	double warmup[MAX_LIST];
	size_t nwarmup;
	unsigned hpa;         /* bit i = hpa_modes[i] */
	uint64_t seed;        /* first seed */
	unsigned seeds;       /* seeds per synthetic workload */
	double sync, poll, settle, stabilize;
	uint32_t min_replicas, max_replicas;
	double svc_base, svc_prefill, svc_decode; /* service-time model */
	uint32_t prefetch, batch;
	double batch_slow;    /* service stretch per extra request in a batch */
	double base_rps;      /* the synthetic workloads' base rate */
	/* ours: the defaults, and the knobs swept */
	struct gp_forecast_config fc;
	/* hybrid */
	double onprem_x;      /* on-premises capacity, in multiples of the base load */
	double onprem_warmup, cloud_warmup, cloud_cost;
};

/* --- workloads ------------------------------------------------------------ */

struct request {
	double t;   /* arrival, seconds from the workload's start */
	double svc; /* service time on one warm worker, batch of one */
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

/* A synthetic workload: phases of the base rate's multiple, each growing or
 * shrinking exponentially from `from` to `to` over `len` seconds.  A step is
 * two adjacent phases at different levels. */
struct phase {
	double len, from, to;
};

struct shape {
	const char *name, *what;
	struct phase ph[8];
};

/* Index 0 stands for the trace replay.  The base rate is --base-rps. */
static const struct shape shapes[] = {
	{"trace", "the trace, replayed", {{0, 0, 0}}},
	{"surge", "smooth viral surge: 3x over 3 h, on to 7x over 20 min, 30 min there, back over 1 h",
	 {{1800, 1, 1}, {10800, 1, 3}, {1200, 3, 7}, {1800, 7, 7}, {3600, 7, 1}, {1800, 1, 1}}},
	{"ramp7", "7x within 10 minutes: 30 min there, back over 30 min",
	 {{1800, 1, 1}, {600, 1, 7}, {1800, 7, 7}, {1800, 7, 1}, {1800, 1, 1}}},
	{"step7", "a 7x step: 1 h there, then a step back",
	 {{1800, 1, 1}, {3600, 7, 7}, {1800, 1, 1}}},
	{"flash10", "a 10x flash crowd of 5 minutes",
	 {{1800, 1, 1}, {300, 10, 10}, {2700, 1, 1}}},
	{"viral", "the viral pattern: 3x over 3 h, then a 7x step; 30 min there, back over 1 h",
	 {{1800, 1, 1}, {10800, 1, 3}, {1800, 7, 7}, {3600, 7, 1}, {1800, 1, 1}}},
};
#define NSHAPES (sizeof shapes / sizeof *shapes)

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
 * token pairs, for the synthetic workloads to draw from).  Returns 0, or -1
 * after printing what is wrong and where. */
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
			w->r = xrealloc(w->r, cap * sizeof *w->r);
			tk->ctx = xrealloc(tk->ctx, cap * sizeof *tk->ctx);
			tk->gen = xrealloc(tk->gen, cap * sizeof *tk->gen);
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

static double shape_len(const struct shape *sh)
{
	double len = 0.0;
	for (size_t i = 0; i < sizeof sh->ph / sizeof *sh->ph; i++)
		len += sh->ph[i].len;
	return len;
}

/* The shape's multiple of the base rate at time t. */
static double shape_rate(const struct shape *sh, double t)
{
	for (size_t i = 0; i < sizeof sh->ph / sizeof *sh->ph && sh->ph[i].len > 0; i++) {
		const struct phase *p = &sh->ph[i];
		if (t < p->len)
			return p->from * pow(p->to / p->from, t / p->len);
		t -= p->len;
	}
	return 0.0;
}

static double shape_max(const struct shape *sh)
{
	double m = 0.0;
	for (size_t i = 0; i < sizeof sh->ph / sizeof *sh->ph; i++)
		m = fmax(m, fmax(sh->ph[i].from, sh->ph[i].to));
	return m;
}

/* Generate a synthetic workload by thinning a Poisson process at the
 * highest rate; token pairs are drawn uniformly from the trace. */
static void make_shape(const struct opts *o, const struct shape *sh, uint64_t seed,
		       const struct tokens *tk, struct workload *w)
{
	double len = shape_len(sh), peak = o->base_rps * shape_max(sh), t = 0.0;
	uint64_t rng = seed;
	size_t cap = 0;

	memset(w, 0, sizeof *w);
	w->name = sh->name;
	for (;;) {
		t += -log(rng_unit(&rng)) / peak;
		if (t >= len)
			break;
		if (rng_unit(&rng) * peak > o->base_rps * shape_rate(sh, t))
			continue;
		if (w->n == MAX_REQUESTS) {
			fprintf(stderr, "autoscale: %s has more than %u requests; lower --base-rps\n",
				sh->name, MAX_REQUESTS);
			exit(1);
		}
		if (w->n == cap) {
			cap = cap ? cap * 2 : 4096;
			w->r = xrealloc(w->r, cap * sizeof *w->r);
		}
		size_t k = rng_next(&rng) % tk->n;
		w->r[w->n++] = (struct request){.t = t, .svc = service_time(o, tk->ctx[k], tk->gen[k])};
	}
	w->end = w->n ? w->r[w->n - 1].t : 0.0;
}

/* Seconds of one worker's time a request takes, counting the batch: a
 * worker serving `batch` at once stretches each by the batch factor. */
static double batch_factor(const struct opts *o)
{
	return 1.0 + o->batch_slow * (double)(o->batch - 1);
}

/* The offered load in workers (busy workers needed on average) of the
 * busiest `win` seconds, windows sliding from request to request. */
static double peak_load(const struct opts *o, const struct workload *w, double win)
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
	return best * batch_factor(o) / o->batch;
}

/* Mean offered load in workers over [0, len). */
static double mean_load(const struct opts *o, const struct workload *w, double len)
{
	double sum = 0.0;
	for (size_t i = 0; i < w->n && w->r[i].t < len; i++)
		sum += w->r[i].svc;
	return sum / len * batch_factor(o) / o->batch;
}

/* Mean service time of the workload's requests, batch of one. */
static double mean_svc(const struct workload *w)
{
	double sum = 0.0;
	for (size_t i = 0; i < w->n; i++)
		sum += w->r[i].svc;
	return w->n ? sum / (double)w->n : 1.0;
}

/* --- the simulated pool ---------------------------------------------------- */

enum pod_state { POD_WARMING, POD_READY, POD_GONE };

struct pod {
	uint8_t st;         /* enum pod_state */
	uint8_t pool;
	uint8_t draining;   /* removed by a scale-in: finishes, takes nothing */
	uint16_t held;      /* messages unacked: in service or prefetched */
	uint16_t serving;   /* of those, in service (<= batch) */
	uint16_t lq_head;   /* the prefetched ones: a ring in sim.lq */
	double created;
	uint32_t gen;       /* invalidates a stale warm-up event */
};

enum ev_kind { EV_WARM, EV_DONE };

struct event {
	double t;
	uint32_t pod, gen;
	uint8_t kind;
};

/* The HPA's memory: recommendations (for stabilization) and scale events
 * (for rate limits). */
struct hpa_rec {
	double t;
	int64_t replicas;
};

enum metric_type { METRIC_VALUE, METRIC_AVERAGE_VALUE };

enum kind {
	K_STATIC,      /* a fixed pool */
	K_KEDA_QUEUE,  /* KEDA QueueLength: ready + unacked, AverageValue */
	K_KEDA_RATE,   /* KEDA MessageRate: publish rate, AverageValue */
	K_THRESHOLD,   /* saturation, Value */
	K_OURS,        /* forecast_saturation, Value */
	K_HYB_OURS,    /* hybrid: burst.h's split, AverageValue 1 per pool */
	K_HYB_NEAR,    /* hybrid: the same split with the cloud ordered on the
	                  on-premises horizon (no early burst) */
	K_HYB_QUEUE,   /* hybrid: KEDA QueueLength on-premises, ready messages
	                  (excludeUnacknowledged) in the cloud */
	K_HYB_ONPREM,  /* hybrid: ours on-premises only, no cloud */
};

/* One point of a policy's curve: the policy and its knob settings. */
struct policy {
	enum kind kind;
	const char *name;
	double knob;        /* static: pods; keda: value; threshold, ours: target */
	double knob2;       /* ours: headroom */
};

struct pool {
	uint64_t spec;      /* pods not draining: the Deployment's replicas */
	uint64_t warm;      /* ready pods, not draining: consumers */
	uint64_t min, max;
	double warmup;
	int autoscaled;
	struct hpa_rec recs[512];   /* recommendations, oldest first */
	size_t nrecs;
	struct hpa_rec events[512]; /* scale changes (+ up, - down) */
	size_t nevents;
	double gpu_s;       /* pod-seconds after settle */
	uint64_t max_pods;
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
	const struct hpa_mode *mode;
	size_t npools;
	struct pool pools[NPOOLS];

	struct pod *pods;
	uint32_t *lq;       /* prefetch rings, o->prefetch slots per pod */
	size_t npods, cap_pods;
	uint32_t *tok;      /* consumers with credit, in turn: a ring of pod
	                       ids, one entry per unit of credit; entries of
	                       pods removed since are skipped */
	size_t tok_head, tok_len, tok_cap;
	struct event *heap; /* warm-ups and completions, by time */
	size_t nheap, cap_heap;

	size_t next;        /* next request to arrive */
	size_t qhead;       /* oldest waiting request: [qhead, next) wait */
	uint64_t unacked;   /* messages held by consumers */

	uint64_t published, acked;         /* broker counters */
	uint64_t published_prev, acked_prev;
	struct broker_view view;

	struct gp_forecast *fc;            /* ours */
	struct gp_forecast_out fc_out;
	struct gp_burst_config burst;
	struct gp_burst_out split;

	double *waits;
	size_t nwaits;
	double t_end;
};

static void heap_push(struct sim *s, double t, uint32_t pod, uint8_t kind)
{
	size_t i;

	if (s->nheap == s->cap_heap) {
		s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 256;
		s->heap = xrealloc(s->heap, s->cap_heap * sizeof *s->heap);
	}
	i = s->nheap++;
	while (i > 0 && s->heap[(i - 1) / 2].t > t) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = (struct event){t, pod, s->pods[pod].gen, kind};
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

static void tok_push(struct sim *s, uint32_t id)
{
	if (s->tok_len == s->tok_cap) {
		size_t cap = s->tok_cap ? s->tok_cap * 2 : 256;
		uint32_t *t = xrealloc(NULL, cap * sizeof *t);
		for (size_t i = 0; i < s->tok_len; i++)
			t[i] = s->tok[(s->tok_head + i) % s->tok_cap];
		free(s->tok);
		s->tok = t;
		s->tok_cap = cap;
		s->tok_head = 0;
	}
	s->tok[(s->tok_head + s->tok_len++) % s->tok_cap] = id;
}

/* The next consumer with credit, or -1. */
static int64_t tok_pop(struct sim *s)
{
	while (s->tok_len) {
		uint32_t id = s->tok[s->tok_head];
		s->tok_head = (s->tok_head + 1) % s->tok_cap;
		s->tok_len--;
		if (s->pods[id].st == POD_READY && !s->pods[id].draining)
			return id;
	}
	return -1;
}

/* Account a pod's GPU time, the part after the settling period. */
static void charge(struct sim *s, const struct pod *p, double until)
{
	double from = fmax(p->created, s->o->settle);
	if (until > from)
		s->pools[p->pool].gpu_s += until - from;
}

static void pod_end(struct sim *s, uint32_t id, double t)
{
	charge(s, &s->pods[id], t);
	s->pods[id].st = POD_GONE;
	s->pods[id].gen++;
}

/* Start serving request `req` on pod `id`. */
static void serve(struct sim *s, uint32_t id, size_t req, double t)
{
	const struct request *r = &s->w->r[req];

	if (r->t >= s->o->settle)
		s->waits[s->nwaits++] = t - r->t;
	s->pods[id].serving++;
	heap_push(s, t + r->svc * batch_factor(s->o), id, EV_DONE);
}

/* The broker delivers its oldest waiting message to pod `id`, which has
 * credit: served at once if the batch has room, else prefetched. */
static void deliver(struct sim *s, uint32_t id, double t)
{
	struct pod *p = &s->pods[id];
	size_t req = s->qhead++;

	p->held++;
	s->unacked++;
	if (p->serving < s->o->batch) {
		serve(s, id, req, t);
	} else {
		uint32_t *ring = &s->lq[(size_t)id * s->o->prefetch];
		size_t queued = p->held - 1u - p->serving;
		ring[(p->lq_head + queued) % s->o->prefetch] = (uint32_t)req;
	}
}

/* Pod `id` has one more unit of credit: a waiting message, or a turn. */
static void give_credit(struct sim *s, uint32_t id, double t)
{
	if (s->qhead < s->next)
		deliver(s, id, t);
	else
		tok_push(s, id);
}

static void pod_ready(struct sim *s, uint32_t id, double t)
{
	s->pods[id].st = POD_READY;
	s->pools[s->pods[id].pool].warm++;
	for (uint32_t k = 0; k < s->o->prefetch; k++)
		give_credit(s, id, t);
}

/* A message was acked by pod `id`. */
static void pod_done(struct sim *s, uint32_t id, double t)
{
	struct pod *p = &s->pods[id];

	p->serving--;
	p->held--;
	s->unacked--;
	s->acked++;
	if (p->held > p->serving) { /* a prefetched message is next */
		uint32_t req = s->lq[(size_t)id * s->o->prefetch + p->lq_head];
		p->lq_head = (uint16_t)((p->lq_head + 1) % s->o->prefetch);
		serve(s, id, req, t);
	}
	if (p->draining) {
		if (p->held == 0)
			pod_end(s, id, t);
	} else {
		give_credit(s, id, t);
	}
}

static void pod_create(struct sim *s, size_t pool, double t, int warm)
{
	uint32_t id;

	if (s->npods == MAX_PODS) {
		fprintf(stderr, "autoscale: more than %u pods created; lower --max\n", MAX_PODS);
		exit(1);
	}
	if (s->npods == s->cap_pods) {
		s->cap_pods = s->cap_pods ? s->cap_pods * 2 : 256;
		s->pods = xrealloc(s->pods, s->cap_pods * sizeof *s->pods);
		s->lq = xrealloc(s->lq, s->cap_pods * s->o->prefetch * sizeof *s->lq);
	}
	id = (uint32_t)s->npods++;
	s->pods[id] = (struct pod){.st = POD_WARMING, .pool = (uint8_t)pool, .created = t};
	s->pools[pool].spec++;
	if (warm || s->pools[pool].warmup <= 0.0)
		pod_ready(s, id, t);
	else
		heap_push(s, t + s->pools[pool].warmup, id, EV_WARM);
}

/* Remove one pod of `pool`, in the order a ReplicaSet deletes them: not
 * ready first, then idle, then busy; newest first within each.  Returns 0,
 * or -1 if none is left to remove. */
static int pod_remove(struct sim *s, size_t pool, double t)
{
	for (int k = 0; k < 3; k++) {
		for (size_t i = s->npods; i-- > 0;) {
			struct pod *p = &s->pods[i];
			int rank = p->st == POD_WARMING ? 0 : p->held == 0 ? 1 : 2;

			if (p->st == POD_GONE || p->draining || p->pool != pool || rank != k)
				continue;
			s->pools[pool].spec--;
			if (p->st == POD_READY)
				s->pools[pool].warm--;
			if (p->held == 0)
				pod_end(s, (uint32_t)i, t);
			else
				p->draining = 1; /* ends when its last message is acked */
			return 0;
		}
	}
	return -1;
}

static void scale_to(struct sim *s, size_t pool, uint64_t n, double t)
{
	struct pool *pl = &s->pools[pool];

	while (pl->spec < n)
		pod_create(s, pool, t, 0);
	while (pl->spec > n && pod_remove(s, pool, t) == 0)
		;
	if (pl->spec > pl->max_pods)
		pl->max_pods = pl->spec;
}

static uint64_t consumers(const struct sim *s)
{
	uint64_t n = 0;
	for (size_t i = 0; i < s->npools; i++)
		n += s->pools[i].warm;
	return n;
}

/* --- the metrics each policy reads --------------------------------------- */

/* Refresh the management API's figures (every STATS_INTERVAL). */
static void broker_refresh(struct sim *s)
{
	s->view.ready = s->next - s->qhead;
	s->view.unacked = s->unacked;
	s->view.consumers = (uint32_t)consumers(s);
	s->view.publish_rate = (double)(s->published - s->published_prev) / STATS_INTERVAL;
	s->view.ack_rate = (double)(s->acked - s->acked_prev) / STATS_INTERVAL;
	s->published_prev = s->published;
	s->acked_prev = s->acked;
}

/* gpupool scaler's poll: one observation into the forecast, and for the
 * hybrid policies the split between the pools. */
static void ours_poll(struct sim *s, double t)
{
	struct gp_forecast_obs ob = {
		.t_s = t,
		.ready = s->view.ready,
		.unacked = s->view.unacked,
		.consumers = s->view.consumers,
		.prefetch = s->o->prefetch,
		.publish_rate = s->view.publish_rate,
		.ack_rate = s->view.ack_rate,
		.replicas = -1, /* the daemon does not watch the Deployment */
	};
	uint32_t near, far;

	gp_forecast_update(s->fc, &ob, &s->fc_out);
	if (s->p->kind != K_HYB_OURS && s->p->kind != K_HYB_NEAR)
		return;
	near = s->fc_out.desired_replicas;
	far = s->p->kind == K_HYB_OURS
		      ? gp_forecast_desired_at(s->fc, &s->fc_out, s->burst.cloud_warmup_s)
		      : near;
	gp_burst_split(&s->burst, near, far, &s->split);
}

static double saturation_now(const struct sim *s)
{
	struct gp_forecast_obs ob = {
		.ready = s->view.ready,
		.unacked = s->view.unacked,
		.consumers = s->view.consumers,
		.prefetch = s->o->prefetch,
	};
	return gp_forecast_saturation(&ob);
}

/* What the HPA of `pool` reads: the metric, its type and its target. */
static double metric(const struct sim *s, size_t pool, enum metric_type *type, double *target)
{
	const struct policy *p = s->p;

	*type = METRIC_AVERAGE_VALUE;
	*target = p->knob;
	switch (p->kind) {
	case K_KEDA_QUEUE:
		return (double)(s->view.ready + s->view.unacked);
	case K_KEDA_RATE:
		return s->view.publish_rate;
	case K_THRESHOLD:
		*type = METRIC_VALUE;
		return saturation_now(s);
	case K_OURS:
	case K_HYB_ONPREM:
		*type = METRIC_VALUE;
		return s->fc_out.forecast_saturation;
	case K_HYB_OURS:
	case K_HYB_NEAR:
		*target = 1.0;
		return pool == 0 ? s->split.onprem : s->split.cloud;
	case K_HYB_QUEUE:
		*target = s->o->prefetch;
		return pool == 0 ? (double)(s->view.ready + s->view.unacked) : (double)s->view.ready;
	case K_STATIC:
		break;
	}
	return 0.0;
}

/* --- the HPA ---------------------------------------------------------------- */

/* A metric as the external metrics API carries it: a milli-quantity. */
static double milli(double v)
{
	return floor(v * 1000.0) / 1000.0;
}

/* The replica calculator: the proposal before behaviors. */
static int64_t hpa_proposal(const struct sim *s, size_t pool)
{
	const struct pool *pl = &s->pools[pool];
	enum metric_type type;
	double target, m = milli(metric(s, pool, &type, &target));
	int64_t cur = (int64_t)pl->spec;

	if (type == METRIC_VALUE) {
		double ratio = m / target;
		if (cur == 0)
			return (int64_t)ceil(ratio);
		if (fabs(1.0 - ratio) <= HPA_TOLERANCE)
			return cur;
		return (int64_t)ceil(ratio * (double)pl->warm);
	}
	/* AverageValue: against status.replicas (warming pods included). */
	if (cur > 0 && fabs(1.0 - m / (target * (double)cur)) <= HPA_TOLERANCE)
		return cur;
	return (int64_t)ceil(m / target);
}

/* Replicas added (sign > 0) or deleted (sign < 0) within `period`. */
static int64_t changed_within(const struct pool *pl, double t, double period, int sign)
{
	int64_t n = 0;
	for (size_t i = 0; i < pl->nevents; i++)
		if (pl->events[i].t > t - period && (pl->events[i].replicas > 0) == (sign > 0))
			n += sign * pl->events[i].replicas;
	return n;
}

/* One sync: proposal, stabilization, rate limits, min/max, then scale. */
static void hpa_sync(struct sim *s, size_t pool, double t)
{
	struct pool *pl = &s->pools[pool];
	int64_t cur = (int64_t)pl->spec, prop = hpa_proposal(s, pool), down = prop, rec;
	double keep = fmax(s->o->stabilize, fmax(s->mode->down_period, SCALE_UP_PERIOD));
	size_t k = 0;

	/* Keep the recommendations of the window, plus this one. */
	for (size_t i = 0; i < pl->nrecs; i++)
		if (pl->recs[i].t > t - s->o->stabilize)
			pl->recs[k++] = pl->recs[i];
	pl->nrecs = k;
	for (size_t i = 0; i < pl->nrecs; i++)
		if (pl->recs[i].replicas > down)
			down = pl->recs[i].replicas;
	if (pl->nrecs < sizeof pl->recs / sizeof *pl->recs)
		pl->recs[pl->nrecs++] = (struct hpa_rec){t, prop};

	/* Scale up at once (window 0: up = the proposal); scale in only to the
	 * highest recommendation of the window. */
	rec = cur;
	if (rec < prop)
		rec = prop;
	if (rec > down)
		rec = down;

	k = 0;
	for (size_t i = 0; i < pl->nevents; i++)
		if (pl->events[i].t > t - keep)
			pl->events[k++] = pl->events[i];
	pl->nevents = k;
	if (rec > cur) {
		/* The default scale-up policies: the larger of +100 % and +4
		 * pods per 15 s, from the replicas at the period's start. */
		int64_t start = cur - changed_within(pl, t, SCALE_UP_PERIOD, 1) +
				changed_within(pl, t, SCALE_UP_PERIOD, -1);
		int64_t limit = start * 2 > start + 4 ? start * 2 : start + 4;
		if (limit < cur)
			limit = cur;
		if (rec > limit)
			rec = limit;
	} else if (rec < cur) {
		/* One Percent scale-down policy, truncated as the controller
		 * does. */
		int64_t start = cur - changed_within(pl, t, s->mode->down_period, 1) +
				changed_within(pl, t, s->mode->down_period, -1);
		int64_t limit = (int64_t)((double)start * (1.0 - s->mode->down_pct / 100.0));
		if (rec < limit)
			rec = limit < cur ? limit : cur;
	}
	if (rec > (int64_t)pl->max)
		rec = (int64_t)pl->max;
	if (rec < (int64_t)pl->min)
		rec = (int64_t)pl->min;
	if (rec != cur) {
		if (pl->nevents < sizeof pl->events / sizeof *pl->events)
			pl->events[pl->nevents++] = (struct hpa_rec){t, rec - cur};
		scale_to(s, pool, (uint64_t)rec, t);
	}
}

/* --- one run ---------------------------------------------------------------- */

struct result {
	double gpu_h[NPOOLS];
	double missed[MAX_LIST];  /* per SLO of opts.slo */
	double requests, p50, p99, max_wait;
	double max_pods[NPOOLS];
};

/* What one run is: the policy, the behaviors, and each pool's set-up. */
struct setup {
	const struct policy *p;
	const struct hpa_mode *mode;
	size_t npools;
	double warmup[NPOOLS];
	uint64_t initial[NPOOLS], min[NPOOLS], max[NPOOLS];
	struct gp_forecast_config fc;
	struct gp_burst_config burst;
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

/* Simulate workload `w` under `u`; the pods of u->initial start warm. */
static void run(const struct opts *o, const struct workload *w, const struct setup *u,
		struct result *res)
{
	struct sim s = {.o = o, .w = w, .p = u->p, .mode = u->mode, .npools = u->npools,
			.burst = u->burst};
	double tick = 0.0;
	uint64_t ticks = 0;
	uint64_t sync_every = (uint64_t)llround(o->sync / STATS_INTERVAL);
	uint64_t poll_every = (uint64_t)llround(o->poll / STATS_INTERVAL);

	s.waits = xrealloc(NULL, w->n * sizeof *s.waits);
	if (gp_forecast_new(&s.fc, &u->fc) != 0) {
		fprintf(stderr, "autoscale: bad forecast configuration\n");
		exit(1);
	}
	for (size_t i = 0; i < u->npools; i++) {
		struct pool *pl = &s.pools[i];
		pl->warmup = u->warmup[i];
		pl->min = u->min[i];
		pl->max = u->max[i];
		pl->autoscaled = u->p->kind != K_STATIC && !(u->p->kind == K_HYB_ONPREM && i > 0);
		for (uint64_t k = 0; k < u->initial[i]; k++)
			pod_create(&s, i, 0.0, 1);
		pl->max_pods = pl->spec;
		/* The HPA seeds its scale-in window with the replicas it
		 * finds, so a fresh controller does not scale in at once. */
		pl->recs[pl->nrecs++] = (struct hpa_rec){0.0, (int64_t)u->initial[i]};
	}

	for (;;) {
		double ta = s.next < w->n ? w->r[s.next].t : INFINITY;
		double te = s.nheap ? s.heap[0].t : INFINITY;

		if (s.next == w->n && s.qhead == w->n && s.unacked == 0)
			break;
		if (te <= ta && te <= tick) {
			struct event e = heap_pop(&s);
			if (e.kind == EV_WARM) {
				if (e.gen == s.pods[e.pod].gen)
					pod_ready(&s, e.pod, e.t);
			} else {
				pod_done(&s, e.pod, e.t);
			}
			s.t_end = e.t;
		} else if (ta <= tick) {
			int64_t id;
			s.next++;
			s.published++;
			if ((id = tok_pop(&s)) >= 0)
				deliver(&s, (uint32_t)id, ta);
		} else {
			broker_refresh(&s);
			if (ticks % poll_every == 0)
				ours_poll(&s, tick);
			if (o->timeline)
				fprintf(o->timeline, "%s,%s,%g,%g,%s,%.0f,%llu,%llu,%llu,%llu,%llu,%.3f,%.3f,%.3f,%u\n",
					w->name, u->p->name, u->p->knob, u->p->knob2, u->mode->name, tick,
					(unsigned long long)s.pools[0].spec,
					(unsigned long long)(u->npools > 1 ? s.pools[1].spec : 0),
					(unsigned long long)s.view.consumers,
					(unsigned long long)s.view.unacked,
					(unsigned long long)s.view.ready, s.view.publish_rate,
					saturation_now(&s), s.fc_out.forecast_saturation,
					s.fc_out.desired_replicas);
			if (ticks > 0 && ticks % sync_every == 0)
				for (size_t i = 0; i < u->npools; i++)
					if (s.pools[i].autoscaled)
						hpa_sync(&s, i, tick);
			ticks++;
			tick = (double)ticks * STATS_INTERVAL;
		}
	}
	for (size_t i = 0; i < s.npods; i++)
		if (s.pods[i].st != POD_GONE)
			charge(&s, &s.pods[i], s.t_end);

	qsort(s.waits, s.nwaits, sizeof *s.waits, cmp_double);
	memset(res, 0, sizeof *res);
	res->requests = (double)s.nwaits;
	res->p50 = percentile(s.waits, s.nwaits, 0.50);
	res->p99 = percentile(s.waits, s.nwaits, 0.99);
	res->max_wait = s.nwaits ? s.waits[s.nwaits - 1] : 0.0;
	for (size_t i = 0; i < u->npools; i++) {
		res->gpu_h[i] = s.pools[i].gpu_s / 3600.0;
		res->max_pods[i] = (double)s.pools[i].max_pods;
	}
	for (size_t k = 0; k < o->nslo; k++) {
		/* waits are sorted: count those above the SLO from the top */
		size_t n = 0;
		while (n < s.nwaits && s.waits[s.nwaits - 1 - n] > o->slo[k])
			n++;
		res->missed[k] = (double)n;
	}
	gp_forecast_free(s.fc);
	free(s.waits);
	free(s.pods);
	free(s.lq);
	free(s.tok);
	free(s.heap);
}

/* Accumulate `r` into the mean `acc` over `n` runs. */
static void result_add(struct result *acc, const struct result *r, unsigned n)
{
	double f = 1.0 / n;
	for (size_t i = 0; i < NPOOLS; i++) {
		acc->gpu_h[i] += r->gpu_h[i] * f;
		acc->max_pods[i] = fmax(acc->max_pods[i], r->max_pods[i]);
	}
	for (size_t k = 0; k < MAX_LIST; k++)
		acc->missed[k] += r->missed[k] * f;
	acc->requests += r->requests * f;
	acc->p50 += r->p50 * f;
	acc->p99 += r->p99 * f;
	acc->max_wait = fmax(acc->max_wait, r->max_wait);
}

static double gpu_total(const struct result *r)
{
	double g = 0.0;
	for (size_t i = 0; i < NPOOLS; i++)
		g += r->gpu_h[i];
	return g;
}

/* --- the sweep -------------------------------------------------------------- */

/* One workload at every seed (the trace has one). */
struct wset {
	const struct shape *sh;
	struct workload w[MAX_SEEDS];
	unsigned n;
	double load_mean, load_peak;  /* workers, mean over seeds */
	double first_load[MAX_SEEDS]; /* mean load of the settling period */
	double peak[MAX_SEEDS];       /* 60 s peak load per seed */
	double svc;                   /* mean service time, batch of one */
};

/* A point of a curve: the policy, its knob, and its mean result. */
struct point {
	struct policy p;
	const char *label;   /* how the knob is shown */
	int slo_only;        /* static hindsight: a point for SLO index slo_only-1 only */
	struct result r;
};

struct curveset {
	struct point *pt;
	size_t n, cap;
};

static struct point *point_add(struct curveset *c)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->pt = xrealloc(c->pt, c->cap * sizeof *c->pt);
	}
	memset(&c->pt[c->n], 0, sizeof c->pt[c->n]);
	return &c->pt[c->n++];
}

/* The default set-up of a single-pool run of `p`. */
static void setup_single(const struct opts *o, const struct policy *p, const struct hpa_mode *m,
			 double warmup, uint64_t initial, struct setup *u)
{
	memset(u, 0, sizeof *u);
	u->p = p;
	u->mode = m;
	u->npools = 1;
	u->warmup[0] = warmup;
	u->initial[0] = initial;
	u->min[0] = p->kind == K_STATIC ? initial : o->min_replicas;
	u->max[0] = p->kind == K_STATIC ? initial : o->max_replicas;
	u->fc = o->fc;
	u->fc.horizon_s = warmup > 0 ? warmup : o->sync;
	u->fc.min_replicas = o->min_replicas;
	u->fc.max_replicas = o->max_replicas;
	if (p->kind == K_OURS) {
		u->fc.target = p->knob;
		u->fc.headroom_sigma = p->knob2;
	}
	gp_burst_config_default(&u->burst);
}

static uint64_t pods_for(double load, double target, uint64_t lo)
{
	uint64_t n = (uint64_t)ceil(load / target - 1e-9);
	return n < lo ? lo : n;
}

/* Run point `pt` on every seed of `ws` and keep the mean. */
static void run_point(const struct opts *o, const struct wset *ws, const struct hpa_mode *m,
		      double warmup, struct point *pt)
{
	memset(&pt->r, 0, sizeof pt->r);
	for (unsigned i = 0; i < ws->n; i++) {
		struct setup u;
		struct result r;
		uint64_t initial = pt->p.kind == K_STATIC
					   ? (uint64_t)pt->p.knob
					   : pods_for(ws->first_load[i], 0.7, o->min_replicas);

		if (pt->p.kind == K_STATIC && pt->p.knob < 0) /* the peak, per seed */
			initial = pods_for(ws->peak[i], 1.0, 1);
		setup_single(o, &pt->p, m, warmup, initial, &u);
		run(o, &ws->w[i], &u, &r);
		result_add(&pt->r, &r, ws->n);
	}
}

/* The smallest static pool that misses nothing at SLO `k` on any seed, by
 * bisection (misses only fall as the pool grows).  Hindsight: it needs the
 * whole workload in advance. */
static uint64_t static_zero_miss(const struct opts *o, const struct wset *ws, size_t k)
{
	uint64_t lo = 0, hi;
	double maxpeak = 0.0;

	for (unsigned i = 0; i < ws->n; i++)
		maxpeak = fmax(maxpeak, ws->peak[i]);
	hi = pods_for(maxpeak * 1.5, 1.0, 2);
	for (;;) { /* grow hi until it misses nothing */
		struct point pt = {.p = {K_STATIC, "static", (double)hi, 0}};
		run_point(o, ws, &hpa_modes[0], 0.0, &pt);
		if (pt.r.missed[k] == 0.0)
			break;
		lo = hi;
		hi *= 2;
	}
	while (lo + 1 < hi) { /* invariant: hi misses nothing, lo misses (or is 0) */
		uint64_t mid = lo + (hi - lo) / 2;
		struct point pt = {.p = {K_STATIC, "static", (double)mid, 0}};
		run_point(o, ws, &hpa_modes[0], 0.0, &pt);
		if (pt.r.missed[k] == 0.0)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

/* The policies and knob values swept, after the static pools. */
static void policy_points(const struct opts *o, const struct wset *ws, struct curveset *c)
{
	/* Every knob on a grid as fine as the others': 0.05 for targets and
	 * shares. */
	static const double queue_full[] = {1, 2, 3, 4, 5, 7, 10}, queue_quick[] = {1, 5};
	static const double share_full[] = {0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8,
					    0.85, 0.9},
			    share_quick[] = {0.7};
	static const double thr_full[] = {0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9},
			    thr_quick[] = {0.7};
	static const double ours_full[] = {0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8,
					   0.85, 0.9, 0.95, 1.0},
			    ours_quick[] = {0.8, 1.0};
	static const double room_full[] = {0, 0.5, 1, 1.5, 2, 3}, room_quick[] = {2};
	/* What one replica serves per second: the MessageRate target a
	 * competent operator derives from a load test, times the share. */
	double per_replica = o->batch / (ws->svc * batch_factor(o));
#define EACH(arr) for (size_t i = 0; i < (o->quick ? sizeof arr##_quick : sizeof arr##_full) / sizeof(double); i++)
#define VAL(arr) (o->quick ? arr##_quick[i] : arr##_full[i])
	EACH(queue) *point_add(c) = (struct point){.p = {K_KEDA_QUEUE, "keda-queue", VAL(queue) * o->prefetch, 0}};
	EACH(share) *point_add(c) = (struct point){.p = {K_KEDA_RATE, "keda-rate", VAL(share) * per_replica, VAL(share)}};
	EACH(thr) *point_add(c) = (struct point){.p = {K_THRESHOLD, "threshold", VAL(thr), 0}};
	EACH(room) {
		double z = VAL(room);
		size_t nt = o->quick ? sizeof ours_quick / sizeof(double) : sizeof ours_full / sizeof(double);
		for (size_t t = 0; t < nt; t++)
			*point_add(c) = (struct point){
				.p = {K_OURS, "ours", o->quick ? ours_quick[t] : ours_full[t], z}};
	}
#undef EACH
#undef VAL
	/* The default the verdicts judge, if the sweep missed it. */
	for (size_t i = 0; i < c->n; i++)
		if (c->pt[i].p.kind == K_OURS && c->pt[i].p.knob == o->fc.target &&
		    c->pt[i].p.knob2 == o->fc.headroom_sigma)
			return;
	*point_add(c) = (struct point){.p = {K_OURS, "ours", o->fc.target, o->fc.headroom_sigma}};
}

/* --- verdicts and reports ------------------------------------------------------ */

static int is_baseline(const struct point *pt)
{
	return pt->p.kind != K_OURS;
}

/* Does point `pt` count at SLO index k?  Static hindsight pools are found
 * per SLO. */
static int at_slo(const struct point *pt, size_t k)
{
	return !pt->slo_only || pt->slo_only == (int)k + 1;
}

static const struct point *find(const struct curveset *c, enum kind kind, double knob,
				double knob2, size_t k)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->pt[i].p.kind == kind && at_slo(&c->pt[i], k) &&
		    fabs(c->pt[i].p.knob - knob) < 1e-9 && fabs(c->pt[i].p.knob2 - knob2) < 1e-9)
			return &c->pt[i];
	return NULL;
}

static void knob_text(const struct opts *o, const struct point *pt, char *buf, size_t len)
{
	switch (pt->p.kind) {
	case K_STATIC:
		if (pt->slo_only)
			snprintf(buf, len, "%.0f pods (fewest missing nothing at %g s, hindsight)",
				 pt->p.knob, o->slo[pt->slo_only - 1]);
		else
			snprintf(buf, len, "60 s peak, no headroom");
		break;
	case K_KEDA_QUEUE: snprintf(buf, len, "value %g", pt->p.knob); break;
	case K_KEDA_RATE: snprintf(buf, len, "value %.3f/s (%.0f %%)", pt->p.knob, pt->p.knob2 * 100); break;
	case K_OURS: snprintf(buf, len, "target %.2f, headroom %g sigma", pt->p.knob, pt->p.knob2); break;
	default: snprintf(buf, len, "target %.2f", pt->p.knob); break;
	}
}

static json_t *point_json(const struct opts *o, const struct point *pt)
{
	json_t *missed = json_object(), *j;
	char knob[96];

	for (size_t k = 0; k < o->nslo; k++) {
		char key[32];
		if (!at_slo(pt, k))
			continue;
		snprintf(key, sizeof key, "%g", o->slo[k]);
		json_object_set_new(missed, key, json_real(pt->r.missed[k]));
	}
	knob_text(o, pt, knob, sizeof knob);
	j = json_pack("{s:s, s:f, s:s, s:f, s:o, s:f, s:f, s:f, s:f, s:f}", "policy", pt->p.name,
		      "knob", pt->p.knob, "setting", knob, "gpu_hours", gpu_total(&pt->r),
		      "slo_missed", missed, "requests", pt->r.requests, "p50_wait_s", pt->r.p50,
		      "p99_wait_s", pt->r.p99, "max_wait_s", pt->r.max_wait, "max_pods",
		      pt->r.max_pods[0]);
	if (pt->p.kind == K_STATIC && pt->slo_only)
		json_object_set_new(j, "hindsight", json_true());
	return j;
}

/* The verdicts at SLO index k: every baseline point matched by an ours
 * point with no more GPU-hours and no more misses; ours at its default
 * against threshold 0.7 and the hindsight static pool. */
static json_t *verdict(const struct opts *o, const struct curveset *c, size_t k, int *all_ok,
		       FILE *out)
{
	json_t *j = json_object(), *lost = json_array();
	const struct point *def = find(c, K_OURS, o->fc.target, o->fc.headroom_sigma, k);
	const struct point *thr = find(c, K_THRESHOLD, 0.7, 0, k);
	const struct point *st = NULL;
	int dominated = 1, d_thr, d_st;

	for (size_t i = 0; i < c->n; i++)
		if (c->pt[i].p.kind == K_STATIC && c->pt[i].slo_only == (int)k + 1)
			st = &c->pt[i];
	for (size_t i = 0; i < c->n; i++) {
		const struct point *b = &c->pt[i];
		int ok = 0;
		if (!is_baseline(b) || !at_slo(b, k))
			continue;
		for (size_t m = 0; m < c->n && !ok; m++) {
			const struct point *q = &c->pt[m];
			ok = q->p.kind == K_OURS && gpu_total(&q->r) <= gpu_total(&b->r) * (1 + 1e-9) &&
			     q->r.missed[k] <= b->r.missed[k];
		}
		if (!ok) {
			char knob[96];
			knob_text(o, b, knob, sizeof knob);
			dominated = 0;
			json_array_append_new(
				lost, json_pack("{s:s, s:s, s:f, s:f}", "policy", b->p.name, "setting",
						knob, "gpu_hours", gpu_total(&b->r), "slo_missed",
						b->r.missed[k]));
			fprintf(out, "    SLO %g s: no ours point at or below %s %s (%.2f GPU-h, %.1f missed)\n",
				o->slo[k], b->p.name, knob, gpu_total(&b->r), b->r.missed[k]);
		}
	}
	d_thr = def && thr && def->r.missed[k] <= thr->r.missed[k];
	d_st = def && st && gpu_total(&def->r) < gpu_total(&st->r);
	if (!dominated || !d_thr || !d_st)
		*all_ok = 0;
	fprintf(out, "    SLO %g s: curve %s; default (target %.1f, headroom %g): %.1f missed vs threshold 0.7's %.1f "
		"(%s), %.2f GPU-h vs static hindsight %.2f (%s)\n",
		o->slo[k], dominated ? "at or below every baseline point" : "NOT below every point",
		o->fc.target, o->fc.headroom_sigma, def ? def->r.missed[k] : NAN, thr ? thr->r.missed[k] : NAN,
		d_thr ? "met" : "MISSED", def ? gpu_total(&def->r) : NAN,
		st ? gpu_total(&st->r) : NAN, d_st ? "met" : "MISSED");
	json_object_set_new(j, "slo_s", json_real(o->slo[k]));
	json_object_set_new(j, "curve_at_or_below_every_baseline", json_boolean(dominated));
	json_object_set_new(j, "baseline_points_not_matched", lost);
	json_object_set_new(j, "default_missed", json_real(def ? def->r.missed[k] : 0));
	json_object_set_new(j, "threshold_0_7_missed", json_real(thr ? thr->r.missed[k] : 0));
	json_object_set_new(j, "default_no_more_misses_than_threshold", json_boolean(d_thr));
	json_object_set_new(j, "default_gpu_hours", json_real(def ? gpu_total(&def->r) : 0));
	json_object_set_new(j, "static_hindsight_gpu_hours", json_real(st ? gpu_total(&st->r) : 0));
	json_object_set_new(j, "default_fewer_gpu_hours_than_static", json_boolean(d_st));
	return j;
}

/* Gnuplot data: one block per policy (two blank lines apart), rows of
 * GPU-hours and misses at each SLO. */
static void plot_data(const struct opts *o, const struct wset *ws, double warmup,
		      const struct hpa_mode *m, const struct curveset *c)
{
	char path[4096], last[64] = "";
	FILE *f;

	if (!o->plot_dir)
		return;
	snprintf(path, sizeof path, "%s/%s-w%.0f-%s.dat", o->plot_dir, ws->sh->name, warmup, m->name);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "autoscale: --plot-dir: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct point *pt = &c->pt[i];
		char name[64];

		if (pt->p.kind == K_STATIC)
			snprintf(name, sizeof name, "%s", pt->slo_only ? "static-hindsight" : "static-peak");
		else if (pt->p.kind == K_OURS)
			snprintf(name, sizeof name, "ours-headroom-%g", pt->p.knob2);
		else
			snprintf(name, sizeof name, "%s", pt->p.name);
		if (last[0] && strcmp(last, name) != 0)
			fputs("\n\n", f);
		if (strcmp(last, name) != 0)
			fprintf(f, "# %s\n", name);
		snprintf(last, sizeof last, "%s", name);
		fprintf(f, "%g %.4f", pt->p.knob, gpu_total(&pt->r));
		for (size_t k = 0; k < o->nslo; k++)
			fprintf(f, at_slo(pt, k) ? " %.2f" : " NaN", pt->r.missed[k]);
		fputc('\n', f);
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "autoscale: --plot-dir: %s: write error\n", path);
		exit(1);
	}
}

static void print_table_head(const struct opts *o)
{
	printf("  %-11s %-44s %9s", "policy", "setting", "GPU-hours");
	for (size_t k = 0; k < o->nslo; k++)
		printf("  missed@%-4g", o->slo[k]);
	printf(" %9s %8s\n", "p99-wait", "max-pods");
}

static void print_point(const struct opts *o, const struct point *pt)
{
	char knob[96];

	knob_text(o, pt, knob, sizeof knob);
	printf("  %-11s %-44s %9.2f", pt->p.name, knob, gpu_total(&pt->r));
	for (size_t k = 0; k < o->nslo; k++)
		if (at_slo(pt, k))
			printf("  %11.1f", pt->r.missed[k]);
		else
			printf("  %11s", "-");
	printf(" %8.1fs %8.0f\n", pt->r.p99, pt->r.max_pods[0]);
}

/* Every warm-up and HPA behaviour of one workload: the curves, the
 * verdicts, the JSON.  Clears *all_ok when a target is missed. */
static void bench_workload(const struct opts *o, const struct wset *ws, json_t *runs, int *all_ok)
{
	struct curveset statics = {0};

	/* The static pools do not depend on the warm-up or the HPA. */
	for (size_t k = 0; k < o->nslo; k++) {
		struct point *pt = point_add(&statics);
		pt->p = (struct policy){K_STATIC, "static", (double)static_zero_miss(o, ws, k), 0};
		pt->slo_only = (int)k + 1;
		run_point(o, ws, &hpa_modes[0], 0.0, pt);
	}
	{
		struct point *pt = point_add(&statics);
		pt->p = (struct policy){K_STATIC, "static", -1, 0};
		run_point(o, ws, &hpa_modes[0], 0.0, pt);
	}
	for (size_t wi = 0; wi < o->nwarmup; wi++) {
		for (size_t mi = 0; mi < NHPA; mi++) {
			const struct hpa_mode *m = &hpa_modes[mi];
			struct curveset c = {0};
			json_t *pts = json_array(), *verdicts = json_array();

			if (!(o->hpa & (1u << mi)))
				continue;
			for (size_t i = 0; i < statics.n; i++)
				*point_add(&c) = statics.pt[i];
			policy_points(o, ws, &c);
			for (size_t i = statics.n; i < c.n; i++)
				run_point(o, ws, m, o->warmup[wi], &c.pt[i]);

			printf("\n%s (%s), warm-up %.0f s, HPA scale-in %s (%.0f %% per %.0f s); "
			       "%u seed%s; load mean %.1f, 60 s peak %.1f workers\n",
			       ws->sh->name, ws->sh->what, o->warmup[wi], m->name, m->down_pct,
			       m->down_period, ws->n, ws->n > 1 ? "s" : "", ws->load_mean,
			       ws->load_peak);
			print_table_head(o);
			for (size_t i = 0; i < c.n; i++) {
				print_point(o, &c.pt[i]);
				json_array_append_new(pts, point_json(o, &c.pt[i]));
			}
			for (size_t k = 0; k < o->nslo; k++)
				json_array_append_new(verdicts, verdict(o, &c, k, all_ok, stdout));
			plot_data(o, ws, o->warmup[wi], m, &c);
			json_array_append_new(
				runs, json_pack("{s:s, s:f, s:s, s:i, s:f, s:f, s:o, s:o}", "workload",
						ws->sh->name, "warmup_s", o->warmup[wi], "hpa",
						m->name, "seeds", (int)ws->n, "offered_load_mean",
						ws->load_mean, "offered_load_peak_60s", ws->load_peak,
						"points", pts, "verdicts", verdicts));
			free(c.pt);
		}
	}
	free(statics.pt);
}

/* --- hybrid bursting -------------------------------------------------------- */

/* The viral pattern through an on-premises pool capped at onprem_x times
 * the base load and a cloud pool, under each hybrid policy. */
static void bench_hybrid(const struct opts *o, const struct wset *ws, json_t *doc)
{
	/* knob2 of the ours rows: the forecast's target (0 = the default). */
	const struct policy hp[] = {
		{K_HYB_ONPREM, "onprem-only", o->fc.target, 0},
		{K_HYB_QUEUE, "keda-queue", 1, 0},
		{K_HYB_NEAR, "ours-near", 1, 0},
		{K_HYB_OURS, "ours", 1, 0},
		{K_HYB_NEAR, "ours-near", 1, 0.7},
		{K_HYB_OURS, "ours", 1, 0.7},
	};
	double base_load = o->base_rps * ws->svc * batch_factor(o) / o->batch;
	uint64_t cap = pods_for(o->onprem_x * base_load, 1.0, 1);
	/* Every policy's cloud ScaledObject gets the same maxReplicaCount:
	 * what the cloud contract allows, here ten times on-premises. */
	uint64_t cloud_max = 10 * cap;
	json_t *rows = json_array();

	printf("\nhybrid: %s; on-premises capped at %llu pods (%.1fx the base load of %.1f "
	       "workers), warm-up %.0f s; cloud up to %llu pods, warm-up %.0f s, %.1fx the cost; "
	       "ours at target %.1f, headroom %g; HPA scale-in %s; %u seeds\n",
	       ws->sh->name, (unsigned long long)cap, o->onprem_x, base_load, o->onprem_warmup,
	       (unsigned long long)cloud_max, o->cloud_warmup, o->cloud_cost, o->fc.target,
	       o->fc.headroom_sigma, hpa_modes[0].name, ws->n);
	printf("  %-12s %-7s %10s %10s %10s", "policy", "target", "onprem-GPUh", "cloud-GPUh",
	       "cost");
	for (size_t k = 0; k < o->nslo; k++)
		printf("  missed@%-4g", o->slo[k]);
	printf(" %9s %10s\n", "p99-wait", "max-cloud");
	for (size_t pi = 0; pi < sizeof hp / sizeof *hp; pi++) {
		struct result acc = {0};
		json_t *missed = json_object();

		for (unsigned i = 0; i < ws->n; i++) {
			struct setup u;
			struct result r;

			setup_single(o, &hp[pi], &hpa_modes[0], o->onprem_warmup,
				     pods_for(ws->first_load[i], 0.7, 1), &u);
			u.npools = 2;
			u.max[0] = cap;
			if (u.initial[0] > cap)
				u.initial[0] = cap;
			u.warmup[1] = o->cloud_warmup;
			u.min[1] = 0;
			u.max[1] = hp[pi].kind == K_HYB_ONPREM ? 0 : cloud_max;
			if (hp[pi].knob2 > 0)
				u.fc.target = hp[pi].knob2;
			u.burst.onprem_max = (uint32_t)cap;
			u.burst.cloud_warmup_s = o->cloud_warmup;
			u.burst.cloud_max = (uint32_t)cloud_max;
			u.burst.cloud_cost = o->cloud_cost;
			run(o, &ws->w[i], &u, &r);
			result_add(&acc, &r, ws->n);
		}
		double target = hp[pi].knob2 > 0 ? hp[pi].knob2 : o->fc.target;
		char tt[16] = "-";

		if (hp[pi].kind != K_HYB_QUEUE)
			snprintf(tt, sizeof tt, "%.1f", target);
		printf("  %-12s %-7s %10.2f %10.2f %10.2f", hp[pi].name, tt, acc.gpu_h[0],
		       acc.gpu_h[1], acc.gpu_h[0] + o->cloud_cost * acc.gpu_h[1]);
		for (size_t k = 0; k < o->nslo; k++) {
			char key[32];
			snprintf(key, sizeof key, "%g", o->slo[k]);
			json_object_set_new(missed, key, json_real(acc.missed[k]));
			printf("  %11.1f", acc.missed[k]);
		}
		printf(" %8.1fs %10.0f\n", acc.p99, acc.max_pods[1]);
		json_array_append_new(
			rows, json_pack("{s:s, s:s, s:f, s:f, s:f, s:o, s:f, s:f}", "policy",
					hp[pi].name, "target", tt, "onprem_gpu_hours", acc.gpu_h[0], "cloud_gpu_hours",
					acc.gpu_h[1], "cost", acc.gpu_h[0] + o->cloud_cost * acc.gpu_h[1],
					"slo_missed", missed, "p99_wait_s", acc.p99, "max_cloud_pods",
					acc.max_pods[1]));
	}
	json_object_set_new(doc, "hybrid",
			    json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:s, s:o}", "workload",
				      ws->sh->name, "onprem_max_pods", (json_int_t)cap,
				      "onprem_warmup_s", o->onprem_warmup, "cloud_warmup_s",
				      o->cloud_warmup, "cloud_cost", o->cloud_cost, "base_load",
				      base_load, "hpa", hpa_modes[0].name, "policies", rows));
}

/* --- command line ----------------------------------------------------------- */

static const char usage_text[] =
	"usage: autoscale [options]\n"
	"\n"
	"Simulate a RabbitMQ queue feeding GPU workers that warm up before serving,\n"
	"scaled by the Kubernetes HPA, and print every policy's curve of GPU-hours\n"
	"against SLO misses over its knob: static pools (the smallest missing\n"
	"nothing, with hindsight, and the 60 s peak), KEDA's RabbitMQ scaler\n"
	"(QueueLength and MessageRate, values swept), a saturation threshold\n"
	"(0.5-0.9) and gpupool's forecast (its target swept).  Then the verdicts:\n"
	"is every baseline point matched by an ours point with no more GPU-hours\n"
	"and no more misses, and does ours at its default miss no more than\n"
	"threshold 0.7 while using fewer GPU-hours than the hindsight static pool.\n"
	"\n"
	"workloads:\n"
	"  --trace FILE        CSV TIMESTAMP,ContextTokens,GeneratedTokens (default\n"
	"                      ../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv),\n"
	"                      replayed as the workload \"trace\"; the others draw their\n"
	"                      token counts from it\n"
	"  --workloads LIST    comma-separated, of: trace, surge, ramp7, step7,\n"
	"                      flash10, viral (default all)\n"
	"  --base-rps R        base rate of the synthetic workloads, requests/s (2)\n"
	"  --seeds N           seeds per synthetic workload, averaged (3)\n"
	"  --seed N            the first seed (1)\n"
	"\n"
	"grid:\n"
	"  --slo LIST          SLOs in seconds of waiting for a worker (10,30)\n"
	"  --warmup LIST       pod creation to serving, seconds (30,60,120)\n"
	"  --hpa LIST          scale-in behaviours: keda (10 %% per 60 s, deploy/keda's),\n"
	"                      default (100 %% per 15 s, the HPA's) (keda,default)\n"
	"  --quick             fewer knob values (for tests)\n"
	"\n"
	"model:\n"
	"  --svc-base S        service time = base + prefill x context tokens\n"
	"  --svc-prefill S       + decode x generated tokens; defaults 0.05 s,\n"
	"  --svc-decode S        0.0001 s and 0.012 s (a 13B model at batch 1)\n"
	"  --prefetch N        messages a worker holds (basic.qos) (1)\n"
	"  --batch N           of those, served at once, <= prefetch (1)\n"
	"  --batch-slow X      each request of a batch of B takes 1 + X(B-1) times\n"
	"                      its service time (0.15)\n"
	"  --settle S          unscored start while the policies settle (300)\n"
	"\n"
	"autoscaling:\n"
	"  --sync S            HPA sync period (15)\n"
	"  --poll S            gpupool scaler's poll period, a multiple of 5 (5)\n"
	"  --stabilize S       HPA scale-in stabilization window (300)\n"
	"  --min N, --max N    replica bounds (1, 1000)\n"
	"  --target X          ours: the default target the verdicts judge (0.7)\n"
	"  --headroom X        ours: the default headroom, in sigmas (0)\n"
	"  --level-hl S, --trend-hl S, --service-hl S\n"
	"                      ours: smoothing half-lives (forecast.h defaults)\n"
	"  --drain S           ours: backlog drain time (three warm-ups)\n"
	"  --jump-sigma X      ours: surge detection threshold, 0 = off (4)\n"
	"  --noise-hl S        ours: half-life of the rate's noise estimate (300)\n"
	"\n"
	"hybrid bursting (the viral pattern, two pools):\n"
	"  --no-hybrid         skip it\n"
	"  --onprem-x X        on-premises capacity, times the base load (2)\n"
	"  --onprem-warmup S   (60)      --cloud-warmup S   (180)\n"
	"  --cloud-cost X      a cloud GPU-hour in on-premises GPU-hours (3)\n"
	"\n"
	"  --json FILE         write the results as JSON\n"
	"  --plot-dir DIR      write gnuplot data, one file per workload, warm-up, HPA\n"
	"  --timeline FILE     write every run's state every 5 s as CSV (large)\n"
	"  --help              this text\n";

/* Split a comma-separated list into at most MAX_LIST items, in `buf`.
 * Returns the count, or -1 after naming the option. */
static int split_list(const char *opt, const char *arg, char buf[256], char *items[MAX_LIST])
{
	char *save = NULL, *tok;
	int n = 0;

	if (strlen(arg) >= 256) {
		fprintf(stderr, "autoscale: --%s: list too long\n", opt);
		return -1;
	}
	strcpy(buf, arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == MAX_LIST) {
			fprintf(stderr, "autoscale: --%s: at most %d values\n", opt, MAX_LIST);
			return -1;
		}
		items[n++] = tok;
	}
	if (n == 0)
		fprintf(stderr, "autoscale: --%s: empty list\n", opt);
	return n ? n : -1;
}

/* A comma-separated list of numbers within [lo, hi]. */
static int opt_list(const char *opt, const char *arg, double lo, double hi, double *out,
		    size_t *n)
{
	char buf[256], *items[MAX_LIST];
	int k = split_list(opt, arg, buf, items);

	if (k < 0)
		return -1;
	for (int i = 0; i < k; i++)
		if (numopt_parse("autoscale", opt, items[i], lo, hi, &out[i]))
			return -1;
	*n = (size_t)k;
	return 0;
}

/* A comma-separated list of names out of `names`, as a bit set. */
static int opt_names(const char *opt, const char *arg, const char *const *names, size_t nnames,
		     unsigned *out)
{
	char buf[256], *items[MAX_LIST];
	int k = split_list(opt, arg, buf, items);

	if (k < 0)
		return -1;
	*out = 0;
	for (int i = 0; i < k; i++) {
		size_t j = 0;
		while (j < nnames && strcmp(names[j], items[i]) != 0)
			j++;
		if (j == nnames) {
			fprintf(stderr, "autoscale: --%s: unknown '%s'; one of:", opt, items[i]);
			for (j = 0; j < nnames; j++)
				fprintf(stderr, " %s", names[j]);
			fputc('\n', stderr);
			return -1;
		}
		*out |= 1u << j;
	}
	return 0;
}

enum {
	O_TRACE = 256, O_WORKLOADS, O_JSON, O_PLOT, O_SLO, O_WARMUP, O_HPA, O_QUICK, O_SYNC,
	O_POLL, O_SETTLE, O_TARGET, O_STABILIZE, O_MIN, O_MAX, O_SVC_BASE, O_SVC_PREFILL,
	O_SVC_DECODE, O_SEED, O_SEEDS, O_BASE, O_PREFETCH, O_BATCH, O_BATCH_SLOW, O_LEVEL_HL,
	O_TREND_HL, O_SERVICE_HL, O_DRAIN, O_JUMP, O_NOISE_HL, O_TIMELINE, O_NO_HYBRID,
	O_ONPREM_X, O_ONPREM_WARMUP, O_CLOUD_WARMUP, O_CLOUD_COST, O_HEADROOM, O_HELP,
};

/* Numeric options: where each goes and its bounds (table, not if-chain). */
static const struct numopt numopts[] = {
#define NO(id, name, field, lo, hi) {id, name, offsetof(struct opts, field), lo, hi}
	NO(O_SYNC, "sync", sync, 5, 3600),
	NO(O_POLL, "poll", poll, 5, 3600),
	NO(O_SETTLE, "settle", settle, 0, 1e6),
	NO(O_TARGET, "target", fc.target, 0.01, 1),
	NO(O_STABILIZE, "stabilize", stabilize, 0, 3600),
	NO(O_SVC_BASE, "svc-base", svc_base, 0, 3600),
	NO(O_SVC_PREFILL, "svc-prefill", svc_prefill, 0, 10),
	NO(O_SVC_DECODE, "svc-decode", svc_decode, 0, 10),
	NO(O_BATCH_SLOW, "batch-slow", batch_slow, 0, 10),
	NO(O_BASE, "base-rps", base_rps, 0.001, 1e4),
	NO(O_LEVEL_HL, "level-hl", fc.level_halflife_s, 0.1, 1e5),
	NO(O_TREND_HL, "trend-hl", fc.trend_halflife_s, 0.1, 1e5),
	NO(O_SERVICE_HL, "service-hl", fc.service_halflife_s, 0.1, 1e5),
	NO(O_DRAIN, "drain", fc.drain_s, 0.1, 1e5),
	NO(O_JUMP, "jump-sigma", fc.jump_sigma, 0, 1e3),
	NO(O_NOISE_HL, "noise-hl", fc.noise_halflife_s, 0.1, 1e5),
	NO(O_HEADROOM, "headroom", fc.headroom_sigma, 0, 100),
	NO(O_ONPREM_X, "onprem-x", onprem_x, 0.1, 1000),
	NO(O_ONPREM_WARMUP, "onprem-warmup", onprem_warmup, 0, 1e5),
	NO(O_CLOUD_WARMUP, "cloud-warmup", cloud_warmup, 1, 1e5),
	NO(O_CLOUD_COST, "cloud-cost", cloud_cost, 0.01, 1000),
#undef NO
};

/* Whole-number options: name, bounds, and where each goes. */
static int opt_uint(const char *name, const char *arg, unsigned long long hi,
		    unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(arg, &end, 10);
	if (*arg < '0' || *arg > '9' || *end || errno || *out > hi) {
		fprintf(stderr, "autoscale: --%s %s: expected a whole number up to %llu\n", name,
			arg, hi);
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"trace", required_argument, NULL, O_TRACE},
		{"workloads", required_argument, NULL, O_WORKLOADS},
		{"json", required_argument, NULL, O_JSON},
		{"plot-dir", required_argument, NULL, O_PLOT},
		{"slo", required_argument, NULL, O_SLO},
		{"warmup", required_argument, NULL, O_WARMUP},
		{"hpa", required_argument, NULL, O_HPA},
		{"quick", no_argument, NULL, O_QUICK},
		{"sync", required_argument, NULL, O_SYNC},
		{"poll", required_argument, NULL, O_POLL},
		{"settle", required_argument, NULL, O_SETTLE},
		{"target", required_argument, NULL, O_TARGET},
		{"stabilize", required_argument, NULL, O_STABILIZE},
		{"min", required_argument, NULL, O_MIN},
		{"max", required_argument, NULL, O_MAX},
		{"svc-base", required_argument, NULL, O_SVC_BASE},
		{"svc-prefill", required_argument, NULL, O_SVC_PREFILL},
		{"svc-decode", required_argument, NULL, O_SVC_DECODE},
		{"seed", required_argument, NULL, O_SEED},
		{"seeds", required_argument, NULL, O_SEEDS},
		{"base-rps", required_argument, NULL, O_BASE},
		{"prefetch", required_argument, NULL, O_PREFETCH},
		{"batch", required_argument, NULL, O_BATCH},
		{"batch-slow", required_argument, NULL, O_BATCH_SLOW},
		{"level-hl", required_argument, NULL, O_LEVEL_HL},
		{"trend-hl", required_argument, NULL, O_TREND_HL},
		{"service-hl", required_argument, NULL, O_SERVICE_HL},
		{"drain", required_argument, NULL, O_DRAIN},
		{"jump-sigma", required_argument, NULL, O_JUMP},
		{"noise-hl", required_argument, NULL, O_NOISE_HL},
		{"headroom", required_argument, NULL, O_HEADROOM},
		{"timeline", required_argument, NULL, O_TIMELINE},
		{"no-hybrid", no_argument, NULL, O_NO_HYBRID},
		{"onprem-x", required_argument, NULL, O_ONPREM_X},
		{"onprem-warmup", required_argument, NULL, O_ONPREM_WARMUP},
		{"cloud-warmup", required_argument, NULL, O_CLOUD_WARMUP},
		{"cloud-cost", required_argument, NULL, O_CLOUD_COST},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	const char *wnames[NSHAPES], *hnames[NHPA];
	int c;

	for (size_t i = 0; i < NSHAPES; i++)
		wnames[i] = shapes[i].name;
	for (size_t i = 0; i < NHPA; i++)
		hnames[i] = hpa_modes[i].name;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		unsigned long long v;
		int rc = numopt_apply("autoscale", numopts, sizeof numopts / sizeof *numopts, c,
				      optarg, o);

		if (rc < 0)
			return 2;
		if (rc > 0)
			continue;
		switch (c) {
		case O_TRACE: o->trace = optarg; break;
		case O_JSON: o->json = optarg; break;
		case O_PLOT: o->plot_dir = optarg; break;
		case O_QUICK: o->quick = 1; break;
		case O_NO_HYBRID: o->hybrid = 0; break;
		case O_WORKLOADS:
			if (opt_names("workloads", optarg, wnames, NSHAPES, &o->workloads))
				return 2;
			break;
		case O_HPA:
			if (opt_names("hpa", optarg, hnames, NHPA, &o->hpa))
				return 2;
			break;
		case O_SLO:
			if (opt_list("slo", optarg, 0.001, 1e6, o->slo, &o->nslo))
				return 2;
			break;
		case O_WARMUP:
			if (opt_list("warmup", optarg, 0, 1e5, o->warmup, &o->nwarmup))
				return 2;
			break;
		case O_TIMELINE:
			if (o->timeline)
				fclose(o->timeline);
			o->timeline = fopen(optarg, "w");
			if (!o->timeline) {
				fprintf(stderr, "autoscale: --timeline %s: %s\n", optarg,
					strerror(errno));
				return 2;
			}
			fputs("workload,policy,knob,knob2,hpa,t,replicas,cloud_replicas,consumers,"
			      "unacked,queued,publish_rate,saturation,forecast_saturation,desired\n",
			      o->timeline);
			break;
		case O_MIN:
			if (opt_uint("min", optarg, 100000, &v))
				return 2;
			o->min_replicas = (uint32_t)v;
			break;
		case O_MAX:
			if (opt_uint("max", optarg, 100000, &v))
				return 2;
			o->max_replicas = (uint32_t)v;
			break;
		case O_SEED:
			if (opt_uint("seed", optarg, UINT64_MAX, &v))
				return 2;
			o->seed = v;
			break;
		case O_SEEDS:
			if (opt_uint("seeds", optarg, MAX_SEEDS, &v) || v == 0) {
				if (v == 0)
					fprintf(stderr, "autoscale: --seeds: at least 1\n");
				return 2;
			}
			o->seeds = (unsigned)v;
			break;
		case O_PREFETCH:
		case O_BATCH:
			if (opt_uint(c == O_PREFETCH ? "prefetch" : "batch", optarg, MAX_PREFETCH, &v) ||
			    v == 0) {
				if (v == 0)
					fprintf(stderr, "autoscale: --prefetch and --batch: at least 1\n");
				return 2;
			}
			if (c == O_PREFETCH)
				o->prefetch = (uint32_t)v;
			else
				o->batch = (uint32_t)v;
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
	if (o->batch > o->prefetch) {
		fprintf(stderr, "autoscale: --batch %u is more than --prefetch %u: a worker "
				"serves only what it holds\n", o->batch, o->prefetch);
		return 2;
	}
	if (fmod(o->poll, STATS_INTERVAL) != 0.0 || fmod(o->sync, STATS_INTERVAL) != 0.0) {
		fprintf(stderr, "autoscale: --poll and --sync must be multiples of %g s (the "
				"broker's statistics interval)\n", STATS_INTERVAL);
		return 2;
	}
	return 0;
}

/* Build the seeds of workload `sh` (index i of shapes). */
static void make_wset(const struct opts *o, size_t i, const struct workload *trace,
		      const struct tokens *tk, struct wset *ws)
{
	memset(ws, 0, sizeof *ws);
	ws->sh = &shapes[i];
	ws->n = i == 0 ? 1 : o->seeds;
	for (unsigned k = 0; k < ws->n; k++) {
		if (i == 0)
			ws->w[k] = *trace;
		else
			make_shape(o, &shapes[i], o->seed + k, tk, &ws->w[k]);
		if (ws->w[k].n < 2) {
			fprintf(stderr, "autoscale: %s has fewer than two requests\n", shapes[i].name);
			exit(1);
		}
		ws->first_load[k] = mean_load(o, &ws->w[k], fmin(o->settle, ws->w[k].end));
		if (!(ws->first_load[k] > 0.0))
			ws->first_load[k] = mean_load(o, &ws->w[k], ws->w[k].end);
		ws->peak[k] = peak_load(o, &ws->w[k], 60.0);
		ws->load_mean += mean_load(o, &ws->w[k], ws->w[k].end) / ws->n;
		ws->load_peak += ws->peak[k] / ws->n;
		ws->svc += mean_svc(&ws->w[k]) / ws->n;
	}
}

static void free_wset(struct wset *ws)
{
	if (ws->sh != &shapes[0])
		for (unsigned k = 0; k < ws->n; k++)
			free(ws->w[k].r);
}

int main(int argc, char **argv)
{
	struct opts o = {
		.trace = "../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv",
		.workloads = (1u << NSHAPES) - 1, .hybrid = 1,
		.slo = {10, 30}, .nslo = 2, .warmup = {30, 60, 120}, .nwarmup = 3,
		.hpa = (1u << NHPA) - 1, .seed = 1, .seeds = 3,
		.sync = 15, .poll = 5, .settle = 300, .stabilize = 300,
		.min_replicas = 1, .max_replicas = 1000,
		.svc_base = 0.05, .svc_prefill = 0.0001, .svc_decode = 0.012,
		.prefetch = 1, .batch = 1, .batch_slow = 0.15, .base_rps = 2,
		.onprem_x = 2, .onprem_warmup = 60, .cloud_warmup = 180, .cloud_cost = 3,
	};
	struct workload trace;
	struct tokens tk;
	json_t *doc, *runs = json_array(), *cfg;
	int rc, all_ok = 1;
	const char *bad;

	gp_forecast_config_default(&o.fc);
	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	o.fc.min_replicas = o.min_replicas;
	o.fc.max_replicas = o.max_replicas;
	if (gp_forecast_config_check(&o.fc, &bad) != 0) {
		fprintf(stderr, "autoscale: forecast configuration: bad %s\n", bad);
		return 2;
	}
	if (o.plot_dir && mkdir(o.plot_dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "autoscale: --plot-dir %s: %s\n", o.plot_dir, strerror(errno));
		return 2;
	}
	if (load_trace(&o, &trace, &tk) != 0)
		return 1;

	printf("autoscale: SLOs");
	for (size_t k = 0; k < o.nslo; k++)
		printf(" %g s", o.slo[k]);
	printf("; HPA sync %.0f s, tolerance %.1f, scale-in window %.0f s; service = %.3f + "
	       "%.5f ctx + %.4f gen s; prefetch %u, batch %u\n",
	       o.sync, HPA_TOLERANCE, o.stabilize, o.svc_base, o.svc_prefill, o.svc_decode,
	       o.prefetch, o.batch);
	for (size_t i = 0; i < NSHAPES; i++) {
		struct wset ws;
		if (!(o.workloads & (1u << i)))
			continue;
		make_wset(&o, i, &trace, &tk, &ws);
		bench_workload(&o, &ws, runs, &all_ok);
		free_wset(&ws);
	}

	cfg = json_pack("{s:s, s:f, s:f, s:f, s:f, s:I, s:I, s:{s:f, s:f, s:f}, s:I, s:I, s:f, "
			"s:f, s:I, s:I, s:b}",
			"trace", o.trace, "hpa_sync_s", o.sync, "poll_s", o.poll, "settle_s",
			o.settle, "stabilize_s", o.stabilize, "min_replicas",
			(json_int_t)o.min_replicas, "max_replicas", (json_int_t)o.max_replicas,
			"service", "base_s", o.svc_base, "prefill_s_per_token", o.svc_prefill,
			"decode_s_per_token", o.svc_decode, "prefetch", (json_int_t)o.prefetch,
			"batch", (json_int_t)o.batch, "batch_slow", o.batch_slow, "base_rps",
			o.base_rps, "seed", (json_int_t)o.seed, "seeds", (json_int_t)o.seeds,
			"quick", o.quick);
	json_object_set_new(cfg, "forecast",
			    json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "default_target",
				      o.fc.target, "level_halflife_s", o.fc.level_halflife_s,
				      "trend_halflife_s", o.fc.trend_halflife_s,
				      "service_halflife_s", o.fc.service_halflife_s, "drain_s",
				      o.fc.drain_s, "jump_sigma", o.fc.jump_sigma,
				      "noise_halflife_s", o.fc.noise_halflife_s));
	doc = json_pack("{s:s, s:o, s:o}", "benchmark", "autoscale", "config", cfg, "runs", runs);
	if (o.hybrid) {
		struct wset ws;
		size_t viral = NSHAPES - 1;
		make_wset(&o, viral, &trace, &tk, &ws);
		bench_hybrid(&o, &ws, doc);
		free_wset(&ws);
	}
	printf("\nall targets %s\n", all_ok ? "met" : "NOT met (see the lines above)");
	json_object_set_new(doc, "all_targets_met", json_boolean(all_ok));
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
