/* test_webhook.c - the admission webhook's review (src/agent/webhook.c,
 * gp_webhook_review), driven by the fixture files of
 * tests/fixtures/webhook/ (README.md there describes them): one cmocka
 * test per case, the request posted as it is and the answer compared as
 * JSON, the patch decoded from base64 and compared as JSON.
 *
 * Beside the fixtures: a body over the limit and one exactly at it, and
 * odd JSON (every value of every fixture replaced by each other type,
 * every fixture cut short), which must be answered 200 or 400 and never
 * crash.
 *
 * GP_WEBHOOK_FIXTURE_WRITE=1 writes the answers of cases whose response
 * file is missing, as a starting point to read and edit. */
#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent/webhook.h"
#include "net/kubeconfig.h"

#define FIX "tests/fixtures/webhook/"

/* The cases, each FIX<name>.request.json (or .request.txt) and
 * FIX<name>.response.json. */
static const char *const cases[] = {
	"no-gpu",
	"no-gpu-odd-shapes",
	"memory-only",
	"memory-only-requests",
	"cores-requests-only",
	"count-given",
	"own-scheduler",
	"model-name",
	"hami-names",
	"other-scheduler",
	"init-container",
	"too-many-cores",
	"percent-0",
	"percent-101",
	"too-many-gpus",
	"count-0-with-memory",
	"count-0-alone",
	"fraction",
	"mixed-families",
	"typo-model-prefix",
	"typo-count",
	"typo-hami-word",
	"unknown-name",
	"priority-only",
	"bad-annotation",
	"non-pod-kind",
	"update-operation",
	"subresource",
	"malformed-json",
	"not-an-object",
	"v1beta1",
	"no-uid",
	"no-object",
};

#define NCASES (sizeof cases / sizeof *cases)

static const struct gp_webhook_opts opts = {0}; /* defaults: gpupool-scheduler, 4 MiB */

/* Read a whole file (at most 1 MiB), NUL-terminated; NULL if absent. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(1 << 20);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Replace the answer's base64 patch with the JSON it encodes. */
static void decode_patch(json_t *reply)
{
	json_t *resp = json_object_get(reply, "response");
	const char *b64 = json_string_value(json_object_get(resp, "patch"));
	json_error_t je;
	size_t n;
	char *text;
	json_t *ops;

	if (!b64)
		return;
	text = gp__base64_decode(b64, strlen(b64), &n);
	if (!text)
		fail_msg("the patch is not base64: %s", b64);
	ops = json_loadb(text, n, 0, &je);
	if (!json_is_array(ops))
		fail_msg("the patch is not a JSON array: %.*s", (int)n, text);
	free(text);
	json_object_set_new(resp, "patch", ops);
}

/* Does `got` match `want`?  Objects by their keys (order ignored), lists
 * in order, {"$match": "regex"} a string containing the pattern.  On a
 * mismatch, says where into `where`. */
static int match(json_t *want, json_t *got, char *where, size_t n, const char *path)
{
	char sub[512];

	if (json_is_object(want) && json_object_size(want) == 1 &&
	    json_is_string(json_object_get(want, "$match"))) {
		regex_t re;
		int ok;

		assert_int_equal(regcomp(&re, json_string_value(json_object_get(want, "$match")),
					 REG_EXTENDED | REG_NOSUB),
				 0);
		ok = json_is_string(got) && regexec(&re, json_string_value(got), 0, NULL, 0) == 0;
		regfree(&re);
		if (!ok)
			snprintf(where, n, "%s: %s does not match /%s/", path,
				 json_is_string(got) ? json_string_value(got) : "(not a string)",
				 json_string_value(json_object_get(want, "$match")));
		return ok;
	}
	if (json_is_object(want) && json_is_object(got)) {
		const char *k;
		json_t *v;

		json_object_foreach(want, k, v) {
			snprintf(sub, sizeof sub, "%s.%s", path, k);
			if (!json_object_get(got, k)) {
				snprintf(where, n, "%s is missing", sub);
				return 0;
			}
			if (!match(v, json_object_get(got, k), where, n, sub))
				return 0;
		}
		json_object_foreach(got, k, v)
			if (!json_object_get(want, k)) {
				snprintf(where, n, "%s.%s is not expected", path, k);
				return 0;
			}
		return 1;
	}
	if (json_is_array(want) && json_is_array(got)) {
		if (json_array_size(want) != json_array_size(got)) {
			snprintf(where, n, "%s: %zu items, expected %zu", path, json_array_size(got),
				 json_array_size(want));
			return 0;
		}
		for (size_t i = 0; i < json_array_size(want); i++) {
			snprintf(sub, sizeof sub, "%s[%zu]", path, i);
			if (!match(json_array_get(want, i), json_array_get(got, i), where, n, sub))
				return 0;
		}
		return 1;
	}
	if (!json_equal(want, got)) {
		snprintf(where, n, "%s differs", path);
		return 0;
	}
	return 1;
}

