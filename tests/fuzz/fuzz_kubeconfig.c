/* fuzz_kubeconfig.c - libFuzzer target for the kubeconfig reader
 * (net/kubeconfig.c): YAML through libyaml, or JSON, then interpreted.
 *
 * A kubeconfig is usually the operator's own file, but `gpupool sched
 * --kubeconfig` and the agent read whatever path they are given, and the
 * reader is the one YAML parser in the daemons: it must refuse anything
 * with a reason and never crash, leak or blow up (aliases, nesting, size).
 *
 * The whole input is the file's text.  It is read through its current
 * context and through the context named "prod" (the seeds have one), with
 * a directory that does not exist, so relative certificate paths fail
 * rather than read files here.  Also fed to the YAML reader alone and to
 * the base64 decoder alone.  Checked: a refusal says why; an accepted
 * config has an http(s) server without a trailing '/', a context name,
 * and a client certificate exactly when it has a key.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                     \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_kubeconfig: %s:%d: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                         \
		}                                                                    \
	} while (0)

#define NO_DIR "/nonexistent/gpupool-fuzz"

/* Each input is read four ways (two contexts, the YAML reader, base64),
 * through libyaml: the replay in `make check` asks for fewer mutations to
 * stay near ten seconds under ASan. */
const unsigned fuzz_replay_mutations = 50000;

static void one(const char *text, size_t len, const char *context)
{
	struct gp_kubeconfig kc;
	char err[512] = "";
	int rc = gp_kubeconfig_parse(&kc, text, len, NO_DIR, context, err, sizeof err);
	size_t sl;

	CHECK(rc == 0 || rc == -EINVAL || rc == -ENOTSUP || rc == -ENOMEM);
	if (rc) {
		CHECK(err[0] != '\0');
		/* A refusal leaves nothing to free. */
		CHECK(!kc.server && !kc.token && !kc.cert_pem && !kc.context);
		return;
	}
	CHECK(kc.server && kc.context);
	CHECK(strncmp(kc.server, "https://", 8) == 0 || strncmp(kc.server, "http://", 7) == 0);
	sl = strlen(kc.server);
	CHECK(sl > 0 && kc.server[sl - 1] != '/');
	CHECK(!kc.cert_pem == !kc.key_pem);
	CHECK(!(kc.ca_file && kc.ca_data));
	if (kc.ca_file)
		CHECK(kc.ca_file[0] == '/' || strncmp(kc.ca_file, NO_DIR "/", sizeof NO_DIR) == 0);
	if (kc.user)
		CHECK(kc.password);
	if (context)
		CHECK(strcmp(kc.context, context) == 0);
	gp_kubeconfig_free(&kc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char err[256];
	json_t *doc;
	size_t n;
	char *b;

	one(text, size, NULL);
	one(text, size, "prod");
	doc = gp__kubeconfig_yaml(text, size, err, sizeof err);
	if (doc)
		CHECK(json_is_object(doc) || json_is_array(doc));
	else
		CHECK(err[0] != '\0');
	json_decref(doc);
	if ((b = gp__base64_decode(text, size, &n))) {
		CHECK(n <= size / 4 * 3 + 3 && b[n] == '\0');
		free(b);
	}
	return 0;
}
