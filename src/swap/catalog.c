/* catalog.c - see catalog.h.
 *
 * Two stages.  First the text becomes a small tree (read with libyaml's
 * event API, as net/kubeconfig.c reads YAML: events let us refuse anchors,
 * aliases and tags, and cap depth, size and node count as we go, before
 * anything is built).  The tree keeps every node's line and column, which
 * a jansson tree would lose, so that each error points at its value.
 * Then the tree is interpreted through tables of fields, one per section;
 * cross-checks (servers, engines_per_replica) run once everything is read.
 */
#include "swap/catalog.h"

#include "common/errf.h"
#include "common/parse.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* --- the tree ---------------------------------------------------------------
 *
 * Nodes lie in one array in document order: a collection's children follow
 * it, and `end` is the index just past its subtree, so the next sibling of
 * node i is node v[i].end.  A mapping's children alternate key, value.
 * Scalar text lies NUL-terminated in one arena.
 */
enum ykind { Y_SCALAR, Y_MAP, Y_SEQ };

struct ynode {
	unsigned char kind;  /* enum ykind */
	unsigned char plain; /* a plain (unquoted, untagged) scalar */
	unsigned line, col;  /* where it starts, from 0 (libyaml's marks) */
	size_t end;          /* index past its subtree */
	size_t n;            /* children (a mapping: keys + values) */
	size_t off, len;     /* a scalar's text: arena offset and length */
};

struct ytree {
	struct ynode *v; /* the nodes; v[0] is the root */
	size_t n, cap;
	char *arena;     /* scalar text */
	size_t alen, acap;
};

/* The parse: input, output and the tree between them. */
struct ctx {
	const char *name; /* the text's name in messages */
	char *err;
	size_t errlen;
	struct ytree t;
	struct gp_swap_catalog *c;
	size_t (*mat)[16];  /* per model: value node of each model field */
	size_t (*eat)[16];  /* per engine: value node of each engine field */
	size_t dat[16];     /* defaults: value node of each field */
};

static int fail(struct ctx *x, unsigned line, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record "NAME:LINE:COL: why" (libyaml counts from 0) and return -EINVAL. */
static int fail(struct ctx *x, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;
	int k = snprintf(x->err, x->errlen, "%s:%u:%u: ", x->name, line + 1, col + 1);

	if (k >= 0 && (size_t)k < x->errlen) {
		va_start(ap, fmt);
		vsnprintf(x->err + k, x->errlen - (size_t)k, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

#define FAILN(x, i, ...) fail((x), (x)->t.v[i].line, (x)->t.v[i].col, __VA_ARGS__)

static const char *text(const struct ctx *x, size_t i)
{
	return x->t.arena + x->t.v[i].off;
}

/* The tree under construction: open collections. */
struct reader {
	struct ctx *x;
	yaml_parser_t parser;
	size_t stack[GP_SWAP_CATALOG_MAX_DEPTH]; /* indexes of open collections */
	int depth;
	int docs;     /* documents seen */
};

static int add_node(struct reader *r, const yaml_event_t *ev, enum ykind kind)
{
	struct ytree *t = &r->x->t;
	const yaml_mark_t *m = &ev->start_mark;

	if (t->n == GP_SWAP_CATALOG_MAX_NODES)
		return fail(r->x, (unsigned)m->line, (unsigned)m->column, "more than %u values",
			    GP_SWAP_CATALOG_MAX_NODES);
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct ynode *v = realloc(t->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n] = (struct ynode){.kind = (unsigned char)kind,
				    .line = (unsigned)m->line,
				    .col = (unsigned)m->column,
				    .end = t->n + 1};
	if (r->depth)
		t->v[r->stack[r->depth - 1]].n++;
	t->n++;
	return 0;
}

/* Whether the next node of the innermost collection is a mapping's key. */
static bool at_key(const struct reader *r)
{
	const struct ynode *f;

	if (!r->depth)
		return false;
	f = &r->x->t.v[r->stack[r->depth - 1]];
	return f->kind == Y_MAP && f->n % 2 == 0;
}

static int on_scalar(struct reader *r, const yaml_event_t *ev)
{
	struct ytree *t = &r->x->t;
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const yaml_mark_t *m = &ev->start_mark;
	int rc;

	if (len > GP_SWAP_CATALOG_MAX_SCALAR)
		return fail(r->x, (unsigned)m->line, (unsigned)m->column,
			    "a value longer than %u bytes", GP_SWAP_CATALOG_MAX_SCALAR);
	/* A "\0" escape: every field is a C string further on. */
	if (memchr(s, '\0', len))
		return fail(r->x, (unsigned)m->line, (unsigned)m->column,
			    "a NUL character in a string is not supported");
	if ((rc = add_node(r, ev, Y_SCALAR)))
		return rc;
	if (t->alen + len + 1 > t->acap) {
		size_t cap = t->acap ? t->acap : 4096;
		char *a;
		while (cap < t->alen + len + 1)
			cap *= 2;
		if (!(a = realloc(t->arena, cap)))
			return -ENOMEM;
		t->arena = a;
		t->acap = cap;
	}
	memcpy(t->arena + t->alen, s, len);
	t->arena[t->alen + len] = '\0';
	t->v[t->n - 1].off = t->alen;
	t->v[t->n - 1].len = len;
	t->v[t->n - 1].plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	t->alen += len + 1;
	return 0;
}

static int on_collection(struct reader *r, const yaml_event_t *ev, enum ykind kind)
{
	const yaml_mark_t *m = &ev->start_mark;
	int rc;

	if (at_key(r))
		return fail(r->x, (unsigned)m->line, (unsigned)m->column,
			    "a key must be a name, not a %s", kind == Y_MAP ? "mapping" : "list");
	if (r->depth == GP_SWAP_CATALOG_MAX_DEPTH)
		return fail(r->x, (unsigned)m->line, (unsigned)m->column,
			    "nested deeper than %d levels", GP_SWAP_CATALOG_MAX_DEPTH);
	if ((rc = add_node(r, ev, kind)))
		return rc;
	r->stack[r->depth++] = r->x->t.n - 1;
	return 0;
}

/* One event.  Returns 0 to go on, 1 at the end of the stream, or an
 * error with the message recorded. */
static int on_event(struct reader *r, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	const yaml_char_t *anchor = NULL, *tag = NULL;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_ALIAS_EVENT:
		anchor = ev->data.alias.anchor;
		break;
	default:
		break;
	}
	if (anchor)
		return fail(r->x, (unsigned)m->line, (unsigned)m->column,
			    "anchors and aliases are not supported");
	if (tag)
		return fail(r->x, (unsigned)m->line, (unsigned)m->column,
			    "tags ('%.40s') are not supported", (const char *)tag);
	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		if (r->docs++)
			return fail(r->x, (unsigned)m->line, (unsigned)m->column,
				    "several YAML documents in one file are not supported");
		return 0;
	case YAML_SCALAR_EVENT:
		return on_scalar(r, ev);
	case YAML_MAPPING_START_EVENT:
		return on_collection(r, ev, Y_MAP);
	case YAML_SEQUENCE_START_EVENT:
		return on_collection(r, ev, Y_SEQ);
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		if (r->depth) {
			size_t i = r->stack[--r->depth];
			r->x->t.v[i].end = r->x->t.n;
		}
		return 0;
	default:
		return 0; /* stream start, document end */
	}
}

/* libyaml's own complaint, with where it is. */
static int yaml_problem(struct ctx *x, const yaml_parser_t *p, const char *buf, size_t len)
{
	yaml_mark_t at = p->problem_mark;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return -ENOMEM;
	case YAML_READER_ERROR: {
		/* Bad bytes (not UTF-8, control characters): an offset only. */
		unsigned line = 0, col = 0;
		for (size_t i = 0; i < p->problem_offset && i < len; i++) {
			col++;
			if (buf[i] == '\n')
				line++, col = 0;
		}
		return fail(x, line, col, "%s (the catalog must be UTF-8 text)",
			    p->problem ? p->problem : "unreadable text");
	}
	case YAML_SCANNER_ERROR:
	case YAML_PARSER_ERROR:
		if (p->context)
			return fail(x, (unsigned)at.line, (unsigned)at.column,
				    "not valid YAML: %s (%s at line %zu)",
				    p->problem ? p->problem : "?", p->context,
				    p->context_mark.line + 1);
		return fail(x, (unsigned)at.line, (unsigned)at.column, "not valid YAML: %s",
			    p->problem ? p->problem : "?");
	default:
		return fail(x, 0, 0, "not valid YAML");
	}
}

/* Build x->t from the text.  Returns 0 or an error with the message. */
static int read_tree(struct ctx *x, const char *buf, size_t len)
{
	struct reader r = {.x = x};
	const char *nul;
	int rc = 0;

	/* libyaml would stop at a NUL as at the end of the text, silently. */
	if ((nul = memchr(buf, '\0', len))) {
		unsigned line = 0, col = 0;
		for (const char *c = buf; c < nul; c++) {
			col++;
			if (*c == '\n')
				line++, col = 0;
		}
		return fail(x, line, col, "a NUL byte in the text");
	}
	/* A UTF-8 byte order mark is fine (editors write one), but libyaml
	 * told the encoding (so that UTF-16 is refused) reads it as text. */
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		buf += 3, len -= 3;
	if (!yaml_parser_initialize(&r.parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&r.parser, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&r.parser, YAML_UTF8_ENCODING);
	while (rc == 0) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&r.parser, &ev)) {
			rc = yaml_problem(x, &r.parser, buf, len);
			break;
		}
		rc = on_event(&r, &ev);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&r.parser);
	if (rc < 0)
		return rc;
	if (!x->t.n || (x->t.v[0].kind == Y_SCALAR && x->t.v[0].plain && x->t.v[0].len == 0))
		return fail(x, 0, 0, "empty document: a catalog has models and engines");
	return 0;
}

