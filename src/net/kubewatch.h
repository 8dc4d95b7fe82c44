/* kubewatch.h - a live copy of one kind of Kubernetes object: list, then
 * watch from the list's resourceVersion, forever.
 *
 * What client-go calls a reflector, for C daemons: a thread lists the
 * objects once (handing them all to `relist`), then watches from the
 * list's resourceVersion with bookmarks, handing each change to `event`.
 * A watch the server ends is resumed from the last resourceVersion seen;
 * one refused with 410 Gone (the version was compacted away) is replaced
 * by a fresh list; errors back off exponentially (0.2 s to 10 s, with
 * jitter), so an API server in trouble is not hammered.  Callbacks run on
 * the watcher's thread, one at a time.
 */
#ifndef GP_NET_KUBEWATCH_H
#define GP_NET_KUBEWATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/kube.h"

struct gp_kube_watch;

struct gp_kube_watch_ops {
	const char *what;        /* for logs: "nodes" */
	const char *path;        /* "/api/v1/pods", with a fieldSelector query if
	                            wanted; list and watch both use it */
	/* Every object as listed (items of the List, borrowed): replace what
	 * was known. */
	void (*relist)(void *arg, json_t *items);
	/* One change: "ADDED", "MODIFIED" or "DELETED", the object borrowed. */
	void (*event)(void *arg, const char *type, json_t *obj);
	void *arg;
};

/* List once, synchronously (so the caller starts with a full copy), then
 * watch on a thread of its own.  ops must outlive the watch.  Returns 0, or
 * a negative errno with why when the first list fails. */
int gp_kube_watch_start(struct gp_kube_watch **out, struct gp_kube *kube,
			const struct gp_kube_watch_ops *ops, char *why, size_t n)
	__attribute__((warn_unused_result));

/* Stop the thread (within about a second) and free. */
void gp_kube_watch_stop(struct gp_kube_watch *w);

/* Is the copy live: watching now, or less than 30 s ago?  *last_ok_ms is the wall time it last was (now,
 * while watching); err the last error ("" none). */
bool gp_kube_watch_health(struct gp_kube_watch *w, int64_t *last_ok_ms, char *err, size_t n);

#endif
