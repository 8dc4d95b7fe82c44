/* fuzz_region.c - libFuzzer target for the region file reader.
 *
 * A region file is written by other processes of the tenant -- or by
 * anything that can write the tenant's directory -- so every byte of it is
 * input.  Whatever the file holds, gp_region_open must refuse it (-EPROTO)
 * or the region must then be safe to use: no out-of-bounds access, no
 * endless loop, no crash, and the figures must keep their promises.
 *
 * The region header is ~170 KiB, far more than a useful fuzz input, so an
 * input describes a file rather than being one:
 *
 *   byte 0   mode: bits 0-1 the shape of the file,
 *              0  a base image with the patches below applied, then opened
 *              1  the base image opened, then patched in place (another
 *                 process scribbling on a file already accepted, which
 *                 no check at open can stop; all but the lock word,
 *                 whose forgery only costs the lock's 2 ms probe)
 *              2  the rest of the input at the start of a file of the
 *                 region's exact size, zero-filled
 *              3  the rest of the input is the whole file (its own size;
 *                 empty: a fresh region is created)
 *            bit 2: base image 0 fresh (as gp_region_open creates it),
 *                   1 populated (devices registered, dead processes
 *                   holding charges)
 *            bit 3: sweep before attaching (as NVML-only paths do) rather
 *                   than after
 *            bits 4-7: k, the size of the test charge: 1 MiB << 2k
 *   then, for shapes 0 and 1, patches until the input ends:
 *     op    bits 0-1 the area, bits 2-7 repeat-1 (areas 1 and 2 only: the
 *           same bytes also go to that many following entries)
 *           0 header fields: off (1 byte, modulo offsetof(dev))
 *           1 dev[]:  idx (1 byte), off (1 byte, modulo the entry)
 *           2 proc[]: idx (2 bytes LE), off (1 byte, modulo the entry)
 *           3 anywhere: off (3 bytes LE, modulo the header)
 *     len   1 byte, then that many bytes (fewer if the input ends);
 *           writes stop at the end of the entry (area 0: of the header)
 *
 * An independent oracle (`unsafe`) says which files must be refused; an
 * accepted one is used the way the hook, NVML-only tools and the node
 * agent use it, and the results are checked.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/llock.h"
#include "common/shm.h"
#include "region/region.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every run writes and maps a whole region file (~0.3 ms): `make test`
 * replays fewer mutations than for the parsers (tests/fuzz/replay.c). */
extern const unsigned fuzz_replay_mutations;
const unsigned fuzz_replay_mutations = 20000;

#define CHECK(c)                                                             \
	do {                                                                     \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_region: check failed: %s (line %d)\n", #c, \
				__LINE__);                                                   \
			abort();                                                         \
		}                                                                    \
	} while (0)

#define HDR_SIZE sizeof(struct gp_region_hdr)
#define PREFIX offsetof(struct gp_region_hdr, dev)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static const char *const uuids[] = {
	"GPU-00000000-1111-2222-3333-444444444444",
	"GPU-55555555-6666-7777-8888-999999999999",
	"GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
};

static int memfd = -1;
static char path[64];
static struct gp_region_hdr *fresh, *populated, *img;

/* The fresh image is what gp_region_open writes into a new file; the
 * populated one adds what a tenant leaves behind: registered GPUs and
 * processes that died holding memory. */
static void setup(void)
{
	struct gp_region r = GP_REGION_INIT;

	memfd = memfd_create("fuzz_region", MFD_CLOEXEC);
	CHECK(memfd >= 0);
	snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
	fresh = malloc(HDR_SIZE);
	populated = malloc(HDR_SIZE);
	img = malloc(HDR_SIZE);
	CHECK(fresh && populated && img);
	CHECK(gp_region_open(&r, NULL) == 0);
	memcpy(fresh, r.hdr, HDR_SIZE);
	gp_shm_close(&r.shm);

	memcpy(populated, fresh, HDR_SIZE);
	populated->ndevs = 3;
	for (unsigned d = 0; d < 3; d++) {
		strcpy(populated->dev[d].uuid, uuids[d]);
		populated->dev[d].physical = 80 * GiB;
	}
	populated->dev[0].limit = 4 * GiB;
	populated->dev[2].limit = 40 * GiB;
	for (unsigned p = 0; p < 4; p++) {
		struct gp_region_proc *q = &populated->proc[p * 3];
		q->state = GP_PROC_ACTIVE;
		q->pid = (int32_t)(100 + p);
		q->gen = p + 1;
		q->used[0] = (p + 1) * 256 * MiB;
		q->used[1] = p * GiB;
		populated->dev[0].used += q->used[0];
		populated->dev[1].used += q->used[1];
	}
	populated->dev[0].used += MiB; /* a charge whose owner died mid-way */
	populated->dev[0].peak = populated->dev[0].used;
	populated->dev[1].peak = populated->dev[1].used;
}

