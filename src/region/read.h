/* read.h - read a tenant's region without trusting or disturbing it.
 *
 * The node agent (and any other observer outside the tenant) reads region
 * files written by programs it does not control.  Mapping one would let the
 * tenant kill the reader: a file truncated under a mapping turns the next
 * access into SIGBUS.  So an observer copies the file with pread into
 * private memory, validates the copy, and learns which of the tenant's
 * processes are alive by probing their leases (src/common/lease.h) without
 * taking any: it holds no lock of any kind on the file, so no writer ever
 * waits for it, and it needs only read access.
 *
 * The copy is not a snapshot: live processes write the file while it is
 * read, so figures that change separately (a device's `used` and its
 * processes', say) may disagree by the changes in flight.  Everything the
 * validation checks holds at every instant of a well-behaved file's life,
 * so a concurrent write never makes a good file look bad.  Figures no
 * rule bounds (the compute counters, policy and priority of version 3,
 * the header's id) are copied as written: a reader shows or clamps them,
 * it never trusts them.
 */
#ifndef GP_REGION_READ_H
#define GP_REGION_READ_H

#include <stdint.h>

#include "gpupool/region.h"

/* A private copy of a tenant's region and which of its processes are alive. */
struct gp_region_copy {
	struct gp_region_hdr hdr;                /* the file's contents as read:
	                                            all up to proc[], and the
	                                            proc[] entries whose lease
	                                            is held; other entries are
	                                            left as they were */
	uint64_t live[GP_REGION_MAX_PROCS / 64]; /* bit i: proc[i] is ACTIVE and
	                                            its lease is held */
	unsigned nlive;                          /* processes alive */
	uint64_t live_used[GP_REGION_MAX_DEVS];  /* per dev entry: sum
	                                            (saturating) of live
	                                            processes' used */
};

/* Read the region open at `fd` (O_RDONLY is enough) into `c` with pread
 * (never mmap), validate it (magic, version, size, max_devs, max_procs,
 * ndevs <= GP_REGION_MAX_DEVS, every uuid NUL-terminated, the state of
 * every slot read free or active), and find live processes by probing
 * their leases (src/common/lease.h) with F_OFD_GETLK over the whole lease
 * range, continuing around each lock found: 2n + 1 fcntl calls at most for
 * n live processes, one when none is.  Only the slots whose lease is held
 * are read (an agent reads every tenant every second: the 1024 slots are
 * nearly all of a region's 170 KiB and nearly all free).
 * Returns 0, -ENODATA (file shorter than a region or not yet initialised:
 * magic not written), -EPROTO (not a region of this version: bad
 * magic/version/sizes, a larger file, not a regular file), or another
 * negative errno.
 *
 * `fd` must be an open file description of its own, not one through which
 * this process holds leases (a description never sees its own locks).  The
 * caller owns `c` (about 170 KiB: allocate it rather than put it on a small
 * stack); after an error its contents are unspecified. */
int gp_region_read(int fd, struct gp_region_copy *c) __attribute__((warn_unused_result));

/* Is proc[i] of the copy alive? */
static inline int gp_region_copy_live(const struct gp_region_copy *c, unsigned i)
{
	return i < GP_REGION_MAX_PROCS && (c->live[i / 64] >> (i % 64) & 1);
}

#endif
