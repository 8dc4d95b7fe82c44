/* annot_binding.c - the pods being bound on a node, gpupool.io/binding:
 * {"version":1,"pods":[{"uid":"...","pod":"ns/name","expires":"<RFC 3339>",
 *   "footprint":[...]}]}.
 * A bind writes its pod here as it releases the node's lock, before it
 * creates the Binding; the next bind (of any replica) counts what is
 * listed until the pod shows as bound or the entry expires.  The text only;
 * see extender_bind.c and docs/protocol.md. */
#include "sched/annot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/errf.h"
#include "sched/annot_json.h"

char *gp_annot_binding_format(const struct gp_annot_binding *b)
{
	json_t *doc = json_pack("{s:i,s:[]}", "version", GP_ANNOT_VERSION, "pods");
	json_t *pods = json_object_get(doc, "pods");
	char *text = NULL;

	for (unsigned i = 0; doc && i < b->n; i++) {
		const struct gp_annot_inflight *p = &b->pod[i];
		char when[40];

		json_t *e;

		gp_time_format(p->expires_ms, when, sizeof when);
		e = json_pack("{s:s,s:s,s:o*}", "uid", p->uid, "expires", when, "footprint",
			      gp__annot_holds_json(p->hold, p->nhold));
		if (e && p->pod[0])
			json_object_set_new(e, "pod", json_string(p->pod));
		if (json_array_append_new(pods, e))
			goto out;
	}
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
out:
	json_decref(doc);
	return text;
}

int gp_annot_binding_parse(const char *text, struct gp_annot_binding *b, char *why, size_t n)
{
	json_t *doc, *pods, *v;
	size_t i;
	int rc;

	b->n = 0;
	if (!(doc = gp__annot_load(text, GP_ANNOT_BINDING, why, n)))
		return -EINVAL;
	if ((rc = gp__annot_version(doc, GP_ANNOT_BINDING, why, n)))
		goto out;
	rc = -EINVAL;
	pods = json_object_get(doc, "pods");
	if (!json_is_array(pods) || json_array_size(pods) > GP_ANNOT_BINDING_MAX) {
		gp_errf(why, n, 0, "%s: 'pods' must be a list of at most %u", GP_ANNOT_BINDING,
			GP_ANNOT_BINDING_MAX);
		goto out;
	}
	json_array_foreach(pods, i, v) {
		struct gp_annot_inflight *p = &b->pod[b->n];
		json_t *exp = json_object_get(v, "expires");
		char where[64];

		memset(p, 0, sizeof *p);
		snprintf(where, sizeof where, "%s pods[%zu]", GP_ANNOT_BINDING, i);
		if (!json_is_object(v)) {
			gp_errf(why, n, 0, "%s is not an object", where);
			goto out;
		}
		if (gp__annot_str(v, "uid", true, p->uid, sizeof p->uid, where, why, n) ||
		    gp__annot_str(v, "pod", false, p->pod, sizeof p->pod, where, why, n))
			goto out;
		if (!json_is_string(exp) ||
		    gp_annot_time_parse(json_string_value(exp), &p->expires_ms)) {
			gp_errf(why, n, 0, "%s: 'expires' is missing or not an RFC 3339 time", where);
			goto out;
		}
		strcat(where, " footprint");
		if (gp__annot_holds_read(json_object_get(v, "footprint"), p->hold, &p->nhold, where,
					 why, n))
			goto out;
		b->n++;
	}
	rc = 0;
out:
	json_decref(doc);
	return rc;
}
