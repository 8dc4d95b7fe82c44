/* fuzz_annot.c - libFuzzer target for the annotation codecs the extender
 * reads from the API server (sched/annot*.c): text anyone who can annotate
 * a Node or a Pod controls.
 *
 * The first byte picks a codec, the rest (up to its first NUL) is the
 * annotation text:
 *
 *   0  gpupool.io/node-state         gp_annot_node_parse
 *   1  hami.io/node-nvidia-register  gp_annot_hami_register_parse, then the
 *                                    text after the first NUL as
 *                                    hami.io/node-nvidia-score
 *   2  gpupool.io/allocation         gp_annot_alloc_parse
 *   3  hami.io/vgpu-devices-allocated gp_annot_hami_alloc_parse
 *   4  gpupool.io/bind-lock          gp_annot_lock_parse
 *   5  a metadata.annotations object  gp_annot_node_read, gp_annot_alloc_read
 *   6  an RFC 3339 time              gp_annot_time_parse
 *   7  gpupool.io/binding            gp_annot_binding_parse (the byte 7
 *                                    itself; other values are taken
 *                                    modulo 7)
 *
 * Besides not crashing: a refusal says why, an accepted value is within
 * the ranges annot.h promises, and where a writer exists (node state,
 * allocation, bind lock, binds in flight, times) what was read is written and read back to
 * the same value, so the writer never produces text its own reader
 * refuses or misreads.  A broken promise abort()s, which the fuzzer
 * reports as a crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "sched/annot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                     \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_annot: %s:%d: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                         \
		}                                                                    \
	} while (0)

/* A parse either succeeds or says why; the errno is one annot.h names. */
static void check_rc(int rc, const char *why)
{
	CHECK(rc == 0 || rc == -EINVAL || rc == -EPROTONOSUPPORT || rc == -ENOENT);
	if (rc)
		CHECK(why[0] != '\0');
}

/* What every node source promises (annot.h, struct gp_annot_gpu). */
static void check_node(const struct gp_annot_node *s)
{
	CHECK(s->ngpu <= GP_MAX_GPUS);
	for (unsigned i = 0; i < s->ngpu; i++) {
		const struct gp_annot_gpu *g = &s->gpu[i];
		CHECK(g->uuid[0] && memchr(g->uuid, '\0', sizeof g->uuid));
		CHECK(memchr(g->model, '\0', sizeof g->model));
		CHECK(g->mem_bytes > 0 && g->mem_bytes <= (uint64_t)1 << 44);
		CHECK(g->compute >= 1 && g->compute <= 10000);
		CHECK(g->slices >= 1 && g->slices <= GP_MAX_SLICES);
		CHECK(g->numa >= -1 && g->numa <= 1023);
		for (unsigned j = 0; j < i; j++)
			CHECK(strcasecmp(g->uuid, s->gpu[j].uuid) != 0);
	}
	for (unsigned i = 0; i < GP_MAX_GPUS; i++)
		for (unsigned j = 0; j < GP_MAX_GPUS; j++) {
			CHECK(s->link[i][j] == s->link[j][i]);
			if (i == j || i >= s->ngpu || j >= s->ngpu)
				CHECK(s->link[i][j] == 0);
		}
}

static void same_node(const struct gp_annot_node *a, const struct gp_annot_node *b)
{
	CHECK(a->source == b->source && a->ngpu == b->ngpu && a->updated_ms == b->updated_ms);
	for (unsigned i = 0; i < a->ngpu; i++) {
		const struct gp_annot_gpu *x = &a->gpu[i], *y = &b->gpu[i];
		CHECK(strcmp(x->uuid, y->uuid) == 0 && strcmp(x->model, y->model) == 0);
		CHECK(x->mem_bytes == y->mem_bytes && x->compute == y->compute &&
		      x->slices == y->slices && x->numa == y->numa && x->healthy == y->healthy);
	}
	CHECK(memcmp(a->link, b->link, sizeof a->link) == 0);
}

static void node_state(const char *text)
{
	struct gp_annot_node *s = calloc(2, sizeof *s);
	char why[256] = "", *back;
	int rc;

	if (!s)
		return;
	rc = gp_annot_node_parse(text, &s[0], why, sizeof why);
	check_rc(rc, why);
	if (rc == 0) {
		check_node(&s[0]);
		CHECK(s[0].source == GP_SRC_GPUPOOL);
		back = gp_annot_node_format(&s[0]);
		CHECK(back);
		rc = gp_annot_node_parse(back, &s[1], why, sizeof why);
		if (rc)
			fprintf(stderr, "fuzz_annot: %s\n  re-read: %s\n", back, why);
		CHECK(rc == 0);
		same_node(&s[0], &s[1]);
		free(back);
	}
	free(s);
}

