/* parse.c - see parse.h. */
#include "common/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* Parse the digits at *p into *v, advancing *p.  Returns the number of
 * digits read, or -ERANGE on overflow. */
static int read_digits(const char **p, uint64_t *v)
{
	int n = 0;
	uint64_t x = 0;

	for (const char *s = *p; isdigit((unsigned char)*s); s++, n++) {
		unsigned d = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -ERANGE;
		x = x * 10 + d;
	}
	*p += n;
	*v = x;
	return n;
}

int gp_parse_u64(const char *s, uint64_t *out)
{
	int n;

	if (!s)
		return -EINVAL;
	n = read_digits(&s, out);
	if (n < 0)
		return n;
	return (n > 0 && *s == '\0') ? 0 : -EINVAL;
}

/* A decimal number "I" or "I.F" as a 128-bit fixed point value scaled by
 * 10^frac_digits.  Kept separate so sizes and percentages share it. */
struct decimal {
	uint64_t ipart;
	uint64_t fpart;    /* fraction digits as an integer */
	unsigned fdigits;  /* how many fraction digits */
};

/* Read "I" or "I.F" (digits on both sides of the point).  Fraction digits
 * beyond max_fdigits are read but dropped, which rounds down. */
static int read_decimal(const char **p, struct decimal *d, unsigned max_fdigits)
{
	const char *s = *p;
	int n = read_digits(&s, &d->ipart);

	if (n <= 0)
		return n < 0 ? n : -EINVAL;
	d->fpart = 0;
	d->fdigits = 0;
	if (*s == '.') {
		if (!isdigit((unsigned char)s[1]))
			return -EINVAL;
		for (s++; isdigit((unsigned char)*s); s++) {
			if (d->fdigits < max_fdigits) {
				d->fpart = d->fpart * 10 + (uint64_t)(*s - '0');
				d->fdigits++;
			}
		}
	}
	*p = s;
	return 0;
}

static uint64_t pow10u(unsigned e)
{
	uint64_t r = 1;
	while (e--)
		r *= 10;
	return r;
}

/* Multiply a decimal by `unit`; -ERANGE if the result exceeds UINT64_MAX. */
static int scale_decimal(const struct decimal *d, uint64_t unit, uint64_t *out)
{
	unsigned __int128 whole = (unsigned __int128)d->ipart * unit;
	unsigned __int128 frac =
		(unsigned __int128)d->fpart * unit / pow10u(d->fdigits);
	unsigned __int128 r = whole + frac;

	if (r > UINT64_MAX)
		return -ERANGE;
	*out = (uint64_t)r;
	return 0;
}

/* Match an optional unit suffix; returns the multiplier, or 0 if the text
 * at s is not a unit.  *s is advanced past it. */
static uint64_t read_unit(const char **p)
{
	static const char letters[] = "kmgtp";
	const char *s = *p;
	const char *hit;
	uint64_t unit = 1;

	if (*s == '\0')
		return 1;
	if (*s == 'b' || *s == 'B') { /* plain bytes: "100B" */
		*p = s + 1;
		return 1;
	}
	hit = strchr(letters, tolower((unsigned char)*s));
	if (!hit)
		return 0;
	unit <<= 10 * (unsigned)(hit - letters + 1);
	s++;
	if (*s == 'i' || *s == 'I')
		s++;
	if (*s == 'b' || *s == 'B')
		s++;
	*p = s;
	return unit;
}

int gp_parse_size(const char *s, uint64_t *out)
{
	struct decimal d;
	uint64_t unit;
	int rc;

	if (!s)
		return -EINVAL;
	s = skip_blanks(s);
	rc = read_decimal(&s, &d, 18);
	if (rc)
		return rc;
	if (*s == ' ')
		s++;
	unit = read_unit(&s);
	if (!unit)
		return -EINVAL;
	if (*skip_blanks(s) != '\0')
		return -EINVAL;
	return scale_decimal(&d, unit, out);
}

int gp_parse_limit(const char *s, struct gp_limit *out)
{
	const char *pct;
	int rc;

	if (!s)
		return -EINVAL;
	pct = strchr(s, '%');
	if (pct) {
		struct decimal d;
		uint64_t ppm;
		const char *p = skip_blanks(s);

		rc = read_decimal(&p, &d, 4);
		if (rc)
			return rc;
		p = skip_blanks(p);
		if (p != pct || *skip_blanks(pct + 1) != '\0')
			return -EINVAL;
		rc = scale_decimal(&d, 10000, &ppm); /* percent -> ppm */
		if (rc)
			return rc;
		if (ppm == 0 || ppm > 1000000)
			return -ERANGE;
		out->bytes = 0;
		out->ppm = (uint32_t)ppm;
		return 0;
	}
	rc = gp_parse_size(s, &out->bytes);
	if (rc)
		return rc;
	if (out->bytes == 0)
		return -ERANGE;
	out->ppm = 0;
	return 0;
}

uint64_t gp_limit_bytes(const struct gp_limit *l, uint64_t physical)
{
	if (l->ppm)
		return (uint64_t)((unsigned __int128)physical * l->ppm / 1000000);
	return l->bytes;
}

int gp_parse_percent(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	uint64_t v;
	int n;

	if (!s)
		return -EINVAL;
	s = skip_blanks(s);
	n = read_digits(&s, &v);
	if (n < 0)
		return n;
	if (n == 0)
		return -EINVAL;
	if (*s == '%')
		s++;
	if (*skip_blanks(s) != '\0')
		return -EINVAL;
	if (v < lo || v > hi)
		return -ERANGE;
	*out = (unsigned)v;
	return 0;
}

char *gp_format_size(uint64_t bytes, char *buf, size_t n)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	unsigned u = 0;

	while (u + 1 < sizeof units / sizeof *units && bytes >= (1024ULL << (10 * u)))
		u++;
	if (u == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)bytes);
	else if (bytes % (1ULL << (10 * u)) == 0)
		snprintf(buf, n, "%llu %s", (unsigned long long)(bytes >> (10 * u)), units[u]);
	else
		snprintf(buf, n, "%.2f %s", (double)bytes / (double)(1ULL << (10 * u)), units[u]);
	return buf;
}

const char *gp_list_next(const char **cursor, char sep, size_t *len)
{
	const char *s = *cursor, *end, *item;

	if (!s)
		return NULL;
	end = strchr(s, sep);
	*cursor = end ? end + 1 : NULL;
	if (!end)
		end = s + strlen(s);
	item = skip_blanks(s);
	while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*len = (size_t)(end - item);
	return item;
}

unsigned gp_typo_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned d[32][32];

	if (la >= 32 || lb >= 32)
		return 3;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			unsigned v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);

			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[la][lb] > 3 ? 3 : d[la][lb];
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629's table), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* The second byte's range excludes overlong forms, surrogates and
	 * code points past U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

char *gp_utf8_fix(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = utf8_seq(p);
		if (n) {
			p += n;
			continue;
		}
		/* A lead byte whose sequence the end of the string cut: drop
		 * the tail rather than leave a '?' for a character that was
		 * only truncated. */
		if (*p >= 0xc2 && *p <= 0xf4) {
			size_t k = 1;
			while (p[k] >= 0x80 && p[k] <= 0xbf)
				k++;
			if (!p[k]) {
				*p = '\0';
				break;
			}
		}
		*p++ = '?';
	}
	return s;
}
