/* devplugin.c - see devplugin.h. */
#include "agent/devplugin.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/clock.h"
#include "common/log.h"
#include "deviceplugin.pb-c.h"
#include "net/grpc.h"
#include "net/grpc_client.h"
#include "region/node.h"

#define MAX_RES 17                    /* gpupool.io/vgpu + one per model */
#define TICK_MS 100                   /* answers, device lists, sockets */
#define REGISTER_EVERY_MS 1000        /* how often kubelet's socket is looked at */
#define CONTAINER_LIB "/usr/local/gpupool/libgpupool.so"
#define CONTAINER_PRELOAD "/etc/ld.so.preload"
#define CONTAINER_TENANT "/var/run/gpupool"
#define CONTAINER_NODE "/var/run/gpupool-node/node"
#define NMOUNTS 4

struct stream {
	struct gp_grpc_call *call;
	struct stream *next;
};

struct resource {
	struct gp_devplugin *dp;
	char name[128];               /* "gpupool.io/vgpu", "gpupool.io/vgpu-h100-..." */
	char model[96];               /* cards of this model only; "" all */
	char sock[64];                /* file name in kubelet's directory */
	struct gp_grpc *srv;
	struct stream *streams;       /* open ListAndWatch calls */
	char *sent;                   /* the device list last sent, as text */
};

struct gp_devplugin {
	struct gp_agent *a;
	struct event_base *base;
	struct event *tick;
	unsigned nres;
	struct resource res[MAX_RES];

	pthread_t thread;             /* registration */
	pthread_mutex_t lock;         /* guards the three below */
	pthread_cond_t cv;
	int stop;
	int want_register;            /* sockets (re)made: register again */
};

/* --- names ---------------------------------------------------------------- */

/* docs/sched.md's normalised model, less the vendor: "NVIDIA
 * H100-SXM-80GB" -> "h100-sxm-80gb". */
static void model_name(const char *model, char *out, size_t n)
{
	size_t k = 0;
	int dash = 0;

	if (strncasecmp(model, "NVIDIA ", 7) == 0)
		model += 7;
	for (; *model && k + 1 < n; model++) {
		unsigned char ch = (unsigned char)*model;

		if (isalnum(ch)) {
			if (dash && k)
				out[k++] = '-';
			if (k + 1 < n)
				out[k++] = (char)tolower(ch);
			dash = 0;
		} else {
			dash = 1;
		}
	}
	out[k] = '\0';
}

/* --- device lists --------------------------------------------------------- */

/* The devices of r in snapshot s: `slices` per card, named after it. */
static char *device_list(struct resource *r, const struct gp_agent_snap *s,
			 V1beta1__ListAndWatchResponse *out)
{
	unsigned slices = r->dp->a->cfg->slices, n = 0;
	size_t cap = 0;
	char *text = NULL;
	FILE *f = open_memstream(&text, &cap);

	out->n_devices = 0;
	out->devices = NULL;
	for (unsigned i = 0; s && i < s->ngpu; i++) {
		char mn[96];

		model_name(s->gpu[i].model, mn, sizeof mn);
		if (r->model[0] && strcmp(mn, r->model) != 0)
			continue;
		n += slices;
	}
	out->devices = calloc(n ? n : 1, sizeof *out->devices);
	for (unsigned i = 0, k = 0; s && i < s->ngpu && out->devices; i++) {
		const struct gp_agent_gpu *g = &s->gpu[i];
		char mn[96];

		model_name(g->model, mn, sizeof mn);
		if (r->model[0] && strcmp(mn, r->model) != 0)
			continue;
		for (unsigned j = 0; j < slices; j++, k++) {
			V1beta1__Device *d = calloc(1, sizeof *d);
			char id[128];

			if (!d)
				break;
			v1beta1__device__init(d);
			snprintf(id, sizeof id, "%s-%u", g->uuid, j);
			d->id = strdup(id);
			d->health = g->healthy ? "Healthy" : "Unhealthy";
			if (g->numa >= 0) {
				V1beta1__TopologyInfo *t = calloc(1, sizeof *t);
				V1beta1__NUMANode *nn = calloc(1, sizeof *nn);

				if (t && nn) {
					v1beta1__topology_info__init(t);
					v1beta1__numanode__init(nn);
					nn->id = g->numa;
					t->nodes = calloc(1, sizeof *t->nodes);
					if (t->nodes) {
						t->nodes[0] = nn;
						t->n_nodes = 1;
					}
					d->topology = t;
				}
			}
			out->devices[out->n_devices++] = d;
			if (f)
				fprintf(f, "%s %s %d\n", id, d->health, g->numa);
		}
	}
	if (f)
		fclose(f);
	return text;
}

