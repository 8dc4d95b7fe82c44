/* graph.c - graph memory: allocations made by memory nodes of CUDA graphs
 * (cuGraphAddMemAllocNode, or cuMemAllocAsync during stream capture).
 *
 * The driver reserves graph memory per device when a graph that allocates
 * is uploaded (cuGraphUpload, or instantiation with
 * CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD) or launched, and keeps it reserved
 * after the frees until cuDeviceGraphMemTrim.  So, as with pools, each
 * device's graph reserve is what we charge (reserve.c).  Before
 * instantiating we learn from the graph's nodes how much its launches
 * allocate on each device; every call that may reserve is made under the
 * reserve locks of those devices, after charging the growth it can cause
 * on each, and refused as a full card would refuse it if that does not fit.
 */
#include <stdlib.h>
#include <string.h>

#include "hook/hook.h"

#define R_INIT {.lock = PTHREAD_MUTEX_INITIALIZER}
static struct gp__reserve reserves[GP_REGION_MAX_DEVS] = {[0 ... GP_REGION_MAX_DEVS - 1] = R_INIT};

/* What one launch of a graph allocates, per ordinal (granules). */
struct need {
	unsigned mask; /* ordinals with bytes[d] > 0 */
	uint64_t bytes[GP_REGION_MAX_DEVS];
};

static CUresult read_attr(int dev, CUgraphMem_attribute attr, uint64_t *out)
{
	cuuint64_t v = 0;
	CUresult rc = gp__real_cuDeviceGetGraphMemAttribute
			      ? gp__real_cuDeviceGetGraphMemAttribute((CUdevice)dev, attr, &v)
			      : CUDA_ERROR_NOT_SUPPORTED;

	*out = v;
	return rc;
}

/* Settle device dev's graph reserve; whether the driver could tell.  Its
 * lock held. */
static int settle_locked(int dev)
{
	uint64_t now;

	if (read_attr(dev, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT, &now) != CUDA_SUCCESS)
		return 0;
	gp__reserve_set(&reserves[dev], now);
	return 1;
}

static void settle(int dev)
{
	if (!gp__dev_get(dev))
		return;
	pthread_mutex_lock(&reserves[dev].lock);
	reserves[dev].dev = dev;
	settle_locked(dev);
	pthread_mutex_unlock(&reserves[dev].lock);
}

/* What one launch of graph g allocates on each device: its memory alloc
 * nodes, each on the device its pool properties name. */
static void graph_need(CUgraph g, struct need *n)
{
	CUgraphNode *nodes = NULL;
	size_t count = 0;

	memset(n, 0, sizeof *n);
	if (!g || !gp__real_cuGraphGetNodes || !gp__real_cuGraphNodeGetType ||
	    !gp__real_cuGraphMemAllocNodeGetParams ||
	    gp__real_cuGraphGetNodes(g, NULL, &count) != CUDA_SUCCESS || count == 0)
		return;
	nodes = calloc(count, sizeof *nodes);
	if (!nodes || gp__real_cuGraphGetNodes(g, nodes, &count) != CUDA_SUCCESS)
		goto out;
	for (size_t i = 0; i < count; i++) {
		CUgraphNodeType type;
		CUDA_MEM_ALLOC_NODE_PARAMS p;
		int d;

		if (gp__real_cuGraphNodeGetType(nodes[i], &type) != CUDA_SUCCESS ||
		    type != CU_GRAPH_NODE_TYPE_MEM_ALLOC)
			continue;
		memset(&p, 0, sizeof p);
		if (gp__real_cuGraphMemAllocNodeGetParams(nodes[i], &p) != CUDA_SUCCESS)
			continue;
		d = p.poolProps.location.id;
		if (!gp__dev_get(d))
			continue; /* not a device we account: the driver decides */
		n->bytes[d] += gp__granules(p.bytesize);
		n->mask |= 1u << d;
	}
out:
	free(nodes);
}

/* Run call(arg), which may make the driver reserve graph memory for `n`,
 * under the reserve locks of n's devices (in ordinal order), charging the
 * growth it can cause on each first.  CUDA_ERROR_OUT_OF_MEMORY, without
 * calling, if that does not fit. */
