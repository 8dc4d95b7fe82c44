/* hotswap.c - the model hotswap benchmark: a discrete-event simulation of
 * 40 models served by a fixed pool of engines over a day, under three
 * policies (docs/swap.md):
 *
 *   static   every model pinned with the replicas its own peak needs (the
 *            "before"): its engine count is what that placement packs into;
 *            on a smaller pool the peak-sized replicas are cut down, the
 *            busiest-per-replica models keeping theirs longest;
 *   lru      ModelMesh's way: a model is loaded on demand onto the engine
 *            whose least recently used models can be evicted, requests wait
 *            for the load; another copy is loaded when the copies are
 *            saturated; no minimum replicas;
 *   ours     src/swap/planner.h every few seconds (and at once when a request
 *            finds its model absent), demand from src/scaler/forecast.h per
 *            model, a minimum of replicas for every model that has had
 *            demand.
 *
 * The pool: engines of --engine-gb each, weights swapped in from the
 * engine's host memory (an LRU cache of --host-cache-gb per engine, at
 * --host-bw) or from disk (--disk-bw); loads on one engine run one after
 * another.  A replica serves up to --batch requests at once and an engine's
 * GPU serves at most --batch at once whatever models share it; time to first
 * token = queueing (swap wait included) + prefill (context tokens at
 * --prefill-tps); generation runs at --decode-tps per request.  Token counts
 * are drawn from the Azure LLM trace, read in place.
 *
 * Demand: Zipf popularity over the models whose ranking rotates every
 * --rotate-h hours (blended over the last hour of each period), a diurnal
 * curve, one model going viral (10x for an hour), one new model launched
 * mid-day (no demand before).
 *
 * Reported per policy: requests, SLO misses (TTFT over --slo, and requests
 * never served), p50/p99 TTFT, the engines needed for misses under
 * --miss-target (searched over the pool size), swaps per hour, bytes moved;
 * and the failover scenario: one engine lost, every model that fell below
 * its minimum timed until it is restored, against its swap time + 5 s.
 *
 * The plots' figures: the sweep (--sweep: every policy's SLO misses, bytes
 * moved and swaps at each pool size of a list) and the day's timeline (SLO
 * misses by arrival time and swaps by start time, per --timeline-interval, of
 * the runs on --engines); in the table's output and the JSON, and as gnuplot
 * data with --plot-dir (bench/lib/hotswap-plot.sh draws them).
 */
#include "lib/numopt.h"
#include "lib/rng.h"
#include "scaler/forecast.h"
#include "swap/planner.h"

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

#define NM 40                    /* models */
#define MAX_ENGINES 256u
#define MAX_REPS 8192u           /* replica records, zombies included */
#define MAX_PER_ENGINE 96u       /* replicas on one engine */
#define MAX_PER_MODEL 256u       /* replicas of one model */
#define MAX_LINE 256
#define MAX_TRACE 10000000u
#define MAX_REQUESTS 50000000u
#define GB 1e9
#define DAY 86400.0
#define SLICE 10.0               /* demand is constant within a slice */
#define FAILOVER_SLACK 5.0       /* the target: swap time + 5 s */
#define MAX_BINS 1440u           /* timeline intervals: 24 h in minutes */
#define MAX_SWEEP 256u           /* pool sizes in --sweep */

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "hotswap: out of memory\n");
		exit(1);
	}
	return p;
}

/* --- the catalog ---------------------------------------------------------- */

/* GPU memory one replica needs, GB: a spread from 1 B-parameter models to a
 * 70 B one in 16-bit (140 GB, two engines).  Deterministic, 40 entries. */
static const double model_gb[NM] = {
	140, 70, 65, 48, 40, 34, 30, 28, 26, 24, 20, 16, 16, 15, 14, 14, 13, 10, 9, 8,
	8, 7, 7, 6, 6, 5, 4, 4, 3, 3, 3, 2, 2, 2, 1.5, 1.5, 1, 1, 1, 1,
};
#define VIRAL 8   /* the model that goes viral: 26 GB, 12th in the 15 h ranking */
#define LAUNCH 3  /* the model launched mid-day: 48 GB */

/* --- options -------------------------------------------------------------- */

struct opts {
	const char *trace, *json, *plot_dir;
	const char *sweep;       /* --sweep LIST; NULL = no sweep */
	double timeline_s;
	double hours, engine_gb, host_bw, disk_bw, host_cache_gb, slo, prefill_tps,
		decode_tps, base_rps, zipf, rotate_h, plan_s, horizon_s, hold_s, target,
		margin, health_s, fail_h, viral_h, launch_h, miss_target;
	unsigned engines, batch, min_replicas, max_loads, search;
	uint64_t seed;
};

enum {
	O_TRACE = 256, O_JSON, O_HOURS, O_ENGINES, O_ENGINE_GB, O_HOST_BW, O_DISK_BW,
	O_HOST_CACHE, O_SLO, O_BATCH, O_PREFILL, O_DECODE, O_BASE, O_ZIPF, O_ROTATE, O_PLAN,
	O_HORIZON, O_HOLD, O_TARGET, O_MARGIN, O_HEALTH, O_FAIL, O_VIRAL, O_LAUNCH, O_MIN,
	O_MAX_LOADS, O_SEED, O_MISS, O_NO_SEARCH, O_SWEEP, O_NO_SWEEP, O_TIMELINE, O_PLOT,
	O_HELP,
};

/* Numeric options: where each goes and its bounds. */
static const struct numopt numopts[] = {
#define NO(id, name, field, lo, hi) {id, name, offsetof(struct opts, field), lo, hi}
	NO(O_HOURS, "hours", hours, 0.1, 24),
	NO(O_ENGINE_GB, "engine-gb", engine_gb, 1, 1e4),
	NO(O_HOST_BW, "host-bw", host_bw, 0.01, 1e4),
	NO(O_DISK_BW, "disk-bw", disk_bw, 0.01, 1e4),
	NO(O_HOST_CACHE, "host-cache-gb", host_cache_gb, 0, 1e5),
	NO(O_SLO, "slo", slo, 0.01, 3600),
	NO(O_PREFILL, "prefill-tps", prefill_tps, 1, 1e8),
	NO(O_DECODE, "decode-tps", decode_tps, 0.1, 1e6),
	NO(O_BASE, "base-rps", base_rps, 0.01, 1e4),
	NO(O_ZIPF, "zipf", zipf, 0, 5),
	NO(O_ROTATE, "rotate-h", rotate_h, 1.5, 24),
	NO(O_PLAN, "plan-interval", plan_s, 0.5, 600),
	NO(O_HORIZON, "horizon", horizon_s, 1, 3600),
	NO(O_HOLD, "hold", hold_s, 0, 86400),
	NO(O_TARGET, "target", target, 0.05, 1),
	NO(O_MARGIN, "margin", margin, 0, 10),
	NO(O_HEALTH, "health-interval", health_s, 0.1, 600),
	NO(O_FAIL, "fail-at-h", fail_h, 0, 24),
	NO(O_VIRAL, "viral-at-h", viral_h, 0, 24),
	NO(O_LAUNCH, "launch-at-h", launch_h, 0, 24),
	NO(O_MISS, "miss-target", miss_target, 0, 1),
	NO(O_TIMELINE, "timeline-interval", timeline_s, 60, 86400),
#undef NO
};

/* Whole-number options. */
static const struct intopt {
	int id;
	const char *name;
	size_t off;
	unsigned lo, hi;
} intopts[] = {
#define IO(id, name, field, lo, hi) {id, name, offsetof(struct opts, field), lo, hi}
	IO(O_ENGINES, "engines", engines, 1, MAX_ENGINES),
	IO(O_BATCH, "batch", batch, 1, 1024),
	IO(O_MIN, "min", min_replicas, 0, 8),
	IO(O_MAX_LOADS, "max-loads", max_loads, 1, 1000),
#undef IO
};

static const char usage_text[] =
	"usage: hotswap [options]\n"
	"A day of 40 models on a fixed pool of engines: static pinned replicas, LRU\n"
	"load-on-demand and gpupool's planner; SLO misses, engines needed, swaps.\n"
	"\n"
	"  --trace FILE        Azure LLM trace for token counts (default\n"
	"                      ../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv)\n"
	"  --json FILE         write the results as JSON\n"
	"  --hours H           simulated hours (24)\n"
	"  --engines N         the pool (16)           --engine-gb G   memory per engine (80)\n"
	"  --host-bw G         host -> GPU, GB/s (20)  --disk-bw G     disk -> GPU, GB/s (2)\n"
	"  --host-cache-gb G   host memory cache per engine, LRU (128)\n"
	"  --slo S             time-to-first-token SLO, s (5)\n"
	"  --batch N           concurrent requests per replica and per engine (16)\n"
	"  --prefill-tps T     prefill tokens/s (10000)  --decode-tps T  per request (30)\n"
	"  --base-rps R        mean request rate of the day (12)\n"
	"  --zipf S            popularity exponent (1.0)  --rotate-h H  ranking period (3)\n"
	"  --viral-at-h H      the viral hour starts (15) --launch-at-h H  new model (12)\n"
	"  --plan-interval S   ours: planner period (5)   --horizon S  forecast horizon (60)\n"
	"  --hold S            ours: hysteresis hold (120) --target U  utilization (0.7)\n"
	"  --margin M          ours: hysteresis margin (0.25) --max-loads N  per round (8)\n"
	"  --min N             ours: minimum replicas of a model that has had demand (1)\n"
	"  --health-interval S engine health checks (2)   --fail-at-h H  engine lost (13)\n"
	"  --miss-target F     share of misses the engine search allows (0.001)\n"
	"  --no-search         skip the search for engines needed\n"
	"  --sweep LIST        every policy on each pool size of LIST: sizes and ranges\n"
	"                      A-B or A-B/STEP, comma-separated; `peak' is static's\n"
	"                      peak-sized pool (e.g. 8-peak; default: no sweep)\n"
	"  --no-sweep          no sweep (undoes an earlier --sweep)\n"
	"  --timeline-interval S  the day's timeline of misses and swaps, per S s (3600)\n"
	"  --plot-dir DIR      write gnuplot data: engines.dat (the sweep), day.dat\n"
	"                      (the timeline), meta.gp (figures for the labels)\n"
	"  --seed N            (1)\n"
	"  --help              this text\n";

