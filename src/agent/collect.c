/* collect.c - see collect.h. */
#include "agent/collect.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"

/* Read a small /proc file into buf (NUL-terminated).  Returns its length
 * or -1. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len;

	if (fd < 0)
		return -1;
	len = read(fd, buf, n - 1);
	close(fd);
	if (len < 0)
		return -1;
	buf[len] = '\0';
	return len;
}

/* The PID a host process has in its own (innermost) PID namespace: the
 * last field of NSpid in /proc/<pid>/status, which is what the library
 * wrote into the region; the host PID itself on kernels without NSpid. */
static int inner_pid(const char *root, unsigned pid)
{
	char path[64], buf[2048];
	const char *p;
	int last = (int)pid;

	snprintf(path, sizeof path, "%s/%u/status", root, pid);
	if (read_small(path, buf, sizeof buf) < 0 || !(p = strstr(buf, "\nNSpid:")))
		return (int)pid;
	p += 7;
	while (*p && *p != '\n') {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		last = (int)v;
		p = end;
	}
	return last;
}

/* Does host process pid's cgroup path name pod uid (kubelet writes the UID
 * with '-' under the cgroupfs driver and '_' under systemd's)? */
static int in_pod(const char *root, unsigned pid, const char *uid)
{
	char path[64], buf[4096], alt[GP_AGENT_NAME_MAX];

	snprintf(path, sizeof path, "%s/%u/cgroup", root, pid);
	if (read_small(path, buf, sizeof buf) < 0)
		return 0;
	snprintf(alt, sizeof alt, "%s", uid);
	for (char *q = alt; *q; q++)
		if (*q == '-')
			*q = '_';
	return strstr(buf, uid) || strstr(buf, alt);
}

static int has_pid(const struct gp_agent_tenant *t, int pid)
{
	for (unsigned i = 0; i < t->nproc; i++)
		if (t->pids[i] == pid)
			return 1;
	return 0;
}

/* Which tenant NVML's process `pid` belongs to: the one tenant with that
 * PID among its live processes, using the cgroup to choose when tenants
 * in different PID namespaces share the number.  -1 when unknown. */
static int owner(const struct gp_collect *c, const struct gp_agent_snap *s, unsigned pid)
{
	int inner = inner_pid(c->proc_root, pid), found = -1, n = 0;

	for (unsigned t = 0; t < s->ntenant; t++) {
		if (!has_pid(&s->tenant[t], inner))
			continue;
		n++;
		found = (int)t;
	}
	if (n <= 1)
		return found;
	found = -1;
	n = 0;
	for (unsigned t = 0; t < s->ntenant; t++) {
		if (has_pid(&s->tenant[t], inner) && in_pod(c->proc_root, pid, s->tenant[t].uid)) {
			n++;
			found = (int)t;
		}
	}
	return n == 1 ? found : -1;
}

static int gpu_of(const struct gp_agent_snap *s, const char *uuid)
{
	for (unsigned i = 0; i < s->ngpu; i++)
		if (strcasecmp(s->gpu[i].uuid, uuid) == 0)
			return (int)i;
	return -1;
}

/* Join tenants to cards, processes and utilization samples. */
static void join(const struct gp_collect *c, struct gp_agent_snap *s,
		 const struct gp_pid_util *util, size_t nutil)
{
	for (unsigned t = 0; t < s->ntenant; t++) {
		struct gp_agent_tenant *tn = &s->tenant[t];

		for (unsigned k = 0; k < tn->ngpu; k++)
			tn->gpu[k].gpu = gpu_of(s, tn->gpu[k].uuid);
		if (c->pod)
			c->pod(c->pod_arg, tn->uid, tn->ns, tn->pod, &tn->exempt);
	}
	for (unsigned i = 0; i < s->ngpu; i++) {
		struct gp_agent_gpu *g = &s->gpu[i];

		for (unsigned p = 0; p < g->nproc; p++) {
			int t = owner(c, s, g->proc[p].pid);
			unsigned sm = 0;

			g->proc[p].tenant = t;
			if (t < 0)
				continue;
			for (size_t u = 0; u < nutil; u++)
				if (util[u].pid == g->proc[p].pid && util[u].gpu == i)
					sm = util[u].sm;
			for (unsigned k = 0; k < s->tenant[t].ngpu; k++) {
				struct gp_agent_tgpu *tg = &s->tenant[t].gpu[k];

				if (tg->gpu != (int)i)
					continue;
				tg->util = (tg->util < 0 ? 0 : tg->util) + (int)sm;
				if (tg->util > 100)
					tg->util = 100;
			}
		}
	}
	/* A tenant with a process on a card NVML answers for has a known
	 * share, 0 included; left at -1 only where NVML could not say. */
	for (unsigned t = 0; t < s->ntenant; t++)
		for (unsigned k = 0; k < s->tenant[t].ngpu; k++) {
			struct gp_agent_tgpu *tg = &s->tenant[t].gpu[k];

			if (tg->util < 0 && tg->gpu >= 0 && s->gpu[tg->gpu].util >= 0)
				tg->util = 0;
		}
}