static CUresult reserving(const struct need *n, CUresult (*call)(void *arg), void *arg)
{
	uint64_t est[GP_REGION_MAX_DEVS] = {0}, used;
	CUresult rc = CUDA_SUCCESS;
	unsigned locked = 0;

	for (int d = 0; d < (int)GP_REGION_MAX_DEVS && rc == CUDA_SUCCESS; d++) {
		if (!(n->mask & (1u << d)))
			continue;
		pthread_mutex_lock(&reserves[d].lock);
		locked |= 1u << d;
		reserves[d].dev = d;
		est[d] = read_attr(d, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT, &used) == CUDA_SUCCESS
				 ? gp__reserve_growth(&reserves[d], used, n->bytes[d])
				 : n->bytes[d];
		if (est[d] && (rc = gp__charge(d, est[d], 0)))
			est[d] = 0;
	}
	if (rc == CUDA_SUCCESS)
		rc = call(arg);
	for (int d = 0; d < (int)GP_REGION_MAX_DEVS; d++) {
		if (!(locked & (1u << d)))
			continue;
		if (est[d]) {
			if (rc == CUDA_SUCCESS && !settle_locked(d))
				reserves[d].charged += est[d]; /* cannot tell: keep it */
			else
				gp__uncharge(d, est[d]);
		}
		pthread_mutex_unlock(&reserves[d].lock);
	}
	return rc;
}

/* The key of an executable graph's need on device d, in GP_S_GRAPHDEV. */
static uint64_t dev_key(CUgraphExec exec, int d)
{
	return ((uint64_t)(uintptr_t)exec << 4) | (uint64_t)d;
}

/* Remember what the executable graph's launches allocate. */
static void remember(CUgraphExec exec, const struct need *n)
{
	struct gp__rec rec = {.kind = GP_K_EXEC, .aux = n->mask};
	int failed = 0;

	if (!n->mask)
		return;
	for (int d = 0; d < (int)GP_REGION_MAX_DEVS; d++) {
		struct gp__rec r = {.kind = GP_K_EXEC_DEV, .dev = d, .bytes = n->bytes[d]};
		if (n->mask & (1u << d))
			failed |= gp__tab_put(&gp__tabs[GP_S_GRAPHDEV], dev_key(exec, d), &r) != 0;
	}
	failed |= gp__tab_put(&gp__tabs[GP_S_EXEC], (uint64_t)(uintptr_t)exec, &rec) != 0;
	if (failed)
		gp_warn("out of host memory: graph %p's allocations are charged only once "
			"made", (void *)exec);
}

/* What exec's launches allocate, as remembered; 0 if nothing. */
static int recall(CUgraphExec exec, struct need *n)
{
	struct gp__rec rec;

	memset(n, 0, sizeof *n);
	if (!exec || gp__tab_get(&gp__tabs[GP_S_EXEC], (uint64_t)(uintptr_t)exec, &rec))
		return 0;
	for (int d = 0; d < (int)GP_REGION_MAX_DEVS; d++) {
		struct gp__rec r;
		if ((rec.aux & (1u << d)) &&
		    gp__tab_get(&gp__tabs[GP_S_GRAPHDEV], dev_key(exec, d), &r) == 0) {
			n->bytes[d] = r.bytes;
			n->mask |= 1u << d;
		}
	}
	return n->mask != 0;
}

/* An instantiation: the driver call with its arguments. */
struct inst {
	CUresult (*fn)(struct inst *);
	CUgraphExec *exec;
	CUgraph g;
	unsigned long long flags;
	CUDA_GRAPH_INSTANTIATE_PARAMS *params;
	CUresult (*with_params)(CUgraphExec *, CUgraph, CUDA_GRAPH_INSTANTIATE_PARAMS *);
	CUgraphNode *err_node;
	char *log;
	size_t log_size;
	CUresult (*legacy)(CUgraphExec *, CUgraph, CUgraphNode *, char *, size_t);
};

static CUresult inst_call(void *arg)
{
	struct inst *i = arg;
	return i->fn(i);
}

/* Instantiate; an instantiation that uploads reserves like a launch. */
static CUresult instantiate(struct inst *i, int uploads)
{
	struct need n;
	CUresult rc;

	if (gp__enter() != CUDA_SUCCESS)
		return i->fn(i); /* the driver says why */
	graph_need(i->g, &n);
	rc = uploads && n.mask ? reserving(&n, inst_call, i) : i->fn(i);
	if (rc == CUDA_SUCCESS && i->exec && *i->exec)
		remember(*i->exec, &n);
	return rc;
}

static CUresult inst_flags(struct inst *i)
{
	return gp__real_cuGraphInstantiateWithFlags(i->exec, i->g, i->flags);
}

static CUresult inst_params(struct inst *i)
{
	return i->with_params(i->exec, i->g, i->params);
}

static CUresult inst_legacy(struct inst *i)
{
	return i->legacy(i->exec, i->g, i->err_node, i->log, i->log_size);
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph,
						       unsigned long long flags)
{
	struct inst i = {.fn = inst_flags, .exec = phGraphExec, .g = hGraph, .flags = flags};

	GP_NEED_REAL(cuGraphInstantiateWithFlags);
	return instantiate(&i, (flags & CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD) != 0);
}

