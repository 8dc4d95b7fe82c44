/* smap.c - see smap.h. */
#include "common/smap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)(h ^ (h >> 29));
}

static size_t find(const struct gp_smap *m, const char *key)
{
	size_t k = hash(key) & (m->cap - 1);

	while (m->slot[k].key && strcmp(m->slot[k].key, key) != 0)
		k = (k + 1) & (m->cap - 1);
	return k;
}

void *gp_smap_get(const struct gp_smap *m, const char *key)
{
	size_t k;

	if (!m->cap)
		return NULL;
	k = find(m, key);
	return m->slot[k].key ? m->slot[k].val : NULL;
}

static int grow(struct gp_smap *m)
{
	struct gp_smap old = *m;

	m->cap = old.cap ? old.cap * 2 : 64;
	if (!(m->slot = calloc(m->cap, sizeof *m->slot))) {
		*m = old;
		return -ENOMEM;
	}
	for (size_t i = 0; i < old.cap; i++)
		if (old.slot[i].key)
			m->slot[find(m, old.slot[i].key)] = old.slot[i];
	free(old.slot);
	return 0;
}

int gp_smap_put(struct gp_smap *m, const char *key, void *val, void **old)
{
	size_t k;

	if (old)
		*old = NULL;
	if ((m->n + 1) * 4 > m->cap * 3 && grow(m))
		return -ENOMEM;
	k = find(m, key);
	if (m->slot[k].key) {
		if (old)
			*old = m->slot[k].val;
		m->slot[k].val = val;
		return 0;
	}
	if (!(m->slot[k].key = strdup(key)))
		return -ENOMEM;
	m->slot[k].val = val;
	m->n++;
	return 0;
}

void *gp_smap_del(struct gp_smap *m, const char *key)
{
	size_t k, j;
	void *val;

	if (!m->cap)
		return NULL;
	k = find(m, key);
	if (!m->slot[k].key)
		return NULL;
	val = m->slot[k].val;
	free(m->slot[k].key);
	m->slot[k].key = NULL;
	m->n--;
	/* Shift back the entries of the run after k that hash at or before
	 * the hole, so that every lookup still finds them. */
	for (j = (k + 1) & (m->cap - 1); m->slot[j].key; j = (j + 1) & (m->cap - 1)) {
		size_t home = hash(m->slot[j].key) & (m->cap - 1);
		if (((j - home) & (m->cap - 1)) >= ((j - k) & (m->cap - 1))) {
			m->slot[k] = m->slot[j];
			m->slot[j].key = NULL;
			k = j;
		}
	}
	return val;
}

void gp_smap_free(struct gp_smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slot[i].key);
	free(m->slot);
	m->slot = NULL;
	m->n = m->cap = 0;
}
