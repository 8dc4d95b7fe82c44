/* test_swap_catalog.c - the model-hotswap catalog (swap/catalog.c): the
 * fixtures in tests/fixtures/swap/catalog/ (good-*.yaml read back field by
 * field; bad-*.yaml each refused with its file, line and field in the
 * message), defaults, lookups, the caps (file size, entries, names,
 * values, nesting), and the fuzz corpus read without a crash. */
#include <dirent.h>
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

#include "swap/catalog.h"

#define FIX "tests/fixtures/swap/catalog/"
#define CORPUS "tests/fuzz/corpus/fuzz_catalog/"
#define GIB (1ull << 30)
#define MIB (1ull << 20)
/* An engine section for tests about the rest. */
#define ENG "engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n"

static struct gp_swap_catalog *load_ok(const char *path)
{
	struct gp_swap_catalog *c = NULL;
	char err[512] = "";
	int rc = gp_swap_catalog_load(path, &c, err, sizeof err);

	if (rc)
		fail_msg("%s: %s", path, err);
	assert_non_null(c);
	return c;
}

static int parse(const char *text, struct gp_swap_catalog **c, char *err, size_t n)
{
	return gp_swap_catalog_parse(text, strlen(text), "t.yaml", c, err, n);
}

/* Every key of the schema, read back. */
static void test_full(void **state)
{
	struct gp_swap_catalog *c = load_ok(FIX "good-full.yaml");
	const struct gp_swap_model *m;
	const struct gp_swap_engine *e;

	(void)state;
	assert_int_equal(c->nmodels, 2);
	assert_int_equal(c->nengines, 3);

	m = &c->models[0];
	assert_string_equal(m->name, "llama-8b");
	assert_string_equal(m->weights, "/models/llama-8b");
	assert_true(m->size == 16 * GIB);
	assert_int_equal(m->engines_per_replica, 1);
	assert_int_equal(m->min_replicas, 0);
	assert_int_equal(m->max_replicas, 3);
	assert_true(m->throughput == 12.5);
	assert_string_equal(m->queue, "llama-8b-requests");
	assert_string_equal(m->vhost, "/");
	assert_int_equal(m->line, 7);

	/* Defaults; file:// stripped; engines_per_replica from the smallest
	 * engine that can serve it (the vllm engine does not list it). */
	m = &c->models[1];
	assert_string_equal(m->name, "mixtral.8x7b_v2");
	assert_string_equal(m->weights, "/models/mixtral 8x7b/model.safetensors");
	assert_true(m->size == 120 * GIB);
	assert_int_equal(m->engines_per_replica, 2);
	assert_int_equal(m->min_replicas, 1);
	assert_int_equal(m->max_replicas, 4);
	assert_true(m->throughput == 2.0);
	assert_string_equal(m->queue, "mixtral.8x7b_v2");
	assert_string_equal(m->vhost, "/inference");

	e = &c->engines[0];
	assert_string_equal(e->name, "gpu-0");
	assert_int_equal(e->kind, GP_SWAP_ENGINE_GPUPOOL);
	assert_true(e->memory == 80 * GIB);
	assert_string_equal(e->endpoint, "http://10.0.0.5:8000");
	assert_null(e->servers);
	assert_int_equal(e->nservers, 0);
	assert_int_equal(e->line, 21);
	e = &c->engines[1];
	assert_string_equal(e->name, "gpu-1");
	assert_int_equal(e->kind, GP_SWAP_ENGINE_TRITON);
	assert_string_equal(e->endpoint, "https://triton.example:8443/v2");
	e = &c->engines[2];
	assert_string_equal(e->name, "vllm-a");
	assert_int_equal(e->kind, GP_SWAP_ENGINE_VLLM);
	assert_true(e->memory == 40 * GIB);
	assert_null(e->endpoint);
	assert_int_equal(e->nservers, 1);
	assert_int_equal(e->servers[0].model, 0);
	assert_string_equal(e->servers[0].url, "http://10.0.0.6:8001");

	assert_string_equal(c->rabbitmq.url, "http://rabbitmq:15672");
	assert_string_equal(c->rabbitmq.user, "monitor");
	assert_string_equal(c->rabbitmq.password_file, "/etc/gpupool/rabbitmq/password");

	/* Lookups and who serves what. */
	assert_int_equal(gp_swap_catalog_model(c, "llama-8b"), 0);
	assert_int_equal(gp_swap_catalog_model(c, "mixtral.8x7b_v2"), 1);
	assert_int_equal(gp_swap_catalog_model(c, "llama"), -1);
	assert_int_equal(gp_swap_catalog_engine(c, "gpu-0"), 0);
	assert_int_equal(gp_swap_catalog_engine(c, "gpu-1"), 1);
	assert_int_equal(gp_swap_catalog_engine(c, "vllm-a"), 2);
	assert_int_equal(gp_swap_catalog_engine(c, "gpu-2"), -1);
	assert_int_equal(gp_swap_engine_serves(c, 2, 0), 0);
	assert_int_equal(gp_swap_engine_serves(c, 2, 1), -1);
	assert_int_equal(gp_swap_engine_serves(c, 0, 1), 0);
	assert_int_equal(gp_swap_engine_serves(c, 3, 0), -1);
	assert_string_equal(gp_swap_engine_kind_name(GP_SWAP_ENGINE_VLLM), "vllm");
	assert_string_equal(gp_swap_engine_kind_name(GP_SWAP_ENGINE_TRITON), "triton");
	assert_string_equal(gp_swap_engine_kind_name(GP_SWAP_ENGINE_GPUPOOL), "gpupool");
	gp_swap_catalog_free(c);
}

