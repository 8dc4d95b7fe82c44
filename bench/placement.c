/* placement.c - replay a GPU-sharing trace against every placement policy.
 *
 *   placement --nodes FILE --pods FILE [--pods FILE ...] [--seeds N]
 *             [--policies LIST] [--jobs N] [--ignore-memory] [--json FILE]
 *
 * The procedure of "Beware of Fragmentation" (ATC '23), section 6: tasks
 * drawn at random (with replacement, seeded) from a pod list arrive one at
 * a time; each is placed by the policy or, if no node takes it, dropped.
 * Arrivals stop once the GPUs requested by all arrived tasks (placed or
 * not) reach the cluster's GPU capacity.  Per pod list and policy it
 * reports, averaged over the seeds:
 *   - alloc@fail: the share of GPU capacity allocated when the first task
 *     could not be placed;
 *   - unalloc@100%: the GPU capacity left unallocated when the arrived
 *     workload reaches 100 % of capacity, in GPUs and in percent (the
 *     paper's "unallocated GPUs");
 *   - the time of one decision (gp_placer_choose over all nodes): median
 *     and 99th percentile as run, and the median with the placer's cache
 *     off ("cold": every node evaluated from scratch) on every 16th pod.
 *
 * Host memory is tracked (the paper's simulator tracks CPU and GPU only;
 * --ignore-memory does the same).  GP_BENCH_DEBUG=1 prints each run's first
 * failure to stderr, GP_BENCH_DEBUG=2 every failure.
 *
 * Input: the trace's CSV files.  nodes: sn,cpu_milli,memory_mib,gpu,model;
 * pods: name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec,...], where
 * gpu_milli is per GPU in thousandths and gpu_spec a '|' list of allowed
 * card models.  Every field is checked and capped; a bad line stops the
 * program with its file and line number.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/parse.h"
#include "place/pl_int.h" /* gp__placer_cache: the cold measurement */
#include "gpupool/placement.h"

#define MAX_FILE (256u << 20)   /* bytes per input file */
#define MAX_LINE 4096u
#define MAX_NODES 100000u
#define MAX_PODS 1000000u
#define MAX_LISTS 16
#define MAX_SEEDS 1000u
#define COLD_EVERY 16

/* --- the trace --------------------------------------------------------------- */

struct tnode {
	char name[GP_NAME_MAX];
	char model[GP_ID_MAX];
	uint64_t cpu, mem;      /* millicores, bytes */
	unsigned gpus;
};

struct tpod {
	uint64_t cpu, mem;
	unsigned gpus, pct;     /* GPUs, compute per GPU in percent */
	char spec[128];         /* allowed models, comma-separated; "" = any */
};

struct plist {
	const char *path;
	char label[64];
	struct tpod *pods;
	size_t npods;
	struct gp_workload *w;
	struct gp_workload *wtyp; /* the simulator's "typical pods" (fgd) */
	unsigned ntyp;          /* shapes in it */
	unsigned rounded;       /* gpu_milli values rounded up to a percent */
};

/* Card memory by model, for the node model (the trace has none; pods of
 * the trace ask for no device memory, so it never decides a fit). */
static const struct {
	const char *model;
	uint64_t gib;
} card_mem[] = {
	{"P100", 16}, {"T4", 16}, {"V100M16", 16}, {"V100M32", 32}, {"A10", 24}, {"G2", 32}, {"G3", 32},
};

