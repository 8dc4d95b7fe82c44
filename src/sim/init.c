/* init.c - cuInit and what it sets up for the whole process: the machine,
 * the visible devices, the process slot, the process lock and what a
 * forked child inherits of all that.
 *
 * Like the real driver, a child forked from a process that had initialised
 * CUDA cannot use it: every call there returns CUDA_ERROR_NOT_INITIALIZED
 * (cuInit included).  A child whose parent never called cuInit initialises
 * and works normally, with a process slot of its own.
 */
#include "sim/sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/log.h"
#include "sim/state.h"
#include "sim/visible.h"

enum { NOT_READY = 0, READY = 1, FORKED = 2 };

static pthread_mutex_t big = PTHREAD_MUTEX_INITIALIZER;

static struct {
	pthread_mutex_t mu;       /* serialises cuInit */
	int done;                 /* cuInit ran (its result is final) */
	CUresult result;
	int ready;                /* NOT_READY, READY or FORKED (atomic) */
	int nvis;                 /* visible devices */
	int vis[GP_SIM_GPUS_MAX]; /* ordinal -> machine index */
} init = {.mu = PTHREAD_MUTEX_INITIALIZER};

void gp__sim_lock(void)
{
	pthread_mutex_lock(&big);
}

void gp__sim_unlock(void)
{
	pthread_mutex_unlock(&big);
}

CUresult gp__sim_ready(void)
{
	return __atomic_load_n(&init.ready, __ATOMIC_ACQUIRE) == READY
		       ? CUDA_SUCCESS
		       : CUDA_ERROR_NOT_INITIALIZED;
}

int gp__sim_visible_count(void)
{
	return init.nvis;
}

int gp__sim_visible_index(int ordinal)
{
	return ordinal >= 0 && ordinal < init.nvis ? init.vis[ordinal] : -1;
}

int gp__sim_visible_ordinal(int index)
{
	for (int i = 0; i < init.nvis; i++)
		if (init.vis[i] == index)
			return i;
	return -1;
}

/* fork(2) while another thread holds the process lock would leave the
 * child's copy locked forever: hold it across the fork. */
static void before_fork(void)
{
	pthread_mutex_lock(&big);
}

static void after_fork_parent(void)
{
	pthread_mutex_unlock(&big);
}

static void after_fork_child(void)
{
	pthread_mutex_unlock(&big);
	init.mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	/* The child of an initialised process: CUDA is not usable here. */
	__atomic_store_n(&init.ready, FORKED, __ATOMIC_RELEASE);
	init.done = 1;
	init.result = CUDA_ERROR_NOT_INITIALIZED;
}

/* The work of the first cuInit; the result is final for the process. */
static CUresult first_init(void)
{
	struct gp_sim_hdr *h;
	int rc;

	rc = gp__sim_machine_open();
	if (rc == -EINVAL || rc == -EPROTO)
		return CUDA_ERROR_INVALID_VALUE;
	if (rc)
		return CUDA_ERROR_OPERATING_SYSTEM;
	h = gp__sim_machine();
	init.nvis = gp__sim_visible_parse(getenv("CUDA_VISIBLE_DEVICES"), &h->cfg, init.vis);
	if (init.nvis == 0) {
		gp_info("sim: CUDA_VISIBLE_DEVICES leaves no device visible");
		return CUDA_ERROR_NO_DEVICE;
	}
	rc = gp__sim_proc_attach();
	if (rc)
		return rc == -ENOSPC ? CUDA_ERROR_DEVICE_UNAVAILABLE : CUDA_ERROR_OPERATING_SYSTEM;
	(void)gp__sim_sweep(GP_SIM_SWEEP_INTERVAL_NS);
	if (pthread_atfork(before_fork, after_fork_parent, after_fork_child))
		return CUDA_ERROR_OPERATING_SYSTEM;
	return CUDA_SUCCESS;
}

CUresult cuInit(unsigned int Flags)
{
	CUresult rc;

	if (__atomic_load_n(&init.ready, __ATOMIC_ACQUIRE) == FORKED)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (Flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&init.mu);
	if (!init.done) {
		init.result = first_init();
		init.done = 1;
		if (init.result == CUDA_SUCCESS)
			__atomic_store_n(&init.ready, READY, __ATOMIC_RELEASE);
	}
	rc = init.result;
	pthread_mutex_unlock(&init.mu);
	return rc;
}

CUresult cuDriverGetVersion(int *driverVersion)
{
	if (!driverVersion)
		return CUDA_ERROR_INVALID_VALUE;
	*driverVersion = GP_SIM_DRIVER_VERSION;
	return CUDA_SUCCESS;
}
