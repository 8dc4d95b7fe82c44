/* ipc.c - legacy CUDA IPC of device memory between processes:
 * cuIpcGetMemHandle, cuIpcOpenMemHandle(_v2), cuIpcCloseMemHandle.
 *
 * A handle names the exporter's backing file by (pid, descriptor number,
 * offset, size); the importer opens /proc/<pid>/fd/<n> and maps the range,
 * so both see the same bytes.  Imported memory is not charged to the
 * importer: it is the exporter's, on the exporter's device.  Opening a
 * handle twice in one process returns the same address (reference
 * counted); opening it in the exporting process is CUDA_ERROR_INVALID_CONTEXT,
 * as with the real driver.
 */
#include "sim/memory.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define IPC_MAGIC 0x43504947u /* "GIPC" */

struct ipc_handle {
	uint32_t magic;
	int32_t pid;           /* exporter */
	int32_t fd;            /* its backing file descriptor */
	int32_t dev;           /* machine index */
	uint64_t off;          /* file offset of the allocation */
	uint64_t size;
	uint64_t id;           /* exporter's buffer id */
};

_Static_assert(sizeof(struct ipc_handle) <= sizeof(CUipcMemHandle), "IPC handle too big");

CUresult cuIpcGetMemHandle(CUipcMemHandle *pHandle, CUdeviceptr dptr)
{
	struct gp_sim_mem *m;
	struct ipc_handle h;
	CUresult rc = CUDA_ERROR_INVALID_VALUE;

	GP_SIM_ENTER();
	if (!pHandle)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	m = gp__sim_mem_find_locked(dptr);
	/* Only cuMemAlloc memory is legacy-IPC capable, as on the real one. */
	if (m && m->kind == GP_SIM_MEM_DEVICE && m->base == dptr && m->fd >= 0) {
		memset(&h, 0, sizeof h);
		h.magic = IPC_MAGIC;
		h.pid = (int32_t)getpid();
		h.fd = m->fd;
		h.dev = m->dev;
		h.off = m->off;
		h.size = m->size;
		h.id = m->id;
		memset(pHandle, 0, sizeof *pHandle);
		memcpy(pHandle->reserved, &h, sizeof h);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

/* Open the exporter's backing file; -1 if it is gone or not ours. */
static int open_exporter(const struct ipc_handle *h)
{
	char path[64], link[128];
	ssize_t n;
	struct stat st;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)h->pid, (int)h->fd);
	n = readlink(path, link, sizeof link - 1);
	if (n <= 0)
		return -1;
	link[n] = '\0';
	if (!strstr(link, "gpupool-sim-dev"))
		return -1; /* the process or descriptor is not the exporter's */
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < h->off + h->size) {
		close(fd);
		return -1;
	}
	return fd;
}

static CUresult ipc_open(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned Flags)
{
	struct ipc_handle h;
	struct gp_sim_ctx *c;
	struct gp_sim_mem *m = NULL;
	CUresult rc;
	int fd = -1;

	GP_SIM_ENTER();
	memcpy(&h, handle.reserved, sizeof h);
	if (!pdptr || (Flags & ~(unsigned)CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) ||
	    h.magic != IPC_MAGIC || h.dev < 0 || h.dev >= GP_SIM_GPUS_MAX || h.size == 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (h.pid == (int32_t)getpid())
		return CUDA_ERROR_INVALID_CONTEXT;
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (rc)
		goto out;
	/* Already open here: the same address, one more reference. */
	m = gp__sim_mem_find_ipc_locked((uint64_t)h.pid, h.id);
	if (m) {
		m->refs++;
		*pdptr = (CUdeviceptr)m->base;
		goto out;
	}
	fd = open_exporter(&h);
	if (fd < 0) {
		rc = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	m = gp__sim_mem_alloc(GP_SIM_MEM_IPC, h.dev);
	if (!m) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	m->size = h.size;
	m->span = GP_SIM_ROUND_UP(h.size, GP_SIM_GRANULE);
	m->base = gp__sim_va_alloc_locked(h.dev, m->span);
	m->fd = fd;
	m->own_fd = 1;
	m->off = h.off;
	m->ctx = c;
	m->refs = 1;
	m->ipc_key[0] = (uint64_t)h.pid;
	m->ipc_key[1] = h.id;
	m->maplen = GP_SIM_ROUND_UP(h.size, (uint64_t)sysconf(_SC_PAGESIZE));
	m->host = m->base ? mmap(NULL, m->maplen, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_NORESERVE, fd, (off_t)h.off)
			  : MAP_FAILED;
	if (m->host == MAP_FAILED || gp__sim_mem_insert_locked(m)) {
		if (m->host != MAP_FAILED)
			munmap(m->host, m->maplen);
		gp__sim_va_free_locked(m->base, m->span);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	*pdptr = (CUdeviceptr)m->base;
	m = NULL;
	fd = -1;
out:
	gp__sim_unlock();
	if (rc) {
		if (fd >= 0)
			close(fd);
		free(m); /* never an entry of the map here: those return early */
	}
	return rc;
}

CUresult cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{
	return ipc_open(pdptr, handle, Flags);
}

CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{
	return ipc_open(pdptr, handle, Flags);
}

CUresult cuIpcCloseMemHandle(CUdeviceptr dptr)
{
	struct gp_sim_mem *m;
	struct gp_sim_ctx *c;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	m = rc ? NULL : gp__sim_mem_find_locked(dptr);
	if (!rc && (!m || m->kind != GP_SIM_MEM_IPC || m->base != dptr))
		rc = CUDA_ERROR_INVALID_VALUE;
	if (!rc && --m->refs == 0)
		gp__sim_mem_release_locked(m);
	gp__sim_unlock();
	return rc;
}
