/* extender.c - the extender daemon: its HTTP verbs and its life.
 *
 * kube-scheduler POSTs ExtenderArgs to /filter and /prioritize and
 * ExtenderBindingArgs to /bind, with the exact JSON of its extender v1 API
 * (k8s.io/kube-scheduler/extender/v1): PascalCase keys, null for absent
 * lists.  Answers are ExtenderFilterResult, HostPriorityList and
 * ExtenderBindingResult in the same shape.
 *
 * Input we cannot read (not JSON, a required key missing or of the wrong
 * type, a key that differs from a known one only in case, more candidates
 * than --max-nodes, a body over --max-body) is answered 400 with
 * {"Error": why}: that is a caller's bug.  A pod whose GPU request we
 * cannot read is answered 200 with Error set: kube-scheduler then reports
 * it on the pod.  Other unknown keys are ignored: kube-scheduler may add
 * fields that do not concern us.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "net/http.h"
#include "net/loop.h"
#include "net/work.h"
#include "sched/extender_int.h"

/* Binds and preemptions at once: each mostly waits on the API server. */
#define WORKERS 16

static void reply_error(struct gp_http_req *rq, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Answer {"Error": why}: the shape of every extender result that has one. */
static void reply_error(struct gp_http_req *rq, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	gp_utf8_fix(msg); /* may quote the request, or be cut mid-character */
	gp_info("%s %s: %d %s", gp_http_method(rq), gp_http_path(rq), status, msg);
	gp_http_reply_json(rq, status, json_pack("{s:s}", "Error", msg));
}

/* "gpupool: <why>" as a JSON string.  A reason is built from annotation
 * text that jansson has already checked, so this cannot fail in practice;
 * if it ever did, the node must still be reported, never dropped. */
static json_t *reason(const char *why)
{
	json_t *s = json_pack("s+", "gpupool: ", why);

	return s ? s : json_string("gpupool: (the reason is not printable)");
}

/* --- where recent pods are expected ------------------------------------------
 *
 * kube-scheduler filters the next pod as soon as it has chosen a node for
 * the last one; that pod's bind reaches us later (its binding cycle runs
 * apart), sometimes after the next filter.  So the view counts a pod on a
 * node as soon as we can tell where it will go: the best node of its
 * prioritize, then the node its bind names, the second replacing the
 * first.  A guess that no bind confirms expires after GUESS_MS; a pod
 * asked about again is first taken out of the view.  (A pod with one
 * feasible node is not scored, so it is counted from its bind only.)
 */

#define GUESS_MS 2000

static int64_t now_ms(void)
{
	return (int64_t)(gp_wall_ns() / 1000000u);
}

static struct gp__ext_expect *expected(struct gp__ext *x, const char *uid)
{
	for (unsigned i = 0; x->expect && i < GP__EXT_RECENT; i++) {
		struct gp__ext_expect *e = &x->expect[i];
		if (e->as.uid[0] && strcmp(e->as.uid, uid) == 0)
			return e->as.until_ms > now_ms() ? e : NULL;
	}
	return NULL;
}

/* The holds of `a` as a plan on the snapshot's node (by UUID), or false
 * when the node or a card is not there. */
static bool as_plan(const struct gp__ext_assumed *a, const struct gp_node *n, struct gp_plan *p)
{
	memset(p, 0, sizeof *p);
	for (unsigned i = 0; i < a->nhold; i++) {
		int k = gp_node_find_gpu(n, a->hold[i].uuid);
		if (k < 0)
			return false;
		p->gpumask |= (uint16_t)(1u << k);
		p->hold[k].mem_bytes = a->hold[i].mem_bytes;
		p->hold[k].compute = (uint16_t)a->hold[i].compute;
		p->hold[k].tenants = (uint16_t)a->hold[i].tenants;
		p->hold[k].exclusive = a->hold[i].exclusive;
	}
	return true;
}

/* Take an expectation out of the loop's snapshot. */
static void unexpect(struct gp__ext *x, struct gp__ext_assumed *a)
{
	struct gp__ext_node *en = gp__ext_snap_node(x->snap, a->node);
	struct gp_plan p;

	if (en && en->node && as_plan(a, en->node, &p) && gp_node_release(en->node, &p))
		gp_debug("view of %s: cannot take %s back; the next rebuild does", a->node, a->uid);
	for (size_t i = 0; i < x->snap->nextra; i++)
		if (strcmp(x->snap->extra[i].uid, a->uid) == 0) {
			x->snap->extra[i] = x->snap->extra[--x->snap->nextra];
			break;
		}
	a->uid[0] = '\0';
}

/* Count the pod in x->pr on `node` until `until` (see above).  Returns
 * where it is counted, or NULL. */
static struct gp__ext_expect *expect(struct gp__ext *x, const char *node, int64_t until)
{
	struct gp__ext_expect *old = expected(x, x->pr.uid), *e;
	struct gp__ext_assumed *as, *g;
	struct gp__ext_node *en;
	struct gp_plan plan;

	if (!x->pr.nctr || !x->pr.uid[0] || !x->expect)
		return NULL;
	if (old && strcmp(old->as.node, node) == 0) {
		if (until > old->as.until_ms) {
			old->as.until_ms = until;
			x->min_gen = gp__ext_cache_assume(x->cache, &old->as);
		}
		return old;
	}
	if (old)
		unexpect(x, &old->as);
	en = gp__ext_snap_node(x->snap, node);
	if (!en || !en->node ||
	    gp_placer_plan(x->snap->pl, en->node, x->pr.req, &plan, NULL, 0) != GP_FIT ||
	    gp_node_commit(en->node, &plan)) {
		if (old)
			x->min_gen = gp__ext_cache_forget(x->cache, x->pr.uid);
		return NULL;
	}
	e = &x->expect[x->expect_next++ % GP__EXT_RECENT];
	memset(e, 0, sizeof *e);
	e->hint.plan = plan;
	as = &e->as;
	snprintf(as->uid, sizeof as->uid, "%s", x->pr.uid);
	snprintf(as->node, sizeof as->node, "%s", node);
	as->until_ms = until;
	for (unsigned i = 0; i < GP_MAX_GPUS; i++) {
		struct gp_gpu gpu;
		struct gp_annot_hold *h = &as->hold[as->nhold];

		if (!(plan.gpumask & (1u << i)) || gp_node_gpu(en->node, i, &gpu))
			continue;
		snprintf(h->uuid, sizeof h->uuid, "%s", gpu.uuid);
		snprintf(e->hint.uuid[i], sizeof e->hint.uuid[i], "%s", gpu.uuid);
		h->mem_bytes = plan.hold[i].mem_bytes;
		h->compute = plan.hold[i].compute;
		h->tenants = plan.hold[i].tenants;
		h->exclusive = plan.hold[i].exclusive;
		as->nhold++;
	}
	/* For the Nodes form, which builds nodes from the snapshot's holds. */
	if ((g = realloc(x->snap->extra, (x->snap->nextra + 1) * sizeof *g))) {
		x->snap->extra = g;
		g[x->snap->nextra++] = *as;
	}
	x->min_gen = gp__ext_cache_assume(x->cache, as);
	return e;
}

/* --- candidates ----------------------------------------------------------- */

/* Resolve each candidate to a placement node: from the snapshot (names),
 * or built from the Node object sent with the allocations the snapshot
 * knows (full nodes). */
static void resolve(struct gp__ext *x, struct gp__ext_cands *c)
{
	for (size_t i = 0; i < c->n; i++) {
		char *buf = c->whybuf + i * GP_REASON_MAX;

		if (c->obj[i]) {
			struct gp_annot_node st;
			struct gp_annot_hold *holds = NULL;
			unsigned nholds = 0;
			int rc = gp__ext_node_state(c->obj[i], x->o.state_max_age_ms, &st, buf,
						    GP_REASON_MAX);
			if (!rc && gp__ext_snap_holds(x->snap, c->name[i], &holds, &nholds)) {
				snprintf(buf, GP_REASON_MAX, "out of memory");
				rc = -ENOMEM;
			}
			if (!rc)
				rc = gp__ext_build_node(c->name[i], &st, holds, nholds, &c->node[i],
							buf, GP_REASON_MAX);
			free(holds);
			if (rc) {
				c->why[i] = buf;
				c->unresolvable[i] = rc != -ESTALE;
			} else {
				c->owned[i] = true;
			}
			continue;
		}
		struct gp__ext_node *en = gp__ext_snap_node(x->snap, c->name[i]);
		if (!en) {
			/* Watched: it appears as soon as its event arrives. */
			c->why[i] = "node not in gpupool's view yet";
		} else if (!en->node) {
			c->why[i] = en->why ? en->why : "node state unusable";
			c->unresolvable[i] = en->rc != -ESTALE;
		} else {
			c->node[i] = en->node;
		}
	}
}

/* Keep a GPU pod seen by filter, for its bind (ring of the last few). */
static void remember(struct gp__ext *x, json_t *pod)
{
	unsigned k = x->recent_next++ % GP__EXT_RECENT;

	json_decref(x->recent[k]);
	x->recent[k] = json_incref(pod);
}

/* The Pod object a recent filter saw, by UID (or by name without one). */
static json_t *recall(struct gp__ext *x, const char *ns, const char *name, const char *uid)
{
	for (unsigned i = 0; i < GP__EXT_RECENT; i++) {
		unsigned k = (x->recent_next - 1 - i) % GP__EXT_RECENT;
		json_t *meta = json_object_get(x->recent[k], "metadata");
		const char *u = json_string_value(json_object_get(meta, "uid"));
		const char *n = json_string_value(json_object_get(meta, "name"));
		const char *s = json_string_value(json_object_get(meta, "namespace"));

		if (!x->recent[k])
			break;
		if (uid[0] ? (u && strcmp(u, uid) == 0)
			   : (n && s && strcmp(n, name) == 0 && strcmp(s, ns) == 0))
			return x->recent[k];
	}
	return NULL;
}

/* Parse the body, the pod and the candidates; on failure the reply is sent
 * and NULL returned. */
static json_t *begin(struct gp__ext *x, struct gp_http_req *rq, struct gp__ext_cands *c, char *podwhy,
		     size_t pn, int *podrc)
{
	char why[512];
	json_t *args = gp_http_body_json(rq, why, sizeof why);
	int rc;

	x->snap = gp__ext_cache_take(x->cache, x->snap, x->min_gen);
	if (!args) {
		reply_error(rq, 400, "%s", why);
		return NULL;
	}
	if ((rc = gp__ext_read_args(args, x->o.max_nodes, c, why, sizeof why))) {
		reply_error(rq, rc == -ENOMEM ? 500 : 400, "%s", why);
		json_decref(args);
		gp__ext_cands_free(c);
		return NULL;
	}
	*podrc = gp_req_from_pod(&x->pr, json_object_get(args, "Pod"), podwhy, pn);
	if (!*podrc && x->pr.nctr) {
		struct gp__ext_expect *e = expected(x, x->pr.uid);

		remember(x, json_object_get(args, "Pod"));
		/* Asked again (kube-scheduler retries a pod): our guess of
		 * its last attempt must not stand in its own way. */
		if (e) {
			unexpect(x, &e->as);
			x->min_gen = gp__ext_cache_forget(x->cache, x->pr.uid);
		}
	}
	if (!*podrc)
		resolve(x, c);
	return args;
}

/* --- POST /filter --------------------------------------------------------- */

static void on_filter(struct gp_http_req *rq, void *arg)
{
	struct gp__ext *x = arg;
	uint64_t t0 = gp_now_ns();
	struct gp__ext_cands c;
	char podwhy[GP_REASON_MAX + 300], why[GP_REASON_MAX], never[GP_REASON_MAX];
	int podrc;
	json_t *args = begin(x, rq, &c, podwhy, sizeof podwhy, &podrc);
	json_t *res, *passed, *failed, *unres;
	bool full;

	if (!args)
		return;
	x->n_filter++;
	full = json_object_get(args, "Nodes") && !json_is_null(json_object_get(args, "Nodes"));
	passed = json_array();
	failed = json_object();
	unres = json_object();
	if (podrc) {
		res = json_pack("{s:n,s:n,s:n,s:n,s:s+}", "Nodes", "NodeNames", "FailedNodes",
				"FailedAndUnresolvableNodes", "Error", "gpupool: ", gp_utf8_fix(podwhy));
		json_decref(passed);
		json_decref(failed);
		json_decref(unres);
		gp_info("filter %s/%s: %s", x->pr.ns, x->pr.name, podwhy);
		goto reply;
	}
	for (size_t i = 0; i < c.n; i++) {
		enum gp_reject r, rn;
		struct gp_node *empty;

		if (x->pr.nctr == 0) { /* not a GPU pod: nothing for us to judge */
			if (full)
				json_array_append(passed, c.obj[i]);
			else
				json_array_append_new(passed, json_string(c.name[i]));
			continue;
		}
		if (!c.node[i]) {
			json_object_set_new(c.unresolvable[i] ? unres : failed, c.name[i],
					    reason(c.why[i]));
			continue;
		}
		r = gp_fit(c.node[i], x->pr.req, why, sizeof why);
		if (r == GP_FIT) {
			if (full)
				json_array_append(passed, c.obj[i]);
			else
				json_array_append_new(passed, json_string(c.name[i]));
			continue;
		}
		/* The answer names the cause, the same words for every node
		 * (kube-scheduler counts identical reasons: "12 gpupool: no GPU
		 * with enough free memory"); the node's own figures go to the
		 * debug log.  Would it fit on the node emptied?  If not, no
		 * preemption helps: say so (with what can never fit), and
		 * kube-scheduler will not try. */
		empty = gp__ext_empty_copy(c.node[i]);
		if (empty && (rn = gp_fit(empty, x->pr.req, never, sizeof never)) != GP_FIT) {
			r = rn;
			json_object_set_new(unres, c.name[i], reason(gp_reject_text(r)));
			gp_debug("filter %s/%s: %s: %s (even empty)", x->pr.ns, x->pr.name,
				 c.name[i], never);
		} else {
			json_object_set_new(failed, c.name[i], reason(gp_reject_text(r)));
			gp_debug("filter %s/%s: %s: %s", x->pr.ns, x->pr.name, c.name[i], why);
		}
		if ((unsigned)r < GP_R__COUNT)
			x->rejected[r]++;
		gp_node_free(empty);
	}
	gp_debug("filter %s/%s: %zu of %zu nodes fit", x->pr.ns, x->pr.name,
		 json_array_size(passed), c.n);
	if (full)
		res = json_pack("{s:{s:{},s:o},s:n,s:o,s:o,s:s}", "Nodes", "metadata", "items",
				passed, "NodeNames", "FailedNodes", failed,
				"FailedAndUnresolvableNodes", unres, "Error", "");
	else
		res = json_pack("{s:n,s:o,s:o,s:o,s:s}", "Nodes", "NodeNames", passed, "FailedNodes",
				failed, "FailedAndUnresolvableNodes", unres, "Error", "");
reply:
	gp_http_reply_json(rq, 200, res);
	gp__ext_metrics_observe(x->metrics, GP__EXT_FILTER, gp_now_ns() - t0);
	gp__ext_cands_free(&c);
	json_decref(args);
}

/* --- POST /prioritize ----------------------------------------------------- */

static void on_prioritize(struct gp_http_req *rq, void *arg)
{
	struct gp__ext *x = arg;
	uint64_t t0 = gp_now_ns();
	struct gp__ext_cands c;
	char podwhy[GP_REASON_MAX + 300];
	int podrc;
	json_t *args = begin(x, rq, &c, podwhy, sizeof podwhy, &podrc);
	json_t *list;
	struct gp_node **usable = NULL;
	double *score = NULL;
	size_t *at = NULL, nu = 0;

	if (!args)
		return;
	x->n_prioritize++;
	if (podrc) {
		/* HostPriorityList has no error field: all equal, and say why in
		 * the log (filter has told the pod already). */
		gp_info("prioritize %s/%s: %s", x->pr.ns, x->pr.name, podwhy);
	} else if (x->pr.nctr) {
		usable = calloc(c.n + 1, sizeof *usable);
		score = calloc(c.n + 1, sizeof *score);
		at = calloc(c.n + 1, sizeof *at);
		if (!usable || !score || !at) {
			reply_error(rq, 500, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < c.n; i++)
			if (c.node[i]) {
				at[nu] = i;
				usable[nu++] = c.node[i];
			}
		gp_placer_score(x->snap->pl, usable, nu, x->pr.req, score);
		for (size_t k = 0, best = SIZE_MAX; k <= nu; k++) {
			if (k == nu) {
				if (best != SIZE_MAX)
					expect(x, c.name[at[best]], now_ms() + GUESS_MS);
				break;
			}
			if (score[k] >= 0 && (best == SIZE_MAX || score[k] > score[best]))
				best = k;
		}
	}
	list = json_array();
	for (size_t i = 0, k = 0; i < c.n; i++) {
		long s = 0;

		if (k < nu && at[k] == i) {
			if (score[k] >= 0)
				s = lround(score[k] * 10.0);
			k++;
		}
		s = s < 0 ? 0 : s > 10 ? 10 : s;
		json_array_append_new(list, json_pack("{s:s,s:i}", "Host", c.name[i], "Score",
						      (int)s));
	}
	gp_http_reply_json(rq, 200, list);
	gp__ext_metrics_observe(x->metrics, GP__EXT_PRIORITIZE, gp_now_ns() - t0);
out:
	free(usable);
	free(score);
	free(at);
	gp__ext_cands_free(&c);
	json_decref(args);
}

/* --- POST /bind ----------------------------------------------------------- */

/* Count the pod on the bind's node now, before the API round trips (the
 * worker decides again under the node's lock, on fresh data). */
static void count_now(struct gp__ext *x, struct gp__ext_bind_job *j)
{
	json_t *pod = recall(x, j->ns, j->name, j->uid);
	char why[GP_REASON_MAX];

	struct gp__ext_expect *e;

	if (pod && !gp_req_from_pod(&x->pr, pod, why, sizeof why) &&
	    (e = expect(x, j->node, now_ms() + x->o.inflight_ms))) {
		snprintf(j->counted, sizeof j->counted, "%s", x->pr.uid);
		j->hint = e->hint;
		j->has_hint = true;
	}
}

static void bind_run(void *arg)
{
	gp__ext_bind(arg);
}

/* On the loop: the view learns the outcome, the scheduler gets its answer. */
static void bind_done(void *arg)
{
	struct gp__ext_bind_job *j = arg;
	struct gp__ext *x = j->x;

	struct gp__ext_expect *e = j->counted[0] ? expected(x, j->counted) : NULL;

	gp__ext_metrics_bind(x->metrics, j->rc, gp_now_ns() - j->t0_ns);
	if (!j->rc && j->got.nhold) {
		uint64_t gen = gp__ext_cache_assume(x->cache, &j->got);
		if (e) {
			e->as.uid[0] = '\0'; /* the cache has it from here */
		} else {
			/* Not expected (no filter of ours saw it): count it now. */
			struct gp__ext_node *en = gp__ext_snap_node(x->snap, j->node);
			struct gp__ext_assumed *g;
			struct gp_plan p;

			if (en && en->node && as_plan(&j->got, en->node, &p) &&
			    gp_node_commit(en->node, &p))
				gp_debug("view of %s is behind; the next rebuild catches up", j->node);
			if ((g = realloc(x->snap->extra, (x->snap->nextra + 1) * sizeof *g))) {
				x->snap->extra = g;
				g[x->snap->nextra++] = j->got;
			}
			x->min_gen = gen;
		}
	} else if (j->counted[0]) {
		if (e)
			unexpect(x, &e->as);
		x->min_gen = gp__ext_cache_forget(x->cache, j->counted);
	}
	if (j->rc) {
		x->n_bind_failed++;
		gp_utf8_fix(j->why);
		gp_warn("bind %s/%s to %s: %s", j->ns, j->name, j->node, j->why);
		gp_http_reply_json(j->rq, 200, json_pack("{s:s}", "Error", j->why));
	} else {
		gp_http_reply_json(j->rq, 200, json_pack("{s:s}", "Error", ""));
	}
	gp__ext_snap_put(j->snap);
	free(j);
}

static void on_bind(struct gp_http_req *rq, void *arg)
{
	struct gp__ext *x = arg;
	char why[768];
	json_t *args = gp_http_body_json(rq, why, sizeof why);
	struct gp__ext_bind_job *j = NULL;
	struct gp__ext_bind_args b;

	x->snap = gp__ext_cache_take(x->cache, x->snap, x->min_gen);
	if (!args) {
		reply_error(rq, 400, "%s", why);
		return;
	}
	if (gp__ext_read_bind_args(args, &b, why, sizeof why)) {
		reply_error(rq, 400, "%s", why);
		goto out;
	}
	x->n_bind++;
	if (!(j = calloc(1, sizeof *j)) || !(j->rq = gp_http_defer(rq))) {
		free(j);
		reply_error(rq, 500, "out of memory");
		goto out;
	}
	j->x = x;
	j->t0_ns = gp_now_ns();
	memcpy(j->ns, b.ns, sizeof j->ns);
	memcpy(j->name, b.name, sizeof j->name);
	memcpy(j->uid, b.uid, sizeof j->uid);
	memcpy(j->node, b.node, sizeof j->node);
	j->snap = gp__ext_snap_get(x->snap);
	count_now(x, j);
	if (gp_work_submit(x->work, bind_run, bind_done, j)) {
		j->rc = -ENOMEM;
		snprintf(j->why, sizeof j->why, "out of memory");
		bind_done(j);
	}
out:
	json_decref(args);
}

/* --- POST /preempt -------------------------------------------------------- */

struct preempt_job {
	struct gp__ext *x;
	struct gp_http_req *rq;
	json_t *args, *res;
	uint64_t t0_ns;
	int rc;
	char why[768];
};

static void preempt_run(void *arg)
{
	struct preempt_job *p = arg;

	p->rc = gp__ext_preempt(p->x, p->args, &p->res, p->why, sizeof p->why);
}

static void preempt_done(void *arg)
{
	struct preempt_job *p = arg;

	gp__ext_metrics_preempt(p->x->metrics, p->rc, gp_now_ns() - p->t0_ns, p->res);
	if (p->rc == -EINVAL)
		reply_error(p->rq, 400, "%s", p->why);
	else if (p->rc)
		reply_error(p->rq, 500, "%s", p->why);
	else
		gp_http_reply_json(p->rq, 200, p->res);
	json_decref(p->args);
	free(p);
}

static void on_preempt(struct gp_http_req *rq, void *arg)
{
	struct gp__ext *x = arg;
	struct preempt_job *p;
	char why[768];
	json_t *args = gp_http_body_json(rq, why, sizeof why);

	if (!args) {
		reply_error(rq, 400, "%s", why);
		return;
	}
	x->n_preempt++;
	if (!(p = calloc(1, sizeof *p)) || !(p->rq = gp_http_defer(rq))) {
		free(p);
		json_decref(args);
		reply_error(rq, 500, "out of memory");
		return;
	}
	p->x = x;
	p->args = args;
	p->t0_ns = gp_now_ns();
	if (gp_work_submit(x->work, preempt_run, preempt_done, p)) {
		p->rc = -ENOMEM;
		snprintf(p->why, sizeof p->why, "out of memory");
		preempt_done(p);
	}
}

/* --- GET /healthz --------------------------------------------------------- */

static void on_healthz(struct gp_http_req *rq, void *arg)
{
	struct gp__ext *x = arg;
	int64_t last_ok, now = (int64_t)(gp_wall_ns() / 1000000u);
	long stale_after = x->o.resync_ms * 3 > 30000 ? x->o.resync_ms * 3 : 30000;
	char err[256], when[40];
	json_t *rejected;
	bool ok;

	x->snap = gp__ext_cache_take(x->cache, x->snap, x->min_gen);
	ok = gp__ext_cache_health(x->cache, &last_ok, err, sizeof err) || now - last_ok <= stale_after;
	gp_time_format(last_ok, when, sizeof when);
	rejected = json_object();
	for (unsigned r = 1; r < GP_R__COUNT; r++)
		json_object_set_new(rejected, gp_reject_name((enum gp_reject)r),
				    json_integer((json_int_t)x->rejected[r]));
	gp_http_reply_json(rq, ok ? 200 : 503,
			   json_pack("{s:s,s:s,s:s,s:s,s:I,s:i,s:{s:I,s:I,s:I,s:I},s:o}", "status",
				     ok ? "ok" : "stale", "lastSync", when, "lastError", err,
				     "policy", x->policy_text, "nodes",
				     (json_int_t)(x->snap ? x->snap->nnodes : 0), "gpuPods",
				     x->snap ? (int)x->snap->gpu_pods : 0, "requests", "filter",
				     (json_int_t)x->n_filter, "prioritize",
				     (json_int_t)x->n_prioritize, "bind", (json_int_t)x->n_bind,
				     "bindFailed", (json_int_t)x->n_bind_failed, "rejectedNodes",
				     rejected));
}

/* --- GET /metrics -------------------------------------------------------- */

static void on_metrics(struct gp_http_req *rq, void *arg)
{
	struct gp__ext *x = arg;
	char *text;

	x->snap = gp__ext_cache_take(x->cache, x->snap, x->min_gen);
	if (!(text = gp__ext_metrics_text(x))) {
		reply_error(rq, 500, "out of memory");
		return;
	}
	gp_http_reply_owned(rq, 200, "text/plain; version=0.0.4", text, strlen(text));
}

static const struct gp_http_route routes[] = {
	{"POST", "/filter", on_filter},
	{"POST", "/prioritize", on_prioritize},
	{"POST", "/bind", on_bind},
	{"POST", "/preempt", on_preempt},
	{"GET", "/healthz", on_healthz},
	{"GET", "/metrics", on_metrics},
	{NULL, NULL, NULL},
};

/* --- life ----------------------------------------------------------------- */

/* Write the URL we serve on to `path`, atomically (tests wait for it). */
static int write_ready(const char *path, const char *listen, int port)
{
	char tmp[4096], url[300], host[256];
	const char *colon = strrchr(listen, ':');
	size_t hl = colon ? (size_t)(colon - listen) : 0;
	int fd, len;

	if (hl >= sizeof host)
		hl = 0;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if (!hl || strcmp(host, "0.0.0.0") == 0)
		strcpy(host, "127.0.0.1");
	else if (strcmp(host, "[::]") == 0)
		strcpy(host, "[::1]");
	len = snprintf(url, sizeof url, "http://%s:%d\n", host, port);
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, url, (size_t)len) != len || close(fd)) {
		unlink(tmp);
		return -EIO;
	}
	return rename(tmp, path) ? -errno : 0;
}

