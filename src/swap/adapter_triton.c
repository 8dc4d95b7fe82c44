/* adapter_triton.c - Triton Inference Server through its model repository
 * extension (docs/protocol/extension_model_repository.md), with the server
 * in --model-control-mode=explicit:
 *   POST v2/repository/models/{name}/load    body may be empty; 200 once
 *                                             loaded, 4xx {"error": s}
 *   POST v2/repository/models/{name}/unload  the same
 *   POST v2/repository/index                 {"ready"?: bool} ->
 *        [{"name": s, "version"?: s, "state"?: s, "reason"?: s}]; a model
 *        never loaded has its name only; states are UNKNOWN, READY,
 *        UNAVAILABLE (failed to load, or unloaded: reason "unloaded"),
 *        LOADING, UNLOADING
 * and the KServe v2 health API: GET v2/models/{name}/ready and GET
 * v2/health/ready answer 200 when ready and 400 (empty body) when not.
 * See adapter.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/errf.h"
#include "swap/adapter_int.h"

#define KIND "triton"

/* POST a load or unload; the answer is 200 (the body, if any, says
 * nothing more). */
static int control(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
		   const char *path, char *err, size_t n)
{
	char url[GP_SWAP_REF_URL_MAX];
	struct gp__swap_req rq = {.kind = KIND, .method = "POST", .url = url,
				  .timeout_ms = gp__swap_op_ms(e)};
	struct gp_client_resp r;
	int rc;

	if ((rc = gp__swap_check(e, m, err, n)) ||
	    (rc = gp__swap_url(url, e, path, m->name, err, n)) ||
	    (rc = gp__swap_http(&rq, &r, err, n)))
		return rc;
	gp_client_free(&r);
	return 0;
}

static int triton_load(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
		       char *err, size_t n)
{
	return control(e, m, "/v2/repository/models/{name}/load", err, n);
}

static int triton_unload(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
			 char *err, size_t n)
{
	return control(e, m, "/v2/repository/models/{name}/unload", err, n);
}

/* Triton's state names, and ours.  The order is precedence when versions
 * of one model disagree: one READY version serves the model. */
static const struct {
	const char *name;
	enum gp_swap_state state;
} states[] = {
	{"READY", GP_SWAP_LOADED},         {"LOADING", GP_SWAP_LOADING},
	{"UNLOADING", GP_SWAP_UNLOADING},  {"UNAVAILABLE", GP_SWAP_UNLOADED},
	{"UNKNOWN", GP_SWAP_UNKNOWN},
};

/* One index entry's state, or -1 for a state Triton does not have.  An
 * entry with no state is a model never loaded; UNAVAILABLE with a reason
 * other than "unloaded" is a failed load. */
static int entry_state(json_t *entry, size_t *rank, enum gp_swap_state *out)
{
	json_t *st = json_object_get(entry, "state"), *why = json_object_get(entry, "reason");

	if (!st) {
		*rank = sizeof states / sizeof *states - 2; /* as UNAVAILABLE */
		*out = GP_SWAP_UNLOADED;
		return 0;
	}
	if (!json_is_string(st) || (why && !json_is_string(why)))
		return -1;
	for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
		if (strcmp(json_string_value(st), states[i].name) != 0)
			continue;
		*rank = i;
		*out = states[i].state;
		if (*out == GP_SWAP_UNLOADED && why && json_string_length(why) &&
		    strcmp(json_string_value(why), "unloaded") != 0)
			*out = GP_SWAP_FAILED;
		return 0;
	}
	return -1;
}

/* The model's state from the repository index. */
static int from_index(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
		      enum gp_swap_state *out, char *err, size_t n)
{
	char url[GP_SWAP_REF_URL_MAX], why[160];
	struct gp__swap_req rq = {.kind = KIND, .method = "POST", .url = url, .body = "{}",
				  .timeout_ms = gp__swap_query_ms(e)};
	struct gp_client_resp r;
	size_t best = sizeof states / sizeof *states, i;
	json_t *doc, *entry;
	int rc, found = 0;

	if ((rc = gp__swap_url(url, e, "/v2/repository/index", NULL, err, n)) ||
	    (rc = gp__swap_http(&rq, &r, err, n)))
		return rc;
	doc = gp__swap_json(&rq, &r, err, n);
	gp_client_free(&r);
	if (!doc)
		return -EPROTO;
	if (!json_is_array(doc)) {
		json_decref(doc);
		return gp__swap_bad_answer(&rq, err, n, "the index is not a JSON array");
	}
	json_array_foreach(doc, i, entry) {
		json_t *name = json_object_get(entry, "name");
		enum gp_swap_state s;
		size_t rank;

		if (!json_is_string(name)) {
			snprintf(why, sizeof why, "index entry %zu has no string \"name\"", i);
			rc = gp__swap_bad_answer(&rq, err, n, why);
			goto out;
		}
		if (strcmp(json_string_value(name), m->name) != 0)
			continue;
		if (entry_state(entry, &rank, &s)) {
			snprintf(why, sizeof why,
				 "index entry %zu: a state or reason Triton does not have", i);
			rc = gp__swap_bad_answer(&rq, err, n, why);
			goto out;
		}
		if (!found || rank < best) {
			best = rank;
			*out = s;
		}
		found = 1;
	}
	if (!found)
		rc = gp_errf(err, n, -ENOENT, "%s: %s %s: no model '%s' in the repository", KIND,
			     rq.method, url, m->name);
out:
	if (rc)
		*out = GP_SWAP_UNKNOWN;
	json_decref(doc);
	return rc;
}

static int triton_state(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
			enum gp_swap_state *out, char *err, size_t n)
{
	static const int ready_or_not[] = {200, 400, 0};
	char url[GP_SWAP_REF_URL_MAX];
	struct gp__swap_req rq = {.kind = KIND, .method = "GET", .url = url,
				  .timeout_ms = gp__swap_query_ms(e), .accept = ready_or_not};
	struct gp_client_resp r;
	long status;
	int rc;

	*out = GP_SWAP_UNKNOWN;
	if ((rc = gp__swap_check(e, m, err, n)) ||
	    (rc = gp__swap_url(url, e, "/v2/models/{name}/ready", m->name, err, n)) ||
	    (rc = gp__swap_http(&rq, &r, err, n)))
		return rc;
	status = r.status;
	gp_client_free(&r);
	if (status == 200) {
		*out = GP_SWAP_LOADED;
		return 0;
	}
	/* Not ready: the index says whether it is on its way, gone or failed. */
	return from_index(e, m, out, err, n);
}

static int triton_health(const struct gp_swap_engine_ref *e, char *err, size_t n)
{
	static const int ready_or_not[] = {200, 400, 0};
	char url[GP_SWAP_REF_URL_MAX];
	struct gp__swap_req rq = {.kind = KIND, .method = "GET", .url = url,
				  .timeout_ms = gp__swap_query_ms(e), .accept = ready_or_not};
	struct gp_client_resp r;
	long status;
	int rc;

	if ((rc = gp__swap_check(e, NULL, err, n)) ||
	    (rc = gp__swap_url(url, e, "/v2/health/ready", NULL, err, n)) ||
	    (rc = gp__swap_http(&rq, &r, err, n)))
		return rc;
	status = r.status;
	gp_client_free(&r);
	if (status != 200)
		return gp_errf(err, n, -EAGAIN, "%s: GET %s: HTTP %ld: the server is not ready",
			       KIND, url, status);
	return 0;
}

const struct gp_swap_adapter gp__swap_triton = {
	.kind = KIND,
	.load = triton_load,
	.unload = triton_unload,
	.state = triton_state,
	.health = triton_health,
};
