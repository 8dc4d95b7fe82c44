"""test_sched_preempt.py - POST /preempt against the fake API server: the
victims kube-scheduler proposed are kept, the GPU pods that must go are
added (the fewest, then the fewest PodDisruptionBudget violations, then the
lowest priorities), nodes where evicting lower-priority pods cannot make
the pod's GPUs fit are left out, both forms of ExtenderPreemptionArgs are
read, malformed ones are refused with 400, and nothing is written to the
API.

The cluster is this file's own (below): the shared fixture cluster has no
priorities. PodDisruptionBudgets are served by a FakeAPI subclass under
/apis/policy/v1, as the real API server does.
"""
import copy
import json
import os
import threading

import pytest

from test_sched_fakeapi import (FakeAPI, Sched, status, stopped_cleanly,  # noqa: F401
                                tmp, write_kubeconfig)

GiB = 1 << 30
ALLOC = "gpupool.io/allocation"


class PreemptAPI(FakeAPI):
    """FakeAPI plus a PodDisruptionBudget list (policy/v1)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.pdbs = []  # None: the list is refused (403), as without RBAC for it

    def route(self, method, parts, query, ctype, body):
        if parts[:3] == ["apis", "policy", "v1"] and parts[-1:] == ["poddisruptionbudgets"] \
                and method == "GET":
            if self.pdbs is None:
                return 403, status(403, "Forbidden", "poddisruptionbudgets.policy is "
                                   "forbidden: cannot list resource")
            return 200, {"kind": "PodDisruptionBudgetList", "apiVersion": "policy/v1",
                         "metadata": {"resourceVersion": str(self.rv)},
                         "items": copy.deepcopy(self.pdbs)}
        return super().route(method, parts, query, ctype, body)


def gpu_node(name, cards):
    """cards: [(uuid, model, gib, numa)]"""
    state = {"version": 1, "gpus": [
        {"uuid": u, "model": m, "memoryBytes": g * GiB, "compute": 100, "slices": 10,
         "numa": n, "healthy": True} for u, m, g, n in cards]}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"gpupool.io/node-state": json.dumps(state)}}}


def bound_pod(name, node, priority, hold=None, labels=None, ns="default"):
    """A running pod on `node`; hold = (uuid, gib) it holds there."""
    md = {"name": name, "namespace": ns, "uid": "uid-" + name, "labels": labels or {}}
    limits = {"cpu": "1"}
    if hold:
        uuid, gib = hold
        alloc = {"version": 1, "node": node, "podUID": "uid-" + name,
                 "containers": [{"name": "main", "gpus": [
                     {"uuid": uuid, "memoryBytes": gib * GiB, "compute": 0, "exclusive": False}]}],
                 "footprint": [{"uuid": uuid, "memoryBytes": gib * GiB, "compute": 0,
                                "tenants": 1, "exclusive": False}]}
        md["annotations"] = {ALLOC: json.dumps(alloc)}
        limits = {"gpupool.io/vgpu": "1", "gpupool.io/vgpu-memory": str(gib * 1024)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"nodeName": node, "priority": priority, "containers": [
                {"name": "main", "image": "app", "resources": {"limits": limits}}]},
            "status": {"phase": "Running"}}


A100 = "NVIDIA A100-SXM4-80GB"

NODES = [
    gpu_node("gpu-1", [("GPU-10", A100, 80, 0), ("GPU-11", A100, 80, 1)]),
    gpu_node("gpu-2", [("GPU-20", "Tesla T4", 15, 0)]),
    gpu_node("gpu-3", [("GPU-30", A100, 80, 0)]),
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "plain"}},
]

PODS = [
    # gpu-1: GPU-10 holds 70 GiB (low-a 50 + low-b 20), GPU-11 70 GiB (mid).
    bound_pod("low-a", "gpu-1", 0, ("GPU-10", 50), labels={"app": "batch"}),
    bound_pod("low-b", "gpu-1", 0, ("GPU-10", 20), labels={"app": "batch"}),
    bound_pod("mid", "gpu-1", 500, ("GPU-11", 70), labels={"app": "serve"}),
    bound_pod("cpu-low", "gpu-1", 0),
    # gpu-2: a T4 can never hold 60 GiB.
    bound_pod("t4-low", "gpu-2", 0, ("GPU-20", 10)),
    # gpu-3: the card is taken by a pod of the preemptor's own priority.
    bound_pod("peer", "gpu-3", 1000, ("GPU-30", 70)),
    bound_pod("peer-small", "gpu-3", 0, ("GPU-30", 5)),
]


def preemptor(priority=1000, mib=61440):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "urgent", "namespace": "default", "uid": "uid-urgent"},
            "spec": {"priority": priority, "containers": [
                {"name": "main", "image": "app", "resources": {"limits": {
                    "gpupool.io/vgpu": "1", "gpupool.io/vgpu-memory": str(mib)}}}]},
            "status": {"phase": "Pending"}}


@pytest.fixture
def api(request):
    server = PreemptAPI(NODES, PODS).start()
    request.addfinalizer(server.stop)
    return server


@pytest.fixture
def sched(request, api, tmp):
    kc = write_kubeconfig(os.path.join(tmp, "kubeconfig"), api.url)
    s = Sched(["--kubeconfig", kc, "--max-nodes", "8"], tmp=tmp)
    request.addfinalizer(lambda: stopped_cleanly(s))
    return s


def meta_args(proposal, pod=None):
    """proposal: {node: ([victim names], NumPDBViolations)}"""
    return {"Pod": pod or preemptor(),
            "NodeNameToMetaVictims": {
                n: {"Pods": [{"UID": "uid-" + v} for v in vs], "NumPDBViolations": k}
                for n, (vs, k) in proposal.items()}}


# kube-scheduler's own proposal: on every candidate node it found victims
# for its own resources (CPU here); it never sees GPU memory.
PROPOSAL = {"gpu-1": (["cpu-low"], 0), "gpu-2": (["t4-low"], 0),
            "gpu-3": (["peer-small"], 0), "plain": (["cpu-low"], 0)}


def victims(res, node):
    return [p["UID"][len("uid-"):] for p in res["NodeNameToMetaVictims"][node]["Pods"]]


def test_gpu_victims_added_to_the_schedulers(api, sched):
    code, res = sched.post("preempt", meta_args(PROPOSAL))
    assert code == 200, res
    # Only gpu-1 can hold the pod; gpu-2 (T4), gpu-3 (equal priority) and
    # plain (no GPU state) are left out, so nobody is evicted there.
    assert list(res["NodeNameToMetaVictims"]) == ["gpu-1"], res
    # The scheduler's victim stays; low-a (priority 0) goes rather than mid
    # (priority 500): one victim either way, the lower priority wins.
    assert sorted(victims(res, "gpu-1")) == ["cpu-low", "low-a"]
    assert res["NodeNameToMetaVictims"]["gpu-1"]["NumPDBViolations"] == 0
    # Nothing was written: preemption itself is kube-scheduler's to do.
    assert {m for m, _, _ in api.requests} <= {"GET", "WATCH"}, api.requests
    assert "/apis/policy/v1/poddisruptionbudgets" in {p for _, p, _ in api.requests}


def test_full_victims_form_is_read_the_same(api, sched):
    args = {"Pod": preemptor(), "NodeNameToVictims": {
        n: {"Pods": [api.pod("default", v) for v in vs], "NumPDBViolations": k}
        for n, (vs, k) in PROPOSAL.items()}}
    code, res = sched.post("preempt", args)
    assert code == 200, res
    assert list(res["NodeNameToMetaVictims"]) == ["gpu-1"]
    assert sorted(victims(res, "gpu-1")) == ["cpu-low", "low-a"]


def test_victims_listed_highest_priority_first(api, sched):
    # With low-a and low-b protected by a PDB that allows nothing, mid
    # (priority 500) is the one victim that breaks none; kube-scheduler
    # reads the first victim as the node's highest-priority one.
    api.pdbs = [{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                 "metadata": {"name": "batch", "namespace": "default"},
                 "spec": {"selector": {"matchLabels": {"app": "batch"}}},
                 "status": {"disruptionsAllowed": 0}}]
    code, res = sched.post("preempt", meta_args(PROPOSAL))
    assert code == 200, res
    assert victims(res, "gpu-1") == ["mid", "cpu-low"]
    assert res["NodeNameToMetaVictims"]["gpu-1"]["NumPDBViolations"] == 0


def test_pdb_violations_counted_when_unavoidable(api, sched):
    # Every candidate is covered by a PDB allowing nothing: one violation
    # either way, so the lower priority (low-a) goes, and the count says 1.
    api.pdbs = [{"metadata": {"name": n, "namespace": "default"},
                 "spec": {"selector": {"matchExpressions": [
                     {"key": "app", "operator": "In", "values": [app]}]}},
                 "status": {"disruptionsAllowed": 0}}
                for n, app in (("batch", "batch"), ("serve", "serve"))]
    code, res = sched.post("preempt", meta_args(PROPOSAL))
    assert code == 200, res
    assert sorted(victims(res, "gpu-1")) == ["cpu-low", "low-a"]
    assert res["NodeNameToMetaVictims"]["gpu-1"]["NumPDBViolations"] == 1


def test_pdb_list_refused_keeps_the_schedulers_count(api, sched):
    api.pdbs = None
    code, res = sched.post("preempt", meta_args({"gpu-1": (["cpu-low"], 3)}))
    assert code == 200, res
    assert sorted(victims(res, "gpu-1")) == ["cpu-low", "low-a"]
    assert res["NodeNameToMetaVictims"]["gpu-1"]["NumPDBViolations"] == 3
    assert "PodDisruptionBudgets" in sched.output()


def test_nothing_lower_to_evict_leaves_every_node_out(api, sched):
    # At priority 0 no pod is of lower priority: no node is worth a victim.
    code, res = sched.post("preempt", meta_args(PROPOSAL, pod=preemptor(priority=0)))
    assert code == 200 and res == {"NodeNameToMetaVictims": {}}, res


def test_enough_freed_by_the_schedulers_victims(api, sched):
    # A 5 GiB pod fits on gpu-1's cards as they are: the proposal stands.
    code, res = sched.post("preempt", meta_args({"gpu-1": (["cpu-low"], 0)},
                                                pod=preemptor(mib=5120)))
    assert code == 200, res
    assert victims(res, "gpu-1") == ["cpu-low"]


def test_concurrent_requests_agree(api, sched):
    # The verb runs on worker threads: answers must not mix.
    out, errors = [], []

    def one():
        try:
            out.append(sched.post("preempt", meta_args(PROPOSAL)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(out) == 6
    for code, res in out:
        assert code == 200 and sorted(victims(res, "gpu-1")) == ["cpu-low", "low-a"], res


BAD = [
    (b"[1, 2]", "not an ExtenderPreemptionArgs"),
    ({"NodeNameToMetaVictims": {}}, "'Pod'"),
    ({"Pod": preemptor(), "NodeNameToMetaVictims": {}, "NodeNameToVictims": {}}, "not both"),
    ({"Pod": preemptor(), "nodeNameToMetaVictims": {}}, "keys are case-sensitive"),
    ({"Pod": preemptor(), "NodeNameToMetaVictims": []}, "not an object"),
    ({"Pod": preemptor(), "NodeNameToMetaVictims": {"Bad_Name": {"Pods": []}}}, "node name"),
    ({"Pod": preemptor(), "NodeNameToMetaVictims": {"gpu-1": {"Pods": {}}}}, "not a list"),
    ({"Pod": preemptor(), "NodeNameToMetaVictims": {"gpu-1": {"Pods": [{"uid": "x"}]}}},
     "keys are case-sensitive"),
    ({"Pod": preemptor(), "NodeNameToMetaVictims": {"gpu-1": {"Pods": [{}]}}}, "UID"),
    ({"Pod": preemptor(), "NodeNameToVictims": {"gpu-1": {"Pods": [{"metadata": {}}]}}},
     "metadata.uid"),
    ({"Pod": preemptor(), "NodeNameToMetaVictims": {
        "gpu-1": {"Pods": [], "NumPDBViolations": "2"}}}, "NumPDBViolations"),
    ({"Pod": preemptor(), "NodeNameToMetaVictims": {
        "n%d" % i: {"Pods": []} for i in range(9)}}, "--max-nodes"),
    ({"Pod": dict(preemptor(), spec={"containers": [{"name": "main", "resources": {
        "limits": {"gpupool.io/vgpu-memroy": "1"}}}]}), "NodeNameToMetaVictims": {}},
     "vgpu-memroy"),
]


@pytest.mark.parametrize("body,why", BAD, ids=[w for _, w in BAD])
def test_malformed_requests_are_400(api, sched, body, why):
    raw = isinstance(body, bytes)
    code, res = sched.post("preempt", body, raw=raw)
    assert code == 400, res
    assert why in res["Error"], res
    assert sched.get("/healthz")[0] == 200