/* One bound of a --sweep range: a whole number in [1, MAX_ENGINES], or
 * `peak'.  Returns the end of it, or NULL. */
static const char *sweep_num(const char *p, unsigned peak, unsigned *v)
{
	unsigned long x = 0;
	const char *q = p;

	if (strncmp(p, "peak", 4) == 0) {
		*v = peak;
		return p + 4;
	}
	while (*q >= '0' && *q <= '9' && x <= MAX_ENGINES)
		x = x * 10 + (unsigned long)(*q++ - '0');
	if (q == p || x < 1 || x > MAX_ENGINES)
		return NULL;
	*v = (unsigned)x;
	return q;
}

/* Parse --sweep LIST ("8-peak", "8,12,16-24/2") with `peak' standing for
 * `peak' engines: the pool sizes into out[], in order.  Returns how many, or
 * -1 after saying what is wrong. */
static int parse_sweep(const char *list, unsigned peak, unsigned *out)
{
	const char *p = list;
	int n = 0;

	for (;;) {
		unsigned a, b, step = 1;
		p = sweep_num(p, peak, &a);
		if (!p)
			goto bad;
		b = a;
		if (*p == '-') {
			p = sweep_num(p + 1, peak, &b);
			if (!p || b < a)
				goto bad;
			if (*p == '/') {
				p = sweep_num(p + 1, MAX_ENGINES, &step);
				if (!p)
					goto bad;
			}
		}
		for (unsigned x = a; x <= b; x += step) {
			if (n == (int)MAX_SWEEP) {
				fprintf(stderr, "hotswap: --sweep %s: more than %u pool sizes\n", list,
					MAX_SWEEP);
				return -1;
			}
			out[n++] = x;
		}
		if (!*p)
			return n;
		if (*p++ != ',')
			goto bad;
	}
bad:
	fprintf(stderr, "hotswap: --sweep %s: expected pool sizes (1-%u, or peak) and ranges "
		"A-B[/STEP], comma-separated\n", list, MAX_ENGINES);
	return -1;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"trace", required_argument, NULL, O_TRACE},
		{"json", required_argument, NULL, O_JSON},
		{"hours", required_argument, NULL, O_HOURS},
		{"engines", required_argument, NULL, O_ENGINES},
		{"engine-gb", required_argument, NULL, O_ENGINE_GB},
		{"host-bw", required_argument, NULL, O_HOST_BW},
		{"disk-bw", required_argument, NULL, O_DISK_BW},
		{"host-cache-gb", required_argument, NULL, O_HOST_CACHE},
		{"slo", required_argument, NULL, O_SLO},
		{"batch", required_argument, NULL, O_BATCH},
		{"prefill-tps", required_argument, NULL, O_PREFILL},
		{"decode-tps", required_argument, NULL, O_DECODE},
		{"base-rps", required_argument, NULL, O_BASE},
		{"zipf", required_argument, NULL, O_ZIPF},
		{"rotate-h", required_argument, NULL, O_ROTATE},
		{"plan-interval", required_argument, NULL, O_PLAN},
		{"horizon", required_argument, NULL, O_HORIZON},
		{"hold", required_argument, NULL, O_HOLD},
		{"target", required_argument, NULL, O_TARGET},
		{"margin", required_argument, NULL, O_MARGIN},
		{"health-interval", required_argument, NULL, O_HEALTH},
		{"fail-at-h", required_argument, NULL, O_FAIL},
		{"viral-at-h", required_argument, NULL, O_VIRAL},
		{"launch-at-h", required_argument, NULL, O_LAUNCH},
		{"min", required_argument, NULL, O_MIN},
		{"max-loads", required_argument, NULL, O_MAX_LOADS},
		{"miss-target", required_argument, NULL, O_MISS},
		{"seed", required_argument, NULL, O_SEED},
		{"no-search", no_argument, NULL, O_NO_SEARCH},
		{"sweep", required_argument, NULL, O_SWEEP},
		{"no-sweep", no_argument, NULL, O_NO_SWEEP},
		{"timeline-interval", required_argument, NULL, O_TIMELINE},
		{"plot-dir", required_argument, NULL, O_PLOT},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int done = numopt_apply("hotswap", numopts, sizeof numopts / sizeof *numopts, c,
					optarg, o);

		if (done < 0)
			return 2;
		for (size_t i = 0; i < sizeof intopts / sizeof *intopts && !done; i++) {
			const struct intopt *n = &intopts[i];
			char *end;
			unsigned long v;
			if (n->id != c)
				continue;
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end || errno || v < n->lo || v > n->hi) {
				fprintf(stderr, "hotswap: --%s %s: expected a whole number in [%u, %u]\n",
					n->name, optarg, n->lo, n->hi);
				return 2;
			}
			*(unsigned *)((char *)o + n->off) = (unsigned)v;
			done = 1;
		}
		if (done)
			continue;
		switch (c) {
		case O_TRACE: o->trace = optarg; break;
		case O_JSON: o->json = optarg; break;
		case O_NO_SEARCH: o->search = 0; break;
		case O_SWEEP: {
			unsigned dummy[MAX_SWEEP];
			if (parse_sweep(optarg, MAX_ENGINES, dummy) < 0)
				return 2;
			o->sweep = optarg;
			break;
		}
		case O_NO_SWEEP: o->sweep = NULL; break;
		case O_PLOT: o->plot_dir = optarg; break;
		case O_SEED: {
			char *end;
			errno = 0;
			o->seed = strtoull(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end || errno) {
				fprintf(stderr, "hotswap: --seed %s: expected a whole number\n", optarg);
				return 2;
			}
			break;
		}
		case O_HELP: fputs(usage_text, stdout); exit(0);
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hotswap: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

/* --- the trace: token counts only ---------------------------------------- */

struct tokens {
	uint32_t *ctx, *gen;
	size_t n;
};

/* Read ContextTokens,GeneratedTokens from a trace in the Azure format
 * (TIMESTAMP,ContextTokens,GeneratedTokens; the header line is skipped).
 * Returns 0, or -1 after saying what is wrong and where. */
static int load_tokens(const char *path, struct tokens *tk)
{
	FILE *f = fopen(path, "r");
	char line[MAX_LINE + 2];
	size_t cap = 0, lineno = 0;
	int rc = -1;

	memset(tk, 0, sizeof *tk);
	if (!f) {
		fprintf(stderr, "hotswap: --trace %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		size_t len = strlen(line);
		unsigned long c, g;
		char *p, *end;

		lineno++;
		if (len > MAX_LINE || (len == sizeof line - 1 && line[len - 1] != '\n')) {
			fprintf(stderr, "hotswap: %s:%zu: line longer than %d bytes\n", path, lineno,
				MAX_LINE);
			goto out;
		}
		if (lineno == 1 && strncmp(line, "TIMESTAMP", 9) == 0)
			continue;
		if (len <= 1)
			continue;
		p = strchr(line, ',');
		if (!p)
			goto bad;
		errno = 0;
		c = strtoul(p + 1, &end, 10);
		if (end == p + 1 || *end != ',' || errno || c > 10000000ul)
			goto bad;
		p = end + 1;
		g = strtoul(p, &end, 10);
		if (end == p || (*end && *end != '\n' && *end != '\r') || errno || g > 10000000ul)
			goto bad;
		if (tk->n == MAX_TRACE) {
			fprintf(stderr, "hotswap: %s: more than %u requests\n", path, MAX_TRACE);
			goto out;
		}
		if (tk->n == cap) {
			cap = cap ? cap * 2 : 4096;
			tk->ctx = xrealloc(tk->ctx, cap * sizeof *tk->ctx);
			tk->gen = xrealloc(tk->gen, cap * sizeof *tk->gen);
		}
		tk->ctx[tk->n] = (uint32_t)c;
		tk->gen[tk->n] = (uint32_t)g;
		tk->n++;
		continue;
bad:
		fprintf(stderr, "hotswap: %s:%zu: expected TIMESTAMP,ContextTokens,GeneratedTokens\n",
			path, lineno);
		goto out;
	}
	if (ferror(f) || tk->n == 0) {
		fprintf(stderr, "hotswap: %s: %s\n", path, ferror(f) ? "read error" : "no requests");
		goto out;
	}
	rc = 0;
out:
	fclose(f);
	return rc;
}

/* --- demand --------------------------------------------------------------- */

/* The rank of model i in rotation period k: a fixed shuffle (multiplying by
 * 17, coprime with 40) shifted by 7 places a period, so every period brings
 * new models to the top. */
static unsigned rank_of(unsigned i, long k)
{
	return (unsigned)(((long)i * 17 + k * 7) % NM);
}

/* Requests/s for model m at time t. */
static double model_rate(const struct opts *o, unsigned m, double t)
{
	double period = o->rotate_h * 3600.0, blend = 3600.0, w[NM], sum = 0.0, mult = 1.0;
	long k = (long)floor(t / period);
	double into = t - (double)k * period;
	double a = into > period - blend ? (into - (period - blend)) / blend : 0.0;
	double diurnal = 1.0 - 0.5 * cos(2.0 * M_PI * t / DAY);
	double launch = o->launch_h * 3600.0, viral = o->viral_h * 3600.0;

	for (unsigned i = 0; i < NM; i++) {
		double w0 = pow(rank_of(i, k) + 1.0, -o->zipf);
		double w1 = pow(rank_of(i, k + 1) + 1.0, -o->zipf);
		w[i] = (1.0 - a) * w0 + a * w1;
		if (i == LAUNCH) /* launched: ramps to the third rank over 30 min */
			w[i] = t < launch ? 0.0 : pow(3.0, -o->zipf) * fmin(1.0, (t - launch) / 1800.0);
		sum += w[i];
	}
	if (m == VIRAL && t >= viral && t < viral + 4800.0) /* 10 min up, 1 h, 10 min down */
		mult = 1.0 + 9.0 * fmin(1.0, fmin((t - viral) / 600.0, (viral + 4800.0 - t) / 600.0));
	return o->base_rps * diurnal * w[m] / sum * mult;
}

struct request {
	double t;
	uint32_t model, ctx, gen;
};

struct workload {
	struct request *r;
	size_t n;
	double peak[NM];     /* highest rate of each model over the day (1 min) */
	double mean_svc;     /* mean service time of one request */
};

/* Poisson arrivals, constant rates within each SLICE, models drawn in
 * proportion to their rates, token pairs drawn from the trace. */
static void make_workload(const struct opts *o, const struct tokens *tk, struct workload *w)
{
	double len = o->hours * 3600.0, sum_svc = 0.0;
	uint64_t rng = o->seed * 0x100000001b3ull + 7;
	size_t cap = 0;

	memset(w, 0, sizeof *w);
	for (double t0 = 0.0; t0 < len; t0 += SLICE) {
		double rate[NM], total = 0.0, t = t0;
		for (unsigned m = 0; m < NM; m++) {
			rate[m] = model_rate(o, m, t0 + SLICE / 2);
			total += rate[m];
		}
		for (;;) {
			t += -log(rng_unit(&rng)) / total;
			if (t >= t0 + SLICE || t >= len)
				break;
			double pick = rng_unit(&rng) * total;
			unsigned m = 0;
			while (m < NM - 1 && pick > rate[m])
				pick -= rate[m++];
			size_t k = rng_next(&rng) % tk->n;
			if (w->n == MAX_REQUESTS) {
				fprintf(stderr, "hotswap: more than %u requests; lower --base-rps\n",
					MAX_REQUESTS);
				exit(1);
			}
			if (w->n == cap) {
				cap = cap ? cap * 2 : 65536;
				w->r = xrealloc(w->r, cap * sizeof *w->r);
			}
			w->r[w->n++] = (struct request){t, m, tk->ctx[k], tk->gen[k]};
			sum_svc += tk->ctx[k] / o->prefill_tps + tk->gen[k] / o->decode_tps;
		}
	}
	for (double t = 0.0; t < len; t += 60.0)
		for (unsigned m = 0; m < NM; m++)
			w->peak[m] = fmax(w->peak[m], model_rate(o, m, t));
	w->mean_svc = w->n ? sum_svc / (double)w->n : 1.0;
}

/* --- the simulation -------------------------------------------------------- */

/* Timeline intervals in the day: at most MAX_BINS (--hours <= 24,
 * --timeline-interval >= 60). */
static unsigned tl_bins(const struct opts *o)
{
	double n = ceil(o->hours * 3600.0 / o->timeline_s - 1e-9);
	return n < 1.0 ? 1u : n > MAX_BINS ? MAX_BINS : (unsigned)n;
}

enum policy { P_STATIC, P_LRU, P_OURS, NPOLICIES };
static const char *const policy_names[NPOLICIES] = {"static", "lru", "ours"};

enum rstate { R_FREE, R_LOADING, R_READY, R_ZOMBIE };

/* One replica record.  A zombie was evicted while requests ran on it: its
 * memory is free, it takes no new requests, and it is recycled when the last
 * one finishes. */
struct rep {
	enum rstate st;
	uint32_t model, n, eng[GP_PLAN_MAX_SPAN];
	uint32_t epoch;    /* bumped when the record is recycled */
	uint32_t inflight;
	double ready_t, last_used;
	double swap_s;     /* how long its copy took */
};

struct engine {
	int alive;          /* the hardware works */
	int known_dead;     /* the health check has seen it fail */
	double used;        /* bytes of loaded (and loading) shards */
	double load_until;  /* its loads are done then */
	uint32_t slots;     /* requests running */
	uint32_t nrep, rep[MAX_PER_ENGINE];
	uint8_t cached[NM]; /* shard in host memory */
	double cache_used, cache_t[NM];
};

struct queue { /* ring of request indexes */
	uint32_t *v;
	size_t cap, head, n;
};

enum evtype { EV_NONE, EV_DONE, EV_LOADED, EV_PLAN, EV_FAIL, EV_DETECT };

struct event {
	double t;
	uint64_t seq;
	enum evtype type;
	uint32_t a, b, epoch;
};

struct failover_rec {
	uint32_t model;
	double lost_t, restored_t, swap_s;
};

struct sim {
	const struct opts *o;
	const struct workload *w;
	enum policy pol;
	unsigned ne;
	double fail_t;           /* < 0: no failure */
	struct engine eng[MAX_ENGINES];
	struct rep rep[MAX_REPS];
	uint32_t mrep[NM][MAX_PER_MODEL], nmrep[NM];
	struct queue q[NM];
	struct event *heap;
	size_t nheap, capheap;
	uint64_t seq;
	float *ttft;             /* per request; INFINITY if never served */
	double now;
	uint8_t had_demand[NM];
	/* ours */
	struct gp_planner *pl;
	struct gp_forecast *fc[NM];
	uint64_t arrivals[NM], acks[NM];
	double last_poll;
	double last_urgent[NM];
	double demand[NM];       /* the last poll's forecast, req/s */
	struct gp_plan_replica cur[MAX_REPS]; /* the planner's input */
	/* results */
	uint64_t loads, misses, unserved;
	double bytes, disk_bytes;
	struct failover_rec fo[NM];
	unsigned nfo;
	int failed_engine;
	int overcommit;          /* the planner broke its memory guarantee */
	unsigned static_engines; /* static: engines the placement used */
	uint32_t tl_swaps[MAX_BINS]; /* loads started, per timeline interval */
};

/* The timeline interval of time t (the drain after the day in the last). */
static unsigned tl_bin(const struct opts *o, double t)
{
	unsigned n = tl_bins(o);
	double b = floor(t / o->timeline_s);
	return b < 0.0 ? 0u : b >= (double)n ? n - 1 : (unsigned)b;
}

static double shard(unsigned m)
{
	return model_gb[m] * GB / (model_gb[m] > 80.0 ? 2.0 : 1.0);
}

static uint32_t span_of(unsigned m)
{
	return model_gb[m] > 80.0 ? 2 : 1;
}

/* --- the event heap -------------------------------------------------------- */

static int ev_less(const struct event *a, const struct event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void push_ev(struct sim *s, double t, enum evtype type, uint32_t a, uint32_t b,
		    uint32_t epoch)
{
	size_t i;

	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? s->capheap * 2 : 4096;
		s->heap = xrealloc(s->heap, s->capheap * sizeof *s->heap);
	}
	i = s->nheap++;
	s->heap[i] = (struct event){t, s->seq++, type, a, b, epoch};
	while (i > 0 && ev_less(&s->heap[i], &s->heap[(i - 1) / 2])) {
		struct event x = s->heap[i];
		s->heap[i] = s->heap[(i - 1) / 2];
		s->heap[(i - 1) / 2] = x;
		i = (i - 1) / 2;
	}
}

static struct event pop_ev(struct sim *s)
{
	struct event top = s->heap[0];
	size_t i = 0;

	s->heap[0] = s->heap[--s->nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->nheap && ev_less(&s->heap[l], &s->heap[m]))
			m = l;
		if (r < s->nheap && ev_less(&s->heap[r], &s->heap[m]))
			m = r;
		if (m == i)
			break;
		struct event x = s->heap[i];
		s->heap[i] = s->heap[m];
		s->heap[m] = x;
		i = m;
	}
	return top;
}

/* --- queues ------------------------------------------------------------------ */

static void q_grow(struct queue *q)
{
	size_t ncap = q->cap ? q->cap * 2 : 256;
	uint32_t *v = xrealloc(NULL, ncap * sizeof *v);
	for (size_t i = 0; i < q->n; i++)
		v[i] = q->v[(q->head + i) % q->cap];
	free(q->v);
	q->v = v;
	q->cap = ncap;
	q->head = 0;
}

static void q_push(struct queue *q, uint32_t x)
{
	if (q->n == q->cap)
		q_grow(q);
	q->v[(q->head + q->n++) % q->cap] = x;
}

static void q_push_front(struct queue *q, uint32_t x)
{
	if (q->n == q->cap)
		q_grow(q);
	q->head = (q->head + q->cap - 1) % q->cap;
	q->v[q->head] = x;
	q->n++;
}

static uint32_t q_head(const struct queue *q)
{
	return q->v[q->head];
}

static void q_pop(struct queue *q)
{
	q->head = (q->head + 1) % q->cap;
	q->n--;
}

/* --- replicas ------------------------------------------------------------ */

static void list_del(uint32_t *v, uint32_t *n, uint32_t x)
{
	for (uint32_t i = 0; i < *n; i++)
		if (v[i] == x) {
			v[i] = v[--*n];
			return;
		}
}

/* Touch model m in engine e's host cache (insert it, evicting the least
 * recently used models beyond the cache's size). */
static void cache_touch(struct sim *s, unsigned e, unsigned m)
{
	struct engine *g = &s->eng[e];
	double cap = s->o->host_cache_gb * GB;

	g->cache_t[m] = s->now;
	if (g->cached[m])
		return;
	if (shard(m) > cap)
		return;
	while (g->cache_used + shard(m) > cap) {
		int v = -1;
		for (unsigned i = 0; i < NM; i++)
			if (g->cached[i] && (v < 0 || g->cache_t[i] < g->cache_t[v]))
				v = (int)i;
		g->cached[v] = 0;
		g->cache_used -= shard((unsigned)v);
	}
	g->cached[m] = 1;
	g->cache_used += shard(m);
}

/* Start loading model m onto engines eng[0..n): returns the replica id.
 * The copy waits for the engines' earlier loads; a shard comes from the
 * engine's host cache when it is there, else from disk.  `instant` makes it
 * ready now (the warm start). */
static uint32_t start_load(struct sim *s, unsigned m, const uint32_t *eng, uint32_t n, int instant,
			   double *swap_s)
{
	uint32_t id = 0;
	struct rep *r;
	double start = s->now, dur = 0.0;

	while (id < MAX_REPS && s->rep[id].st != R_FREE)
		id++;
	if (id == MAX_REPS || s->nmrep[m] == MAX_PER_MODEL) {
		fprintf(stderr, "hotswap: replica table full\n");
		exit(1);
	}
	r = &s->rep[id];
	r->st = R_LOADING;
	r->model = m;
	r->n = n;
	r->inflight = 0;
	r->last_used = s->now;
	for (uint32_t k = 0; k < n; k++) {
		struct engine *g = &s->eng[eng[k]];
		r->eng[k] = eng[k];
		start = fmax(start, g->load_until);
		dur = fmax(dur, shard(m) / (GB * (g->cached[m] ? s->o->host_bw : s->o->disk_bw)));
		if (!instant) {
			s->bytes += shard(m);
			if (!g->cached[m])
				s->disk_bytes += shard(m);
		}
		g->used += shard(m);
		if (g->used > s->o->engine_gb * GB * (1 + 1e-9))
			s->overcommit = 1;
		if (g->nrep == MAX_PER_ENGINE) {
			fprintf(stderr, "hotswap: too many replicas on one engine\n");
			exit(1);
		}
		g->rep[g->nrep++] = id;
	}
	if (instant) {
		start = s->now, dur = 0.0;
	} else {
		s->loads++;
		s->tl_swaps[tl_bin(s->o, s->now)]++;
	}
	r->ready_t = start + dur;
	r->swap_s = dur;
	if (swap_s)
		*swap_s = dur;
	for (uint32_t k = 0; k < n; k++) {
		s->eng[eng[k]].load_until = r->ready_t;
		cache_touch(s, eng[k], m);
	}
	s->mrep[m][s->nmrep[m]++] = id;
	/* A load onto a dead engine never completes. */
	int dead = 0;
	for (uint32_t k = 0; k < n; k++)
		dead |= !s->eng[eng[k]].alive;
	if (instant)
		r->st = R_READY;
	else if (!dead)
		push_ev(s, r->ready_t, EV_LOADED, id, 0, r->epoch);
	return id;
}

/* Take replica id out of service: its memory is freed at once; it becomes a
 * zombie until its running requests finish. */
static void evict(struct sim *s, uint32_t id)
{
	struct rep *r = &s->rep[id];

	for (uint32_t k = 0; k < r->n; k++) {
		struct engine *g = &s->eng[r->eng[k]];
		g->used -= shard(r->model);
		list_del(g->rep, &g->nrep, id);
	}
	list_del(s->mrep[r->model], &s->nmrep[r->model], id);
	if (r->inflight) {
		r->st = R_ZOMBIE;
	} else {
		r->st = R_FREE;
		r->epoch++;
	}
}

/* Whether replica r can take a request now. */
static int can_serve(const struct sim *s, const struct rep *r)
{
	if (r->st != R_READY)
		return 0;
	for (uint32_t k = 0; k < r->n; k++) {
		const struct engine *g = &s->eng[r->eng[k]];
		if (!g->alive || g->slots >= s->o->batch)
			return 0;
	}
	return r->inflight < s->o->batch;
}

static void start_request(struct sim *s, uint32_t id, uint32_t ri)
{
	const struct request *rq = &s->w->r[ri];
	struct rep *r = &s->rep[id];
	double prefill = rq->ctx / s->o->prefill_tps, decode = rq->gen / s->o->decode_tps;
	double ttft = s->now - rq->t + prefill;

	s->ttft[ri] = (float)ttft;
	r->inflight++;
	r->last_used = s->now;
	for (uint32_t k = 0; k < r->n; k++)
		s->eng[r->eng[k]].slots++;
	push_ev(s, s->now + prefill + decode, EV_DONE, id, ri, r->epoch);
}

/* Serve model m's queue on its replicas, least busy first. */
static void dispatch_model(struct sim *s, unsigned m)
{
	while (s->q[m].n) {
		int best = -1;
		for (uint32_t i = 0; i < s->nmrep[m]; i++) {
			struct rep *r = &s->rep[s->mrep[m][i]];
			if (can_serve(s, r) &&
			    (best < 0 || r->inflight < s->rep[best].inflight))
				best = (int)s->mrep[m][i];
		}
		if (best < 0)
			return;
		start_request(s, (uint32_t)best, q_head(&s->q[m]));
		q_pop(&s->q[m]);
	}
}

/* A slot freed on engine e: give it to the replica on e whose model's queue
 * has waited longest. */
static void dispatch_engine(struct sim *s, unsigned e)
{
	for (;;) {
		int best = -1;
		double oldest = INFINITY;
		for (uint32_t i = 0; i < s->eng[e].nrep; i++) {
			uint32_t id = s->eng[e].rep[i];
			struct rep *r = &s->rep[id];
			if (!s->q[r->model].n || !can_serve(s, r))
				continue;
			double t = s->w->r[q_head(&s->q[r->model])].t;
			if (t < oldest) {
				oldest = t;
				best = (int)id;
			}
		}
		if (best < 0)
			return;
		unsigned m = s->rep[best].model;
		start_request(s, (uint32_t)best, q_head(&s->q[m]));
		q_pop(&s->q[m]);
	}
}

static unsigned ready_alive(const struct sim *s, unsigned m)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < s->nmrep[m]; i++) {
		const struct rep *r = &s->rep[s->mrep[m][i]];
		int ok = r->st == R_READY;
		for (uint32_t k = 0; k < r->n; k++)
			ok &= s->eng[r->eng[k]].alive;
		n += ok;
	}
	return n;
}

