/* list.h - intrusive circular doubly-linked lists (the Linux kernel's
 * list_head, reduced to what the simulator uses). */
#ifndef GP_SIM_LIST_H
#define GP_SIM_LIST_H

#include <stddef.h>

struct gp_sim_list {
	struct gp_sim_list *next, *prev;
};

#define GP_SIM_LIST_INIT(l) {&(l), &(l)}
#define gp_sim_container(ptr, type, member)                                  \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void gp_sim_list_init(struct gp_sim_list *l)
{
	l->next = l->prev = l;
}

static inline int gp_sim_list_empty(const struct gp_sim_list *l)
{
	return l->next == l;
}

/* Insert `e` at the tail of `l`. */
static inline void gp_sim_list_add(struct gp_sim_list *l, struct gp_sim_list *e)
{
	e->prev = l->prev;
	e->next = l;
	l->prev->next = e;
	l->prev = e;
}

/* Remove `e` from whatever list holds it (safe on an unlinked, init'ed e). */
static inline void gp_sim_list_del(struct gp_sim_list *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->next = e->prev = e;
}

#endif
