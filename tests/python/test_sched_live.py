"""test_sched_live.py - the extender under load and with a live view:
binds run off the event loop, the view follows the cluster through
watches, and a bind survives an API server that answers late.

Every test orders events rather than timing them, except where a bound
is the point (a change visible within its stated second), and then with
a generous margin.
"""
import json
import threading
import time
import urllib.request

import pytest

from test_sched_bind import allocation, bind_args, gpu_pod, solo_node, start  # noqa: F401
from test_sched_fakeapi import BINDING, api, tmp  # noqa: F401

GiB = 1 << 30


def filter_args(pod, *nodes):
    return {"Pod": pod, "NodeNames": list(nodes)}


def wait_for(cond, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def fits(s, pod, node):
    code, res = s.post("filter", filter_args(pod, node))
    assert code == 200, res
    return res["NodeNames"] == [node]


def in_background(fn, *args):
    out = {}

    def run():
        out["result"] = fn(*args)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_filter_is_answered_while_binds_wait_on_the_api(api, start):
    # Five binds whose Bindings take 2 s each: filter must not queue
    # behind them.
    for i in range(5):
        api.put_node(solo_node("n%d" % i))
        api.put_pod(gpu_pod("b%d" % i, 1024))
    api.delays[("POST", "binding")] = 2.0
    s = start()
    binds = [in_background(s.post, "bind", bind_args("b%d" % i, "n%d" % i)) for i in range(5)]
    wait_for(lambda: sum(1 for r in api.requests if r[0] == "POST") == 5, 10,
             "five binds at the API")
    assert fits(s, gpu_pod("other", 1024), "n0")
    assert not api.bindings  # answered while every Binding was still pending
    for t, out in binds:
        t.join(30)
        assert out["result"][1] == {"Error": ""}, out
    assert len(api.bindings) == 5


def test_a_bind_in_flight_counts_for_the_next_filter(api, start):
    # kube-scheduler filters the next pod while the last one's bind waits
    # on the API: the GPUs it was given must not be offered again.
    api.put_node(solo_node())
    first = gpu_pod("first", 60000)
    api.put_pod(first)
    api.delays[("POST", "binding")] = 1.5
    s = start("--resync", "1h")
    assert fits(s, first, "solo")  # the extender learns the pod's request
    t, out = in_background(s.post, "bind", bind_args("first", "solo"))
    wait_for(lambda: any(r[0] == "PATCH" for r in api.requests), 5, "the bind to start")
    assert not fits(s, gpu_pod("second", 60000), "solo")
    t.join(30)
    assert out["result"][1] == {"Error": ""}
    assert not fits(s, gpu_pod("second", 60000), "solo")


def test_deleted_and_finished_pods_free_their_gpus_within_a_second(api, start):
    api.put_node(solo_node())
    api.put_pod(gpu_pod("a", 60000))
    s = start("--resync", "1h")  # no periodic rebuild: only the watch can tell
    assert s.post("bind", bind_args("a", "solo"))[1] == {"Error": ""}
    nxt = gpu_pod("b", 60000)
    assert not fits(s, nxt, "solo")
    api.delete_pod("default", "a")
    t0 = time.monotonic()
    wait_for(lambda: fits(s, nxt, "solo"), 5, "the deleted pod's GPU")
    assert time.monotonic() - t0 < 1.0
    # The same for a pod that finishes.
    api.put_pod(nxt)
    assert s.post("bind", bind_args("b", "solo"))[1] == {"Error": ""}
    third = gpu_pod("c", 60000)
    assert not fits(s, third, "solo")
    done = api.pod("default", "b")
    done["status"]["phase"] = "Succeeded"
    api.put_pod(done)
    t0 = time.monotonic()
    wait_for(lambda: fits(s, third, "solo"), 5, "the finished pod's GPU")
    assert time.monotonic() - t0 < 1.0


def test_new_nodes_and_node_changes_are_seen(api, start):
    s = start("--resync", "1h")
    pod = gpu_pod("x", 1024)
    code, res = s.post("filter", filter_args(pod, "fresh"))
    assert res["FailedNodes"]["fresh"] == "gpupool: node not in gpupool's view yet"
    api.put_node(solo_node("fresh"))
    wait_for(lambda: fits(s, pod, "fresh"), 5, "the new node")
    api.delete_node("fresh")
    wait_for(lambda: not fits(s, pod, "fresh"), 5, "the node's deletion")


def test_a_compacted_watch_lists_again(api, start):
    api.put_node(solo_node())
    s = start("--resync", "1h")
    api.compact()  # the open watches end with 410 Gone
    wait_for(lambda: api.watches == 2 and sum(
        1 for r in api.requests if r[1] == "/api/v1/nodes" and r[0] == "WATCH") >= 2, 10,
        "a new list and watch")
    api.put_pod(dict(gpu_pod("held", 60000), spec=dict(gpu_pod("held", 60000)["spec"],
                                                       nodeName="solo")))
    held = api.pod("default", "held")
    held["metadata"]["annotations"] = {"gpupool.io/allocation": json.dumps({
        "version": 1, "node": "solo", "podUID": "uid-held", "containers": [],
        "footprint": [{"uuid": "GPU-solo", "memoryBytes": 60000 << 20, "compute": 0,
                       "tenants": 1}]})}
    held["status"]["phase"] = "Running"
    api.put_pod(held)
    wait_for(lambda: not fits(s, gpu_pod("y", 60000), "solo"), 5, "the pod after relisting")
    code, health = s.get("/healthz")
    assert code == 200 and health["status"] == "ok"


def test_a_binding_the_api_applies_late_keeps_its_allocation(api, start):
    # The API server takes 3 s to answer the Binding, longer than the
    # client waits, and applies it anyway.
    api.put_node(solo_node())
    api.put_pod(gpu_pod("late", 30000))
    api.delays[("POST", "binding")] = 3.0
    s = start("--api-timeout", "1s")
    code, res = s.post("bind", bind_args("late", "solo"))
    assert "applies the binding late" in res["Error"], res
    # Nothing was undone: once the API server applies it, the pod is bound
    # and carries its allocation.
    wait_for(lambda: api.bindings.get(("default", "late")) == "solo", 10, "the late binding")
    a = allocation(api, "late")
    assert a and a["node"] == "solo" and a["footprint"][0]["memoryBytes"] == 30000 << 20
    # Meanwhile the GPUs stayed counted, and they still are.
    assert not fits(s, gpu_pod("other", 60000), "solo")


def test_a_binding_answered_late_within_the_readback_is_a_success(api, start):
    api.put_node(solo_node())
    api.put_pod(gpu_pod("slow", 30000))
    api.delays[("POST", "binding")] = 1.2
    s = start("--api-timeout", "1s")
    code, res = s.post("bind", bind_args("slow", "solo"))
    assert res == {"Error": ""}, res  # read back: bound after all
    assert allocation(api, "slow")["node"] == "solo"


def test_metrics(api, start):
    api.put_node(solo_node())
    api.put_pod(gpu_pod("m", 20000))
    s = start()
    assert fits(s, gpu_pod("m", 20000), "solo")
    assert s.post("bind", bind_args("m", "solo"))[1] == {"Error": ""}
    s.post("bind", bind_args("missing", "solo"))
    s.post("filter", filter_args(gpu_pod("huge", 90000), "solo"))
    with urllib.request.urlopen(s.url + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines['gpupool_sched_binds_total{result="ok"}'] == "1"
    assert lines['gpupool_sched_binds_total{result="failed"}'] == "1"
    assert lines['gpupool_sched_request_duration_seconds_count{verb="filter"}'] == "2"
    assert lines['gpupool_sched_request_duration_seconds_bucket{verb="bind",le="+Inf"}'] == "2"
    assert lines['gpupool_sched_up'] == "1"
    card = '{node="solo",uuid="GPU-solo",model="NVIDIA H100 80GB HBM3"}'
    wait_for(lambda: True)
    assert lines["gpupool_sched_gpu_memory_bytes" + card] == str(80 * GiB)
    assert lines["gpupool_sched_gpu_memory_allocated_bytes" + card] == str(20000 << 20)
    assert lines["gpupool_sched_gpu_tenants" + card] == "1"
    assert int(lines['gpupool_sched_rejected_nodes_total{reason="memory"}']) >= 1 or \
        any(k.startswith("gpupool_sched_rejected_nodes_total") and v == "1"
            for k, v in lines.items())


def test_watch_errors_back_off_and_recover(api, start):
    api.put_node(solo_node())
    s = start("--resync", "1h")
    # The next four node requests fail; the compaction forces a new list.
    api.failures[("GET", "node")] = [500, 4]
    t0 = time.monotonic()
    api.compact()
    api.put_node(solo_node("after"))
    wait_for(lambda: fits(s, gpu_pod("z", 1024), "after"), 20, "the view to recover")
    # Four failures took at least 0.1 + 0.2 + 0.4 + 0.8 s of backoff (each
    # at least half its step): the watcher did not spin.
    assert api.failures[("GET", "node")][1] == 0
    assert time.monotonic() - t0 >= 1.5
    assert s.output().count("list of nodes failed") == 4, s.output()
    code, health = s.get("/healthz")
    assert code == 200 and health["status"] == "ok"


def test_watches_that_end_at_once_are_not_reopened_in_a_loop(api, start):
    api.put_node(solo_node())
    s = start("--resync", "1h")
    api.watch_ends_at_once = True
    api.compact()  # the open watches end; every new one ends at once
    time.sleep(3)
    watches = sum(1 for r in api.requests if r[0] == "WATCH")
    # Backoff from 0.2 s, doubling: a handful each in 3 s, not thousands.
    assert watches < 20, watches
    api.watch_ends_at_once = False
    api.put_node(solo_node("later"))
    wait_for(lambda: fits(s, gpu_pod("w", 1024), "later"), 20, "the view to recover")
