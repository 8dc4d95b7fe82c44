"""test_sched_bind.py - POST /bind against the fake API server: the
decision written to the pod, the Binding, the per-node lock (held, busy,
expired, two replicas at once), resourceVersion conflicts retried and
given up on, and allocations recomputed from pods after a restart.

Assertions are on outcomes and on the order of the changes the fake API
server saw (lock, annotate, bind, unlock), never on timings.
"""
import json
import os
import threading
import time

import pytest

from test_sched_fakeapi import (ALLOC, BINDING, LOCK, FakeAPI, Sched, api, cluster,  # noqa: F401
                                stopped_cleanly, tmp, write_kubeconfig)

GiB = 1 << 30


@pytest.fixture
def start(request, api, tmp):
    """Start `gpupool sched` replicas on the fixture API; stopped at the end."""
    def run(*args):
        kc = write_kubeconfig(os.path.join(tmp, "kubeconfig"), api.url)
        s = Sched(["--kubeconfig", kc] + list(args), tmp=tmp)
        request.addfinalizer(lambda: stopped_cleanly(s))
        return s
    return run


def gpu_pod(name, mib, gpus=1, ns="default"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": "uid-" + name},
            "spec": {"containers": [{"name": "main", "image": "app", "resources": {
                "limits": {"gpupool.io/vgpu": str(gpus), "gpupool.io/vgpu-memory": str(mib)}}}]},
            "status": {"phase": "Pending"}}


def solo_node(name="solo", gib=80):
    """A node with one GPU."""
    state = {"version": 1, "gpus": [{"uuid": "GPU-" + name, "model": "NVIDIA H100 80GB HBM3",
                                     "memoryBytes": gib * GiB, "compute": 100, "slices": 8,
                                     "numa": 0, "healthy": True}]}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"gpupool.io/node-state": json.dumps(state)}}}


def bind_args(name, node, ns="default", uid=None):
    return {"PodName": name, "PodNamespace": ns, "PodUID": uid or "uid-" + name, "Node": node}


def allocation(api, name, ns="default"):
    ann = api.pod(ns, name)["metadata"].get("annotations") or {}
    return json.loads(ann[ALLOC]) if ALLOC in ann else None


def events_for(api, node):
    return [e for e in api.events if e[1] == node or e[0] in ("annotate", "unannotate", "bind")]


def test_bind_writes_the_decision_then_the_binding(api, start):
    s = start()
    code, res = s.post("bind", bind_args("pending-small", "node-a"))
    assert code == 200 and res == {"Error": ""}
    pod = api.pod("default", "pending-small")
    assert pod["spec"]["nodeName"] == "node-a"
    a = allocation(api, "pending-small")
    assert a["version"] == 1 and a["node"] == "node-a" and a["podUID"] == "uid-pending-small"
    (ctr,) = a["containers"]
    assert ctr["name"] == "app" and ctr["init"] is False
    (g,) = ctr["gpus"]
    assert g["uuid"] in ("GPU-a0", "GPU-a1") and g["memoryBytes"] == 10 * GiB
    assert a["footprint"] == [{"uuid": g["uuid"], "memoryBytes": 10 * GiB, "compute": 0,
                               "tenants": 1, "exclusive": False}]
    # Lock, decision, unlock, binding - in that order, with the right patch
    # types; the unlock listed the pod among the node's binds in flight.
    kinds = [(e[0], e[-1]) for e in api.events]
    assert kinds == [("lock", "merge"), ("annotate", "strategic"), ("unlock", "merge"),
                     ("bind", "node-a")], api.events
    ann = api.node("node-a")["metadata"]["annotations"]
    assert LOCK not in ann
    (flight,) = json.loads(ann[BINDING])["pods"]
    assert flight["uid"] == "uid-pending-small" and flight["footprint"] == a["footprint"]
    posts = [r for r in api.requests if r[0] == "POST"]
    assert posts == [("POST", "/api/v1/namespaces/default/pods/pending-small/binding",
                      "application/json")]


