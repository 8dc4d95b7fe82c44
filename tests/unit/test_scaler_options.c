/* test_scaler_options.c - the command line of `gpupool scaler`: queue
 * options before the first --queue are defaults, after one they belong to
 * it; durations; the password from a file or the environment, never the
 * command line; errors that name the bad argument. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "scaler/options.h"

#define MAX_ARGS 32

/* Parse a NULL-terminated argument list after "scaler". */
static int parse(struct gp_scaler_options *o, char *err, size_t n, ...)
{
	char *argv[MAX_ARGS] = {"scaler"};
	int argc = 1;
	va_list ap;

	va_start(ap, n);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	err[0] = '\0';
	return gp_scaler_options(argc, argv, o, err, n);
}

static void test_queue_options_apply_in_order(void **state)
{
	struct gp_scaler_options o;
	char err[512];

	(void)state;
	unsetenv("GPUPOOL_RABBITMQ_PASSWORD");
	unsetenv("GPUPOOL_RABBITMQ_USER");
	assert_int_equal(parse(&o, err, sizeof err, "--prefetch", "4", "--warmup", "90s",
			       "--queue", "a", "--queue", "b", "--target", "0.6", "--headroom",
			       "1.5", "--vhost", "prod", "--max-replicas", "7", "-q", "c", NULL), 0);
	assert_int_equal(o.cfg.nqueues, 3);
	/* a: the defaults given before it */
	assert_string_equal(o.queues[0].name, "a");
	assert_string_equal(o.queues[0].vhost, "/");
	assert_int_equal(o.queues[0].prefetch, 4);
	assert_true(o.queues[0].forecast.horizon_s == 90.0);
	assert_true(o.queues[0].forecast.target == 0.8);
	assert_true(o.queues[0].forecast.headroom_sigma == 2.0);
	/* b: its own target, headroom, vhost and ceiling */
	assert_string_equal(o.queues[1].vhost, "prod");
	assert_true(o.queues[1].forecast.target == 0.6);
	assert_true(o.queues[1].forecast.headroom_sigma == 1.5);
	assert_int_equal(o.queues[1].forecast.max_replicas, 7);
	assert_int_equal(o.queues[1].prefetch, 4);
	/* c: back to the defaults, not b's */
	assert_string_equal(o.queues[2].vhost, "/");
	assert_true(o.queues[2].forecast.target == 0.8);
	assert_true(o.queues[2].forecast.headroom_sigma == 2.0);
	assert_int_equal(o.queues[2].forecast.max_replicas, 100);
	/* serving defaults */
	assert_string_equal(o.cfg.http_listen, ":8080");
	assert_string_equal(o.cfg.grpc_listen, ":9090");
	assert_int_equal(o.cfg.interval_ms, 5000);
	assert_null(o.cfg.rabbit.user);
	assert_null(o.cfg.rabbit.password);
	gp_scaler_options_free(&o);
}

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		int rc;
		double ms;
	} cases[] = {
		{"500ms", 0, 500}, {"5s", 0, 5000}, {"1.5m", 0, 90000}, {"1h", 0, 3600000},
		{"2", 0, 2000},    {".5s", 0, 500}, {"", -EINVAL, 0},   {"5x", -EINVAL, 0},
		{"-1s", -EINVAL, 0}, {"s", -EINVAL, 0}, {"5 s", -EINVAL, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		double ms = -1;
		int rc = gp_scaler_parse_duration(cases[i].s, &ms);
		if (rc != cases[i].rc || (rc == 0 && ms != cases[i].ms))
			fail_msg("'%s': rc %d ms %g", cases[i].s, rc, ms);
	}
}

