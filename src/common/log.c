/* log.c - see log.h. */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>

int gp__log_level = GP_LOG_WARN;
static const char *log_tag = "gpupool";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int gp_log_parse_level(const char *s, enum gp_log_level *out)
{
	if (!s)
		return -EINVAL;
	for (int i = 0; i < (int)(sizeof level_names / sizeof *level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum gp_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void gp_log_setup(enum gp_log_level lvl, const char *tag)
{
	gp__log_level = (int)lvl;
	if (tag)
		log_tag = tag;
}

void gp_log(enum gp_log_level lvl, const char *fmt, ...)
{
	char buf[1024];
	int saved = errno; /* logging must not clobber the caller's errno */
	int n, m;
	va_list ap;

	if (!GP_LOG_ON(lvl))
		return;
	n = snprintf(buf, sizeof buf, "gpupool[%s %d] %s: ", log_tag,
		     (int)getpid(), level_names[lvl]);
	if (n < 0)
		goto out;
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		goto out;
	n += m;
	if (n > (int)sizeof buf - 2) /* truncated: keep the newline */
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	/* One write: a line is atomic with respect to other writers. */
	while (write(STDERR_FILENO, buf, (size_t)n) < 0 && errno == EINTR)
		;
out:
	errno = saved;
}
