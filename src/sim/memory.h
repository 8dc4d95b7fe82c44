/* memory.h - the process's address map: every range a pointer can fall in
 * (device allocations, pool and graph allocations, opened IPC handles, VMM
 * reservations, managed and page-locked host memory), and the lazily
 * backed store behind device addresses.
 *
 * Device addresses are opaque: device d's allocations live at
 * GP_SIM_VA_DEV(d) + offset, a non-canonical range no host pointer can
 * take, and VMM reservations at GP_SIM_VA_VMM; freed addresses are reused
 * (vaspace.h).  The bytes of device
 * memory live in one sparse memfd per device per process, at file offset
 * (address - GP_SIM_VA_DEV(d)); each allocation maps just its own range
 * (MAP_NORESERVE), and freeing punches the range out of the file, so an
 * 80 GiB card costs only the pages a program writes.  Managed and host
 * memory are host addresses, as with UVA on the real thing.
 */
#ifndef GP_SIM_MEMORY_H
#define GP_SIM_MEMORY_H

#include <sys/types.h>

#include "sim/context.h"

#define GP_SIM_VA_DEV(d) (0x1000000000000000ull + ((uint64_t)(d) << 48))
#define GP_SIM_VA_VMM 0x2000000000000000ull
#define GP_SIM_VA_END (GP_SIM_VA_VMM + (1ull << 48))

enum gp_sim_mem_kind {
	GP_SIM_MEM_DEVICE = 1,   /* cuMemAlloc, cuMemAllocPitch */
	GP_SIM_MEM_POOL,         /* cuMemAllocAsync, cuMemAllocFromPoolAsync */
	GP_SIM_MEM_GRAPH,        /* a graph memory node's allocation */
	GP_SIM_MEM_IPC,          /* cuIpcOpenMemHandle */
	GP_SIM_MEM_VMM,          /* a cuMemAddressReserve range */
	GP_SIM_MEM_MANAGED,      /* cuMemAllocManaged (host address) */
	GP_SIM_MEM_HOST,         /* cuMemAllocHost, cuMemHostAlloc */
	GP_SIM_MEM_REGISTERED,   /* cuMemHostRegister */
};

/* One range of the address map. */
struct gp_sim_mem {
	uint64_t base;           /* the address programs see */
	uint64_t size;           /* bytes asked for */
	uint64_t span;           /* address range taken, >= size */
	uint64_t charge;         /* bytes charged to the device for it */
	enum gp_sim_mem_kind kind;
	int dev;                 /* machine index; -1 for host memory */
	void *host;              /* where its bytes are; NULL if unbacked */
	uint64_t maplen;         /* bytes mapped at host (size rounded to a
	                            page: small allocations stay small under
	                            valgrind) */
	int fd;                  /* backing file, -1 for anonymous memory */
	int own_fd;              /* fd is ours to close (IPC imports) */
	uint64_t off;            /* file offset of `base` */
	unsigned flags;          /* host/managed allocation flags */
	unsigned long long id;   /* CU_POINTER_ATTRIBUTE_BUFFER_ID */
	struct gp_sim_ctx *ctx;  /* owning context; NULL for pool, graph
	                            and VMM memory, which outlive contexts */
	void *owner;             /* pool, graph block or VMM reservation */
	unsigned refs;           /* IPC imports: opens not yet closed */
	int sync_memops;         /* CU_POINTER_ATTRIBUTE_SYNC_MEMOPS */
	uint64_t ipc_key[2];     /* IPC imports: what the handle named */
};

/* Is `a` in the device address ranges (device memory or VMM)? */
int gp__sim_is_device_addr(uint64_t a);

/* Take `span` bytes (rounded up to GP_SIM_GRANULE) of device `dev`'s
 * address range, the lowest that is free (vaspace.h).  Returns the
 * address, or 0 when the range is exhausted. */
uint64_t gp__sim_va_alloc_locked(int dev, uint64_t span);

/* Take `span` bytes of VMM address range aligned to `align` (a power of
 * two >= GP_SIM_GRANULE).  0 when exhausted. */
uint64_t gp__sim_va_reserve_locked(uint64_t span, uint64_t align);

/* Give back addresses taken with either of the above (any base outside
 * the device ranges is ignored).  gp__sim_mem_release_locked does this
 * for every entry with a device address. */
void gp__sim_va_free_locked(uint64_t base, uint64_t span);

/* Map the backing store of device `dev` for [base, base+span): sets
 * m->host, m->fd, m->off.  CUDA_ERROR_OUT_OF_MEMORY if the host refuses. */
CUresult gp__sim_backing_map(struct gp_sim_mem *m) GP_SIM_WUR;

/* Unmap m's backing and give its pages back (punch the file range). */
void gp__sim_backing_unmap(struct gp_sim_mem *m);

/* Give back the pages of [off, off+len) of a backing file (zeroes them). */
void gp__sim_backing_zero(int fd, uint64_t off, uint64_t len);

/* A new zeroed entry with a fresh buffer id (not yet in the map). */
struct gp_sim_mem *gp__sim_mem_alloc(enum gp_sim_mem_kind kind, int dev);

/* Enter m in the map / take it out.  Insert returns 0 or -ENOMEM. */
int gp__sim_mem_insert_locked(struct gp_sim_mem *m) __attribute__((warn_unused_result));
void gp__sim_mem_remove_locked(struct gp_sim_mem *m);

/* The entry whose range [base, base+span) holds `addr`, or NULL. */
struct gp_sim_mem *gp__sim_mem_find_locked(uint64_t addr);

/* The opened IPC import of (exporter pid, buffer id), or NULL. */
struct gp_sim_mem *gp__sim_mem_find_ipc_locked(uint64_t pid, uint64_t id);

/* New device memory of `size` bytes on device `dev` for `ctx`, charged
 * `charge` bytes (0: the caller accounts for it).  Mapped and entered in
 * the map.  CUDA_ERROR_OUT_OF_MEMORY when the device is full. */
CUresult gp__sim_mem_new_locked(enum gp_sim_mem_kind kind, int dev, uint64_t size,
				uint64_t charge, struct gp_sim_ctx *ctx, struct gp_sim_mem **out) GP_SIM_WUR;

/* Unmap, uncharge, remove and free device memory made by
 * gp__sim_mem_new_locked (or any entry: each kind is undone its way). */
void gp__sim_mem_release_locked(struct gp_sim_mem *m);

/* Translate device or managed address `addr` for an access of `len`
 * bytes: the host address of `addr` in *host, its device in *dev, and the
 * number of bytes (<= len) contiguous there.  0 when `addr` is not live
 * device memory the program may access. */
size_t gp__sim_resolve_locked(uint64_t addr, size_t len, void **host, int *dev);

/* Free every allocation `ctx` owns (context going away). */
void gp__sim_mem_ctx_gone_locked(struct gp_sim_ctx *ctx);

/* The current context for an allocation entry point; also refuses the
 * call when a global-mode stream capture forbids it.  Lock held. */
CUresult gp__sim_alloc_ctx_locked(struct gp_sim_ctx **c) GP_SIM_WUR;

/* Free device memory at `dptr` whatever its kind (cuMemFree,
 * cuMemFreeAsync outside capture).  CUDA_ERROR_INVALID_VALUE if `dptr` is
 * not the start of something cuMemFree may free. */
CUresult gp__sim_mem_free_locked(uint64_t dptr) GP_SIM_WUR;

#endif
