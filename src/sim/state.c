/* state.c - see state.h. */
#include "sim/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/counter.h"
#include "common/lease.h"
#include "common/log.h"
#include "common/rmutex.h"
#include "common/shm.h"
#include "sim/share.h"
#include "sim/timeline.h"

/* This process's view of the machine. */
static struct {
	pthread_mutex_t open_mu;   /* serialises gp__sim_machine_open */
	int result;                /* 0: not tried; 1: open; <0: failed */
	struct gp_shm shm;
	struct gp_sim_hdr *hdr;
	int slot;                  /* our process slot, -1 before cuInit */
	pthread_mutex_t sweep_mu;  /* one sweeping thread per process */
} st = {
	.open_mu = PTHREAD_MUTEX_INITIALIZER,
	.shm = GP_SHM_CLOSED,
	.slot = -1,
	.sweep_mu = PTHREAD_MUTEX_INITIALIZER,
};

/* What gp_shm_open's callbacks need and tell. */
struct open_arg {
	const struct gp_sim_config *cfg;
	int mismatch;   /* check(): the file describes other GPUs */
	struct gp_sim_config found;
};

static void read_boot_id(char out[40])
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;

	memset(out, 0, 40);
	if (fd >= 0) {
		n = read(fd, out, 39);
		close(fd);
	}
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = '\0';
}

/* A random identity for a new machine (shareable handles name it). */
static uint64_t random_id(void)
{
	uint64_t id = 0;

	if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id)
		id = gp_now_ns() ^ ((uint64_t)getpid() << 40);
	return id ? id : 1;
}

