/* fuzz_parse.c - libFuzzer target for everything that parses user input in
 * the hook: sizes, limits, percentages, lists and whole environments.
 *
 * The input is split at its first NUL byte: the first part is parsed as a
 * single value by every value parser, the whole of it (lines) as an
 * environment by the configuration parser.  Besides not crashing, results
 * are checked for the invariants the parsers promise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/parse.h"
#include "hook/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                     \
		if (!(c))                                                            \
			abort();                                                         \
	} while (0)

static void values(const char *s)
{
	uint64_t v;
	struct gp_limit l;
	unsigned pct;
	const char *cur = s, *item;
	size_t len, total = 0;

	if (gp_parse_size(s, &v) == 0 && strspn(s, "0123456789") == strlen(s))
		CHECK(v == strtoull(s, NULL, 10)); /* plain digits: plain value */
	if (gp_parse_limit(s, &l) == 0) {
		CHECK((l.bytes == 0) != (l.ppm == 0)); /* exactly one is set */
		CHECK(l.ppm <= 1000000);
		CHECK(gp_limit_bytes(&l, 1ULL << 36) <= (l.ppm ? 1ULL << 36 : l.bytes));
	}
	if (gp_parse_percent(s, 1, 100, &pct) == 0)
		CHECK(pct >= 1 && pct <= 100);
	while ((item = gp_list_next(&cur, ',', &len))) {
		CHECK(item >= s && item + len <= s + strlen(s));
		total += len + 1;
		CHECK(total <= strlen(s) + 1);
	}
}

static void environment(char *buf)
{
	char *envp[64];
	size_t n = 0;
	struct gp__config c;
	char err[256];

	for (char *line = strtok(buf, "\n"); line && n < 63; line = strtok(NULL, "\n"))
		envp[n++] = line;
	envp[n] = NULL;
	if (gp__config_parse(&c, envp, err, sizeof err) == 0) {
		for (unsigned i = 0; i < GP_CONFIG_MAX_DEVS; i++)
			CHECK(c.core[i] <= 100);
	} else {
		CHECK(err[0] != '\0'); /* a refusal always says why */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	gp_log_setup(GP_LOG_ERROR, "fuzz"); /* unknown-variable warnings are noise */
	values(s);
	environment(s); /* strtok cuts s up: last */
	free(s);
	return 0;
}
