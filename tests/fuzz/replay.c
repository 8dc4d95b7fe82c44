/* replay.c - run a libFuzzer target without libFuzzer, for `make test`.
 *
 * Feeds the target every file of the corpus directory given as argv[1],
 * then a fixed number of deterministic mutations of them (byte flips,
 * insertions of interesting characters, truncations, splices), so the suite
 * exercises the target with any compiler.  `make fuzz` runs the real
 * coverage-guided fuzzer.  Reports in TAP like the rest of the suite.
 *
 * A target whose every run is costly (fuzz_region writes a whole region
 * file) may define `const unsigned fuzz_replay_mutations` to ask for fewer
 * mutations than MUTATIONS.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX 4096
#define MAX_SEEDS 256
#define MUTATIONS 200000

extern const unsigned fuzz_replay_mutations __attribute__((weak));

static uint8_t *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS];
static size_t nseeds;

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void load(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) && nseeds < MAX_SEEDS) {
		char path[1024];
		FILE *f;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (!(f = fopen(path, "rb")))
			continue;
		seeds[nseeds] = malloc(REPLAY_MAX);
		seed_len[nseeds] = fread(seeds[nseeds], 1, REPLAY_MAX, f);
		fclose(f);
		nseeds++;
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	static const char interesting[] = "0123456789.%,=_ \n\tKMGTPBikmgtpb-+GPU";
	uint8_t buf[REPLAY_MAX];
	const unsigned mutations = &fuzz_replay_mutations ? fuzz_replay_mutations : MUTATIONS;

	load(argc > 1 ? argv[1] : ".");
	printf("1..2\n");
	for (size_t i = 0; i < nseeds; i++)
		LLVMFuzzerTestOneInput(seeds[i], seed_len[i]);
	printf("ok 1 - corpus: %zu inputs\n", nseeds);
	for (unsigned m = 0; m < mutations && nseeds; m++) {
		size_t k = next() % nseeds, len = seed_len[k];
		memcpy(buf, seeds[k], len);
		for (unsigned edits = 1 + next() % 4; edits--;) {
			size_t at = len ? next() % len : 0;
			switch (next() % 5) {
			case 0: /* flip a byte */
				if (len)
					buf[at] ^= (uint8_t)(1u << (next() % 8));
				break;
			case 1: /* insert an interesting character */
				if (len < REPLAY_MAX) {
					memmove(buf + at + 1, buf + at, len - at);
					buf[at] = (uint8_t)interesting[next() % (sizeof interesting - 1)];
					len++;
				}
				break;
			case 2: /* truncate */
				len = at;
				break;
			case 3: { /* splice in another seed's tail */
				size_t o = next() % nseeds, from = seed_len[o] ? next() % seed_len[o] : 0;
				size_t n = seed_len[o] - from;
				if (at + n > REPLAY_MAX)
					n = REPLAY_MAX - at;
				memcpy(buf + at, seeds[o] + from, n);
				len = at + n;
				break;
			}
			default: /* a run of digits, for overflow paths */
				for (unsigned r = next() % 24; r-- && len < REPLAY_MAX;)
					buf[len++] = (uint8_t)('0' + next() % 10);
			}
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("ok 2 - %u mutations\n", mutations);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i]);
	return 0;
}