/* HAMi's register text, then (after the first NUL of the input) its
 * scores applied on top. */
static void hami_register(const char *text, const char *scores)
{
	struct gp_annot_node *s = malloc(sizeof *s);
	char why[256] = "";
	int rc;

	if (!s)
		return;
	rc = gp_annot_hami_register_parse(text, s, why, sizeof why);
	check_rc(rc, why);
	if (rc == 0) {
		check_node(s);
		CHECK(s->source == GP_SRC_HAMI);
		if (scores) {
			why[0] = '\0';
			rc = gp_annot_hami_scores_parse(scores, s, why, sizeof why);
			check_rc(rc, why);
			check_node(s);
		}
	}
	free(s);
}

static void check_alloc(const struct gp_annot_alloc *a)
{
	CHECK(a->nctr <= GP_MAX_CONTAINERS && a->nhold <= GP_MAX_GPUS);
	CHECK(memchr(a->node, '\0', sizeof a->node) && memchr(a->uid, '\0', sizeof a->uid) &&
	      memchr(a->policy, '\0', sizeof a->policy));
	for (unsigned c = 0; c < a->nctr; c++) {
		CHECK(a->ctr[c].ngrant <= GP_MAX_GPUS);
		CHECK(a->ctr[c].priority <= GP_PRIO_LOW);
		CHECK(memchr(a->ctr[c].name, '\0', sizeof a->ctr[c].name));
		for (unsigned i = 0; i < a->ctr[c].ngrant; i++)
			CHECK(a->ctr[c].grant[i].uuid[0]);
	}
	for (unsigned i = 0; i < a->nhold; i++) {
		CHECK(a->hold[i].uuid[0] && a->hold[i].tenants >= 1);
		for (unsigned j = 0; j < i; j++)
			CHECK(strcasecmp(a->hold[i].uuid, a->hold[j].uuid) != 0);
	}
}

static void same_alloc(const struct gp_annot_alloc *a, const struct gp_annot_alloc *b)
{
	CHECK(a->source == b->source && strcmp(a->node, b->node) == 0 &&
	      strcmp(a->uid, b->uid) == 0 && strcmp(a->policy, b->policy) == 0 &&
	      a->bound_ms == b->bound_ms && a->nctr == b->nctr && a->nhold == b->nhold);
	for (unsigned c = 0; c < a->nctr; c++) {
		const struct gp_annot_ctr *x = &a->ctr[c], *y = &b->ctr[c];
		CHECK(strcmp(x->name, y->name) == 0 && x->init == y->init &&
		      x->priority == y->priority && x->ngrant == y->ngrant);
		for (unsigned i = 0; i < x->ngrant; i++) {
			const struct gp_annot_grant *g = &x->grant[i], *h = &y->grant[i];
			CHECK(strcmp(g->uuid, h->uuid) == 0 && g->mem_bytes == h->mem_bytes &&
			      g->compute == h->compute && g->exclusive == h->exclusive);
		}
	}
	for (unsigned i = 0; i < a->nhold; i++) {
		const struct gp_annot_hold *g = &a->hold[i], *h = &b->hold[i];
		CHECK(strcmp(g->uuid, h->uuid) == 0 && g->mem_bytes == h->mem_bytes &&
		      g->compute == h->compute && g->tenants == h->tenants &&
		      g->exclusive == h->exclusive);
	}
}

static void allocation(const char *text, int hami)
{
	struct gp_annot_alloc *a = calloc(2, sizeof *a);
	char why[256] = "", *back;
	int rc;

	if (!a)
		return;
	rc = hami ? gp_annot_hami_alloc_parse(text, &a[0], why, sizeof why)
		  : gp_annot_alloc_parse(text, &a[0], why, sizeof why);
	check_rc(rc, why);
	if (rc == 0) {
		check_alloc(&a[0]);
		CHECK(a[0].source == (hami ? GP_SRC_HAMI : GP_SRC_GPUPOOL));
	}
	/* HAMi's text has no node name, which ours requires: only ours goes
	 * round. */
	if (rc == 0 && !hami) {
		back = gp_annot_alloc_format(&a[0]);
		CHECK(back);
		rc = gp_annot_alloc_parse(back, &a[1], why, sizeof why);
		if (rc)
			fprintf(stderr, "fuzz_annot: %s\n  re-read: %s\n", back, why);
		CHECK(rc == 0);
		same_alloc(&a[0], &a[1]);
		free(back);
	}
	free(a);
}

