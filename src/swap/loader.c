/* loader.c - weights from disk or the host cache to the GPU (see loader.h). */
#include "swap/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/errf.h"
#include "swap/hostcache.h"

#define MAX_BUFFERS 16u
#define MAX_STREAMS 16u
#define DEFAULT_CHUNK (16u << 20)

uint64_t gp_loader_hash(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i = 0;

	/* FNV-1a's multiply, a word at a time: one multiply per 8 bytes keeps
	 * it at several GB/s, and any flipped bit changes the result. */
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read exactly n bytes at off, across short reads and signals. */
static int read_full(int fd, void *buf, size_t n, uint64_t off)
{
	char *p = buf;

	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO; /* 0: the file is shorter than its header says */
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* What one load holds: streams, events, staging buffers. */
struct run {
	const struct gp_cuda *cu;
	const struct gp_loader_opts *o;
	CUstream s[MAX_STREAMS];
	CUevent ev[MAX_BUFFERS];
	void *stage[MAX_BUFFERS];
	int busy[MAX_BUFFERS];
	unsigned ns, ne, nb;
};

static void run_free(struct run *r)
{
	for (unsigned i = 0; i < r->ns; i++) {
		r->cu->cuStreamSynchronize(r->s[i]);
		r->cu->cuStreamDestroy_v2(r->s[i]);
	}
	for (unsigned i = 0; i < r->ne; i++)
		r->cu->cuEventDestroy_v2(r->ev[i]);
	for (unsigned i = 0; i < r->nb; i++)
		r->cu->cuMemFreeHost(r->stage[i]);
}

/* Streams always; events and `staging` buffers of o->chunk for the disk
 * path without a cache entry. */
static int run_init(struct run *r, int staging, char *err, size_t errlen)
{
	const struct gp_cuda *cu = r->cu;
	unsigned streams = r->o->streams, buffers = r->o->buffers;
	CUresult c;

	for (; r->ns < streams; r->ns++)
		if ((c = cu->cuStreamCreate(&r->s[r->ns], CU_STREAM_NON_BLOCKING)))
			return gp_errf(err, errlen, -EIO, "cuStreamCreate: %s", gp_cuda_str(cu, c));
	for (; staging && r->nb < buffers; r->nb++, r->ne++) {
		if ((c = cu->cuEventCreate(&r->ev[r->ne], CU_EVENT_DISABLE_TIMING)))
			return gp_errf(err, errlen, -EIO, "cuEventCreate: %s", gp_cuda_str(cu, c));
		if ((c = cu->cuMemHostAlloc(&r->stage[r->nb], r->o->chunk, 0))) {
			r->ne++;
			return gp_errf(err, errlen, -ENOMEM, "pinned staging buffer of %zu bytes: %s",
				       r->o->chunk, gp_cuda_str(cu, c));
		}
	}
	return 0;
}

static int sync_all(struct run *r, char *err, size_t errlen)
{
	for (unsigned i = 0; i < r->ns; i++) {
		CUresult c = r->cu->cuStreamSynchronize(r->s[i]);
		if (c)
			return gp_errf(err, errlen, -EIO, "copy to the GPU failed: %s",
				       gp_cuda_str(r->cu, c));
	}
	return 0;
}

/* Copy n bytes at src to dst on chunk k's stream (and record buffer b's
 * event when b >= 0). */
static int copy(struct run *r, unsigned k, int b, CUdeviceptr dst, const void *src, size_t n,
		char *err, size_t errlen)
{
	CUstream s = r->s[k % r->ns];
	CUresult c = r->cu->cuMemcpyHtoDAsync_v2(dst, src, n, s);

	if (!c && b >= 0)
		c = r->cu->cuEventRecord(r->ev[b], s);
	if (c)
		return gp_errf(err, errlen, -EIO, "cuMemcpyHtoDAsync of %zu bytes: %s", n,
			       gp_cuda_str(r->cu, c));
	return 0;
}

/* From a ready host-cache entry: chunks over the streams, no staging. */
static int from_cache(struct run *r, const char *src, uint64_t bytes, CUdeviceptr dst,
		      struct gp_loader_result *out, char *err, size_t errlen)
{
	uint64_t h = GP_LOADER_HASH_SEED;
	unsigned k = 0;
	int rc;

	for (uint64_t off = 0; off < bytes; off += r->o->chunk, k++) {
		size_t n = (size_t)(bytes - off < r->o->chunk ? bytes - off : r->o->chunk);
		if ((rc = copy(r, k, -1, dst + off, src + off, n, err, errlen)))
			return rc;
		if (r->o->hash)
			h = gp_loader_hash(h, src + off, n);
	}
	out->checksum = r->o->hash ? h : 0;
	return sync_all(r, err, errlen);
}

/* From disk: into the cache entry `fill` when there is one (no buffer is
 * reused, so no waiting), else through the staging ring, waiting for a
 * buffer's previous copy before reading into it again. */
static int from_disk(struct run *r, int fd, const char *path, uint64_t offset, uint64_t bytes,
		     CUdeviceptr dst, char *fill, struct gp_loader_result *out, char *err,
		     size_t errlen)
{
	uint64_t h = GP_LOADER_HASH_SEED;
	unsigned k = 0;
	int rc;

	for (uint64_t off = 0; off < bytes; off += r->o->chunk, k++) {
		size_t n = (size_t)(bytes - off < r->o->chunk ? bytes - off : r->o->chunk);
		int b = fill ? -1 : (int)(k % r->nb);
		char *buf = fill ? fill + off : r->stage[b];
		CUresult c;

		if (b >= 0 && r->busy[b] && (c = r->cu->cuEventSynchronize(r->ev[b])))
			return gp_errf(err, errlen, -EIO, "copy to the GPU failed: %s",
				       gp_cuda_str(r->cu, c));
		if ((rc = read_full(fd, buf, n, offset + off)))
			return gp_errf(err, errlen, rc, "%s: reading %zu bytes at %llu: %s", path, n,
				       (unsigned long long)(offset + off),
				       rc == -EIO ? "the file ends early" : strerror(-rc));
		if (r->o->hash)
			h = gp_loader_hash(h, buf, n);
		if ((rc = copy(r, k, b, dst + off, buf, n, err, errlen)))
			return rc;
		if (b >= 0)
			r->busy[b] = 1;
	}
	out->checksum = r->o->hash ? h : 0;
	return sync_all(r, err, errlen);
}

int gp_loader_load(const struct gp_cuda *cu, const char *path, uint64_t offset, uint64_t bytes,
		   CUdeviceptr dst, struct gp_hostcache *cache, const char *name,
		   const struct gp_loader_opts *o, struct gp_loader_result *out, char *err,
		   size_t errlen)
{
	struct gp_loader_opts opts = o ? *o : (struct gp_loader_opts){0};
	struct run r = {.cu = cu, .o = &opts};
	const void *cached = NULL;
	uint64_t cached_bytes = 0;
	void *fill = NULL;
	double t0 = now_s();
	int fd = -1, rc;

	memset(out, 0, sizeof *out);
	if (!opts.chunk)
		opts.chunk = DEFAULT_CHUNK;
	opts.chunk &= ~(size_t)7; /* the hash is chunk-independent on 8-byte multiples */
	if (!opts.buffers)
		opts.buffers = 4;
	if (!opts.streams)
		opts.streams = 2;
	if (opts.chunk == 0 || opts.buffers < 2 || opts.buffers > MAX_BUFFERS ||
	    opts.streams < 1 || opts.streams > MAX_STREAMS)
		return gp_errf(err, errlen, -EINVAL, "loader: chunk %zu, %u buffers, %u streams: "
			       "want a chunk of 8 bytes or more, 2-16 buffers, 1-16 streams",
			       opts.chunk, opts.buffers, opts.streams);
	if (cache && gp_hostcache_pin(cache, name, &cached, &cached_bytes) == 0) {
		if (cached_bytes != bytes) {
			rc = gp_errf(err, errlen, -ESTALE, "host cache holds %llu bytes of %s, the "
				     "file %llu", (unsigned long long)cached_bytes, name,
				     (unsigned long long)bytes);
			goto out;
		}
		out->from_cache = 1;
		if ((rc = run_init(&r, 0, err, errlen)))
			goto out;
		rc = from_cache(&r, cached, bytes, dst, out, err, errlen);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = gp_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (cache && gp_hostcache_reserve(cache, name, bytes, &fill) != 0)
		fill = NULL; /* no room: stream through the staging ring */
	if ((rc = run_init(&r, !fill, err, errlen)))
		goto out;
	rc = from_disk(&r, fd, path, offset, bytes, dst, fill, out, err, errlen);
out:
	run_free(&r);
	if (fill && (rc ? gp_hostcache_abort(cache, name) : gp_hostcache_ready(cache, name)) == 0)
		out->cached = !rc;
	if (cached && gp_hostcache_unpin(cache, name) != 0)
		rc = rc ? rc : -EIO;
	if (fd >= 0)
		close(fd);
	out->bytes = rc ? 0 : bytes;
	out->seconds = now_s() - t0;
	return rc;
}

static void *pinned_alloc(void *ctx, size_t bytes)
{
	const struct gp_cuda *cu = ctx;
	void *p = NULL;

	return cu->cuMemHostAlloc(&p, bytes, 0) == CUDA_SUCCESS ? p : NULL;
}

static void pinned_free(void *ctx, void *buf, size_t bytes)
{
	const struct gp_cuda *cu = ctx;

	(void)bytes;
	cu->cuMemFreeHost(buf);
}

void gp_loader_pinned(const struct gp_cuda *cu, struct gp_hostcache_alloc *a)
{
	a->alloc = pinned_alloc;
	a->free = pinned_free;
	a->ctx = (void *)cu;
}

int gp_loader_device_hash(const struct gp_cuda *cu, CUdeviceptr src, uint64_t bytes,
			  uint64_t *out)
{
	size_t chunk = DEFAULT_CHUNK;
	uint64_t h = GP_LOADER_HASH_SEED;
	char *buf = malloc(chunk);

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < bytes; off += chunk) {
		size_t n = (size_t)(bytes - off < chunk ? bytes - off : chunk);
		if (cu->cuMemcpyDtoH_v2(buf, src + off, n) != CUDA_SUCCESS) {
			free(buf);
			return -EIO;
		}
		h = gp_loader_hash(h, buf, n);
	}
	free(buf);
	*out = h;
	return 0;
}
