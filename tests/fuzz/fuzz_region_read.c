/* fuzz_region_read.c - libFuzzer target for the observers' region reader.
 *
 * The node agent reads every tenant's region file with gp_region_read
 * (src/region/read.h): files that anything able to write the tenant's
 * directory may have written, of any length, with any locks held on them.
 * Whatever the file and its locks, the reader must answer 0, -ENODATA or
 * -EPROTO exactly as the ABI's rules say, never read past its copy, and an
 * accepted copy must be the file, with exactly the live processes and their
 * sums.
 *
 * As in fuzz_region.c, an input describes a file rather than being one (the
 * region is ~170 KiB):
 *
 *   byte 0   bits 0-1 the shape of the file,
 *              0  a base image with the patches below applied
 *              1  the rest of the input at the start of a file of the
 *                 region's exact size, zero-filled
 *              2  the rest of the input is the whole file
 *              3  as 0, then the file cut or extended to a length (3
 *                 bytes LE, modulo the region's size + 64) read first
 *            bit 2: base image 0 fresh (as gp_region_open creates it),
 *                   1 populated (devices, live-looking processes, figures
 *                   near UINT64_MAX whose sums must saturate)
 *            bits 3-7: n, the number of lock records that follow
 *   n lock records of 3 bytes: where (2 bytes LE: the lock starts that
 *            many bytes, modulo 1100, past GP_LEASE_BASE - 8, so some
 *            start below the lease range and some past it) and how many
 *            bytes (0: to the end of the file); each is taken with
 *            F_OFD_SETLK through one of 4 descriptions of the file (the
 *            record's index modulo 4); conflicting ones fail, as they
 *            would for processes
 *   for shape 3: the 3 length bytes
 *   for shapes 0 and 3: patches until the input ends, each an offset
 *            (3 bytes LE, modulo the region's size), a length (1 byte)
 *            and that many bytes (fewer if the input ends)
 *
 * The oracle reads the same file its own way: the rules of
 * gpupool/region.h for the verdict, and one gp_lease_held probe per slot
 * for liveness.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/lease.h"
#include "region/read.h"
#include "region/region.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every run writes and reads a whole region file: fewer replayed
 * mutations than for the parsers (tests/fuzz/replay.c). */
extern const unsigned fuzz_replay_mutations;
const unsigned fuzz_replay_mutations = 5000;

