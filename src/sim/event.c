/* event.c - events: record, query, synchronize, elapsed time (from the
 * device timeline), and stream waits on them. */
#include "sim/stream.h"

#include <stdlib.h>

#include "common/clock.h"
#include "sim/capture.h"
#include "sim/timeline.h"

static void event_free_locked(struct gp_sim_event *e)
{
	if (e->cap)
		gp__sim_capture_event_gone_locked(e);
	free(e->cap_nodes);
	gp_sim_list_del(&e->link);
	gp__sim_handle_del(&e->h);
	free(e);
}

void gp__sim_events_ctx_gone_locked(struct gp_sim_ctx *ctx)
{
	while (!gp_sim_list_empty(&ctx->events))
		event_free_locked(gp_sim_container(ctx->events.next, struct gp_sim_event, link));
}

CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags)
{
	const unsigned all = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS;
	struct gp_sim_ctx *c;
	struct gp_sim_event *e;
	CUresult rc;

	GP_SIM_ENTER();
	if (!phEvent || (Flags & ~all))
		return CUDA_ERROR_INVALID_VALUE;
	if ((Flags & CU_EVENT_INTERPROCESS) && !(Flags & CU_EVENT_DISABLE_TIMING))
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (rc)
		goto out;
	e = calloc(1, sizeof *e);
	if (!e || gp__sim_handle_add(&e->h, GP_SIM_EVENT)) {
		free(e);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	e->ctx = c;
	e->flags = Flags;
	gp_sim_list_add(&c->events, &e->link);
	*phEvent = (CUevent)e;
out:
	gp__sim_unlock();
	return rc;
}

static CUresult event_destroy(CUevent hEvent)
{
	struct gp_sim_event *e;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	gp__sim_lock();
	e = gp__sim_handle_get(hEvent, GP_SIM_EVENT);
	if (e) {
		event_free_locked(e);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuEventDestroy(CUevent hEvent)
{
	return event_destroy(hEvent);
}

CUresult cuEventDestroy_v2(CUevent hEvent)
{
	return event_destroy(hEvent);
}

/* Record e on stream s: it completes when the work before it on s does
 * and the device has got to it.  On a GPU without MPS a context's commands
 * execute only when the device runs that context's work, so an event
 * recorded behind other processes' queued kernels completes after them:
 * like a zero-length kernel, it starts at max(now, the stream's ready
 * time, the device's busy-until), and so an event recorded just before a
 * kernel completes when that kernel starts, and elapsed times measure this
 * process's work only.  The stream's later work follows it, as it would a
 * kernel (which changes nothing while busy-until only grows, and keeps
 * a kernel from starting before an event recorded ahead of it when a
 * dead process's queued work is dropped). */
void gp__sim_event_record_locked(struct gp_sim_event *e, struct gp_sim_stream *s)
{
	uint64_t t = gp__sim_timeline_tail((unsigned)s->ctx->dev, gp__sim_stream_ready_locked(s));

	e->recorded = 1;
	e->ts_ns = t;
	e->cap = NULL;
	e->ncap = 0;
	gp__sim_stream_done_locked(s, t);
}

static CUresult event_record(CUevent hEvent, CUstream hStream, unsigned flags, int ptds)
{
	struct gp_sim_event *e;
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	if (flags & ~(unsigned)CU_EVENT_RECORD_EXTERNAL)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	e = gp__sim_handle_get(hEvent, GP_SIM_EVENT);
	rc = e ? gp__sim_stream_get_locked(hStream, ptds, &s) : CUDA_ERROR_INVALID_HANDLE;
	if (!rc && s->ctx != e->ctx)
		rc = CUDA_ERROR_INVALID_HANDLE;
	if (rc)
		goto out;
	if (s->cap)
		rc = gp__sim_capture_event_record_locked(s, e, flags & CU_EVENT_RECORD_EXTERNAL);
	else if (!(rc = gp__sim_capture_legacy_check_locked(s)))
		gp__sim_event_record_locked(e, s);
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
{
	return event_record(hEvent, hStream, 0, 0);
}

CUresult cuEventRecord_ptsz(CUevent hEvent, CUstream hStream)
{
	return event_record(hEvent, hStream, 0, 1);
}

CUresult cuEventRecordWithFlags(CUevent hEvent, CUstream hStream, unsigned int flags)
{
	return event_record(hEvent, hStream, flags, 0);
}

CUresult cuEventRecordWithFlags_ptsz(CUevent hEvent, CUstream hStream, unsigned int flags)
{
	return event_record(hEvent, hStream, flags, 1);
}

CUresult cuEventQuery(CUevent hEvent)
{
	struct gp_sim_event *e;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	gp__sim_lock();
	e = gp__sim_handle_get(hEvent, GP_SIM_EVENT);
	if (e) {
		if (e->cap)
			rc = CUDA_ERROR_CAPTURED_EVENT;
		else if (e->recorded && e->ts_ns > gp_now_ns())
			rc = CUDA_ERROR_NOT_READY;
		else
			rc = e->ctx->sticky;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuEventSynchronize(CUevent hEvent)
{
	struct gp_sim_event *e;
	struct gp_sim_ctx *c = NULL;
	uint64_t until = 0;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	gp__sim_lock();
	e = gp__sim_handle_get(hEvent, GP_SIM_EVENT);
	if (e) {
		rc = e->cap ? CUDA_ERROR_CAPTURED_EVENT : CUDA_SUCCESS;
		until = e->recorded ? e->ts_ns : 0;
		c = e->ctx;
	}
	gp__sim_unlock();
	if (rc)
		return rc;
	return gp__sim_sync_point(until, NULL, c->dev, c);
}

static CUresult elapsed(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
	struct gp_sim_event *a, *b;
	CUresult rc = CUDA_SUCCESS;
	uint64_t now = gp_now_ns();

	GP_SIM_ENTER();
	if (!pMilliseconds)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	a = gp__sim_handle_get(hStart, GP_SIM_EVENT);
	b = gp__sim_handle_get(hEnd, GP_SIM_EVENT);
	if (!a || !b || !a->recorded || !b->recorded ||
	    ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING))
		rc = CUDA_ERROR_INVALID_HANDLE;
	else if (a->cap || b->cap)
		rc = CUDA_ERROR_CAPTURED_EVENT;
	else if (a->ts_ns > now || b->ts_ns > now)
		rc = CUDA_ERROR_NOT_READY;
	else
		*pMilliseconds = (float)((double)((int64_t)(b->ts_ns - a->ts_ns)) / 1e6);
	gp__sim_unlock();
	return rc;
}

CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
	return elapsed(pMilliseconds, hStart, hEnd);
}

CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
	return elapsed(pMilliseconds, hStart, hEnd);
}

static CUresult stream_wait_event(CUstream hStream, CUevent hEvent, unsigned flags, int ptds)
{
	struct gp_sim_stream *s;
	struct gp_sim_event *e;
	CUresult rc;

	GP_SIM_ENTER();
	if (flags & ~(unsigned)CU_EVENT_WAIT_EXTERNAL)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	e = gp__sim_handle_get(hEvent, GP_SIM_EVENT);
	rc = e ? gp__sim_stream_get_locked(hStream, ptds, &s) : CUDA_ERROR_INVALID_HANDLE;
	if (rc)
		goto out;
	if (e->cap || s->cap)
		rc = gp__sim_capture_wait_event_locked(s, e, flags);
	else if (e->recorded)
		gp__sim_stream_done_locked(s, e->ts_ns);
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags)
{
	return stream_wait_event(hStream, hEvent, Flags, 0);
}

CUresult cuStreamWaitEvent_ptsz(CUstream hStream, CUevent hEvent, unsigned int Flags)
{
	return stream_wait_event(hStream, hEvent, Flags, 1);
}

CUresult cuCtxRecordEvent(CUcontext hCtx, CUevent hEvent)
{
	struct gp_sim_ctx *c;
	struct gp_sim_event *e;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = gp__sim_ctx_get_locked(hCtx, &c);
	e = gp__sim_handle_get(hEvent, GP_SIM_EVENT);
	if (!rc && (!e || e->ctx != c))
		rc = CUDA_ERROR_INVALID_HANDLE;
	if (!rc)
		gp__sim_event_record_locked(e, c->legacy); /* the legacy stream waits for all */
	gp__sim_unlock();
	return rc;
}
