/* nodestate.h - the gpupool.io/node-state annotation (docs/protocol.md).
 *
 * What the scheduler needs to know of the node's cards: UUID, model,
 * memory, compute, slices, NUMA node, health and links.  The agent writes
 * it at start, at once when any of that changes (a card turns unhealthy),
 * and again every heartbeat with a new `updated`.
 */
#ifndef GP_AGENT_NODESTATE_H
#define GP_AGENT_NODESTATE_H

#include <stddef.h>

#include "agent/snap.h"

#define GP_NODE_STATE_ANNOTATION "gpupool.io/node-state"

/* The annotation's value for s, `slices` tenants per card, dated
 * `wall_ms`; with wall_ms < 0 the `updated` field is left out (the text
 * then only changes when the cards do: compare two to see a change).
 * Returns a new string (free it) or NULL on out-of-memory. */
char *gp_node_state(const struct gp_agent_snap *s, unsigned slices, long long wall_ms);

#endif
