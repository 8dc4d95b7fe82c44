/* node.c - see node.h. */
#include "region/node.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/lease.h"

static int node_init(void *base, size_t size, void *arg)
{
	struct gp_node_hdr *h = base;
	struct timespec ts;

	(void)arg;
	(void)size;
	clock_gettime(CLOCK_REALTIME, &ts);
	h->version = GP_NODE_VERSION;
	h->size = sizeof *h;
	h->nslots = GP_NODE_SLOTS;
	h->created_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	__atomic_store_n(&h->magic, GP_NODE_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

static int node_check(const void *base, size_t size, void *arg)
{
	const struct gp_node_hdr *h = base;

	(void)arg;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != GP_NODE_MAGIC ||
	    h->version != GP_NODE_VERSION || h->size != size || h->nslots != GP_NODE_SLOTS ||
	    h->used > GP_NODE_SLOTS)
		return -EPROTO;
	return 0;
}

int gp_node_open(struct gp_node *n, const char *path)
{
	int rc;

	if (!path)
		return -EINVAL;
	rc = gp_shm_open(&n->shm, path, sizeof(struct gp_node_hdr), node_init, node_check, NULL);
	if (rc)
		return rc;
	/* Every tenant on the node writes its own slots, whatever its user:
	 * whoever created the file opens it to all (others cannot chmod it,
	 * and need not). */
	(void)fchmod(n->shm.fd, 0666);
	n->hdr = n->shm.base;
	memset(n->mine, 0, sizeof n->mine);
	return 0;
}

static int is_mine(const struct gp_node *n, unsigned i)
{
	return (n->mine[i / 64] >> (i % 64)) & 1;
}

int gp_node_take(struct gp_node *n, const struct gp_node_slot *tmpl)
{
	struct gp_node_hdr *h = n->hdr;
	int found = -ENOSPC;

	if (!h)
		return -ENODEV;
	pthread_mutex_lock(&n->take_lock);
	for (unsigned i = 0; i < GP_NODE_SLOTS; i++) {
		struct gp_node_slot *s = &h->slot[i];
		uint32_t used;

		/* A slot of a live process is skipped at the lease; our own
		 * slots would not be (our leases never conflict with us). */
		if (is_mine(n, i) || gp_lease_take(n->shm.fd, i) != 0)
			continue;
		/* Ours now.  A dead owner's demand is cleared before the slot
		 * names another card, so no reader charges it to this one. */
		__atomic_store_n(&s->want_until_ns, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->active_ns, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->card, tmpl->card, __ATOMIC_RELAXED);
		__atomic_store_n(&s->tenant, tmpl->tenant, __ATOMIC_RELAXED);
		__atomic_store_n(&s->pid, tmpl->pid, __ATOMIC_RELAXED);
		__atomic_store_n(&s->core_limit, tmpl->core_limit, __ATOMIC_RELAXED);
		__atomic_store_n(&s->core_policy, tmpl->core_policy, __ATOMIC_RELAXED);
		__atomic_store_n(&s->priority, tmpl->priority, __ATOMIC_RELAXED);
		__atomic_add_fetch(&s->gen, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&s->state, GP_NODE_ACTIVE, __ATOMIC_RELEASE);
		used = __atomic_load_n(&h->used, __ATOMIC_RELAXED);
		while (used < i + 1 && !__atomic_compare_exchange_n(&h->used, &used, i + 1, 0,
								    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			;
		n->mine[i / 64] |= 1ULL << (i % 64);
		found = (int)i;
		break;
	}
	pthread_mutex_unlock(&n->take_lock);
	return found;
}

int gp_node_alive(struct gp_node *n, unsigned i)
{
	struct gp_node_slot *s;
	int rc;

	if (!n->hdr || i >= GP_NODE_SLOTS)
		return -EINVAL;
	if (is_mine(n, i))
		return 0;
	rc = gp_lease_held(n->shm.fd, i);
	if (rc != 0)
		return rc;
	/* Dead: take the lease to free the slot, unless a new owner got
	 * there first (then it is alive after all). */
	pthread_mutex_lock(&n->take_lock);
	if (gp_lease_take(n->shm.fd, i) != 0) {
		pthread_mutex_unlock(&n->take_lock);
		return 1;
	}
	s = &n->hdr->slot[i];
	__atomic_store_n(&s->want_until_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->active_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, GP_NODE_FREE, __ATOMIC_RELEASE);
	gp_lease_drop(n->shm.fd, i);
	pthread_mutex_unlock(&n->take_lock);
	return 0;
}

int gp_node_forked(struct gp_node *n)
{
	int rc;

	n->take_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	memset(n->mine, 0, sizeof n->mine);
	if (!n->hdr)
		return 0;
	rc = gp_shm_reopen(&n->shm);
	if (rc) {
		gp_shm_close(&n->shm);
		n->hdr = NULL;
	}
	return rc;
}

uint64_t gp_node_card(const char *uuid)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *uuid; uuid++)
		h = (h ^ (unsigned char)*uuid) * 0x100000001b3ULL;
	return h ? h : 1;
}
