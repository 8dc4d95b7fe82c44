/* test_smap.c - the string map (src/common/smap.c): put, replace, get,
 * delete without tombstones, against a reference kept by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/smap.h"

#define N 5000

static void test_put_get_del(void **state)
{
	static intptr_t ref[N]; /* 0: absent, else the value */
	struct gp_smap m = {0};
	uint64_t rng = 42;
	char key[32];
	void *old;

	(void)state;
	/* Random puts, replaces and deletes; after each, a sample of keys
	 * must read as the reference says. */
	for (int step = 0; step < 60000; step++) {
		unsigned k, op;

		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		k = (unsigned)(rng >> 33) % N;
		op = (unsigned)(rng >> 20) % 3;
		snprintf(key, sizeof key, "node-%u", k);
		if (op < 2) {
			intptr_t v = step + 1;
			assert_int_equal(gp_smap_put(&m, key, (void *)v, &old), 0);
			assert_true((intptr_t)old == ref[k]);
			ref[k] = v;
		} else {
			assert_true((intptr_t)gp_smap_del(&m, key) == ref[k]);
			ref[k] = 0;
		}
		if (step % 997 == 0) {
			size_t n = 0;
			for (unsigned i = 0; i < N; i++) {
				snprintf(key, sizeof key, "node-%u", i);
				assert_true((intptr_t)gp_smap_get(&m, key) == ref[i]);
				n += ref[i] != 0;
			}
			assert_int_equal(m.n, n);
		}
	}
	gp_smap_free(&m);
	assert_null(gp_smap_get(&m, "node-1"));
	assert_null(gp_smap_del(&m, "node-1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_del),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
