/* share.c - compute shares and priority: when a launch may go.
 *
 * A share is a rate: a tenant limited to r of a card may use r seconds of
 * its device time per second.  Each metered launch is charged the device
 * time it will take (meter.c) and paced by the generic cell rate algorithm
 * on one clock per tenant and card, `pace_ns` in the region, which all the
 * tenant's processes share: a launch costing c at rate r moves the clock
 * from max(clock, now) to that + c / r, and may go once the clock, before
 * the move, is at most TOLERANCE_NS ahead of now (FULL_TOLERANCE_NS at the
 * whole card's rate).  So over any stretch
 * the tenant launches at most r of it (plus the tolerance) in device time,
 * and its own queue on the device never runs more than the tolerance
 * ahead: a neighbour's kernel never waits behind a long backlog of it.  A
 * launch that must wait sleeps in the launching thread until its moment
 * (clock_nanosleep on an absolute time: sub-millisecond, and a late wakeup
 * is not lost, since the clock does not move while it sleeps); no lock is
 * held, and threads that do not launch are never stopped.  When a sampled
 * launch has been measured, the clock and the tenant's device time are
 * corrected by what it really took.
 *
 * The rate depends on who else wants the card now, read from the node file
 * (include/gpupool/node.h; every VIEW_NS at most, by whichever thread
 * launches):
 *  - hard: the limit, always;
 *  - elastic: the limit while any tenant without a limit wants the card;
 *    otherwise the card's time not held by hard tenants, split between
 *    the elastic tenants that want it in proportion to their limits (alone:
 *    all of it).  Without a node file, elastic acts as hard;
 *  - no limit: the whole card (paced only to keep its queue short when a
 *    priority is set);
 *  - low priority, while a high-priority tenant wants the card or was
 *    active within the hold-off: at most the floor (default 0: held until
 *    the high tenant has been idle for the hold-off).  A held launch
 *    sleeps until the earliest moment that can change, looking again at
 *    least every HOLD_STEP_NS; a high tenant whose lease is free (it died)
 *    is dropped at once.
 * Each process publishes its own demand: until when it wants the card (its
 * next pacing point plus a grace, refreshed at most every PUBLISH_NS) and
 * when it last launched.  Processes whose launches are not metered publish
 * from the activity stamp (activity.c), at most every 10 ms.
 */
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "hook/hook.h"

#define PPM 1000000u
/* How far ahead of now a tenant's pacing clock may be at a launch: how
 * much it may queue on the device.  Short, so that a neighbour's kernel
 * never waits long behind it; longer for a tenant entitled to the whole
 * card (nobody else wants it), so that a stall of its host thread does
 * not leave the card idle, except for a low-priority one, which must
 * stop quickly when a high one arrives. */
#define TOLERANCE_NS 2000000ULL
#define FULL_TOLERANCE_NS 8000000ULL
/* How long a view of the node file is used before it is read again. */
#define VIEW_NS 2000000ULL
/* Demand lasts this long past the moment it was published for. */
#define GRACE_NS 20000000ULL
/* Demand is published at most this far ahead, and a paced launch wakes at
 * least this often to publish it again: a tenant that dies in a long wait
 * stops counting for others within WANT_AHEAD_NS + GRACE_NS. */
#define WANT_AHEAD_NS 400000000ULL
#define GRACE_UNMETERED_NS 50000000ULL
/* The published figures are rewritten only when they moved this much. */
#define PUBLISH_NS 1000000ULL
/* A held launch looks again at least this often; the leases of the high
 * tenants holding it are probed at most this often. */
#define HOLD_STEP_NS 50000000ULL
/* A paced launch of a low-priority tenant sleeps at most this long at a
 * time, so that a high tenant arriving meanwhile is noticed. */
#define LOW_STEP_NS 5000000ULL
/* A launch of something never measured waits this long at most for the
 * sample under way, looking every STEP. */
#define UNKNOWN_WAIT_NS 20000000ULL
#define UNKNOWN_STEP_NS 100000ULL
/* Distinct tenants counted per card in one view. */
#define MAX_TENANTS 64
/* High tenants remembered per view, for the lease probe. */
#define MAX_HIGH 8

int gp__share_any;

