/* devplugin.h - the kubelet device plugin (device-plugin API v1beta1),
 * inside the agent.
 *
 * One gRPC server per resource on a unix socket in kubelet's directory:
 * gpupool.io/vgpu, and gpupool.io/vgpu-<model> per card model on the node
 * (or HAMi's nvidia.com/gpu alone with --hami-names).  Each healthy card
 * is `slices` devices.  ListAndWatch streams the device list and sends it
 * again within a tick when a card's health changes.  Allocate finds the
 * pod (allocate.h) on the agent's Kubernetes worker, never on the loop,
 * and answers with the container's environment and mounts (DESIGN.md,
 * "Node").  A thread registers every resource with kubelet, and again
 * whenever kubelet's socket is recreated (a kubelet restart, which also
 * deletes the plugins' sockets: they are recreated first).
 */
#ifndef GP_AGENT_DEVPLUGIN_H
#define GP_AGENT_DEVPLUGIN_H

struct gp_agent;
struct event_base;
struct gp_devplugin;

/* Install the library into the state directory, start the servers and the
 * registration thread.  Returns 0 or a negative errno (logged). */
int gp_devplugin_start(struct gp_devplugin **out, struct gp_agent *a, struct event_base *base)
	__attribute__((warn_unused_result));

void gp_devplugin_stop(struct gp_devplugin *dp);

#endif
