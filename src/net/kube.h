/* kube.h - a small Kubernetes API client: GET, PATCH, POST of JSON.
 *
 * Enough for the scheduler extender and the node agent: read objects and
 * lists, patch them with the content type the patch is written in, create
 * subresources (a pod's binding), and read-modify-write an object under
 * optimistic concurrency, re-reading and retrying a bounded number of
 * times when the API server answers 409 Conflict on a stale
 * resourceVersion.
 *
 * Requests are blocking (libcurl through net/client.h).  A client may be
 * used from several threads at once once opened; the service-account
 * token is re-read when its file changes, since kubelet rotates it.
 *
 * Errors are negative errnos, each with the API server's reason and
 * message copied into a struct gp_kube_err:
 *   -ENOENT   404 NotFound            -EEXIST  409 AlreadyExists
 *   -ESTALE   409 Conflict            -EACCES  401 / 403
 *   -EINVAL   400 / 422 (bad request) -EIO     any other status, or a
 *   -EHOSTUNREACH  no answer at all             body that is not JSON
 */
#ifndef GP_NET_KUBE_H
#define GP_NET_KUBE_H

#include <jansson.h>
#include <stddef.h>

struct gp_kube;

struct gp_kube_opts {
	const char *kubeconfig;     /* a kubeconfig path; NULL = in-cluster */
	const char *context;        /* kubeconfig context; NULL = current-context */
	const char *sa_dir;         /* in-cluster credentials; NULL = the standard one */
	long timeout_ms;            /* per request; 0 = 10 s */
	size_t max_body;            /* response cap; 0 = 64 MiB */
	unsigned conflict_retries;  /* gp_kube_update: re-reads after a 409; 0 = 5 */
};

/* Why a request failed. */
struct gp_kube_err {
	long status;       /* HTTP status; 0 when none came */
	char reason[64];   /* the Status object's reason ("Conflict", ...) */
	char msg[384];     /* a sentence for logs and for users */
};

/* The three patch formats the API server takes, by content type. */
enum gp_kube_patch {
	GP_KUBE_MERGE_PATCH,      /* application/merge-patch+json (RFC 7386) */
	GP_KUBE_STRATEGIC_PATCH,  /* application/strategic-merge-patch+json */
	GP_KUBE_JSON_PATCH,       /* application/json-patch+json (RFC 6902) */
};

/* Open a client from a kubeconfig or in-cluster credentials.  Returns 0,
 * or a negative errno with the reason in err. */
int gp_kube_open(struct gp_kube **out, const struct gp_kube_opts *o, char *err, size_t n)
	__attribute__((warn_unused_result));

void gp_kube_close(struct gp_kube *k);

/* "https://host:port" of the API server. */
const char *gp_kube_server(const struct gp_kube *k);

/* The kubeconfig context's namespace, or NULL. */
const char *gp_kube_namespace(const struct gp_kube *k);

/* GET `path` ("/api/v1/nodes/n1", query included).  On 0, *out is the
 * parsed object (caller owns). */
int gp_kube_get(struct gp_kube *k, const char *path, json_t **out, struct gp_kube_err *e)
	__attribute__((warn_unused_result));

/* PATCH `path` with `patch` (not consumed) in format `type`.  On 0, *out
 * (if out is not NULL) is the object as patched. */
int gp_kube_patch(struct gp_kube *k, const char *path, enum gp_kube_patch type, json_t *patch,
		  json_t **out, struct gp_kube_err *e) __attribute__((warn_unused_result));

/* POST `body` (not consumed) to `path`: create an object or a subresource
 * such as a pod's binding.  On 0, *out (if not NULL) is the answer. */
int gp_kube_post(struct gp_kube *k, const char *path, json_t *body, json_t **out,
		 struct gp_kube_err *e) __attribute__((warn_unused_result));

/* Decide a change to `obj` (the object as just read).  Return 0 with a
 * merge patch in *patch to apply it, 1 to leave the object as it is, or a
 * negative errno (with a reason in e->msg) to give up; that code is
 * returned by gp_kube_update. */
typedef int (*gp_kube_mutate_fn)(json_t *obj, json_t **patch, void *arg, struct gp_kube_err *e);

/* Read-modify-write: GET `path`, ask `fn` for a patch, apply it as `type`
 * (merge or strategic) with the resourceVersion just read added to its
 * metadata, so the API server refuses it with 409 if the object changed in
 * between; then read again and retry, up to the client's conflict_retries.
 * On 0, *out (if not NULL) is the object as it now is: patched, or as
 * read when fn returned 1.  -ESTALE when every try conflicted. */
int gp_kube_update(struct gp_kube *k, const char *path, enum gp_kube_patch type,
		   gp_kube_mutate_fn fn, void *arg, json_t **out, struct gp_kube_err *e)
	__attribute__((warn_unused_result));

/* One event of a watch: type "ADDED", "MODIFIED", "DELETED" or
 * "BOOKMARK" (only metadata.resourceVersion is meaningful then) and the
 * object (borrowed).  Return nonzero to end the watch. */
typedef int (*gp_kube_event_fn)(const char *type, json_t *obj, void *arg);

/* Watch `path` (its query must include watch=1 and the resourceVersion to
 * start from): events go to fn as they come.  Returns 0 when the server
 * ended the stream or fn asked to; -ENODATA when the resourceVersion is
 * too old (410 Gone, as an answer or as an ERROR event: list again); an
 * errno as above otherwise.  A stream silent for the client's timeout is
 * dropped (-EHOSTUNREACH); *cancel (may be NULL) becoming nonzero ends it
 * within about a second. */
int gp_kube_watch(struct gp_kube *k, const char *path, gp_kube_event_fn fn, void *arg,
		  const int *cancel, struct gp_kube_err *e) __attribute__((warn_unused_result));

/* How many requests this client made, and how many 409 conflicts it
 * retried (for logs and tests). */
void gp_kube_counters(const struct gp_kube *k, unsigned long *requests, unsigned long *conflicts);

#endif
