/* copy.c - see copy.h.  Entry points: every cuMemcpy* and cuMemset*.
 *
 * Synchronous copies first wait (without a lock) for the work before them
 * on the NULL stream, as the real ones do; synchronous memsets are, as on
 * the real driver, asynchronous to the host.  Asynchronous ones run at
 * once (eager execution) and, on a capturing stream, become graph nodes.
 */
#include "sim/copy.h"

#include <string.h>

#include "common/clock.h"
#include "sim/array.h"
#include "sim/capture.h"
#include "sim/memory.h"
#include "sim/stream.h"

/* One endpoint of a copy, resolved to where its rows are. */
struct end {
	CUmemorytype type;
	uint64_t base;      /* address of (0, 0, 0) of the copy */
	size_t pitch;       /* bytes between rows */
	size_t height;      /* rows between slices */
	char *array;        /* array storage (ARRAY types) */
	size_t array_bytes;
};

/* Host pointer to `n` bytes at `a` for an endpoint of `type`; the number of
 * contiguous bytes there (0: invalid). */
static size_t span_at(CUmemorytype type, uint64_t a, size_t n, char **p)
{
	void *host;
	int dev;

	if (type == CU_MEMORYTYPE_HOST || (type == CU_MEMORYTYPE_UNIFIED && !gp__sim_is_device_addr(a))) {
		if (!a)
			return 0;
		*p = (char *)(uintptr_t)a;
		return n;
	}
	n = gp__sim_resolve_locked(a, n, &host, &dev);
	*p = host;
	return n;
}

/* Copy n bytes of one row. */
static CUresult copy_row(CUmemorytype dt, uint64_t dst, CUmemorytype st, uint64_t src, size_t n)
{
	while (n) {
		char *dp, *sp;
		size_t k = span_at(dt, dst, n, &dp);
		if (k)
			k = span_at(st, src, k, &sp);
		if (!k)
			return CUDA_ERROR_INVALID_VALUE;
		memmove(dp, sp, k);
		dst += k;
		src += k;
		n -= k;
	}
	return CUDA_SUCCESS;
}

/* Resolve one endpoint of p (src when `is_src`). */
static CUresult endpoint(const CUDA_MEMCPY3D *p, int is_src, struct end *e)
{
	CUmemorytype t = is_src ? p->srcMemoryType : p->dstMemoryType;
	size_t x = is_src ? p->srcXInBytes : p->dstXInBytes;
	size_t y = is_src ? p->srcY : p->dstY, z = is_src ? p->srcZ : p->dstZ;
	size_t rowb, rows, slices;
	CUresult rc;

	memset(e, 0, sizeof *e);
	e->type = t;
	if (t == CU_MEMORYTYPE_ARRAY || t == GP_SIM_MEMORYTYPE_ARRAY_LINEAR) {
		rc = gp__sim_array_storage_locked(is_src ? p->srcArray : p->dstArray, &e->array,
						  &rowb, &rows, &slices, &e->array_bytes);
		if (rc)
			return rc;
		if (t == GP_SIM_MEMORYTYPE_ARRAY_LINEAR) {
			if (x > e->array_bytes || p->WidthInBytes > e->array_bytes - x)
				return CUDA_ERROR_INVALID_VALUE;
			e->pitch = p->WidthInBytes;
			e->height = 1;
		} else {
			if (x > rowb || p->WidthInBytes > rowb - x || y + p->Height > rows ||
			    z + p->Depth > slices)
				return CUDA_ERROR_INVALID_VALUE;
			e->pitch = rowb;
			e->height = rows;
			x += (z * rows + y) * rowb;
		}
		e->base = (uint64_t)(uintptr_t)(e->array + x);
		e->type = CU_MEMORYTYPE_HOST; /* storage is mapped: address it directly */
		return CUDA_SUCCESS;
	}
	if (t != CU_MEMORYTYPE_HOST && t != CU_MEMORYTYPE_DEVICE && t != CU_MEMORYTYPE_UNIFIED)
		return CUDA_ERROR_INVALID_VALUE;
	e->pitch = is_src ? p->srcPitch : p->dstPitch;
	e->height = is_src ? p->srcHeight : p->dstHeight;
	e->base = t == CU_MEMORYTYPE_HOST
			  ? (uint64_t)(uintptr_t)(is_src ? p->srcHost : p->dstHost)
			  : (uint64_t)(is_src ? p->srcDevice : p->dstDevice);
	if (!e->base)
		return CUDA_ERROR_INVALID_VALUE;
	if ((p->Height > 1 || p->Depth > 1) && e->pitch < x + p->WidthInBytes)
		return CUDA_ERROR_INVALID_VALUE;
	if (p->Depth > 1 && e->height < y + p->Height)
		return CUDA_ERROR_INVALID_VALUE;
	e->base += (z * e->height + y) * e->pitch + x;
	return CUDA_SUCCESS;
}

