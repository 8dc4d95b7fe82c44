/* state.c - see state.h. */
#include "sim/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/lease.h"
#include "common/log.h"
#include "common/rmutex.h"
#include "common/shm.h"
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

static int state_init(void *base, size_t size, void *arg)
{
	struct gp_sim_hdr *h = base;
	struct open_arg *a = arg;
	int rc;

	h->version = GP_SIM_STATE_VERSION;
	h->size = size;
	read_boot_id(h->boot_id);
	h->cfg = *a->cfg;
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

/* Rebuild the figures a dead lock holder may have left half-updated.  The
 * per-process figures are written first, so they are the truth. */
static void repair(struct gp_sim_hdr *h)
{
	for (unsigned d = 0; d < GP_SIM_GPUS_MAX; d++) {
		uint64_t sum = 0;
		for (unsigned p = 0; p < GP_SIM_STATE_PROCS; p++)
			if (h->proc[p].state == GP_SIM_PROC_ACTIVE)
				sum += h->proc[p].used[d];
		h->dev[d].used = sum;
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

void gp__sim_state_unlock(void)
{
	gp_rmutex_unlock(&st.hdr->lock.m);
}

/* A state file written before the last reboot holds monotonic times of
 * another boot: forget the timelines (its processes are all dead and will
 * be swept). */
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

/* Give back everything slot i holds and free it.  Machine lock held. */
static void reclaim_locked(struct gp_sim_hdr *h, unsigned i, uint64_t now)
{
	struct gp_sim_proc *p = &h->proc[i];

	for (unsigned d = 0; d < GP_SIM_GPUS_MAX; d++) {
		uint64_t u = p->used[d];
		h->dev[d].used = h->dev[d].used >= u ? h->dev[d].used - u : 0;
		p->used[d] = 0;
		p->contexts[d] = 0;
		if (d < h->cfg.n)
			gp__sim_timeline_forget_locked(h, d, p->pid, now);
	}
	p->state = GP_SIM_PROC_FREE;
	p->pid = 0;
}

int gp__sim_sweep(uint64_t min_interval_ns)
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
		    __atomic_load_n(&h->proc[i].state, __ATOMIC_RELAXED) != GP_SIM_PROC_ACTIVE)
			continue;
		/* Taking the lease succeeds only if its holder is gone. */
		if (gp_lease_take(st.shm.fd, i) != 0)
			continue;
		if (gp__sim_state_lock() == 0) {
			if (h->proc[i].state == GP_SIM_PROC_ACTIVE) {
				gp_info("sim: process %d is gone; its device memory is released",
					(int)h->proc[i].pid);
				reclaim_locked(h, i, now);
				reclaimed++;
			}
			gp__sim_state_unlock();
		}
		gp_lease_drop(st.shm.fd, i);
	}
	pthread_mutex_unlock(&st.sweep_mu);
	return reclaimed;
}

int gp__sim_proc_attach(void)
{
	struct gp_sim_hdr *h = st.hdr;
	int rc;

	if (!h)
		return -ENODEV;
	if (st.slot >= 0)
		return 0;
	for (unsigned i = 0; i < GP_SIM_STATE_PROCS; i++) {
		if (gp_lease_take(st.shm.fd, i) != 0)
			continue;
		rc = gp__sim_state_lock();
		if (rc) {
			gp_lease_drop(st.shm.fd, i);
			return rc;
		}
		if (h->proc[i].state == GP_SIM_PROC_ACTIVE) /* its owner died */
			reclaim_locked(h, i, gp_now_ns());
		memset(&h->proc[i], 0, sizeof h->proc[i]);
		h->proc[i].state = GP_SIM_PROC_ACTIVE;
		h->proc[i].pid = (int32_t)getpid();
		h->proc[i].attached_ns = gp_now_ns();
		gp__sim_state_unlock();
		st.slot = (int)i;
		return 0;
	}
	gp_error("sim: all %d process slots of the machine are taken", GP_SIM_STATE_PROCS);
	return -ENOSPC;
}

/* One attempt; -ENOMEM if the device is full. */
static int charge_once(unsigned dev, uint64_t bytes)
{
	struct gp_sim_hdr *h = st.hdr;
	struct gp_sim_devstate *d = &h->dev[dev];
	uint64_t total = h->cfg.gpu[dev].memory;
	int rc = gp__sim_state_lock();

	if (rc)
		return rc;
	if (bytes > total || GP_SIM_DRIVER_RESERVED + d->used > total - bytes) {
		gp__sim_state_unlock();
		return -ENOMEM;
	}
	/* Per-process figure first: repair() trusts it. */
	h->proc[st.slot].used[dev] += bytes;
	d->used += bytes;
	gp__sim_state_unlock();
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
	 * limit: this is the allocation that would fail). */
	if (rc == -ENOMEM && gp__sim_sweep(0) > 0)
		rc = charge_once(dev, bytes);
	return rc;
}

void gp__sim_uncharge(unsigned dev, uint64_t bytes)
{
	struct gp_sim_hdr *h = st.hdr;
	uint64_t *mine;

	if (!h || st.slot < 0 || dev >= h->cfg.n || bytes == 0)
		return;
	if (gp__sim_state_lock())
		return;
	mine = &h->proc[st.slot].used[dev];
	if (bytes > *mine) /* never more than we hold: no underflow */
		bytes = *mine;
	*mine -= bytes;
	h->dev[dev].used = h->dev[dev].used >= bytes ? h->dev[dev].used - bytes : 0;
	gp__sim_state_unlock();
}

void gp__sim_count_context(unsigned dev, int delta)
{
	struct gp_sim_hdr *h = st.hdr;
	uint32_t *n;

	if (!h || st.slot < 0 || dev >= h->cfg.n)
		return;
	if (gp__sim_state_lock())
		return;
	n = &h->proc[st.slot].contexts[dev];
	if (delta > 0)
		*n += (uint32_t)delta;
	else
		*n = *n >= (uint32_t)-delta ? *n - (uint32_t)-delta : 0;
	gp__sim_state_unlock();
}

uint64_t gp__sim_dev_used(unsigned dev)
{
	struct gp_sim_hdr *h = st.hdr;
	uint64_t used;

	if (!h || dev >= h->cfg.n)
		return 0;
	gp__sim_sweep(GP_SIM_SWEEP_INTERVAL_NS);
	if (gp__sim_state_lock())
		return __atomic_load_n(&h->dev[dev].used, __ATOMIC_RELAXED);
	used = h->dev[dev].used;
	gp__sim_state_unlock();
	return used;
}

unsigned gp__sim_dev_procs(unsigned dev, struct gp_sim_procinfo *out, unsigned cap)
{
	struct gp_sim_hdr *h = st.hdr;
	unsigned n = 0;

	if (!h || dev >= h->cfg.n)
		return 0;
	gp__sim_sweep(GP_SIM_SWEEP_INTERVAL_NS);
	if (gp__sim_state_lock())
		return 0;
	for (unsigned i = 0; i < GP_SIM_STATE_PROCS; i++) {
		const struct gp_sim_proc *p = &h->proc[i];
		if (p->state != GP_SIM_PROC_ACTIVE || (!p->contexts[dev] && !p->used[dev]))
			continue;
		if (n < cap) {
			out[n].pid = p->pid;
			out[n].used = p->used[dev];
			out[n].contexts = p->contexts[dev];
		}
		n++;
	}
	gp__sim_state_unlock();
	return n;
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
