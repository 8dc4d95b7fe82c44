/* copy.c - copies and memsets: every cuMemcpy* and cuMemset* entry point
 * the driver exports, each handing the call to the driver unchanged and,
 * when the driver took it, stamping its device's `last_copy_ns` in the
 * region (activity.c).
 *
 * They take no memory, so nothing else is done; they are interposed because
 * a tenant that only moves data (a pipeline stage, a cache) is as busy as
 * one that launches kernels, and the node agent must not take it for idle.
 * Every variant is here -- the 32-bit ones of CUDA before 3.2, _v2, the
 * per-thread default stream forms (_ptds for synchronous calls, _ptsz for
 * those with a stream), 2D/3D, peer and batch copies -- because a program
 * may reach any of them, by name through dlsym or by version and stream
 * flags through cuGetProcAddress, which hands out our definition of
 * whichever variant the driver picks (procaddr.c).  Each is one line of
 * hooks.def and one line below; the compiler checks every parameter list
 * against cuda.h.
 */
#include "hook/hook.h"

/* One hook: the driver with the same arguments, then the stamp if it took
 * the call (hook.h). */
#define COPY(n, params, args) GP_ACT_HOOK(n, params, args, GP_ACT_COPY)

/* A synchronous call and its per-thread default stream form (_ptds). */
#define SYNC(n, params, args) COPY(n, params, args) COPY(n##_ptds, params, args)

/* A call with a stream and its per-thread default stream form (_ptsz). */
#define ASYNC(n, params, args) COPY(n, params, args) COPY(n##_ptsz, params, args)

/* --- by unified address, and between contexts ------------------------------ */

SYNC(cuMemcpy, (CUdeviceptr dst, CUdeviceptr src, size_t n), (dst, src, n))
ASYNC(cuMemcpyAsync, (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s), (dst, src, n, s))
SYNC(cuMemcpyPeer, (CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n),
     (dst, dctx, src, sctx, n))
ASYNC(cuMemcpyPeerAsync,
      (CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n, CUstream s),
      (dst, dctx, src, sctx, n, s))
SYNC(cuMemcpy3DPeer, (const CUDA_MEMCPY3D_PEER *p), (p))
ASYNC(cuMemcpy3DPeerAsync, (const CUDA_MEMCPY3D_PEER *p, CUstream s), (p, s))

/* --- between host, device and arrays (_v2: 64-bit sizes) ------------------- */

SYNC(cuMemcpyHtoD_v2, (CUdeviceptr dst, const void *src, size_t n), (dst, src, n))
SYNC(cuMemcpyDtoH_v2, (void *dst, CUdeviceptr src, size_t n), (dst, src, n))
SYNC(cuMemcpyDtoD_v2, (CUdeviceptr dst, CUdeviceptr src, size_t n), (dst, src, n))
SYNC(cuMemcpyDtoA_v2, (CUarray dst, size_t doff, CUdeviceptr src, size_t n), (dst, doff, src, n))
SYNC(cuMemcpyAtoD_v2, (CUdeviceptr dst, CUarray src, size_t soff, size_t n), (dst, src, soff, n))
SYNC(cuMemcpyHtoA_v2, (CUarray dst, size_t doff, const void *src, size_t n), (dst, doff, src, n))
SYNC(cuMemcpyAtoH_v2, (void *dst, CUarray src, size_t soff, size_t n), (dst, src, soff, n))
SYNC(cuMemcpyAtoA_v2, (CUarray dst, size_t doff, CUarray src, size_t soff, size_t n),
     (dst, doff, src, soff, n))
SYNC(cuMemcpy2D_v2, (const CUDA_MEMCPY2D *p), (p))
SYNC(cuMemcpy2DUnaligned_v2, (const CUDA_MEMCPY2D *p), (p))
SYNC(cuMemcpy3D_v2, (const CUDA_MEMCPY3D *p), (p))
ASYNC(cuMemcpyHtoDAsync_v2, (CUdeviceptr dst, const void *src, size_t n, CUstream s),
      (dst, src, n, s))
ASYNC(cuMemcpyDtoHAsync_v2, (void *dst, CUdeviceptr src, size_t n, CUstream s), (dst, src, n, s))
ASYNC(cuMemcpyDtoDAsync_v2, (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s),
      (dst, src, n, s))
ASYNC(cuMemcpyHtoAAsync_v2, (CUarray dst, size_t doff, const void *src, size_t n, CUstream s),
      (dst, doff, src, n, s))
ASYNC(cuMemcpyAtoHAsync_v2, (void *dst, CUarray src, size_t soff, size_t n, CUstream s),
      (dst, src, soff, n, s))
ASYNC(cuMemcpy2DAsync_v2, (const CUDA_MEMCPY2D *p, CUstream s), (p, s))
ASYNC(cuMemcpy3DAsync_v2, (const CUDA_MEMCPY3D *p, CUstream s), (p, s))

/* --- batches (CUDA 12.8; the _v2 forms of 13.0 drop failIdx) --------------- */

ASYNC(cuMemcpyBatchAsync,
      (CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
       CUmemcpyAttributes *attrs, size_t *attrsIdxs, size_t numAttrs, size_t *failIdx,
       CUstream s),
      (dsts, srcs, sizes, count, attrs, attrsIdxs, numAttrs, failIdx, s))
ASYNC(cuMemcpyBatchAsync_v2,
      (CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
       CUmemcpyAttributes *attrs, size_t *attrsIdxs, size_t numAttrs, CUstream s),
      (dsts, srcs, sizes, count, attrs, attrsIdxs, numAttrs, s))
ASYNC(cuMemcpy3DBatchAsync,
      (size_t numOps, CUDA_MEMCPY3D_BATCH_OP *ops, size_t *failIdx, unsigned long long flags,
       CUstream s),
      (numOps, ops, failIdx, flags, s))
