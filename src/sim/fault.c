/* fault.c - see fault.h. */
#include "sim/fault.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

/* The health of GPU `dev`, or NULL when there is no such GPU. */
static struct gp_sim_health *health(unsigned dev)
{
	struct gp_sim_hdr *h = gp__sim_machine();

	if (!h || dev >= h->cfg.n)
		return NULL;
	return &h->health[dev];
}

/* Append an event to GPU `dev`'s log.  Under the machine lock, so that two
 * injectors never take the same slot; readers take no lock, so the slot is
 * written as a seqlock (see struct gp_sim_hevent): `seq` 0 first, then the
 * contents, then `seq`, and only then is `posted` raised.  A writer that
 * dies half-way leaves `posted` where it was: the next one rewrites the
 * same slot.  Returns 0 or the lock's negative errno. */
static int post(struct gp_sim_health *hl, uint64_t type, uint64_t data)
{
	struct gp_sim_hevent *e;
	uint64_t seq;
	int rc = gp__sim_state_lock();

	if (rc)
		return rc;
	seq = __atomic_load_n(&hl->posted, __ATOMIC_RELAXED) + 1;
	e = &hl->log[seq % GP_SIM_EVENTS];
	__atomic_store_n(&e->seq, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&e->type, type, __ATOMIC_RELAXED);
	__atomic_store_n(&e->data, data, __ATOMIC_RELAXED);
	__atomic_store_n(&e->seq, seq, __ATOMIC_RELEASE);
	__atomic_store_n(&hl->posted, seq, __ATOMIC_RELEASE);
	gp__sim_state_unlock();
	gp__sim_event_wake();
	return 0;
}

/* Add n to an ECC counter, stopping at the top instead of wrapping. */
static void count_ecc(uint64_t *c, uint64_t n)
{
	uint64_t cur = __atomic_load_n(c, __ATOMIC_RELAXED), next;

	do
		next = cur + n < cur ? UINT64_MAX : cur + n;
	while (!__atomic_compare_exchange_n(c, &cur, next, 1, __ATOMIC_SEQ_CST,
					    __ATOMIC_RELAXED));
}

int gp__sim_fault(unsigned dev, int fault, uint64_t arg)
{
	struct gp_sim_health *hl;

	if (!gp__sim_machine())
		return -ENODEV;
	hl = health(dev);
	if (!hl)
		return -EINVAL;
	switch (fault) {
	case GP_SIM_FAULT_XID:
		if (!arg)
			return -EINVAL;
		gp_info("sim: GPU %u: Xid %llu", dev, (unsigned long long)arg);
		return post(hl, GP_SIM_EV_XID, arg);
	case GP_SIM_FAULT_ECC_CORRECTED:
	case GP_SIM_FAULT_ECC_UNCORRECTED: {
		int unc = fault == GP_SIM_FAULT_ECC_UNCORRECTED;

		if (!arg)
			return -EINVAL;
		/* The counter first: whoever sees the event sees the count. */
		count_ecc(&hl->ecc[unc], arg);
		gp_info("sim: GPU %u: %llu %s ECC error(s)", dev, (unsigned long long)arg,
			unc ? "uncorrected" : "corrected");
		return post(hl, unc ? GP_SIM_EV_DBE : GP_SIM_EV_SBE, 0);
	}
	case GP_SIM_FAULT_LOSE:
		__atomic_store_n(&hl->lost, 1, __ATOMIC_SEQ_CST);
		gp_info("sim: GPU %u has fallen off the bus", dev);
		return 0;
	case GP_SIM_FAULT_RESTORE:
		__atomic_store_n(&hl->lost, 0, __ATOMIC_SEQ_CST);
		gp_info("sim: GPU %u is back", dev);
		return 0;
	}
	return -EINVAL;
}

uint32_t gp__sim_event_word(void)
{
	struct gp_sim_hdr *h = gp__sim_machine();

	return h ? __atomic_load_n(&h->health_word, __ATOMIC_ACQUIRE) : 0;
}

/* The word lives in a shared file mapping, so the futex is a shared one:
 * a wake in the injecting process reaches sleepers in every process (as
 * the real driver's event queue wakes its waiters in the kernel). */
void gp__sim_event_sleep(uint32_t seen, uint64_t timeout_ns)
{
	struct gp_sim_hdr *h = gp__sim_machine();
	struct timespec ts = {(time_t)(timeout_ns / 1000000000ull),
			      (long)(timeout_ns % 1000000000ull)};

	if (!h) {
		nanosleep(&ts, NULL);
		return;
	}
	syscall(SYS_futex, &h->health_word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

void gp__sim_event_wake(void)
{
	struct gp_sim_hdr *h = gp__sim_machine();

	if (!h)
		return;
	__atomic_add_fetch(&h->health_word, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &h->health_word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

int gp__sim_lost(unsigned dev)
{
	struct gp_sim_health *hl = health(dev);

	return hl ? (int)__atomic_load_n(&hl->lost, __ATOMIC_SEQ_CST) : 0;
}

uint64_t gp__sim_ecc(unsigned dev, int uncorrected)
{
	struct gp_sim_health *hl = health(dev);

	return hl ? __atomic_load_n(&hl->ecc[uncorrected ? 1 : 0], __ATOMIC_SEQ_CST) : 0;
}

uint64_t gp__sim_event_posted(unsigned dev)
{
	struct gp_sim_health *hl = health(dev);

	return hl ? __atomic_load_n(&hl->posted, __ATOMIC_ACQUIRE) : 0;
}

int gp__sim_event_read(unsigned dev, uint64_t seq, struct gp_sim_hevent *ev)
{
	struct gp_sim_health *hl = health(dev);
	const struct gp_sim_hevent *e;
	uint64_t posted, before, after;

	if (!hl)
		return -EINVAL;
	posted = __atomic_load_n(&hl->posted, __ATOMIC_ACQUIRE);
	if (seq == 0 || seq > posted)
		return -EAGAIN;
	if (posted - seq >= GP_SIM_EVENTS)
		return -ENOENT;
	e = &hl->log[seq % GP_SIM_EVENTS];
	/* The reader's half of the seqlock: the slot must hold `seq` before
	 * and after the contents are read, else a newer event is being
	 * written over it (and this one is lost). */
	before = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
	ev->type = __atomic_load_n(&e->type, __ATOMIC_RELAXED);
	ev->data = __atomic_load_n(&e->data, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	after = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
	if (before != seq || after != seq)
		return -ENOENT;
	ev->seq = seq;
	return 0;
}
