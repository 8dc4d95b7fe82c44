/* errf.c - see errf.h. */
#include "common/errf.h"

#include <stdarg.h>
#include <stdio.h>

int gp_errf(char *buf, size_t n, int rc, const char *fmt, ...)
{
	va_list ap;

	if (!buf || !n)
		return rc;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return rc;
}