/* --- static ------------------------------------------------------------------ */

/* Pack r[m] replicas of every model into s->ne engines (first fit, largest
 * shards first; memory, one replica of a model per engine, and compute: the
 * peak demand shares on an engine add up to at most 1).  When `apply`, load
 * them.  Returns the engines used, or 0 when they do not fit. */
static unsigned static_pack(struct sim *s, const unsigned *r, double rps, int apply)
{
	double mem[MAX_ENGINES], cpu[MAX_ENGINES];
	uint8_t has[MAX_ENGINES][NM];
	unsigned order[NM], used = 0;

	memset(mem, 0, sizeof mem);
	memset(cpu, 0, sizeof cpu);
	memset(has, 0, sizeof has);
	for (unsigned i = 0; i < NM; i++)
		order[i] = i;
	for (unsigned i = 1; i < NM; i++) /* insertion sort, largest first */
		for (unsigned j = i; j > 0 && shard(order[j]) > shard(order[j - 1]); j--) {
			unsigned x = order[j];
			order[j] = order[j - 1];
			order[j - 1] = x;
		}
	for (unsigned i = 0; i < NM; i++) {
		unsigned m = order[i];
		double share = r[m] ? fmin(1.0, s->w->peak[m] / (r[m] * rps)) : 0.0;
		for (unsigned k = 0; k < r[m]; k++) {
			uint32_t pick[GP_PLAN_MAX_SPAN], np = 0;
			for (unsigned e = 0; e < s->ne && np < span_of(m); e++)
				if (!has[e][m] && mem[e] + shard(m) <= s->o->engine_gb * GB &&
				    cpu[e] + share <= 1.0 + 1e-9)
					pick[np++] = e;
			if (np < span_of(m))
				return 0;
			for (uint32_t j = 0; j < np; j++) {
				mem[pick[j]] += shard(m);
				cpu[pick[j]] += share;
				has[pick[j]][m] = 1;
				if (pick[j] + 1 > used)
					used = pick[j] + 1;
			}
			if (apply)
				start_load(s, m, pick, np, 1, NULL);
		}
	}
	return used;
}

