/* visible.h - CUDA_VISIBLE_DEVICES, read as the real driver reads it.
 *
 * A comma list of device indices or UUIDs ("GPU-..." in full or any unique
 * prefix).  Enumeration stops at the first entry that is invalid or names
 * a device already listed; an empty value hides every device.  CUdevice
 * ordinals are positions in the resulting list.
 */
#ifndef GP_SIM_VISIBLE_H
#define GP_SIM_VISIBLE_H

#include "sim/machine.h"

/* Fill idx[] (room for GP_SIM_GPUS_MAX) with the machine indices `env`
 * makes visible, in order.  `env` NULL means unset: every device.  Returns
 * the number of visible devices, 0 when none is. */
int gp__sim_visible_parse(const char *env, const struct gp_sim_config *cfg, int *idx);

#endif
