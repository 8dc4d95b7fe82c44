/* top.c - `gpupool top`: a live view of one node's GPUs and tenants.
 *
 * Each frame fetches the two documents the agent serves (/v1/gpus and
 * /v1/tenants), or with --local builds them here with the agent's own
 * collection code, and hands them to top_draw.c, which turns them into
 * lines.  This file does the rest: options, the data sources, and the
 * terminal (raw mode, the alternate screen, keys, resizes, signals), with
 * plain ANSI sequences rather than a curses dependency.  When stdout is no
 * terminal, or with --once, one frame is printed as plain text instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/collect.h"
#include "agent/gpus.h"
#include "agent/nvml.h"
#include "agent/snapjson.h"
#include "cli/cli.h"
#include "cli/top.h"
#include "common/clock.h"
#include "common/log.h"
#include "net/client.h"
#include "scaler/options.h"

#define MAX_BODY (16u << 20)   /* largest document accepted from the agent */
#define MAX_URL 1024           /* --agent's length */
#define FETCH_TIMEOUT_MS 3000  /* a hung agent must not freeze the screen long */
#define ERR_LEN 768

static const char help[] =
	"usage: gpupool top [options]\n"
	"\n"
	"A live view of one node: each GPU with its memory in use, utilization\n"
	"and health, and under it every tenant (container) using it: its memory\n"
	"budget and use, peak, allocations refused for the budget, processes,\n"
	"share of the card's time and how long it has been idle; for tenants\n"
	"with a compute limit or priority, the share of the card their kernels\n"
	"used (COMP) and how long their launches were held back (THR) over the\n"
	"last interval, their limit and policy (SHARE) and priority (PRIO).\n"
	"Tenants are named namespace/pod/container, or pod-UID/container when\n"
	"the pod is not known.  The data comes from the node's agent (`gpupool\n"
	"agent`), or with --local straight from NVML and the tenants' region\n"
	"files.\n"
	"\n"
	"options:\n"
	"      --agent URL          the agent to ask (default http://127.0.0.1:9400)\n"
	"      --local              no agent: collect here, like the agent does\n"
	"      --state-dir DIR      with --local: the agent's state directory\n"
	"                           (default /var/lib/gpupool)\n"
	"      --sim                with --local: the simulated GPUs (build/sim), the\n"
	"                           machine `gpupool run --sim` uses\n"
	"      --nvml PATH          with --local: the NVML library to load (default\n"
	"                           libnvidia-ml.so.1)\n"
	"      --interval DURATION  between refreshes (default 1s; 500ms, 2s, 1m)\n"
	"      --sort KEY           memory (default), peak, refused, idle or name\n"
	"      --once               print one frame as plain text and exit; also what\n"
	"                           happens when stdout is not a terminal\n"
	"  -h, --help               this text\n"
	"\n"
	"keys:\n"
	"  m  sort tenants by memory used     p  by peak memory\n"
	"  r  by refused allocations          i  by idle time\n"
	"  n  by name                         h, ?  show or hide the keys\n"
	"  space  refresh now                 Ctrl-L  redraw\n"
	"  q, Ctrl-C  quit\n"
	"\n"
	"exit status: 0 ok; 1 the data could not be had (--once) or the terminal\n"
	"failed; 2 a bad option.\n"
	"\n"
	"examples:\n"
	"  gpupool top\n"
	"  gpupool top --agent http://10.0.3.7:9400 --interval 2s --sort refused\n"
	"  gpupool top --local --state-dir /var/lib/gpupool --once\n"
	"  gpupool top --local --sim\n";

enum { O_AGENT = 256, O_LOCAL, O_STATE, O_SIM, O_NVML, O_INTERVAL, O_SORT, O_ONCE };

