/* devmem.c - the address map, device address ranges and the lazily backed
 * store of device memory.  See memory.h. */
#include "sim/memory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "sim/state.h"
#include "sim/vaspace.h"
#include "sim/vmm.h"

#define DEV_RANGE (1ull << 48)   /* address range (and file size) per device */

static struct {
	struct gp_sim_mem **v;       /* sorted by base */
	size_t n, cap;
	/* Address windows: one per device, then the VMM one.  Offset 0 of
	 * each stays unused, so that no address is NULL-like. */
	struct gp_sim_vaspace va[GP_SIM_GPUS_MAX + 1];
	int va_ready;
	int fd[GP_SIM_GPUS_MAX];     /* backing memfd + 1 (0: none yet) */
	unsigned long long next_id;
} map;

int gp__sim_is_device_addr(uint64_t a)
{
	return a >= GP_SIM_VA_DEV(0) && a < GP_SIM_VA_END;
}

/* The window of device `dev`, or of VMM reservations for GP_SIM_GPUS_MAX. */
static struct gp_sim_vaspace *window(int dev)
{
	if (!map.va_ready) {
		for (int d = 0; d < GP_SIM_GPUS_MAX; d++)
			map.va[d] = GP_SIM_VASPACE(GP_SIM_VA_DEV(d) + GP_SIM_GRANULE,
						   GP_SIM_VA_DEV(d) + DEV_RANGE);
		map.va[GP_SIM_GPUS_MAX] =
			GP_SIM_VASPACE(GP_SIM_VA_VMM + GP_SIM_GRANULE, GP_SIM_VA_VMM + DEV_RANGE);
		map.va_ready = 1;
	}
	return &map.va[dev];
}

uint64_t gp__sim_va_alloc_locked(int dev, uint64_t span)
{
	if (dev < 0 || dev >= GP_SIM_GPUS_MAX)
		return 0;
	return gp__sim_vaspace_take(window(dev), GP_SIM_ROUND_UP(span, GP_SIM_GRANULE),
				    GP_SIM_GRANULE);
}

uint64_t gp__sim_va_reserve_locked(uint64_t span, uint64_t align)
{
	return gp__sim_vaspace_take(window(GP_SIM_GPUS_MAX), GP_SIM_ROUND_UP(span, GP_SIM_GRANULE),
				    align);
}

void gp__sim_va_free_locked(uint64_t base, uint64_t span)
{
	int w;

	if (!gp__sim_is_device_addr(base))
		return;
	w = base >= GP_SIM_VA_VMM ? GP_SIM_GPUS_MAX : (int)((base - GP_SIM_VA_DEV(0)) >> 48);
	gp__sim_vaspace_give(window(w), base, GP_SIM_ROUND_UP(span, GP_SIM_GRANULE));
}

/* The backing file of device `dev`, created on first use. */
static int dev_fd(int dev)
{
	char name[32];
	int fd;

	if (map.fd[dev])
		return map.fd[dev] - 1;
	snprintf(name, sizeof name, "gpupool-sim-dev%d", dev);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)DEV_RANGE) < 0) {
		close(fd);
		return -1;
	}
	map.fd[dev] = fd + 1;
	return fd;
}