/* The replicas each model's peak needs at the target utilization. */
static void static_peak(const struct sim *s, double rps, unsigned *r)
{
	for (unsigned m = 0; m < NM; m++)
		r[m] = s->w->peak[m] > 0 ? (unsigned)ceil(s->w->peak[m] / (rps * s->o->target)) : 0;
}

/* Static on the pool: the peak placement if it fits, else one replica per
 * model and then more, one at a time, to the model busiest per replica at
 * its peak, while they fit. */
static void static_setup(struct sim *s, double rps)
{
	unsigned peak[NM], r[NM];
	uint8_t done[NM] = {0};

	static_peak(s, rps, peak);
	if (static_pack(s, peak, rps, 0)) {
		s->static_engines = static_pack(s, peak, rps, 1);
		return;
	}
	for (unsigned m = 0; m < NM; m++)
		r[m] = peak[m] ? 1 : 0;
	while (!static_pack(s, r, rps, 0)) { /* not even one each: drop the largest */
		unsigned big = NM;
		for (unsigned m = 0; m < NM; m++)
			if (r[m] && (big == NM || shard(m) > shard(big)))
				big = m;
		if (big == NM)
			return;
		r[big] = 0;
	}
	for (;;) {
		unsigned best = NM;
		for (unsigned m = 0; m < NM; m++)
			if (!done[m] && r[m] && r[m] < peak[m] &&
			    (best == NM || s->w->peak[m] / r[m] > s->w->peak[best] / r[best]))
				best = m;
		if (best == NM)
			break;
		r[best]++;
		if (!static_pack(s, r, rps, 0)) {
			r[best]--;
			done[best] = 1;
		}
	}
	s->static_engines = static_pack(s, r, rps, 1);
}

