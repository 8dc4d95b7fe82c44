/* array.h - CUDA arrays and mipmapped arrays.
 *
 * An array's elements are stored linearly (row after row, slice after
 * slice) in lazily backed device memory.  It is charged
 * round_up(width * height * depth * element size, GP_SIM_GRANULE) (a
 * mipmapped array: the sum of its levels, each rounded to
 * GP_SIM_ARRAY_LEVEL_ALIGN, then to the granule), exactly what
 * cuArrayGetMemoryRequirements / cuMipmappedArrayGetMemoryRequirements
 * report, with alignment GP_SIM_GRANULE.
 */
#ifndef GP_SIM_ARRAY_H
#define GP_SIM_ARRAY_H

#include "sim/context.h"

#define GP_SIM_ARRAY_LEVEL_ALIGN 512u

/* Where array `h`'s bytes are: base, bytes per row, rows, slices and
 * total bytes.  CUDA_ERROR_INVALID_VALUE if `h` is not a live array.
 * Lock held. */
CUresult gp__sim_array_storage_locked(CUarray h, char **base, size_t *rowbytes,
				      size_t *height, size_t *depth, size_t *bytes) GP_SIM_WUR;

/* Destroy every array and mipmapped array of `ctx`.  Lock held. */
void gp__sim_array_ctx_gone_locked(struct gp_sim_ctx *ctx);

#endif
