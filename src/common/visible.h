/* visible.h - CUDA_VISIBLE_DEVICES, read as the real driver reads it.
 *
 * A comma list of device indices or UUIDs ("GPU-..." in full or any unique
 * prefix; the hex digits in any case).  Enumeration stops at the first entry that is
 * invalid (an index out of range, a UUID matching no device or several, a
 * MIG id, a word) or that names a device already listed; an empty value
 * hides every device.  CUDA device ordinals are positions in the resulting
 * list.  The simulator enumerates its devices with this, and the hook maps
 * NVML's devices to CUDA ordinals with it, so the two always agree.
 */
#ifndef GP_COMMON_VISIBLE_H
#define GP_COMMON_VISIBLE_H

/* Resolve `env` (NULL: the variable is unset, every device is visible)
 * against the machine's `n` devices, whose UUID strings are uuids[0..n).
 * Fills idx[] (room for `max`) with the machine indices made visible, in
 * order, and returns how many. */
unsigned gp_visible_parse(const char *env, const char *const *uuids, unsigned n, int *idx,
			  unsigned max);

#endif