/* bsearch order of tenants: pod UID, then container (tenants.c reads
 * them in that order). */
static int by_name(const void *a, const void *b)
{
	const struct gp_agent_tenant *x = a, *y = b;
	int c = strcmp(x->uid, y->uid);

	return c ? c : strcmp(x->container, y->container);
}

/* A counter's rate between two readings `dt_ns` apart, in percent of that
 * time, to a tenth; -1 when it went backwards (a file forged or
 * rewritten).  Capped, so that a forged figure stays a number. */
static double rate_pct(uint64_t now, uint64_t then, uint64_t dt_ns)
{
	double pct;

	if (now < then)
		return -1;
	pct = (double)(now - then) / (double)dt_ns * 100.0;
	if (pct > 1e6)
		pct = 1e6;
	return (double)(uint64_t)(pct * 10.0 + 0.5) / 10.0;
}

/* Each metered tenant card's compute and throttled rates since the
 * previous snapshot p: what `gpupool top` shows as the share of the card
 * the tenant used over the last interval.  A tenant card p does not have,
 * or whose region was made again since (another id: its counters started
 * over), stays unknown until the next collection. */
static void rates(struct gp_agent_snap *s, const struct gp_agent_snap *p)
{
	uint64_t dt;

	if (!p || s->mono_ns <= p->mono_ns || !p->ntenant)
		return;
	dt = s->mono_ns - p->mono_ns;
	for (unsigned t = 0; t < s->ntenant; t++) {
		struct gp_agent_tenant *tn = &s->tenant[t];
		const struct gp_agent_tenant *old =
			bsearch(tn, p->tenant, p->ntenant, sizeof *p->tenant, by_name);

		if (!old || old->region_id != tn->region_id)
			continue;
		for (unsigned k = 0; k < tn->ngpu; k++) {
			struct gp_agent_tgpu *g = &tn->gpu[k];

			if (!g->metered)
				continue;
			for (unsigned j = 0; j < old->ngpu; j++) {
				const struct gp_agent_tgpu *og = &old->gpu[j];

				if (strcmp(og->uuid, g->uuid) != 0)
					continue;
				g->compute_pct = rate_pct(g->compute_ns, og->compute_ns, dt);
				g->throttled_pct = rate_pct(g->throttled_ns, og->throttled_ns, dt);
				break;
			}
		}
	}
}

int gp_collect(struct gp_collect *c, struct gp_agent_snap **out,
	       struct gp_tenant_stale **stale, size_t *nstale)
{
	struct gp_agent_snap *s = gp_snap_new();
	struct gp_pid_util *util = NULL;
	size_t nutil = 0;
	uint64_t t0 = gp_now_ns();
	int rc = 0;

	*stale = NULL;
	*nstale = 0;
	if (!s)
		return -ENOMEM;
	snprintf(s->node, sizeof s->node, "%s", c->node ? c->node : "");
	if (c->gpus) {
		s->nvml_ok = 1;
		rc = gp_gpus_collect(c->gpus, s, &util, &nutil);
	} else {
		snprintf(s->nvml_err, sizeof s->nvml_err, "%s",
			 c->nvml_err ? c->nvml_err : "NVML is not loaded");
	}
	/* Region times are compared with this instant: take it after the
	 * regions are read, so no activity is in the future. */
	if (!rc && !c->tenants)
		rc = gp_tenants_open(&c->tenants, c->state_dir, c->max_tenants);
	if (!rc)
		rc = gp_tenants_scan(c->tenants, s, stale, nstale);
	s->mono_ns = gp_now_ns();
	s->wall_ns = gp_wall_ns();
	if (!rc) {
		join(c, s, util, nutil);
		rates(s, c->prev);
	}
	free(util);
	s->took_ns = gp_now_ns() - t0;
	if (rc) {
		gp_snap_unref(s);
		free(*stale);
		*stale = NULL;
		*nstale = 0;
		return rc;
	}
	gp_snap_unref(c->prev);
	c->prev = gp_snap_ref(s);
	*out = s;
	return 0;
}

void gp_collect_done(struct gp_collect *c)
{
	gp_tenants_close(c->tenants);
	c->tenants = NULL;
	gp_snap_unref(c->prev);
	c->prev = NULL;
}