static const struct option longopts[] = {
	{"agent", required_argument, NULL, O_AGENT},
	{"local", no_argument, NULL, O_LOCAL},
	{"state-dir", required_argument, NULL, O_STATE},
	{"sim", no_argument, NULL, O_SIM},
	{"nvml", required_argument, NULL, O_NVML},
	{"interval", required_argument, NULL, O_INTERVAL},
	{"sort", required_argument, NULL, O_SORT},
	{"once", no_argument, NULL, O_ONCE},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

struct opts {
	char agent[MAX_URL + 1];   /* base URL, no trailing '/' */
	int agent_given;
	int local, sim, once;
	const char *state_dir;     /* set: --state-dir was given */
	const char *nvml_path;
	uint64_t interval_ms;
	enum gp_top_sort sort;
};

/* Where the documents come from: the agent, or a collection here. */
struct source {
	const struct opts *o;
	const char *label;         /* the URL, or "local" */
	/* --local */
	struct gp_nvml nvml;
	struct gp_gpus *gpus;      /* NULL: NVML is not there (nvml_err) */
	char nvml_err[256];
	char host[HOST_NAME_MAX + 1];
	char nvml_file[PATH_MAX + 32];
	struct gp_collect col;
};

/* The latest documents, and why the latest fetch failed if it did. */
struct docs {
	json_t *gpus, *tenants;    /* owned; NULL until a fetch succeeds */
	char err[ERR_LEN];         /* "" when the latest fetch succeeded */
};

/* --- options ----------------------------------------------------------- */

/* --agent: an http(s) URL of printable characters; stored without its
 * trailing slashes.  0 or -1 after a usage message. */
static int agent_url(const char *v, struct opts *o)
{
	size_t len = strlen(v);

	if (len > MAX_URL || (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0))
		goto bad;
	for (const char *p = v; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			goto bad;
	while (len > 8 && v[len - 1] == '/')
		len--;
	memcpy(o->agent, v, len);
	o->agent[len] = '\0';
	o->agent_given = 1;
	return 0;
bad:
	gp_cli_usage_error("top", "--agent '%s': want an http:// or https:// URL of up to %d "
				  "characters", v, MAX_URL);
	return -1;
}

/* One option into o, with its value v (for '?' and ':', getopt's "unknown"
 * and "no value", the option as written).  0, 1 for --help (printed), or
 * -1 after a usage message. */
static int option(int opt, const char *v, struct opts *o)
{
	double ms;
	int s;

	switch (opt) {
	case O_AGENT: return agent_url(v, o);
	case O_LOCAL: o->local = 1; return 0;
	case O_STATE:
		if (!*v)
			return gp_cli_usage_error("top", "--state-dir: empty path"), -1;
		o->state_dir = v;
		return 0;
	case O_SIM: o->sim = 1; return 0;
	case O_NVML:
		if (!*v)
			return gp_cli_usage_error("top", "--nvml: empty path"), -1;
		o->nvml_path = v;
		return 0;
	case O_INTERVAL:
		if (gp_scaler_parse_duration(v, &ms) || ms < 100 || ms > 3600000)
			return gp_cli_usage_error("top", "--interval '%s': want a duration from "
							 "100ms to 1h (500ms, 2s)", v), -1;
		o->interval_ms = (uint64_t)ms;
		return 0;
	case O_SORT:
		if ((s = gp__top_sort_parse(v)) < 0)
			return gp_cli_usage_error("top", "--sort '%s': want memory, peak, refused, "
							 "idle or name", v), -1;
		o->sort = (enum gp_top_sort)s;
		return 0;
	case O_ONCE: o->once = 1; return 0;
	case 'h': fputs(help, stdout); return 1;
	case ':': return gp_cli_usage_error("top", "option '%s' needs a value", v), -1;
	default: return gp_cli_usage_error("top", "unknown option '%s'", v), -1;
	}
}

/* Options that only make sense together.  0 or -1 after a message. */
static int check_options(const struct opts *o)
{
	const char *local_only = o->sim ? "--sim" : o->state_dir ? "--state-dir"
						    : o->nvml_path ? "--nvml" : NULL;

	if (o->local && o->agent_given)
		return gp_cli_usage_error("top", "--agent and --local: choose one source"), -1;
	if (!o->local && local_only)
		return gp_cli_usage_error("top", "%s needs --local", local_only), -1;
	if (o->sim && o->nvml_path)
		return gp_cli_usage_error("top", "--sim and --nvml name two NVML libraries"), -1;
	return 0;
}

/* --- the agent --------------------------------------------------------- */

/* GET base+path as a JSON object.  Returns it (caller's), or NULL with
 * the reason in err. */
static json_t *get_doc(const char *base, const char *path, char *err, size_t n)
{
	struct gp_client_opts co = {.timeout_ms = FETCH_TIMEOUT_MS, .max_body = MAX_BODY};
	struct gp_client_resp r;
	char url[MAX_URL + 32];
	json_error_t je;
	json_t *doc = NULL;

	snprintf(url, sizeof url, "%s%s", base, path);
	if (gp_client_request("GET", url, NULL, NULL, 0, &co, &r) != 0) {
		/* r.err reads "GET <url>: why"; the URL is said once already. */
		size_t pre = strlen("GET ") + strlen(url) + 2;
		const char *why = strncmp(r.err, "GET ", 4) == 0 && strlen(r.err) > pre &&
						  strncmp(r.err + 4, url, strlen(url)) == 0
					  ? r.err + pre
					  : r.err;

		snprintf(err, n, "cannot reach the agent at %s: %s", base, why);
		return NULL;
	}
	if (r.status != 200)
		snprintf(err, n, "the agent at %s answered HTTP %ld to %s", base, r.status, path);
	else if (!(doc = json_loadb(r.body, r.len, 0, &je)))
		snprintf(err, n, "the agent at %s sent %s that is not JSON: %s", base, path, je.text);
	else if (!json_is_object(doc))
		snprintf(err, n, "the agent at %s sent %s that is not a JSON object", base, path);
	if (doc && !json_is_object(doc)) {
		json_decref(doc);
		doc = NULL;
	}
	gp_client_free(&r);
	return doc;
}

/* Both documents from the agent, or neither.  0 or -1 (err says why). */
static int fetch_agent(struct source *s, json_t **gpus, json_t **tenants, char *err, size_t n)
{
	*gpus = get_doc(s->o->agent, "/v1/gpus", err, n);
	if (!*gpus)
		return -1;
	*tenants = get_doc(s->o->agent, "/v1/tenants", err, n);
	if (!*tenants) {
		json_decref(*gpus);
		*gpus = NULL;
		return -1;
	}
	return 0;
}

/* --- --local ----------------------------------------------------------- */

/* NVML and its cards, as the agent opens them; a node without them still
 * shows its tenants, with the reason in nvml_err.  0, or -1 after a
 * message (--sim cannot find the simulator). */
static int open_local(struct source *s)
{
	const struct opts *o = s->o;
	const char *path = o->nvml_path;
	int rc;

	if (o->sim) {
		char simdir[PATH_MAX];

		if (gp_cli_sim_env("top", simdir, sizeof simdir))
			return -1;
		snprintf(s->nvml_file, sizeof s->nvml_file, "%s/libnvidia-ml.so.1", simdir);
		path = s->nvml_file;
	}
	rc = gp_nvml_open(&s->nvml, path, s->nvml_err, sizeof s->nvml_err);
	if (!rc)
		rc = gp_gpus_open(&s->gpus, &s->nvml, s->nvml_err, sizeof s->nvml_err);
	if (rc) {
		s->gpus = NULL;
		gp_nvml_close(&s->nvml);
	}
	if (gethostname(s->host, sizeof s->host - 1) != 0)
		snprintf(s->host, sizeof s->host, "?");
	s->col = (struct gp_collect){.state_dir = o->state_dir ? o->state_dir : "/var/lib/gpupool",
				     .node = s->host, .max_tenants = 1024, .gpus = s->gpus,
				     .nvml_err = s->nvml_err, .pod = NULL, .proc_root = "/proc"};
	return 0;
}

/* One collection here, as the agent's documents.  0 or -1 (err). */
static int fetch_local(struct source *s, json_t **gpus, json_t **tenants, char *err, size_t n)
{
	struct gp_agent_snap *snap = NULL;
	struct gp_tenant_stale *stale = NULL;
	size_t nstale = 0;
	int rc = gp_collect(&s->col, &snap, &stale, &nstale);

	free(stale); /* top only looks: collecting them is the agent's job */
	if (rc) {
		snprintf(err, n, "cannot read the tenants under %s: %s", s->col.state_dir,
			 strerror(-rc));
		return -1;
	}
	*gpus = gp_snap_gpus_json(snap);
	*tenants = gp_snap_tenants_json(snap);
	gp_snap_unref(snap);
	if (!*gpus || !*tenants) {
		json_decref(*gpus);
		json_decref(*tenants);
		*gpus = *tenants = NULL;
		snprintf(err, n, "out of memory");
		return -1;
	}
	return 0;
}

static void close_source(struct source *s)
{
	if (s->o->local) {
		gp_collect_done(&s->col);
		gp_gpus_close(s->gpus);
		gp_nvml_close(&s->nvml);
	}
}

/* Fetch new documents into d.  On failure the previous ones stay (the
 * screen keeps showing them, under the error).  0 or -1 (d->err). */
static int fetch(struct source *s, struct docs *d)
{
	json_t *gpus = NULL, *tenants = NULL;
	int rc = s->o->local ? fetch_local(s, &gpus, &tenants, d->err, sizeof d->err)
			     : fetch_agent(s, &gpus, &tenants, d->err, sizeof d->err);

	if (rc)
		return -1;
	json_decref(d->gpus);
	json_decref(d->tenants);
	d->gpus = gpus;
	d->tenants = tenants;
	d->err[0] = '\0';
	return 0;
}

/* --- plain output ------------------------------------------------------ */

/* Columns for plain output: the terminal's, else $COLUMNS, else as wide
 * as the lines need. */
static unsigned plain_width(void)
{
	struct winsize ws;
	const char *c = getenv("COLUMNS");
	long v;

	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col)
		return ws.ws_col;
	if (c && (v = strtol(c, NULL, 10)) >= 20 && v <= GP_TOP_MAX_WIDTH)
		return (unsigned)v;
	return GP_TOP_MAX_WIDTH;
}

/* --once: one frame, plain, to stdout. */
static int run_once(struct source *s, const struct opts *o)
{
	struct docs d = {0};
	struct gp_top_frame f = {0};
	struct gp_top_view v = {.source = s->label, .sort = o->sort, .width = plain_width()};
	int rc = GP_EXIT_FAIL;

	if (fetch(s, &d)) {
		fprintf(stderr, "gpupool top: %s\n", d.err);
		goto out;
	}
	v.gpus = d.gpus;
	v.tenants = d.tenants;
	if (gp__top_draw(&v, &f)) {
		fprintf(stderr, "gpupool top: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < f.n; i++)
		printf("%s\n", f.line[i].text);
	rc = fflush(stdout) == 0 ? GP_EXIT_OK : GP_EXIT_FAIL;
out:
	gp__top_frame_free(&f);
	json_decref(d.gpus);
	json_decref(d.tenants);
	return rc;
}

/* --- the terminal ------------------------------------------------------ */

static volatile sig_atomic_t got_quit, got_winch, got_tstp;

static struct {
	int on;                 /* raw mode and the alternate screen are set */
	int have_tio;           /* saved holds the terminal's own settings */
	struct termios saved;
	int saved_stderr;       /* stderr while the screen is ours; -1 none */
} term = {.saved_stderr = -1};

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		got_winch = 1;
	else if (sig == SIGTSTP)
		got_tstp = 1;
	else
		got_quit = 1;
}

/* write(2) all of buf, through partial writes and signals. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Give the terminal back as it was: cursor, screen, modes, stderr.  Safe
 * to call twice (and from atexit). */
static void term_leave(void)
{
	static const char seq[] = "\x1b[0m\x1b[?25h\x1b[?1049l";

	if (!term.on)
		return;
	term.on = 0;
	(void)write_all(STDOUT_FILENO, seq, sizeof seq - 1);
	if (term.have_tio)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &term.saved);
	if (term.saved_stderr >= 0) {
		dup2(term.saved_stderr, STDERR_FILENO);
		close(term.saved_stderr);
		term.saved_stderr = -1;
	}
}

/* Take the terminal: keys one at a time without echo (signals from
 * Ctrl-C still work), the alternate screen, no cursor.  stderr goes to
 * /dev/null meanwhile: a library's log line would tear the picture.
 * 0 or -1. */
static int term_enter(void)
{
	static const char seq[] = "\x1b[?1049h\x1b[?25l\x1b[2J";
	struct termios raw;
	int null;

	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &term.saved) == 0) {
		term.have_tio = 1;
		raw = term.saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN);
		raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) != 0)
			return -1;
	}
	term.on = 1;
	fflush(stderr);
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null >= 0) {
		term.saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
		if (term.saved_stderr >= 0)
			dup2(null, STDERR_FILENO);
		close(null);
	}
	return write_all(STDOUT_FILENO, seq, sizeof seq - 1);
}