/* --- values ---------------------------------------------------------------- */

/* The field being read, for messages: "models[3].size". */
struct field;
struct at {
	const char *where; /* "models[3]", "defaults", ... */
	const char *key;   /* the key */
};

static const char *kind_word(const struct ynode *v)
{
	return v->kind == Y_MAP ? "a mapping" : v->kind == Y_SEQ ? "a list" : "a value";
}

static bool is_null(const struct ctx *x, size_t i)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

	if (x->t.v[i].kind != Y_SCALAR || !x->t.v[i].plain)
		return false;
	for (size_t k = 0; k < sizeof nulls / sizeof *nulls; k++)
		if (strcmp(text(x, i), nulls[k]) == 0)
			return true;
	return false;
}

/* The text of a scalar value, or an error naming what was wanted. */
static int scalar(struct ctx *x, size_t i, const struct at *a, const char *want,
		  const char **out)
{
	const struct ynode *v = &x->t.v[i];

	if (v->kind != Y_SCALAR)
		return FAILN(x, i, "%s.%s: want %s, not %s", a->where, a->key, want, kind_word(v));
	if (is_null(x, i))
		return FAILN(x, i, "%s.%s: no value (want %s; leave the key out for its default)",
			     a->where, a->key, want);
	*out = text(x, i);
	return 0;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static int dup_into(struct ctx *x, const char *s, void *dst)
{
	char *d = strdup(s);

	(void)x;
	if (!d)
		return -ENOMEM;
	free(*(char **)dst);
	*(char **)dst = d;
	return 0;
}

/* A field: its key, how its value is read, and where it goes. */
enum ftype { T_NAME, T_WEIGHTS, T_PATH, T_SIZE, T_COUNT, T_NUMBER, T_AMQP, T_KIND, T_URL,
	     T_SERVERS };

struct field {
	const char *key;
	enum ftype type;
	bool required;
	size_t off;      /* offset of the destination in the section's struct */
	uint32_t lo, hi; /* T_COUNT: the range */
};

typedef int (*decode_fn)(struct ctx *x, size_t i, const struct field *f, const struct at *a,
			 void *dst);

static int d_name(struct ctx *x, size_t i, const struct field *f, const struct at *a, void *dst)
{
	const char *want = "a name of 1 to 128 letters, digits, '.', '_' or '-'", *s;
	size_t len;
	int rc;

	(void)f;
	if ((rc = scalar(x, i, a, want, &s)))
		return rc;
	len = strlen(s);
	if (len == 0 || len > GP_SWAP_NAME_MAX ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len)
		return FAILN(x, i, "%s.%s: '%.140s' is not %s", a->where, a->key, s, want);
	return dup_into(x, s, dst);
}

/* An absolute path: no control characters, at most GP_SWAP_PATH_MAX. */
static int check_path(struct ctx *x, size_t i, const struct at *a, const char *s,
		      const char *shown, bool uri_ok)
{
	if (s[0] != '/')
		return FAILN(x, i, "%s.%s: '%.200s' is not an absolute path%s", a->where, a->key,
			     shown, uri_ok ? " or a file:/// URI" : "");
	if (strlen(s) > GP_SWAP_PATH_MAX)
		return FAILN(x, i, "%s.%s: longer than %u bytes", a->where, a->key,
			     GP_SWAP_PATH_MAX);
	if (has_control(s))
		return FAILN(x, i, "%s.%s: a control character in the path", a->where, a->key);
	return 0;
}

static int d_path(struct ctx *x, size_t i, const struct field *f, const struct at *a, void *dst)
{
	const char *s;
	int rc;

	(void)f;
	if ((rc = scalar(x, i, a, "an absolute path", &s)) || (rc = check_path(x, i, a, s, s, false)))
		return rc;
	return dup_into(x, s, dst);
}

/* weights: a path, or a file:/// URI whose path is kept (taken as it is
 * written: no percent-decoding).  Other schemes are refused: the engines
 * read weights from local (or mounted) storage. */
static int d_weights(struct ctx *x, size_t i, const struct field *f, const struct at *a,
		     void *dst)
{
	const char *s, *p;
	int rc;

	(void)f;
	if ((rc = scalar(x, i, a, "an absolute path or a file:/// URI", &s)))
		return rc;
	p = s;
	if (strncmp(s, "file://", 7) == 0)
		p = s + 7;
	else if (strstr(s, "://"))
		return FAILN(x, i, "%s.%s: '%.200s': only paths and file:/// URIs are supported",
			     a->where, a->key, s);
	if ((rc = check_path(x, i, a, p, s, true)))
		return rc;
	return dup_into(x, p, dst);
}

static int d_size(struct ctx *x, size_t i, const struct field *f, const struct at *a, void *dst)
{
	const char *want = "a size above 0 (16GiB, 800MB, or bytes)", *s;
	uint64_t v;
	int rc;

	(void)f;
	if ((rc = scalar(x, i, a, want, &s)))
		return rc;
	rc = gp_parse_size(s, &v);
	if (rc == -ERANGE)
		return FAILN(x, i, "%s.%s: '%.60s' is too large", a->where, a->key, s);
	if (rc || v == 0)
		return FAILN(x, i, "%s.%s: '%.60s' is not %s", a->where, a->key, s, want);
	memcpy(dst, &v, sizeof v);
	return 0;
}

static int d_count(struct ctx *x, size_t i, const struct field *f, const struct at *a, void *dst)
{
	char want[64];
	const char *s;
	uint64_t v;
	uint32_t u;
	int rc;

	snprintf(want, sizeof want, "an integer from %u to %u", f->lo, f->hi);
	if ((rc = scalar(x, i, a, want, &s)))
		return rc;
	if (!x->t.v[i].plain)
		return FAILN(x, i, "%s.%s: want %s, not a quoted string", a->where, a->key, want);
	if (gp_parse_u64(s, &v) || v < f->lo || v > f->hi)
		return FAILN(x, i, "%s.%s: '%.60s' is not %s", a->where, a->key, s, want);
	u = (uint32_t)v;
	memcpy(dst, &u, sizeof u);
	return 0;
}

static int d_number(struct ctx *x, size_t i, const struct field *f, const struct at *a,
		    void *dst)
{
	const char *want = "a number above 0 (12.5)", *s;
	char *end;
	double v;
	int rc;

	(void)f;
	if ((rc = scalar(x, i, a, want, &s)))
		return rc;
	if (!x->t.v[i].plain)
		return FAILN(x, i, "%s.%s: want %s, not a quoted string", a->where, a->key, want);
	/* Decimal only: strtod alone would take "inf", "nan" and hex. */
	if (strspn(s, "0123456789.eE+-") != strlen(s) || !strpbrk(s, "0123456789"))
		return FAILN(x, i, "%s.%s: '%.60s' is not %s", a->where, a->key, s, want);
	errno = 0;
	v = strtod(s, &end);
	if (*end || errno || !isfinite(v) || !(v > 0))
		return FAILN(x, i, "%s.%s: '%.60s' is not %s", a->where, a->key, s, want);
	memcpy(dst, &v, sizeof v);
	return 0;
}

/* A queue, vhost or user name: an AMQP short string. */
static int d_amqp(struct ctx *x, size_t i, const struct field *f, const struct at *a, void *dst)
{
	const char *want = "a name of 1 to 255 bytes", *s;
	size_t len;
	int rc;

	(void)f;
	if ((rc = scalar(x, i, a, want, &s)))
		return rc;
	len = strlen(s);
	if (len == 0 || len > GP_SWAP_QUEUE_MAX)
		return FAILN(x, i, "%s.%s: want %s, not %zu", a->where, a->key, want, len);
	if (has_control(s))
		return FAILN(x, i, "%s.%s: a control character in the name", a->where, a->key);
	return dup_into(x, s, dst);
}

static const char *const kind_names[] = {
	[GP_SWAP_ENGINE_VLLM] = "vllm",
	[GP_SWAP_ENGINE_TRITON] = "triton",
	[GP_SWAP_ENGINE_GPUPOOL] = "gpupool",
};

static int d_kind(struct ctx *x, size_t i, const struct field *f, const struct at *a, void *dst)
{
	const char *want = "vllm, triton or gpupool", *s;
	int rc;

	(void)f;
	if ((rc = scalar(x, i, a, want, &s)))
		return rc;
	for (size_t k = 0; k < sizeof kind_names / sizeof *kind_names; k++) {
		if (strcmp(s, kind_names[k]) == 0) {
			enum gp_swap_engine_kind e = (enum gp_swap_engine_kind)k;
			memcpy(dst, &e, sizeof e);
			return 0;
		}
	}
	return FAILN(x, i, "%s.%s: '%.60s' is not %s", a->where, a->key, s, want);
}

/* An http(s) URL naming a host; nothing in it that would need quoting. */
static int check_url(struct ctx *x, size_t i, const struct at *a, const char *s)
{
	size_t skip = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;

	if (!skip)
		return FAILN(x, i, "%s.%s: '%.200s' is not an http:// or https:// URL", a->where,
			     a->key, s);
	if (strlen(s) > GP_SWAP_URL_MAX)
		return FAILN(x, i, "%s.%s: longer than %u bytes", a->where, a->key,
			     GP_SWAP_URL_MAX);
	if (!s[skip] || strchr("/?#:", s[skip]))
		return FAILN(x, i, "%s.%s: '%.200s' names no host", a->where, a->key, s);
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return FAILN(x, i, "%s.%s: a space or control character in the URL",
				     a->where, a->key);
	return 0;
}

static int d_url(struct ctx *x, size_t i, const struct field *f, const struct at *a, void *dst)
{
	const char *s;
	int rc;

	(void)f;
	if ((rc = scalar(x, i, a, "an http:// or https:// URL", &s)) ||
	    (rc = check_url(x, i, a, s)))
		return rc;
	return dup_into(x, s, dst);
}

static int d_servers(struct ctx *x, size_t i, const struct field *f, const struct at *a,
		     void *dst);

static const decode_fn decoders[] = {
	[T_NAME] = d_name,     [T_WEIGHTS] = d_weights, [T_PATH] = d_path,
	[T_SIZE] = d_size,     [T_COUNT] = d_count,     [T_NUMBER] = d_number,
	[T_AMQP] = d_amqp,     [T_KIND] = d_kind,       [T_URL] = d_url,
	[T_SERVERS] = d_servers,
};

/* --- sections -------------------------------------------------------------- */

/* What defaults: gives. */
struct defaults {
	uint32_t min_replicas; /* 0 unless given */
	uint32_t max_replicas; /* 0: not given */
	char *vhost;           /* NULL: "/" */
};

/* Indexes into the tables below, for the cross-checks. */
enum { M_NAME, M_WEIGHTS, M_SIZE, M_EPR, M_MIN, M_MAX, M_THROUGHPUT, M_QUEUE, M_VHOST };
enum { E_NAME, E_KIND, E_MEMORY, E_ENDPOINT, E_SERVERS };
enum { D_MIN, D_MAX, D_VHOST };

#define MF(k, t, req, field) {k, t, req, offsetof(struct gp_swap_model, field), 0, 0}
static const struct field model_fields[] = {
	[M_NAME] = MF("name", T_NAME, true, name),
	[M_WEIGHTS] = MF("weights", T_WEIGHTS, true, weights),
	[M_SIZE] = MF("size", T_SIZE, true, size),
	[M_EPR] = {"engines_per_replica", T_COUNT, false,
		   offsetof(struct gp_swap_model, engines_per_replica), 1, GP_SWAP_EPR_MAX},
	[M_MIN] = {"min_replicas", T_COUNT, false, offsetof(struct gp_swap_model, min_replicas),
		   0, GP_SWAP_REPLICAS_MAX},
	[M_MAX] = {"max_replicas", T_COUNT, false, offsetof(struct gp_swap_model, max_replicas),
		   1, GP_SWAP_REPLICAS_MAX},
	[M_THROUGHPUT] = MF("throughput", T_NUMBER, true, throughput),
	[M_QUEUE] = MF("queue", T_AMQP, false, queue),
	[M_VHOST] = MF("vhost", T_AMQP, false, vhost),
};

#define EF(k, t, req, field) {k, t, req, offsetof(struct gp_swap_engine, field), 0, 0}
static const struct field engine_fields[] = {
	[E_NAME] = EF("name", T_NAME, true, name),
	[E_KIND] = EF("kind", T_KIND, true, kind),
	[E_MEMORY] = EF("memory", T_SIZE, true, memory),
	[E_ENDPOINT] = EF("endpoint", T_URL, false, endpoint),
	[E_SERVERS] = {"servers", T_SERVERS, false, 0, 0, 0}, /* dst: the whole engine */
};

static const struct field default_fields[] = {
	[D_MIN] = {"min_replicas", T_COUNT, false, offsetof(struct defaults, min_replicas), 0,
		   GP_SWAP_REPLICAS_MAX},
	[D_MAX] = {"max_replicas", T_COUNT, false, offsetof(struct defaults, max_replicas), 1,
		   GP_SWAP_REPLICAS_MAX},
	[D_VHOST] = {"vhost", T_AMQP, false, offsetof(struct defaults, vhost), 0, 0},
};

static const struct field rabbit_fields[] = {
	{"url", T_URL, true, offsetof(struct gp_swap_rabbitmq, url), 0, 0},
	{"user", T_AMQP, false, offsetof(struct gp_swap_rabbitmq, user), 0, 0},
	{"password_file", T_PATH, false, offsetof(struct gp_swap_rabbitmq, password_file), 0, 0},
};

#define NF(t) (sizeof(t) / sizeof *(t))

/* An unknown key: say so, with the closest known key if it looks like a
 * typo of one. */
static int unknown_key(struct ctx *x, size_t k, const char *where, const char *const *keys,
		       size_t n)
{
	const char *best = NULL;
	unsigned bd = 3;

	for (size_t j = 0; j < n; j++) {
		unsigned d = gp_typo_distance(text(x, k), keys[j]);
		if (d < bd)
			bd = d, best = keys[j];
	}
	if (best)
		return FAILN(x, k, "%s: unknown key '%.60s' (did you mean '%s'?)", where,
			     text(x, k), best);
	return FAILN(x, k, "%s: unknown key '%.60s'", where, text(x, k));
}

/* Read the mapping at node i through `fields` into dst.  at[j] gets the
 * value node of fields[j] (0 when absent).  Unknown and repeated keys,
 * and missing required ones, are errors. */
static int read_map(struct ctx *x, size_t i, const struct field *fields, size_t nf,
		    const char *where, void *dst, size_t *at)
{
	const char *keys[16];
	const struct ynode *v = &x->t.v[i];
	int rc;

	if (v->kind != Y_MAP)
		return FAILN(x, i, "%s: want a mapping of keys to values, not %s", where,
			     is_null(x, i) ? "nothing" : kind_word(v));
	for (size_t j = 0; j < nf; j++) {
		keys[j] = fields[j].key;
		at[j] = 0;
	}
	for (size_t k = i + 1; k < v->end;) {
		size_t val = x->t.v[k].end, j;
		struct at a = {where, text(x, k)};

		for (j = 0; j < nf && strcmp(text(x, k), fields[j].key); j++)
			;
		if (j == nf)
			return unknown_key(x, k, where, keys, nf);
		if (at[j])
			return FAILN(x, k, "%s: duplicate key '%s' (first at line %u)", where,
				     fields[j].key, x->t.v[at[j]].line + 1);
		at[j] = val;
		rc = decoders[fields[j].type](x, val, &fields[j], &a, (char *)dst + fields[j].off);
		if (rc)
			return rc;
		k = x->t.v[val].end;
	}
	for (size_t j = 0; j < nf; j++)
		if (fields[j].required && !at[j])
			return FAILN(x, i, "%s: '%s' is missing", where, fields[j].key);
	return 0;
}

/* The list at node i: its entries, 1..cap of them. */
static int read_list(struct ctx *x, size_t i, const char *key, size_t cap)
{
	const struct ynode *v = &x->t.v[i];

	if (v->kind != Y_SEQ)
		return FAILN(x, i, "%s: want a list, not %s", key,
			     is_null(x, i) ? "nothing" : kind_word(v));
	if (v->n == 0)
		return FAILN(x, i, "%s: the list is empty", key);
	if (v->n > cap)
		return FAILN(x, i, "%s: more than %zu entries", key, cap);
	return 0;
}

/* sort_names reads a name at the start of each entry. */
_Static_assert(offsetof(struct gp_swap_model, name) == 0, "name first");
_Static_assert(offsetof(struct gp_swap_engine, name) == 0, "name first");

/* A name and its index, sorted by name then index. */
struct named {
	const char *name;
	size_t idx;
};

static int by_name(const void *a, const void *b)
{
	const struct named *p = a, *q = b;
	int d = strcmp(p->name, q->name);

	return d ? d : p->idx < q->idx ? -1 : p->idx > q->idx;
}

/* Sort the n names (their struct lies every `stride` bytes from `first`,
 * a char * at its start) into *order, and refuse the first duplicate in
 * file order. */
static int sort_names(struct ctx *x, size_t **order, const void *first, size_t stride,
		      size_t n, const char *list, size_t (*at)[16])
{
	struct named *v = malloc(n * sizeof *v);
	size_t dup = SIZE_MAX, orig = 0;

	if (!v || !(*order = malloc(n * sizeof **order))) {
		free(v);
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++)
		v[k] = (struct named){*(char *const *)((const char *)first + k * stride), k};
	qsort(v, n, sizeof *v, by_name);
	for (size_t k = 0; k < n; k++) {
		(*order)[k] = v[k].idx;
		/* Equal names are in file order: the later one is the dup. */
		if (k && strcmp(v[k - 1].name, v[k].name) == 0 && v[k].idx < dup)
			dup = v[k].idx, orig = v[k - 1].idx;
	}
	free(v);
	if (dup == SIZE_MAX)
		return 0;
	/* With three of a name, orig may be the second: find the first. */
	for (size_t k = 0; k < dup; k++)
		if (strcmp(*(char *const *)((const char *)first + k * stride),
			   *(char *const *)((const char *)first + dup * stride)) == 0) {
			orig = k;
			break;
		}
	return FAILN(x, at[dup][0], "%s[%zu].name: '%s' is already the name of %s[%zu] (line %u)",
		     list, dup, text(x, at[dup][0]), list, orig, x->t.v[at[orig][0]].line + 1);
}

/* Binary search of `name` among n records of `stride` bytes at `base`,
 * whose name pointer is at `name_off`, through their sorted `order`. */
static long find_sorted(const size_t *order, size_t n, const void *base, size_t stride,
			size_t name_off, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *const *at =
			(const char *const *)((const char *)base + order[mid] * stride + name_off);
		int d = strcmp(name, *at);
		if (!d)
			return (long)order[mid];
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

long gp_swap_catalog_model(const struct gp_swap_catalog *c, const char *name)
{
	return find_sorted(c->model_order, c->nmodels, c->models, sizeof *c->models,
			   offsetof(struct gp_swap_model, name), name);
}

long gp_swap_catalog_engine(const struct gp_swap_catalog *c, const char *name)
{
	return find_sorted(c->engine_order, c->nengines, c->engines, sizeof *c->engines,
			   offsetof(struct gp_swap_engine, name), name);
}

/* servers: a mapping of model names to URLs.  The models are read by now
 * (sections are read in a fixed order), so names are checked here. */
static int d_servers(struct ctx *x, size_t i, const struct field *f, const struct at *a,
		     void *dst)
{
	const struct ynode *v = &x->t.v[i];
	struct gp_swap_engine *eng = dst;
	struct gp_swap_server *s;
	char where[300];
	int rc;

	(void)f;
	snprintf(where, sizeof where, "%s.%s", a->where, a->key);
	if (v->kind != Y_MAP)
		return FAILN(x, i, "%s: want a mapping of model names to server URLs, not %s",
			     where, is_null(x, i) ? "nothing" : kind_word(v));
	if (v->n == 0)
		return FAILN(x, i, "%s: no servers", where);
	if (!(s = calloc(v->n / 2, sizeof *s)))
		return -ENOMEM;
	eng->servers = s;
	for (size_t k = i + 1; k < v->end; k = x->t.v[x->t.v[k].end].end) {
		size_t val = x->t.v[k].end;
		long m = gp_swap_catalog_model(x->c, text(x, k));
		struct at va = {where, text(x, k)};

		if (m < 0)
			return FAILN(x, k, "%s: '%.140s' is not a model of this catalog", where,
				     text(x, k));
		/* Quadratic, but servers are few (one per model at most). */
		for (size_t j = 0; j < eng->nservers; j++)
			if (s[j].model == (size_t)m)
				return FAILN(x, k, "%s: duplicate key '%s'", where, text(x, k));
		s[eng->nservers].model = (size_t)m;
		if ((rc = d_url(x, val, NULL, &va, &s[eng->nservers].url)))
			return rc;
		eng->nservers++;
	}
	return 0;
}

static int section_defaults(struct ctx *x, size_t i, struct defaults *d)
{
	int rc = read_map(x, i, default_fields, NF(default_fields), "defaults", d, x->dat);

	if (rc)
		return rc;
	if (x->dat[D_MAX] && d->min_replicas > d->max_replicas)
		return FAILN(x, x->dat[D_MIN], "defaults.min_replicas: %u is more than "
			     "max_replicas %u", d->min_replicas, d->max_replicas);
	return 0;
}

/* One model: its fields, then what it inherits. */
static int one_model(struct ctx *x, size_t i, size_t k, const struct defaults *d)
{
	struct gp_swap_model *m = &x->c->models[k];
	size_t *at = x->mat[k];
	char where[64];
	int rc;

	snprintf(where, sizeof where, "models[%zu]", k);
	m->line = x->t.v[i].line + 1;
	if ((rc = read_map(x, i, model_fields, NF(model_fields), where, m, at)))
		return rc;
	if (!at[M_MIN])
		m->min_replicas = d->min_replicas;
	if (!at[M_MAX])
		m->max_replicas = d->max_replicas ? d->max_replicas
			: m->min_replicas > 1 ? m->min_replicas : 1;
	if (m->min_replicas > m->max_replicas) {
		if (at[M_MAX])
			return FAILN(x, at[M_MAX], "%s.max_replicas: %u is less than min_replicas %u",
				     where, m->max_replicas, m->min_replicas);
		return FAILN(x, at[M_MIN] ? at[M_MIN] : i,
			     "%s.min_replicas: %u is more than max_replicas %u (from defaults, "
			     "line %u)", where, m->min_replicas, m->max_replicas,
			     x->t.v[x->dat[D_MAX]].line + 1);
	}
	if (!m->queue && (rc = dup_into(x, m->name, &m->queue)))
		return rc;
	if (!m->vhost && (rc = dup_into(x, d->vhost ? d->vhost : "/", &m->vhost)))
		return rc;
	return 0;
}

/* A queue and its vhost, sorted by both then by model index. */
struct queue_of {
	const char *vhost, *queue;
	size_t idx;
};

static int by_queue(const void *a, const void *b)
{
	const struct queue_of *p = a, *q = b;
	int d = strcmp(p->vhost, q->vhost);

	if (!d)
		d = strcmp(p->queue, q->queue);
	return d ? d : p->idx < q->idx ? -1 : p->idx > q->idx;
}

/* Each model has a queue of its own: two models consuming one queue would
 * share its requests and its load figures. */
static int unique_queues(struct ctx *x)
{
	const struct gp_swap_catalog *c = x->c;
	struct queue_of *v = malloc(c->nmodels * sizeof *v);
	size_t dup = SIZE_MAX, orig = 0;

	if (!v)
		return -ENOMEM;
	for (size_t k = 0; k < c->nmodels; k++)
		v[k] = (struct queue_of){c->models[k].vhost, c->models[k].queue, k};
	qsort(v, c->nmodels, sizeof *v, by_queue);
	for (size_t k = 1; k < c->nmodels; k++)
		if (!strcmp(v[k - 1].vhost, v[k].vhost) && !strcmp(v[k - 1].queue, v[k].queue) &&
		    v[k].idx < dup)
			dup = v[k].idx, orig = v[k - 1].idx;
	free(v);
	if (dup == SIZE_MAX)
		return 0;
	/* With three on a queue, orig may be the second: find the first. */
	for (size_t k = 0; k < dup; k++)
		if (!strcmp(c->models[k].vhost, c->models[dup].vhost) &&
		    !strcmp(c->models[k].queue, c->models[dup].queue)) {
			orig = k;
			break;
		}
	return FAILN(x, x->mat[dup][M_QUEUE] ? x->mat[dup][M_QUEUE] : x->mat[dup][M_NAME],
		     "models[%zu].queue: '%s' in vhost '%s' is already the queue of models[%zu] "
		     "(line %u)", dup, c->models[dup].queue, c->models[dup].vhost, orig,
		     c->models[orig].line);
}

static int section_models(struct ctx *x, size_t i, const struct defaults *d)
{
	struct gp_swap_catalog *c = x->c;
	size_t n = x->t.v[i].n, k = 0;
	int rc;

	if ((rc = read_list(x, i, "models", GP_SWAP_MAX_MODELS)))
		return rc;
	if (!(c->models = calloc(n, sizeof *c->models)) || !(x->mat = calloc(n, sizeof *x->mat)))
		return -ENOMEM;
	for (size_t e = i + 1; e < x->t.v[i].end; e = x->t.v[e].end, k++) {
		c->nmodels = k + 1;
		if ((rc = one_model(x, e, k, d)))
			return rc;
	}
	if ((rc = sort_names(x, &c->model_order, c->models, sizeof *c->models, n, "models",
			     x->mat)))
		return rc;
	return unique_queues(x);
}

static int one_engine(struct ctx *x, size_t i, size_t k)
{
	struct gp_swap_engine *e = &x->c->engines[k];
	size_t *at = x->eat[k];
	char where[64];
	int rc;

	snprintf(where, sizeof where, "engines[%zu]", k);
	e->line = x->t.v[i].line + 1;
	if ((rc = read_map(x, i, engine_fields, NF(engine_fields), where, e, at)))
		return rc;
	if (e->kind == GP_SWAP_ENGINE_VLLM) {
		if (at[E_ENDPOINT])
			return FAILN(x, at[E_ENDPOINT] - 1, "%s.endpoint: a vllm engine has "
				     "'servers' (one per model), not an endpoint", where);
		if (!at[E_SERVERS])
			return FAILN(x, i, "%s: 'servers' is missing (a vllm engine needs one "
				     "server per model it serves)", where);
	} else {
		if (at[E_SERVERS])
			return FAILN(x, at[E_SERVERS] - 1, "%s.servers: only vllm engines have "
				     "servers; a %s engine has one endpoint", where,
				     kind_names[e->kind]);
		if (!at[E_ENDPOINT])
			return FAILN(x, i, "%s: 'endpoint' is missing", where);
	}
	return 0;
}

static int section_engines(struct ctx *x, size_t i)
{
	struct gp_swap_catalog *c = x->c;
	size_t n = x->t.v[i].n, k = 0;
	int rc;

	if ((rc = read_list(x, i, "engines", GP_SWAP_MAX_ENGINES)))
		return rc;
	if (!(c->engines = calloc(n, sizeof *c->engines)) || !(x->eat = calloc(n, sizeof *x->eat)))
		return -ENOMEM;
	for (size_t e = i + 1; e < x->t.v[i].end; e = x->t.v[e].end, k++) {
		c->nengines = k + 1;
		if ((rc = one_engine(x, e, k)))
			return rc;
	}
	return sort_names(x, &c->engine_order, c->engines, sizeof *c->engines, n, "engines",
			  x->eat);
}

static int section_rabbitmq(struct ctx *x, size_t i)
{
	size_t at[NF(rabbit_fields)];
	struct gp_swap_rabbitmq *r = &x->c->rabbitmq;
	int rc = read_map(x, i, rabbit_fields, NF(rabbit_fields), "rabbitmq", r, at);

	if (rc)
		return rc;
	if (!r->user != !r->password_file)
		return FAILN(x, i, "rabbitmq: 'user' and 'password_file' go together");
	return 0;
}

/* What the engines that can serve one model offer. */
struct reach {
	size_t count;        /* engines that can serve it */
	uint64_t least, most; /* their smallest and biggest memory */
};

static void reach_add(struct reach *r, uint64_t mem)
{
	if (!r->count || mem < r->least)
		r->least = mem;
	if (!r->count || mem > r->most)
		r->most = mem;
	r->count++;
}

/* Every model needs engines that can hold one replica of it. */
static int cross_check(struct ctx *x)
{
	struct gp_swap_catalog *c = x->c;
	struct reach any = {0}, *per = calloc(c->nmodels, sizeof *per);
	char buf[3][32];
	int rc = 0;

	if (!per)
		return -ENOMEM;
	for (size_t e = 0; e < c->nengines; e++) {
		const struct gp_swap_engine *g = &c->engines[e];
		if (g->kind != GP_SWAP_ENGINE_VLLM)
			reach_add(&any, g->memory);
		for (size_t s = 0; s < g->nservers; s++)
			reach_add(&per[g->servers[s].model], g->memory);
	}
	for (size_t k = 0; k < c->nmodels && !rc; k++) {
		struct gp_swap_model *m = &c->models[k];
		const size_t *at = x->mat[k];
		struct reach r = per[k];
		uint64_t need;

		if (any.count) {
			if (!r.count || any.least < r.least)
				r.least = any.least;
			if (!r.count || any.most > r.most)
				r.most = any.most;
			r.count += any.count;
		}
		if (!r.count) {
			rc = FAILN(x, at[M_NAME], "models[%zu].name: no engine can serve '%s' (no "
				   "triton or gpupool engine, and no vllm engine lists it in its "
				   "servers)", k, m->name);
			break;
		}
		gp_format_size(m->size, buf[0], sizeof buf[0]);
		gp_format_size(r.least, buf[2], sizeof buf[2]);
		gp_format_size(r.most, buf[1], sizeof buf[1]);
		/* The fewest engines a replica can span: the biggest ones. */
		need = m->size / r.most + (m->size % r.most != 0);
		if (need > r.count) {
			rc = FAILN(x, at[M_SIZE], "models[%zu].size: %s does not fit even all %zu "
				   "engines that can serve it (%s at most each)", k, buf[0],
				   r.count, buf[1]);
			break;
		}
		if (!at[M_EPR]) {
			/* A replica must fit the smallest engine that can serve it. */
			uint64_t fit = m->size / r.least + (m->size % r.least != 0);
			if (fit > r.count)
				rc = FAILN(x, at[M_SIZE], "models[%zu].size: %s needs %llu engines of "
					   "the smallest that can serve it (%s), but only %zu can; give "
					   "engines_per_replica (at least %llu) to use the bigger ones",
					   k, buf[0], (unsigned long long)fit, buf[2], r.count,
					   (unsigned long long)need);
			else
				m->engines_per_replica = (uint32_t)fit;
			continue;
		}
		if (m->engines_per_replica < need)
			rc = FAILN(x, at[M_EPR], "models[%zu].engines_per_replica: %u x the biggest "
				   "engine that can serve it (%s) cannot hold size %s; want at least "
				   "%llu", k, m->engines_per_replica, buf[1], buf[0],
				   (unsigned long long)need);
		else if (m->engines_per_replica > r.count)
			rc = FAILN(x, at[M_EPR], "models[%zu].engines_per_replica: %u, but only "
				   "%zu engines can serve it", k, m->engines_per_replica, r.count);
	}
	free(per);
	return rc;
}

/* The top: each section, by a table, read in the table's order whatever
 * the file's order (servers refer to models). */
enum { S_DEFAULTS, S_MODELS, S_ENGINES, S_RABBITMQ, S_COUNT };
static const char *const section_keys[S_COUNT] = {"defaults", "models", "engines", "rabbitmq"};
static const bool section_required[S_COUNT] = {false, true, true, false};

static int interpret(struct ctx *x)
{
	size_t at[S_COUNT] = {0};
	struct defaults d = {0};
	const struct ynode *root = &x->t.v[0];
	int rc;

	if (root->kind != Y_MAP)
		return FAILN(x, 0, "a catalog is a mapping (models:, engines:, ...), not %s",
			     kind_word(root));
	for (size_t k = 1; k < root->end;) {
		size_t val = x->t.v[k].end, j;

		for (j = 0; j < S_COUNT && strcmp(text(x, k), section_keys[j]); j++)
			;
		if (j == S_COUNT)
			return unknown_key(x, k, "catalog", section_keys, S_COUNT);
		if (at[j])
			return FAILN(x, k, "catalog: duplicate key '%s' (first at line %u)",
				     section_keys[j], x->t.v[at[j]].line + 1);
		at[j] = val;
		k = x->t.v[val].end;
	}
	for (size_t j = 0; j < S_COUNT; j++)
		if (section_required[j] && !at[j])
			return FAILN(x, 0, "catalog: '%s' is missing", section_keys[j]);
	if ((at[S_DEFAULTS] && (rc = section_defaults(x, at[S_DEFAULTS], &d))) ||
	    (rc = section_models(x, at[S_MODELS], &d)) ||
	    (rc = section_engines(x, at[S_ENGINES])) ||
	    (at[S_RABBITMQ] && (rc = section_rabbitmq(x, at[S_RABBITMQ]))))
		;
	else
		rc = cross_check(x);
	free(d.vhost);
	return rc;
}

/* --- the API --------------------------------------------------------------- */

const char *gp_swap_engine_kind_name(enum gp_swap_engine_kind kind)
{
	return (unsigned)kind < sizeof kind_names / sizeof *kind_names ? kind_names[kind] : "?";
}

long gp_swap_engine_serves(const struct gp_swap_catalog *c, size_t e, size_t m)
{
	const struct gp_swap_engine *g;

	if (e >= c->nengines || m >= c->nmodels)
		return -1;
	g = &c->engines[e];
	if (g->kind != GP_SWAP_ENGINE_VLLM)
		return 0;
	for (size_t s = 0; s < g->nservers; s++)
		if (g->servers[s].model == m)
			return (long)s;
	return -1;
}

void gp_swap_catalog_free(struct gp_swap_catalog *c)
{
	if (!c)
		return;
	for (size_t k = 0; k < c->nmodels; k++) {
		free(c->models[k].name);
		free(c->models[k].weights);
		free(c->models[k].queue);
		free(c->models[k].vhost);
	}
	for (size_t k = 0; k < c->nengines; k++) {
		struct gp_swap_engine *e = &c->engines[k];
		free(e->name);
		free(e->endpoint);
		for (size_t s = 0; s < e->nservers; s++)
			free(e->servers[s].url);
		free(e->servers);
	}
	free(c->models);
	free(c->engines);
	free(c->model_order);
	free(c->engine_order);
	free(c->rabbitmq.url);
	free(c->rabbitmq.user);
	free(c->rabbitmq.password_file);
	free(c);
}

int gp_swap_catalog_parse(const char *buf, size_t len, const char *name,
			  struct gp_swap_catalog **out, char *err, size_t errlen)
{
	struct ctx x = {.name = name ? name : "catalog", .err = err, .errlen = errlen};
	int rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (len > GP_SWAP_CATALOG_MAX_BYTES)
		return gp_errf(err, errlen, -EINVAL, "%s: larger than %u bytes", x.name,
			       GP_SWAP_CATALOG_MAX_BYTES);
	if (!(x.c = calloc(1, sizeof *x.c)))
		return gp_errf(err, errlen, -ENOMEM, "%s: out of memory", x.name);
	if (!(rc = read_tree(&x, buf, len)))
		rc = interpret(&x);
	if (rc == -ENOMEM)
		gp_errf(err, errlen, -ENOMEM, "%s: out of memory", x.name);
	if (rc)
		gp_swap_catalog_free(x.c);
	else
		*out = x.c;
	free(x.t.v);
	free(x.t.arena);
	free(x.mat);
	free(x.eat);
	return rc;
}

int gp_swap_catalog_load(const char *path, struct gp_swap_catalog **out, char *err,
			 size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	*out = NULL;
	if (fd < 0) {
		rc = -errno;
		return gp_errf(err, errlen, rc, "%s: cannot read: %s", path, strerror(-rc));
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		rc = gp_errf(err, errlen, -EINVAL, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > GP_SWAP_CATALOG_MAX_BYTES) {
		rc = gp_errf(err, errlen, -EFBIG, "%s: larger than %u bytes", path,
			     GP_SWAP_CATALOG_MAX_BYTES);
		goto out;
	}
	/* Read up to one byte past the cap: the file may grow under us. */
	if (!(buf = malloc(GP_SWAP_CATALOG_MAX_BYTES + 1))) {
		rc = gp_errf(err, errlen, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	while (got <= GP_SWAP_CATALOG_MAX_BYTES) {
		ssize_t r = read(fd, buf + got, GP_SWAP_CATALOG_MAX_BYTES + 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			gp_errf(err, errlen, rc, "%s: cannot read: %s", path, strerror(-rc));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > GP_SWAP_CATALOG_MAX_BYTES) {
		rc = gp_errf(err, errlen, -EFBIG, "%s: larger than %u bytes", path,
			     GP_SWAP_CATALOG_MAX_BYTES);
		goto out;
	}
	rc = gp_swap_catalog_parse(buf, got, path, out, err, errlen);
out:
	free(buf);
	close(fd);
	return rc;
}
