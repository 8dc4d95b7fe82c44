/* annot.h - the annotations `gpupool sched` reads and writes: wire formats.
 *
 * Three formats of our own, each JSON with a "version" (docs/protocol.md
 * is their reference), and HAMi's, read for migration:
 *
 *   node state  gpupool.io/node-state on a Node, written by the node agent:
 *               the node's GPUs (UUID, model, memory, compute, slices, NUMA,
 *               health, links).  HAMi's hami.io/node-nvidia-register (its
 *               legacy "a,b,c:..." text or its JSON list) and
 *               hami.io/node-nvidia-score (pair scores) are read when ours
 *               is absent.
 *   allocation  gpupool.io/allocation on a Pod, written by the extender at
 *               bind time for the device plugin: which GPUs each container
 *               got and how much, and the pod's footprint per GPU.  HAMi's
 *               hami.io/vgpu-devices-allocated is read too, so pods HAMi
 *               placed still count during a migration.
 *   bind lock   gpupool.io/bind-lock on a Node: who is binding a pod there
 *               and until when (serialises binds per node, across replicas).
 *   binding     gpupool.io/binding on a Node: the pods given GPUs there
 *               whose Binding may not be visible yet, with their footprint
 *               and an expiry, so that the next decision counts them.
 *
 * Readers follow one rule: a version they do not know is refused with a
 * reason, unknown keys within a known version are ignored (additions do
 * not bump the version), and every value is range-checked.  Every text is
 * capped at GP_ANNOT_MAX bytes before it is parsed.
 */
#ifndef GP_SCHED_ANNOT_H
#define GP_SCHED_ANNOT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpupool/placement.h"

#define GP_ANNOT_NODE_STATE "gpupool.io/node-state"
#define GP_ANNOT_ALLOC "gpupool.io/allocation"
#define GP_ANNOT_LOCK "gpupool.io/bind-lock"
#define GP_ANNOT_BINDING "gpupool.io/binding"
#define GP_ANNOT_HAMI_REGISTER "hami.io/node-nvidia-register"
#define GP_ANNOT_HAMI_SCORE "hami.io/node-nvidia-score"
#define GP_ANNOT_HAMI_ALLOCATED "hami.io/vgpu-devices-allocated"

#define GP_ANNOT_VERSION 1          /* of all four formats of ours */
#define GP_ANNOT_MAX (256u << 10)   /* bytes of one annotation value */
#define GP_ANNOT_CTR_NAME_MAX 64u   /* container name, NUL included */
#define GP_ANNOT_UID_MAX 64u        /* pod UID, NUL included */

/* --- node state ----------------------------------------------------------- */

enum gp_annot_source { GP_SRC_GPUPOOL = 1, GP_SRC_HAMI = 2 };

struct gp_annot_gpu {
	char uuid[GP_ID_MAX];
	char model[GP_ID_MAX];    /* as reported, e.g. "NVIDIA A100-SXM4-80GB" */
	uint64_t mem_bytes;       /* > 0 */
	unsigned compute;         /* 100 = one whole card; 1..10000 */
	unsigned slices;          /* tenants at once, 1..GP_MAX_SLICES */
	int numa;                 /* -1 unknown */
	bool healthy;
};

struct gp_annot_node {
	enum gp_annot_source source;
	unsigned ngpu;
	struct gp_annot_gpu gpu[GP_MAX_GPUS];
	uint16_t link[GP_MAX_GPUS][GP_MAX_GPUS]; /* symmetric; 0 = unknown */
	int64_t updated_ms;       /* when the agent wrote it (Unix ms); 0 unknown */
};

/* Read a node's GPUs from its metadata.annotations object (may be NULL):
 * ours if present, else HAMi's.  Returns 0, -ENOENT when neither is there,
 * -EINVAL (malformed, with why) or -EPROTONOSUPPORT (a newer version). */
int gp_annot_node_read(json_t *annotations, struct gp_annot_node *out, char *why, size_t n)
	__attribute__((warn_unused_result));

/* Parse our node-state text / HAMi's register text.  Same returns. */
int gp_annot_node_parse(const char *text, struct gp_annot_node *out, char *why, size_t n)
	__attribute__((warn_unused_result));
int gp_annot_hami_register_parse(const char *text, struct gp_annot_node *out, char *why,
				 size_t n) __attribute__((warn_unused_result));

/* Apply HAMi's pair scores ([{"uuid":..,"score":{uuid:n}}]) to out's
 * links.  Returns 0 or -EINVAL. */
int gp_annot_hami_scores_parse(const char *text, struct gp_annot_node *out, char *why, size_t n)
	__attribute__((warn_unused_result));

/* Write a node state in our format (what the node agent will do; tests
 * use it).  Returns a new string or NULL. */
