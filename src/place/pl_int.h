/* pl_int.h - what the placement library's files share and nobody else sees
 * (the benchmark and the unit tests excepted: they reach gp__placer_cache
 * and gp__placer_rng to compare decisions with and without the cache).
 *
 * The opaque types of placement.h are defined here, together with the
 * compact per-GPU state ("gstate") every policy and the fragmentation
 * measure work on.  A node keeps its gstate up to date on every change, so
 * the hot loops read a few cache lines per node and never touch strings.
 */
#ifndef GP_PLACE_PL_INT_H
#define GP_PLACE_PL_INT_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include "gpupool/placement.h"

#define GP__MIB (1024ull * 1024ull)

/* One GPU's capacity and what is left of it, in the units fit checks use.
 * `usable` is false for an unhealthy card: it offers nothing and counts for
 * nothing. */
struct gp__gstate {
	uint64_t free_m;   /* device memory left, bytes */
	uint64_t cap_m;    /* device memory, bytes */
	uint16_t free_c;   /* compute left, percent */
	uint16_t cap_c;    /* compute capacity, percent */
	uint16_t free_t;   /* tenant slots left */
	uint8_t idle;      /* no tenant at all (exclusive use possible) */
	uint8_t usable;    /* healthy */
	int16_t numa;
	uint16_t pad;
};

/* A node's state as the policies see it: a value, cheap to copy, so that a
 * policy can apply a candidate plan to a copy and measure the result. */
struct gp__nstate {
	uint64_t cpu_free;  /* UINT64_MAX when not tracked */
	uint64_t mem_free;
	unsigned ngpu;
	struct gp__gstate g[GP_MAX_GPUS];
};

struct gp__gpu {
	char uuid[GP_ID_MAX];
	char model[GP_ID_MAX];
	uint64_t model_hash;   /* gp__hash_ci(model) */
	uint64_t mem, mem_used;
	uint16_t compute, compute_used;
	uint16_t slices, tenants;
	int16_t numa;
	bool unhealthy, exclusive;
};

struct gp_node {
	char name[GP_NAME_MAX];
	uint64_t cpu, cpu_used, mem, mem_used; /* cpu/mem 0 = untracked */
	unsigned ngpu;
	struct gp__gpu gpu[GP_MAX_GPUS];
	uint16_t link[GP_MAX_GPUS][GP_MAX_GPUS];
	bool has_links;        /* some link score is non-zero */
	/* What a decision reads of every candidate, together: these fields
	 * and the head of `st` share the node's last cache lines, so that
	 * rejecting a node or finding its cost in the placer's cache touches
	 * one or two lines rather than one per field (the node is ~5 KiB, and
	 * 12,000 of them do not stay in any cache). */
	bool uniform;          /* every GPU has the same model */
	bool plain;            /* every GPU healthy, none held exclusively */
	unsigned cap_compute;  /* sum of usable GPUs' compute capacity */
	unsigned free_compute; /* sum of usable GPUs' free compute */
	unsigned max_free_c;   /* largest free compute on one usable GPU */
	unsigned idle_gpus;    /* usable GPUs with no tenant */
	uint64_t class_hash;   /* model, card count, host capacity: nodes
	                          alike for the contention measure */
	uint64_t uid;          /* unique for the process's lifetime */
	uint64_t version;      /* bumped on every change; caches key on it */
	uint32_t slot;         /* its entry in the summary table (gp__hot_at),
	                          GP__NO_SLOT when it has none */
	struct gp__nstate st;  /* summary, kept in step with the fields above */
};

