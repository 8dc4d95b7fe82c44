/* engine.c - `gpupool engine` (see engine.h).  The HTTP thread owns the
 * model table's shape and answers at once; loads run on a worker thread
 * with the GPU's context bound, and their results are published under the
 * table's lock. */
#include "swap/engine.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "net/http.h"
#include "net/loop.h"
#include "net/ready.h"
#include "net/work.h"
#include "swap/cuda.h"
#include "swap/hostcache.h"
#include "swap/loader.h"
#include "swap/safetensors.h"
#include "swap/serve.h"

#define MAX_MODELS 256u
#define MAX_NAME 128u
#define MAX_BODY 8192u

enum mstate { M_UNLOADED, M_LOADING, M_LOADED, M_FAILED };
static const char *const state_names[] = {"unloaded", "loading", "loaded", "failed"};

struct model {
	char name[MAX_NAME + 1];
	char path[PATH_MAX];
	enum mstate st;
	uint64_t bytes;         /* the weights' data size, once known */
	uint64_t loaded_bytes;  /* on the GPU now */
	uint64_t checksum;
	int have_checksum, from_cache;
	double seconds;         /* of the last load */
	CUdeviceptr dptr;
	char error[512];
	char queue[256];        /* to serve once loaded, or "" */
	struct gp_serve *serve; /* the consumer while loaded */
};

struct engine {
	const struct gp_engine_config *c;
	char models_dir[PATH_MAX];
	struct gp_cuda cu;
	struct gp_hostcache *cache;
	struct gp_work *work;
	struct gp_loader_opts lo;
	pthread_mutex_t lock;
	struct model m[MAX_MODELS];
	size_t n;
};

/* One load, from the HTTP thread to a worker and back. */
struct job {
	struct engine *e;
	size_t i;                /* the model's slot */
	char name[MAX_NAME + 1];
	char path[PATH_MAX];
	uint64_t want_bytes;     /* 0: any */
	struct gp_serve *stop;   /* a stop job: the consumer to stop */
};

static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MAX_NAME)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

