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

/* Bytes of memory a card may have or give: 16 TiB, far above any card. */
#define GP__ANNOT_MAX_MEM ((uint64_t)1 << 44)

struct gp_annot_hold;

/* A pod's footprint per GPU as JSON: [{"uuid", "memoryBytes", "compute",
 * "tenants", "exclusive"}].  NULL when out of memory. */
json_t *gp__annot_holds_json(const struct gp_annot_hold *h, unsigned n);

/* Read such a list (at most GP_MAX_GPUS entries, no GPU twice) into h.
 * 0 or -EINVAL with "<where>..." in why. */
int gp__annot_holds_read(json_t *list, struct gp_annot_hold *h, unsigned *nh, const char *where,
			 char *why, size_t n);

#endif
