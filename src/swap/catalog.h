/* catalog.h - what `gpupool swap` manages: the models it may place, and the
 * pool of engines it may place them on.
 *
 * The catalog is one YAML file (read with libyaml), validated whole before
 * anything uses it: a bad catalog is refused with "FILE:LINE:COLUMN: FIELD:
 * why", never half-read.  The schema (every key shown; nothing else is
 * allowed, so a typo is an error, with a did-you-mean):
 *
 *   defaults:                  optional; what models inherit
 *     min_replicas: 1          0..1000 (default 0)
 *     max_replicas: 4          1..1000 (default 1)
 *     vhost: /                 (default "/")
 *   models:                    required, 1..GP_SWAP_MAX_MODELS entries
 *     - name: llama-8b         required, [A-Za-z0-9._-], 1..128 bytes, unique
 *       weights: /models/x     required: an absolute path or a file:///
 *                              URI (stored as the path), <= 4096 bytes
 *       size: 16GiB            required, > 0: GPU memory of one replica
 *                              (gp_parse_size: units are binary, 800MB is
 *                              800 MiB; a bare number is bytes)
 *       engines_per_replica: 1 optional, 1..1024; see below
 *       min_replicas: 0        optional, 0..1000 (defaults.min_replicas)
 *       max_replicas: 4        optional, 1..1000, >= min_replicas
 *                              (defaults.max_replicas; with neither,
 *                              the larger of 1 and min_replicas)
 *       throughput: 12.5       required: requests/s one replica serves,
 *                              a plain number, finite, > 0
 *       queue: llama-8b        optional: the RabbitMQ queue of its requests,
 *                              1..255 bytes (default: the model's name);
 *                              no two models share a (vhost, queue)
 *       vhost: /               optional, 1..255 bytes (defaults.vhost)
 *   engines:                   required, 1..GP_SWAP_MAX_ENGINES entries
 *     - name: gpu-0            required, same rules as a model's name, unique
 *       kind: gpupool          required: vllm | triton | gpupool
 *       memory: 80GiB          required, > 0: GPU memory of the engine
 *       endpoint: http://h:80  triton and gpupool: required, http(s) URL;
 *                              vllm: refused (it has servers instead)
 *       servers:               vllm: required, 1+ entries; others: refused.
 *         llama-8b: http://h:8001    one vLLM server (sleep mode) per
 *                              model it can serve; keys are model names
 *   rabbitmq:                  optional: where the queues are
 *     url: http://rabbit:15672 required in the section: the management API
 *     user: monitor            optional, together with password_file
 *     password_file: /etc/...  optional, absolute path
 *
 * An engine can serve a model when it is triton or gpupool, or when it is
 * vllm and its servers name the model; every model needs at least one.
 * engines_per_replica, left out, is ceil(size / the smallest memory among
 * the engines that can serve the model): a replica then fits wherever it
 * can run.  Given, it may be smaller than that but must make the model fit
 * the biggest such engines (size <= engines_per_replica x memory), and may
 * not exceed the number of engines that can serve the model.
 *
 * Sections are read in the order above whatever their order in the file;
 * the first error found is the one reported.
 *
 * YAML rules (as the kubeconfig reader has them): one document, UTF-8
 * only (a byte order mark is skipped), block or flow style, comments,
 * quoted strings and keys; integers and
 * throughput are plain scalars (a quoted "4" is a string, refused there);
 * empty values (`key:`, `~`, `null`) are refused: leave the key out for
 * its default.  Refused outright: anchors and aliases (no alias bombs),
 * tags, NUL characters, keys that are mappings or lists, duplicate keys.
 * Caps: GP_SWAP_CATALOG_MAX_BYTES of text, GP_SWAP_CATALOG_MAX_DEPTH
 * levels of nesting, GP_SWAP_CATALOG_MAX_NODES values, and scalars of at
 * most GP_SWAP_CATALOG_MAX_SCALAR bytes.
 */
#ifndef GP_SWAP_CATALOG_H
#define GP_SWAP_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#define GP_SWAP_CATALOG_MAX_BYTES (1u << 20) /* the whole file */
#define GP_SWAP_CATALOG_MAX_DEPTH 8          /* nested mappings and lists */
#define GP_SWAP_CATALOG_MAX_NODES 200000u    /* values of all kinds */
#define GP_SWAP_CATALOG_MAX_SCALAR 8192u     /* bytes of one key or value */
#define GP_SWAP_MAX_MODELS 1024u
#define GP_SWAP_MAX_ENGINES 1024u
#define GP_SWAP_NAME_MAX 128u      /* model and engine names */
#define GP_SWAP_PATH_MAX 4096u     /* weights, password_file */
#define GP_SWAP_URL_MAX 2048u      /* endpoints, servers, rabbitmq url */
#define GP_SWAP_QUEUE_MAX 255u     /* AMQP short strings: queue, vhost */
#define GP_SWAP_REPLICAS_MAX 1000u /* min_replicas, max_replicas */
#define GP_SWAP_EPR_MAX 1024u      /* engines_per_replica */

