"""test_deviceplugin.py - the agent's kubelet device plugin, driven by a
fake kubelet (grpcio: the Registration service on kubelet.sock, and calls
on the plugin's sockets exactly as kubelet makes them), with the fake API
server of the scheduler tests holding the pods and their allocations."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent import futures

import grpc
import pytest

from agent_kit import GiB, MiB, Agent, SIMWL, machine, preload, series, until
from scaler_kit import BUILD, ROOT
from test_sched_fakeapi import FakeAPI, write_kubeconfig

assert machine  # a fixture

ALLOC = "gpupool.io/allocation"
CONSUMED = "gpupool.io/allocation-consumed"


@pytest.fixture(scope="module")
def pb():
    """deviceplugin_pb2 generated from proto/ into a temp dir."""
    out = tempfile.mkdtemp(prefix="dpstubs-", dir=os.environ.get("TMPDIR"))
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out=" + out,
                    os.path.join(ROOT, "proto", "deviceplugin.proto")], check=True)
    sys.path.insert(0, out)
    try:
        import deviceplugin_pb2
        yield deviceplugin_pb2
    finally:
        sys.path.remove(out)
        shutil.rmtree(out, ignore_errors=True)


class Kubelet:
    """kubelet's Registration service on DIR/kubelet.sock; records what
    registers, and calls plugins as kubelet does."""

    def __init__(self, pb, directory):
        self.pb = pb
        self.dir = directory
        self.registered = []
        self.lock = threading.Lock()
        self.server = None
        self.start()

    def start(self):
        def register(req, ctx):
            with self.lock:
                self.registered.append((req.resource_name, req.endpoint, req.version))
            return self.pb.Empty()
        handler = grpc.method_handlers_generic_handler("v1beta1.Registration", {
            "Register": grpc.unary_unary_rpc_method_handler(
                register, request_deserializer=self.pb.RegisterRequest.FromString,
                response_serializer=self.pb.Empty.SerializeToString)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("unix:" + os.path.join(self.dir, "kubelet.sock"))
        self.server.start()

    def restart(self):
        """What a kubelet restart does: its socket anew, plugins' removed."""
        self.server.stop(0).wait()
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        with self.lock:
            self.registered = []
        self.start()

    def resources(self):
        with self.lock:
            return {r for r, _, _ in self.registered}

    def endpoint(self, resource):
        with self.lock:
            for r, e, _ in self.registered:
                if r == resource:
                    return os.path.join(self.dir, e)
        return None

    def channel(self, resource):
        return grpc.insecure_channel("unix:" + self.endpoint(resource))

    def allocate(self, resource, ids):
        with self.channel(resource) as ch:
            call = ch.unary_unary("/v1beta1.DevicePlugin/Allocate",
                                  request_serializer=self.pb.AllocateRequest.SerializeToString,
                                  response_deserializer=self.pb.AllocateResponse.FromString)
            req = self.pb.AllocateRequest(container_requests=[
                self.pb.ContainerAllocateRequest(devices_ids=ids)])
            return call(req, timeout=10)

    def stop(self):
        self.server.stop(0).wait()


def list_and_watch(kubelet, resource, count=1, timeout=10):
    """The first `count` device lists the plugin streams."""
    with kubelet.channel(resource) as ch:
        call = ch.unary_stream("/v1beta1.DevicePlugin/ListAndWatch",
                               request_serializer=kubelet.pb.Empty.SerializeToString,
                               response_deserializer=kubelet.pb.ListAndWatchResponse.FromString)
        out = []
        stream = call(kubelet.pb.Empty(), timeout=timeout)
        for msg in stream:
            out.append(msg)
            if len(out) == count:
                stream.cancel()
                break
        return out


def gpu_pod(name, uid, uuid, mib, ctr="main", count=1):
    alloc = {"version": 1, "node": "node-1", "podUID": uid, "boundAt": "2026-12-06T00:00:00.000Z",
             "containers": [{"name": ctr, "init": False, "gpus": [
                 {"uuid": uuid, "memoryBytes": mib * MiB, "compute": 0, "exclusive": False}]}],
             "footprint": [{"uuid": uuid, "memoryBytes": mib * MiB, "compute": 0, "tenants": 1,
                            "exclusive": False}]}
    return {"metadata": {"name": name, "namespace": "ml", "uid": uid,
                         "annotations": {ALLOC: json.dumps(alloc)}},
            "spec": {"nodeName": "node-1", "containers": [
                {"name": ctr, "image": "app", "resources": {"limits": {
                    "gpupool.io/vgpu": str(count), "gpupool.io/vgpu-memory": str(mib)}}}]},
            "status": {"phase": "Pending"}}


