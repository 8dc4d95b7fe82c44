"""test_sched_extender.py - `gpupool sched`'s HTTP verbs against fixtures.

Each case in tests/fixtures/sched/http/ is a request (<case>.request.json,
or .request.txt for bodies that are not JSON) and the expected answer
(<case>.response.json: {"status": ..., "body": ...}); the verb is the
case name's first word.  See that directory's README for the notation
({"$node": name}, {"$match": regex}, {"$between": [lo, hi]}).

The extender runs against the fake API server (test_sched_fakeapi.py)
serving tests/fixtures/sched/cluster/, with the binpack policy so that
prioritize's order is known.  A second extender with tiny caps checks the
size limits.
"""
import glob
import json
import os
import re

import pytest

from test_sched_fakeapi import (FIXTURES, FakeAPI, Sched, api, cluster,  # noqa: F401
                                sched_fixture, stopped_cleanly, tmp, write_kubeconfig)

HTTP = os.path.join(FIXTURES, "http")
CASES = sorted(os.path.basename(p).split(".")[0] for p in glob.glob(os.path.join(HTTP, "*.request.*")))


@pytest.fixture(scope="module")
def env(request, tmp_path_factory):
    nodes, pods = cluster()
    api = FakeAPI(nodes, pods).start()
    request.addfinalizer(api.stop)
    tmp = str(tmp_path_factory.mktemp("sched"))
    kc = write_kubeconfig(os.path.join(tmp, "kubeconfig"), api.url)
    sched = Sched(["--kubeconfig", kc, "--policy", "binpack"], tmp=tmp)
    request.addfinalizer(lambda: stopped_cleanly(sched))
    return api, sched, {n["metadata"]["name"]: n for n in nodes}


def expand(doc, nodes):
    """Replace {"$node": name} by that node of the cluster fixture."""
    if isinstance(doc, dict):
        if set(doc) == {"$node"}:
            return nodes[doc["$node"]]
        return {k: expand(v, nodes) for k, v in doc.items()}
    if isinstance(doc, list):
        return [expand(v, nodes) for v in doc]
    return doc


def mismatch(want, got, where="$"):
    """Where `got` differs from `want`, or None.  Keys are compared as sets
    (normalised JSON: order does not matter), lists in order."""
    if isinstance(want, dict) and set(want) == {"$match"}:
        if isinstance(got, str) and re.search(want["$match"], got):
            return None
        return "%s: %r does not match /%s/" % (where, got, want["$match"])
    if isinstance(want, dict) and set(want) == {"$between"}:
        lo, hi = want["$between"]
        if isinstance(got, int) and not isinstance(got, bool) and lo <= got <= hi:
            return None
        return "%s: %r not in %d..%d" % (where, got, lo, hi)
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(want) != set(got):
            return "%s: keys %s, want %s" % (where, sorted(got) if isinstance(got, dict)
                                             else type(got).__name__, sorted(want))
        for k in want:
            m = mismatch(want[k], got[k], "%s.%s" % (where, k))
            if m:
                return m
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return "%s: %r, want a list of %d" % (where, got, len(want))
        for i, (w, g) in enumerate(zip(want, got)):
            m = mismatch(w, g, "%s[%d]" % (where, i))
            if m:
                return m
        return None
    if want != got or type(want) is not type(got):
        return "%s: %r, want %r" % (where, got, want)
    return None


def test_matcher_catches_differences():
    # The comparison is what every fixture test rests on: make sure it fails.
    assert mismatch({"a": [1, 2]}, {"a": [1, 2]}) is None
    assert mismatch({"a": [1, 2]}, {"a": [2, 1]})
    assert mismatch({"a": 1}, {"a": 1, "b": 2})
    assert mismatch({"a": 1}, {"a": True})
    assert mismatch({"$match": "^no GPU"}, "no GPU with 1 MiB") is None
    assert mismatch({"$match": "^no GPU"}, "a GPU")
    assert mismatch({"$between": [1, 9]}, 10)


