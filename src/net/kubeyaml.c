/* kubeyaml.c - see kubeyaml.h.
 *
 * The text is cut into lines first (indentation, content without the
 * indentation, line number); blank and comment-only lines are dropped.  A
 * recursive descent then reads a node at a given indentation: a sequence
 * if its first line starts with "- ", else a mapping.  A sequence item's
 * content is re-read as if its line began after the "- ", which is how
 * "- name: x" followed by "  user: y" becomes one mapping.
 */
#include "net/kubeyaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct line {
	int indent;      /* columns of leading spaces */
	const char *s;   /* content after the indentation */
	size_t len;      /* content length, trailing blanks trimmed */
	int no;          /* 1-based line number, for errors */
};

struct parser {
	struct line *lines;
	size_t n, pos;
	int depth;
	char *err;
	size_t errn;
	int failed;
};

static void fail(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record the first error only: later ones are consequences of it. */
static void fail(struct parser *p, int line, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (p->failed)
		return;
	p->failed = 1;
	k = snprintf(p->err, p->errn, "line %d: ", line);
	if (k < 0 || (size_t)k >= p->errn)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + k, p->errn - (size_t)k, fmt, ap);
	va_end(ap);
}

/* Cut the text into significant lines.  Returns 0, or -1 with the error
 * recorded (tabs in indentation, NUL bytes, a second document). */
static int split_lines(struct parser *p, const char *text, size_t len)
{
	size_t cap = 16, i = 0;
	int no = 0;

	p->lines = malloc(cap * sizeof *p->lines);
	if (!p->lines) {
		fail(p, 0, "out of memory");
		return -1;
	}
	if (memchr(text, '\0', len)) {
		fail(p, 1, "NUL byte in the text");
		return -1;
	}
	while (i < len) {
		const char *start = text + i, *nl = memchr(start, '\n', len - i);
		size_t l = nl ? (size_t)(nl - start) : len - i;
		size_t ind = 0;

		i += l + (nl ? 1 : 0);
		no++;
		while (ind < l && start[ind] == ' ')
			ind++;
		if (ind < l && start[ind] == '\t') {
			fail(p, no, "tab in indentation (YAML indents with spaces)");
			return -1;
		}
		while (l > ind && (start[l - 1] == ' ' || start[l - 1] == '\t' || start[l - 1] == '\r'))
			l--;
		if (l == ind || start[ind] == '#')
			continue; /* blank or comment-only */
		if (l - ind >= 3 && memcmp(start + ind, "---", 3) == 0 &&
		    (l - ind == 3 || start[ind + 3] == ' ')) {
			if (p->n > 0 || ind > 0) {
				fail(p, no, "several YAML documents in one file are not supported");
				return -1;
			}
			continue; /* the optional document start */
		}
		if (l - ind >= 3 && memcmp(start + ind, "...", 3) == 0 && l - ind == 3) {
			fail(p, no, "document end marker '...' is not supported");
			return -1;
		}
		if (p->n == cap) {
			struct line *g = realloc(p->lines, 2 * cap * sizeof *g);
			if (!g) {
				fail(p, no, "out of memory");
				return -1;
			}
			p->lines = g;
			cap *= 2;
		}
		p->lines[p->n++] = (struct line){(int)ind, start + ind, l - ind, no};
	}
	return 0;
}

static int is_dash(const struct line *l)
{
	return l->s[0] == '-' && (l->len == 1 || l->s[1] == ' ');
}