CUresult gp__sim_copy3d_locked(const CUDA_MEMCPY3D *p)
{
	struct end s, d;
	CUresult rc;

	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	if (!p->WidthInBytes || !p->Height || !p->Depth)
		return CUDA_SUCCESS;
	rc = endpoint(p, 1, &s);
	if (!rc)
		rc = endpoint(p, 0, &d);
	for (size_t z = 0; !rc && z < p->Depth; z++)
		for (size_t y = 0; !rc && y < p->Height; y++)
			rc = copy_row(d.type, d.base + (z * d.height + y) * d.pitch, s.type,
				      s.base + (z * s.height + y) * s.pitch, p->WidthInBytes);
	return rc;
}

/* Zero [dst, dst+n) of device memory cheaply when it is file-backed:
 * punch whole pages out of the file (they read back as zeroes and cost
 * nothing), write the edges.  Returns 1 when done. */
static int zero_fast(uint64_t dst, size_t n)
{
	struct gp_sim_mem *m = gp__sim_mem_find_locked(dst);
	uint64_t page = 4096, lo, hi, off;

	if (!m || m->fd < 0 || !m->host || m->own_fd || dst - m->base > m->size ||
	    n > m->size - (dst - m->base) || n < 4 * page)
		return 0;
	off = m->off + (dst - m->base);
	lo = GP_SIM_ROUND_UP(off, page);
	hi = (off + n) / page * page;
	memset((char *)m->host + (dst - m->base), 0, lo - off);
	gp__sim_backing_zero(m->fd, lo, hi - lo);
	memset((char *)m->host + (hi - m->off), 0, off + n - hi);
	return 1;
}

CUresult gp__sim_memset_locked(uint64_t dst, size_t pitch, uint32_t value, unsigned elsize,
			       size_t width, size_t height)
{
	if (!dst || (elsize != 1 && elsize != 2 && elsize != 4) || dst % elsize)
		return CUDA_ERROR_INVALID_VALUE;
	if (height > 1 && (pitch < width * elsize || pitch % elsize))
		return CUDA_ERROR_INVALID_VALUE;
	if (width > SIZE_MAX / 4)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t y = 0; y < height; y++) {
		uint64_t a = dst + y * pitch;
		size_t left = width * elsize;

		if (value == 0 && zero_fast(a, left))
			continue;
		while (left) {
			char *p;
			/* Device-accessible memory only: device, managed or
			 * page-locked host memory, never a plain host pointer. */
			size_t k = span_at(CU_MEMORYTYPE_DEVICE, a, left, &p);
			if (k < elsize)
				return CUDA_ERROR_INVALID_VALUE;
			k -= k % elsize;
			if (elsize == 1)
				memset(p, (int)(value & 0xff), k);
			else if (elsize == 2)
				for (size_t i = 0; i < k / 2; i++)
					((uint16_t *)(void *)p)[i] = (uint16_t)value;
			else
				for (size_t i = 0; i < k / 4; i++)
					((uint32_t *)(void *)p)[i] = value;
			a += k;
			left -= k;
		}
	}
	return CUDA_SUCCESS;
}

/* --- the engines behind the entry points -------------------------------- */

/* Run copy p: `async` on hStream (or a memcpy node when it captures),
 * else synchronously on the NULL stream. */
