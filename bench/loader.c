/* loader.c - the loader benchmark: how fast gpupool engine's loader
 * (src/swap/loader.h) moves a model's weights to the GPU, as a ratio of
 * what the driver itself does with the plainest copy, cuMemcpyHtoD from
 * pinned memory of the same size.
 *
 * Three paths, each the median of --runs:
 *   disk      a safetensors file (page-cached: it was just written) through
 *             the pinned staging ring;
 *   disk+fill the same, read straight into a new host-cache entry;
 *   cache     from that host-cache entry.
 * On the simulator (the default: $GP_BUILD/sim/libcuda.so.1) the copies
 * are memcpy, so the ratio measures the loader's own overhead; with
 * --lib libcuda.so.1 on a real GPU it measures what scripts/gpu-validate
 * records (target: at least 80 % of cuMemcpyHtoD).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "swap/hostcache.h"
#include "swap/loader.h"
#include "swap/safetensors.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "loader: %s: %s\n", what, why);
	exit(1);
}

/* A safetensors file of one U8 tensor of `bytes`. */
static void make_file(const char *path, uint64_t bytes)
{
	char header[160];
	unsigned char prefix[8];
	size_t hl, chunk = 1 << 20;
	char *buf = malloc(chunk);
	FILE *f = fopen(path, "w");

	if (!f || !buf)
		die(path, strerror(errno));
	snprintf(header, sizeof header,
		 "{\"w\":{\"dtype\":\"U8\",\"shape\":[%llu],\"data_offsets\":[0,%llu]}}",
		 (unsigned long long)bytes, (unsigned long long)bytes);
	hl = strlen(header);
	for (int i = 0; i < 8; i++)
		prefix[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	for (size_t i = 0; i < chunk; i++)
		buf[i] = (char)(i * 131u >> 3);
	fwrite(prefix, 1, 8, f);
	fwrite(header, 1, hl, f);
	for (uint64_t done = 0; done < bytes; done += chunk)
		fwrite(buf, 1, bytes - done < chunk ? (size_t)(bytes - done) : chunk, f);
	if (fclose(f) != 0)
		die(path, "write error");
	free(buf);
}

static const char usage[] =
	"usage: loader [--mib N] [--runs N] [--chunk-mib N] [--streams N] [--lib PATH]\n"
	"              [--json FILE]\n"
	"Time gpupool engine's loader against cuMemcpyHtoD from pinned memory of the\n"
	"same size.  --lib: the driver (default $GP_BUILD/sim/libcuda.so.1, the\n"
	"simulator; libcuda.so.1 for a real GPU).  Defaults: 256 MiB, 5 runs, 16 MiB\n"
	"chunks, 2 streams.\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"mib", required_argument, NULL, 'm'},   {"runs", required_argument, NULL, 'r'},
		{"chunk-mib", required_argument, NULL, 'c'}, {"streams", required_argument, NULL, 's'},
		{"lib", required_argument, NULL, 'l'},   {"json", required_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
	};
	const char *b = getenv("GP_BUILD") ? getenv("GP_BUILD") : "build", *json = NULL;
	char lib[4096], path[] = "/tmp/gp-loader-bench-XXXXXX", err[512];
	long mib = 256, runs = 5, chunk_mib = 16, streams = 2;
	struct gp_cuda cu;
	struct gp_safetensors *st;
	struct gp_hostcache *cache;
	struct gp_hostcache_alloc pinned;
	struct gp_loader_result res;
	double t_copy[64], t_disk[64], t_fill[64], t_cache[64];
	CUdeviceptr dst;
	void *host;
	uint64_t bytes;
	int c, fd;

	snprintf(lib, sizeof lib, "%s/sim/libcuda.so.1", b);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		long *v = c == 'm' ? &mib : c == 'r' ? &runs : c == 'c' ? &chunk_mib
			: c == 's' ? &streams : NULL;
		if (v) {
			char *end;
			*v = strtol(optarg, &end, 10);
			if (*end || *v < 1 || *v > (c == 'm' ? 65536 : c == 'r' ? 64 : 1024)) {
				fprintf(stderr, "loader: --%s %s: out of range\n",
					opts[c == 'm' ? 0 : c == 'r' ? 1 : c == 'c' ? 2 : 3].name, optarg);
				return 2;
			}
		} else if (c == 'l') {
			snprintf(lib, sizeof lib, "%s", optarg);
		} else if (c == 'j') {
			json = optarg;
		} else {
			fputs(usage, c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (streams > 16)
		streams = 16;
	bytes = (uint64_t)mib << 20;
	if (gp_cuda_open(&cu, lib, 0, err, sizeof err))
		die(lib, err);
	fd = mkstemp(path);
	if (fd < 0)
		die(path, strerror(errno));
	close(fd);
	make_file(path, bytes);
	if (gp_safetensors_open(path, &st, err, sizeof err))
		die(path, err);
	if (cu.cuMemAlloc_v2(&dst, bytes) || cu.cuMemHostAlloc(&host, bytes, 0))
		die("GPU", "cannot allocate the model's size on the device and pinned on the host");
	memset(host, 1, bytes);
	gp_loader_pinned(&cu, &pinned);

	struct gp_loader_opts o = {.chunk = (size_t)chunk_mib << 20, .streams = (unsigned)streams};
	for (long i = 0; i < runs; i++) {
		double t0 = now_s();
		if (cu.cuMemcpyHtoD_v2(dst, host, bytes))
			die("cuMemcpyHtoD", "failed");
		t_copy[i] = now_s() - t0;
		if (gp_loader_load(&cu, path, gp_safetensors_data_offset(st), bytes, dst, NULL, "w",
				   &o, &res, err, sizeof err))
			die("load", err);
		t_disk[i] = res.seconds;
		if (gp_hostcache_new(&cache, bytes, &pinned))
			die("host cache", "out of memory");
		if (gp_loader_load(&cu, path, gp_safetensors_data_offset(st), bytes, dst, cache, "w",
				   &o, &res, err, sizeof err) || !res.cached)
			die("load into the cache", res.cached ? err : "no room");
		t_fill[i] = res.seconds;
		if (gp_loader_load(&cu, path, gp_safetensors_data_offset(st), bytes, dst, cache, "w",
				   &o, &res, err, sizeof err) || !res.from_cache)
			die("load from the cache", err);
		t_cache[i] = res.seconds;
		gp_hostcache_free(cache);
	}
	double copy = median(t_copy, (int)runs), disk = median(t_disk, (int)runs);
	double fill = median(t_fill, (int)runs), fromc = median(t_cache, (int)runs);
	double gbs = (double)bytes / 1e9;

	printf("loader: %ld MiB, %ld MiB chunks, %ld streams, %s; median of %ld runs\n", mib,
	       chunk_mib, streams, lib, runs);
	printf("  %-28s %8.2f GB/s\n", "cuMemcpyHtoD (pinned)", gbs / copy);
	printf("  %-28s %8.2f GB/s  %5.1f %%\n", "loader: disk, staging", gbs / disk,
	       100 * copy / disk);
	printf("  %-28s %8.2f GB/s  %5.1f %%\n", "loader: disk into the cache", gbs / fill,
	       100 * copy / fill);
	printf("  %-28s %8.2f GB/s  %5.1f %%\n", "loader: from the host cache", gbs / fromc,
	       100 * copy / fromc);
	if (json) {
		json_t *doc = json_pack(
			"{s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
			"benchmark", "loader", "driver", lib, "bytes", (json_int_t)bytes, "chunk_bytes",
			(json_int_t)o.chunk, "streams", (json_int_t)streams, "runs", (json_int_t)runs,
			"memcpy_htod_gbps", gbs / copy, "disk_gbps", gbs / disk, "disk_fill_gbps",
			gbs / fill, "cache_gbps", gbs / fromc, "disk_ratio", copy / disk,
			"disk_fill_ratio", copy / fill, "cache_ratio", copy / fromc);
		if (json_dump_file(doc, json, JSON_INDENT(2) | JSON_REAL_PRECISION(4)) != 0)
			die(json, "cannot write");
		json_decref(doc);
	}
	cu.cuMemFreeHost(host);
	cu.cuMemFree_v2(dst);
	gp_safetensors_free(st);
	unlink(path);
	gp_cuda_close(&cu);
	return 0;
}
