/* agent.h - `gpupool agent`: the node daemon.
 *
 * One per node.  It finds the node's GPUs through NVML and its tenants
 * through the region files the library writes under the state directory,
 * and serves both: Prometheus /metrics, JSON /v1/gpus and /v1/tenants,
 * /healthz.  With a Kubernetes API it writes and heartbeats the Node's
 * gpupool.io/node-state annotation (docs/protocol.md), names tenants by
 * their pods, collects the directories of pods that are gone, and acts on
 * tenants idle for longer than --idle-after.  docs/agent.md is its manual.
 */
#ifndef GP_AGENT_AGENT_H
#define GP_AGENT_AGENT_H

#include <stdint.h>

#define GP_AGENT_MAX_XIDS 32 /* --ignore-xid entries */

enum gp_idle_action {
	GP_IDLE_MARK = 0,  /* annotate the pod and record an Event */
	GP_IDLE_EVICT = 1, /* that, then evict it through the Eviction API */
};

struct gp_agent_config {
	const char *listen;        /* HTTP address, e.g. ":9400"; NULL = off */
	const char *state_dir;     /* holds tenants/<pod-uid>/<container>/region */
	const char *node_name;     /* the Node this agent runs on */
	const char *nvml_path;     /* library to load; NULL = libnvidia-ml.so.1 */
	const char *kubeconfig;    /* NULL = in-cluster credentials */
	int kube;                  /* talk to the API server at all */
	const char *ready_file;    /* written once serving: {"pid","http_port"} */
	uint64_t interval_ms;      /* between collections */
	uint64_t heartbeat_ms;     /* node-state refresh */
	uint64_t resync_ms;        /* between pod lists */
	uint64_t idle_after_ms;    /* 0 = no idle policy (the metric stays) */
	enum gp_idle_action idle_action;
	const char *idle_exec;     /* shell command run for an idle pod, or NULL */
	uint64_t idle_exec_timeout_ms;
	unsigned slices;           /* node state: tenants per card */
	unsigned max_tenants;      /* regions read per collection */
	unsigned nignore_xids;     /* XIDs that do not make a card unhealthy */
	unsigned ignore_xids[GP_AGENT_MAX_XIDS];
	int device_plugin;         /* serve kubelet's device-plugin API */
	const char *kubelet_dir;   /* kubelet's device-plugin directory */
	int hami_names;            /* register nvidia.com/gpu instead of ours */
	const char *lib;           /* libgpupool.so to install on the host */
};

/* Run until SIGINT/SIGTERM.  Returns 0, or a negative errno when the agent
 * could not start (the reason has been logged). */
int gp_agent_run(const struct gp_agent_config *c);

#endif
