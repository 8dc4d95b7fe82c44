/* region.c - see region.h. */
#include "region/region.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/lease.h"
#include "common/llock.h"

_Static_assert(GP_REGION_MAX_PROCS <= GP_LLOCK_MAX_SLOT, "slots fit a lock identity");

static int region_init(void *base, size_t size, void *arg)
{
	struct gp_region_hdr *h = base;

	(void)arg;
	h->version = GP_REGION_VERSION;
	h->size = (uint32_t)size;
	h->max_devs = GP_REGION_MAX_DEVS;
	h->max_procs = GP_REGION_MAX_PROCS;
	h->created_ns = gp_wall_ns();
	/* The magic goes last: a reader that sees it sees a whole header. */
	__atomic_store_n(&h->magic, GP_REGION_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

static int region_check(const void *base, size_t size, void *arg)
{
	const struct gp_region_hdr *h = base;

	(void)arg;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != GP_REGION_MAGIC ||
	    h->version != GP_REGION_VERSION || h->size != size ||
	    h->max_devs != GP_REGION_MAX_DEVS || h->max_procs != GP_REGION_MAX_PROCS)
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
	if ((int)slot == r->slot)
		return holder == r->me; /* else: our slot's previous owner */
	if ((__atomic_load_n(&r->hdr->proc[slot].gen, __ATOMIC_ACQUIRE) & 0xfffffu) !=
	    GP_LLOCK_GEN(holder))
		return 0; /* the slot changed hands since it took the lock */
	/* Our own open file description never conflicts with itself: a lease
	 * we hold for a sweep reads as free, which is right (we hold it
	 * because its owner is dead). */
	return gp_lease_held(r->shm.fd, slot) != 0;
}

/* Rebuild every device's `used` from the per-process figures.  Called with
 * the lock taken over from a holder that died mid-update: the per-process
 * figures are written first, so they are the truth. */
static void repair(struct gp_region_hdr *h)
{
	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++) {
		uint64_t sum = 0;
		for (unsigned p = 0; p < GP_REGION_MAX_PROCS; p++)
			if (h->proc[p].state == GP_PROC_ACTIVE)
				sum += h->proc[p].used[d];
		h->dev[d].used = sum;
	}
}

static void lock_as(struct gp_region *r)
{
	if (gp_llock_lock(&r->hdr->lock.word, r->me, holder_alive, r))
		repair(r->hdr);
}

static void unlock(struct gp_region *r)
{
	gp_llock_unlock(&r->hdr->lock.word);
}

/* Give back everything proc[i] holds and free the slot.  Lock held. */
static void reclaim_locked(struct gp_region_hdr *h, unsigned i)
{
	struct gp_region_proc *p = &h->proc[i];

	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++) {
		uint64_t u = p->used[d];
		h->dev[d].used = h->dev[d].used >= u ? h->dev[d].used - u : 0;
		p->used[d] = 0;
	}
	p->state = GP_PROC_FREE;
	p->pid = 0;
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
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		if (gp_lease_take(r->shm.fd, i) != 0)
			continue;
		/* The slot is ours: a new generation makes us a new holder
		 * identity, distinct from whoever had it before. */
		uint32_t gen = __atomic_add_fetch(&h->proc[i].gen, 1, __ATOMIC_ACQ_REL);
		r->me = GP_LLOCK_ID(i, gen);
		r->slot = (int)i;
		lock_as(r);
		if (h->proc[i].state == GP_PROC_ACTIVE) /* its owner died */
			reclaim_locked(h, i);
		h->proc[i].state = GP_PROC_ACTIVE;
		h->proc[i].pid = (int32_t)getpid();
		h->proc[i].attached_ns = gp_now_ns();
		unlock(r);
		rc = 0;
		break;
	}
out:
	pthread_mutex_unlock(&r->attach_lock);
	return rc;
}

/* Take the lock, attaching first if this process has no slot yet (a lock
 * holder must be nameable).  0 or -ENOSPC. */
static int lock(struct gp_region *r)
{
	if (__atomic_load_n(&r->slot, __ATOMIC_ACQUIRE) < 0) {
		int rc = gp_region_attach(r);
		if (rc)
			return rc;
	}
	lock_as(r);
	return 0;
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
		    __atomic_load_n(&h->proc[i].state, __ATOMIC_RELAXED) != GP_PROC_ACTIVE)
			continue;
		/* Taking the lease succeeds only if its holder is gone. */
		if (gp_lease_take(r->shm.fd, i) != 0)
			continue;
		if (lock(r) == 0) {
			if (h->proc[i].state == GP_PROC_ACTIVE) {
				reclaim_locked(h, i);
				reclaimed++;
			}
			unlock(r);
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
	int rc = lock(r), idx = -ENOSPC;

	if (rc)
		return rc;
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

/* One attempt at charging; -ENOMEM if over budget. */
static int charge_once(struct gp_region *r, unsigned dev, uint64_t bytes, int force)
{
	struct gp_region_hdr *h = r->hdr;
	struct gp_region_dev *d = &h->dev[dev];
	int rc = lock(r);

	if (rc)
		return rc;
	if (!force && d->limit && (bytes > d->limit || d->used > d->limit - bytes)) {
		d->refused++;
		unlock(r);
		return -ENOMEM;
	}
	/* Per-process figure first: repair() trusts it. */
	h->proc[r->slot].used[dev] += bytes;
	d->used += bytes;
	if (d->used > d->peak)
		d->peak = d->used;
	unlock(r);
	return 0;
}

int gp_region_charge(struct gp_region *r, unsigned dev, uint64_t bytes, int force)
{
	int rc;

	if (dev >= GP_REGION_MAX_DEVS)
		return -EINVAL;
	rc = charge_once(r, dev, bytes, force);
	if (rc == -ENOMEM && gp_region_sweep(r, 0) > 0)
		rc = charge_once(r, dev, bytes, force);
	return rc;
}

void gp_region_uncharge(struct gp_region *r, unsigned dev, uint64_t bytes)
{
	struct gp_region_hdr *h = r->hdr;
	uint64_t *mine;

	if (dev >= GP_REGION_MAX_DEVS || bytes == 0 || r->slot < 0 || lock(r))
		return;
	mine = &h->proc[r->slot].used[dev];
	if (bytes > *mine) /* never more than we hold: no underflow */
		bytes = *mine;
	*mine -= bytes;
	h->dev[dev].used = h->dev[dev].used >= bytes ? h->dev[dev].used - bytes : 0;
	unlock(r);
}

void gp_region_usage(struct gp_region *r, unsigned dev, uint64_t *limit,
		     uint64_t *used)
{
	struct gp_region_dev *d = &r->hdr->dev[dev];

	*limit = __atomic_load_n(&d->limit, __ATOMIC_RELAXED);
	*used = __atomic_load_n(&d->used, __ATOMIC_RELAXED);
}

int gp_region_forked(struct gp_region *r)
{
	r->slot = -1;
	r->me = 0;
	r->attach_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	r->sweep_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	return r->shm.fd >= 0 ? gp_shm_reopen(&r->shm) : 0;
}

int gp_region_proc_used(struct gp_region *r, int pid, unsigned dev, uint64_t *used)
{
	struct gp_region_hdr *h = r->hdr;

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
