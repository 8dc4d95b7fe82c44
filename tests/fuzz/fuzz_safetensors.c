/* fuzz_safetensors.c - libFuzzer target for the safetensors header parser
 * (swap/safetensors.c): `gpupool engine` reads model files users point it
 * at.  The input is the header's JSON; the first 4 bytes, when present,
 * give the data length the file claims.
 *
 * Besides not crashing or leaking: a refusal says why; an accepted header's
 * tensors are in offset order, cover the data exactly, and each has the
 * byte length its dtype and shape give. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swap/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                       \
	do {                                                                               \
		if (!(c)) {                                                                    \
			fprintf(stderr, "fuzz_safetensors: %s:%d: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                                   \
		}                                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_safetensors *st = NULL;
	uint64_t claimed = 0, at = 0;
	char why[256] = "";
	int rc;

	if (size >= 4) {
		claimed = (uint64_t)data[0] | (uint64_t)data[1] << 8 | (uint64_t)data[2] << 16 |
			  (uint64_t)data[3] << 24;
		data += 4;
		size -= 4;
	}
	rc = gp_safetensors_parse((const char *)data, size, claimed, &st, why, sizeof why);
	if (rc) {
		CHECK(st == NULL && why[0]);
		return 0;
	}
	for (size_t i = 0; i < gp_safetensors_count(st); i++) {
		const struct gp_st_tensor *t = gp_safetensors_tensor(st, i);
		uint64_t elems = 1;

		CHECK(t->begin == at && t->end >= t->begin);
		CHECK(strlen(t->name) >= 1 && strlen(t->name) <= GP_ST_MAX_NAME);
		CHECK(t->ndims <= GP_ST_MAX_DIMS);
		for (unsigned d = 0; d < t->ndims; d++)
			elems *= t->shape[d];
		CHECK(t->end - t->begin == elems * t->elem_size);
		at = t->end;
	}
	CHECK(at == claimed && gp_safetensors_data_bytes(st) == claimed);
	CHECK(gp_safetensors_data_offset(st) == 8 + size);
	gp_safetensors_free(st);
	return 0;
}
