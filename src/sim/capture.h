/* capture.h - stream capture: work issued to a capturing stream is
 * recorded as graph nodes instead of running.
 *
 * Each stream taking part in a capture keeps the set of nodes its next
 * operation depends on.  An event recorded in a capturing stream carries
 * that set, and a stream that waits on it joins the capture (the fork/join
 * pattern).  The capture mode decides which "unsafe" calls (cuMemAlloc,
 * synchronizations ...) are refused meanwhile, as in the real driver.
 */
#ifndef GP_SIM_CAPTURE_H
#define GP_SIM_CAPTURE_H

#include "sim/graph.h"

struct gp_sim_capture {
	unsigned long long id;
	CUstreamCaptureMode mode;
	struct gp_sim_graph *graph;     /* what is being built */
	struct gp_sim_stream *origin;   /* where it began (and must end) */
	const void *thread;             /* the beginning thread's token */
	int invalidated;
	int owns_graph;                 /* 0: cuStreamBeginCaptureToGraph's */
	struct gp_sim_stream **members; /* streams taking part */
	size_t nmembers, capmembers;
	struct gp_sim_event **events;   /* events recorded in it */
	size_t nevents, capevents;
	struct gp_sim_list link;        /* all active captures */
};

/* Refuse a call that is unsafe during a capture (allocation, free,
 * synchronization) when the captures in progress and the calling thread's
 * capture mode forbid it: invalidates them and returns
 * CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED.  Lock held. */
CUresult gp__sim_capture_unsafe_call_locked(void) GP_SIM_WUR;

/* Work about to be issued to the legacy NULL stream while a blocking
 * stream of its context is capturing would join the capture implicitly:
 * invalidate it and return CUDA_ERROR_STREAM_CAPTURE_IMPLICIT. */
CUresult gp__sim_capture_legacy_check_locked(struct gp_sim_stream *s) GP_SIM_WUR;

/* Invalidate a capture (a forbidden call was made in it). */
void gp__sim_capture_invalidate_locked(struct gp_sim_capture *cap);

/* Add a node of `type` to s's capture after s's current dependencies;
 * they become {node}.  CUDA_ERROR_STREAM_CAPTURE_INVALIDATED if the
 * capture was invalidated. */
CUresult gp__sim_capture_node_locked(struct gp_sim_stream *s, CUgraphNodeType type,
				     struct gp_sim_node **out) GP_SIM_WUR;

/* Captured cuMemAllocAsync / cuMemFreeAsync / cuLaunchHostFunc /
 * cuEventRecord / cuStreamWaitEvent. */
CUresult gp__sim_capture_alloc_locked(struct gp_sim_stream *s, int dev, uint64_t size,
				      uint64_t *addr) GP_SIM_WUR;
CUresult gp__sim_capture_free_locked(struct gp_sim_stream *s, uint64_t addr) GP_SIM_WUR;
CUresult gp__sim_capture_host_node_locked(struct gp_sim_stream *s, CUhostFn fn, void *data,
					  struct gp_sim_node **out) GP_SIM_WUR;
CUresult gp__sim_capture_event_record_locked(struct gp_sim_stream *s, struct gp_sim_event *e,
					     int external) GP_SIM_WUR;
CUresult gp__sim_capture_wait_event_locked(struct gp_sim_stream *s, struct gp_sim_event *e,
					   unsigned flags) GP_SIM_WUR;

/* Stream s / event e is being destroyed while part of a capture. */
void gp__sim_capture_stream_gone_locked(struct gp_sim_stream *s);
void gp__sim_capture_event_gone_locked(struct gp_sim_event *e);

#endif
