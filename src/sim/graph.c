/* graph.c - graphs and their nodes.  See graph.h.  Entry points:
 * cuGraphCreate/Destroy, cuGraphAdd*Node, cuGraphAddNode(_v2),
 * cuGraphMem{Alloc,Free}NodeGetParams, cuGraphNodeGetType,
 * cuGraphGetNodes/RootNodes, cuGraphDestroyNode, dependencies. */
#include "sim/graph.h"

#include <stdlib.h>
#include <string.h>

#include "sim/pool.h"

CUresult gp__sim_graph_new_locked(struct gp_sim_graph **out)
{
	struct gp_sim_graph *g = calloc(1, sizeof *g);

	if (!g || gp__sim_handle_add(&g->h, GP_SIM_GRAPH)) {
		free(g);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*out = g;
	return CUDA_SUCCESS;
}

static void node_free_locked(struct gp_sim_node *n)
{
	if (n->type == CU_GRAPH_NODE_TYPE_MEM_ALLOC && n->u.alloc.block)
		gp__sim_gblock_put_locked(n->u.alloc.block);
	free(n->deps);
	gp__sim_handle_del(&n->h);
	free(n);
}

void gp__sim_graph_free_locked(struct gp_sim_graph *g)
{
	for (size_t i = 0; i < g->n; i++)
		node_free_locked(g->nodes[i]);
	free(g->nodes);
	gp__sim_handle_del(&g->h);
	free(g);
}

CUresult gp__sim_node_new_locked(struct gp_sim_graph *g, CUgraphNodeType type,
				 struct gp_sim_node *const *deps, size_t ndeps,
				 struct gp_sim_node **out)
{
	struct gp_sim_node *n;

	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		struct gp_sim_node **v = realloc(g->nodes, cap * sizeof *v);
		if (!v)
			return CUDA_ERROR_OUT_OF_MEMORY;
		g->nodes = v;
		g->cap = cap;
	}
	n = calloc(1, sizeof *n);
	if (!n)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (ndeps) {
		n->deps = malloc(ndeps * sizeof *n->deps);
		if (!n->deps) {
			free(n);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
		memcpy(n->deps, deps, ndeps * sizeof *deps);
	}
	n->ndeps = n->capdeps = ndeps;
	if (gp__sim_handle_add(&n->h, GP_SIM_NODE)) {
		free(n->deps);
		free(n);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	n->graph = g;
	n->type = type;
	g->nodes[g->n++] = n;
	*out = n;
	return CUDA_SUCCESS;
}

/* --- adding nodes ---------------------------------------------------------- */

/* Check the graph and the dependency list every cuGraphAdd*Node takes. */
static CUresult check_add(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *deps,
			  size_t ndeps, struct gp_sim_graph **g)
{
	if (!phGraphNode || (ndeps && !deps))
		return CUDA_ERROR_INVALID_VALUE;
	*g = gp__sim_handle_get(hGraph, GP_SIM_GRAPH);
	if (!*g)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < ndeps; i++) {
		struct gp_sim_node *d = gp__sim_handle_get(deps[i], GP_SIM_NODE);
		if (!d || d->graph != *g)
			return CUDA_ERROR_INVALID_VALUE;
		for (size_t j = 0; j < i; j++)
			if (deps[j] == deps[i])
				return CUDA_ERROR_INVALID_VALUE; /* duplicate edge */
	}
	return CUDA_SUCCESS;
}

/* Validate a node's parameters for `type` and fill u.  Lock held. */
typedef CUresult (*fill_fn)(union gp_sim_node_params *u, const void *arg);

static CUresult add_node(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *deps,
			 size_t ndeps, CUgraphNodeType type, fill_fn fill, const void *arg)
{
	union gp_sim_node_params u;
	struct gp_sim_graph *g;
	struct gp_sim_node *n;
	CUresult rc;

	GP_SIM_ENTER();
	memset(&u, 0, sizeof u);
	gp__sim_lock();
	rc = check_add(phGraphNode, hGraph, deps, ndeps, &g);
	if (!rc && fill)
		rc = fill(&u, arg);
	if (!rc) {
		rc = gp__sim_node_new_locked(g, type, (struct gp_sim_node *const *)deps, ndeps, &n);
		if (rc && type == CU_GRAPH_NODE_TYPE_MEM_ALLOC)
			gp__sim_gblock_put_locked(u.alloc.block);
	}
	if (!rc) {
		n->u = u;
		*phGraphNode = (CUgraphNode)n;
	}
	gp__sim_unlock();
	return rc;
}

/* The kernel part of the node parameter structs, in one shape. */
struct kparams {
	CUfunction func;
	unsigned grid[3], block[3], smem;
	void **params, **extra;
};

static CUresult fill_kernel(union gp_sim_node_params *u, const void *arg)
{
	const struct kparams *k = arg;

	return gp__sim_launch_prepare_locked(k->func, k->grid, k->block, k->smem, k->params,
					     k->extra, 0, &u->kernel);
}

#define KPARAMS(p, fn)                                                       \
	{fn, {(p)->gridDimX, (p)->gridDimY, (p)->gridDimZ},                      \
	 {(p)->blockDimX, (p)->blockDimY, (p)->blockDimZ}, (p)->sharedMemBytes,  \
	 (p)->kernelParams, (p)->extra}

CUresult cuGraphAddKernelNode(CUgraphNode *phGraphNode, CUgraph hGraph,
			      const CUgraphNode *dependencies, size_t numDependencies,
			      const CUDA_KERNEL_NODE_PARAMS_v1 *nodeParams)
{
	if (!nodeParams)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	struct kparams k = KPARAMS(nodeParams, nodeParams->func);
	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_KERNEL, fill_kernel, &k);
}