/* The slot of `name`, or -1. Under the lock. */
static long find(struct engine *e, const char *name)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->m[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* Worker thread: open the header, allocate, load. */
static void load_run(void *arg)
{
	struct job *j = arg;
	struct engine *e = j->e;
	struct gp_safetensors *st = NULL;
	struct gp_loader_result res = {0};
	CUdeviceptr dptr = 0;
	char err[512] = "";
	int rc;

	if (gp_cuda_bind(&e->cu)) {
		snprintf(err, sizeof err, "cannot bind the GPU's context");
		rc = -EIO;
		goto out;
	}
	if ((rc = gp_safetensors_open(j->path, &st, err, sizeof err)))
		goto out;
	if (j->want_bytes && j->want_bytes != gp_safetensors_data_bytes(st)) {
		rc = -EINVAL;
		snprintf(err, sizeof err, "the file holds %llu bytes of weights, not %llu",
			 (unsigned long long)gp_safetensors_data_bytes(st),
			 (unsigned long long)j->want_bytes);
		goto out;
	}
	if (e->cu.cuMemAlloc_v2(&dptr, gp_safetensors_data_bytes(st) ? gp_safetensors_data_bytes(st)
								       : 1) != CUDA_SUCCESS) {
		rc = -ENOMEM;
		dptr = 0;
		snprintf(err, sizeof err, "not enough GPU memory for %llu bytes",
			 (unsigned long long)gp_safetensors_data_bytes(st));
		goto out;
	}
	rc = gp_loader_load(&e->cu, j->path, gp_safetensors_data_offset(st),
			    gp_safetensors_data_bytes(st), dptr, e->cache, j->name, &e->lo, &res,
			    err, sizeof err);
out:
	pthread_mutex_lock(&e->lock);
	{
		struct model *m = &e->m[j->i];
		m->bytes = st ? gp_safetensors_data_bytes(st) : 0;
		if (rc) {
			m->st = M_FAILED;
			snprintf(m->error, sizeof m->error, "%s", err);
			if (dptr)
				e->cu.cuMemFree_v2(dptr);
		} else {
			m->st = M_LOADED;
			m->dptr = dptr;
			m->loaded_bytes = res.bytes;
			m->checksum = res.checksum;
			m->have_checksum = e->lo.hash;
			m->from_cache = res.from_cache;
			m->seconds = res.seconds;
			m->error[0] = '\0';
		}
	}
	pthread_mutex_unlock(&e->lock);
	if (rc)
		gp_warn("load of %s failed: %s", j->name, err);
	else
		gp_info("loaded %s: %llu bytes in %.3f s%s", j->name,
			(unsigned long long)res.bytes, res.seconds,
			res.from_cache ? " (host cache)" : "");
	gp_safetensors_free(st);
}

/* Loop thread, after a load: a loaded model with a queue starts serving. */
static void load_done(void *arg)
{
	struct job *j = arg;
	struct engine *e = j->e;
	struct model *m = &e->m[j->i];
	const struct gp_engine_config *c = e->c;

	pthread_mutex_lock(&e->lock);
	if (m->st == M_LOADED && m->queue[0] && c->amqp_host && !m->serve) {
		struct gp_serve_config sc = {
			.host = c->amqp_host, .port = c->amqp_port, .user = c->amqp_user,
			.password = c->amqp_password, .vhost = c->amqp_vhost,
			.prefetch = c->prefetch ? c->prefetch : 1, .base_s = c->svc_base,
			.prefill_s = c->svc_prefill, .decode_s = c->svc_decode,
		};
		if (gp_serve_start(&m->serve, &sc, m->queue) != 0)
			gp_warn("%s: cannot start serving queue %s", m->name, m->queue);
	}
	pthread_mutex_unlock(&e->lock);
	free(j);
}

/* Worker thread: stop a consumer, which finishes the message in hand. */
static void stop_run(void *arg)
{
	struct job *j = arg;

	gp_serve_stop(j->stop);
}

static void stop_done(void *arg)
{
	free(arg);
}

/* The weights' real path if it lies under --models-dir, else NULL. */
static int weights_path(struct engine *e, const char *given, char *out)
{
	size_t n = strlen(e->models_dir);

	if (!realpath(given, out))
		return -errno;
	if (strncmp(out, e->models_dir, n) != 0 || (out[n] != '/' && out[n] != '\0'))
		return -EACCES;
	return 0;
}

static void post_load(struct gp_http_req *rq, void *arg)
{
	struct engine *e = arg;
	char name[MAX_NAME + 2], why[256], real[PATH_MAX];
	const char *seg = gp_http_segment(rq, 2, name, sizeof name);
	json_t *body = NULL, *w, *b, *q;
	struct job *j;
	long i;
	int rc;

	if (!seg || !name_ok(seg)) {
		gp_http_reply_error(rq, 400, "a model name is 1-%u of [A-Za-z0-9._-]", MAX_NAME);
		return;
	}
	if (!(body = gp_http_body_json(rq, why, sizeof why))) {
		gp_http_reply_error(rq, 400, "%s", why);
		return;
	}
	w = json_object_get(body, "weights");
	b = json_object_get(body, "bytes");
	q = json_object_get(body, "queue");
	if (!json_is_string(w) || (b && (!json_is_integer(b) || json_integer_value(b) <= 0)) ||
	    (q && (!json_is_string(q) || !json_string_length(q) || json_string_length(q) > 255))) {
		gp_http_reply_error(rq, 400, "want {\"weights\": PATH[, \"bytes\": N > 0]"
				    "[, \"queue\": NAME]}");
		goto out;
	}
	if ((rc = weights_path(e, json_string_value(w), real))) {
		gp_http_reply_error(rq, rc == -EACCES ? 403 : 404, "%s: %s",
				    json_string_value(w),
				    rc == -EACCES ? "not under --models-dir" : strerror(-rc));
		goto out;
	}
	pthread_mutex_lock(&e->lock);
	i = find(e, seg);
	if (i >= 0 && (e->m[i].st == M_LOADING || e->m[i].st == M_LOADED)) {
		int loaded = e->m[i].st == M_LOADED;
		pthread_mutex_unlock(&e->lock);
		gp_http_reply_json(rq, loaded ? 200 : 202,
				   json_pack("{s:s}", "state", loaded ? "loaded" : "loading"));
		goto out;
	}
	if (i < 0 && e->n == MAX_MODELS) {
		pthread_mutex_unlock(&e->lock);
		gp_http_reply_error(rq, 507, "this engine tracks at most %u models", MAX_MODELS);
		goto out;
	}
	j = calloc(1, sizeof *j);
	if (!j) {
		pthread_mutex_unlock(&e->lock);
		gp_http_reply_error(rq, 503, "out of memory");
		goto out;
	}
	if (i < 0) {
		i = (long)e->n++;
		memset(&e->m[i], 0, sizeof e->m[i]);
		strcpy(e->m[i].name, seg);
	}
	e->m[i].st = M_LOADING;
	snprintf(e->m[i].path, sizeof e->m[i].path, "%s", real);
	snprintf(e->m[i].queue, sizeof e->m[i].queue, "%s", q ? json_string_value(q) : "");
	*j = (struct job){.e = e, .i = (size_t)i,
			  .want_bytes = b ? (uint64_t)json_integer_value(b) : 0};
	strcpy(j->name, seg);
	strcpy(j->path, real);
	if (gp_work_submit(e->work, load_run, load_done, j) != 0) {
		e->m[i].st = M_FAILED;
		snprintf(e->m[i].error, sizeof e->m[i].error, "cannot queue the load");
		pthread_mutex_unlock(&e->lock);
		free(j);
		gp_http_reply_error(rq, 503, "cannot queue the load");
		goto out;
	}
	pthread_mutex_unlock(&e->lock);
	gp_http_reply_json(rq, 202, json_pack("{s:s}", "state", "loading"));
out:
	json_decref(body);
}

static void post_unload(struct gp_http_req *rq, void *arg)
{
	struct engine *e = arg;
	char name[MAX_NAME + 2];
	const char *seg = gp_http_segment(rq, 2, name, sizeof name);
	long i;

	if (!seg || !name_ok(seg)) {
		gp_http_reply_error(rq, 400, "a model name is 1-%u of [A-Za-z0-9._-]", MAX_NAME);
		return;
	}
	pthread_mutex_lock(&e->lock);
	i = find(e, seg);
	if (i >= 0 && e->m[i].st == M_LOADING) {
		pthread_mutex_unlock(&e->lock);
		gp_http_reply_error(rq, 409, "%s is loading; unload it once it is loaded", seg);
		return;
	}
	if (i >= 0 && e->m[i].serve) {
		/* Its message in hand takes up to a request's service time: stop
		 * it on the worker, not on the loop. */
		struct job *j = calloc(1, sizeof *j);
		if (!j || (j->e = e, j->stop = e->m[i].serve,
			   gp_work_submit(e->work, stop_run, stop_done, j) != 0)) {
			free(j);
			pthread_mutex_unlock(&e->lock);
			gp_http_reply_error(rq, 503, "cannot stop %s's consumer now", seg);
			return;
		}
		e->m[i].serve = NULL;
	}
	if (i >= 0 && e->m[i].st == M_LOADED) {
		e->cu.cuMemFree_v2(e->m[i].dptr);
		e->m[i].dptr = 0;
		e->m[i].loaded_bytes = 0;
	}
	if (i >= 0)
		e->m[i].st = M_UNLOADED;
	pthread_mutex_unlock(&e->lock);
	gp_http_reply_json(rq, 200, json_pack("{s:s}", "state", "unloaded"));
}

/* The trailing path after /v1/models/{name}/: load or unload. */
static void post_model(struct gp_http_req *rq, void *arg)
{
	char verb[16];
	const char *v = gp_http_segment(rq, 3, verb, sizeof verb);

	if (v && strcmp(v, "load") == 0 && !gp_http_segment(rq, 4, verb, sizeof verb))
		post_load(rq, arg);
	else if (v && strcmp(v, "unload") == 0 && !gp_http_segment(rq, 4, verb, sizeof verb))
		post_unload(rq, arg);
	else
		gp_http_reply_error(rq, 404, "POST /v1/models/NAME/load or /unload");
}

static void get_models(struct gp_http_req *rq, void *arg)
{
	struct engine *e = arg;
	json_t *arr = json_array();

	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->n; i++) {
		const struct model *m = &e->m[i];
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:f, s:b}", "name", m->name, "state",
				      state_names[m->st], "bytes", (json_int_t)m->bytes,
				      "loaded_bytes", (json_int_t)m->loaded_bytes, "seconds",
				      m->seconds, "from_cache", m->from_cache);
		if (m->st == M_LOADED && m->have_checksum) {
			char hex[17];
			snprintf(hex, sizeof hex, "%016llx", (unsigned long long)m->checksum);
			json_object_set_new(o, "checksum", json_string(hex));
		}
		if (m->st == M_FAILED)
			json_object_set_new(o, "error", json_string(m->error));
		if (m->queue[0])
			json_object_set_new(o, "queue", json_string(m->queue));
		if (m->serve) {
			struct gp_serve_stats ss;
			gp_serve_stats(m->serve, &ss);
			json_object_set_new(o, "served", json_integer((json_int_t)ss.served));
			json_object_set_new(o, "rejected", json_integer((json_int_t)ss.rejected));
			json_object_set_new(o, "connected", json_boolean(ss.connected));
		}
		json_array_append_new(arr, o);
	}
	pthread_mutex_unlock(&e->lock);
	gp_http_reply_json(rq, 200, json_pack("{s:o}", "models", arr));
}

