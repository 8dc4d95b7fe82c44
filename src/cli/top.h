/* top.h - `gpupool top`'s picture of a node, as lines of text.
 *
 * The drawing is kept apart from the terminal (top.c) so that it can be
 * tested without one: it turns the agent's two JSON documents (/v1/gpus
 * and /v1/tenants, whose format snapjson.c defines) into a frame, one
 * line per row, each at most `width` columns and printable ASCII only:
 * whatever the documents hold, no byte of them can reach the terminal as
 * an escape sequence.  A field that is missing or of the wrong type shows
 * as "?" (or the row is skipped); the drawing never fails on odd JSON.
 */
#ifndef GP_CLI_TOP_H
#define GP_CLI_TOP_H

#include <stddef.h>

#include <jansson.h>

/* Widest line drawn, whatever the terminal says. */
#define GP_TOP_MAX_WIDTH 512

/* How tenants are ordered under their card. */
enum gp_top_sort {
	GP_TOP_SORT_MEM,     /* memory used, most first */
	GP_TOP_SORT_PEAK,    /* peak memory, most first */
	GP_TOP_SORT_REFUSED, /* refused allocations, most first */
	GP_TOP_SORT_IDLE,    /* idle time, longest first */
	GP_TOP_SORT_NAME,    /* name, A to Z */
};

/* How the terminal shows a line; plain output ignores it. */
enum gp_top_style {
	GP_TOP_NORMAL,
	GP_TOP_TITLE, /* the first line */
	GP_TOP_HEAD,  /* column heads */
	GP_TOP_CARD,  /* a healthy card */
	GP_TOP_BAD,   /* an unhealthy card, an error */
	GP_TOP_DIM,   /* notes */
};

/* What to draw. */
struct gp_top_view {
	const json_t *gpus;    /* the /v1/gpus document; NULL: none (yet) */
	const json_t *tenants; /* the /v1/tenants document; NULL: none (yet) */
	const char *source;    /* where they came from: a URL or "local" */
	const char *error;     /* why the latest fetch failed; NULL: it did not */
	enum gp_top_sort sort;
	int interactive;       /* name the keys in the title */
	int help;              /* show the keys' help */
	unsigned width;        /* columns (capped at GP_TOP_MAX_WIDTH) */
	unsigned height;       /* rows; 0: as many as it takes */
};

struct gp_top_line {
	char *text;            /* NUL-terminated, owned by the frame */
	enum gp_top_style style;
};

struct gp_top_frame {
	struct gp_top_line *line; /* owned */
	size_t n, cap;
};

/* Draw v into f (emptied first).  Returns 0, or -ENOMEM (f then holds
 * what was drawn so far; free it either way). */
int gp__top_draw(const struct gp_top_view *v, struct gp_top_frame *f)
	__attribute__((warn_unused_result));

void gp__top_frame_free(struct gp_top_frame *f);

/* The order a key selects ('m', 'p', 'r', 'i', 'n'), or -1. */
int gp__top_sort_key(int ch);

/* The order --sort NAME selects (memory, peak, refused, idle, name), or -1. */
int gp__top_sort_parse(const char *name);

/* A sort's name, as --sort and the title write it. */
const char *gp__top_sort_name(enum gp_top_sort s);

#endif
