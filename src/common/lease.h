/* lease.h - process leases: which processes sharing a file are alive.
 *
 * A process holds the lease on slot i of a shared file by holding an
 * open-file-description (OFD) write lock on one byte of it, at
 * GP_LEASE_BASE + i (far past the data; locks beyond EOF are allowed).  The
 * kernel drops the lock when the process dies, however it dies (SIGKILL
 * included), so another process tells a dead holder from a live one with one
 * fcntl(2): no daemon, no PID lookup, no PID-reuse race, and it works across
 * PID namespaces.
 *
 * Locks taken through one open file description never conflict with each
 * other, so a process must not probe its own slots, and a forked child must
 * reopen the file (gp_shm_reopen) before taking leases of its own.
 */
#ifndef GP_COMMON_LEASE_H
#define GP_COMMON_LEASE_H

#include <sys/types.h>

#define GP_LEASE_BASE ((off_t)1 << 40)

/* Try to take slot `slot` through `fd` without waiting.  Returns 0 when this
 * open file description now holds it (its previous holder, if any, is dead),
 * -EAGAIN when a live process holds it, or another negative errno. */
int gp_lease_take(int fd, unsigned slot) __attribute__((warn_unused_result));

/* Release a slot taken with gp_lease_take. */
void gp_lease_drop(int fd, unsigned slot);

/* Probe without taking: returns 1 if another open file description holds the
 * slot (its process is alive), 0 if nobody does, or a negative errno. */
int gp_lease_held(int fd, unsigned slot) __attribute__((warn_unused_result));

#endif
