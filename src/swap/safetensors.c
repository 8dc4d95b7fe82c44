/* safetensors.c - parse and check a safetensors header (see safetensors.h). */
#include "swap/safetensors.h"

#include "common/errf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct gp_safetensors {
	struct gp_st_tensor *t;
	size_t n;
	uint64_t data_offset, data_bytes;
	json_t *meta;  /* "__metadata__", or NULL */
};

/* The dtypes of the format, with their element sizes.  Sub-byte types
 * (F4, F6_*) are refused: their byte lengths are not element counts times
 * a size, and no engine here serves them. */
static const struct {
	const char *name;
	unsigned size;
} dtypes[] = {
	{"BOOL", 1}, {"U8", 1},   {"I8", 1},   {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
	{"I16", 2},  {"U16", 2},  {"F16", 2},  {"BF16", 2},    {"I32", 4},     {"U32", 4},
	{"F32", 4},  {"I64", 8},  {"U64", 8},  {"F64", 8},     {"C64", 8},
};

void gp_safetensors_free(struct gp_safetensors *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		free((char *)st->t[i].name);
	free(st->t);
	json_decref(st->meta);
	free(st);
}

/* A JSON integer that is a non-negative count, or -1. */
static int64_t count_of(const json_t *v)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	return (int64_t)json_integer_value(v);
}

/* Fill `t` from the entry `v` of tensor `name`.  Returns 0 or -EINVAL with
 * err set. */
static int tensor_of(const char *name, const json_t *v, struct gp_st_tensor *t, char *err,
		     size_t errlen)
{
	const json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
	const json_t *off = json_object_get(v, "data_offsets");
	uint64_t elems = 1, bytes;
	size_t i;

	if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) ||
	    !json_is_array(off) || json_object_size(v) != 3)
		return gp_errf(err, errlen, -EINVAL, "tensor '%s': want exactly {\"dtype\", "
			       "\"shape\", \"data_offsets\"}", name);
	for (i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
		if (strcmp(json_string_value(dt), dtypes[i].name) == 0)
			break;
	if (i == sizeof dtypes / sizeof *dtypes)
		return gp_errf(err, errlen, -EINVAL, "tensor '%s': unknown dtype '%.32s'", name,
			       json_string_value(dt));
	t->dtype = dtypes[i].name;
	t->elem_size = dtypes[i].size;
	if (json_array_size(shape) > GP_ST_MAX_DIMS)
		return gp_errf(err, errlen, -EINVAL, "tensor '%s': more than %u dimensions", name,
			       GP_ST_MAX_DIMS);
	t->ndims = (unsigned)json_array_size(shape);
	for (i = 0; i < t->ndims; i++) {
		int64_t d = count_of(json_array_get(shape, i));
		if (d < 0 || (d > 0 && elems > UINT64_MAX / (uint64_t)d))
			return gp_errf(err, errlen, -EINVAL,
				       "tensor '%s': shape[%zu] is not a count (or overflows)", name, i);
		t->shape[i] = (uint64_t)d;
		elems *= (uint64_t)d;
	}
	if (json_array_size(off) != 2 || count_of(json_array_get(off, 0)) < 0 ||
	    count_of(json_array_get(off, 1)) < 0)
		return gp_errf(err, errlen, -EINVAL,
			       "tensor '%s': data_offsets must be [begin, end], two counts", name);
	t->begin = (uint64_t)count_of(json_array_get(off, 0));
	t->end = (uint64_t)count_of(json_array_get(off, 1));
	if (t->end < t->begin)
		return gp_errf(err, errlen, -EINVAL,
			       "tensor '%s': data_offsets end before they begin", name);
	if (elems > UINT64_MAX / t->elem_size)
		return gp_errf(err, errlen, -EINVAL, "tensor '%s': size overflows", name);
	bytes = elems * t->elem_size;
	if (t->end - t->begin != bytes)
		return gp_errf(err, errlen, -EINVAL,
			       "tensor '%s': %llu bytes at data_offsets, but %s x %llu elements "
			       "is %llu", name, (unsigned long long)(t->end - t->begin), t->dtype,
			       (unsigned long long)elems, (unsigned long long)bytes);
	return 0;
}

static int cmp_offset(const void *a, const void *b)
{
	const struct gp_st_tensor *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return (x->end > y->end) - (x->end < y->end);
}

/* The metadata must map strings to strings. */
static int check_meta(const json_t *m, char *err, size_t errlen)
{
	const char *k;
	const json_t *v;

	if (!json_is_object(m))
		return gp_errf(err, errlen, -EINVAL, "__metadata__ must be an object of strings");
	json_object_foreach((json_t *)m, k, v)
		if (!json_is_string(v))
			return gp_errf(err, errlen, -EINVAL, "__metadata__ '%.64s': not a string",
				       k);
	return 0;
}

int gp_safetensors_parse(const char *json, size_t len, uint64_t data_len,
			 struct gp_safetensors **out, char *err, size_t errlen)
{
	struct gp_safetensors *st = NULL;
	json_error_t jerr;
	json_t *root = NULL, *v;
	const char *name;
	uint64_t at = 0;
	int rc;