static void patch(uint8_t *base, size_t limit, size_t off, const uint8_t *src, size_t len)
{
	if (off >= limit)
		return;
	if (len > limit - off)
		len = limit - off;
	memcpy(base + off, src, len);
}

/* Apply the patch records in data[0..size) to h. */
static void apply(struct gp_region_hdr *h, const uint8_t *data, size_t size)
{
	uint8_t *b = (uint8_t *)h;
	size_t i = 0;

	while (i < size) {
		unsigned op = data[i++], area = op & 3, rep = 1 + (op >> 2);
		size_t start, stride = 0, end, len, n = 0;
		unsigned idx;

		switch (area) {
		case 0:
			if (i + 1 > size)
				return;
			start = data[i] % PREFIX;
			end = PREFIX;
			i += 1;
			rep = 1;
			break;
		case 1:
			if (i + 2 > size)
				return;
			idx = data[i] % GP_REGION_MAX_DEVS;
			start = offsetof(struct gp_region_hdr, dev[idx]) +
				data[i + 1] % sizeof(struct gp_region_dev);
			end = offsetof(struct gp_region_hdr, dev[idx + 1]);
			stride = sizeof(struct gp_region_dev);
			n = GP_REGION_MAX_DEVS - idx;
			i += 2;
			break;
		case 2:
			if (i + 3 > size)
				return;
			idx = (unsigned)(data[i] | data[i + 1] << 8) % GP_REGION_MAX_PROCS;
			start = offsetof(struct gp_region_hdr, proc[idx]) +
				data[i + 2] % sizeof(struct gp_region_proc);
			end = offsetof(struct gp_region_hdr, proc[idx + 1]);
			stride = sizeof(struct gp_region_proc);
			n = GP_REGION_MAX_PROCS - idx;
			i += 3;
			break;
		default:
			if (i + 3 > size)
				return;
			start = (size_t)(data[i] | data[i + 1] << 8 | data[i + 2] << 16) % HDR_SIZE;
			end = HDR_SIZE;
			i += 3;
			rep = 1;
		}
		if (i >= size)
			return;
		len = data[i++];
		if (len > size - i)
			len = size - i;
		if (n && rep > n)
			rep = (unsigned)n;
		for (unsigned k = 0; k < rep; k++)
			patch(b, end + k * stride, start + k * stride, data + i, len);
		i += len;
	}
}

/* The oracle: must a file holding h be refused?  Written from the ABI's
 * rules (gpupool/region.h), independently of region_check(). */
static int unsafe(const struct gp_region_hdr *h)
{
	uint32_t w = h->lock.word & ~GP_LLOCK_WAITERS;

	if (h->magic != GP_REGION_MAGIC || h->version != GP_REGION_VERSION ||
	    h->size != HDR_SIZE || h->max_devs != GP_REGION_MAX_DEVS ||
	    h->max_procs != GP_REGION_MAX_PROCS || h->ndevs > GP_REGION_MAX_DEVS)
		return 1;
	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++)
		if (h->dev[d].uuid[GP_REGION_UUID_LEN - 1] != '\0')
			return 1; /* names are written with at most LEN-1 bytes */
	for (unsigned p = 0; p < GP_REGION_MAX_PROCS; p++)
		if (h->proc[p].state != GP_PROC_FREE && h->proc[p].state != GP_PROC_ACTIVE)
			return 1;
	/* A lock word naming the identity the slot's next owner will get:
	 * that owner would wait on itself forever. */
	if (w && GP_LLOCK_SLOT(w) < GP_REGION_MAX_PROCS &&
	    GP_LLOCK_GEN(w) == ((h->proc[GP_LLOCK_SLOT(w)].gen + 1) & 0xfffffu))
		return 1;
	return 0;
}

/* What the lock-free readers answer; true whatever the file holds (no
 * writes happen between these reads and the header they are checked
 * against: this process is the only one using the file). */
