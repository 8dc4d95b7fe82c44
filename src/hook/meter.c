/* meter.c - how much device time a launch takes.
 *
 * A share is a rate of device time, so every metered launch is charged
 * what it will take before it goes (share.c paces on that).  The figure
 * comes from measurements of the tenant's own kernels, never from a
 * utilization sample of the card: now and then a launch is bracketed by two
 * events recorded on its stream, immediately before and after it, and
 * cuEventElapsedTime between them is what it took.  An event executes when
 * the device reaches it in the context's queue, so the pair spans the
 * kernel itself, not the work of other tenants queued before it.  Where
 * the pair cannot resolve the kernel, it errs on the high side: on a real
 * GPU without MPS a time slice another context takes in the middle of a
 * long kernel is counted, and on an idle device the host-side time until
 * the kernel is submitted, or until the end event is recorded after a
 * kernel shorter than that, is counted too.  A tenant is then charged a
 * little more than it used, never less.
 *
 * Between samples each launch is charged the latest estimate for what it
 * runs: a kernel with its grid and block sizes, or an executable graph
 * (gp__launch_key).  A key's first GP_EST_YOUNG samples replace its
 * estimate (first launches are the odd ones: module loading, lazy paths),
 * later ones are averaged in with weight 1/4, in a small direct-mapped
 * table; a key not yet measured is charged the device's mean and measured
 * as soon as the sampler is free.  A sampled launch's measurement replaces
 * its charge (share.c corrects the pacing clock and the tenant's device
 * time by the difference), so the charges of sampled launches are exact
 * and the rest are as good as the estimate of their key.
 *
 * One sampler per device and process, two events in the context they were
 * made in, claimed by a compare-and-swap so that a launching thread never
 * waits for another.  A measured key is sampled again at most every
 * SAMPLE_NS (10 ms) and SAMPLE_LAUNCHES (64) launches per device, and an
 * end event is queried only once it should have finished (gp__meter_due,
 * which launches test inline), backing off while it has not, so the
 * driver calls are rare next to launches.  Nothing is measured while a
 * stream capture is in progress in the process (share.c): an event record
 * on a capturing stream would end up in the user's graph.
 */
#include "hook/hook.h"

/* A new sample of a measured key at most this often per device, and only
 * after this many launches there since the last: the time bounds the
 * driver calls of a program launching fast, the count bounds what
 * sampling adds to each launch of one launching slowly (or under
 * valgrind, which makes every launch a hundred times slower). */
#define SAMPLE_NS 10000000ULL
#define SAMPLE_LAUNCHES 64
/* Look at an unfinished sample again after this, doubling up to MAX. */
#define POLL_MIN_NS 200000ULL
#define POLL_MAX_NS 20000000ULL

enum { S_IDLE = 0, S_BUSY = 1, S_PENDING = 2 };

struct gp__est gp__est[1u << GP_EST_BITS];
uint64_t gp__meter_next[GP_REGION_MAX_DEVS];
uint32_t gp__meter_skip[GP_REGION_MAX_DEVS];

struct sampler {
	uint32_t state;    /* S_*: who may touch the rest (atomic) */
	CUcontext ctx;     /* the context its events belong to */
	CUevent ev[2];     /* start, end */
	uint64_t key;      /* what the pending sample measures */
	uint64_t charged;  /* what it was charged */
	uint32_t rate;     /* the rate it was paced at */
	uint64_t backoff;  /* the wait after a query that found it running */
	uint64_t mean_ns;  /* the device's recent mean: the charge of keys
	                      not measured yet (atomic) */
};
static struct sampler smp[GP_REGION_MAX_DEVS];

uint64_t gp__meter_due[GP_REGION_MAX_DEVS] = {[0 ... GP_REGION_MAX_DEVS - 1] = UINT64_MAX};

uint64_t gp__meter_guess(int ord)
{
	return __atomic_load_n(&smp[ord].mean_ns, __ATOMIC_RELAXED);
}

int gp__meter_busy(int ord)
{
	return __atomic_load_n(&smp[ord].state, __ATOMIC_RELAXED) != S_IDLE;
}

/* Make the sampler's events in `ctx` (sampler held). */
static int events_for(struct sampler *s, CUcontext ctx)
{
	if (s->ctx == ctx)
		return 0;
	if (!gp__real_cuEventCreate || !gp__real_cuEventRecord || !gp__real_cuEventQuery ||
	    !gp__real_cuEventElapsedTime || !gp__real_cuEventDestroy_v2)
		return -1;
	/* The old context may be gone (its events with it): errors of the
	 * destruction do not matter. */
	for (int i = 0; i < 2; i++)
		if (s->ev[i])
			(void)gp__real_cuEventDestroy_v2(s->ev[i]);
	s->ev[0] = s->ev[1] = NULL;
	s->ctx = NULL;
	if (gp__real_cuEventCreate(&s->ev[0], CU_EVENT_DEFAULT) != CUDA_SUCCESS ||
	    gp__real_cuEventCreate(&s->ev[1], CU_EVENT_DEFAULT) != CUDA_SUCCESS) {
		if (s->ev[0])
			(void)gp__real_cuEventDestroy_v2(s->ev[0]);
		s->ev[0] = NULL;
		return -1;
	}
	s->ctx = ctx;
	return 0;
}

