/* request.c - the request model: a pod's host needs and GPU containers.
 *
 * Strings (container names, list entries) live in one arena per request,
 * addressed by offset so that growing the arena never leaves a dangling
 * pointer.  Adding a container validates it completely and updates the
 * request's shape hash, which caches use as the request's identity.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/parse.h"
#include "place/pl_int.h"

static const char *const list_names[GP__L_COUNT] = {
	[GP__L_TYPES] = "types",
	[GP__L_NO_TYPES] = "no_types",
	[GP__L_UUIDS] = "uuids",
	[GP__L_NO_UUIDS] = "no_uuids",
};

int gp_request_new(struct gp_request **out)
{
	struct gp_request *r = calloc(1, sizeof *r);

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->arena_cap = 256;
	r->arena = malloc(r->arena_cap);
	if (!r->arena) {
		free(r);
		return -ENOMEM;
	}
	gp_request_reset(r);
	*out = r;
	return 0;
}

void gp_request_free(struct gp_request *r)
{
	if (!r)
		return;
	free(r->arena);
	free(r);
}

void gp_request_reset(struct gp_request *r)
{
	r->cpu = r->mem = 0;
	r->nctr = 0;
	r->arena[0] = '\0';
	r->arena_len = 1;
	r->simple = true;
	r->shape = 0x5eed;
}

void gp_request_set_host(struct gp_request *r, uint64_t cpu_milli, uint64_t mem_bytes)
{
	r->cpu = cpu_milli;
	r->mem = mem_bytes;
}

unsigned gp_request_container_count(const struct gp_request *r)
{
	return r->nctr;
}

unsigned gp_request_gpus(const struct gp_request *r)
{
	unsigned app = 0, init = 0;

	for (unsigned i = 0; i < r->nctr; i++) {
		const struct gp__ctr *c = &r->ctr[i];

		if (c->init) {
			if (c->gpus > init)
				init = c->gpus;
		} else {
			app += c->gpus;
		}
	}
	return app > init ? app : init;
}

/* Append len bytes of s and a NUL to the arena.  Returns the offset, or 0
 * when the arena would pass its cap (offset 0 is never a real string). */
static uint32_t arena_put(struct gp_request *r, const char *s, size_t len)
{
	if (r->arena_len + len + 1 > GP__ARENA_MAX)
		return 0;
	if (r->arena_len + len + 1 > r->arena_cap) {
		size_t cap = r->arena_cap;
		char *a;

		while (cap < r->arena_len + len + 1)
			cap *= 2;
		if (cap > GP__ARENA_MAX)
			cap = GP__ARENA_MAX;
		a = realloc(r->arena, cap);
		if (!a)
			return 0;
		r->arena = a;
		r->arena_cap = cap;
	}
	memcpy(r->arena + r->arena_len, s, len);
	r->arena[r->arena_len + len] = '\0';
	r->arena_len += len + 1;
	return (uint32_t)(r->arena_len - len - 1);
}

static bool printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Parse one comma list into c->list[which].  Returns 0 or -EINVAL/-ENOSPC
 * with the reason in err. */
static int parse_list(struct gp_request *r, struct gp__ctr *c, int which, const char *s, char *err,
		      size_t errlen)
{
	const char *cur = s, *item;
	size_t len;

	c->nlist[which] = 0;
	if (!s || !*s)
		return 0;
	while ((item = gp_list_next(&cur, ',', &len))) {
		uint32_t off;

		if (len == 0) {
			gp__why(err, errlen, "%s: empty entry in \"%.64s\"", list_names[which], s);
			return -EINVAL;
		}
		if (len >= GP_ID_MAX || !printable(item, len)) {
			gp__why(err, errlen, "%s: entry \"%.32s...\" is longer than %u bytes or not printable",
				list_names[which], item, GP_ID_MAX - 1);
			return -EINVAL;
		}
		if (c->nlist[which] >= GP_LIST_MAX) {
			gp__why(err, errlen, "%s: more than %u entries", list_names[which], GP_LIST_MAX);
			return -EINVAL;
		}
		off = arena_put(r, item, len);
		if (!off) {
			gp__why(err, errlen, "request strings exceed %u bytes", GP__ARENA_MAX);
			return -ENOSPC;
		}
		c->list[which][c->nlist[which]++] = off;
	}
	return 0;
}

static uint64_t hash_ctr(const struct gp_request *r, const struct gp__ctr *c, uint64_t h)
{
	h = gp__hash_mix(h, (uint64_t)c->gpus | (uint64_t)c->compute << 8 | (uint64_t)c->mem_pct << 16 |
				    (uint64_t)c->init << 24 | (uint64_t)c->exclusive << 25 |
				    (uint64_t)c->numa_bind << 26);
	h = gp__hash_mix(h, c->mem_bytes);
	for (int l = 0; l < GP__L_COUNT; l++) {
		h = gp__hash_mix(h, 0x100u + c->nlist[l]);
		for (unsigned i = 0; i < c->nlist[l]; i++)
			h = gp__hash_mix(h, gp__hash_ci(gp__str(r, c->list[l][i])));
	}
	return h;
}

