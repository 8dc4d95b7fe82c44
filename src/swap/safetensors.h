/* safetensors.h - the header of a safetensors file: which tensors it holds
 * and where their bytes lie, so that `gpupool engine` can stream a model's
 * weights from disk to the GPU without a Python stack.
 *
 * The format (huggingface/safetensors): an 8-byte little-endian unsigned
 * header length N, then N bytes of JSON, then the data.  The JSON object maps
 * each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} with
 * offsets relative to the start of the data, and may hold "__metadata__", a
 * string-to-string map.  The data must be covered exactly: no holes, no
 * overlaps, and each tensor's byte length must equal its shape's element
 * count times its dtype's size.
 *
 * Everything read is checked and capped (header at most 100 MiB, as the
 * reference implementation limits it; at most 1,048,576 tensors; names at
 * most 1024 bytes; at most 16 dimensions), and a bad file is refused with a
 * message naming the tensor and the rule.  Pure parsing: the only I/O is in
 * gp_safetensors_open(), which reads the length and the header, never the
 * data.
 */
#ifndef GP_SWAP_SAFETENSORS_H
#define GP_SWAP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define GP_ST_MAX_HEADER (100u << 20) /* bytes of JSON */
#define GP_ST_MAX_TENSORS (1u << 20)
#define GP_ST_MAX_NAME 1024u          /* bytes of a tensor name */
#define GP_ST_MAX_DIMS 16u

struct gp_safetensors; /* opaque: a parsed header */

/* One tensor, as the header describes it. */
struct gp_st_tensor {
	const char *name;      /* NUL-terminated, owned by the gp_safetensors */
	const char *dtype;     /* "F16", "BF16", "F32", ... (a static string) */
	unsigned elem_size;    /* bytes per element of dtype */
	unsigned ndims;        /* entries of shape[] used, <= GP_ST_MAX_DIMS */
	uint64_t shape[GP_ST_MAX_DIMS];
	uint64_t begin, end;   /* [begin, end) relative to the data start */
};

/* Parse a header: `json`/`len` are the N bytes after the length prefix and
 * `data_len` the bytes that follow them (the file size - 8 - N).  On success
 * returns 0 and *out, whose tensors are sorted by offset (file order).
 * Returns -EINVAL with a message in err (NUL-terminated, truncated to
 * errlen) for anything the format forbids, -ENOMEM. */
int gp_safetensors_parse(const char *json, size_t len, uint64_t data_len,
			 struct gp_safetensors **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Read the length prefix and the header of the file at `path` (not the
 * data) and parse them.  Returns 0, -errno of the I/O (with err naming the
 * file), or what gp_safetensors_parse returns. */
int gp_safetensors_open(const char *path, struct gp_safetensors **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

void gp_safetensors_free(struct gp_safetensors *st);

/* The tensors, in file order: count, and the i-th (i < count). */
size_t gp_safetensors_count(const struct gp_safetensors *st);
const struct gp_st_tensor *gp_safetensors_tensor(const struct gp_safetensors *st, size_t i);

/* Where the data starts in the file (8 + N) and how many bytes it has. */
uint64_t gp_safetensors_data_offset(const struct gp_safetensors *st);
uint64_t gp_safetensors_data_bytes(const struct gp_safetensors *st);

/* The value of "__metadata__"[key], or NULL. */
const char *gp_safetensors_meta(const struct gp_safetensors *st, const char *key);

#endif