@pytest.fixture
def node(request, machine, pb):
    kdir = tempfile.mkdtemp(prefix="kubelet-", dir="/tmp")  # unix paths stay short
    request.addfinalizer(lambda: shutil.rmtree(kdir, ignore_errors=True))
    kubelet = Kubelet(pb, kdir)
    request.addfinalizer(kubelet.stop)
    api = FakeAPI(nodes=[{"metadata": {"name": "node-1"}}]).start()
    request.addfinalizer(api.stop)
    kc = write_kubeconfig(os.path.join(machine.dir, "kubeconfig"), api.url)
    agent = Agent(machine, ["--kubeconfig", kc, "--resync", "1s", "--device-plugin",
                            "--kubelet-dir", kdir])
    request.addfinalizer(lambda: agent.stop())
    return kubelet, api, agent


RES = "gpupool.io/vgpu"
MODEL_RES = "gpupool.io/vgpu-h100-sxm-80gb"


def test_registers_and_lists_slices(node, machine):
    kubelet, api, agent = node
    until("registration", lambda: kubelet.resources() == {RES, MODEL_RES})
    uuids = [g["uuid"] for g in agent.json("/v1/gpus")["gpus"]]
    first = list_and_watch(kubelet, RES)[0]
    assert len(first.devices) == 20  # 2 cards x 10 slices
    assert {d.ID.rsplit("-", 1)[0] for d in first.devices} == set(uuids)
    assert all(d.health == "Healthy" for d in first.devices)
    assert {d.topology.nodes[0].ID for d in first.devices} == {0, 1}
    # A fatal XID: the list is sent again with the card's slices unhealthy.
    with kubelet.channel(RES) as ch:
        call = ch.unary_stream("/v1beta1.DevicePlugin/ListAndWatch",
                               request_serializer=kubelet.pb.Empty.SerializeToString,
                               response_deserializer=kubelet.pb.ListAndWatchResponse.FromString)
        stream = call(kubelet.pb.Empty(), timeout=15)
        msgs = iter(stream)
        assert all(d.health == "Healthy" for d in next(msgs).devices)
        t0 = time.monotonic()
        machine.simctl("xid", 1, 79)
        second = next(msgs)
        took = time.monotonic() - t0
        stream.cancel()
    bad = {d.ID for d in second.devices if d.health == "Unhealthy"}
    assert bad == {"%s-%d" % (uuids[1], k) for k in range(10)}
    assert took < 1.0


def test_allocate_answers_the_pods_slice(node, machine):
    kubelet, api, agent = node
    until("registration", lambda: RES in kubelet.resources())
    uuid = agent.json("/v1/gpus")["gpus"][0]["uuid"]
    api.put_pod(gpu_pod("nb-0", "uid-nb0", uuid, 2048))
    resp = kubelet.allocate(RES, ["x-0"])
    c = resp.container_responses[0]
    assert dict(c.envs) == {"NVIDIA_VISIBLE_DEVICES": uuid,
                            "GPUPOOL_MEMORY_LIMIT_0": str(2 * GiB),
                            "GPUPOOL_REGION": "/var/run/gpupool/region",
                            "GPUPOOL_NODE": "/var/run/gpupool-node/node"}
    state = machine.state_dir
    assert {(m.container_path, m.host_path, m.read_only) for m in c.mounts} == {
        ("/usr/local/gpupool/libgpupool.so", state + "/lib/libgpupool.so", True),
        ("/etc/ld.so.preload", state + "/lib/ld.so.preload", True),
        ("/var/run/gpupool", state + "/tenants/uid-nb0/main", False),
        ("/var/run/gpupool-node/node", state + "/node", False)}
    # The node file exists before any container mounts it, open to every user.
    assert os.stat(state + "/node").st_mode & 0o777 == 0o666
    assert os.path.isdir(state + "/tenants/uid-nb0/main")
    assert open(state + "/lib/ld.so.preload").read() == "/usr/local/gpupool/libgpupool.so\n"
    assert json.loads(api.annotations(api.pod("ml", "nb-0"))[CONSUMED]) == ["main"]
    # Handed out once: a second Allocate finds no pod and says why.
    with pytest.raises(grpc.RpcError) as e:
        kubelet.allocate(RES, ["x-1"])
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no pod bound to node node-1" in e.value.details()

    # The container runs with what it got (container paths mapped to the
    # host's): preloaded from ld.so.preload's library, its region in its
    # directory, refused past 2 GiB; the agent names it.
    env = machine.env(NVIDIA_VISIBLE_DEVICES=uuid, GPUPOOL_MEMORY_LIMIT_0=str(2 * GiB),
                      GPUPOOL_REGION=state + "/tenants/uid-nb0/main/region",
                      LD_PRELOAD=preload(state + "/lib/libgpupool.so"),
                      LD_LIBRARY_PATH=os.path.join(BUILD, "sim"))
    p = subprocess.Popen([SIMWL, "init", "alloc", "1GiB", "alloc", "1GiB", "hold"], env=env,
                         stdout=subprocess.PIPE, text=True)
    try:
        out = ""
        while "held=1" not in out:
            line = p.stdout.readline()
            assert line, out
            out += line
        allocs = [l for l in out.splitlines() if l.startswith("alloc=")]
        assert allocs == ["alloc=0", "alloc=2"]  # the second is past 2 GiB (context included)
        until("the tenant under its pod's name", lambda: series(
            agent.get("/metrics")[1], "gpupool_tenant_processes", namespace="ml", pod="nb-0",
            container="main") and True)
    finally:
        p.kill()
        p.wait()
    # The pod deleted: the agent collects its directory.
    with api.lock:
        del api.pods[("ml", "nb-0")]
    until("the tenant collected", lambda: not os.path.exists(state + "/tenants/uid-nb0"),
          limit=20)


