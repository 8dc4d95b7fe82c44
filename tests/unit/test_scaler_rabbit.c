/* test_scaler_rabbit.c - the parser of RabbitMQ's queue answers, fed the
 * fixture files in tests/fixtures/scaler/: real answers (all fields, some
 * message_stats missing, none yet) and garbage, which must be refused with
 * a reason; and the URL the scaler asks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "scaler/rabbit.h"

#define DIR "tests/fixtures/scaler/"

static char *slurp(const char *name, size_t *len)
{
	FILE *f = fopen(name, "rb");
	char *buf = malloc(1 << 20);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int parse_file(const char *name, struct gp_rabbit_queue *q, char *err, size_t n)
{
	size_t len;
	char *body = slurp(name, &len);
	int rc = gp_rabbit_parse_queue(body, len, q, err, n);

	free(body);
	return rc;
}

/* Real answers and what must come out of them. */
static const struct {
	const char *file;
	struct gp_rabbit_queue want;
} good[] = {
	{DIR "queue-busy.json", {.ready = 9, .unacked = 8, .consumers = 2, .publish_rate = 19.0,
				 .ack_rate = 12.0, .deliver_get_rate = 12.0, .published = 55,
				 .acked = 35}},
	{DIR "queue-busy-full.json", {.ready = 9, .unacked = 8, .consumers = 2,
				      .publish_rate = 19.0, .ack_rate = 12.0,
				      .deliver_get_rate = 12.0, .published = 55, .acked = 35}},
	/* No message_stats at all: every rate and total reads 0. */
	{DIR "queue-idle.json", {0}},
	/* Only some of message_stats: the rest reads 0. */
	{DIR "queue-partial-stats.json", {.ready = 9, .unacked = 8, .consumers = 2,
					  .publish_rate = 19.0, .published = 55}},
};

static void test_good_answers(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		struct gp_rabbit_queue q;
		char err[256] = "";
		int rc = parse_file(good[i].file, &q, err, sizeof err);
		if (rc)
			fail_msg("%s: %d %s", good[i].file, rc, err);
		assert_memory_equal(&q, &good[i].want, sizeof q);
	}
}

/* Answers that are not figures: the error and a word of its reason. */
static const struct {
	const char *file;
	int rc;
	const char *reason;
} bad[] = {
	{DIR "queue-fresh.json", -ENODATA, "no messages_ready"},
	{DIR "queue-no-unacked.json", -ENODATA, "no messages_unacknowledged"},
	{DIR "garbage-not-json.txt", -EINVAL, "not JSON"},
	{DIR "garbage-truncated.json", -EINVAL, "not JSON"},
	{DIR "garbage-array.json", -EINVAL, "not a JSON object"},
	{DIR "garbage-count-string.json", -EINVAL, "messages_ready is not a count"},
	{DIR "garbage-count-negative.json", -EINVAL, "consumers is not a count"},
	{DIR "garbage-count-fraction.json", -EINVAL, "messages_unacknowledged is not a count"},
	{DIR "garbage-consumers-huge.json", -EINVAL, "consumers is not a count"},
	{DIR "garbage-stats-array.json", -EINVAL, "message_stats is not an object"},
	{DIR "garbage-rate-string.json", -EINVAL, "publish_details.rate is not a number"},
	{DIR "garbage-details-number.json", -EINVAL, "message_stats.ack_details is not an object"},
	{DIR "garbage-duplicate-key.json", -EINVAL, "not JSON"},
};

static void test_bad_answers(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct gp_rabbit_queue q, zero = {0};
		char err[256] = "";
		int rc = parse_file(bad[i].file, &q, err, sizeof err);
		if (rc != bad[i].rc || !strstr(err, bad[i].reason))
			fail_msg("%s: got %d '%s', want %d '%s'", bad[i].file, rc, err, bad[i].rc,
				 bad[i].reason);
		/* Nothing half-parsed is left behind for a careless caller. */
		assert_memory_equal(&q, &zero, sizeof q);
	}
}

static void test_size_cap(void **state)
{
	size_t n = GP_RABBIT_MAX_BODY + 1;
	char *big = malloc(n + 1), err[256];
	struct gp_rabbit_queue q;

	(void)state;
	assert_non_null(big);
	memset(big, ' ', n);
	big[n] = '\0';
	assert_int_equal(gp_rabbit_parse_queue(big, n, &q, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "larger than"));
	free(big);
}

static void test_url(void **state)
{
	static const struct {
		const char *base, *vhost, *name, *want;
	} cases[] = {
		/* The default vhost "/" is %2F, as the API wants. */
		{"http://mq:15672", "/", "jobs", "http://mq:15672/api/queues/%2F/jobs?columns="},
		{"http://mq:15672/", "/", "jobs", "http://mq:15672/api/queues/%2F/jobs?columns="},
		{"https://mq/rabbit/", "prod", "a/b c", "https://mq/rabbit/api/queues/prod/a%2Fb%20c?"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *url = gp_rabbit_queue_url(cases[i].base, cases[i].vhost, cases[i].name);
		assert_non_null(url);
		if (strncmp(url, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("got %s, want %s...", url, cases[i].want);
		assert_non_null(strstr(url, "messages_unacknowledged"));
		free(url);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_answers),
		cmocka_unit_test(test_bad_answers),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