static int state_init(void *base, size_t size, void *arg)
{
	struct gp_sim_hdr *h = base;
	struct open_arg *a = arg;
	int rc;

	h->version = GP_SIM_STATE_VERSION;
	h->size = size;
	read_boot_id(h->boot_id);
	h->cfg = *a->cfg;
	h->machine_id = random_id();
	rc = gp_rmutex_init(&h->lock.m);
	if (rc)
		return rc;
	/* The magic goes last: whoever sees it sees a whole header. */
	__atomic_store_n(&h->magic, GP_SIM_STATE_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

static int same_config(const struct gp_sim_config *a, const struct gp_sim_config *b)
{
	if (a->n != b->n)
		return 0;
	for (unsigned i = 0; i < a->n && i < GP_SIM_GPUS_MAX; i++) {
		if (strncmp(a->gpu[i].model, b->gpu[i].model, GP_SIM_MODEL_MAX) != 0 ||
		    a->gpu[i].memory != b->gpu[i].memory || a->gpu[i].sms != b->gpu[i].sms)
			return 0;
	}
	return 1;
}

static int state_check(const void *base, size_t size, void *arg)
{
	const struct gp_sim_hdr *h = base;
	struct open_arg *a = arg;

	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != GP_SIM_STATE_MAGIC ||
	    h->version != GP_SIM_STATE_VERSION || h->size != size)
		return -EPROTO;
	if (!same_config(&h->cfg, a->cfg)) {
		a->mismatch = 1;
		a->found = h->cfg;
		return -EPROTO;
	}
	return 0;
}

/* What a lock holder that died may have left half-updated: the busy ring
 * of a timeline.  (Memory figures are never written under the lock.) */
static void repair(struct gp_sim_hdr *h)
{
	for (unsigned d = 0; d < GP_SIM_GPUS_MAX; d++) {
		if (h->dev[d].head >= GP_SIM_RING || h->dev[d].count > GP_SIM_RING) {
			h->dev[d].head = 0;
			h->dev[d].count = 0;
		}
	}
	gp_warn("sim: a process died while updating the machine state; repaired");
}

int gp__sim_state_lock(void)
{
	struct gp_sim_hdr *h = st.hdr;
	int rc;

	if (!h)
		return -ENODEV;
	rc = gp_rmutex_lock(&h->lock.m);
	if (rc == 1) {
		repair(h);
		gp_rmutex_repaired(&h->lock.m);
		rc = 0;
	}
	return rc;
}

/* Take the lock only if it is free now: 0, or -EBUSY. */
static int state_trylock(void)
{
	struct gp_sim_hdr *h = st.hdr;
	int rc = pthread_mutex_trylock(&h->lock.m);

	if (rc == EOWNERDEAD) {
		repair(h);
		gp_rmutex_repaired(&h->lock.m);
		rc = 0;
	}
	return rc ? -EBUSY : 0;
}

void gp__sim_state_unlock(void)
{
	gp_rmutex_unlock(&st.hdr->lock.m);
}

/* A state file written before the last reboot holds monotonic times of
 * another boot: forget the timelines (its processes are all dead and will
 * be swept), and bring back GPUs that had fallen off the bus, as a reboot
 * does (ECC counts and the event logs stay: their numbers only grow). */
static void forget_other_boot(struct gp_sim_hdr *h)
{
	char boot[40];

	read_boot_id(boot);
	if (strncmp(boot, h->boot_id, sizeof boot) == 0)
		return;
	if (gp__sim_state_lock())
		return;
	for (unsigned d = 0; d < GP_SIM_GPUS_MAX; d++) {
		h->dev[d].busy_until_ns = 0;
		h->dev[d].head = 0;
		h->dev[d].count = 0;
		__atomic_store_n(&h->health[d].lost, 0, __ATOMIC_SEQ_CST);
	}
	memcpy(h->boot_id, boot, sizeof boot);
	gp__sim_state_unlock();
}

static void log_setup(void)
{
	enum gp_log_level lvl;

	if (gp_log_parse_level(getenv("GPUPOOL_LOG"), &lvl) == 0)
		gp_log_setup(lvl, "sim");
	else
		gp_log_setup((enum gp_log_level)gp__log_level, "sim");
}

int gp__sim_machine_open(void)
{
	static struct open_arg a; /* large: keep it off the caller's stack */
	static struct gp_sim_config cfg;
	const char *gpus, *path;
	char err[256], want[512], have[512];
	int rc;

	pthread_mutex_lock(&st.open_mu);
	if (st.result) {
		rc = st.result > 0 ? 0 : st.result;
		goto out;
	}
	log_setup();
	gpus = getenv("GPUPOOL_SIM_GPUS");
	if (!gpus)
		gpus = GP_SIM_DEFAULT_GPUS;
	rc = gp__sim_config_parse(gpus, &cfg, err, sizeof err);
	if (rc) {
		gp_error("GPUPOOL_SIM_GPUS='%s': %s", gpus, err);
		goto fail;
	}
	path = getenv("GPUPOOL_SIM_STATE");
	if (path && !*path)
		path = NULL;
	memset(&a, 0, sizeof a);
	a.cfg = &cfg;
	rc = gp_shm_open(&st.shm, path, sizeof(struct gp_sim_hdr), state_init, state_check, &a);
	if (rc) {
		if (a.mismatch) {
			gp__sim_config_format(&a.found, have, sizeof have);
			gp__sim_config_format(&cfg, want, sizeof want);
			gp_error("GPUPOOL_SIM_STATE=%s describes GPUs '%s' but GPUPOOL_SIM_GPUS "
				 "asks for '%s'; use another state file or the same GPUs",
				 path, have, want);
		} else if (rc == -EPROTO) {
			gp_error("GPUPOOL_SIM_STATE=%s is not a simulator state file of this "
				 "version (layout %u)", path, GP_SIM_STATE_VERSION);
		} else {
			gp_error("cannot open the simulator state %s: %s",
				 path ? path : "(memfd)", strerror(-rc));
		}
		goto fail;
	}
	st.hdr = st.shm.base;
	forget_other_boot(st.hdr);
	/* A forked child needs its own open file description for leases. */
	if (pthread_atfork(NULL, NULL, gp__sim_state_forked)) {
		gp_error("sim: pthread_atfork failed");
		gp_shm_close(&st.shm);
		st.hdr = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	st.result = 1;
	rc = 0;
	gp_info("sim: machine %s with %u GPU(s)", path ? path : "(private)", cfg.n);
	goto out;
fail:
	st.result = rc;
out:
	pthread_mutex_unlock(&st.open_mu);
	return rc;
}

struct gp_sim_hdr *gp__sim_machine(void)
{
	return st.hdr;
}

/* --- lock-free figures (common/counter.h) ------------------------------- */

/* A process's figure changed (see `changes` in state.h). */
static void changed(struct gp_sim_hdr *h)
{
	__atomic_add_fetch(&h->changes, 1, __ATOMIC_SEQ_CST);
}

/* --- slots ---------------------------------------------------------------- */

/* Give back what slot i holds and free it.  The caller holds the slot's
 * lease (its owner is dead) and st.sweep_mu, so nobody else reclaims or
 * attaches it meanwhile.  The memory part takes no lock; forgetting the
 * dead process's kernels does, and when `may_wait` is 0 (a memory path)
 * and the lock is busy, that part is left for the next sweep (the slot
 * stays GP_SIM_PROC_DEAD, listed nowhere).  Returns 1 if memory came back. */
static int reclaim(struct gp_sim_hdr *h, unsigned i, int may_wait)
{
	struct gp_sim_proc *p = &h->proc[i];
	uint64_t now = gp_now_ns();
	int32_t pid = __atomic_load_n(&p->pid, __ATOMIC_RELAXED);
	int freed = 0;

	if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == GP_SIM_PROC_ACTIVE) {
		/* Dead first: the last holder of one of its shared allocations
		 * leaves the slot's figures alone from now on. */
		__atomic_store_n(&p->state, GP_SIM_PROC_DEAD, __ATOMIC_SEQ_CST);
		gp__sim_share_reclaim(h, i, __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE));
		for (unsigned d = 0; d < GP_SIM_GPUS_MAX; d++) {
			uint64_t u = __atomic_exchange_n(&p->used[d], 0, __ATOMIC_SEQ_CST);
			if (u) {
				changed(h);
				gp_counter_take(&h->dev[d].used, u);
			}
			__atomic_store_n(&p->contexts[d], 0, __ATOMIC_RELAXED);
		}
		gp_info("sim: process %d is gone; its device memory is released", (int)pid);
		freed = 1;
	}
	if ((may_wait ? gp__sim_state_lock() : state_trylock()) != 0)
		return freed;
	for (unsigned d = 0; d < h->cfg.n && d < GP_SIM_GPUS_MAX; d++)
		gp__sim_timeline_forget_locked(h, d, pid, now);
	gp__sim_state_unlock();
	__atomic_store_n(&p->pid, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->state, GP_SIM_PROC_FREE, __ATOMIC_RELEASE);
	return freed;
}

