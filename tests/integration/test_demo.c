/* test_demo.c - `make demo` keeps showing what it promises: tenant A, with
 * a 2 GiB budget, is refused 3 GiB as a full card would refuse it and can
 * still fill its budget; tenant B, beside it on the same simulated GPU,
 * gets its 6 GiB; each saw its budget as the card's size. */
#include <stdio.h>
#include <string.h>

#include "integration/libtest.h"

static void test_demo_table(void **state)
{
	struct gpt_proc p;
	const char *argv[] = {"scripts/demo", NULL};
	char a[256] = "", b[256] = "";
	const char *line;

	(void)state;
	if (gpt_run(&p, argv, NULL, GPT_STDERR, 120000) != 0)
		fail_msg("scripts/demo failed:\n%s", p.out);
	line = strstr(p.out, "\n  A ");
	if (line)
		sscanf(line + 1, "%255[^\n]", a);
	line = strstr(p.out, "\n  B ");
	if (line)
		sscanf(line + 1, "%255[^\n]", b);
	if (!strstr(a, "3.00 GiB  CUDA_ERROR_OUT_OF_MEMORY") || !strstr(a, "2.00 GiB /"))
		fail_msg("tenant A's row is wrong: \"%s\"\n%s", a, p.out);
	if (!strstr(b, "6.00 GiB  CUDA_SUCCESS") || !strstr(b, "8.00 GiB /"))
		fail_msg("tenant B's row is wrong: \"%s\"\n%s", b, p.out);
	/* A took what fits its budget after the refusal: 2 GiB minus its
	 * context (520 MiB) is five 256 MiB steps. */
	assert_non_null(strstr(a, "1.25 GiB"));
	assert_true(gpt_has(&p, "in use on the card:"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demo_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
