/* pod.h - what a pod asks for: its GPU resources and GPU annotations read
 * into a placement request.
 *
 * Resource names (per container, limits first, then requests, as HAMi):
 *   gpupool.io/vgpu                  vGPUs (distinct cards)
 *   gpupool.io/vgpu-<model>          vGPUs on cards of that model (below)
 *   gpupool.io/vgpu-memory           device memory per vGPU, MiB
 *   gpupool.io/vgpu-memory-percent   ... or a share of each card, 1-100
 *   gpupool.io/vgpu-cores            compute per vGPU, percent; 100 = the
 *                                    whole card, exclusively (HAMi's rule)
 *   gpupool.io/priority              0 high, 1 normal, 2 low
 *   nvidia.com/gpu, nvidia.com/gpumem, nvidia.com/gpumem-percentage,
 *   nvidia.com/gpucores, nvidia.com/priority (0 high, 1 HAMi's default,
 *   our normal): HAMi's, with the same meaning, for migration.
 * Memory or cores without a count mean one vGPU; a count without memory
 * means the whole memory of each card (both HAMi's defaults).  Any other
 * gpupool.io/ name is an error (a typo must not be dropped silently);
 * other domains' names are not ours and are ignored.
 *
 * Pod annotations (HAMi's nvidia.com/ names are read the same way):
 *   gpupool.io/use-gputype, gpupool.io/nouse-gputype   card types, comma
 *       list, an entry matching a card whose model contains its words as
 *       whole words (ignoring case and punctuation: "a100" matches
 *       "NVIDIA A100-SXM4-80GB", "a10" does not); placement.h applies it
 *   gpupool.io/use-gpuuuid, gpupool.io/nouse-gpuuuid   card UUIDs, exact
 *   gpupool.io/numa-bind   "true": each container's GPUs on one NUMA node
 *
 * Card models: gpupool.io/vgpu-<model> matches a card when <model>'s words
 * (separated by '-') are a run of whole words of the card's model, case
 * and punctuation ignored: vgpu-a100 and vgpu-a100-sxm4 match "NVIDIA
 * A100-SXM4-80GB", vgpu-a10 does not (no whole word "a10").
 */
#ifndef GP_SCHED_POD_H
#define GP_SCHED_POD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sched/annot.h"
#include "gpupool/placement.h"

/* A pod's GPU containers beside the placement request: what the decision
 * annotation needs that placement does not keep. */
struct gp_req_ctr {
	char name[GP_ANNOT_CTR_NAME_MAX];
	bool init;
	enum gp_annot_priority priority;
};

struct gp_pod_req {
	struct gp_request *req;       /* owned; refilled by gp_req_from_pod */
	unsigned nctr;                /* GPU containers, in request order */
	struct gp_req_ctr ctr[GP_MAX_CONTAINERS];
	char ns[64];                  /* metadata.namespace */
	char name[GP_NAME_MAX];       /* metadata.name */
	char uid[GP_ANNOT_UID_MAX];   /* metadata.uid ("" if absent) */
};

int gp_req_init(struct gp_pod_req *p) __attribute__((warn_unused_result));
void gp_req_fini(struct gp_pod_req *p);

/* Read a Pod object into p (p->req is reset first).  Returns 0 (nctr may
 * be 0: the pod asks for no GPU), or -EINVAL with the reason in why
 * ("container main: gpupool.io/vgpu-memroy is not a gpupool resource"). */
int gp_req_from_pod(struct gp_pod_req *p, json_t *pod, char *why, size_t n)
	__attribute__((warn_unused_result));

/* A Kubernetes quantity ("2", "10Gi", "1k", "5e3") that must be a whole
 * number in 0..2^53.  Returns 0 or -EINVAL. */
int gp_req_quantity(const char *s, uint64_t *out) __attribute__((warn_unused_result));

#endif
