/* tenants.c - see tenants.h. */
#include "agent/tenants.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/lease.h"
#include "common/log.h"
#include "region/read.h"

#define MAX_PODS 8192        /* pod directories looked at per scan */
#define MAX_CONTAINERS 64    /* containers looked at per pod */
#define MAX_DEPTH 8          /* directories a removal descends into */
#define MAX_ENTRIES 4096     /* entries a removal deletes per directory */

int gp_tenants_name_ok(const char *s)
{
	size_t n = 0;

	if (!s || !*s || *s == '.')
		return 0;
	for (; s[n]; n++) {
		char c = s[n];

		if (n >= GP_AGENT_NAME_MAX - 1)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

/* Does any process hold a lease on the file at fd? */
static int held_any(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = GP_LEASE_BASE,
			   .l_len = GP_REGION_MAX_PROCS};

	if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
		return 1; /* cannot tell: assume held, never collect */
	return fl.l_type != F_UNLCK;
}

static int open_dir(int at, const char *name)
{
	return openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Fill t from the region copy c. */
static int fill(struct gp_agent_tenant *t, const struct gp_region_copy *c)
{
	const struct gp_region_hdr *h = &c->hdr;
	unsigned k = 0;

	t->created_wall_ns = h->created_ns;
	t->region_id = h->id;
	t->nproc = c->nlive;
	t->pids = c->nlive ? calloc(c->nlive, sizeof *t->pids) : NULL;
	if (c->nlive && !t->pids)
		return -ENOMEM;
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS && k < c->nlive; i++)
		if (c->live[i / 64] >> (i % 64) & 1)
			t->pids[k++] = h->proc[i].pid;
	t->ngpu = 0;
	for (unsigned d = 0; d < h->ndevs && d < GP_REGION_MAX_DEVS; d++) {
		const struct gp_region_dev *rd = &h->dev[d];
		struct gp_agent_tgpu *g = &t->gpu[t->ngpu];
		uint64_t act = rd->registered_ns;

		if (!rd->uuid[0])
			continue;
		memset(g, 0, sizeof *g);
		g->gpu = -1;
		snprintf(g->uuid, sizeof g->uuid, "%.*s", (int)GP_REGION_UUID_LEN - 1, rd->uuid);
		g->limit = rd->limit;
		g->used = c->live_used[d];
		g->peak = rd->peak;
		g->refused = rd->refused;
		g->core_limit = rd->core_limit > 100 ? 100 : rd->core_limit;
		g->core_policy = rd->core_policy <= GP_REGION_CORE_OFF ? rd->core_policy : -1;
		g->priority = rd->priority <= GP_REGION_PRIO_HIGH ? rd->priority : -1;
		g->compute_ns = rd->compute_ns;
		g->throttled_ns = rd->throttled_ns;
		/* The library meters only tenants with a share or a priority
		 * (gpupool/region.h); figures in the file say so too. */
		g->metered = g->core_limit || rd->priority != GP_REGION_PRIO_NORMAL ||
			     g->compute_ns || g->throttled_ns;
		g->compute_pct = g->throttled_pct = -1;
		g->last_launch_ns = rd->last_launch_ns;
		g->last_copy_ns = rd->last_copy_ns;
		if (g->last_launch_ns > act)
			act = g->last_launch_ns;
		if (g->last_copy_ns > act)
			act = g->last_copy_ns;
		g->active_ns = act;
		g->util = -1;
		t->ngpu++;
	}
	return 0;
}

/* A tenant directory found by the last walk of the tree. */
struct entry {
	char uid[GP_AGENT_NAME_MAX];
	char ctr[GP_AGENT_NAME_MAX];
	int fd;                  /* its region, open; -1 when it could not be */
	int err;                 /* why not: ENOENT (no region yet) or another */
	uint64_t changed_wall_ns; /* the directory's last change */
};

struct gp_tenants {
	char *state_dir;
	unsigned max;            /* regions read at most */
	int ino;                 /* inotify descriptor; -1: walk every time */
	int walked;              /* the entries are current (no event since) */
	struct entry *e;
	size_t n;
	unsigned capped;         /* directories past `max` at the last walk */
	struct gp_region_copy *copy; /* reused for every region */
};

/* Directories watched for any change of their entries. */
#define WATCH (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | \
	       IN_MOVE_SELF | IN_ONLYDIR)

/* Watch the directory open at dfd. */
static void watch(struct gp_tenants *ts, int dfd)
{
	char path[64];

	if (ts->ino < 0)
		return;
	/* Through the descriptor's /proc link (followed: it is the directory
	 * as opened), not the path again, which a rename could redirect. */
	snprintf(path, sizeof path, "/proc/self/fd/%d", dfd);
	if (inotify_add_watch(ts->ino, path, WATCH) < 0) {
		/* Out of watches (fs.inotify.max_user_watches): walk every time. */
		gp_warn("inotify: %s; the tenant tree will be walked at every collection",
			strerror(errno));
		close(ts->ino);
		ts->ino = -1;
	}
}