CUresult cuGraphAddKernelNode_v2(CUgraphNode *phGraphNode, CUgraph hGraph,
				 const CUgraphNode *dependencies, size_t numDependencies,
				 const CUDA_KERNEL_NODE_PARAMS *nodeParams)
{
	if (!nodeParams)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	struct kparams k = KPARAMS(nodeParams, nodeParams->func ? nodeParams->func
								: (CUfunction)nodeParams->kern);
	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_KERNEL, fill_kernel, &k);
}

static CUresult fill_memcpy(union gp_sim_node_params *u, const void *arg)
{
	const CUDA_MEMCPY3D *p = arg;

	if (!p || !p->WidthInBytes || !p->Height || !p->Depth)
		return CUDA_ERROR_INVALID_VALUE;
	u->copy.p = *p;
	return CUDA_SUCCESS;
}

CUresult cuGraphAddMemcpyNode(CUgraphNode *phGraphNode, CUgraph hGraph,
			      const CUgraphNode *dependencies, size_t numDependencies,
			      const CUDA_MEMCPY3D *copyParams, CUcontext ctx)
{
	(void)ctx;
	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_MEMCPY, fill_memcpy, copyParams);
}

static CUresult fill_memset(union gp_sim_node_params *u, const void *arg)
{
	const CUDA_MEMSET_NODE_PARAMS *p = arg;

	if (!p || !p->dst || !p->width || !p->height ||
	    (p->elementSize != 1 && p->elementSize != 2 && p->elementSize != 4) ||
	    (p->height > 1 && p->pitch < p->width * p->elementSize))
		return CUDA_ERROR_INVALID_VALUE;
	u->memset = *p;
	return CUDA_SUCCESS;
}

CUresult cuGraphAddMemsetNode(CUgraphNode *phGraphNode, CUgraph hGraph,
			      const CUgraphNode *dependencies, size_t numDependencies,
			      const CUDA_MEMSET_NODE_PARAMS *memsetParams, CUcontext ctx)
{
	(void)ctx;
	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_MEMSET, fill_memset, memsetParams);
}

static CUresult fill_host(union gp_sim_node_params *u, const void *arg)
{
	const CUDA_HOST_NODE_PARAMS *p = arg;

	if (!p || !p->fn)
		return CUDA_ERROR_INVALID_VALUE;
	u->host = *p;
	return CUDA_SUCCESS;
}

CUresult cuGraphAddHostNode(CUgraphNode *phGraphNode, CUgraph hGraph,
			    const CUgraphNode *dependencies, size_t numDependencies,
			    const CUDA_HOST_NODE_PARAMS *nodeParams)
{
	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_HOST, fill_host, nodeParams);
}

CUresult cuGraphAddEmptyNode(CUgraphNode *phGraphNode, CUgraph hGraph,
			     const CUgraphNode *dependencies, size_t numDependencies)
{
	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_EMPTY, NULL, NULL);
}

static CUresult fill_event(union gp_sim_node_params *u, const void *arg)
{
	u->event = gp__sim_handle_get(arg, GP_SIM_EVENT);
	return u->event ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGraphAddEventRecordNode(CUgraphNode *phGraphNode, CUgraph hGraph,
				   const CUgraphNode *dependencies, size_t numDependencies,
				   CUevent event)
{
	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_EVENT_RECORD, fill_event, event);
}

