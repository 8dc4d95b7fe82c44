/* vmm.c - see vmm.h.  Entry points: cuMemAddressReserve/Free, cuMemCreate,
 * cuMemRelease, cuMemMap, cuMemUnmap, cuMemSetAccess, cuMemGetAccess,
 * cuMemRetainAllocationHandle, cuMemGetAllocationGranularity,
 * cuMemGetAllocationPropertiesFromHandle, cuMemExportToShareableHandle,
 * cuMemImportFromShareableHandle. */
#include "sim/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/share.h"
#include "sim/state.h"

#define TRAILER 4096u
#define TRAILER_MAGIC 0x504d5647u /* "GVMP" */

/* Written after the last byte of a physical allocation's memfd, so that
 * an importer learns what the descriptor holds. */
struct trailer {
	uint32_t magic;
	int32_t dev;               /* machine index */
	uint64_t size;
	int32_t pid;               /* exporter */
	uint32_t handle_types;
	uint64_t machine;          /* the machine's id (state.h) */
	uint32_t share;            /* its entry in the machine (share.h) */
	uint32_t tag;              /* and that entry's tag; 0: not exported */
};

/* A CUmemGenericAllocationHandle. */
struct gp_sim_phys {
	struct gp_sim_obj h;
	int dev;
	uint64_t size;
	int fd;
	uint64_t charge;           /* charged to this process and given back
	                              when freed; 0 once shared (the share
	                              entry gives it back) or when imported */
	int shared;                /* exported or imported: share/tag name
	                              this process's hold of it */
	uint32_t share, tag;
	unsigned handles;          /* create / retain / import references */
	unsigned maps;             /* mappings of it */
	CUmemAllocationProp prop;
};

/* One mapping in a reservation. */
struct vmap {
	uint64_t va, size, offset;
	struct gp_sim_phys *phys;
	void *host;
	CUmemAccess_flags access[GP_SIM_GPUS_MAX];
};

/* A reservation (the owner of a GP_SIM_MEM_VMM map entry). */
struct vres {
	struct vmap *maps;         /* sorted by va */
	size_t n, cap;
};

static void phys_maybe_free(struct gp_sim_phys *p)
{
	if (p->handles || p->maps)
		return;
	if (p->shared)
		gp__sim_share_drop_locked(p->share, p->tag); /* other holders keep it */
	if (p->charge)
		gp__sim_uncharge((unsigned)p->dev, p->charge);
	close(p->fd);
	gp__sim_handle_del(&p->h);
	free(p);
}

/* A handle the program may use (created, retained or imported, not yet
 * released as many times). */
static struct gp_sim_phys *phys_get_locked(CUmemGenericAllocationHandle h)
{
	struct gp_sim_phys *p = gp__sim_handle_get((const void *)(uintptr_t)h, GP_SIM_VMM);

	return p && p->handles ? p : NULL;
}

