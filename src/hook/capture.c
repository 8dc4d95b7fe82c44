/* capture.c - stream captures in progress.
 *
 * A launch into a capturing stream is recorded into a graph and runs
 * nothing until the graph is launched (which is charged then), so the
 * share must not charge or pace it, and nothing may record events into a
 * capture.  Asking the driver about every metered launch's stream would
 * cost a call per launch; instead the hook counts the captures the process
 * has begun and not ended, and asks only while there are some.  A capture
 * the program never ends keeps the count up: then launches are asked
 * about, which costs time, never correctness.
 */
#include "hook/hook.h"

uint32_t gp__captures;

static CUresult began(CUresult rc)
{
	if (rc == CUDA_SUCCESS)
		__atomic_add_fetch(&gp__captures, 1, __ATOMIC_RELAXED);
	return rc;
}

/* cuStreamEndCapture ends the capture whether it succeeded or found it
 * invalidated; the errors for a stream that was not capturing (or a call
 * that never reached it) end nothing. */
static CUresult ended(CUresult rc)
{
	uint32_t n = __atomic_load_n(&gp__captures, __ATOMIC_RELAXED);

	if (rc == CUDA_ERROR_ILLEGAL_STATE || rc == CUDA_ERROR_INVALID_VALUE ||
	    rc == CUDA_ERROR_INVALID_HANDLE || rc == CUDA_ERROR_NOT_INITIALIZED ||
	    rc == CUDA_ERROR_DEINITIALIZED || rc == CUDA_ERROR_INVALID_CONTEXT)
		return rc;
	while (n && !__atomic_compare_exchange_n(&gp__captures, &n, n - 1, 1, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
		;
	return rc;
}

#define BEGIN(n, params, args)                                               \
	GP_EXPORT CUresult CUDAAPI n params                                      \
	{                                                                        \
		GP_NEED_REAL(n);                                                     \
		return began(gp__real_##n args);                                     \
	}

BEGIN(cuStreamBeginCapture, (CUstream hStream), (hStream))
BEGIN(cuStreamBeginCapture_ptsz, (CUstream hStream), (hStream))
BEGIN(cuStreamBeginCapture_v2, (CUstream hStream, CUstreamCaptureMode mode), (hStream, mode))
BEGIN(cuStreamBeginCapture_v2_ptsz, (CUstream hStream, CUstreamCaptureMode mode),
      (hStream, mode))
BEGIN(cuStreamBeginCaptureToGraph,
      (CUstream hStream, CUgraph hGraph, const CUgraphNode *dependencies,
       const CUgraphEdgeData *dependencyData, size_t numDependencies, CUstreamCaptureMode mode),
      (hStream, hGraph, dependencies, dependencyData, numDependencies, mode))
BEGIN(cuStreamBeginCaptureToGraph_ptsz,
      (CUstream hStream, CUgraph hGraph, const CUgraphNode *dependencies,
       const CUgraphEdgeData *dependencyData, size_t numDependencies, CUstreamCaptureMode mode),
      (hStream, hGraph, dependencies, dependencyData, numDependencies, mode))

GP_EXPORT CUresult CUDAAPI cuStreamEndCapture(CUstream hStream, CUgraph *phGraph)
{
	GP_NEED_REAL(cuStreamEndCapture);
	return ended(gp__real_cuStreamEndCapture(hStream, phGraph));
}

GP_EXPORT CUresult CUDAAPI cuStreamEndCapture_ptsz(CUstream hStream, CUgraph *phGraph)
{
	GP_NEED_REAL(cuStreamEndCapture_ptsz);
	return ended(gp__real_cuStreamEndCapture_ptsz(hStream, phGraph));
}