static void bind_lock(const char *text)
{
	struct gp_annot_lock l, m;
	char why[256] = "", *back;
	int rc = gp_annot_lock_parse(text, &l, why, sizeof why);

	check_rc(rc, why);
	if (rc)
		return;
	CHECK(l.holder[0] && memchr(l.pod, '\0', sizeof l.pod));
	back = gp_annot_lock_format(&l);
	CHECK(back);
	rc = gp_annot_lock_parse(back, &m, why, sizeof why);
	if (rc)
		fprintf(stderr, "fuzz_annot: %s\n  re-read: %s\n", back, why);
	CHECK(rc == 0);
	CHECK(strcmp(l.holder, m.holder) == 0 && strcmp(l.pod, m.pod) == 0 &&
	      l.expires_ms == m.expires_ms);
	free(back);
}

/* The binds in flight on a node (annot_binding.c). */
static void binding(const char *text)
{
	struct gp_annot_binding *b = calloc(2, sizeof *b);
	char why[256] = "", *back;
	int rc;

	if (!b)
		return;
	rc = gp_annot_binding_parse(text, &b[0], why, sizeof why);
	check_rc(rc, why);
	if (rc == 0) {
		CHECK(b[0].n <= GP_ANNOT_BINDING_MAX);
		back = gp_annot_binding_format(&b[0]);
		CHECK(back);
		rc = gp_annot_binding_parse(back, &b[1], why, sizeof why);
		if (rc)
			fprintf(stderr, "fuzz_annot: %s\n  re-read: %s\n", back, why);
		CHECK(rc == 0 && b[1].n == b[0].n);
		for (unsigned i = 0; i < b[0].n; i++) {
			const struct gp_annot_inflight *x = &b[0].pod[i], *y = &b[1].pod[i];
			CHECK(strcmp(x->uid, y->uid) == 0 && strcmp(x->pod, y->pod) == 0);
			CHECK(x->expires_ms == y->expires_ms && x->nhold == y->nhold);
			for (unsigned h = 0; h < x->nhold; h++)
				CHECK(strcmp(x->hold[h].uuid, y->hold[h].uuid) == 0 &&
				      x->hold[h].mem_bytes == y->hold[h].mem_bytes &&
				      x->hold[h].compute == y->hold[h].compute &&
				      x->hold[h].tenants == y->hold[h].tenants &&
				      x->hold[h].exclusive == y->hold[h].exclusive);
		}
		free(back);
	}
	free(b);
}

/* The readers that pick ours or HAMi's out of a whole annotations map. */
static void annotations(const char *text)
{
	json_t *ann = json_loads(text, 0, NULL);
	struct gp_annot_node *s = malloc(sizeof *s);
	struct gp_annot_alloc *a = malloc(sizeof *a);
	char why[256] = "";
	int rc;

	if (ann && s && a) {
		rc = gp_annot_node_read(ann, s, why, sizeof why);
		check_rc(rc, why);
		if (rc == 0)
			check_node(s);
		why[0] = '\0';
		rc = gp_annot_alloc_read(ann, a, why, sizeof why);
		CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL || rc == -EPROTONOSUPPORT);
		if (rc == -EINVAL || rc == -EPROTONOSUPPORT)
			CHECK(why[0]);
		if (rc == 0)
			check_alloc(a);
	}
	free(s);
	free(a);
	json_decref(ann);
}

/* A time that parses and is writable (gp_time_format writes Unix ms from
 * 0 on) reads back as itself once written. */
static void times(const char *text)
{
	int64_t ms, back;
	char buf[64];

	if (gp_annot_time_parse(text, &ms))
		return;
	if (ms < 0)
		return;
	gp_time_format(ms, buf, sizeof buf);
	CHECK(gp_annot_time_parse(buf, &back) == 0);
	CHECK(back == ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	const char *rest;
	size_t len;

	if (size < 1 || size > GP_ANNOT_MAX + 2)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	s[size] = '\0';
	len = strlen(s);
	rest = len + 1 < size ? s + len + 1 : NULL;
	/* Selector 7 (a value no older seed starts with) is the newest codec. */
	switch (data[0] == 7 ? 7 : data[0] % 7) {
	case 7:
		binding(s);
		break;
	case 0:
		node_state(s);
		break;
	case 1:
		hami_register(s, rest);
		break;
	case 2:
		allocation(s, 0);
		break;
	case 3:
		allocation(s, 1);
		break;
	case 4:
		bind_lock(s);
		break;
	case 5:
		annotations(s);
		break;
	default:
		times(s);
		break;
	}
	free(s);
	return 0;
}
