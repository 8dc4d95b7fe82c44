/* parse.h - strict parsers for the values users write: sizes, percentages,
 * plain integers, comma lists.
 *
 * Every parser takes the whole string: trailing junk is an error, never
 * ignored.  They return 0 on success, -EINVAL for text that is not of the
 * expected form, -ERANGE for a well-formed value out of range.  None of them
 * allocates, so the hook can use them inside other people's processes.
 */
#ifndef GP_COMMON_PARSE_H
#define GP_COMMON_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define GP_WUR __attribute__((warn_unused_result))

/* A memory limit as written by the user: either an absolute byte count or a
 * share of the device's physical memory. */
struct gp_limit {
	uint64_t bytes;   /* absolute size; 0 when `ppm` is used */
	uint32_t ppm;     /* share of physical memory in parts per million
	                     (50% = 500000); 0 when `bytes` is used */
};

/* Decimal unsigned integer, digits only (no sign, no spaces). */
int gp_parse_u64(const char *s, uint64_t *out) GP_WUR;

/* A size: a decimal number (fractions allowed: "1.5G") and an optional
 * binary unit K, M, G, T, P, each optionally followed by "i" and/or "B", in
 * any case ("2GiB", "2G", "512mb", "1024").  Units are always binary.
 * Surrounding blanks and one blank before the unit are accepted.  A
 * fractional byte count is rounded down. */
int gp_parse_size(const char *s, uint64_t *out) GP_WUR;

/* A memory limit: a size as above, or "N%" with 0 < N <= 100 (up to four
 * decimals).  Zero bytes is -ERANGE: an unset variable means unlimited. */
int gp_parse_limit(const char *s, struct gp_limit *out) GP_WUR;

/* Resolve a limit against a device of `physical` bytes: a percentage gives
 * that share (rounded down), an absolute size is returned as is. */
uint64_t gp_limit_bytes(const struct gp_limit *l, uint64_t physical);

/* An integer percentage lo..hi, with or without a trailing '%'. */
int gp_parse_percent(const char *s, unsigned lo, unsigned hi, unsigned *out) GP_WUR;

/* Write `bytes` for humans ("2.00 GiB", "300 MiB", "17 B") into buf.
 * Returns buf. */
char *gp_format_size(uint64_t bytes, char *buf, size_t n);

/* Iterate over a `sep`-separated list without copying.  On each call returns
 * the next item (not NUL-terminated; its length in *len, surrounding blanks
 * trimmed) and advances *cursor; returns NULL at the end.  Empty items are
 * returned as length 0, so "a,,b" yields three items. */
const char *gp_list_next(const char **cursor, char sep, size_t *len);

/* Optimal string alignment distance between a and b (insertions,
 * deletions, substitutions, adjacent swaps), capped at 3: enough to tell a
 * typo from another word, for did-you-mean messages.  Strings of 32 bytes
 * or more count as 3. */
unsigned gp_typo_distance(const char *a, const char *b);

/* Make the NUL-terminated `s` valid UTF-8 in place, for text that goes
 * into JSON (jansson refuses anything else): each byte that does not
 * start or continue a well-formed sequence (overlong forms, surrogates and
 * code points past U+10FFFF included) becomes '?', and a sequence cut
 * short at the end (by snprintf's truncation) is dropped.  Returns s. */
char *gp_utf8_fix(char *s);

#endif