static CUresult do_copy(const CUDA_MEMCPY3D *p, int async, CUstream hStream, int ptds)
{
	struct gp_sim_stream *s;
	struct gp_sim_ctx *c;
	struct gp_sim_node *n;
	uint64_t until;
	CUresult rc;

	GP_SIM_ENTER();
	gp__sim_lock();
	if (!async) {
		rc = gp__sim_sync_op_locked(ptds, &until, &c);
		gp__sim_unlock();
		if (rc)
			return rc;
		gp_sleep_until_ns(until);
		gp__sim_lock();
		rc = gp__sim_copy3d_locked(p);
		gp__sim_unlock();
		return rc;
	}
	rc = gp__sim_stream_get_locked(hStream, ptds, &s);
	if (rc)
		goto out;
	if (s->cap) {
		rc = gp__sim_capture_node_locked(s, CU_GRAPH_NODE_TYPE_MEMCPY, &n);
		if (!rc)
			n->u.copy.p = *p;
		goto out;
	}
	rc = gp__sim_capture_legacy_check_locked(s);
	if (!rc)
		rc = gp__sim_copy3d_locked(p);
	if (!rc)
		gp__sim_stream_done_locked(s, gp__sim_stream_ready_locked(s));
out:
	gp__sim_unlock();
	return rc;
}

/* A 1-D copy as a CUDA_MEMCPY3D. */
static void one_d(CUDA_MEMCPY3D *p, CUmemorytype dt, uint64_t dst, CUmemorytype st, uint64_t src,
		  size_t n)
{
	memset(p, 0, sizeof *p);
	p->dstMemoryType = dt;
	p->srcMemoryType = st;
	if (dt == CU_MEMORYTYPE_HOST)
		p->dstHost = (void *)(uintptr_t)dst;
	else
		p->dstDevice = (CUdeviceptr)dst;
	if (st == CU_MEMORYTYPE_HOST)
		p->srcHost = (const void *)(uintptr_t)src;
	else
		p->srcDevice = (CUdeviceptr)src;
	p->WidthInBytes = n;
	p->Height = 1;
	p->Depth = 1;
}

static CUresult copy_1d(CUmemorytype dt, uint64_t dst, CUmemorytype st, uint64_t src, size_t n,
			int async, CUstream h, int ptds)
{
	CUDA_MEMCPY3D p;

	if (n == 0)
		return gp__sim_arg_error(CUDA_SUCCESS);
	if (!dst || !src)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	one_d(&p, dt, dst, st, src, n);
	return do_copy(&p, async, h, ptds);
}

/* A copy to or from an array at a linear byte offset. */
static CUresult copy_array_1d(CUarray da, size_t doff, CUmemorytype dt, uint64_t dst, CUarray sa,
			      size_t soff, CUmemorytype st, uint64_t src, size_t n, int async,
			      CUstream h, int ptds)
{
	CUDA_MEMCPY3D p;

	if (n == 0)
		return gp__sim_arg_error(CUDA_SUCCESS);
	one_d(&p, dt, dst, st, src, n);
	if (da) {
		p.dstMemoryType = GP_SIM_MEMORYTYPE_ARRAY_LINEAR;
		p.dstArray = da;
		p.dstXInBytes = doff;
	}
	if (sa) {
		p.srcMemoryType = GP_SIM_MEMORYTYPE_ARRAY_LINEAR;
		p.srcArray = sa;
		p.srcXInBytes = soff;
	}
	return do_copy(&p, async, h, ptds);
}

static void from_2d(CUDA_MEMCPY3D *p, const CUDA_MEMCPY2D *q)
{
	memset(p, 0, sizeof *p);
	p->srcXInBytes = q->srcXInBytes;
	p->srcY = q->srcY;
	p->srcMemoryType = q->srcMemoryType;
	p->srcHost = q->srcHost;
	p->srcDevice = q->srcDevice;
	p->srcArray = q->srcArray;
	p->srcPitch = q->srcPitch;
	p->srcHeight = q->srcY + q->Height;
	p->dstXInBytes = q->dstXInBytes;
	p->dstY = q->dstY;
	p->dstMemoryType = q->dstMemoryType;
	p->dstHost = q->dstHost;
	p->dstDevice = q->dstDevice;
	p->dstArray = q->dstArray;
	p->dstPitch = q->dstPitch;
	p->dstHeight = q->dstY + q->Height;
	p->WidthInBytes = q->WidthInBytes;
	p->Height = q->Height;
	p->Depth = 1;
}