static uint64_t model_mem(const char *model)
{
	for (size_t i = 0; i < sizeof card_mem / sizeof *card_mem; i++)
		if (strcmp(card_mem[i].model, model) == 0)
			return card_mem[i].gib << 30;
	return 16ull << 30;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "placement: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Read a whole file (capped) into a NUL-terminated buffer. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n = 0, cap = 1 << 20;

	if (!f)
		die("%s: %s", path, strerror(errno));
	buf = malloc(cap + 1);
	if (!buf)
		die("out of memory");
	for (;;) {
		size_t got;

		if (n == cap) {
			if (cap >= MAX_FILE)
				die("%s: larger than %u MiB", path, MAX_FILE >> 20);
			cap *= 2;
			if (!(buf = realloc(buf, cap + 1)))
				die("out of memory");
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		die("%s: read error", path);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Split one CSV line (no quoting in these traces) into at most max fields.
 * Returns the number of fields. */
static unsigned split(char *line, char **f, unsigned max)
{
	unsigned n = 0;

	f[n++] = line;
	for (char *p = line; *p; p++)
		if (*p == ',') {
			*p = '\0';
			if (n == max)
				return max + 1;
			f[n++] = p + 1;
		}
	return n;
}

/* A decimal field within lo..hi, or die naming the file, line and field. */
static uint64_t num(const char *path, size_t line, const char *field, const char *s, uint64_t lo, uint64_t hi)
{
	uint64_t v = 0;

	if (!*s)
		die("%s:%zu: %s is empty", path, line, field);
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			die("%s:%zu: %s \"%.20s\" is not a whole number", path, line, field, s);
		if (v > (UINT64_MAX - 9) / 10)
			die("%s:%zu: %s is too large", path, line, field);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v < lo || v > hi)
		die("%s:%zu: %s %llu is out of range %llu..%llu", path, line, field, (unsigned long long)v,
		    (unsigned long long)lo, (unsigned long long)hi);
	return v;
}

/* Iterate the lines of buf: returns the next line (NUL-terminated in
 * place, CR stripped) or NULL; dies on an over-long line. */
static char *next_line(char **cur, const char *path, size_t lineno)
{
	char *s = *cur, *e;

	if (!*s)
		return NULL;
	e = strchr(s, '\n');
	if (e) {
		*e = '\0';
		*cur = e + 1;
	} else {
		*cur = s + strlen(s);
	}
	if (strlen(s) > MAX_LINE)
		die("%s:%zu: line longer than %u bytes", path, lineno, MAX_LINE);
	if (*s && s[strlen(s) - 1] == '\r')
		s[strlen(s) - 1] = '\0';
	return s;
}

static void check_header(const char *path, char *line, const char *const *want, unsigned nwant, unsigned *nf)
{
	char *f[32];
	unsigned n = split(line, f, 32);

	if (n > 32)
		die("%s:1: more than 32 columns", path);
	if (n < nwant)
		die("%s:1: header has %u columns, expected at least %u (%s,...)", path, n, nwant, want[0]);
	for (unsigned i = 0; i < nwant; i++)
		if (strcmp(f[i], want[i]) != 0)
			die("%s:1: column %u is \"%.40s\", expected \"%s\"", path, i + 1, f[i], want[i]);
	*nf = n;
}

static struct tnode *load_nodes(const char *path, size_t *count)
{
	static const char *const cols[] = {"sn", "cpu_milli", "memory_mib", "gpu", "model"};
	size_t len, lineno = 1, n = 0, cap = 1024;
	char *buf = slurp(path, &len), *cur = buf, *line;
	struct tnode *v = malloc(cap * sizeof *v);
	unsigned ncols;

	if (!v)
		die("out of memory");
	if (!(line = next_line(&cur, path, 1)))
		die("%s: empty file", path);
	check_header(path, line, cols, 5, &ncols);
	while ((line = next_line(&cur, path, ++lineno))) {
		char *f[32];
		unsigned nf;
		struct tnode *t;

		if (!*line)
			continue;
		nf = split(line, f, 32);
		if (nf != ncols)
			die("%s:%zu: %u fields, the header has %u", path, lineno, nf > 32 ? 33 : nf, ncols);
		if (n == MAX_NODES)
			die("%s:%zu: more than %u nodes", path, lineno, MAX_NODES);
		if (n == cap && !(v = realloc(v, (cap *= 2) * sizeof *v)))
			die("out of memory");
		t = &v[n++];
		if (!*f[0] || strlen(f[0]) >= sizeof t->name)
			die("%s:%zu: node name empty or longer than %zu bytes", path, lineno, sizeof t->name - 1);
		if (strlen(f[4]) >= sizeof t->model)
			die("%s:%zu: model longer than %zu bytes", path, lineno, sizeof t->model - 1);
		strcpy(t->name, f[0]);
		strcpy(t->model, f[4]);
		t->cpu = num(path, lineno, "cpu_milli", f[1], 1, 10000000);
		t->mem = num(path, lineno, "memory_mib", f[2], 1, 1ull << 30) << 20;
		t->gpus = (unsigned)num(path, lineno, "gpu", f[3], 0, GP_MAX_GPUS);
	}
	free(buf);
	if (n == 0)
		die("%s: no nodes", path);
	*count = n;
	return v;
}

static void load_pods(struct plist *pl)
{
	static const char *const cols[] = {"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"};
	size_t len, lineno = 1, cap = 1024;
	char *buf = slurp(pl->path, &len), *cur = buf, *line;
	unsigned ncols;
	int spec_col = -1;
	struct gp_request *r;
	const char *base = strrchr(pl->path, '/');

	base = base ? base + 1 : pl->path;
	snprintf(pl->label, sizeof pl->label, "%s", base);
	if (strstr(pl->label, "openb_pod_list_") == pl->label)
		memmove(pl->label, pl->label + 15, strlen(pl->label + 15) + 1);
	if (strchr(pl->label, '.'))
		*strchr(pl->label, '.') = '\0';
	if (!(pl->pods = malloc(cap * sizeof *pl->pods)))
		die("out of memory");
	if (!(line = next_line(&cur, pl->path, 1)))
		die("%s: empty file", pl->path);
	{
		char hdr[MAX_LINE + 1], *f[32];
		unsigned nf;

		snprintf(hdr, sizeof hdr, "%s", line);
		nf = split(hdr, f, 32);
		for (unsigned i = 0; i < nf && i < 32; i++)
			if (strcmp(f[i], "gpu_spec") == 0)
				spec_col = (int)i;
	}
	check_header(pl->path, line, cols, 5, &ncols);
	if (gp_workload_new(&pl->w) < 0 || gp_request_new(&r) < 0)
		die("out of memory");
	while ((line = next_line(&cur, pl->path, ++lineno))) {
		char *f[32], err[GP_REASON_MAX];
		unsigned nf, milli;
		struct tpod *t;

		if (!*line)
			continue;
		nf = split(line, f, 32);
		if (nf != ncols)
			die("%s:%zu: %u fields, the header has %u", pl->path, lineno, nf > 32 ? 33 : nf, ncols);
		if (pl->npods == MAX_PODS)
			die("%s:%zu: more than %u pods", pl->path, lineno, MAX_PODS);
		if (pl->npods == cap && !(pl->pods = realloc(pl->pods, (cap *= 2) * sizeof *pl->pods)))
			die("out of memory");
		t = &pl->pods[pl->npods++];
		t->cpu = num(pl->path, lineno, "cpu_milli", f[1], 0, 10000000);
		t->mem = num(pl->path, lineno, "memory_mib", f[2], 0, 1ull << 30) << 20;
		t->gpus = (unsigned)num(pl->path, lineno, "num_gpu", f[3], 0, GP_MAX_GPUS);
		milli = (unsigned)num(pl->path, lineno, "gpu_milli", f[4], 0, 1000);
		if (t->gpus && !milli)
			die("%s:%zu: num_gpu %u with gpu_milli 0", pl->path, lineno, t->gpus);
		t->pct = (milli + 9) / 10;
		pl->rounded += milli % 10 != 0;
		if (!t->gpus)
			t->pct = 0;
		t->spec[0] = '\0';
		if (spec_col >= 0 && *f[spec_col]) {
			if (strlen(f[spec_col]) >= sizeof t->spec)
				die("%s:%zu: gpu_spec longer than %zu bytes", pl->path, lineno, sizeof t->spec - 1);
			strcpy(t->spec, f[spec_col]);
			for (char *p = t->spec; *p; p++)
				if (*p == '|')
					*p = ',';
		}
		/* the workload the fragmentation-aware policies aim at: the list */
		gp_request_reset(r);
		gp_request_set_host(r, t->cpu, t->mem);
		if (t->gpus) {
			struct gp_ctr c = {.gpus = t->gpus, .compute = t->pct, .types = t->spec};

			if (gp_request_add_container(r, &c, err, sizeof err) < 0)
				die("%s:%zu: %s", pl->path, lineno, err);
		}
		if (gp_workload_add(pl->w, r, 1.0) < 0)
			die("%s:%zu: cannot add to the workload", pl->path, lineno);
	}
	gp_request_free(r);
	free(buf);
	if (pl->npods == 0)
		die("%s: no pods", pl->path);
	if (pl->rounded)
		fprintf(stderr, "placement: %s: %u gpu_milli values rounded up to whole percent\n", pl->path,
			pl->rounded);
}

/* The workload the paper's simulator gives FGD (GetTypicalPods in its
 * pkg/utils/frag.go, with the settings of its experiment scripts: CPU pods
 * included, popularity threshold 95 %, step 1): pods are counted by shape
 * (CPU, GPU count, per-GPU share, GPU type; host memory is not part of
 * it), the shapes sorted by decreasing count (ties: larger CPU, share, GPU
 * count, type first), and the most popular ones kept until they cover 95 %
 * of the pods. */
struct tshape {
	const struct tpod *p;
	double count;
};

static int cmp_shape(const void *a, const void *b)
{
	const struct tshape *x = a, *y = b;
	int c;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if (x->p->cpu != y->p->cpu)
		return x->p->cpu > y->p->cpu ? -1 : 1;
	if (x->p->pct != y->p->pct)
		return x->p->pct > y->p->pct ? -1 : 1;
	if (x->p->gpus != y->p->gpus)
		return x->p->gpus > y->p->gpus ? -1 : 1;
	c = strcmp(x->p->spec, y->p->spec);
	return c > 0 ? -1 : c < 0;
}

static bool same_shape(const struct tpod *a, const struct tpod *b)
{
	return a->cpu == b->cpu && a->gpus == b->gpus && a->pct == b->pct && strcmp(a->spec, b->spec) == 0;
}

static void typical_pods(struct plist *pl)
{
	struct tshape *sh = calloc(pl->npods, sizeof *sh);
	size_t nsh = 0, *bucket, nb = 1;
	struct gp_request *r;
	double cum = 0;
	char err[GP_REASON_MAX];

	while (nb < 2 * pl->npods)
		nb *= 2;
	bucket = malloc(nb * sizeof *bucket);
	if (!sh || !bucket || gp_workload_new(&pl->wtyp) < 0 || gp_request_new(&r) < 0)
		die("out of memory");
	for (size_t i = 0; i < nb; i++)
		bucket[i] = SIZE_MAX;
	for (size_t i = 0; i < pl->npods; i++) {
		const struct tpod *t = &pl->pods[i];
		uint64_t h = gp__hash_mix(gp__hash_mix(gp__hash_mix(t->cpu, t->gpus), t->pct), gp__hash_ci(t->spec));
		size_t b = h & (nb - 1);

		while (bucket[b] != SIZE_MAX && !same_shape(sh[bucket[b]].p, t))
			b = (b + 1) & (nb - 1);
		if (bucket[b] == SIZE_MAX) {
			bucket[b] = nsh;
			sh[nsh++] = (struct tshape){.p = t};
		}
		sh[bucket[b]].count++;
	}
	qsort(sh, nsh, sizeof *sh, cmp_shape);
	for (size_t i = 0; i < nsh && cum < 0.95 * (double)pl->npods; i++) {
		const struct tpod *t = sh[i].p;

		cum += sh[i].count;
		gp_request_reset(r);
		gp_request_set_host(r, t->cpu, 0);
		if (t->gpus) {
			struct gp_ctr c = {.gpus = t->gpus, .compute = t->pct, .types = t->spec};

			if (gp_request_add_container(r, &c, err, sizeof err) < 0)
				die("%s: %s", pl->path, err);
		}
		if (gp_workload_add(pl->wtyp, r, sh[i].count) < 0)
			die("%s: cannot add to the workload", pl->path);
		pl->ntyp++;
	}
	gp_request_free(r);
	free(bucket);
	free(sh);
}

/* --- one run ------------------------------------------------------------------ */

static const struct {
	const char *label;
	const char *policy;
} policies[] = {
	{"random-fit", "random"},
	{"best-fit", "bestfit"},
	{"gpu-packing", "packing"},
	{"binpack", "binpack"},
	{"spread", "spread"},
	{"fgd", "fgd"},
	{"ours", "ours"},
	/* not run unless named: fgd as this library had it before it
	 * followed the paper's simulator (exact growth, random ties, every
	 * pod shape in the workload) */
	{"fgd-exact", "fgd"},
};
#define POL_FGD 5
#define POL_OURS 6
#define POL_FGD_EXACT 7
#define NPOL (sizeof policies / sizeof *policies)

struct result {
	double alloc_fail;      /* share of GPU capacity at the first failure */
	double alloc_100;       /* share allocated at 100 % arrived */
	unsigned arrived, placed, failed;
	double *lat;            /* ns per decision */
	size_t nlat;
	double *cold;
	size_t ncold;
	unsigned mismatch;      /* cold decision cost differs from cached */
};

struct job {
	struct plist *list;
	unsigned pol, seed;
	unsigned scale;         /* the node list this many times */
	struct result res;
};

static bool g_ignore_mem; /* the paper's simulator: no host memory */
static const struct tnode *g_nodes;
static size_t g_nnodes;
static uint64_t g_capacity; /* percent units, one copy of the node list */
static unsigned g_scale = 1; /* --scale */

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The cluster: the node list `scale` times.  Names follow the paper's
 * simulator (syncClusterResourceList in its pkg/simulator/simulator.go):
 * the nodes, sorted by name, get a prefix "%04d-" from a random
 * permutation, seeded per run, so that its tie-break (the smallest name
 * among the best scores) is a random but fixed order of the nodes.  Our
 * permutation generator is not Go's, so the order differs from theirs
 * seed by seed; over ten seeds that is noise.  Copies past the first get
 * "-r<k>" appended, and the prefix widens past 10,000 nodes. */
static struct gp_node **build_cluster(unsigned scale, unsigned seed)
{
	size_t total = g_nnodes * scale;
	struct gp_node **nodes = calloc(total, sizeof *nodes);
	size_t *perm = malloc(total * sizeof *perm);
	uint64_t rng = 0x9a3e0000ull + seed;
	int width = 4;

	if (!nodes || !perm)
		die("out of memory");
	for (size_t k = 10000; k < total; k *= 10)
		width++;
	for (size_t i = 0; i < total; i++)
		perm[i] = i;
	for (size_t i = total; i > 1; i--) {
		size_t j = rnd(&rng) % i, t = perm[i - 1];

		perm[i - 1] = perm[j];
		perm[j] = t;
	}
	for (size_t i = 0; i < total; i++) {
		const struct tnode *t = &g_nodes[i % g_nnodes];
		char err[GP_REASON_MAX], name[GP_NAME_MAX + 48];

		if (i < g_nnodes)
			snprintf(name, sizeof name, "%0*zu-%s", width, perm[i], t->name);
		else
			snprintf(name, sizeof name, "%0*zu-%s-r%zu", width, perm[i], t->name, i / g_nnodes);
		if (strlen(name) >= GP_NAME_MAX)
			die("node %s: name too long with its prefix", t->name);
		if (gp_node_new(&nodes[i], name, t->cpu, 0, g_ignore_mem ? 0 : t->mem, 0) < 0)
			die("node %s: cannot build", t->name);
		for (unsigned g = 0; g < t->gpus; g++) {
			struct gp_gpu gpu = {
				.model = t->model,
				.mem_bytes = model_mem(t->model),
				.compute = 100,
				.slices = 100,
				.numa = (int)(g * 2 / (t->gpus ? t->gpus : 1)),
			};

			if (gp_node_add_gpu(nodes[i], &gpu, err, sizeof err) < 0)
				die("node %s: %s", t->name, err);
		}
	}
	free(perm);
	return nodes;
}

static void run(struct job *j)
{
	struct gp_node **nodes = build_cluster(j->scale, j->seed);
	size_t nnodes = g_nnodes * j->scale;
	uint64_t capacity = g_capacity * j->scale;
	const struct gp_workload *w = j->pol == POL_FGD ? j->list->wtyp : j->list->w;
	struct gp_policy pol;
	struct gp_placer *pl, *cold = NULL;
	struct gp_request *r;
	struct gp_decision d, dc;
	uint64_t rng = 0x51ce0000ull + j->seed, arrived = 0, alloc = 0;
	char err[GP_REASON_MAX];
	size_t latcap = 4096, coldcap = 256;
	bool failed = false;
	bool frag = strcmp(policies[j->pol].policy, "fgd") == 0 || strcmp(policies[j->pol].policy, "ours") == 0;

	if (gp_policy_parse(policies[j->pol].policy, &pol, err, sizeof err) < 0)
		die("policy %s: %s", policies[j->pol].policy, err);
	if (gp_placer_new(&pl, &pol, w) < 0 || gp_request_new(&r) < 0)
		die("out of memory");
	gp_placer_seed(pl, 1000 + j->seed);
	gp__placer_fgd_exact(pl, j->pol == POL_FGD_EXACT);
	if (frag) {
		if (gp_placer_new(&cold, &pol, w) < 0)
			die("out of memory");
		gp__placer_cache(cold, false);
		gp__placer_fgd_exact(cold, j->pol == POL_FGD_EXACT);
	}
	j->res.lat = malloc(latcap * sizeof *j->res.lat);
	j->res.cold = malloc(coldcap * sizeof *j->res.cold);
	if (!j->res.lat || !j->res.cold)
		die("out of memory");
	while (arrived < capacity) {
		const struct tpod *t = &j->list->pods[rnd(&rng) % j->list->npods];
		double t0, t1;
		uint64_t rng0;

		gp_request_reset(r);
		gp_request_set_host(r, t->cpu, t->mem);
		if (t->gpus) {
			struct gp_ctr c = {.gpus = t->gpus, .compute = t->pct, .types = t->spec};

			if (gp_request_add_container(r, &c, err, sizeof err) < 0)
				die("pod: %s", err);
		}
		arrived += (uint64_t)t->gpus * t->pct;
		j->res.arrived++;
		rng0 = gp__placer_rng(pl, NULL);
		t0 = now_ns();
		if (gp_placer_choose(pl, nodes, nnodes, r, &d) < 0)
			die("gp_placer_choose failed");
		t1 = now_ns();
		if (j->res.nlat == latcap && !(j->res.lat = realloc(j->res.lat, (latcap *= 2) * sizeof(double))))
			die("out of memory");
		j->res.lat[j->res.nlat++] = t1 - t0;
		if (cold && j->res.arrived % COLD_EVERY == 0) {
			gp__placer_rng(cold, &rng0);
			t0 = now_ns();
			if (gp_placer_choose(cold, nodes, nnodes, r, &dc) < 0)
				die("gp_placer_choose failed");
			t1 = now_ns();
			if (j->res.ncold == coldcap &&
			    !(j->res.cold = realloc(j->res.cold, (coldcap *= 2) * sizeof(double))))
				die("out of memory");
			j->res.cold[j->res.ncold++] = t1 - t0;
			if (d.node != dc.node || fabs(d.cost - dc.cost) > 1e-9)
				j->res.mismatch++;
		}
		if (d.node < 0) {
			if (!failed) {
				if (getenv("GP_BENCH_DEBUG"))
					fprintf(stderr, "first fail %s/%s seed %u: cpu %llu mem %llu gpus %u x %u%% spec %s: %s\n",
						j->list->label, policies[j->pol].label, j->seed, (unsigned long long)t->cpu,
						(unsigned long long)(t->mem >> 20), t->gpus, t->pct, t->spec, d.why);
				j->res.alloc_fail = (double)alloc / (double)capacity;
				failed = true;
			}
			j->res.failed++;
			if (getenv("GP_BENCH_DEBUG") && atoi(getenv("GP_BENCH_DEBUG")) >= 2)
				fprintf(stderr, "FAIL %s %s %u gpus=%u pct=%u cpu=%llu mem=%llu at=%.3f %s\n", j->list->label,
					policies[j->pol].label, j->seed, t->gpus, t->pct, (unsigned long long)t->cpu,
					(unsigned long long)(t->mem >> 20), (double)alloc / (double)capacity, d.why);
			continue;
		}
		if (gp_node_commit(nodes[d.node], &d.plan) < 0)
			die("commit refused a plan the placer chose");
		alloc += (uint64_t)t->gpus * t->pct;
		j->res.placed++;
	}
	j->res.alloc_100 = (double)alloc / (double)capacity;
	if (!failed)
		j->res.alloc_fail = j->res.alloc_100;
	gp_request_free(r);
	gp_placer_free(pl);
	gp_placer_free(cold);
	for (size_t i = 0; i < nnodes; i++)
		gp_node_free(nodes[i]);
	free(nodes);
}

static struct job *jobs;
static size_t njobs, next_job;
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		size_t i;

		pthread_mutex_lock(&job_lock);
		i = next_job++;
		pthread_mutex_unlock(&job_lock);
		if (i >= njobs)
			return NULL;
		run(&jobs[i]);
	}
}

