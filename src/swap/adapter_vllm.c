/* adapter_vllm.c - vLLM's sleep mode as a swap: one vLLM server per model,
 * started with VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode, put to
 * sleep (level 1: weights kept in CPU memory, KV cache dropped, GPU memory
 * freed) and woken up.  The endpoints are vLLM's
 * (vllm/entrypoints/serve/sleep/api_router.py, docs/features/sleep_mode.md):
 * POST /sleep?level=N and POST /wake_up answer 200 with an empty body once
 * done, GET /is_sleeping answers {"is_sleeping": bool}; GET /health is the
 * server's own health check.  Without dev mode the sleep endpoints are
 * not mounted at all: a 404, said so in the message.  See adapter.h. */
#include <errno.h>
#include <string.h>

#include "swap/adapter_int.h"

#define KIND "vllm"
#define NO_SLEEP_MODE \
	"is the server running with VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode?"

/* POST an order with no body; the answer is 200 and nothing more. */
static int order(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
		 const char *path, char *err, size_t n)
{
	char url[GP_SWAP_REF_URL_MAX];
	struct gp__swap_req rq = {.kind = KIND, .method = "POST", .url = url,
				  .timeout_ms = gp__swap_op_ms(e), .hint_404 = NO_SLEEP_MODE};
	struct gp_client_resp r;
	int rc;

	if ((rc = gp__swap_check(e, m, err, n)) || (rc = gp__swap_url(url, e, path, NULL, err, n)))
		return rc;
	if ((rc = gp__swap_http(&rq, &r, err, n)))
		return rc;
	gp_client_free(&r);
	return 0;
}

static int vllm_load(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
		     char *err, size_t n)
{
	return order(e, m, "/wake_up", err, n);
}

static int vllm_unload(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
		       char *err, size_t n)
{
	return order(e, m, "/sleep?level=1", err, n);
}

static int vllm_state(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
		      enum gp_swap_state *out, char *err, size_t n)
{
	char url[GP_SWAP_REF_URL_MAX];
	struct gp__swap_req rq = {.kind = KIND, .method = "GET", .url = url,
				  .timeout_ms = gp__swap_query_ms(e), .hint_404 = NO_SLEEP_MODE};
	struct gp_client_resp r;
	json_t *doc, *asleep;
	int rc;

	*out = GP_SWAP_UNKNOWN;
	if ((rc = gp__swap_check(e, m, err, n)) ||
	    (rc = gp__swap_url(url, e, "/is_sleeping", NULL, err, n)) ||
	    (rc = gp__swap_http(&rq, &r, err, n)))
		return rc;
	doc = gp__swap_json(&rq, &r, err, n);
	gp_client_free(&r);
	if (!doc)
		return -EPROTO;
	asleep = json_object_get(doc, "is_sleeping");
	if (!json_is_boolean(asleep))
		rc = gp__swap_bad_answer(&rq, err, n, "no boolean \"is_sleeping\" in the answer");
	else
		*out = json_is_true(asleep) ? GP_SWAP_UNLOADED : GP_SWAP_LOADED;
	json_decref(doc);
	return rc;
}

static int vllm_health(const struct gp_swap_engine_ref *e, char *err, size_t n)
{
	char url[GP_SWAP_REF_URL_MAX];
	struct gp__swap_req rq = {.kind = KIND, .method = "GET", .url = url,
				  .timeout_ms = gp__swap_query_ms(e)};
	struct gp_client_resp r;
	int rc;

	if ((rc = gp__swap_check(e, NULL, err, n)) ||
	    (rc = gp__swap_url(url, e, "/health", NULL, err, n)) ||
	    (rc = gp__swap_http(&rq, &r, err, n)))
		return rc;
	gp_client_free(&r);
	return 0;
}

const struct gp_swap_adapter gp__swap_vllm = {
	.kind = KIND,
	.load = vllm_load,
	.unload = vllm_unload,
	.state = vllm_state,
	.health = vllm_health,
};
