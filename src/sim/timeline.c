/* timeline.c - see timeline.h. */
#include "sim/timeline.h"

#include <string.h>
#include <unistd.h>

#include "common/clock.h"

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Append [start, end) for pid, merging with the newest interval when it is
 * the same process's and kind's and ends exactly where this one starts. */
static void ring_push(struct gp_sim_devstate *d, uint64_t start, uint64_t end, int pid,
		      uint32_t kind)
{
	struct gp_sim_busy *last = d->count ? &d->ring[d->head] : NULL;

	if (last && last->pid == pid && last->kind == kind && last->end_ns == start) {
		last->end_ns = end;
		return;
	}
	d->head = d->count ? (d->head + 1) % GP_SIM_RING : 0;
	if (d->count < GP_SIM_RING)
		d->count++;
	d->ring[d->head] = (struct gp_sim_busy){start, end, pid, kind};
}

/* About to queue behind another process's work on `d`: make sure that
 * process is alive (a dead process's queued kernels stop occupying the
 * device).  Read without the lock: a stale look only costs a sweep. */
static void sweep_if_behind_other(struct gp_sim_devstate *d, uint64_t now)
{
	if (__atomic_load_n(&d->busy_until_ns, __ATOMIC_RELAXED) > now &&
	    __atomic_load_n(&d->ring[__atomic_load_n(&d->head, __ATOMIC_RELAXED) % GP_SIM_RING].pid,
			    __ATOMIC_RELAXED) != (int32_t)getpid())
		(void)gp__sim_sweep(GP_SIM_SWEEP_INTERVAL_NS);
}

uint64_t gp__sim_timeline_run(unsigned dev, uint64_t not_before, uint64_t dur_ns,
			      uint32_t kind, uint64_t *start)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	uint64_t now = gp_now_ns(), s = max_u64(now, not_before), e, gen;
	struct gp_sim_devstate *d;
	int slot;

	if (!h || dev >= h->cfg.n) {
		if (start)
			*start = s;
		return s + dur_ns;
	}
	d = &h->dev[dev];
	sweep_if_behind_other(d, now);
	slot = gp__sim_slot(&gen);
	if (gp__sim_state_lock()) {
		if (start)
			*start = s;
		return s + dur_ns;
	}
	if (dur_ns) {
		s = max_u64(s, d->busy_until_ns);
		e = s + dur_ns;
		d->busy_until_ns = e;
		ring_push(d, s, e, (int)getpid(), kind);
		/* Under the lock, like the ring: gpupool-simctl busy reads
		 * both at once (gp__sim_timeline_done). */
		if (slot >= 0)
			__atomic_add_fetch(&h->proc[slot].busy_ns[dev], dur_ns, __ATOMIC_RELAXED);
	} else {
		e = s;
	}
	gp__sim_state_unlock();
	if (start)
		*start = s;
	return e;
}

uint64_t gp__sim_timeline_tail(unsigned dev, uint64_t not_before)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	uint64_t now = gp_now_ns(), t = max_u64(now, not_before);
	struct gp_sim_devstate *d;

	if (!h || dev >= h->cfg.n)
		return t;
	d = &h->dev[dev];
	sweep_if_behind_other(d, now);
	if (gp__sim_state_lock())
		return t;
	t = max_u64(t, d->busy_until_ns);
	gp__sim_state_unlock();
	return t;
}

/* Length of [a, b) within [from, to). */
static uint64_t overlap(uint64_t a, uint64_t b, uint64_t from, uint64_t to)
{
	uint64_t lo = max_u64(a, from), hi = b < to ? b : to;

	return hi > lo ? hi - lo : 0;
}

void gp__sim_timeline_util(unsigned dev, uint64_t window_ns, unsigned *gpu, unsigned *mem)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	uint64_t now = gp_now_ns(), from = now > window_ns ? now - window_ns : 0;
	uint64_t busy = 0, membusy = 0;
	struct gp_sim_devstate *d;

	*gpu = *mem = 0;
	if (!h || dev >= h->cfg.n || window_ns == 0 || gp__sim_state_lock())
		return;
	d = &h->dev[dev];
	/* Newest first; intervals never overlap and are ordered, so the walk
	 * stops at the first one that ended before the window. */
	for (uint32_t k = 0, i = d->head; k < d->count; k++) {
		const struct gp_sim_busy *b = &d->ring[i];
		if (b->end_ns <= from)
			break;
		uint64_t o = overlap(b->start_ns, b->end_ns, from, now);
		busy += o;
		if (b->kind == GP_SIM_BUSY_MEM)
			membusy += o;
		i = i ? i - 1 : GP_SIM_RING - 1;
	}
	gp__sim_state_unlock();
	*gpu = (unsigned)(busy * 100 / (now - from));
	*mem = (unsigned)(membusy * 100 / (now - from));
}