char *gp_annot_node_format(const struct gp_annot_node *s);

/* --- allocation ----------------------------------------------------------- */

/* One GPU given to one container (per-container view, for the device
 * plugin). */
struct gp_annot_grant {
	char uuid[GP_ID_MAX];
	uint64_t mem_bytes;
	unsigned compute;         /* percent */
	bool exclusive;
};

enum gp_annot_priority { GP_PRIO_UNSET = 0, GP_PRIO_HIGH, GP_PRIO_NORMAL, GP_PRIO_LOW };

struct gp_annot_ctr {
	char name[GP_ANNOT_CTR_NAME_MAX];
	bool init;
	enum gp_annot_priority priority;
	unsigned ngrant;
	struct gp_annot_grant grant[GP_MAX_GPUS];
};

/* The pod's footprint on one GPU (what it takes away from the node). */
struct gp_annot_hold {
	char uuid[GP_ID_MAX];
	uint64_t mem_bytes;
	unsigned compute;
	unsigned tenants;
	bool exclusive;
};

struct gp_annot_alloc {
	enum gp_annot_source source;
	char node[GP_NAME_MAX];   /* where it was decided for; "" from HAMi */
	char uid[GP_ANNOT_UID_MAX];
	char policy[64];          /* informational */
	int64_t bound_ms;         /* when decided (Unix ms); 0 unknown */
	unsigned nctr;
	struct gp_annot_ctr ctr[GP_MAX_CONTAINERS];
	unsigned nhold;
	struct gp_annot_hold hold[GP_MAX_GPUS];
};

/* Write / read our allocation format.  Format returns a new string or
 * NULL; parse returns 0, -EINVAL or -EPROTONOSUPPORT with why. */
char *gp_annot_alloc_format(const struct gp_annot_alloc *a);
int gp_annot_alloc_parse(const char *text, struct gp_annot_alloc *a, char *why, size_t n)
	__attribute__((warn_unused_result));

/* HAMi's allocation text: containers separated by ';', each a ':' list of
 * "UUID,Type,MiB,cores".  Fills containers and footprint.  0 or -EINVAL. */
int gp_annot_hami_alloc_parse(const char *text, struct gp_annot_alloc *a, char *why, size_t n)
	__attribute__((warn_unused_result));

/* A pod's allocation from its metadata.annotations: ours, else HAMi's.
 * Returns 0, -ENOENT when it has neither, or a parse error. */
int gp_annot_alloc_read(json_t *annotations, struct gp_annot_alloc *a, char *why, size_t n)
	__attribute__((warn_unused_result));

/* --- pods being bound ----------------------------------------------------- */

#define GP_ANNOT_BINDING_MAX 64u    /* pods in flight on one node */

struct gp_annot_inflight {
	char uid[GP_ANNOT_UID_MAX];
	char pod[GP_NAME_MAX + 64];    /* "ns/name", for people */
	int64_t expires_ms;            /* Unix ms; forgotten after it */
	unsigned nhold;
	struct gp_annot_hold hold[GP_MAX_GPUS];
};

struct gp_annot_binding {
	unsigned n;
	struct gp_annot_inflight pod[GP_ANNOT_BINDING_MAX];
};

/* {"version":1,"pods":[{"uid","pod","expires","footprint"}]}.  Format
 * returns a new string or NULL; parse 0, -EINVAL or -EPROTONOSUPPORT. */
char *gp_annot_binding_format(const struct gp_annot_binding *b);
int gp_annot_binding_parse(const char *text, struct gp_annot_binding *b, char *why, size_t n)
	__attribute__((warn_unused_result));

/* --- bind lock ------------------------------------------------------------ */

struct gp_annot_lock {
	char holder[128];          /* "<replica id>/<sequence>" */
	char pod[300];             /* "namespace/name", informational */
	int64_t expires_ms;        /* Unix ms; the lock is void after it */
};

char *gp_annot_lock_format(const struct gp_annot_lock *l);
int gp_annot_lock_parse(const char *text, struct gp_annot_lock *l, char *why, size_t n)
	__attribute__((warn_unused_result));

/* --- shared helpers ------------------------------------------------------- */

/* Unix ms from "2024-11-21T01:02:03.456Z" (written by gp_time_format,
 * common/clock.h).  Accepts an optional fraction and "Z" or a "+hh:mm"
 * offset; 0 or -EINVAL. */
int gp_annot_time_parse(const char *s, int64_t *ms) __attribute__((warn_unused_result));

/* A string member of an annotations object, or NULL when absent, not a
 * string, or longer than GP_ANNOT_MAX (then *too_long is set if given). */
const char *gp_annot_get(json_t *annotations, const char *key, bool *too_long);

#endif
