/* adapter_int.h - what the engine adapters share (adapter.c): checking
 * their arguments, building URLs, one HTTP exchange with its errors mapped
 * to the codes adapter.h lists, and reading a JSON answer.  Not for use
 * outside src/swap/adapter*.c.
 */
#ifndef GP_SWAP_ADAPTER_INT_H
#define GP_SWAP_ADAPTER_INT_H

#include <jansson.h>
#include <stddef.h>

#include "net/client.h"
#include "swap/adapter.h"

/* One request an adapter makes. */
struct gp__swap_req {
	const char *kind;     /* engine kind, first word of every message */
	const char *method;   /* "GET", "POST" */
	const char *url;      /* whole URL, from gp__swap_url */
	const char *body;     /* JSON text (sent as application/json), or NULL:
	                         a POST then goes with an empty body */
	long timeout_ms;      /* > 0 */
	const int *accept;    /* statuses that are answers, 0-terminated;
	                         NULL: 200 only */
	const char *hint_404; /* added to the message of a 404, or NULL */
};

/* Check the engine (kind known, endpoint an http(s) URL that fits) and,
 * when m is not NULL, the model name.  0 or -EINVAL with err. */
int gp__swap_check(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m, char *err,
		   size_t n) __attribute__((warn_unused_result));

/* Write endpoint + path into url (GP_SWAP_REF_URL_MAX bytes): the endpoint
 * without its trailing slashes, then path, in which each "%s" (at most
 * two) is `name` percent-encoded as a path segment.  0, -EINVAL (too
 * long) or -ENOMEM, with err. */
int gp__swap_url(char *url, const struct gp_swap_engine_ref *e, const char *path, const char *name,
		 char *err, size_t n) __attribute__((warn_unused_result));

/* Make the request.  0 with the answer in *resp (free it with
 * gp_client_free) when its status is one of rq->accept; otherwise a
 * negative errno as adapter.h lists them, with err, and nothing to free. */
int gp__swap_http(const struct gp__swap_req *rq, struct gp_client_resp *resp, char *err,
		  size_t n) __attribute__((warn_unused_result));

/* The answer's body as JSON (duplicate keys refused), or NULL with
 * -EPROTO's message in err. */
json_t *gp__swap_json(const struct gp__swap_req *rq, const struct gp_client_resp *resp,
		      char *err, size_t n);

/* For an answer of the wrong shape: "<kind>: <method> <url>: <what>"
 * into err; returns -EPROTO. */
int gp__swap_bad_answer(const struct gp__swap_req *rq, char *err, size_t n, const char *what);

/* The engines' time limits, defaults applied. */
long gp__swap_query_ms(const struct gp_swap_engine_ref *e);
long gp__swap_op_ms(const struct gp_swap_engine_ref *e);

extern const struct gp_swap_adapter gp__swap_vllm;
extern const struct gp_swap_adapter gp__swap_triton;
extern const struct gp_swap_adapter gp__swap_gpupool;

#endif
