/* test_view.c - the virtual card's arithmetic (gp__virtual): the total
 * never exceeds the card, free never underflows nor exceeds what the card
 * really has free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hook/hook.h"

#define GiB (1ULL << 30)

static void test_cases(void **state)
{
	static const struct {
		uint64_t limit, used, real_free, real_total, want_free, want_total;
	} cases[] = {
		/* an ordinary budget */
		{4 * GiB, 1 * GiB, 70 * GiB, 80 * GiB, 3 * GiB, 4 * GiB},
		/* budget past the card: clamped to the card */
		{100 * GiB, 10 * GiB, 70 * GiB, 80 * GiB, 70 * GiB, 80 * GiB},
		/* the tenant is over its budget (forced reserve charges): 0, not
		 * 2^64 - something */
		{4 * GiB, 5 * GiB, 70 * GiB, 80 * GiB, 0, 4 * GiB},
		/* the card is fuller than the budget says: the card wins */
		{4 * GiB, 1 * GiB, 1 * GiB, 80 * GiB, 1 * GiB, 4 * GiB},
		{4 * GiB, 4 * GiB, 70 * GiB, 80 * GiB, 0, 4 * GiB},
		{UINT64_MAX, UINT64_MAX, 0, 80 * GiB, 0, 80 * GiB},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		uint64_t f, t;
		gp__virtual(cases[i].limit, cases[i].used, cases[i].real_free, cases[i].real_total,
			    &f, &t);
		if (f != cases[i].want_free || t != cases[i].want_total)
			fail_msg("case %zu: free %llu total %llu", i, (unsigned long long)f,
				 (unsigned long long)t);
	}
}

static void test_granules(void **state)
{
	(void)state;
	assert_int_equal(gp__granules(0), 0);
	assert_int_equal(gp__granules(1), GP_GRANULE);
	assert_int_equal(gp__granules(GP_GRANULE), GP_GRANULE);
	assert_int_equal(gp__granules(GP_GRANULE + 1), 2 * GP_GRANULE);
	/* No wrap to 0 at the top of the range. */
	assert_true(gp__granules(UINT64_MAX) >= UINT64_MAX - GP_GRANULE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_granules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
