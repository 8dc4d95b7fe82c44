/* prom.c - see prom.h. */
#include "net/prom.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gp_prom_add(struct gp_prom *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		char *p;

		while (cap < o->len + n + 1)
			cap *= 2;
		p = realloc(o->p, cap);
		if (!p) {
			o->oom = 1;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

void gp_prom_adds(struct gp_prom *o, const char *s)
{
	gp_prom_add(o, s, strlen(s));
}

/* A label value escaped as the text format wants (\\, \", \n). */
void gp_prom_esc(struct gp_prom *o, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;

		if (!rep)
			continue;
		gp_prom_add(o, run, (size_t)(s - run));
		gp_prom_add(o, rep, 2);
		run = s + 1;
	}
	gp_prom_add(o, run, (size_t)(s - run));
}

/* " <value>\n": integers exactly, others with 15 significant digits (the
 * shortest that reads back as written for figures like 0.25 or 2.026). */
void gp_prom_value(struct gp_prom *o, double v)
{
	char buf[40];
	int n;

	if (v >= 0 && v < 9007199254740992.0 && v == (double)(uint64_t)v) {
		uint64_t u = (uint64_t)v;
		char *e = buf + sizeof buf, *q = e;

		*--q = '\n';
		do
			*--q = (char)('0' + u % 10);
		while ((u /= 10));
		*--q = ' ';
		gp_prom_add(o, q, (size_t)(e - q));
		return;
	}
	n = snprintf(buf, sizeof buf, " %.15g\n", v);
	gp_prom_add(o, buf, (size_t)n);
}

void gp_prom_family(struct gp_prom *o, const char *name, const char *type, const char *help)
{
	gp_prom_adds(o, "# HELP ");
	gp_prom_adds(o, name);
	gp_prom_add(o, " ", 1);
	gp_prom_adds(o, help);
	gp_prom_adds(o, "\n# TYPE ");
	gp_prom_adds(o, name);
	gp_prom_add(o, " ", 1);
	gp_prom_adds(o, type);
	gp_prom_add(o, "\n", 1);
}

/* Take the text built in o as a string (o is left empty). */
char *gp_prom_take(struct gp_prom *o)
{
	char *p = o->oom ? NULL : o->p ? o->p : strdup("");

	if (o->oom)
		free(o->p);
	*o = (struct gp_prom){0};
	return p;
}

