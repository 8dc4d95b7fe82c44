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
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "net/http.h"
#include "net/loop.h"
#include "sched/extender_int.h"

/* --- input checks --------------------------------------------------------- */

/* A DNS-1123 subdomain (node and pod names): 1..253 of [a-z0-9.-],
 * starting and ending alphanumeric. */
static bool dns_name(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > max || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	return true;
}

/* Refuse a key that is a known one in another case: a client that sends it
 * expects us to read it, and silently dropping it would answer a question
 * that was not asked.  Other unknown keys are ignored. */
static int check_keys(json_t *obj, const char *const *known, char *why, size_t n)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		bool exact = false;
		const char *folded = NULL;

		for (const char *const *q = known; *q; q++) {
			if (strcmp(k, *q) == 0)
				exact = true;
			else if (strcasecmp(k, *q) == 0)
				folded = *q;
		}
		if (!exact && folded) {
			snprintf(why, n, "key '%.64s' is not '%s' (keys are case-sensitive)", k, folded);
			return -EINVAL;
		}
		if (!exact)
			gp_debug("ignoring unknown key '%s'", k);
	}
	return 0;
}

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

/* --- candidates ----------------------------------------------------------- */

/* The nodes of one filter or prioritize call. */
struct cands {
	size_t n;
	const char **name;           /* borrowed from the request */
	json_t **obj;                /* the Node objects (Nodes form), or NULL */
	struct gp_node **node;       /* usable ones; NULL where not */
	bool *owned;                 /* node[i] built for this call (free it) */
	const char **why;            /* why not usable */
	bool *unresolvable;          /* ... and waiting would not help */
	char *whybuf;                /* storage of built reasons */
};

static void cands_free(struct cands *c)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->owned && c->owned[i])
			gp_node_free(c->node[i]);
	free(c->name);
	free(c->obj);
	free(c->node);
	free(c->owned);
	free(c->why);
	free(c->unresolvable);
	free(c->whybuf);
}

/* Read ExtenderArgs into the pod request and the candidate list.  Returns
 * 0, or -EINVAL with why (a 400). */
static int read_args(struct gp__ext *x, json_t *args, struct cands *c, char *why, size_t n)
{
	static const char *const keys[] = {"Pod", "Nodes", "NodeNames", NULL};
	json_t *pod = json_object_get(args, "Pod");
	json_t *nodes = json_object_get(args, "Nodes");
	json_t *names = json_object_get(args, "NodeNames");
	json_t *items = NULL, *v;
	size_t i;

	memset(c, 0, sizeof *c);
	if (!json_is_object(args)) {
		snprintf(why, n, "the body is not an ExtenderArgs object");
		return -EINVAL;
	}
	if (check_keys(args, keys, why, n))
		return -EINVAL;
	if (!json_is_object(pod)) {
		snprintf(why, n, "'Pod' is missing or not an object");
		return -EINVAL;
	}
	if (nodes && json_is_null(nodes))
		nodes = NULL;
	if (names && json_is_null(names))
		names = NULL;
	if (!!nodes == !!names) {
		snprintf(why, n, "give 'Nodes' (nodeCacheCapable: false) or 'NodeNames' "
				 "(nodeCacheCapable: true), not %s",
			 nodes ? "both" : "neither");
		return -EINVAL;
	}
	if (nodes) {
		items = json_object_get(nodes, "items");
		if (!json_is_object(nodes) || !json_is_array(items)) {
			snprintf(why, n, "'Nodes' is not a NodeList with 'items'");
			return -EINVAL;
		}
	} else if (!json_is_array(names)) {
		snprintf(why, n, "'NodeNames' is not a list");
		return -EINVAL;
	}
	c->n = json_array_size(nodes ? items : names);
	if (c->n > x->o.max_nodes) {
		snprintf(why, n, "%zu candidate nodes, more than --max-nodes %u", c->n,
			 x->o.max_nodes);
		return -EINVAL;
	}
	c->name = calloc(c->n + 1, sizeof *c->name);
	c->obj = calloc(c->n + 1, sizeof *c->obj);
	c->node = calloc(c->n + 1, sizeof *c->node);
	c->owned = calloc(c->n + 1, sizeof *c->owned);
	c->why = calloc(c->n + 1, sizeof *c->why);
	c->unresolvable = calloc(c->n + 1, sizeof *c->unresolvable);
	c->whybuf = calloc(c->n + 1, GP_REASON_MAX);
	if (!c->name || !c->obj || !c->node || !c->owned || !c->why || !c->unresolvable ||
	    !c->whybuf) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(nodes ? items : names, i, v) {
		json_t *nm = nodes ? json_object_get(json_object_get(v, "metadata"), "name") : v;
		if (!json_is_string(nm) || !dns_name(json_string_value(nm), 253)) {
			snprintf(why, n, "%s[%zu] has no valid node name",
				 nodes ? "Nodes.items" : "NodeNames", i);
			return -EINVAL;
		}
		c->name[i] = json_string_value(nm);
		c->obj[i] = nodes ? v : NULL;
	}
	return 0;
}

/* Resolve each candidate to a placement node: from the snapshot (names),
 * or built from the Node object sent with the allocations the snapshot
 * knows (full nodes). */
