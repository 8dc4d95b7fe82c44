/* fit.c - does a pod fit a node, and on which GPUs: the core every policy
 * shares, and the reasons it gives when the answer is no.
 *
 * A container is checked alone first, through a fixed sequence of filters
 * (count, type, UUID, health, exclusivity, device memory, compute, tenant
 * slots, NUMA); the first filter that leaves too few cards names the
 * reason.  Then the containers are placed together on a scratch copy of the
 * node's state: app containers, largest first, by a bounded depth-first
 * search (the first branch is the greedy choice), then init containers on
 * top of the app containers' footprint (see placement.h, "Init
 * containers").
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "place/pl_int.h"

/* Depth-first search budget for placing several containers together. */
#define SEARCH_STEPS 4096

static const char *const reject_names[GP_R__COUNT] = {
	[GP_FIT] = "fit",
	[GP_R_CPU] = "cpu",
	[GP_R_MEMORY] = "memory",
	[GP_R_GPU_COUNT] = "gpu-count",
	[GP_R_TYPE] = "type",
	[GP_R_UUID] = "uuid",
	[GP_R_HEALTH] = "health",
	[GP_R_GPU_MEMORY] = "gpu-memory",
	[GP_R_COMPUTE] = "compute",
	[GP_R_SLICES] = "slices",
	[GP_R_EXCLUSIVE] = "exclusive",
	[GP_R_NUMA] = "numa",
	[GP_R_TOGETHER] = "together",
};

static const char *const reject_texts[GP_R__COUNT] = {
	[GP_FIT] = "fits",
	[GP_R_CPU] = "not enough free CPU",
	[GP_R_MEMORY] = "not enough free memory",
	[GP_R_GPU_COUNT] = "not enough GPUs",
	[GP_R_TYPE] = "no GPU of an allowed type",
	[GP_R_UUID] = "no GPU with an allowed UUID",
	[GP_R_HEALTH] = "the GPUs that qualify are unhealthy",
	[GP_R_GPU_MEMORY] = "no GPU with enough free memory",
	[GP_R_COMPUTE] = "no GPU with enough free compute",
	[GP_R_SLICES] = "no GPU with a free tenant slot",
	[GP_R_EXCLUSIVE] = "not enough idle GPUs for exclusive use",
	[GP_R_NUMA] = "not enough GPUs on one NUMA node",
	[GP_R_TOGETHER] = "the containers do not fit together",
};

const char *gp_reject_name(enum gp_reject r)
{
	return (unsigned)r < GP_R__COUNT ? reject_names[r] : "unknown";
}

const char *gp_reject_text(enum gp_reject r)
{
	return (unsigned)r < GP_R__COUNT ? reject_texts[r] : "does not fit";
}

void gp__why(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	int len;

	if (!why || n == 0)
		return;
	va_start(ap, fmt);
	len = vsnprintf(why, n, fmt, ap);
	va_end(ap);
	if (len >= 0 && (size_t)len >= n) {
		/* cut back to the start of a UTF-8 sequence */
		size_t end = n - 1;

		while (end > 0 && ((unsigned char)why[end] & 0xc0) == 0x80)
			end--;
		why[end] = '\0';
	}
}

const char *gp__mib(uint64_t bytes, char *buf, size_t n)
{
	if (bytes >= GP__MIB)
		snprintf(buf, n, "%llu MiB", (unsigned long long)(bytes / GP__MIB));
	else
		snprintf(buf, n, "%llu B", (unsigned long long)bytes);
	return buf;
}

static unsigned popcount16(unsigned m)
{
	return (unsigned)__builtin_popcount(m & 0xffffu);
}

static const char *ctr_label(const struct gp_request *r, const struct gp__ctr *c, char *buf, size_t n)
{
	if (c->name)
		snprintf(buf, n, "container %s: ", gp__str(r, c->name));
	else if (r->nctr > 1)
		snprintf(buf, n, "container %u: ", (unsigned)(c - r->ctr));
	else
		buf[0] = '\0';
	return buf;
}

static const char *plural(unsigned k)
{
	return k == 1 ? "" : "s";
}

/* Join the entries of list l of c with '|' into buf. */
static const char *join_list(const struct gp_request *r, const struct gp__ctr *c, int l, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < c->nlist[l] && off + 1 < n; i++) {
		int w = snprintf(buf + off, n - off, "%s%s", i ? "|" : "", gp__str(r, c->list[l][i]));

		if (w < 0)
			break;
		off += (size_t)w;
	}
	return buf;
}

