/* legacy.c - the 32-bit entry points of CUDA before 3.2, cuMemGetInfo and
 * cuDeviceTotalMem without the _v2 suffix.
 *
 * The driver still exports them, and a program reaches them by dlsym of the
 * plain name or cuGetProcAddress with an old version.  Left alone they would
 * show the whole card; they show the tenant's card instead: the figures of
 * our own _v2 hooks, saturated at UINT_MAX exactly as the driver saturates
 * its own (-Bsymbolic-functions binds these calls to our definitions).
 *
 * cuda.h, in the internal mode hook.h uses, declares them with these
 * unsigned int types; the public names are macros for the _v2 ones.
 */
#include <limits.h>

#include "hook/hook.h"

static unsigned int saturate(size_t v)
{
	return v > UINT_MAX ? UINT_MAX : (unsigned int)v;
}

GP_EXPORT CUresult CUDAAPI cuMemGetInfo(unsigned int *free, unsigned int *total)
{
	size_t f, t;
	CUresult rc;

	GP_NEED_REAL(cuMemGetInfo);
	if (!free || !total) /* let the driver say what is wrong */
		return gp__real_cuMemGetInfo(free, total);
	rc = cuMemGetInfo_v2(&f, &t);
	if (rc == CUDA_SUCCESS) {
		*free = saturate(f);
		*total = saturate(t);
	}
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
	size_t b;
	CUresult rc;

	GP_NEED_REAL(cuDeviceTotalMem);
	if (!bytes)
		return gp__real_cuDeviceTotalMem(bytes, dev);
	rc = cuDeviceTotalMem_v2(&b, dev);
	if (rc == CUDA_SUCCESS)
		*bytes = saturate(b);
	return rc;
}
