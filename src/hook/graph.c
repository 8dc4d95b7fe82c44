/* graph.c - graph memory: allocations made by memory nodes of CUDA graphs
 * (cuGraphAddMemAllocNode, or cuMemAllocAsync during stream capture).
 *
 * The driver reserves graph memory per device when a graph that allocates
 * is launched or uploaded, and keeps it reserved after the frees until
 * cuDeviceGraphMemTrim.  So, as with pools, the device's graph reserve is
 * what we charge (reserve.c).  At instantiation we learn how much a graph's
 * launches allocate; before a launch we charge the growth it can cause and
 * refuse the launch, as a full card would, if that does not fit.
 */
#include <stdlib.h>
#include <string.h>

#include "hook/hook.h"

static struct gp__reserve reserves[GP_REGION_MAX_DEVS];

static CUresult read_attr(int dev, CUgraphMem_attribute attr, uint64_t *out)
{
	cuuint64_t v = 0;
	CUresult rc = gp__real_cuDeviceGetGraphMemAttribute
			      ? gp__real_cuDeviceGetGraphMemAttribute((CUdevice)dev, attr, &v)
			      : CUDA_ERROR_NOT_SUPPORTED;

	*out = v;
	return rc;
}

static CUresult read_reserved(void *arg, uint64_t *bytes)
{
	return read_attr((int)(intptr_t)arg, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT, bytes);
}

static void settle(int dev)
{
	if (!gp__dev_get(dev))
		return;
	reserves[dev].dev = dev;
	gp__reserve_settle(&reserves[dev], read_reserved, (void *)(intptr_t)dev);
}

/* What one launch of graph g allocates (its memory alloc nodes, in
 * granules), and on which device.  0 when it allocates nothing. */
static uint64_t graph_need(CUgraph g, int *dev)
{
	CUgraphNode *nodes = NULL;
	size_t n = 0;
	uint64_t need = 0;

	if (!gp__real_cuGraphGetNodes || !gp__real_cuGraphNodeGetType ||
	    !gp__real_cuGraphMemAllocNodeGetParams ||
	    gp__real_cuGraphGetNodes(g, NULL, &n) != CUDA_SUCCESS || n == 0)
		return 0;
	nodes = calloc(n, sizeof *nodes);
	if (!nodes || gp__real_cuGraphGetNodes(g, nodes, &n) != CUDA_SUCCESS)
		goto out;
	for (size_t i = 0; i < n; i++) {
		CUgraphNodeType type;
		CUDA_MEM_ALLOC_NODE_PARAMS p;

		if (gp__real_cuGraphNodeGetType(nodes[i], &type) != CUDA_SUCCESS ||
		    type != CU_GRAPH_NODE_TYPE_MEM_ALLOC)
			continue;
		memset(&p, 0, sizeof p);
		if (gp__real_cuGraphMemAllocNodeGetParams(nodes[i], &p) != CUDA_SUCCESS)
			continue;
		if (need == 0)
			*dev = p.poolProps.location.id;
		need += gp__granules(p.bytesize);
	}
out:
	free(nodes);
	return need;
}

