/* procaddr.c - how programs find the driver's functions: cuGetProcAddress,
 * cuGetProcAddress_v2 and cuGetExportTable.
 *
 * The table below lists every exported entry point under its base name
 * with the CUDA version that introduced it and whether it is a per-thread
 * default stream (_ptds/_ptsz) variant; the versions are those of the
 * toolkit's cudaTypedefs.h (PFN_<name>_v<version>).  A lookup returns the
 * variant with the highest version at or below the one asked for, the
 * per-thread variant first when CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
 * is set.  The pointer is the address of the exported function itself
 * (the library links with -Bsymbolic), so it equals what dlsym returns for
 * that variant's name.
 */
#include "sim/sim.h"

#include <string.h>

struct entry {
	const char *base;        /* the name programs ask for */
	int version;             /* CUDA version that introduced this variant */
	int per_thread;          /* a _ptds / _ptsz variant */
	const char *symbol;      /* its exported name */
	void *fn;
};

#define L(base, ver, sym) {#base, ver, 0, #sym, (void *)sym}
#define T(base, ver, sym) {#base, ver, 1, #sym, (void *)sym}

static const struct entry table[] = {
#include "sim/procaddr_table.h"
};

#define MAX_FLAGS                                                            \
	(CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM)

/* The best entry for (symbol, version, per_thread); *found says whether the
 * name exists at all. */
static const struct entry *lookup(const char *symbol, int version, int per_thread, int *found)
{
	const struct entry *best = NULL, *best_pt = NULL;

	*found = 0;
	for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
		const struct entry *e = &table[i];
		if (strcmp(e->base, symbol) != 0)
			continue;
		*found = 1;
		if (e->version > version)
			continue;
		if (e->per_thread) {
			if (!best_pt || e->version > best_pt->version)
				best_pt = e;
		} else if (!best || e->version > best->version) {
			best = e;
		}
	}
	return per_thread && best_pt ? best_pt : best;
}

static CUresult get_proc_address(const char *symbol, void **pfn, int cudaVersion,
				 cuuint64_t flags, CUdriverProcAddressQueryResult *status)
{
	const struct entry *e;
	int found;

	if (!symbol || !pfn || (flags & ~(cuuint64_t)MAX_FLAGS) || cudaVersion <= 0 ||
	    cudaVersion > GP_SIM_DRIVER_VERSION)
		return CUDA_ERROR_INVALID_VALUE;
	e = lookup(symbol, cudaVersion, (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0,
		   &found);
	*pfn = e ? e->fn : NULL;
	if (status)
		*status = e ? CU_GET_PROC_ADDRESS_SUCCESS
			    : found ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
				    : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
	return e ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

/* Like the real driver, both work before cuInit: the runtime resolves its
 * entry points (cuInit among them) this way. */
CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
	return get_proc_address(symbol, pfn, cudaVersion, flags, NULL);
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
			     CUdriverProcAddressQueryResult *symbolStatus)
{
	return get_proc_address(symbol, pfn, cudaVersion, flags, symbolStatus);
}

/* The export tables are the driver's private interfaces to the CUDA
 * runtime and tools, named by UUID and undocumented; the simulator has
 * none.  For an id it does not know, the real driver leaves no table and
 * fails; CUDA_ERROR_INVALID_VALUE is what ZLUDA, a reimplementation that
 * tracks the real driver, answers (docs/sim.md).  Like cuGetProcAddress it
 * needs no cuInit: the runtime asks for tables while it sets itself up. */
CUresult cuGetExportTable(const void **ppExportTable, const CUuuid *pExportTableId)
{
	if (!ppExportTable || !pExportTableId)
		return CUDA_ERROR_INVALID_VALUE;
	*ppExportTable = NULL;
	return CUDA_ERROR_INVALID_VALUE;
}
