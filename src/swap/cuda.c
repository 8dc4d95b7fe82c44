/* cuda.c - see cuda.h. */
#include "swap/cuda.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include "common/errf.h"

const char *gp_cuda_str(const struct gp_cuda *cu, CUresult rc)
{
	const char *s = NULL;

	if (!cu->cuGetErrorName || cu->cuGetErrorName(rc, &s) != CUDA_SUCCESS || !s)
		return "unknown CUDA error";
	return s;
}

int gp_cuda_open(struct gp_cuda *cu, const char *path, int ordinal, char *err, size_t len)
{
	const char *lib = path ? path : "libcuda.so.1";
	int count = 0, rc;
	CUresult r;

	memset(cu, 0, sizeof *cu);
	cu->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!cu->dl)
		return gp_errf(err, len, -ENOENT, "cannot load %s: %s", lib, dlerror());
#define GP_CU_LOOKUP(name)                                                              \
	if (!(cu->name = (__typeof__(name) *)dlsym(cu->dl, #name))) {                       \
		rc = gp_errf(err, len, -ENOSYS, "%s lacks %s: driver too old", lib, #name); \
		goto fail;                                                                      \
	}
	GP_CU_FUNCS(GP_CU_LOOKUP)
#undef GP_CU_LOOKUP
	if ((r = cu->cuInit(0)) != CUDA_SUCCESS || (r = cu->cuDeviceGetCount(&count))) {
		rc = gp_errf(err, len, -EIO, "cuInit: %s", gp_cuda_str(cu, r));
		goto fail;
	}
	if (ordinal < 0 || ordinal >= count) {
		rc = gp_errf(err, len, -ENODEV, "no GPU %d (%d found)", ordinal, count);
		goto fail;
	}
	if ((r = cu->cuDeviceGet(&cu->dev, ordinal)) ||
	    (r = cu->cuDevicePrimaryCtxRetain(&cu->ctx, cu->dev))) {
		rc = gp_errf(err, len, -EIO, "GPU %d: %s", ordinal, gp_cuda_str(cu, r));
		goto fail;
	}
	if (gp_cuda_bind(cu)) {
		cu->cuDevicePrimaryCtxRelease_v2(cu->dev);
		rc = gp_errf(err, len, -EIO, "GPU %d: cannot make its context current", ordinal);
		goto fail;
	}
	return 0;
fail:
	dlclose(cu->dl);
	memset(cu, 0, sizeof *cu);
	return rc;
}

int gp_cuda_bind(const struct gp_cuda *cu)
{
	return cu->cuCtxSetCurrent(cu->ctx) == CUDA_SUCCESS ? 0 : -EIO;
}

void gp_cuda_close(struct gp_cuda *cu)
{
	if (!cu->dl)
		return;
	if (cu->ctx)
		cu->cuDevicePrimaryCtxRelease_v2(cu->dev);
	/* The driver stays loaded: a CUDA driver is not made to be unloaded
	 * (its threads and its own state outlive the last context), and
	 * dlclose would only orphan that state. */
	memset(cu, 0, sizeof *cu);
}
