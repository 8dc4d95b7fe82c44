/* test_agent.c - the node agent's pure parts: tenant discovery from region
 * files, the metrics writer, the node state (read back by the scheduler's
 * own parser), the idle verdicts and the XID policy. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/collect.h"
#include "agent/health.h"
#include "agent/idle.h"
#include "agent/metrics.h"
#include "agent/nodestate.h"
#include "agent/snapjson.h"
#include "agent/tenants.h"
#include "common/shm.h"
#include "region/region.h"
#include "sched/annot.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define UUID0 "GPU-00000000-1111-2222-3333-444444444444"
#define UUID1 "GPU-55555555-6666-7777-8888-999999999999"

static char dir[256];
static struct gp_tenants *tree; /* the tree as scan() watches it */

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/gp-agent-test-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	gp_tenants_close(tree);
	tree = NULL;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void mkdirs(const char *uid, const char *ctr)
{
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/tenants", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/tenants/%s", dir, uid);
	mkdir(p, 0755);
	if (ctr) {
		snprintf(p, sizeof p, "%s/tenants/%s/%s", dir, uid, ctr);
		assert_int_equal(mkdir(p, 0755), 0);
	}
}

/* A tenant uid/ctr holding `bytes` on UUID0 with a 2 GiB budget, held by
 * this process through r. */
static void live_tenant(struct gp_region *r, const char *uid, const char *ctr, uint64_t bytes)
{
	char p[PATH_MAX];
	int d;

	mkdirs(uid, ctr);
	snprintf(p, sizeof p, "%s/tenants/%s/%s/region", dir, uid, ctr);
	*r = (struct gp_region)GP_REGION_INIT;
	assert_int_equal(gp_region_open(r, p), 0);
	assert_int_equal(gp_region_attach(r), 0);
	d = gp_region_device(r, UUID0, 2 * GiB, 80 * GiB);
	assert_true(d >= 0);
	assert_int_equal(gp_region_charge(r, (unsigned)d, bytes, 0), 0);
}

/* A tenant whose only process charged memory and died (SIGKILL). */
static void dead_tenant(const char *uid, const char *ctr)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct gp_region r;

		live_tenant(&r, uid, ctr, 512 * MiB);
		raise(SIGKILL);
		_exit(1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
}


static void scan(struct gp_agent_snap **out, struct gp_tenant_stale **stale, size_t *nstale,
		 unsigned max)
{
	struct gp_agent_snap *s = gp_snap_new();

	assert_non_null(s);
	s->mono_ns = UINT64_MAX / 2;
	if (max) {
		/* A new cap: a new tree. */
		gp_tenants_close(tree);
		assert_int_equal(gp_tenants_open(&tree, dir, max), 0);
	}
	assert_int_equal(gp_tenants_scan(tree, s, stale, nstale), 0);
	*out = s;
}