def test_a_retried_bind_is_done_once(api, start):
    s = start()
    assert s.post("bind", bind_args("pending-small", "node-a"))[1] == {"Error": ""}
    assert s.post("bind", bind_args("pending-small", "node-a"))[1] == {"Error": ""}
    assert [e[0] for e in api.events].count("bind") == 1
    # ... but not to another node.
    code, res = s.post("bind", bind_args("pending-small", "node-b"))
    assert "already bound to node node-a" in res["Error"]


def test_a_pod_that_no_longer_fits_is_refused(api, start):
    # Two GPUs of 50000 MiB: node-a's GPU-a0 has only 40 GiB left.
    api.put_pod(gpu_pod("pair", 50000, gpus=2))
    s = start()
    code, res = s.post("bind", bind_args("pair", "node-a"))
    assert "no longer fits on node node-a" in res["Error"], res
    assert not api.pod("default", "pair")["spec"].get("nodeName")
    assert allocation(api, "pair") is None
    assert [e[0] for e in api.events] == ["lock", "unlock"]


def test_replaced_pod_is_refused(api, start):
    s = start()
    code, res = s.post("bind", bind_args("pending-small", "node-a", uid="uid-older"))
    assert "was replaced" in res["Error"]
    assert not api.pod("default", "pending-small")["spec"].get("nodeName")


def test_missing_node_state_is_refused(api, start):
    s = start()
    code, res = s.post("bind", bind_args("pending-small", "node-d"))
    assert "node node-d: no gpupool.io/node-state" in res["Error"]
    assert not api.bindings and LOCK not in (api.node("node-d")["metadata"].get("annotations")
                                             or {})


def test_a_pod_without_gpus_is_just_bound(api, start):
    api.put_pod({"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c"}]}})
    s = start()
    assert s.post("bind", bind_args("plain", "node-d"))[1] == {"Error": ""}
    assert api.bindings == {("default", "plain"): "node-d"}
    assert [e[0] for e in api.events] == ["bind"]  # no lock needed


def lock_text(holder, expires):
    return json.dumps({"version": 1, "holder": holder, "pod": "other/pod", "expires": expires})


def set_lock(api, node, text):
    n = api.node(node)
    n["metadata"].setdefault("annotations", {})[LOCK] = text
    api.put_node(n)


def test_a_busy_node_is_waited_for_then_refused(api, start):
    set_lock(api, "node-a", lock_text("other-replica/7", "2099-01-01T00:00:00Z"))
    s = start("--bind-lock-wait", "300ms")
    code, res = s.post("bind", bind_args("pending-small", "node-a"))
    assert "node node-a is busy: locked by other-replica/7" in res["Error"], res
    assert not api.bindings
    assert json.loads(api.node("node-a")["metadata"]["annotations"][LOCK])["holder"] == \
        "other-replica/7"
    # It re-read the node while waiting.
    gets = [r for r in api.requests if r[:2] == ("GET", "/api/v1/nodes/node-a")]
    assert len(gets) >= 2


@pytest.mark.parametrize("text", [lock_text("dead-replica/1", "2001-01-01T00:00:00Z"),
                                  "{not a lock"])
def test_an_expired_or_broken_lock_is_taken_over(api, start, text):
    set_lock(api, "node-a", text)
    s = start()
    assert s.post("bind", bind_args("pending-small", "node-a"))[1] == {"Error": ""}
    # The decision is written under the lock; the Binding follows it.
    assert [e[0] for e in api.events] == ["lock", "annotate", "unlock", "bind"]
    assert LOCK not in api.node("node-a")["metadata"]["annotations"]


