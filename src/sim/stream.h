/* stream.h - streams, events and their place on the device timeline.
 *
 * Work executes eagerly when it is enqueued (the bytes of a copy or a
 * fill_u32 are there at once); only its timing follows the device
 * timeline.  Each stream keeps the completion time of its last work; the
 * legacy NULL stream waits for every blocking stream of its context and
 * they wait for it, as in the real driver.  Synchronizing calls sleep until
 * the completion time, never holding a lock while they sleep.
 */
#ifndef GP_SIM_STREAM_H
#define GP_SIM_STREAM_H

#include <pthread.h>

#include "sim/context.h"

struct gp_sim_capture;
struct gp_sim_node;

enum gp_sim_stream_kind {
	GP_SIM_STREAM_LEGACY = 1,   /* the context's NULL stream */
	GP_SIM_STREAM_PER_THREAD,   /* a thread's per-thread default stream */
	GP_SIM_STREAM_USER,         /* cuStreamCreate* */
};

struct gp_sim_stream {
	struct gp_sim_obj h;
	struct gp_sim_ctx *ctx;
	struct gp_sim_list link;      /* in ctx->streams */
	enum gp_sim_stream_kind kind;
	unsigned flags;               /* CU_STREAM_DEFAULT / NON_BLOCKING */
	int priority;
	unsigned long long id;
	uint64_t tail_ns;             /* completion of its last work */
	unsigned cb_pending;          /* host functions queued (callback.c) */
	const void *owner;            /* per-thread stream: its thread's token */
	/* stream capture (capture.c) */
	struct gp_sim_capture *cap;   /* the capture it takes part in */
	struct gp_sim_node **deps;    /* nodes the next captured op follows */
	size_t ndeps, capdeps;
};

struct gp_sim_event {
	struct gp_sim_obj h;
	struct gp_sim_ctx *ctx;
	struct gp_sim_list link;      /* in ctx->events */
	unsigned flags;               /* CU_EVENT_* */
	int recorded;
	uint64_t ts_ns;               /* when its work completes */
	/* recorded during a capture: what waiting on it means there */
	struct gp_sim_capture *cap;
	struct gp_sim_node **cap_nodes;
	size_t ncap;
};

/* Resolve a stream argument: NULL (the legacy stream, or the per-thread
 * stream for a _ptds/_ptsz entry point when `ptds`), CU_STREAM_LEGACY,
 * CU_STREAM_PER_THREAD or a created stream.  Lock held. */
CUresult gp__sim_stream_get_locked(CUstream h, int ptds, struct gp_sim_stream **out) GP_SIM_WUR;

/* When new work on `s` may start (its tail, and the legacy-stream rule). */
uint64_t gp__sim_stream_ready_locked(const struct gp_sim_stream *s);

/* Work on `s` completes at `t`. */
void gp__sim_stream_done_locked(struct gp_sim_stream *s, uint64_t t);

/* Create a stream of `kind` in `ctx`.  Lock held. */
CUresult gp__sim_stream_new_locked(struct gp_sim_ctx *ctx, enum gp_sim_stream_kind kind,
				   unsigned flags, int priority, struct gp_sim_stream **out) GP_SIM_WUR;

/* Destroy every event of `ctx` (event.c).  Lock held. */
void gp__sim_events_ctx_gone_locked(struct gp_sim_ctx *ctx);

/* Destroy every stream and event of `ctx` (its host callbacks must have
 * run: see gp__sim_callback_wait).  Lock held. */
void gp__sim_streams_ctx_gone_locked(struct gp_sim_ctx *ctx);

/* Sleep until `until` and the host callbacks counted by `pending` are
 * done; then trim device `dev`'s pools (a synchronization point) and
 * return the context's sticky error, if any.  Lock NOT held. */
CUresult gp__sim_sync_point(uint64_t until, unsigned *pending, int dev,
			    struct gp_sim_ctx *ctx) GP_SIM_WUR;

/* Prepare a synchronous operation on the NULL stream of the current
 * context (cuMemcpy, cuMemset ...): returns the time the caller must sleep
 * until before doing it.  Lock held. */
CUresult gp__sim_sync_op_locked(int ptds, uint64_t *until, struct gp_sim_ctx **ctx) GP_SIM_WUR;

/* Record event e on stream s: it completes when the work before it on s
 * does and the device has got to this process's work (behind the kernels
 * other processes queued before it: gp__sim_timeline_tail).  Lock held. */
void gp__sim_event_record_locked(struct gp_sim_event *e, struct gp_sim_stream *s);

/* --- host functions (callback.c) --------------------------------------- */

/* Run fn(data) (kind 0) or callback(hStream, CUDA_SUCCESS, data) (kind 1)
 * on the callback thread once `due` has passed.  Counts it in s and
 * s->ctx until it has run.  Lock held. */
CUresult gp__sim_callback_add_locked(struct gp_sim_stream *s, CUstream handle, uint64_t due,
				     int kind, void *fn, void *data) GP_SIM_WUR;

/* Wait until *pending (a cb_pending counter) is 0.  Lock NOT held. */
void gp__sim_callback_wait(unsigned *pending);

/* Read a cb_pending counter (they change on the callback thread). */
static inline unsigned gp__sim_callback_pending(const unsigned *pending)
{
	return __atomic_load_n(pending, __ATOMIC_ACQUIRE);
}

#endif
