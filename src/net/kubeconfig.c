/* kubeconfig.c - see kubeconfig.h. */
#include "common/errf.h"
#include "net/kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>


char *gp__base64_decode(const char *s, size_t len, size_t *out_len)
{
	char *out = malloc(len / 4 * 3 + 4), *o = out;
	unsigned acc = 0;
	int bits = 0;
	size_t i, pad = 0;

	if (!out)
		return NULL;
	for (i = 0; i < len; i++) {
		char c = s[i];
		int v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else if (c == '=') {
			pad++;
			continue;
		} else if (c == '\n' || c == '\r')
			continue; /* a block scalar's line breaks, as Go's decoder skips them */
		else
			goto bad;
		if (pad)
			goto bad; /* data after padding */
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (char)((acc >> bits) & 0xFF);
		}
	}
	/* Leftover bits must be zero padding, and at most two '='. */
	if (pad > 2 || bits >= 6 || (acc & ((1u << bits) - 1)))
		goto bad;
	*o = '\0';
	*out_len = (size_t)(o - out);
	return out;
bad:
	free(out);
	return NULL;
}

/* --- YAML, read with libyaml into a jansson tree --------------------------
 *
 * libyaml's event API, not its document API: the document API builds the
 * whole graph (aliases included) before we see it, while events let us
 * stop at the first thing we refuse, cap depth and size as we go, and
 * never expand an alias (there is no alias to expand: they are refused,
 * and so are anchors, which kubectl never writes).  The tree is JSON so
 * that the YAML and JSON forms of a kubeconfig are read by one interpreter
 * below.
 */

/* One open mapping or sequence. */
struct yframe {
	json_t *node;   /* borrowed: owned by its parent, or the root */
	char *key;      /* a mapping's key waiting for its value, or NULL */
};

struct yreader {
	yaml_parser_t parser;
	struct yframe stack[GP_KUBECONFIG_MAX_DEPTH];
	int depth;
	size_t nodes;
	int docs;
	json_t *root;
	char *err;
	size_t n;
};