CUresult gp__sim_backing_map(struct gp_sim_mem *m)
{
	int fd = dev_fd(m->dev);
	void *p;

	if (fd < 0)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->fd = fd;
	m->off = m->base - GP_SIM_VA_DEV(m->dev);
	m->maplen = GP_SIM_ROUND_UP(m->size, (uint64_t)sysconf(_SC_PAGESIZE));
	p = mmap(NULL, m->maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
		 (off_t)m->off);
	if (p == MAP_FAILED) {
		gp_warn("sim: cannot map %llu bytes of device memory: %s",
			(unsigned long long)m->maplen, strerror(errno));
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	m->host = p;
	return CUDA_SUCCESS;
}

void gp__sim_backing_zero(int fd, uint64_t off, uint64_t len)
{
	if (fd >= 0 && len)
		(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				(off_t)len);
}

void gp__sim_backing_unmap(struct gp_sim_mem *m)
{
	if (!m->host)
		return;
	munmap(m->host, m->maplen);
	m->host = NULL;
	gp__sim_backing_zero(m->fd, m->off, m->maplen);
}

struct gp_sim_mem *gp__sim_mem_alloc(enum gp_sim_mem_kind kind, int dev)
{
	struct gp_sim_mem *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	m->kind = kind;
	m->dev = dev;
	m->fd = -1;
	m->id = ++map.next_id;
	return m;
}

/* Index of the last entry with base <= addr, or -1. */
static long floor_index(uint64_t addr)
{
	long lo = 0, hi = (long)map.n - 1, best = -1;

	while (lo <= hi) {
		long mid = lo + (hi - lo) / 2;
		if (map.v[mid]->base <= addr) {
			best = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return best;
}

int gp__sim_mem_insert_locked(struct gp_sim_mem *m)
{
	long at;

	if (map.n == map.cap) {
		size_t cap = map.cap ? map.cap * 2 : 64;
		struct gp_sim_mem **v = realloc(map.v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		map.v = v;
		map.cap = cap;
	}
	at = floor_index(m->base) + 1;
	memmove(&map.v[at + 1], &map.v[at], (map.n - (size_t)at) * sizeof *map.v);
	map.v[at] = m;
	map.n++;
	return 0;
}

void gp__sim_mem_remove_locked(struct gp_sim_mem *m)
{
	long i = floor_index(m->base);

	/* Equal bases cannot happen (ranges never overlap), but be exact. */
	while (i >= 0 && map.v[i] != m && map.v[i]->base == m->base)
		i--;
	if (i < 0 || map.v[i] != m)
		return;
	memmove(&map.v[i], &map.v[i + 1], (map.n - (size_t)i - 1) * sizeof *map.v);
	map.n--;
	if (map.n == 0) {
		free(map.v);
		map.v = NULL;
		map.cap = 0;
	}
}

struct gp_sim_mem *gp__sim_mem_find_locked(uint64_t addr)
{
	long i = floor_index(addr);
	struct gp_sim_mem *m;

	if (i < 0)
		return NULL;
	m = map.v[i];
	return addr - m->base < (m->span ? m->span : 1) ? m : NULL;
}

struct gp_sim_mem *gp__sim_mem_find_ipc_locked(uint64_t pid, uint64_t id)
{
	for (size_t i = 0; i < map.n; i++)
		if (map.v[i]->kind == GP_SIM_MEM_IPC && map.v[i]->ipc_key[0] == pid &&
		    map.v[i]->ipc_key[1] == id)
			return map.v[i];
	return NULL;
}

CUresult gp__sim_mem_new_locked(enum gp_sim_mem_kind kind, int dev, uint64_t size,
				uint64_t charge, struct gp_sim_ctx *ctx, struct gp_sim_mem **out)
{
	uint64_t span = GP_SIM_ROUND_UP(size, GP_SIM_GRANULE);
	struct gp_sim_mem *m;
	CUresult rc;

	if (size == 0 || span < size)
		return CUDA_ERROR_INVALID_VALUE;
	if (charge && gp__sim_charge((unsigned)dev, charge))
		return CUDA_ERROR_OUT_OF_MEMORY;
	m = gp__sim_mem_alloc(kind, dev);
	if (!m) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto fail;
	}
	m->size = size;
	m->span = span;
	m->charge = charge;
	m->ctx = ctx;
	m->base = gp__sim_va_alloc_locked(dev, span);
	if (!m->base) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto fail;
	}
	rc = gp__sim_backing_map(m);
	if (rc)
		goto fail;
	if (gp__sim_mem_insert_locked(m)) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto fail;
	}
	*out = m;
	return CUDA_SUCCESS;
fail:
	if (m) {
		gp__sim_backing_unmap(m);
		if (m->base)
			gp__sim_va_free_locked(m->base, m->span);
	}
	free(m);
	if (charge)
		gp__sim_uncharge((unsigned)dev, charge);
	return rc;
}

void gp__sim_mem_release_locked(struct gp_sim_mem *m)
{
	switch (m->kind) {
	case GP_SIM_MEM_DEVICE:
	case GP_SIM_MEM_POOL:
	case GP_SIM_MEM_GRAPH:
		gp__sim_backing_unmap(m);
		break;
	case GP_SIM_MEM_IPC:
		/* The pages are the exporter's: unmap, never punch. */
		if (m->host)
			munmap(m->host, m->maplen);
		if (m->own_fd && m->fd >= 0)
			close(m->fd);
		break;
	case GP_SIM_MEM_MANAGED:
	case GP_SIM_MEM_HOST:
		if (m->host)
			munmap(m->host, m->maplen);
		break;
	case GP_SIM_MEM_VMM:
	case GP_SIM_MEM_REGISTERED:
		break;
	}
	if (m->charge)
		gp__sim_uncharge((unsigned)m->dev, m->charge);
	/* Its addresses may be handed out again from now on. */
	if (m->kind != GP_SIM_MEM_MANAGED && m->kind != GP_SIM_MEM_HOST &&
	    m->kind != GP_SIM_MEM_REGISTERED)
		gp__sim_va_free_locked(m->base, m->span);
	gp__sim_mem_remove_locked(m);
	free(m);
}

size_t gp__sim_resolve_locked(uint64_t addr, size_t len, void **host, int *dev)
{
	struct gp_sim_mem *m = gp__sim_mem_find_locked(addr);
	uint64_t avail;

	if (!m)
		return 0;
	if (m->kind == GP_SIM_MEM_VMM)
		return gp__sim_vmm_resolve_locked(m, addr, len, host, dev);
	if (!m->host || addr - m->base >= m->size)
		return 0; /* unbacked (a graph allocation not live) or padding */
	avail = m->base + m->size - addr;
	*host = (char *)m->host + (addr - m->base);
	*dev = m->dev;
	return avail < len ? (size_t)avail : len;
}

void gp__sim_mem_ctx_gone_locked(struct gp_sim_ctx *ctx)
{
	for (size_t i = map.n; i-- > 0;) {
		struct gp_sim_mem *m = map.v[i];
		if (m->ctx != ctx)
			continue;
		if (m->kind == GP_SIM_MEM_DEVICE || m->kind == GP_SIM_MEM_MANAGED ||
		    m->kind == GP_SIM_MEM_HOST || m->kind == GP_SIM_MEM_REGISTERED ||
		    m->kind == GP_SIM_MEM_IPC)
			gp__sim_mem_release_locked(m);
		if (i > map.n)
			i = map.n;
	}
}
