/* capture.c - see capture.h.  Entry points: cuStreamBeginCapture*,
 * cuStreamEndCapture, cuStreamIsCapturing, cuStreamGetCaptureInfo*,
 * cuStreamUpdateCaptureDependencies*, cuThreadExchangeStreamCaptureMode. */
#include "sim/capture.h"

#include <stdlib.h>
#include <string.h>

static struct gp_sim_list captures = GP_SIM_LIST_INIT(captures);
static unsigned long long next_capture_id = 1;
static __thread CUstreamCaptureMode thread_mode = CU_STREAM_CAPTURE_MODE_GLOBAL;
static __thread char token; /* its address identifies the thread */

/* Make `n` nodes s's dependency set.  0 or -1 (no memory). */
static int set_deps(struct gp_sim_stream *s, struct gp_sim_node *const *d, size_t n)
{
	if (n > s->capdeps) {
		struct gp_sim_node **v = realloc(s->deps, n * sizeof *v);
		if (!v)
			return -1;
		s->deps = v;
		s->capdeps = n;
	}
	if (n)
		memmove(s->deps, d, n * sizeof *d);
	s->ndeps = n;
	return 0;
}

/* Add nodes to s's dependency set (no duplicates). */
static int add_deps(struct gp_sim_stream *s, struct gp_sim_node *const *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t j;
		for (j = 0; j < s->ndeps && s->deps[j] != d[i]; j++)
			;
		if (j < s->ndeps)
			continue;
		if (s->ndeps == s->capdeps) {
			size_t cap = s->capdeps ? s->capdeps * 2 : 4;
			struct gp_sim_node **v = realloc(s->deps, cap * sizeof *v);
			if (!v)
				return -1;
			s->deps = v;
			s->capdeps = cap;
		}
		s->deps[s->ndeps++] = d[i];
	}
	return 0;
}

static int add_member(struct gp_sim_capture *cap, struct gp_sim_stream *s)
{
	if (cap->nmembers == cap->capmembers) {
		size_t n = cap->capmembers ? cap->capmembers * 2 : 4;
		struct gp_sim_stream **v = realloc(cap->members, n * sizeof *v);
		if (!v)
			return -1;
		cap->members = v;
		cap->capmembers = n;
	}
	cap->members[cap->nmembers++] = s;
	s->cap = cap;
	return 0;
}

/* Release a capture: its streams and events leave it; the graph goes too
 * unless it is being handed to the program (keep_graph). */
static void capture_free_locked(struct gp_sim_capture *cap, int keep_graph)
{
	for (size_t i = 0; i < cap->nmembers; i++) {
		cap->members[i]->cap = NULL;
		cap->members[i]->ndeps = 0;
	}
	for (size_t i = 0; i < cap->nevents; i++) {
		cap->events[i]->cap = NULL;
		cap->events[i]->ncap = 0;
		cap->events[i]->recorded = 0;
	}
	if (!keep_graph && cap->owns_graph && cap->graph)
		gp__sim_graph_free_locked(cap->graph);
	gp_sim_list_del(&cap->link);
	free(cap->members);
	free(cap->events);
	free(cap);
}

void gp__sim_capture_invalidate_locked(struct gp_sim_capture *cap)
{
	cap->invalidated = 1;
}

CUresult gp__sim_capture_unsafe_call_locked(void)
{
	int hit = 0;

	if (thread_mode == CU_STREAM_CAPTURE_MODE_RELAXED)
		return CUDA_SUCCESS;
	for (struct gp_sim_list *l = captures.next; l != &captures; l = l->next) {
		struct gp_sim_capture *cap = gp_sim_container(l, struct gp_sim_capture, link);
		if (cap->invalidated)
			continue;
		if ((thread_mode == CU_STREAM_CAPTURE_MODE_GLOBAL &&
		     cap->mode == CU_STREAM_CAPTURE_MODE_GLOBAL) ||
		    (cap->mode != CU_STREAM_CAPTURE_MODE_RELAXED && cap->thread == &token)) {
			cap->invalidated = 1;
			hit = 1;
		}
	}
	return hit ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}

CUresult gp__sim_capture_legacy_check_locked(struct gp_sim_stream *s)
{
	struct gp_sim_ctx *c = s->ctx;

	if (s->kind != GP_SIM_STREAM_LEGACY)
		return CUDA_SUCCESS;
	for (struct gp_sim_list *l = c->streams.next; l != &c->streams; l = l->next) {
		struct gp_sim_stream *x = gp_sim_container(l, struct gp_sim_stream, link);
		if (x->cap && !(x->flags & CU_STREAM_NON_BLOCKING)) {
			x->cap->invalidated = 1;
			return CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
		}
	}
	return CUDA_SUCCESS;
}