static void readers(struct gp_region *r)
{
	const struct gp_region_hdr *h = r->hdr;
	char names[GP_REGION_MAX_DEVS + 4][GP_REGION_UUID_LEN + 1];
	size_t nnames = 0;
	int pids[12];
	size_t npids = 0;
	uint64_t limit, used;

	/* every entry's name as a reader would copy it, and some others */
	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++) {
		memcpy(names[nnames], h->dev[d].uuid, GP_REGION_UUID_LEN);
		names[nnames++][GP_REGION_UUID_LEN] = '\0';
	}
	strcpy(names[nnames++], "");
	strcpy(names[nnames++], uuids[0]);
	strcpy(names[nnames++], "GPU-none");
	memset(names[nnames], 'G', GP_REGION_UUID_LEN);
	names[nnames++][GP_REGION_UUID_LEN] = '\0';
	for (size_t i = 0; i < nnames; i++) {
		int d = gp_region_find(r, names[i]);
		uint32_t n = h->ndevs;
		CHECK(d >= -1 && d < (int)GP_REGION_MAX_DEVS);
		if (d >= 0) {
			CHECK((uint32_t)d < n);
			CHECK(strncmp(h->dev[d].uuid, names[i], GP_REGION_UUID_LEN) == 0);
			for (int e = 0; e < d; e++) /* the first match */
				CHECK(strncmp(h->dev[e].uuid, names[i], GP_REGION_UUID_LEN) != 0);
		} else {
			for (uint32_t e = 0; e < n && e < GP_REGION_MAX_DEVS; e++)
				CHECK(strncmp(h->dev[e].uuid, names[i], GP_REGION_UUID_LEN) != 0);
		}
	}
	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++) {
		gp_region_usage(r, d, &limit, &used);
		CHECK(limit == h->dev[d].limit && used == h->dev[d].used);
	}

	pids[npids++] = 0;
	pids[npids++] = -1;
	pids[npids++] = (int)getpid();
	for (unsigned p = 0; p < GP_REGION_MAX_PROCS && npids < 12; p++)
		if (h->proc[p].state != GP_PROC_FREE)
			pids[npids++] = h->proc[p].pid;
	for (size_t i = 0; i < npids; i++) {
		int first = -1;
		for (unsigned p = 0; p < GP_REGION_MAX_PROCS && first < 0; p++)
			if (h->proc[p].state == GP_PROC_ACTIVE && h->proc[p].pid == pids[i])
				first = (int)p;
		for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d += GP_REGION_MAX_DEVS - 1) {
			int got;
			used = 0xdeadbeef;
			got = gp_region_proc_used(r, pids[i], d, &used);
			CHECK(got == 0 || got == 1);
			if (got)
				CHECK(first >= 0 && used == h->proc[first].used[d]);
			else
				CHECK(first < 0 && used == 0xdeadbeef);
		}
	}
}

static uint64_t dev_used(struct gp_region *r, unsigned d)
{
	uint64_t limit, used;

	gp_region_usage(r, d, &limit, &used);
	return used;
}

static uint64_t my_used(struct gp_region *r, unsigned d)
{
	uint64_t used = 0;

	CHECK(gp_region_proc_used(r, (int)getpid(), d, &used) == 1);
	return used;
}

static void sweep_all(struct gp_region *r)
{
	const struct gp_region_hdr *h = r->hdr;
	int n = gp_region_sweep(r, 0);

	CHECK(n >= 0 && n <= (int)GP_REGION_MAX_PROCS);
	/* Nobody else is alive: every slot but ours is free now. */
	for (unsigned p = 0; p < GP_REGION_MAX_PROCS; p++)
		if ((int)p != r->slot)
			CHECK(h->proc[p].state == GP_PROC_FREE);
}