/* --- lru --------------------------------------------------------------------- */

/* Load a copy of model m the ModelMesh way: on the engines with room, or
 * whose least recently used idle models can be evicted for it (the engine
 * whose youngest victim is oldest wins).  Returns 0 when no engine can. */
static int lru_load(struct sim *s, unsigned m)
{
	uint32_t pick[GP_PLAN_MAX_SPAN], np = 0;
	double score[MAX_ENGINES];
	uint32_t victims[MAX_ENGINES][MAX_PER_ENGINE], nv[MAX_ENGINES];

	for (unsigned e = 0; e < s->ne; e++) {
		struct engine *g = &s->eng[e];
		double free_b = s->o->engine_gb * GB - g->used;
		int dup = 0;
		score[e] = INFINITY;
		nv[e] = 0;
		if (!g->alive)
			continue;
		for (uint32_t i = 0; i < g->nrep; i++)
			dup |= s->rep[g->rep[i]].model == m;
		if (dup)
			continue;
		double youngest = -INFINITY;
		while (free_b < shard(m)) {
			int v = -1;
			for (uint32_t i = 0; i < g->nrep; i++) {
				struct rep *r = &s->rep[g->rep[i]];
				int taken = 0;
				for (uint32_t j = 0; j < nv[e]; j++)
					taken |= victims[e][j] == g->rep[i];
				if (taken || r->st != R_READY || r->inflight || s->q[r->model].n)
					continue;
				if (v < 0 || r->last_used < s->rep[v].last_used)
					v = (int)g->rep[i];
			}
			if (v < 0)
				break;
			victims[e][nv[e]++] = (uint32_t)v;
			youngest = fmax(youngest, s->rep[v].last_used);
			free_b += shard(s->rep[v].model);
		}
		if (free_b < shard(m))
			continue;
		score[e] = youngest;
	}
	for (uint32_t k = 0; k < span_of(m); k++) {
		int best = -1;
		for (unsigned e = 0; e < s->ne; e++) {
			int taken = 0;
			for (uint32_t j = 0; j < np; j++)
				taken |= pick[j] == e;
			if (!taken && score[e] < INFINITY &&
			    (best < 0 || score[e] < score[best]))
				best = (int)e;
		}
		if (best < 0)
			return 0;
		pick[np++] = (uint32_t)best;
	}
	for (uint32_t k = 0; k < np; k++)
		for (uint32_t j = 0; j < nv[pick[k]]; j++)
			if (s->rep[victims[pick[k]][j]].st == R_READY)
				evict(s, victims[pick[k]][j]);
	start_load(s, m, pick, np, 0, NULL);
	return 1;
}

static int loading(const struct sim *s, unsigned m)
{
	for (uint32_t i = 0; i < s->nmrep[m]; i++)
		if (s->rep[s->mrep[m][i]].st == R_LOADING)
			return 1;
	return 0;
}

/* --- ours ------------------------------------------------------------------- */

/* Feed every model's forecast with the figures since the last poll. */
static void poll_forecasts(struct sim *s)
{
	double *demand = s->demand;
	double dt = s->now - s->last_poll;

	for (unsigned m = 0; m < NM; m++) {
		struct gp_forecast_obs ob = {0};
		struct gp_forecast_out out;
		uint64_t busy = 0;
		unsigned ready = 0;
		for (uint32_t i = 0; i < s->nmrep[m]; i++) {
			busy += s->rep[s->mrep[m][i]].inflight;
			ready += s->rep[s->mrep[m][i]].st == R_READY;
		}
		if (dt > 0.0) {
			ob.t_s = s->now;
			ob.ready = s->q[m].n;
			ob.unacked = busy;
			ob.consumers = ready * s->o->batch;
			ob.prefetch = 1;
			ob.publish_rate = (double)s->arrivals[m] / dt;
			ob.ack_rate = (double)s->acks[m] / dt;
			ob.replicas = ready;
			gp_forecast_update(s->fc[m], &ob, &out);
			demand[m] = fmax(out.arrival_rate, out.arrival_forecast);
		} else {
			demand[m] = 0.0;
		}
		/* The backlog is demand too: drained over the horizon. */
		demand[m] += (double)s->q[m].n / s->o->horizon_s;
		s->arrivals[m] = s->acks[m] = 0;
	}
	if (dt > 0.0)
		s->last_poll = s->now;
}

/* One planner round: build its inputs from the simulation, apply the plan. */
static void ours_plan(struct sim *s, double rps_rep, int poll)
{
	struct gp_plan_model pm[NM];
	struct gp_plan_engine pe[MAX_ENGINES];
	struct gp_plan_replica *cur = s->cur;
	size_t ncur = 0;
	struct gp_plan plan;

	if (poll)
		poll_forecasts(s);
	for (unsigned m = 0; m < NM; m++) {
		double d = s->demand[m];
		if (!poll) /* between polls: the last forecast, plus what waits now */
			d += (double)s->q[m].n / s->o->horizon_s;
		pm[m] = (struct gp_plan_model){
			.size_bytes = (uint64_t)(model_gb[m] * GB), .span = span_of(m),
			.min_replicas = s->had_demand[m] ? s->o->min_replicas : 0,
			.max_replicas = MAX_PER_MODEL / 2, .replica_rps = rps_rep, .demand_rps = d};
		if (pm[m].min_replicas == 0 && s->q[m].n && d <= 0.0)
			pm[m].demand_rps = 1e-3;
	}
	for (unsigned e = 0; e < s->ne; e++)
		pe[e] = (struct gp_plan_engine){
			.mem_bytes = (uint64_t)(s->o->engine_gb * GB), .host_bw = s->o->host_bw * GB,
			.disk_bw = s->o->disk_bw * GB, .healthy = !s->eng[e].known_dead,
			.cached = s->eng[e].cached};
	for (uint32_t id = 0; id < MAX_REPS; id++) {
		const struct rep *r = &s->rep[id];
		if (r->st != R_LOADING && r->st != R_READY)
			continue;
		cur[ncur] = (struct gp_plan_replica){.model = r->model, .nengines = r->n,
						     .ready_s = fmax(0.0, fmin(r->ready_t - s->now, 1e6))};
		memcpy(cur[ncur].engine, r->eng, sizeof r->eng);
		ncur++;
	}
	if (gp_planner_plan(s->pl, s->now, pm, NM, pe, s->ne, cur, ncur, &plan) != 0) {
		fprintf(stderr, "hotswap: the planner refused its input\n");
		exit(1);
	}
	for (size_t i = 0; i < plan.nactions; i++) {
		const struct gp_plan_action *a = &plan.actions[i];
		if (a->op == GP_PLAN_LOAD) {
			double swap_s;
			start_load(s, a->model, a->engine, a->nengines, 0, &swap_s);
			continue;
		}
		/* An unload: the replica of that model on those engines. */
		for (uint32_t j = 0; j < s->nmrep[a->model]; j++) {
			uint32_t id = s->mrep[a->model][j];
			if (s->rep[id].eng[0] == a->engine[0]) {
				evict(s, id);
				break;
			}
		}
	}
}

/* --- failover ------------------------------------------------------------ */

/* The engine to lose: the one holding the most replicas that keep a model
 * at its minimum (the worst case for failover); ties to the lower index. */
static unsigned pick_victim_engine(const struct sim *s)
{
	unsigned best = 0, bestn = 0;

	for (unsigned e = 0; e < s->ne; e++) {
		unsigned n = 0;
		for (uint32_t i = 0; i < s->eng[e].nrep; i++) {
			const struct rep *r = &s->rep[s->eng[e].rep[i]];
			n += s->had_demand[r->model] && ready_alive(s, r->model) <= s->o->min_replicas;
		}
		if (n > bestn) {
			best = e;
			bestn = n;
		}
	}
	return best;
}

static void fail_engine(struct sim *s, unsigned e)
{
	struct engine *g = &s->eng[e];

	g->alive = 0;
	s->failed_engine = (int)e;
	/* Requests running on it are lost and go back to the front of their
	 * queues (their arrival time is kept: the wait counts). */
	for (size_t i = 0; i < s->nheap; i++) {
		struct event *ev = &s->heap[i];
		if (ev->type != EV_DONE)
			continue;
		struct rep *r = &s->rep[ev->a];
		int on = 0;
		for (uint32_t k = 0; k < r->n; k++)
			on |= r->eng[k] == e;
		if (!on || ev->epoch != r->epoch)
			continue;
		ev->type = EV_NONE;
		r->inflight--;
		for (uint32_t k = 0; k < r->n; k++)
			s->eng[r->eng[k]].slots--;
		q_push_front(&s->q[r->model], ev->b);
		s->ttft[ev->b] = INFINITY;
		if (r->st == R_ZOMBIE && !r->inflight) {
			r->st = R_FREE;
			r->epoch++;
		}
	}
	/* Its host cache is gone with it. */
	memset(g->cached, 0, sizeof g->cached);
	g->cache_used = 0;
	for (unsigned m = 0; m < NM; m++)
		if (s->had_demand[m] && s->o->min_replicas && ready_alive(s, m) < s->o->min_replicas)
			s->fo[s->nfo++] = (struct failover_rec){m, s->now, -1.0, -1.0};
}