static void test_defaults(void **state)
{
	struct gp_swap_catalog *c = load_ok(FIX "good-defaults.yaml");
	const struct gp_swap_model *m;

	(void)state;
	m = &c->models[0]; /* 100 GiB over a 40 GiB smallest engine: 3 */
	assert_int_equal(m->engines_per_replica, 3);
	assert_int_equal(m->min_replicas, 2);
	assert_int_equal(m->max_replicas, 5);
	assert_string_equal(m->vhost, "prod");
	assert_string_equal(m->queue, "big");
	assert_true(m->throughput == 0.5);
	m = &c->models[1]; /* 800MB is 800 MiB (binary units) */
	assert_true(m->size == 800 * MIB);
	assert_int_equal(m->engines_per_replica, 1);
	assert_int_equal(m->min_replicas, 2);
	assert_int_equal(m->max_replicas, 2);
	assert_null(c->rabbitmq.url);
	assert_null(c->rabbitmq.user);
	gp_swap_catalog_free(c);

	/* Nothing given: min 0, max 1, vhost "/", queue = name, epr 1. */
	c = load_ok(FIX "good-minimal.yaml");
	m = &c->models[0];
	assert_true(m->size == 1000);
	assert_int_equal(m->min_replicas, 0);
	assert_int_equal(m->max_replicas, 1);
	assert_string_equal(m->vhost, "/");
	assert_string_equal(m->queue, "m");
	assert_int_equal(m->engines_per_replica, 1);
	gp_swap_catalog_free(c);
}

/* Only min_replicas given, no max anywhere: max follows it up. */
static void test_min_without_max(void **state)
{
	struct gp_swap_catalog *c = NULL;
	char err[512];

	(void)state;
	assert_int_equal(parse("models: [{name: m, weights: /w, size: 1, throughput: 1, "
			       "min_replicas: 3}]\n"
			       "engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n",
			       &c, err, sizeof err), 0);
	assert_int_equal(c->models[0].min_replicas, 3);
	assert_int_equal(c->models[0].max_replicas, 3);
	gp_swap_catalog_free(c);
}

/* Each bad fixture: the line it must point at and what the message must
 * say (the field, and why). */
