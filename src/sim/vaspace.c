/* vaspace.c - see vaspace.h. */
#include "sim/vaspace.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* Make room for one more range.  1 if there is room. */
static int room(struct gp_sim_vaspace *s)
{
	size_t cap;
	struct gp_sim_varange *v;

	if (s->n < s->cap)
		return 1;
	cap = s->cap ? s->cap * 2 : 8;
	v = realloc(s->free, cap * sizeof *v);
	if (!v)
		return 0;
	s->free = v;
	s->cap = cap;
	return 1;
}

/* Insert r at index i (room() said yes). */
static void insert(struct gp_sim_vaspace *s, size_t i, struct gp_sim_varange r)
{
	memmove(&s->free[i + 1], &s->free[i], (s->n - i) * sizeof *s->free);
	s->free[i] = r;
	s->n++;
}

static void remove_at(struct gp_sim_vaspace *s, size_t i)
{
	memmove(&s->free[i], &s->free[i + 1], (s->n - i - 1) * sizeof *s->free);
	s->n--;
}

/* The whole window is one free range until the first take. */
static int ready(struct gp_sim_vaspace *s)
{
	if (s->ready)
		return 1;
	if (s->start >= s->end || !room(s))
		return 0;
	s->free[0] = (struct gp_sim_varange){s->start, s->end};
	s->n = 1;
	s->ready = 1;
	return 1;
}

uint64_t gp__sim_vaspace_take(struct gp_sim_vaspace *s, uint64_t size, uint64_t align)
{
	if (size == 0 || align == 0 || (align & (align - 1)) || !ready(s))
		return 0;
	for (size_t i = 0; i < s->n; i++) {
		struct gp_sim_varange r = s->free[i];
		uint64_t a;

		if (r.start > UINT64_MAX - (align - 1))
			continue;
		a = (r.start + align - 1) & ~(align - 1);
		if (a >= r.end || size > r.end - a)
			continue;
		if (a == r.start && a + size == r.end) {
			remove_at(s, i);
		} else if (a == r.start) {
			s->free[i].start = a + size;
		} else if (a + size == r.end) {
			s->free[i].end = a;
		} else {
			/* Alignment leaves a piece on both sides: split, if the
			 * list can grow; else look further. */
			if (!room(s))
				continue;
			s->free[i].end = a;
			insert(s, i + 1, (struct gp_sim_varange){a + size, r.end});
		}
		return a;
	}
	return 0;
}

void gp__sim_vaspace_give(struct gp_sim_vaspace *s, uint64_t addr, uint64_t size)
{
	uint64_t end = addr + size;
	size_t lo = 0, hi;
	int join_prev, join_next;

	if (!s->ready || size == 0 || end < addr || addr < s->start || end > s->end)
		return;
	/* i = the first free range starting after addr. */
	hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->free[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if ((lo > 0 && s->free[lo - 1].end > addr) || (lo < s->n && s->free[lo].start < end)) {
		gp_warn("sim: address range 0x%llx+0x%llx given back twice; ignored",
			(unsigned long long)addr, (unsigned long long)size);
		return;
	}
	join_prev = lo > 0 && s->free[lo - 1].end == addr;
	join_next = lo < s->n && s->free[lo].start == end;
	if (join_prev && join_next) {
		s->free[lo - 1].end = s->free[lo].end;
		remove_at(s, lo);
	} else if (join_prev) {
		s->free[lo - 1].end = end;
	} else if (join_next) {
		s->free[lo].start = addr;
	} else if (room(s)) {
		insert(s, lo, (struct gp_sim_varange){addr, end});
	} else {
		gp_warn("sim: out of host memory; 0x%llx bytes of address space stay taken",
			(unsigned long long)size);
	}
}