CUresult cuGraphAddEventWaitNode(CUgraphNode *phGraphNode, CUgraph hGraph,
				 const CUgraphNode *dependencies, size_t numDependencies,
				 CUevent event)
{
	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_WAIT_EVENT, fill_event, event);
}

/* Allocation node: the address is fixed now and written back. */
static CUresult fill_alloc(union gp_sim_node_params *u, const void *arg)
{
	CUDA_MEM_ALLOC_NODE_PARAMS *p = (CUDA_MEM_ALLOC_NODE_PARAMS *)arg;
	int dev;
	CUresult rc;

	if (!p || !p->bytesize || p->poolProps.allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
	    p->poolProps.location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
	    (p->accessDescCount && !p->accessDescs))
		return CUDA_ERROR_INVALID_VALUE;
	dev = gp__sim_visible_index(p->poolProps.location.id);
	if (dev < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	rc = gp__sim_gblock_new_locked(dev, p->bytesize, &u->alloc.block);
	if (rc)
		return rc;
	p->dptr = (CUdeviceptr)u->alloc.block->mem->base;
	u->alloc.p = *p;
	u->alloc.p.accessDescs = NULL; /* not kept: the caller owns them */
	u->alloc.p.accessDescCount = 0;
	return CUDA_SUCCESS;
}

CUresult cuGraphAddMemAllocNode(CUgraphNode *phGraphNode, CUgraph hGraph,
				const CUgraphNode *dependencies, size_t numDependencies,
				CUDA_MEM_ALLOC_NODE_PARAMS *nodeParams)
{
	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_MEM_ALLOC, fill_alloc, nodeParams);
}

static CUresult fill_free(union gp_sim_node_params *u, const void *arg)
{
	uint64_t dptr = *(const uint64_t *)arg;
	struct gp_sim_mem *m = gp__sim_mem_find_locked(dptr);

	if (!m || m->kind != GP_SIM_MEM_GRAPH || m->base != dptr)
		return CUDA_ERROR_INVALID_VALUE;
	u->free_ptr = dptr;
	return CUDA_SUCCESS;
}

CUresult cuGraphAddMemFreeNode(CUgraphNode *phGraphNode, CUgraph hGraph,
			       const CUgraphNode *dependencies, size_t numDependencies,
			       CUdeviceptr dptr)
{
	uint64_t p = dptr;

	return add_node(phGraphNode, hGraph, dependencies, numDependencies,
			CU_GRAPH_NODE_TYPE_MEM_FREE, fill_free, &p);
}

/* cuGraphAddNode: the generic form. */
static CUresult add_generic(CUgraphNode *phGraphNode, CUgraph hGraph,
			    const CUgraphNode *dependencies, size_t numDependencies,
			    CUgraphNodeParams *np)
{
	CUDA_MEM_ALLOC_NODE_PARAMS a;
	CUDA_MEMSET_NODE_PARAMS ms;
	CUDA_HOST_NODE_PARAMS hp;
	CUresult rc;

	if (!np)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	switch (np->type) {
	case CU_GRAPH_NODE_TYPE_KERNEL: {
		const CUDA_KERNEL_NODE_PARAMS_v3 *p = &np->kernel;
		struct kparams k = KPARAMS(p, p->func ? p->func : (CUfunction)p->kern);
		return add_node(phGraphNode, hGraph, dependencies, numDependencies, np->type,
				fill_kernel, &k);
	}
	case CU_GRAPH_NODE_TYPE_MEMCPY:
		return add_node(phGraphNode, hGraph, dependencies, numDependencies, np->type,
				fill_memcpy, &np->memcpy.copyParams);
	case CU_GRAPH_NODE_TYPE_MEMSET:
		memset(&ms, 0, sizeof ms);
		ms.dst = np->memset.dst;
		ms.pitch = np->memset.pitch;
		ms.value = np->memset.value;
		ms.elementSize = np->memset.elementSize;
		ms.width = np->memset.width;
		ms.height = np->memset.height;
		return add_node(phGraphNode, hGraph, dependencies, numDependencies, np->type,
				fill_memset, &ms);
	case CU_GRAPH_NODE_TYPE_HOST:
		hp.fn = np->host.fn;
		hp.userData = np->host.userData;
		return add_node(phGraphNode, hGraph, dependencies, numDependencies, np->type,
				fill_host, &hp);
	case CU_GRAPH_NODE_TYPE_EMPTY:
		return add_node(phGraphNode, hGraph, dependencies, numDependencies, np->type,
				NULL, NULL);
	case CU_GRAPH_NODE_TYPE_EVENT_RECORD:
		return add_node(phGraphNode, hGraph, dependencies, numDependencies, np->type,
				fill_event, np->eventRecord.event);
	case CU_GRAPH_NODE_TYPE_WAIT_EVENT:
		return add_node(phGraphNode, hGraph, dependencies, numDependencies, np->type,
				fill_event, np->eventWait.event);
	case CU_GRAPH_NODE_TYPE_MEM_ALLOC:
		memset(&a, 0, sizeof a);
		a.poolProps = np->alloc.poolProps;
		a.accessDescs = np->alloc.accessDescs;
		a.accessDescCount = np->alloc.accessDescCount;
		a.bytesize = np->alloc.bytesize;
		rc = add_node(phGraphNode, hGraph, dependencies, numDependencies, np->type,
			      fill_alloc, &a);
		if (!rc)
			np->alloc.dptr = a.dptr;
		return rc;
	case CU_GRAPH_NODE_TYPE_MEM_FREE: {
		uint64_t p = np->free.dptr;
		return add_node(phGraphNode, hGraph, dependencies, numDependencies, np->type,
				fill_free, &p);
	}
	default:
		return gp__sim_arg_error(CUDA_ERROR_NOT_SUPPORTED);
	}
}