static const struct {
	const char *file;
	unsigned line;
	const char *says;
} bad[] = {
	{"bad-unknown-key.yaml", 6, "models[0]: unknown key 'max_replica' (did you mean 'max_replicas'?)"},
	{"bad-unknown-section.yaml", 3, "catalog: unknown key 'engine' (did you mean 'engines'?)"},
	{"bad-type-size.yaml", 4, "models[0].size: want a size above 0"},
	{"bad-size-unit.yaml", 4, "models[0].size: '16XB' is not a size"},
	{"bad-quoted-count.yaml", 6, "models[0].min_replicas: want an integer from 0 to 1000, not a quoted string"},
	{"bad-throughput.yaml", 5, "models[0].throughput: '.inf' is not a number above 0"},
	{"bad-throughput-zero.yaml", 5, "models[0].throughput: '0' is not a number above 0"},
	{"bad-duplicate-model.yaml", 4, "models[2].name: 'm' is already the name of models[0] (line 2)"},
	{"bad-duplicate-engine.yaml", 5, "engines[1].name: 'e' is already the name of engines[0] (line 4)"},
	{"bad-duplicate-key.yaml", 5, "models[0]: duplicate key 'size' (first at line 4)"},
	{"bad-too-big.yaml", 5, "models[0].engines_per_replica: 2 x the biggest engine"},
	{"bad-too-big-default.yaml", 7, "models[0].size: 200 GiB needs 5 engines of the smallest that can serve it (40 GiB), but only 3 can; give engines_per_replica (at least 3)"},
	{"bad-too-big-all.yaml", 4, "models[0].size: 200 GiB does not fit even all 2 engines that can serve it (80 GiB at most each)"},
	{"bad-duplicate-queue.yaml", 10, "models[1].queue: 'a' in vhost '/' is already the queue of models[0] (line 2)"},
	{"bad-vllm-unknown-model.yaml", 9, "engines[0].servers: 'llama-70b' is not a model of this catalog"},
	{"bad-vllm-endpoint.yaml", 7, "engines[0].endpoint: a vllm engine has 'servers'"},
	{"bad-no-endpoint.yaml", 4, "engines[0]: 'endpoint' is missing"},
	{"bad-servers-triton.yaml", 8, "engines[0].servers: only vllm engines have servers"},
	{"bad-unserved.yaml", 3, "models[1].name: no engine can serve 'b'"},
	{"bad-min-max.yaml", 7, "models[0].max_replicas: 2 is less than min_replicas 5"},
	{"bad-min-over-defaults.yaml", 8, "models[0].min_replicas: 4 is more than max_replicas 3 (from defaults, line 2)"},
	{"bad-kind.yaml", 5, "engines[0].kind: 'tgi' is not vllm, triton or gpupool"},
	{"bad-name-charset.yaml", 2, "models[0].name: 'llama 8b' is not a name"},
	{"bad-weights-relative.yaml", 3, "models[0].weights: 'models/m' is not an absolute path or a file:/// URI"},
	{"bad-endpoint-scheme.yaml", 7, "engines[0].endpoint: 'grpc://e:9000' is not an http:// or https:// URL"},
	{"bad-missing-models.yaml", 1, "catalog: 'models' is missing"},
	{"bad-missing-size.yaml", 2, "models[0]: 'size' is missing"},
	{"bad-models-empty.yaml", 1, "models: the list is empty"},
	{"bad-empty-value.yaml", 6, "models[0].queue: no value"},
	{"bad-rabbitmq-user.yaml", 6, "rabbitmq: 'user' and 'password_file' go together"},
	{"bad-epr-over-engines.yaml", 5, "models[0].engines_per_replica: 3, but only 2 engines can serve it"},
	/* YAML itself: no field to name, but the place and the reason. */
	{"bad-alias.yaml", 2, "anchors and aliases are not supported"},
	{"bad-alias-bomb.yaml", 1, "anchors and aliases are not supported"},
	{"bad-deep.yaml", 8, "nested deeper than 8 levels"},
	{"bad-tag.yaml", 4, "tags ('tag:yaml.org,2002:str') are not supported"},
	{"bad-two-docs.yaml", 5, "several YAML documents"},
	{"bad-syntax.yaml", 4, "not valid YAML"},
	{"bad-utf8.yaml", 3, "the catalog must be UTF-8 text"},
};

static void test_bad_fixtures(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct gp_swap_catalog *c = (void *)1;
		char path[256], err[512] = "", where[300];
		int rc;

		snprintf(path, sizeof path, FIX "%s", bad[i].file);
		rc = gp_swap_catalog_load(path, &c, err, sizeof err);
		if (rc != -EINVAL)
			fail_msg("%s: rc %d (%s)", path, rc, err);
		assert_null(c);
		snprintf(where, sizeof where, "%s:%u:", path, bad[i].line);
		if (strncmp(err, where, strlen(where)) != 0 || !strstr(err, bad[i].says))
			fail_msg("%s: want '%s...%s', got '%s'", bad[i].file, where, bad[i].says, err);
	}
}

/* Every fixture in the directory is either in the table above or good. */
static void test_fixture_dir_covered(void **state)
{
	DIR *d = opendir(FIX);
	struct dirent *e;
	size_t seen = 0;

	(void)state;
	assert_non_null(d);
	while ((e = readdir(d))) {
		size_t i;
		if (strncmp(e->d_name, "bad-", 4) != 0)
			continue;
		for (i = 0; i < sizeof bad / sizeof *bad && strcmp(bad[i].file, e->d_name); i++)
			;
		if (i == sizeof bad / sizeof *bad)
			fail_msg("%s has no entry in bad[]", e->d_name);
		seen++;
	}
	closedir(d);
	assert_int_equal(seen, sizeof bad / sizeof *bad);
}

