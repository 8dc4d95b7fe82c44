/* rabbit.h - what RabbitMQ's management HTTP API says about one queue.
 *
 * GET {url}/api/queues/{vhost}/{name} answers a JSON object whose counters
 * (messages_ready, messages_unacknowledged, consumers) the broker fills in
 * once it has collected statistics for the queue, and whose message_stats
 * object carries a count and a `_details.rate` per kind of traffic; the API
 * documents that "only fields for which some activity has taken place will
 * appear", so a missing message_stats field reads as zero.  A missing
 * counter does not: without it nobody knows how busy the queue is, and a
 * made-up zero would scale a busy pool in.  Anything else that is not the
 * documented shape is garbage and an error, never a figure.
 */
#ifndef GP_SCALER_RABBIT_H
#define GP_SCALER_RABBIT_H

#include <stddef.h>
#include <stdint.h>

#define GP_RABBIT_NAME_MAX 255   /* AMQP short strings: queue and vhost names */
#define GP_RABBIT_MAX_BODY (1u << 20) /* answers larger than this are refused */

/* The figures of one queue, as the broker reported them. */
struct gp_rabbit_queue {
	uint64_t ready;          /* messages_ready: waiting for a consumer */
	uint64_t unacked;        /* messages_unacknowledged: held by consumers */
	uint32_t consumers;      /* consumers */
	double publish_rate;     /* message_stats.publish_details.rate, msg/s */
	double ack_rate;         /* message_stats.ack_details.rate */
	double deliver_get_rate; /* message_stats.deliver_get_details.rate: every
	                            delivery, acknowledged or not */
	double deliver_no_ack_rate; /* message_stats.deliver_no_ack_details.rate:
	                               deliveries to auto-ack consumers, which
	                               never show up as acks */
	double redeliver_rate;   /* message_stats.redeliver_details.rate */
	uint64_t published;      /* message_stats.publish: total count */
	uint64_t acked;          /* message_stats.ack */
};

/* Where and how to reach the management API. */
struct gp_rabbit_conn {
	const char *url;        /* base, e.g. "http://rabbitmq:15672" */
	const char *user;       /* basic authentication; NULL for none */
	const char *password;
	const char *ca_file;    /* TLS trust for https; NULL = the system's */
	int insecure;           /* skip TLS verification (tests only) */
	long timeout_ms;        /* whole request */
};

/* Parse the body of GET /api/queues/{vhost}/{name}.  Returns 0 and fills
 * *q, or -EINVAL (not JSON, not an object, a field of the wrong type or
 * out of range) or -ENODATA (the queue's counters are not there yet) with
 * the reason in err. */
int gp_rabbit_parse_queue(const char *body, size_t len, struct gp_rabbit_queue *q, char *err,
			  size_t n) __attribute__((warn_unused_result));

/* The URL of one queue (vhost and name percent-encoded, so the default
 * vhost "/" becomes %2F), restricted with `columns` to the fields parsed
 * above.  Returns a new string (free it) or NULL. */
char *gp_rabbit_queue_url(const char *base, const char *vhost, const char *name);

/* Fetch and parse one queue.  Returns 0, or with the reason in err:
 * -EHOSTUNREACH (no answer: refused, timed out, TLS, too large), -ENOENT
 * (the broker has no such queue), -EACCES (401/403: credentials or
 * permissions), -EPROTO (another HTTP status), or what
 * gp_rabbit_parse_queue returns.  Blocks for up to c->timeout_ms. */
int gp_rabbit_fetch_queue(const struct gp_rabbit_conn *c, const char *vhost, const char *name,
			  struct gp_rabbit_queue *q, char *err, size_t n)
	__attribute__((warn_unused_result));

#endif
