/* poller.h - the queues `gpupool scaler` watches, polled on a background
 * thread.
 *
 * Every poll interval the thread asks the broker about each queue
 * (rabbit.h), feeds the answer to the queue's forecast (forecast.h), splits
 * the result between the on-premises and cloud pools when the queue has
 * two (burst.h), and publishes a snapshot under a lock.  Request handlers only copy snapshots,
 * so they never wait on the broker.  A snapshot is either good (figures) or
 * bad (a reason): a failed poll, a broker answer that is garbage, or no
 * poll finished for too long (a stuck broker connection) all make it bad,
 * and nobody serves the last good figures as if they were current.
 */
#ifndef GP_SCALER_POLLER_H
#define GP_SCALER_POLLER_H

#include <stddef.h>
#include <stdint.h>

#include "scaler/burst.h"
#include "scaler/forecast.h"
#include "scaler/rabbit.h"

struct gp_poller;

/* One watched queue. */
struct gp_scaler_queue {
	char vhost[GP_RABBIT_NAME_MAX + 1];
	char name[GP_RABBIT_NAME_MAX + 1];
	uint32_t prefetch;                 /* each consumer's basic.qos, >= 1 */
	struct gp_forecast_config forecast; /* target, horizon (warm-up), ... */
	struct gp_burst_config burst;      /* the on-premises/cloud split;
	                                      onprem_max 0: none */
};

/* A copy of one queue's latest state. */
struct gp_poller_snap {
	const struct gp_scaler_queue *queue; /* its configuration (lives as long
	                                        as the poller) */
	int ok;                    /* the figures below are current */
	char error[256];           /* why not, when !ok */
	uint64_t polled_ns;        /* monotonic time of the last poll (0: none) */
	uint64_t ok_wall_ns;       /* wall time of the last good poll (0: none) */
	uint64_t polls_ok, polls_failed; /* counts since start */
	struct gp_rabbit_queue raw;  /* what the broker said (when ok) */
	struct gp_forecast_out fc;   /* what the forecast made of it (when ok) */
	struct gp_burst_out burst;   /* its split between the pools (when ok
	                                and queue->burst.onprem_max) */
};

/* Start polling `queues` (copied) every interval_ms through `conn` (whose
 * strings must outlive the poller).  Returns 0, -EINVAL (a queue whose
 * forecast or burst configuration does not check, or a queue listed
 * twice), -ENOMEM,
 * or the error of pthread_create. */
int gp_poller_start(struct gp_poller **out, const struct gp_rabbit_conn *conn,
		    const struct gp_scaler_queue *queues, size_t n, uint64_t interval_ms)
	__attribute__((warn_unused_result));

/* Stop the thread (at once, or after the request in flight) and free. */
void gp_poller_stop(struct gp_poller *p);

size_t gp_poller_count(const struct gp_poller *p);

/* The index of (vhost, name), or -1 when it is not watched. */
int gp_poller_find(const struct gp_poller *p, const char *vhost, const char *name);

/* Copy queue i's snapshot.  A snapshot older than the staleness limit
 * (three intervals plus a request timeout per queue and one more) comes
 * back bad. */
void gp_poller_get(struct gp_poller *p, size_t i, struct gp_poller_snap *out);

/* Counts completed poll rounds; changes when snapshots may have. */
uint64_t gp_poller_generation(struct gp_poller *p);

#endif