/* Append the UTF-8 encoding of code point c. */
static size_t put_utf8(char *o, uint32_t c)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xC0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xE0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (c >> 18));
	o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	o[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* What may follow a complete scalar on its line: blanks, then a comment. */
static int rest_is_comment(const char *s, const char *end)
{
	const char *q = s;

	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	return q == end || (*q == '#' && q > s);
}

/* A quoted scalar starting at s[0] (the quote).  Returns a new string and
 * sets *after to the first byte past the closing quote; NULL on error. */
static json_t *quoted(struct parser *p, int no, const char *s, const char *end, const char **after)
{
	char q = s[0];
	char *buf = malloc((size_t)(end - s) + 1), *o = buf;
	const char *c = s + 1;
	json_t *v;

	if (!buf) {
		fail(p, no, "out of memory");
		return NULL;
	}
	for (;;) {
		if (c >= end) {
			fail(p, no, "unterminated %s-quoted string (multi-line strings are not supported)",
			     q == '"' ? "double" : "single");
			free(buf);
			return NULL;
		}
		if (*c == q) {
			if (q == '\'' && c + 1 < end && c[1] == '\'') { /* '' is one quote */
				*o++ = '\'';
				c += 2;
				continue;
			}
			c++;
			break;
		}
		if (q == '"' && *c == '\\') {
			static const struct {
				char esc, out;
			} simple[] = {{'\\', '\\'}, {'"', '"'},  {'/', '/'},  {'n', '\n'}, {'t', '\t'},
				      {'r', '\r'},  {'0', '\0'}, {'b', '\b'}, {'f', '\f'}, {' ', ' '}};
			int digits = 0, k;
			uint32_t cp = 0;

			if (c + 1 >= end) {
				fail(p, no, "backslash at the end of a string");
				goto bad;
			}
			c++;
			for (k = 0; k < (int)(sizeof simple / sizeof *simple); k++)
				if (simple[k].esc == *c)
					break;
			if (k < (int)(sizeof simple / sizeof *simple)) {
				if (simple[k].out == '\0') {
					fail(p, no, "\\0 in a string is not supported");
					goto bad;
				}
				*o++ = simple[k].out;
				c++;
				continue;
			}
			digits = *c == 'x' ? 2 : *c == 'u' ? 4 : *c == 'U' ? 8 : 0;
			if (!digits || end - c <= digits) {
				fail(p, no, "unknown escape \\%c in a double-quoted string", *c);
				goto bad;
			}
			for (k = 1; k <= digits; k++) {
				int h = hexval(c[k]);
				if (h < 0) {
					fail(p, no, "bad hex digit in escape \\%c", *c);
					goto bad;
				}
				cp = cp * 16 + (uint32_t)h;
			}
			if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
				fail(p, no, "escape \\%c%.*s is not a character we accept", *c, digits,
				     c + 1);
				goto bad;
			}
			o += put_utf8(o, cp);
			c += digits + 1;
			continue;
		}
		*o++ = *c++;
	}
	*after = c;
	v = json_stringn(buf, (size_t)(o - buf));
	if (!v)
		fail(p, no, "string is not valid UTF-8");
	free(buf);
	return v;
bad:
	free(buf);
	return NULL;
}

/* Resolve a plain scalar to null, a boolean, an integer or a string. */
static json_t *plain(struct parser *p, int no, const char *s, size_t len)
{
	static const char *const nulls[] = {"~", "null", "Null", "NULL"};
	static const char *const trues[] = {"true", "True", "TRUE"};
	static const char *const falses[] = {"false", "False", "FALSE"};
	size_t i;
	json_t *v;

	if (len == 0)
		return json_null();
	for (i = 0; i < sizeof nulls / sizeof *nulls; i++)
		if (strlen(nulls[i]) == len && memcmp(s, nulls[i], len) == 0)
			return json_null();
	for (i = 0; i < sizeof trues / sizeof *trues; i++)
		if (strlen(trues[i]) == len && memcmp(s, trues[i], len) == 0)
			return json_true();
	for (i = 0; i < sizeof falses / sizeof *falses; i++)
		if (strlen(falses[i]) == len && memcmp(s, falses[i], len) == 0)
			return json_false();
	i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
	if (i < len && len - i <= 18) {
		size_t k = i;
		while (k < len && s[k] >= '0' && s[k] <= '9')
			k++;
		if (k == len) {
			char num[24];
			memcpy(num, s, len);
			num[len] = '\0';
			return json_integer(strtoll(num, NULL, 10));
		}
	}
	v = json_stringn(s, len);
	if (!v)
		fail(p, no, "text is not valid UTF-8");
	return v;
}

