/* module.c - modules, libraries (the CUDA 12 context-independent loading
 * API), functions and kernels.  See kernel.h for which kernels exist. */
#include "sim/kernel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Recognise a kernel name.  Returns 1 and fills kind/us, or 0. */
static int parse_name(const char *name, enum gp_sim_fn_kind *kind, uint64_t *us)
{
	size_t n = strlen(name), digits;
	uint64_t v = 0;

	if (n >= GP_SIM_FN_NAME_MAX)
		return 0;
	if (strcmp(name, "fill_u32") == 0) {
		*kind = GP_SIM_FN_FILL;
		*us = 0;
		return 1;
	}
	if (n < 8 || strncmp(name, "spin_", 5) != 0 || strcmp(name + n - 2, "us") != 0)
		return 0;
	digits = n - 7;
	if (digits > 12)
		return 0;
	for (size_t i = 0; i < digits; i++) {
		char c = name[5 + i];
		if (c < '0' || c > '9')
			return 0;
		v = v * 10 + (uint64_t)(c - '0');
	}
	if (v > GP_SIM_SPIN_MAX_US)
		return 0;
	*kind = GP_SIM_FN_SPIN;
	*us = v;
	return 1;
}

/* A new function/kernel object named `name`, registered as `kind`. */
static CUresult func_new_locked(const char *name, enum gp_sim_kind hkind,
				struct gp_sim_func **out)
{
	struct gp_sim_func *f;
	enum gp_sim_fn_kind kind;
	uint64_t us;