static void resolve(struct gp__ext *x, struct cands *c)
{
	bool missing = false;

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
			snprintf(buf, GP_REASON_MAX,
				 "node not in gpupool's view yet (refreshed every %g s)",
				 (double)x->o.resync_ms / 1000.0);
			c->why[i] = buf;
			missing = true;
		} else if (!en->node) {
			c->why[i] = en->why ? en->why : "node state unusable";
			c->unresolvable[i] = en->rc != -ESTALE;
		} else {
			c->node[i] = en->node;
		}
	}
	if (missing)
		gp__ext_cache_kick(x->cache);
}

/* Parse the body, the pod and the candidates; on failure the reply is sent
 * and NULL returned. */
static json_t *begin(struct gp__ext *x, struct gp_http_req *rq, struct cands *c, char *podwhy,
		     size_t pn, int *podrc)
{
	char why[512];
	json_t *args = gp_http_body_json(rq, why, sizeof why);
	int rc;

	x->snap = gp__ext_cache_take(x->cache, x->snap);
	if (!args) {
		reply_error(rq, 400, "%s", why);
		return NULL;
	}
	if ((rc = read_args(x, args, c, why, sizeof why))) {
		reply_error(rq, rc == -ENOMEM ? 500 : 400, "%s", why);
		json_decref(args);
		cands_free(c);
		return NULL;
	}
	*podrc = gp_req_from_pod(&x->pr, json_object_get(args, "Pod"), podwhy, pn);
	if (!*podrc)
		resolve(x, c);
	return args;
}

/* --- POST /filter --------------------------------------------------------- */

static void on_filter(struct gp_http_req *rq, void *arg)
{
	struct gp__ext *x = arg;
	struct cands c;
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
	cands_free(&c);
	json_decref(args);
}

/* --- POST /prioritize ----------------------------------------------------- */

static void on_prioritize(struct gp_http_req *rq, void *arg)
{
	struct gp__ext *x = arg;
	struct cands c;
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
out:
	free(usable);
	free(score);
	free(at);
	cands_free(&c);
	json_decref(args);
}

/* --- POST /bind ----------------------------------------------------------- */

static void on_bind(struct gp_http_req *rq, void *arg)
{
	static const char *const keys[] = {"PodName", "PodNamespace", "PodUID", "Node", NULL};
	struct gp__ext *x = arg;
	char why[768];
	json_t *args = gp_http_body_json(rq, why, sizeof why);
	const char *name, *ns, *uid, *node;
	json_t *u;

	x->snap = gp__ext_cache_take(x->cache, x->snap);
	if (!args) {
		reply_error(rq, 400, "%s", why);
		return;
	}
	if (!json_is_object(args)) {
		reply_error(rq, 400, "the body is not an ExtenderBindingArgs object");
		goto out;
	}
	if (check_keys(args, keys, why, sizeof why)) {
		reply_error(rq, 400, "%s", why);
		goto out;
	}
	name = json_string_value(json_object_get(args, "PodName"));
	ns = json_string_value(json_object_get(args, "PodNamespace"));
	node = json_string_value(json_object_get(args, "Node"));
	u = json_object_get(args, "PodUID");
	uid = json_is_string(u) ? json_string_value(u) : "";
	if (!dns_name(name, 253) || !dns_name(ns, 63) || !dns_name(node, 253) ||
	    (u && !json_is_string(u) && !json_is_null(u)) || strlen(uid) >= GP_ANNOT_UID_MAX ||
	    strpbrk(uid, "/?#% ")) {
		reply_error(rq, 400,
			    "PodName, PodNamespace and Node must be Kubernetes names, PodUID a "
			    "string");
		goto out;
	}
	x->n_bind++;
	if (gp__ext_bind(x, ns, name, uid, node, why, sizeof why)) {
		x->n_bind_failed++;
		gp_utf8_fix(why);
		gp_warn("bind %s/%s to %s: %s", ns, name, node, why);
		gp_http_reply_json(rq, 200, json_pack("{s:s}", "Error", why));
	} else {
		gp_http_reply_json(rq, 200, json_pack("{s:s}", "Error", ""));
	}
out:
	json_decref(args);
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

	x->snap = gp__ext_cache_take(x->cache, x->snap);
	gp__ext_cache_health(x->cache, &last_ok, err, sizeof err);
	ok = now - last_ok <= stale_after;
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

static const struct gp_http_route routes[] = {
	{"POST", "/filter", on_filter},
	{"POST", "/prioritize", on_prioritize},
	{"POST", "/bind", on_bind},
	{"GET", "/healthz", on_healthz},
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
	struct gp_http_opts ho = {.listen = o->listen, .max_body = o->max_body, .timeout_s = 60};
	struct gp_loop *loop = NULL;
	struct gp_http *http = NULL;
	char why[512], host[64] = "unknown";
	int rc;

	if (!x)
		return -ENOMEM;
	x->o = *o;
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
	if ((rc = gp__ext_cache_start(&x->cache, x->kube, &x->policy, o->resync_ms,
				      o->state_max_age_ms, why, sizeof why))) {
		gp_error("cannot read the cluster from %s: %s", gp_kube_server(x->kube), why);
		goto out;
	}
	x->snap = gp__ext_cache_take(x->cache, NULL);
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
	gp_http_stop(http);
	gp_loop_free(loop);
	gp__ext_cache_stop(x->cache);
	gp__ext_snap_free(x->snap);
	gp_kube_close(x->kube);
	gp_req_fini(&x->pr);
	free(x);
	return rc;
}
