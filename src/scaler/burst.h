/* burst.h - hybrid bursting: one queue consumed by two pools, an
 * on-premises pool of fixed capacity and a cloud pool that warms up slower
 * and costs more, and how the queue's desired replicas split between them.
 *
 * The rule, with `near` the replicas the forecast wants one on-premises
 * warm-up ahead (the queue's own horizon) and `far` the replicas it wants
 * one cloud warm-up ahead (gp_forecast_desired_at):
 *
 *   onprem = min(onprem_max, near)
 *   cloud  = min(cloud_max, max(0, max(near, far) - onprem_max))
 *
 * On-premises capacity is filled first: it is there and paid for.  The
 * cloud is ordered as soon as the demand one *cloud* warm-up ahead exceeds
 * the on-premises capacity, so that it is warm when on-premises saturates;
 * ordering it on the near horizon would leave the excess demand waiting
 * through the difference of the warm-ups.  As demand falls, the cloud count
 * falls first: on-premises stays at its cap until the total is below it.
 *
 * Pure computation: no I/O, no allocation.  docs/scaler.md ("Hybrid
 * bursting") explains the setup.
 */
#ifndef GP_SCALER_BURST_H
#define GP_SCALER_BURST_H

#include <stdint.h>

/* Start from gp_burst_config_default() and override fields. */
struct gp_burst_config {
	uint32_t onprem_max;   /* on-premises capacity in replicas; 0 (the
	                          default) = no hybrid split for the queue */
	double cloud_warmup_s; /* how long a new cloud worker takes to serve,
	                          > 0; default 180 */
	uint32_t cloud_max;    /* ceiling of the cloud pool, >= 1 when hybrid;
	                          default 100 (the daemon makes it the queue's
	                          --max-replicas) */
	double cloud_cost;     /* a cloud GPU-hour in on-premises GPU-hours,
	                          > 0; default 3.  Reported for dashboards only:
	                          the rule fills on-premises first whatever it
	                          is, since that capacity is paid for anyway */
};

/* Fill `c` with the defaults listed above (hybrid off). */
void gp_burst_config_default(struct gp_burst_config *c);

/* Check a configuration.  Returns 0, or -EINVAL with *bad_field (when
 * bad_field is not NULL) set to the name of the first offending field
 * ("cloud_warmup_s", "cloud_max", "cloud_cost").  With onprem_max 0 (off)
 * nothing else is read, so every such configuration checks, a zeroed one
 * included. */
int gp_burst_config_check(const struct gp_burst_config *c, const char **bad_field)
	__attribute__((warn_unused_result));

/* The split of one forecast. */
struct gp_burst_out {
	uint32_t onprem;  /* replicas wanted from the on-premises pool */
	uint32_t cloud;   /* replicas wanted from the cloud pool */
	uint32_t near;    /* the inputs, for reporting: the queue's replicas */
	uint32_t far;     /* ... one on-premises and one cloud warm-up ahead */
};

/* Split `near` and `far` (see the top of this file) into *out.  With
 * onprem_max 0 everything goes on-premises (no split). */
void gp_burst_split(const struct gp_burst_config *c, uint32_t near, uint32_t far,
		    struct gp_burst_out *out);

#endif