/* Sweep; `may_wait` as for reclaim(). */
static int sweep(uint64_t min_interval_ns, int may_wait)
{
	struct gp_sim_hdr *h = st.hdr;
	uint64_t now = gp_now_ns();
	int reclaimed = 0;

	if (!h)
		return 0;
	if (min_interval_ns &&
	    now - __atomic_load_n(&h->last_sweep_ns, __ATOMIC_RELAXED) < min_interval_ns)
		return 0;
	if (pthread_mutex_trylock(&st.sweep_mu))
		return 0; /* another thread of ours is at it */
	__atomic_store_n(&h->last_sweep_ns, now, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < GP_SIM_STATE_PROCS; i++) {
		if ((int)i == st.slot ||
		    __atomic_load_n(&h->proc[i].state, __ATOMIC_ACQUIRE) == GP_SIM_PROC_FREE)
			continue;
		/* Taking the lease succeeds only if its holder is gone. */
		if (gp_lease_take(st.shm.fd, i) != 0)
			continue;
		reclaimed += reclaim(h, i, may_wait);
		gp_lease_drop(st.shm.fd, i);
	}
	pthread_mutex_unlock(&st.sweep_mu);
	return reclaimed;
}

int gp__sim_sweep(uint64_t min_interval_ns)
{
	return sweep(min_interval_ns, 1);
}

