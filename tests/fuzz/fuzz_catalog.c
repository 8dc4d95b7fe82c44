/* fuzz_catalog.c - libFuzzer target for the model-hotswap catalog
 * (swap/catalog.c): YAML through libyaml, then validated against the
 * schema in swap/catalog.h.
 *
 * The catalog is an operator's file, but `gpupool swap` reads whatever
 * path it is given and the reader must refuse anything with a reason and
 * never crash, leak or blow up (aliases, nesting, node count, size).
 *
 * The whole input is the file's text.  Checked: a refusal leaves nothing
 * and says where ("fuzz.yaml:LINE:COL: ..." or "fuzz.yaml: ..."); an
 * accepted catalog keeps every promise of the header: counts within the
 * caps, names valid and unique and found by the lookups, sizes and memory
 * above 0, min <= max, throughput finite and positive, each model served
 * by an engine and fitting engines_per_replica of the biggest, endpoints
 * exactly for non-vllm engines, servers naming real models.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swap/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                     \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_catalog: %s:%d: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                         \
		}                                                                    \
	} while (0)

/* Through libyaml and a tree: fewer mutations than the default keep the
 * replay under ASan near ten seconds. */
const unsigned fuzz_replay_mutations = 100000;

static int good_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= GP_SWAP_NAME_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int good_url(const char *s)
{
	return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
	       strlen(s) <= GP_SWAP_URL_MAX;
}

static void check(const struct gp_swap_catalog *c)
{
	CHECK(c->nmodels >= 1 && c->nmodels <= GP_SWAP_MAX_MODELS);
	CHECK(c->nengines >= 1 && c->nengines <= GP_SWAP_MAX_ENGINES);
	for (size_t e = 0; e < c->nengines; e++) {
		const struct gp_swap_engine *g = &c->engines[e];

		CHECK(good_name(g->name));
		CHECK(gp_swap_catalog_engine(c, g->name) == (long)e);
		CHECK(g->memory > 0);
		CHECK(g->line >= 1);
		if (g->kind == GP_SWAP_ENGINE_VLLM) {
			CHECK(!g->endpoint && g->nservers >= 1 && g->servers);
			for (size_t s = 0; s < g->nservers; s++) {
				CHECK(g->servers[s].model < c->nmodels);
				CHECK(good_url(g->servers[s].url));
				CHECK(gp_swap_engine_serves(c, e, g->servers[s].model) == (long)s);
			}
		} else {
			CHECK(g->kind == GP_SWAP_ENGINE_TRITON || g->kind == GP_SWAP_ENGINE_GPUPOOL);
			CHECK(good_url(g->endpoint) && !g->servers && !g->nservers);
		}
	}
	for (size_t m = 0; m < c->nmodels; m++) {
		const struct gp_swap_model *md = &c->models[m];
		uint64_t most = 0;
		size_t serving = 0;

		CHECK(good_name(md->name));
		CHECK(gp_swap_catalog_model(c, md->name) == (long)m);
		CHECK(md->weights && md->weights[0] == '/' && strlen(md->weights) <= GP_SWAP_PATH_MAX);
		CHECK(md->size > 0);
		CHECK(md->min_replicas <= md->max_replicas);
		CHECK(md->max_replicas >= 1 && md->max_replicas <= GP_SWAP_REPLICAS_MAX);
		CHECK(isfinite(md->throughput) && md->throughput > 0);
		CHECK(md->queue && md->queue[0] && strlen(md->queue) <= GP_SWAP_QUEUE_MAX);
		CHECK(md->vhost && md->vhost[0] && strlen(md->vhost) <= GP_SWAP_QUEUE_MAX);
		for (size_t e = 0; e < c->nengines; e++) {
			if (gp_swap_engine_serves(c, e, m) < 0)
				continue;
			serving++;
			if (c->engines[e].memory > most)
				most = c->engines[e].memory;
		}
		CHECK(serving >= 1);
		CHECK(md->engines_per_replica >= 1 && md->engines_per_replica <= serving);
		CHECK((unsigned __int128)md->engines_per_replica * most >= md->size);
	}
	CHECK(!c->rabbitmq.user == !c->rabbitmq.password_file);
	if (c->rabbitmq.user)
		CHECK(good_url(c->rabbitmq.url));
	if (c->rabbitmq.password_file)
		CHECK(c->rabbitmq.password_file[0] == '/');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_swap_catalog *c = (void *)1;
	char err[512] = "";
	int rc = gp_swap_catalog_parse((const char *)data, size, "fuzz.yaml", &c, err, sizeof err);

	CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	if (rc) {
		CHECK(!c);
		CHECK(strncmp(err, "fuzz.yaml:", 10) == 0 && strlen(err) > 12);
		return 0;
	}
	CHECK(c);
	check(c);
	gp_swap_catalog_free(c);
	return 0;
}