/* A growing text buffer. */
struct buf {
	char *p;
	size_t len, cap;
};

static void add(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if ((size_t)n < b->cap - b->len)
			break;
		b->cap = (b->cap + (size_t)n) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	b->len += (size_t)n;
}

/* A catalog of `models` models and `engines` engines. */
static char *catalog(size_t models, size_t engines)
{
	struct buf b = {.p = malloc(64), .cap = 64};

	add(&b, "models:\n");
	for (size_t i = 0; i < models; i++)
		add(&b, "  - {name: m%zu, weights: /w, size: 1GiB, throughput: 1}\n", i);
	add(&b, "engines:\n");
	for (size_t i = 0; i < engines; i++)
		add(&b, "  - {name: e%zu, kind: gpupool, memory: 80GiB, endpoint: http://e}\n", i);
	return b.p;
}

static void expect_refused(const char *text, const char *says)
{
	struct gp_swap_catalog *c = NULL;
	char err[512] = "";

	assert_int_equal(parse(text, &c, err, sizeof err), -EINVAL);
	assert_null(c);
	if (!strstr(err, says))
		fail_msg("want '%s', got '%s'", says, err);
}

static void test_caps(void **state)
{
	struct gp_swap_catalog *c = NULL;
	char err[512], *t, name[GP_SWAP_NAME_MAX + 2];
	struct buf b = {0};

	(void)state;
	/* Exactly at the entry caps, then one over. */
	t = catalog(GP_SWAP_MAX_MODELS, GP_SWAP_MAX_ENGINES);
	assert_int_equal(parse(t, &c, err, sizeof err), 0);
	assert_int_equal(c->nmodels, GP_SWAP_MAX_MODELS);
	assert_int_equal(c->nengines, GP_SWAP_MAX_ENGINES);
	assert_int_equal(gp_swap_catalog_model(c, "m1023"), 1023);
	assert_int_equal(gp_swap_catalog_engine(c, "e512"), 512);
	gp_swap_catalog_free(c);
	free(t);
	t = catalog(GP_SWAP_MAX_MODELS + 1, 1);
	expect_refused(t, "t.yaml:2:3: models: more than 1024 entries");
	free(t);
	t = catalog(1, GP_SWAP_MAX_ENGINES + 1);
	expect_refused(t, "t.yaml:4:3: engines: more than 1024 entries");
	free(t);

	/* Names: 128 bytes, not 129. */
	memset(name, 'n', sizeof name);
	name[GP_SWAP_NAME_MAX] = '\0';
	b.p = malloc(b.cap = 64);
	add(&b, "models: [{name: %s, weights: /w, size: 1, throughput: 1}]\n"
		"engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n", name);
	assert_int_equal(parse(b.p, &c, err, sizeof err), 0);
	gp_swap_catalog_free(c);
	b.len = 0;
	name[GP_SWAP_NAME_MAX] = 'n';
	name[GP_SWAP_NAME_MAX + 1] = '\0';
	add(&b, "models: [{name: %s, weights: /w, size: 1, throughput: 1}]\n"
		"engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n", name);
	expect_refused(b.p, "models[0].name: 'nnnn");

	/* Weights: 4096 bytes, not 4097. */
	b.len = 0;
	add(&b, "models: [{name: m, weights: /%04095d, size: 1, throughput: 1}]\n"
		"engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n", 0);
	assert_int_equal(parse(b.p, &c, err, sizeof err), 0);
	assert_int_equal(strlen(c->models[0].weights), GP_SWAP_PATH_MAX);
	gp_swap_catalog_free(c);
	b.len = 0;
	add(&b, "models: [{name: m, weights: /%04096d, size: 1, throughput: 1}]\n"
		"engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n", 0);
	expect_refused(b.p, "t.yaml:1:29: models[0].weights: longer than 4096 bytes");

	/* One value over GP_SWAP_CATALOG_MAX_SCALAR. */
	b.len = 0;
	add(&b, "models: [{name: m, weights: /%09000d, size: 1, throughput: 1}]\n", 0);
	expect_refused(b.p, "t.yaml:1:29: a value longer than 8192 bytes");

	/* Too many values, well within the byte cap. */
	b.len = 0;
	add(&b, "rabbitmq: [");
	for (unsigned i = 0; i < GP_SWAP_CATALOG_MAX_NODES; i++)
		add(&b, "1,");
	add(&b, "1]\n");
	assert_true(b.len < GP_SWAP_CATALOG_MAX_BYTES);
	expect_refused(b.p, "more than 200000 values");

	/* Queue and vhost: AMQP short strings. */
	b.len = 0;
	add(&b, "models: [{name: m, weights: /w, size: 1, throughput: 1, queue: %0256d}]\n"
		"engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n", 0);
	expect_refused(b.p, "models[0].queue: want a name of 1 to 255 bytes, not 256");

	/* Replicas past 1000, size past 2^64. */
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1, max_replicas: 1001}]\n"
		       "engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n",
		       "t.yaml:1:71: models[0].max_replicas: '1001' is not an integer from 1 to 1000");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1, max_replicas: 0}]\n"
		       "engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n",
		       "models[0].max_replicas: '0' is not an integer from 1 to 1000");
	expect_refused("models: [{name: m, weights: /w, size: 99999999999PiB, throughput: 1}]\n"
		       "engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n",
		       "models[0].size: '99999999999PiB' is too large");
	free(b.p);
}

