/* region.c - see region.h. */
#include "region/region.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/counter.h"
#include "common/lease.h"
#include "common/llock.h"

_Static_assert(GP_REGION_MAX_PROCS <= GP_LLOCK_MAX_SLOT, "slots fit a lock identity");
/* Version 2 took its activity stamps out of version 1's spare words: the
 * entry kept its size, and so did the whole file.  Version 3 added compute
 * accounting (policy, priority, device time used and held back, the
 * pacing clock) to each entry, which grew from 128 to 152 bytes, and the
 * tenant's `id` to the header.  A version 2 file is refused like any
 * foreign one: its size and version both differ. */
_Static_assert(sizeof(struct gp_region_dev) == 152, "a device entry is 152 bytes");

/* A tenant id for a new region: random, never 0 (so that a zeroed field
 * never names a tenant).  Ids only have to differ between the tenants of
 * one node (the node file tells tenants apart by them), so where getrandom cannot answer at once (early boot, a
 * seccomp filter) the time and the PID, mixed, are good enough: this runs
 * inside someone else's process and must neither block nor fail. */
static uint64_t new_id(void)
{
	uint64_t id = 0;

	if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id) {
		/* splitmix64's finalizer over the clocks and the PID */
		id = gp_wall_ns() ^ gp_now_ns() << 21 ^ (uint64_t)getpid() << 42;
		id += 0x9e3779b97f4a7c15ULL;
		id = (id ^ id >> 30) * 0xbf58476d1ce4e5b9ULL;
		id = (id ^ id >> 27) * 0x94d049bb133111ebULL;
		id ^= id >> 31;
	}
	return id ? id : 1;
}

static int region_init(void *base, size_t size, void *arg)
{
	struct gp_region_hdr *h = base;

	(void)arg;
	h->version = GP_REGION_VERSION;
	h->size = (uint32_t)size;
	h->max_devs = GP_REGION_MAX_DEVS;
	h->max_procs = GP_REGION_MAX_PROCS;
	h->created_ns = gp_wall_ns();
	h->id = new_id();
	/* The magic goes last: a reader that sees it sees a whole header. */
	__atomic_store_n(&h->magic, GP_REGION_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/* Verify an existing file before anyone uses it.  Whoever can write the
 * tenant's directory wrote it, so refuse (-EPROTO) what would be unsafe to
 * use.  Live processes may be writing it right now, so only what holds at
 * every instant of a well-behaved file's life is checked: never a relation
 * between figures that change separately (a device's `used` against its
 * processes', `peak` against `used`), never entries past `ndevs` (one may
 * be in the middle of its registration).  tests/fuzz/fuzz_region.c holds
 * an oracle written from the same rules. */
static int region_check(const void *base, size_t size, void *arg)
{
	const struct gp_region_hdr *h = base;
	uint32_t w;

	(void)arg;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != GP_REGION_MAGIC ||
	    h->version != GP_REGION_VERSION || h->size != size ||
	    h->max_devs != GP_REGION_MAX_DEVS || h->max_procs != GP_REGION_MAX_PROCS)
		return -EPROTO;
	/* ndevs only grows, by one registration at a time, up to the table. */
	if (__atomic_load_n(&h->ndevs, __ATOMIC_ACQUIRE) > GP_REGION_MAX_DEVS)
		return -EPROTO;
	/* Names are written once, with at most GP_REGION_UUID_LEN - 1 bytes,
	 * into a zero-filled entry: the last byte of every entry is NUL, so a
	 * name is always a terminated string. */
	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++)
		if (__atomic_load_n(&h->dev[d].uuid[GP_REGION_UUID_LEN - 1], __ATOMIC_RELAXED))
			return -EPROTO;
	/* A slot is free or active, nothing else is ever written there. */
	for (unsigned p = 0; p < GP_REGION_MAX_PROCS; p++) {
		uint32_t st = __atomic_load_n(&h->proc[p].state, __ATOMIC_RELAXED);
		if (st != GP_PROC_FREE && st != GP_PROC_ACTIVE)
			return -EPROTO;
	}
	/* The lock word names a holder by slot and generation; a slot's
	 * generation is bumped when it changes hands, before its new owner
	 * can take the lock.  So the lock never names the generation a slot
	 * has not reached yet -- the identity its next owner would get, who
	 * would then wait on itself forever.  (Read the word first: the gen
	 * read after it is at least the holder's.) */
	w = __atomic_load_n(&h->lock.word, __ATOMIC_ACQUIRE) & ~GP_LLOCK_WAITERS;
	if (w && GP_LLOCK_SLOT(w) < GP_REGION_MAX_PROCS &&
	    GP_LLOCK_GEN(w) ==
		    ((__atomic_load_n(&h->proc[GP_LLOCK_SLOT(w)].gen, __ATOMIC_ACQUIRE) + 1) &
		     0xfffffu))
		return -EPROTO;
	return 0;
}