static CUresult copy_2d(const CUDA_MEMCPY2D *q, int async, CUstream h, int ptds)
{
	CUDA_MEMCPY3D p;

	if (!q)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	from_2d(&p, q);
	return do_copy(&p, async, h, ptds);
}

static CUresult copy_3d(const CUDA_MEMCPY3D *p, int async, CUstream h, int ptds)
{
	if (!p || p->reserved0 || p->reserved1 || p->srcLOD || p->dstLOD)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	return do_copy(p, async, h, ptds);
}

static CUresult copy_3d_peer(const CUDA_MEMCPY3D_PEER *q, int async, CUstream h, int ptds)
{
	CUDA_MEMCPY3D p;

	if (!q)
		return gp__sim_arg_error(CUDA_ERROR_INVALID_VALUE);
	memset(&p, 0, sizeof p);
	p.srcXInBytes = q->srcXInBytes;
	p.srcY = q->srcY;
	p.srcZ = q->srcZ;
	p.srcMemoryType = q->srcMemoryType;
	p.srcHost = q->srcHost;
	p.srcDevice = q->srcDevice;
	p.srcArray = q->srcArray;
	p.srcPitch = q->srcPitch;
	p.srcHeight = q->srcHeight;
	p.dstXInBytes = q->dstXInBytes;
	p.dstY = q->dstY;
	p.dstZ = q->dstZ;
	p.dstMemoryType = q->dstMemoryType;
	p.dstHost = q->dstHost;
	p.dstDevice = q->dstDevice;
	p.dstArray = q->dstArray;
	p.dstPitch = q->dstPitch;
	p.dstHeight = q->dstHeight;
	p.WidthInBytes = q->WidthInBytes;
	p.Height = q->Height;
	p.Depth = q->Depth;
	return do_copy(&p, async, h, ptds);
}

/* Memset on hStream (async) or on the NULL stream (the synchronous entry
 * points, which the real driver runs asynchronously too). */
static CUresult do_memset(uint64_t dst, size_t pitch, uint32_t value, unsigned elsize,
			  size_t width, size_t height, int async, CUstream h, int ptds)
{
	struct gp_sim_stream *s;
	struct gp_sim_node *n;
	CUresult rc;

	GP_SIM_ENTER();
	if (!width || !height)
		return CUDA_SUCCESS;
	gp__sim_lock();
	rc = gp__sim_stream_get_locked(async ? h : NULL, ptds, &s);
	if (rc)
		goto out;
	if (s->cap) {
		rc = gp__sim_capture_node_locked(s, CU_GRAPH_NODE_TYPE_MEMSET, &n);
		if (!rc) {
			n->u.memset.dst = (CUdeviceptr)dst;
			n->u.memset.pitch = pitch;
			n->u.memset.value = value;
			n->u.memset.elementSize = elsize;
			n->u.memset.width = width;
			n->u.memset.height = height;
		}
		goto out;
	}
	rc = gp__sim_capture_legacy_check_locked(s);
	if (!rc)
		rc = gp__sim_memset_locked(dst, pitch, value, elsize, width, height);
out:
	gp__sim_unlock();
	return rc;
}

/* --- entry points -------------------------------------------------------- */

#define H CU_MEMORYTYPE_HOST
#define D CU_MEMORYTYPE_DEVICE
#define U CU_MEMORYTYPE_UNIFIED
#define HP(p) ((uint64_t)(uintptr_t)(p))

/* Each copy comes as a legacy-stream entry point and a per-thread one. */
#define SYNC_PAIR(name, params, call0, call1)                                \
	CUresult name params { return call0; }                                   \
	CUresult name##_ptds params { return call1; }
#define ASYNC_PAIR(name, params, call0, call1)                               \
	CUresult name params { return call0; }                                   \
	CUresult name##_ptsz params { return call1; }

SYNC_PAIR(cuMemcpy, (CUdeviceptr dst, CUdeviceptr src, size_t ByteCount),
	  copy_1d(U, dst, U, src, ByteCount, 0, NULL, 0),
	  copy_1d(U, dst, U, src, ByteCount, 0, NULL, 1))