/* The file cap: through parse (a length) and load (a file). */
static void test_file_cap(void **state)
{
	struct gp_swap_catalog *c = (void *)1;
	char err[512], path[256];
	size_t n = GP_SWAP_CATALOG_MAX_BYTES + 1;
	char *big = malloc(n);
	int fd;

	(void)state;
	assert_non_null(big);
	memset(big, '#', n); /* a comment: valid YAML but for its size */
	assert_int_equal(gp_swap_catalog_parse(big, n, "big.yaml", &c, err, sizeof err), -EINVAL);
	assert_null(c);
	assert_string_equal(err, "big.yaml: larger than 1048576 bytes");
	snprintf(path, sizeof path, "%.200s/gp-catalog-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, n), (ssize_t)n);
	close(fd);
	assert_int_equal(gp_swap_catalog_load(path, &c, err, sizeof err), -EFBIG);
	assert_non_null(strstr(err, "larger than 1048576 bytes"));
	unlink(path);
	free(big);

	assert_int_equal(gp_swap_catalog_load(FIX "no-such.yaml", &c, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "no-such.yaml: cannot read"));
	assert_int_equal(gp_swap_catalog_load(FIX, &c, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
}

/* Odd but valid YAML, and small refusals not worth a fixture. */
static void test_yaml_edges(void **state)
{
	struct gp_swap_catalog *c = NULL;
	char err[512];

	(void)state;
	/* Flow style, quoted keys, sections in any order, a BOM, CRLF. */
	if (parse("\xEF\xBB\xBF"
			       "engines: [{\"name\": v, kind: vllm, memory: 24GiB,\r\n"
			       "  servers: {'m': 'http://v:1'}}]\r\n"
			       "models: [{name: m, weights: 'file:///w', size: 1.5GiB, "
			       "throughput: 1e2}]\r\n", &c, err, sizeof err))
		fail_msg("%s", err);
	assert_true(c->models[0].size == 3 * GIB / 2);
	assert_true(c->models[0].throughput == 100.0);
	assert_string_equal(c->models[0].weights, "/w");
	assert_int_equal(c->engines[0].servers[0].model, 0);
	gp_swap_catalog_free(c);

	expect_refused("", "t.yaml:1:1: empty document");
	expect_refused("# only a comment\n", "empty document");
	expect_refused("- a\n", "t.yaml:1:1: a catalog is a mapping");
	expect_refused("models: x\nengines: []\n", "t.yaml:1:9: models: want a list, not a value");
	expect_refused("models:\nengines: []\n", "models: want a list, not nothing");
	expect_refused("models: [[1]]\nengines: []\n", "models[0]: want a mapping of keys to values, not a list");
	expect_refused("{[a]: 1}\n", "a key must be a name, not a list");
	expect_refused("models: [{name: m, weights: s3://b/w, size: 1, throughput: 1}]\n" ENG,
		       "models[0].weights: 's3://b/w': only paths and file:/// URIs are supported");
	expect_refused("models: [{name: m, weights: /w, size: 0, throughput: 1}]\n" ENG,
		       "models[0].size: '0' is not a size above 0");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: \"2\"}]\n" ENG,
		       "models[0].throughput: want a number above 0 (12.5), not a quoted string");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 0x10}]\n" ENG,
		       "models[0].throughput: '0x10' is not a number");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1}]\n"
		       "engines: [{name: e, kind: gpupool, memory: 1, endpoint: 'http:///x'}]\n",
		       "engines[0].endpoint: 'http:///x' names no host");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1}]\n"
		       "engines: [{name: e, kind: gpupool, memory: 1, endpoint: 'http://a b'}]\n",
		       "engines[0].endpoint: a space or control character in the URL");
	expect_refused("models: [{name: m, weights: \"/w\\0x\", size: 1, throughput: 1}]\n" ENG,
		       "a NUL character in a string is not supported");
	expect_refused("models: [{name: m, weights: \"/w\\tx\", size: 1, throughput: 1}]\n" ENG,
		       "models[0].weights: a control character in the path");
	expect_refused("defaults: {min_replicas: 3, max_replicas: 2}\nmodels: []\n" ENG,
		       "t.yaml:1:26: defaults.min_replicas: 3 is more than max_replicas 2");
	expect_refused("defaults: {min: 3}\nmodels: []\n" ENG, "defaults: unknown key 'min'");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1}]\n"
		       "engines: [{name: v, kind: vllm, memory: 1, servers: {m: http://a, m: http://b}}]\n",
		       "engines[0].servers: duplicate key 'm'");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1}]\n"
		       "engines: [{name: v, kind: vllm, memory: 1, servers: {}}]\n",
		       "engines[0].servers: no servers");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1}]\n"
		       "engines: [{name: v, kind: vllm, memory: 1}]\n",
		       "engines[0]: 'servers' is missing");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1}]\n"
		       "engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n"
		       "rabbitmq: {user: u, password_file: /p}\n",
		       "rabbitmq: 'url' is missing");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1}]\n"
		       "engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n"
		       "rabbitmq: {url: http://r, user: u, password_file: p}\n",
		       "rabbitmq.password_file: 'p' is not an absolute path");
	expect_refused("models: [{name: m, weights: /w, size: 1, throughput: 1}]\nmodels: []\n" ENG,
		       "t.yaml:2:1: catalog: duplicate key 'models' (first at line 1)");
	/* Non-UTF-8 in the middle of a line: the column is right too. */
	expect_refused("models: [{name: m, weights: /w\xC3\x28, size: 1, throughput: 1}]\n" ENG,
		       "t.yaml:1:32: invalid trailing UTF-8 octet");
}

