/* opts.c - see opts.h. */
#include "cli/opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/parse.h"

#define DAY_MS 86400000L

/* A duration: digits and a unit (ms, s, m, h; none = s), in milliseconds,
 * at most a day.  Returns 0 or -EINVAL. */
static int parse_ms(const char *s, long *out)
{
	static const struct {
		const char *unit;
		long ms;
	} units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || v > DAY_MS)
		return -EINVAL;
	for (size_t i = 0; i < sizeof units / sizeof *units; i++)
		if (strcmp(end, units[i].unit) == 0) {
			if (v * units[i].ms > DAY_MS)
				return -EINVAL;
			*out = v * units[i].ms;
			return 0;
		}
	return -EINVAL;
}

/* A name as Kubernetes takes it (a DNS subdomain): 1-253 of a-z, 0-9, '-'
 * and '.', starting and ending alphanumeric. */
static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

/* Store one option's value.  Returns 0 or GP_EXIT_USAGE (said why). */
static int set(const char *cmd, void *cfg, const struct gp_cli_opt *o, const char *val)
{
	char *p = (char *)cfg + o->off;
	uint64_t u;

	switch (o->kind) {
	case GP_OPT_STR:
		if (!*val)
			return gp_cli_usage_error(cmd, "--%s: empty value", o->name);
		*(const char **)p = val;
		return 0;
	case GP_OPT_NAME:
		if (!valid_name(val))
			return gp_cli_usage_error(cmd, "--%s: '%s' is not a Kubernetes name "
							"(lowercase letters, digits, '-' and '.')",
						  o->name, val);
		*(const char **)p = val;
		return 0;
	case GP_OPT_MS:
		if (parse_ms(val, (long *)p))
			return gp_cli_usage_error(cmd, "--%s: '%s' is not a duration (e.g. 15s, "
							"500ms)", o->name, val);
		return 0;
	case GP_OPT_SIZE:
		if (gp_parse_size(val, &u) || u < o->lo || u > o->hi)
			return gp_cli_usage_error(cmd, "--%s: '%s' is not a size from %llu to %llu "
							"bytes", o->name, val,
						  (unsigned long long)o->lo,
						  (unsigned long long)o->hi);
		*(size_t *)p = (size_t)u;
		return 0;
	case GP_OPT_UINT:
		if (gp_parse_u64(val, &u) || u < o->lo || u > o->hi)
			return gp_cli_usage_error(cmd, "--%s: '%s' is not a number %llu..%llu",
						  o->name, val, (unsigned long long)o->lo,
						  (unsigned long long)o->hi);
		*(unsigned *)p = (unsigned)u;
		return 0;
	case GP_OPT_FLAG:
		*(int *)p = 1;
		return 0;
	}
	return GP_EXIT_USAGE;
}

int gp_cli_parse_opts(const char *cmd, const struct gp_cli_opt *t, size_t n, int argc,
		      char **argv, void *cfg)
{
	struct option *lo = calloc(n + 1, sizeof *lo);
	char *shorts = malloc(2 * n + 2), *sp = shorts;
	int ch, idx, rc = 0;

	if (!lo || !shorts) {
		free(lo);
		free(shorts);
		return gp_cli_usage_error(cmd, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		int arg = t[i].kind == GP_OPT_FLAG ? no_argument : required_argument;

		lo[i] = (struct option){t[i].name, arg, NULL,
					t[i].short_name ? t[i].short_name : 256 + (int)i};
		if (t[i].short_name) {
			*sp++ = (char)t[i].short_name;
			if (arg == required_argument)
				*sp++ = ':';
		}
	}
	*sp = '\0';
	opterr = 0;
	optind = 1;
	while (!rc && (ch = getopt_long(argc, argv, shorts, lo, &idx)) != -1) {
		const struct gp_cli_opt *o = NULL;

		if (ch == '?' || ch == ':') {
			rc = gp_cli_usage_error(cmd, "unknown option or missing value: '%s'",
						argv[optind - 1]);
			break;
		}
		for (size_t i = 0; i < n; i++)
			if (ch == (t[i].short_name ? t[i].short_name : 256 + (int)i))
				o = &t[i];
		rc = o ? set(cmd, cfg, o, optarg)
		       : gp_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
	}
	free(lo);
	free(shorts);
	return rc;
}
