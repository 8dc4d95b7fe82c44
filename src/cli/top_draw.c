/* top_draw.c - see top.h: the agent's JSON documents as lines of text.
 *
 * A frame is: a title, a summary (cards, tenants, NVML), the error of the
 * latest fetch if any, the keys' help if asked for, the column heads,
 * then each card followed by the tenants using it.  Tenants whose card is
 * not among the node's (or when the card list is missing) come last,
 * grouped by the card UUID they name.
 */
#include "cli/top.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CARDS 64      /* cards drawn; a node has at most 16 */
#define MAX_GROUPS 64     /* distinct unknown cards tenants name */
#define MAX_ROWS 16384    /* tenant-on-card rows drawn */
#define NAME_MAX_LEN 320  /* a tenant's name: namespace/pod/container */
#define NAME_MIN_W 12     /* the name column never gets narrower */
#define NAME_WANT_W 32    /* extra columns show only if names get this */
#define INDENT 2          /* tenant rows sit under their card */

/* One tenant's use of one card. */
struct row {
	const json_t *t;          /* the tenant object */
	const json_t *g;          /* the element of its "gpus" */
	unsigned group;           /* card index, or MAX_CARDS + unknown group */
	char name[NAME_MAX_LEN];  /* printable */
};

/* A line being built: printable ASCII, never wider than width. */
struct line {
	char s[GP_TOP_MAX_WIDTH + 1];
	size_t len;
	size_t width;
};

/* The columns right of the name, in screen order.  `drop` ranks which
 * go first when the window is narrow (highest first): USED stays.
 * `extra` columns also go while names are cut shorter than NAME_WANT_W:
 * a name is worth more than the compute policy. */
enum {
	C_BUDGET, C_USED, C_LIMIT, C_PEAK, C_REFUSED, C_PROCS, C_UTIL, C_COMP, C_THR, C_SHARE,
	C_PRIO, C_IDLE, NCOL
};

typedef void (*cell_fn)(const struct row *r, char *buf, size_t n);

static void cell_budget(const struct row *r, char *buf, size_t n);
static void cell_used(const struct row *r, char *buf, size_t n);
static void cell_limit(const struct row *r, char *buf, size_t n);
static void cell_peak(const struct row *r, char *buf, size_t n);
static void cell_refused(const struct row *r, char *buf, size_t n);
static void cell_procs(const struct row *r, char *buf, size_t n);
static void cell_util(const struct row *r, char *buf, size_t n);
static void cell_comp(const struct row *r, char *buf, size_t n);
static void cell_thr(const struct row *r, char *buf, size_t n);
static void cell_share(const struct row *r, char *buf, size_t n);
static void cell_prio(const struct row *r, char *buf, size_t n);
static void cell_idle(const struct row *r, char *buf, size_t n);

static const struct column {
	const char *head;
	unsigned width;
	unsigned drop;
	int extra;
	cell_fn fmt;
} columns[NCOL] = {
	[C_BUDGET] = {"BUDGET", 17, 10, 0, cell_budget},
	[C_USED] = {"USED", 10, 0, 0, cell_used},
	[C_LIMIT] = {"LIMIT", 10, 7, 0, cell_limit},
	[C_PEAK] = {"PEAK", 10, 8, 0, cell_peak},
	[C_REFUSED] = {"REFUSED", 7, 3, 0, cell_refused},
	[C_PROCS] = {"PROCS", 5, 9, 0, cell_procs},
	[C_UTIL] = {"UTIL", 5, 5, 0, cell_util},
	[C_COMP] = {"COMP", 5, 4, 0, cell_comp},
	[C_THR] = {"THR", 5, 6, 0, cell_thr},
	[C_SHARE] = {"SHARE", 12, 12, 1, cell_share},
	[C_PRIO] = {"PRIO", 4, 11, 1, cell_prio},
	[C_IDLE] = {"IDLE", 7, 2, 0, cell_idle},
};

/* Which columns fit, and how wide the name is. */
struct layout {
	int show[NCOL];
	size_t name_w;
};

