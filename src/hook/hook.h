/* hook.h - what the files of libgpupool.so share.
 *
 * The hook interposes the CUDA driver and NVML entry points listed in
 * hooks.def.  Each interposed function does its accounting and then calls
 * the real function through gp__real_<name>, resolved from the real library
 * (entry.c).  Process-wide state lives in gp__g (init.c).  Accounting
 * helpers (budget.c) charge device memory to the tenant's shared region.
 *
 * Rules every file follows: never abort or exit; return CUDA / NVML error
 * codes; never hold a lock across a call into the driver; log through
 * common/log.h only.
 */
#ifndef GP_HOOK_HOOK_H
#define GP_HOOK_HOOK_H

#define __CUDA_API_VERSION_INTERNAL /* declare every versioned entry point */
#include <cuda.h>
#include <pthread.h>
#include <stdint.h>

#include "common/log.h"
#include "common/nvml.h"
#include "hook/config.h"
#include "region/node.h"
#include "region/region.h"

#define GP_EXPORT __attribute__((visibility("default")))
#define GP_LIKELY(x) __builtin_expect(!!(x), 1)
#define GP_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Real entry points: gp__real_cuMemAlloc_v2 has cuMemAlloc_v2's type. */
#define HOOK_CU(n) extern __typeof__(n) *gp__real_##n;
#define HOOK_MEM(n) HOOK_CU(n)
#define HOOK_NVML(n) HOOK_CU(n)
#define CALL_CU(n) HOOK_CU(n)
#define CALL_NVML(n) HOOK_CU(n)
#include "hook/hooks.def"
#include "hook/calls.def"
#undef HOOK_CU
#undef HOOK_MEM
#undef HOOK_NVML
#undef CALL_CU
#undef CALL_NVML

/* Device memory is charged in these units, as the simulator and real GPUs
 * back it (2 MiB pages): a 1-byte cuMemAlloc takes one granule. */
#define GP_GRANULE (2ULL << 20)

static inline uint64_t gp__granules(uint64_t bytes)
{
	return bytes > UINT64_MAX - (GP_GRANULE - 1)
		       ? UINT64_MAX & ~(GP_GRANULE - 1)
		       : (bytes + GP_GRANULE - 1) & ~(GP_GRANULE - 1);
}

/* --- entry.c: the dispatch table ------------------------------------------ */

enum gp__lib { GP_LIB_CUDA = 0, GP_LIB_NVML = 1 };

/* Resolve the real functions of `lib` once.  Returns 0 when the library
 * could be loaded, -1 otherwise (its gp__real_* stay NULL). */
int gp__resolve(enum gp__lib lib);

/* Make sure the real function behind a hook can be called; used at the top
 * of every hook.  The fast path is one load.  Fails with
 * CUDA_ERROR_NOT_INITIALIZED when the real library cannot be loaded and
 * CUDA_ERROR_NOT_SUPPORTED when it lacks the function. */
