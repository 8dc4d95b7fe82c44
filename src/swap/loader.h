/* loader.h - moving a model's weights into GPU memory as fast as the
 * hardware allows: `gpupool engine`'s data plane.
 *
 * From disk: the file's data region is read in chunks with pread into
 * pinned host buffers and each chunk is copied to the device with
 * cuMemcpyHtoDAsync on one of several streams while the next chunk is read,
 * so reading and copying overlap; a buffer is reused only after its copy's
 * event.  When the host cache has room, the chunks are read straight into
 * the model's (pinned) cache entry, which then serves the next load without
 * the disk.  From the host cache: the entry is copied in chunks over the
 * streams, with no staging.
 *
 * Every load reports a checksum of the bytes it moved (a 64-bit
 * word-at-a-time hash of the data region, the same whichever path), so a
 * caller can check what arrived against the file's.
 */
#ifndef GP_SWAP_LOADER_H
#define GP_SWAP_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "swap/cuda.h"

struct gp_hostcache;

struct gp_loader_opts {
	size_t chunk;        /* bytes per copy; default 16 MiB */
	unsigned buffers;    /* pinned staging buffers for the disk path,
	                        2..16; default 4 */
	unsigned streams;    /* copy streams, 1..16; default 2 */
	int hash;            /* compute the checksum (costs a CPU pass over
	                        the bytes: tests and --verify, not the fast
	                        path) */
};

struct gp_loader_result {
	uint64_t bytes;      /* moved to the device */
	uint64_t checksum;   /* gp_loader_hash of them, when opts.hash */
	double seconds;      /* wall time of the load */
	int from_cache;      /* 1: served by the host cache */
	int cached;          /* 1: left a ready copy in the host cache */
};

/* The hash a load reports, of `n` bytes at `p`, continuing from `h` (start
 * with GP_LOADER_HASH_SEED).  Chunking does not change it as long as each
 * chunk but the last is a multiple of 8 bytes. */
#define GP_LOADER_HASH_SEED 0x9e3779b97f4a7c15ull
uint64_t gp_loader_hash(uint64_t h, const void *p, size_t n);

/* Load `bytes` of file `path` from offset `offset` (a safetensors data
 * region) to device memory at `dst`, through the host cache `cache` under
 * `name` when cache is not NULL: from its ready entry if there is one,
 * else from disk, filling a new entry when there is room.  Runs on the
 * calling thread, which must have cu's context current.  Returns 0 and
 * *out, or -errno with err saying what failed (the file, the driver). */
int gp_loader_load(const struct gp_cuda *cu, const char *path, uint64_t offset, uint64_t bytes,
		   CUdeviceptr dst, struct gp_hostcache *cache, const char *name,
		   const struct gp_loader_opts *o, struct gp_loader_result *out, char *err,
		   size_t errlen) __attribute__((warn_unused_result));

/* Fill `a` with an allocator of pinned host memory from `cu`
 * (cuMemHostAlloc), for the host cache: copies from pinned memory run at
 * full bandwidth and asynchronously. */
struct gp_hostcache_alloc;
void gp_loader_pinned(const struct gp_cuda *cu, struct gp_hostcache_alloc *a);

/* The hash of `bytes` of device memory at `src`, read back in chunks: what
 * a test compares with a load's checksum.  Returns 0 or -EIO/-ENOMEM. */
int gp_loader_device_hash(const struct gp_cuda *cu, CUdeviceptr src, uint64_t bytes,
			  uint64_t *out) __attribute__((warn_unused_result));

#endif