/* The health check sees the engine gone: its replicas are dropped (the
 * healthy halves of two-engine ones freed) and the planner runs at once. */
static void detect_failure(struct sim *s, unsigned e, double rps)
{
	s->eng[e].known_dead = 1;
	for (uint32_t id = 0; id < MAX_REPS; id++) {
		struct rep *r = &s->rep[id];
		int on = 0;
		if (r->st != R_LOADING && r->st != R_READY)
			continue;
		for (uint32_t k = 0; k < r->n; k++)
			on |= r->eng[k] == e;
		if (on)
			evict(s, id);
	}
	ours_plan(s, rps, 0);
}

static void check_restored(struct sim *s, const struct rep *r)
{
	for (unsigned i = 0; i < s->nfo; i++) {
		struct failover_rec *f = &s->fo[i];
		if (f->model != r->model || f->restored_t >= 0)
			continue;
		if (ready_alive(s, f->model) >= s->o->min_replicas) {
			f->restored_t = s->now;
			f->swap_s = r->swap_s; /* the copy that restored it */
		}
	}
}

/* --- one run ------------------------------------------------------------ */

struct result {
	enum policy pol;
	unsigned engines;
	size_t requests;
	uint64_t misses, unserved, loads;
	double miss_share, p50, p99, swaps_per_h, bytes, disk_bytes, hours;
	unsigned static_engines;
	int overcommit;
	/* failover */
	int failed_engine;
	unsigned nfo;
	struct failover_rec fo[NM];
	/* the timeline: requests and SLO misses by arrival, loads by start */
	unsigned nbins;
	uint32_t tl_requests[MAX_BINS], tl_misses[MAX_BINS], tl_swaps[MAX_BINS];
};

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* Run one policy on a pool of `ne` engines; fail_t >= 0 loses an engine
 * then.  `pct` computes the TTFT percentiles (a sort; skipped in searches). */
static void run(const struct opts *o, const struct workload *w, enum policy pol, unsigned ne,
		double fail_t, int pct, struct result *res)
{
	struct sim *s = calloc(1, sizeof *s);
	double rps = o->batch / w->mean_svc, end = o->hours * 3600.0;
	size_t next = 0;

	if (!s) {
		fprintf(stderr, "hotswap: out of memory\n");
		exit(1);
	}
	s->o = o;
	s->w = w;
	s->pol = pol;
	s->ne = ne;
	s->fail_t = fail_t;
	s->failed_engine = -1;
	s->ttft = xrealloc(NULL, (w->n ? w->n : 1) * sizeof *s->ttft);
	for (size_t i = 0; i < w->n; i++)
		s->ttft[i] = INFINITY;
	for (unsigned e = 0; e < ne; e++)
		s->eng[e].alive = 1;

	if (pol == P_STATIC) {
		static_setup(s, rps);
	} else {
		/* Warm start: the models the first minutes want, loaded (and in
		 * their engines' host caches) before the day begins, as a pool
		 * that has run before would have them. */
		unsigned order[NM];
		double r0[NM];
		for (unsigned m = 0; m < NM; m++) {
			order[m] = m;
			r0[m] = model_rate(o, m, 0.0);
			s->had_demand[m] = r0[m] > 0.0;
		}
		for (unsigned i = 1; i < NM; i++)
			for (unsigned j = i; j > 0 && r0[order[j]] > r0[order[j - 1]]; j--) {
				unsigned x = order[j];
				order[j] = order[j - 1];
				order[j - 1] = x;
			}
		if (pol == P_OURS) {
			struct gp_planner_config pc;
			struct gp_forecast_config fc;
			gp_planner_config_default(&pc);
			pc.target_util = o->target;
			pc.margin = o->margin;
			pc.hold_s = o->hold_s;
			pc.max_loads = o->max_loads;
			pc.max_models = NM;
			pc.max_engines = MAX_ENGINES;
			pc.max_replicas = MAX_REPS;
			gp_forecast_config_default(&fc);
			fc.horizon_s = o->horizon_s;
			fc.consumers_per_replica = o->batch;
			if (gp_planner_new(&s->pl, &pc) != 0) {
				fprintf(stderr, "hotswap: planner configuration refused\n");
				exit(1);
			}
			for (unsigned m = 0; m < NM; m++)
				if (gp_forecast_new(&s->fc[m], &fc) != 0) {
					fprintf(stderr, "hotswap: forecast configuration refused\n");
					exit(1);
				}
		}
		/* Replicas busiest per replica first, each on the engines whose
		 * GPUs the warm placement has loaded least (compute spread, as
		 * an operator would lay out a pool). */
		double cpu[MAX_ENGINES] = {0};
		for (unsigned i = 0; i < NM; i++) {
			unsigned m = order[i];
			unsigned want = r0[m] > 0 ? (unsigned)ceil(r0[m] / (rps * o->target)) : 0;
			double share = want ? r0[m] / (want * rps) : 0.0;
			for (unsigned k = 0; k < want; k++) {
				uint32_t pick[GP_PLAN_MAX_SPAN], np = 0;
				while (np < span_of(m)) {
					int best = -1;
					for (unsigned e = 0; e < ne; e++) {
						int dup = 0;
						for (uint32_t j = 0; j < s->eng[e].nrep; j++)
							dup |= s->rep[s->eng[e].rep[j]].model == m;
						for (uint32_t j = 0; j < np; j++)
							dup |= pick[j] == e;
						if (!dup && s->eng[e].used + shard(m) <= o->engine_gb * GB &&
						    (best < 0 || cpu[e] < cpu[best]))
							best = (int)e;
					}
					if (best < 0)
						break;
					pick[np++] = (uint32_t)best;
				}
				if (np < span_of(m))
					break;
				for (uint32_t j = 0; j < np; j++)
					cpu[pick[j]] += share;
				start_load(s, m, pick, np, 1, NULL);
			}
		}
		if (pol == P_OURS) {
			/* The forecasts start from the rates of the warm pool. */
			for (unsigned m = 0; m < NM; m++)
				s->arrivals[m] = (uint64_t)llround(r0[m] * o->plan_s);
			s->last_poll = -o->plan_s;
			ours_plan(s, rps, 1);
			push_ev(s, o->plan_s, EV_PLAN, 0, 0, 0);
		}
	}
	if (fail_t >= 0.0 && pol == P_OURS)
		push_ev(s, fail_t, EV_FAIL, 0, 0, 0);

	for (;;) {
		int take_arrival = next < w->n && (s->nheap == 0 || w->r[next].t <= s->heap[0].t);
		if (!take_arrival && s->nheap == 0)
			break;
		if (take_arrival) {
			const struct request *rq = &w->r[next];
			unsigned m = rq->model;
			s->now = rq->t;
			s->had_demand[m] = 1;
			s->arrivals[m]++;
			q_push(&s->q[m], (uint32_t)next++);
			dispatch_model(s, m);
			if (!s->q[m].n)
				continue;
			if (pol == P_LRU) {
				unsigned n = s->nmrep[m];
				if ((n == 0 || s->q[m].n > (size_t)o->batch * n) && !loading(s, m))
					lru_load(s, m);
			} else if (pol == P_OURS && s->nmrep[m] == 0 &&
				   s->now - s->last_urgent[m] >= 1.0) {
				/* Absent model: plan now rather than at the next tick. */
				s->last_urgent[m] = s->now;
				ours_plan(s, rps, 0);
			}
			continue;
		}
		struct event ev = pop_ev(s);
		if (ev.t > end && ev.type == EV_PLAN)
			continue; /* the day is over: stop planning, drain */
		s->now = ev.t;
		switch (ev.type) {
		case EV_NONE:
			break;
		case EV_DONE: {
			struct rep *r = &s->rep[ev.a];
			if (r->epoch != ev.epoch)
				break;
			r->inflight--;
			s->acks[r->model]++;
			for (uint32_t k = 0; k < r->n; k++)
				s->eng[r->eng[k]].slots--;
			if (r->st == R_ZOMBIE) {
				if (!r->inflight) {
					r->st = R_FREE;
					r->epoch++;
				}
				for (uint32_t k = 0; k < r->n; k++)
					dispatch_engine(s, r->eng[k]);
				break;
			}
			uint32_t engs[GP_PLAN_MAX_SPAN], n = r->n;
			memcpy(engs, r->eng, sizeof engs);
			for (uint32_t k = 0; k < n; k++)
				dispatch_engine(s, engs[k]);
			break;
		}
		case EV_LOADED: {
			struct rep *r = &s->rep[ev.a];
			if (r->epoch != ev.epoch || r->st != R_LOADING)
				break;
			r->st = R_READY;
			check_restored(s, r);
			dispatch_model(s, r->model);
			break;
		}
		case EV_PLAN:
			ours_plan(s, rps, 1);
			push_ev(s, s->now + o->plan_s, EV_PLAN, 0, 0, 0);
			break;
		case EV_FAIL: {
			unsigned e = pick_victim_engine(s);
			fail_engine(s, e);
			/* The next health check sees it. */
			double det = ceil(s->now / o->health_s + 1e-9) * o->health_s;
			push_ev(s, det, EV_DETECT, e, 0, 0);
			break;
		}
		case EV_DETECT:
			detect_failure(s, ev.a, rps);
			break;
		}
	}

	memset(res, 0, sizeof *res);
	res->pol = pol;
	res->engines = ne;
	res->requests = w->n;
	res->hours = o->hours;
	for (size_t i = 0; i < w->n; i++) {
		if (!isfinite(s->ttft[i]))
			res->unserved++;
		if (!(s->ttft[i] <= o->slo))
			res->misses++;
	}
	res->nbins = tl_bins(o);
	for (size_t i = 0; i < w->n; i++) {
		unsigned b = tl_bin(o, w->r[i].t);
		res->tl_requests[b]++;
		res->tl_misses[b] += !(s->ttft[i] <= o->slo);
	}
	memcpy(res->tl_swaps, s->tl_swaps, sizeof res->tl_swaps);
	res->miss_share = w->n ? (double)res->misses / (double)w->n : 0.0;
	if (pct && w->n) {
		qsort(s->ttft, w->n, sizeof *s->ttft, cmp_float);
		res->p50 = s->ttft[(size_t)(0.50 * (double)(w->n - 1))];
		res->p99 = s->ttft[(size_t)(0.99 * (double)(w->n - 1))];
	}
	res->loads = s->loads;
	res->swaps_per_h = (double)s->loads / o->hours;
	res->bytes = s->bytes;
	res->disk_bytes = s->disk_bytes;
	res->static_engines = s->static_engines;
	res->overcommit = s->overcommit;
	res->failed_engine = s->failed_engine;
	res->nfo = s->nfo;
	memcpy(res->fo, s->fo, sizeof s->fo);

	for (unsigned m = 0; m < NM; m++) {
		free(s->q[m].v);
		gp_forecast_free(s->fc[m]);
	}
	gp_planner_free(s->pl);
	free(s->heap);
	free(s->ttft);
	free(s);
}