/* The window's size; 80x24 when the terminal will not say. */
static void term_size(unsigned *w, unsigned *h)
{
	struct winsize ws;

	*w = 80;
	*h = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
		*w = ws.ws_col;
		*h = ws.ws_row;
	}
}

/* What each style looks like. */
static const char *const sgr[] = {
	[GP_TOP_NORMAL] = "", [GP_TOP_TITLE] = "\x1b[7m", [GP_TOP_HEAD] = "\x1b[1m",
	[GP_TOP_CARD] = "\x1b[1m", [GP_TOP_BAD] = "\x1b[1;31m", [GP_TOP_DIM] = "\x1b[2m",
};

/* Paint the frame over the previous one: each line erased and rewritten
 * from the top, then the rows below it erased; no full clear, so no
 * flicker.  `clear` first clears all (after a resize).  Every erase comes
 * with the cursor at a line's start: after a line that fills the width
 * the cursor waits at the last column, and an erase there would take the
 * line's last character.  0 or -1. */
static int term_paint(const struct gp_top_frame *f, unsigned height, int clear)
{
	size_t cap = 64, len = 0;
	char *buf;
	int rc;

	for (size_t i = 0; i < f->n; i++)
		cap += strlen(f->line[i].text) + 24;
	if (!(buf = malloc(cap)))
		return -1;
	len += (size_t)snprintf(buf + len, cap - len, "%s\x1b[H", clear ? "\x1b[2J" : "");
	for (size_t i = 0; i < f->n; i++) {
		unsigned st = f->line[i].style;

		len += (size_t)snprintf(buf + len, cap - len, "%s\x1b[2K%s%s\x1b[0m",
					i ? "\r\n" : "", st < sizeof sgr / sizeof *sgr ? sgr[st] : "",
					f->line[i].text);
	}
	if (f->n < height)
		len += (size_t)snprintf(buf + len, cap - len, "\x1b[%zu;1H\x1b[J", f->n + 1);
	rc = write_all(STDOUT_FILENO, buf, len);
	free(buf);
	return rc;
}