CUresult gp__sim_capture_node_locked(struct gp_sim_stream *s, CUgraphNodeType type,
				     struct gp_sim_node **out)
{
	struct gp_sim_capture *cap = s->cap;
	CUresult rc;

	if (cap->invalidated)
		return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
	rc = gp__sim_node_new_locked(cap->graph, type, s->deps, s->ndeps, out);
	if (rc)
		return rc;
	if (set_deps(s, out, 1))
		return CUDA_ERROR_OUT_OF_MEMORY;
	return CUDA_SUCCESS;
}

CUresult gp__sim_capture_alloc_locked(struct gp_sim_stream *s, int dev, uint64_t size,
				      uint64_t *addr)
{
	struct gp_sim_gblock *b;
	struct gp_sim_node *n;
	CUresult rc;

	if (s->cap->invalidated)
		return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
	rc = gp__sim_gblock_new_locked(dev, size, &b);
	if (rc)
		return rc;
	rc = gp__sim_capture_node_locked(s, CU_GRAPH_NODE_TYPE_MEM_ALLOC, &n);
	if (rc) {
		gp__sim_gblock_put_locked(b);
		return rc;
	}
	n->u.alloc.block = b;
	n->u.alloc.p.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	n->u.alloc.p.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	n->u.alloc.p.poolProps.location.id = gp__sim_visible_ordinal(dev);
	n->u.alloc.p.bytesize = size;
	n->u.alloc.p.dptr = (CUdeviceptr)b->mem->base;
	*addr = b->mem->base;
	return CUDA_SUCCESS;
}

CUresult gp__sim_capture_free_locked(struct gp_sim_stream *s, uint64_t addr)
{
	struct gp_sim_mem *m = gp__sim_mem_find_locked(addr);
	struct gp_sim_node *n;
	CUresult rc;

	if (!m || m->base != addr || m->kind != GP_SIM_MEM_GRAPH)
		return CUDA_ERROR_INVALID_VALUE;
	rc = gp__sim_capture_node_locked(s, CU_GRAPH_NODE_TYPE_MEM_FREE, &n);
	if (!rc)
		n->u.free_ptr = addr;
	return rc;
}

CUresult gp__sim_capture_host_node_locked(struct gp_sim_stream *s, CUhostFn fn, void *data,
					  struct gp_sim_node **out)
{
	CUresult rc = gp__sim_capture_node_locked(s, CU_GRAPH_NODE_TYPE_HOST, out);

	if (!rc) {
		(*out)->u.host.fn = fn;
		(*out)->u.host.userData = data;
	}
	return rc;
}

CUresult gp__sim_capture_event_record_locked(struct gp_sim_stream *s, struct gp_sim_event *e,
					     int external)
{
	struct gp_sim_capture *cap = s->cap;
	struct gp_sim_node *n;
	CUresult rc;

	if (cap->invalidated)
		return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
	if (external) {
		rc = gp__sim_capture_node_locked(s, CU_GRAPH_NODE_TYPE_EVENT_RECORD, &n);
		if (!rc)
			n->u.event = e;
		return rc;
	}
	if (e->cap && e->cap != cap)
		gp__sim_capture_event_gone_locked(e);
	if (s->ndeps) {
		struct gp_sim_node **v = realloc(e->cap_nodes, s->ndeps * sizeof *v);
		if (!v)
			return CUDA_ERROR_OUT_OF_MEMORY;
		memcpy(v, s->deps, s->ndeps * sizeof *v);
		e->cap_nodes = v;
	}
	e->ncap = s->ndeps;
	if (e->cap != cap) {
		if (cap->nevents == cap->capevents) {
			size_t k = cap->capevents ? cap->capevents * 2 : 4;
			struct gp_sim_event **v = realloc(cap->events, k * sizeof *v);
			if (!v)
				return CUDA_ERROR_OUT_OF_MEMORY;
			cap->events = v;
			cap->capevents = k;
		}
		cap->events[cap->nevents++] = e;
		e->cap = cap;
	}
	e->recorded = 1;
	return CUDA_SUCCESS;
}