/* Review `body` and check it against the expectation {"status", "body"}. */
static void check(const char *name, const char *body, size_t len, json_t *want)
{
	json_t *reply = NULL, *got;
	int status = gp_webhook_review(&opts, body, len, &reply, NULL);
	char where[1024] = "", *text;

	assert_non_null(reply);
	decode_patch(reply);
	got = json_pack("{s:i, s:O}", "status", status, "body", reply);
	if (!match(want, got, where, sizeof where, "")) {
		text = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
		fail_msg("%s: %s; the answer was\n%s", name, where, text);
	}
	json_decref(got);
	json_decref(reply);
}

/* One fixture case; *state is its index in cases[]. */
static void test_case(void **state)
{
	const char *name = cases[(uintptr_t)*state];
	char path[512];
	size_t len, wlen;
	char *body, *want_text;
	json_t *want;
	json_error_t je;

	snprintf(path, sizeof path, FIX "%s.request.json", name);
	body = slurp(path, &len);
	if (!body) {
		snprintf(path, sizeof path, FIX "%s.request.txt", name);
		body = slurp(path, &len);
	}
	if (!body)
		fail_msg("%s: no %s.request.json or .request.txt in " FIX, name, name);
	snprintf(path, sizeof path, FIX "%s.response.json", name);
	want_text = slurp(path, &wlen);
	if (!want_text && getenv("GP_WEBHOOK_FIXTURE_WRITE")) {
		json_t *reply = NULL, *got;
		int status = gp_webhook_review(&opts, body, len, &reply, NULL);

		decode_patch(reply);
		got = json_pack("{s:i, s:o}", "status", status, "body", reply);
		json_dump_file(got, path, JSON_INDENT(2) | JSON_SORT_KEYS);
		json_decref(got);
		want_text = slurp(path, &wlen);
	}
	if (!want_text)
		fail_msg("%s: no %s (GP_WEBHOOK_FIXTURE_WRITE=1 writes one)", name, path);
	want = json_loadb(want_text, wlen, 0, &je);
	if (!want)
		fail_msg("%s: %s line %d", path, je.text, je.line);
	check(name, body, len, want);
	json_decref(want);
	free(want_text);
	free(body);
}

/* Every fixture request in FIX is a case of the table: none forgotten. */
static void test_every_fixture_listed(void **state)
{
	DIR *d = opendir(FIX);
	struct dirent *e;
	unsigned found = 0;

	(void)state;
	assert_non_null(d);
	while ((e = readdir(d))) {
		char *dot = strstr(e->d_name, ".request.");
		size_t i;

		if (!dot)
			continue;
		for (i = 0; i < NCASES; i++)
			if (strlen(cases[i]) == (size_t)(dot - e->d_name) &&
			    strncmp(cases[i], e->d_name, (size_t)(dot - e->d_name)) == 0)
				break;
		if (i == NCASES)
			fail_msg(FIX "%s is not in cases[] of tests/unit/test_webhook.c", e->d_name);
		found++;
	}
	closedir(d);
	assert_int_equal(found, NCASES);
}

