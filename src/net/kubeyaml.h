/* kubeyaml.h - the subset of YAML that kubectl writes, read into JSON.
 *
 * kubeconfig files are YAML, but only a small, regular part of it: block
 * mappings and block sequences by indentation (a sequence may sit at its
 * key's indentation, as Go's YAML encoder writes it), plain, 'single' and
 * "double" quoted scalars on one line, comments, empty {} and [], and one
 * leading "---".  That subset is read here into a jansson tree.  Anything
 * else (anchors, aliases, tags, block scalars | >, non-empty flow
 * collections, several documents, tabs for indentation, multi-line
 * scalars) is refused with the line number and what was found, never
 * guessed at.
 *
 * Plain scalars become JSON null (empty, ~, null), booleans (true/false in
 * the three spellings YAML 1.2 knows), integers (decimal, fits int64) or
 * strings; quoted scalars are always strings.
 */
#ifndef GP_NET_KUBEYAML_H
#define GP_NET_KUBEYAML_H

#include <jansson.h>
#include <stddef.h>

/* Hard cap on the text accepted, and on nesting. */
#define GP_KUBEYAML_MAX_BYTES (1u << 20)
#define GP_KUBEYAML_MAX_DEPTH 32

/* Parse `len` bytes of `text` (need not be NUL-terminated).  Returns a new
 * JSON value (an object or an array; the caller owns it), or NULL with
 * "line N: why" in err. */
json_t *gp__kubeyaml_parse(const char *text, size_t len, char *err, size_t n);

#endif
