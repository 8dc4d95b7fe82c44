/* health.c - see health.h. */
#include "agent/health.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define WAIT_MS 200  /* how long one wait blocks: bounds the stop latency */

/* XIDs caused by applications, not the card (NVIDIA k8s-device-plugin's
 * list): 13 graphics engine exception, 31 MMU fault, 43 reset channel,
 * 45 preemptive cleanup, 68 video decoder exception, 109 context switch
 * timeout. */
static const unsigned default_ignore[] = {13, 31, 43, 45, 68, 109};

struct gp_health {
	struct gp_nvml *nvml;
	struct gp_gpus *gpus;
	nvmlEventSet_t set;
	unsigned ignore[GP_HEALTH_MAX_IGNORE];
	unsigned nignore;
	void (*kick)(void *);
	void *arg;
	atomic_int stop;
	pthread_t thread;
};

int gp_health_fatal(unsigned xid, const unsigned *ignore, unsigned n)
{
	if (!ignore) {
		ignore = default_ignore;
		n = sizeof default_ignore / sizeof *default_ignore;
	}
	for (unsigned i = 0; i < n; i++)
		if (ignore[i] == xid)
			return 0;
	return 1;
}

static void *watch(void *arg)
{
	struct gp_health *h = arg;

	pthread_setname_np(pthread_self(), "gp-health");
	while (!atomic_load(&h->stop)) {
		nvmlEventData_t ev;
		nvmlReturn_t rc = h->nvml->nvmlEventSetWait_v2(h->set, &ev, WAIT_MS);
		int i;

		if (rc == NVML_ERROR_TIMEOUT)
			continue;
		if (rc != NVML_SUCCESS) {
			/* A failing wait must not spin. */
			struct timespec ts = {0, WAIT_MS * 1000000L};

			nanosleep(&ts, NULL);
			continue;
		}
		i = gp_gpus_index(h->gpus, ev.device);
		if (i < 0 || !(ev.eventType & nvmlEventTypeXidCriticalError))
			continue;
		unsigned xid = (unsigned)ev.eventData;
		int fatal = gp_health_fatal(xid, h->nignore ? h->ignore : NULL, h->nignore);

		gp_gpus_note_xid(h->gpus, (unsigned)i, xid, fatal);
		if (fatal) {
			gp_warn("GPU %d: fatal XID %u: marking it unhealthy", i, xid);
			h->kick(h->arg);
		} else {
			gp_info("GPU %d: XID %u (an application error; the card stays healthy)", i,
				xid);
		}
	}
	return NULL;
}

int gp_health_start(struct gp_health **out, struct gp_nvml *nvml, struct gp_gpus *g,
		    const unsigned *ignore, unsigned n, void (*kick)(void *), void *arg)
{
	struct gp_health *h;
	unsigned registered = 0;
	int rc;

	*out = NULL;
	if (!nvml->nvmlEventSetCreate || !nvml->nvmlDeviceRegisterEvents ||
	    !nvml->nvmlEventSetWait_v2 || !nvml->nvmlEventSetFree) {
		gp_warn("this NVML has no events: fatal XIDs will not be noticed");
		return 0;
	}
	h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	if (n > GP_HEALTH_MAX_IGNORE)
		n = GP_HEALTH_MAX_IGNORE;
	if (n)
		memcpy(h->ignore, ignore, n * sizeof *ignore);
	h->nignore = n;
	h->nvml = nvml;
	h->gpus = g;
	h->kick = kick;
	h->arg = arg;
	if (nvml->nvmlEventSetCreate(&h->set) != NVML_SUCCESS) {
		gp_warn("cannot create an NVML event set: fatal XIDs will not be noticed");
		free(h);
		return 0;
	}
	for (unsigned i = 0; i < gp_gpus_count(g); i++) {
		nvmlReturn_t r = nvml->nvmlDeviceRegisterEvents(gp_gpus_handle(g, i),
							      nvmlEventTypeXidCriticalError, h->set);
		if (r == NVML_SUCCESS)
			registered++;
		else
			gp_warn("GPU %u: no XID events (%s)", i, gp_nvml_str(nvml, r));
	}
	if (!registered) {
		nvml->nvmlEventSetFree(h->set);
		free(h);
		return 0;
	}
	rc = pthread_create(&h->thread, NULL, watch, h);
	if (rc) {
		nvml->nvmlEventSetFree(h->set);
		free(h);
		return -rc;
	}
	*out = h;
	return 0;
}

void gp_health_stop(struct gp_health *h)
{
	if (!h)
		return;
	atomic_store(&h->stop, 1);
	pthread_join(h->thread, NULL);
	h->nvml->nvmlEventSetFree(h->set);
	free(h);
}
