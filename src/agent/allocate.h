/* allocate.h - which pod kubelet's Allocate is for, and what its container
 * gets.
 *
 * kubelet's Allocate names devices, not a pod.  gpupool's devices are
 * interchangeable slices (which card a container gets was decided by
 * `gpupool sched` and written into the pod's gpupool.io/allocation), so
 * the plugin finds the pod by elimination, the way HAMi does, but from the
 * API server's state only, so that a restarted agent decides the same:
 *
 *   among the pods bound to this node, not finished, whose allocation was
 *   decided for this node, the next container not yet handed out (init
 *   containers first, then app containers, in spec order) that asks for
 *   exactly as many of this resource as kubelet allocates now; of several
 *   such pods the one decided first (boundAt), then the older one, then by
 *   name.
 *
 * The containers handed out are recorded on the pod
 * (gpupool.io/allocation-consumed, a JSON list of container names) with a
 * resourceVersion-checked patch, so a container is never handed out twice,
 * across agent restarts too.  docs/kubernetes.md has the race analysis.
 */
#ifndef GP_AGENT_ALLOCATE_H
#define GP_AGENT_ALLOCATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/snap.h"

#define GP_ALLOC_CONSUMED "gpupool.io/allocation-consumed"
#define GP_ALLOC_MAX_GPUS 16

/* What one container gets. */
struct gp_alloc_grant {
	char ns[GP_AGENT_NAME_MAX];
	char pod[GP_AGENT_POD_MAX];
	char uid[GP_AGENT_NAME_MAX];
	char container[GP_AGENT_NAME_MAX];
	char priority[8];                 /* "high", "normal", "low" or "" */
	unsigned ngpu;
	char uuid[GP_ALLOC_MAX_GPUS][96];
	uint64_t mem_bytes[GP_ALLOC_MAX_GPUS];
	unsigned compute[GP_ALLOC_MAX_GPUS]; /* percent; 0 best effort */
};

/* Choose, in `pods` (a PodList), the container kubelet allocates `count`
 * of `resource` to on node `node`.  Returns 0 with *g filled and the pod's
 * index in items in *index, -ENOENT with why (no pod fits), or -EINVAL. */
int gp_alloc_choose(json_t *pods, const char *node, const char *resource, unsigned count,
		    struct gp_alloc_grant *g, size_t *index, char *why, size_t n)
	__attribute__((warn_unused_result));

#endif