/* The most NUMA-local cards among mask: the largest count of mask's cards
 * on one NUMA node (cards with an unknown node count alone). */
static unsigned numa_best(const struct gp_node *n, unsigned mask, int *node_out)
{
	unsigned best = 0;
	int best_node = -1;

	for (unsigned i = 0; i < n->ngpu; i++) {
		unsigned cnt = 0;

		if (!(mask & (1u << i)))
			continue;
		if (n->gpu[i].numa < 0) {
			if (!best)
				best = 1;
			continue;
		}
		for (unsigned j = 0; j < n->ngpu; j++)
			cnt += (mask & (1u << j)) && n->gpu[j].numa == n->gpu[i].numa;
		if (cnt > best) {
			best = cnt;
			best_node = n->gpu[i].numa;
		}
	}
	if (node_out)
		*node_out = best_node;
	return best;
}

/* Check container c alone against the node as it stands.  On success
 * stores the cards that qualify in *mask and returns GP_FIT; else returns
 * the reason of the first filter that leaves fewer than c->gpus cards. */
static enum gp_reject check_alone(const struct gp_node *n, const struct gp_request *r, const struct gp__ctr *c,
				  unsigned *mask, char *why, size_t whylen)
{
	char who[GP_ID_MAX + 16], a[48], b[48], list[256];
	unsigned k = c->gpus, m = 0, prev;
	int best = -1;

	ctr_label(r, c, who, sizeof who);
	if (n->ngpu < k) {
		gp__why(why, whylen, "%sneeds %u GPU%s, node has %u", who, k, plural(k), n->ngpu);
		return GP_R_GPU_COUNT;
	}
	/* card type */
	for (unsigned i = 0; i < n->ngpu; i++)
		if (gp__types_accept(r, c, n->gpu[i].model))
			m |= 1u << i;
	if (popcount16(m) < k) {
		const char *model = n->ngpu ? n->gpu[0].model : "";
		bool excluded = false;

		for (unsigned i = 0; i < n->ngpu && !excluded; i++) {
			struct gp__ctr only_in = *c;

			only_in.nlist[GP__L_NO_TYPES] = 0;
			if (gp__types_accept(r, &only_in, n->gpu[i].model)) {
				excluded = true;
				model = n->gpu[i].model;
			}
		}
		if (excluded && popcount16(m) == 0)
			gp__why(why, whylen, "%scard type %s excluded", who, model[0] ? model : "(unnamed)");
		else if (popcount16(m) == 0)
			gp__why(why, whylen, "%sneeds card type %s, node has %s", who,
				join_list(r, c, GP__L_TYPES, list, sizeof list), model[0] ? model : "(unnamed)");
		else
			gp__why(why, whylen, "%sneeds %u GPU%s of an allowed type, node has %u", who, k, plural(k),
				popcount16(m));
		return GP_R_TYPE;
	}
	/* card UUID */
	prev = m;
	for (unsigned i = 0; i < n->ngpu; i++)
		if ((m & (1u << i)) && !gp__ctr_accepts(r, c, &n->gpu[i]))
			m &= ~(1u << i);
	if (popcount16(m) < k) {
		if (c->nlist[GP__L_UUIDS] && popcount16(m) == 0)
			gp__why(why, whylen, "%sneeds GPU %s, not on this node (or excluded)", who,
				join_list(r, c, GP__L_UUIDS, list, sizeof list));
		else if (popcount16(m) == 0 && popcount16(prev) == 1)
			gp__why(why, whylen, "%sGPU %s excluded", who,
				n->gpu[__builtin_ctz(prev)].uuid);
		else
			gp__why(why, whylen, "%sneeds %u GPU%s with an allowed UUID, node has %u", who, k,
				plural(k), popcount16(m));
		return GP_R_UUID;
	}
	/* health */
	prev = m;
	for (unsigned i = 0; i < n->ngpu; i++)
		if (n->gpu[i].unhealthy)
			m &= ~(1u << i);
	if (popcount16(m) < k) {
		gp__why(why, whylen, "%s%u of the %u GPU%s that qualify %s unhealthy", who,
			popcount16(prev) - popcount16(m), popcount16(prev), plural(popcount16(prev)),
			popcount16(prev) - popcount16(m) == 1 ? "is" : "are");
		return GP_R_HEALTH;
	}
	/* exclusivity: our own, or someone else's */
	prev = m;
	for (unsigned i = 0; i < n->ngpu; i++)
		if (n->gpu[i].exclusive || (c->exclusive && !n->st.g[i].idle))
			m &= ~(1u << i);
	if (popcount16(m) < k) {
		if (c->exclusive)
			gp__why(why, whylen, "%sexclusive use needs %u idle GPU%s, node has %u", who, k, plural(k),
				popcount16(m));
		else
			gp__why(why, whylen, "%sneeds %u GPU%s, %u of the %u that qualify %s held exclusively", who, k,
				plural(k), popcount16(prev) - popcount16(m), popcount16(prev),
				popcount16(prev) - popcount16(m) == 1 ? "is" : "are");
		return GP_R_EXCLUSIVE;
	}
	if (c->exclusive)
		goto numa; /* an idle card has everything an exclusive tenant needs */
	/* device memory */
	prev = m;
	for (unsigned i = 0; i < n->ngpu; i++) {
		if (!(prev & (1u << i)))
			continue;
		if (best < 0 || n->st.g[i].free_m > n->st.g[best].free_m)
			best = (int)i;
		if (n->st.g[i].free_m < gp__ctr_mem(c, n->st.g[i].cap_m))
			m &= ~(1u << i);
	}
	if (popcount16(m) < k) {
		uint64_t need = gp__ctr_mem(c, n->st.g[best].cap_m);

		if (k == 1 || popcount16(m) == 0)
			gp__why(why, whylen, "%sno GPU with %s free (largest %s on %s)", who, gp__mib(need, a, sizeof a),
				gp__mib(n->st.g[best].free_m, b, sizeof b), n->gpu[best].uuid);
		else
			gp__why(why, whylen, "%sneeds %u GPUs with %s free, node has %u (largest %s on %s)", who, k,
				gp__mib(need, a, sizeof a), popcount16(m), gp__mib(n->st.g[best].free_m, b, sizeof b),
				n->gpu[best].uuid);
		return GP_R_GPU_MEMORY;
	}
	/* compute */
	prev = m;
	best = -1;
	for (unsigned i = 0; i < n->ngpu; i++) {
		if (!(prev & (1u << i)))
			continue;
		if (best < 0 || n->st.g[i].free_c > n->st.g[best].free_c)
			best = (int)i;
		if (n->st.g[i].free_c < c->compute)
			m &= ~(1u << i);
	}
	if (popcount16(m) < k) {
		if (k == 1 || popcount16(m) == 0)
			gp__why(why, whylen, "%sno GPU with %u%% compute free (largest %u%% on %s)", who, c->compute,
				n->st.g[best].free_c, n->gpu[best].uuid);
		else
			gp__why(why, whylen, "%sneeds %u GPUs with %u%% compute free, node has %u", who, k, c->compute,
				popcount16(m));
		return GP_R_COMPUTE;
	}
	/* tenant slots */
	prev = m;
	for (unsigned i = 0; i < n->ngpu; i++)
		if ((prev & (1u << i)) && n->st.g[i].free_t == 0)
			m &= ~(1u << i);
	if (popcount16(m) < k) {
		gp__why(why, whylen, "%sneeds %u GPU%s with a free tenant slot, node has %u (%u full)", who, k,
			plural(k), popcount16(m), popcount16(prev) - popcount16(m));
		return GP_R_SLICES;
	}
numa:
	if (c->numa_bind && k > 1) {
		unsigned most = numa_best(n, m, NULL);

		if (most < k) {
			gp__why(why, whylen, "%sneeds %u GPUs on one NUMA node, node has at most %u", who, k, most);
			return GP_R_NUMA;
		}
	}
	*mask = m;
	return GP_FIT;
}

