/* tenants.h - the tenants of a node: region files under the state directory.
 *
 * Each container that may use a GPU has a directory
 * <state-dir>/tenants/<pod-uid>/<container>/ (DESIGN.md, "Node") and, once
 * one of its processes initialized CUDA, a `region` file in it.  The agent
 * never maps a region: a tenant may truncate its own file, and a mapping
 * would then fault in the agent.  It reads a private copy with pread
 * (region/read.h) and asks the kernel which processes hold their leases.
 *
 * Tenants' directories are writable by the tenants (they are their
 * /var/run/gpupool), so nothing in them is trusted: names are checked,
 * symbolic links are never followed, and removal works on directory file
 * descriptors only.
 */
#ifndef GP_AGENT_TENANTS_H
#define GP_AGENT_TENANTS_H

#include <stddef.h>
#include <stdint.h>

#include "agent/snap.h"

/* A tenant directory nothing holds: no live process has its region's
 * lease.  Whether it may be collected depends on its pod (agent.c). */
struct gp_tenant_stale {
	char uid[GP_AGENT_NAME_MAX];
	char container[GP_AGENT_NAME_MAX];
	uint64_t changed_wall_ns;  /* last change of the directory: it was
	                              created no later than this */
};

/* The tenant tree of a state directory, as last walked: directories and
 * their regions, kept open between collections.  The tree is walked again
 * only when inotify reports a change in it (or always, where inotify is
 * not available), so a steady node costs a few system calls per tenant. */
struct gp_tenants;

/* Watch `state_dir`, reading at most `max` regions.  0 or -ENOMEM. */
int gp_tenants_open(struct gp_tenants **out, const char *state_dir, unsigned max)
	__attribute__((warn_unused_result));
void gp_tenants_close(struct gp_tenants *ts);

/* Read every tenant into s->tenant (at most `max`; the directories left
 * unread counted in s->capped, unreadable regions in s->skipped), sorted
 * by pod UID and container, and list the directories nothing holds in
 * *stale (caller frees).  A state directory without tenants/ is an empty
 * node.  Returns 0, -ENOMEM, or a negative errno when tenants/ exists but
 * cannot be read. */
int gp_tenants_scan(struct gp_tenants *ts, struct gp_agent_snap *s,
		    struct gp_tenant_stale **stale, size_t *nstale)
	__attribute__((warn_unused_result));

/* Remove tenants/<uid>/<container> and everything in it (and the pod's
 * directory once empty), unless a process holds its region meanwhile.
 * Returns 0, -EBUSY (held), -EINVAL (a name that is not one), or another
 * negative errno. */
int gp_tenants_remove(const char *state_dir, const char *uid, const char *container)
	__attribute__((warn_unused_result));

/* Is s a name the tenant tree may hold (1-63 of [A-Za-z0-9._-], not
 * starting with a dot)? */
int gp_tenants_name_ok(const char *s);

#endif
