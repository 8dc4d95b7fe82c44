/* graphexec.c - executable graphs: instantiate (a topological order of a
 * copy of the nodes), upload (reserve graph memory), launch, destroy. */
#include "sim/graph.h"

#include <stdlib.h>
#include <string.h>

#include "sim/capture.h"
#include "sim/copy.h"

static void exec_free_locked(struct gp_sim_exec *x)
{
	for (size_t i = 0; i < x->n; i++)
		if (x->nodes[i].type == CU_GRAPH_NODE_TYPE_MEM_ALLOC)
			gp__sim_gblock_put_locked(x->nodes[i].u.alloc.block);
	free(x->nodes);
	gp__sim_handle_del(&x->h);
	free(x);
}

/* Kahn's algorithm over g; fills order[] with node indices.  Returns 0, or
 * -1 if g has a cycle. */
static int topo_order(const struct gp_sim_graph *g, size_t *order)
{
	size_t *indeg = calloc(g->n ? g->n : 1, sizeof *indeg), head = 0, tail = 0;
	int rc = 0;

	if (!indeg)
		return -1;
	for (size_t i = 0; i < g->n; i++)
		indeg[i] = g->nodes[i]->ndeps;
	for (size_t i = 0; i < g->n; i++)
		if (!indeg[i])
			order[tail++] = i;
	while (head < tail) {
		const struct gp_sim_node *done = g->nodes[order[head++]];
		/* Every node that depends on `done` loses one dependency. */
		for (size_t i = 0; i < g->n; i++)
			for (size_t j = 0; j < g->nodes[i]->ndeps; j++)
				if (g->nodes[i]->deps[j] == done && --indeg[i] == 0)
					order[tail++] = i;
	}
	if (tail != g->n)
		rc = -1;
	free(indeg);
	return rc;
}

static CUresult instantiate_locked(CUgraph hGraph, unsigned long long flags,
				   struct gp_sim_exec **out)
{
	const unsigned long long known = CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH |
					 CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD |
					 CUDA_GRAPH_INSTANTIATE_FLAG_DEVICE_LAUNCH |
					 CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY;
	struct gp_sim_graph *g = gp__sim_handle_get(hGraph, GP_SIM_GRAPH);
	struct gp_sim_exec *x;
	size_t *order;

