/* graph.h - CUDA graphs: graphs of nodes, their instantiation into
 * executable graphs, and launching those on a stream.
 *
 * Supported nodes: kernel, memcpy, memset, host, empty, event record,
 * event wait, memory allocation and memory free.  An executable graph is
 * a copy of the graph's nodes in a topological order; launching it runs
 * them in that order on the stream (kernels serialise on the device
 * anyway, so the order is also the timing).
 */
#ifndef GP_SIM_GRAPH_H
#define GP_SIM_GRAPH_H

#include "sim/graphmem.h"
#include "sim/kernel.h"
#include "sim/stream.h"

/* What a node does; copied as is into executable graphs. */
union gp_sim_node_params {
	struct gp_sim_launch kernel;
	struct {
		CUDA_MEMCPY3D p;
	} copy;
	CUDA_MEMSET_NODE_PARAMS memset;
	CUDA_HOST_NODE_PARAMS host;
	struct gp_sim_event *event;          /* record / wait */
	struct {
		struct gp_sim_gblock *block;     /* one reference per holder */
		CUDA_MEM_ALLOC_NODE_PARAMS p;
	} alloc;
	uint64_t free_ptr;
};

struct gp_sim_graph;

struct gp_sim_node {
	struct gp_sim_obj h;
	struct gp_sim_graph *graph;
	CUgraphNodeType type;
	struct gp_sim_node **deps;           /* nodes it depends on */
	size_t ndeps, capdeps;
	union gp_sim_node_params u;
};

struct gp_sim_graph {
	struct gp_sim_obj h;
	struct gp_sim_node **nodes;          /* in creation order */
	size_t n, cap;
};

/* An executable graph: its nodes in a topological order. */
struct gp_sim_exec_node {
	CUgraphNodeType type;
	union gp_sim_node_params u;
};

struct gp_sim_exec {
	struct gp_sim_obj h;
	unsigned long long flags;            /* CUDA_GRAPH_INSTANTIATE_FLAG_* */
	struct gp_sim_exec_node *nodes;
	size_t n;
};

/* A new empty graph.  Lock held. */
CUresult gp__sim_graph_new_locked(struct gp_sim_graph **out) GP_SIM_WUR;

/* Destroy graph g and its nodes.  Lock held. */
void gp__sim_graph_free_locked(struct gp_sim_graph *g);

/* A node of `type` in g after `deps` (parameters left for the caller).
 * Lock held. */
CUresult gp__sim_node_new_locked(struct gp_sim_graph *g, CUgraphNodeType type,
				 struct gp_sim_node *const *deps, size_t ndeps,
				 struct gp_sim_node **out) GP_SIM_WUR;

#endif