/* A value written on the same line as its key or dash: s..end. */
static json_t *scalar(struct parser *p, int no, const char *s, const char *end)
{
	const char *after;
	json_t *v;

	switch (s[0]) {
	case '"':
	case '\'':
		v = quoted(p, no, s, end, &after);
		if (v && !rest_is_comment(after, end)) {
			fail(p, no, "unexpected text after a quoted string");
			json_decref(v);
			return NULL;
		}
		return v;
	case '{':
	case '[':
		if (end - s >= 2 && s[1] == (s[0] == '{' ? '}' : ']') && rest_is_comment(s + 2, end))
			return s[0] == '{' ? json_object() : json_array();
		fail(p, no, "flow collections ({...}, [...]) are not supported, only empty ones");
		return NULL;
	case '|':
	case '>':
		fail(p, no, "block scalars (| and >) are not supported");
		return NULL;
	case '&':
	case '*':
		fail(p, no, "anchors and aliases are not supported");
		return NULL;
	case '!':
		fail(p, no, "tags are not supported");
		return NULL;
	case '@':
	case '`':
		fail(p, no, "'%c' cannot start a plain scalar", s[0]);
		return NULL;
	default:
		break;
	}
	/* A plain scalar ends at a comment. */
	for (const char *c = s; c < end; c++) {
		if (*c == '#' && c > s && (c[-1] == ' ' || c[-1] == '\t')) {
			end = c;
			break;
		}
		if (*c == ':' && (c + 1 == end || c[1] == ' ')) {
			fail(p, no, "': ' inside a plain value (quote the value)");
			return NULL;
		}
	}
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return plain(p, no, s, (size_t)(end - s));
}

static json_t *block(struct parser *p, int indent);

/* The node below a key or dash that had nothing after it on its line. */
static json_t *nested(struct parser *p, int indent, int seq_same_indent)
{
	if (p->pos < p->n) {
		const struct line *l = &p->lines[p->pos];
		if (l->indent > indent)
			return block(p, l->indent);
		if (seq_same_indent && l->indent == indent && is_dash(l))
			return block(p, indent);
	}
	return json_null();
}

static json_t *sequence(struct parser *p, int indent)
{
	json_t *arr = json_array();

	while (!p->failed && p->pos < p->n && p->lines[p->pos].indent == indent &&
	       is_dash(&p->lines[p->pos])) {
		struct line *l = &p->lines[p->pos];
		json_t *item;
		size_t skip = 1;

		while (skip < l->len && l->s[skip] == ' ')
			skip++;
		if (skip == l->len) {
			p->pos++;
			item = nested(p, indent, 0);
		} else {
			/* Re-read the rest of the line as a node of its own, at
			 * the column where it starts. */
			l->indent += (int)skip;
			l->s += skip;
			l->len -= skip;
			item = block(p, l->indent);
		}
		if (!item || json_array_append_new(arr, item)) {
			fail(p, l->no, "out of memory");
			break;
		}
	}
	return arr;
}

/* Find the ':' ending a key on this line: followed by a blank or the end.
 * Returns its offset, or -1. */
static long key_colon(const struct line *l)
{
	size_t i = 0;

	if (l->s[0] == '"' || l->s[0] == '\'') {
		char q = l->s[0];
		for (i = 1; i < l->len; i++) {
			if (q == '"' && l->s[i] == '\\')
				i++;
			else if (l->s[i] == q)
				break;
		}
		i++;
	}
	for (; i < l->len; i++) {
		if (l->s[i] == '#' && i > 0 && l->s[i - 1] == ' ')
			return -1;
		if (l->s[i] == ':' && (i + 1 == l->len || l->s[i + 1] == ' '))
			return (long)i;
	}
	return -1;
}

