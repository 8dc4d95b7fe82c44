/* shm.h - a file mapped MAP_SHARED by several processes and initialised
 * exactly once, whoever comes first.
 *
 * Both the tenant region (src/region) and the simulator's machine state
 * (src/sim) are such files.  Creation is serialised with flock(2): the first
 * process to take the lock finds the file empty, sizes it and writes the
 * header; later ones verify the header.  Without a path the file is an
 * anonymous memfd, private to the process and its forked children.
 */
#ifndef GP_COMMON_SHM_H
#define GP_COMMON_SHM_H

#include <stddef.h>

struct gp_shm {
	int fd;       /* O_CLOEXEC descriptor; its open file description also
	                 carries this process's leases (lease.h) */
	void *base;   /* start of the shared mapping */
	size_t size;  /* bytes mapped */
};

/* Writes the initial contents of a fresh, zero-filled file.  Returns 0 or a
 * negative errno (the file is then left empty for the next opener). */
typedef int (*gp_shm_init_fn)(void *base, size_t size, void *arg);

/* Verifies an existing file's header (magic, version, configuration).
 * Returns 0 or a negative errno, e.g. -EPROTO for a foreign layout. */
typedef int (*gp_shm_check_fn)(const void *base, size_t size, void *arg);

/* Open or create `path` (NULL: an anonymous memfd) holding `size` bytes and
 * map it.  Returns 0 and fills *shm, or a negative errno:
 * -EPROTO when the file exists with another size or check() refuses it. */
int gp_shm_open(struct gp_shm *shm, const char *path, size_t size,
		gp_shm_init_fn init, gp_shm_check_fn check, void *arg)
	__attribute__((warn_unused_result));

/* Give this process a new open file description of the same file (through
 * /proc/self/fd), closing the old descriptor and mapping the file again at
 * the same address through the new one.  A forked child calls this so that
 * its leases are its own and it holds no reference to its parent's (an
 * inherited descriptor or mapping would keep the parent's leases alive
 * after the parent died).  Only
 * async-signal-safe calls are made, so it may run in an atfork handler.
 * Returns 0 or a negative errno. */
int gp_shm_reopen(struct gp_shm *shm) __attribute__((warn_unused_result));

#define GP_SHM_CLOSED {.fd = -1, .base = NULL, .size = 0}

/* Unmap and close.  Safe on a GP_SHM_CLOSED or already closed gp_shm. */
void gp_shm_close(struct gp_shm *shm);

#endif