int gp__sim_proc_attach(void)
{
	struct gp_sim_hdr *h = st.hdr;
	int rc = -ENOSPC;

	if (!h)
		return -ENODEV;
	if (st.slot >= 0)
		return 0;
	/* No sweep of ours may take the lease of the slot we are taking:
	 * leases of one open file description do not exclude each other. */
	pthread_mutex_lock(&st.sweep_mu);
	for (unsigned i = 0; i < GP_SIM_STATE_PROCS; i++) {
		struct gp_sim_proc *p = &h->proc[i];

		if (gp_lease_take(st.shm.fd, i) != 0)
			continue;
		if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != GP_SIM_PROC_FREE)
			reclaim(h, i, 1); /* its owner died */
		/* A new incarnation, before anything is charged to it: the
		 * last holder of a shared allocation of the previous owner
		 * then leaves this one's figures alone.  `used` is not
		 * cleared: the reclaim emptied it, and what such a holder may
		 * have put back since is counted on the device too. */
		__atomic_store_n(&p->gen, __atomic_add_fetch(&h->next_gen, 1, __ATOMIC_SEQ_CST),
				 __ATOMIC_SEQ_CST);
		/* The device time of the previous owner is no concern of
		 * ours; nobody reads it while the slot is not active. */
		for (unsigned d = 0; d < GP_SIM_GPUS_MAX; d++) {
			__atomic_store_n(&p->contexts[d], 0, __ATOMIC_RELAXED);
			__atomic_store_n(&p->busy_ns[d], 0, __ATOMIC_RELAXED);
		}
		__atomic_store_n(&p->pid, (int32_t)getpid(), __ATOMIC_RELAXED);
		__atomic_store_n(&p->attached_ns, gp_now_ns(), __ATOMIC_RELAXED);
		__atomic_store_n(&p->state, GP_SIM_PROC_ACTIVE, __ATOMIC_RELEASE);
		st.slot = (int)i;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&st.sweep_mu);
	if (rc)
		gp_error("sim: all %d process slots of the machine are taken", GP_SIM_STATE_PROCS);
	return rc;
}

int gp__sim_slot(uint64_t *gen)
{
	if (!st.hdr || st.slot < 0) {
		*gen = 0;
		return -1;
	}
	*gen = __atomic_load_n(&st.hdr->proc[st.slot].gen, __ATOMIC_RELAXED);
	return st.slot;
}

/* --- charging (lock-free; the order of the steps is the rule of state.h) -- */

/* One attempt; -ENOMEM if the device is full. */
static int charge_once(unsigned dev, uint64_t bytes)
{
	struct gp_sim_hdr *h = st.hdr;
	uint64_t total = h->cfg.gpu[dev].memory;
	uint64_t limit = total > GP_SIM_DRIVER_RESERVED ? total - GP_SIM_DRIVER_RESERVED : 0;

	if (gp_counter_admit(&h->dev[dev].used, limit, bytes))
		return -ENOMEM;
	__atomic_add_fetch(&h->proc[st.slot].used[dev], bytes, __ATOMIC_SEQ_CST);
	changed(h);
	return 0;
}

int gp__sim_charge(unsigned dev, uint64_t bytes)
{
	int rc;

	if (!st.hdr || st.slot < 0 || dev >= st.hdr->cfg.n)
		return -EINVAL;
	if (bytes == 0)
		return 0;
	rc = charge_once(dev, bytes);
	/* Before saying "full", give back what dead processes held (no rate
	 * limit: this is the allocation that would fail; no waiting for the
	 * lock either). */
	if (rc == -ENOMEM && sweep(0, 0) > 0)
		rc = charge_once(dev, bytes);
	return rc;
}

void gp__sim_uncharge(unsigned dev, uint64_t bytes)
{
	struct gp_sim_hdr *h = st.hdr;

	if (!h || st.slot < 0 || dev >= h->cfg.n || bytes == 0)
		return;
	/* Never more than we hold: no underflow, whatever the caller says. */
	bytes = gp_counter_take(&h->proc[st.slot].used[dev], bytes);
	if (bytes) {
		changed(h);
		gp_counter_take(&h->dev[dev].used, bytes);
	}
}