int gp__meter_start(int ord, CUcontext ctx, CUstream stream)
{
	struct sampler *s = &smp[ord];
	uint32_t idle = S_IDLE;

	if (!__atomic_compare_exchange_n(&s->state, &idle, S_BUSY, 0, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return 0;
	if (!ctx && gp__real_cuCtxGetCurrent(&ctx) != CUDA_SUCCESS)
		ctx = NULL;
	if (!ctx) {
		__atomic_store_n(&s->state, S_IDLE, __ATOMIC_RELEASE);
		return 0;
	}
	if (events_for(s, ctx) == 0 && gp__real_cuEventRecord(s->ev[0], stream) == CUDA_SUCCESS) {
		return 1;
	}
	/* A context that went away under the events: make new ones next time. */
	s->ctx = NULL;
	__atomic_store_n(&s->state, S_IDLE, __ATOMIC_RELEASE);
	return 0;
}

void gp__meter_stop(int ord, CUstream stream, uint64_t key, uint64_t charged, uint32_t rate,
		    uint64_t now, int launched)
{
	struct sampler *s = &smp[ord];

	if (!launched || gp__real_cuEventRecord(s->ev[1], stream) != CUDA_SUCCESS) {
		__atomic_store_n(&s->state, S_IDLE, __ATOMIC_RELEASE);
		return;
	}
	s->key = key;
	s->charged = charged;
	s->rate = rate;
	s->backoff = POLL_MIN_NS;
	__atomic_store_n(&gp__meter_next[ord], now + SAMPLE_NS, __ATOMIC_RELAXED);
	__atomic_store_n(&gp__meter_skip[ord], SAMPLE_LAUNCHES, __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, S_PENDING, __ATOMIC_RELEASE);
	__atomic_store_n(&gp__meter_due[ord], now + (charged > POLL_MIN_NS ? charged : POLL_MIN_NS),
			 __ATOMIC_RELAXED);
}

/* Fold a measurement of `key` into its estimate and the device's mean. */
static void learn(struct sampler *s, uint64_t key, uint64_t took)
{
	struct gp__est *e = gp__est_of(key);
	uint64_t old = __atomic_load_n(&e->ns, __ATOMIC_RELAXED), mean, ns;
	uint32_t n = __atomic_load_n(&e->n, __ATOMIC_RELAXED);

	if (__atomic_load_n(&e->key, __ATOMIC_RELAXED) != key || old == 0) {
		__atomic_store_n(&e->ns, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&e->key, key, __ATOMIC_RELAXED);
		n = 0;
	}
	/* The first launches of a kernel are the odd ones (module loading,
	 * caches, lazy paths in the driver): the young samples replace the
	 * estimate outright.  After that, weight 1/4: a kernel whose time
	 * drifts is followed within a few samples, one odd sample moves the
	 * charge by a quarter. */
	ns = n < GP_EST_YOUNG ? took : (3 * old + took) / 4;
	__atomic_store_n(&e->ns, ns ? ns : 1, __ATOMIC_RELAXED);
	__atomic_store_n(&e->n, n < GP_EST_YOUNG ? n + 1 : n, __ATOMIC_RELAXED);
	mean = __atomic_load_n(&s->mean_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&s->mean_ns, mean ? (7 * mean + took) / 8 : took, __ATOMIC_RELAXED);
}

int gp__meter_poll(int ord, uint64_t now, struct gp__measured *m)
{
	struct sampler *s = &smp[ord];
	uint32_t pending = S_PENDING;
	float ms;
	CUresult rc;

	if (!__atomic_compare_exchange_n(&s->state, &pending, S_BUSY, 0, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return 0;
	rc = gp__real_cuEventQuery(s->ev[1]);
	if (rc == CUDA_ERROR_NOT_READY) {
		__atomic_store_n(&gp__meter_due[ord], now + s->backoff, __ATOMIC_RELAXED);
		if (s->backoff < POLL_MAX_NS)
			s->backoff *= 2;
		__atomic_store_n(&s->state, S_PENDING, __ATOMIC_RELEASE);
		return 0;
	}
	__atomic_store_n(&gp__meter_due[ord], UINT64_MAX, __ATOMIC_RELAXED);
	if (rc != CUDA_SUCCESS ||
	    gp__real_cuEventElapsedTime(&ms, s->ev[0], s->ev[1]) != CUDA_SUCCESS || !(ms >= 0) ||
	    ms > 1e6f) {
		/* A fault in the tenant's stream, or a context gone: nothing
		 * was learnt, and the events are remade next time. */
		s->ctx = rc == CUDA_SUCCESS ? s->ctx : NULL;
		__atomic_store_n(&s->state, S_IDLE, __ATOMIC_RELEASE);
		return 0;
	}
	m->took = (uint64_t)((double)ms * 1e6);
	m->charged = s->charged;
	m->rate = s->rate;
	learn(s, s->key, m->took ? m->took : 1);
	__atomic_store_n(&s->state, S_IDLE, __ATOMIC_RELEASE);
	return 1;
}

void gp__meter_atfork(enum gp__fork_phase phase)
{
	if (phase != GP_FORK_CHILD)
		return;
	/* The parent's events are not the child's; its estimates still are. */
	for (unsigned i = 0; i < GP_REGION_MAX_DEVS; i++) {
		gp__meter_due[i] = UINT64_MAX;
		smp[i].state = S_IDLE;
		smp[i].ctx = NULL;
		smp[i].ev[0] = smp[i].ev[1] = NULL;
	}
}
