/* entry.c - the dispatch table: every interposed symbol with its hook and
 * the real function behind it, and the lookups the dlsym and
 * cuGetProcAddress interposers make.
 *
 * The real functions are resolved from the real libraries' own handles
 * (dlopen of their sonames returns the copy the program already loaded), so
 * a lookup never lands on our own definitions.  Resolution is lazy and
 * happens once per library: a process that never touches CUDA never loads
 * it because of us.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "hook/hook.h"

/* The real dlsym, set up by gp__dlsym_init (dlsym.c). */
extern void *(*gp__real_dlsym)(void *, const char *);
void gp__dlsym_init(void);

#define HOOK_CU(n) __typeof__(n) *gp__real_##n;
#define HOOK_MEM(n) HOOK_CU(n)
#define HOOK_NVML(n) HOOK_CU(n)
#define CALL_CU(n) HOOK_CU(n)
#define CALL_NVML(n) HOOK_CU(n)
#include "hook/hooks.def"
#include "hook/calls.def"
#undef HOOK_CU
#undef HOOK_MEM
#undef HOOK_NVML
#undef CALL_CU
#undef CALL_NVML

enum { F_MEM = 1, /* an accounted entry point: refuse unknown variants */
       F_CALL = 2 /* called by us, not interposed */ };

struct entry {
	const char *name;
	void *hook;   /* our definition; NULL for F_CALL entries */
	void **real;  /* where the real function goes */
	uint8_t lib;  /* enum gp__lib */
	uint8_t flags;
	uint8_t base_len; /* length of the name without _vN/_ptsz/_ptds */
};

static struct entry table[] = {
#define HOOK_CU(n) {#n, (void *)n, (void **)&gp__real_##n, GP_LIB_CUDA, 0, 0},
#define HOOK_MEM(n) {#n, (void *)n, (void **)&gp__real_##n, GP_LIB_CUDA, F_MEM, 0},
#define HOOK_NVML(n) {#n, (void *)n, (void **)&gp__real_##n, GP_LIB_NVML, 0, 0},
#define CALL_CU(n) {#n, NULL, (void **)&gp__real_##n, GP_LIB_CUDA, F_CALL, 0},
#define CALL_NVML(n) {#n, NULL, (void **)&gp__real_##n, GP_LIB_NVML, F_CALL, 0},
#include "hook/hooks.def"
#include "hook/calls.def"
#undef HOOK_CU
#undef HOOK_MEM
#undef HOOK_NVML
#undef CALL_CU
#undef CALL_NVML
};

#define NENTRIES (sizeof table / sizeof *table)

static const char *const sonames[] = {"libcuda.so.1", "libnvidia-ml.so.1"};
static pthread_once_t once[2] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};
static int loaded[2];

/* Length of a symbol name without its version and stream suffixes:
 * "cuMemAllocAsync_ptsz" -> 15, "cuCtxCreate_v4" -> 11. */
static size_t base_len(const char *name, size_t len)
{
	for (;;) {
		if (len > 5 && (memcmp(name + len - 5, "_ptsz", 5) == 0 ||
				memcmp(name + len - 5, "_ptds", 5) == 0)) {
			len -= 5;
			continue;
		}
		size_t i = len;
		while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
			i--;
		if (i < len && i >= 2 && name[i - 1] == 'v' && name[i - 2] == '_') {
			len = i - 2;
			continue;
		}
		return len;
	}
}

/* Hold the thread that resolves, so the real library's constructors calling
 * dlsym do not recurse into the resolution they are part of. */
static __thread int resolving;

static void resolve_lib(enum gp__lib lib)
{
	void *h;

	gp__dlsym_init();
	resolving = 1;
	h = dlopen(sonames[lib], RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		gp_debug("cannot load %s: %s", sonames[lib], dlerror());
		resolving = 0;
		return;
	}
	for (size_t i = 0; i < NENTRIES; i++) {
		if (table[i].lib != lib)
			continue;
		void *p = gp__real_dlsym(h, table[i].name);
		__atomic_store_n(table[i].real, p, __ATOMIC_RELEASE);
	}
	/* The handle stays open for the life of the process: the real
	 * functions are called until exit. */
	loaded[lib] = 1;
	resolving = 0;
}

static void resolve_cuda(void)
{
	for (size_t i = 0; i < NENTRIES; i++)
		table[i].base_len = (uint8_t)base_len(table[i].name, strlen(table[i].name));
	resolve_lib(GP_LIB_CUDA);
}

static void resolve_nvml(void)
{
	resolve_lib(GP_LIB_NVML);
}

int gp__resolve(enum gp__lib lib)
{
	if (resolving)
		return -1;
	pthread_once(&once[lib], lib == GP_LIB_CUDA ? resolve_cuda : resolve_nvml);
	return loaded[lib] ? 0 : -1;
}

CUresult gp__need_slow(void **slot, enum gp__lib lib)
{
	if (gp__resolve(lib))
		return CUDA_ERROR_NOT_INITIALIZED;
	return __atomic_load_n(slot, __ATOMIC_ACQUIRE) ? CUDA_SUCCESS : CUDA_ERROR_NOT_SUPPORTED;
}

void *gp__hook_by_name(const char *name)
{
	for (size_t i = 0; i < NENTRIES; i++) {
		if (!table[i].hook || strcmp(table[i].name, name) != 0)
			continue;
		/* Only where the real library has it: probing for a symbol the
		 * driver lacks must still find nothing. */
		if (gp__resolve((enum gp__lib)table[i].lib) || !*table[i].real)
			return NULL;
		return table[i].hook;
	}
	return NULL;
}

void *gp__hook_by_real(const char *symbol, void *real)
{
	size_t blen = base_len(symbol, strlen(symbol));
	int accounted = 0;

	if (gp__resolve(GP_LIB_CUDA))
		return real;
	for (size_t i = 0; i < NENTRIES; i++) {
		if (!table[i].hook || table[i].lib != GP_LIB_CUDA)
			continue;
		if (*table[i].real == real)
			return table[i].hook;
		if ((table[i].flags & F_MEM) && table[i].base_len == blen &&
		    strncmp(table[i].name, symbol, blen) == 0)
			accounted = 1;
	}
	return accounted ? NULL : real;
}
