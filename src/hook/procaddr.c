/* procaddr.c - cuGetProcAddress, the route cudart (and so PyTorch) takes to
 * every driver entry point.
 *
 * The real driver picks the variant (cuMemAlloc -> cuMemAlloc_v2, the
 * _ptsz form for per-thread default streams, by CUDA version); we let it,
 * then swap the pointer it returned for our hook of that same variant.
 * Matching on the pointer rather than re-implementing the driver's version
 * table means every variant we interpose is caught whatever version is
 * asked for.  A variant of an accounted function that we do not interpose
 * (an old 32-bit one, or one added after this library) is refused rather
 * than handed out unaccounted.
 */
#include "hook/hook.h"

/* Swap *pfn for our hook; refuse unknown variants of accounted functions. */
static CUresult wrap(const char *symbol, void **pfn, CUresult rc,
		     CUdriverProcAddressQueryResult *status)
{
	void *p;

	if (rc != CUDA_SUCCESS || !pfn || !*pfn || !symbol)
		return rc;
	p = gp__hook_by_real(symbol, *pfn);
	if (!p) {
		gp_warn("refusing cuGetProcAddress(\"%s\"): that variant takes device memory "
			"and is not accounted by this gpupool", symbol);
		*pfn = NULL;
		if (status)
			*status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
		return CUDA_ERROR_NOT_FOUND;
	}
	*pfn = p;
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
					       cuuint64_t flags,
					       CUdriverProcAddressQueryResult *symbolStatus)
{
	CUresult rc;

	GP_NEED_REAL(cuGetProcAddress_v2);
	rc = gp__real_cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, symbolStatus);
	return wrap(symbol, pfn, rc, symbolStatus);
}

GP_EXPORT CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
					    cuuint64_t flags)
{
	CUresult rc;

	GP_NEED_REAL(cuGetProcAddress);
	rc = gp__real_cuGetProcAddress(symbol, pfn, cudaVersion, flags);
	return wrap(symbol, pfn, rc, NULL);
}
