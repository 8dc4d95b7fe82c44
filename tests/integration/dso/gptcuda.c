/* gptcuda.c - libgptcuda.so, a library that links the driver itself, as a
 * framework's extension does.  test_hook_views dlopens it (RTLD_DEEPBIND
 * among others) to see which cuMemAlloc_v2 it binds to, and asks it to
 * dlopen its sibling libraries by bare name: only its own RUNPATH
 * ($ORIGIN) finds them. */
#define __CUDA_API_VERSION_INTERNAL
#include <cuda.h>
#include <dlfcn.h>

/* cuMemAlloc_v2 as this library resolved it. */
void *gpt_dso_alloc_fn(void);
void *gpt_dso_alloc_fn(void)
{
	return (void *)cuMemAlloc_v2;
}

CUresult gpt_dso_alloc(CUdeviceptr *p, size_t bytes);
CUresult gpt_dso_alloc(CUdeviceptr *p, size_t bytes)
{
	return cuMemAlloc_v2(p, bytes);
}

/* dlopen called from this library: the search uses its RUNPATH. */
void *gpt_dso_open(const char *name, int flags);
void *gpt_dso_open(const char *name, int flags)
{
	void *h = dlopen(name, flags);

	/* Not a tail call: dlopen must see this library as its caller. */
	__asm__ volatile("" : : "r"(h) : "memory");
	return h;
}
