/* test_swap_safetensors.c - the safetensors header parser
 * (src/swap/safetensors.h): a file written here with known tensors read
 * back, and every rule of the format refused with a message naming it. */
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

#include "swap/safetensors.h"

/* Write a safetensors file: the length prefix, `header`, then `data_len`
 * bytes.  Returns its path (static buffer). */
static const char *write_file(const char *header, size_t data_len)
{
	static char path[] = "/tmp/gp-st-XXXXXX";
	uint64_t n = strlen(header);
	unsigned char prefix[8];
	int fd;

	strcpy(path, "/tmp/gp-st-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	for (int i = 0; i < 8; i++)
		prefix[i] = (unsigned char)(n >> (8 * i));
	assert_int_equal(write(fd, prefix, 8), 8);
	assert_int_equal(write(fd, header, n), (ssize_t)n);
	for (size_t i = 0; i < data_len; i++)
		assert_int_equal(write(fd, "\x5a", 1), 1);
	close(fd);
	return path;
}

static void test_read_back(void **state)
{
	/* Out of order in the JSON, in order on disk; padded with spaces as
	 * writers align the data. */
	const char *h = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
			"\"__metadata__\":{\"format\":\"pt\"},"
			"\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
			"\"empty\":{\"dtype\":\"I64\",\"shape\":[0,7],\"data_offsets\":[32,32]},"
			"\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[32,33]}}    ";
	const char *path = write_file(h, 33);
	struct gp_safetensors *st = NULL;
	char err[256] = "";
	const struct gp_st_tensor *t;

	(void)state;
	assert_int_equal(gp_safetensors_open(path, &st, err, sizeof err), 0);
	unlink(path);
	assert_int_equal(gp_safetensors_count(st), 4);
	assert_int_equal(gp_safetensors_data_offset(st), 8 + strlen(h));
	assert_int_equal(gp_safetensors_data_bytes(st), 33);
	t = gp_safetensors_tensor(st, 0);
	assert_string_equal(t->name, "a");
	assert_string_equal(t->dtype, "BF16");
	assert_int_equal(t->elem_size, 2);
	assert_int_equal(t->ndims, 1);
	assert_int_equal(t->shape[0], 4);
	t = gp_safetensors_tensor(st, 1);
	assert_string_equal(t->name, "b");
	assert_int_equal(t->begin, 8);
	assert_int_equal(t->end, 32);
	assert_int_equal(t->shape[1], 3);
	assert_string_equal(gp_safetensors_tensor(st, 2)->name, "empty"); /* 0 bytes at 32 */
	t = gp_safetensors_tensor(st, 3);
	assert_string_equal(t->name, "s"); /* a scalar: one element */
	assert_int_equal(t->ndims, 0);
	assert_null(gp_safetensors_tensor(st, 4));
	assert_string_equal(gp_safetensors_meta(st, "format"), "pt");
	assert_null(gp_safetensors_meta(st, "nope"));
	gp_safetensors_free(st);
}

/* Each header with the data size it claims, and words its refusal has. */
static void test_refused(void **state)
{
	static const struct {
		const char *json;
		uint64_t data;
		const char *words;
	} cases[] = {
		{"", 0, "does not start with '{'"},
		{"[1]", 0, "does not start with '{'"},
		{"{\"a\":", 0, "not JSON"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
		 "\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[2,4]}}", 4, "not JSON"},
		{"{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, "unknown dtype 'F17'"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[-1],\"data_offsets\":[0,2]}}", 2, "shape[0]"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[1.5],\"data_offsets\":[0,2]}}", 2, "shape[0]"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,2]}}",
		 2, "overflows"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2,
		 "2 bytes at data_offsets, but F16 x 3 elements is 6"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[2,0]}}", 2, "end before"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0]}}", 2, "two counts"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[1]}}", 2, "want exactly"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2],\"x\":1}}", 2,
		 "want exactly"},
		{"{\"a\":7}", 0, "want exactly"},
		{"{\"\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, "tensor name"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[2,4]}}", 4, "a hole"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
		 "\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[2,4]}}", 4, "overlaps"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 3,
		 "cover 2 bytes of data, the file has 3"},
		{"{\"__metadata__\":{\"k\":1}}", 0, "not a string"},
		{"{\"__metadata__\":[]}", 0, "object of strings"},
		{"{\"a\":{\"dtype\":\"F16\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"
		 "\"data_offsets\":[0,2]}}", 2, "more than 16 dimensions"},
		{"{\"\xff\":1}", 0, "not JSON"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct gp_safetensors *st = (void *)1;
		char err[256] = "";
		int rc = gp_safetensors_parse(cases[i].json, strlen(cases[i].json), cases[i].data,
					      &st, err, sizeof err);

		if (rc != -EINVAL || !strstr(err, cases[i].words))
			fail_msg("case %zu: rc %d, '%s' (want '%s')", i, rc, err, cases[i].words);
		assert_null(st);
	}
}

/* A name at the cap is fine, one over is refused. */
static void test_name_cap(void **state)
{
	char *h = malloc(GP_ST_MAX_NAME + 200);
	struct gp_safetensors *st = NULL;
	char err[256];

	(void)state;
	for (unsigned len = GP_ST_MAX_NAME; len <= GP_ST_MAX_NAME + 1; len++) {
		int n = sprintf(h, "{\"");
		memset(h + n, 'w', len);
		sprintf(h + n + len, "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}");
		assert_int_equal(gp_safetensors_parse(h, strlen(h), 1, &st, err, sizeof err),
				 len == GP_ST_MAX_NAME ? 0 : -EINVAL);
		gp_safetensors_free(st);
		st = NULL;
	}
	free(h);
}

/* What the file itself says about its header. */
static void test_file_errors(void **state)
{
	struct gp_safetensors *st = NULL;
	char err[256] = "", path[] = "/tmp/gp-st-XXXXXX";
	unsigned char big[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
	int fd;

	(void)state;
	assert_int_equal(gp_safetensors_open("/nonexistent/x.safetensors", &st, err, sizeof err),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/x.safetensors"));

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abc", 3), 3);
	assert_int_equal(gp_safetensors_open(path, &st, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "shorter than the 8-byte header length"));
	assert_int_equal(pwrite(fd, big, 8, 0), 8); /* 4 GiB of header claimed */
	assert_int_equal(gp_safetensors_open(path, &st, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "header length 4294967295"));
	close(fd);
	unlink(path);

	/* A parse error names the file too. */
	const char *p = write_file("{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}",
				   5);
	assert_int_equal(gp_safetensors_open(p, &st, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, p));
	assert_non_null(strstr(err, "cover 2 bytes of data, the file has 5"));
	unlink(p);
	assert_null(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_back),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_name_cap),
		cmocka_unit_test(test_file_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
