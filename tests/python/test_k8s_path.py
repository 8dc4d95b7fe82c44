"""test_k8s_path.py - the whole path on the simulator: a pod asking for one
vGPU with 2 GiB goes through `gpupool webhook`, `gpupool sched`'s filter,
prioritize and bind, and the agent's device plugin's Allocate (called by a
fake kubelet); a workload then runs with exactly the environment and mounts
returned and is refused past 2 GiB; the agent names it by its pod; deleting
the pod lets the agent collect its region.  Three pods on one card are
each held to their own budget."""
import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request

import grpc
import pytest

from agent_kit import GiB, MiB, Agent, Machine, SIMWL, preload, series, until
from scaler_kit import BUILD, GPUPOOL
from test_deviceplugin import RES, Kubelet, pb
from test_sched_fakeapi import FakeAPI, Sched, stopped_cleanly, write_kubeconfig

assert pb  # a fixture


@pytest.fixture
def machine(request):
    """One card: the three pods below must share it."""
    m = Machine(gpus="H100-SXM-80GB:80GiB:132")
    request.addfinalizer(m.close)
    return m

TOKEN_NODE = "node-1"


def make_certs(d):
    """A throwaway CA and a server certificate for 127.0.0.1."""
    def run(*a):
        subprocess.run(a, check=True, capture_output=True, timeout=60)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=test-ca", "-keyout", d + "/ca.key", "-out", d + "/ca.crt")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", d + "/tls.key", "-out", d + "/tls.csr")
    with open(d + "/ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", d + "/tls.csr", "-CA", d + "/ca.crt", "-CAkey",
        d + "/ca.key", "-CAcreateserial", "-days", "1", "-extfile", d + "/ext",
        "-out", d + "/tls.crt")


