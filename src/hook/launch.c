/* launch.c - kernel launches.
 *
 * Interposed so that compute shares can be enforced where launches happen,
 * and so that each launch the driver takes stamps its device's
 * `last_launch_ns` in the region (activity.c), which tells the node agent
 * the tenant is busy.  Every launch entry point the driver exports is here,
 * the deprecated ones too (cuLaunch, cuLaunchGrid, cuLaunchGridAsync, the
 * multi-device cooperative launch): a program that reached an unhooked one
 * would look idle.  Graph launches stamp in graph.c.  cuLaunchHostFunc is
 * not a kernel (it runs on the host) and is left alone.  With no compute
 * limit a launch costs the driver call, the stamp and a jump
 * (bench/hook_overhead measures it).
 */
#include "hook/hook.h"

/* A launch: the driver, then the stamp (hook.h). */
#define LAUNCH(n, params, args) GP_ACT_HOOK(n, params, args, GP_ACT_LAUNCH)

LAUNCH(cuLaunchKernel,
       (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
	unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
	unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra),
       (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream,
	kernelParams, extra))
LAUNCH(cuLaunchKernel_ptsz,
       (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
	unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
	unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra),
       (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream,
	kernelParams, extra))
LAUNCH(cuLaunchKernelEx,
       (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra),
       (config, f, kernelParams, extra))
LAUNCH(cuLaunchKernelEx_ptsz,
       (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra),
       (config, f, kernelParams, extra))
LAUNCH(cuLaunchCooperativeKernel,
       (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
	unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
	unsigned int sharedMemBytes, CUstream hStream, void **kernelParams),
       (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream,
	kernelParams))
LAUNCH(cuLaunchCooperativeKernel_ptsz,
       (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
	unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
	unsigned int sharedMemBytes, CUstream hStream, void **kernelParams),
       (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream,
	kernelParams))

/* The launches of CUDA before 4.0, still exported: the grid comes from
 * cuFuncSetBlockShape and friends. */
LAUNCH(cuLaunch, (CUfunction f), (f))
LAUNCH(cuLaunchGrid, (CUfunction f, int grid_width, int grid_height), (f, grid_width, grid_height))
LAUNCH(cuLaunchGridAsync, (CUfunction f, int grid_width, int grid_height, CUstream hStream),
       (f, grid_width, grid_height, hStream))

/* One kernel on each of several devices, each on its own stream: stamp
 * the device of every stream rather than the current context's.  The list
 * is read only once the driver accepted it (so it is as long as it says). */
GP_EXPORT CUresult CUDAAPI
cuLaunchCooperativeKernelMultiDevice(CUDA_LAUNCH_PARAMS *launchParamsList, unsigned int numDevices,
				     unsigned int flags)
{
	CUdevice dev;
	CUresult rc;

	GP_NEED_REAL(cuLaunchCooperativeKernelMultiDevice);
	rc = gp__real_cuLaunchCooperativeKernelMultiDevice(launchParamsList, numDevices, flags);
	if (rc == CUDA_SUCCESS && launchParamsList && gp__real_cuStreamGetDevice)
		for (unsigned int i = 0; i < numDevices; i++)
			if (gp__real_cuStreamGetDevice(launchParamsList[i].hStream, &dev) ==
			    CUDA_SUCCESS)
				gp__act_dev((int)dev, GP_ACT_LAUNCH);
	return rc;
}
