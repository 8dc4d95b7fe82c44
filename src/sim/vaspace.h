/* vaspace.h - a window of device addresses, handed out and taken back.
 *
 * A real driver reuses the address space of what a program frees, so a
 * program that allocates and frees forever never runs out of addresses;
 * the simulator keeps one of these per device (everything that takes a
 * device address: cuMemAlloc, pitch, pools, graph memory, arrays, opened
 * IPC handles) and one for VMM reservations.
 *
 * The free ranges are kept sorted, disjoint and coalesced (never two
 * adjacent), and allocation is first fit: the lowest free range that
 * holds the aligned request.  A program that frees what it allocates keeps
 * one or a few free ranges, so both operations stay O(free ranges), which
 * is small; the worst case is linear in the holes between live
 * allocations.  Not thread-safe: the process lock guards it.
 */
#ifndef GP_SIM_VASPACE_H
#define GP_SIM_VASPACE_H

#include <stddef.h>
#include <stdint.h>

/* One free range [start, end). */
struct gp_sim_varange {
	uint64_t start, end;
};

struct gp_sim_vaspace {
	uint64_t start, end;            /* the whole window [start, end) */
	int ready;                      /* free list set up (lazily: the
	                                   first take builds it) */
	struct gp_sim_varange *free;    /* sorted by start */
	size_t n, cap;
};

/* A window [start, end) with nothing handed out yet.  Allocates nothing. */
#define GP_SIM_VASPACE(s, e) ((struct gp_sim_vaspace){.start = (s), .end = (e)})

/* Take `size` bytes aligned to `align` (a power of two): the lowest free
 * address that fits.  Returns it, or 0 when nothing fits (or the host is
 * out of memory for the list). */
uint64_t gp__sim_vaspace_take(struct gp_sim_vaspace *s, uint64_t size, uint64_t align);

/* Give back [addr, addr+size), taken with gp__sim_vaspace_take.  A range
 * that is not wholly taken (a bug) is ignored rather than corrupting the
 * list; one that cannot be recorded for want of host memory stays taken. */
void gp__sim_vaspace_give(struct gp_sim_vaspace *s, uint64_t addr, uint64_t size);

#endif