static void drop_entries(struct gp_tenants *ts)
{
	for (size_t i = 0; i < ts->n; i++)
		if (ts->e[i].fd >= 0)
			close(ts->e[i].fd);
	free(ts->e);
	ts->e = NULL;
	ts->n = 0;
	ts->capped = 0;
}

static int by_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->uid, y->uid);

	return c ? c : strcmp(x->ctr, y->ctr);
}

/* Record container directory uid/ctr (descriptor cfd). */
static int add_entry(struct gp_tenants *ts, int cfd, const char *uid, const char *ctr)
{
	struct entry *m = realloc(ts->e, (ts->n + 1) * sizeof *m), *e;
	struct stat st;

	if (!m)
		return -ENOMEM;
	ts->e = m;
	e = &m[ts->n++];
	snprintf(e->uid, sizeof e->uid, "%.63s", uid); /* names are checked: <= 63 */
	snprintf(e->ctr, sizeof e->ctr, "%.63s", ctr);
	e->changed_wall_ns = fstat(cfd, &st) == 0 ? (uint64_t)st.st_ctim.tv_sec * 1000000000ull +
							    (uint64_t)st.st_ctim.tv_nsec
						  : UINT64_MAX;
	e->fd = openat(cfd, "region", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	e->err = e->fd < 0 ? errno : 0;
	watch(ts, cfd); /* the region appearing or going */
	return 0;
}

/* The containers of one pod directory. */
static int walk_pod(struct gp_tenants *ts, int pfd, const char *uid)
{
	DIR *d = fdopendir(pfd);
	struct dirent *e;
	unsigned seen = 0;
	int rc = 0;

	if (!d) {
		close(pfd);
		return 0;
	}
	watch(ts, pfd);
	while (!rc && (e = readdir(d)) && seen < MAX_CONTAINERS) {
		int cfd;

		if (!gp_tenants_name_ok(e->d_name))
			continue;
		seen++;
		if (ts->n >= ts->max) {
			ts->capped++;
			continue;
		}
		cfd = open_dir(dirfd(d), e->d_name);
		if (cfd < 0)
			continue;
		rc = add_entry(ts, cfd, uid, e->d_name);
		close(cfd);
	}
	closedir(d);
	return rc;
}

/* Walk tenants/ again: every directory, its region opened once. */
static int walk(struct gp_tenants *ts)
{
	struct dirent *e;
	unsigned seen = 0;
	DIR *d;
	int sfd, tfd, rc = 0;

	drop_entries(ts);
	sfd = open(ts->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return errno == ENOENT ? 0 : -errno;
	tfd = open_dir(sfd, "tenants");
	close(sfd);
	if (tfd < 0)
		return errno == ENOENT ? 0 : -errno;
	watch(ts, tfd);
	d = fdopendir(tfd);
	if (!d) {
		close(tfd);
		return -errno;
	}
	while (!rc && (e = readdir(d)) && seen < MAX_PODS) {
		int pfd;

		if (!gp_tenants_name_ok(e->d_name))
			continue;
		seen++;
		pfd = open_dir(dirfd(d), e->d_name);
		if (pfd >= 0)
			rc = walk_pod(ts, pfd, e->d_name);
	}
	closedir(d);
	if (rc)
		return rc;
	qsort(ts->e, ts->n, sizeof *ts->e, by_entry);
	/* Current until an event says otherwise; without a tenants/ yet (or
	 * without inotify) the next collection looks again. */
	ts->walked = ts->ino >= 0;
	return 0;
}

/* Did anything change in the watched tree?  Drains the events. */
static int changed(struct gp_tenants *ts)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int any = 0;

	if (ts->ino < 0)
		return 1;
	while (read(ts->ino, buf, sizeof buf) > 0)
		any = 1;
	return any;
}

int gp_tenants_open(struct gp_tenants **out, const char *state_dir, unsigned max)
{
	struct gp_tenants *ts = calloc(1, sizeof *ts);

	if (!ts || !(ts->state_dir = strdup(state_dir)) || !(ts->copy = malloc(sizeof *ts->copy))) {
		if (ts)
			free(ts->state_dir);
		free(ts);
		return -ENOMEM;
	}
	ts->max = max ? max : 1;
	ts->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ts->ino < 0)
		gp_warn("inotify: %s; the tenant tree will be walked at every collection",
			strerror(errno));
	*out = ts;
	return 0;
}

void gp_tenants_close(struct gp_tenants *ts)
{
	if (!ts)
		return;
	drop_entries(ts);
	if (ts->ino >= 0)
		close(ts->ino);
	free(ts->copy);
	free(ts->state_dir);
	free(ts);
}

