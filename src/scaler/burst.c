/* burst.c - the split of a queue's replicas between an on-premises and a
 * cloud pool (see burst.h for the rule and why). */
#include "scaler/burst.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>

/* The cloud defaults are the figures of the issue that asked for hybrid
 * bursting: a cloud worker takes 180 s to serve (a node to provision
 * before the pod's own warm-up) and a cloud GPU-hour costs three
 * on-premises ones. */
void gp_burst_config_default(struct gp_burst_config *c)
{
	c->onprem_max = 0;
	c->cloud_warmup_s = 180.0;
	c->cloud_max = 100;
	c->cloud_cost = 3.0;
}

int gp_burst_config_check(const struct gp_burst_config *c, const char **bad_field)
{
	const struct {
		int ok;
		const char *field;
	} rules[] = {
		{isfinite(c->cloud_warmup_s) && c->cloud_warmup_s > 0.0, "cloud_warmup_s"},
		{isfinite(c->cloud_cost) && c->cloud_cost > 0.0, "cloud_cost"},
		{c->cloud_max >= 1, "cloud_max"},
	};

	/* Off, nothing else is read: a zeroed configuration is a valid "off". */
	if (c->onprem_max == 0)
		return 0;
	for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
		if (!rules[i].ok) {
			if (bad_field)
				*bad_field = rules[i].field;
			return -EINVAL;
		}
	}
	return 0;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

void gp_burst_split(const struct gp_burst_config *c, uint32_t near, uint32_t far,
		    struct gp_burst_out *out)
{
	/* The cloud must cover what on-premises cannot, now (near) as well as
	 * once a cloud worker ordered now is warm (far): a falling forecast
	 * must not release cloud workers that are still serving the present. */
	uint32_t peak = near > far ? near : far;

	out->near = near;
	out->far = far;
	if (c->onprem_max == 0) {
		out->onprem = near;
		out->cloud = 0;
		return;
	}
	out->onprem = min_u32(c->onprem_max, near);
	out->cloud = peak > c->onprem_max ? min_u32(c->cloud_max, peak - c->onprem_max) : 0;
}
