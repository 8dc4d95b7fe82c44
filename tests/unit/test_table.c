/* test_table.c - the hook's concurrent key -> record map. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hook/hook.h"

static struct gp__rec rec_of(uint64_t v)
{
	return (struct gp__rec){.bytes = v, .aux = ~v, .dev = (int32_t)(v % 7), .refs = 1,
				.kind = GP_K_ALLOC};
}

/* Random inserts and deletes checked against a plain array: exercises
 * growth and backward-shift deletion across probe runs and wrap-around. */
static void test_against_reference(void **state)
{
	static struct gp__tab t = GP_TAB_INIT;
	enum { N = 20000 };
	uint64_t *keys = calloc(N, sizeof *keys);
	char *live = calloc(N, 1);
	unsigned seed = 42, nlive = 0;
	struct gp__rec r;

	(void)state;
	for (unsigned i = 0; i < N; i++) /* device-pointer-like keys */
		keys[i] = 0x100000000000ULL + (uint64_t)i * 4096 + (uint64_t)(i % 5) * (1ULL << 40);
	for (unsigned step = 0; step < 200000; step++) {
		unsigned i = (unsigned)rand_r(&seed) % N;
		if (live[i]) {
			assert_int_equal(gp__tab_take(&t, keys[i], &r), 0);
			assert_int_equal(r.bytes, keys[i]);
			live[i] = 0;
			nlive--;
		} else {
			struct gp__rec w = rec_of(keys[i]);
			assert_int_equal(gp__tab_put(&t, keys[i], &w), 0);
			live[i] = 1;
			nlive++;
		}
		if (step % 9973 == 0) {
			for (unsigned k = 0; k < N; k++) {
				int rc = gp__tab_get(&t, keys[k], &r);
				assert_int_equal(rc, live[k] ? 0 : -ENOENT);
				if (live[k])
					assert_int_equal(r.aux, ~keys[k]);
			}
			assert_int_equal(gp__tab_len(&t), nlive);
		}
	}
	gp__tab_reset(&t);
	assert_int_equal(gp__tab_len(&t), 0);
	free(keys);
	free(live);
}

static void test_refs(void **state)
{
	static struct gp__tab t = GP_TAB_INIT;
	struct gp__rec r = rec_of(5), out;
	int gone;

	(void)state;
	assert_int_equal(gp__tab_put(&t, 5, &r), 0);
	assert_int_equal(gp__tab_ref(&t, 5, +2, &out, &gone), 0);
	assert_int_equal(out.refs, 3);
	assert_false(gone);
	assert_int_equal(gp__tab_ref(&t, 5, -2, &out, &gone), 0);
	assert_false(gone);
	assert_int_equal(gp__tab_ref(&t, 5, -1, &out, &gone), 0);
	assert_true(gone);
	assert_int_equal(gp__tab_get(&t, 5, NULL), -ENOENT);
	assert_int_equal(gp__tab_ref(&t, 5, -1, &out, &gone), -ENOENT);
	gp__tab_reset(&t);
}

struct range {
	uint64_t lo, hi;
	unsigned seen;
};

static int in_range(uint64_t key, const struct gp__rec *rec, void *arg)
{
	const struct range *r = arg;
	(void)rec;
	return key >= r->lo && key < r->hi;
}

static void count_each(uint64_t key, const struct gp__rec *rec, void *arg)
{
	(void)key;
	(void)rec;
	((struct range *)arg)->seen++;
}

static void test_drain(void **state)
{
	static struct gp__tab t = GP_TAB_INIT;
	struct range arg = {1000, 2000, 0};

	(void)state;
	for (uint64_t k = 1; k <= 5000; k++) {
		struct gp__rec r = rec_of(k);
		assert_int_equal(gp__tab_put(&t, k, &r), 0);
	}
	assert_int_equal(gp__tab_drain(&t, in_range, count_each, &arg), 1000);
	assert_int_equal(arg.seen, 1000);
	assert_int_equal(gp__tab_len(&t), 4000);
	for (uint64_t k = 1; k <= 5000; k++)
		assert_int_equal(gp__tab_get(&t, k, NULL), (k >= 1000 && k < 2000) ? -ENOENT : 0);
	gp__tab_reset(&t);
}

static struct gp__tab shared = GP_TAB_INIT;

static void *churn(void *arg)
{
	uint64_t base = (uint64_t)(uintptr_t)arg << 32;

	for (uint64_t i = 1; i <= 20000; i++) {
		struct gp__rec r = rec_of(base + i), out;
		if (gp__tab_put(&shared, base + i, &r) != 0)
			return (void *)1;
		if (i % 2 == 0 && (gp__tab_take(&shared, base + i - 1, &out) || out.bytes != base + i - 1))
			return (void *)1;
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[16];
	void *ret;

	(void)state;
	for (uintptr_t i = 0; i < 16; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)(i + 1)), 0);
	for (int i = 0; i < 16; i++) {
		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	assert_int_equal(gp__tab_len(&shared), 16 * 10000);
	gp__tab_reset(&shared);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_against_reference),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