/* Usage errors and the words their message must contain. */
static void test_errors_name_the_argument(void **state)
{
	static const struct {
		const char *args[8];
		const char *words;
	} cases[] = {
		{{NULL}, "no --queue"},
		{{"--queue", "a", "--target", "0", NULL}, "--target '0'"},
		{{"--queue", "a", "--target", "1.5", NULL}, "--target '1.5'"},
		{{"--queue", "a", "--headroom", "-1", NULL}, "--headroom '-1'"},
		{{"--queue", "a", "--headroom", "nan", NULL}, "--headroom 'nan'"},
		{{"--queue", "a", "--prefetch", "0", NULL}, "--prefetch '0'"},
		{{"--queue", "a", "--prefetch", "70000", NULL}, "--prefetch '70000'"},
		{{"--queue", "a", "--warmup", "soon", NULL}, "--warmup 'soon'"},
		{{"--queue", "a", "--interval", "1ms", NULL}, "--interval '1ms'"},
		{{"--queue", "a", "--min-replicas", "5", "--max-replicas", "2", NULL},
		 "--min-replicas is above"},
		{{"--queue", "a", "--queue", "a", NULL}, "given twice"},
		{{"--queue", "a", "--http", "off", "--grpc", "off", NULL}, "nothing would be"},
		{{"--queue", "a", "--url", "ftp://x", NULL}, "--url 'ftp://x'"},
		{{"--queue", "a", "--password", "x", NULL}, "unknown option '--password'"},
		{{"--queue", "a", "--pre=2", NULL}, "unknown option '--pre'"},
		{{"--queue", "a", "--vhost", NULL}, "'--vhost' needs a value"},
		{{"--queue", "a", "stray", NULL}, "unexpected argument 'stray'"},
		{{"--queue", "", NULL}, "--queue ''"},
		{{"--queue", "a", "--onprem-max", "x", NULL}, "--onprem-max 'x'"},
		{{"--queue", "a", "--onprem-max", "-1", NULL}, "--onprem-max '-1'"},
		{{"--queue", "a", "--cloud-warmup", "0", NULL}, "--cloud-warmup '0'"},
		{{"--queue", "a", "--cloud-warmup", "soon", NULL}, "--cloud-warmup 'soon'"},
		{{"--queue", "a", "--cloud-max", "0", NULL}, "--cloud-max '0'"},
		{{"--queue", "a", "--cloud-cost", "0", NULL}, "--cloud-cost '0'"},
		{{"--queue", "a", "--cloud-cost", "nan", NULL}, "--cloud-cost 'nan'"},
		{{"--queue", "a", "--cloud-cost", "inf", NULL}, "--cloud-cost 'inf'"},
		/* A cloud setting for a queue without on-premises capacity
		 * would do nothing: say so. */
		{{"--queue", "a", "--cloud-max", "5", NULL}, "queue 'a': --cloud-max without --onprem-max"},
		{{"--queue", "a", "--cloud-warmup", "3m", NULL}, "--cloud-warmup without --onprem-max"},
		/* --max-replicas bounds both pools: no room for the cloud. */
		{{"--queue", "a", "--onprem-max", "100", NULL}, "--onprem-max 100 is not below --max-replicas 100"},
		{{"--max-replicas", "8", "--queue", "a", "--onprem-max", "9", NULL}, "is not below --max-replicas 8"},
	};

	(void)state;
	unsetenv("GPUPOOL_RABBITMQ_PASSWORD");
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct gp_scaler_options o;
		char *argv[10] = {"scaler"}, err[512] = "";
		int argc = 1, rc;
		while (cases[i].args[argc - 1])
			argv[argc] = (char *)cases[i].args[argc - 1], argc++;
		rc = gp_scaler_options(argc, argv, &o, err, sizeof err);
		if (rc != -EINVAL || !strstr(err, cases[i].words))
			fail_msg("case %zu: rc %d '%s', want '%s'", i, rc, err, cases[i].words);
		gp_scaler_options_free(&o);
	}
}

/* Hybrid bursting: per-queue like the other queue options; --cloud-max
 * defaults to the queue's own --max-replicas; off unless --onprem-max. */
