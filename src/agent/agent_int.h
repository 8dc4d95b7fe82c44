/* agent_int.h - what the agent's threads share (agent.c, kubework.c,
 * httpapi.c).
 *
 * Four threads: the event loop (HTTP; never blocks: it only renders the
 * latest snapshot), the collector (NVML and region files every
 * --interval, and at once when kicked), the health watcher (health.h),
 * and the Kubernetes worker (every API call: pod lists, node-state
 * patches, idle actions; and the --idle-exec children).  One mutex guards
 * the fields below; nobody holds it across I/O.
 */
#ifndef GP_AGENT_AGENT_INT_H
#define GP_AGENT_AGENT_INT_H

#include <pthread.h>
#include <stdint.h>

#include "agent/agent.h"
#include "agent/allocate.h"
#include "agent/collect.h"
#include "agent/health.h"
#include "agent/idle.h"
#include "agent/metrics.h"
#include "agent/nvml.h"
#include "net/http.h"
#include "net/kube.h"

/* A pod on this node, as the last list said. */
struct gp_agent_pod {
	char uid[GP_AGENT_NAME_MAX];
	char ns[GP_AGENT_NAME_MAX];
	char name[GP_AGENT_POD_MAX];
	int exempt;     /* gpupool.io/idle-exempt: "true" */
	int marked;     /* carries gpupool.io/idle-since */
	int finished;   /* phase Succeeded or Failed: it will not run again */
};

struct gp_agent {
	const struct gp_agent_config *cfg;
	struct gp_nvml nvml;
	struct gp_gpus *gpus;          /* NULL when NVML could not be loaded */
	struct gp_health *health;
	struct gp_collect col;
	struct gp_kube *kube;          /* NULL without the API */
	char nvml_err[256];

	pthread_mutex_t lock;
	pthread_cond_t wake_collector;
	pthread_cond_t wake_kube;
	int stop;
	int collect_now;               /* kicked: collect without waiting */
	struct gp_agent_snap *snap;    /* latest; NULL before the first */
	struct gp_agent_counters counters;
	char *state_key;               /* the node state as last seen, undated */
	int state_dirty;               /* it changed since the last patch */
	struct gp_idle_pod *verdicts;  /* the latest idle verdicts */
	long nverdicts;
	int verdicts_new;
	struct gp_agent_pod *pods;     /* sorted by uid */
	size_t npods;
	int pods_ok;                   /* the list is current */
	uint64_t pods_wall_ns;         /* when the last good list was asked for */

	struct gp_alloc_job *alloc_todo; /* Allocate calls for the worker */
	struct gp_alloc_job *alloc_done; /* and its answers, for the loop */
	struct gp_devplugin *dp;

	pthread_t collector, kubework;
	int collector_on, kubework_on;
};

/* An Allocate call on its way through the Kubernetes worker.  The loop
 * owns `call` and `cancelled`; the worker fills `rc`, `why` and the
 * grants; the lists are under the agent's lock. */
#define GP_ALLOC_MAX_CTRS 16
struct gp_alloc_job {
	struct gp_alloc_job *next;
	struct gp_grpc_call *call;  /* NULL once cancelled */
	char resource[128];
	unsigned nctr;
	unsigned count[GP_ALLOC_MAX_CTRS];      /* devices per container */
	int rc;                                  /* 0, or why failed */
	char why[512];
	struct gp_alloc_grant grant[GP_ALLOC_MAX_CTRS];
};

/* Called by the worker: answer every queued Allocate. */
void gp__allocate_work(struct gp_agent *a);

/* The latest snapshot, referenced (gp_snap_unref it), or NULL. */
struct gp_agent_snap *gp__agent_snap(struct gp_agent *a);

/* Wait on cv (a CLOCK_MONOTONIC condition) with m held until woken or
 * until deadline_ns (gp_now_ns time). */
void gp__agent_wait(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t deadline_ns);

/* Start / stop the Kubernetes worker thread. */
int gp__kubework_start(struct gp_agent *a) __attribute__((warn_unused_result));
void gp__kubework_join(struct gp_agent *a);

/* The HTTP routes; their argument is the struct gp_agent. */
extern const struct gp_http_route gp__agent_routes[];

#endif
