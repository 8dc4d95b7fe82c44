/* test_visible.c - CUDA_VISIBLE_DEVICES as the driver reads it (shared by
 * the simulator and the hook). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/visible.h"

static const char *const uuids[] = {
	"GPU-aaaa1111-0000-0000-0000-000000000000",
	"GPU-aaaa2222-0000-0000-0000-000000000000",
	"GPU-bbbb3333-0000-0000-0000-000000000000",
};

static void test_cases(void **state)
{
	static const struct {
		const char *env; /* NULL: unset */
		const char *want; /* visible machine indices, as "i,j,..." */
	} cases[] = {
		{NULL, "0,1,2"},
		{"", ""},
		{"2,0", "2,0"},
		{"1", "1"},
		{"0,3,1", "0"},        /* out of range ends the list */
		{"0,0,1", "0"},        /* a repeat ends it too */
		{"GPU-bbbb", "2"},     /* a unique prefix */
		{"GPU-BBBB3333", "2"}, /* hex digits in any case */
		{"gpu-bbbb3333", ""},  /* but the GPU- word as written */
		{"GPU-aaaa,2", ""},    /* ambiguous prefix: invalid, nothing before it */
		{"1,GPU-aaaa1111,GPU-zzzz,2", "1,0"},
		{"MIG-1234,0", ""},
		{"0, 2", "0,2"},       /* blanks around items */
		{"-1", ""},
		{"1x", ""},
		{"0,,1", "0"},         /* an empty item is invalid */
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int idx[8];
		char got[64] = "";
		unsigned n = gp_visible_parse(cases[i].env, uuids, 3, idx, 8);
		for (unsigned k = 0; k < n; k++)
			snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", k ? "," : "",
				 idx[k]);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("CUDA_VISIBLE_DEVICES=%s: visible \"%s\", want \"%s\"",
				 cases[i].env ? cases[i].env : "(unset)", got, cases[i].want);
	}
}

static void test_room(void **state)
{
	int idx[2];

	(void)state;
	assert_int_equal(gp_visible_parse(NULL, uuids, 3, idx, 2), 2);
	assert_int_equal(gp_visible_parse("2,1,0", uuids, 3, idx, 2), 2);
	assert_int_equal(idx[1], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_room),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
