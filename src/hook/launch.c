/* launch.c - kernel launches.
 *
 * Interposed so that compute shares and priority are enforced where
 * launches happen (share.c: a metered launch may wait in the launching
 * thread, and is charged the device time it takes), and so that each
 * launch the driver takes stamps its device's `last_launch_ns` in the
 * region (activity.c), which tells the node agent the tenant is busy.
 * Every launch entry point the driver exports is here, the deprecated ones
 * too (cuLaunch, cuLaunchGrid, cuLaunchGridAsync, the multi-device
 * cooperative launch): a program that reached an unhooked one would look
 * idle and escape its share.  Graph launches are in graph.c.
 * cuLaunchHostFunc is not a kernel (it runs on the host) and is left
 * alone.  Without a compute limit or priority a launch costs the driver
 * call, the stamp, one load and a jump (bench/hook_overhead measures it).
 */
#include "hook/hook.h"

/* A launch of `key` on `stream` (`ptsz`: a per-thread-default-stream
 * variant).  n##__fast is the real function once the hook is ready and no
 * device of the process is metered (neither changes after that): then a
 * launch is a load, a test, the driver call and a jump to the stamp, as
 * before compute shares existed.  Until then, and for ever when some
 * device is metered, launches take the cold path: resolve the real
 * function, and put the share around the driver call. */
#define LAUNCH(n, params, args, key, stream, ptsz)                           \
	static __typeof__(n) *n##__fast;                                         \
	static __attribute__((noinline, cold)) CUresult n##__slow params         \
	{                                                                        \
		struct gp__launch l_;                                                \
		__typeof__(n) *real_ = __atomic_load_n(&gp__real_##n, __ATOMIC_ACQUIRE); \
		if (GP_UNLIKELY(!real_)) {                                           \
			CUresult rc_ = gp__need_slow((void **)&gp__real_##n, GP_LIB_CUDA); \
			if (rc_ != CUDA_SUCCESS)                                         \
				return rc_;                                                  \
			real_ = gp__real_##n;                                            \
		}                                                                    \
		if (__atomic_load_n(&gp__share_any, __ATOMIC_ACQUIRE)) {             \
			if (gp__share_begin(&l_, key, stream, ptsz))                     \
				return gp__share_end(&l_, real_ args);                       \
		} else if (__atomic_load_n(&gp__g.ready, __ATOMIC_ACQUIRE)) {        \
			__atomic_store_n(&n##__fast, real_, __ATOMIC_RELAXED);           \
		}                                                                    \
		return gp__act(real_ args, GP_ACT_LAUNCH);                           \
	}                                                                        \
	GP_EXPORT CUresult CUDAAPI n params                                      \
	{                                                                        \
		__typeof__(n) *real_ = __atomic_load_n(&n##__fast, __ATOMIC_RELAXED); \
		if (GP_UNLIKELY(!real_))                                             \
			return n##__slow args;                                           \
		return gp__act(real_ args, GP_ACT_LAUNCH);                           \
	}

#define GRID(x, y, z) ((uint64_t)(x) * (y) * (z))
#define KEY3(f) gp__launch_key(f, GRID(gridDimX, gridDimY, gridDimZ), GRID(blockDimX, blockDimY, blockDimZ))
#define KEYC(f)                                                              \
	(config ? gp__launch_key(f, GRID(config->gridDimX, config->gridDimY, config->gridDimZ), \
				 GRID(config->blockDimX, config->blockDimY, config->blockDimZ)) \
		: 0)

#define P_LAUNCH                                                             \
	(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, \
	 unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,     \
	 unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra)
#define A_LAUNCH                                                             \
	(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, \
	 kernelParams, extra)
#define P_COOP                                                               \
	(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, \
	 unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,     \
	 unsigned int sharedMemBytes, CUstream hStream, void **kernelParams)
#define A_COOP                                                               \
	(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, \
	 kernelParams)
#define P_EX (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra)
#define A_EX (config, f, kernelParams, extra)

LAUNCH(cuLaunchKernel, P_LAUNCH, A_LAUNCH, KEY3(f), hStream, 0)
LAUNCH(cuLaunchKernel_ptsz, P_LAUNCH, A_LAUNCH, KEY3(f), hStream, 1)
LAUNCH(cuLaunchKernelEx, P_EX, A_EX, KEYC(f), config ? config->hStream : NULL, 0)
LAUNCH(cuLaunchKernelEx_ptsz, P_EX, A_EX, KEYC(f), config ? config->hStream : NULL, 1)
LAUNCH(cuLaunchCooperativeKernel, P_COOP, A_COOP, KEY3(f), hStream, 0)
LAUNCH(cuLaunchCooperativeKernel_ptsz, P_COOP, A_COOP, KEY3(f), hStream, 1)

/* The launches of CUDA before 4.0, still exported: the grid comes from
 * cuFuncSetBlockShape and friends (the key knows the grid only). */
LAUNCH(cuLaunch, (CUfunction f), (f), gp__launch_key(f, 1, 0), NULL, 0)
LAUNCH(cuLaunchGrid, (CUfunction f, int grid_width, int grid_height), (f, grid_width, grid_height),
       gp__launch_key(f, GRID(grid_width, grid_height, 1), 0), NULL, 0)
LAUNCH(cuLaunchGridAsync, (CUfunction f, int grid_width, int grid_height, CUstream hStream),
       (f, grid_width, grid_height, hStream),
       gp__launch_key(f, GRID(grid_width, grid_height, 1), 0), hStream, 0)

/* One kernel on each of several devices, each on its own stream: each
 * device's share paces it (without measuring: the kernels' estimates come
 * from their single-device launches), and the device of every stream is
 * stamped rather than the current context's.  The list is read only once
 * the driver accepted it, or to pace, only as far as it says it is. */
GP_EXPORT CUresult CUDAAPI
cuLaunchCooperativeKernelMultiDevice(CUDA_LAUNCH_PARAMS *launchParamsList, unsigned int numDevices,
				     unsigned int flags)
{
	CUdevice dev;
	CUresult rc;

	GP_NEED_REAL(cuLaunchCooperativeKernelMultiDevice);
	if (__atomic_load_n(&gp__share_any, __ATOMIC_RELAXED) && launchParamsList &&
	    gp__real_cuStreamGetDevice && __atomic_load_n(&gp__g.ready, __ATOMIC_ACQUIRE))
		for (unsigned int i = 0; i < numDevices && i < GP_REGION_MAX_DEVS; i++) {
			const CUDA_LAUNCH_PARAMS *p = &launchParamsList[i];
			if (gp__real_cuStreamGetDevice(p->hStream, &dev) == CUDA_SUCCESS)
				gp__share_pace((int)dev,
					       gp__launch_key(p->function,
							      GRID(p->gridDimX, p->gridDimY, p->gridDimZ),
							      GRID(p->blockDimX, p->blockDimY, p->blockDimZ)));
		}
	rc = gp__real_cuLaunchCooperativeKernelMultiDevice(launchParamsList, numDevices, flags);
	if (rc == CUDA_SUCCESS && launchParamsList && gp__real_cuStreamGetDevice)
		for (unsigned int i = 0; i < numDevices; i++)
			if (gp__real_cuStreamGetDevice(launchParamsList[i].hStream, &dev) ==
			    CUDA_SUCCESS)
				gp__act_dev((int)dev, GP_ACT_LAUNCH);
	return rc;
}