int gp_region_open(struct gp_region *r, const char *path)
{
	int rc = gp_shm_open(&r->shm, path, sizeof(struct gp_region_hdr),
			     region_init, region_check, NULL);

	if (rc)
		return rc;
	r->hdr = r->shm.base;
	r->slot = -1;
	r->me = 0;
	r->locked = 0;
	return 0;
}

/* Does the holder of the lock still exist?  (gp_llock_alive_fn)  It does
 * if its slot still carries its generation and its lease is held by a live
 * process -- or if it is us (another thread of this process). */
static int holder_alive(void *arg, uint32_t holder)
{
	struct gp_region *r = arg;
	unsigned slot = GP_LLOCK_SLOT(holder);

	if (slot >= GP_REGION_MAX_PROCS)
		return 0; /* not an identity we hand out */
	if ((int)slot == r->slot) /* another thread of ours, or a word that only
				     looks like ours (our slot's previous owner,
				     or a forged file): then nobody holds it */
		return holder == r->me && __atomic_load_n(&r->locked, __ATOMIC_ACQUIRE);
	if ((__atomic_load_n(&r->hdr->proc[slot].gen, __ATOMIC_ACQUIRE) & 0xfffffu) !=
	    GP_LLOCK_GEN(holder))
		return 0; /* the slot changed hands since it took the lock */
	/* Our own open file description never conflicts with itself: a lease
	 * we hold for a sweep reads as free, which is right (we hold it
	 * because its owner is dead). */
	return gp_lease_held(r->shm.fd, slot) != 0;
}

/* The lock guards device registration only.  A holder that died in it left
 * at most an unpublished entry (ndevs is bumped last), so taking the lock
 * over needs no repair. */
static void lock_as(struct gp_region *r)
{
	if (gp_llock_lock(&r->hdr->lock.word, r->me, holder_alive, r)) {
		/* taken over from a dead holder: nothing to repair */
	}
	__atomic_store_n(&r->locked, 1, __ATOMIC_RELEASE);
}

static void unlock(struct gp_region *r)
{
	__atomic_store_n(&r->locked, 0, __ATOMIC_RELEASE);
	gp_llock_unlock(&r->hdr->lock.word);
}

/* Give back everything proc[i] holds and free the slot.  The caller holds
 * the slot's lease (its owner is dead) and this process's sweep lock, so
 * nobody else writes the slot; the exchange makes a second reclaimer of
 * the same figures find zero anyway. */
static void reclaim(struct gp_region_hdr *h, unsigned i)
{
	struct gp_region_proc *p = &h->proc[i];

	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++) {
		uint64_t u = __atomic_exchange_n(&p->used[d], 0, __ATOMIC_ACQ_REL);
		if (u)
			(void)gp_counter_take(&h->dev[d].used, u);
	}
	__atomic_store_n(&p->pid, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->state, GP_PROC_FREE, __ATOMIC_RELEASE);
}