@pytest.mark.parametrize("case", CASES)
def test_fixture(env, case):
    api, sched, nodes = env
    verb = case.split("-")[0]
    raw = os.path.join(HTTP, case + ".request.txt")
    if os.path.exists(raw):
        with open(raw, "rb") as f:
            code, body = sched.post(verb, f.read(), raw=True)
    else:
        with open(os.path.join(HTTP, case + ".request.json")) as f:
            code, body = sched.post(verb, expand(json.load(f), nodes))
    out = os.path.join(HTTP, case + ".response.json")
    if os.environ.get("GP_SCHED_FIXTURE_WRITE") and not os.path.exists(out):
        with open(out, "w") as f:  # a starting point for a new case, to edit by hand
            json.dump({"status": code, "body": body}, f, indent=1, sort_keys=True)
            f.write("\n")
    with open(out) as f:
        want = expand(json.load(f), nodes)
    m = mismatch(want, {"status": code, "body": body})
    assert m is None, "%s: %s\n(answer: %s)" % (case, m, json.dumps(body, sort_keys=True))


def test_every_case_has_an_answer():
    answers = {os.path.basename(p).split(".")[0]
               for p in glob.glob(os.path.join(HTTP, "*.response.json"))}
    assert set(CASES) == answers and len(CASES) >= 20


def test_filter_nodes_echoes_the_objects(env):
    # nodeCacheCapable: false - the Nodes that pass come back as sent.
    api, sched, nodes = env
    pod = api.pod("default", "pending-small")
    sent = [nodes["node-a"], nodes["node-b"]]
    code, body = sched.post("filter", {"Pod": pod, "Nodes": {"items": sent}})
    assert code == 200 and body["Nodes"]["items"] == sent and body["NodeNames"] is None


def test_allocations_come_from_pods(request, api, tmp):
    # node-a's GPU-a0 has 40 GiB taken by the running trainer; the finished
    # pod's allocation on GPU-a1 must not count.  So 70000 MiB fits (a1)
    # but not twice.  An extender of its own: the shared one expects the
    # pods other tests scored on their best nodes for a while.
    sched = sched_fixture(request, api, tmp, ["--policy", "binpack"])
    pod = api.pod("default", "pending-small")
    lim = pod["spec"]["containers"][0]["resources"]["limits"]
    lim.update({"gpupool.io/vgpu": "1", "gpupool.io/vgpu-memory": "70000"})
    code, body = sched.post("filter", {"Pod": pod, "NodeNames": ["node-a"]})
    assert code == 200 and body["NodeNames"] == ["node-a"], body
    lim["gpupool.io/vgpu"] = "2"
    code, body = sched.post("filter", {"Pod": pod, "NodeNames": ["node-a"]})
    assert body["NodeNames"] == [] and "node-a" in body["FailedNodes"], body
    # HAMi's allocation on node-c (20000 of 81559 MiB) counts too.
    lim.update({"gpupool.io/vgpu": "1", "gpupool.io/vgpu-memory": "61560"})
    code, body = sched.post("filter", {"Pod": pod, "NodeNames": ["node-c"]})
    assert "node-c" in body["FailedNodes"], body
    lim["gpupool.io/vgpu-memory"] = "61559"
    code, body = sched.post("filter", {"Pod": pod, "NodeNames": ["node-c"]})
    assert body["NodeNames"] == ["node-c"], body