/* --- choosing cards ------------------------------------------------------- */

/* Sort the cards of mask into order[] by the pick rule; returns how many. */
static unsigned order_cards(const struct gp__nstate *s, unsigned mask, enum gp__gpick how, uint8_t *order)
{
	unsigned cnt = 0;

	for (unsigned i = 0; i < s->ngpu; i++) {
		unsigned j;

		if (!(mask & (1u << i)))
			continue;
		/* insertion sort: at most 16 cards */
		for (j = cnt; j > 0; j--) {
			const struct gp__gstate *x = &s->g[order[j - 1]], *y = &s->g[i];
			bool after;

			if (how == GP__PICK_SPREAD)
				after = x->free_c > y->free_c || (x->free_c == y->free_c && x->free_m >= y->free_m);
			else
				after = x->free_c < y->free_c || (x->free_c == y->free_c && x->free_m <= y->free_m);
			if (after)
				break;
			order[j] = order[j - 1];
		}
		order[j] = (uint8_t)i;
		cnt++;
	}
	return cnt;
}

/* The k cards among order[0..cnt) with the best sum of pairwise link
 * scores: greedy growth from every seed, first best kept (so ties keep the
 * pick order).  Writes the chosen cards into out. */
static void best_link_set(const struct gp_node *n, const uint8_t *order, unsigned cnt, unsigned k, uint8_t *out)
{
	long best = -1;

	for (unsigned s = 0; s < cnt; s++) {
		uint8_t set[GP_MAX_GPUS];
		unsigned used = 1u << order[s];
		long sum = 0;

		set[0] = order[s];
		for (unsigned have = 1; have < k; have++) {
			long gain_best = -1;
			unsigned pick = 0;

			for (unsigned c = 0; c < cnt; c++) {
				long gain = 0;

				if (used & (1u << order[c]))
					continue;
				for (unsigned h = 0; h < have; h++)
					gain += n->link[set[h]][order[c]];
				if (gain > gain_best) {
					gain_best = gain;
					pick = order[c];
				}
			}
			set[have] = (uint8_t)pick;
			used |= 1u << pick;
			sum += gain_best;
		}
		if (sum > best) {
			best = sum;
			memcpy(out, set, k);
		}
	}
}