static const struct {
	int key;
	const char *name;
} sorts[] = {
	[GP_TOP_SORT_MEM] = {'m', "memory"},   [GP_TOP_SORT_PEAK] = {'p', "peak"},
	[GP_TOP_SORT_REFUSED] = {'r', "refused"}, [GP_TOP_SORT_IDLE] = {'i', "idle"},
	[GP_TOP_SORT_NAME] = {'n', "name"},
};

#define NSORTS (sizeof sorts / sizeof *sorts)

int gp__top_sort_key(int ch)
{
	for (size_t i = 0; i < NSORTS; i++)
		if (sorts[i].key == ch)
			return (int)i;
	return -1;
}

int gp__top_sort_parse(const char *name)
{
	for (size_t i = 0; i < NSORTS; i++)
		if (strcmp(sorts[i].name, name) == 0)
			return (int)i;
	return -1;
}

const char *gp__top_sort_name(enum gp_top_sort s)
{
	return (unsigned)s < NSORTS ? sorts[s].name : "?";
}

/* --- reading the documents: every getter tolerates anything ----------- */

/* o[k] when it is a string, else NULL. */
static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* o[k] when it is a number of at least 0, else NAN (unknown). */
static double jnum(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	double d;

	if (!json_is_number(v))
		return NAN;
	d = json_number_value(v);
	return d >= 0 ? d : NAN;
}

/* o[k] when it is an array, else NULL. */
static const json_t *jarr(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_array(v) ? v : NULL;
}

/* --- text -------------------------------------------------------------- */

/* Append s, with every byte that is not printable ASCII shown as '?',
 * cut at the line's width. */