	if (!g || (flags & ~known))
		return CUDA_ERROR_INVALID_VALUE;
	x = calloc(1, sizeof *x);
	order = malloc((g->n ? g->n : 1) * sizeof *order);
	if (x)
		x->nodes = calloc(g->n ? g->n : 1, sizeof *x->nodes);
	if (!x || !order || !x->nodes) {
		if (x)
			free(x->nodes);
		free(x);
		free(order);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (topo_order(g, order)) {
		free(x->nodes);
		free(x);
		free(order);
		return CUDA_ERROR_INVALID_VALUE; /* a cycle */
	}
	for (size_t i = 0; i < g->n; i++) {
		const struct gp_sim_node *n = g->nodes[order[i]];
		x->nodes[i].type = n->type;
		x->nodes[i].u = n->u;
		if (n->type == CU_GRAPH_NODE_TYPE_MEM_ALLOC)
			gp__sim_gblock_get(n->u.alloc.block);
	}
	x->n = g->n;
	x->flags = flags;
	free(order);
	if (gp__sim_handle_add(&x->h, GP_SIM_EXEC)) {
		x->n = 0; /* the references were taken: drop them */
		for (size_t i = 0; i < g->n; i++)
			if (x->nodes[i].type == CU_GRAPH_NODE_TYPE_MEM_ALLOC)
				gp__sim_gblock_put_locked(x->nodes[i].u.alloc.block);
		free(x->nodes);
		free(x);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*out = x;
	return CUDA_SUCCESS;
}

/* Reserve the graph memory every not yet live allocation of x needs. */
static CUresult reserve_locked(struct gp_sim_exec *x)
{
	uint64_t need[GP_SIM_GPUS_MAX] = {0};

	for (size_t i = 0; i < x->n; i++) {
		const struct gp_sim_gblock *b = x->nodes[i].u.alloc.block;
		if (x->nodes[i].type == CU_GRAPH_NODE_TYPE_MEM_ALLOC && !b->live)
			need[b->dev] += b->cost;
	}
	for (int d = 0; d < GP_SIM_GPUS_MAX; d++)
		if (need[d] && gp__sim_graphmem_reserve_locked(d, need[d]))
			return CUDA_ERROR_OUT_OF_MEMORY;
	return CUDA_SUCCESS;
}

static CUresult launch_locked(struct gp_sim_exec *x, struct gp_sim_stream *s, CUstream handle)
{
	CUresult rc = CUDA_SUCCESS;

	/* Allocations still live from the last launch: freed first when the
	 * graph was instantiated to do so, else the launch is refused. */
	for (size_t i = 0; i < x->n; i++) {
		struct gp_sim_gblock *b = x->nodes[i].u.alloc.block;
		if (x->nodes[i].type != CU_GRAPH_NODE_TYPE_MEM_ALLOC || !b->live)
			continue;
		if (!(x->flags & CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH))
			return CUDA_ERROR_INVALID_VALUE;
		rc = gp__sim_graphmem_free_locked(b->mem);
		if (rc)
			return rc;
	}
	rc = reserve_locked(x);
	for (size_t i = 0; !rc && i < x->n; i++) {
		union gp_sim_node_params *u = &x->nodes[i].u;
		struct gp_sim_event *e;

		switch (x->nodes[i].type) {
		case CU_GRAPH_NODE_TYPE_KERNEL:
			rc = gp__sim_launch_run_locked(s, &u->kernel);
			break;
		case CU_GRAPH_NODE_TYPE_MEMCPY:
			rc = gp__sim_copy3d_locked(&u->copy.p);
			break;
		case CU_GRAPH_NODE_TYPE_MEMSET:
			rc = gp__sim_memset_locked(u->memset.dst, u->memset.pitch, u->memset.value,
						   u->memset.elementSize, u->memset.width,
						   u->memset.height);
			break;
		case CU_GRAPH_NODE_TYPE_HOST:
			rc = gp__sim_callback_add_locked(s, handle, gp__sim_stream_ready_locked(s), 0,
							 (void *)u->host.fn, u->host.userData);
			break;
		case CU_GRAPH_NODE_TYPE_EVENT_RECORD:
			e = gp__sim_handle_get(u->event, GP_SIM_EVENT);
			if (e)
				gp__sim_event_record_locked(e, s);
			break;
		case CU_GRAPH_NODE_TYPE_WAIT_EVENT:
			e = gp__sim_handle_get(u->event, GP_SIM_EVENT);
			if (e && e->recorded && !e->cap)
				gp__sim_stream_done_locked(s, e->ts_ns);
			break;
		case CU_GRAPH_NODE_TYPE_MEM_ALLOC:
			rc = gp__sim_graphmem_alloc_locked(u->alloc.block);
			break;
		case CU_GRAPH_NODE_TYPE_MEM_FREE:
			rc = gp__sim_mem_free_locked(u->free_ptr);
			break;
		default:
			break;
		}
	}
	return rc;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph,
				     unsigned long long flags)
{
	struct gp_sim_exec *x;
	CUresult rc;

	GP_SIM_ENTER();
	if (!phGraphExec || (flags & CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD))
		return CUDA_ERROR_INVALID_VALUE; /* upload needs WithParams' stream */
	gp__sim_lock();
	rc = instantiate_locked(hGraph, flags, &x);
	if (!rc)
		*phGraphExec = (CUgraphExec)x;
	gp__sim_unlock();
	return rc;
}

/* The legacy 5-argument form. */
static CUresult instantiate_legacy(CUgraphExec *phGraphExec, CUgraph hGraph,
				   CUgraphNode *phErrorNode, char *logBuffer, size_t bufferSize)
{
	CUresult rc = cuGraphInstantiateWithFlags(phGraphExec, hGraph, 0);

	if (phErrorNode)
		*phErrorNode = NULL;
	if (logBuffer && bufferSize)
		logBuffer[0] = '\0';
	return rc;
}

CUresult cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
			    char *logBuffer, size_t bufferSize)
{
	return instantiate_legacy(phGraphExec, hGraph, phErrorNode, logBuffer, bufferSize);
}

CUresult cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
			       char *logBuffer, size_t bufferSize)
{
	return instantiate_legacy(phGraphExec, hGraph, phErrorNode, logBuffer, bufferSize);
}

