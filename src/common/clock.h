/* clock.h - the clocks gpupool measures with.
 *
 * Monotonic time is what every part compares across processes (CLOCK_MONOTONIC
 * is system-wide, so timestamps written into shared regions by one process are
 * meaningful to another).  Wall time is only for what humans read.
 */
#ifndef GP_COMMON_CLOCK_H
#define GP_COMMON_CLOCK_H

#include <stdint.h>

/* Nanoseconds of CLOCK_MONOTONIC. */
uint64_t gp_now_ns(void);

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t gp_wall_ns(void);

/* Sleep until CLOCK_MONOTONIC reaches `deadline_ns`, resuming after signals.
 * Returns at once if the deadline has passed. */
void gp_sleep_until_ns(uint64_t deadline_ns);

#endif
