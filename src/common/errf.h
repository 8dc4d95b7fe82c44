/* errf.h - the reason a fallible function gives its caller.
 *
 * Functions that can refuse their input take a buffer for a sentence that
 * says why ("gpupool.io/node-state: version 2 is newer than ..."), which
 * the daemons pass on to users.  gp_errf writes that sentence and returns
 * the error code in one expression: `return gp_errf(why, n, -EINVAL, ...)`.
 */
#ifndef GP_COMMON_ERRF_H
#define GP_COMMON_ERRF_H

#include <stddef.h>

/* Format into buf (n bytes, always NUL-terminated when n > 0; buf may be
 * NULL when n is 0) and return rc. */
int gp_errf(char *buf, size_t n, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