/* --- the dense summary table ----------------------------------------------
 *
 * What a decision needs to know of every candidate before it looks at the
 * candidate itself: whether it changed (uid, version), the host and the
 * card-count and compute filters of the fast rejection, the contention
 * class.  One cache line per node, in a table owned by the library: a node
 * takes the lowest free slot when it is created and gives it back when it
 * is freed, so nodes created together sit together, and a decision over
 * 12,000 candidates reads 12,000 consecutive lines rather than 12,000
 * structs of 5 KiB, each on a page of its own (which is what made the cost
 * per node grow with the node count: the nodes left the TLB and caches).
 *
 * The node writes its entry on every change (gp__node_refresh, links); a
 * placer remembers each candidate's slot and trusts it while the entry's
 * `owner` is still that candidate, so a decision never touches a node whose
 * verdict it has cached.  `owner` is atomic because a placer may read the
 * entry of a slot that another thread has just given to another node; it
 * reads the other fields only once `owner` proved the entry its own. */
#define GP__NO_SLOT UINT32_MAX

enum {
	GP__HOT_PLAIN = 1,     /* n->plain */
	GP__HOT_UNIFORM = 2,   /* n->uniform */
};

struct gp__hot {
	_Atomic(const struct gp_node *) owner; /* NULL while the slot is free */
	uint64_t uid, version; /* copies of the node's */
	uint64_t cpu_free;     /* n->st.cpu_free */
	uint64_t mem_free;     /* n->st.mem_free */
	uint64_t class_hash;   /* n->class_hash */
	uint64_t model0;       /* model hash of card 0; 0 without cards */
	uint32_t free_compute; /* n->free_compute */
	uint16_t max_free_c;   /* n->max_free_c */
	uint8_t ngpu;          /* n->ngpu */
	uint8_t flags;         /* GP__HOT_* */
};

/* The table: chunks of GP__SLOT_CHUNK slots, allocated on first need and
 * never moved or freed (a placer may keep a slot number as long as it
 * likes), behind a fixed directory (node.c owns both). */
#define GP__SLOT_CHUNK_BITS 12
#define GP__SLOT_CHUNK (1u << GP__SLOT_CHUNK_BITS)
#define GP__SLOT_CHUNKS 4096u

struct gp__slot_chunk {
	struct gp__hot hot[GP__SLOT_CHUNK];
	/* The first eight bytes of each node's name, big-endian, zero-padded:
	 * two of them compare as strcmp compares the names, except that equal
	 * prefixes need strcmp to decide.  Apart from `hot`: only ties read
	 * them. */
	uint64_t name8[GP__SLOT_CHUNK];
	uint64_t used[GP__SLOT_CHUNK / 64]; /* bit set: slot taken */
};

extern _Atomic(struct gp__slot_chunk *) gp__slot_dir[GP__SLOT_CHUNKS];

static inline struct gp__slot_chunk *gp__slot_chunk_of(uint32_t slot)
{
	return atomic_load_explicit(&gp__slot_dir[slot >> GP__SLOT_CHUNK_BITS], memory_order_acquire);
}

/* The entry of a slot that some node holds or held (never GP__NO_SLOT):
 * inline, as a decision asks it once per candidate. */
static inline const struct gp__hot *gp__hot_at(uint32_t slot)
{
	return &gp__slot_chunk_of(slot)->hot[slot & (GP__SLOT_CHUNK - 1)];
}

static inline uint64_t gp__hot_name8(uint32_t slot)
{
	return gp__slot_chunk_of(slot)->name8[slot & (GP__SLOT_CHUNK - 1)];
}

/* Include/exclude lists of a container: offsets into the request's arena. */
enum { GP__L_TYPES, GP__L_NO_TYPES, GP__L_UUIDS, GP__L_NO_UUIDS, GP__L_COUNT };

struct gp__ctr {
	uint32_t name;         /* arena offset; 0 = unnamed */
	bool init, exclusive, numa_bind;
	uint8_t gpus;
	uint8_t mem_pct;
	uint8_t compute;
	uint64_t mem_bytes;
	uint8_t nlist[GP__L_COUNT];
	uint32_t list[GP__L_COUNT][GP_LIST_MAX]; /* arena offsets */
};

