/* idle.c - see idle.h. */
#include "agent/idle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long gp_idle_judge(const struct gp_agent_snap *s, double after_s, struct gp_idle_pod **out)
{
	struct gp_idle_pod *v = calloc(s->ntenant ? s->ntenant : 1, sizeof *v);
	long n = 0;

	*out = v;
	if (!v)
		return -1;
	/* Tenants are sorted by pod UID: one pass groups a pod's containers. */
	for (unsigned t = 0; t < s->ntenant;) {
		const char *uid = s->tenant[t].uid;
		struct gp_idle_pod *p = &v[n];
		int holds = 0;
		double least = -1;

		memset(p, 0, sizeof *p);
		for (; t < s->ntenant && strcmp(s->tenant[t].uid, uid) == 0; t++) {
			const struct gp_agent_tenant *tn = &s->tenant[t];

			if (!p->ns[0] && tn->ns[0]) {
				snprintf(p->ns, sizeof p->ns, "%s", tn->ns);
				snprintf(p->pod, sizeof p->pod, "%s", tn->pod);
			}
			p->exempt |= tn->exempt;
			if (!tn->nproc)
				continue;
			for (unsigned k = 0; k < tn->ngpu; k++) {
				double i = gp_snap_idle_s(s, &tn->gpu[k]);

				holds = 1;
				if (least < 0 || i < least)
					least = i;
			}
		}
		if (!holds)
			continue;
		snprintf(p->uid, sizeof p->uid, "%s", uid);
		p->idle_s = least;
		p->idle = least >= after_s;
		n++;
	}
	return n;
}
