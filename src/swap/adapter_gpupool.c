/* adapter_gpupool.c - gpupool's own engine (`gpupool engine`), through
 * the API adapter.h defines:
 *   POST /v1/models/{name}/load {"weights", "bytes"[, "queue"]} -> 202 {"state":
 *        "loading"} or 200 {"state": "loaded"}
 *   POST /v1/models/{name}/unload -> 200 {"state": "unloaded"}
 *   GET  /v1/models -> {"models": [{"name", "state", "bytes",
 *        "loaded_bytes", "checksum"?}]}
 *   GET  /healthz -> {"status": "ok"}
 * Errors are {"error": s} with a 4xx/5xx status.  Every answer is checked
 * against that shape: the engine is ours, so a stray field type is a bug
 * to report, not to guess around. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errf.h"
#include "swap/adapter_int.h"

#define KIND "gpupool"

/* The engine's state words. */
static const struct {
	const char *name;
	enum gp_swap_state state;
} states[] = {
	{"unloaded", GP_SWAP_UNLOADED},
	{"loading", GP_SWAP_LOADING},
	{"loaded", GP_SWAP_LOADED},
	{"failed", GP_SWAP_FAILED},
};

/* The state a {"state": s} object names, or -1. */
static int state_of(json_t *obj, enum gp_swap_state *out)
{
	json_t *st = json_object_get(obj, "state");

	for (size_t i = 0; json_is_string(st) && i < sizeof states / sizeof *states; i++)
		if (strcmp(json_string_value(st), states[i].name) == 0) {
			*out = states[i].state;
			return 0;
		}
	return -1;
}

/* Make the request and read its answer as a JSON object into *doc. */
static int call(struct gp__swap_req *rq, json_t **doc, long *status, char *err, size_t n)
{
	struct gp_client_resp r;
	int rc;

	*doc = NULL;
	if ((rc = gp__swap_http(rq, &r, err, n)))
		return rc;
	*status = r.status;
	*doc = gp__swap_json(rq, &r, err, n);
	gp_client_free(&r);
	if (!*doc)
		return -EPROTO;
	if (!json_is_object(*doc)) {
		json_decref(*doc);
		*doc = NULL;
		return gp__swap_bad_answer(rq, err, n, "the answer is not a JSON object");
	}
	return 0;
}

static int gpupool_load(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
			char *err, size_t n)
{
	static const int accepted[] = {200, 202, 0};
	char url[GP_SWAP_REF_URL_MAX], *body = NULL;
	struct gp__swap_req rq = {.kind = KIND, .method = "POST", .url = url,
				  .timeout_ms = gp__swap_op_ms(e), .accept = accepted};
	enum gp_swap_state s;
	json_t *req = NULL, *doc = NULL;
	long status = 0;
	int rc;

	if ((rc = gp__swap_check(e, m, err, n)))
		return rc;
	if (!m->weights || !*m->weights || m->bytes > INT64_MAX)
		return gp_errf(err, n, -EINVAL,
			       "%s: %s: model '%s' needs its weights' path and size", KIND,
			       e->endpoint, m->name);
	if ((rc = gp__swap_url(url, e, "/v1/models/{name}/load", m->name, err, n)))
		return rc;
	req = json_pack("{s:s,s:I}", "weights", m->weights, "bytes", (json_int_t)m->bytes);
	/* With a queue, the loaded model serves it (src/swap/serve.h). */
	if (req && m->queue && json_object_set_new(req, "queue", json_string(m->queue)) != 0) {
		json_decref(req);
		req = NULL;
	}
	if (!req) /* also a path or queue that is not UTF-8 */
		return gp_errf(err, n, -EINVAL, "%s: weights path of '%s' is not UTF-8", KIND,
			       m->name);
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!body)
		return gp_errf(err, n, -ENOMEM, "%s: out of memory", KIND);
	rq.body = body;
	if ((rc = call(&rq, &doc, &status, err, n)))
		goto out;
	if (state_of(doc, &s) ||
	    !((status == 202 && s == GP_SWAP_LOADING) || (status == 200 && s == GP_SWAP_LOADED)))
		rc = gp__swap_bad_answer(&rq, err, n,
					 "want 202 {\"state\": \"loading\"} or "
					 "200 {\"state\": \"loaded\"}");