CUresult cuGraphAddNode(CUgraphNode *phGraphNode, CUgraph hGraph,
			const CUgraphNode *dependencies, size_t numDependencies,
			CUgraphNodeParams *nodeParams)
{
	return add_generic(phGraphNode, hGraph, dependencies, numDependencies, nodeParams);
}

CUresult cuGraphAddNode_v2(CUgraphNode *phGraphNode, CUgraph hGraph,
			   const CUgraphNode *dependencies, const CUgraphEdgeData *dependencyData,
			   size_t numDependencies, CUgraphNodeParams *nodeParams)
{
	(void)dependencyData; /* the default edge kind only */
	return add_generic(phGraphNode, hGraph, dependencies, numDependencies, nodeParams);
}

/* --- graphs ------------------------------------------------------------------ */

CUresult cuGraphCreate(CUgraph *phGraph, unsigned int flags)
{
	struct gp_sim_graph *g;
	CUresult rc;

	GP_SIM_ENTER();
	if (!phGraph || flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_graph_new_locked(&g);
	if (!rc)
		*phGraph = (CUgraph)g;
	gp__sim_unlock();
	return rc;
}

CUresult cuGraphDestroy(CUgraph hGraph)
{
	struct gp_sim_graph *g;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	gp__sim_lock();
	g = gp__sim_handle_get(hGraph, GP_SIM_GRAPH);
	if (g) {
		gp__sim_graph_free_locked(g);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

/* List g's nodes (all, or those without dependencies) into out[*n]. */
static CUresult list_nodes(CUgraph hGraph, CUgraphNode *out, size_t *num, int roots_only)
{
	struct gp_sim_graph *g;
	size_t k = 0;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!num)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	g = gp__sim_handle_get(hGraph, GP_SIM_GRAPH);
	if (g) {
		for (size_t i = 0; i < g->n; i++) {
			if (roots_only && g->nodes[i]->ndeps)
				continue;
			if (out && k < *num)
				out[k] = (CUgraphNode)g->nodes[i];
			k++;
		}
		if (out && k < *num)
			for (size_t i = k; i < *num; i++)
				out[i] = NULL;
		*num = k;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuGraphGetNodes(CUgraph hGraph, CUgraphNode *nodes, size_t *numNodes)
{
	return list_nodes(hGraph, nodes, numNodes, 0);
}

CUresult cuGraphGetRootNodes(CUgraph hGraph, CUgraphNode *rootNodes, size_t *numRootNodes)
{
	return list_nodes(hGraph, rootNodes, numRootNodes, 1);
}

CUresult cuGraphNodeGetType(CUgraphNode hNode, CUgraphNodeType *type)
{
	struct gp_sim_node *n;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!type)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	n = gp__sim_handle_get(hNode, GP_SIM_NODE);
	if (n) {
		*type = n->type;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuGraphMemAllocNodeGetParams(CUgraphNode hNode, CUDA_MEM_ALLOC_NODE_PARAMS *params_out)
{
	struct gp_sim_node *n;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!params_out)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	n = gp__sim_handle_get(hNode, GP_SIM_NODE);
	if (n && n->type == CU_GRAPH_NODE_TYPE_MEM_ALLOC) {
		*params_out = n->u.alloc.p;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuGraphMemFreeNodeGetParams(CUgraphNode hNode, CUdeviceptr *dptr_out)
{
	struct gp_sim_node *n;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!dptr_out)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	n = gp__sim_handle_get(hNode, GP_SIM_NODE);
	if (n && n->type == CU_GRAPH_NODE_TYPE_MEM_FREE) {
		*dptr_out = (CUdeviceptr)n->u.free_ptr;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuGraphDestroyNode(CUgraphNode hNode)
{
	struct gp_sim_node *n;
	struct gp_sim_graph *g;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	gp__sim_lock();
	n = gp__sim_handle_get(hNode, GP_SIM_NODE);
	if (!n)
		goto out;
	g = n->graph;
	for (size_t i = 0, k = 0; i < g->n; i++) {
		struct gp_sim_node *x = g->nodes[i];
		if (x == n)
			continue;
		g->nodes[k++] = x;
		size_t m = 0;
		for (size_t j = 0; j < x->ndeps; j++)
			if (x->deps[j] != n)
				x->deps[m++] = x->deps[j];
		x->ndeps = m;
	}
	g->n--;
	node_free_locked(n);
	rc = CUDA_SUCCESS;
out:
	gp__sim_unlock();
	return rc;
}

/* --- dependencies ------------------------------------------------------------ */

static CUresult add_deps(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to,
			 size_t n)
{
	struct gp_sim_graph *g;
	CUresult rc = CUDA_SUCCESS;

	GP_SIM_ENTER();
	if (n && (!from || !to))
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	g = gp__sim_handle_get(hGraph, GP_SIM_GRAPH);
	if (!g)
		rc = CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; !rc && i < n; i++) {
		struct gp_sim_node *a = gp__sim_handle_get(from[i], GP_SIM_NODE);
		struct gp_sim_node *b = gp__sim_handle_get(to[i], GP_SIM_NODE);
		if (!a || !b || a == b || a->graph != g || b->graph != g) {
			rc = CUDA_ERROR_INVALID_VALUE;
			break;
		}
		for (size_t j = 0; j < b->ndeps; j++)
			if (b->deps[j] == a)
				rc = CUDA_ERROR_INVALID_VALUE; /* already there */
		if (rc)
			break;
		if (b->ndeps == b->capdeps) {
			size_t cap = b->capdeps ? b->capdeps * 2 : 4;
			struct gp_sim_node **v = realloc(b->deps, cap * sizeof *v);
			if (!v) {
				rc = CUDA_ERROR_OUT_OF_MEMORY;
				break;
			}
			b->deps = v;
			b->capdeps = cap;
		}
		b->deps[b->ndeps++] = a;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuGraphAddDependencies(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to,
				size_t numDependencies)
{
	return add_deps(hGraph, from, to, numDependencies);
}

CUresult cuGraphAddDependencies_v2(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to,
				   const CUgraphEdgeData *edgeData, size_t numDependencies)
{
	(void)edgeData;
	return add_deps(hGraph, from, to, numDependencies);
}

static CUresult get_deps(CUgraphNode hNode, CUgraphNode *deps, CUgraphEdgeData *edges,
			 size_t *num)
{
	struct gp_sim_node *n;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!num)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	n = gp__sim_handle_get(hNode, GP_SIM_NODE);
	if (n) {
		for (size_t i = 0; deps && i < *num; i++) {
			deps[i] = i < n->ndeps ? (CUgraphNode)n->deps[i] : NULL;
			if (edges)
				memset(&edges[i], 0, sizeof edges[i]);
		}
		*num = n->ndeps;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuGraphNodeGetDependencies(CUgraphNode hNode, CUgraphNode *dependencies,
				    size_t *numDependencies)
{
	return get_deps(hNode, dependencies, NULL, numDependencies);
}

CUresult cuGraphNodeGetDependencies_v2(CUgraphNode hNode, CUgraphNode *dependencies,
				       CUgraphEdgeData *edgeData, size_t *numDependencies)
{
	return get_deps(hNode, dependencies, edgeData, numDependencies);
}