#define CHECK(c)                                                             \
	do {                                                                     \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_region_read: check failed: %s (line %d)\n", \
				#c, __LINE__);                                               \
			abort();                                                         \
		}                                                                    \
	} while (0)

#define HDR_SIZE sizeof(struct gp_region_hdr)
#define NDESC 4
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static int memfd = -1, rfd = -1, desc[NDESC];
static uint8_t held[GP_REGION_MAX_PROCS]; /* this input's leases, probed */
static struct gp_region_hdr *fresh, *populated, *img;
static struct gp_region_copy *copy;

/* Another open file description of the memfd, with `flags`. */
static int reopen(int flags)
{
	char path[64];
	int fd;

	snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
	fd = open(path, flags | O_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

static void setup(void)
{
	struct gp_region r = GP_REGION_INIT;

	memfd = memfd_create("fuzz_region_read", MFD_CLOEXEC);
	CHECK(memfd >= 0);
	rfd = reopen(O_RDONLY); /* the reader's: it holds nothing */
	for (int k = 0; k < NDESC; k++)
		desc[k] = reopen(O_RDWR);
	fresh = malloc(HDR_SIZE);
	populated = malloc(HDR_SIZE);
	img = malloc(HDR_SIZE);
	copy = malloc(sizeof *copy);
	CHECK(fresh && populated && img && copy);
	CHECK(gp_region_open(&r, NULL) == 0);
	memcpy(fresh, r.hdr, HDR_SIZE);
	gp_shm_close(&r.shm);

	memcpy(populated, fresh, HDR_SIZE);
	populated->ndevs = 3;
	for (unsigned d = 0; d < 3; d++) {
		snprintf(populated->dev[d].uuid, GP_REGION_UUID_LEN,
			 "GPU-%08x-1111-2222-3333-444444444444", d);
		populated->dev[d].physical = 80 * GiB;
		populated->dev[d].registered_ns = 1000 + d;
		populated->dev[d].last_launch_ns = 2000 + d;
		populated->dev[d].last_copy_ns = 3000 + d;
	}
	/* Every other slot of the first 64 active, a few of them holding
	 * nearly everything: their sums must saturate, not wrap. */
	for (unsigned p = 0; p < 64; p += 2) {
		struct gp_region_proc *q = &populated->proc[p];
		q->state = GP_PROC_ACTIVE;
		q->pid = (int32_t)(100 + p);
		q->gen = 1;
		q->used[0] = (p + 1) * 256 * MiB;
		q->used[1] = p % 8 == 0 ? UINT64_MAX / 3 : p * GiB;
		q->used[GP_REGION_MAX_DEVS - 1] = p;
		populated->dev[0].used += q->used[0];
	}
	populated->proc[1000].state = GP_PROC_ACTIVE;
	populated->proc[1000].used[2] = UINT64_MAX;
}

/* Apply patch records (offset, length, bytes) in data[0..size) to img. */
static void apply(const uint8_t *data, size_t size)
{
	uint8_t *b = (uint8_t *)img;
	size_t i = 0;

	while (i + 4 <= size) {
		size_t off = (size_t)(data[i] | data[i + 1] << 8 | data[i + 2] << 16) % HDR_SIZE;
		size_t len = data[i + 3];
		i += 4;
		if (len > size - i)
			len = size - i;
		if (len > HDR_SIZE - off)
			len = HDR_SIZE - off;
		memcpy(b + off, data + i, len);
		i += len;
	}
}

/* What gp_region_read must answer for a file of `len` bytes whose first
 * bytes are img: the rules of gpupool/region.h, written out again. */
static int expected(size_t len)
{
	if (len < HDR_SIZE)
		return -ENODATA;
	if (len > HDR_SIZE)
		return -EPROTO;
	if (img->magic == 0)
		return -ENODATA;
	if (img->magic != GP_REGION_MAGIC || img->version != GP_REGION_VERSION ||
	    img->size != HDR_SIZE || img->max_devs != GP_REGION_MAX_DEVS ||
	    img->max_procs != GP_REGION_MAX_PROCS || img->ndevs > GP_REGION_MAX_DEVS)
		return -EPROTO;
	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++)
		if (img->dev[d].uuid[GP_REGION_UUID_LEN - 1] != '\0')
			return -EPROTO;
	/* Only the slots whose lease is held are read and checked. */
	for (unsigned p = 0; p < GP_REGION_MAX_PROCS; p++)
		if (held[p] && img->proc[p].state != GP_PROC_FREE &&
		    img->proc[p].state != GP_PROC_ACTIVE)
			return -EPROTO;
	return 0;
}

/* An accepted copy: the file's bytes, and the living as one probe per slot
 * finds them, with their sums. */
static void check_copy(void)
{
	uint64_t sums[GP_REGION_MAX_DEVS] = {0};
	unsigned nlive = 0;

	CHECK(memcmp(&copy->hdr, img, offsetof(struct gp_region_hdr, proc)) == 0);
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		int live;
		if (held[i])
			CHECK(memcmp(&copy->hdr.proc[i], &img->proc[i], sizeof img->proc[i]) == 0);
		live = held[i] && img->proc[i].state == GP_PROC_ACTIVE;
		CHECK(gp_region_copy_live(copy, i) == live);
		if (!live)
			continue;
		nlive++;
		for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++)
			if (__builtin_add_overflow(sums[d], img->proc[i].used[d], &sums[d]))
				sums[d] = UINT64_MAX;
	}
	CHECK(copy->nlive == nlive);
	CHECK(memcmp(copy->live_used, sums, sizeof sums) == 0);
	CHECK(!gp_region_copy_live(copy, GP_REGION_MAX_PROCS)); /* out of range */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned mode, shape, nlocks;
	size_t len = HDR_SIZE;
	struct flock fl;
	int rc, want;

	if (memfd < 0)
		setup();
	if (size == 0)
		return 0;
	mode = data[0];
	shape = mode & 3;
	nlocks = mode >> 3;
	data++, size--;

	/* Last run's locks go first: an unlock of everything per description. */
	for (int k = 0; k < NDESC; k++) {
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_UNLCK;
		fl.l_whence = SEEK_SET;
		CHECK(fcntl(desc[k], F_OFD_SETLK, &fl) == 0);
	}
	for (unsigned k = 0; k < nlocks && size >= 3; k++, data += 3, size -= 3) {
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		fl.l_start = GP_LEASE_BASE - 8 + (off_t)((data[0] | data[1] << 8) % 1100);
		fl.l_len = data[2];
		(void)fcntl(desc[k % NDESC], F_OFD_SETLK, &fl); /* conflicts fail */
	}

	memcpy(img, mode & 4 ? populated : fresh, HDR_SIZE);
	if (shape == 3) {
		if (size < 3)
			return 0;
		len = (size_t)(data[0] | data[1] << 8 | data[2] << 16) % (HDR_SIZE + 64);
		data += 3, size -= 3;
	}
	if (shape == 0 || shape == 3) {
		apply(data, size);
	} else if (shape == 1) {
		memset(img, 0, HDR_SIZE);
		memcpy(img, data, size < HDR_SIZE ? size : HDR_SIZE);
	} else {
		len = size;
		memset(img, 0, HDR_SIZE);
		memcpy(img, data, size < HDR_SIZE ? size : HDR_SIZE);
	}
	/* The file: img, cut to len or extended with zeros (or, for shape 2,
	 * the input itself). */
	CHECK(ftruncate(memfd, 0) == 0);
	if (shape == 2) {
		if (len)
			CHECK(pwrite(memfd, data, len, 0) == (ssize_t)len);
	} else {
		size_t n = len < HDR_SIZE ? len : HDR_SIZE;
		if (n)
			CHECK(pwrite(memfd, img, n, 0) == (ssize_t)n);
		CHECK(ftruncate(memfd, (off_t)len) == 0);
	}
	if (len < HDR_SIZE) /* what the file holds past its end reads as zeros */
		memset((uint8_t *)img + len, 0, HDR_SIZE - len);

	/* Which slots are held, one probe per slot: the slow, obvious way. */
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		int h = gp_lease_held(rfd, i);
		CHECK(h == 0 || h == 1);
		held[i] = (uint8_t)h;
	}
	want = expected(len);
	memset(copy, 0xa5, sizeof *copy);
	rc = gp_region_read(rfd, copy);
	if (rc != want)
		fprintf(stderr, "fuzz_region_read: read %d, expected %d (length %zu)\n", rc, want,
			len);
	CHECK(rc == want);
	if (rc == 0)
		check_copy();
	return 0;
}