CUresult gp__sim_capture_wait_event_locked(struct gp_sim_stream *s, struct gp_sim_event *e,
					   unsigned flags)
{
	struct gp_sim_capture *cap = e->cap;
	struct gp_sim_node *n;
	CUresult rc;

	if (!cap) {
		/* s captures; the event is outside: only an external wait is a
		 * dependency a graph can express. */
		if (!(flags & CU_EVENT_WAIT_EXTERNAL)) {
			s->cap->invalidated = 1;
			return CUDA_ERROR_STREAM_CAPTURE_ISOLATION;
		}
		rc = gp__sim_capture_node_locked(s, CU_GRAPH_NODE_TYPE_WAIT_EVENT, &n);
		if (!rc)
			n->u.event = e;
		return rc;
	}
	if (cap->invalidated)
		return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
	if (!s->cap) { /* fork: s joins the capture */
		if (add_member(cap, s) || set_deps(s, e->cap_nodes, e->ncap))
			return CUDA_ERROR_OUT_OF_MEMORY;
		return CUDA_SUCCESS;
	}
	if (s->cap != cap) {
		s->cap->invalidated = 1;
		cap->invalidated = 1;
		return CUDA_ERROR_STREAM_CAPTURE_MERGE;
	}
	return add_deps(s, e->cap_nodes, e->ncap) ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

void gp__sim_capture_stream_gone_locked(struct gp_sim_stream *s)
{
	struct gp_sim_capture *cap = s->cap;

	for (size_t i = 0; i < cap->nmembers; i++) {
		if (cap->members[i] == s) {
			cap->members[i] = cap->members[--cap->nmembers];
			break;
		}
	}
	s->cap = NULL;
	if (cap->origin == s) {
		cap->origin = NULL; /* it can never end: drop it */
		cap->invalidated = 1;
	}
	if (cap->nmembers == 0)
		capture_free_locked(cap, 0);
}

void gp__sim_capture_event_gone_locked(struct gp_sim_event *e)
{
	struct gp_sim_capture *cap = e->cap;

	for (size_t i = 0; i < cap->nevents; i++) {
		if (cap->events[i] == e) {
			cap->events[i] = cap->events[--cap->nevents];
			break;
		}
	}
	e->cap = NULL;
	e->ncap = 0;
}

/* --- entry points --------------------------------------------------------- */

static CUresult begin(CUstream hStream, CUstreamCaptureMode mode, struct gp_sim_graph *into,
		      struct gp_sim_node *const *deps, size_t ndeps, int ptds)
{
	struct gp_sim_stream *s;
	struct gp_sim_capture *cap = NULL;
	CUresult rc;

	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (rc)
		return rc;
	if (s->kind == GP_SIM_STREAM_LEGACY)
		return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	if (s->cap)
		return CUDA_ERROR_ILLEGAL_STATE;
	cap = calloc(1, sizeof *cap);
	if (!cap)
		return CUDA_ERROR_OUT_OF_MEMORY;
	cap->graph = into;
	cap->owns_graph = !into;
	if (!into && (rc = gp__sim_graph_new_locked(&cap->graph)) != CUDA_SUCCESS) {
		free(cap);
		return rc;
	}
	cap->id = next_capture_id++;
	cap->mode = mode;
	cap->origin = s;
	cap->thread = &token;
	gp_sim_list_add(&captures, &cap->link);
	if (add_member(cap, s) || set_deps(s, deps, ndeps)) {
		capture_free_locked(cap, 0);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	return CUDA_SUCCESS;
}

static CUresult begin_capture(CUstream hStream, CUstreamCaptureMode mode, int ptds)
{
	CUresult rc;

	GP_SIM_ENTER();
	if ((unsigned)mode > CU_STREAM_CAPTURE_MODE_RELAXED)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = begin(hStream, mode, NULL, NULL, 0, ptds);
	gp__sim_unlock();
	return rc;
}

CUresult cuStreamBeginCapture(CUstream hStream)
{
	return begin_capture(hStream, CU_STREAM_CAPTURE_MODE_GLOBAL, 0);
}

CUresult cuStreamBeginCapture_ptsz(CUstream hStream)
{
	return begin_capture(hStream, CU_STREAM_CAPTURE_MODE_GLOBAL, 1);
}

CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode)
{
	return begin_capture(hStream, mode, 0);
}

CUresult cuStreamBeginCapture_v2_ptsz(CUstream hStream, CUstreamCaptureMode mode)
{
	return begin_capture(hStream, mode, 1);
}

static CUresult begin_to_graph(CUstream hStream, CUgraph hGraph, const CUgraphNode *dependencies,
			       size_t numDependencies, CUstreamCaptureMode mode, int ptds)
{
	struct gp_sim_graph *g;
	CUresult rc = CUDA_SUCCESS;

	GP_SIM_ENTER();
	if ((unsigned)mode > CU_STREAM_CAPTURE_MODE_RELAXED || (numDependencies && !dependencies))
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	g = gp__sim_handle_get(hGraph, GP_SIM_GRAPH);
	if (!g)
		rc = CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; !rc && i < numDependencies; i++) {
		struct gp_sim_node *n = gp__sim_handle_get(dependencies[i], GP_SIM_NODE);
		if (!n || n->graph != g)
			rc = CUDA_ERROR_INVALID_VALUE;
	}
	if (!rc)
		rc = begin(hStream, mode, g, (struct gp_sim_node *const *)dependencies,
			   numDependencies, ptds);
	gp__sim_unlock();
	return rc;
}