static void free_list(V1beta1__ListAndWatchResponse *l)
{
	for (size_t i = 0; i < l->n_devices; i++) {
		V1beta1__Device *d = l->devices[i];

		if (d->topology) {
			for (size_t k = 0; k < d->topology->n_nodes; k++)
				free(d->topology->nodes[k]);
			free(d->topology->nodes);
			free(d->topology);
		}
		free(d->id);
		free(d);
	}
	free(l->devices);
}

/* Send r's device list to every open stream if it changed (or to `only`). */
static void publish(struct resource *r, struct stream *only)
{
	struct gp_agent_snap *s = gp__agent_snap(r->dp->a);
	V1beta1__ListAndWatchResponse l = V1BETA1__LIST_AND_WATCH_RESPONSE__INIT;
	char *text = device_list(r, s, &l);

	gp_snap_unref(s);
	if (!only && text && r->sent && strcmp(text, r->sent) == 0) {
		free(text);
		free_list(&l);
		return;
	}
	for (struct stream *st = only ? only : r->streams, **pp = &r->streams; st;) {
		struct stream *next = only ? NULL : st->next;

		if (gp_grpc_send(st->call, &l.base) != 0 && !only) {
			/* A kubelet too far behind: end its stream, it reconnects. */
			gp_grpc_finish(st->call, GP_GRPC_RESOURCE_EXHAUSTED, "too far behind");
			for (pp = &r->streams; *pp && *pp != st; pp = &(*pp)->next)
				;
			if (*pp)
				*pp = st->next;
			free(st);
		}
		st = next;
	}
	if (!only) {
		free(r->sent);
		r->sent = text;
		text = NULL;
	}
	free(text);
	free_list(&l);
}

/* --- the DevicePlugin service -------------------------------------------- */

static void options_call(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;

	(void)req;
	(void)arg;
	if (gp_grpc_send(call, &o.base) == 0)
		gp_grpc_finish(call, GP_GRPC_OK, NULL);
	else
		gp_grpc_finish(call, GP_GRPC_INTERNAL, "out of memory");
}

static void stream_gone(struct gp_grpc_call *call, void *arg)
{
	struct resource *r = arg;

	for (struct stream **pp = &r->streams; *pp; pp = &(*pp)->next) {
		if ((*pp)->call == call) {
			struct stream *st = *pp;

			*pp = st->next;
			free(st);
			return;
		}
	}
}