def test_conflicts_are_retried_with_fresh_reads(api, start):
    api.conflicts["api/v1/nodes/node-a"] = 2  # two other writers got there first
    s = start()
    assert s.post("bind", bind_args("pending-small", "node-a"))[1] == {"Error": ""}
    assert api.conflicted == 2 and api.conflicts["api/v1/nodes/node-a"] == 0
    gets = [r for r in api.requests if r[:2] == ("GET", "/api/v1/nodes/node-a")]
    assert len(gets) >= 4  # 3 tries to lock, 1 to unlock
    assert api.bindings == {("default", "pending-small"): "node-a"}


def test_conflicts_are_given_up_on(api, start):
    api.conflicts["api/v1/nodes/node-a"] = 100
    s = start("--conflict-retries", "2")
    code, res = s.post("bind", bind_args("pending-small", "node-a"))
    assert "still conflicting after 3 tries" in res["Error"], res
    assert api.conflicted == 3 and not api.bindings


def test_a_failed_binding_takes_the_decision_back(api, start):
    api.failures[("POST", "binding")] = [500, 1]
    s = start()
    code, res = s.post("bind", bind_args("pending-small", "node-a"))
    assert "cannot bind pod default/pending-small to node-a" in res["Error"]
    assert allocation(api, "pending-small") is None
    assert [(e[0], e[-1]) for e in api.events] == [("lock", "merge"), ("annotate", "strategic"),
                                                   ("unlock", "merge"), ("unannotate", "json")]
    # ... and the node no longer lists it in flight.
    assert "uid-pending-small" not in \
        api.node("node-a")["metadata"]["annotations"].get(BINDING, "")
    # The next try goes through.
    assert s.post("bind", bind_args("pending-small", "node-a"))[1] == {"Error": ""}


def test_an_unreadable_allocation_on_the_node_blocks_binds(api, start):
    broken = gpu_pod("broken", 1024)
    broken["spec"]["nodeName"] = "node-b"
    broken["status"]["phase"] = "Running"
    broken["metadata"]["annotations"] = {ALLOC: '{"version": 1, "node": "node-b"'}
    api.put_pod(broken)
    api.put_pod(gpu_pod("next", 1024))
    s = start()
    code, res = s.post("bind", bind_args("next", "node-b"))
    assert "pod broken has an unreadable allocation" in res["Error"], res
    assert not api.bindings


def concurrent_binds(replicas, pods, node):
    """Bind each pod through its replica, all at once; return the answers."""
    barrier = threading.Barrier(len(pods))
    out = [None] * len(pods)

    def one(i):
        barrier.wait()
        out[i] = replicas[i].post("bind", bind_args(pods[i], node))[1]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(pods))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def lock_intervals(api, node):
    """The lock's holders in order, checking that each was released before
    the next took it."""
    held, order = None, []
    for e in api.events:
        if e[1] != node or e[0] not in ("lock", "unlock"):
            continue
        if e[0] == "lock":
            assert held is None, "lock taken by %s while %s held it" % (e[2], held)
            held = e[2]
            order.append(e[2])
        else:
            assert held == e[2]
            held = None
    assert held is None
    return order


def test_two_replicas_never_mix_allocations(api, start):
    # One 80 GiB GPU, two pods of 60000 MiB through two replicas at once:
    # exactly one may have it.  The Bindings are slow: the loser decides
    # while the winner's Binding is still pending, and must count it from
    # the node's binds in flight.
    api.put_node(solo_node())
    api.put_pod(gpu_pod("p1", 60000))
    api.put_pod(gpu_pod("p2", 60000))
    api.delays[("POST", "binding")] = 0.5
    r1, r2 = start(), start()
    answers = concurrent_binds([r1, r2], ["p1", "p2"], "solo")
    errors = sorted(a["Error"] for a in answers)
    assert errors[0] == "" and "no longer fits on node solo" in errors[1], answers
    assert len(api.bindings) == 1
    won = next(iter(api.bindings))[1]
    lost = "p2" if won == "p1" else "p1"
    assert allocation(api, won)["footprint"][0]["memoryBytes"] == 60000 << 20
    assert allocation(api, lost) is None
    assert len(lock_intervals(api, "solo")) == 2