static CUresult instantiate_params(CUgraphExec *phGraphExec, CUgraph hGraph,
				   CUDA_GRAPH_INSTANTIATE_PARAMS *p, int ptds)
{
	struct gp_sim_exec *x;
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	if (!phGraphExec || !p)
		return CUDA_ERROR_INVALID_VALUE;
	p->hErrNode_out = NULL;
	gp__sim_lock();
	rc = instantiate_locked(hGraph, p->flags, &x);
	if (!rc && (p->flags & CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD)) {
		rc = gp__sim_stream_get_locked(p->hUploadStream, ptds, &s);
		if (!rc)
			rc = reserve_locked(x);
		if (rc)
			exec_free_locked(x);
	}
	if (!rc)
		*phGraphExec = (CUgraphExec)x;
	p->result_out = rc == CUDA_SUCCESS ? CUDA_GRAPH_INSTANTIATE_SUCCESS
					   : CUDA_GRAPH_INSTANTIATE_ERROR;
	gp__sim_unlock();
	return rc;
}

CUresult cuGraphInstantiateWithParams(CUgraphExec *phGraphExec, CUgraph hGraph,
				      CUDA_GRAPH_INSTANTIATE_PARAMS *instantiateParams)
{
	return instantiate_params(phGraphExec, hGraph, instantiateParams, 0);
}

CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *phGraphExec, CUgraph hGraph,
					   CUDA_GRAPH_INSTANTIATE_PARAMS *instantiateParams)
{
	return instantiate_params(phGraphExec, hGraph, instantiateParams, 1);
}

CUresult cuGraphExecDestroy(CUgraphExec hGraphExec)
{
	struct gp_sim_exec *x;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	gp__sim_lock();
	x = gp__sim_handle_get(hGraphExec, GP_SIM_EXEC);
	if (x) {
		exec_free_locked(x);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

/* Upload (launch = 0) or launch (1) x on hStream. */
static CUresult run(CUgraphExec hGraphExec, CUstream hStream, int launch, int ptds)
{
	struct gp_sim_exec *x;
	struct gp_sim_stream *s;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	x = gp__sim_handle_get(hGraphExec, GP_SIM_EXEC);
	rc = x ? gp__sim_stream_get_locked(hStream, ptds, &s) : CUDA_ERROR_INVALID_VALUE;
	if (!rc && s->cap)
		rc = CUDA_ERROR_NOT_SUPPORTED; /* graphs in graphs: not simulated */
	if (!rc)
		rc = gp__sim_capture_legacy_check_locked(s);
	if (!rc)
		rc = launch ? launch_locked(x, s, hStream) : reserve_locked(x);
	gp__sim_unlock();
	return rc;
}

CUresult cuGraphUpload(CUgraphExec hGraphExec, CUstream hStream)
{
	return run(hGraphExec, hStream, 0, 0);
}

CUresult cuGraphUpload_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
	return run(hGraphExec, hStream, 0, 1);
}

CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream)
{
	return run(hGraphExec, hStream, 1, 0);
}

CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
	return run(hGraphExec, hStream, 1, 1);
}
