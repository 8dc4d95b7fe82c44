/* dlopen.c - interposing dlopen to close the RTLD_DEEPBIND route around the
 * hook.
 *
 * A library loaded with RTLD_DEEPBIND looks symbols up in its own
 * dependencies before the global scope.  If it links libcuda itself, its
 * cuMemAlloc_v2 then binds to the real driver and never meets the
 * preloaded hook: an allocation past the budget.  The exported `dlopen`
 * (dlopen_<arch>.S) clears RTLD_DEEPBIND from the flags and jumps to
 * glibc's dlopen, so such a library binds like any other: preloaded
 * definitions first.
 *
 * Like dlsym (dlsym.c), the stub must jump, not call: glibc's dlopen finds
 * the caller's link map from its return address, and with it the
 * caller's RUNPATH/$ORIGIN search path and namespace.  A C wrapper would
 * make every dlopen look like one made by this library.
 *
 * The stub takes its fast path (a test and a jump) when the flags carry no
 * RTLD_DEEPBIND and the real dlopen is known; otherwise it calls
 * gp__dlopen_flags first, with dlopen's arguments.  Sanitizer runtimes may
 * dlopen before they are initialised, so this path is not instrumented.
 */
#include <dlfcn.h>
#include <pthread.h>

#include "hook/hook.h"

#define NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))

/* Read by the stub; set before the first jump through it. */
void *(*gp__real_dlopen)(const char *, int);

/* Used only if glibc's dlopen cannot be found (not a glibc we know):
 * loading nothing, with dlerror's NULL, is the safe answer. */
NO_SANITIZE static void *no_dlopen(const char *file, int flags)
{
	(void)file;
	(void)flags;
	return NULL;
}

void *gp__glibc_next(const char *name); /* dlsym.c */

NO_SANITIZE static void find_real_dlopen(void)
{
	void *p = gp__glibc_next("dlopen");

	__atomic_store_n(&gp__real_dlopen, p ? (void *(*)(const char *, int))p : no_dlopen,
			 __ATOMIC_RELEASE);
}

/* Called by the stub with dlopen's arguments when they need a look (or
 * the real dlopen is not resolved yet).  Returns the flags to pass on. */
int gp__dlopen_flags(const char *file, int flags);
NO_SANITIZE int gp__dlopen_flags(const char *file, int flags)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, find_real_dlopen);
	if (flags & RTLD_DEEPBIND) {
		/* Booting sets the log level the user asked for; it happens
		 * here at most once, and rarely before CUDA's own start. */
		(void)gp__boot();
		gp_info("dlopen(%s): RTLD_DEEPBIND cleared: the library would bind CUDA to the "
			"driver past the hook and its memory budget",
			file ? file : "NULL");
		flags &= ~RTLD_DEEPBIND;
	}
	return flags;
}
