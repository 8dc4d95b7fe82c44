/* init.c - the hook's process state: configuration, the region, the visible
 * devices, cuInit, and what happens across fork.
 *
 * Failing closed: if the configuration does not parse, the region cannot be
 * used, or the region records a different budget for a GPU, the hook says
 * why on stderr and every accounted entry point (cuInit first) returns
 * CUDA_ERROR_NOT_INITIALIZED without reaching the driver.  Since the real
 * cuInit then never ran, the driver refuses everything else by itself: the
 * program can not end up running without its limits.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/parse.h"
#include "hook/hook.h"
#include "hook/limitwarn.h"

extern char **environ;

struct gp__state gp__g = {
	.ready = 0,
	.boot_rc = 0,
	.region = GP_REGION_INIT,
	.node = GP_NODE_INIT,
	.ndev = -1,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_once_t boot_once = PTHREAD_ONCE_INIT;
static int atfork_rc; /* pthread_atfork's answer at load */

static void atfork_prepare(void);
static void atfork_parent(void);
static void atfork_child(void);

/* The fork handlers are registered when the library is loaded, not at the
 * first CUDA call: a process that forks before using CUDA must share its
 * private region with its children (atfork_prepare). */
__attribute__((constructor)) static void register_atfork(void)
{
	atfork_rc = pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static void boot(void)
{
	char err[512];
	int rc;

	gp_log_setup(GP_LOG_WARN, "hook");
	rc = gp__config_parse(&gp__g.cfg, environ, err, sizeof err);
	if (rc) {
		gp_error("invalid configuration: %s; refusing to initialise CUDA", err);
		gp__g.boot_rc = rc;
		return;
	}
	gp_log_setup(gp__g.cfg.log_level, "hook");
	rc = gp_region_open(&gp__g.region, gp__g.cfg.region);
	if (rc) {
		gp_error("cannot use region %s: %s; refusing to initialise CUDA",
			 gp__g.cfg.region ? gp__g.cfg.region : "(private)",
			 rc == -EPROTO ? "not a gpupool region of this version, or corrupt"
				       : strerror(-rc));
		gp__g.boot_rc = rc;
		return;
	}
	/* Without the node file the limits still hold (elastic ones act as
	 * hard) and nobody is held back by priority: worth a warning, not a
	 * refusal to run. */
	if (gp__g.cfg.node && (rc = gp_node_open(&gp__g.node, gp__g.cfg.node)))
		gp_warn("node file %s: %s; compute shares act as hard limits and priority is not "
			"arbitrated",
			gp__g.cfg.node,
			rc == -EPROTO ? "not a gpupool node file of this version" : strerror(-rc));
	if (atfork_rc) {
		gp_error("cannot register fork handlers: %s; refusing to initialise CUDA",
			 strerror(atfork_rc));
		gp__g.boot_rc = -atfork_rc;
	}
}

int gp__boot(void)
{
	pthread_once(&boot_once, boot);
	return gp__g.boot_rc;
}

/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as NVML spells a UUID. */
static void format_uuid(const CUuuid *u, char *out, size_t n)
{
	const unsigned char *b = (const unsigned char *)u->bytes;

	snprintf(out, n,
		 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

/* Query one device from the driver into *d (no locks held). */
static CUresult probe(int ordinal, struct gp__dev *d)
{
	CUdevice cu;
	CUuuid uuid;
	size_t total;
	CUresult rc;
	const struct gp_limit *lim = &gp__g.cfg.mem[ordinal];

	if ((rc = gp__real_cuDeviceGet(&cu, ordinal)) ||
	    (rc = gp__real_cuDeviceGetUuid_v2(&uuid, cu)) ||
	    (rc = gp__real_cuDeviceTotalMem_v2(&total, cu)))
		return rc;
	memset(d, 0, sizeof *d);
	format_uuid(&uuid, d->uuid, sizeof d->uuid);
	d->physical = total;
	d->limit = gp__config_has_mem(&gp__g.cfg, (unsigned)ordinal)
			   ? gp_limit_bytes(lim, total)
			   : 0;
	gp__limit_warn(&gp__g.cfg, ordinal, total); /* says so if it clamps */
	if (d->limit > total) /* a budget past the card would be a lie (and
				 breaks cuDNN, which trusts the total) */
		d->limit = total;
	return CUDA_SUCCESS;
}

/* Learn the visible devices and register them in the region.  The driver is
 * queried without locks; the result is published under gp__g.lock by
 * whichever thread gets there first. */
static CUresult devices(void)
{
	struct gp__dev found[GP_REGION_MAX_DEVS];
	int n = 0;
	CUresult rc;

	/* What a ready hook calls without checking (cuCtxGetCurrent: every
	 * stamp of activity.c) must be there. */
	if (!gp__real_cuDeviceGetCount || !gp__real_cuDeviceGet || !gp__real_cuDeviceGetUuid_v2 ||
	    !gp__real_cuDeviceTotalMem_v2 || !gp__real_cuCtxGetCurrent)
		return CUDA_ERROR_NOT_INITIALIZED;
	rc = gp__real_cuDeviceGetCount(&n);
	if (rc)
		return rc;
	if (n > (int)GP_REGION_MAX_DEVS) {
		gp_warn("%d devices visible; only the first %u can be used under gpupool", n,
			GP_REGION_MAX_DEVS);
		n = GP_REGION_MAX_DEVS;
	}
	for (int i = 0; i < n; i++)
		if ((rc = probe(i, &found[i])))
			return rc;

	pthread_mutex_lock(&gp__g.lock);
	if (gp__g.ndev >= 0)
		goto out; /* another thread published first */
	for (int i = 0; i < n; i++) {
		int slot = gp_region_device(&gp__g.region, found[i].uuid, found[i].limit,
					    found[i].physical);
		if (slot < 0) {
			gp_error("region %s: %s for %s; refusing to initialise CUDA",
				 gp__g.cfg.region ? gp__g.cfg.region : "(private)",
				 slot == -EEXIST ? "another process of this tenant set a different "
						   "memory limit"
						 : "no room for another device",
				 found[i].uuid);
			gp__g.boot_rc = slot;
			rc = CUDA_ERROR_NOT_INITIALIZED;
			goto out;
		}
		found[i].slot = slot;
		gp__g.dev[i] = found[i];
		pthread_mutex_init(&gp__g.dev[i].ctx_lock, NULL);
		gp__share_setup(i);
		if (found[i].limit) {
			char a[32], b[32];
			gp_info("device %d (%s): budget %s of %s", i, found[i].uuid,
				gp_format_size(found[i].limit, a, sizeof a),
				gp_format_size(found[i].physical, b, sizeof b));
		}
	}
	__atomic_store_n(&gp__g.ndev, n, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&gp__g.lock);
	return rc;
}

CUresult gp__enter_slow(void)
{
	CUresult rc;

	if (gp__boot())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (gp__resolve(GP_LIB_CUDA))
		return CUDA_ERROR_NOT_INITIALIZED;
	if (__atomic_load_n(&gp__g.ndev, __ATOMIC_ACQUIRE) < 0 && (rc = devices()))
		return rc;
	if (gp__g.boot_rc)
		return CUDA_ERROR_NOT_INITIALIZED;
	__atomic_store_n(&gp__g.ready, 1, __ATOMIC_RELEASE);
	return CUDA_SUCCESS;
}

CUresult gp__current(int *dev, CUcontext *ctx)
{
	CUcontext c;
	CUdevice d;
	CUresult rc;

	GP_NEED_REAL(cuCtxGetCurrent);
	rc = gp__real_cuCtxGetCurrent(&c);
	if (rc)
		return rc;
	if (!c)
		return CUDA_ERROR_INVALID_CONTEXT;
	*ctx = c;
	/* Most allocations happen in a primary context: find it without
	 * asking the driver. */
	for (int i = 0; i < gp__g.ndev; i++) {
		if (__atomic_load_n(&gp__g.dev[i].primary, __ATOMIC_RELAXED) == c) {
			*dev = i;
			return CUDA_SUCCESS;
		}
	}
	GP_NEED_REAL(cuCtxGetDevice);
	rc = gp__real_cuCtxGetDevice(&d);
	if (rc == CUDA_SUCCESS)
		*dev = (int)d;
	return rc;
}

GP_EXPORT CUresult CUDAAPI cuInit(unsigned int flags)
{
	CUresult rc;

	if (gp__boot())
		return CUDA_ERROR_NOT_INITIALIZED;
	GP_NEED_REAL(cuInit);
	rc = gp__real_cuInit(flags);
	if (rc != CUDA_SUCCESS)
		return rc;
	return gp__enter();
}

/* Fork: the prepare handler takes every lock of the hook so that no table
 * is half-updated when the address space is copied; the child then drops
 * what it inherited.  A child owns none of its parent's CUDA objects and,
 * as with the real driver, cannot use its parent's contexts: it starts
 * with empty tables and takes its own region slot on its first charge. */
/* Does the environment give this process a memory budget? */
static int has_budget(void)
{
	for (char **e = environ; e && *e; e++)
		if (strncmp(*e, "GPUPOOL_MEMORY_LIMIT", 20) == 0 ||
		    strncmp(*e, "CUDA_DEVICE_MEMORY_LIMIT", 24) == 0)
			return 1;
	return 0;
}

static void atfork_prepare(void)
{
	/* A budget without GPUPOOL_REGION lives in a region private to the
	 * process and its forked children: it must exist before the first
	 * fork, or each child would make one of its own and get a whole
	 * budget (processes without a budget skip this). */
	if (has_budget())
		(void)gp__boot();
	pthread_mutex_lock(&gp__g.lock);
	gp__pools_atfork(GP_FORK_PREPARE);
	gp__graphs_atfork(GP_FORK_PREPARE);
	for (int s = 0; s < GP_S_COUNT; s++)
		gp__tab_lock_all(&gp__tabs[s]);
}

static void atfork_parent(void)
{
	for (int s = GP_S_COUNT; s-- > 0;)
		gp__tab_unlock_all(&gp__tabs[s]);
	gp__graphs_atfork(GP_FORK_PARENT);
	gp__pools_atfork(GP_FORK_PARENT);
	pthread_mutex_unlock(&gp__g.lock);
}

static void atfork_child(void)
{
	for (int s = 0; s < GP_S_COUNT; s++)
		gp__tab_reset(&gp__tabs[s]);
	gp__graphs_atfork(GP_FORK_CHILD);
	gp__pools_atfork(GP_FORK_CHILD);
	for (unsigned i = 0; i < GP_REGION_MAX_DEVS; i++) {
		gp__g.dev[i].ctx_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
		gp__g.dev[i].primary_refs = 0;
		gp__g.dev[i].primary_active = 0;
		gp__g.dev[i].primary_charge = 0;
		gp__g.dev[i].primary = NULL;
	}
	gp__g.lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	gp__act_forget(); /* the parent's contexts are not the child's */
	gp__meter_atfork(GP_FORK_CHILD);
	gp__share_atfork(GP_FORK_CHILD);
	if (gp_region_forked(&gp__g.region)) {
		/* Without its own open file description the child cannot hold
		 * a lease of its own: refuse rather than share its parent's. */
		gp__g.boot_rc = -EBADF;
		gp__g.ready = 0;
	}
}