static int yfail(struct yreader *r, const yaml_mark_t *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record "line N: why" and return -1.  libyaml counts lines from 0. */
static int yfail(struct yreader *r, const yaml_mark_t *at, const char *fmt, ...)
{
	va_list ap;
	int k = snprintf(r->err, r->n, "line %zu: ", at->line + 1);

	if (k >= 0 && (size_t)k < r->n) {
		va_start(ap, fmt);
		vsnprintf(r->err + k, r->n - (size_t)k, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* libyaml's own complaint: where, what, and the construct it was in. */
static void yaml_error(struct yreader *r, const char *text, size_t len)
{
	const yaml_parser_t *p = &r->parser;
	yaml_mark_t at = p->problem_mark;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		snprintf(r->err, r->n, "out of memory");
		return;
	case YAML_READER_ERROR:
		/* Bad bytes (not UTF-8, control characters): libyaml gives an
		 * offset, not a line. */
		at.line = 0;
		for (size_t i = 0; i < p->problem_offset && i < len; i++)
			at.line += text[i] == '\n';
		yfail(r, &at, "%s", p->problem ? p->problem : "unreadable text");
		return;
	case YAML_SCANNER_ERROR:
	case YAML_PARSER_ERROR:
		if (p->context)
			yfail(r, &at, "%s (column %zu; %s at line %zu)",
			      p->problem ? p->problem : "not valid YAML", at.column + 1, p->context,
			      p->context_mark.line + 1);
		else
			yfail(r, &at, "%s (column %zu)", p->problem ? p->problem : "not valid YAML",
			      at.column + 1);
		return;
	default:
		snprintf(r->err, r->n, "not valid YAML");
	}
}

/* A plain scalar's type, by the rules kubectl's YAML (Go's, YAML 1.2 core
 * schema) and the old reader shared: null, booleans in their three
 * spellings, decimal integers that fit, and strings for everything else
 * ("yes", "1.5" and "0x1F" stay strings). */
static json_t *plain_value(const char *s, size_t len)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	static const char *const trues[] = {"true", "True", "TRUE"};
	static const char *const falses[] = {"false", "False", "FALSE"};
	size_t i;

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
	/* 18 digits always fit an int64: no overflow check needed. */
	if (i < len && len - i <= 18 && strspn(s + i, "0123456789") == len - i)
		return json_integer(strtoll(s, NULL, 10));
	return json_stringn(s, len);
}

/* A scalar event's value.  Quoted and block scalars are strings; plain
 * ones are typed as above; the core tags (!!str, !!int, !!bool, !!null)
 * are honoured, any other tag refused.  Returns a new value or NULL with
 * the error recorded. */
static json_t *scalar_value(struct yreader *r, const yaml_event_t *ev)
{
	static const struct {
		const char *tag, *what;
		json_type type;
	} typed[] = {
		{YAML_NULL_TAG, "!!null", JSON_NULL},
		{YAML_BOOL_TAG, "!!bool", JSON_TRUE},
		{YAML_INT_TAG, "!!int", JSON_INTEGER},
	};
	const char *s = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	size_t len = ev->data.scalar.length;
	json_t *v;

	if (tag && strcmp(tag, "!") != 0 && strcmp(tag, YAML_STR_TAG) != 0) {
		for (size_t i = 0; i < sizeof typed / sizeof *typed; i++) {
			json_type t;

			if (strcmp(tag, typed[i].tag) != 0)
				continue;
			if (!(v = plain_value(s, len))) {
				yfail(r, &ev->start_mark, "out of memory");
				return NULL;
			}
			t = json_typeof(v) == JSON_FALSE ? JSON_TRUE : json_typeof(v);
			if (t != typed[i].type) {
				json_decref(v);
				yfail(r, &ev->start_mark, "'%.40s' is not a valid %s", s, typed[i].what);
				return NULL;
			}
			return v;
		}
		yfail(r, &ev->start_mark, "tag '%.60s' is not supported", tag);
		return NULL;
	}
	if (!tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		v = plain_value(s, len);
	else
		v = json_stringn(s, len);
	if (!v)
		yfail(r, &ev->start_mark, "out of memory");
	return v;
}

/* Put a new value (owned: always consumed) where the innermost open
 * collection expects it. */
static int place(struct yreader *r, json_t *v, const yaml_mark_t *at)
{
	struct yframe *f;

	if (r->depth == 0) {
		/* One document, so one root; a scalar is no kubeconfig. */
		if (!json_is_object(v) && !json_is_array(v)) {
			int empty = json_is_null(v);
			json_decref(v);
			return empty ? yfail(r, at, "empty document")
				     : yfail(r, at, "expected a mapping or a sequence at the top");
		}
		r->root = v;
		return 0;
	}
	f = &r->stack[r->depth - 1];
	if (json_is_array(f->node)) {
		if (json_array_append_new(f->node, v))
			return yfail(r, at, "out of memory");
		return 0;
	}
	if (json_object_set_new(f->node, f->key, v))
		return yfail(r, at, "out of memory");
	free(f->key);
	f->key = NULL;
	return 0;
}

/* Count a node against the cap. */
static int count_node(struct yreader *r, const yaml_mark_t *at)
{
	if (++r->nodes > GP_KUBECONFIG_MAX_NODES)
		return yfail(r, at, "more than %u values", GP_KUBECONFIG_MAX_NODES);
	return 0;
}

/* A scalar: a mapping's key, or a value. */
static int on_scalar(struct yreader *r, const yaml_event_t *ev)
{
	struct yframe *f = r->depth ? &r->stack[r->depth - 1] : NULL;
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	json_t *v;

	if (count_node(r, &ev->start_mark))
		return -1;
	/* A "\0" escape: every field is a C string further on. */
	if (memchr(s, '\0', len))
		return yfail(r, &ev->start_mark, "a NUL character in a string is not supported");
	if (f && json_is_object(f->node) && !f->key) {
		/* Keys are names, whatever they look like: "1: x" has the key
		 * "1", as the old reader and kubectl's Go structs read it. */
		if (json_object_get(f->node, s))
			return yfail(r, &ev->start_mark, "duplicate key '%.60s'", s);
		if (!(f->key = strdup(s)))
			return yfail(r, &ev->start_mark, "out of memory");
		return 0;
	}
	if (!(v = scalar_value(r, ev)))
		return -1;
	return place(r, v, &ev->start_mark);
}

/* The start of a mapping or a sequence. */
static int on_collection(struct yreader *r, const yaml_event_t *ev, int mapping)
{
	const char *tag = (const char *)(mapping ? ev->data.mapping_start.tag
						 : ev->data.sequence_start.tag);
	struct yframe *f = r->depth ? &r->stack[r->depth - 1] : NULL;
	json_t *v;

	if (count_node(r, &ev->start_mark))
		return -1;
	if (tag && strcmp(tag, "!") != 0 && strcmp(tag, mapping ? YAML_MAP_TAG : YAML_SEQ_TAG) != 0)
		return yfail(r, &ev->start_mark, "tag '%.60s' is not supported", tag);
	if (f && json_is_object(f->node) && !f->key)
		return yfail(r, &ev->start_mark, "a key must be a name, not a %s",
			     mapping ? "mapping" : "list");
	if (r->depth == GP_KUBECONFIG_MAX_DEPTH)
		return yfail(r, &ev->start_mark, "nested deeper than %d levels",
			     GP_KUBECONFIG_MAX_DEPTH);
	if (!(v = mapping ? json_object() : json_array()))
		return yfail(r, &ev->start_mark, "out of memory");
	if (place(r, v, &ev->start_mark))
		return -1;
	r->stack[r->depth].node = v;
	r->stack[r->depth].key = NULL;
	r->depth++;
	return 0;
}

/* One event.  Returns 0 to go on, 1 at the end of the stream, -1 with the
 * error recorded. */
static int on_event(struct yreader *r, const yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		break;
	case YAML_ALIAS_EVENT:
		return yfail(r, &ev->start_mark, "anchors and aliases are not supported");
	default:
		break;
	}
	if (anchor)
		return yfail(r, &ev->start_mark, "anchors and aliases are not supported");
	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		if (r->docs++)
			return yfail(r, &ev->start_mark,
				     "several YAML documents in one file are not supported");
		return 0;
	case YAML_SCALAR_EVENT:
		return on_scalar(r, ev);
	case YAML_MAPPING_START_EVENT:
		return on_collection(r, ev, 1);
	case YAML_SEQUENCE_START_EVENT:
		return on_collection(r, ev, 0);
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		/* libyaml pairs starts and ends, and gives a key without a
		 * value an empty scalar: the frame is complete here. */
		if (r->depth > 0) {
			r->depth--;
			free(r->stack[r->depth].key);
			r->stack[r->depth].key = NULL;
		}
		return 0;
	default:
		return 0; /* stream start, document end */
	}
}

json_t *gp__kubeconfig_yaml(const char *text, size_t len, char *err, size_t n)
{
	struct yreader r = {.err = err, .n = n};
	const char *nul;
	int rc = 0;

	if (n)
		err[0] = '\0';
	if (len > GP_KUBECONFIG_MAX_BYTES) {
		snprintf(err, n, "larger than %u bytes", GP_KUBECONFIG_MAX_BYTES);
		return NULL;
	}
	/* libyaml would stop at a NUL as at the end of the text, silently. */
	if ((nul = memchr(text, '\0', len))) {
		yaml_mark_t at = {0};
		for (const char *c = text; c < nul; c++)
			at.line += *c == '\n';
		yfail(&r, &at, "NUL byte in the text");
		return NULL;
	}
	if (!yaml_parser_initialize(&r.parser)) {
		snprintf(err, n, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
	yaml_parser_set_encoding(&r.parser, YAML_UTF8_ENCODING);
	while (rc == 0) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&r.parser, &ev)) {
			yaml_error(&r, text, len);
			rc = -1;
			break;
		}
		rc = on_event(&r, &ev);
		yaml_event_delete(&ev);
	}
	if (rc > 0 && !r.root) {
		yaml_mark_t start = {0};
		rc = yfail(&r, &start, "empty document");
	}
	while (r.depth > 0)
		free(r.stack[--r.depth].key);
	yaml_parser_delete(&r.parser);
	if (rc < 0) {
		json_decref(r.root);
		return NULL;
	}
	return r.root;
}