/* Choose container c's k cards among `fit` (cards that take it now), by the
 * pick rule; alternative `alt` (0 = the preferred choice) varies the choice
 * for the search: for a single card, the alt-th card in pick order; for a
 * NUMA-bound set, the alt-th NUMA node.  Returns false when no such
 * alternative exists. */
static bool choose_set(const struct gp_node *n, const struct gp__nstate *s, const struct gp__ctr *c, unsigned fit,
		       const struct gp__pick *pick, unsigned alt, uint8_t *out)
{
	uint8_t order[GP_MAX_GPUS];
	unsigned k = c->gpus, cnt = order_cards(s, fit, pick->how == GP__PICK_SPREAD ? GP__PICK_SPREAD : GP__PICK_BINPACK,
						 order);

	if (cnt < k)
		return false;
	if (k == 1) {
		if (alt >= cnt)
			return false;
		out[0] = order[alt];
		return true;
	}
	if (c->numa_bind) {
		/* NUMA nodes in the order their best card comes in */
		unsigned seen = 0;

		for (unsigned i = 0; i < cnt; i++) {
			int node = n->gpu[order[i]].numa;
			uint8_t grp[GP_MAX_GPUS];
			unsigned g = 0;
			bool dup = false;

			if (node < 0)
				continue;
			for (unsigned j = 0; j < i; j++)
				dup |= n->gpu[order[j]].numa == node;
			if (dup)
				continue;
			for (unsigned j = i; j < cnt; j++)
				if (n->gpu[order[j]].numa == node)
					grp[g++] = order[j];
			if (g < k)
				continue;
			if (seen++ < alt)
				continue;
			if (pick->topology && n->has_links)
				best_link_set(n, grp, g, k, out);
			else
				memcpy(out, grp, k);
			return true;
		}
		return false;
	}
	if (alt > 0)
		return false;
	if (pick->topology && n->has_links)
		best_link_set(n, order, cnt, k, out);
	else
		memcpy(out, order, k);
	return true;
}

bool gp__choose_cards(const struct gp_node *n, const struct gp__nstate *s, const struct gp__ctr *c,
		      unsigned fit, const struct gp__pick *pick, uint8_t *out)
{
	return choose_set(n, s, c, fit, pick, 0, out);
}

/* --- placing containers together ----------------------------------------- */

struct place_ctx {
	const struct gp_node *n;
	const struct gp_request *r;
	const struct gp__pick *pick;
	unsigned mask[GP_MAX_CONTAINERS];   /* cards each container accepts */
	uint8_t app[GP_MAX_CONTAINERS];     /* app containers, placement order */
	unsigned napp;
	struct gp__nstate s;                /* scratch state */
	uint8_t sets[GP_MAX_CONTAINERS][GP_MAX_GPUS];
	unsigned steps;
};

/* Place app containers app[i..] on x->s, trying for each the pick rule's
 * choice first and then its alternatives (another single card, another
 * NUMA node), within SEARCH_STEPS in all.  True when all fit. */