	*out = NULL;
	if (len > GP_ST_MAX_HEADER)
		return gp_errf(err, errlen, -EINVAL, "header of %zu bytes, over the %u limit", len,
			       GP_ST_MAX_HEADER);
	if (len == 0 || json[0] != '{')
		return gp_errf(err, errlen, -EINVAL, "header does not start with '{'");
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = gp_errf(err, errlen, -EINVAL, "header is not JSON: %s (at byte %d)", jerr.text,
			     jerr.position);
		goto out;
	}
	if (!json_is_object(root) || json_object_size(root) > GP_ST_MAX_TENSORS + 1) {
		rc = gp_errf(err, errlen, -EINVAL, "header is not an object of at most %u tensors",
			     GP_ST_MAX_TENSORS);
		goto out;
	}
	rc = -ENOMEM;
	st = calloc(1, sizeof *st);
	if (!st || !(st->t = calloc(json_object_size(root) + 1, sizeof *st->t)))
		goto out;
	json_object_foreach(root, name, v) {
		struct gp_st_tensor *t = &st->t[st->n];

		if (strcmp(name, "__metadata__") == 0) {
			if ((rc = check_meta(v, err, errlen)))
				goto out;
			st->meta = json_incref(v);
			continue;
		}
		if (strlen(name) == 0 || strlen(name) > GP_ST_MAX_NAME) {
			rc = gp_errf(err, errlen, -EINVAL, "a tensor name of %zu bytes (1 to %u)",
				     strlen(name), GP_ST_MAX_NAME);
			goto out;
		}
		if ((rc = tensor_of(name, v, t, err, errlen)))
			goto out;
		if (!(t->name = strdup(name))) {
			rc = -ENOMEM;
			goto out;
		}
		st->n++;
	}
	/* The data is covered exactly, in offset order. */
	qsort(st->t, st->n, sizeof *st->t, cmp_offset);
	for (size_t i = 0; i < st->n; i++) {
		if (st->t[i].begin != at) {
			rc = gp_errf(err, errlen, -EINVAL, "tensor '%s' begins at %llu: %s at %llu",
				     st->t[i].name, (unsigned long long)st->t[i].begin,
				     st->t[i].begin > at ? "a hole in the data"
							 : "it overlaps the tensor ending",
				     (unsigned long long)at);
			goto out;
		}
		at = st->t[i].end;
	}
	if (at != data_len) {
		rc = gp_errf(err, errlen, -EINVAL,
			     "the tensors cover %llu bytes of data, the file has %llu",
			     (unsigned long long)at, (unsigned long long)data_len);
		goto out;
	}
	st->data_offset = 8 + (uint64_t)len;
	st->data_bytes = data_len;
	*out = st;
	st = NULL;
	rc = 0;
out:
	gp_safetensors_free(st);
	json_decref(root);
	return rc;
}

int gp_safetensors_open(const char *path, struct gp_safetensors **out, char *err, size_t errlen)
{
	unsigned char prefix[8];
	uint64_t n = 0;
	struct stat sb;
	char *json = NULL, why[512];
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gp_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &sb) != 0 || pread(fd, prefix, 8, 0) != 8) {
		rc = gp_errf(err, errlen, -EINVAL, "%s: shorter than the 8-byte header length",
			     path);
		goto out;
	}
	for (int i = 7; i >= 0; i--)
		n = n << 8 | prefix[i];
	if (n > GP_ST_MAX_HEADER || (uint64_t)sb.st_size < 8 + n) {
		rc = gp_errf(err, errlen, -EINVAL,
			     "%s: header length %llu (file of %lld bytes, limit %u)", path,
			     (unsigned long long)n, (long long)sb.st_size, GP_ST_MAX_HEADER);
		goto out;
	}
	rc = -ENOMEM;
	if (!(json = malloc(n ? n : 1)))
		goto out;
	if (pread(fd, json, n, 8) != (ssize_t)n) {
		rc = gp_errf(err, errlen, -EIO, "%s: short read of the header", path);
		goto out;
	}
	rc = gp_safetensors_parse(json, n, (uint64_t)sb.st_size - 8 - n, out, why, sizeof why);
	if (rc)
		gp_errf(err, errlen, rc, "%s: %s", path, rc == -ENOMEM ? "out of memory" : why);
out:
	free(json);
	close(fd);
	return rc;
}

size_t gp_safetensors_count(const struct gp_safetensors *st)
{
	return st->n;
}

const struct gp_st_tensor *gp_safetensors_tensor(const struct gp_safetensors *st, size_t i)
{
	return i < st->n ? &st->t[i] : NULL;
}

uint64_t gp_safetensors_data_offset(const struct gp_safetensors *st)
{
	return st->data_offset;
}

uint64_t gp_safetensors_data_bytes(const struct gp_safetensors *st)
{
	return st->data_bytes;
}

const char *gp_safetensors_meta(const struct gp_safetensors *st, const char *key)
{
	return st->meta ? json_string_value(json_object_get(st->meta, key)) : NULL;
}
