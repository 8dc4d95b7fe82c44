/* smap.h - a map from strings to pointers (open addressing, linear
 * probing, deletion without tombstones).  Keys are copied; values are the
 * caller's.  Not thread-safe.  Iterate with:
 *   for (size_t i = 0; i < m.cap; i++) if (m.slot[i].key) ... m.slot[i].val
 */
#ifndef GP_COMMON_SMAP_H
#define GP_COMMON_SMAP_H

#include <stddef.h>

struct gp_smap {
	struct gp_smap_slot {
		char *key;
		void *val;
	} *slot;
	size_t n, cap;      /* cap: 0 or a power of two */
};

void *gp_smap_get(const struct gp_smap *m, const char *key);

/* Set key to val.  The value it replaces goes to *old (NULL if none; old
 * may be NULL when the caller knows there is none).  0 or -ENOMEM. */
int gp_smap_put(struct gp_smap *m, const char *key, void *val, void **old)
	__attribute__((warn_unused_result));

/* Remove key; its value, or NULL. */
void *gp_smap_del(struct gp_smap *m, const char *key);

/* Free the map's own memory (not the values). */
void gp_smap_free(struct gp_smap *m);

#endif