int gp_region_attach(struct gp_region *r)
{
	struct gp_region_hdr *h = r->hdr;
	int rc = -ENOSPC;

	pthread_mutex_lock(&r->attach_lock);
	if (r->slot >= 0) {
		rc = 0;
		goto out;
	}
	/* No sweep of ours may reclaim the slot we are taking meanwhile:
	 * leases of one open file description do not exclude each other. */
	pthread_mutex_lock(&r->sweep_lock);
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		if (gp_lease_take(r->shm.fd, i) != 0)
			continue;
		/* The slot is ours: a new generation makes us a new holder
		 * identity, distinct from whoever had it before. */
		uint32_t gen = __atomic_add_fetch(&h->proc[i].gen, 1, __ATOMIC_ACQ_REL);
		/* Its owner died, if it is marked active; a free slot holds
		 * nothing, unless the file says otherwise: either way we start
		 * from nothing. */
		reclaim(h, i);
		h->proc[i].pid = (int32_t)getpid();
		h->proc[i].attached_ns = gp_now_ns();
		__atomic_store_n(&h->proc[i].state, GP_PROC_ACTIVE, __ATOMIC_RELEASE);
		r->me = GP_LLOCK_ID(i, gen);
		__atomic_store_n(&r->slot, (int)i, __ATOMIC_RELEASE);
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&r->sweep_lock);
out:
	pthread_mutex_unlock(&r->attach_lock);
	return rc;
}

/* Attach if this process has no slot yet.  0 or -ENOSPC. */
static int attached(struct gp_region *r)
{
	return __atomic_load_n(&r->slot, __ATOMIC_ACQUIRE) >= 0 ? 0 : gp_region_attach(r);
}

int gp_region_sweep(struct gp_region *r, uint64_t min_interval_ns)
{
	struct gp_region_hdr *h = r->hdr;
	uint64_t now = gp_now_ns();
	int reclaimed = 0;

	if (min_interval_ns &&
	    now - __atomic_load_n(&h->last_sweep_ns, __ATOMIC_RELAXED) < min_interval_ns)
		return 0;
	if (pthread_mutex_trylock(&r->sweep_lock))
		return 0; /* another thread of ours is at it */
	__atomic_store_n(&h->last_sweep_ns, now, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		if ((int)i == r->slot ||
		    __atomic_load_n(&h->proc[i].state, __ATOMIC_ACQUIRE) == GP_PROC_FREE)
			continue;
		/* Taking the lease succeeds only if its holder is gone. */
		if (gp_lease_take(r->shm.fd, i) != 0)
			continue;
		if (__atomic_load_n(&h->proc[i].state, __ATOMIC_ACQUIRE) != GP_PROC_FREE) {
			reclaim(h, i);
			reclaimed++;
		}
		gp_lease_drop(r->shm.fd, i);
	}
	pthread_mutex_unlock(&r->sweep_lock);
	return reclaimed;
}

int gp_region_device(struct gp_region *r, const char *uuid, uint64_t limit,
		     uint64_t physical)
{
	struct gp_region_hdr *h = r->hdr;
	int rc = attached(r), idx = -ENOSPC;

	if (rc)
		return rc;
	lock_as(r);
	for (unsigned d = 0; d < h->ndevs && d < GP_REGION_MAX_DEVS; d++) {
		if (strncmp(h->dev[d].uuid, uuid, GP_REGION_UUID_LEN) == 0) {
			idx = h->dev[d].limit == limit ? (int)d : -EEXIST;
			goto out;
		}
	}
	if (h->ndevs < GP_REGION_MAX_DEVS) {
		struct gp_region_dev *e = &h->dev[h->ndevs];
		strncpy(e->uuid, uuid, GP_REGION_UUID_LEN - 1);
		e->limit = limit;
		e->physical = physical;
		e->registered_ns = gp_now_ns();
		idx = (int)h->ndevs;
		/* Published last: gp_region_find reads without the lock. */
		__atomic_store_n(&h->ndevs, h->ndevs + 1, __ATOMIC_RELEASE);
	}
out:
	unlock(r);
	return idx;
}

int gp_region_find(struct gp_region *r, const char *uuid)
{
	const struct gp_region_hdr *h = r->hdr;
	uint32_t n = __atomic_load_n(&h->ndevs, __ATOMIC_ACQUIRE);

	for (uint32_t d = 0; d < n && d < GP_REGION_MAX_DEVS; d++)
		if (strncmp(h->dev[d].uuid, uuid, GP_REGION_UUID_LEN) == 0)
			return (int)d;
	return -1;
}

