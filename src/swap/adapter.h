/* adapter.h - engine adapters: how `gpupool swap` moves a model onto or
 * off an inference engine, one file per engine behind this one table.
 *
 * Each adapter speaks its engine's own HTTP API, exactly as documented:
 *
 * vllm     (adapter_vllm.c) one vLLM server per model, started with
 *          VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode (without them
 *          the endpoints below do not exist: 404).  The engine's endpoint
 *          is that model's server.
 *            load   = POST {endpoint}/wake_up          -> 200, empty body
 *            unload = POST {endpoint}/sleep?level=1    -> 200, empty body
 *                     (level 1: weights to CPU memory, KV cache dropped)
 *            state  = GET  {endpoint}/is_sleeping      -> {"is_sleeping": bool}
 *                     (true: UNLOADED, false: LOADED)
 *            health = GET  {endpoint}/health           -> 200
 * triton   (adapter_triton.c) Triton's model repository extension; the
 *          server must run with --model-control-mode=explicit.
 *            load   = POST {endpoint}/v2/repository/models/{name}/load   -> 200
 *            unload = POST {endpoint}/v2/repository/models/{name}/unload -> 200
 *                     (both answer 4xx {"error": "..."} on failure; both
 *                     return once the engine has finished)
 *            state  = GET  {endpoint}/v2/models/{name}/ready: 200 LOADED;
 *                     400 (not ready): POST {endpoint}/v2/repository/index
 *                     {} -> [{"name", "version"?, "state"?, "reason"?}]
 *                     tells which: LOADING, UNLOADING, UNAVAILABLE with
 *                     reason "unloaded" or no state at all (never loaded)
 *                     UNLOADED, UNAVAILABLE with another reason FAILED
 *            health = GET  {endpoint}/v2/health/ready  -> 200 ready, 400 not
 * gpupool  (adapter_gpupool.c) gpupool's own engine (`gpupool engine`),
 *          whose API this defines:
 *            POST /v1/models/{name}/load {"weights": "<path>", "bytes": <n>}
 *                 -> 202 {"state": "loading"}, or 200 {"state": "loaded"}
 *                    when it already is; the load goes on in the engine
 *            POST /v1/models/{name}/unload -> 200 {"state": "unloaded"}
 *            GET  /v1/models -> 200 {"models": [{"name": s, "state":
 *                 "loading|loaded|unloaded|failed", "bytes": n,
 *                 "loaded_bytes": n, "checksum"?: s}, ...]}; a model not
 *                 listed is UNLOADED
 *            GET  /healthz -> 200 {"status": "ok"}
 *            errors: 4xx/5xx {"error": "<message>"}; 404 = no such model
 *
 * load and unload return once the engine has taken the order: done for
 * vLLM and Triton, under way for gpupool's engine (202); callers poll
 * state() until LOADED / UNLOADED.  Every call is synchronous, bounded by
 * the engine's time limits, keeps no state and may run on any thread at
 * once (gp_client_init must have run first).  Requests, responses and
 * their caps are tested against fixture files in
 * tests/fixtures/swap/adapters/ (README.md there).
 *
 * Errors (negative errno), each with a sentence in err naming the engine
 * kind, the request and what came back:
 *   -EINVAL        bad arguments (name, endpoint, sizes); nothing was sent
 *   -EHOSTUNREACH  no answer: refused, reset, name not resolved
 *   -ETIMEDOUT     no answer within the time limit
 *   -EMSGSIZE      an answer over GP_SWAP_MAX_BODY
 *   -ENOENT        404: no such model (or, vLLM, no sleep-mode endpoints)
 *   -EACCES        401 / 403
 *   -EAGAIN        429 / 503, Triton's health 400: busy or not ready yet
 *   -EREMOTEIO     any other error status: the engine refused or failed
 *   -EPROTO        a status or body that is not the documented answer
 *   -ENOMEM
 */
#ifndef GP_SWAP_ADAPTER_H
#define GP_SWAP_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#define GP_SWAP_REF_NAME_MAX 255         /* bytes in a model name */
#define GP_SWAP_REF_URL_MAX 2048         /* bytes in a request URL; an endpoint
                                        may have half of them */
#define GP_SWAP_MAX_BODY (1u << 20)  /* engine answers larger than this fail */
#define GP_SWAP_QUERY_TIMEOUT_MS 5000L   /* default limit of state, health */
#define GP_SWAP_OP_TIMEOUT_MS 300000L    /* default limit of load, unload */

/* Where a model is, as its engine reports it. */
enum gp_swap_state {
	GP_SWAP_UNKNOWN,   /* not asked, or the answer did not say */
	GP_SWAP_UNLOADED,  /* not on the GPU (vLLM: asleep) */
	GP_SWAP_LOADING,   /* on its way in */
	GP_SWAP_LOADED,    /* ready to serve */
	GP_SWAP_UNLOADING, /* on its way out: its memory is not free yet */
	GP_SWAP_FAILED,    /* the engine tried and failed to load it */
};

/* One engine, as the controller knows it.  Borrowed strings. */
struct gp_swap_engine_ref {
	const char *kind;     /* "vllm", "triton", "gpupool" */
	const char *endpoint; /* base URL, "http://10.0.0.5:8000" (a trailing
	                         slash is fine); vllm: the model's own server */
	long query_timeout_ms; /* state, health; 0 = GP_SWAP_QUERY_TIMEOUT_MS */
	long op_timeout_ms;   /* load, unload; 0 = GP_SWAP_OP_TIMEOUT_MS */
};

/* The model an operation is about.  Borrowed strings. */
struct gp_swap_model_ref {
	const char *name;     /* the engine's name for it, 1..GP_SWAP_REF_NAME_MAX
	                         bytes, no control characters (vllm: only
	                         named in messages) */
	const char *weights;  /* gpupool: path of the weights; others: unused */
	uint64_t bytes;       /* gpupool: their size; others: unused */
	const char *queue;    /* gpupool: the RabbitMQ queue the loaded model
	                         serves, or NULL; others: unused (a vLLM or
	                         Triton server's clients are its own) */
};

/* An engine kind's operations.  Each returns 0 or a negative errno and,
 * on an error, writes why into err (n bytes, NUL-terminated; err may be
 * NULL when n is 0). */
struct gp_swap_adapter {
	const char *kind; /* the gp_swap_engine.kind it serves */
	/* Bring the model onto the engine's GPU (see above for when it
	 * returns). */
	int (*load)(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m, char *err,
		    size_t n);
	/* Take it off, freeing its GPU memory. */
	int (*unload)(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m, char *err,
		      size_t n);
	/* Where it is now, into *out (GP_SWAP_UNKNOWN on an error). */
	int (*state)(const struct gp_swap_engine_ref *e, const struct gp_swap_model_ref *m,
		     enum gp_swap_state *out, char *err, size_t n);
	/* Whether the engine is up and able to take orders. */
	int (*health)(const struct gp_swap_engine_ref *e, char *err, size_t n);
};

/* The adapter for an engine kind, or NULL if there is none. */
const struct gp_swap_adapter *gp_swap_adapter_find(const char *kind);

/* "unloaded", "loading", ...: for logs and JSON. */
const char *gp_swap_state_name(enum gp_swap_state s);

#endif
