/* annot_lock.c - the per-node bind lock, gpupool.io/bind-lock:
 * {"version":1,"holder":"...","pod":"ns/name","expires":"<RFC 3339>"}.
 * Taking and releasing it is extender_lock.c's business; this is only the
 * text.  See docs/protocol.md. */
#include "sched/annot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "sched/annot_json.h"

char *gp_annot_lock_format(const struct gp_annot_lock *l)
{
	char when[40], *text;
	json_t *doc;

	gp_time_format(l->expires_ms, when, sizeof when);
	doc = json_pack("{s:i,s:s,s:s}", "version", GP_ANNOT_VERSION, "holder", l->holder,
			"expires", when);
	/* "pod" is optional, and when given must not be empty: leave it out
	 * rather than write "" that the reader refuses. */
	if (doc && l->pod[0] && json_object_set_new(doc, "pod", json_string(l->pod))) {
		json_decref(doc);
		doc = NULL;
	}
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	return text;
}

int gp_annot_lock_parse(const char *text, struct gp_annot_lock *l, char *why, size_t n)
{
	json_t *doc, *exp;
	int rc;

	memset(l, 0, sizeof *l);
	if (!(doc = gp__annot_load(text, GP_ANNOT_LOCK, why, n)))
		return -EINVAL;
	if ((rc = gp__annot_version(doc, GP_ANNOT_LOCK, why, n)))
		goto out;
	rc = -EINVAL;
	if (gp__annot_str(doc, "holder", true, l->holder, sizeof l->holder, GP_ANNOT_LOCK, why,
			  n) ||
	    gp__annot_str(doc, "pod", false, l->pod, sizeof l->pod, GP_ANNOT_LOCK, why, n))
		goto out;
	exp = json_object_get(doc, "expires");
	if (!json_is_string(exp) || gp_annot_time_parse(json_string_value(exp), &l->expires_ms)) {
		snprintf(why, n, "%s: 'expires' is missing or not an RFC 3339 time", GP_ANNOT_LOCK);
		goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	return rc;
}