static bool place_apps(struct place_ctx *x, unsigned i)
{
	const struct gp__ctr *c;
	unsigned fit = 0;

	if (i == x->napp)
		return true;
	c = &x->r->ctr[x->app[i]];
	for (unsigned g = 0; g < x->n->ngpu; g++)
		if ((x->mask[x->app[i]] & (1u << g)) && gp__gfits(&x->s.g[g], c))
			fit |= 1u << g;
	for (unsigned alt = 0; x->steps < SEARCH_STEPS; alt++) {
		uint8_t *set = x->sets[x->app[i]];
		struct gp__gstate saved[GP_MAX_GPUS];

		if (x->pick->how == GP__PICK_FIXED && x->napp == 1 && c->gpus == 1) {
			if (alt > 0 || x->pick->fixed < 0 || !(fit & (1u << x->pick->fixed)))
				return false;
			set[0] = (uint8_t)x->pick->fixed;
		} else if (!choose_set(x->n, &x->s, c, fit, x->pick, alt, set)) {
			return false;
		}
		x->steps++;
		memcpy(saved, x->s.g, sizeof saved);
		for (unsigned k = 0; k < c->gpus; k++)
			gp__gstate_take(&x->s.g[set[k]], c);
		if (place_apps(x, i + 1))
			return true;
		memcpy(x->s.g, saved, sizeof saved);
	}
	return false;
}

/* Larger containers first: exclusive, then more cards, compute, memory. */
static bool bigger(const struct gp__ctr *a, const struct gp__ctr *b)
{
	if (a->exclusive != b->exclusive)
		return a->exclusive;
	if (a->gpus != b->gpus)
		return a->gpus > b->gpus;
	if (a->compute != b->compute)
		return a->compute > b->compute;
	return a->mem_bytes + a->mem_pct > b->mem_bytes + b->mem_pct;
}

enum gp_reject gp__place(const struct gp_node *n, const struct gp_request *r, const struct gp__pick *pick,
			 struct gp_plan *plan, char *why, size_t whylen)
{
	static const struct gp__pick binpack = {.how = GP__PICK_BINPACK, .fixed = -1};
	struct place_ctx x;
	struct gp_hold hold[GP_MAX_GPUS];
	char a[48], b[48];
	enum gp_reject rc;

