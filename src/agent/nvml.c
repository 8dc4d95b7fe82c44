/* nvml.c - see nvml.h. */
#include "agent/nvml.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int gp_nvml_open(struct gp_nvml *n, const char *path, char *err, size_t len)
{
	const char *lib = path ? path : "libnvidia-ml.so.1";
	nvmlReturn_t rc;

	memset(n, 0, sizeof *n);
	n->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!n->dl) {
		snprintf(err, len, "cannot load %s: %s", lib, dlerror());
		return -ENOENT;
	}
#define GP_NVML_NEED(name)                                                   \
	n->name = (__typeof__(name) *)dlsym(n->dl, #name);                       \
	if (!n->name) {                                                          \
		snprintf(err, len, "%s lacks %s: driver too old", lib, #name);       \
		goto fail;                                                           \
	}
#define GP_NVML_WANT(name) n->name = (__typeof__(name) *)dlsym(n->dl, #name);
	GP_NVML_REQUIRED(GP_NVML_NEED)
	GP_NVML_OPTIONAL(GP_NVML_WANT)
#undef GP_NVML_NEED
#undef GP_NVML_WANT
	rc = n->nvmlInit_v2();
	if (rc != NVML_SUCCESS) {
		snprintf(err, len, "nvmlInit failed: %s (%d)", n->nvmlErrorString(rc), (int)rc);
		dlclose(n->dl);
		memset(n, 0, sizeof *n);
		return -EIO;
	}
	return 0;
fail:
	dlclose(n->dl);
	memset(n, 0, sizeof *n);
	return -ENOSYS;
}

void gp_nvml_close(struct gp_nvml *n)
{
	if (!n->dl)
		return;
	n->nvmlShutdown();
	dlclose(n->dl);
	memset(n, 0, sizeof *n);
}

const char *gp_nvml_str(const struct gp_nvml *n, nvmlReturn_t rc)
{
	const char *s = n->nvmlErrorString ? n->nvmlErrorString(rc) : NULL;

	return s ? s : "unknown NVML error";
}