/* After an instantiation: remember what the executable graph allocates. */
static CUresult instantiated(CUresult rc, CUgraphExec *exec, CUgraph g)
{
	struct gp__rec rec = {.kind = GP_K_EXEC};
	int dev = 0;

	if (rc != CUDA_SUCCESS || !exec || !*exec || gp__enter() != CUDA_SUCCESS)
		return rc;
	rec.bytes = graph_need(g, &dev);
	rec.dev = dev;
	if (rec.bytes && gp__tab_put(&gp__tabs[GP_S_EXEC], (uint64_t)(uintptr_t)*exec, &rec))
		gp_warn("out of host memory: graph %p's allocations are charged only once "
			"made", (void *)*exec);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph,
						       unsigned long long flags)
{
	GP_NEED_REAL(cuGraphInstantiateWithFlags);
	return instantiated(gp__real_cuGraphInstantiateWithFlags(phGraphExec, hGraph, flags),
			    phGraphExec, hGraph);
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiateWithParams(CUgraphExec *phGraphExec, CUgraph hGraph,
							CUDA_GRAPH_INSTANTIATE_PARAMS *params)
{
	GP_NEED_REAL(cuGraphInstantiateWithParams);
	return instantiated(gp__real_cuGraphInstantiateWithParams(phGraphExec, hGraph, params),
			    phGraphExec, hGraph);
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiateWithParams_ptsz(CUgraphExec *phGraphExec,
							     CUgraph hGraph,
							     CUDA_GRAPH_INSTANTIATE_PARAMS *params)
{
	GP_NEED_REAL(cuGraphInstantiateWithParams_ptsz);
	return instantiated(gp__real_cuGraphInstantiateWithParams_ptsz(phGraphExec, hGraph, params),
			    phGraphExec, hGraph);
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph,
					      CUgraphNode *phErrorNode, char *logBuffer,
					      size_t bufferSize)
{
	GP_NEED_REAL(cuGraphInstantiate);
	return instantiated(gp__real_cuGraphInstantiate(phGraphExec, hGraph, phErrorNode,
							logBuffer, bufferSize),
			    phGraphExec, hGraph);
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph,
						 CUgraphNode *phErrorNode, char *logBuffer,
						 size_t bufferSize)
{
	GP_NEED_REAL(cuGraphInstantiate_v2);
	return instantiated(gp__real_cuGraphInstantiate_v2(phGraphExec, hGraph, phErrorNode,
							   logBuffer, bufferSize),
			    phGraphExec, hGraph);
}

/* Launch or upload: both make the driver reserve the graph's memory. */
static CUresult reserve_and(CUgraphExec exec, CUstream s, CUresult (*call)(CUgraphExec, CUstream))
{
	struct gp__rec rec;
	uint64_t used, reserved, need, est = 0;
	CUresult rc;

	if ((rc = gp__enter()))
		return rc;
	if (!exec || gp__tab_get(&gp__tabs[GP_S_EXEC], (uint64_t)(uintptr_t)exec, &rec))
		return call(exec, s); /* allocates nothing */
	if (read_attr(rec.dev, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT, &used) == CUDA_SUCCESS &&
	    read_attr(rec.dev, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT, &reserved) == CUDA_SUCCESS) {
		need = gp__granules(used + rec.bytes);
		est = need > reserved ? need - reserved : 0;
	} else {
		est = rec.bytes;
	}
	if (est && (rc = gp__charge(rec.dev, est, 0)))
		return rc;
	rc = call(exec, s);
	settle(rec.dev);
	if (est)
		gp__uncharge(rec.dev, est);
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream)
{
	GP_NEED_REAL(cuGraphLaunch);
	return reserve_and(hGraphExec, hStream, gp__real_cuGraphLaunch);
}

GP_EXPORT CUresult CUDAAPI cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
	GP_NEED_REAL(cuGraphLaunch_ptsz);
	return reserve_and(hGraphExec, hStream, gp__real_cuGraphLaunch_ptsz);
}

GP_EXPORT CUresult CUDAAPI cuGraphUpload(CUgraphExec hGraphExec, CUstream hStream)
{
	GP_NEED_REAL(cuGraphUpload);
	return reserve_and(hGraphExec, hStream, gp__real_cuGraphUpload);
}

GP_EXPORT CUresult CUDAAPI cuGraphUpload_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
	GP_NEED_REAL(cuGraphUpload_ptsz);
	return reserve_and(hGraphExec, hStream, gp__real_cuGraphUpload_ptsz);
}

GP_EXPORT CUresult CUDAAPI cuGraphExecDestroy(CUgraphExec hGraphExec)
{
	uint64_t key = (uint64_t)(uintptr_t)hGraphExec;
	struct gp__rec rec;
	CUresult rc;
	int ours;

	GP_NEED_REAL(cuGraphExecDestroy);
	ours = gp__free_begin(GP_S_EXEC, key, GP_K_EXEC, &rec);
	rc = gp__real_cuGraphExecDestroy(hGraphExec);
	if (ours && gp__free_end(GP_S_EXEC, key, &rec, rc))
		settle(rec.dev); /* its allocations may leave the reserve */
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuDeviceGraphMemTrim(CUdevice device)
{
	CUresult rc;

	GP_NEED_REAL(cuDeviceGraphMemTrim);
	rc = gp__real_cuDeviceGraphMemTrim(device);
	if (rc == CUDA_SUCCESS)
		settle((int)device);
	return rc;
}

void gp__graphs_atfork(enum gp__fork_phase phase)
{
	if (phase == GP_FORK_CHILD)
		memset(reserves, 0, sizeof reserves); /* the parent's, not ours */
}
