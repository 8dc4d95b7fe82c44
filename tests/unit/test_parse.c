/* test_parse.c - the size, limit, percentage and list parsers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/parse.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)

static const struct {
	const char *in;
	int rc;
	uint64_t want;
} sizes[] = {
	{"0", 0, 0},
	{"1024", 0, 1024},
	{"2GiB", 0, 2 * GiB},
	{"2G", 0, 2 * GiB},
	{"2g", 0, 2 * GiB},
	{"2Gi", 0, 2 * GiB},
	{"2GB", 0, 2 * GiB},
	{"512MiB", 0, 512 * MiB},
	{"4000m", 0, 4000 * MiB}, /* HAMi's spelling */
	{"1.5G", 0, 3 * GiB / 2},
	{"0.5 KiB", 0, 512},
	{"  3 TiB  ", 0, 3 * TiB},
	{"100B", 0, 100},
	{"1P", 0, 1ULL << 50},
	{"0.1K", 0, 102}, /* rounds down */
	{"16383P", 0, 16383ULL << 50},
	{"16384P", -ERANGE, 0},
	{"18446744073709551615", 0, UINT64_MAX},
	{"18446744073709551616", -ERANGE, 0},
	{"", -EINVAL, 0},
	{"G", -EINVAL, 0},
	{"-1", -EINVAL, 0},
	{"+1", -EINVAL, 0},
	{"1.", -EINVAL, 0},
	{".5G", -EINVAL, 0},
	{"2 G B", -EINVAL, 0},
	{"2X", -EINVAL, 0},
	{"2GiBs", -EINVAL, 0},
	{"2  G", -EINVAL, 0},
	{"0x10", -EINVAL, 0},
	{"1e9", -EINVAL, 0},
};

static void test_sizes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		uint64_t v = 12345;
		int rc = gp_parse_size(sizes[i].in, &v);
		if (rc != sizes[i].rc)
			fail_msg("gp_parse_size(\"%s\") = %d, want %d", sizes[i].in, rc, sizes[i].rc);
		if (rc == 0 && v != sizes[i].want)
			fail_msg("gp_parse_size(\"%s\") -> %llu, want %llu", sizes[i].in,
				 (unsigned long long)v, (unsigned long long)sizes[i].want);
	}
	assert_int_equal(gp_parse_size(NULL, &(uint64_t){0}), -EINVAL);
}

static void test_limits(void **state)
{
	struct gp_limit l;

	(void)state;
	assert_int_equal(gp_parse_limit("50%", &l), 0);
	assert_int_equal(l.ppm, 500000);
	assert_int_equal(l.bytes, 0);
	assert_int_equal(gp_limit_bytes(&l, 80 * GiB), 40 * GiB);
	assert_int_equal(gp_parse_limit("12.5 %", &l), 0);
	assert_int_equal(l.ppm, 125000);
	assert_int_equal(gp_parse_limit("100%", &l), 0);
	assert_int_equal(gp_limit_bytes(&l, 80 * GiB), 80 * GiB);
	assert_int_equal(gp_parse_limit("0.0001%", &l), 0);
	assert_int_equal(l.ppm, 1);
	assert_int_equal(gp_parse_limit("2GiB", &l), 0);
	assert_int_equal(l.bytes, 2 * GiB);
	assert_int_equal(gp_limit_bytes(&l, 80 * GiB), 2 * GiB);

	assert_int_equal(gp_parse_limit("0", &l), -ERANGE);
	assert_int_equal(gp_parse_limit("0%", &l), -ERANGE);
	assert_int_equal(gp_parse_limit("101%", &l), -ERANGE);
	assert_int_equal(gp_parse_limit("%", &l), -EINVAL);
	assert_int_equal(gp_parse_limit("50%%", &l), -EINVAL);
	assert_int_equal(gp_parse_limit("50% x", &l), -EINVAL);
	assert_int_equal(gp_parse_limit("x50%", &l), -EINVAL);
	assert_int_equal(gp_parse_limit("abc", &l), -EINVAL);
}