CUresult cuStreamBeginCaptureToGraph(CUstream hStream, CUgraph hGraph,
				     const CUgraphNode *dependencies,
				     const CUgraphEdgeData *dependencyData, size_t numDependencies,
				     CUstreamCaptureMode mode)
{
	(void)dependencyData; /* edge data: the default kind only */
	return begin_to_graph(hStream, hGraph, dependencies, numDependencies, mode, 0);
}

CUresult cuStreamBeginCaptureToGraph_ptsz(CUstream hStream, CUgraph hGraph,
					  const CUgraphNode *dependencies,
					  const CUgraphEdgeData *dependencyData,
					  size_t numDependencies, CUstreamCaptureMode mode)
{
	(void)dependencyData;
	return begin_to_graph(hStream, hGraph, dependencies, numDependencies, mode, 1);
}

static CUresult end_capture(CUstream hStream, CUgraph *phGraph, int ptds)
{
	struct gp_sim_stream *s;
	struct gp_sim_capture *cap;
	CUresult rc;

	GP_SIM_ENTER();
	if (!phGraph)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (rc)
		goto out;
	cap = s->cap;
	if (!cap) {
		rc = CUDA_ERROR_ILLEGAL_STATE;
		goto out;
	}
	if (cap->origin != s) {
		cap->invalidated = 1;
		rc = CUDA_ERROR_STREAM_CAPTURE_UNMATCHED;
		goto out;
	}
	if (cap->invalidated) {
		*phGraph = NULL;
		capture_free_locked(cap, 0);
		rc = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
		goto out;
	}
	*phGraph = (CUgraph)cap->graph;
	capture_free_locked(cap, 1);
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph)
{
	return end_capture(hStream, phGraph, 0);
}

CUresult cuStreamEndCapture_ptsz(CUstream hStream, CUgraph *phGraph)
{
	return end_capture(hStream, phGraph, 1);
}

static CUstreamCaptureStatus status_of(const struct gp_sim_stream *s)
{
	if (!s->cap)
		return CU_STREAM_CAPTURE_STATUS_NONE;
	return s->cap->invalidated ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
				   : CU_STREAM_CAPTURE_STATUS_ACTIVE;
}

static CUresult is_capturing(CUstream hStream, CUstreamCaptureStatus *st, int ptds)
{
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	if (!st)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (!rc)
		*st = status_of(s);
	gp__sim_unlock();
	return rc;
}

CUresult cuStreamIsCapturing(CUstream hStream, CUstreamCaptureStatus *captureStatus)
{
	return is_capturing(hStream, captureStatus, 0);
}

CUresult cuStreamIsCapturing_ptsz(CUstream hStream, CUstreamCaptureStatus *captureStatus)
{
	return is_capturing(hStream, captureStatus, 1);
}