/* The smallest pool (up to `hi`) on which the policy misses at most
 * --miss-target of the requests, by bisection (misses fall as the pool
 * grows).  Returns 0 when even `hi` engines are not enough. */
static unsigned search_engines(const struct opts *o, const struct workload *w, enum policy pol,
			       unsigned hi)
{
	unsigned lo = 0; /* known to fail (0 engines serve nothing) */
	struct result r;

	run(o, w, pol, hi, -1.0, 0, &r);
	if (r.miss_share > o->miss_target)
		return 0;
	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;
		run(o, w, pol, mid, -1.0, 0, &r);
		if (r.miss_share <= o->miss_target)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

/* --- output ---------------------------------------------------------------- */

static json_t *result_json(const struct result *r, unsigned needed)
{
	json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:b}",
			      "policy", policy_names[r->pol], "engines", (json_int_t)r->engines,
			      "requests", (json_int_t)r->requests, "slo_misses",
			      (json_int_t)r->misses, "never_served", (json_int_t)r->unserved,
			      "miss_share", r->miss_share, "ttft_p50_s", r->p50, "ttft_p99_s",
			      r->p99, "swaps_per_hour", r->swaps_per_h, "swaps",
			      (json_int_t)r->loads, "bytes_moved", r->bytes, "disk_bytes",
			      r->disk_bytes, "memory_overcommitted", r->overcommit);
	if (needed)
		json_object_set_new(j, "engines_for_target_misses", json_integer(needed));
	else
		json_object_set_new(j, "engines_for_target_misses", json_null());
	return j;
}

/* One point of the sweep. */
struct sweep_pt {
	unsigned engines;
	uint64_t misses;
	double miss_share, bytes, swaps_h;
};

static void print_row(const struct result *r, unsigned needed, unsigned search_hi)
{
	char nbuf[32];

	if (needed)
		snprintf(nbuf, sizeof nbuf, "%u", needed);
	else if (search_hi)
		snprintf(nbuf, sizeof nbuf, ">%u", search_hi);
	else
		snprintf(nbuf, sizeof nbuf, "-");
	printf("  %-7s %7u %9zu %9llu %7.3f%% %8.2f %8.2f %9s %8.1f %9.1f %9.1f\n",
	       policy_names[r->pol], r->engines, r->requests, (unsigned long long)r->misses,
	       100.0 * r->miss_share, r->p50, isfinite(r->p99) ? r->p99 : INFINITY, nbuf,
	       r->swaps_per_h, r->bytes / GB / 1000.0, r->disk_bytes / GB / 1000.0);
}

/* Gnuplot data in --plot-dir: engines.dat, the sweep (one block per policy,
 * two blank lines apart, each after a "# policy" line; rows of engines,
 * misses, miss share, TB moved, swaps/h), day.dat, the timeline (blocks
 * likewise; rows of the interval's middle and start in hours, requests,
 * misses, swaps) and meta.gp, the figures the plot labels need. */
static int plot_data(const struct opts *o, unsigned static_peak, int nsweep,
		     struct sweep_pt sweep[NPOLICIES][MAX_SWEEP], const struct result *main_r)
{
	char path[4096];
	FILE *f;
	size_t requests = main_r[0].requests;