ASYNC_PAIR(cuMemcpyAsync, (CUdeviceptr dst, CUdeviceptr src, size_t ByteCount, CUstream hStream),
	   copy_1d(U, dst, U, src, ByteCount, 1, hStream, 0),
	   copy_1d(U, dst, U, src, ByteCount, 1, hStream, 1))
SYNC_PAIR(cuMemcpyHtoD_v2, (CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount),
	  copy_1d(D, dstDevice, H, HP(srcHost), ByteCount, 0, NULL, 0),
	  copy_1d(D, dstDevice, H, HP(srcHost), ByteCount, 0, NULL, 1))
SYNC_PAIR(cuMemcpyDtoH_v2, (void *dstHost, CUdeviceptr srcDevice, size_t ByteCount),
	  copy_1d(H, HP(dstHost), D, srcDevice, ByteCount, 0, NULL, 0),
	  copy_1d(H, HP(dstHost), D, srcDevice, ByteCount, 0, NULL, 1))
SYNC_PAIR(cuMemcpyDtoD_v2, (CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount),
	  copy_1d(D, dstDevice, D, srcDevice, ByteCount, 0, NULL, 0),
	  copy_1d(D, dstDevice, D, srcDevice, ByteCount, 0, NULL, 1))
ASYNC_PAIR(cuMemcpyHtoDAsync_v2,
	   (CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream),
	   copy_1d(D, dstDevice, H, HP(srcHost), ByteCount, 1, hStream, 0),
	   copy_1d(D, dstDevice, H, HP(srcHost), ByteCount, 1, hStream, 1))
ASYNC_PAIR(cuMemcpyDtoHAsync_v2,
	   (void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream),
	   copy_1d(H, HP(dstHost), D, srcDevice, ByteCount, 1, hStream, 0),
	   copy_1d(H, HP(dstHost), D, srcDevice, ByteCount, 1, hStream, 1))
ASYNC_PAIR(cuMemcpyDtoDAsync_v2,
	   (CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream),
	   copy_1d(D, dstDevice, D, srcDevice, ByteCount, 1, hStream, 0),
	   copy_1d(D, dstDevice, D, srcDevice, ByteCount, 1, hStream, 1))
SYNC_PAIR(cuMemcpyPeer,
	  (CUdeviceptr dstDevice, CUcontext dstContext, CUdeviceptr srcDevice,
	   CUcontext srcContext, size_t ByteCount),
	  ((void)dstContext, (void)srcContext,
	   copy_1d(D, dstDevice, D, srcDevice, ByteCount, 0, NULL, 0)),
	  ((void)dstContext, (void)srcContext,
	   copy_1d(D, dstDevice, D, srcDevice, ByteCount, 0, NULL, 1)))
ASYNC_PAIR(cuMemcpyPeerAsync,
	   (CUdeviceptr dstDevice, CUcontext dstContext, CUdeviceptr srcDevice,
	    CUcontext srcContext, size_t ByteCount, CUstream hStream),
	   ((void)dstContext, (void)srcContext,
	    copy_1d(D, dstDevice, D, srcDevice, ByteCount, 1, hStream, 0)),
	   ((void)dstContext, (void)srcContext,
	    copy_1d(D, dstDevice, D, srcDevice, ByteCount, 1, hStream, 1)))

SYNC_PAIR(cuMemcpyHtoA_v2,
	  (CUarray dstArray, size_t dstOffset, const void *srcHost, size_t ByteCount),
	  copy_array_1d(dstArray, dstOffset, H, 0, NULL, 0, H, HP(srcHost), ByteCount, 0, NULL, 0),
	  copy_array_1d(dstArray, dstOffset, H, 0, NULL, 0, H, HP(srcHost), ByteCount, 0, NULL, 1))
SYNC_PAIR(cuMemcpyAtoH_v2,
	  (void *dstHost, CUarray srcArray, size_t srcOffset, size_t ByteCount),
	  copy_array_1d(NULL, 0, H, HP(dstHost), srcArray, srcOffset, H, 0, ByteCount, 0, NULL, 0),
	  copy_array_1d(NULL, 0, H, HP(dstHost), srcArray, srcOffset, H, 0, ByteCount, 0, NULL, 1))
