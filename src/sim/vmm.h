/* vmm.h - virtual memory management: address reservations, physical
 * allocation handles, mappings, access, and sharing handles as file
 * descriptors.
 *
 * A physical allocation (cuMemCreate) is charged when it is created and
 * its memory is freed when its handle has been released AND it is mapped
 * nowhere, like the real driver's reference count.  Its bytes live in a
 * memfd of its own (plus a trailer page describing it), which is also what
 * cuMemExportToShareableHandle hands out.  Once exported, the machine
 * counts which processes hold it (share.h): it stays charged to the
 * exporter, never to an importer, until the last holder lets go.
 */
#ifndef GP_SIM_VMM_H
#define GP_SIM_VMM_H

#include "sim/memory.h"

/* What cuPointerGetAttribute reports about a VMM address. */
struct gp_sim_vinfo {
	uint64_t base, size;          /* the mapping */
	int dev;                      /* machine index of the memory */
	unsigned long long handle_types;
	CUmemAccess_flags access;     /* of the calling context's device */
};

/* Translate an address inside reservation `res` (see
 * gp__sim_resolve_locked); 0 when it is not mapped with access. */
size_t gp__sim_vmm_resolve_locked(struct gp_sim_mem *res, uint64_t addr, size_t len,
				  void **host, int *dev);

/* The mapping holding `addr` in reservation `res`: 1 and its range, or 0. */
int gp__sim_vmm_range_locked(struct gp_sim_mem *res, uint64_t addr, uint64_t *base,
			     uint64_t *size);

/* Details of the mapping holding `addr`, as seen from device `dev`
 * (machine index).  1, or 0 when unmapped. */
int gp__sim_vmm_info_locked(struct gp_sim_mem *res, uint64_t addr, int dev,
			    struct gp_sim_vinfo *out);

#endif
