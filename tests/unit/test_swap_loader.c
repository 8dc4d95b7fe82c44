/* test_swap_loader.c - gpupool engine's loader (src/swap/loader.h) on the
 * simulated driver: a safetensors file's data region lands in device memory
 * byte for byte, by the disk path (staging ring or straight into the host
 * cache) and from the host cache, and failures say what failed. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "swap/hostcache.h"
#include "swap/loader.h"
#include "swap/safetensors.h"

static struct gp_cuda cu;
static char file[64];
static struct gp_safetensors *st;

/* A safetensors file whose data region is 5 MiB + 13 bytes of a
 * position-dependent pattern: not a multiple of the chunk or of 8. */
#define DATA_BYTES ((5u << 20) + 13u)

static int setup(void **state)
{
	const char *b = getenv("GP_BUILD") ? getenv("GP_BUILD") : "build";
	char lib[PATH_MAX], err[256], header[256];
	unsigned char prefix[8];
	size_t hl;
	FILE *f;
	int fd;

	(void)state;
	snprintf(lib, sizeof lib, "%s/sim/libcuda.so.1", b);
	unsetenv("GPUPOOL_SIM_STATE"); /* a private simulated machine (memfd) */
	if (gp_cuda_open(&cu, lib, 0, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	strcpy(file, "/tmp/gp-loader-XXXXXX");
	fd = mkstemp(file);
	if (fd < 0 || !(f = fdopen(fd, "w")))
		return -1;
	snprintf(header, sizeof header,
		 "{\"w\":{\"dtype\":\"U8\",\"shape\":[%u],\"data_offsets\":[0,%u]},"
		 "\"b\":{\"dtype\":\"U8\",\"shape\":[13],\"data_offsets\":[%u,%u]}}",
		 DATA_BYTES - 13, DATA_BYTES - 13, DATA_BYTES - 13, DATA_BYTES);
	hl = strlen(header);
	for (int i = 0; i < 8; i++)
		prefix[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	fwrite(prefix, 1, 8, f);
	fwrite(header, 1, hl, f);
	for (uint32_t i = 0; i < DATA_BYTES; i++)
		fputc((int)((i * 2654435761u) >> 13) & 0xff, f);
	if (fclose(f) != 0)
		return -1;
	return gp_safetensors_open(file, &st, err, sizeof err) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	gp_safetensors_free(st);
	unlink(file);
	gp_cuda_close(&cu);
	return 0;
}

/* The hash of the file's data region, read plainly. */
static uint64_t file_hash(void)
{
	FILE *f = fopen(file, "r");
	char *buf = malloc(DATA_BYTES);
	uint64_t h;

	assert_non_null(f);
	assert_non_null(buf);
	assert_int_equal(fseek(f, (long)gp_safetensors_data_offset(st), SEEK_SET), 0);
	assert_int_equal(fread(buf, 1, DATA_BYTES, f), DATA_BYTES);
	fclose(f);
	h = gp_loader_hash(GP_LOADER_HASH_SEED, buf, DATA_BYTES);
	free(buf);
	return h;
}

/* Load, then check the reported checksum against the file's and the
 * device's own bytes. */
static void load_and_check(struct gp_hostcache *cache, const struct gp_loader_opts *o,
			   struct gp_loader_result *res)
{
	CUdeviceptr dst;
	uint64_t dev;
	char err[256] = "";

	assert_int_equal(cu.cuMemAlloc_v2(&dst, DATA_BYTES), CUDA_SUCCESS);
	if (gp_loader_load(&cu, file, gp_safetensors_data_offset(st), DATA_BYTES, dst, cache,
			   "m", o, res, err, sizeof err) != 0)
		fail_msg("load: %s", err);
	assert_int_equal(res->bytes, DATA_BYTES);
	assert_int_equal(res->checksum, file_hash());
	assert_int_equal(gp_loader_device_hash(&cu, dst, DATA_BYTES, &dev), 0);
	assert_int_equal(dev, res->checksum);
	assert_int_equal(cu.cuMemFree_v2(dst), CUDA_SUCCESS);
}

static void test_staging_ring(void **state)
{
	struct gp_loader_opts o = {.chunk = 1 << 20, .buffers = 3, .streams = 2, .hash = 1};
	struct gp_loader_result r;

	(void)state;
	load_and_check(NULL, &o, &r);
	assert_false(r.from_cache);
	assert_false(r.cached);
}

/* With room, the first load fills the host cache; the second is served by
 * it; the checksum is the same whatever the chunking. */
static void test_host_cache(void **state)
{
	struct gp_loader_opts o = {.chunk = 1 << 20, .streams = 3, .hash = 1};
	struct gp_loader_opts odd = {.chunk = (3 << 19) + 5, .streams = 1, .hash = 1};
	struct gp_hostcache *cache;
	struct gp_hostcache_alloc pinned;
	struct gp_hostcache_stats s;
	struct gp_loader_result r;

	(void)state;
	gp_loader_pinned(&cu, &pinned);
	assert_int_equal(gp_hostcache_new(&cache, 8u << 20, &pinned), 0);
	load_and_check(cache, &o, &r);
	assert_false(r.from_cache);
	assert_true(r.cached);
	load_and_check(cache, &odd, &r);
	assert_true(r.from_cache);
	gp_hostcache_stats(cache, &s);
	assert_int_equal(s.used, DATA_BYTES);
	assert_int_equal(s.hits, 1);
	gp_hostcache_free(cache);

	/* Too small a cache: the staging ring, nothing cached. */
	assert_int_equal(gp_hostcache_new(&cache, 1u << 20, &pinned), 0);
	load_and_check(cache, &o, &r);
	assert_false(r.cached);
	assert_false(gp_hostcache_has(cache, "m"));
	gp_hostcache_free(cache);
}

static void test_failures(void **state)
{
	struct gp_loader_opts bad = {.chunk = 4}, o = {.chunk = 1 << 20};
	struct gp_loader_result r;
	struct gp_hostcache *cache;
	CUdeviceptr dst;
	char err[256] = "";

	(void)state;
	assert_int_equal(cu.cuMemAlloc_v2(&dst, DATA_BYTES + 64), CUDA_SUCCESS);
	assert_int_equal(gp_loader_load(&cu, "/nonexistent/m.safetensors", 8, 16, dst, NULL, "m",
					&o, &r, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/m.safetensors"));
	assert_int_equal(gp_loader_load(&cu, file, 8, 16, dst, NULL, "m", &bad, &r, err,
					sizeof err), -EINVAL);
	/* A file shorter than the header claims: a clear error, and no
	 * half-filled cache entry left behind. */
	assert_int_equal(gp_hostcache_new(&cache, 64u << 20, NULL), 0);
	assert_int_equal(gp_loader_load(&cu, file, gp_safetensors_data_offset(st),
					DATA_BYTES + 64, dst, cache, "m", &o, &r, err, sizeof err),
			 -EIO);
	assert_non_null(strstr(err, "the file ends early"));
	assert_false(gp_hostcache_has(cache, "m"));
	assert_int_equal(r.bytes, 0);
	gp_hostcache_free(cache);
	assert_int_equal(cu.cuMemFree_v2(dst), CUDA_SUCCESS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_staging_ring),
		cmocka_unit_test(test_host_cache),
		cmocka_unit_test(test_failures),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
