/* cuda.h - the CUDA driver, loaded at run time, for `gpupool engine`.
 *
 * The gpupool command runs on nodes without a GPU (the scheduler, the
 * scaler), so it does not link libcuda: the engine dlopens it, from the
 * library path, or the simulator's (--sim) by its path, and looks up the
 * functions the loader uses, by their versioned names.
 */
#ifndef GP_SWAP_CUDA_H
#define GP_SWAP_CUDA_H

#include <stddef.h>

#include <cuda.h>

/* Every function the engine calls: X(symbol). */
#define GP_CU_FUNCS(X)                                                           \
	X(cuInit) X(cuGetErrorName) X(cuDeviceGetCount) X(cuDeviceGet)               \
	X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease_v2) X(cuCtxSetCurrent) \
	X(cuMemGetInfo_v2) X(cuMemAlloc_v2) X(cuMemFree_v2) X(cuMemHostAlloc)        \
	X(cuMemFreeHost) X(cuStreamCreate) X(cuStreamDestroy_v2) X(cuStreamSynchronize) \
	X(cuMemcpyHtoDAsync_v2) X(cuMemcpyHtoD_v2) X(cuMemcpyDtoH_v2) X(cuEventCreate) \
	X(cuEventRecord) X(cuEventSynchronize) X(cuEventDestroy_v2)

struct gp_cuda {
	void *dl;          /* the dlopen handle */
	CUdevice dev;
	CUcontext ctx;     /* the device's primary context, current on the
	                      thread that opened it (gp_cuda_bind for others) */
#define GP_CU_FIELD(name) __typeof__(name) *name;
	GP_CU_FUNCS(GP_CU_FIELD)
#undef GP_CU_FIELD
};

/* dlopen `path` (NULL: libcuda.so.1 from the library path), look the
 * functions up, cuInit, and make device `ordinal`'s primary context current
 * on this thread.  Returns 0, -ENOENT (no library), -ENOSYS (a function is
 * missing), -ENODEV (no such device) or -EIO (the driver refused), with the
 * reason in err. */
int gp_cuda_open(struct gp_cuda *cu, const char *path, int ordinal, char *err, size_t len)
	__attribute__((warn_unused_result));

/* Make the context current on the calling thread.  Returns 0 or -EIO. */
int gp_cuda_bind(const struct gp_cuda *cu) __attribute__((warn_unused_result));

/* Release the context (the driver stays loaded: see cuda.c); a zeroed
 * struct is left alone. */
void gp_cuda_close(struct gp_cuda *cu);

/* "CUDA_ERROR_..." for rc (never NULL). */
const char *gp_cuda_str(const struct gp_cuda *cu, CUresult rc);

#endif