int gp_extender_run(const struct gp_ext_opts *o)
{
	struct gp__ext *x = calloc(1, sizeof *x);
	struct gp_http_opts ho = {.listen = o->listen, .max_body = o->max_body};
	struct gp_loop *loop = NULL;
	struct gp_http *http = NULL;
	struct gp__ext_cache_opts co;
	char why[512], host[64] = "unknown";
	int rc;

	if (!x)
		return -ENOMEM;
	x->o = *o;
	if (!x->o.inflight_ms)
		x->o.inflight_ms = 3 * (o->kube.timeout_ms ? o->kube.timeout_ms : 10000) + 5000;
	co = (struct gp__ext_cache_opts){.rebuild_ms = o->resync_ms,
					 .state_max_age_ms = o->state_max_age_ms,
					 .inflight_ms = x->o.inflight_ms};
	pthread_mutex_init(&x->busy_mu, NULL);
	pthread_cond_init(&x->busy_cv, NULL);
	if (!(x->busy = calloc(1, sizeof *x->busy)) || !(x->metrics = gp__ext_metrics_new()) ||
	    !(x->expect = calloc(GP__EXT_RECENT, sizeof *x->expect))) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = gp_policy_parse(o->policy, &x->policy, why, sizeof why))) {
		gp_error("--policy: %s", why);
		goto out;
	}
	gp_policy_format(&x->policy, x->policy_text, sizeof x->policy_text);
	gethostname(host, sizeof host - 1);
	snprintf(x->replica, sizeof x->replica, "%.63s/%d", host, (int)getpid());
	if ((rc = gp_req_init(&x->pr)))
		goto out;
	/* The loop first: it ignores SIGPIPE, which a TLS peer closing early
	 * could otherwise raise in the API calls below. */
	if (!(loop = gp_loop_new())) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = gp_kube_open(&x->kube, &o->kube, why, sizeof why))) {
		gp_error("kubernetes API: %s", why);
		goto out;
	}
	co.policy = x->policy;
	if ((rc = gp__ext_cache_start(&x->cache, x->kube, &co, why, sizeof why))) {
		gp_error("cannot read the cluster from %s: %s", gp_kube_server(x->kube), why);
		goto out;
	}
	x->snap = gp__ext_cache_take(x->cache, NULL, 0);
	if ((rc = gp_work_new(&x->work, gp_loop_base(loop), WORKERS))) {
		gp_error("cannot start the workers: %s", strerror(-rc));
		goto out;
	}
	if ((rc = gp_http_start(&http, gp_loop_base(loop), &ho, routes, x))) {
		gp_error("cannot listen on %s: %s", o->listen, strerror(-rc));
		goto out;
	}
	gp_info("serving the extender API on %s (port %d), policy %s, %zu nodes", o->listen,
		gp_http_port(http), x->policy_text, x->snap ? x->snap->nnodes : 0);
	if (o->ready_file && (rc = write_ready(o->ready_file, o->listen, gp_http_port(http)))) {
		gp_error("cannot write %s: %s", o->ready_file, strerror(-rc));
		goto out;
	}
	rc = gp_loop_run(loop) ? -EIO : 0;
out:
	/* Binds under way finish (nothing half done is left behind) and are
	 * answered while the server still stands. */
	gp_work_free(x->work);
	gp_http_stop(http);
	gp_loop_free(loop);
	gp__ext_cache_stop(x->cache);
	gp__ext_snap_put(x->snap);
	gp_kube_close(x->kube);
	gp_req_fini(&x->pr);
	for (unsigned i = 0; i < GP__EXT_RECENT; i++)
		json_decref(x->recent[i]);
	if (x->busy)
		gp_smap_free(x->busy);
	free(x->busy);
	gp__ext_metrics_free(x->metrics);
	free(x->expect);
	pthread_cond_destroy(&x->busy_cv);
	pthread_mutex_destroy(&x->busy_mu);
	free(x);
	return rc;
}