/* The hook's writing paths, on a region nobody else uses. */
static void writers(struct gp_region *r, int sweep_first, unsigned k)
{
	const struct gp_region_hdr *h = r->hdr;
	uint64_t bytes = MiB << (2 * k), limit, before, mine, after;
	int d, rc;

	if (sweep_first)
		sweep_all(r);
	CHECK(gp_region_attach(r) == 0);
	CHECK(r->slot >= 0 && r->slot < (int)GP_REGION_MAX_PROCS);
	CHECK(h->proc[r->slot].state == GP_PROC_ACTIVE);
	CHECK(h->proc[r->slot].pid == (int32_t)getpid());
	for (unsigned i = 0; i < GP_REGION_MAX_DEVS; i++)
		CHECK(h->proc[r->slot].used[i] == 0); /* a new owner holds nothing */
	if (!sweep_first)
		sweep_all(r);
	CHECK(h->proc[r->slot].state == GP_PROC_ACTIVE); /* never our own */

	/* registration: an existing entry, a new one */
	for (unsigned i = 0; i < 2; i++) {
		const char *u = i ? "GPU-fuzz-new" : uuids[0];
		uint32_t n0 = h->ndevs;
		int had = gp_region_find(r, u);
		uint64_t t0 = gp_now_ns();
		d = gp_region_device(r, u, 4 * GiB, 80 * GiB);
		if (d >= 0) {
			CHECK(d < (int)GP_REGION_MAX_DEVS && gp_region_find(r, u) == d);
			CHECK(h->dev[d].limit == 4 * GiB);
			CHECK(had == d || (had < 0 && (uint32_t)d == n0 && h->ndevs == n0 + 1));
			if (had < 0) /* a new entry is stamped with its registration */
				CHECK(h->dev[d].registered_ns >= t0 &&
				      h->dev[d].registered_ns <= gp_now_ns());
		} else if (d == -EEXIST) {
			CHECK(had >= 0 && h->dev[had].limit != 4 * GiB);
		} else {
			CHECK(d == -ENOSPC && had < 0 && n0 >= GP_REGION_MAX_DEVS);
		}
	}

	/* a charge within the budget, given back */
	gp_region_usage(r, 0, &limit, &before);
	mine = my_used(r, 0);
	rc = gp_region_charge(r, 0, bytes, 0);
	CHECK(rc == 0 || rc == -ENOMEM);
	after = dev_used(r, 0);
	if (rc == 0) {
		CHECK(after == before + bytes && after >= bytes); /* counted, no wrap */
		CHECK(!limit || after <= limit);                  /* never over-admits */
		CHECK(my_used(r, 0) == mine + bytes);
		gp_region_uncharge(r, 0, bytes);
		CHECK(dev_used(r, 0) == before && my_used(r, 0) == mine);
	} else {
		CHECK((limit && (bytes > limit || before > limit - bytes)) ||
		      before + bytes < before); /* over budget, or would wrap */
		CHECK(after == before && my_used(r, 0) == mine);
	}

	/* a forced charge: counted past the limit, but never wrapped */
	before = dev_used(r, 0);
	rc = gp_region_charge(r, 0, bytes, 1);
	CHECK(rc == 0 || rc == -ENOMEM);
	after = dev_used(r, 0);
	if (rc == 0)
		CHECK(after == before + bytes && after >= bytes && my_used(r, 0) == mine + bytes);
	else
		CHECK(before + bytes < before && after == before); /* would wrap */

	/* giving back more than we hold: clamped to what we hold */
	mine = my_used(r, 0);
	before = dev_used(r, 0);
	gp_region_uncharge(r, 0, UINT64_MAX);
	CHECK(my_used(r, 0) == 0);
	CHECK(dev_used(r, 0) == (before > mine ? before - mine : 0));

	/* an out-of-range device is refused, not written */
	CHECK(gp_region_charge(r, GP_REGION_MAX_DEVS, 1, 1) == -EINVAL);
	gp_region_uncharge(r, GP_REGION_MAX_DEVS, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_region r = GP_REGION_INIT;
	unsigned mode, shape, k;
	size_t len = HDR_SIZE;
	int rc, must_refuse;

	if (memfd < 0)
		setup();
	if (size == 0)
		return 0;
	mode = data[0];
	shape = mode & 3;
	k = mode >> 4;
	data++, size--;

	memcpy(img, mode & 4 ? populated : fresh, HDR_SIZE);
	if (shape == 0) {
		apply(img, data, size);
	} else if (shape == 2) {
		memset(img, 0, HDR_SIZE);
		memcpy(img, data, size < HDR_SIZE ? size : HDR_SIZE);
	} else if (shape == 3) {
		len = size;
		if (len == HDR_SIZE)
			memcpy(img, data, len);
	}
	/* Overwrite, then cut to size: cheaper than emptying the file first. */
	if (len)
		CHECK(pwrite(memfd, shape == 3 ? (const void *)data : (const void *)img, len, 0) ==
		      (ssize_t)len);
	CHECK(ftruncate(memfd, (off_t)len) == 0);

	rc = gp_region_open(&r, path);
	if (shape == 3 && len != HDR_SIZE)
		must_refuse = len != 0; /* empty: created afresh */
	else
		must_refuse = unsafe(img);
	if (must_refuse) {
		CHECK(rc == -EPROTO);
		return 0;
	}
	CHECK(rc == 0);
	CHECK(r.hdr && r.hdr->magic == GP_REGION_MAGIC);

	if (shape == 1) {
		/* Accepted, then scribbled on.  All but the lock word: a forged
		 * word is taken over as a dead holder's, but only after the
		 * lock's 2 ms probe, which would make every such run slow
		 * (test_region covers a dead holder). */
		uint32_t word = r.hdr->lock.word;
		apply(r.hdr, data, size);
		r.hdr->lock.word = word;
	}
	readers(&r);
	writers(&r, mode & 8, k);
	readers(&r);
	gp_shm_close(&r.shm);
	return 0;
}