enum gp_swap_engine_kind {
	GP_SWAP_ENGINE_VLLM,    /* vLLM servers in sleep mode, one per model */
	GP_SWAP_ENGINE_TRITON,  /* Triton: model repository load/unload */
	GP_SWAP_ENGINE_GPUPOOL, /* `gpupool engine` */
};

/* One model. */
struct gp_swap_model {
	char *name;                   /* unique among models */
	char *weights;                /* absolute path (file:// stripped) */
	uint64_t size;                /* bytes of GPU memory one replica needs, > 0 */
	uint32_t engines_per_replica; /* engines one replica spans, >= 1 */
	uint32_t min_replicas;        /* 0..max_replicas */
	uint32_t max_replicas;        /* 1..GP_SWAP_REPLICAS_MAX */
	double throughput;            /* requests/s of one replica, finite, > 0 */
	char *queue;                  /* RabbitMQ queue of its requests */
	char *vhost;                  /* and that queue's vhost */
	unsigned line;                /* line of its entry in the file (from 1) */
};

/* One vLLM server of an engine: the model it serves, and where. */
struct gp_swap_server {
	size_t model; /* index into gp_swap_catalog.models */
	char *url;    /* http(s) URL of the server */
};

/* One engine. */
struct gp_swap_engine {
	char *name;                    /* unique among engines */
	enum gp_swap_engine_kind kind; /* what it is and how it is driven */
	uint64_t memory;               /* bytes of GPU memory, > 0 */
	char *endpoint;                /* http(s) URL; NULL for vllm */
	struct gp_swap_server *servers; /* vllm: its servers, in file order; */
	size_t nservers;               /* else NULL and 0 */
	unsigned line;                 /* line of its entry in the file (from 1) */
};

/* Where the queues are; all NULL when the section is absent. */
struct gp_swap_rabbitmq {
	char *url;           /* management API base URL, or NULL */
	char *user;          /* or NULL (then password_file is NULL too) */
	char *password_file; /* absolute path, or NULL */
};

/* A whole validated catalog.  Read-only once loaded; everything in it is
 * owned by it and freed by gp_swap_catalog_free. */
struct gp_swap_catalog {
	struct gp_swap_model *models;   /* nmodels, in file order */
	size_t nmodels;                 /* 1..GP_SWAP_MAX_MODELS */
	struct gp_swap_engine *engines; /* nengines, in file order */
	size_t nengines;                /* 1..GP_SWAP_MAX_ENGINES */
	struct gp_swap_rabbitmq rabbitmq; /* the rabbitmq section */
	size_t *model_order;  /* private: model indexes sorted by name */
	size_t *engine_order; /* private: engine indexes sorted by name */
};

/* Parse and validate `len` bytes of catalog text (need not be
 * NUL-terminated); `name` names the text in messages ("catalog.yaml").
 * Returns 0 with a new catalog in *out (free it with gp_swap_catalog_free),
 * or -EINVAL (-ENOMEM) with *out NULL and "NAME:LINE:COL: FIELD: why" in
 * err. */
int gp_swap_catalog_parse(const char *buf, size_t len, const char *name,
			  struct gp_swap_catalog **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The same from the file at `path` (a regular file of at most
 * GP_SWAP_CATALOG_MAX_BYTES); -ENOENT etc. when it cannot be read. */
int gp_swap_catalog_load(const char *path, struct gp_swap_catalog **out, char *err,
			 size_t errlen) __attribute__((warn_unused_result));

/* Free a catalog (NULL is fine). */
void gp_swap_catalog_free(struct gp_swap_catalog *c);

/* The index of the model / engine called `name`, or -1 when there is none.
 * O(log n). */
long gp_swap_catalog_model(const struct gp_swap_catalog *c, const char *name);
long gp_swap_catalog_engine(const struct gp_swap_catalog *c, const char *name);

/* The engine kind's name ("vllm", ...), for messages. */
const char *gp_swap_engine_kind_name(enum gp_swap_engine_kind kind);

/* Whether engine `e` can serve model `m` (triton and gpupool: any model;
 * vllm: one its servers name).  Returns the server's index for vllm, 0
 * for the others, -1 when it cannot. */
long gp_swap_engine_serves(const struct gp_swap_catalog *c, size_t e, size_t m);

#endif