CUresult gp__need_slow(void **slot, enum gp__lib lib);
static inline CUresult gp__need(void **slot, enum gp__lib lib)
{
	return GP_LIKELY(__atomic_load_n(slot, __ATOMIC_ACQUIRE) != NULL)
		       ? CUDA_SUCCESS
		       : gp__need_slow(slot, lib);
}
#define GP_NEED_REAL(n)                                                      \
	do {                                                                     \
		CUresult need_rc_ = gp__need((void **)&gp__real_##n, GP_LIB_CUDA);  \
		if (GP_UNLIKELY(need_rc_ != CUDA_SUCCESS))                           \
			return need_rc_;                                                 \
	} while (0)

/* The hook for `name` if `name` is interposed and the real library has it;
 * NULL otherwise.  Used by the dlsym interposer. */
void *gp__hook_by_name(const char *name);

/* cuGetProcAddress support: given the pointer the real driver returned for
 * `symbol`, return our hook when it is a hooked entry point, `real` when
 * the symbol is nothing we account, or NULL when it is an unknown variant
 * of an accounted function (the caller then refuses the lookup). */
void *gp__hook_by_real(const char *symbol, void *real);

/* --- init.c: process state ----------------------------------------------- */

/* One CUDA device as this process sees it (a visible ordinal). */
struct gp__dev {
	int slot;              /* index in the region's dev[] */
	uint64_t limit;        /* budget in bytes, at most physical; 0 = none */
	uint64_t physical;     /* the card's memory */
	char uuid[GP_REGION_UUID_LEN];
	uint64_t ctx_cost;     /* bytes one context takes once measured; 0
	                          = not yet (atomic) */
	pthread_mutex_t ctx_lock; /* held across the primary context's
	                             retain/release/reset and the first
	                             measurement; guards the next four */
	int primary_refs;      /* the driver's count of primary retains */
	int primary_active;    /* the primary context exists (is charged) */
	uint64_t primary_charge; /* what it is charged while active */
	CUcontext primary;     /* its handle once retained (stable) */
};

struct gp__state {
	int ready;                  /* boot done and devices known */
	int boot_rc;                /* 0, or why the hook refuses (fail closed) */
	struct gp__config cfg;
	struct gp_region region;
	int ndev;                   /* visible devices set up; -1 = not yet */
	struct gp__dev dev[GP_REGION_MAX_DEVS];
	struct gp_node node;        /* the node file (GPUPOOL_NODE); hdr NULL
	                               without one */
	pthread_mutex_t lock;       /* guards the mutable part of dev[] and
	                               the region attach; never held across
	                               a driver call */
};

extern struct gp__state gp__g;

/* Read the configuration and map the region, once per process.  Returns
 * 0, or a negative errno when the hook must refuse to run CUDA (the
 * reason was logged). */
int gp__boot(void);

/* Everything an accounting hook needs before it can charge: the hook
 * booted and the visible devices known.  CUDA_SUCCESS or the error to
 * return (CUDA_ERROR_NOT_INITIALIZED when the hook refuses). */
CUresult gp__enter_slow(void);
static inline CUresult gp__enter(void)
{
	return GP_LIKELY(__atomic_load_n(&gp__g.ready, __ATOMIC_ACQUIRE)) ? CUDA_SUCCESS
									: gp__enter_slow();
}

/* The current context and its device's ordinal.  CUDA_SUCCESS or the
 * driver's error (no context: CUDA_ERROR_INVALID_CONTEXT). */
CUresult gp__current(int *dev, CUcontext *ctx);

/* The device record of ordinal `dev`, or NULL if it is not accounted. */
static inline struct gp__dev *gp__dev_get(int dev)
{
	return dev >= 0 && dev < gp__g.ndev ? &gp__g.dev[dev] : NULL;
}

/* --- activity.c: when the tenant last used each GPU ---------------------- */

/* What a call did on the GPU: which stamp of the device's region entry it
 * moves (the order of the stamps in struct gp_region_dev). */
enum gp__act { GP_ACT_LAUNCH = 0, GP_ACT_COPY = 1 };

/* A stamp is rewritten once it is this old. */
#define GP_ACT_STALE_NS 10000000ULL

/* After a launch or copy the driver answered `rc` for: if it succeeded,
 * stamp `what` on the device of the calling thread's current context.
 * Returns `rc`, always (hooks tail-call it with the driver's answer).  No
 * lock, no failure: skipped when the hook is not ready or there is no
 * current context. */
CUresult gp__act(CUresult rc, enum gp__act what);

/* Define hook `n`, with parameter list `params` and argument list `args`,
 * for a call whose only accounting is the stamp `what` (launches, copies):
 * the driver's function, then gp__act with its answer.  The first call
 * that finds the real function unresolved goes through a cold copy that
 * resolves it, so that the fast path keeps no argument alive across any
 * call of ours: it is a load, a test, the driver call and a jump. */
#define GP_ACT_HOOK(n, params, args, what)                                   \
	static __attribute__((noinline, cold)) CUresult n##__resolve params      \
	{                                                                        \
		CUresult rc_ = gp__need_slow((void **)&gp__real_##n, GP_LIB_CUDA);  \
		return rc_ != CUDA_SUCCESS ? rc_ : gp__act(gp__real_##n args, what); \
	}                                                                        \
	GP_EXPORT CUresult CUDAAPI n params                                      \
	{                                                                        \
		__typeof__(n) *real_ = __atomic_load_n(&gp__real_##n, __ATOMIC_ACQUIRE); \
		if (GP_UNLIKELY(!real_))                                             \
			return n##__resolve args;                                        \
		return gp__act(real_ args, what);                                    \
	}

/* Where the calling thread's current context is: its ordinal and region
 * entry (cached per thread, as the stamps use them). */
struct gp__where {
	CUcontext ctx;             /* the context */
	int ord;                   /* its device's ordinal; -1: not accounted */
	struct gp_region_dev *dev; /* that device's region entry; NULL: none */
};

/* The calling thread's current context and its device, or NULL when there
 * is no current context or its device cannot be found.  Needs a ready
 * hook. */
const struct gp__where *gp__where(void);


/* Stamp `what` on ordinal `dev` (for calls that name their devices). */
void gp__act_dev(int dev, enum gp__act what);

/* A context was destroyed, released or reset, or the process forked: its
 * handle may come back for another device, so every thread forgets the
 * context it cached. */
void gp__act_forget(void);

/* Phases of fork for modules with process-local state. */
enum gp__fork_phase { GP_FORK_PREPARE, GP_FORK_PARENT, GP_FORK_CHILD };

/* --- share.c, meter.c, capture.c: compute shares and priority ----------- */

/* Set once some device of the process has its launches metered (a compute
 * limit, or a priority other than normal): the launch hooks test it
 * before anything else, so that without limits a launch costs one load
 * more. */
extern int gp__share_any;

/* One launch going through the share (share.c). */
struct gp__launch {
	int ord;           /* device ordinal */
	int sampling;      /* its duration is being measured (meter.c) */
	uint32_t rate;     /* the rate it was paced at, parts per million */
	struct gp_region_dev *e; /* its device's region entry */
	uint64_t cost;     /* device time charged for it, ns */
	uint64_t now;      /* CLOCK_MONOTONIC when it went */
	uint64_t key;      /* what it launches (gp__launch_key); sampled only */
	CUstream stream;   /* where it runs (for the measuring events); sampled only */
};

/* Keys of what a launch runs, for the cost estimates: a kernel with its
 * grid and block sizes, or an executable graph. */
static inline uint64_t gp__launch_key(const void *fn, uint64_t grid, uint64_t block)
{
	return ((uint64_t)(uintptr_t)fn ^ (grid * 0x9e3779b97f4a7c15ULL) ^ (block << 48)) &
	       ~(1ULL << 63);
}
static inline uint64_t gp__graph_key(const void *exec)
{
	return (uint64_t)(uintptr_t)exec | (1ULL << 63);
}

/* Before a launch on `stream` (NULL and `ptsz`: the per-thread default
 * stream) of what `key` names: waits as the share and priority of the
 * current device require, and starts measuring it if it is sampled.
 * Returns 1 when the launch is metered (then gp__share_end must follow
 * with the driver's answer), 0 when it is not (the caller stamps it with
 * gp__act as usual). */
int gp__share_begin(struct gp__launch *l, uint64_t key, CUstream stream, int ptsz);

/* After a metered launch the driver answered `rc` for: account it (or give
 * its charge back if the driver refused it), stamp it, finish a sample.
 * Returns `rc`.  The usual case is inline in the launch hooks. */
static inline CUresult gp__share_end_ok(const struct gp__launch *l, CUresult rc)
{
	__atomic_add_fetch(&l->e->compute_ns, l->cost, __ATOMIC_RELAXED);
	/* The activity stamp (activity.c's rule, with this launch's clock; a
	 * metered process publishes its demand itself). */
	if (l->now - __atomic_load_n(&l->e->last_launch_ns, __ATOMIC_RELAXED) >= GP_ACT_STALE_NS)
		__atomic_store_n(&l->e->last_launch_ns, l->now, __ATOMIC_RELAXED);
	return rc;
}
CUresult gp__share_end_slow(struct gp__launch *l, CUresult rc);
static inline CUresult gp__share_end(struct gp__launch *l, CUresult rc)
{
	if (GP_UNLIKELY(l->sampling || rc != CUDA_SUCCESS))
		return gp__share_end_slow(l, rc);
	return gp__share_end_ok(l, rc);
}

/* Pace one launch of `key` on ordinal `ord` without measuring it (the
 * multi-device cooperative launch names its devices). */
void gp__share_pace(int ord, uint64_t key);

/* The device `ord` has been registered in the region (init.c, under
 * gp__g.lock, before the hook is ready): set up its share. */
void gp__share_setup(int ord);

/* An unmetered launch refreshed its activity stamp at `now`: publish that
 * the process wants the GPU in the node file. */
void gp__share_touch(int ord, uint64_t now);

void gp__share_atfork(enum gp__fork_phase phase);

/* Stream captures in progress in the process (capture.c): while there
 * are any, a launch is checked for being captured (it then runs nothing
 * and is not charged), and no events are recorded. */
extern uint32_t gp__captures;

/* meter.c: what launches take. */
struct gp__measured {
	uint64_t charged;  /* what the sampled launch was charged */
	uint64_t took;     /* what it took, measured */
	uint32_t rate;     /* the rate it was paced at */
};

/* The estimate of one key (gp__launch_key): a direct-mapped table of
 * 2^GP_EST_BITS.  Two words written without a lock: a reader racing a
 * writer of another key may take that key's estimate once, which only
 * makes one charge wrong by the difference. */
#define GP_EST_BITS 10
/* Samples a key takes before its estimate is averaged: until then each
 * launch of it is sampled when the sampler is free, and each sample
 * replaces the estimate. */
#define GP_EST_YOUNG 3
struct gp__est {
	uint64_t key;
	uint64_t ns;  /* 0: never measured */
	uint32_t n;   /* samples so far, up to GP_EST_YOUNG */
	uint32_t pad;
};
extern struct gp__est gp__est[1u << GP_EST_BITS];

/* When each device's next sample of an already measured key is due
 * (CLOCK_MONOTONIC; meter.c sets it as samples are taken), and: */
extern uint64_t gp__meter_next[GP_REGION_MAX_DEVS];
/* Launches on each device before the next sample may be taken (counted
 * down without atomicity: a lost decrement delays a sample by one). */
extern uint32_t gp__meter_skip[GP_REGION_MAX_DEVS];

static inline struct gp__est *gp__est_of(uint64_t key)
{
	return &gp__est[(key * 0x9e3779b97f4a7c15ULL) >> (64 - GP_EST_BITS)];
}

/* The device time a launch of `key` is expected to take, or 0 if it was
 * never measured; *young when it has had fewer than GP_EST_YOUNG samples. */
static inline uint64_t gp__meter_known(uint64_t key, int *young)
{
	const struct gp__est *e = gp__est_of(key);

	if (__atomic_load_n(&e->key, __ATOMIC_RELAXED) != key)
		return 0;
	*young = __atomic_load_n(&e->n, __ATOMIC_RELAXED) < GP_EST_YOUNG;
	return __atomic_load_n(&e->ns, __ATOMIC_RELAXED);
}

/* The charge of a launch never measured on `ord`: the device's recent
 * mean (0 before any sample). */
uint64_t gp__meter_guess(int ord);

/* Is a sample being taken on `ord`? */
int gp__meter_busy(int ord);

/* Start measuring a launch about to go on `stream` in context `ctx` (NULL:
 * the current one).  Returns 1 when the start was recorded (gp__meter_stop
 * must follow). */
int gp__meter_start(int ord, CUcontext ctx, CUstream stream);

/* The sampled launch, whose start was recorded at `now`, was made
 * (`launched`) or refused: record its end. */
void gp__meter_stop(int ord, CUstream stream, uint64_t key, uint64_t charged, uint32_t rate,
		    uint64_t now, int launched);

/* When the sample under way on each device should be looked at again
 * (CLOCK_MONOTONIC); UINT64_MAX: none is under way. */
extern uint64_t gp__meter_due[GP_REGION_MAX_DEVS];

/* A measurement that finished, if one is due (now >= gp__meter_due[ord]):
 * 1 and *m filled, else 0. */
int gp__meter_poll(int ord, uint64_t now, struct gp__measured *m);

void gp__meter_atfork(enum gp__fork_phase phase);

void gp__pools_atfork(enum gp__fork_phase phase);
void gp__graphs_atfork(enum gp__fork_phase phase);

/* --- budget.c: charging -------------------------------------------------- */

/* Charge `bytes` on ordinal `dev` to the tenant; CUDA_ERROR_OUT_OF_MEMORY
 * when the budget does not have room.  `force` charges even past the budget
 * (for memory the driver already took: pool and graph reserves). */
CUresult gp__charge(int dev, uint64_t bytes, int force);
void gp__uncharge(int dev, uint64_t bytes);

/* The driver has said what an allocation we pre-charged `est` for really
 * takes: move the charge to `real`.  CUDA_ERROR_OUT_OF_MEMORY (with the
 * whole charge given back) when the extra does not fit: the caller then
 * frees the object. */
CUresult gp__recharge(int dev, uint64_t est, uint64_t real);

/* Kinds of tracked objects. */
enum gp__kind {
	GP_K_ALLOC = 1, /* cuMemAlloc, pitch, managed: freed with its context */
	GP_K_ARRAY,     /* cuArray*Create, cuMipmappedArrayCreate: likewise */
	GP_K_VMM,       /* cuMemCreate handle; refs = handle + its mappings */
	GP_K_MAP,       /* a cuMemMap'ed range; aux = its handle */
	GP_K_CTX,       /* a context we charged for */
	GP_K_EXEC,      /* an executable graph that allocates graph memory;
	                   aux = bit mask of the ordinals it allocates on */
	GP_K_EXEC_DEV,  /* what one launch of such a graph allocates on one
	                   device (in GP_S_GRAPHDEV; graph.c) */
	GP_K_ASYNC,     /* a stream-ordered allocation; aux = its pool
	                   (pool.c), which it keeps alive */
};

/* What the hook remembers of one object it charged for. */
struct gp__rec {
	uint64_t bytes; /* charged (EXEC: graph memory its launches need) */
	uint64_t aux;   /* owning context (ALLOC, ARRAY), handle (MAP) */
	int32_t dev;    /* ordinal charged */
	int32_t refs;   /* VMM reference count */
	uint32_t kind;  /* enum gp__kind */
	uint32_t pad;
};

/* The maps from keys to records, one per key space so that a pointer never
 * meets a handle with the same value. */
enum gp__space {
	GP_S_PTR = 0, /* device pointers: allocations and VMM mappings */
	GP_S_HANDLE,  /* CUmemGenericAllocationHandle */
	GP_S_ARRAY,   /* CUarray, CUmipmappedArray */
	GP_S_CTX,     /* CUcontext */
	GP_S_EXEC,    /* CUgraphExec */
	GP_S_GRAPHDEV, /* (CUgraphExec, ordinal): a graph's need per device */
	GP_S_COUNT
};
#include "hook/table.h"
extern struct gp__tab gp__tabs[GP_S_COUNT];

/* Forget every ALLOC and ARRAY record owned by context `ctx` and uncharge
 * them: the driver freed that memory with the context. */
void gp__drop_owned(uint64_t ctx);

/* Freeing a tracked object takes two steps around the driver call.
 * gp__free_begin takes the record of `key` out if its kind is one of
 * `kinds` (a mask of GP_KIND bits), so that two threads freeing one object
 * cannot both give its charge back, and returns whether it did.
 * gp__free_end returns 1 when the driver freed it (the caller then gives
 * the charge back) and otherwise puts the record back. */
int gp__free_end(enum gp__space sp, uint64_t key, const struct gp__rec *rec, CUresult rc);
#define GP_KIND(k) (1u << (k))
static inline int gp__free_begin(enum gp__space sp, uint64_t key, unsigned kinds,
				 struct gp__rec *rec)
{
	if (!key || gp__tab_take(&gp__tabs[sp], key, rec))
		return 0;
	if (GP_LIKELY(kinds & GP_KIND(rec->kind)))
		return 1;
	/* Not a kind this call frees: put it back. */
	return gp__free_end(sp, key, rec, CUDA_ERROR_INVALID_VALUE);
}

/* The tenant's view of a card with `limit` bytes of budget of which it
 * uses `used`: total = the budget but never more than the card; free =
 * total - used, never below 0 and never more than the card really has
 * free.  (cuDNN and others trust total <= physical; an unsigned underflow
 * would show a nearly infinite free.) */
static inline void gp__virtual(uint64_t limit, uint64_t used, uint64_t real_free,
			       uint64_t real_total, uint64_t *vfree, uint64_t *vtotal)
{
	*vtotal = limit < real_total ? limit : real_total;
	*vfree = used < *vtotal ? *vtotal - used : 0;
	if (*vfree > real_free)
		*vfree = real_free;
}

/* vmm.c: whether no VMM call that changes device memory is in flight, and
 * (*calls) how many have begun so far: a window in which this stays quiet
 * and the count does not move saw no such change. */
int gp__vmm_quiet(uint32_t *calls);

/* --- reserve.c: memory the driver keeps in reserve ----------------------- */

/* Memory that a pool or the graph allocator holds is charged as the driver
 * reports it, not per allocation (reserve.c explains the lock). */
struct gp__reserve {
	pthread_mutex_t lock; /* held across reading the driver's figures and
	                         any call that may grow the reserve */
	int dev;              /* ordinal charged */
	uint64_t charged;     /* bytes charged now */
};

/* What the reserve must grow by, beyond what is charged, for `size` more
 * bytes in use when the driver says `used` are in use now (granules).
 * r->lock held. */
uint64_t gp__reserve_growth(const struct gp__reserve *r, uint64_t used, uint64_t size);

/* The driver reports the reserve holds `now` bytes: charge or give back the
 * difference.  r->lock held. */
void gp__reserve_set(struct gp__reserve *r, uint64_t now);

/* pool.c: bring every pool's charge up to date if frees may have shrunk
 * them since the last look (or always, with `force`).  Called at sync
 * points and before reporting memory. */
void gp__pools_refresh(int force);

/* pool.c: free device pointer `ptr` through call(ptr, arg) -- cuMemFree or
 * cuMemFreeAsync, which free any kind of allocation -- and give back what
 * it was charged: its own charge (ALLOC), or its hold on its pool
 * (ASYNC), whose reserve is settled at the next sync point. */
CUresult gp__free_ptr(CUdeviceptr ptr, CUresult (*call)(CUdeviceptr ptr, void *arg), void *arg);

#endif
