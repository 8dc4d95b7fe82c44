/* serve.h - serving a loaded model's requests from its RabbitMQ queue, the
 * way the inference workers of docs/scaler.md do: one AMQP consumer with
 * manual acks and a prefetch, each message held for a service time that
 * follows its token counts, then acknowledged.  `gpupool engine` runs one
 * per loaded model that names a queue; what it computes is simulated (the
 * engine moves real weights, it does not run the model), so the queue, the
 * scaler and the swap controller see a worker that behaves like one.
 *
 * A message is JSON: {"context_tokens": N, "generated_tokens": M} (each
 * 0..10^7; a missing one counts 0).  Service time = base + prefill x N +
 * decode x M seconds.  Anything else is rejected without requeue (it would
 * come back forever) and counted.
 *
 * The consumer runs on its own thread; a lost connection is reopened with
 * backoff (0.2 s doubling to 5 s).  Stopping cancels the consumer after the
 * message in hand is done and acknowledged.
 */
#ifndef GP_SWAP_SERVE_H
#define GP_SWAP_SERVE_H

#include <stddef.h>
#include <stdint.h>

struct gp_serve_config {
	const char *host;        /* the broker */
	int port;                /* AMQP port, 5672 */
	const char *user, *password;
	const char *vhost;       /* "/" */
	unsigned prefetch;       /* basic.qos, >= 1 */
	double base_s, prefill_s, decode_s; /* the service-time model */
};

struct gp_serve_stats {
	uint64_t served;         /* messages acknowledged */
	uint64_t rejected;       /* messages that were not requests */
	uint64_t reconnects;     /* connections reopened */
	int connected;           /* consuming now */
};

struct gp_serve;

/* Start consuming `queue` (which must exist) with `c` (copied, strings
 * too).  Returns 0 or -ENOMEM/-EINVAL; connection trouble is retried on
 * the thread, never returned. */
int gp_serve_start(struct gp_serve **out, const struct gp_serve_config *c, const char *queue)
	__attribute__((warn_unused_result));

void gp_serve_stats(struct gp_serve *s, struct gp_serve_stats *out);

/* Stop after the message in hand, join the thread, free.  NULL is fine. */
void gp_serve_stop(struct gp_serve *s);

#endif
