/* handle.c - see handle.h.  An open-addressing hash set of live object
 * addresses (linear probing, backward-shift deletion, grown at half load). */
#include "sim/handle.h"

#include <errno.h>
#include <stdlib.h>

struct slot {
	uintptr_t key;   /* object address; 0 = empty */
	uint32_t kind;
};

static struct {
	struct slot *t;
	size_t cap;      /* power of two */
	size_t n;
} reg;

static size_t hash(uintptr_t k, size_t cap)
{
	uint64_t x = (uint64_t)k;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x & (cap - 1);
}

static void insert(struct slot *t, size_t cap, uintptr_t key, uint32_t kind)
{
	size_t i = hash(key, cap);

	while (t[i].key)
		i = (i + 1) & (cap - 1);
	t[i].key = key;
	t[i].kind = kind;
}

static int grow(void)
{
	size_t cap = reg.cap ? reg.cap * 2 : 256;
	struct slot *t = calloc(cap, sizeof *t);

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < reg.cap; i++)
		if (reg.t[i].key)
			insert(t, cap, reg.t[i].key, reg.t[i].kind);
	free(reg.t);
	reg.t = t;
	reg.cap = cap;
	return 0;
}

/* Index of key, or (size_t)-1. */
static size_t find(uintptr_t key)
{
	if (!reg.cap || !key)
		return (size_t)-1;
	for (size_t i = hash(key, reg.cap);; i = (i + 1) & (reg.cap - 1)) {
		if (reg.t[i].key == key)
			return i;
		if (!reg.t[i].key)
			return (size_t)-1;
	}
}

int gp__sim_handle_add(struct gp_sim_obj *obj, enum gp_sim_kind kind)
{
	if ((reg.n + 1) * 2 > reg.cap && grow())
		return -ENOMEM;
	obj->magic = GP_SIM_MAGIC(kind);
	obj->kind = (uint32_t)kind;
	insert(reg.t, reg.cap, (uintptr_t)obj, (uint32_t)kind);
	reg.n++;
	return 0;
}

void gp__sim_handle_del(struct gp_sim_obj *obj)
{
	size_t i = find((uintptr_t)obj), j;

	if (i == (size_t)-1)
		return;
	obj->magic = 0;
	reg.t[i].key = 0;
	reg.n--;
	/* Backward shift: pull later members of the probe run into the hole
	 * so that lookups never stop early. */
	for (j = (i + 1) & (reg.cap - 1); reg.t[j].key; j = (j + 1) & (reg.cap - 1)) {
		size_t home = hash(reg.t[j].key, reg.cap);
		int movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			reg.t[i] = reg.t[j];
			reg.t[j].key = 0;
			i = j;
		}
	}
}

void *gp__sim_handle_get(const void *h, enum gp_sim_kind kind)
{
	size_t i = find((uintptr_t)h);
	struct gp_sim_obj *o;

	if (i == (size_t)-1 || reg.t[i].kind != (uint32_t)kind)
		return NULL;
	o = (struct gp_sim_obj *)(uintptr_t)h;
	return o->magic == GP_SIM_MAGIC(kind) ? o : NULL;
}