/* Three models of one name: the second is the duplicate, of the first. */
static void test_duplicate_order(void **state)
{
	(void)state;
	expect_refused("models:\n"
		       "  - {name: z, weights: /w, size: 1, throughput: 1}\n"
		       "  - {name: a, weights: /w, size: 1, throughput: 1}\n"
		       "  - {name: z, weights: /w, size: 1, throughput: 1}\n"
		       "  - {name: z, weights: /w, size: 1, throughput: 1}\n"
		       "engines: [{name: e, kind: gpupool, memory: 1, endpoint: http://e}]\n",
		       "t.yaml:4:12: models[2].name: 'z' is already the name of models[0] (line 2)");
}

/* Every fuzz seed and fixture, through parse: accepted or refused with a
 * reason, never a crash (the fuzz replay in tests/run does the mutations). */
static void test_corpus(void **state)
{
	static const char *const dirs[] = {CORPUS, FIX};
	size_t seen = 0;

	(void)state;
	for (size_t k = 0; k < sizeof dirs / sizeof *dirs; k++) {
		DIR *d = opendir(dirs[k]);
		struct dirent *e;

		assert_non_null(d);
		while ((e = readdir(d))) {
			struct gp_swap_catalog *c = NULL;
			char path[512], err[512] = "", buf[65536];
			FILE *f;
			size_t n;
			int rc;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s%s", dirs[k], e->d_name);
			assert_non_null(f = fopen(path, "rb"));
			n = fread(buf, 1, sizeof buf, f);
			fclose(f);
			rc = gp_swap_catalog_parse(buf, n, e->d_name, &c, err, sizeof err);
			if (rc == 0)
				assert_non_null(c);
			else
				assert_true(!c && err[0]);
			gp_swap_catalog_free(c);
			seen++;
		}
		closedir(d);
	}
	assert_true(seen > 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_min_without_max),
		cmocka_unit_test(test_bad_fixtures),
		cmocka_unit_test(test_fixture_dir_covered),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_file_cap),
		cmocka_unit_test(test_yaml_edges),
		cmocka_unit_test(test_duplicate_order),
		cmocka_unit_test(test_corpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
