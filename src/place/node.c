/* node.c - the node model: construction, read-back, commit and release.
 *
 * Every change goes through gp__node_refresh(), which recomputes the
 * compact state the policies read and bumps the node's version, so that a
 * placer's caches can never serve a stale answer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "place/pl_int.h"

static _Atomic uint64_t next_uid = 1;

/* --- the summary table (pl_int.h, "the dense summary table") -------------
 *
 * At most GP__SLOT_CHUNKS * GP__SLOT_CHUNK nodes at once have a slot; past
 * that a node has none and decisions read it the slow way.  A node takes
 * the lowest free slot, so that a cluster built after another was freed
 * lies in creation order again.  The lock guards the bitmaps, slot_low and
 * the creation of chunks; an entry's fields other than `owner` are written
 * only by whoever uses its node. */
_Atomic(struct gp__slot_chunk *) gp__slot_dir[GP__SLOT_CHUNKS];
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t slot_low;   /* no free slot below this one */

/* Give node n the lowest free slot, or GP__NO_SLOT when the table is full
 * or a chunk cannot be allocated (the node then works without one). */
static uint32_t slot_take(struct gp_node *n)
{
	uint32_t got = GP__NO_SLOT;
	uint64_t name8 = 0;

	for (unsigned i = 0; i < 8 && n->name[i]; i++)
		name8 |= (uint64_t)(unsigned char)n->name[i] << (56 - 8 * i);
	pthread_mutex_lock(&slot_lock);
	for (uint32_t c = slot_low >> GP__SLOT_CHUNK_BITS; c < GP__SLOT_CHUNKS && got == GP__NO_SLOT; c++) {
		struct gp__slot_chunk *ch = atomic_load_explicit(&gp__slot_dir[c], memory_order_relaxed);
		unsigned w0 = c == slot_low >> GP__SLOT_CHUNK_BITS ? (slot_low & (GP__SLOT_CHUNK - 1)) / 64 : 0;

		if (!ch) {
			if (!(ch = calloc(1, sizeof *ch)))
				break;
			atomic_store_explicit(&gp__slot_dir[c], ch, memory_order_release);
		}
		for (unsigned w = w0; w < GP__SLOT_CHUNK / 64; w++)
			if (~ch->used[w]) {
				unsigned b = (unsigned)__builtin_ctzll(~ch->used[w]);

				ch->used[w] |= 1ull << b;
				got = (c << GP__SLOT_CHUNK_BITS) + w * 64 + b;
				ch->name8[got & (GP__SLOT_CHUNK - 1)] = name8;
				atomic_store_explicit(&ch->hot[got & (GP__SLOT_CHUNK - 1)].owner, n, memory_order_relaxed);
				slot_low = got + 1;
				break;
			}
	}
	pthread_mutex_unlock(&slot_lock);
	return got;
}

static void slot_give(uint32_t slot)
{
	struct gp__slot_chunk *ch;
	uint32_t i = slot & (GP__SLOT_CHUNK - 1);

	if (slot == GP__NO_SLOT)
		return;
	ch = gp__slot_chunk_of(slot);
	pthread_mutex_lock(&slot_lock);
	atomic_store_explicit(&ch->hot[i].owner, NULL, memory_order_relaxed);
	ch->used[i / 64] &= ~(1ull << (i % 64));
	if (slot < slot_low)
		slot_low = slot;
	pthread_mutex_unlock(&slot_lock);
}

/* Copy what decisions read of every candidate into n's entry. */
static void slot_publish(const struct gp_node *n)
{
	struct gp__hot *h;

	if (n->slot == GP__NO_SLOT)
		return;
	h = &gp__slot_chunk_of(n->slot)->hot[n->slot & (GP__SLOT_CHUNK - 1)];
	h->uid = n->uid;
	h->version = n->version;
	h->cpu_free = n->st.cpu_free;
	h->mem_free = n->st.mem_free;
	h->class_hash = n->class_hash;
	h->model0 = n->ngpu ? n->gpu[0].model_hash : 0;
	h->free_compute = n->free_compute;
	h->max_free_c = (uint16_t)n->max_free_c;
	h->ngpu = (uint8_t)n->ngpu;
	h->flags = (uint8_t)((n->plain ? GP__HOT_PLAIN : 0) | (n->uniform ? GP__HOT_UNIFORM : 0));
}