class Webhook:
    def __init__(self, d):
        make_certs(d)
        self.ready = d + "/webhook.ready"
        self.log = open(d + "/webhook.log", "w")
        self.proc = subprocess.Popen([GPUPOOL, "webhook", "--listen", "127.0.0.1:0",
                                      "--tls-cert", d + "/tls.crt", "--tls-key", d + "/tls.key",
                                      "--ready-file", self.ready],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        info = until("the webhook's ready file", self._ready)
        port = info.get("https_port") or info.get("http_port") or info.get("port")
        self.url = "https://127.0.0.1:%d/mutate" % port
        self.ctx = ssl.create_default_context(cafile=d + "/ca.crt")

    def _ready(self):
        assert self.proc.poll() is None, "gpupool webhook exited"
        with open(self.ready) as f:
            return json.load(f)

    def mutate(self, pod):
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "r-" + pod["metadata"]["name"], "operation": "CREATE",
                              "kind": {"group": "", "version": "v1", "kind": "Pod"},
                              "resource": {"group": "", "version": "v1", "resource": "pods"},
                              "namespace": pod["metadata"]["namespace"], "object": pod}}
        req = urllib.request.Request(self.url, data=json.dumps(review).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
            resp = json.load(r)["response"]
        assert resp["allowed"], resp
        if resp.get("patch"):
            pod = apply_patch(pod, json.loads(base64.b64decode(resp["patch"])))
        return pod

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()
        return self.proc.returncode


def apply_patch(doc, ops):
    """RFC 6902 add/replace, enough for the webhook's patches."""
    doc = json.loads(json.dumps(doc))
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = doc
        for p in parts[:-1]:
            target = target[int(p)] if isinstance(target, list) else target[p]
        last = parts[-1]
        assert op["op"] in ("add", "replace"), op
        if isinstance(target, list):
            if last == "-":
                target.append(op["value"])
            else:
                target.insert(int(last), op["value"])
        else:
            target[last] = op["value"]
    return doc


def user_pod(name, mib):
    """What a user writes: memory only; the webhook adds the rest."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ml", "uid": "uid-" + name},
            "spec": {"containers": [{"name": "main", "image": "app", "resources": {
                "limits": {"gpupool.io/vgpu-memory": str(mib)}}}]},
            "status": {"phase": "Pending"}}


@pytest.fixture
def cluster(request, machine, pb):
    d = tempfile.mkdtemp(prefix="gpk8s-", dir="/tmp")
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    kdir = d + "/kubelet"
    os.mkdir(kdir)
    kubelet = Kubelet(pb, kdir)
    request.addfinalizer(kubelet.stop)
    api = FakeAPI(nodes=[{"metadata": {"name": TOKEN_NODE}}]).start()
    request.addfinalizer(api.stop)
    kc = write_kubeconfig(d + "/kubeconfig", api.url)
    agent = Agent(machine, ["--kubeconfig", kc, "--resync", "1s", "--device-plugin",
                            "--kubelet-dir", kdir])
    request.addfinalizer(agent.stop)
    webhook = Webhook(d)
    request.addfinalizer(webhook.stop)
    sched = Sched(["--kubeconfig", kc, "--resync", "200ms"], tmp=d)
    request.addfinalizer(lambda: stopped_cleanly(sched))
    until("the node state", lambda: "gpupool.io/node-state" in
          api.annotations(api.node(TOKEN_NODE)))
    until("the plugin's registration", lambda: RES in kubelet.resources())
    return api, agent, webhook, sched, kubelet


def admit_and_place(api, webhook, sched, kubelet, pod):
    """The pod through the webhook, the extender's three verbs, kubelet's
    Allocate.  Returns the mutated pod and Allocate's answer."""
    pod = webhook.mutate(pod)
    assert pod["spec"]["schedulerName"] == "gpupool-scheduler"
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["gpupool.io/vgpu"] == "1"
    api.put_pod(pod)
    code, body = sched.post("filter", {"Pod": pod, "NodeNames": [TOKEN_NODE]})
    assert code == 200 and body["NodeNames"] == [TOKEN_NODE], body
    code, body = sched.post("prioritize", {"Pod": pod, "NodeNames": [TOKEN_NODE]})
    assert code == 200, body
    code, body = sched.post("bind", {"PodName": pod["metadata"]["name"], "PodNamespace": "ml",
                                     "PodUID": pod["metadata"]["uid"], "Node": TOKEN_NODE})
    assert code == 200 and not body.get("Error"), body
    resp = kubelet.allocate(RES, ["slice-%s" % pod["metadata"]["name"]])
    return pod, resp.container_responses[0]


def run_container(machine, answer, *cmds):
    """simwl with exactly the answer's environment; container paths are
    the mounts' host paths (no container runtime here)."""
    mounts = {m.container_path: m.host_path for m in answer.mounts}
    env = machine.env(**dict(answer.envs))
    lib = open(mounts["/etc/ld.so.preload"]).read().strip()
    env["LD_PRELOAD"] = preload(mounts[lib])  # what ld.so does with /etc/ld.so.preload
    env["GPUPOOL_REGION"] = env["GPUPOOL_REGION"].replace("/var/run/gpupool",
                                                          mounts["/var/run/gpupool"])
    env["GPUPOOL_NODE"] = mounts[env["GPUPOOL_NODE"]]
    env["LD_LIBRARY_PATH"] = os.path.join(BUILD, "sim")
    p = subprocess.Popen([SIMWL, "init"] + list(cmds) + ["hold"], env=env,
                         stdout=subprocess.PIPE, text=True)
    out = []
    while True:
        line = p.stdout.readline()
        assert line, "the workload ended early: %s" % out
        out.append(line.strip())
        if line.startswith("held="):
            return p, out


def test_a_pod_from_spec_to_a_limited_container(cluster, machine):
    api, agent, webhook, sched, kubelet = cluster
    pod, answer = admit_and_place(api, webhook, sched, kubelet, user_pod("nb-0", 2048))
    envs = dict(answer.envs)
    assert envs["GPUPOOL_MEMORY_LIMIT_0"] == str(2 * GiB)
    assert envs["NVIDIA_VISIBLE_DEVICES"].startswith("GPU-")
    p, out = run_container(machine, answer, "alloc", "1GiB", "alloc", "1GiB")
    try:
        assert [l for l in out if l.startswith("alloc=")] == ["alloc=0", "alloc=2"]
        until("the agent naming the tenant", lambda: series(
            agent.get("/metrics")[1], "gpupool_tenant_processes", namespace="ml", pod="nb-0",
            container="main"))
    finally:
        p.kill()
        p.wait()
    with api.lock:
        del api.pods[("ml", "nb-0")]
    until("the region collected", lambda: not os.path.exists(
        machine.tenant_dir("uid-nb-0", "main")), limit=20)


BUDGETS = (("a", 2048), ("b", 3072), ("c", 4096))


def test_three_pods_on_one_card_each_held_to_its_budget(cluster, machine):
    api, agent, webhook, sched, kubelet = cluster
    procs = []
    try:
        for name, mib in BUDGETS:
            pod, answer = admit_and_place(api, webhook, sched, kubelet, user_pod(name, mib))
            assert dict(answer.envs)["GPUPOOL_MEMORY_LIMIT_0"] == str(mib * MiB)
            # A quarter of the budget fits beside the context; the whole
            # budget again does not.
            p, out = run_container(machine, answer, "alloc", "%dMiB" % (mib // 4),
                                   "alloc", "%dMiB" % mib)
            procs.append(p)
            assert [l for l in out if l.startswith("alloc=")] == ["alloc=0", "alloc=2"], out
        text = until("the three tenants named", lambda: all(series(
            agent.get("/metrics")[1], "gpupool_tenant_processes", pod=n) for n in "abc") and
            agent.get("/metrics")[1])
        for name, mib in BUDGETS:
            assert series(text, "gpupool_tenant_memory_limit_bytes", pod=name) == [mib * MiB]
    finally:
        for p in procs:
            p.kill()
            p.wait()