static void test_percent(void **state)
{
	unsigned v;

	(void)state;
	assert_int_equal(gp_parse_percent("30", 1, 100, &v), 0);
	assert_int_equal(v, 30);
	assert_int_equal(gp_parse_percent("100%", 1, 100, &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(gp_parse_percent("0", 1, 100, &v), -ERANGE);
	assert_int_equal(gp_parse_percent("0", 0, 100, &v), 0);
	assert_int_equal(gp_parse_percent("101", 1, 100, &v), -ERANGE);
	assert_int_equal(gp_parse_percent("50.5", 1, 100, &v), -EINVAL);
	assert_int_equal(gp_parse_percent("", 1, 100, &v), -EINVAL);
	assert_int_equal(gp_parse_percent("99999999999999999999", 1, 100, &v), -ERANGE);
}

static void test_u64(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(gp_parse_u64("42", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(gp_parse_u64("", &v), -EINVAL);
	assert_int_equal(gp_parse_u64(" 1", &v), -EINVAL);
	assert_int_equal(gp_parse_u64("1 ", &v), -EINVAL);
	assert_int_equal(gp_parse_u64("99999999999999999999", &v), -ERANGE);
}

static void test_format(void **state)
{
	char b[32];

	(void)state;
	assert_string_equal(gp_format_size(17, b, sizeof b), "17 B");
	assert_string_equal(gp_format_size(2 * GiB, b, sizeof b), "2 GiB");
	assert_string_equal(gp_format_size(300 * MiB, b, sizeof b), "300 MiB");
	assert_string_equal(gp_format_size(3 * GiB / 2, b, sizeof b), "1.50 GiB");
	assert_string_equal(gp_format_size(UINT64_MAX, b, sizeof b), "16384.00 PiB");
}

static void test_list(void **state)
{
	const char *cur = " a, bb ,,c", *item;
	const char *want[] = {"a", "bb", "", "c"};
	size_t len, n = 0;

	(void)state;
	while ((item = gp_list_next(&cur, ',', &len))) {
		assert_true(n < 4);
		assert_int_equal(len, strlen(want[n]));
		assert_memory_equal(item, want[n], len);
		n++;
	}
	assert_int_equal(n, 4);
	cur = "";
	assert_non_null(gp_list_next(&cur, ',', &len)); /* one empty item */
	assert_int_equal(len, 0);
	assert_null(gp_list_next(&cur, ',', &len));
}

/* Text for JSON: valid UTF-8 passes untouched, anything else becomes '?',
 * a character cut by truncation is dropped. */
static void test_utf8_fix(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"plain ascii", "plain ascii"},
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
		{"raw \xe9\xff byte", "raw ?? byte"},
		{"cut \xc3", "cut "},            /* truncated two-byte character */
		{"cut \xe2\x82", "cut "},        /* truncated three-byte character */
		{"cut \xf0\x9f\x98", "cut "},    /* truncated four-byte character */
		{"\xc0\xaf overlong", "?? overlong"},
		{"\xe0\x80\xaf overlong", "??? overlong"},
		{"\xed\xa0\x80 surrogate", "??? surrogate"},
		{"\xf4\x90\x80\x80 past U+10FFFF", "???? past U+10FFFF"},
		{"\x80 lone continuation", "? lone continuation"},
		{"\xc3 x", "? x"},               /* a lead byte not at the end */
		{"", ""},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char buf[64];
		snprintf(buf, sizeof buf, "%s", cases[i].in);
		if (strcmp(gp_utf8_fix(buf), cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, buf, cases[i].out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_fix),
		cmocka_unit_test(test_sizes),   cmocka_unit_test(test_limits),
		cmocka_unit_test(test_percent), cmocka_unit_test(test_u64),
		cmocka_unit_test(test_format),  cmocka_unit_test(test_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
