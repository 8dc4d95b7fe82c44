/* read.c - see read.h. */
#include "region/read.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/lease.h"

/* Everything before the process slots: header and device entries. */
#define PREFIX offsetof(struct gp_region_hdr, proc)

/* pread [off, off + len) of the file into buf, resuming after signals and
 * short reads.  Returns the bytes read (fewer than len at the end of the
 * file) or a negative errno. */
static ssize_t read_all(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Is the copy's header a region of this version that is safe to
 * interpret?  The rules are region.c's region_check() (what holds at every
 * instant of a well-behaved file's life) less the lock word, which a
 * reader never takes, and less the slots (checked as they are read).
 * 0, -ENODATA (not initialised yet) or -EPROTO. */
static int check(const struct gp_region_hdr *h)
{
	if (h->magic == 0)
		return -ENODATA; /* created, the magic not written yet */
	if (h->magic != GP_REGION_MAGIC || h->version != GP_REGION_VERSION ||
	    h->size != sizeof *h || h->max_devs != GP_REGION_MAX_DEVS ||
	    h->max_procs != GP_REGION_MAX_PROCS || h->ndevs > GP_REGION_MAX_DEVS)
		return -EPROTO;
	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++)
		if (h->dev[d].uuid[GP_REGION_UUID_LEN - 1] != '\0')
			return -EPROTO;
	return 0;
}

/* Read slots [lo, hi) into the copy.  0, -ENODATA (cut short meanwhile),
 * -EPROTO (a state no region has) or a negative errno. */
static int read_slots(int fd, struct gp_region_copy *c, unsigned lo, unsigned hi)
{
	size_t len = (hi - lo) * sizeof c->hdr.proc[0];
	ssize_t got = read_all(fd, &c->hdr.proc[lo], len,
			       (off_t)(PREFIX + lo * sizeof c->hdr.proc[0]));

	if (got < 0)
		return (int)got;
	if ((size_t)got < len)
		return -ENODATA;
	for (unsigned i = lo; i < hi; i++)
		if (c->hdr.proc[i].state != GP_PROC_FREE && c->hdr.proc[i].state != GP_PROC_ACTIVE)
			return -EPROTO;
	return 0;
}

/* Set bit i of `held` for every slot i whose lease some open file
 * description holds, probing with F_OFD_GETLK, which takes nothing and
 * needs only read access.  One call over a range of slots either says it
 * is all free or reports one lock in it -- any one, not the first: the
 * kernel keeps other owners' locks in the order they were taken -- so the
 * range is split around that lock and both sides probed again.  That is
 * one call per lock held plus at most one per gap between them: 1 for a
 * region nobody uses, 2n + 1 at most for n live processes.  Returns 0 or a
 * negative errno. */
static int probe(int fd, uint64_t held[GP_REGION_MAX_PROCS / 64])
{
	/* Ranges still to probe: disjoint and non-empty, so never more than
	 * there are slots. */
	struct { uint16_t lo, hi; } todo[GP_REGION_MAX_PROCS];
	unsigned n = 0;

	todo[n].lo = 0;
	todo[n++].hi = GP_REGION_MAX_PROCS;
	while (n) {
		unsigned lo, hi;
		off_t from, to, s, e;
		struct flock fl;

		n--;
		lo = todo[n].lo;
		hi = todo[n].hi;
		from = GP_LEASE_BASE + (off_t)lo;
		to = GP_LEASE_BASE + (off_t)hi;
		memset(&fl, 0, sizeof fl); /* OFD locks require l_pid == 0 */
		fl.l_type = F_WRLCK;       /* conflicts with any lock there */
		fl.l_whence = SEEK_SET;
		fl.l_start = from;
		fl.l_len = to - from;
		if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
			return -errno;
		if (fl.l_type == F_UNLCK)
			continue;
		/* The lock found, clipped to the range: it may be wider (a lock
		 * over many slots, or to the end of the file: l_len 0). */
		s = fl.l_start < from ? from : fl.l_start;
		e = fl.l_len > 0 && fl.l_len < to - fl.l_start ? fl.l_start + fl.l_len : to;
		if (s >= e)
			return -EIO; /* the kernel reported a lock outside the range */
		for (off_t i = s - GP_LEASE_BASE; i < e - GP_LEASE_BASE; i++)
			held[i / 64] |= 1ULL << (i % 64);
		if (e < to) {
			todo[n].lo = (uint16_t)(e - GP_LEASE_BASE);
			todo[n++].hi = (uint16_t)hi;
		}
		if (from < s) {
			todo[n].lo = (uint16_t)lo;
			todo[n++].hi = (uint16_t)(s - GP_LEASE_BASE);
		}
	}
	return 0;
}

int gp_region_read(int fd, struct gp_region_copy *c)
{
	uint64_t held[GP_REGION_MAX_PROCS / 64] = {0};
	struct stat st;
	ssize_t got;
	int rc;

	memset(c->live, 0, sizeof c->live);
	memset(c->live_used, 0, sizeof c->live_used);
	c->nlive = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > sizeof c->hdr)
		return -EPROTO; /* gp_region_open sizes a region exactly */
	if ((uint64_t)st.st_size < sizeof c->hdr)
		return -ENODATA; /* empty (being created), or cut short */
	got = read_all(fd, &c->hdr, PREFIX, 0);
	if (got < 0)
		return (int)got;
	if ((size_t)got < PREFIX)
		return -ENODATA;
	if ((rc = check(&c->hdr)))
		return rc;
	/* Leases, then the slots of their holders, in runs: a process that
	 * attaches after the probe counts as not yet there; one that dies
	 * after it still counts, until the next read. */
	if ((rc = probe(fd, held)))
		return rc;
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS;) {
		unsigned j = i;

		while (j < GP_REGION_MAX_PROCS && (held[j / 64] >> (j % 64) & 1))
			j++;
		if (j > i && (rc = read_slots(fd, c, i, j)))
			return rc;
		i = j + 1;
	}
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		const struct gp_region_proc *p = &c->hdr.proc[i];
		if (!(held[i / 64] >> (i % 64) & 1) || p->state != GP_PROC_ACTIVE)
			continue;
		c->live[i / 64] |= 1ULL << (i % 64);
		c->nlive++;
		for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++)
			c->live_used[d] = c->live_used[d] > UINT64_MAX - p->used[d]
						  ? UINT64_MAX
						  : c->live_used[d] + p->used[d];
	}
	return 0;
}