/* --- the live view ----------------------------------------------------- */

struct live {
	struct source *s;
	struct docs d;
	struct gp_top_view v;
	struct gp_top_frame f;
	char error[ERR_LEN + 128];
	int quit, refresh, clear;
	int keys;                 /* stdin is read for keys */
};

/* Act on the keys in buf. */
static void on_keys(struct live *l, const char *buf, ssize_t n)
{
	for (ssize_t i = 0; i < n; i++) {
		int c = (unsigned char)buf[i], s;

		if (c == 0x1b)
			return; /* an escape sequence (arrows, F keys): none of ours */
		if (c == 'q' || c == 'Q' || c == 0x03)
			l->quit = 1;
		else if ((s = gp__top_sort_key(c)) >= 0)
			l->v.sort = (enum gp_top_sort)s;
		else if (c == 'h' || c == '?')
			l->v.help = !l->v.help;
		else if (c == ' ')
			l->refresh = 1;
		else if (c == 0x0c)
			l->clear = 1;
	}
}

/* Fetch and describe what failed for the screen. */
static void live_fetch(struct live *l, uint64_t interval_ms)
{
	char when[32] = "";

	if (fetch(l->s, &l->d) == 0) {
		l->v.error = NULL;
		return;
	}
	if (interval_ms % 1000)
		snprintf(when, sizeof when, "%llums", (unsigned long long)interval_ms);
	else
		snprintf(when, sizeof when, "%llus", (unsigned long long)(interval_ms / 1000));
	snprintf(l->error, sizeof l->error, "%s; retrying every %s%s", l->d.err, when,
		 l->d.gpus ? " (below: the last data received)" : "");
	l->v.error = l->error;
}

