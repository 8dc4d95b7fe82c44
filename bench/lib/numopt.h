/* numopt.h - the benchmarks' numeric options: a table of (option id, name,
 * offset of a double in the options struct, bounds), applied in one place,
 * with one error message.  Header-only: each benchmark is one program. */
#ifndef GP_BENCH_NUMOPT_H
#define GP_BENCH_NUMOPT_H

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct numopt {
	int id;           /* getopt_long's value for the option */
	const char *name; /* without the dashes */
	size_t off;       /* offsetof the double it sets */
	double lo, hi;    /* accepted values, inclusive */
};

/* A number within [lo, hi], the whole argument, into *out.  Returns 0, or
 * -1 after printing "PROG: --NAME ARG: expected a number in [lo, hi]". */
static inline int numopt_parse(const char *prog, const char *name, const char *arg, double lo,
			       double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (end == arg || *end != '\0' || errno || !isfinite(v) || v < lo || v > hi) {
		fprintf(stderr, "%s: --%s %s: expected a number in [%g, %g]\n", prog, name, arg, lo,
			hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* Option `c` with argument `arg`, if the table has it: sets the double in
 * `base`.  Returns 1 (set), 0 (not a numeric option) or -1 (bad value,
 * printed). */
static inline int numopt_apply(const char *prog, const struct numopt *t, size_t n, int c,
			       const char *arg, void *base)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].id == c)
			return numopt_parse(prog, t[i].name, arg, t[i].lo, t[i].hi,
					    (double *)((char *)base + t[i].off)) ? -1 : 1;
	return 0;
}

#endif