static void test_scan_finds_live_and_dead_tenants(void **state)
{
	struct gp_region r;
	struct gp_agent_snap *s;
	struct gp_tenant_stale *stale;
	size_t nstale;
	char p[PATH_MAX];

	(void)state;
	live_tenant(&r, "pod-b", "main", 1536 * MiB);
	dead_tenant("pod-a", "side");
	mkdirs("pod-c", "never-ran");          /* no region: nothing holds it */
	mkdirs(".hidden", "x");                /* not a tenant name */
	mkdirs("pod-d", NULL);
	snprintf(p, sizeof p, "%s/tenants/pod-d/evil", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/tenants/pod-d/evil/region", dir);
	assert_int_equal(symlink("/etc/passwd", p), 0); /* never followed */

	scan(&s, &stale, &nstale, 64);
	assert_int_equal(s->ntenant, 2);
	/* Sorted by pod UID. */
	assert_string_equal(s->tenant[0].uid, "pod-a");
	assert_string_equal(s->tenant[0].container, "side");
	assert_int_equal(s->tenant[0].nproc, 0);
	assert_int_equal(s->tenant[0].gpu[0].used, 0);      /* its process is dead */
	assert_int_equal(s->tenant[0].gpu[0].peak, 512 * MiB);
	assert_string_equal(s->tenant[1].uid, "pod-b");
	assert_int_equal(s->tenant[1].nproc, 1);
	assert_int_equal(s->tenant[1].pids[0], getpid());
	assert_int_equal(s->tenant[1].ngpu, 1);
	assert_string_equal(s->tenant[1].gpu[0].uuid, UUID0);
	assert_int_equal(s->tenant[1].gpu[0].limit, 2 * GiB);
	assert_int_equal(s->tenant[1].gpu[0].used, 1536 * MiB);
	assert_true(s->tenant[1].gpu[0].active_ns > 0);
	assert_int_equal(s->skipped, 1); /* the symbolic link */
	/* Stale: the dead tenant and the one that never ran; not the live one
	 * nor the link (whose target nobody may judge). */
	assert_int_equal(nstale, 2);
	for (size_t i = 0; i < nstale; i++)
		assert_true(strcmp(stale[i].uid, "pod-b") != 0);
	free(stale);
	gp_snap_unref(s);

	/* The cap counts the directories it leaves unread. */
	scan(&s, &stale, &nstale, 1);
	assert_int_equal(s->ntenant, 1);
	assert_int_equal(s->capped, 3);
	free(stale);
	gp_snap_unref(s);
	scan(&s, &stale, &nstale, 64);
	free(stale);
	gp_snap_unref(s);

	/* Removal: never a held tenant; a dead one goes with its pod dir. */
	assert_int_equal(gp_tenants_remove(dir, "pod-b", "main"), -EBUSY);
	assert_int_equal(gp_tenants_remove(dir, "pod-a", "side"), 0);
	snprintf(p, sizeof p, "%s/tenants/pod-a", dir);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(gp_tenants_remove(dir, "pod-d", "evil"), 0);
	assert_int_equal(access("/etc/passwd", F_OK), 0);
	assert_int_equal(gp_tenants_remove(dir, "..", "x"), -EINVAL);
	assert_int_equal(gp_tenants_remove(dir, "pod-c", "../pod-b"), -EINVAL);
	gp_shm_close(&r.shm);
	/* The tree is watched: removals and exits show at the next scan. */
	scan(&s, &stale, &nstale, 0);
	assert_int_equal(s->ntenant, 1);
	assert_string_equal(s->tenant[0].uid, "pod-b");
	assert_int_equal(s->tenant[0].nproc, 0);
	free(stale);
	gp_snap_unref(s);
	assert_int_equal(gp_tenants_remove(dir, "pod-b", "main"), 0);
	/* And so do new tenants. */
	live_tenant(&r, "pod-e", "late", MiB);
	scan(&s, &stale, &nstale, 0);
	assert_int_equal(s->ntenant, 1);
	assert_string_equal(s->tenant[0].uid, "pod-e");
	assert_int_equal(s->tenant[0].nproc, 1);
	free(stale);
	gp_snap_unref(s);
	gp_shm_close(&r.shm);
}

static void test_scan_without_tenants_dir(void **state)
{
	struct gp_agent_snap *s;
	struct gp_tenant_stale *stale;
	size_t nstale;

	(void)state;
	scan(&s, &stale, &nstale, 8);
	assert_int_equal(s->ntenant, 0);
	assert_int_equal(nstale, 0);
	free(stale);
	gp_snap_unref(s);
	assert_false(gp_tenants_name_ok(""));
	assert_false(gp_tenants_name_ok("a/b"));
	assert_false(gp_tenants_name_ok("x y"));
	assert_true(gp_tenants_name_ok("0b5f4f6e-2c1a-4c39-9a4b-8f1f0e1d2a33"));
}

/* A node of two H100s on NVSwitch, one unhealthy, and two tenants. */
static struct gp_agent_snap *sample(void)
{
	struct gp_agent_snap *s = gp_snap_new();

	assert_non_null(s);
	snprintf(s->node, sizeof s->node, "node-1");
	s->nvml_ok = 1;
	s->ngpu = 2;
	s->mono_ns = 1000 * 1000000000ull;
	s->wall_ns = 1700000000000ull * 1000000ull;
	for (unsigned i = 0; i < 2; i++) {
		struct gp_agent_gpu *g = &s->gpu[i];

		g->index = i;
		snprintf(g->uuid, sizeof g->uuid, "%s", i ? UUID1 : UUID0);
		snprintf(g->model, sizeof g->model, "NVIDIA H100 \"SXM\"");
		snprintf(g->pci, sizeof g->pci, "00000000:%02X:00.0", 0x1b + i);
		g->numa = (int)i;
		g->answered = 1;
		g->healthy = !i;
		snprintf(g->why, sizeof g->why, "fatal XID 79");
		g->mem_total = 80 * GiB;
		g->mem_used = 3 * GiB;
		g->mem_free = 77 * GiB;
		g->util = i ? -1 : 40;
		g->mem_util = i ? -1 : 5;
		g->ecc[0] = 2;
		g->ecc[1] = UINT64_MAX;
		g->link[1 - i] = 280;
	}
	s->gpu[0].nproc = 1;
	s->gpu[0].proc = calloc(1, sizeof *s->gpu[0].proc);
	s->gpu[0].proc[0] = (struct gp_agent_proc){.pid = 4242, .mem = GiB, .tenant = 0};
	s->ntenant = 2;
	s->tenant = calloc(2, sizeof *s->tenant);
	for (unsigned t = 0; t < 2; t++) {
		struct gp_agent_tenant *tn = &s->tenant[t];

		snprintf(tn->uid, sizeof tn->uid, "uid-%u", t);
		snprintf(tn->container, sizeof tn->container, "main");
		snprintf(tn->ns, sizeof tn->ns, "ml");
		snprintf(tn->pod, sizeof tn->pod, "pod-%u", t);
		tn->nproc = 1;
		tn->pids = calloc(1, sizeof *tn->pids);
		tn->ngpu = 1;
		tn->gpu[0] = (struct gp_agent_tgpu){.gpu = 0, .limit = t ? 0 : 2 * GiB,
						     .used = GiB, .peak = 2 * GiB, .refused = 3,
						     .active_ns = (t ? 990 : 100) * 1000000000ull,
						     .util = 25};
		snprintf(tn->gpu[0].uuid, sizeof tn->gpu[0].uuid, "%s", UUID0);
		tn->gpu[0].priority = GP_REGION_PRIO_NORMAL;
		tn->gpu[0].core_policy = GP_REGION_CORE_HARD;
		tn->gpu[0].compute_pct = tn->gpu[0].throttled_pct = -1;
	}
	/* The first tenant has a compute share and high priority: metered. */
	s->tenant[0].gpu[0].core_limit = 30;
	s->tenant[0].gpu[0].core_policy = GP_REGION_CORE_ELASTIC;
	s->tenant[0].gpu[0].priority = GP_REGION_PRIO_HIGH;
	s->tenant[0].gpu[0].metered = 1;
	s->tenant[0].gpu[0].compute_ns = 2500000000ull;
	s->tenant[0].gpu[0].throttled_ns = 125000000ull;
	s->tenant[0].gpu[0].compute_pct = 27.5;
	s->tenant[0].gpu[0].throttled_pct = 3.2;
	return s;
}

static int has(const char *text, const char *line)
{
	return strstr(text, line) != NULL;
}

static void test_metrics(void **state)
{
	struct gp_agent_snap *s = sample();
	struct gp_agent_counters c = {.collections = 7, .idle_after_s = 3600};
	char *text;
	size_t len;

	(void)state;
	assert_int_equal(gp_agent_metrics(s, &c, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	/* Every family has HELP and TYPE; counters end in _total. */
	for (const char *p = text; (p = strstr(p, "# TYPE ")); p++) {
		char name[128], type[16], help[160];

		assert_int_equal(sscanf(p, "# TYPE %127s %15s", name, type), 2);
		snprintf(help, sizeof help, "# HELP %s ", name);
		assert_true(has(text, help));
		if (!strcmp(type, "counter"))
			assert_true(strstr(name, "_total") != NULL);
	}
	assert_true(has(text, "gpupool_gpu_memory_total_bytes{node=\"node-1\",uuid=\"" UUID0
			      "\",index=\"0\",model=\"NVIDIA H100 \\\"SXM\\\"\"} 85899345920\n"));
	assert_true(has(text, "gpupool_gpu_utilization_ratio{node=\"node-1\",uuid=\"" UUID0));
	/* Unknown figures are left out, not 0. */
	assert_false(has(text, "gpupool_gpu_utilization_ratio{node=\"node-1\",uuid=\"" UUID1));
	assert_true(has(text, "gpupool_gpu_healthy{node=\"node-1\",uuid=\"" UUID1
			      "\",index=\"1\",model=\"NVIDIA H100 \\\"SXM\\\"\"} 0\n"));
	assert_true(has(text, ",type=\"corrected\"} 2\n"));
	assert_false(has(text, ",type=\"uncorrected\"}"));
	assert_true(has(text, "peer_uuid=\"" UUID1 "\"} 280\n"));
	assert_true(has(text, "gpupool_process_memory_used_bytes{node=\"node-1\",uuid=\"" UUID0
			      "\",model=\"NVIDIA H100 \\\"SXM\\\"\",namespace=\"ml\",pod=\"pod-0\","
			      "container=\"main\",pod_uid=\"uid-0\",pid=\"4242\"} 1073741824\n"));
	assert_true(has(text, "gpupool_tenant_memory_limit_bytes{node=\"node-1\",uuid=\"" UUID0
			      "\",model=\"NVIDIA H100 \\\"SXM\\\"\",namespace=\"ml\",pod=\"pod-0\","
			      "container=\"main\",pod_uid=\"uid-0\"} 2147483648\n"));
	/* A tenant without a budget has no limit series. */
	assert_false(has(text, "gpupool_tenant_memory_limit_bytes{node=\"node-1\",uuid=\"" UUID0
			       "\",model=\"NVIDIA H100 \\\"SXM\\\"\",namespace=\"ml\",pod=\"pod-1\""));
	assert_true(has(text, "pod_uid=\"uid-0\"} 900\n"));  /* idle seconds */
	assert_true(has(text, "pod_uid=\"uid-1\"} 10\n"));
	assert_true(has(text, "gpupool_tenant_refused_allocations_total{"));
	/* Compute counters for every tenant, 0 where nothing is metered; the
	 * policy and priority as labels of the info series. */
	assert_true(has(text, "# TYPE gpupool_tenant_compute_seconds_total counter\n"));
	assert_true(has(text, "# TYPE gpupool_tenant_throttled_seconds_total counter\n"));
	assert_true(has(text, "gpupool_tenant_compute_seconds_total{node=\"node-1\",uuid=\"" UUID0
			      "\",model=\"NVIDIA H100 \\\"SXM\\\"\",namespace=\"ml\",pod=\"pod-0\","
			      "container=\"main\",pod_uid=\"uid-0\"} 2.5\n"));
	assert_true(has(text, "gpupool_tenant_throttled_seconds_total{node=\"node-1\",uuid=\"" UUID0
			      "\",model=\"NVIDIA H100 \\\"SXM\\\"\",namespace=\"ml\",pod=\"pod-0\","
			      "container=\"main\",pod_uid=\"uid-0\"} 0.125\n"));
	assert_true(has(text, "gpupool_tenant_compute_seconds_total{node=\"node-1\",uuid=\"" UUID0
			      "\",model=\"NVIDIA H100 \\\"SXM\\\"\",namespace=\"ml\",pod=\"pod-1\","
			      "container=\"main\",pod_uid=\"uid-1\"} 0\n"));
	assert_true(has(text, "gpupool_tenant_throttled_seconds_total{node=\"node-1\",uuid=\"" UUID0
			      "\",model=\"NVIDIA H100 \\\"SXM\\\"\",namespace=\"ml\",pod=\"pod-1\","
			      "container=\"main\",pod_uid=\"uid-1\"} 0\n"));
	assert_true(has(text, "pod_uid=\"uid-0\",core_policy=\"elastic\",priority=\"high\"} 1\n"));
	assert_true(has(text, "pod_uid=\"uid-1\",core_policy=\"hard\",priority=\"normal\"} 1\n"));
	assert_true(has(text, "gpupool_tenant_core_limit_ratio{node=\"node-1\",uuid=\"" UUID0
			      "\",model=\"NVIDIA H100 \\\"SXM\\\"\",namespace=\"ml\",pod=\"pod-0\","
			      "container=\"main\",pod_uid=\"uid-0\"} 0.3\n"));
	assert_true(has(text, "gpupool_agent_collections_total{node=\"node-1\"} 7\n"));
	free(text);
	gp_snap_unref(s);
}

static void test_node_state_reads_back_in_the_scheduler(void **state)
{
	struct gp_agent_snap *s = sample();
	struct gp_annot_node n;
	char why[256], *text = gp_node_state(s, 10, 1700000000123ll), *undated;

	(void)state;
	assert_non_null(text);
	assert_int_equal(gp_annot_node_parse(text, &n, why, sizeof why), 0);
	assert_int_equal(n.ngpu, 2);
	assert_int_equal(n.updated_ms, 1700000000123ll);
	for (unsigned i = 0; i < 2; i++) {
		assert_string_equal(n.gpu[i].uuid, i ? UUID1 : UUID0);
		assert_string_equal(n.gpu[i].model, "NVIDIA H100 \"SXM\"");
		assert_int_equal(n.gpu[i].mem_bytes, 80 * GiB);
		assert_int_equal(n.gpu[i].compute, 100);
		assert_int_equal(n.gpu[i].slices, 10);
		assert_int_equal(n.gpu[i].numa, (int)i);
	}
	assert_true(n.gpu[0].healthy);
	assert_false(n.gpu[1].healthy);
	assert_int_equal(n.link[0][1], 280);
	assert_int_equal(n.link[1][0], 280);
	/* Undated texts compare equal until a card changes. */
	undated = gp_node_state(s, 10, -1);
	assert_null(strstr(undated, "updated"));
	free(undated);
	free(text);
	gp_snap_unref(s);
}

static void test_idle_verdicts(void **state)
{
	struct gp_agent_snap *s = sample();
	struct gp_idle_pod *v;
	long n;

	(void)state;
	s->tenant[1].exempt = 1;
	n = gp_idle_judge(s, 60, &v);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].uid, "uid-0");
	assert_true(v[0].idle);
	assert_true(v[0].idle_s > 899 && v[0].idle_s < 901);
	assert_string_equal(v[0].ns, "ml");
	assert_string_equal(v[0].pod, "pod-0");
	assert_false(v[1].idle);
	assert_true(v[1].exempt);
	free(v);
	/* Two containers of one pod: busy if either is. */
	snprintf(s->tenant[1].uid, sizeof s->tenant[1].uid, "uid-0");
	n = gp_idle_judge(s, 60, &v);
	assert_int_equal(n, 1);
	assert_false(v[0].idle);
	free(v);
	/* A pod holding no process is not judged. */
	s->tenant[0].nproc = s->tenant[1].nproc = 0;
	n = gp_idle_judge(s, 60, &v);
	assert_int_equal(n, 0);
	free(v);
	gp_snap_unref(s);
}

static void test_json_documents(void **state)
{
	struct gp_agent_snap *s = sample();
	json_t *g = gp_snap_gpus_json(s), *t = gp_snap_tenants_json(s);
	json_t *g1 = json_array_get(json_object_get(g, "gpus"), 1);
	json_t *t0 = json_array_get(json_object_get(t, "tenants"), 0);

	(void)state;
	assert_string_equal(json_string_value(json_object_get(g, "updated")),
			    "2023-11-14T22:13:20.000Z");
	assert_false(json_is_true(json_object_get(g1, "healthy")));
	assert_string_equal(json_string_value(json_object_get(g1, "unhealthyReason")),
			    "fatal XID 79");
	assert_true(json_is_null(json_object_get(g1, "utilizationPercent")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(g1, "links"), UUID0)),
			 280);
	assert_string_equal(json_string_value(json_object_get(t0, "pod")), "pod-0");
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(t0, "gpus"), 0), "refused")),
			 3);
	{
		json_t *g0 = json_array_get(json_object_get(t0, "gpus"), 0);
		json_t *g1t = json_array_get(
			json_object_get(json_array_get(json_object_get(t, "tenants"), 1), "gpus"), 0);

		assert_int_equal(json_integer_value(json_object_get(g0, "coreLimit")), 30);
		assert_string_equal(json_string_value(json_object_get(g0, "corePolicy")), "elastic");
		assert_string_equal(json_string_value(json_object_get(g0, "priority")), "high");
		assert_true(json_real_value(json_object_get(g0, "computeSeconds")) == 2.5);
		assert_true(json_real_value(json_object_get(g0, "throttledSeconds")) == 0.125);
		assert_true(json_real_value(json_object_get(g0, "computePercent")) == 27.5);
		assert_true(json_real_value(json_object_get(g0, "throttledPercent")) == 3.2);
		/* Not metered: rates unknown, counters 0. */
		assert_string_equal(json_string_value(json_object_get(g1t, "priority")), "normal");
		assert_true(json_is_null(json_object_get(g1t, "computePercent")));
		assert_true(json_is_null(json_object_get(g1t, "throttledPercent")));
		assert_true(json_real_value(json_object_get(g1t, "computeSeconds")) == 0);
	}
	json_decref(g);
	json_decref(t);
	gp_snap_unref(s);
}