	if (!pick)
		pick = &binpack;
	if (r->cpu > n->st.cpu_free) {
		gp__why(why, whylen, "needs %llum CPU, node has %llum free", (unsigned long long)r->cpu,
			(unsigned long long)n->st.cpu_free);
		return GP_R_CPU;
	}
	if (r->mem > n->st.mem_free) {
		gp__why(why, whylen, "needs %s of memory, node has %s free", gp__mib(r->mem, a, sizeof a),
			gp__mib(n->st.mem_free, b, sizeof b));
		return GP_R_MEMORY;
	}
	x.n = n;
	x.r = r;
	x.pick = pick;
	x.napp = 0;
	x.steps = 0;
	for (unsigned i = 0; i < r->nctr; i++) {
		const struct gp__ctr *c = &r->ctr[i];
		unsigned j;

		if ((rc = check_alone(n, r, c, &x.mask[i], why, whylen)) != GP_FIT)
			return rc;
		if (c->init)
			continue;
		for (j = x.napp; j > 0 && bigger(c, &r->ctr[x.app[j - 1]]); j--)
			x.app[j] = x.app[j - 1];
		x.app[j] = (uint8_t)i;
		x.napp++;
	}
	x.s = n->st;
	if (!place_apps(&x, 0)) {
		gp__why(why, whylen, "each container fits alone, but the %u app containers do not fit together",
			x.napp);
		return GP_R_TOGETHER;
	}
	/* The app containers' footprint, then each init container on top. */
	memset(hold, 0, sizeof hold);
	for (unsigned i = 0; i < x.napp; i++) {
		const struct gp__ctr *c = &r->ctr[x.app[i]];

		for (unsigned k = 0; k < c->gpus; k++) {
			struct gp_hold *h = &hold[x.sets[x.app[i]][k]];
			const struct gp__gstate *g = &n->st.g[x.sets[x.app[i]][k]];

			h->tenants++;
			if (c->exclusive) {
				h->exclusive = true;
				h->compute = g->cap_c;
				h->mem_bytes = g->cap_m;
			} else {
				h->compute = (uint16_t)(h->compute + c->compute);
				h->mem_bytes += gp__ctr_mem(c, g->cap_m);
			}
		}
	}
	for (unsigned i = 0; i < r->nctr; i++) {
		const struct gp__ctr *c = &r->ctr[i];
		unsigned covered = 0;
		uint8_t *set = x.sets[i];
		struct gp__pick p2 = *pick;

		if (!c->init)
			continue;
		/* An init container runs alone, before the app containers: the
		 * card must hold the larger of it and the footprint, and the
		 * footprint already fits, so any card it fits alone (x.mask) will
		 * do.  Cards the footprint already covers cost nothing more. */
		for (unsigned g = 0; g < n->ngpu; g++) {
			const struct gp_hold *h = &hold[g];

			if ((x.mask[i] & (1u << g)) && h->tenants &&
			    (h->exclusive || (!c->exclusive && h->compute >= c->compute &&
					      h->mem_bytes >= gp__ctr_mem(c, n->st.g[g].cap_m))))
				covered |= 1u << g;
		}
		p2.how = pick->how == GP__PICK_FIXED ? GP__PICK_BINPACK : pick->how;
		if (!(popcount16(covered) >= c->gpus && choose_set(n, &n->st, c, covered, &p2, 0, set)) &&
		    !choose_set(n, &n->st, c, x.mask[i], &p2, 0, set)) {
			/* only a NUMA binding can refuse here: check_alone passed */
			gp__why(why, whylen, "init container %s: no NUMA-local set of cards",
				c->name ? gp__str(r, c->name) : "");
			return GP_R_NUMA;
		}
		for (unsigned k = 0; k < c->gpus; k++) {
			struct gp_hold *h = &hold[set[k]];
			const struct gp__gstate *g = &n->st.g[set[k]];
			uint64_t need_m = gp__ctr_mem(c, g->cap_m);

			if (h->tenants == 0)
				h->tenants = 1;
			if (c->exclusive) {
				h->exclusive = true;
				h->compute = g->cap_c;
				h->mem_bytes = g->cap_m;
			} else {
				if (h->compute < c->compute)
					h->compute = c->compute;
				if (h->mem_bytes < need_m)
					h->mem_bytes = need_m;
			}
		}
	}
	if (!plan)
		return GP_FIT;
	memset(plan, 0, sizeof *plan);
	plan->nctr = (uint8_t)r->nctr;
	plan->cpu_milli = r->cpu;
	plan->mem_bytes = r->mem;
	for (unsigned i = 0; i < r->nctr; i++) {
		const struct gp__ctr *c = &r->ctr[i];

		plan->ngrant[i] = c->gpus;
		for (unsigned k = 0; k < c->gpus; k++) {
			struct gp_grant *gr = &plan->grant[i][k];
			const struct gp__gstate *g = &n->st.g[x.sets[i][k]];

			gr->gpu = x.sets[i][k];
			gr->exclusive = c->exclusive;
			gr->compute = c->exclusive ? g->cap_c : c->compute;
			gr->mem_bytes = gp__ctr_mem(c, g->cap_m);
		}
	}
	for (unsigned g = 0; g < n->ngpu; g++)
		if (hold[g].tenants) {
			plan->gpumask |= (uint16_t)(1u << g);
			plan->hold[g] = hold[g];
		}
	return GP_FIT;
}

void gp__nstate_apply(struct gp__nstate *s, const struct gp_plan *p, uint64_t cpu, uint64_t mem)
{
	if (s->cpu_free != UINT64_MAX)
		s->cpu_free -= cpu;
	if (s->mem_free != UINT64_MAX)
		s->mem_free -= mem;
	for (unsigned g = 0; g < s->ngpu; g++) {
		struct gp__gstate *gs = &s->g[g];
		const struct gp_hold *h = &p->hold[g];

		if (!(p->gpumask & (1u << g)))
			continue;
		if (h->exclusive) {
			gs->free_c = 0;
			gs->free_m = 0;
			gs->free_t = 0;
		} else {
			gs->free_c = (uint16_t)(gs->free_c - h->compute);
			gs->free_m -= h->mem_bytes;
			gs->free_t = (uint16_t)(gs->free_t - h->tenants);
		}
		gs->idle = 0;
	}
}

enum gp_reject gp_fit(const struct gp_node *n, const struct gp_request *r, char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	return gp__place(n, r, NULL, NULL, why, whylen);
}
