/* hostcache.h - model weights kept in host memory, within a byte budget, so
 * that `gpupool engine` swaps a model back in at host-to-GPU bandwidth
 * instead of disk bandwidth (vLLM's sleep mode keeps weights in CPU memory
 * for the same reason).
 *
 * One entry per model: its bytes in one buffer from the allocator the
 * engine gives (pinned memory from the driver in the engine, malloc in
 * tests).  An entry is first reserved (room is made, the buffer handed out
 * to be filled), then published as ready; readers pin it while they copy
 * from it.  Room is made by evicting ready, unpinned entries, least recently
 * used first; an entry being filled or read is never evicted, so a copy in
 * flight never loses its source.
 *
 * Thread-safe: one mutex; no call blocks on I/O or waits for another
 * thread.  Buffers are handed out, never copied.
 */
#ifndef GP_SWAP_HOSTCACHE_H
#define GP_SWAP_HOSTCACHE_H

#include <stddef.h>
#include <stdint.h>

#define GP_HOSTCACHE_MAX_NAME 128u /* bytes of a model name */

struct gp_hostcache; /* opaque */

/* Where buffers come from: alloc returns NULL when it cannot. */
struct gp_hostcache_alloc {
	void *(*alloc)(void *ctx, size_t bytes);
	void (*free)(void *ctx, void *buf, size_t bytes);
	void *ctx;
};

/* Counters since creation. */
struct gp_hostcache_stats {
	uint64_t budget, used;  /* bytes: the budget, and held by entries */
	uint64_t entries;       /* entries, ready or being filled */
	uint64_t hits, misses;  /* gp_hostcache_pin found a ready entry, or not */
	uint64_t evictions;     /* entries evicted to make room */
	uint64_t evicted_bytes;
};

/* A cache of at most `budget` bytes using `a` (copied; NULL = malloc/free).
 * Returns 0 or -ENOMEM. */
int gp_hostcache_new(struct gp_hostcache **out, uint64_t budget,
		     const struct gp_hostcache_alloc *a) __attribute__((warn_unused_result));

/* Free every entry (none may be pinned or being filled) and the cache. */
void gp_hostcache_free(struct gp_hostcache *c);

/* Make room for `bytes` under `name` and hand out the buffer to fill in
 * *buf.  Evicts ready, unpinned entries, least recently used first.
 * Returns 0; -EEXIST if the name has an entry; -ENOSPC if even evicting
 * every evictable entry leaves too little room (nothing is evicted then);
 * -ENOMEM if the allocator fails; -EINVAL for a bad name (empty, too long)
 * or 0 bytes. */
int gp_hostcache_reserve(struct gp_hostcache *c, const char *name, uint64_t bytes, void **buf)
	__attribute__((warn_unused_result));

/* The reserved entry `name` is filled: it may be pinned and evicted from
 * now on.  Returns 0 or -ENOENT (no entry being filled by that name). */
int gp_hostcache_ready(struct gp_hostcache *c, const char *name)
	__attribute__((warn_unused_result));

/* Filling `name` failed: drop the reservation.  Returns 0 or -ENOENT. */
int gp_hostcache_abort(struct gp_hostcache *c, const char *name)
	__attribute__((warn_unused_result));

/* Pin the ready entry `name` for reading: *buf and *bytes stay valid until
 * gp_hostcache_unpin.  Counts a hit and makes it most recently used.
 * Returns 0, or -ENOENT (a miss: absent or still being filled). */
int gp_hostcache_pin(struct gp_hostcache *c, const char *name, const void **buf, uint64_t *bytes)
	__attribute__((warn_unused_result));

/* Release one pin of `name`.  Returns 0 or -ENOENT (not pinned). */
int gp_hostcache_unpin(struct gp_hostcache *c, const char *name)
	__attribute__((warn_unused_result));

/* Drop the ready entry `name` now (a model deleted from the catalog).
 * Returns 0, -ENOENT, or -EBUSY while it is pinned or being filled. */
int gp_hostcache_drop(struct gp_hostcache *c, const char *name)
	__attribute__((warn_unused_result));

/* Is there a ready entry for `name`? (1 or 0; no hit counted) */
int gp_hostcache_has(struct gp_hostcache *c, const char *name);

void gp_hostcache_stats(struct gp_hostcache *c, struct gp_hostcache_stats *out);

#endif
