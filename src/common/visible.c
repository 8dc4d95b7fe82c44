/* visible.c - see visible.h. */
#include "common/visible.h"

#include <string.h>
#include <strings.h>

#include "common/parse.h"

/* The machine index one entry names, or -1. */
static int lookup(const char *item, size_t len, const char *const *uuids, unsigned n)
{
	int found = -1;

	if (len == 0)
		return -1;
	if (item[0] >= '0' && item[0] <= '9') {
		unsigned long v = 0;
		for (size_t i = 0; i < len; i++) {
			if (item[i] < '0' || item[i] > '9' || v > 100000)
				return -1;
			v = v * 10 + (unsigned long)(item[i] - '0');
		}
		return v < n ? (int)v : -1;
	}
	if (len < 4 || strncmp(item, "GPU-", 4) != 0)
		return -1; /* MIG-..., negative numbers, words: invalid */
	for (unsigned d = 0; d < n; d++) {
		if (len <= strlen(uuids[d]) && strncasecmp(uuids[d], item, len) == 0) {
			if (found >= 0)
				return -1; /* ambiguous prefix */
			found = (int)d;
		}
	}
	return found;
}

unsigned gp_visible_parse(const char *env, const char *const *uuids, unsigned n, int *idx,
			  unsigned max)
{
	const char *cur = env, *item;
	size_t len;
	unsigned k = 0;

	if (!env) {
		for (unsigned d = 0; d < n && k < max; d++)
			idx[k++] = (int)d;
		return k;
	}
	while (k < max && (item = gp_list_next(&cur, ',', &len)) != NULL) {
		int d = lookup(item, len, uuids, n), dup = 0;
		for (unsigned i = 0; i < k; i++)
			dup |= idx[i] == d;
		if (d < 0 || dup)
			break;
		idx[k++] = d;
	}
	return k;
}
