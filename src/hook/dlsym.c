/* dlsym.c - interposing dlsym, the route by which programs that dlopen the
 * driver (cudart, and so PyTorch, JAX, CuPy) find its entry points.
 *
 * The exported `dlsym` is a few instructions of assembly (dlsym_<arch>.S):
 * it asks gp__dlsym_hook whether the symbol is one we interpose and, if not,
 * jumps (does not call) to the real dlsym.  The jump matters: glibc's dlsym
 * resolves RTLD_NEXT and RTLD_DEFAULT relative to its caller's return
 * address, which a C wrapper would replace with an address inside this
 * library, breaking other interposers and every RTLD_NEXT user.
 *
 * Sanitizer runtimes resolve their own interceptors with dlsym before they
 * are initialised, so this path is built without instrumentation and looks
 * at nothing but the name until it knows the name is ours.
 */
#include <dlfcn.h>
#include <pthread.h>

#include "hook/hook.h"

/* Read by the assembly stub; set before the first jump through it. */
void *(*gp__real_dlsym)(void *, const char *);

/* Entry-point used only if glibc's dlsym cannot be found at all (no
 * versioned dlsym in libc: not a glibc we know).  Finding nothing is the
 * safe answer. */
#define NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))

NO_SANITIZE static void *no_dlsym(void *handle, const char *name)
{
	(void)handle;
	(void)name;
	return NULL;
}

/* glibc's own definition of `name` (dlsym or dlopen), or NULL.  dlvsym is
 * not interposed, so this is glibc's lookup.  Versions: 2.34 moved the dl*
 * functions into libc; the others are the x86-64 and aarch64 bases. */
void *gp__glibc_next(const char *name);
NO_SANITIZE void *gp__glibc_next(const char *name)
{
	static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17"};
	void *p = NULL;

	for (size_t i = 0; i < sizeof versions / sizeof *versions && !p; i++)
		p = dlvsym(RTLD_NEXT, name, versions[i]);
	return p;
}

NO_SANITIZE static void find_real_dlsym(void)
{
	void *p = gp__glibc_next("dlsym");

	__atomic_store_n(&gp__real_dlsym, p ? (void *(*)(void *, const char *))p : no_dlsym,
			 __ATOMIC_RELEASE);
}

void gp__dlsym_init(void);
NO_SANITIZE void gp__dlsym_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, find_real_dlsym);
}

/* Called by the stub with dlsym's arguments.  Returns our hook for `name`,
 * or NULL to let the real dlsym answer. */
void *gp__dlsym_hook(void *handle, const char *name);
NO_SANITIZE void *gp__dlsym_hook(void *handle, const char *name)
{
	(void)handle; /* any handle: a cu* name always means the driver's */
	if (!gp__real_dlsym)
		gp__dlsym_init();
	/* Two compares reject every name that cannot be ours. */
	if (!name || (name[0] == 'c' ? name[1] != 'u' : (name[0] != 'n' || name[1] != 'v')))
		return NULL;
	return gp__hook_by_name(name);
}