static void list_and_watch_call(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	struct resource *r = arg;
	struct stream *st = calloc(1, sizeof *st);

	(void)req;
	if (!st) {
		gp_grpc_finish(call, GP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	st->call = call;
	st->next = r->streams;
	r->streams = st;
	gp_grpc_on_cancel(call, stream_gone, r);
	publish(r, st); /* the current list at once */
}

/* No preference: kubelet's devices are interchangeable slices (the card
 * was chosen by the scheduler).  Must-includes first, then the rest. */
static void preferred_call(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const V1beta1__PreferredAllocationRequest *rq = (const void *)req;
	V1beta1__PreferredAllocationResponse out = V1BETA1__PREFERRED_ALLOCATION_RESPONSE__INIT;
	V1beta1__ContainerPreferredAllocationResponse *c = NULL;
	size_t n = rq->n_container_requests;

	(void)arg;
	out.container_responses = calloc(n ? n : 1, sizeof *out.container_responses);
	c = calloc(n ? n : 1, sizeof *c);
	if (!out.container_responses || !c)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		const V1beta1__ContainerPreferredAllocationRequest *q = rq->container_requests[i];
		size_t want = q->allocation_size > 0 ? (size_t)q->allocation_size : 0, k = 0;

		v1beta1__container_preferred_allocation_response__init(&c[i]);
		c[i].deviceids = calloc(want ? want : 1, sizeof *c[i].deviceids);
		if (!c[i].deviceids)
			goto oom;
		for (size_t j = 0; j < q->n_must_include_deviceids && k < want; j++)
			c[i].deviceids[k++] = q->must_include_deviceids[j];
		for (size_t j = 0; j < q->n_available_deviceids && k < want; j++) {
			int dup = 0;

			for (size_t m = 0; m < k; m++)
				dup |= strcmp(c[i].deviceids[m], q->available_deviceids[j]) == 0;
			if (!dup)
				c[i].deviceids[k++] = q->available_deviceids[j];
		}
		c[i].n_deviceids = k;
		out.container_responses[i] = &c[i];
	}
	out.n_container_responses = n;
	if (gp_grpc_send(call, &out.base) != 0)
		goto oom;
	gp_grpc_finish(call, GP_GRPC_OK, NULL);
	goto out;
oom:
	gp_grpc_finish(call, GP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
out:
	for (size_t i = 0; c && i < n; i++)
		free(c[i].deviceids);
	free(c);
	free(out.container_responses);
}

static void prestart_call(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	V1beta1__PreStartContainerResponse r = V1BETA1__PRE_START_CONTAINER_RESPONSE__INIT;

	(void)req;
	(void)arg;
	if (gp_grpc_send(call, &r.base) == 0)
		gp_grpc_finish(call, GP_GRPC_OK, NULL);
	else
		gp_grpc_finish(call, GP_GRPC_INTERNAL, "out of memory");
}

static void allocate_gone(struct gp_grpc_call *call, void *arg)
{
	struct gp_alloc_job *j = arg;

	(void)call;
	j->call = NULL; /* the answer, when it comes, goes nowhere */
}

/* Queue the call for the Kubernetes worker; the tick answers it. */
static void allocate_call(struct gp_grpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const V1beta1__AllocateRequest *rq = (const void *)req;
	struct resource *r = arg;
	struct gp_agent *a = r->dp->a;
	struct gp_alloc_job *j;

	if (rq->n_container_requests == 0 || rq->n_container_requests > GP_ALLOC_MAX_CTRS) {
		gp_grpc_finish(call, GP_GRPC_INVALID_ARGUMENT, "%zu containers: want 1 to %d",
			       rq->n_container_requests, GP_ALLOC_MAX_CTRS);
		return;
	}
	j = calloc(1, sizeof *j);
	if (!j) {
		gp_grpc_finish(call, GP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	j->call = call;
	snprintf(j->resource, sizeof j->resource, "%s", r->name);
	j->nctr = (unsigned)rq->n_container_requests;
	for (unsigned k = 0; k < j->nctr; k++)
		j->count[k] = (unsigned)rq->container_requests[k]->n_devices_ids;
	gp_grpc_on_cancel(call, allocate_gone, j);
	pthread_mutex_lock(&a->lock);
	j->next = a->alloc_todo;
	a->alloc_todo = j;
	pthread_cond_signal(&a->wake_kube);
	pthread_mutex_unlock(&a->lock);
}

/* --- answers -------------------------------------------------------------- */

struct kv {
	V1beta1__ContainerAllocateResponse__EnvsEntry e[2 * GP_ALLOC_MAX_GPUS + 4];
	V1beta1__ContainerAllocateResponse__EnvsEntry *ep[2 * GP_ALLOC_MAX_GPUS + 4];
	char buf[2 * GP_ALLOC_MAX_GPUS + 4][2][128];
	char visible[GP_ALLOC_MAX_GPUS * 100];
	char tenant[PATH_MAX];
	char lib[PATH_MAX];
	char preload[PATH_MAX];
	char node[PATH_MAX];
	V1beta1__Mount m[NMOUNTS];
	V1beta1__Mount *mp[NMOUNTS];
};

static void env(struct kv *k, size_t *n, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void env(struct kv *k, size_t *n, const char *key, const char *fmt, ...)
{
	va_list ap;

	v1beta1__container_allocate_response__envs_entry__init(&k->e[*n]);
	snprintf(k->buf[*n][0], sizeof k->buf[*n][0], "%s", key);
	va_start(ap, fmt);
	vsnprintf(k->buf[*n][1], sizeof k->buf[*n][1], fmt, ap);
	va_end(ap);
	k->e[*n].key = k->buf[*n][0];
	k->e[*n].value = k->buf[*n][1];
	k->ep[*n] = &k->e[*n];
	(*n)++;
}

/* One container's answer: DESIGN.md's "Node" table, exactly. */
static void container_answer(struct gp_agent *a, const struct gp_alloc_grant *g, struct kv *k,
			     V1beta1__ContainerAllocateResponse *out)
{
	size_t n = 0, len = 0;

	v1beta1__container_allocate_response__init(out);
	k->visible[0] = '\0';
	for (unsigned i = 0; i < g->ngpu; i++)
		len += (size_t)snprintf(k->visible + len, sizeof k->visible - len, "%s%s",
					i ? "," : "", g->uuid[i]);
	/* NVIDIA_VISIBLE_DEVICES is a long list of UUIDs: its own buffer. */
	v1beta1__container_allocate_response__envs_entry__init(&k->e[n]);
	k->e[n].key = "NVIDIA_VISIBLE_DEVICES";
	k->e[n].value = k->visible;
	k->ep[n] = &k->e[n];
	n++;
	for (unsigned i = 0; i < g->ngpu; i++) {
		char key[48];

		snprintf(key, sizeof key, "GPUPOOL_MEMORY_LIMIT_%u", i);
		env(k, &n, key, "%llu", (unsigned long long)g->mem_bytes[i]);
		if (g->compute[i]) {
			snprintf(key, sizeof key, "GPUPOOL_CORE_LIMIT_%u", i);
			env(k, &n, key, "%u", g->compute[i] > 100 ? 100 : g->compute[i]);
		}
	}
	if (g->priority[0])
		env(k, &n, "GPUPOOL_PRIORITY", "%s", g->priority);
	env(k, &n, "GPUPOOL_REGION", "%s", CONTAINER_TENANT "/region");
	env(k, &n, "GPUPOOL_NODE", "%s", CONTAINER_NODE);
	out->envs = k->ep;
	out->n_envs = n;
	snprintf(k->lib, sizeof k->lib, "%s/lib/libgpupool.so", a->cfg->state_dir);
	snprintf(k->preload, sizeof k->preload, "%s/lib/ld.so.preload", a->cfg->state_dir);
	snprintf(k->tenant, sizeof k->tenant, "%s/tenants/%s/%s", a->cfg->state_dir, g->uid,
		 g->container);
	snprintf(k->node, sizeof k->node, "%s/node", a->cfg->state_dir);
	const char *host[NMOUNTS] = {k->lib, k->preload, k->tenant, k->node};
	const char *ctr[NMOUNTS] = {CONTAINER_LIB, CONTAINER_PRELOAD, CONTAINER_TENANT,
				    CONTAINER_NODE};

	for (int i = 0; i < NMOUNTS; i++) {
		v1beta1__mount__init(&k->m[i]);
		k->m[i].host_path = (char *)host[i];
		k->m[i].container_path = (char *)ctr[i];
		k->m[i].read_only = i < 2; /* the region and the node file are written */
		k->mp[i] = &k->m[i];
	}
	out->mounts = k->mp;
	out->n_mounts = NMOUNTS;
}

static void answer(struct gp_agent *a, struct gp_alloc_job *j)
{
	V1beta1__AllocateResponse out = V1BETA1__ALLOCATE_RESPONSE__INIT;
	V1beta1__ContainerAllocateResponse cr[GP_ALLOC_MAX_CTRS], *crp[GP_ALLOC_MAX_CTRS];
	struct kv *k = calloc(j->nctr, sizeof *k);

	if (j->rc) {
		gp_warn("Allocate of %s refused: %s", j->resource, j->why);
		gp_grpc_finish(j->call, j->rc == -ENOENT ? GP_GRPC_FAILED_PRECONDITION
							  : GP_GRPC_UNAVAILABLE,
			       "gpupool: %s", j->why);
		free(k);
		return;
	}
	if (!k) {
		gp_grpc_finish(j->call, GP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	for (unsigned i = 0; i < j->nctr; i++) {
		container_answer(a, &j->grant[i], &k[i], &cr[i]);
		crp[i] = &cr[i];
	}
	out.container_responses = crp;
	out.n_container_responses = j->nctr;
	if (gp_grpc_send(j->call, &out.base) == 0)
		gp_grpc_finish(j->call, GP_GRPC_OK, NULL);
	else
		gp_grpc_finish(j->call, GP_GRPC_INTERNAL, "cannot send the answer");
	free(k);
}

/* --- servers and the tick ------------------------------------------------- */

static const struct gp_grpc_method methods[] = {
	{"/v1beta1.DevicePlugin/GetDevicePluginOptions", &v1beta1__empty__descriptor,
	 &v1beta1__device_plugin_options__descriptor, 0, options_call},
	{"/v1beta1.DevicePlugin/ListAndWatch", &v1beta1__empty__descriptor,
	 &v1beta1__list_and_watch_response__descriptor, 1, list_and_watch_call},
	{"/v1beta1.DevicePlugin/GetPreferredAllocation",
	 &v1beta1__preferred_allocation_request__descriptor,
	 &v1beta1__preferred_allocation_response__descriptor, 0, preferred_call},
	{"/v1beta1.DevicePlugin/Allocate", &v1beta1__allocate_request__descriptor,
	 &v1beta1__allocate_response__descriptor, 0, allocate_call},
	{"/v1beta1.DevicePlugin/PreStartContainer", &v1beta1__pre_start_container_request__descriptor,
	 &v1beta1__pre_start_container_response__descriptor, 0, prestart_call},
	{NULL, NULL, NULL, 0, NULL},
};

/* (Re)start r's server on its socket.  0 or a negative errno. */
static int serve(struct resource *r)
{
	char listen[PATH_MAX + 16];
	struct gp_grpc_opts o = {.listen = listen, .max_message = 1 << 20};
	int rc;

	if (r->srv) {
		gp_grpc_stop(r->srv); /* ends the streams: their cancel callbacks free them */
		r->srv = NULL;
	}
	free(r->sent);
	r->sent = NULL;
	snprintf(listen, sizeof listen, "unix:%s/%s", r->dp->a->cfg->kubelet_dir, r->sock);
	rc = gp_grpc_start(&r->srv, r->dp->base, &o, methods, r);
	if (rc)
		gp_error("device plugin: cannot listen on %s: %s", listen + 5, strerror(-rc));
	return rc;
}

static int sock_exists(const struct resource *r)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", r->dp->a->cfg->kubelet_dir, r->sock);
	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gp_devplugin *dp = arg;
	struct gp_agent *a = dp->a;
	struct gp_alloc_job *done;
	int remade = 0;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&a->lock);
	done = a->alloc_done;
	a->alloc_done = NULL;
	pthread_mutex_unlock(&a->lock);
	while (done) {
		struct gp_alloc_job *j = done;

		done = j->next;
		if (j->call) {
			gp_grpc_on_cancel(j->call, NULL, NULL);
			answer(a, j);
		}
		free(j);
	}
	for (unsigned i = 0; i < dp->nres; i++) {
		struct resource *r = &dp->res[i];

		/* kubelet deletes every plugin's socket when it starts. */
		if (!sock_exists(r)) {
			gp_info("device plugin: %s's socket is gone (kubelet restarted?): "
				"serving it again", r->name);
			remade |= serve(r) == 0;
		}
		publish(r, NULL);
	}
	if (remade) {
		pthread_mutex_lock(&dp->lock);
		dp->want_register = 1;
		pthread_cond_signal(&dp->cv);
		pthread_mutex_unlock(&dp->lock);
	}
}

/* --- registration ----------------------------------------------------------- */

static int register_all(struct gp_devplugin *dp, const char *kubelet)
{
	for (unsigned i = 0; i < dp->nres; i++) {
		V1beta1__RegisterRequest rq = V1BETA1__REGISTER_REQUEST__INIT;
		V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
		char err[512];
		int rc;

		rq.version = "v1beta1";
		rq.endpoint = dp->res[i].sock;
		rq.resource_name = dp->res[i].name;
		rq.options = &o;
		rc = gp_grpc_unary(kubelet, "/v1beta1.Registration/Register", &rq.base,
				   &v1beta1__empty__descriptor, NULL, 5000, err, sizeof err);
		if (rc) {
			gp_warn("device plugin: cannot register %s with kubelet: %s", dp->res[i].name,
				err);
			return rc;
		}
		gp_info("device plugin: registered %s with kubelet", dp->res[i].name);
	}
	return 0;
}

/* Register whenever kubelet's socket is new (a kubelet restart) or our
 * sockets were made again; retry every second after a failure. */
static void *registrar(void *arg)
{
	struct gp_devplugin *dp = arg;
	char kubelet[PATH_MAX];
	ino_t done_ino = 0;
	dev_t done_dev = 0;

	pthread_setname_np(pthread_self(), "gp-plugin");
	snprintf(kubelet, sizeof kubelet, "%s/kubelet.sock", dp->a->cfg->kubelet_dir);
	pthread_mutex_lock(&dp->lock);
	while (!dp->stop) {
		struct stat st;
		int want = dp->want_register;
		uint64_t deadline;

		pthread_mutex_unlock(&dp->lock);
		if (stat(kubelet, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    (want || st.st_ino != done_ino || st.st_dev != done_dev)) {
			if (register_all(dp, kubelet) == 0) {
				done_ino = st.st_ino;
				done_dev = st.st_dev;
				want = 0;
			}
		}
		pthread_mutex_lock(&dp->lock);
		if (!want)
			dp->want_register = 0;
		deadline = gp_now_ns() + REGISTER_EVERY_MS * 1000000ull;
		while (!dp->stop && !dp->want_register && gp_now_ns() < deadline)
			gp__agent_wait(&dp->cv, &dp->lock, deadline);
	}
	pthread_mutex_unlock(&dp->lock);
	return NULL;
}

/* --- the library on the host ------------------------------------------------ */

/* Copy src to dst through a temporary file and a rename, so a container
 * starting meanwhile sees the old file or the new, never half of one. */
static int install_file(const char *src, const char *data, size_t len, const char *dst)
{
	char tmp[PATH_MAX + 8], buf[65536];
	int in = -1, out, rc = 0;
	ssize_t n;

	snprintf(tmp, sizeof tmp, "%s.new", dst);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return -errno;
	if (src && (in = open(src, O_RDONLY | O_CLOEXEC)) < 0)
		rc = -errno;
	while (!rc && in >= 0 && (n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0 || write(out, buf, (size_t)n) != n)
			rc = -EIO;
	}
	if (!rc && data && write(out, data, len) != (ssize_t)len)
		rc = -EIO;
	if (in >= 0)
		close(in);
	if (fsync(out) != 0 && !rc)
		rc = -errno;
	close(out);
	if (!rc && rename(tmp, dst) != 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

static int install_lib(const struct gp_agent_config *c)
{
	struct gp_node node = GP_NODE_INIT;
	char dir[PATH_MAX], dst[PATH_MAX + 32];
	int rc;

	snprintf(dir, sizeof dir, "%s/lib", c->state_dir);
	if (mkdir(c->state_dir, 0755) != 0 && errno != EEXIST)
		return -errno;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return -errno;
	snprintf(dst, sizeof dst, "%s/libgpupool.so", dir);
	rc = install_file(c->lib, NULL, 0, dst);
	if (rc) {
		gp_error("device plugin: cannot install %s as %s: %s", c->lib, dst, strerror(-rc));
		return rc;
	}
	snprintf(dst, sizeof dst, "%s/ld.so.preload", dir);
	rc = install_file(NULL, CONTAINER_LIB "\n", strlen(CONTAINER_LIB) + 1, dst);
	if (rc) {
		gp_error("device plugin: cannot write %s: %s", dst, strerror(-rc));
		return rc;
	}
	/* The node file must exist before a container mounts it (a bind
	 * mount of a missing file would make a directory); creating it here
	 * also opens it to every user, whatever user tenants run as. */
	snprintf(dst, sizeof dst, "%s/node", c->state_dir);
	if ((rc = gp_node_open(&node, dst)) == 0)
		gp_shm_close(&node.shm);
	else
		gp_error("device plugin: cannot create the node file %s: %s", dst,
			 rc == -EPROTO ? "a file of another kind or version is there" : strerror(-rc));
	return rc;
}

/* --- start and stop ------------------------------------------------------------ */

static void add_resource(struct gp_devplugin *dp, const char *name, const char *model)
{
	struct resource *r;
	char sock[64];

	for (unsigned i = 0; i < dp->nres; i++)
		if (strcmp(dp->res[i].name, name) == 0)
			return;
	if (dp->nres >= MAX_RES)
		return;
	r = &dp->res[dp->nres++];
	r->dp = dp;
	snprintf(r->name, sizeof r->name, "%s", name);
	snprintf(r->model, sizeof r->model, "%s", model);
	/* gpupool.io/vgpu-x -> gpupool-vgpu-x.sock */
	snprintf(sock, sizeof sock, "gpupool-%.50s.sock", strchr(name, '/') + 1);
	snprintf(r->sock, sizeof r->sock, "%s", sock);
}

int gp_devplugin_start(struct gp_devplugin **out, struct gp_agent *a, struct event_base *base)
{
	struct gp_devplugin *dp = calloc(1, sizeof *dp);
	struct timeval tv = {0, TICK_MS * 1000};
	struct gp_agent_snap *s;
	int rc;

	*out = NULL;
	if (!dp)
		return -ENOMEM;
	dp->a = a;
	dp->base = base;
	pthread_mutex_init(&dp->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&dp->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	rc = install_lib(a->cfg);
	if (rc)
		goto fail;
	if (a->cfg->hami_names) {
		add_resource(dp, "nvidia.com/gpu", "");
	} else {
		add_resource(dp, "gpupool.io/vgpu", "");
		/* One per card model, from the cards found at start. */
		s = gp__agent_snap(a);
		for (unsigned i = 0; s && i < s->ngpu; i++) {
			char mn[96], name[160];

			model_name(s->gpu[i].model, mn, sizeof mn);
			if (!mn[0] || strlen(mn) > 50)
				continue;
			snprintf(name, sizeof name, "gpupool.io/vgpu-%s", mn);
			add_resource(dp, name, mn);
		}
		gp_snap_unref(s);
	}
	for (unsigned i = 0; i < dp->nres; i++)
		if ((rc = serve(&dp->res[i])))
			goto fail;
	dp->tick = event_new(base, -1, EV_PERSIST, on_tick, dp);
	if (!dp->tick || event_add(dp->tick, &tv) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = -pthread_create(&dp->thread, NULL, registrar, dp);
	if (rc)
		goto fail;
	*out = dp;
	return 0;
fail:
	if (dp->tick)
		event_free(dp->tick);
	for (unsigned i = 0; i < dp->nres; i++)
		gp_grpc_stop(dp->res[i].srv);
	pthread_cond_destroy(&dp->cv);
	pthread_mutex_destroy(&dp->lock);
	free(dp);
	return rc;
}

void gp_devplugin_stop(struct gp_devplugin *dp)
{
	if (!dp)
		return;
	pthread_mutex_lock(&dp->lock);
	dp->stop = 1;
	pthread_cond_signal(&dp->cv);
	pthread_mutex_unlock(&dp->lock);
	pthread_join(dp->thread, NULL);
	event_free(dp->tick);
	for (unsigned i = 0; i < dp->nres; i++) {
		gp_grpc_stop(dp->res[i].srv);
		free(dp->res[i].sent);
	}
	pthread_cond_destroy(&dp->cv);
	pthread_mutex_destroy(&dp->lock);
	free(dp);
}
