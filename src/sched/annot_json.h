/* annot_json.h - strict readers of JSON members, shared by the annotation
 * codecs (internal to annot*.c).
 *
 * Each reads obj[key] with a type and a range; a missing member takes the
 * default unless `required`; a wrong type or an out-of-range value is
 * -EINVAL with "<where>: <key> ..." in why.
 */
#ifndef GP_SCHED_ANNOT_JSON_H
#define GP_SCHED_ANNOT_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int gp__annot_u64(json_t *obj, const char *key, bool required, uint64_t lo, uint64_t hi,
		  uint64_t def, uint64_t *out, const char *where, char *why, size_t n);
int gp__annot_int(json_t *obj, const char *key, bool required, int lo, int hi, int def, int *out,
		  const char *where, char *why, size_t n);
int gp__annot_bool(json_t *obj, const char *key, bool required, bool def, bool *out,
		   const char *where, char *why, size_t n);

/* A string of 1..cap-1 bytes copied into buf (cap bytes); a missing
 * optional one gives "". */
int gp__annot_str(json_t *obj, const char *key, bool required, char *buf, size_t cap,
		  const char *where, char *why, size_t n);

/* Load text as JSON (duplicate keys refused), after the size cap. */
json_t *gp__annot_load(const char *text, const char *what, char *why, size_t n);

/* The "version" member: 0 if it is GP_ANNOT_VERSION, -EPROTONOSUPPORT if
 * newer, -EINVAL otherwise. */
int gp__annot_version(json_t *doc, const char *what, char *why, size_t n);

#endif