int gp_request_add_container(struct gp_request *r, const struct gp_ctr *in, char *err, size_t errlen)
{
	struct gp__ctr *c;
	const char *lists[GP__L_COUNT] = {in->types, in->no_types, in->uuids, in->no_uuids};
	size_t arena_mark = r->arena_len;
	int rc;

	if (r->nctr >= GP_MAX_CONTAINERS) {
		gp__why(err, errlen, "more than %u GPU containers in one pod", GP_MAX_CONTAINERS);
		return -ENOSPC;
	}
	if (in->gpus == 0 || in->gpus > GP_MAX_GPUS) {
		gp__why(err, errlen, "GPU count %u out of range 1..%u", in->gpus, GP_MAX_GPUS);
		return -EINVAL;
	}
	if (in->compute > 100) {
		gp__why(err, errlen, "compute %u%% is over 100%%", in->compute);
		return -EINVAL;
	}
	if (in->mem_pct > 100) {
		gp__why(err, errlen, "memory share %u%% is over 100%%", in->mem_pct);
		return -EINVAL;
	}
	if (in->mem_pct && in->mem_bytes) {
		gp__why(err, errlen, "memory given both in bytes and as a share of the card");
		return -EINVAL;
	}
	c = &r->ctr[r->nctr];
	memset(c, 0, sizeof *c);
	if (in->name && in->name[0]) {
		size_t len = strlen(in->name);

		if (len >= GP_ID_MAX || !printable(in->name, len)) {
			gp__why(err, errlen, "container name longer than %u bytes or not printable", GP_ID_MAX - 1);
			return -EINVAL;
		}
		if (!(c->name = arena_put(r, in->name, len))) {
			gp__why(err, errlen, "request strings exceed %u bytes", GP__ARENA_MAX);
			return -ENOSPC;
		}
	}
	c->init = in->init;
	c->exclusive = in->exclusive;
	c->numa_bind = in->numa_bind;
	c->gpus = (uint8_t)in->gpus;
	c->compute = (uint8_t)in->compute;
	c->mem_pct = (uint8_t)in->mem_pct;
	c->mem_bytes = in->mem_bytes;
	if (c->exclusive) {
		/* exclusive use takes the whole card whatever else was asked */
		c->compute = 100;
		c->mem_pct = 0;
		c->mem_bytes = 0;
	}
	for (int l = 0; l < GP__L_COUNT; l++) {
		if ((rc = parse_list(r, c, l, lists[l], err, errlen)) < 0) {
			r->arena_len = arena_mark;
			return rc;
		}
	}
	r->nctr++;
	/* The shape covers everything a decision depends on. */
	r->shape = gp__hash_mix(0x5eed, r->nctr);
	for (unsigned i = 0; i < r->nctr; i++)
		r->shape = hash_ctr(r, &r->ctr[i], r->shape);
	r->simple = r->nctr == 1 && !c->init && !c->numa_bind && !c->nlist[GP__L_UUIDS] &&
		    !c->nlist[GP__L_NO_UUIDS];
	return (int)(r->nctr - 1);
}

static bool alnum(char c)
{
	return isalnum((unsigned char)c) != 0;
}

/* Do the words of `e` appear, in order and adjacent, at m (the start of a
 * word of the model)?  Words are runs of letters and digits, compared
 * ignoring case; whatever separates them is alike. */
static bool words_at(const char *m, const char *e)
{
	while (*e && !alnum(*e))
		e++;
	if (!*e)
		return false;
	for (;;) {
		for (; alnum(*e); m++, e++)
			if (tolower((unsigned char)*m) != tolower((unsigned char)*e))
				return false;
		if (alnum(*m))
			return false; /* the model's word goes on: "a10" in "a100" */
		while (*e && !alnum(*e))
			e++;
		if (!*e)
			return true;
		while (*m && !alnum(*m))
			m++;
		if (!*m)
			return false;
	}
}

/* Does type entry `e` name card model `model`: do its words occur among the
 * model's as whole words?  "a100", "A100 SXM4" and "nvidia-a100" name
 * "NVIDIA A100-SXM4-80GB"; "a10" and "100" do not. */
static bool names_model(const char *model, const char *e)
{
	for (const char *m = model; *m;) {
		while (*m && !alnum(*m))
			m++;
		if (*m && words_at(m, e))
			return true;
		while (alnum(*m))
			m++;
	}
	return false;
}

bool gp__types_accept(const struct gp_request *r, const struct gp__ctr *c, const char *model)
{
	bool ok = c->nlist[GP__L_TYPES] == 0;

	for (unsigned i = 0; i < c->nlist[GP__L_TYPES] && !ok; i++)
		ok = names_model(model, gp__str(r, c->list[GP__L_TYPES][i]));
	for (unsigned i = 0; i < c->nlist[GP__L_NO_TYPES] && ok; i++)
		ok = !names_model(model, gp__str(r, c->list[GP__L_NO_TYPES][i]));
	return ok;
}

/* Is `uuid` in list l of container c (exact, case-insensitive)? */
static bool in_list(const struct gp_request *r, const struct gp__ctr *c, int l, const char *uuid)
{
	for (unsigned i = 0; i < c->nlist[l]; i++)
		if (strcasecmp(uuid, gp__str(r, c->list[l][i])) == 0)
			return true;
	return false;
}

bool gp__ctr_accepts(const struct gp_request *r, const struct gp__ctr *c, const struct gp__gpu *g)
{
	if (!gp__types_accept(r, c, g->model))
		return false;
	if (c->nlist[GP__L_UUIDS] && !in_list(r, c, GP__L_UUIDS, g->uuid))
		return false;
	return !in_list(r, c, GP__L_NO_UUIDS, g->uuid);
}
