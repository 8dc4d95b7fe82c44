/* clock.h - the clocks gpupool measures with.
 *
 * Monotonic time is what every part compares across processes (CLOCK_MONOTONIC
 * is system-wide, so timestamps written into shared regions by one process are
 * meaningful to another).  Wall time is only for what humans read.
 */
#ifndef GP_COMMON_CLOCK_H
#define GP_COMMON_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Nanoseconds of CLOCK_MONOTONIC. */
uint64_t gp_now_ns(void);

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t gp_wall_ns(void);

/* Sleep until CLOCK_MONOTONIC reaches `deadline_ns`, resuming after signals.
 * Returns at once if the deadline has passed. */
void gp_sleep_until_ns(uint64_t deadline_ns);

/* Unix milliseconds as RFC 3339 UTC with milliseconds,
 * "2024-11-21T01:02:03.456Z" (the time format of every annotation and
 * JSON document gpupool writes). */
void gp_time_format(int64_t ms, char *buf, size_t n);

#endif