/* Index of the mapping holding addr, or -1. */
static long map_index(const struct vres *r, uint64_t addr)
{
	long lo = 0, hi = (long)r->n - 1;

	while (lo <= hi) {
		long mid = lo + (hi - lo) / 2;
		const struct vmap *m = &r->maps[mid];
		if (addr < m->va)
			hi = mid - 1;
		else if (addr >= m->va + m->size)
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

static int any_access(const struct vmap *m)
{
	for (int d = 0; d < GP_SIM_GPUS_MAX; d++)
		if (m->access[d] != CU_MEM_ACCESS_FLAGS_PROT_NONE)
			return 1;
	return 0;
}

size_t gp__sim_vmm_resolve_locked(struct gp_sim_mem *res, uint64_t addr, size_t len,
				  void **host, int *dev)
{
	struct vres *r = res->owner;
	long i = map_index(r, addr);
	struct vmap *m;
	uint64_t avail;

	if (i < 0)
		return 0;
	m = &r->maps[i];
	if (!any_access(m))
		return 0; /* mapped but not accessible: a device fault */
	avail = m->va + m->size - addr;
	*host = (char *)m->host + (addr - m->va);
	*dev = m->phys->dev;
	return avail < len ? (size_t)avail : len;
}

int gp__sim_vmm_range_locked(struct gp_sim_mem *res, uint64_t addr, uint64_t *base,
			     uint64_t *size)
{
	struct vres *r = res->owner;
	long i = map_index(r, addr);

	if (i < 0)
		return 0;
	*base = r->maps[i].va;
	*size = r->maps[i].size;
	return 1;
}

int gp__sim_vmm_info_locked(struct gp_sim_mem *res, uint64_t addr, int dev,
			    struct gp_sim_vinfo *out)
{
	struct vres *r = res->owner;
	long i = map_index(r, addr);

	if (i < 0)
		return 0;
	out->base = r->maps[i].va;
	out->size = r->maps[i].size;
	out->dev = r->maps[i].phys->dev;
	out->handle_types = r->maps[i].phys->prop.requestedHandleTypes;
	out->access = dev >= 0 && dev < GP_SIM_GPUS_MAX ? r->maps[i].access[dev]
							: CU_MEM_ACCESS_FLAGS_PROT_NONE;
	return 1;
}

/* Check an allocation property; fills the machine index of its device. */
static CUresult check_prop(const CUmemAllocationProp *prop, int *dev)
{
	if (!prop || prop->type != CU_MEM_ALLOCATION_TYPE_PINNED)
		return CUDA_ERROR_INVALID_VALUE;
	if (prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
		return prop->location.type == CU_MEM_LOCATION_TYPE_INVALID ? CUDA_ERROR_INVALID_VALUE
									  : CUDA_ERROR_NOT_SUPPORTED;
	*dev = gp__sim_visible_index(prop->location.id);
	if (*dev < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (prop->requestedHandleTypes & ~(unsigned)CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
		return CUDA_ERROR_NOT_SUPPORTED;
	return CUDA_SUCCESS;
}

CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
				       CUmemAllocationGranularity_flags option)
{
	CUresult rc;
	int dev;

	GP_SIM_ENTER();
	if (!granularity || (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM &&
			     option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED))
		return CUDA_ERROR_INVALID_VALUE;
	rc = check_prop(prop, &dev);
	if (!rc)
		*granularity = (size_t)GP_SIM_GRANULE;
	return rc;
}

/* --- physical allocations ------------------------------------------------- */

static CUresult phys_new_locked(int dev, uint64_t size, int fd, uint64_t charge,
				const CUmemAllocationProp *prop, struct gp_sim_phys **out)
{
	struct gp_sim_phys *p = calloc(1, sizeof *p);

	if (!p)
		return CUDA_ERROR_OUT_OF_MEMORY;
	p->dev = dev;
	p->size = size;
	p->fd = fd;
	p->charge = charge;
	p->handles = 1;
	p->prop = *prop;
	if (gp__sim_handle_add(&p->h, GP_SIM_VMM)) {
		free(p);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*out = p;
	return CUDA_SUCCESS;
}

CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
		     const CUmemAllocationProp *prop, unsigned long long flags)
{
	struct gp_sim_phys *p;
	struct trailer t;
	CUresult rc;
	int dev, fd = -1;

	GP_SIM_ENTER();
	if (!handle || flags != 0 || size == 0 || size % GP_SIM_GRANULE)
		return CUDA_ERROR_INVALID_VALUE;
	rc = check_prop(prop, &dev);
	if (rc)
		return rc;
	gp__sim_lock();
	if (gp__sim_charge((unsigned)dev, size)) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	memset(&t, 0, sizeof t);
	t.magic = TRAILER_MAGIC;
	t.dev = dev;
	t.size = size;
	t.pid = (int32_t)getpid();
	t.handle_types = (uint32_t)prop->requestedHandleTypes;
	fd = memfd_create("gpupool-sim-vmm", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)(size + TRAILER)) < 0 ||
	    pwrite(fd, &t, sizeof t, (off_t)size) != (ssize_t)sizeof t) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto undo;
	}
	rc = phys_new_locked(dev, size, fd, size, prop, &p);
	if (rc)
		goto undo;
	*handle = (CUmemGenericAllocationHandle)(uintptr_t)p;
	goto out;
undo:
	if (fd >= 0)
		close(fd);
	gp__sim_uncharge((unsigned)dev, size);
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
	struct gp_sim_phys *p;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	gp__sim_lock();
	p = phys_get_locked(handle);
	if (p) {
		p->handles--;
		phys_maybe_free(p); /* still mapped somewhere: lives on */
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop,
						CUmemGenericAllocationHandle handle)
{
	struct gp_sim_phys *p;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!prop)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	p = phys_get_locked(handle);
	if (p) {
		*prop = p->prop;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

/* The first export of p: from now on the machine counts who holds it
 * (share.h), and its charge stays with this process until the last holder
 * lets go.  The trailer tells importers which entry that is. */
static CUresult share_locked(struct gp_sim_phys *p)
{
	struct trailer t;

	if (p->shared)
		return CUDA_SUCCESS;
	if (pread(p->fd, &t, sizeof t, (off_t)p->size) != (ssize_t)sizeof t)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (gp__sim_share_export_locked((unsigned)p->dev, p->charge, &t.share, &t.tag))
		return CUDA_ERROR_OUT_OF_MEMORY; /* GP_SIM_SHARES shared already */
	p->shared = 1;
	p->share = t.share;
	p->tag = t.tag;
	p->charge = 0;
	t.machine = gp__sim_machine()->machine_id;
	if (pwrite(p->fd, &t, sizeof t, (off_t)p->size) != (ssize_t)sizeof t)
		return CUDA_ERROR_OUT_OF_MEMORY; /* still shared: released as such */
	return CUDA_SUCCESS;
}

CUresult cuMemExportToShareableHandle(void *shareableHandle, CUmemGenericAllocationHandle handle,
				      CUmemAllocationHandleType handleType,
				      unsigned long long flags)
{
	struct gp_sim_phys *p;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;
	int fd;

	GP_SIM_ENTER();
	if (!shareableHandle || flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (handleType != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
		return handleType == CU_MEM_HANDLE_TYPE_NONE ? CUDA_ERROR_INVALID_VALUE
							     : CUDA_ERROR_NOT_SUPPORTED;
	gp__sim_lock();
	p = phys_get_locked(handle);
	if (p && (p->prop.requestedHandleTypes & CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)) {
		rc = share_locked(p);
		fd = rc ? -1 : fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			rc = CUDA_ERROR_OUT_OF_MEMORY;
		} else {
			*(int *)shareableHandle = fd;
			rc = CUDA_SUCCESS;
		}
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle, void *osHandle,
					CUmemAllocationHandleType shHandleType)
{
	CUmemAllocationProp prop;
	struct gp_sim_phys *p;
	struct trailer t;
	struct stat st;
	int fd = (int)(intptr_t)osHandle, mine;
	CUresult rc;

	GP_SIM_ENTER();
	if (!handle)
		return CUDA_ERROR_INVALID_VALUE;
	if (shHandleType != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
		return CUDA_ERROR_NOT_SUPPORTED;
	/* Only an exported allocation of this machine (an exporter that let
	 * go of it entirely has freed it). */
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)TRAILER ||
	    pread(fd, &t, sizeof t, st.st_size - (off_t)TRAILER) != (ssize_t)sizeof t ||
	    t.magic != TRAILER_MAGIC || t.size + TRAILER != (uint64_t)st.st_size ||
	    t.dev < 0 || t.dev >= GP_SIM_GPUS_MAX || t.tag == 0 ||
	    t.machine != gp__sim_machine()->machine_id)
		return CUDA_ERROR_INVALID_VALUE;
	mine = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (mine < 0)
		return CUDA_ERROR_OUT_OF_MEMORY;
	memset(&prop, 0, sizeof prop);
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.requestedHandleTypes = (CUmemAllocationHandleType)t.handle_types;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = gp__sim_visible_ordinal(t.dev);
	gp__sim_lock();
	if (gp__sim_share_hold_locked(t.share, t.tag)) {
		rc = CUDA_ERROR_INVALID_VALUE; /* every holder let go: freed */
	} else {
		rc = phys_new_locked(t.dev, t.size, mine, 0, &prop, &p);
		if (rc) {
			gp__sim_share_drop_locked(t.share, t.tag);
		} else {
			p->shared = 1;
			p->share = t.share;
			p->tag = t.tag;
			*handle = (CUmemGenericAllocationHandle)(uintptr_t)p;
		}
	}
	gp__sim_unlock();
	if (rc)
		close(mine);
	return rc;
}

/* --- address reservations ------------------------------------------------- */

CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
			     unsigned long long flags)
{
	struct gp_sim_mem *m = NULL;
	struct vres *r = NULL;
	CUresult rc = CUDA_SUCCESS;

	GP_SIM_ENTER();
	(void)addr; /* a hint; the simulator picks its own address */
	if (!ptr || size == 0 || size % GP_SIM_GRANULE || flags != 0 ||
	    (alignment & (alignment - 1)))
		return CUDA_ERROR_INVALID_VALUE;
	if (alignment < GP_SIM_GRANULE)
		alignment = GP_SIM_GRANULE;
	gp__sim_lock();
	m = gp__sim_mem_alloc(GP_SIM_MEM_VMM, -1);
	r = calloc(1, sizeof *r);
	if (!m || !r) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	m->base = gp__sim_va_reserve_locked(size, alignment);
	m->size = m->span = size;
	m->owner = r;
	if (!m->base || gp__sim_mem_insert_locked(m)) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	*ptr = (CUdeviceptr)m->base;
	m = NULL;
	r = NULL;
out:
	if (m && m->base)
		gp__sim_va_free_locked(m->base, m->span);
	gp__sim_unlock();
	free(m);
	free(r);
	return rc;
}

static void unmap_one(struct vmap *v)
{
	munmap(v->host, v->size);
	v->phys->maps--;
	phys_maybe_free(v->phys);
}

CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
	struct gp_sim_mem *m;
	struct vres *r;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	gp__sim_lock();
	m = gp__sim_mem_find_locked(ptr);
	if (m && m->kind == GP_SIM_MEM_VMM && m->base == ptr && m->size == size) {
		r = m->owner;
		/* Mappings left behind are unmapped, as if by cuMemUnmap. */
		for (size_t i = 0; i < r->n; i++)
			unmap_one(&r->maps[i]);
		free(r->maps);
		free(r);
		gp__sim_mem_release_locked(m);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

/* The reservation wholly holding [ptr, ptr+size), or NULL. */
static struct gp_sim_mem *reservation_locked(uint64_t ptr, uint64_t size)
{
	struct gp_sim_mem *m = gp__sim_mem_find_locked(ptr);

	if (!m || m->kind != GP_SIM_MEM_VMM || size > m->size ||
	    ptr - m->base > m->size - size)
		return NULL;
	return m;
}

CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
		  CUmemGenericAllocationHandle handle, unsigned long long flags)
{
	struct gp_sim_phys *p;
	struct gp_sim_mem *m;
	struct vres *r;
	struct vmap v;
	size_t at;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (flags != 0 || size == 0 || size % GP_SIM_GRANULE || ptr % GP_SIM_GRANULE ||
	    offset % GP_SIM_GRANULE)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	p = phys_get_locked(handle);
	m = reservation_locked(ptr, size);
	if (!p || !m || offset > p->size || size > p->size - offset)
		goto out;
	r = m->owner;
	/* No overlap with an existing mapping. */
	for (at = 0; at < r->n && r->maps[at].va < ptr; at++)
		;
	if ((at > 0 && r->maps[at - 1].va + r->maps[at - 1].size > ptr) ||
	    (at < r->n && r->maps[at].va < ptr + size))
		goto out;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct vmap *nv = realloc(r->maps, cap * sizeof *nv);
		if (!nv) {
			rc = CUDA_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		r->maps = nv;
		r->cap = cap;
	}
	memset(&v, 0, sizeof v);
	v.va = ptr;
	v.size = size;
	v.offset = offset;
	v.phys = p;
	v.host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, p->fd,
		      (off_t)offset);
	if (v.host == MAP_FAILED) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	memmove(&r->maps[at + 1], &r->maps[at], (r->n - at) * sizeof *r->maps);
	r->maps[at] = v;
	r->n++;
	p->maps++;
	rc = CUDA_SUCCESS;
out:
	gp__sim_unlock();
	return rc;
}

/* Indices [*first, *last] of the mappings exactly tiling [ptr, ptr+size)
 * with no gap.  1 if they do, else 0. */
static int tiling(const struct vres *r, uint64_t ptr, uint64_t size, long *first, long *last)
{
	long i = map_index(r, ptr);
	uint64_t end = ptr + size;

	if (i < 0 || r->maps[i].va != ptr)
		return 0;
	*first = i;
	for (;;) {
		uint64_t e = r->maps[i].va + r->maps[i].size;
		if (e == end) {
			*last = i;
			return 1;
		}
		if (e > end || (size_t)i + 1 >= r->n || r->maps[i + 1].va != e)
			return 0;
		i++;
	}
}

CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
	struct gp_sim_mem *m;
	struct vres *r;
	long first, last;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (size == 0)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	m = reservation_locked(ptr, size);
	if (!m)
		goto out;
	r = m->owner;
	if (!tiling(r, ptr, size, &first, &last))
		goto out;
	for (long i = first; i <= last; i++)
		unmap_one(&r->maps[i]);
	memmove(&r->maps[first], &r->maps[last + 1],
		(r->n - (size_t)last - 1) * sizeof *r->maps);
	r->n -= (size_t)(last - first + 1);
	rc = CUDA_SUCCESS;
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
{
	struct gp_sim_mem *m;
	struct vres *r;
	long first, last;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!desc || count == 0 || size == 0)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t k = 0; k < count; k++)
		if (desc[k].location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
		    gp__sim_visible_index(desc[k].location.id) < 0 ||
		    (unsigned)desc[k].flags > CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
			return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	m = reservation_locked(ptr, size);
	if (!m)
		goto out;
	r = m->owner;
	/* The range must be mapped throughout; it may cover mappings in part
	 * only at the granule, so check coverage mapping by mapping. */
	for (uint64_t a = ptr; a < ptr + size;) {
		long i = map_index(r, a);
		if (i < 0)
			goto out;
		a = r->maps[i].va + r->maps[i].size;
	}
	first = map_index(r, ptr);
	last = map_index(r, ptr + size - 1);
	for (long i = first; i <= last; i++)
		for (size_t k = 0; k < count; k++)
			r->maps[i].access[gp__sim_visible_index(desc[k].location.id)] = desc[k].flags;
	rc = CUDA_SUCCESS;
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuMemGetAccess(unsigned long long *flags, const CUmemLocation *location, CUdeviceptr ptr)
{
	struct gp_sim_mem *m;
	struct gp_sim_vinfo vi;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;
	int dev;

	GP_SIM_ENTER();
	if (!flags || !location || location->type != CU_MEM_LOCATION_TYPE_DEVICE)
		return CUDA_ERROR_INVALID_VALUE;
	dev = gp__sim_visible_index(location->id);
	if (dev < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	m = gp__sim_mem_find_locked(ptr);
	if (m && m->kind == GP_SIM_MEM_VMM && gp__sim_vmm_info_locked(m, ptr, dev, &vi)) {
		*flags = vi.access;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
	uint64_t a = (uint64_t)(uintptr_t)addr;
	struct gp_sim_mem *m;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;
	long i;

	GP_SIM_ENTER();
	if (!handle)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	m = gp__sim_mem_find_locked(a);
	if (m && m->kind == GP_SIM_MEM_VMM && (i = map_index(m->owner, a)) >= 0) {
		struct gp_sim_phys *p = ((struct vres *)m->owner)->maps[i].phys;
		p->handles++;
		*handle = (CUmemGenericAllocationHandle)(uintptr_t)p;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}
