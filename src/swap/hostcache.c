/* hostcache.c - model weights in host memory within a byte budget (see
 * hostcache.h).  A handful of models per engine: entries live in an array
 * searched linearly, and LRU order is a use counter, which keeps eviction
 * simple and obviously correct at this size. */
#include "swap/hostcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	char name[GP_HOSTCACHE_MAX_NAME + 1];
	void *buf;
	uint64_t bytes;
	uint64_t used_at; /* the cache's clock at the last pin: LRU order */
	unsigned pins;
	int ready;        /* filled; before that the filler owns buf */
};

struct gp_hostcache {
	pthread_mutex_t lock;
	struct gp_hostcache_alloc a;
	struct entry *e;
	size_t n, cap;
	uint64_t clock;
	struct gp_hostcache_stats st;
};

static void *std_alloc(void *ctx, size_t bytes)
{
	(void)ctx;
	return malloc(bytes);
}

static void std_free(void *ctx, void *buf, size_t bytes)
{
	(void)ctx;
	(void)bytes;
	free(buf);
}

int gp_hostcache_new(struct gp_hostcache **out, uint64_t budget, const struct gp_hostcache_alloc *a)
{
	struct gp_hostcache *c = calloc(1, sizeof *c);

	*out = NULL;
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->a = a ? *a : (struct gp_hostcache_alloc){std_alloc, std_free, NULL};
	c->st.budget = budget;
	*out = c;
	return 0;
}

void gp_hostcache_free(struct gp_hostcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		c->a.free(c->a.ctx, c->e[i].buf, (size_t)c->e[i].bytes);
	free(c->e);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* The entry named `name`, or NULL.  Under the lock. */
static struct entry *find(struct gp_hostcache *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->e[i].name, name) == 0)
			return &c->e[i];
	return NULL;
}

/* Remove entry `e` (freeing its buffer).  Under the lock. */
static void remove_entry(struct gp_hostcache *c, struct entry *e)
{
	c->a.free(c->a.ctx, e->buf, (size_t)e->bytes);
	c->st.used -= e->bytes;
	c->st.entries--;
	*e = c->e[--c->n];
}

static int evictable(const struct entry *e)
{
	return e->ready && e->pins == 0;
}

/* Evict least recently used evictable entries until `bytes` fit; nothing
 * is evicted unless they can be made to fit.  Under the lock. */
static int make_room(struct gp_hostcache *c, uint64_t bytes)
{
	uint64_t freeable = 0;

	for (size_t i = 0; i < c->n; i++)
		if (evictable(&c->e[i]))
			freeable += c->e[i].bytes;
	if (bytes > c->st.budget || c->st.used - freeable > c->st.budget - bytes)
		return -ENOSPC;
	while (c->st.used > c->st.budget - bytes) {
		struct entry *lru = NULL;
		for (size_t i = 0; i < c->n; i++)
			if (evictable(&c->e[i]) && (!lru || c->e[i].used_at < lru->used_at))
				lru = &c->e[i];
		c->st.evictions++;
		c->st.evicted_bytes += lru->bytes;
		remove_entry(c, lru);
	}
	return 0;
}

int gp_hostcache_reserve(struct gp_hostcache *c, const char *name, uint64_t bytes, void **buf)
{
	struct entry *e;
	void *mem;
	int rc;

	*buf = NULL;
	if (!name[0] || strlen(name) > GP_HOSTCACHE_MAX_NAME || bytes == 0 || bytes > SIZE_MAX)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	rc = -EEXIST;
	if (find(c, name))
		goto out;
	if ((rc = make_room(c, bytes)))
		goto out;
	rc = -ENOMEM;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 8;
		struct entry *ne = realloc(c->e, cap * sizeof *ne);
		if (!ne)
			goto out;
		c->e = ne;
		c->cap = cap;
	}
	if (!(mem = c->a.alloc(c->a.ctx, (size_t)bytes)))
		goto out;
	e = &c->e[c->n++];
	*e = (struct entry){.buf = mem, .bytes = bytes, .used_at = ++c->clock};
	strcpy(e->name, name);
	c->st.used += bytes;
	c->st.entries++;
	*buf = mem;
	rc = 0;
out:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Finish a reservation: publish it (ok) or drop it. */
static int settle(struct gp_hostcache *c, const char *name, int ok)
{
	struct entry *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&c->lock);
	e = find(c, name);
	if (e && !e->ready) {
		if (ok)
			e->ready = 1;
		else
			remove_entry(c, e);
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int gp_hostcache_ready(struct gp_hostcache *c, const char *name)
{
	return settle(c, name, 1);
}

int gp_hostcache_abort(struct gp_hostcache *c, const char *name)
{
	return settle(c, name, 0);
}

int gp_hostcache_pin(struct gp_hostcache *c, const char *name, const void **buf, uint64_t *bytes)
{
	struct entry *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&c->lock);
	e = find(c, name);
	if (e && e->ready) {
		e->pins++;
		e->used_at = ++c->clock;
		*buf = e->buf;
		*bytes = e->bytes;
		c->st.hits++;
		rc = 0;
	} else {
		c->st.misses++;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int gp_hostcache_unpin(struct gp_hostcache *c, const char *name)
{
	struct entry *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&c->lock);
	e = find(c, name);
	if (e && e->pins > 0) {
		e->pins--;
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int gp_hostcache_drop(struct gp_hostcache *c, const char *name)
{
	struct entry *e;
	int rc;

	pthread_mutex_lock(&c->lock);
	e = find(c, name);
	rc = !e ? -ENOENT : !evictable(e) ? -EBUSY : 0;
	if (rc == 0)
		remove_entry(c, e);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int gp_hostcache_has(struct gp_hostcache *c, const char *name)
{
	struct entry *e;
	int has;

	pthread_mutex_lock(&c->lock);
	e = find(c, name);
	has = e && e->ready;
	pthread_mutex_unlock(&c->lock);
	return has;
}

void gp_hostcache_stats(struct gp_hostcache *c, struct gp_hostcache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	pthread_mutex_unlock(&c->lock);
}