static int params_upload(const CUDA_GRAPH_INSTANTIATE_PARAMS *params)
{
	return params && (params->flags & CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD);
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiateWithParams(CUgraphExec *phGraphExec, CUgraph hGraph,
							CUDA_GRAPH_INSTANTIATE_PARAMS *params)
{
	struct inst i = {.fn = inst_params, .exec = phGraphExec, .g = hGraph, .params = params};

	GP_NEED_REAL(cuGraphInstantiateWithParams);
	i.with_params = gp__real_cuGraphInstantiateWithParams;
	return instantiate(&i, params_upload(params));
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiateWithParams_ptsz(CUgraphExec *phGraphExec,
							     CUgraph hGraph,
							     CUDA_GRAPH_INSTANTIATE_PARAMS *params)
{
	struct inst i = {.fn = inst_params, .exec = phGraphExec, .g = hGraph, .params = params};

	GP_NEED_REAL(cuGraphInstantiateWithParams_ptsz);
	i.with_params = gp__real_cuGraphInstantiateWithParams_ptsz;
	return instantiate(&i, params_upload(params));
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph,
					      CUgraphNode *phErrorNode, char *logBuffer,
					      size_t bufferSize)
{
	struct inst i = {.fn = inst_legacy, .exec = phGraphExec, .g = hGraph,
			 .err_node = phErrorNode, .log = logBuffer, .log_size = bufferSize};

	GP_NEED_REAL(cuGraphInstantiate);
	i.legacy = gp__real_cuGraphInstantiate;
	return instantiate(&i, 0);
}

GP_EXPORT CUresult CUDAAPI cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph,
						 CUgraphNode *phErrorNode, char *logBuffer,
						 size_t bufferSize)
{
	struct inst i = {.fn = inst_legacy, .exec = phGraphExec, .g = hGraph,
			 .err_node = phErrorNode, .log = logBuffer, .log_size = bufferSize};

	GP_NEED_REAL(cuGraphInstantiate_v2);
	i.legacy = gp__real_cuGraphInstantiate_v2;
	return instantiate(&i, 0);
}

/* A launch or an upload: the driver call with its arguments. */
struct run {
	CUresult (*call)(CUgraphExec, CUstream);
	CUgraphExec exec;
	CUstream s;
};

static CUresult run_call(void *arg)
{
	struct run *r = arg;
	return r->call(r->exec, r->s);
}

/* Launch or upload: both make the driver reserve the graph's memory. */
static CUresult reserve_and(CUgraphExec exec, CUstream s, CUresult (*call)(CUgraphExec, CUstream))
{
	struct run r = {.call = call, .exec = exec, .s = s};
	struct need n;
	CUresult rc;

	if ((rc = gp__enter()))
		return rc;
	if (!recall(exec, &n))
		return call(exec, s); /* allocates nothing */
	return reserving(&n, run_call, &r);
}

/* A graph launch: its memory reserved, its device time paced and charged
 * as one launch of the whole graph (share.c; copy and memset nodes are
 * counted with its kernels), its activity stamped. */
static CUresult graph_launch(CUgraphExec exec, CUstream stream, int ptsz,
			     CUresult (*launch)(CUgraphExec, CUstream))
{
	struct gp__launch l;

	if (__atomic_load_n(&gp__share_any, __ATOMIC_RELAXED) &&
	    gp__share_begin(&l, gp__graph_key(exec), stream, ptsz))
		return gp__share_end(&l, reserve_and(exec, stream, launch));
	return gp__act(reserve_and(exec, stream, launch), GP_ACT_LAUNCH);
}

GP_EXPORT CUresult CUDAAPI cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream)
{
	GP_NEED_REAL(cuGraphLaunch);
	return graph_launch(hGraphExec, hStream, 0, gp__real_cuGraphLaunch);
}

GP_EXPORT CUresult CUDAAPI cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
	GP_NEED_REAL(cuGraphLaunch_ptsz);
	return graph_launch(hGraphExec, hStream, 1, gp__real_cuGraphLaunch_ptsz);
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
	ours = gp__free_begin(GP_S_EXEC, key, GP_KIND(GP_K_EXEC), &rec);
	rc = gp__real_cuGraphExecDestroy(hGraphExec);
	if (!ours || !gp__free_end(GP_S_EXEC, key, &rec, rc))
		return rc;
	for (int d = 0; d < (int)GP_REGION_MAX_DEVS; d++) {
		if (!(rec.aux & (1u << d)))
			continue;
		(void)gp__tab_take(&gp__tabs[GP_S_GRAPHDEV], dev_key(hGraphExec, d), NULL);
		settle(d); /* its allocations may leave the reserve */
	}
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
	if (phase != GP_FORK_CHILD)
		return;
	/* The parent's reserves, not ours. */
	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++)
		reserves[d] = (struct gp__reserve)R_INIT;
}
