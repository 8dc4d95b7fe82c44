/* launch.c - kernel launches.
 *
 * Interposed so that compute shares can be enforced where launches happen;
 * with no compute limit a launch costs one predictable branch and a jump
 * to the driver (bench/hook_overhead measures it).
 */
#include "hook/hook.h"

GP_EXPORT CUresult CUDAAPI cuLaunchKernel(CUfunction f, unsigned int gridDimX,
					  unsigned int gridDimY, unsigned int gridDimZ,
					  unsigned int blockDimX, unsigned int blockDimY,
					  unsigned int blockDimZ, unsigned int sharedMemBytes,
					  CUstream hStream, void **kernelParams, void **extra)
{
	GP_NEED_REAL(cuLaunchKernel);
	return gp__real_cuLaunchKernel(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY,
				       blockDimZ, sharedMemBytes, hStream, kernelParams, extra);
}

GP_EXPORT CUresult CUDAAPI cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX,
					       unsigned int gridDimY, unsigned int gridDimZ,
					       unsigned int blockDimX, unsigned int blockDimY,
					       unsigned int blockDimZ, unsigned int sharedMemBytes,
					       CUstream hStream, void **kernelParams, void **extra)
{
	GP_NEED_REAL(cuLaunchKernel_ptsz);
	return gp__real_cuLaunchKernel_ptsz(f, gridDimX, gridDimY, gridDimZ, blockDimX,
					    blockDimY, blockDimZ, sharedMemBytes, hStream,
					    kernelParams, extra);
}

GP_EXPORT CUresult CUDAAPI cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f,
					    void **kernelParams, void **extra)
{
	GP_NEED_REAL(cuLaunchKernelEx);
	return gp__real_cuLaunchKernelEx(config, f, kernelParams, extra);
}

GP_EXPORT CUresult CUDAAPI cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f,
						 void **kernelParams, void **extra)
{
	GP_NEED_REAL(cuLaunchKernelEx_ptsz);
	return gp__real_cuLaunchKernelEx_ptsz(config, f, kernelParams, extra);
}

GP_EXPORT CUresult CUDAAPI cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX,
						     unsigned int gridDimY, unsigned int gridDimZ,
						     unsigned int blockDimX, unsigned int blockDimY,
						     unsigned int blockDimZ,
						     unsigned int sharedMemBytes, CUstream hStream,
						     void **kernelParams)
{
	GP_NEED_REAL(cuLaunchCooperativeKernel);
	return gp__real_cuLaunchCooperativeKernel(f, gridDimX, gridDimY, gridDimZ, blockDimX,
						  blockDimY, blockDimZ, sharedMemBytes, hStream,
						  kernelParams);
}

GP_EXPORT CUresult CUDAAPI cuLaunchCooperativeKernel_ptsz(
	CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
	unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
	unsigned int sharedMemBytes, CUstream hStream, void **kernelParams)
{
	GP_NEED_REAL(cuLaunchCooperativeKernel_ptsz);
	return gp__real_cuLaunchCooperativeKernel_ptsz(f, gridDimX, gridDimY, gridDimZ, blockDimX,
						       blockDimY, blockDimZ, sharedMemBytes,
						       hStream, kernelParams);
}