/* Read a whole small file into a new NUL-terminated buffer. */
static char *slurp(const char *path, size_t cap, size_t *len, char *err, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	if (fd < 0) {
		gp_errf(err, n, 0, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		gp_errf(err, n, 0, "%s is not a regular file", path);
		goto out;
	}
	if ((size_t)st.st_size > cap) {
		gp_errf(err, n, 0, "%s is larger than %zu bytes", path, cap);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		gp_errf(err, n, 0, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	*len = got;
out:
	close(fd);
	return buf;
}

/* Find the entry named `name` in a kubeconfig list (clusters, users,
 * contexts: [{name, <key>: {...}}]) and return its `key` object. */
static json_t *named(json_t *doc, const char *list, const char *key, const char *name, char *err,
		     size_t n)
{
	json_t *arr = json_object_get(doc, list), *it;
	size_t i;

	if (arr && !json_is_array(arr) && !json_is_null(arr)) {
		gp_errf(err, n, 0, "'%s' is not a list", list);
		return NULL;
	}
	json_array_foreach(arr, i, it) {
		json_t *nm = json_object_get(it, "name");
		if (json_is_string(nm) && strcmp(json_string_value(nm), name) == 0) {
			json_t *v = json_object_get(it, key);
			if (!json_is_object(v)) {
				gp_errf(err, n, 0, "%s '%s' has no '%s' section", list, name, key);
				return NULL;
			}
			return v;
		}
	}
	gp_errf(err, n, 0, "no entry named '%s' in '%s'", name, list);
	return NULL;
}

/* A string field: NULL if absent or null, -EINVAL if another type. */
static int str_field(json_t *obj, const char *key, const char **out, const char *where, char *err,
		     size_t n)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return gp_errf(err, n, -EINVAL, "%s: '%s' must be a string", where, key);
	*out = json_string_value(v);
	return 0;
}

/* Resolve `path` against `dir` unless it is absolute. */
static char *resolve(const char *dir, const char *path)
{
	char *out;

	if (path[0] == '/' || !dir || !*dir)
		return strdup(path);
	if (asprintf(&out, "%s/%s", dir, path) < 0)
		return NULL;
	return out;
}

static int cluster_part(struct gp_kubeconfig *kc, json_t *c, const char *name, const char *dir,
			char *err, size_t n)
{
	const char *server, *ca, *cad, *unsupported[] = {"proxy-url", "tls-server-name"};
	char where[300];
	json_t *ins = json_object_get(c, "insecure-skip-tls-verify");
	size_t len;

	snprintf(where, sizeof where, "cluster '%s'", name);
	if (str_field(c, "server", &server, where, err, n) ||
	    str_field(c, "certificate-authority", &ca, where, err, n) ||
	    str_field(c, "certificate-authority-data", &cad, where, err, n))
		return -EINVAL;
	if (!server || !*server)
		return gp_errf(err, n, -EINVAL, "%s has no server", where);
	if (strncmp(server, "https://", 8) && strncmp(server, "http://", 7))
		return gp_errf(err, n, -EINVAL, "%s: server '%s' is not an http(s) URL", where, server);
	/* "https://" alone would lose its slashes below and become "https:". */
	if (!server[server[4] == 's' ? 8 : 7] || server[server[4] == 's' ? 8 : 7] == '/')
		return gp_errf(err, n, -EINVAL, "%s: server '%s' names no host", where, server);
	for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
		if (json_object_get(c, unsupported[i]))
			return gp_errf(err, n, -ENOTSUP, "%s: '%s' is not supported", where,
				     unsupported[i]);
	if (ins && !json_is_boolean(ins) && !json_is_null(ins))
		return gp_errf(err, n, -EINVAL, "%s: insecure-skip-tls-verify must be true or false",
			     where);
	kc->insecure = json_is_true(ins);
	kc->server = strdup(server);
	len = strlen(kc->server);
	while (len > 0 && kc->server[len - 1] == '/')
		kc->server[--len] = '\0';
	if (cad) {
		kc->ca_data = gp__base64_decode(cad, strlen(cad), &kc->ca_len);
		if (!kc->ca_data)
			return gp_errf(err, n, -EINVAL, "%s: certificate-authority-data is not base64",
				     where);
	} else if (ca) {
		kc->ca_file = resolve(dir, ca);
	}
	return 0;
}

/* A PEM blob given inline (`<key>-data`, base64) or as a file (`<key>`,
 * relative to dir).  Returns 0 with *pem (owned; NULL when neither is
 * given) or an errno with the reason in err. */
static int pem_field(json_t *obj, const char *key, const char *dir, const char *where,
		     char **pem, size_t *len, char *err, size_t n)
{
	char data_key[64], *path;
	const char *file, *data;

	*pem = NULL;
	snprintf(data_key, sizeof data_key, "%s-data", key);
	if (str_field(obj, key, &file, where, err, n) ||
	    str_field(obj, data_key, &data, where, err, n))
		return -EINVAL;
	if (data) {
		*pem = gp__base64_decode(data, strlen(data), len);
		return *pem ? 0 : gp_errf(err, n, -EINVAL, "%s: %s is not base64", where, data_key);
	}
	if (!file)
		return 0;
	path = resolve(dir, file);
	if (!path)
		return gp_errf(err, n, -ENOMEM, "out of memory");
	*pem = slurp(path, GP_KUBE_PEM_MAX_BYTES, len, err, n);
	free(path);
	return *pem ? 0 : -EINVAL;
}

static int user_part(struct gp_kubeconfig *kc, json_t *u, const char *name, const char *dir,
		     char *err, size_t n)
{
	static const char *const plugins[] = {"exec", "auth-provider"};
	const char *token, *token_file, *user, *password;
	char where[300];
	int rc;

	snprintf(where, sizeof where, "user '%s'", name);
	if (str_field(u, "token", &token, where, err, n) ||
	    str_field(u, "tokenFile", &token_file, where, err, n) ||
	    str_field(u, "username", &user, where, err, n) ||
	    str_field(u, "password", &password, where, err, n))
		return -EINVAL;
	for (size_t i = 0; i < sizeof plugins / sizeof *plugins; i++)
		if (json_object_get(u, plugins[i]) && !token && !token_file)
			return gp_errf(err, n, -ENOTSUP,
				     "%s: '%s' credential plugins are not supported; give the "
				     "user a token (e.g. a service account's) or a client "
				     "certificate",
				     where, plugins[i]);
	if ((rc = pem_field(u, "client-certificate", dir, where, &kc->cert_pem, &kc->cert_len,
			    err, n)) ||
	    (rc = pem_field(u, "client-key", dir, where, &kc->key_pem, &kc->key_len, err, n)))
		return rc;
	if (!kc->cert_pem != !kc->key_pem)
		return gp_errf(err, n, -EINVAL, "%s: a client certificate needs its client key, "
					      "and a key its certificate",
			     where);
	if (token)
		kc->token = strdup(token);
	else if (token_file)
		kc->token_file = resolve(dir, token_file);
	if (user) {
		kc->user = strdup(user);
		kc->password = strdup(password ? password : "");
	}
	return 0;
}

int gp_kubeconfig_parse(struct gp_kubeconfig *kc, const char *text, size_t len, const char *dir,
			const char *context, char *err, size_t n)
{
	const char *cur = context, *cluster, *user, *ns, *p = text;
	json_t *doc, *ctx, *c, *u;
	char why[256];
	int rc = -EINVAL;

	memset(kc, 0, sizeof *kc);
	if (len > GP_KUBECONFIG_MAX_BYTES)
		return gp_errf(err, n, -EINVAL, "larger than %u bytes", GP_KUBECONFIG_MAX_BYTES);
	while (p < text + len && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	if (p < text + len && *p == '{') {
		/* JSON (kubectl -o json) read as JSON, exactly; but a '{' may
		 * also open a YAML flow mapping, so that is tried next, and a
		 * text that is neither gets both reasons. */
		json_error_t je;
		doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
		if (!doc && !(doc = gp__kubeconfig_yaml(text, len, why, sizeof why)))
			return gp_errf(err, n, -EINVAL, "not valid JSON: %s (line %d); nor YAML: %s",
				       je.text, je.line, why);
	} else {
		doc = gp__kubeconfig_yaml(text, len, why, sizeof why);
		if (!doc)
			return gp_errf(err, n, -EINVAL, "%s", why);
	}
	if (!json_is_object(doc)) {
		gp_errf(err, n, 0, "a kubeconfig is a mapping at the top");
		goto out;
	}
	if (!cur && str_field(doc, "current-context", &cur, "kubeconfig", err, n))
		goto out;
	if (!cur || !*cur) {
		gp_errf(err, n, 0, "no current-context, and no context named");
		goto out;
	}
	if (!(ctx = named(doc, "contexts", "context", cur, err, n)))
		goto out;
	if (str_field(ctx, "cluster", &cluster, "context", err, n) ||
	    str_field(ctx, "user", &user, "context", err, n) ||
	    str_field(ctx, "namespace", &ns, "context", err, n))
		goto out;
	if (!cluster) {
		gp_errf(err, n, 0, "context '%s' names no cluster", cur);
		goto out;
	}
	if (!(c = named(doc, "clusters", "cluster", cluster, err, n)))
		goto out;
	if ((rc = cluster_part(kc, c, cluster, dir, err, n)))
		goto out;
	if (user) {
		if (!(u = named(doc, "users", "user", user, err, n))) {
			rc = -EINVAL;
			goto out;
		}
		if ((rc = user_part(kc, u, user, dir, err, n)))
			goto out;
	}
	kc->namespace = ns ? strdup(ns) : NULL;
	kc->context = strdup(cur);
	if (!kc->server || !kc->context || (ns && !kc->namespace) ||
	    (kc->ca_file == NULL && !kc->ca_data && json_object_get(c, "certificate-authority"))) {
		gp_errf(err, n, 0, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	if (rc)
		gp_kubeconfig_free(kc);
	return rc;
}

int gp_kubeconfig_load(struct gp_kubeconfig *kc, const char *path, const char *context, char *err,
		       size_t n)
{
	char why[300], *text, *dir, *slash;
	size_t len = 0;
	int rc;

	memset(kc, 0, sizeof *kc);
	text = slurp(path, GP_KUBECONFIG_MAX_BYTES, &len, err, n);
	if (!text)
		return -EINVAL;
	dir = strdup(path);
	slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		*slash = '\0';
	rc = gp_kubeconfig_parse(kc, text, len, slash ? dir : NULL, context, why, sizeof why);
	if (rc)
		gp_errf(err, n, 0, "%s: %s", path, why);
	free(dir);
	free(text);
	return rc;
}

int gp_kubeconfig_in_cluster(struct gp_kubeconfig *kc, const char *sa_dir, char *err, size_t n)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char *tok;
	size_t len;
	int rc;

	memset(kc, 0, sizeof *kc);
	if (!sa_dir)
		sa_dir = GP_KUBE_SA_DIR;
	if (!host || !*host || !port || !*port)
		return gp_errf(err, n, -ENOENT,
			     "not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); "
			     "give --kubeconfig");
	if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
		return gp_errf(err, n, -EINVAL, "KUBERNETES_SERVICE_PORT '%s' is not a port", port);
	/* An IPv6 service address needs brackets in the URL. */
	rc = asprintf(&kc->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		      port);
	if (rc < 0) {
		kc->server = NULL;
		return gp_errf(err, n, -ENOMEM, "out of memory");
	}
	if (asprintf(&kc->token_file, "%s/token", sa_dir) < 0 ||
	    asprintf(&kc->ca_file, "%s/ca.crt", sa_dir) < 0) {
		gp_kubeconfig_free(kc);
		return gp_errf(err, n, -ENOMEM, "out of memory");
	}
	/* Fail now, not at the first request, when the token is missing. */
	tok = slurp(kc->token_file, GP_KUBE_TOKEN_MAX_BYTES, &len, err, n);
	if (!tok) {
		gp_kubeconfig_free(kc);
		return -ENOENT;
	}
	free(tok);
	if (access(kc->ca_file, R_OK)) {
		gp_errf(err, n, 0, "cannot read %s: %s", kc->ca_file, strerror(errno));
		gp_kubeconfig_free(kc);
		return -ENOENT;
	}
	return 0;
}

void gp_kubeconfig_free(struct gp_kubeconfig *kc)
{
	free(kc->server);
	free(kc->ca_file);
	free(kc->ca_data);
	free(kc->token);
	free(kc->token_file);
	free(kc->user);
	free(kc->password);
	free(kc->cert_pem);
	free(kc->key_pem);
	free(kc->namespace);
	free(kc->context);
	memset(kc, 0, sizeof *kc);
}