void gp__sim_uncharge_slot(unsigned slot, uint64_t gen, unsigned dev, uint64_t bytes)
{
	struct gp_sim_hdr *h = st.hdr;
	struct gp_sim_proc *p;
	uint64_t t;

	if (!h || slot >= GP_SIM_STATE_PROCS || dev >= GP_SIM_GPUS_MAX || !bytes || !gen)
		return;
	p = &h->proc[slot];
	if (__atomic_load_n(&p->gen, __ATOMIC_SEQ_CST) != gen ||
	    __atomic_load_n(&p->state, __ATOMIC_SEQ_CST) != GP_SIM_PROC_ACTIVE)
		return; /* gone: its memory came back with its slot */
	t = gp_counter_take(&p->used[dev], bytes);
	if (!t)
		return;
	changed(h);
	if (__atomic_load_n(&p->gen, __ATOMIC_SEQ_CST) != gen) {
		/* The slot changed hands while we took: the bytes may be the
		 * new owner's.  Put them back, an over-count at worst. */
		__atomic_add_fetch(&p->used[dev], t, __ATOMIC_SEQ_CST);
		changed(h);
		return;
	}
	gp_counter_take(&h->dev[dev].used, t);
}

void gp__sim_count_context(unsigned dev, int delta)
{
	struct gp_sim_hdr *h = st.hdr;
	uint32_t *n, cur;

	if (!h || st.slot < 0 || dev >= h->cfg.n)
		return;
	n = &h->proc[st.slot].contexts[dev];
	if (delta > 0) {
		__atomic_add_fetch(n, (uint32_t)delta, __ATOMIC_RELAXED);
		return;
	}
	cur = __atomic_load_n(n, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(n, &cur,
					    cur >= (uint32_t)-delta ? cur - (uint32_t)-delta : 0, 1,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* --- queries (lock-free) -------------------------------------------------- */

uint64_t gp__sim_dev_used(unsigned dev)
{
	struct gp_sim_hdr *h = st.hdr;

	if (!h || dev >= h->cfg.n)
		return 0;
	sweep(GP_SIM_SWEEP_INTERVAL_NS, 0);
	return __atomic_load_n(&h->dev[dev].used, __ATOMIC_RELAXED);
}

/* One read of the processes on `dev` (see gp__sim_dev_procs). */
static unsigned read_procs(struct gp_sim_hdr *h, unsigned dev, struct gp_sim_procinfo *out,
			   unsigned cap)
{
	unsigned n = 0;

	for (unsigned i = 0; i < GP_SIM_STATE_PROCS; i++) {
		const struct gp_sim_proc *p = &h->proc[i];
		uint64_t used;
		uint32_t contexts;

		if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != GP_SIM_PROC_ACTIVE)
			continue;
		used = __atomic_load_n(&p->used[dev], __ATOMIC_SEQ_CST);
		contexts = __atomic_load_n(&p->contexts[dev], __ATOMIC_RELAXED);
		if (!used && !contexts)
			continue;
		if (n < cap) {
			out[n].pid = __atomic_load_n(&p->pid, __ATOMIC_RELAXED);
			out[n].used = used;
			out[n].contexts = contexts;
		}
		n++;
	}
	return n;
}

unsigned gp__sim_dev_procs(unsigned dev, struct gp_sim_procinfo *out, unsigned cap)
{
	struct gp_sim_hdr *h = st.hdr;
	uint64_t before;
	unsigned n;

	if (!h || dev >= h->cfg.n)
		return 0;
	sweep(GP_SIM_SWEEP_INTERVAL_NS, 0);
	/* Read again while some process's figure changed meanwhile: one
	 * process freeing and another then taking the same bytes must not
	 * both be counted.  Bounded: under a storm the last read stands. */
	for (int tries = 0;; tries++) {
		before = __atomic_load_n(&h->changes, __ATOMIC_SEQ_CST);
		n = read_procs(h, dev, out, cap);
		if (__atomic_load_n(&h->changes, __ATOMIC_SEQ_CST) == before || tries == 64)
			return n;
	}
}

void gp__sim_state_forked(void)
{
	st.slot = -1;
	st.sweep_mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	st.open_mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	if (st.shm.fd >= 0 && gp_shm_reopen(&st.shm) != 0) {
		/* Without a descriptor of its own the child cannot take leases
		 * without disturbing its parent's: give the machine up. */
		st.hdr = NULL;
		st.result = -EBADF;
	}
}
