/* nvml_event.c - NVML event sets: nvmlEventSetCreate, nvmlDeviceRegisterEvents,
 * nvmlEventSetWait_v2, nvmlEventSetFree.
 *
 * Events are the health events of fault.h, in each device's log in the
 * machine state, so a set sees what any process injected.  A set keeps,
 * per device, the types registered and the number of the next event to
 * look at; it receives only events posted after the registration of their
 * type.  Waiting sleeps on the machine's health word (a futex in the
 * shared state, woken by every injection), with no lock held, as a real
 * driver's waiters sleep in the kernel: an idle waiter costs nothing.
 *
 * Sets live in a list under one mutex, so a stale or foreign handle is
 * refused instead of followed, and a set freed by one thread while
 * another waits on it stays allocated until that wait returns.
 */
#include "sim/nvml_sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/clock.h"

#define NAP_NS 1000000000ull    /* longest single sleep: bounds how long
                                   a lost wake could delay a wait */
#define NO_MIG 0xFFFFFFFFu
#define TYPES 3                 /* SBE, DBE, Xid: see type_slot() */

struct nvmlEventSet_st {
	unsigned long long types[GP_SIM_GPUS_MAX]; /* registered, per device */
	uint64_t since[GP_SIM_GPUS_MAX][TYPES];    /* newest event number when
	                                              each type was registered */
	uint64_t next[GP_SIM_GPUS_MAX];            /* next event number to read */
	unsigned first;                            /* device the next poll reads
	                                              first (round robin) */
	unsigned waiters;                          /* waits in progress */
	int freed;                                 /* nvmlEventSetFree was called */
	struct nvmlEventSet_st *link;              /* the list of live sets */
};

/* Guards the list and every set's fields; never held while sleeping. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct nvmlEventSet_st *live;

/* Where a (single-bit) event type is kept in `since`. */
static unsigned type_slot(unsigned long long type)
{
	return type == nvmlEventTypeSingleBitEccError ? 0
	       : type == nvmlEventTypeDoubleBitEccError ? 1 : 2;
}

/* Is `set` a live set of ours?  Caller holds mu. */
static int is_live(const struct nvmlEventSet_st *set)
{
	for (const struct nvmlEventSet_st *s = live; s; s = s->link)
		if (s == set)
			return 1;
	return 0;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set)
{
	struct nvmlEventSet_st *s;
	nvmlReturn_t rc = gp__sim_nvml_ready();

	if (rc)
		return rc;
	if (!set)
		return NVML_ERROR_INVALID_ARGUMENT;
	s = calloc(1, sizeof *s);
	if (!s)
		return NVML_ERROR_MEMORY;
	pthread_mutex_lock(&mu);
	s->link = live;
	live = s;
	pthread_mutex_unlock(&mu);
	*set = s;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes,
				      nvmlEventSet_t set)
{
	unsigned i;
	uint64_t posted;
	nvmlReturn_t rc = gp__sim_nvml_dev(device, &i);

	if (rc)
		return rc;
	/* As documented: an unsupported type registers none of them, and
	 * the set stays usable. */
	if (eventTypes & ~gp__sim_nvml_supported_events())
		return NVML_ERROR_NOT_SUPPORTED;
	pthread_mutex_lock(&mu);
	if (!set || !is_live(set)) {
		pthread_mutex_unlock(&mu);
		return NVML_ERROR_INVALID_ARGUMENT;
	}
	/* What happened before this call is not recorded. */
	posted = gp__sim_event_posted(i);
	if (!set->types[i] && eventTypes)
		set->next[i] = posted + 1;
	for (unsigned long long bit = 1; bit; bit <<= 1)
		if ((eventTypes & bit) && !(set->types[i] & bit))
			set->since[i][type_slot(bit)] = posted;
	set->types[i] |= eventTypes;
	pthread_mutex_unlock(&mu);
	return NVML_SUCCESS;
}

/* Look once for an event the set should receive; take it into *data.
 * Returns 1 when one was taken, else 0.  Caller holds mu.  Devices are
 * read round robin, so a busy one cannot hide another's events. */
static int take(struct nvmlEventSet_st *set, nvmlEventData_t *data)
{
	unsigned n = gp__sim_machine()->cfg.n;

	for (unsigned k = 0; k < n; k++) {
		unsigned d = (set->first + k) % n;
		uint64_t posted;

		if (!set->types[d])
			continue;
		posted = gp__sim_event_posted(d);
		while (set->next[d] <= posted) {
			struct gp_sim_hevent ev;
			int rc = gp__sim_event_read(d, set->next[d], &ev);

			if (rc == -ENOENT) {
				/* Overwritten: this set fell more than a log's
				 * length behind; the oldest events are lost. */
				if (posted - set->next[d] >= GP_SIM_EVENTS)
					set->next[d] = posted - GP_SIM_EVENTS + 1;
				else
					set->next[d]++;
				continue;
			}
			if (rc)
				break;
			set->next[d]++;
			if (!(set->types[d] & ev.type) ||
			    ev.seq <= set->since[d][type_slot(ev.type)])
				continue;
			data->device = gp__sim_nvml_handle(d);
			data->eventType = ev.type;
			data->eventData = ev.data;
			data->gpuInstanceId = NO_MIG;
			data->computeInstanceId = NO_MIG;
			set->first = (d + 1) % n;
			return 1;
		}
	}
	return 0;
}

/* Forget a waiter; the last one out frees a set freed meanwhile.  Caller
 * holds mu. */
static void leave(struct nvmlEventSet_st *set)
{
	if (--set->waiters == 0 && set->freed)
		free(set);
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)
{
	uint64_t deadline, now;
	nvmlReturn_t rc = gp__sim_nvml_ready();

	if (rc)
		return rc;
	if (!data)
		return NVML_ERROR_INVALID_ARGUMENT;
	pthread_mutex_lock(&mu);
	if (!set || !is_live(set)) {
		pthread_mutex_unlock(&mu);
		return NVML_ERROR_INVALID_ARGUMENT;
	}
	set->waiters++;
	deadline = gp_now_ns() + (uint64_t)timeoutms * 1000000ull;
	for (;;) {
		/* Read the word before looking: an event posted after the
		 * look moves it, and the sleep then returns at once. */
		uint32_t word = gp__sim_event_word();

		if (set->freed) {
			rc = NVML_ERROR_INVALID_ARGUMENT;  /* freed under our feet */
			break;
		}
		if (take(set, data)) {
			rc = NVML_SUCCESS;
			break;
		}
		now = gp_now_ns();
		if (now >= deadline) {
			rc = NVML_ERROR_TIMEOUT;
			break;
		}
		pthread_mutex_unlock(&mu);
		gp__sim_event_sleep(word, deadline - now > NAP_NS ? NAP_NS : deadline - now);
		pthread_mutex_lock(&mu);
	}
	leave(set);
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set)
{
	nvmlReturn_t rc = gp__sim_nvml_ready();

	if (rc)
		return rc;
	pthread_mutex_lock(&mu);
	if (!set || !is_live(set)) {
		pthread_mutex_unlock(&mu);
		return NVML_ERROR_INVALID_ARGUMENT;
	}
	for (struct nvmlEventSet_st **p = &live; *p; p = &(*p)->link) {
		if (*p == set) {
			*p = set->link;
			break;
		}
	}
	/* A wait in progress on another thread returns first (woken here,
	 * it sees `freed`); the last one out frees the memory. */
	set->freed = 1;
	if (set->waiters == 0)
		free(set);
	pthread_mutex_unlock(&mu);
	gp__sim_event_wake();
	return NVML_SUCCESS;
}
