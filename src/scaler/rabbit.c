/* rabbit.c - see rabbit.h. */
#include "scaler/rabbit.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/client.h"

enum kind {
	COUNT,   /* a non-negative JSON integer */
	COUNT32, /* the same, at most UINT32_MAX */
	RATE,    /* a JSON number, finite */
};

struct field {
	const char *key;     /* in the queue object, or in message_stats */
	const char *sub;     /* a member of that, or NULL */
	enum kind kind;
	size_t off;          /* in struct gp_rabbit_queue */
};

#define AT(member) offsetof(struct gp_rabbit_queue, member)

/* The queue's own counters: required (see rabbit.h). */
static const struct field counters[] = {
	{"messages_ready", NULL, COUNT, AT(ready)},
	{"messages_unacknowledged", NULL, COUNT, AT(unacked)},
	{"consumers", NULL, COUNT32, AT(consumers)},
};

/* message_stats: each optional, zero when absent. */
static const struct field stats[] = {
	{"publish_details", "rate", RATE, AT(publish_rate)},
	{"ack_details", "rate", RATE, AT(ack_rate)},
	{"deliver_get_details", "rate", RATE, AT(deliver_get_rate)},
	{"deliver_no_ack_details", "rate", RATE, AT(deliver_no_ack_rate)},
	{"redeliver_details", "rate", RATE, AT(redeliver_rate)},
	{"publish", NULL, COUNT, AT(published)},
	{"ack", NULL, COUNT, AT(acked)},
};

/* Store one value of `f` found in `v` into q.  Returns 0 or -EINVAL. */
static int store(const struct field *f, const json_t *v, struct gp_rabbit_queue *q, char *err,
		 size_t n)
{
	char *at = (char *)q + f->off;
	const char *name = f->sub ? f->sub : f->key;

	if (f->kind == RATE) {
		double d = json_number_value(v);
		if (!json_is_number(v) || !isfinite(d)) {
			snprintf(err, n, "%s%s%s is not a number", f->key, f->sub ? "." : "",
				 f->sub ? f->sub : "");
			return -EINVAL;
		}
		*(double *)(void *)at = d;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (f->kind == COUNT32 && json_integer_value(v) > (json_int_t)UINT32_MAX)) {
		snprintf(err, n, "%s is not a count (a non-negative integer%s)", name,
			 f->kind == COUNT32 ? " below 2^32" : "");
		return -EINVAL;
	}
	if (f->kind == COUNT32)
		*(uint32_t *)(void *)at = (uint32_t)json_integer_value(v);
	else
		*(uint64_t *)(void *)at = (uint64_t)json_integer_value(v);
	return 0;
}

int gp_rabbit_parse_queue(const char *body, size_t len, struct gp_rabbit_queue *q, char *err,
			  size_t n)
{
	json_error_t je;
	json_t *doc, *ms;
	int rc = 0;

	memset(q, 0, sizeof *q);
	if (len > GP_RABBIT_MAX_BODY) {
		snprintf(err, n, "answer of %zu bytes is larger than %u", len, GP_RABBIT_MAX_BODY);
		return -EINVAL;
	}
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		snprintf(err, n, "answer is not JSON: %s", je.text);
		return -EINVAL;
	}
	if (!json_is_object(doc)) {
		snprintf(err, n, "answer is not a JSON object");
		rc = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) {
		const json_t *v = json_object_get(doc, counters[i].key);
		if (!v) {
			snprintf(err, n, "no %s for the queue yet (the broker has not collected "
					 "its statistics, or collects none)", counters[i].key);
			rc = -ENODATA;
			goto out;
		}
		if ((rc = store(&counters[i], v, q, err, n)))
			goto out;
	}
	ms = json_object_get(doc, "message_stats");
	if (!ms)
		goto out; /* no traffic yet: every rate is zero */
	if (!json_is_object(ms)) {
		snprintf(err, n, "message_stats is not an object");
		rc = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < sizeof stats / sizeof *stats; i++) {
		const json_t *v = json_object_get(ms, stats[i].key);
		if (v && stats[i].sub) {
			if (!json_is_object(v)) {
				snprintf(err, n, "message_stats.%s is not an object", stats[i].key);
				rc = -EINVAL;
				goto out;
			}
			v = json_object_get(v, stats[i].sub);
		}
		if (v && (rc = store(&stats[i], v, q, err, n)))
			goto out;
	}
out:
	json_decref(doc);
	if (rc)
		memset(q, 0, sizeof *q);
	return rc;
}

char *gp_rabbit_queue_url(const char *base, const char *vhost, const char *name)
{
	/* Only what gp_rabbit_parse_queue reads: a queue with thousands of
	 * consumers otherwise answers with a detail line for each. */
	static const char columns[] =
		"columns=name,messages_ready,messages_unacknowledged,consumers,message_stats";
	char *v = gp_client_escape(vhost), *q = gp_client_escape(name), *url = NULL;
	size_t bl = strlen(base);

	while (bl && base[bl - 1] == '/')
		bl--;
	if (v && q && asprintf(&url, "%.*s/api/queues/%s/%s?%s", (int)bl, base, v, q, columns) < 0)
		url = NULL;
	free(v);
	free(q);
	return url;
}

int gp_rabbit_fetch_queue(const struct gp_rabbit_conn *c, const char *vhost, const char *name,
			  struct gp_rabbit_queue *q, char *err, size_t n)
{
	static const char *const headers[] = {"Accept: application/json", NULL};
	struct gp_client_opts o = {
		.timeout_ms = c->timeout_ms,
		.max_body = GP_RABBIT_MAX_BODY,
		.ca_file = c->ca_file,
		.insecure = c->insecure,
		.user = c->user,
		.password = c->password,
	};
	struct gp_client_resp r;
	char *url = gp_rabbit_queue_url(c->url, vhost, name);
	int rc;

	memset(q, 0, sizeof *q);
	if (!url) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	if (gp_client_request("GET", url, headers, NULL, 0, &o, &r) != 0) {
		snprintf(err, n, "RabbitMQ unreachable: %s", r.err);
		free(url);
		return -EHOSTUNREACH;
	}
	free(url);
	switch (r.status) {
	case 200: {
		char why[200];
		rc = gp_rabbit_parse_queue(r.body, r.len, q, why, sizeof why);
		if (rc == -EINVAL)
			snprintf(err, n, "RabbitMQ answered garbage: %s", why);
		else if (rc)
			snprintf(err, n, "%s", why);
		break;
	}
	case 404:
		snprintf(err, n, "RabbitMQ has no queue '%s' in vhost '%s'", name, vhost);
		rc = -ENOENT;
		break;
	case 401:
	case 403:
		snprintf(err, n, "RabbitMQ refused the credentials (HTTP %ld)", r.status);
		rc = -EACCES;
		break;
	default:
		snprintf(err, n, "RabbitMQ answered HTTP %ld", r.status);
		rc = -EPROTO;
		break;
	}
	gp_client_free(&r);
	return rc;
}