static void get_healthz(struct gp_http_req *rq, void *arg)
{
	(void)arg;
	gp_http_reply_json(rq, 200, json_pack("{s:s}", "status", "ok"));
}

static const struct gp_http_route routes[] = {
	{"POST", "/v1/models/*", post_model},
	{"GET", "/v1/models", get_models},
	{"GET", "/healthz", get_healthz},
	{NULL, NULL, NULL},
};

int gp_engine_run(const struct gp_engine_config *c)
{
	static struct engine e; /* large: off the stack */
	struct gp_loop *loop = NULL;
	struct gp_http *http = NULL;
	struct gp_hostcache_alloc pinned;
	char err[512];
	int rc, ready = 0;

	memset(&e, 0, sizeof e);
	e.c = c;
	pthread_mutex_init(&e.lock, NULL);
	e.lo = (struct gp_loader_opts){.chunk = c->chunk, .streams = c->streams,
				       .hash = c->verify};
	if (!realpath(c->models_dir, e.models_dir)) {
		rc = -errno;
		gp_error("--models-dir %s: %s", c->models_dir, strerror(errno));
		return rc;
	}
	if ((rc = gp_cuda_open(&e.cu, c->lib, c->gpu, err, sizeof err))) {
		gp_error("%s", err);
		return rc;
	}
	gp_loader_pinned(&e.cu, &pinned);
	if (c->host_cache && (rc = gp_hostcache_new(&e.cache, c->host_cache, &pinned)))
		goto out;
	rc = -ENOMEM;
	if (!(loop = gp_loop_new()))
		goto out;
	/* One loader at a time: concurrent loads only split the same PCIe
	 * link and the same disk. */
	if ((rc = gp_work_new(&e.work, gp_loop_base(loop), 1)))
		goto out;
	{
		struct gp_http_opts o = {.listen = c->listen, .max_body = MAX_BODY,
					 .max_headers = 16384};
		if ((rc = gp_http_start(&http, gp_loop_base(loop), &o, routes, &e))) {
			gp_error("cannot listen for HTTP on %s: %s", c->listen, strerror(-rc));
			goto out;
		}
	}
	if (c->ready_file) {
		if ((rc = gp_ready_write(c->ready_file, gp_http_port(http), -1))) {
			gp_error("cannot write %s: %s", c->ready_file, strerror(-rc));
			goto out;
		}
		ready = 1;
	}
	gp_info("engine on GPU %d, HTTP %s, host cache %llu bytes, models under %s", c->gpu,
		c->listen, (unsigned long long)c->host_cache, e.models_dir);
	rc = gp_loop_run(loop) ? -EIO : 0;
out:
	if (ready)
		unlink(c->ready_file);
	gp_http_stop(http);
	gp_work_free(e.work); /* waits for a load in progress */
	for (size_t i = 0; i < e.n; i++)
		gp_serve_stop(e.m[i].serve);
	for (size_t i = 0; i < e.n; i++)
		if (e.m[i].dptr)
			e.cu.cuMemFree_v2(e.m[i].dptr);
	gp_hostcache_free(e.cache);
	gp_loop_free(loop);
	gp_cuda_close(&e.cu);
	pthread_mutex_destroy(&e.lock);
	return rc;
}