SYNC_PAIR(cuMemcpyDtoA_v2,
	  (CUarray dstArray, size_t dstOffset, CUdeviceptr srcDevice, size_t ByteCount),
	  copy_array_1d(dstArray, dstOffset, H, 0, NULL, 0, D, srcDevice, ByteCount, 0, NULL, 0),
	  copy_array_1d(dstArray, dstOffset, H, 0, NULL, 0, D, srcDevice, ByteCount, 0, NULL, 1))
SYNC_PAIR(cuMemcpyAtoD_v2,
	  (CUdeviceptr dstDevice, CUarray srcArray, size_t srcOffset, size_t ByteCount),
	  copy_array_1d(NULL, 0, D, dstDevice, srcArray, srcOffset, H, 0, ByteCount, 0, NULL, 0),
	  copy_array_1d(NULL, 0, D, dstDevice, srcArray, srcOffset, H, 0, ByteCount, 0, NULL, 1))
SYNC_PAIR(cuMemcpyAtoA_v2,
	  (CUarray dstArray, size_t dstOffset, CUarray srcArray, size_t srcOffset, size_t ByteCount),
	  copy_array_1d(dstArray, dstOffset, H, 0, srcArray, srcOffset, H, 0, ByteCount, 0, NULL, 0),
	  copy_array_1d(dstArray, dstOffset, H, 0, srcArray, srcOffset, H, 0, ByteCount, 0, NULL, 1))
ASYNC_PAIR(cuMemcpyHtoAAsync_v2,
	   (CUarray dstArray, size_t dstOffset, const void *srcHost, size_t ByteCount, CUstream hStream),
	   copy_array_1d(dstArray, dstOffset, H, 0, NULL, 0, H, HP(srcHost), ByteCount, 1, hStream, 0),
	   copy_array_1d(dstArray, dstOffset, H, 0, NULL, 0, H, HP(srcHost), ByteCount, 1, hStream, 1))
ASYNC_PAIR(cuMemcpyAtoHAsync_v2,
	   (void *dstHost, CUarray srcArray, size_t srcOffset, size_t ByteCount, CUstream hStream),
	   copy_array_1d(NULL, 0, H, HP(dstHost), srcArray, srcOffset, H, 0, ByteCount, 1, hStream, 0),
	   copy_array_1d(NULL, 0, H, HP(dstHost), srcArray, srcOffset, H, 0, ByteCount, 1, hStream, 1))

SYNC_PAIR(cuMemcpy2D_v2, (const CUDA_MEMCPY2D *pCopy), copy_2d(pCopy, 0, NULL, 0),
	  copy_2d(pCopy, 0, NULL, 1))
SYNC_PAIR(cuMemcpy2DUnaligned_v2, (const CUDA_MEMCPY2D *pCopy), copy_2d(pCopy, 0, NULL, 0),
	  copy_2d(pCopy, 0, NULL, 1))
ASYNC_PAIR(cuMemcpy2DAsync_v2, (const CUDA_MEMCPY2D *pCopy, CUstream hStream),
	   copy_2d(pCopy, 1, hStream, 0), copy_2d(pCopy, 1, hStream, 1))
SYNC_PAIR(cuMemcpy3D_v2, (const CUDA_MEMCPY3D *pCopy), copy_3d(pCopy, 0, NULL, 0),
	  copy_3d(pCopy, 0, NULL, 1))
ASYNC_PAIR(cuMemcpy3DAsync_v2, (const CUDA_MEMCPY3D *pCopy, CUstream hStream),
	   copy_3d(pCopy, 1, hStream, 0), copy_3d(pCopy, 1, hStream, 1))
SYNC_PAIR(cuMemcpy3DPeer, (const CUDA_MEMCPY3D_PEER *pCopy), copy_3d_peer(pCopy, 0, NULL, 0),
	  copy_3d_peer(pCopy, 0, NULL, 1))
ASYNC_PAIR(cuMemcpy3DPeerAsync, (const CUDA_MEMCPY3D_PEER *pCopy, CUstream hStream),
	   copy_3d_peer(pCopy, 1, hStream, 0), copy_3d_peer(pCopy, 1, hStream, 1))