def test_two_replicas_serialize_and_count_each_other(api, start):
    # Both fit (2 x 30000 MiB on 80 GiB): both bound, one after the other,
    # the second having counted the first.
    api.put_node(solo_node())
    api.put_pod(gpu_pod("q1", 30000))
    api.put_pod(gpu_pod("q2", 30000))
    api.delays[("POST", "binding")] = 0.3
    r1, r2 = start(), start()
    answers = concurrent_binds([r1, r2], ["q1", "q2"], "solo")
    assert answers == [{"Error": ""}, {"Error": ""}]
    holders = lock_intervals(api, "solo")
    assert len(holders) == 2 and holders[0] != holders[1]
    # Each decision was written inside its own lock interval; the second
    # holder counted the first from the node's binds in flight even when
    # the first Binding was not done yet (the bindings take 0.3 s).
    seq = [e[0] for e in api.events if e[0] in ("lock", "annotate", "unlock")]
    assert seq == ["lock", "annotate", "unlock", "lock", "annotate", "unlock"]
    total = sum(allocation(api, p)["footprint"][0]["memoryBytes"] for p in ("q1", "q2"))
    assert total == 60000 << 20 and total <= 80 * GiB


def test_filter_counts_its_own_bind_before_the_next_resync(api, start):
    api.put_node(solo_node())
    api.put_pod(gpu_pod("first", 60000))
    s = start("--resync", "1h")
    assert s.post("bind", bind_args("first", "solo"))[1] == {"Error": ""}
    code, res = s.post("filter", {"Pod": gpu_pod("second", 60000), "NodeNames": ["solo"]})
    assert res["NodeNames"] == [] and "solo" in res["FailedNodes"], res


def test_node_objects_count_its_own_bind_too(api, start):
    # nodeCacheCapable: false - the Node comes in the request, allocations
    # from the extender's view, which must include its own bind at once.
    api.put_node(solo_node())
    api.put_pod(gpu_pod("first", 60000))
    s = start("--resync", "1h")
    assert s.post("bind", bind_args("first", "solo"))[1] == {"Error": ""}
    code, res = s.post("filter", {"Pod": gpu_pod("second", 60000),
                                  "Nodes": {"items": [api.node("solo")]}})
    assert res["Nodes"]["items"] == [] and "solo" in res["FailedNodes"], res


def test_a_restarted_extender_recomputes_from_pods(api, start):
    api.put_node(solo_node())
    api.put_pod(gpu_pod("first", 60000))
    s = start()
    assert s.post("bind", bind_args("first", "solo"))[1] == {"Error": ""}
    s.stop()
    fresh = start()  # knows nothing but what the API says
    code, res = fresh.post("filter", {"Pod": gpu_pod("second", 60000), "NodeNames": ["solo"]})
    assert "solo" in res["FailedNodes"], res
    code, res = fresh.post("filter", {"Pod": gpu_pod("third", 20000), "NodeNames": ["solo"]})
    assert res["NodeNames"] == ["solo"], res
    # And bind agrees, from its own fresh reads.
    api.put_pod(gpu_pod("second", 60000))
    code, res = fresh.post("bind", bind_args("second", "solo"))
    assert "no longer fits" in res["Error"]


def test_a_finished_pod_frees_its_gpu(api, start):
    api.put_node(solo_node())
    api.put_pod(gpu_pod("first", 60000))
    s = start("--resync", "200ms")
    assert s.post("bind", bind_args("first", "solo"))[1] == {"Error": ""}
    done = api.pod("default", "first")
    done["status"]["phase"] = "Succeeded"
    api.put_pod(done)
    api.put_pod(gpu_pod("second", 60000))
    # bind reads fresh: the finished pod no longer holds the card.
    assert s.post("bind", bind_args("second", "solo"))[1] == {"Error": ""}
