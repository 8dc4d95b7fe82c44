/* table.c - see table.h. */
#include "hook/table.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hook/hook.h"

struct gp__tab_slot {
	uint64_t key;
	struct gp__rec rec;
};

#define MIN_CAP 64u

/* The shard lock: Drepper's three-state futex mutex ("Futexes Are Tricky"),
 * process-private.  A pthread mutex costs ~60 instructions a lock/unlock
 * pair on this path; this costs two atomic instructions. */
static void lock_slow(uint32_t *w)
{
	uint32_t v = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);

	while (v != 0) {
		syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
		v = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
	}
}

static inline void lock(uint32_t *w)
{
	uint32_t v = 0;

	if (!__atomic_compare_exchange_n(w, &v, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		lock_slow(w);
}

static inline void unlock(uint32_t *w)
{
	if (__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) == 2)
		syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Fibonacci hashing: spreads pointers (which share low zero bits) over the
 * whole range.  The top bits pick the shard, the rest the slot. */
static inline uint64_t mix(uint64_t key)
{
	return key * 0x9E3779B97F4A7C15ULL;
}

static inline struct gp__tab_shard *shard_of(struct gp__tab *t, uint64_t h)
{
	return &t->shard[h >> 60];
}

static inline uint32_t home(const struct gp__tab_shard *s, uint64_t h)
{
	return (uint32_t)(h >> 20) & (s->cap - 1);
}

/* Find key's slot, or -1. Lock held. */
static int32_t find(const struct gp__tab_shard *s, uint64_t key, uint64_t h)
{
	if (!s->cap)
		return -1;
	for (uint32_t i = home(s, h);; i = (i + 1) & (s->cap - 1)) {
		if (s->slots[i].key == key)
			return (int32_t)i;
		if (s->slots[i].key == 0)
			return -1;
	}
}

static inline __attribute__((always_inline)) void insert_fresh(struct gp__tab_shard *s, uint64_t key,
							       const struct gp__rec *rec)
{
	uint32_t i = home(s, mix(key));

	while (s->slots[i].key)
		i = (i + 1) & (s->cap - 1);
	s->slots[i].key = key;
	s->slots[i].rec = *rec;
	s->len++;
}

/* Double the shard (or give it its first array).  Lock held. */
static int grow(struct gp__tab_shard *s)
{
	uint32_t old_cap = s->cap, cap = old_cap ? old_cap * 2 : MIN_CAP;
	struct gp__tab_slot *old = s->slots, *fresh = calloc(cap, sizeof *fresh);

	if (!fresh)
		return -ENOMEM;
	s->slots = fresh;
	s->cap = cap;
	s->len = 0;
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i].key)
			insert_fresh(s, old[i].key, &old[i].rec);
	free(old);
	return 0;
}

/* Delete slot i, shifting later members of its probe run back so lookups
 * never stop early at the hole.  Lock held. */
static void delete_at(struct gp__tab_shard *s, uint32_t i)
{
	uint32_t mask = s->cap - 1, j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (!s->slots[j].key)
			break;
		uint32_t k = home(s, mix(s->slots[j].key));
		/* Move j back into the hole unless its home lies in (i, j]. */
		if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
			s->slots[i] = s->slots[j];
			i = j;
		}
	}
	s->slots[i].key = 0;
	s->len--;
}

int gp__tab_put(struct gp__tab *t, uint64_t key, const struct gp__rec *rec)
{
	uint64_t h = mix(key);
	struct gp__tab_shard *s = shard_of(t, h);
	int32_t i;
	int rc = 0;

	lock(&s->lock);
	i = find(s, key, h);
	if (i >= 0) {
		s->slots[i].rec = *rec;
		goto out;
	}
	if ((s->len + 1) * 2 > s->cap && (rc = grow(s)))
		goto out;
	insert_fresh(s, key, rec);
out:
	unlock(&s->lock);
	return rc;
}

int gp__tab_get(struct gp__tab *t, uint64_t key, struct gp__rec *out)
{
	uint64_t h = mix(key);
	struct gp__tab_shard *s = shard_of(t, h);
	int32_t i;

	lock(&s->lock);
	i = find(s, key, h);
	if (i >= 0 && out)
		*out = s->slots[i].rec;
	unlock(&s->lock);
	return i >= 0 ? 0 : -ENOENT;
}

int gp__tab_take(struct gp__tab *t, uint64_t key, struct gp__rec *out)
{
	uint64_t h = mix(key);
	struct gp__tab_shard *s = shard_of(t, h);
	int32_t i;

	lock(&s->lock);
	i = find(s, key, h);
	if (i >= 0) {
		if (out)
			*out = s->slots[i].rec;
		delete_at(s, (uint32_t)i);
	}
	unlock(&s->lock);
	return i >= 0 ? 0 : -ENOENT;
}

int gp__tab_ref(struct gp__tab *t, uint64_t key, int delta, struct gp__rec *out, int *gone)
{
	uint64_t h = mix(key);
	struct gp__tab_shard *s = shard_of(t, h);
	int32_t i;

	*gone = 0;
	lock(&s->lock);
	i = find(s, key, h);
	if (i >= 0) {
		struct gp__rec *r = &s->slots[i].rec;
		r->refs += delta;
		if (out)
			*out = *r;
		if (r->refs <= 0) {
			delete_at(s, (uint32_t)i);
			*gone = 1;
		}
	}
	unlock(&s->lock);
	return i >= 0 ? 0 : -ENOENT;
}

unsigned gp__tab_drain(struct gp__tab *t,
		       int (*match)(uint64_t key, const struct gp__rec *rec, void *arg),
		       void (*each)(uint64_t key, const struct gp__rec *rec, void *arg),
		       void *arg)
{
	unsigned n = 0;

	for (unsigned k = 0; k < GP_TAB_SHARDS; k++) {
		struct gp__tab_shard *s = &t->shard[k];
		lock(&s->lock);
		for (uint32_t i = 0; i < s->cap;) {
			struct gp__tab_slot *e = &s->slots[i];
			if (e->key && match(e->key, &e->rec, arg)) {
				if (each)
					each(e->key, &e->rec, arg);
				delete_at(s, i);
				n++;
				continue; /* a shifted entry may now sit at i */
			}
			i++;
		}
		unlock(&s->lock);
	}
	return n;
}

unsigned gp__tab_len(struct gp__tab *t)
{
	unsigned n = 0;

	for (unsigned k = 0; k < GP_TAB_SHARDS; k++) {
		lock(&t->shard[k].lock);
		n += t->shard[k].len;
		unlock(&t->shard[k].lock);
	}
	return n;
}

void gp__tab_lock_all(struct gp__tab *t)
{
	for (unsigned k = 0; k < GP_TAB_SHARDS; k++)
		lock(&t->shard[k].lock);
}

void gp__tab_unlock_all(struct gp__tab *t)
{
	for (unsigned k = GP_TAB_SHARDS; k-- > 0;)
		unlock(&t->shard[k].lock);
}

void gp__tab_reset(struct gp__tab *t)
{
	for (unsigned k = 0; k < GP_TAB_SHARDS; k++) {
		struct gp__tab_shard *s = &t->shard[k];
		free(s->slots);
		s->slots = NULL;
		s->cap = s->len = 0;
		s->lock = 0;
	}
}