/* One collection of the test tree (no NVML), as the agent takes it. */
static struct gp_agent_snap *collect(struct gp_collect *c)
{
	struct gp_agent_snap *s = NULL;
	struct gp_tenant_stale *stale;
	size_t nstale;

	assert_int_equal(gp_collect(c, &s, &stale, &nstale), 0);
	free(stale);
	return s;
}

/* The compute figures a library wrote into a region reach the snapshot,
 * the metrics and the JSON; their rates between two collections are the
 * share of the card used and held back. */
static void test_compute_from_region(void **state)
{
	struct gp_collect c = {.state_dir = dir, .node = "node-1", .max_tenants = 64,
			       .nvml_err = "no NVML here", .proc_root = "/proc"};
	struct gp_region r, plain;
	struct gp_region_dev *d;
	struct gp_agent_snap *s1, *s2, *s3;
	const struct gp_agent_tgpu *g;
	double dt, want;
	char *text, p[PATH_MAX];
	size_t len;

	(void)state;
	live_tenant(&r, "pod-m", "main", MiB);
	live_tenant(&plain, "pod-n", "main", MiB); /* no share, normal priority */
	plain.hdr->dev[0].priority = GP_REGION_PRIO_NORMAL;
	d = &r.hdr->dev[0];
	d->core_limit = 40;
	d->core_policy = GP_REGION_CORE_HARD;
	d->priority = GP_REGION_PRIO_LOW;
	d->compute_ns = 3000000000ull;
	d->throttled_ns = 500000000ull;
	s1 = collect(&c);
	assert_int_equal(s1->ntenant, 2);
	g = &s1->tenant[0].gpu[0];
	assert_string_equal(s1->tenant[0].uid, "pod-m");
	assert_true(s1->tenant[0].region_id == r.hdr->id && r.hdr->id != 0);
	assert_int_equal(g->core_limit, 40);
	assert_int_equal(g->core_policy, GP_REGION_CORE_HARD);
	assert_int_equal(g->priority, GP_REGION_PRIO_LOW);
	assert_true(g->metered);
	assert_true(g->compute_ns == 3000000000ull && g->throttled_ns == 500000000ull);
	assert_true(g->compute_pct < 0 && g->throttled_pct < 0); /* first sight */
	assert_false(s1->tenant[1].gpu[0].metered);
	assert_int_equal(gp_agent_metrics(s1, &(struct gp_agent_counters){0}, &text, &len), 0);
	assert_true(has(text, "pod_uid=\"pod-m\"} 3\n"));   /* compute seconds */
	assert_true(has(text, "pod_uid=\"pod-m\"} 0.5\n")); /* throttled seconds */
	assert_true(has(text, "pod_uid=\"pod-m\",core_policy=\"hard\",priority=\"low\"} 1\n"));
	assert_true(has(text, "gpupool_tenant_compute_seconds_total{node=\"node-1\",uuid=\"" UUID0
			      "\",model=\"\",namespace=\"\",pod=\"\",container=\"main\","
			      "pod_uid=\"pod-n\"} 0\n"));
	free(text);

	/* A second later, 0.25 s more device time and 0.1 s held back. */
	usleep(200000);
	d->compute_ns += 250000000ull;
	d->throttled_ns += 100000000ull;
	plain.hdr->dev[0].compute_ns = 0;
	s2 = collect(&c);
	dt = (double)(s2->mono_ns - s1->mono_ns);
	g = &s2->tenant[0].gpu[0];
	want = 250000000.0 / dt * 100;
	assert_true(g->compute_pct > want - 0.051 && g->compute_pct < want + 0.051);
	want = 100000000.0 / dt * 100;
	assert_true(g->throttled_pct > want - 0.051 && g->throttled_pct < want + 0.051);
	assert_true(s2->tenant[1].gpu[0].compute_pct < 0); /* not metered */
	{
		json_t *doc = gp_snap_tenants_json(s2);
		json_t *jg = json_array_get(
			json_object_get(json_array_get(json_object_get(doc, "tenants"), 0), "gpus"), 0);

		assert_true(json_real_value(json_object_get(jg, "computePercent")) == g->compute_pct);
		assert_true(json_real_value(json_object_get(jg, "computeSeconds")) == 3.25);
		assert_string_equal(json_string_value(json_object_get(jg, "corePolicy")), "hard");
		assert_string_equal(json_string_value(json_object_get(jg, "priority")), "low");
		json_decref(doc);
	}

	/* The region made again: its counters started over, so no rate. */
	gp_shm_close(&r.shm);
	snprintf(p, sizeof p, "%s/tenants/pod-m/main/region", dir);
	assert_int_equal(unlink(p), 0);
	snprintf(p, sizeof p, "%s/tenants/pod-m/main", dir);
	assert_int_equal(rmdir(p), 0);
	live_tenant(&r, "pod-m", "main", MiB);
	r.hdr->dev[0].core_limit = 40;
	r.hdr->dev[0].compute_ns = 1;
	s3 = collect(&c);
	assert_true(s3->tenant[0].region_id == r.hdr->id);
	assert_true(s3->tenant[0].gpu[0].compute_pct < 0);
	gp_snap_unref(s1);
	gp_snap_unref(s2);
	gp_snap_unref(s3);
	gp_collect_done(&c);
	gp_shm_close(&r.shm);
	gp_shm_close(&plain.shm);
}

static void test_xid_policy(void **state)
{
	const unsigned mine[] = {79};

	(void)state;
	assert_false(gp_health_fatal(13, NULL, 0));  /* an application's fault */
	assert_false(gp_health_fatal(43, NULL, 0));
	assert_true(gp_health_fatal(79, NULL, 0));   /* fallen off the bus */
	assert_true(gp_health_fatal(48, NULL, 0));   /* double-bit ECC */
	assert_false(gp_health_fatal(79, mine, 1));
	assert_true(gp_health_fatal(13, mine, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scan_finds_live_and_dead_tenants, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_scan_without_tenants_dir, setup, teardown),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_node_state_reads_back_in_the_scheduler),
		cmocka_unit_test(test_idle_verdicts),
		cmocka_unit_test(test_json_documents),
		cmocka_unit_test_setup_teardown(test_compute_from_region, setup, teardown),
		cmocka_unit_test(test_xid_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
