/* serve.c - a model's queue consumer (see serve.h), on rabbitmq-c. */
#include "swap/serve.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define MAX_BODY 65536u        /* a request is a few dozen bytes */
#define MAX_TOKENS 10000000    /* as bench/autoscale caps them */
#define POLL_MS 200            /* how often a quiet consumer checks for stop */

struct gp_serve {
	struct gp_serve_config c;
	char *host, *user, *password, *vhost, *queue;
	pthread_t thread;
	pthread_mutex_t lock;
	int stop;
	struct gp_serve_stats st;
};

static int stopping(struct gp_serve *s)
{
	int stop;

	pthread_mutex_lock(&s->lock);
	stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

static void count(struct gp_serve *s, uint64_t *field, int connected)
{
	pthread_mutex_lock(&s->lock);
	if (field)
		(*field)++;
	if (connected >= 0)
		s->st.connected = connected;
	pthread_mutex_unlock(&s->lock);
}

/* Sleep `sec`, in slices; the message in hand is finished even when asked
 * to stop, as a worker would. */
static void hold(double sec)
{
	struct timespec ts = {.tv_sec = (time_t)sec,
			      .tv_nsec = (long)((sec - (double)(time_t)sec) * 1e9)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The service time of a message body, or -1 if it is not a request. */
static double service(const struct gp_serve *s, const void *body, size_t len)
{
	json_t *doc, *ctx, *gen;
	double t = -1;

	if (len > MAX_BODY || !(doc = json_loadb(body, len, 0, NULL)))
		return -1;
	ctx = json_object_get(doc, "context_tokens");
	gen = json_object_get(doc, "generated_tokens");
	if (json_is_object(doc) && (!ctx || (json_is_integer(ctx) && json_integer_value(ctx) >= 0 &&
					     json_integer_value(ctx) <= MAX_TOKENS)) &&
	    (!gen || (json_is_integer(gen) && json_integer_value(gen) >= 0 &&
		      json_integer_value(gen) <= MAX_TOKENS)))
		t = s->c.base_s + s->c.prefill_s * (double)(ctx ? json_integer_value(ctx) : 0) +
		    s->c.decode_s * (double)(gen ? json_integer_value(gen) : 0);
	json_decref(doc);
	return t;
}

static int rpc_ok(amqp_connection_state_t conn)
{
	return amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL;
}

/* Connect, log in, open channel 1, set the prefetch and consume.  Returns
 * the connection, or NULL. */
static amqp_connection_state_t open_consumer(struct gp_serve *s)
{
	amqp_connection_state_t conn = amqp_new_connection();
	amqp_socket_t *sock = conn ? amqp_tcp_socket_new(conn) : NULL;
	struct timeval tv = {.tv_sec = 5};

	if (!sock || amqp_socket_open_noblock(sock, s->host, s->c.port, &tv) != AMQP_STATUS_OK)
		goto fail;
	if (amqp_login(conn, s->vhost, 1, 131072, 30, AMQP_SASL_METHOD_PLAIN, s->user,
		       s->password).reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	amqp_channel_open(conn, 1);
	if (!rpc_ok(conn))
		goto fail;
	amqp_basic_qos(conn, 1, 0, (uint16_t)s->c.prefetch, 0);
	if (!rpc_ok(conn))
		goto fail;
	amqp_basic_consume(conn, 1, amqp_cstring_bytes(s->queue), amqp_empty_bytes, 0, 0, 0,
			   amqp_empty_table);
	if (!rpc_ok(conn))
		goto fail;
	return conn;
fail:
	if (conn) {
		amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(conn);
	}
	return NULL;
}

/* Consume until stopped or the connection fails.  Returns 0 when asked to
 * stop. */
static int consume(struct gp_serve *s, amqp_connection_state_t conn)
{
	while (!stopping(s)) {
		struct timeval tv = {.tv_sec = 0, .tv_usec = POLL_MS * 1000};
		amqp_envelope_t env;
		amqp_rpc_reply_t r;
		double t;

		amqp_maybe_release_buffers(conn);
		r = amqp_consume_message(conn, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT)
			continue;
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			return -EIO;
		t = service(s, env.message.body.bytes, env.message.body.len);
		if (t < 0) {
			amqp_basic_reject(conn, 1, env.delivery_tag, 0);
			count(s, &s->st.rejected, -1);
		} else {
			hold(t);
			if (amqp_basic_ack(conn, 1, env.delivery_tag, 0) != AMQP_STATUS_OK) {
				amqp_destroy_envelope(&env);
				return -EIO;
			}
			count(s, &s->st.served, -1);
		}
		amqp_destroy_envelope(&env);
	}
	return 0;
}

static void *run(void *arg)
{
	struct gp_serve *s = arg;
	double backoff = 0.2;
	int first = 1;

	while (!stopping(s)) {
		amqp_connection_state_t conn = open_consumer(s);

		if (!conn) {
			if (first)
				gp_warn("queue %s: cannot consume from %s:%d; retrying", s->queue,
					s->host, s->c.port);
			first = 0;
			hold(backoff);
			backoff = backoff * 2 > 5 ? 5 : backoff * 2;
			continue;
		}
		if (!first)
			count(s, &s->st.reconnects, -1);
		first = 0;
		backoff = 0.2;
		count(s, NULL, 1);
		consume(s, conn);
		count(s, NULL, 0);
		amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
		amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(conn);
	}
	return NULL;
}

static void free_serve(struct gp_serve *s)
{
	free(s->host);
	free(s->user);
	free(s->password);
	free(s->vhost);
	free(s->queue);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int gp_serve_start(struct gp_serve **out, const struct gp_serve_config *c, const char *queue)
{
	struct gp_serve *s;

	*out = NULL;
	if (!c->host || c->port <= 0 || c->port > 65535 || c->prefetch < 1 ||
	    c->prefetch > 65535 || !queue || !queue[0] || strlen(queue) > 255)
		return -EINVAL;
	if (!(s = calloc(1, sizeof *s)))
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->c = *c;
	s->host = strdup(c->host);
	s->user = strdup(c->user ? c->user : "guest");
	s->password = strdup(c->password ? c->password : "guest");
	s->vhost = strdup(c->vhost ? c->vhost : "/");
	s->queue = strdup(queue);
	if (!s->host || !s->user || !s->password || !s->vhost || !s->queue ||
	    pthread_create(&s->thread, NULL, run, s) != 0) {
		free_serve(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void gp_serve_stats(struct gp_serve *s, struct gp_serve_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	pthread_mutex_unlock(&s->lock);
}

void gp_serve_stop(struct gp_serve *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	free_serve(s);
}