/* Every flavour of cuStreamGetCaptureInfo. */
static CUresult capture_info(CUstream hStream, CUstreamCaptureStatus *st, cuuint64_t *id,
			     CUgraph *graph, const CUgraphNode **deps,
			     const CUgraphEdgeData **edges, size_t *ndeps, int ptds)
{
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	if (!st)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (rc)
		goto out;
	*st = status_of(s);
	if (*st == CU_STREAM_CAPTURE_STATUS_NONE)
		goto out;
	if (id)
		*id = s->cap->id;
	if (graph)
		*graph = (CUgraph)s->cap->graph;
	if (deps)
		*deps = (const CUgraphNode *)s->deps;
	if (edges)
		*edges = NULL; /* all edges are of the default kind */
	if (ndeps)
		*ndeps = s->ndeps;
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuStreamGetCaptureInfo(CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
				cuuint64_t *id_out)
{
	return capture_info(hStream, captureStatus_out, id_out, NULL, NULL, NULL, NULL, 0);
}

CUresult cuStreamGetCaptureInfo_ptsz(CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
				     cuuint64_t *id_out)
{
	return capture_info(hStream, captureStatus_out, id_out, NULL, NULL, NULL, NULL, 1);
}

CUresult cuStreamGetCaptureInfo_v2(CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
				   cuuint64_t *id_out, CUgraph *graph_out,
				   const CUgraphNode **dependencies_out, size_t *numDependencies_out)
{
	return capture_info(hStream, captureStatus_out, id_out, graph_out, dependencies_out, NULL,
			    numDependencies_out, 0);
}

CUresult cuStreamGetCaptureInfo_v2_ptsz(CUstream hStream,
					CUstreamCaptureStatus *captureStatus_out,
					cuuint64_t *id_out, CUgraph *graph_out,
					const CUgraphNode **dependencies_out,
					size_t *numDependencies_out)
{
	return capture_info(hStream, captureStatus_out, id_out, graph_out, dependencies_out, NULL,
			    numDependencies_out, 1);
}

CUresult cuStreamGetCaptureInfo_v3(CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
				   cuuint64_t *id_out, CUgraph *graph_out,
				   const CUgraphNode **dependencies_out,
				   const CUgraphEdgeData **edgeData_out, size_t *numDependencies_out)
{
	return capture_info(hStream, captureStatus_out, id_out, graph_out, dependencies_out,
			    edgeData_out, numDependencies_out, 0);
}

CUresult cuStreamGetCaptureInfo_v3_ptsz(CUstream hStream,
					CUstreamCaptureStatus *captureStatus_out,
					cuuint64_t *id_out, CUgraph *graph_out,
					const CUgraphNode **dependencies_out,
					const CUgraphEdgeData **edgeData_out,
					size_t *numDependencies_out)
{
	return capture_info(hStream, captureStatus_out, id_out, graph_out, dependencies_out,
			    edgeData_out, numDependencies_out, 1);
}

static CUresult update_deps(CUstream hStream, CUgraphNode *dependencies, size_t n,
			    unsigned flags, int ptds)
{
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	if ((n && !dependencies) || flags > CU_STREAM_SET_CAPTURE_DEPENDENCIES)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (!rc && !s->cap)
		rc = CUDA_ERROR_ILLEGAL_STATE;
	for (size_t i = 0; !rc && i < n; i++) {
		struct gp_sim_node *nd = gp__sim_handle_get(dependencies[i], GP_SIM_NODE);
		if (!nd || nd->graph != s->cap->graph)
			rc = CUDA_ERROR_INVALID_VALUE;
	}
	if (!rc) {
		struct gp_sim_node *const *d = (struct gp_sim_node *const *)dependencies;
		int bad = flags == CU_STREAM_SET_CAPTURE_DEPENDENCIES ? set_deps(s, d, n)
								    : add_deps(s, d, n);
		if (bad)
			rc = CUDA_ERROR_OUT_OF_MEMORY;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuStreamUpdateCaptureDependencies(CUstream hStream, CUgraphNode *dependencies,
					   size_t numDependencies, unsigned int flags)
{
	return update_deps(hStream, dependencies, numDependencies, flags, 0);
}

CUresult cuStreamUpdateCaptureDependencies_ptsz(CUstream hStream, CUgraphNode *dependencies,
						size_t numDependencies, unsigned int flags)
{
	return update_deps(hStream, dependencies, numDependencies, flags, 1);
}

CUresult cuStreamUpdateCaptureDependencies_v2(CUstream hStream, CUgraphNode *dependencies,
					      const CUgraphEdgeData *dependencyData,
					      size_t numDependencies, unsigned int flags)
{
	(void)dependencyData;
	return update_deps(hStream, dependencies, numDependencies, flags, 0);
}

CUresult cuStreamUpdateCaptureDependencies_v2_ptsz(CUstream hStream, CUgraphNode *dependencies,
						   const CUgraphEdgeData *dependencyData,
						   size_t numDependencies, unsigned int flags)
{
	(void)dependencyData;
	return update_deps(hStream, dependencies, numDependencies, flags, 1);
}

CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
	CUstreamCaptureMode old;

	GP_SIM_ENTER();
	if (!mode || (unsigned)*mode > CU_STREAM_CAPTURE_MODE_RELAXED)
		return CUDA_ERROR_INVALID_VALUE;
	old = thread_mode;
	thread_mode = *mode;
	*mode = old;
	return CUDA_SUCCESS;
}
