/* fuzz_extargs.c - libFuzzer target for the extender's readers of what
 * kube-scheduler sends (sched/extender_args.c, extender_preempt.c):
 * ExtenderArgs (filter, prioritize), ExtenderBindingArgs and
 * ExtenderPreemptionArgs.  Anyone who can reach the extender's port can
 * send these.
 *
 * The input is a selector byte (which reader) and JSON text.  Besides not
 * crashing or leaking: a refusal says why; accepted candidates are at most
 * the node cap, each a Kubernetes name; accepted bind arguments are
 * Kubernetes names and a UID without URL syntax; accepted victims carry
 * UIDs that fit an annotation's UID field.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/extender_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                 \
	do {                                                                         \
		if (!(c)) {                                                              \
			fprintf(stderr, "fuzz_extargs: %s:%d: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                             \
		}                                                                        \
	} while (0)

#define MAX_NODES 64u

static void filter_args(json_t *doc)
{
	struct gp__ext_cands c;
	char why[512] = "";
	int rc = gp__ext_read_args(doc, MAX_NODES, &c, why, sizeof why);

	if (rc) {
		CHECK(why[0]);
	} else {
		CHECK(c.n <= MAX_NODES);
		for (size_t i = 0; i < c.n; i++)
			CHECK(gp__ext_dns_name(c.name[i], 253));
	}
	gp__ext_cands_free(&c);
}

static void bind_args(json_t *doc)
{
	struct gp__ext_bind_args b;
	char why[512] = "";

	if (gp__ext_read_bind_args(doc, &b, why, sizeof why)) {
		CHECK(why[0]);
		return;
	}
	CHECK(gp__ext_dns_name(b.name, 253) && gp__ext_dns_name(b.ns, 63) &&
	      gp__ext_dns_name(b.node, 253));
	CHECK(!strpbrk(b.uid, "/?#% "));
}

static void preempt_args(json_t *doc)
{
	struct gp__ext_preempt_args a;
	char why[512] = "";

	if (gp__ext_preempt_read(doc, MAX_NODES, &a, why, sizeof why)) {
		CHECK(why[0]);
	} else {
		CHECK(a.np <= MAX_NODES && a.pod);
		for (size_t i = 0; i < a.np; i++) {
			CHECK(gp__ext_dns_name(a.pr[i].node, 253));
			for (size_t k = 0; k < a.pr[i].n; k++)
				CHECK(a.pr[i].uid[k][0] && strlen(a.pr[i].uid[k]) < GP_ANNOT_UID_MAX);
		}
	}
	gp__ext_preempt_args_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;
	json_t *doc;

	if (size < 1)
		return 0;
	doc = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return 0;
	switch (data[0] % 3) {
	case 0:
		filter_args(doc);
		break;
	case 1:
		bind_args(doc);
		break;
	default:
		preempt_args(doc);
		break;
	}
	json_decref(doc);
	return 0;
}
