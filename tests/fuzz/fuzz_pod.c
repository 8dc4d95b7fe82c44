/* fuzz_pod.c - libFuzzer target for gp_req_from_pod (sched/pod.c): a Pod
 * object, which any user who may create pods writes, read into a placement
 * request by the extender and the admission webhook.
 *
 * The input is JSON text: a Pod, or an AdmissionReview whose
 * request.object is one (so the webhook's fixtures seed it as they are).
 * The same gp_pod_req is used for every input, as the extender reuses one
 * per pod, so state left behind by an earlier pod would show.
 *
 * Besides not crashing: a refusal says why; an accepted pod has a name and
 * a namespace, at most GP_MAX_CONTAINERS GPU containers, each named, and
 * the request holds exactly those containers.  Quantities go through
 * gp_req_quantity too, which must only accept whole numbers up to 2^53.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/pod.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                     \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_pod: %s:%d: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                         \
		}                                                                    \
	} while (0)

/* One request for the whole run; never freed (libFuzzer runs forever). */
static struct gp_pod_req req;
static int ready;

/* Every string value anywhere in the document is also a candidate
 * quantity: the fuzzer finds quantities faster where it already writes
 * them. */
static void quantities(json_t *v, int depth)
{
	const char *k;
	json_t *x;
	size_t i;
	uint64_t q;

	if (depth > 16)
		return;
	if (json_is_string(v) && gp_req_quantity(json_string_value(v), &q) == 0)
		CHECK(q <= (uint64_t)1 << 53);
	json_object_foreach(v, k, x)
		quantities(x, depth + 1);
	json_array_foreach(v, i, x)
		quantities(x, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc, *pod, *obj;
	char why[GP_REASON_MAX + 128] = "";
	int rc;

	if (!ready) {
		if (gp_req_init(&req))
			abort();
		ready = 1;
	}
	doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!doc)
		return 0;
	obj = json_object_get(json_object_get(doc, "request"), "object");
	pod = obj ? obj : doc;
	rc = gp_req_from_pod(&req, pod, why, sizeof why);
	CHECK(rc == 0 || rc == -EINVAL);
	if (rc) {
		CHECK(why[0] != '\0');
	} else {
		CHECK(req.name[0] && req.ns[0]);
		CHECK(memchr(req.uid, '\0', sizeof req.uid));
		CHECK(req.nctr <= GP_MAX_CONTAINERS);
		CHECK(gp_request_container_count(req.req) == req.nctr);
		CHECK(gp_request_gpus(req.req) <= GP_MAX_GPUS * GP_MAX_CONTAINERS);
		if (req.nctr)
			CHECK(gp_request_gpus(req.req) >= 1);
		for (unsigned i = 0; i < req.nctr; i++) {
			CHECK(req.ctr[i].name[0]);
			CHECK(memchr(req.ctr[i].name, '\0', sizeof req.ctr[i].name));
			CHECK(req.ctr[i].priority <= GP_PRIO_LOW);
		}
	}
	quantities(pod, 0);
	json_decref(doc);
	return 0;
}
