/* health.h - the thread that waits for NVML's XID events.
 *
 * A fatal XID must take a card out of the node state within a second, not
 * at the next collection, so a thread blocks in nvmlEventSetWait (with a
 * short timeout, so it notices a stop) and, on a fatal event, records it
 * in gpus.h and calls `kick` to make the agent collect and publish at
 * once.  XIDs that are the application's fault (a kernel's illegal
 * address, 13, 31, 43, 45, 68, 109 by default, as NVIDIA's device plugin
 * skips) are counted but leave the card healthy.
 */
#ifndef GP_AGENT_HEALTH_H
#define GP_AGENT_HEALTH_H

#include "agent/gpus.h"

#define GP_HEALTH_MAX_IGNORE 32 /* XIDs a list may name */

struct gp_health;

/* Start watching the cards of g.  `ignore` lists XIDs that are not fatal
 * (NULL with n 0: the default list).  A driver without events leaves the
 * thread out and returns 0 (health then rests on the cards answering). */
int gp_health_start(struct gp_health **out, struct gp_nvml *nvml, struct gp_gpus *g,
		    const unsigned *ignore, unsigned n, void (*kick)(void *), void *arg)
	__attribute__((warn_unused_result));

/* Stop the thread (within its wait timeout) and free; NULL is fine. */
void gp_health_stop(struct gp_health *h);

/* Is `xid` fatal under the list `ignore` (NULL: the default list)? */
int gp_health_fatal(unsigned xid, const unsigned *ignore, unsigned n);

#endif
