/* prom.h - the Prometheus text exposition format, written fast.
 *
 * A scrape of a big node writes some ten thousand lines, so this is a
 * plain growing buffer with its own number formatting rather than stdio
 * (whose per-character locking dominated the agent's scrape).  Out of
 * memory is sticky: every call after it does nothing and take gives NULL.
 */
#ifndef GP_NET_PROM_H
#define GP_NET_PROM_H

#include <stddef.h>

/* The text being built; start from {0}. */
struct gp_prom {
	char *p;
	size_t len, cap;
	int oom;
};

void gp_prom_add(struct gp_prom *o, const char *s, size_t n);
void gp_prom_adds(struct gp_prom *o, const char *s);

/* A label value escaped as the format wants (\\, \", \n). */
void gp_prom_esc(struct gp_prom *o, const char *s);

/* " <value>\n": integers exactly, others with 15 significant digits (the
 * shortest that reads back as written for figures like 0.25 or 2.026). */
void gp_prom_value(struct gp_prom *o, double v);

/* The # HELP and # TYPE lines of a family. */
void gp_prom_family(struct gp_prom *o, const char *name, const char *type, const char *help);

/* The text built, as a string to free (o is left empty); NULL when out of
 * memory. */
char *gp_prom_take(struct gp_prom *o);

#endif