struct gp_request {
	uint64_t cpu, mem;
	unsigned nctr;
	struct gp__ctr ctr[GP_MAX_CONTAINERS];
	char *arena;           /* NUL-terminated strings; offset 0 is "" */
	size_t arena_len, arena_cap;
	/* derived when containers are added */
	bool simple;           /* one app container, no init, no UUID list, no
	                          NUMA binding: the placer's fast path */
	uint64_t shape;        /* hash of everything a decision depends on */
};

/* The cap on one request's strings: names and list entries together. */
#define GP__ARENA_MAX (64u * 1024u)

static inline const char *gp__str(const struct gp_request *r, uint32_t off)
{
	return r->arena + off;
}

/* --- helpers shared across files ---------------------------------------- */

/* FNV-1a of s, ASCII letters folded to lower case. */
uint64_t gp__hash_ci(const char *s);
uint64_t gp__hash_mix(uint64_t h, uint64_t v);

/* Format into why (may be NULL), like snprintf, cutting at a UTF-8
 * boundary. */
void gp__why(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Write "20000 MiB" (or "512 B" below a MiB) into buf. */
const char *gp__mib(uint64_t bytes, char *buf, size_t n);

/* Does container c accept card g by its type and UUID lists?  By its type
 * lists alone, for a card of this model? */
bool gp__ctr_accepts(const struct gp_request *r, const struct gp__ctr *c, const struct gp__gpu *g);
bool gp__types_accept(const struct gp_request *r, const struct gp__ctr *c, const char *model);

/* pct percent of cap bytes, rounded down, without overflow. */
static inline uint64_t gp__pct_of(uint64_t cap, unsigned pct)
{
	return cap / 100 * pct + cap % 100 * pct / 100;
}

/* Device memory container c needs on a card of `cap` bytes. */
static inline uint64_t gp__ctr_mem(const struct gp__ctr *c, uint64_t cap)
{
	if (c->exclusive)
		return cap;
	if (c->mem_pct)
		return gp__pct_of(cap, c->mem_pct);
	return c->mem_bytes;
}

/* One more tenant of container c on a card in state g (which takes it). */
static inline void gp__gstate_take(struct gp__gstate *g, const struct gp__ctr *c)
{
	if (c->exclusive) {
		g->free_c = 0;
		g->free_m = 0;
		g->free_t = 0;
	} else {
		g->free_c = (uint16_t)(g->free_c - c->compute);
		g->free_m -= gp__ctr_mem(c, g->cap_m);
		g->free_t = (uint16_t)(g->free_t - 1);
	}
	g->idle = 0;
}

/* Does one more tenant of container c fit on a card in state s? */
static inline bool gp__gfits(const struct gp__gstate *s, const struct gp__ctr *c)
{
	if (!s->usable || s->free_t == 0)
		return false;
	if (c->exclusive)
		return s->idle;
	return s->free_c >= c->compute && s->free_m >= gp__ctr_mem(c, s->cap_m);
}

/* The name gp_policy_parse reads for a node policy ("fgd", ...). */
const char *gp__node_policy_name(enum gp_node_policy p);

/* Recompute n->st and the summaries from the fields; bump the version. */
void gp__node_refresh(struct gp_node *n);

/* How the core placement chooses among a node's fitting GPUs. */
enum gp__gpick {
	GP__PICK_BINPACK = 0,  /* least free compute first */
	GP__PICK_SPREAD,       /* most free compute first */
	GP__PICK_FIXED,        /* single-GPU app container: use `fixed` */
};

struct gp__pick {
	enum gp__gpick how;
	bool topology;         /* multi-GPU: best link set */
	int fixed;             /* GP__PICK_FIXED: GPU index for the container */
};

/* The whole fit: host, every container alone, all of them together.
 * Returns GP_FIT with *plan filled (plan may be NULL), or the reason with a
 * sentence in why. */
enum gp_reject gp__place(const struct gp_node *n, const struct gp_request *r,
			 const struct gp__pick *pick, struct gp_plan *plan, char *why, size_t whylen);

/* Choose container c's cards among `fit` in state s by the pick rule (the
 * choice gp__place makes for a lone container).  False if too few. */
bool gp__choose_cards(const struct gp_node *n, const struct gp__nstate *s, const struct gp__ctr *c,
		      unsigned fit, const struct gp__pick *pick, uint8_t *out);

/* Turn a placer's cache on or off (on by default): the benchmark measures
 * decisions both ways. */
void gp__placer_cache(struct gp_placer *pl, bool on);

/* fgd as this library had it before it followed the paper's simulator:
 * the exact growth of fragmentation as cost, ties drawn at random.  Kept
 * for the benchmark's comparison ("fgd-exact"); off by default. */
void gp__placer_fgd_exact(struct gp_placer *pl, bool on);

/* The random state of a placer, set from *set when set is not NULL: the
 * benchmark replays a decision with the cache off from the same state. */
uint64_t gp__placer_rng(struct gp_placer *pl, const uint64_t *set);

/* Apply plan p's footprint to state s (no checks). */
void gp__nstate_apply(struct gp__nstate *s, const struct gp_plan *p, uint64_t cpu, uint64_t mem);

/* --- workload ------------------------------------------------------------ */

/* A task type: the shape of a pod as the fragmentation measure sees it. */
struct gp__wtype {
	double weight;
	uint64_t key;          /* hash of the shape */
	uint64_t cpu, mem;     /* host */
	uint8_t k;             /* GPUs (0 = host only) */
	uint8_t d;             /* compute per GPU, percent */
	uint8_t mem_pct;       /* device memory per GPU as a share, or ... */
	bool exclusive;
	uint64_t gmem;         /* ... in bytes */
	uint32_t types;        /* offsets into `strs`; 0 = none */
	uint32_t no_types;
};

struct gp_workload {
	unsigned n, cap;
	struct gp__wtype *t;
	double total;
	uint64_t version;      /* bumped on every change */
	char *strs;            /* type lists, NUL-terminated, offset 0 = "" */
	size_t strs_len, strs_cap;
};

/* Does a workload type's type list accept a card model? */
bool gp__wtype_accepts(const struct gp_workload *w, const struct gp__wtype *t, const char *model);

/* --- the compiled fragmentation measure (frag.c) -------------------------- */

struct gp__fmodel;

/* Compile w into a model the hot loop evaluates quickly.  Flags:
 * GP__F_HOSTMEM adds host-memory feasibility (ours) to the paper's
 * CPU-and-GPU test.  GP__F_BALANCE (ours) adds, weighted, the free GPU share
 * the node's free host CPU cannot serve at the workload's CPU per GPU
 * (capped at the node's own CPU per GPU, so an idle node adds nothing). */
enum { GP__F_HOSTMEM = 1, GP__F_BALANCE = 2 };
int gp__fmodel_new(struct gp__fmodel **out, const struct gp_workload *w, unsigned flags);
void gp__fmodel_free(struct gp__fmodel *m);

/* Fragmentation (GPUs, 1.0 = one card) of node n were it in state s (its
 * own state or a hypothetical one: n supplies the card models). */
double gp__fmodel_eval(struct gp__fmodel *m, const struct gp_node *n, const struct gp__nstate *s);

/* A class of nodes for the contention measure: nodes with the same card
 * model, card count and host capacity. */
struct gp__nclass {
	const struct gp__gpu *rep; /* a card of the class (its model) */
	unsigned ngpu;
	uint64_t cpu, mem;         /* host capacity; 0 = untracked */
	double freec;              /* free compute of all its nodes, percent */
	double k;                  /* out: contention per GPU placed there */
};

/* Contention of node classes (at most 64; more get none): set c[i].k to the
 * extra cost per GPU of placing on class i:
 *   sum over task types that class i can host at all (by capacity) of
 *       D_t * (C_all / C_t - 1)
 * where D_t is type t's share of the workload's GPU demand, C_t the free
 * compute of the classes that can host t and C_all that of all classes.
 * A type every class can host adds nothing (C_t = C_all). */
void gp__fmodel_contention(struct gp__fmodel *m, struct gp__nclass *c, unsigned nc);

#endif