def test_a_restarted_agent_hands_nothing_out_twice(node, machine):
    kubelet, api, agent = node
    until("registration", lambda: RES in kubelet.resources())
    uuid = agent.json("/v1/gpus")["gpus"][0]["uuid"]
    api.put_pod(gpu_pod("nb-1", "uid-nb1", uuid, 1024))
    kubelet.allocate(RES, ["x-0"])
    assert agent.stop() == 0, agent.output()
    with kubelet.lock:
        kubelet.registered = []
    kc = os.path.join(machine.dir, "kubeconfig")
    again = Agent(machine, ["--kubeconfig", kc, "--device-plugin", "--kubelet-dir",
                            kubelet.dir])
    try:
        until("registration again", lambda: RES in kubelet.resources())
        with pytest.raises(grpc.RpcError) as e:
            kubelet.allocate(RES, ["x-1"])
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        assert again.stop() == 0, again.output()


def test_survives_a_kubelet_restart(node, machine):
    kubelet, api, agent = node
    until("registration", lambda: RES in kubelet.resources())
    kubelet.restart()
    until("registration again", lambda: kubelet.resources() == {RES, MODEL_RES}, limit=10)
    assert len(list_and_watch(kubelet, RES)[0].devices) == 20


def test_allocate_without_an_allocation_is_refused(node):
    kubelet, api, agent = node
    until("registration", lambda: RES in kubelet.resources())
    api.put_pod({"metadata": {"name": "plain", "namespace": "ml", "uid": "uid-plain"},
                 "spec": {"nodeName": "node-1", "containers": [
                     {"name": "main", "resources": {"limits": {"gpupool.io/vgpu": "1"}}}]},
                 "status": {"phase": "Pending"}})
    with pytest.raises(grpc.RpcError) as e:
        kubelet.allocate(RES, ["x-0"])
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "gpupool.io/allocation" in e.value.details()


def test_options_preference_and_prestart(node):
    kubelet, api, agent = node
    until("registration", lambda: RES in kubelet.resources())
    pb = kubelet.pb
    with kubelet.channel(RES) as ch:
        opts = ch.unary_unary("/v1beta1.DevicePlugin/GetDevicePluginOptions",
                              request_serializer=pb.Empty.SerializeToString,
                              response_deserializer=pb.DevicePluginOptions.FromString)(
                                  pb.Empty(), timeout=5)
        assert not opts.pre_start_required and not opts.get_preferred_allocation_available
        pref = ch.unary_unary(
            "/v1beta1.DevicePlugin/GetPreferredAllocation",
            request_serializer=pb.PreferredAllocationRequest.SerializeToString,
            response_deserializer=pb.PreferredAllocationResponse.FromString)(
                pb.PreferredAllocationRequest(container_requests=[
                    pb.ContainerPreferredAllocationRequest(
                        available_deviceIDs=["a", "b", "c"], must_include_deviceIDs=["c"],
                        allocation_size=2)]), timeout=5)
        assert list(pref.container_responses[0].deviceIDs) == ["c", "a"]
        ch.unary_unary("/v1beta1.DevicePlugin/PreStartContainer",
                       request_serializer=pb.PreStartContainerRequest.SerializeToString,
                       response_deserializer=pb.PreStartContainerResponse.FromString)(
                           pb.PreStartContainerRequest(devices_ids=["a"]), timeout=5)


def test_hami_names(machine, pb):
    kdir = tempfile.mkdtemp(prefix="kubelet-", dir="/tmp")
    kubelet = Kubelet(pb, kdir)
    agent = Agent(machine, ["--no-kube", "--device-plugin", "--hami-names", "--kubelet-dir",
                            kdir])
    try:
        until("registration", lambda: kubelet.resources() == {"nvidia.com/gpu"})
        assert len(list_and_watch(kubelet, "nvidia.com/gpu")[0].devices) == 20
        # Without an API server there is no pod to find: said, not guessed.
        with pytest.raises(grpc.RpcError) as e:
            kubelet.allocate("nvidia.com/gpu", ["x-0"])
        assert "no Kubernetes API" in e.value.details()
    finally:
        assert agent.stop() == 0, agent.output()
        kubelet.stop()
        shutil.rmtree(kdir, ignore_errors=True)