static json_t *mapping(struct parser *p, int indent)
{
	json_t *obj = json_object();

	while (!p->failed && p->pos < p->n && p->lines[p->pos].indent == indent &&
	       !is_dash(&p->lines[p->pos])) {
		const struct line *l = &p->lines[p->pos];
		long colon = key_colon(l);
		const char *v, *end = l->s + l->len, *after;
		json_t *key, *val;

		if (colon < 0) {
			fail(p, l->no, "expected 'key: value', found '%.*s'", (int)(l->len > 40 ? 40 : l->len),
			     l->s);
			break;
		}
		if (l->s[0] == '"' || l->s[0] == '\'') {
			key = quoted(p, l->no, l->s, l->s + colon, &after);
			if (key && after != l->s + colon) {
				fail(p, l->no, "unexpected text between a quoted key and its ':'");
				json_decref(key);
				key = NULL;
			}
		} else {
			key = scalar(p, l->no, l->s, l->s + colon);
			if (key && !json_is_string(key)) {
				json_t *s = json_stringn(l->s, (size_t)colon);
				json_decref(key);
				key = s; /* keys are names, whatever they look like */
			}
		}
		if (!key)
			break;
		if (json_object_get(obj, json_string_value(key))) {
			fail(p, l->no, "duplicate key '%s'", json_string_value(key));
			json_decref(key);
			break;
		}
		for (v = l->s + colon + 1; v < end && *v == ' '; v++)
			;
		if (v == end || *v == '#') {
			p->pos++;
			val = nested(p, indent, 1);
		} else {
			val = scalar(p, l->no, v, end);
			p->pos++;
			if (val && p->pos < p->n && p->lines[p->pos].indent > indent) {
				fail(p, p->lines[p->pos].no,
				     "unexpected indentation (multi-line values are not supported)");
				json_decref(val);
				val = NULL;
			}
		}
		if (!val) {
			json_decref(key);
			break;
		}
		json_object_set_new(obj, json_string_value(key), val);
		json_decref(key);
	}
	return obj;
}

/* The node whose first line is the current one, at `indent`. */
static json_t *block(struct parser *p, int indent)
{
	const struct line *l = &p->lines[p->pos];
	json_t *v;

	if (++p->depth > GP_KUBEYAML_MAX_DEPTH) {
		fail(p, l->no, "nested deeper than %d levels", GP_KUBEYAML_MAX_DEPTH);
		p->depth--;
		return NULL;
	}
	if (is_dash(l)) {
		v = sequence(p, indent);
	} else if (key_colon(l) >= 0) {
		v = mapping(p, indent);
	} else {
		/* A lone scalar: only valid as a sequence item. */
		v = scalar(p, l->no, l->s, l->s + l->len);
		p->pos++;
		if (v && p->pos < p->n && p->lines[p->pos].indent > indent) {
			fail(p, p->lines[p->pos].no, "unexpected indentation");
			json_decref(v);
			v = NULL;
		}
	}
	if (!p->failed && p->pos < p->n && p->lines[p->pos].indent > indent)
		fail(p, p->lines[p->pos].no, "unexpected indentation");
	p->depth--;
	if (p->failed) {
		json_decref(v);
		return NULL;
	}
	return v;
}

json_t *gp__kubeyaml_parse(const char *text, size_t len, char *err, size_t n)
{
	struct parser p = {.err = err, .errn = n};
	json_t *doc = NULL;

	if (n)
		err[0] = '\0';
	if (len > GP_KUBEYAML_MAX_BYTES) {
		snprintf(err, n, "larger than %u bytes", GP_KUBEYAML_MAX_BYTES);
		return NULL;
	}
	if (split_lines(&p, text, len))
		goto out;
	if (p.n == 0) {
		fail(&p, 1, "empty document");
		goto out;
	}
	if (!is_dash(&p.lines[0]) && key_colon(&p.lines[0]) < 0) {
		fail(&p, p.lines[0].no, "expected a mapping or a sequence at the top");
		goto out;
	}
	doc = block(&p, p.lines[0].indent);
	if (doc && p.pos < p.n) {
		fail(&p, p.lines[p.pos].no, "unexpected indentation");
		json_decref(doc);
		doc = NULL;
	}
out:
	free(p.lines);
	return p.failed ? (json_decref(doc), NULL) : doc;
}