struct sdev {
	/* Set up once, before the hook is ready. */
	int on;                   /* launches here are metered */
	uint64_t full_tolerance;  /* the tolerance at the whole card's rate */
	uint32_t limit;           /* own share in percent; 0 = none */
	struct gp_region_dev *e;  /* region entry */
	uint64_t card;            /* node file key */
	/* The node slot, taken at first use (atomic). */
	int slot;                 /* SLOT_* or the index */
	uint64_t pub_want;        /* the want_until_ns we last stored */
	uint64_t pub_active;      /* the active_ns we last stored */
	/* The view: written by whichever thread refreshes it (atomics). */
	uint64_t view_until;      /* used until then */
	uint32_t rate;            /* ppm; 0 = held back */
	uint64_t hold_until;      /* held back: when that can change */
	uint64_t lease_ns;        /* last probe of the high tenants' leases */
	int high[MAX_HIGH];       /* their slots, at the last view */
	int nhigh;
};
static struct sdev sd[GP_REGION_MAX_DEVS];

enum { SLOT_NONE = -1, SLOT_TAKING = -2, SLOT_FAILED = -3 };

/* CLOCK_MONOTONIC, read here rather than through gp_now_ns: a launch
 * reads it once, and the call would cost as much as the read. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* The configuration's words as the region and node file spell them. */
static uint8_t region_policy(enum gp_core_policy p)
{
	return p == GP_CORE_HARD ? GP_REGION_CORE_HARD
	       : p == GP_CORE_OFF ? GP_REGION_CORE_OFF
				  : GP_REGION_CORE_ELASTIC;
}

static uint8_t region_priority(enum gp_priority p)
{
	return p == GP_PRIO_HIGH ? GP_REGION_PRIO_HIGH
	       : p == GP_PRIO_LOW ? GP_REGION_PRIO_LOW
				  : GP_REGION_PRIO_NORMAL;
}

void gp__share_setup(int ord)
{
	const struct gp__config *c = &gp__g.cfg;
	const struct gp__dev *dv = &gp__g.dev[ord];
	struct sdev *d = &sd[ord];
	unsigned limit = c->policy == GP_CORE_OFF ? 0 : c->core[ord];

	d->e = &gp__g.region.hdr->dev[dv->slot];
	d->limit = limit;
	d->card = gp_node_card(dv->uuid);
	d->slot = SLOT_NONE;
	d->on = limit != 0 || c->priority != GP_PRIO_NORMAL;
	d->full_tolerance = c->priority == GP_PRIO_LOW ? TOLERANCE_NS : FULL_TOLERANCE_NS;
	if (!gp__g.node.hdr) /* nothing to publish to: make publish() a no-op */
		d->pub_want = d->pub_active = UINT64_MAX - PUBLISH_NS;
	/* What the agent shows; every process of the tenant writes the same. */
	__atomic_store_n(&d->e->core_limit, limit, __ATOMIC_RELAXED);
	__atomic_store_n(&d->e->core_policy, region_policy(c->policy), __ATOMIC_RELAXED);
	__atomic_store_n(&d->e->priority, region_priority(c->priority), __ATOMIC_RELAXED);
	if (d->on) {
		gp_info("device %d: compute %u%% %s, priority %s", ord, limit,
			limit == 0 ? "(none)" : c->policy == GP_CORE_HARD ? "hard" : "elastic",
			c->priority == GP_PRIO_HIGH ? "high" : c->priority == GP_PRIO_LOW ? "low" : "normal");
		__atomic_store_n(&gp__share_any, 1, __ATOMIC_RELEASE);
	}
}

/* Our node slot for `d`, taken on first use; NULL without one. */
static struct gp_node_slot *slot_of(struct sdev *d)
{
	const struct gp__config *c = &gp__g.cfg;
	int s = __atomic_load_n(&d->slot, __ATOMIC_ACQUIRE), none = SLOT_NONE;
	struct gp_node_slot tmpl = {0};