/* Draw and paint the current documents.  0 or -1. */
static int live_draw(struct live *l)
{
	term_size(&l->v.width, &l->v.height);
	l->v.gpus = l->d.gpus;
	l->v.tenants = l->d.tenants;
	if (gp__top_draw(&l->v, &l->f))
		return -1;
	if (term_paint(&l->f, l->v.height, l->clear))
		return -1;
	l->clear = 0;
	return 0;
}

/* Wait for a key or a signal until deadline, and act on what came. */
static void live_wait(struct live *l, uint64_t deadline, const sigset_t *during)
{
	struct pollfd p = {.fd = l->keys ? STDIN_FILENO : -1, .events = POLLIN};
	uint64_t now = gp_now_ns();
	uint64_t ns = deadline > now ? deadline - now : 0;
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};
	char buf[64];
	ssize_t n;

	if (ppoll(&p, 1, &ts, during) <= 0)
		return;
	if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
		l->keys = 0; /* the terminal went away; SIGHUP will follow */
		return;
	}
	n = read(STDIN_FILENO, buf, sizeof buf);
	if (n == 0)
		l->keys = 0;
	else if (n > 0)
		on_keys(l, buf, n);
}

/* Ctrl-Z: give the terminal back, stop, and take it again once continued. */
static int live_suspend(struct live *l)
{
	term_leave();
	raise(SIGSTOP);
	l->clear = 1;
	return term_enter();
}