	if (mkdir(o->plot_dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "hotswap: --plot-dir %s: %s\n", o->plot_dir, strerror(errno));
		return -1;
	}
	for (int k = 0; k < 3; k++) {
		static const char *const names[] = {"engines.dat", "day.dat", "meta.gp"};
		if (k == 0 && !nsweep)
			continue;
		snprintf(path, sizeof path, "%s/%s", o->plot_dir, names[k]);
		f = fopen(path, "w");
		if (!f) {
			fprintf(stderr, "hotswap: --plot-dir: %s: %s\n", path, strerror(errno));
			return -1;
		}
		if (k == 2) {
			fprintf(f, "engines = %u\nstatic_peak = %u\nrequests = %zu\n"
				   "target_misses = %.0f\nmiss_target = %g\ninterval_h = %g\n"
				   "hours = %g\nlaunch_h = %g\nviral_h = %g\nseed = %llu\n",
				o->engines, static_peak, requests,
				floor(o->miss_target * (double)requests), o->miss_target,
				o->timeline_s / 3600.0, o->hours, o->launch_h, o->viral_h,
				(unsigned long long)o->seed);
		}
		for (int p = 0; p < NPOLICIES && k < 2; p++) {
			fprintf(f, "%s# %s\n", p ? "\n\n" : "", policy_names[p]);
			if (k == 0)
				for (int i = 0; i < nsweep; i++)
					fprintf(f, "%u %llu %.6g %.6g %.6g\n", sweep[p][i].engines,
						(unsigned long long)sweep[p][i].misses,
						sweep[p][i].miss_share, sweep[p][i].bytes / GB / 1000.0,
						sweep[p][i].swaps_h);
			else
				for (unsigned b = 0; b < main_r[p].nbins; b++) {
					double from = b * o->timeline_s / 3600.0;
					double to = fmin((b + 1) * o->timeline_s, o->hours * 3600.0) / 3600.0;
					fprintf(f, "%.6g %.6g %u %u %u\n", (from + to) / 2, from,
						main_r[p].tl_requests[b], main_r[p].tl_misses[b],
						main_r[p].tl_swaps[b]);
				}
		}
		if (ferror(f) | fclose(f)) {
			fprintf(stderr, "hotswap: --plot-dir: %s: write error\n", path);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.trace = "../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv",
		.hours = 24, .engine_gb = 80, .host_bw = 20, .disk_bw = 2, .host_cache_gb = 128,
		.slo = 5, .prefill_tps = 10000, .decode_tps = 30, .base_rps = 12, .zipf = 1.0,
		.rotate_h = 3, .plan_s = 5, .horizon_s = 60, .hold_s = 120, .target = 0.7,
		.margin = 0.25, .health_s = 2, .fail_h = 13, .viral_h = 15, .launch_h = 12,
		.miss_target = 0.001, .engines = 16, .batch = 16, .min_replicas = 1,
		.max_loads = 8, .search = 1, .seed = 1, .timeline_s = 3600,
	};
	struct tokens tk;
	struct workload w;
	struct result main_r[NPOLICIES], peak_r, fo_r;
	unsigned needed[NPOLICIES] = {0}, static_peak_engines, search_hi = 0;
	json_t *doc, *rows, *fo, *targets;
	int rc, ok_half, ok_lru, ok_fo = 1, nsweep = 0;
	static unsigned sweep_n[MAX_SWEEP];
	static struct sweep_pt sweep[NPOLICIES][MAX_SWEEP];

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	if (load_tokens(o.trace, &tk) != 0)
		return 1;
	make_workload(&o, &tk, &w);
	double rps = o.batch / w.mean_svc;
	printf("hotswap: %zu requests over %.1f h, 40 models (1-140 GB), engines of %.0f GB;\n"
	       "  swap from host %.0f GB/s (cache %.0f GB per engine) or disk %.1f GB/s; SLO: TTFT "
	       "<= %.1f s;\n  batch %u, mean service %.2f s (%.2f req/s per replica)\n",
	       w.n, o.hours, o.engine_gb, o.host_bw, o.host_cache_gb, o.disk_bw, o.slo, o.batch,
	       w.mean_svc, rps);

	/* Static sized for each model's peak: the engines that placement packs
	 * into (on an unbounded pool), then a run on exactly that many. */
	{
		struct sim *tmp = calloc(1, sizeof *tmp);
		unsigned peak[NM];
		tmp->o = &o;
		tmp->w = &w;
		tmp->ne = MAX_ENGINES;
		static_peak(tmp, rps, peak);
		static_peak_engines = static_pack(tmp, peak, rps, 0);
		free(tmp);
	}
	/* Searches go up to static's peak placement and a little beyond. */
	if (o.search)
		search_hi = static_peak_engines + 8 < MAX_ENGINES ? static_peak_engines + 8 : MAX_ENGINES;
	run(&o, &w, P_STATIC, static_peak_engines, -1.0, 1, &peak_r);
	for (int p = 0; p < NPOLICIES; p++) {
		run(&o, &w, (enum policy)p, o.engines, -1.0, 1, &main_r[p]);
		if (o.search)
			needed[p] = search_engines(&o, &w, (enum policy)p, search_hi);
	}
	/* The engine is lost within the simulated day (its middle if --fail-at-h
	 * is past the end). */
	double fail_t = o.fail_h * 3600.0 < o.hours * 3600.0 ? o.fail_h * 3600.0 : o.hours * 1800.0;
	run(&o, &w, P_OURS, o.engines, fail_t, 0, &fo_r);
	/* The sweep: every policy on each pool size of the list. */
	if (o.sweep) {
		nsweep = parse_sweep(o.sweep, static_peak_engines, sweep_n);
		if (nsweep < 0)
			return 2;
		for (int p = 0; p < NPOLICIES; p++)
			for (int i = 0; i < nsweep; i++) {
				struct result r;
				run(&o, &w, (enum policy)p, sweep_n[i], -1.0, 0, &r);
				sweep[p][i] = (struct sweep_pt){sweep_n[i], r.misses, r.miss_share,
								r.bytes, r.swaps_per_h};
			}
	}

	printf("\n  %-7s %7s %9s %9s %8s %8s %8s %9s %8s %9s %9s\n", "policy", "engines",
	       "requests", "misses", "miss", "p50 s", "p99 s", "need", "swaps/h", "moved TB",
	       "disk TB");
	print_row(&peak_r, needed[P_STATIC], search_hi);
	for (int p = 0; p < NPOLICIES; p++)
		print_row(&main_r[p], needed[p], search_hi);
	printf("  (need: engines for misses <= %.1f%%, by search; static's first row is its\n"
	       "   peak-sized placement: %u engines)\n",
	       100.0 * o.miss_target, static_peak_engines);

	if (nsweep) {
		printf("\nsweep: SLO misses (and swaps/h) by pool size\n  %7s %9s %9s %8s %9s %8s\n",
		       "engines", "static", "lru", "swaps/h", "ours", "swaps/h");
		for (int i = 0; i < nsweep; i++)
			printf("  %7u %9llu %9llu %8.1f %9llu %8.1f\n", sweep_n[i],
			       (unsigned long long)sweep[P_STATIC][i].misses,
			       (unsigned long long)sweep[P_LRU][i].misses, sweep[P_LRU][i].swaps_h,
			       (unsigned long long)sweep[P_OURS][i].misses, sweep[P_OURS][i].swaps_h);
	}
	printf("\ntimeline on %u engines, per %.2f h: requests (by arrival), SLO misses, swaps\n"
	       "  %7s %9s %9s %6s %9s %6s\n",
	       o.engines, o.timeline_s / 3600.0, "from h", "requests", "lru miss", "swaps",
	       "ours miss", "swaps");
	for (unsigned b = 0; b < main_r[P_OURS].nbins; b++)
		printf("  %7.2f %9u %9u %6u %9u %6u\n", b * o.timeline_s / 3600.0,
		       main_r[P_OURS].tl_requests[b], main_r[P_LRU].tl_misses[b],
		       main_r[P_LRU].tl_swaps[b], main_r[P_OURS].tl_misses[b],
		       main_r[P_OURS].tl_swaps[b]);

	printf("\nfailover (ours, %u engines): engine %d lost at %.2f h (health checks every %.0f s)\n",
	       o.engines, fo_r.failed_engine, fail_t / 3600.0, o.health_s);
	fo = json_array();
	for (unsigned i = 0; i < fo_r.nfo; i++) {
		const struct failover_rec *f = &fo_r.fo[i];
		double took = f->restored_t >= 0 ? f->restored_t - f->lost_t : INFINITY;
		/* The bound: the copy time of the load that restored it (from
		 * another engine's host cache, or from disk: the lost engine's
		 * cache went with it) + 5 s for detection and planning. */
		double swap = f->swap_s >= 0 ? f->swap_s : shard(f->model) / (GB * o.disk_bw);
		double disk = shard(f->model) / (GB * o.disk_bw);
		int met = took <= swap + FAILOVER_SLACK;
		ok_fo &= met;
		printf("  model %2u (%5.1f GB): minimum restored in %6.2f s; its swap %6.2f s (%s) + "
		       "%.0f s -> %s\n",
		       f->model, model_gb[f->model], took, swap,
		       swap < disk ? "host" : "disk", FAILOVER_SLACK, met ? "met" : "MISSED");
		json_array_append_new(fo, json_pack("{s:I, s:f, s:f, s:f, s:f, s:b}", "model",
						    (json_int_t)f->model, "size_gb",
						    model_gb[f->model], "restored_s",
						    isfinite(took) ? took : -1.0, "swap_s", swap,
						    "bound_s", swap + FAILOVER_SLACK, "met", met));
	}
	if (fo_r.nfo == 0)
		printf("  no model fell below its minimum\n");

	ok_half = needed[P_OURS] && needed[P_OURS] * 2 <= static_peak_engines;
	ok_lru = main_r[P_OURS].misses < main_r[P_LRU].misses;
	printf("\ntargets:\n"
	       "  ours needs at most half static's engines: %u vs %u -> %s\n"
	       "  ours misses fewer than lru on %u engines: %llu vs %llu -> %s\n"
	       "  every minimum restored within its swap time + 5 s: %s\n"
	       "  planner memory guarantee held: %s\n",
	       needed[P_OURS], static_peak_engines, ok_half ? "met" : "NOT met", o.engines,
	       (unsigned long long)main_r[P_OURS].misses, (unsigned long long)main_r[P_LRU].misses,
	       ok_lru ? "met" : "NOT met", ok_fo ? "met" : "NOT met",
	       main_r[P_OURS].overcommit || fo_r.overcommit ? "NO" : "yes");

	if (o.json) {
		rows = json_array();
		json_array_append_new(rows, result_json(&peak_r, needed[P_STATIC]));
		for (int p = 0; p < NPOLICIES; p++)
			json_array_append_new(rows, result_json(&main_r[p], needed[p]));
		targets = json_pack("{s:{s:I, s:I, s:b}, s:{s:I, s:I, s:b}, s:b}", "half_engines",
				    "ours", (json_int_t)needed[P_OURS], "static_peak",
				    (json_int_t)static_peak_engines, "met", ok_half,
				    "fewer_misses_than_lru", "ours", (json_int_t)main_r[P_OURS].misses,
				    "lru", (json_int_t)main_r[P_LRU].misses, "met", ok_lru,
				    "failover_met", ok_fo);
		json_t *sw = json_array(), *tl = json_array();
		for (int p = 0; p < NPOLICIES; p++)
			for (int i = 0; i < nsweep; i++)
				json_array_append_new(
					sw, json_pack("{s:s, s:I, s:I, s:f, s:f, s:f}", "policy",
						      policy_names[p], "engines",
						      (json_int_t)sweep[p][i].engines, "slo_misses",
						      (json_int_t)sweep[p][i].misses, "miss_share",
						      sweep[p][i].miss_share, "bytes_moved",
						      sweep[p][i].bytes, "swaps_per_hour",
						      sweep[p][i].swaps_h));
		for (int p = 0; p < NPOLICIES; p++)
			for (unsigned b = 0; b < main_r[p].nbins; b++)
				json_array_append_new(
					tl, json_pack("{s:s, s:f, s:I, s:I, s:I}", "policy",
						      policy_names[p], "from_h",
						      b * o.timeline_s / 3600.0, "requests",
						      (json_int_t)main_r[p].tl_requests[b],
						      "slo_misses", (json_int_t)main_r[p].tl_misses[b],
						      "swaps", (json_int_t)main_r[p].tl_swaps[b]));
		json_t *models = json_array();
		for (unsigned m = 0; m < NM; m++)
			json_array_append_new(models, json_pack("{s:I, s:f, s:I, s:f}", "model",
								(json_int_t)m, "size_gb", model_gb[m],
								"span", (json_int_t)span_of(m),
								"peak_rps", w.peak[m]));
		doc = json_pack(
			"{s:s, s:{s:s, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:f, s:f,"
			" s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:I, s:f, s:f, s:f}, s:o, s:I, s:o, s:{s:I,"
			" s:f, s:o}, s:o}",
			"benchmark", "hotswap", "config", "trace", o.trace, "hours", o.hours,
			"engines", (json_int_t)o.engines, "engine_gb", o.engine_gb, "host_bw_gbps",
			o.host_bw, "disk_bw_gbps", o.disk_bw, "host_cache_gb", o.host_cache_gb,
			"slo_s", o.slo, "batch", (json_int_t)o.batch, "prefill_tps", o.prefill_tps,
			"decode_tps", o.decode_tps, "base_rps", o.base_rps, "zipf", o.zipf,
			"rotate_h", o.rotate_h, "plan_interval_s", o.plan_s, "horizon_s", o.horizon_s,
			"hold_s", o.hold_s, "target_util", o.target, "margin", o.margin,
			"min_replicas", (json_int_t)o.min_replicas, "miss_target", o.miss_target,
			"seed", (json_int_t)o.seed, "health_interval_s", o.health_s, "viral_at_h",
			o.viral_h, "launch_at_h", o.launch_h,
			"models", models, "static_peak_engines", (json_int_t)static_peak_engines,
			"policies", rows, "failover", "engine", (json_int_t)fo_r.failed_engine,
			"at_h", fail_t / 3600.0, "models", fo, "targets", targets);
		if (doc) {
			json_object_set_new(doc, "sweep", sw);
			json_object_set_new(doc, "timeline",
					    json_pack("{s:I, s:f, s:o}", "engines",
						      (json_int_t)o.engines, "interval_s",
						      o.timeline_s, "points", tl));
		}
		if (!doc || json_dump_file(doc, o.json, JSON_INDENT(2) | JSON_REAL_PRECISION(6))) {
			fprintf(stderr, "hotswap: --json %s: cannot write\n", o.json);
			return 1;
		}
		json_decref(doc);
	}
	else
		json_decref(fo);
	if (o.plot_dir && plot_data(&o, static_peak_engines, nsweep, sweep, main_r) != 0)
		return 1;
	free(w.r);
	free(tk.ctx);
	free(tk.gen);
	return 0;
}
