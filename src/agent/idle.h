/* idle.h - which pods are idle, from a snapshot.
 *
 * A pod is judged only while it holds a GPU: at least one of its tenants
 * has a live process and a card.  It is idle when every such tenant has
 * been idle (no kernel launch, no copy) on every card it uses for at least
 * the threshold, and busy as soon as one of them was active more
 * recently.  Pure: the agent's Kubernetes worker acts on the verdicts.
 */
#ifndef GP_AGENT_IDLE_H
#define GP_AGENT_IDLE_H

#include <stddef.h>

#include "agent/snap.h"

struct gp_idle_pod {
	char uid[GP_AGENT_NAME_MAX];
	char ns[GP_AGENT_NAME_MAX];   /* "" unknown */
	char pod[GP_AGENT_POD_MAX];   /* "" unknown */
	int idle;                     /* 1 idle, 0 busy */
	int exempt;                   /* the pod opted out */
	double idle_s;                /* how long it has been idle */
};

/* The verdicts on the pods of s for threshold after_s (> 0), into *out
 * (caller frees).  Returns how many, or -1 on out-of-memory. */
long gp_idle_judge(const struct gp_agent_snap *s, double after_s, struct gp_idle_pod **out);

#endif