	if (!parse_name(name, &kind, &us))
		return CUDA_ERROR_NOT_FOUND;
	f = calloc(1, sizeof *f);
	if (!f)
		return CUDA_ERROR_OUT_OF_MEMORY;
	f->kind = kind;
	f->spin_us = us;
	f->max_dyn_smem = 48 * 1024;
	f->carveout = -1;
	snprintf(f->name, sizeof f->name, "%s", name);
	gp_sim_list_init(&f->link);
	if (gp__sim_handle_add(&f->h, hkind)) {
		free(f);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*out = f;
	return CUDA_SUCCESS;
}

static void func_free_locked(struct gp_sim_func *f)
{
	if (f->fn)
		func_free_locked(f->fn);
	gp_sim_list_del(&f->link);
	gp__sim_handle_del(&f->h);
	free(f);
}

static struct gp_sim_func *find_in(struct gp_sim_list *l, const char *name)
{
	for (struct gp_sim_list *e = l->next; e != l; e = e->next) {
		struct gp_sim_func *f = gp_sim_container(e, struct gp_sim_func, link);
		if (strcmp(f->name, name) == 0)
			return f;
	}
	return NULL;
}

/* --- modules ------------------------------------------------------------ */

static CUresult module_new(CUmodule *module)
{
	struct gp_sim_ctx *c;
	struct gp_sim_module *m;
	CUresult rc;

	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (rc)
		goto out;
	m = calloc(1, sizeof *m);
	if (!m || gp__sim_handle_add(&m->h, GP_SIM_MODULE)) {
		free(m);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	m->ctx = c;
	gp_sim_list_init(&m->funcs);
	gp_sim_list_add(&c->modules, &m->link);
	*module = (CUmodule)m;
out:
	gp__sim_unlock();
	return rc;
}

static void module_free_locked(struct gp_sim_module *m)
{
	while (!gp_sim_list_empty(&m->funcs))
		func_free_locked(gp_sim_container(m->funcs.next, struct gp_sim_func, link));
	gp_sim_list_del(&m->link);
	gp__sim_handle_del(&m->h);
	free(m);
}

void gp__sim_module_ctx_gone_locked(struct gp_sim_ctx *ctx)
{
	while (!gp_sim_list_empty(&ctx->modules))
		module_free_locked(gp_sim_container(ctx->modules.next, struct gp_sim_module, link));
}

CUresult cuModuleLoad(CUmodule *module, const char *fname)
{
	FILE *f;

	GP_SIM_ENTER();
	if (!module || !fname)
		return CUDA_ERROR_INVALID_VALUE;
	f = fopen(fname, "rb");
	if (!f)
		return CUDA_ERROR_FILE_NOT_FOUND;
	fclose(f);
	return module_new(module);
}

CUresult cuModuleLoadData(CUmodule *module, const void *image)
{
	GP_SIM_ENTER();
	if (!module || !image)
		return CUDA_ERROR_INVALID_VALUE;
	return module_new(module);
}

CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int numOptions,
			    CUjit_option *options, void **optionValues)
{
	GP_SIM_ENTER();
	if (!module || !image || (numOptions && (!options || !optionValues)))
		return CUDA_ERROR_INVALID_VALUE;
	return module_new(module);
}

CUresult cuModuleLoadFatBinary(CUmodule *module, const void *fatCubin)
{
	GP_SIM_ENTER();
	if (!module || !fatCubin)
		return CUDA_ERROR_INVALID_VALUE;
	return module_new(module);
}

CUresult cuModuleUnload(CUmodule hmod)
{
	struct gp_sim_module *m;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	gp__sim_lock();
	m = gp__sim_handle_get(hmod, GP_SIM_MODULE);
	if (m) {
		module_free_locked(m);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
{
	struct gp_sim_module *m;
	struct gp_sim_func *f;
	CUresult rc = CUDA_SUCCESS;

	GP_SIM_ENTER();
	if (!hfunc || !name)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	m = gp__sim_handle_get(hmod, GP_SIM_MODULE);
	if (!m) {
		rc = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	f = find_in(&m->funcs, name);
	if (!f) {
		rc = func_new_locked(name, GP_SIM_FUNCTION, &f);
		if (rc)
			goto out;
		f->mod = m;
		gp_sim_list_add(&m->funcs, &f->link);
	}
	*hfunc = (CUfunction)f;
out:
	gp__sim_unlock();
	return rc;
}

CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule hmod, const char *name)
{
	CUresult rc;

	(void)dptr;
	(void)bytes;
	GP_SIM_ENTER();
	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_handle_get(hmod, GP_SIM_MODULE) ? CUDA_ERROR_NOT_FOUND
						     : CUDA_ERROR_INVALID_HANDLE;
	gp__sim_unlock();
	return rc; /* simulated images have no globals */
}

CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode *mode)
{
	GP_SIM_ENTER();
	if (!mode)
		return CUDA_ERROR_INVALID_VALUE;
	*mode = CU_MODULE_LAZY_LOADING;
	return CUDA_SUCCESS;
}

/* --- libraries and kernels ----------------------------------------------- */

static CUresult library_new(CUlibrary *library)
{
	struct gp_sim_library *l = calloc(1, sizeof *l);
	CUresult rc = CUDA_SUCCESS;

	if (!l)
		return CUDA_ERROR_OUT_OF_MEMORY;
	gp_sim_list_init(&l->kernels);
	gp__sim_lock();
	if (gp__sim_handle_add(&l->h, GP_SIM_LIBRARY)) {
		free(l);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
	} else {
		*library = (CUlibrary)l;
	}
	gp__sim_unlock();
	return rc;
}

static int options_ok(unsigned n, const void *keys, void *const *values)
{
	return n == 0 || (keys && values);
}

CUresult cuLibraryLoadData(CUlibrary *library, const void *code, CUjit_option *jitOptions,
			   void **jitOptionsValues, unsigned int numJitOptions,
			   CUlibraryOption *libraryOptions, void **libraryOptionValues,
			   unsigned int numLibraryOptions)
{
	GP_SIM_ENTER();
	if (!library || !code || !options_ok(numJitOptions, jitOptions, jitOptionsValues) ||
	    !options_ok(numLibraryOptions, libraryOptions, libraryOptionValues))
		return CUDA_ERROR_INVALID_VALUE;
	return library_new(library);
}

CUresult cuLibraryLoadFromFile(CUlibrary *library, const char *fileName,
			       CUjit_option *jitOptions, void **jitOptionsValues,
			       unsigned int numJitOptions, CUlibraryOption *libraryOptions,
			       void **libraryOptionValues, unsigned int numLibraryOptions)
{
	FILE *f;

	GP_SIM_ENTER();
	if (!library || !fileName || !options_ok(numJitOptions, jitOptions, jitOptionsValues) ||
	    !options_ok(numLibraryOptions, libraryOptions, libraryOptionValues))
		return CUDA_ERROR_INVALID_VALUE;
	f = fopen(fileName, "rb");
	if (!f)
		return CUDA_ERROR_FILE_NOT_FOUND;
	fclose(f);
	return library_new(library);
}

CUresult cuLibraryUnload(CUlibrary library)
{
	struct gp_sim_library *l;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	gp__sim_lock();
	l = gp__sim_handle_get(library, GP_SIM_LIBRARY);
	if (l) {
		while (!gp_sim_list_empty(&l->kernels))
			func_free_locked(gp_sim_container(l->kernels.next, struct gp_sim_func, link));
		gp__sim_handle_del(&l->h);
		free(l);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuLibraryGetKernel(CUkernel *pKernel, CUlibrary library, const char *name)
{
	struct gp_sim_library *l;
	struct gp_sim_func *k;
	CUresult rc = CUDA_SUCCESS;

	GP_SIM_ENTER();
	if (!pKernel || !name)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	l = gp__sim_handle_get(library, GP_SIM_LIBRARY);
	if (!l) {
		rc = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	k = find_in(&l->kernels, name);
	if (!k) {
		rc = func_new_locked(name, GP_SIM_KERNEL, &k);
		if (rc)
			goto out;
		k->lib = l;
		gp_sim_list_add(&l->kernels, &k->link);
	}
	*pKernel = (CUkernel)k;
out:
	gp__sim_unlock();
	return rc;
}

CUresult gp__sim_kernel_function_locked(struct gp_sim_func *k, struct gp_sim_func **out)
{
	CUresult rc;

	if (!k->fn) {
		rc = func_new_locked(k->name, GP_SIM_FUNCTION, &k->fn);
		if (rc)
			return rc;
		k->fn->kern = k;
	}
	*out = k->fn;
	return CUDA_SUCCESS;
}

CUresult cuKernelGetFunction(CUfunction *pFunc, CUkernel kernel)
{
	struct gp_sim_func *k, *f;
	struct gp_sim_ctx *c;
	CUresult rc;

	GP_SIM_ENTER();
	if (!pFunc)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	k = gp__sim_handle_get(kernel, GP_SIM_KERNEL);
	if (!rc && !k)
		rc = CUDA_ERROR_INVALID_HANDLE;
	if (!rc)
		rc = gp__sim_kernel_function_locked(k, &f);
	if (!rc)
		*pFunc = (CUfunction)f;
	gp__sim_unlock();
	return rc;
}

CUresult cuKernelGetLibrary(CUlibrary *pLib, CUkernel kernel)
{
	struct gp_sim_func *k;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	if (!pLib)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	k = gp__sim_handle_get(kernel, GP_SIM_KERNEL);
	if (k) {
		*pLib = (CUlibrary)k->lib;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

/* --- function queries ----------------------------------------------------- */

/* A CUfunction or CUkernel handle's object.  Lock held. */
static struct gp_sim_func *any_func_locked(const void *h)
{
	struct gp_sim_func *f = gp__sim_handle_get(h, GP_SIM_FUNCTION);

	return f ? f : gp__sim_handle_get(h, GP_SIM_KERNEL);
}

static CUresult func_name(const char **name, const void *h)
{
	struct gp_sim_func *f;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	f = any_func_locked(h);
	if (f) {
		*name = f->name;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuFuncGetName(const char **name, CUfunction hfunc)
{
	return func_name(name, hfunc);
}

CUresult cuKernelGetName(const char **name, CUkernel hfunc)
{
	return func_name(name, hfunc);
}

CUresult cuFuncGetModule(CUmodule *hmod, CUfunction hfunc)
{
	struct gp_sim_func *f;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	if (!hmod)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	f = gp__sim_handle_get(hfunc, GP_SIM_FUNCTION);
	if (f && f->mod) {
		*hmod = (CUmodule)f->mod;
		rc = CUDA_SUCCESS;
	} else if (f) {
		rc = CUDA_ERROR_NOT_FOUND; /* a library kernel's function */
	}
	gp__sim_unlock();
	return rc;
}

/* The attribute's value for f. */
static int func_attr(const struct gp_sim_func *f, CUfunction_attribute a, int *ok)
{
	*ok = 1;
	switch (a) {
	case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: return 1024;
	case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: return 0;
	case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: return 0;
	case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: return 0;
	case CU_FUNC_ATTRIBUTE_NUM_REGS: return 16;
	case CU_FUNC_ATTRIBUTE_PTX_VERSION: return 90;
	case CU_FUNC_ATTRIBUTE_BINARY_VERSION: return 90;
	case CU_FUNC_ATTRIBUTE_CACHE_MODE_CA: return 0;
	case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: return f->max_dyn_smem;
	case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: return f->carveout;
	case CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET:
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH:
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT:
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH:
	case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED:
	case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
		return 0;
	default:
		*ok = 0;
		return 0;
	}
}

static CUresult func_get_attr(int *pi, CUfunction_attribute attrib, const void *h)
{
	struct gp_sim_func *f;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;
	int ok;

	GP_SIM_ENTER();
	if (!pi)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	f = any_func_locked(h);
	if (f) {
		*pi = func_attr(f, attrib, &ok);
		rc = ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
	}
	gp__sim_unlock();
	return rc;
}

static CUresult func_set_attr(const void *h, CUfunction_attribute attrib, int value)
{
	struct gp_sim_func *f;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;
	int max_smem = 227 * 1024;

	GP_SIM_ENTER();
	gp__sim_lock();
	f = any_func_locked(h);
	if (f) {
		rc = CUDA_SUCCESS;
		if (attrib == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES && value >= 0 &&
		    value <= max_smem)
			f->max_dyn_smem = value;
		else if (attrib == CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT &&
			 value >= -1 && value <= 100)
			f->carveout = value;
		else if (attrib != CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH &&
			 attrib != CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT &&
			 attrib != CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH &&
			 attrib != CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED &&
			 attrib != CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE)
			rc = CUDA_ERROR_INVALID_VALUE;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc)
{
	return func_get_attr(pi, attrib, hfunc);
}

CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value)
{
	return func_set_attr(hfunc, attrib, value);
}

CUresult cuKernelGetAttribute(int *pi, CUfunction_attribute attrib, CUkernel kernel, CUdevice dev)
{
	if (gp__sim_ready() == CUDA_SUCCESS && gp__sim_visible_index(dev) < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	return func_get_attr(pi, attrib, kernel);
}

CUresult cuKernelSetAttribute(CUfunction_attribute attrib, int val, CUkernel kernel, CUdevice dev)
{
	if (gp__sim_ready() == CUDA_SUCCESS && gp__sim_visible_index(dev) < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	return func_set_attr(kernel, attrib, val);
}

CUresult cuFuncSetCacheConfig(CUfunction hfunc, CUfunc_cache config)
{
	struct gp_sim_func *f;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	if ((unsigned)config > CU_FUNC_CACHE_PREFER_EQUAL)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	f = any_func_locked(hfunc);
	if (f) {
		f->cache = config;
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuFuncGetParamInfo(CUfunction func, size_t paramIndex, size_t *paramOffset,
			    size_t *paramSize)
{
	static const size_t off[] = {0, 8, 16}, size[] = {8, 4, 8};
	struct gp_sim_func *f;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	gp__sim_lock();
	f = any_func_locked(func);
	if (f) {
		rc = CUDA_SUCCESS;
		if (f->kind != GP_SIM_FN_FILL || paramIndex >= 3)
			rc = CUDA_ERROR_INVALID_VALUE;
		else {
			if (paramOffset)
				*paramOffset = off[paramIndex];
			if (paramSize)
				*paramSize = size[paramIndex];
		}
	}
	gp__sim_unlock();
	return rc;
}