/* A review of exactly `size` bytes: a GPU pod padded with blanks. */
static char *padded_review(size_t size)
{
	static const char head[] =
		"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
		"\"request\":{\"uid\":\"big\",\"kind\":{\"group\":\"\",\"version\":\"v1\","
		"\"kind\":\"Pod\"},\"operation\":\"CREATE\",\"object\":{\"metadata\":{\"name\":"
		"\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":{\"limits\":"
		"{\"gpupool.io/vgpu\":1}}}]}}}";
	char *b = malloc(size + 1);

	assert_non_null(b);
	assert_true(size > sizeof head);
	memcpy(b, head, sizeof head - 1);
	memset(b + sizeof head - 1, ' ', size - (sizeof head - 1) - 1);
	b[size - 1] = '}';
	b[size] = '\0';
	return b;
}

/* Over the cap (4 MiB: the API server's 3 MiB object and more): 413,
 * before parsing; exactly at it: answered. */
static void test_huge_body(void **state)
{
	char re[128];
	char *b = padded_review(GP_WEBHOOK_MAX_BODY + 1);
	json_t *reply = NULL, *want;
	enum gp_webhook_verdict v;

	(void)state;
	assert_int_equal(gp_webhook_review(&opts, b, GP_WEBHOOK_MAX_BODY + 1, &reply, &v), 413);
	assert_int_equal(v, GP_WH_MALFORMED);
	snprintf(re, sizeof re, "^the AdmissionReview is %zu bytes, over the %zu-byte limit$",
		 GP_WEBHOOK_MAX_BODY + 1, GP_WEBHOOK_MAX_BODY);
	want = json_pack("{s:i, s:{s:{s:s}}}", "status", 413, "body", "error", "$match", re);
	check("huge-body", b, GP_WEBHOOK_MAX_BODY + 1, want);
	json_decref(want);
	json_decref(reply);
	free(b);

	b = padded_review(GP_WEBHOOK_MAX_BODY);
	assert_int_equal(gp_webhook_review(&opts, b, GP_WEBHOOK_MAX_BODY, &reply, &v), 200);
	assert_int_equal(v, GP_WH_PATCHED);
	json_decref(reply);
	free(b);
}

/* The answer to odd input is 200 (with the uid) or 400, never a crash. */
static void check_sane(const char *text, size_t len)
{
	json_t *reply = NULL;
	int status = gp_webhook_review(&opts, text, len, &reply, NULL);

	assert_non_null(reply);
	if (status == 200) {
		json_t *resp = json_object_get(reply, "response");
		assert_true(json_is_string(json_object_get(resp, "uid")));
		assert_true(json_is_boolean(json_object_get(resp, "allowed")));
	} else {
		assert_int_equal(status, 400);
		assert_true(json_is_string(json_object_get(reply, "error")));
	}
	json_decref(reply);
}

/* Replace each value under `node` of `root` in turn by each of `odd`,
 * review the result, and put the value back. */
static void mutate_all(json_t *root, json_t *node, json_t *const *odd, size_t nodd)
{
	if (json_is_object(node)) {
		const char *k;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(node, tmp, k, v) {
			json_t *keep = json_incref(v);
			for (size_t i = 0; i < nodd; i++) {
				char *text;
				json_object_set(node, k, odd[i]);
				text = json_dumps(root, JSON_COMPACT);
				check_sane(text, strlen(text));
				free(text);
			}
			json_object_set(node, k, keep);
			mutate_all(root, keep, odd, nodd);
			json_decref(keep);
		}
	} else if (json_is_array(node)) {
		for (size_t j = 0; j < json_array_size(node); j++) {
			json_t *keep = json_incref(json_array_get(node, j));
			for (size_t i = 0; i < nodd; i++) {
				char *text;
				json_array_set(node, j, odd[i]);
				text = json_dumps(root, JSON_COMPACT);
				check_sane(text, strlen(text));
				free(text);
			}
			json_array_set(node, j, keep);
			mutate_all(root, keep, odd, nodd);
			json_decref(keep);
		}
	}
}

static void test_odd_json(void **state)
{
	json_t *odd[] = {json_null(), json_integer(-1), json_real(1.5), json_string(""),
			 json_string("x"), json_array(), json_object(), json_true()};
	size_t nodd = sizeof odd / sizeof *odd;

	(void)state;
	for (size_t c = 0; c < NCASES; c++) {
		char path[512];
		size_t len;
		char *body;
		json_t *doc;

		snprintf(path, sizeof path, FIX "%s.request.json", cases[c]);
		if (!(body = slurp(path, &len)))
			continue;
		/* Cut short at every length. */
		for (size_t cut = 0; cut < len; cut += 7)
			check_sane(body, cut);
		doc = json_loadb(body, len, 0, NULL);
		if (doc)
			mutate_all(doc, doc, odd, nodd);
		json_decref(doc);
		free(body);
	}
	for (size_t i = 0; i < nodd; i++)
		json_decref(odd[i]);
}

int main(void)
{
	struct CMUnitTest tests[NCASES + 3];

	for (size_t i = 0; i < NCASES; i++)
		tests[i] = (struct CMUnitTest){.name = cases[i], .test_func = test_case,
					       .initial_state = (void *)(uintptr_t)i};
	tests[NCASES] = (struct CMUnitTest)cmocka_unit_test(test_every_fixture_listed);
	tests[NCASES + 1] = (struct CMUnitTest)cmocka_unit_test(test_huge_body);
	tests[NCASES + 2] = (struct CMUnitTest)cmocka_unit_test(test_odd_json);
	return cmocka_run_group_tests_name("webhook", tests, NULL, NULL);
}
