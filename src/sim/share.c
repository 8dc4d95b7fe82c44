/* share.c - see share.h. */
#include "sim/share.h"

#include <errno.h>

#define COUNT(w) ((uint32_t)(w))
#define TAG(w) ((uint32_t)((w) >> 32))

/* This process's holds of each entry (process lock): one hold in the
 * machine stands for all of them. */
static struct {
	uint32_t tag;
	uint32_t n;
} local[GP_SIM_SHARES];

static uint64_t bit(unsigned slot)
{
	return 1ull << (slot % 64);
}

/* Nobody holds e any more: give its charge back to the owner (unless the
 * owner's death gave it back already) and free the entry.  Reached by
 * exactly one party, the one whose decrement made the count zero. */
static void last(struct gp_sim_share *e)
{
	uint64_t c = __atomic_exchange_n(&e->charge, 0, __ATOMIC_SEQ_CST);

	if (c)
		gp__sim_uncharge_slot(__atomic_load_n(&e->owner, __ATOMIC_RELAXED),
				      __atomic_load_n(&e->owner_gen, __ATOMIC_SEQ_CST),
				      __atomic_load_n(&e->dev, __ATOMIC_RELAXED), c);
	__atomic_store_n(&e->owner_gen, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->word, 0, __ATOMIC_SEQ_CST);
}

/* Slot `slot` lets go of e.  Its bit is cleared before the count goes
 * down, so that a holder dying in between leaves one hold too many (the
 * charge stays: an over-count), never one too few. */
static void let_go(struct gp_sim_share *e, unsigned slot)
{
	uint64_t old = __atomic_fetch_and(&e->held[slot / 64], ~bit(slot), __ATOMIC_SEQ_CST);
	uint64_t w;

	if (!(old & bit(slot)))
		return; /* it did not hold e */
	w = __atomic_load_n(&e->word, __ATOMIC_SEQ_CST);
	do {
		if (COUNT(w) == 0)
			return; /* never below zero */
	} while (!__atomic_compare_exchange_n(&e->word, &w, w - 1, 1, __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST));
	if (COUNT(w) == 1)
		last(e);
}

int gp__sim_share_export_locked(unsigned dev, uint64_t charge, uint32_t *idx, uint32_t *tag)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	uint64_t gen;
	int slot = gp__sim_slot(&gen);
	uint32_t t;

	if (!h || slot < 0)
		return -EINVAL;
	do
		t = __atomic_add_fetch(&h->next_tag, 1, __ATOMIC_RELAXED);
	while (t == 0);
	for (uint32_t i = 0; i < GP_SIM_SHARES; i++) {
		struct gp_sim_share *e = &h->share[i];
		uint64_t free_word = 0;

		if (!__atomic_compare_exchange_n(&e->word, &free_word, (uint64_t)t << 32 | 1, 0,
						 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			continue;
		/* The owner's incarnation before the charge: a reclaim of a
		 * dead slot matches entries by it (0 until now, never a
		 * slot's). */
		__atomic_store_n(&e->owner, (uint32_t)slot, __ATOMIC_RELAXED);
		__atomic_store_n(&e->dev, dev, __ATOMIC_RELAXED);
		__atomic_store_n(&e->owner_gen, gen, __ATOMIC_SEQ_CST);
		__atomic_store_n(&e->charge, charge, __ATOMIC_SEQ_CST);
		__atomic_fetch_or(&e->held[slot / 64], bit((unsigned)slot), __ATOMIC_SEQ_CST);
		local[i].tag = t;
		local[i].n = 1;
		*idx = i;
		*tag = t;
		return 0;
	}
	return -ENOSPC;
}

int gp__sim_share_hold_locked(uint32_t idx, uint32_t tag)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	struct gp_sim_share *e;
	uint64_t gen, w, old;
	int slot = gp__sim_slot(&gen);

	if (!h || slot < 0 || idx >= GP_SIM_SHARES || tag == 0)
		return -ENOENT;
	if (local[idx].n) {
		/* Held here already (by another handle of this process). */
		if (local[idx].tag != tag)
			return -ENOENT;
		local[idx].n++;
		return 0;
	}
	e = &h->share[idx];
	/* Count first, then the bit (see let_go for why in this order). */
	w = __atomic_load_n(&e->word, __ATOMIC_SEQ_CST);
	do {
		if (TAG(w) != tag || COUNT(w) == 0)
			return -ENOENT; /* freed, or another allocation's now */
	} while (!__atomic_compare_exchange_n(&e->word, &w, w + 1, 1, __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST));
	old = __atomic_fetch_or(&e->held[slot / 64], bit((unsigned)slot), __ATOMIC_SEQ_CST);
	if (old & bit((unsigned)slot)) /* counted already: cannot be, but undo */
		__atomic_sub_fetch(&e->word, 1, __ATOMIC_SEQ_CST);
	local[idx].tag = tag;
	local[idx].n = 1;
	return 0;
}

void gp__sim_share_drop_locked(uint32_t idx, uint32_t tag)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	uint64_t gen;
	int slot = gp__sim_slot(&gen);

	if (!h || slot < 0 || idx >= GP_SIM_SHARES || local[idx].tag != tag || local[idx].n == 0)
		return;
	if (--local[idx].n == 0)
		let_go(&h->share[idx], (unsigned)slot);
}

void gp__sim_share_reclaim(struct gp_sim_hdr *h, unsigned slot, uint64_t gen)
{
	for (unsigned i = 0; i < GP_SIM_SHARES; i++) {
		struct gp_sim_share *e = &h->share[i];

		if (__atomic_load_n(&e->word, __ATOMIC_SEQ_CST) == 0)
			continue;
		/* Its own charges come back with its figures. */
		if (gen && __atomic_load_n(&e->owner_gen, __ATOMIC_SEQ_CST) == gen)
			__atomic_store_n(&e->charge, 0, __ATOMIC_SEQ_CST);
		let_go(e, slot);
	}
}