/* Signals are blocked except while waiting in ppoll, so that one cannot
 * slip in between a check of the flags and the wait.  Returns the mask to
 * wait with. */
static int live_signals(sigset_t *during)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGTSTP};
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t block;

	sigemptyset(&block);
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
		sigaddset(&block, sigs[i]);
		if (sigaction(sigs[i], &sa, NULL) != 0)
			return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	return sigprocmask(SIG_BLOCK, &block, during);
}

/* The live view: fetch every interval, redraw on data, keys and resizes,
 * until q or a signal; the terminal is given back on every way out.
 * Returns the exit code. */
static int run_live(struct source *s, const struct opts *o)
{
	struct live l = {.s = s, .v = {.source = s->label, .sort = o->sort, .interactive = 1},
			 .keys = isatty(STDIN_FILENO)};
	uint64_t period = o->interval_ms * 1000000ull, next = 0;
	sigset_t during;
	int rc = GP_EXIT_OK;

	if (live_signals(&during) != 0 || term_enter() != 0) {
		term_leave();
		fprintf(stderr, "gpupool top: cannot set up the terminal: %s\n", strerror(errno));
		return GP_EXIT_FAIL;
	}
	atexit(term_leave);
	while (!l.quit && !got_quit) {
		if (got_tstp) {
			got_tstp = 0;
			if (live_suspend(&l) != 0)
				break;
		}
		if (l.refresh || gp_now_ns() >= next) {
			live_fetch(&l, o->interval_ms);
			next = gp_now_ns() + period;
			l.refresh = 0;
		}
		if (got_winch) {
			got_winch = 0;
			l.clear = 1;
		}
		if (live_draw(&l) != 0) {
			rc = GP_EXIT_FAIL;
			break;
		}
		live_wait(&l, next, &during);
	}
	term_leave();
	if (rc)
		fprintf(stderr, "gpupool top: cannot draw: %s\n", strerror(errno));
	gp__top_frame_free(&l.f);
	json_decref(l.d.gpus);
	json_decref(l.d.tenants);
	return rc;
}

int gp_cli_top(int argc, char **argv)
{
	struct opts o = {.agent = "http://127.0.0.1:9400", .interval_ms = 1000,
			 .sort = GP_TOP_SORT_MEM};
	struct source s = {.o = &o};
	int opt, rc;

	opterr = 0; /* our own messages, which name the option */
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		rc = option(opt, opt == '?' || opt == ':' ? argv[optind - 1] : optarg, &o);
		if (rc)
			return rc > 0 ? GP_EXIT_OK : GP_EXIT_USAGE;
	}
	if (optind < argc)
		return gp_cli_usage_error("top", "unexpected argument '%s'", argv[optind]);
	if (check_options(&o))
		return GP_EXIT_USAGE;
	gp_log_setup(GP_LOG_ERROR, "top");
	s.label = o.local ? "local" : o.agent;
	if (o.local ? open_local(&s) != 0 : gp_client_init() != 0) {
		if (!o.local)
			fprintf(stderr, "gpupool top: cannot initialise libcurl\n");
		return GP_EXIT_FAIL;
	}
	rc = o.once || !isatty(STDOUT_FILENO) ? run_once(&s, &o) : run_live(&s, &o);
	close_source(&s);
	return rc;
}
