/* visible.h - the simulated machine's devices that CUDA_VISIBLE_DEVICES
 * lets this process see (semantics: common/visible.h).
 */
#ifndef GP_SIM_VISIBLE_H
#define GP_SIM_VISIBLE_H

#include "sim/machine.h"

/* Fill idx[] (room for GP_SIM_GPUS_MAX) with the machine indices `env`
 * makes visible, in order.  `env` NULL means unset: every device.  Returns
 * the number of visible devices, 0 when none is. */
int gp__sim_visible_parse(const char *env, const struct gp_sim_config *cfg, int *idx);

#endif