	if (GP_LIKELY(s >= 0))
		return &gp__g.node.hdr->slot[s];
	if (s != SLOT_NONE || !gp__g.node.hdr ||
	    !__atomic_compare_exchange_n(&d->slot, &none, SLOT_TAKING, 0, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return NULL;
	tmpl.card = d->card;
	tmpl.tenant = gp__g.region.hdr->id;
	tmpl.pid = (int32_t)getpid();
	tmpl.core_limit = (uint8_t)d->limit;
	tmpl.core_policy = region_policy(c->policy);
	tmpl.priority = region_priority(c->priority);
	s = gp_node_take(&gp__g.node, &tmpl);
	if (s < 0)
		gp_warn("node file %s: no free slot; this process is not seen by other tenants' "
			"shares",
			c->node);
	__atomic_store_n(&d->slot, s < 0 ? SLOT_FAILED : s, __ATOMIC_RELEASE);
	return s < 0 ? NULL : &gp__g.node.hdr->slot[s];
}

/* Publish that we want the card until `want` and launched at `now`: the
 * two compares are all a launch pays unless a figure moved by PUBLISH_NS
 * (or there is no node file: then nothing is ever published). */
static void publish_slow(struct sdev *d, uint64_t now, uint64_t want)
{
	struct gp_node_slot *s = slot_of(d);

	if (!s)
		return;
	if (want > __atomic_load_n(&d->pub_want, __ATOMIC_RELAXED) + PUBLISH_NS) {
		__atomic_store_n(&d->pub_want, want, __ATOMIC_RELAXED);
		__atomic_store_n(&s->want_until_ns, want, __ATOMIC_RELAXED);
	}
	if (now > __atomic_load_n(&d->pub_active, __ATOMIC_RELAXED) + PUBLISH_NS) {
		__atomic_store_n(&d->pub_active, now, __ATOMIC_RELAXED);
		__atomic_store_n(&s->active_ns, now, __ATOMIC_RELAXED);
	}
}

static inline void publish(struct sdev *d, uint64_t now, uint64_t want)
{
	/* `want` is past `now`, so it moves at least as fast: one compare
	 * covers both. */
	if (GP_UNLIKELY(want > __atomic_load_n(&d->pub_want, __ATOMIC_RELAXED) + PUBLISH_NS))
		publish_slow(d, now, want);
}

void gp__share_touch(int ord, uint64_t now)
{
	if (ord >= 0 && ord < (int)GP_REGION_MAX_DEVS && !sd[ord].on)
		publish(&sd[ord], now, now + GRACE_UNMETERED_NS);
}

/* Who wants d's card, read from the node file: the rate we may launch at
 * (ppm; 0 = held back by a high tenant) and, when held back, until when. */
static uint32_t look(struct sdev *d, uint64_t now, uint64_t *hold_until)
{
	const struct gp__config *c = &gp__g.cfg;
	const struct gp_node_hdr *h = gp__g.node.hdr;
	uint64_t seen[MAX_TENANTS], me = gp__g.region.hdr->id, hi = 0;
	unsigned nseen = 0, used, hard = 0, elastic = 0, nhigh = 0;
	int unlimited = 0;
	uint64_t rate;

	*hold_until = 0;
	if (!h)
		return d->limit ? d->limit * (PPM / 100) : PPM;
	if (d->limit && c->policy == GP_CORE_ELASTIC)
		elastic = d->limit;
	used = __atomic_load_n(&h->used, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < used && i < GP_NODE_SLOTS; i++) {
		const struct gp_node_slot *s = &h->slot[i];
		uint64_t want, t;
		unsigned k;

		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != GP_NODE_ACTIVE ||
		    __atomic_load_n(&s->card, __ATOMIC_RELAXED) != d->card ||
		    (t = __atomic_load_n(&s->tenant, __ATOMIC_RELAXED)) == me)
			continue;
		want = __atomic_load_n(&s->want_until_ns, __ATOMIC_RELAXED);
		if (c->priority == GP_PRIO_LOW &&
		    __atomic_load_n(&s->priority, __ATOMIC_RELAXED) == GP_REGION_PRIO_HIGH) {
			uint64_t until = max64(want, __atomic_load_n(&s->active_ns, __ATOMIC_RELAXED) +
							     c->holdoff_ns);
			if (until > now) {
				hi = max64(hi, until);
				if (nhigh < MAX_HIGH)
					d->high[nhigh++] = (int)i;
			}
		}
		if (want <= now)
			continue;
		for (k = 0; k < nseen && seen[k] != t; k++)
			;
		if (k < nseen || nseen == MAX_TENANTS)
			continue; /* counted (a tenant with several processes) */
		seen[nseen++] = t;
		unsigned lim = __atomic_load_n(&s->core_limit, __ATOMIC_RELAXED);
		unsigned pol = __atomic_load_n(&s->core_policy, __ATOMIC_RELAXED);
		if (lim == 0 || lim > 100 || pol == GP_REGION_CORE_OFF)
			unlimited = 1;
		else if (pol == GP_REGION_CORE_HARD)
			hard += lim;
		else
			elastic += lim;
	}
	d->nhigh = (int)nhigh;

	if (!d->limit)
		rate = PPM;
	else if (c->policy != GP_CORE_ELASTIC || unlimited)
		rate = (uint64_t)d->limit * (PPM / 100);
	else if (hard + elastic > 100) /* promised more than the card: scaled down */
		rate = (uint64_t)d->limit * PPM / (hard + elastic);
	else
		rate = (uint64_t)d->limit * (100 - hard) * (PPM / 100) / elastic;
	if (rate > PPM)
		rate = PPM;
	if (hi > now) {
		uint64_t floor = (uint64_t)c->floor * (PPM / 100);
		if (rate > floor)
			rate = floor;
		*hold_until = hi;
	}
	return (uint32_t)rate;
}

/* The rate for a launch at `now` from a fresh look. */
static __attribute__((noinline)) uint32_t view_slow(struct sdev *d, uint64_t now)
{
	uint64_t hold;
	uint32_t r;

	r = look(d, now, &hold);
	if (r == 0 && d->nhigh && now - __atomic_load_n(&d->lease_ns, __ATOMIC_RELAXED) >= HOLD_STEP_NS) {
		/* Held back: make sure the high tenants are alive.  A dead
		 * one's slot is freed, and the look no longer sees it. */
		int dead = 0;
		__atomic_store_n(&d->lease_ns, now, __ATOMIC_RELAXED);
		for (int i = 0; i < d->nhigh; i++)
			dead |= gp_node_alive(&gp__g.node, (unsigned)d->high[i]) == 0;
		if (dead)
			r = look(d, now, &hold);
	}
	__atomic_store_n(&d->rate, r, __ATOMIC_RELAXED);
	__atomic_store_n(&d->hold_until, hold, __ATOMIC_RELAXED);
	__atomic_store_n(&d->view_until, now + VIEW_NS, __ATOMIC_RELEASE);
	return r;
}

/* The rate for a launch at `now`, from the view while it lasts. */
static inline uint32_t view(struct sdev *d, uint64_t now)
{
	if (GP_LIKELY(now < __atomic_load_n(&d->view_until, __ATOMIC_ACQUIRE)))
		return __atomic_load_n(&d->rate, __ATOMIC_RELAXED);
	return view_slow(d, now);
}

/* Wait while a high tenant holds d back; returns the rate to launch at
 * and updates *now. */
static __attribute__((noinline)) uint32_t wait_held(struct sdev *d, uint64_t *now)
{
	uint32_t r;

	while ((r = view(d, *now)) == 0) {
		uint64_t until = __atomic_load_n(&d->hold_until, __ATOMIC_RELAXED);

		publish(d, *now, *now + HOLD_STEP_NS + GRACE_NS);
		if (until > *now + HOLD_STEP_NS)
			until = *now + HOLD_STEP_NS;
		if (until < *now + VIEW_NS)
			until = *now + VIEW_NS; /* the view cannot change sooner */
		gp_sleep_until_ns(until);
		*now = now_ns();
	}
	return r;
}

/* Pace a launch costing `cost` on d: returns the rate it went at, updates
 * *now, adds the time it waited to the tenant's throttled time. */
/* pace() past its fast path: the launch must wait until `start` minus
 * `tol`.  Returns with *now updated. */
static __attribute__((noinline)) void pace_wait(struct sdev *d, uint64_t start, uint64_t next,
						uint64_t tol, uint64_t *now)
{
	for (;;) {
		uint64_t until = start - tol;

		/* A low tenant wakes now and then to notice a high one;
		 * everyone wakes to keep its demand published. */
		if (gp__g.cfg.priority == GP_PRIO_LOW && until > *now + LOW_STEP_NS)
			until = *now + LOW_STEP_NS;
		else if (until > *now + WANT_AHEAD_NS / 2)
			until = *now + WANT_AHEAD_NS / 2;
		gp_sleep_until_ns(until);
		*now = now_ns();
		if (gp__g.cfg.priority == GP_PRIO_LOW)
			(void)wait_held(d, now);
		publish(d, *now, (next < *now + WANT_AHEAD_NS ? next : *now + WANT_AHEAD_NS) + GRACE_NS);
		if (start <= *now + tol)
			return;
	}
}

static inline __attribute__((always_inline)) uint32_t pace(struct sdev *d, uint64_t cost,
							       uint64_t *now)
{
	uint64_t t0 = *now, p, start, next, tol;
	uint32_t r = view(d, *now);

	if (GP_UNLIKELY(r == 0))
		r = wait_held(d, now);
	tol = r == PPM ? d->full_tolerance : TOLERANCE_NS;
	p = __atomic_load_n(&d->e->pace_ns, __ATOMIC_RELAXED);
	do {
		start = max64(p, *now);
		next = start + cost * PPM / r;
	} while (!__atomic_compare_exchange_n(&d->e->pace_ns, &p, next, 1, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	publish(d, *now, (next < *now + WANT_AHEAD_NS ? next : *now + WANT_AHEAD_NS) + GRACE_NS);
	if (GP_UNLIKELY(start > *now + tol))
		pace_wait(d, start, next, tol, now);
	if (GP_UNLIKELY(*now > t0))
		__atomic_add_fetch(&d->e->throttled_ns, *now - t0, __ATOMIC_RELAXED);
	return r;
}

/* Apply finished measurements of d's launches. */
static inline void settle(struct sdev *d, int ord, uint64_t now)
{
	struct gp__measured m;

	if (GP_UNLIKELY(now >= __atomic_load_n(&gp__meter_due[ord], __ATOMIC_RELAXED)) &&
	    gp__meter_poll(ord, now, &m)) {
		/* Two's complement: a launch that took less moves both back. */
		uint64_t diff = m.took - m.charged;
		__atomic_add_fetch(&d->e->compute_ns, diff, __ATOMIC_RELAXED);
		__atomic_add_fetch(&d->e->pace_ns,
				   (uint64_t)((int64_t)diff * (int64_t)PPM / (int64_t)m.rate),
				   __ATOMIC_RELAXED);
	}
}

/* What a launch of `key` is charged, applying finished measurements
 * first.  What it runs has never been measured while a sample is under
 * way: it waits for that sample (up to UNKNOWN_WAIT_NS, so that a stream
 * waiting on this thread cannot deadlock it), since it may be the same
 * kernel, and otherwise a burst of it would all go charged a guess. */
static __attribute__((noinline)) uint64_t cost_unknown(struct sdev *d, int ord, uint64_t key,
							uint64_t *now, int capturing)
{
	uint64_t t0 = *now, c = 0;
	int young;

	while (!capturing && gp__meter_busy(ord) && *now - t0 < UNKNOWN_WAIT_NS) {
		gp_sleep_until_ns(*now + UNKNOWN_STEP_NS);
		*now = now_ns();
		settle(d, ord, *now);
		if ((c = gp__meter_known(key, &young)))
			break;
	}
	if (*now > t0)
		__atomic_add_fetch(&d->e->throttled_ns, *now - t0, __ATOMIC_RELAXED);
	return c ? c : gp__meter_guess(ord);
}

static inline uint64_t cost(struct sdev *d, int ord, uint64_t key, uint64_t *now, int *sample,
			    int capturing)
{
	uint64_t c;
	int young = 0;

	if (GP_LIKELY(!capturing))
		settle(d, ord, *now);
	c = gp__meter_known(key, &young);
	if (GP_LIKELY(c)) {
		/* Every SAMPLE_LAUNCHES-th launch looks at the clock. */
		uint32_t skip = __atomic_load_n(&gp__meter_skip[ord], __ATOMIC_RELAXED);

		__atomic_store_n(&gp__meter_skip[ord], skip - (skip != 0), __ATOMIC_RELAXED);
		*sample = (young || (!skip && *now >= __atomic_load_n(&gp__meter_next[ord],
								      __ATOMIC_RELAXED))) &&
			  !capturing;
		return c;
	}
	*sample = !capturing; /* no events while a capture is in progress */
	return cost_unknown(d, ord, key, now, capturing);
}

/* Is `stream` capturing?  Asked only while some capture is in progress. */
static int captured(CUstream stream)
{
	CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;

	return !gp__real_cuStreamIsCapturing ||
	       gp__real_cuStreamIsCapturing(stream, &st) != CUDA_SUCCESS ||
	       st != CU_STREAM_CAPTURE_STATUS_NONE;
}

static __attribute__((noinline)) void start_sample(struct gp__launch *l, uint64_t key,
						    CUcontext ctx, CUstream stream)
{
	l->key = key;
	l->stream = stream;
	l->sampling = gp__meter_start(l->ord, ctx, stream);
}

int gp__share_begin(struct gp__launch *l, uint64_t key, CUstream stream, int ptsz)
{
	const struct gp__where *w;
	CUcontext ctx = NULL;
	struct sdev *d;
	uint64_t now;
	int sample, ord, capturing;

	/* One visible GPU (a container's usual lot): it is the current
	 * context's, and the context is asked for only to measure.  (ndev
	 * is published once the devices, and their shares, are set up.) */
	if (GP_LIKELY(__atomic_load_n(&gp__g.ndev, __ATOMIC_ACQUIRE) == 1)) {
		ord = 0;
	} else {
		if (!__atomic_load_n(&gp__g.ready, __ATOMIC_ACQUIRE) || !(w = gp__where()) ||
		    w->ord < 0)
			return 0;
		ord = w->ord;
		ctx = w->ctx;
	}
	if (!(d = &sd[ord])->on)
		return 0;
	capturing = __atomic_load_n(&gp__captures, __ATOMIC_RELAXED) != 0;
	if (GP_UNLIKELY(capturing) && captured(!stream && ptsz ? CU_STREAM_PER_THREAD : stream))
		return 0; /* recorded into a graph: runs nothing now */
	now = now_ns();
	l->ord = ord;
	l->e = d->e;
	l->cost = cost(d, ord, key, &now, &sample, capturing);
	l->rate = pace(d, l->cost, &now);
	l->now = now;
	l->sampling = 0;
	if (GP_UNLIKELY(sample))
		start_sample(l, key, ctx, !stream && ptsz ? CU_STREAM_PER_THREAD : stream);
	return 1;
}

CUresult gp__share_end_slow(struct gp__launch *l, CUresult rc)
{
	if (l->sampling)
		gp__meter_stop(l->ord, l->stream, l->key, l->cost, l->rate, l->now,
			       rc == CUDA_SUCCESS);
	if (rc != CUDA_SUCCESS) {
		/* Refused: it takes no device time; give its pace back. */
		__atomic_sub_fetch(&l->e->pace_ns, l->cost * PPM / l->rate, __ATOMIC_RELAXED);
		return rc;
	}
	return gp__share_end_ok(l, rc);
}

void gp__share_pace(int ord, uint64_t key)
{
	struct sdev *d;
	uint64_t now, c;

	if (ord < 0 || ord >= gp__g.ndev || !(d = &sd[ord])->on)
		return;
	now = now_ns();
	int young;

	c = gp__meter_known(key, &young);
	if (!c)
		c = gp__meter_guess(ord);
	(void)pace(d, c, &now);
	__atomic_add_fetch(&d->e->compute_ns, c, __ATOMIC_RELAXED);
}

void gp__share_atfork(enum gp__fork_phase phase)
{
	if (phase != GP_FORK_CHILD)
		return;
	/* The parent's node slots are its own: the child takes its own. */
	if (gp__g.node.hdr && gp_node_forked(&gp__g.node))
		gp_warn("node file: cannot reopen it after fork; the child is not seen by "
			"other tenants' shares");
	for (unsigned i = 0; i < GP_REGION_MAX_DEVS; i++) {
		sd[i].slot = SLOT_NONE;
		if (gp__g.node.hdr) /* else publishing stays switched off */
			sd[i].pub_want = sd[i].pub_active = 0;
		sd[i].view_until = 0;
	}
}