static void put(struct line *l, const char *s)
{
	for (; s && *s && l->len < l->width; s++)
		l->s[l->len++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	l->s[l->len] = '\0';
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct line *l, const char *fmt, ...)
{
	char buf[GP_TOP_MAX_WIDTH + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	put(l, buf);
}

/* Append s in exactly w columns: padded (on the left when `right`), or
 * cut with a '~' marking the cut. */
static void cell(struct line *l, const char *s, size_t w, int right)
{
	char buf[GP_TOP_MAX_WIDTH + 1];
	size_t len = strlen(s);

	if (w > GP_TOP_MAX_WIDTH)
		w = GP_TOP_MAX_WIDTH;
	if (len > w) {
		memcpy(buf, s, w);
		if (w > 1)
			buf[w - 1] = '~';
		buf[w] = '\0';
	} else {
		snprintf(buf, sizeof buf, right ? "%*s" : "%-*s", (int)w, s);
	}
	put(l, buf);
}

static void line_init(struct line *l, size_t width)
{
	l->len = 0;
	l->s[0] = '\0';
	l->width = width;
}

/* Add l to the frame (trailing blanks dropped).  0 or -ENOMEM. */
static int emit(struct gp_top_frame *f, struct line *l, enum gp_top_style style)
{
	char *text;

	while (l->len && l->s[l->len - 1] == ' ')
		l->s[--l->len] = '\0';
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct gp_top_line *nl = realloc(f->line, cap * sizeof *nl);

		if (!nl)
			return -ENOMEM;
		f->line = nl;
		f->cap = cap;
	}
	text = strdup(l->s);
	if (!text)
		return -ENOMEM;
	f->line[f->n++] = (struct gp_top_line){text, style};
	return 0;
}

/* Emit one line of formatted text. */
static int say(struct gp_top_frame *f, size_t width, enum gp_top_style style, const char *fmt,
	       ...) __attribute__((format(printf, 4, 5)));

static int say(struct gp_top_frame *f, size_t width, enum gp_top_style style, const char *fmt,
	       ...)
{
	char buf[GP_TOP_MAX_WIDTH + 1];
	struct line l;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	line_init(&l, width);
	put(&l, buf);
	return emit(f, &l, style);
}

/* Emit text over up to `most` lines, broken at blanks where it can be:
 * an error is worth reading whole. */
static int say_wrapped(struct gp_top_frame *f, size_t width, enum gp_top_style style,
		       const char *text, unsigned most)
{
	size_t len = strlen(text);
	int rc = 0;

	for (unsigned i = 0; i < most && len && !rc; i++) {
		size_t take = len;
		char buf[GP_TOP_MAX_WIDTH + 1];

		if (take > width && i + 1 < most) {
			take = width;
			while (take > width / 2 && text[take] != ' ')
				take--;
			if (text[take] != ' ')
				take = width; /* one long word: cut it */
		}
		if (take > GP_TOP_MAX_WIDTH)
			take = GP_TOP_MAX_WIDTH;
		memcpy(buf, text, take);
		buf[take] = '\0';
		rc = say(f, width, style, "%s", buf);
		text += take;
		len -= take;
		while (*text == ' ') {
			text++;
			len--;
		}
	}
	return rc;
}

/* Bytes for people: "17 B", "2.0 GiB", "512.0 MiB"; "?" when unknown. */
static void fmt_size(double b, char *buf, size_t n)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	unsigned u = 0;

	if (isnan(b)) {
		snprintf(buf, n, "?");
		return;
	}
	while (b >= 1024 && u + 1 < sizeof units / sizeof *units) {
		b /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%.0f B", b);
	else
		snprintf(buf, n, "%.1f %s", b, units[u]);
}

/* Seconds for people: "42s", "5m07s", "2h00m", "3d04h"; "?" unknown. */
static void fmt_duration(double s, char *buf, size_t n)
{
	unsigned long long v;

	if (isnan(s) || s > 1e12) {
		snprintf(buf, n, "?");
		return;
	}
	v = (unsigned long long)s;
	if (v < 60)
		snprintf(buf, n, "%llus", v);
	else if (v < 3600)
		snprintf(buf, n, "%llum%02llus", v / 60, v % 60);
	else if (v < 86400)
		snprintf(buf, n, "%lluh%02llum", v / 3600, v % 3600 / 60);
	else
		snprintf(buf, n, "%llud%02lluh", v / 86400, v % 86400 / 3600);
}

/* A whole number, "?" when unknown. */
static void fmt_count(double v, char *buf, size_t n)
{
	if (isnan(v) || v > 1e18)
		snprintf(buf, n, "?");
	else
		snprintf(buf, n, "%.0f", v);
}

/* "[|||||     ]" for used of total, `inner` marks wide; "[?]"-like
 * blanks when either is unknown. */
static void fmt_bar(double used, double total, size_t inner, char *buf, size_t n)
{
	size_t fill = 0, i;

	if (inner + 3 > n)
		inner = n - 3;
	if (!isnan(used) && !isnan(total) && total > 0) {
		double share = used / total;

		fill = share >= 1 ? inner : (size_t)(share * (double)inner + 0.5);
		if (fill == 0 && used > 0)
			fill = 1; /* some use is never shown as none */
	}
	buf[0] = '[';
	for (i = 0; i < inner; i++)
		buf[1 + i] = i < fill ? '|' : ' ';
	buf[1 + inner] = ']';
	buf[2 + inner] = '\0';
}

/* --- tenant cells ------------------------------------------------------ */

static void cell_budget(const struct row *r, char *buf, size_t n)
{
	double limit = jnum(r->g, "limitBytes"), used = jnum(r->g, "usedBytes");
	char bar[32];

	if (isnan(limit)) {
		snprintf(buf, n, "?");
	} else if (limit == 0) {
		snprintf(buf, n, "no budget");
	} else {
		fmt_bar(used, limit, 10, bar, sizeof bar);
		if (isnan(used))
			snprintf(buf, n, "%s    ?", bar);
		else
			snprintf(buf, n, "%s %3.0f%%", bar, fmin(used / limit * 100, 999));
	}
}

static void cell_used(const struct row *r, char *buf, size_t n)
{
	fmt_size(jnum(r->g, "usedBytes"), buf, n);
}

static void cell_limit(const struct row *r, char *buf, size_t n)
{
	double limit = jnum(r->g, "limitBytes");

	if (limit == 0)
		snprintf(buf, n, "-");
	else
		fmt_size(limit, buf, n);
}

static void cell_peak(const struct row *r, char *buf, size_t n)
{
	fmt_size(jnum(r->g, "peakBytes"), buf, n);
}

static void cell_refused(const struct row *r, char *buf, size_t n)
{
	fmt_count(jnum(r->g, "refused"), buf, n);
}

static void cell_procs(const struct row *r, char *buf, size_t n)
{
	fmt_count(jnum(r->t, "processes"), buf, n);
}

/* A percentage; "-" when the agent has none (NVML does not know, the
 * tenant is not metered, or was not seen before). */
static void fmt_rate(double pct, char *buf, size_t n)
{
	if (isnan(pct))
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.0f%%", fmin(pct, 999));
}

/* The tenant's share of the card's time, as NVML sees it. */
static void cell_util(const struct row *r, char *buf, size_t n)
{
	fmt_rate(jnum(r->g, "utilizationPercent"), buf, n);
}

/* The share of the card's time the tenant's kernels used. */
static void cell_comp(const struct row *r, char *buf, size_t n)
{
	fmt_rate(jnum(r->g, "computePercent"), buf, n);
}

/* How much of the interval its launches were held back (summed over its
 * threads, so it can pass 100%). */
static void cell_thr(const struct row *r, char *buf, size_t n)
{
	fmt_rate(jnum(r->g, "throttledPercent"), buf, n);
}

/* Its compute limit and policy: "30% elastic"; "-" without a limit. */
static void cell_share(const struct row *r, char *buf, size_t n)
{
	double limit = jnum(r->g, "coreLimit");
	const char *policy = jstr(r->g, "corePolicy");

	if (isnan(limit))
		snprintf(buf, n, "?");
	else if (limit == 0)
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.0f%% %s", fmin(limit, 999), policy ? policy : "?");
}

static void cell_prio(const struct row *r, char *buf, size_t n)
{
	const char *p = jstr(r->g, "priority");

	snprintf(buf, n, "%s", !p ? "?" : strcmp(p, "normal") == 0 ? "norm" : p);
}

static void cell_idle(const struct row *r, char *buf, size_t n)
{
	fmt_duration(jnum(r->g, "idleSeconds"), buf, n);
}

/* --- rows -------------------------------------------------------------- */

/* "namespace/pod/container", or "podUID/container" when the pod is not
 * known; printable ASCII only. */
static void tenant_name(const json_t *t, char *buf, size_t n)
{
	const char *ns = jstr(t, "namespace"), *pod = jstr(t, "pod"), *uid = jstr(t, "podUID");
	const char *ctr = jstr(t, "container");

	if (pod && *pod)
		snprintf(buf, n, "%s/%s/%s", ns && *ns ? ns : "?", pod, ctr ? ctr : "?");
	else
		snprintf(buf, n, "%s/%s", uid && *uid ? uid : "?", ctr ? ctr : "?");
	for (char *p = buf; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
}

/* The cards of the gpus document: objects only, at most MAX_CARDS. */
static size_t cards_of(const json_t *gpus, const json_t **card)
{
	const json_t *list = jarr(gpus, "gpus"), *c;
	size_t n = 0, i;

	json_array_foreach(list, i, c)
		if (json_is_object(c) && n < MAX_CARDS)
			card[n++] = c;
	return n;
}

/* Which card the tenant's use g is on: by UUID, else by index.  Returns
 * the card's position, or -1. */
static int card_of(const json_t *g, const json_t *const *card, size_t ncard)
{
	const char *uuid = jstr(g, "uuid");
	double idx = jnum(g, "index");

	for (size_t i = 0; i < ncard; i++) {
		const char *cu = jstr(card[i], "uuid");

		if (uuid && *uuid ? (cu && strcmp(cu, uuid) == 0)
				  : (!isnan(idx) && jnum(card[i], "index") == idx))
			return (int)i;
	}
	return -1;
}

/* Tenants' uses of cards not in the card list, grouped by the UUID they
 * name ("" for none); the group number of g, adding it when new. */
static unsigned unknown_group(const json_t *g, const char **group, size_t *ngroup)
{
	const char *uuid = jstr(g, "uuid");

	if (!uuid)
		uuid = "";
	for (size_t i = 0; i < *ngroup; i++)
		if (strcmp(group[i], uuid) == 0)
			return MAX_CARDS + (unsigned)i;
	if (*ngroup == MAX_GROUPS)
		return MAX_CARDS + MAX_GROUPS - 1; /* the rest share the last */
	group[*ngroup] = uuid;
	return MAX_CARDS + (unsigned)(*ngroup)++;
}

/* Every tenant's use of every card, as rows.  Returns how many, or -1 on
 * out-of-memory; *out is the caller's to free. */
static long rows_of(const json_t *tenants, const json_t *const *card, size_t ncard,
		    const char **group, size_t *ngroup, struct row **out)
{
	const json_t *list = jarr(tenants, "tenants"), *t, *g;
	size_t n = 0, cap = 0, i, j;
	struct row *r = NULL;

	json_array_foreach(list, i, t) {
		if (!json_is_object(t))
			continue;
		json_array_foreach(jarr(t, "gpus"), j, g) {
			if (!json_is_object(g) || n == MAX_ROWS)
				continue;
			if (n == cap) {
				struct row *nr = realloc(r, (cap = cap ? cap * 2 : 16) * sizeof *nr);

				if (!nr) {
					free(r);
					return -1;
				}
				r = nr;
			}
			int c = card_of(g, card, ncard);

			r[n].t = t;
			r[n].g = g;
			r[n].group = c >= 0 ? (unsigned)c : unknown_group(g, group, ngroup);
			tenant_name(t, r[n].name, sizeof r[n].name);
			n++;
		}
	}
	*out = r;
	return (long)n;
}

/* A number for ordering: unknown sorts as less than anything. */
static double key(const struct row *r, const char *field)
{
	double v = jnum(r->g, field);

	return isnan(v) ? -1 : v;
}

/* qsort_r order: by group (card), then the chosen key, then name. */
static int row_cmp(const void *pa, const void *pb, void *arg)
{
	const struct row *a = pa, *b = pb;
	enum gp_top_sort s = *(const enum gp_top_sort *)arg;
	static const char *const field[] = {
		[GP_TOP_SORT_MEM] = "usedBytes", [GP_TOP_SORT_PEAK] = "peakBytes",
		[GP_TOP_SORT_REFUSED] = "refused", [GP_TOP_SORT_IDLE] = "idleSeconds",
		[GP_TOP_SORT_NAME] = NULL,
	};

	if (a->group != b->group)
		return a->group < b->group ? -1 : 1;
	if ((unsigned)s < NSORTS && field[s]) {
		double ka = key(a, field[s]), kb = key(b, field[s]);

		if (ka != kb)
			return ka > kb ? -1 : 1; /* most first */
	}
	return strcmp(a->name, b->name);
}

/* --- layout ------------------------------------------------------------ */

/* The least needed column still shown (extra ones only, with `extra`);
 * -1 when none can go. */
static int worst_column(const struct layout *lo, int extra)
{
	int worst = -1;

	for (int c = 0; c < NCOL; c++)
		if (lo->show[c] && columns[c].drop && (!extra || columns[c].extra) &&
		    (worst < 0 || columns[c].drop > columns[worst].drop))
			worst = c;
	return worst;
}

/* Fit the columns into width: drop the least needed until the name has
 * at least NAME_MIN_W, and the extra ones while it has less than its
 * longest needs (up to NAME_WANT_W); the name then takes what its
 * longest needs. */
static void lay_out(size_t width, const struct row *r, size_t nrow, struct layout *lo)
{
	size_t fixed = INDENT, longest = strlen("TENANT"), want;
	int worst;

	for (size_t i = 0; i < nrow; i++)
		if (strlen(r[i].name) > longest)
			longest = strlen(r[i].name);
	want = longest < NAME_WANT_W ? longest : NAME_WANT_W;
	for (int c = 0; c < NCOL; c++) {
		lo->show[c] = 1;
		fixed += 1 + columns[c].width;
	}
	while (fixed + NAME_MIN_W > width && (worst = worst_column(lo, 0)) >= 0) {
		lo->show[worst] = 0;
		fixed -= 1 + columns[worst].width;
	}
	while (fixed + want > width && (worst = worst_column(lo, 1)) >= 0) {
		lo->show[worst] = 0;
		fixed -= 1 + columns[worst].width;
	}
	lo->name_w = width > fixed ? width - fixed : 1;
	if (lo->name_w > longest)
		lo->name_w = longest;
	if (lo->name_w < NAME_MIN_W && width >= fixed + NAME_MIN_W)
		lo->name_w = NAME_MIN_W;
}

static int draw_heads(struct gp_top_frame *f, size_t width, const struct layout *lo)
{
	struct line l;

	line_init(&l, width);
	cell(&l, "", INDENT, 0);
	cell(&l, "TENANT", lo->name_w, 0);
	for (int c = 0; c < NCOL; c++) {
		if (!lo->show[c])
			continue;
		put(&l, " ");
		cell(&l, columns[c].head, columns[c].width, c != C_BUDGET);
	}
	return emit(f, &l, GP_TOP_HEAD);
}

static int draw_row(struct gp_top_frame *f, size_t width, const struct layout *lo,
		    const struct row *r)
{
	struct line l;
	char buf[64];

	line_init(&l, width);
	cell(&l, "", INDENT, 0);
	cell(&l, r->name, lo->name_w, 0);
	for (int c = 0; c < NCOL; c++) {
		if (!lo->show[c])
			continue;
		columns[c].fmt(r, buf, sizeof buf);
		put(&l, " ");
		cell(&l, buf, columns[c].width, c != C_BUDGET);
	}
	return emit(f, &l, GP_TOP_NORMAL);
}

/* --- cards ------------------------------------------------------------- */

/* "GPU 0  MODEL  ok  20.0 GiB / 80.0 GiB  util 45%  [|||   ]": health
 * early, where a narrow window still shows it; the bar takes what the
 * window leaves, and goes when that is too little.  model_w aligns the
 * cards. */
static int draw_card(struct gp_top_frame *f, size_t width, const json_t *c, size_t model_w)
{
	const json_t *h = json_object_get(c, "healthy");
	double used = jnum(c, "memoryUsedBytes"), total = jnum(c, "memoryTotalBytes");
	double util = jnum(c, "utilizationPercent");
	char idx[24], su[24], st[24], ut[16], bar[48];
	const char *model = jstr(c, "model");
	struct line l;
	size_t room;

	fmt_count(jnum(c, "index"), idx, sizeof idx);
	fmt_size(used, su, sizeof su);
	fmt_size(total, st, sizeof st);
	if (isnan(util))
		snprintf(ut, sizeof ut, "-");
	else
		snprintf(ut, sizeof ut, "%.0f%%", fmin(util, 999));
	line_init(&l, width);
	putf(&l, "GPU %s  ", idx);
	cell(&l, model && *model ? model : "?", model_w, 0);
	put(&l, "  ");
	cell(&l, json_is_boolean(h) ? (json_is_true(h) ? "ok" : "UNHEALTHY") : "health ?", 9, 0);
	putf(&l, "  %s / %s  util %-4s", su, st, ut);
	room = width > l.len + 2 ? width - l.len - 2 : 0;
	if (room >= 8) {
		fmt_bar(used, total, room - 2 > 40 ? 40 : room - 2, bar, sizeof bar);
		put(&l, "  ");
		put(&l, bar);
	}
	return emit(f, &l, json_is_false(h) ? GP_TOP_BAD : GP_TOP_CARD);
}

/* The width of the longest model name (at least 1, at most 28). */
static size_t model_width(const json_t *const *card, size_t ncard)
{
	size_t w = 1;

	for (size_t i = 0; i < ncard; i++) {
		const char *m = jstr(card[i], "model");
		size_t len = m && *m ? strlen(m) : 1;

		if (len > w)
			w = len;
	}
	return w > 28 ? 28 : w;
}

/* Under a card: why it is unhealthy, its XIDs and uncorrected ECC errors,
 * when there is anything to say. */
static int draw_card_notes(struct gp_top_frame *f, size_t width, const json_t *c)
{
	double xids = jnum(c, "xidErrors"), last = jnum(c, "lastXid");
	double ecc = jnum(c, "eccUncorrected");
	const char *why = jstr(c, "unhealthyReason");
	char buf[GP_TOP_MAX_WIDTH + 1] = "";
	size_t len = 0;
	int rc = 0;

	if (json_is_false(json_object_get(c, "healthy")))
		len += (size_t)snprintf(buf + len, sizeof buf - len, "; unhealthy: %s",
					why && *why ? why : "no reason given");
	if (!isnan(xids) && xids > 0 && len < sizeof buf)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "; %.0f XID error(s), last %.0f",
					xids, isnan(last) ? 0 : last);
	if (!isnan(ecc) && ecc > 0 && len < sizeof buf)
		snprintf(buf + len, sizeof buf - len, "; %.0f uncorrected ECC error(s)", ecc);
	if (buf[0])
		rc = say(f, width, GP_TOP_BAD, "%*s! %s", INDENT, "", buf + 2);
	return rc;
}

/* A group header for tenants on a card the node does not list. */
static int draw_unknown_card(struct gp_top_frame *f, size_t width, const char *uuid,
			     int have_cards)
{
	return say(f, width, GP_TOP_DIM, "GPU ?  %s  (%s)", *uuid ? uuid : "no UUID",
		   have_cards ? "not among this node's cards" : "card list unavailable");
}

/* --- the frame --------------------------------------------------------- */

static int draw_title(struct gp_top_frame *f, const struct gp_top_view *v, size_t width)
{
	const char *node = jstr(v->gpus, "node"), *when = jstr(v->gpus, "updated");

	if (!node)
		node = jstr(v->tenants, "node");
	if (!when)
		when = jstr(v->tenants, "updated");
	return say(f, width, GP_TOP_TITLE, "gpupool top - node %s - sort: %s%s - %s - updated %s",
		   node ? node : "?", gp__top_sort_name(v->sort),
		   v->interactive ? " - h help, q quit" : "", v->source ? v->source : "?",
		   when ? when : "never");
}

/* "2 GPUs (1 unhealthy), 3 tenants", then NVML's and the agent's notes. */
static int draw_summary(struct gp_top_frame *f, const struct gp_top_view *v, size_t width,
			const json_t *const *card, size_t ncard)
{
	const json_t *tl = jarr(v->tenants, "tenants");
	const char *nvml = jstr(v->gpus, "nvml");
	double skipped = jnum(v->tenants, "skipped"), capped = jnum(v->tenants, "capped");
	size_t bad = 0;
	char tn[32], gp[32];
	int rc;

	for (size_t i = 0; i < ncard; i++)
		bad += json_is_false(json_object_get(card[i], "healthy"));
	if (tl)
		snprintf(tn, sizeof tn, "%zu", json_array_size(tl));
	else
		snprintf(tn, sizeof tn, "?");
	if (v->gpus)
		snprintf(gp, sizeof gp, "%zu", ncard);
	else
		snprintf(gp, sizeof gp, "?");
	rc = say(f, width, GP_TOP_NORMAL, "%s GPU(s), %zu unhealthy; %s tenant(s)", gp, bad, tn);
	if (!rc && v->gpus && (!nvml || strcmp(nvml, "ok") != 0))
		rc = say(f, width, GP_TOP_BAD, "NVML: %s", nvml ? nvml : "?");
	if (!rc && !isnan(skipped) && skipped > 0)
		rc = say(f, width, GP_TOP_BAD, "%.0f region file(s) could not be read", skipped);
	if (!rc && !isnan(capped) && capped > 0)
		rc = say(f, width, GP_TOP_DIM, "%.0f tenant(s) left out (the agent's --max-tenants)",
			 capped);
	return rc;
}

static int draw_help(struct gp_top_frame *f, size_t width)
{
	static const char *const text[] = {
		"keys: m sort by memory used, p by peak, r by refused allocations,",
		"      i by idle time, n by name; h or ? this help; q or Ctrl-C quit",
		"BUDGET: used of the tenant's memory limit; LIMIT '-': no budget;",
		"REFUSED: allocations refused for the budget; IDLE: since its last kernel or copy",
		"COMP: share of the card its kernels used, THR: time its launches were held",
		"back, over the last interval ('-': not metered); SHARE: compute limit, policy",
	};
	int rc = 0;

	for (size_t i = 0; i < sizeof text / sizeof *text && !rc; i++)
		rc = say(f, width, GP_TOP_DIM, "%s", text[i]);
	return rc;
}

/* The cards and, under each, its tenants (rows sorted by group). */
static int draw_cards(struct gp_top_frame *f, size_t width, const json_t *const *card,
		      size_t ncard, const char *const *group, const struct row *r, size_t nrow,
		      const struct layout *lo, int have_cards)
{
	size_t k = 0, model_w = model_width(card, ncard);
	int rc = 0;

	if (!ncard && !nrow)
		return say(f, width, GP_TOP_DIM, "(no GPUs, no tenants)");
	for (size_t c = 0; c < ncard && !rc; c++) {
		rc = draw_card(f, width, card[c], model_w);
		if (!rc)
			rc = draw_card_notes(f, width, card[c]);
		if (!rc && (k == nrow || r[k].group != c))
			rc = say(f, width, GP_TOP_DIM, "%*s(no tenants)", INDENT, "");
		for (; !rc && k < nrow && r[k].group == c; k++)
			rc = draw_row(f, width, lo, &r[k]);
	}
	while (!rc && k < nrow) {
		unsigned g = r[k].group;

		rc = draw_unknown_card(f, width, group[g - MAX_CARDS], have_cards);
		for (; !rc && k < nrow && r[k].group == g; k++)
			rc = draw_row(f, width, lo, &r[k]);
	}
	return rc;
}

/* Cut the frame to the window's height, saying how much is hidden. */
static int fit_height(struct gp_top_frame *f, size_t width, size_t height)
{
	size_t hidden;

	if (!height || f->n <= height)
		return 0;
	hidden = f->n - height + 1;
	while (f->n > height - 1)
		free(f->line[--f->n].text);
	if (height == 1)
		return 0; /* no room to say so */
	return say(f, width, GP_TOP_DIM, "... %zu more line(s): enlarge the window", hidden);
}

/* The frame's body: everything below the title and the notes. */
static int draw_body(struct gp_top_frame *f, const struct gp_top_view *v, size_t width,
		     const json_t *const *card, size_t ncard)
{
	const char *group[MAX_GROUPS];
	size_t ngroup = 0;
	struct row *r = NULL;
	struct layout lo;
	long nrow = rows_of(v->tenants, card, ncard, group, &ngroup, &r);
	enum gp_top_sort s = v->sort;
	int rc;

	if (nrow < 0)
		return -ENOMEM;
	if (nrow > 0)
		qsort_r(r, (size_t)nrow, sizeof *r, row_cmp, &s);
	lay_out(width, r, (size_t)nrow, &lo);
	rc = say(f, width, GP_TOP_NORMAL, "%s", "");
	if (!rc)
		rc = draw_heads(f, width, &lo);
	if (!rc)
		rc = draw_cards(f, width, card, ncard, group, r, (size_t)nrow, &lo, v->gpus != NULL);
	free(r);
	return rc;
}

void gp__top_frame_free(struct gp_top_frame *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->line[i].text);
	free(f->line);
	*f = (struct gp_top_frame){0};
}

int gp__top_draw(const struct gp_top_view *v, struct gp_top_frame *f)
{
	const json_t *card[MAX_CARDS];
	size_t width = v->width ? v->width : 80, ncard;
	int rc;

	for (size_t i = 0; i < f->n; i++)
		free(f->line[i].text);
	f->n = 0;
	if (width > GP_TOP_MAX_WIDTH)
		width = GP_TOP_MAX_WIDTH;
	ncard = cards_of(v->gpus, card);
	rc = draw_title(f, v, width);
	if (!rc && v->error)
		rc = say_wrapped(f, width, GP_TOP_BAD, v->error, 4);
	if (!rc && (v->gpus || v->tenants))
		rc = draw_summary(f, v, width, card, ncard);
	if (!rc && v->help)
		rc = draw_help(f, width);
	if (!rc && (v->gpus || v->tenants))
		rc = draw_body(f, v, width, card, ncard);
	if (!rc)
		rc = fit_height(f, width, v->height);
	return rc;
}
