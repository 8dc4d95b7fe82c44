/* share.h - VMM allocations shared between processes: who holds them and
 * whom they are charged to.
 *
 * A cuMemCreate allocation is charged to its creator.  Once exported as a
 * shareable handle it gets an entry in the machine state (struct
 * gp_sim_share) that counts the processes holding it -- through a handle
 * or a mapping, the exporter included -- and records which slots they are.
 * The charge stays on the exporter, never on an importer, for as long as
 * any process holds the allocation; the last one to let go (or the reclaim
 * of the last holder's slot, when it dies) gives the charge back to the
 * exporter's figures.  When the exporter dies first, its memory comes back
 * with its slot, as with legacy IPC; importers keep the bytes they map.
 *
 * Everything here is lock-free: a process's first hold takes the count
 * up with a compare-and-swap that also checks the entry is still the one
 * the handle named (its tag), and exactly one party sees the count reach
 * zero.  Per process, the *_locked functions count holds under the
 * process lock (one process may import the same allocation twice).
 */
#ifndef GP_SIM_SHARE_H
#define GP_SIM_SHARE_H

#include <stdint.h>

#include "sim/state.h"

/* Export: an entry for an allocation of `charge` bytes on device `dev`
 * charged to this process, held once by it.  The charge is the entry's to
 * give back from now on.  Sets *idx and *tag (what the shareable handle
 * names).  0, or -ENOSPC when GP_SIM_SHARES allocations are shared
 * already. */
int gp__sim_share_export_locked(unsigned dev, uint64_t charge, uint32_t *idx, uint32_t *tag)
	__attribute__((warn_unused_result));

/* Import: one more hold of entry (idx, tag) by this process.  0, or
 * -ENOENT when the entry is gone (every holder let go) or is not that. */
int gp__sim_share_hold_locked(uint32_t idx, uint32_t tag) __attribute__((warn_unused_result));

/* One hold of this process fewer (handle released and unmapped). */
void gp__sim_share_drop_locked(uint32_t idx, uint32_t tag);

/* Slot `slot`, incarnation `gen`, is dead: the charges it owns are given
 * back with its figures, and its holds are dropped. */
void gp__sim_share_reclaim(struct gp_sim_hdr *h, unsigned slot, uint64_t gen);

#endif