static int add_stale(struct gp_tenant_stale **v, size_t *n, const struct entry *e)
{
	struct gp_tenant_stale *m = realloc(*v, (*n + 1) * sizeof **v);

	if (!m)
		return -ENOMEM;
	*v = m;
	memcpy(m[*n].uid, e->uid, sizeof m->uid);
	memcpy(m[*n].container, e->ctr, sizeof m->container);
	m[*n].changed_wall_ns = e->changed_wall_ns;
	(*n)++;
	return 0;
}

/* Read entry e's region into the next tenant of s, or count it. */
static int read_entry(struct gp_tenants *ts, const struct entry *e, struct gp_agent_snap *s,
		      unsigned *cap, struct gp_tenant_stale **stale, size_t *nstale)
{
	struct gp_agent_tenant *t;
	int rc;

	if (e->fd < 0) {
		/* No region: no process of it has used CUDA (yet). */
		if (e->err == ENOENT)
			return add_stale(stale, nstale, e);
		s->skipped++;
		return 0;
	}
	rc = gp_region_read(e->fd, ts->copy);
	if (rc) {
		s->skipped++;
		return held_any(e->fd) ? 0 : add_stale(stale, nstale, e);
	}
	if (s->ntenant == *cap) {
		unsigned c = *cap ? *cap * 2 : 16;

		t = realloc(s->tenant, c * sizeof *t);
		if (!t)
			return -ENOMEM;
		s->tenant = t;
		*cap = c;
	}
	t = &s->tenant[s->ntenant];
	memset(t, 0, sizeof *t);
	memcpy(t->uid, e->uid, sizeof t->uid);
	memcpy(t->container, e->ctr, sizeof t->container);
	rc = fill(t, ts->copy);
	if (rc)
		return rc;
	s->ntenant++;
	return ts->copy->nlive ? 0 : add_stale(stale, nstale, e);
}

int gp_tenants_scan(struct gp_tenants *ts, struct gp_agent_snap *s,
		    struct gp_tenant_stale **stale, size_t *nstale)
{
	unsigned cap = 0;
	int rc = 0;

	*stale = NULL;
	*nstale = 0;
	s->ntenant = s->skipped = 0;
	s->tenant = NULL;
	if (!ts->walked || changed(ts))
		rc = walk(ts);
	s->capped = ts->capped;
	for (size_t i = 0; !rc && i < ts->n; i++)
		rc = read_entry(ts, &ts->e[i], s, &cap, stale, nstale);
	if (rc) {
		/* Walk again next time: the entries may be half made. */
		ts->walked = 0;
		free(*stale);
		*stale = NULL;
		*nstale = 0;
	}
	return rc;
}

/* Delete everything in directory fd (not following links), depth-limited. */
static int empty_dir(int fd, int depth)
{
	DIR *d;
	struct dirent *e;
	unsigned n = 0;
	int rc = 0, dup_fd = dup(fd);

	if (dup_fd < 0)
		return -errno;
	d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return -errno;
	}
	while ((e = readdir(d)) && n++ < MAX_ENTRIES) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, e->d_name, 0) == 0)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			rc = -errno;
			continue;
		}
		int sub = depth < MAX_DEPTH ? open_dir(fd, e->d_name) : -1;

		if (sub < 0) {
			rc = -ELOOP;
			continue;
		}
		int r = empty_dir(sub, depth + 1);

		close(sub);
		if (!r && unlinkat(fd, e->d_name, AT_REMOVEDIR) != 0)
			r = -errno;
		if (r)
			rc = r;
	}
	closedir(d);
	return rc;
}

int gp_tenants_remove(const char *state_dir, const char *uid, const char *container)
{
	int sfd = -1, tfd = -1, pfd = -1, cfd = -1, rfd, rc;

	if (!gp_tenants_name_ok(uid) || !gp_tenants_name_ok(container))
		return -EINVAL;
	sfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || (tfd = open_dir(sfd, "tenants")) < 0 || (pfd = open_dir(tfd, uid)) < 0 ||
	    (cfd = open_dir(pfd, container)) < 0) {
		rc = -errno;
		goto out;
	}
	/* Last look: a process that took the region since the scan wins. */
	rfd = openat(cfd, "region", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (rfd >= 0) {
		int held = held_any(rfd);

		close(rfd);
		if (held) {
			rc = -EBUSY;
			goto out;
		}
	}
	rc = empty_dir(cfd, 0);
	if (!rc && unlinkat(pfd, container, AT_REMOVEDIR) != 0)
		rc = -errno;
	if (!rc)
		(void)unlinkat(tfd, uid, AT_REMOVEDIR); /* fails while others remain */
out:
	if (cfd >= 0)
		close(cfd);
	if (pfd >= 0)
		close(pfd);
	if (tfd >= 0)
		close(tfd);
	if (sfd >= 0)
		close(sfd);
	return rc;
}