out:
	json_decref(doc);
	free(body);
	return rc;
}

static int gpupool_unload(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
			  char *err, size_t n)
{
	char url[GP_SWAP_REF_URL_MAX];
	struct gp__swap_req rq = {.kind = KIND, .method = "POST", .url = url,
				  .timeout_ms = gp__swap_op_ms(e)};
	enum gp_swap_state s;
	json_t *doc;
	long status;
	int rc;

	if ((rc = gp__swap_check(e, m, err, n)) ||
	    (rc = gp__swap_url(url, e, "/v1/models/{name}/unload", m->name, err, n)) ||
	    (rc = call(&rq, &doc, &status, err, n)))
		return rc;
	if (state_of(doc, &s) || s != GP_SWAP_UNLOADED)
		rc = gp__swap_bad_answer(&rq, err, n, "want {\"state\": \"unloaded\"}");
	json_decref(doc);
	return rc;
}

/* Is this a model entry of the documented shape? */
static int entry_ok(json_t *entry)
{
	json_t *sum = json_object_get(entry, "checksum");

	return json_is_object(entry) && json_is_string(json_object_get(entry, "name")) &&
	       json_is_integer(json_object_get(entry, "bytes")) &&
	       json_integer_value(json_object_get(entry, "bytes")) >= 0 &&
	       json_is_integer(json_object_get(entry, "loaded_bytes")) &&
	       json_integer_value(json_object_get(entry, "loaded_bytes")) >= 0 &&
	       (!sum || json_is_string(sum));
}

static int gpupool_state(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
			 enum gp_swap_state *out, char *err, size_t n)
{
	char url[GP_SWAP_REF_URL_MAX], why[160];
	struct gp__swap_req rq = {.kind = KIND, .method = "GET", .url = url,
				  .timeout_ms = gp__swap_query_ms(e)};
	enum gp_swap_state s = GP_SWAP_UNLOADED; /* not listed: not there */
	json_t *doc, *models, *entry;
	long status;
	size_t i;
	int rc;

	*out = GP_SWAP_UNKNOWN;
	if ((rc = gp__swap_check(e, m, err, n)) ||
	    (rc = gp__swap_url(url, e, "/v1/models", NULL, err, n)) ||
	    (rc = call(&rq, &doc, &status, err, n)))
		return rc;
	models = json_object_get(doc, "models");
	if (!json_is_array(models)) {
		rc = gp__swap_bad_answer(&rq, err, n, "no \"models\" array in the answer");
		goto out;
	}
	json_array_foreach(models, i, entry) {
		enum gp_swap_state es;

		if (!entry_ok(entry) || state_of(entry, &es)) {
			snprintf(why, sizeof why,
				 "models[%zu] is not {name, state, bytes, loaded_bytes, "
				 "checksum?}", i);
			rc = gp__swap_bad_answer(&rq, err, n, why);
			goto out;
		}
		if (strcmp(json_string_value(json_object_get(entry, "name")), m->name) == 0)
			s = es;
	}
	*out = s;
out:
	json_decref(doc);
	return rc;
}

static int gpupool_health(const struct gp_swap_engine_ref *e, char *err, size_t n)
{
	char url[GP_SWAP_REF_URL_MAX];
	struct gp__swap_req rq = {.kind = KIND, .method = "GET", .url = url,
				  .timeout_ms = gp__swap_query_ms(e)};
	json_t *doc, *st;
	long status;
	int rc;

	if ((rc = gp__swap_check(e, NULL, err, n)) ||
	    (rc = gp__swap_url(url, e, "/healthz", NULL, err, n)) ||
	    (rc = call(&rq, &doc, &status, err, n)))
		return rc;
	st = json_object_get(doc, "status");
	if (!json_is_string(st) || strcmp(json_string_value(st), "ok") != 0)
		rc = gp__swap_bad_answer(&rq, err, n, "want {\"status\": \"ok\"}");
	json_decref(doc);
	return rc;
}

const struct gp_swap_adapter gp__swap_gpupool = {
	.kind = KIND,
	.load = gpupool_load,
	.unload = gpupool_unload,
	.state = gpupool_state,
	.health = gpupool_health,
};