/* One attempt at charging; -ENOMEM if over budget.
 *
 * Lock-free, so that no process -- a stopped one included -- can make
 * another wait: the device's `used` is the admission counter, raised by a
 * compare-and-swap that checks the limit; then this process's own figure
 * follows.  A process that dies between the two steps leaves its charge
 * counted on the device but not on itself: an over-count of one charge,
 * never an under-count (uncharges go the other way round for the same
 * reason). */
static inline __attribute__((always_inline)) int charge_once(struct gp_region *r, unsigned dev,
							     uint64_t bytes, int force)
{
	struct gp_region_hdr *h = r->hdr;
	struct gp_region_dev *d = &h->dev[dev];
	uint64_t limit = __atomic_load_n(&d->limit, __ATOMIC_RELAXED), u, peak;

	/* Forced, or no budget: only a wrap is refused (a corrupt figure). */
	if (gp_counter_admit(&d->used, force || !limit ? UINT64_MAX : limit, bytes)) {
		__atomic_add_fetch(&d->refused, 1, __ATOMIC_RELAXED);
		return -ENOMEM;
	}
	__atomic_add_fetch(&h->proc[r->slot].used[dev], bytes, __ATOMIC_RELAXED);
	u = __atomic_load_n(&d->used, __ATOMIC_RELAXED);
	peak = __atomic_load_n(&d->peak, __ATOMIC_RELAXED);
	while (u > peak && !__atomic_compare_exchange_n(&d->peak, &peak, u, 1, __ATOMIC_RELAXED,
							__ATOMIC_RELAXED))
		;
	return 0;
}

/* The budget is full: reclaim dead processes and try once more. */
static __attribute__((noinline)) int charge_after_sweep(struct gp_region *r, unsigned dev,
							uint64_t bytes, int force)
{
	return gp_region_sweep(r, 0) > 0 ? charge_once(r, dev, bytes, force) : -ENOMEM;
}

int gp_region_charge(struct gp_region *r, unsigned dev, uint64_t bytes, int force)
{
	int rc;

	if (dev >= GP_REGION_MAX_DEVS)
		return -EINVAL;
	if ((rc = attached(r)))
		return rc;
	rc = charge_once(r, dev, bytes, force);
	return rc == -ENOMEM ? charge_after_sweep(r, dev, bytes, force) : rc;
}

void gp_region_uncharge(struct gp_region *r, unsigned dev, uint64_t bytes)
{
	struct gp_region_hdr *h = r->hdr;
	int slot = __atomic_load_n(&r->slot, __ATOMIC_ACQUIRE);

	if (dev >= GP_REGION_MAX_DEVS || bytes == 0 || slot < 0)
		return;
	/* Never more than we hold: no underflow, whatever the caller says. */
	bytes = gp_counter_take(&h->proc[slot].used[dev], bytes);
	if (bytes)
		(void)gp_counter_take(&h->dev[dev].used, bytes);
}

void gp_region_usage(struct gp_region *r, unsigned dev, uint64_t *limit,
		     uint64_t *used)
{
	struct gp_region_dev *d;

	if (dev >= GP_REGION_MAX_DEVS) {
		*limit = *used = 0;
		return;
	}
	d = &r->hdr->dev[dev];
	*limit = __atomic_load_n(&d->limit, __ATOMIC_RELAXED);
	*used = __atomic_load_n(&d->used, __ATOMIC_RELAXED);
}

int gp_region_forked(struct gp_region *r)
{
	r->slot = -1;
	r->me = 0;
	r->locked = 0;
	r->attach_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	r->sweep_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	return r->shm.fd >= 0 ? gp_shm_reopen(&r->shm) : 0;
}

int gp_region_proc_used(struct gp_region *r, int pid, unsigned dev, uint64_t *used)
{
	struct gp_region_hdr *h = r->hdr;

	if (dev >= GP_REGION_MAX_DEVS)
		return 0;
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		struct gp_region_proc *p = &h->proc[i];
		if (__atomic_load_n(&p->state, __ATOMIC_RELAXED) == GP_PROC_ACTIVE &&
		    __atomic_load_n(&p->pid, __ATOMIC_RELAXED) == pid) {
			*used = __atomic_load_n(&p->used[dev], __ATOMIC_RELAXED);
			return 1;
		}
	}
	return 0;
}