SYNC_PAIR(cuMemsetD8_v2, (CUdeviceptr dstDevice, unsigned char uc, size_t N),
	  do_memset(dstDevice, 0, uc, 1, N, 1, 0, NULL, 0),
	  do_memset(dstDevice, 0, uc, 1, N, 1, 0, NULL, 1))
SYNC_PAIR(cuMemsetD16_v2, (CUdeviceptr dstDevice, unsigned short us, size_t N),
	  do_memset(dstDevice, 0, us, 2, N, 1, 0, NULL, 0),
	  do_memset(dstDevice, 0, us, 2, N, 1, 0, NULL, 1))
SYNC_PAIR(cuMemsetD32_v2, (CUdeviceptr dstDevice, unsigned int ui, size_t N),
	  do_memset(dstDevice, 0, ui, 4, N, 1, 0, NULL, 0),
	  do_memset(dstDevice, 0, ui, 4, N, 1, 0, NULL, 1))
SYNC_PAIR(cuMemsetD2D8_v2,
	  (CUdeviceptr dstDevice, size_t dstPitch, unsigned char uc, size_t Width, size_t Height),
	  do_memset(dstDevice, dstPitch, uc, 1, Width, Height, 0, NULL, 0),
	  do_memset(dstDevice, dstPitch, uc, 1, Width, Height, 0, NULL, 1))
SYNC_PAIR(cuMemsetD2D16_v2,
	  (CUdeviceptr dstDevice, size_t dstPitch, unsigned short us, size_t Width, size_t Height),
	  do_memset(dstDevice, dstPitch, us, 2, Width, Height, 0, NULL, 0),
	  do_memset(dstDevice, dstPitch, us, 2, Width, Height, 0, NULL, 1))
SYNC_PAIR(cuMemsetD2D32_v2,
	  (CUdeviceptr dstDevice, size_t dstPitch, unsigned int ui, size_t Width, size_t Height),
	  do_memset(dstDevice, dstPitch, ui, 4, Width, Height, 0, NULL, 0),
	  do_memset(dstDevice, dstPitch, ui, 4, Width, Height, 0, NULL, 1))
ASYNC_PAIR(cuMemsetD8Async, (CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream),
	   do_memset(dstDevice, 0, uc, 1, N, 1, 1, hStream, 0),
	   do_memset(dstDevice, 0, uc, 1, N, 1, 1, hStream, 1))
ASYNC_PAIR(cuMemsetD16Async, (CUdeviceptr dstDevice, unsigned short us, size_t N, CUstream hStream),
	   do_memset(dstDevice, 0, us, 2, N, 1, 1, hStream, 0),
	   do_memset(dstDevice, 0, us, 2, N, 1, 1, hStream, 1))
ASYNC_PAIR(cuMemsetD32Async, (CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream),
	   do_memset(dstDevice, 0, ui, 4, N, 1, 1, hStream, 0),
	   do_memset(dstDevice, 0, ui, 4, N, 1, 1, hStream, 1))
ASYNC_PAIR(cuMemsetD2D8Async,
	   (CUdeviceptr dstDevice, size_t dstPitch, unsigned char uc, size_t Width, size_t Height,
	    CUstream hStream),
	   do_memset(dstDevice, dstPitch, uc, 1, Width, Height, 1, hStream, 0),
	   do_memset(dstDevice, dstPitch, uc, 1, Width, Height, 1, hStream, 1))
ASYNC_PAIR(cuMemsetD2D16Async,
	   (CUdeviceptr dstDevice, size_t dstPitch, unsigned short us, size_t Width, size_t Height,
	    CUstream hStream),
	   do_memset(dstDevice, dstPitch, us, 2, Width, Height, 1, hStream, 0),
	   do_memset(dstDevice, dstPitch, us, 2, Width, Height, 1, hStream, 1))
ASYNC_PAIR(cuMemsetD2D32Async,
	   (CUdeviceptr dstDevice, size_t dstPitch, unsigned int ui, size_t Width, size_t Height,
	    CUstream hStream),
	   do_memset(dstDevice, dstPitch, ui, 4, Width, Height, 1, hStream, 0),
	   do_memset(dstDevice, dstPitch, ui, 4, Width, Height, 1, hStream, 1))
