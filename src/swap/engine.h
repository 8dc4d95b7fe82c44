/* engine.h - `gpupool engine`: a model-serving data plane that loads and
 * unloads models' weights on one GPU on request, through the loader and
 * the host cache, and reports what it holds.  `gpupool swap` drives it
 * through src/swap/adapter_gpupool.c.
 *
 * HTTP API (JSON):
 *   POST /v1/models/{name}/load    {"weights": PATH[, "bytes": N][, "queue": Q]}
 *        202 {"state":"loading"}, or 200 {"state":"loaded"} when it is;
 *        PATH is a safetensors file under --models-dir; N, when given, must
 *        be its data size; with Q and --amqp, the loaded model serves the
 *        requests of RabbitMQ queue Q (src/swap/serve.h) until unloaded.
 *        The load runs on a worker thread.
 *   POST /v1/models/{name}/unload  200 {"state":"unloaded"}; the weights
 *        stay in the host cache for the next load; 409 while loading
 *   GET  /v1/models   {"models":[{"name","state":"loading|loaded|unloaded|failed",
 *        "bytes","loaded_bytes","checksum"?,"seconds","from_cache","error"?,
 *        "queue"?,"served"?,"connected"?}]}
 *   GET  /healthz     {"status":"ok"}
 */
#ifndef GP_SWAP_ENGINE_H
#define GP_SWAP_ENGINE_H

#include <stddef.h>
#include <stdint.h>

struct gp_engine_config {
	const char *listen;      /* HTTP address, "127.0.0.1:0" picks a port */
	const char *lib;         /* the driver to dlopen (NULL: libcuda.so.1) */
	int gpu;                 /* device ordinal */
	const char *models_dir;  /* weights must lie under it (realpath) */
	uint64_t host_cache;     /* bytes of pinned host cache; 0: none */
	size_t chunk;            /* loader chunk bytes; 0: default */
	unsigned streams;        /* loader streams; 0: default */
	int verify;              /* checksum every load (costs a CPU pass) */
	const char *ready_file;  /* {"pid","http_port"} once listening */
	/* Serving queues: the broker (NULL: loads ignore "queue") and the
	 * service-time model of src/swap/serve.h. */
	const char *amqp_host;
	int amqp_port;
	const char *amqp_user, *amqp_password, *amqp_vhost;
	unsigned prefetch;
	double svc_base, svc_prefill, svc_decode;
};

/* Run until SIGTERM/SIGINT.  Returns 0, or -errno after logging why it
 * could not start (no driver, no GPU, cannot listen). */
int gp_engine_run(const struct gp_engine_config *c) __attribute__((warn_unused_result));

#endif
