/* snap.c - see snap.h. */
#include "agent/snap.h"

#include <stdlib.h>

struct gp_agent_snap *gp_snap_new(void)
{
	struct gp_agent_snap *s = calloc(1, sizeof *s);

	if (s)
		s->refs = 1;
	return s;
}

struct gp_agent_snap *gp_snap_ref(struct gp_agent_snap *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void gp_snap_unref(struct gp_agent_snap *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (unsigned i = 0; i < s->ngpu; i++)
		free(s->gpu[i].proc);
	for (unsigned i = 0; i < s->ntenant; i++)
		free(s->tenant[i].pids);
	free(s->tenant);
	free(s);
}

double gp_snap_idle_s(const struct gp_agent_snap *s, const struct gp_agent_tgpu *g)
{
	if (!g->active_ns || g->active_ns >= s->mono_ns)
		return 0.0;
	return (double)(s->mono_ns - g->active_ns) / 1e9;
}

const char *gp_snap_policy_name(int policy)
{
	static const char *const names[] = {
		[GP_REGION_CORE_HARD] = "hard", [GP_REGION_CORE_ELASTIC] = "elastic",
		[GP_REGION_CORE_OFF] = "off",
	};

	return policy >= 0 && (size_t)policy < sizeof names / sizeof *names ? names[policy] : NULL;
}

const char *gp_snap_priority_name(int priority)
{
	static const char *const names[] = {
		[GP_REGION_PRIO_LOW] = "low", [GP_REGION_PRIO_NORMAL] = "normal",
		[GP_REGION_PRIO_HIGH] = "high",
	};

	return priority >= 0 && (size_t)priority < sizeof names / sizeof *names ? names[priority]
										  : NULL;
}