uint64_t gp__hash_ci(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 0x100000001b3ull;
	}
	return h;
}

uint64_t gp__hash_mix(uint64_t h, uint64_t v)
{
	/* splitmix64's finaliser over the running hash: cheap and well mixed */
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

void gp__node_refresh(struct gp_node *n)
{
	struct gp__nstate *s = &n->st;

	s->cpu_free = n->cpu ? n->cpu - n->cpu_used : UINT64_MAX;
	s->mem_free = n->mem ? n->mem - n->mem_used : UINT64_MAX;
	s->ngpu = n->ngpu;
	n->cap_compute = n->free_compute = n->max_free_c = n->idle_gpus = 0;
	n->uniform = true;
	n->plain = true;
	for (unsigned i = 0; i < n->ngpu; i++) {
		const struct gp__gpu *g = &n->gpu[i];
		struct gp__gstate *gs = &s->g[i];

		gs->cap_m = g->mem;
		gs->cap_c = g->compute;
		gs->numa = g->numa;
		gs->usable = !g->unhealthy;
		gs->idle = g->tenants == 0 && !g->exclusive;
		if (g->exclusive) {
			gs->free_m = 0;
			gs->free_c = 0;
			gs->free_t = 0;
		} else {
			gs->free_m = g->mem - g->mem_used;
			gs->free_c = (uint16_t)(g->compute - g->compute_used);
			gs->free_t = (uint16_t)(g->slices - g->tenants);
		}
		if (i > 0 && g->model_hash != n->gpu[0].model_hash)
			n->uniform = false;
		if (!gs->usable || g->exclusive)
			n->plain = false;
		if (!gs->usable)
			continue;
		n->cap_compute += g->compute;
		n->free_compute += gs->free_c;
		if (gs->free_c > n->max_free_c)
			n->max_free_c = gs->free_c;
		n->idle_gpus += gs->idle;
	}
	n->class_hash = n->ngpu ? gp__hash_mix(gp__hash_mix(n->gpu[0].model_hash, n->ngpu),
					       gp__hash_mix(n->cpu, n->mem))
				: 0;
	n->version++;
	slot_publish(n);
}

int gp_node_new(struct gp_node **out, const char *name, uint64_t cpu_milli, uint64_t cpu_used,
		uint64_t mem_bytes, uint64_t mem_used)
{
	struct gp_node *n;
	size_t len = name ? strlen(name) : 0;

	*out = NULL;
	if (len == 0 || len >= GP_NAME_MAX)
		return -EINVAL;
	if ((cpu_milli && cpu_used > cpu_milli) || (mem_bytes && mem_used > mem_bytes))
		return -EINVAL;
	n = calloc(1, sizeof *n);
	if (!n)
		return -ENOMEM;
	memcpy(n->name, name, len + 1);
	n->cpu = cpu_milli;
	n->cpu_used = cpu_milli ? cpu_used : 0;
	n->mem = mem_bytes;
	n->mem_used = mem_bytes ? mem_used : 0;
	n->uid = atomic_fetch_add(&next_uid, 1);
	n->slot = slot_take(n);
	gp__node_refresh(n);
	*out = n;
	return 0;
}

void gp_node_free(struct gp_node *n)
{
	if (!n)
		return;
	slot_give(n->slot);
	free(n);
}

/* Copy an identifier, refusing what does not fit or holds control
 * characters (they would end up in annotations and reasons). */
static int copy_id(char *dst, const char *src, const char *what, char *err, size_t errlen)
{
	size_t len = strlen(src);

	if (len >= GP_ID_MAX) {
		gp__why(err, errlen, "%s is %zu bytes long, the most is %u", what, len, GP_ID_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) {
			gp__why(err, errlen, "%s holds a control character", what);
			return -EINVAL;
		}
	memcpy(dst, src, len + 1);
	return 0;
}

int gp_node_add_gpu(struct gp_node *n, const struct gp_gpu *g, char *err, size_t errlen)
{
	struct gp__gpu *d;
	unsigned i = n->ngpu;
	unsigned compute = g->compute ? g->compute : 100;
	unsigned slices = g->slices ? g->slices : 1;
	int rc;

	if (i >= GP_MAX_GPUS) {
		gp__why(err, errlen, "node %s has %u GPUs already, the most", n->name, GP_MAX_GPUS);
		return -ENOSPC;
	}
	if (g->mem_bytes == 0) {
		gp__why(err, errlen, "GPU %u: memory size is 0", i);
		return -EINVAL;
	}
	if (compute > 1000) {
		gp__why(err, errlen, "GPU %u: compute %u is over 1000 (100 = one GPU)", i, compute);
		return -EINVAL;
	}
	if (slices > GP_MAX_SLICES) {
		gp__why(err, errlen, "GPU %u: %u slices, the most is %u", i, slices, GP_MAX_SLICES);
		return -EINVAL;
	}
	if (g->mem_used > g->mem_bytes || g->compute_used > compute || g->tenants > slices) {
		gp__why(err, errlen, "GPU %u: more allocated than it has (memory %llu/%llu, compute %u/%u, tenants %u/%u)",
			i, (unsigned long long)g->mem_used, (unsigned long long)g->mem_bytes,
			g->compute_used, compute, g->tenants, slices);
		return -EINVAL;
	}
	if (g->numa < -1 || g->numa > 1023) {
		gp__why(err, errlen, "GPU %u: NUMA node %d out of range -1..1023", i, g->numa);
		return -EINVAL;
	}
	d = &n->gpu[i];
	memset(d, 0, sizeof *d);
	if (g->uuid && g->uuid[0]) {
		if ((rc = copy_id(d->uuid, g->uuid, "GPU UUID", err, errlen)) < 0)
			return rc;
		if (gp_node_find_gpu(n, d->uuid) >= 0) {
			gp__why(err, errlen, "GPU UUID %s appears twice", d->uuid);
			return -EINVAL;
		}
	} else {
		snprintf(d->uuid, sizeof d->uuid, "gpu%u", i);
	}
	if (g->model && (rc = copy_id(d->model, g->model, "GPU model", err, errlen)) < 0)
		return rc;
	d->model_hash = gp__hash_ci(d->model);
	d->mem = g->mem_bytes;
	d->mem_used = g->mem_used;
	d->compute = (uint16_t)compute;
	d->compute_used = (uint16_t)g->compute_used;
	d->slices = (uint16_t)slices;
	d->tenants = (uint16_t)g->tenants;
	d->numa = (int16_t)g->numa;
	d->unhealthy = g->unhealthy;
	d->exclusive = g->exclusive;
	for (unsigned j = 0; j < GP_MAX_GPUS; j++)
		n->link[i][j] = n->link[j][i] = 0;
	n->ngpu++;
	gp__node_refresh(n);
	return (int)i;
}

int gp_node_set_link(struct gp_node *n, unsigned a, unsigned b, unsigned score)
{
	if (a >= n->ngpu || b >= n->ngpu || a == b || score > UINT16_MAX)
		return -EINVAL;
	n->link[a][b] = n->link[b][a] = (uint16_t)score;
	n->has_links = false;
	for (unsigned i = 0; i < n->ngpu && !n->has_links; i++)
		for (unsigned j = 0; j < n->ngpu; j++)
			if (n->link[i][j]) {
				n->has_links = true;
				break;
			}
	n->version++;
	slot_publish(n);
	return 0;
}

int gp_node_set_host_used(struct gp_node *n, uint64_t cpu_used, uint64_t mem_used)
{
	if ((n->cpu && cpu_used > n->cpu) || (n->mem && mem_used > n->mem))
		return -EINVAL;
	n->cpu_used = n->cpu ? cpu_used : 0;
	n->mem_used = n->mem ? mem_used : 0;
	gp__node_refresh(n);
	return 0;
}

const char *gp_node_name(const struct gp_node *n)
{
	return n->name;
}

unsigned gp_node_gpu_count(const struct gp_node *n)
{
	return n->ngpu;
}

int gp_node_gpu(const struct gp_node *n, unsigned i, struct gp_gpu *out)
{
	const struct gp__gpu *g;

	if (i >= n->ngpu)
		return -EINVAL;
	g = &n->gpu[i];
	*out = (struct gp_gpu){
		.uuid = g->uuid,
		.model = g->model,
		.mem_bytes = g->mem,
		.compute = g->compute,
		.slices = g->slices,
		.numa = g->numa,
		.unhealthy = g->unhealthy,
		.mem_used = g->mem_used,
		.compute_used = g->compute_used,
		.tenants = g->tenants,
		.exclusive = g->exclusive,
	};
	return 0;
}

int gp_node_find_gpu(const struct gp_node *n, const char *uuid)
{
	for (unsigned i = 0; i < n->ngpu; i++)
		if (strcasecmp(n->gpu[i].uuid, uuid) == 0)
			return (int)i;
	return -1;
}

uint64_t gp_node_cpu_free(const struct gp_node *n)
{
	return n->st.cpu_free;
}

uint64_t gp_node_mem_free(const struct gp_node *n)
{
	return n->st.mem_free;
}

/* Is the plan's shape valid for this node (indices, sizes)? */
static bool plan_valid(const struct gp_node *n, const struct gp_plan *p)
{
	if (p->gpumask >> n->ngpu)
		return false;
	for (unsigned i = 0; i < GP_MAX_GPUS; i++)
		if (!(p->gpumask & (1u << i)) &&
		    (p->hold[i].compute || p->hold[i].tenants || p->hold[i].mem_bytes || p->hold[i].exclusive))
			return false;
	return true;
}

int gp_node_commit(struct gp_node *n, const struct gp_plan *p)
{
	if (!plan_valid(n, p))
		return -EINVAL;
	if ((n->cpu && p->cpu_milli > n->cpu - n->cpu_used) ||
	    (n->mem && p->mem_bytes > n->mem - n->mem_used))
		return -ENOSPC;
	for (unsigned i = 0; i < n->ngpu; i++) {
		const struct gp_hold *h = &p->hold[i];
		const struct gp__gpu *g = &n->gpu[i];

		if (!(p->gpumask & (1u << i)))
			continue;
		if (g->exclusive || (h->exclusive && g->tenants) || g->unhealthy ||
		    h->mem_bytes > g->mem - g->mem_used ||
		    h->compute > g->compute - g->compute_used ||
		    h->tenants > g->slices - g->tenants)
			return -ENOSPC;
	}
	for (unsigned i = 0; i < n->ngpu; i++) {
		const struct gp_hold *h = &p->hold[i];
		struct gp__gpu *g = &n->gpu[i];

		if (!(p->gpumask & (1u << i)))
			continue;
		g->mem_used += h->mem_bytes;
		g->compute_used = (uint16_t)(g->compute_used + h->compute);
		g->tenants = (uint16_t)(g->tenants + h->tenants);
		if (h->exclusive)
			g->exclusive = true;
	}
	if (n->cpu)
		n->cpu_used += p->cpu_milli;
	if (n->mem)
		n->mem_used += p->mem_bytes;
	gp__node_refresh(n);
	return 0;
}

int gp_node_release(struct gp_node *n, const struct gp_plan *p)
{
	if (!plan_valid(n, p))
		return -EINVAL;
	if ((n->cpu && p->cpu_milli > n->cpu_used) || (n->mem && p->mem_bytes > n->mem_used))
		return -EINVAL;
	for (unsigned i = 0; i < n->ngpu; i++) {
		const struct gp_hold *h = &p->hold[i];
		const struct gp__gpu *g = &n->gpu[i];

		if (!(p->gpumask & (1u << i)))
			continue;
		if (h->mem_bytes > g->mem_used || h->compute > g->compute_used ||
		    h->tenants > g->tenants || (h->exclusive && !g->exclusive))
			return -EINVAL;
	}
	for (unsigned i = 0; i < n->ngpu; i++) {
		const struct gp_hold *h = &p->hold[i];
		struct gp__gpu *g = &n->gpu[i];

		if (!(p->gpumask & (1u << i)))
			continue;
		g->mem_used -= h->mem_bytes;
		g->compute_used = (uint16_t)(g->compute_used - h->compute);
		g->tenants = (uint16_t)(g->tenants - h->tenants);
		if (h->exclusive)
			g->exclusive = false;
	}
	if (n->cpu)
		n->cpu_used -= p->cpu_milli;
	if (n->mem)
		n->mem_used -= p->mem_bytes;
	gp__node_refresh(n);
	return 0;
}
