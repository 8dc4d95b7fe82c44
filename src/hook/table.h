/* table.h - a concurrent map from 64-bit keys to small records.
 *
 * The hook remembers what it charged for each allocation, array, VMM handle
 * and context, and finds it again on free.  Lookups are on the allocation
 * path of every CUDA program, so the map is sharded (16 locks, picked by the
 * key's hash: threads allocating concurrently rarely meet; each lock a
 * futex word that costs one atomic instruction each way when uncontended)
 * and each shard is an open-addressing array with linear probing and backward-shift deletion
 * (no tombstones, no per-entry allocation).  Key 0 is never stored: no
 * device pointer or handle is 0.
 */
#ifndef GP_HOOK_TABLE_H
#define GP_HOOK_TABLE_H

#include <pthread.h>
#include <stdint.h>

#define GP_TAB_SHARDS 16

struct gp__rec;

struct gp__tab_slot;

struct gp__tab_shard {
	uint32_t lock;              /* 0 free, 1 held, 2 held with waiters */
	struct gp__tab_slot *slots; /* cap entries; key 0 = empty */
	uint32_t cap;               /* power of two, or 0 before first use */
	uint32_t len;
};

struct gp__tab {
	struct gp__tab_shard shard[GP_TAB_SHARDS];
};

#define GP_TAB_INIT                                                          \
	{ .shard = { [0 ... GP_TAB_SHARDS - 1] = {                             \
		.lock = 0, .slots = 0, .cap = 0, .len = 0 } } }

/* Insert or replace.  Returns 0 or -ENOMEM. */
int gp__tab_put(struct gp__tab *t, uint64_t key, const struct gp__rec *rec)
	__attribute__((warn_unused_result));

/* Copy the record of `key` to *out (if out is not NULL).  0 or -ENOENT. */
int gp__tab_get(struct gp__tab *t, uint64_t key, struct gp__rec *out);

/* Remove `key`, copying its record to *out first.  0 or -ENOENT. */
int gp__tab_take(struct gp__tab *t, uint64_t key, struct gp__rec *out);

/* Add `delta` to the record's refs; when they drop to 0 or below the entry
 * is removed and *gone set to 1.  The record (after the change) is copied
 * to *out.  0 or -ENOENT. */
int gp__tab_ref(struct gp__tab *t, uint64_t key, int delta, struct gp__rec *out, int *gone);

/* Remove every entry for which match(key, rec, arg) is true, calling
 * each(key, rec, arg) for it.  Both run under a shard lock: they must not
 * touch the table or call the driver.  Returns how many were removed. */
unsigned gp__tab_drain(struct gp__tab *t,
		       int (*match)(uint64_t key, const struct gp__rec *rec, void *arg),
		       void (*each)(uint64_t key, const struct gp__rec *rec, void *arg),
		       void *arg);

/* Number of entries (for tests and diagnostics; not a snapshot). */
unsigned gp__tab_len(struct gp__tab *t);

/* Around fork: lock every shard in the parent before fork, unlock after in
 * the parent; in the child, empty the table and reset its locks (the child
 * owns none of its parent's CUDA objects). */
void gp__tab_lock_all(struct gp__tab *t);
void gp__tab_unlock_all(struct gp__tab *t);
void gp__tab_reset(struct gp__tab *t);

#endif