static void test_hybrid_options(void **state)
{
	struct gp_scaler_options o;
	char err[512];

	(void)state;
	unsetenv("GPUPOOL_RABBITMQ_PASSWORD");
	unsetenv("GPUPOOL_RABBITMQ_USER");
	assert_int_equal(parse(&o, err, sizeof err, "--cloud-warmup", "4m", "--queue", "a",
			       "--onprem-max", "8", "--queue", "b", "--max-replicas", "30",
			       "--onprem-max", "10", "--cloud-max", "12", "--cloud-cost", "2.5",
			       "--cloud-warmup", "150s", "--queue", "c", "--queue", "d",
			       "--max-replicas", "20", "--onprem-max", "5", NULL), 0);
	assert_int_equal(o.cfg.nqueues, 4);
	/* a: the defaults, and cloud_max = its --max-replicas (100) */
	assert_int_equal(o.queues[0].burst.onprem_max, 8);
	assert_true(o.queues[0].burst.cloud_warmup_s == 240.0);
	assert_int_equal(o.queues[0].burst.cloud_max, 100);
	assert_true(o.queues[0].burst.cloud_cost == 3.0);
	/* b: its own */
	assert_int_equal(o.queues[1].burst.onprem_max, 10);
	assert_int_equal(o.queues[1].burst.cloud_max, 12);
	assert_true(o.queues[1].burst.cloud_cost == 2.5);
	assert_true(o.queues[1].burst.cloud_warmup_s == 150.0);
	/* c: no --onprem-max, no split (the --cloud-warmup default is fine) */
	assert_int_equal(o.queues[2].burst.onprem_max, 0);
	assert_true(o.queues[2].burst.cloud_warmup_s == 240.0);
	/* d: cloud_max follows its own --max-replicas */
	assert_int_equal(o.queues[3].burst.onprem_max, 5);
	assert_int_equal(o.queues[3].burst.cloud_max, 20);
	gp_scaler_options_free(&o);
	/* --onprem-max before the first --queue: every queue is hybrid. */
	assert_int_equal(parse(&o, err, sizeof err, "--onprem-max", "4", "--queue", "a",
			       "--queue", "b", "--onprem-max", "0", NULL), 0);
	assert_int_equal(o.queues[0].burst.onprem_max, 4);
	assert_true(o.queues[0].burst.cloud_warmup_s == 180.0);
	assert_int_equal(o.queues[1].burst.onprem_max, 0); /* turned off for b */
	gp_scaler_options_free(&o);
}

static void test_password_sources(void **state)
{
	struct gp_scaler_options o;
	char path[] = "/tmp/gp-pw-XXXXXX", err[512];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "s3cret\n", 7), 7);
	close(fd);
	/* From the file, its newline dropped; the file wins over the env. */
	setenv("GPUPOOL_RABBITMQ_PASSWORD", "from-env", 1);
	assert_int_equal(parse(&o, err, sizeof err, "--queue", "a", "--user", "keda",
			       "--password-file", path, NULL), 0);
	assert_string_equal(o.cfg.rabbit.password, "s3cret");
	gp_scaler_options_free(&o);
	/* From the environment, user too. */
	setenv("GPUPOOL_RABBITMQ_USER", "env-user", 1);
	assert_int_equal(parse(&o, err, sizeof err, "--queue", "a", NULL), 0);
	assert_string_equal(o.cfg.rabbit.user, "env-user");
	assert_string_equal(o.cfg.rabbit.password, "from-env");
	gp_scaler_options_free(&o);
	unsetenv("GPUPOOL_RABBITMQ_USER");
	/* A password without a user is a mistake. */
	assert_int_equal(parse(&o, err, sizeof err, "--queue", "a", NULL), -EINVAL);
	assert_non_null(strstr(err, "no --user"));
	gp_scaler_options_free(&o);
	unsetenv("GPUPOOL_RABBITMQ_PASSWORD");
	/* A file that cannot be read is a failure naming it, not a usage error. */
	unlink(path);
	assert_int_equal(parse(&o, err, sizeof err, "--queue", "a", "--user", "u",
			       "--password-file", path, NULL), -EIO);
	assert_non_null(strstr(err, path));
	gp_scaler_options_free(&o);
}

static void test_help(void **state)
{
	struct gp_scaler_options o;
	char err[512];

	(void)state;
	assert_int_equal(parse(&o, err, sizeof err, "--help", NULL), 0);
	assert_true(o.help);
	gp_scaler_options_free(&o);
	assert_non_null(strstr(gp_scaler_help, "--password-file"));
	for (const char *const *f = (const char *const[]){"--onprem-max", "--cloud-warmup",
							    "--cloud-max", "--cloud-cost", NULL};
	     *f; f++)
		assert_non_null(strstr(gp_scaler_help, *f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_options_apply_in_order),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_errors_name_the_argument),
		cmocka_unit_test(test_hybrid_options),
		cmocka_unit_test(test_password_sources),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