def test_reasons_aggregate(env):
    # One cause, one string, whatever the node's figures: kube-scheduler
    # counts identical reasons ("3 gpupool: ...") instead of listing one
    # line per node.  The per-cause counts are in /healthz.
    api, sched, nodes = env
    before = sched.get("/healthz")[1]["rejectedNodes"]
    pod = api.pod("default", "pending-small")
    lim = pod["spec"]["containers"][0]["resources"]["limits"]
    lim.update({"gpupool.io/vgpu": "1", "gpupool.io/vgpu-memory": "200000"})
    code, body = sched.post("filter", {"Pod": pod, "NodeNames": ["node-a", "node-b", "node-c"]})
    reasons = {**body["FailedNodes"], **body["FailedAndUnresolvableNodes"]}
    assert set(reasons) == {"node-a", "node-b", "node-c"}, body
    assert set(reasons.values()) == {"gpupool: no GPU with enough free memory"}, body
    after = sched.get("/healthz")[1]["rejectedNodes"]
    assert after["gpu-memory"] == before["gpu-memory"] + 3, (before, after)
    assert set(after) >= {"cpu", "memory", "gpu-count", "type", "uuid", "health", "gpu-memory",
                          "compute", "slices", "exclusive", "numa", "together"}


def test_healthz(env):
    api, sched, nodes = env
    code, body = sched.get("/healthz")
    assert code == 200 and body["status"] == "ok"
    assert body["nodes"] == len(nodes) and body["gpuPods"] == 2
    assert body["policy"].startswith("node=binpack")


def test_wrong_method_and_path(env):
    api, sched, nodes = env
    code, _ = sched.get("/filter")
    assert code == 405
    code, _ = sched.post("unbind", {})
    assert code == 404


@pytest.fixture(scope="module")
def tiny(request, tmp_path_factory):
    nodes, pods = cluster()
    api = FakeAPI(nodes, pods).start()
    request.addfinalizer(api.stop)
    tmp = str(tmp_path_factory.mktemp("tiny"))
    kc = write_kubeconfig(os.path.join(tmp, "kubeconfig"), api.url)
    sched = Sched(["--kubeconfig", kc, "--max-body", "4KiB", "--max-nodes", "3"], tmp=tmp)
    request.addfinalizer(lambda: stopped_cleanly(sched))
    return api, sched


def test_body_over_cap_is_413(tiny):
    api, sched = tiny
    pod = api.pod("default", "pending-small")
    pod["metadata"]["labels"] = {"padding": "x" * 5000}
    code, _ = sched.post("filter", {"Pod": pod, "NodeNames": ["node-a"]})
    assert code == 413
    # ... and the daemon carries on.
    code, body = sched.post("filter", {"Pod": api.pod("default", "pending-small"),
                                       "NodeNames": ["node-a"]})
    assert code == 200 and body["NodeNames"] == ["node-a"]


def test_too_many_nodes_is_400(tiny):
    api, sched = tiny
    pod = api.pod("default", "pending-small")
    code, body = sched.post("filter", {"Pod": pod, "NodeNames": ["node-a", "node-b",
                                                                 "node-c", "node-e"]})
    assert code == 400 and "--max-nodes 3" in body["Error"]


def test_garbage_never_crashes(tiny):
    # Bodies that are JSON but of every wrong shape: always an answer, and
    # the daemon is alive after all of them.
    api, sched = tiny
    pod = api.pod("default", "pending-small")
    bodies = [[], 1, "x", None, {"Pod": []}, {"Pod": {}, "NodeNames": {}},
              {"Pod": pod, "NodeNames": [1]}, {"Pod": pod, "Nodes": {"items": [{}]}},
              {"Pod": pod, "Nodes": []}, {"Pod": {"metadata": {}, "spec": {}}, "NodeNames": []},
              {"Pod": dict(pod, spec={"containers": [{"name": "c", "resources": {
                  "limits": {"gpupool.io/vgpu": {"x": 1}}}}]}), "NodeNames": ["node-a"]},
              {"Pod": dict(pod, spec={"containers": "no"}), "NodeNames": ["node-a"]}]
    for verb in ("filter", "prioritize", "bind"):
        for b in bodies:
            code, answer = sched.post(verb, b)
            assert code in (200, 400), (verb, b, code, answer)
            if code == 400:
                assert answer["Error"], (verb, b)
    assert sched.proc.poll() is None
    assert sched.get("/healthz")[0] == 200
