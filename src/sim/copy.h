/* copy.h - moving bytes: copies between host, device, managed memory and
 * arrays, and memsets.  Every device range is checked against the address
 * map first: an address that is not live device memory is
 * CUDA_ERROR_INVALID_VALUE, never a wild host access.
 */
#ifndef GP_SIM_COPY_H
#define GP_SIM_COPY_H

#include "sim/sim.h"

/* A private CUmemorytype: an array addressed by a linear byte offset
 * (srcXInBytes) rather than (x, y, z), for cuMemcpyHtoA and friends. */
#define GP_SIM_MEMORYTYPE_ARRAY_LINEAR ((CUmemorytype)0x100)

/* Perform a 3-D copy now.  Lock held. */
CUresult gp__sim_copy3d_locked(const CUDA_MEMCPY3D *p) GP_SIM_WUR;

/* Set `height` rows of `width` elements of `elsize` bytes (1, 2 or 4),
 * `pitch` bytes apart, to `value`.  Lock held. */
CUresult gp__sim_memset_locked(uint64_t dst, size_t pitch, uint32_t value, unsigned elsize,
			       size_t width, size_t height) GP_SIM_WUR;

#endif
