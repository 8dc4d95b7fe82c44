/* extender.h - `gpupool sched`: the kube-scheduler extender daemon.
 *
 * Serves the extender v1 API over HTTP (POST /filter, /prioritize, /bind,
 * GET /healthz) on an event loop, keeps a snapshot of the cluster's GPU
 * nodes and allocations fresh from the Kubernetes API on a thread of its
 * own, and binds pods under a per-node lock.  docs/sched.md (the extender)
 * describes the behaviour; docs/protocol.md the annotations.
 */
#ifndef GP_SCHED_EXTENDER_H
#define GP_SCHED_EXTENDER_H

#include <stddef.h>

#include "net/kube.h"

struct gp_ext_opts {
	const char *listen;         /* "127.0.0.1:8888"; port 0 picks one */
	const char *ready_file;     /* written with the URL once serving, or NULL */
	const char *policy;         /* placement policy text (placement.h) */
	struct gp_kube_opts kube;   /* where the API is */
	long lock_ttl_ms;           /* a bind lock is void after this */
	long lock_wait_ms;          /* how long a bind waits for a busy node */
	long resync_ms;             /* the view is rebuilt at least this often
	                               (node heartbeats age without events) */
	long inflight_ms;           /* a bind not visible after this is
	                               forgotten; 0 = 3 x the API timeout + 5 s */
	long state_max_age_ms;      /* node state older than this is unusable;
	                               0 = never (no heartbeat checked) */
	size_t max_body;            /* request body cap (413 above) */
	unsigned max_nodes;         /* candidate nodes per request (400 above) */
};

/* Run the daemon until SIGINT/SIGTERM.  Returns 0 on an orderly stop, or
 * a negative errno when it cannot start (with the reason logged). */
int gp_extender_run(const struct gp_ext_opts *o);

#endif