unsigned gp__sim_timeline_by_pid(unsigned dev, uint64_t from, uint64_t to,
				 struct gp_sim_pidbusy *out, unsigned cap)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	struct gp_sim_devstate *d;
	unsigned n = 0;

	if (!h || dev >= h->cfg.n || to <= from || gp__sim_state_lock())
		return 0;
	d = &h->dev[dev];
	for (uint32_t k = 0, i = d->head; k < d->count; k++) {
		const struct gp_sim_busy *b = &d->ring[i];
		uint64_t o;
		unsigned j;

		i = i ? i - 1 : GP_SIM_RING - 1;
		if (b->end_ns <= from)
			break;
		o = overlap(b->start_ns, b->end_ns, from, to);
		if (!o)
			continue;
		for (j = 0; j < n && j < cap && out[j].pid != b->pid; j++)
			;
		if (j == n) {
			if (n == cap)
				continue; /* no room: the caller asked for fewer */
			memset(&out[n], 0, sizeof out[n]);
			out[n].pid = b->pid;
			n++;
		}
		out[j].busy_ns += o;
		if (b->kind == GP_SIM_BUSY_MEM)
			out[j].mem_ns += o;
		out[j].last_ns = max_u64(out[j].last_ns, b->end_ns < to ? b->end_ns : to);
	}
	gp__sim_state_unlock();
	return n;
}

void gp__sim_timeline_forget_locked(struct gp_sim_hdr *h, unsigned dev, int pid, uint64_t now)
{
	struct gp_sim_devstate *d = &h->dev[dev];
	int changed = 0;

	while (d->count) {
		struct gp_sim_busy *b = &d->ring[d->head];
		if (b->pid != pid || b->end_ns <= now)
			break;
		changed = 1;
		if (b->start_ns < now) { /* running when it died: cut it */
			b->end_ns = now;
			break;
		}
		d->count--;
		d->head = d->head ? d->head - 1 : GP_SIM_RING - 1;
	}
	if (changed)
		d->busy_until_ns = d->count ? d->ring[d->head].end_ns : 0;
}

unsigned gp__sim_timeline_done(unsigned dev, struct gp_sim_procbusy *out, unsigned cap)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	struct gp_sim_devstate *d;
	uint64_t now, future[GP_SIM_STATE_PROCS] = {0};
	unsigned n = 0, filled;

	if (!h || dev >= h->cfg.n)
		return 0;
	(void)gp__sim_sweep(GP_SIM_SWEEP_INTERVAL_NS);
	if (gp__sim_state_lock())
		return 0;
	d = &h->dev[dev];
	now = gp_now_ns(); /* under the lock: no kernel is scheduled meanwhile */
	for (unsigned i = 0; i < GP_SIM_STATE_PROCS; i++) {
		const struct gp_sim_proc *p = &h->proc[i];
		uint64_t busy;

		if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != GP_SIM_PROC_ACTIVE)
			continue;
		busy = __atomic_load_n(&p->busy_ns[dev], __ATOMIC_RELAXED);
		if (!busy)
			continue;
		if (n < cap) {
			out[n].pid = __atomic_load_n(&p->pid, __ATOMIC_RELAXED);
			out[n].busy_ns = busy;
		}
		n++;
	}
	filled = n < cap ? n : cap;
	/* What has not run yet: the intervals are ordered and never overlap,
	 * so the future is at the newest end, and the walk stops at the first
	 * one that has ended.  (A ring that wrapped while more than
	 * GP_SIM_RING intervals were queued has lost some of it.) */
	for (uint32_t k = 0, i = d->head; k < d->count; k++) {
		const struct gp_sim_busy *b = &d->ring[i];

		if (b->end_ns <= now)
			break;
		for (unsigned j = 0; j < filled; j++) {
			if (out[j].pid == b->pid) {
				future[j] += b->end_ns - max_u64(b->start_ns, now);
				break;
			}
		}
		i = i ? i - 1 : GP_SIM_RING - 1;
	}
	gp__sim_state_unlock();
	/* A figure never goes below zero, even for a pid whose earlier
	 * incarnation left intervals queued behind others' work. */
	for (unsigned j = 0; j < filled; j++)
		out[j].busy_ns -= future[j] < out[j].busy_ns ? future[j] : out[j].busy_ns;
	return n;
}