ASYNC(cuMemcpy3DBatchAsync_v2,
      (size_t numOps, CUDA_MEMCPY3D_BATCH_OP *ops, unsigned long long flags, CUstream s),
      (numOps, ops, flags, s))

/* --- memsets ----------------------------------------------------------------- */

SYNC(cuMemsetD8_v2, (CUdeviceptr d, unsigned char v, size_t n), (d, v, n))
SYNC(cuMemsetD16_v2, (CUdeviceptr d, unsigned short v, size_t n), (d, v, n))
SYNC(cuMemsetD32_v2, (CUdeviceptr d, unsigned int v, size_t n), (d, v, n))
SYNC(cuMemsetD2D8_v2, (CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h),
     (d, pitch, v, w, h))
SYNC(cuMemsetD2D16_v2, (CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h),
     (d, pitch, v, w, h))
SYNC(cuMemsetD2D32_v2, (CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h),
     (d, pitch, v, w, h))
ASYNC(cuMemsetD8Async, (CUdeviceptr d, unsigned char v, size_t n, CUstream s), (d, v, n, s))
ASYNC(cuMemsetD16Async, (CUdeviceptr d, unsigned short v, size_t n, CUstream s), (d, v, n, s))
ASYNC(cuMemsetD32Async, (CUdeviceptr d, unsigned int v, size_t n, CUstream s), (d, v, n, s))
ASYNC(cuMemsetD2D8Async,
      (CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h, CUstream s),
      (d, pitch, v, w, h, s))
ASYNC(cuMemsetD2D16Async,
      (CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h, CUstream s),
      (d, pitch, v, w, h, s))
ASYNC(cuMemsetD2D32Async,
      (CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h, CUstream s),
      (d, pitch, v, w, h, s))

/* --- the 32-bit entry points of CUDA before 3.2 -----------------------------
 * Still exported by the driver, reached by dlsym of the plain name or by
 * cuGetProcAddress with an old version; cuda.h (in the internal mode
 * hook.h uses) declares them with 32-bit pointers and sizes.  They have no
 * per-thread forms. */

COPY(cuMemcpyHtoD, (CUdeviceptr_v1 dst, const void *src, unsigned int n), (dst, src, n))
COPY(cuMemcpyDtoH, (void *dst, CUdeviceptr_v1 src, unsigned int n), (dst, src, n))
COPY(cuMemcpyDtoD, (CUdeviceptr_v1 dst, CUdeviceptr_v1 src, unsigned int n), (dst, src, n))
COPY(cuMemcpyDtoA, (CUarray dst, unsigned int doff, CUdeviceptr_v1 src, unsigned int n),
     (dst, doff, src, n))
COPY(cuMemcpyAtoD, (CUdeviceptr_v1 dst, CUarray src, unsigned int soff, unsigned int n),
     (dst, src, soff, n))
COPY(cuMemcpyHtoA, (CUarray dst, unsigned int doff, const void *src, unsigned int n),
     (dst, doff, src, n))
COPY(cuMemcpyAtoH, (void *dst, CUarray src, unsigned int soff, unsigned int n),
     (dst, src, soff, n))
COPY(cuMemcpyAtoA,
     (CUarray dst, unsigned int doff, CUarray src, unsigned int soff, unsigned int n),
     (dst, doff, src, soff, n))
COPY(cuMemcpyHtoAAsync,
     (CUarray dst, unsigned int doff, const void *src, unsigned int n, CUstream s),
     (dst, doff, src, n, s))
COPY(cuMemcpyAtoHAsync, (void *dst, CUarray src, unsigned int soff, unsigned int n, CUstream s),
     (dst, src, soff, n, s))
COPY(cuMemcpy2D, (const CUDA_MEMCPY2D_v1 *p), (p))
COPY(cuMemcpy2DUnaligned, (const CUDA_MEMCPY2D_v1 *p), (p))
COPY(cuMemcpy3D, (const CUDA_MEMCPY3D_v1 *p), (p))
COPY(cuMemcpyHtoDAsync, (CUdeviceptr_v1 dst, const void *src, unsigned int n, CUstream s),
     (dst, src, n, s))
COPY(cuMemcpyDtoHAsync, (void *dst, CUdeviceptr_v1 src, unsigned int n, CUstream s),
     (dst, src, n, s))
COPY(cuMemcpyDtoDAsync, (CUdeviceptr_v1 dst, CUdeviceptr_v1 src, unsigned int n, CUstream s),
     (dst, src, n, s))
COPY(cuMemcpy2DAsync, (const CUDA_MEMCPY2D_v1 *p, CUstream s), (p, s))
COPY(cuMemcpy3DAsync, (const CUDA_MEMCPY3D_v1 *p, CUstream s), (p, s))
COPY(cuMemsetD8, (CUdeviceptr_v1 d, unsigned char v, unsigned int n), (d, v, n))
COPY(cuMemsetD16, (CUdeviceptr_v1 d, unsigned short v, unsigned int n), (d, v, n))
COPY(cuMemsetD32, (CUdeviceptr_v1 d, unsigned int v, unsigned int n), (d, v, n))
COPY(cuMemsetD2D8,
     (CUdeviceptr_v1 d, unsigned int pitch, unsigned char v, unsigned int w, unsigned int h),
     (d, pitch, v, w, h))
COPY(cuMemsetD2D16,
     (CUdeviceptr_v1 d, unsigned int pitch, unsigned short v, unsigned int w, unsigned int h),
     (d, pitch, v, w, h))
COPY(cuMemsetD2D32,
     (CUdeviceptr_v1 d, unsigned int pitch, unsigned int v, unsigned int w, unsigned int h),
     (d, pitch, v, w, h))
