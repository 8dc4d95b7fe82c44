/* kubealloc.c - the Kubernetes worker's half of kubelet's Allocate: find
 * the pod (allocate.h), record the container as handed out on the pod,
 * make the tenant's directory.  Runs on the worker thread: every call here
 * may wait for the API server. */
#include "agent/agent_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

struct consume {
	const char *uid;
	const char *container;
};

/* gp_kube_mutate_fn: add the container to the pod's consumed list, unless
 * the pod was replaced (another UID) or the container is already in it. */
static int add_consumed(json_t *pod, json_t **patch, void *arg, struct gp_kube_err *e)
{
	struct consume *c = arg;
	json_t *md = json_object_get(pod, "metadata");
	const char *uid = json_string_value(json_object_get(md, "uid"));
	const char *t = json_string_value(
		json_object_get(json_object_get(md, "annotations"), GP_ALLOC_CONSUMED));
	json_t *list = t ? json_loads(t, 0, NULL) : json_array(), *it;
	size_t i;
	char *text;

	if (!uid || strcmp(uid, c->uid) != 0) {
		json_decref(list);
		snprintf(e->msg, sizeof e->msg, "the pod was replaced while it was allocated");
		return -ESTALE;
	}
	if (!json_is_array(list)) {
		json_decref(list);
		list = json_array();
	}
	json_array_foreach(list, i, it) {
		if (json_is_string(it) && strcmp(json_string_value(it), c->container) == 0) {
			json_decref(list);
			snprintf(e->msg, sizeof e->msg, "container %s was already handed out",
				 c->container);
			return -EALREADY;
		}
	}
	json_array_append_new(list, json_string(c->container));
	text = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	*patch = text ? json_pack("{s:{s:{s:s}}}", "metadata", "annotations", GP_ALLOC_CONSUMED,
				  text)
		      : NULL;
	free(text);
	return *patch ? 0 : -ENOMEM;
}

/* mkdir -p for the tenant's directory: state/tenants/uid/container, open
 * to the container's user (the library creates the region in it). */
static int tenant_dir(const char *state, const struct gp_alloc_grant *g, char *why, size_t n)
{
	char path[4096];
	const char *parts[] = {"tenants", g->uid, g->container};
	size_t len = (size_t)snprintf(path, sizeof path, "%s", state);

	for (int i = 0; i < 3; i++) {
		len += (size_t)snprintf(path + len, sizeof path - len, "/%s", parts[i]);
		if (len >= sizeof path || (mkdir(path, 0755) != 0 && errno != EEXIST)) {
			snprintf(why, n, "cannot make %.300s: %s", path, strerror(errno));
			return -EIO;
		}
	}
	/* The container may run as any user: its own directory is its own. */
	chmod(path, 01777);
	return 0;
}

/* Answer one Allocate: every container in turn, listing the pods again
 * after each (the previous one changed what is handed out). */
static void one(struct gp_agent *a, struct gp_alloc_job *j)
{
	char path[512];
	struct gp_kube_err e;

	snprintf(path, sizeof path, "/api/v1/pods?fieldSelector=spec.nodeName%%3D%s",
		 a->cfg->node_name);
	for (unsigned k = 0; k < j->nctr; k++) {
		struct gp_alloc_grant *g = &j->grant[k];
		json_t *pods = NULL;
		size_t idx;
		int rc = gp_kube_get(a->kube, path, &pods, &e);

		if (rc) {
			j->rc = rc;
			snprintf(j->why, sizeof j->why, "cannot list the pods of node %s: %s",
				 a->cfg->node_name, e.msg);
			return;
		}
		rc = gp_alloc_choose(pods, a->cfg->node_name, j->resource, j->count[k], g, &idx,
				     j->why, sizeof j->why);
		json_decref(pods);
		if (rc) {
			j->rc = rc;
			return;
		}
		char ppath[512];
		struct consume c = {g->uid, g->container};

		snprintf(ppath, sizeof ppath, "/api/v1/namespaces/%s/pods/%s", g->ns, g->pod);
		rc = gp_kube_update(a->kube, ppath, GP_KUBE_MERGE_PATCH, add_consumed, &c, NULL, &e);
		if (rc) {
			j->rc = rc;
			snprintf(j->why, sizeof j->why, "pod %s/%s: cannot record container %s as "
							"allocated: %s", g->ns, g->pod, g->container,
				 e.msg);
			return;
		}
		rc = tenant_dir(a->cfg->state_dir, g, j->why, sizeof j->why);
		if (rc) {
			j->rc = rc;
			return;
		}
		gp_info("allocated %u %s to %s/%s container %s", j->count[k], j->resource, g->ns,
			g->pod, g->container);
	}
	j->rc = 0;
}

void gp__allocate_work(struct gp_agent *a)
{
	for (;;) {
		struct gp_alloc_job *j;

		pthread_mutex_lock(&a->lock);
		j = a->alloc_todo;
		if (j)
			a->alloc_todo = j->next;
		pthread_mutex_unlock(&a->lock);
		if (!j)
			return;
		if (!a->kube) {
			j->rc = -ENOTCONN;
			snprintf(j->why, sizeof j->why, "the agent has no Kubernetes API (--kubeconfig "
							"or in-cluster credentials) to find the pod");
		} else {
			one(a, j);
		}
		pthread_mutex_lock(&a->lock);
		j->next = a->alloc_done;
		a->alloc_done = j;
		pthread_mutex_unlock(&a->lock);
	}
}