/* --- report ------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return NAN;
	qsort(v, n, sizeof *v, cmp_double);
	i = (size_t)ceil(q * (double)n) - 1;
	if (i >= n)
		i = n - 1;
	return v[i];
}

struct stat2 {
	double mean, sd;
};

static struct stat2 mean_sd(const double *v, unsigned n)
{
	struct stat2 s = {0, 0};

	for (unsigned i = 0; i < n; i++)
		s.mean += v[i];
	s.mean /= n;
	for (unsigned i = 0; i < n; i++)
		s.sd += (v[i] - s.mean) * (v[i] - s.mean);
	s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0;
	return s;
}

/* Latency of the runs on one copy of the node list and on g_scale copies,
 * per list and policy: median and 99th percentile per decision, and their
 * ratios.  Printed, and returned as JSON. */
static json_t *scale_report(struct plist *lists, unsigned nlists, const bool *use)
{
	json_t *arr = json_array(), *root = json_object();

	printf("\n  decision latency at %u x the node list (%zu nodes) against 1 x (%zu), us\n", g_scale,
	       g_nnodes * g_scale, g_nnodes);
	printf("  %-12s %-12s %9s %9s %9s %9s %7s %7s %8s\n", "list", "policy", "p50 1x", "p99 1x", "p50 Nx", "p99 Nx",
	       "p50 N/1", "p99 N/1", "mismatch");
	for (unsigned l = 0; l < nlists; l++)
		for (unsigned p = 0; p < NPOL; p++) {
			double q[2][2];
			unsigned mism = 0; /* cached against cold, at both sizes */
			json_t *o;

			if (!use[p])
				continue;
			for (int k = 0; k < 2; k++) {
				unsigned sc = k ? g_scale : 1;
				size_t n = 0;
				double *v;

				for (size_t i = 0; i < njobs; i++)
					if (jobs[i].list == &lists[l] && jobs[i].pol == p && jobs[i].scale == sc)
						n += jobs[i].res.nlat;
				if (!(v = malloc((n + 1) * sizeof *v)))
					die("out of memory");
				n = 0;
				for (size_t i = 0; i < njobs; i++)
					if (jobs[i].list == &lists[l] && jobs[i].pol == p && jobs[i].scale == sc) {
						memcpy(v + n, jobs[i].res.lat, jobs[i].res.nlat * sizeof *v);
						n += jobs[i].res.nlat;
						mism += jobs[i].res.mismatch;
					}
				q[k][0] = pct(v, n, 0.5) / 1e3;
				q[k][1] = pct(v, n, 0.99) / 1e3;
				free(v);
			}
			printf("  %-12s %-12s %9.1f %9.1f %9.1f %9.1f %7.2f %7.2f %8u\n", lists[l].label, policies[p].label,
			       q[0][0], q[0][1], q[1][0], q[1][1], q[1][0] / q[0][0], q[1][1] / q[0][1], mism);
			o = json_object();
			json_object_set_new(o, "list", json_string(lists[l].label));
			json_object_set_new(o, "policy", json_string(policies[p].label));
			json_object_set_new(o, "decision_us_p50_1x", json_real(q[0][0]));
			json_object_set_new(o, "decision_us_p99_1x", json_real(q[0][1]));
			json_object_set_new(o, "cache_mismatches", json_integer(mism));
			json_object_set_new(o, "decision_us_p50_nx", json_real(q[1][0]));
			json_object_set_new(o, "decision_us_p99_nx", json_real(q[1][1]));
			json_object_set_new(o, "ratio_p50", json_real(q[1][0] / q[0][0]));
			json_object_set_new(o, "ratio_p99", json_real(q[1][1] / q[0][1]));
			json_array_append_new(arr, o);
		}
	json_object_set_new(root, "factor", json_integer(g_scale));
	json_object_set_new(root, "nodes", json_integer((json_int_t)(g_nnodes * g_scale)));
	json_object_set_new(root, "runs", arr);
	return root;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: placement --nodes FILE --pods FILE [--pods FILE ...] [--seeds N]\n"
		"                 [--policies LIST] [--jobs N] [--ignore-memory] [--scale N]\n"
		"                 [--json FILE]\n\n"
		"Replays tasks sampled from each pod list against a cluster built from the\n"
		"node list, once per seed and policy, until the GPUs requested reach the\n"
		"cluster's GPU capacity; prints the allocation at the first failure, the\n"
		"unallocated GPUs at 100%% arrived workload and the decision latency.\n\n"
		"  --nodes FILE     node list: sn,cpu_milli,memory_mib,gpu,model\n"
		"  --pods FILE      pod list: name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec,...]\n"
		"                   (repeat for several lists)\n"
		"  --seeds N        runs per list and policy, seeds 1..N (default 10, at most %u)\n"
		"  --policies LIST  comma list of random-fit,best-fit,gpu-packing,binpack,spread,fgd,ours,\n"
		"                   fgd-exact (default all but fgd-exact)\n"
		"  --jobs N         runs in parallel (default: online CPUs, at most 16)\n"
		"  --ignore-memory  do not track host memory in the fit (the paper's simulator does)\n"
		"  --scale N        also run on the node list N times, and compare decision latency\n"
		"  --json FILE      also write the results as JSON\n",
		MAX_SEEDS);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"nodes", required_argument, NULL, 'n'}, {"pods", required_argument, NULL, 'p'},
		{"seeds", required_argument, NULL, 's'}, {"policies", required_argument, NULL, 'P'},
		{"jobs", required_argument, NULL, 'j'},  {"json", required_argument, NULL, 'o'},
		{"ignore-memory", no_argument, NULL, 'm'}, {"help", no_argument, NULL, 'h'},
		{"scale", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	const char *nodes_path = NULL, *json_path = NULL;
	struct plist lists[MAX_LISTS];
	unsigned nlists = 0, seeds = 10, nthreads;
	bool use[NPOL];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int c;
	uint64_t gpus = 0;
	json_t *root, *jl;
	pthread_t th[16];

	nthreads = ncpu > 0 ? (unsigned)(ncpu > 16 ? 16 : ncpu) : 1;
	for (size_t i = 0; i < NPOL; i++)
		use[i] = i != POL_FGD_EXACT;
	memset(lists, 0, sizeof lists);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			nodes_path = optarg;
			break;
		case 'p':
			if (nlists == MAX_LISTS)
				die("--pods: at most %d lists", MAX_LISTS);
			lists[nlists++].path = optarg;
			break;
		case 's': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > (long)MAX_SEEDS) {
				fprintf(stderr, "placement: --seeds: \"%s\" is not a number in 1..%u\n", optarg, MAX_SEEDS);
				return 2;
			}
			seeds = (unsigned)v;
			break;
		}
		case 'j': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 16) {
				fprintf(stderr, "placement: --jobs: \"%s\" is not a number in 1..16\n", optarg);
				return 2;
			}
			nthreads = (unsigned)v;
			break;
		}
		case 'P': {
			const char *cur = optarg, *item;
			size_t len;

			for (size_t i = 0; i < NPOL; i++)
				use[i] = false;
			while ((item = gp_list_next(&cur, ',', &len))) {
				size_t i;

				for (i = 0; i < NPOL; i++)
					if (strlen(policies[i].label) == len && strncmp(item, policies[i].label, len) == 0)
						break;
				if (i == NPOL) {
					fprintf(stderr, "placement: --policies: unknown policy \"%.*s\"\n", (int)len, item);
					return 2;
				}
				use[i] = true;
			}
			break;
		}
		case 'o':
			json_path = optarg;
			break;
		case 'S': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 100) {
				fprintf(stderr, "placement: --scale: \"%s\" is not a number in 1..100\n", optarg);
				return 2;
			}
			g_scale = (unsigned)v;
			break;
		}
		case 'm':
			g_ignore_mem = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !nodes_path || nlists == 0) {
		fprintf(stderr, "placement: %s\n",
			optind < argc ? "unexpected argument" : !nodes_path ? "--nodes is required" : "--pods is required");
		usage(stderr);
		return 2;
	}
	g_nodes = load_nodes(nodes_path, &g_nnodes);
	for (size_t i = 0; i < g_nnodes; i++)
		gpus += g_nodes[i].gpus;
	g_capacity = gpus * 100;
	if (gpus == 0)
		die("%s: no GPUs in the cluster", nodes_path);
	if ((uint64_t)g_nnodes * g_scale > MAX_NODES * 10ull)
		die("--scale %u: more than %u nodes", g_scale, MAX_NODES * 10);
	for (unsigned l = 0; l < nlists; l++) {
		load_pods(&lists[l]);
		typical_pods(&lists[l]);
	}

	njobs = 0;
	jobs = calloc((size_t)nlists * NPOL * seeds * 2, sizeof *jobs);
	if (!jobs)
		die("out of memory");
	/* with --scale N, every run also on the node list N times: the same
	 * seeds, in the same process, so that the two latencies compare */
	for (unsigned l = 0; l < nlists; l++)
		for (unsigned p = 0; p < NPOL; p++)
			for (unsigned s = 1; s <= seeds && use[p]; s++) {
				jobs[njobs++] = (struct job){.list = &lists[l], .pol = p, .seed = s, .scale = 1};
				if (g_scale > 1)
					jobs[njobs++] = (struct job){.list = &lists[l], .pol = p, .seed = s, .scale = g_scale};
			}
	/* the slow policies first, so the threads finish together */
	for (size_t i = 0, k = 0; i < njobs; i++)
		if (jobs[i].pol >= 5) {
			struct job t = jobs[k];

			jobs[k++] = jobs[i];
			jobs[i] = t;
		}
	if (nthreads > njobs)
		nthreads = (unsigned)njobs;
	for (unsigned t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, worker, NULL) != 0)
			die("cannot start a thread");
	for (unsigned t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);

	root = json_object();
	jl = json_array();
	json_object_set_new(root, "benchmark", json_string("placement"));
	json_object_set_new(root, "nodes_file", json_string(nodes_path));
	json_object_set_new(root, "nodes", json_integer((json_int_t)g_nnodes));
	json_object_set_new(root, "gpus", json_integer((json_int_t)gpus));
	json_object_set_new(root, "seeds", json_integer(seeds));
	json_object_set_new(root, "threads", json_integer(nthreads));
	json_object_set_new(root, "host_memory", json_boolean(!g_ignore_mem));
	{
		char date[32];
		time_t now = time(NULL);
		struct tm tm;

		strftime(date, sizeof date, "%Y-%m-%d", gmtime_r(&now, &tm));
		json_object_set_new(root, "date", json_string(date));
	}
	json_object_set_new(root, "procedure",
			    json_string("tasks sampled with replacement from the pod list arrive until the GPUs "
					"requested by arrived tasks reach the cluster's GPU capacity; a task no node "
					"takes is dropped"));
	printf("\nplacement: %zu nodes, %llu GPUs, %u seed%s; mean (sd) over seeds\n", g_nnodes,
	       (unsigned long long)gpus, seeds, seeds == 1 ? "" : "s");
	for (unsigned l = 0; l < nlists; l++) {
		json_t *jlist = json_object(), *jp = json_object();

		printf("\n  %s (%zu pods, %u task types; fgd: %u typical shapes)\n", lists[l].label, lists[l].npods,
		       gp_workload_types(lists[l].w), lists[l].ntyp);
		printf("  %-12s %15s %23s %10s %10s %10s\n", "policy", "alloc@fail %", "unalloc@100% GPUs (%)",
		       "p50 us", "p99 us", "cold p50");
		for (unsigned p = 0; p < NPOL; p++) {
			double af[MAX_SEEDS], a100[MAX_SEEDS], *lat, *cold;
			size_t nlat = 0, ncold = 0, k = 0;
			unsigned mism = 0, failed = 0;
			struct stat2 sf, s100;
			json_t *jr;

			if (!use[p])
				continue;
			for (size_t i = 0; i < njobs; i++)
				if (jobs[i].list == &lists[l] && jobs[i].pol == p && jobs[i].scale == 1) {
					nlat += jobs[i].res.nlat;
					ncold += jobs[i].res.ncold;
				}
			lat = malloc((nlat + 1) * sizeof *lat);
			cold = malloc((ncold + 1) * sizeof *cold);
			if (!lat || !cold)
				die("out of memory");
			nlat = ncold = 0;
			for (size_t i = 0; i < njobs; i++) {
				struct result *rs = &jobs[i].res;

				if (jobs[i].list != &lists[l] || jobs[i].pol != p || jobs[i].scale != 1)
					continue;
				/* by seed, so that lists of two policies pair up */
				af[jobs[i].seed - 1] = rs->alloc_fail * 100;
				a100[jobs[i].seed - 1] = (1 - rs->alloc_100) * 100;
				k++;
				memcpy(lat + nlat, rs->lat, rs->nlat * sizeof *lat);
				nlat += rs->nlat;
				memcpy(cold + ncold, rs->cold, rs->ncold * sizeof *cold);
				ncold += rs->ncold;
				mism += rs->mismatch;
				failed += rs->failed;
			}
			sf = mean_sd(af, (unsigned)k);
			s100 = mean_sd(a100, (unsigned)k);
			{
				double p50 = pct(lat, nlat, 0.5) / 1e3, p99 = pct(lat, nlat, 0.99) / 1e3;
				double c50 = ncold ? pct(cold, ncold, 0.5) / 1e3 : NAN;
				char cbuf[16];

				if (ncold)
					snprintf(cbuf, sizeof cbuf, "%10.0f", c50);
				else
					snprintf(cbuf, sizeof cbuf, "%10s", "-");
				printf("  %-12s %7.2f (%5.2f) %8.1f (%4.1f) %5.2f%% %10.1f %10.1f %s\n", policies[p].label,
				       sf.mean, sf.sd, s100.mean * (double)gpus / 100, s100.sd * (double)gpus / 100,
				       s100.mean, p50, p99, cbuf);
				jr = json_object();
				json_object_set_new(jr, "alloc_at_first_failure_pct", json_real(sf.mean));
				json_object_set_new(jr, "alloc_at_first_failure_sd", json_real(sf.sd));
				json_object_set_new(jr, "unallocated_at_100pct_gpus", json_real(s100.mean * (double)gpus / 100));
				json_object_set_new(jr, "unallocated_at_100pct_pct", json_real(s100.mean));
				json_object_set_new(jr, "unallocated_at_100pct_sd_pct", json_real(s100.sd));
				json_object_set_new(jr, "decision_us_p50", json_real(p50));
				json_object_set_new(jr, "decision_us_p99", json_real(p99));
				if (ncold)
					json_object_set_new(jr, "decision_cold_us_p50", json_real(c50));
				{
					json_t *sf_arr = json_array(), *s100_arr = json_array();

					for (size_t q = 0; q < k; q++) {
						json_array_append_new(sf_arr, json_real(af[q]));
						json_array_append_new(s100_arr, json_real(a100[q] * (double)gpus / 100));
					}
					json_object_set_new(jr, "per_seed_alloc_at_first_failure_pct", sf_arr);
					json_object_set_new(jr, "per_seed_unallocated_at_100pct_gpus", s100_arr);
				}
				json_object_set_new(jr, "decisions", json_integer((json_int_t)nlat));
				json_object_set_new(jr, "failed_tasks", json_integer(failed));
				if (ncold)
					json_object_set_new(jr, "cache_mismatches", json_integer(mism));
				json_object_set_new(jp, policies[p].label, jr);
				if (mism)
					fprintf(stderr, "placement: %s/%s: %u cold decisions disagreed with cached ones\n",
						lists[l].label, policies[p].label, mism);
			}
			free(lat);
			free(cold);
		}
		json_object_set_new(jlist, "list", json_string(lists[l].label));
		json_object_set_new(jlist, "file", json_string(lists[l].path));
		json_object_set_new(jlist, "pods", json_integer((json_int_t)lists[l].npods));
		json_object_set_new(jlist, "policies", jp);
		json_array_append_new(jl, jlist);
	}
	json_object_set_new(root, "lists", jl);
	if (g_scale > 1)
		json_object_set_new(root, "scale", scale_report(lists, nlists, use));
	if (json_path && json_dump_file(root, json_path, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) < 0)
		die("%s: cannot write", json_path);
	json_decref(root);
	for (size_t i = 0; i < njobs; i++) {
		free(jobs[i].res.lat);
		free(jobs[i].res.cold);
	}
	free(jobs);
	for (unsigned l = 0; l < nlists; l++) {
		free(lists[l].pods);
		gp_workload_free(lists[l].w);
		gp_workload_free(lists[l].wtyp);
	}
	free((void *)g_nodes);
	return 0;
}
