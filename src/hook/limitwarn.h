/* limitwarn.h - warnings for limits that cannot apply as written: a
 * per-device variable for a device this process cannot see, and a memory
 * limit larger than its card (which the hook clamps to the card).  The
 * configuration stays valid in both cases (the driver decides what is
 * visible, and a budget of the whole card is a sensible reading of a
 * larger one); the user hears why the limit is not what was written.
 */
#ifndef GP_HOOK_LIMITWARN_H
#define GP_HOOK_LIMITWARN_H

#include <stdint.h>

#include "hook/config.h"

/* Called as visible device `ordinal` is set up, with its memory: warns
 * when the memory limit `cfg` gives it is larger than `physical`.  With
 * device 0 it also warns about every per-device variable
 * (GPUPOOL_MEMORY_LIMIT_<i>, GPUPOOL_CORE_LIMIT_<i> and HAMi's) naming a
 * device that the driver does not show this process.  Each warning is
 * given once per process.  Needs the real driver resolved. */
void gp__limit_warn(const struct gp__config *cfg, int ordinal, uint64_t physical);

#endif
