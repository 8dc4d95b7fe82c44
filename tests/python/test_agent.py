"""test_agent.py - `gpupool agent` on the simulator: its figures against
the simulator's truth as tenants allocate, free, go idle and die; card
faults in the node state within a second; pods named, marked idle,
evicted and collected through a fake API server; hostile region files."""
import json
import os
import shutil
import signal
import struct
import subprocess
import time

import pytest

from agent_kit import (GiB, MiB, Agent, GPUPOOL, SIMCTL, machine, promtool_check, series,
                       truth, until)
from test_sched_fakeapi import FakeAPI, Sched, stopped_cleanly, write_kubeconfig

assert machine  # a fixture


def gpu(agent, index):
    return agent.json("/v1/gpus")["gpus"][index]


def tgpu(agent, uid, ctr, card=0):
    """Tenant uid/ctr's figures on card `card` (None until it shows)."""
    t = agent.tenant(uid, ctr)
    for g in (t or {}).get("gpus", []):
        if g["index"] == card:
            return g
    return None


def used(agent, uid, ctr, card=0):
    return (tgpu(agent, uid, ctr, card) or {}).get("usedBytes")


def test_figures_follow_the_tenants(machine):
    agent = Agent(machine)
    try:
        a = machine.tenant("uid-a", "main", memory="3GiB", device=0)
        b = machine.tenant("uid-b", "side", device=1)
        # The context is charged first (what NVML shows for the process).
        ctx_a = until("tenant a's context", lambda: used(agent, "uid-a", "main"))
        ctx_b = until("tenant b's context", lambda: used(agent, "uid-b", "side", 1))
        assert a.do("alloc 1GiB")["alloc"] == "0"
        assert b.do("alloc 512MiB")["alloc"] == "0"
        until("tenant a's gigabyte", lambda: used(agent, "uid-a", "main") == ctx_a + GiB)
        ta = agent.tenant("uid-a", "main")
        assert ta["processes"] == 1 and ta["pids"] == [a.pid]
        g = tgpu(agent, "uid-a", "main")
        assert (g["limitBytes"], g["peakBytes"], g["refused"]) == (3 * GiB, ctx_a + GiB, 0)
        until("tenant b on card 1", lambda: used(agent, "uid-b", "side", 1) == ctx_b + 512 * MiB)
        assert tgpu(agent, "uid-b", "side", 1)["limitBytes"] == 0
        # What a tenant holds is what NVML says its process holds.
        real = truth(machine)
        assert real[0]["procs"][str(a.pid)] == ctx_a + GiB
        assert real[1]["procs"][str(b.pid)] == ctx_b + 512 * MiB

        # Physical cards: exactly what NVML says, processes named by tenant.
        def same_as_nvml():
            real = truth(machine)
            gpus = agent.json("/v1/gpus")["gpus"]
            return all(gpus[i]["memoryUsedBytes"] == real[i]["used"] and
                       {str(p["pid"]): p["memoryBytes"] for p in gpus[i]["processes"]}
                       == real[i]["procs"] for i in range(2)) and gpus
        gpus = until("the agent's cards to match NVML", same_as_nvml)
        p0 = [p for p in gpus[0]["processes"] if p["pid"] == a.pid]
        assert p0 and p0[0]["podUID"] == "uid-a" and p0[0]["container"] == "main"
        assert gpus[0]["model"] == "NVIDIA H100-SXM-80GB" and gpus[0]["healthy"]
        assert gpus[0]["links"][gpus[1]["uuid"]] == 280  # NV18 through NVSwitch

        # Over the budget: refused, counted.
        assert a.do("alloc 2GiB")["alloc"] != "0"
        until("the refusal", lambda: tgpu(agent, "uid-a", "main")["refused"] == 1)
        text = agent.get("/metrics")[1]
        promtool_check(text)
        uuid0 = gpus[0]["uuid"]
        assert series(text, "gpupool_tenant_memory_used_bytes", pod_uid="uid-a",
                      uuid=uuid0) == [ctx_a + GiB]
        assert series(text, "gpupool_tenant_memory_limit_bytes", pod_uid="uid-a",
                      uuid=uuid0) == [3 * GiB]
        assert series(text, "gpupool_tenant_refused_allocations_total", pod_uid="uid-a",
                      uuid=uuid0) == [1]
        assert set(series(text, "gpupool_tenant_processes", pod_uid="uid-b")) == {1}
        # Compute counters for every tenant, metered or not (then 0: no
        # kernel ran here), and the policy and priority as info labels.
        for name in ("gpupool_tenant_compute_seconds_total",
                     "gpupool_tenant_throttled_seconds_total"):
            assert series(text, name, pod_uid="uid-a", uuid=uuid0) == [0], name
            assert len(series(text, name, pod_uid="uid-b", uuid=gpus[1]["uuid"])) == 1, name
        assert series(text, "gpupool_tenant_info", pod_uid="uid-a", uuid=uuid0,
                      priority="normal") == [1]
        g = tgpu(agent, "uid-a", "main")
        assert (g["computeSeconds"], g["throttledSeconds"]) == (0, 0)
        assert g["priority"] == "normal" and g["corePolicy"] in ("hard", "elastic", "off")
        assert "computePercent" in g and "throttledPercent" in g
        assert series(text, "gpupool_gpu_memory_total_bytes", index="1") == [80 * GiB]

        # SIGKILL: its processes and memory are gone, its peak is not.
        os.kill(b.pid, signal.SIGKILL)
        until("tenant b's death", lambda: agent.tenant("uid-b", "side")["processes"] == 0)
        g = tgpu(agent, "uid-b", "side", 1)
        assert g["usedBytes"] == 0 and g["peakBytes"] == ctx_b + 512 * MiB
        until("card 1 without b", lambda: gpu(agent, 1)["processes"] == [])
    finally:
        assert agent.stop() == 0, agent.output()


def test_free_and_peak(machine):
    agent = Agent(machine)
    try:
        a = machine.tenant("uid-a", "main", memory="4GiB")
        ctx = until("the context", lambda: used(agent, "uid-a", "main"))
        a.do("alloc 3GiB")
        until("3 GiB", lambda: used(agent, "uid-a", "main") == ctx + 3 * GiB)
        a.do("free")
        until("the free", lambda: used(agent, "uid-a", "main") == ctx)
        assert tgpu(agent, "uid-a", "main")["peakBytes"] == ctx + 3 * GiB
    finally:
        assert agent.stop() == 0, agent.output()


def test_idle_seconds_follow_launches_and_copies(machine):
    agent = Agent(machine)
    try:
        a = machine.tenant("uid-a", "main", memory="2GiB")
        a.do("alloc 64MiB")
        time.sleep(1.2)
        assert tgpu(agent, "uid-a", "main")["idleSeconds"] >= 1.0
        a.do("spin 100 1")
        until("a launch", lambda: tgpu(agent, "uid-a", "main")["idleSeconds"] < 0.5)
        assert tgpu(agent, "uid-a", "main")["launched"]
        time.sleep(1.2)
        assert tgpu(agent, "uid-a", "main")["idleSeconds"] >= 1.0
        a.do("fill 7")  # a memset counts as activity too
        until("a copy", lambda: tgpu(agent, "uid-a", "main")["idleSeconds"] < 0.5)
        text = agent.get("/metrics")[1]
        assert series(text, "gpupool_tenant_idle_seconds", pod_uid="uid-a")[0] < 1.0
    finally:
        assert agent.stop() == 0, agent.output()


# Where a device entry's compute fields sit in a region file (layout
# version 3, include/gpupool/region.h): the header's fixed part, then dev[].
REGION_VERSION_AT = 8
DEV0_AT, DEV_SIZE, UUID_LEN = 120, 152, 48
CORE_LIMIT_AT, PRIORITY_AT, COMPUTE_AT = 88, 93, 120


def write_region(path, uuid, dev_offset, fmt, *values):
    """Write values (struct format fmt) into the entry of card `uuid` in
    the region at path, as the library does for its compute accounting."""
    with open(path, "r+b") as f:
        f.seek(REGION_VERSION_AT)
        assert struct.unpack("=I", f.read(4))[0] == 3, "region layout is not version 3"
        for i in range(16):
            f.seek(DEV0_AT + i * DEV_SIZE)
            if f.read(UUID_LEN).rstrip(b"\0").decode() == uuid:
                f.seek(DEV0_AT + i * DEV_SIZE + dev_offset)
                f.write(struct.pack(fmt, *values))
                return
    pytest.fail("no entry for %s in %s" % (uuid, path))


def test_compute_counters_come_from_the_region(machine):
    """Counters and rates from the figures the library keeps in the region
    (written here by hand: the tenant launches nothing)."""
    agent = Agent(machine, ["--interval", "200ms"])
    try:
        a = machine.tenant("uid-a", "main", memory="1GiB")
        until("the tenant", lambda: tgpu(agent, "uid-a", "main"))
        region = os.path.join(machine.tenant_dir("uid-a", "main"), "region")
        uuid0 = gpu(agent, 0)["uuid"]
        write_region(region, uuid0, CORE_LIMIT_AT, "=I", 50)
        write_region(region, uuid0, PRIORITY_AT, "=B", 2)  # high
        write_region(region, uuid0, COMPUTE_AT, "=QQ", 1500000000, 250000000)
        g = until("the figures", lambda: (tgpu(agent, "uid-a", "main") or {})
                  .get("computeSeconds") == 1.5 and tgpu(agent, "uid-a", "main"))
        assert (g["coreLimit"], g["priority"], g["throttledSeconds"]) == (50, "high", 0.25)
        text = agent.get("/metrics")[1]
        promtool_check(text)
        mine = {"pod_uid": "uid-a", "uuid": uuid0}
        assert series(text, "gpupool_tenant_compute_seconds_total", **mine) == [1.5]
        assert series(text, "gpupool_tenant_throttled_seconds_total", **mine) == [0.25]
        assert series(text, "gpupool_tenant_core_limit_ratio", **mine) == [0.5]
        assert series(text, "gpupool_tenant_info", priority="high", **mine) == [1]
        # Device time growing at about a third of the wall clock: the
        # share of the card over the agent's interval.
        t0, c = time.monotonic(), 1500000000
        seen = []
        while time.monotonic() - t0 < 2.0:
            time.sleep(0.05)
            c += 50000000 // 3
            write_region(region, uuid0, COMPUTE_AT, "=Q", c)
            pct = tgpu(agent, "uid-a", "main")["computePercent"]
            if pct is not None:
                seen.append(pct)
        assert seen and 10 < sorted(seen)[len(seen) // 2] < 60, seen
        assert tgpu(agent, "uid-a", "main")["throttledPercent"] == 0
        a.do("alloc 1MiB")  # the tenant is alive and well
    finally:
        assert agent.stop() == 0, agent.output()


def node_state(api):
    ann = api.annotations(api.node("node-1"))
    return json.loads(ann["gpupool.io/node-state"]) if "gpupool.io/node-state" in ann else None


def kube_agent(machine, api, args=()):
    kc = write_kubeconfig(os.path.join(machine.dir, "kubeconfig"), api.url)
    return Agent(machine, ["--kubeconfig", kc, "--resync", "1s", "--heartbeat", "2s"]
                 + list(args))


@pytest.fixture
def api(request):
    server = FakeAPI(nodes=[{"metadata": {"name": "node-1"}}]).start()
    request.addfinalizer(server.stop)
    return server


def test_fault_makes_the_node_state_unhealthy_within_a_second(machine, api):
    agent = kube_agent(machine, api)
    try:
        st = until("the node state", lambda: node_state(api))
        assert [g["healthy"] for g in st["gpus"]] == [True, True]
        assert st["version"] == 1 and st["gpus"][0]["memoryBytes"] == 80 * GiB
        assert st["gpus"][0]["links"][st["gpus"][1]["uuid"]] == 280
        assert st["gpus"][0]["numa"] == 0 and st["gpus"][1]["numa"] == 1
        # An application's XID is counted, the card stays healthy.
        machine.simctl("xid", 1, 13)
        until("XID 13 counted", lambda: gpu(agent, 1)["xidErrors"] == 1)
        assert gpu(agent, 1)["healthy"] and node_state(api)["gpus"][1]["healthy"]
        t0 = time.monotonic()
        machine.simctl("xid", 1, 79)
        until("card 1 unhealthy in the node state",
              lambda: node_state(api)["gpus"][1]["healthy"] is False, limit=5, every=0.01)
        took = time.monotonic() - t0
        assert took < 1.0, "took %.3f s" % took
        assert node_state(api)["gpus"][0]["healthy"] is True
        g = gpu(agent, 1)
        assert not g["healthy"] and "XID 79" in g["unhealthyReason"] and g["lastXid"] == 79
        # The heartbeat moves `updated`.
        first = node_state(api)["updated"]
        until("a heartbeat", lambda: node_state(api)["updated"] != first, limit=6)
    finally:
        assert agent.stop() == 0, agent.output()


def test_gpupool_sched_places_on_what_the_agent_writes(machine, api):
    """The extender reads the agent's node state: a 60 GB pod fits on the
    node while its cards are healthy, and nowhere once both have failed."""
    agent = kube_agent(machine, api)
    kc = os.path.join(machine.dir, "kubeconfig")
    sched = Sched(["--kubeconfig", kc, "--resync", "200ms"], tmp=machine.dir)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "big", "namespace": "ml", "uid": "uid-big"},
           "spec": {"containers": [{"name": "main", "image": "app", "resources": {
               "limits": {"gpupool.io/vgpu": "1", "gpupool.io/vgpu-memory": "60000"}}}]},
           "status": {"phase": "Pending"}}

    def filtered():
        code, body = sched.post("filter", {"Pod": pod, "NodeNames": ["node-1"]})
        assert code == 200, body
        return body
    try:
        until("the node state", lambda: node_state(api))
        until("the node to fit", lambda: filtered()["NodeNames"] == ["node-1"])
        machine.simctl("xid", 0, 79)
        machine.simctl("xid", 1, 79)
        body = until("the node to be refused", lambda: filtered()["NodeNames"] == [] and
                     filtered())
        assert body["FailedAndUnresolvableNodes"]["node-1"] == \
            "gpupool: the GPUs that qualify are unhealthy", body
    finally:
        stopped_cleanly(sched)
        assert agent.stop() == 0, agent.output()


def test_a_card_that_disappears_turns_unhealthy(machine, api):
    agent = kube_agent(machine, api)
    try:
        until("the node state", lambda: node_state(api))
        machine.simctl("lose", 0)
        until("card 0 unhealthy", lambda: node_state(api)["gpus"][0]["healthy"] is False)
        g = gpu(agent, 0)
        assert not g["healthy"] and g["unhealthyReason"]
        machine.simctl("restore", 0)
    finally:
        assert agent.stop() == 0, agent.output()


def pod(name, uid, ns="ml", annotations=None, phase="Running"):
    return {"metadata": {"name": name, "namespace": ns, "uid": uid,
                         "annotations": annotations or {}},
            "spec": {"nodeName": "node-1"}, "status": {"phase": phase}}


def test_idle_pods_are_marked_and_named(machine, api):
    api.put_pod(pod("nb-0", "uid-a"))
    api.put_pod(pod("keep", "uid-c", annotations={"gpupool.io/idle-exempt": "true"}))
    log = os.path.join(machine.dir, "exec.log")
    agent = kube_agent(machine, api, ["--idle-after", "1s", "--idle-exec",
                                      'echo "$1 $2 $GPUPOOL_IDLE_POD_UID" >> %s' % log])
    try:
        a = machine.tenant("uid-a", "main", memory="2GiB")
        c = machine.tenant("uid-c", "main", memory="2GiB")
        a.do("alloc 64MiB")
        c.do("alloc 64MiB")
        until("the pod named in the metrics", lambda: series(
            agent.get("/metrics")[1], "gpupool_tenant_processes", namespace="ml",
            pod="nb-0", container="main", pod_uid="uid-a") == [1, 1])
        ann = until("the idle mark", lambda: api.annotations(api.pod("ml", "nb-0"))
                    .get("gpupool.io/idle-since"))
        assert ann.endswith("Z")
        ev = until("the event", lambda: [e for e in api.kube_events
                                         if e["involvedObject"]["name"] == "nb-0"])
        assert ev[0]["reason"] == "GPUIdle" and ev[0]["involvedObject"]["uid"] == "uid-a"
        until("--idle-exec", lambda: os.path.exists(log) and open(log).read() ==
              "ml nb-0 uid-a\n")
        # Opted out: never marked.
        assert "gpupool.io/idle-since" not in api.annotations(api.pod("ml", "keep"))
        # Busy again: the mark goes.
        a.do("spin 100 1")
        until("the mark removed", lambda: "gpupool.io/idle-since" not in
              api.annotations(api.pod("ml", "nb-0")))
        assert len([e for e in api.kube_events if e["involvedObject"]["name"] == "nb-0"]) == 1
        assert "gpupool.io/idle-since" not in api.annotations(api.pod("ml", "keep"))
    finally:
        assert agent.stop() == 0, agent.output()


def test_idle_pods_are_evicted_once_the_budget_allows(machine, api):
    api.put_pod(pod("nb-0", "uid-a"))
    api.pdb_blocks.add(("ml", "nb-0"))
    agent = kube_agent(machine, api, ["--idle-after", "1s", "--idle-action", "evict"])
    try:
        a = machine.tenant("uid-a", "main", memory="2GiB")
        a.do("alloc 64MiB")
        until("an eviction refused", lambda: "disruption budget" in agent.output())
        assert api.evicted == []
        api.pdb_blocks.clear()
        until("the eviction", lambda: api.evicted == [("ml", "nb-0")])
    finally:
        assert agent.stop() == 0, agent.output()


def test_tenants_of_gone_pods_are_collected(machine, api):
    api.put_pod(pod("alive", "uid-live"))
    agent = kube_agent(machine, api)
    try:
        gone = machine.tenant("uid-gone", "main")
        gone.do("alloc 16MiB")
        unknown = machine.tenant("uid-unknown", "main")  # running, pod not listed
        unknown.do("alloc 16MiB")
        live = machine.tenant("uid-live", "main")
        live.do("alloc 16MiB")
        until("three tenants", lambda: len(agent.json("/v1/tenants")["tenants"]) == 3)
        gone.kill()
        live.kill()
        until("the gone pod's directory collected",
              lambda: not os.path.exists(machine.tenant_dir("uid-gone", "main")), limit=20)
        # A pod that exists keeps its directory; a live process keeps its own.
        time.sleep(2.5)
        assert os.path.exists(machine.tenant_dir("uid-live", "main"))
        assert os.path.exists(machine.tenant_dir("uid-unknown", "main"))
        assert series(agent.get("/metrics")[1], "gpupool_agent_tenants_collected_total") == [1]
    finally:
        assert agent.stop() == 0, agent.output()


def test_hostile_region_files_are_skipped(machine):
    tenants = os.path.join(machine.state_dir, "tenants")
    for uid, ctr, content in (("p1", "garbage", b"\xff" * 4096), ("p2", "short", b"gpup"),
                              ("p3", "empty", b"")):
        os.makedirs(os.path.join(tenants, uid, ctr))
        with open(os.path.join(tenants, uid, ctr, "region"), "wb") as f:
            f.write(content)
    os.makedirs(os.path.join(tenants, "p4", "link"))
    os.symlink("/etc/passwd", os.path.join(tenants, "p4", "link", "region"))
    os.makedirs(os.path.join(tenants, "bad name", "x"))
    agent = Agent(machine)
    try:
        a = machine.tenant("uid-a", "main", memory="1GiB")
        a.do("alloc 1MiB")
        until("the good tenant", lambda: agent.tenant("uid-a", "main"))
        doc = agent.json("/v1/tenants")
        assert [t["podUID"] for t in doc["tenants"]] == ["uid-a"]
        assert doc["skipped"] == 4
        # A tenant truncating its region under the agent does not hurt it.
        region = os.path.join(machine.tenant_dir("uid-a", "main"), "region")
        os.truncate(region, 100)
        time.sleep(0.5)
        assert agent.get("/healthz")[0] == 200
        assert agent.get("/v1/tenants")[0] == 200
    finally:
        assert agent.stop() == 0, agent.output()


def test_http_errors(machine):
    agent = Agent(machine)
    try:
        assert agent.get("/nope")[0] == 404
        assert agent.get("/metrics")[0] == 200
        st, body = agent.get("/healthz")
        assert st == 200 and body == "ok\n"
    finally:
        assert agent.stop() == 0, agent.output()


def test_without_nvml_it_still_serves_tenants(machine):
    agent = Agent(machine, ["--nvml", "/nonexistent/libnvidia-ml.so.1"], healthy=False)
    try:
        until("a collection", lambda: agent.get("/v1/tenants")[0] == 200)
        st, body = agent.get("/healthz")
        assert st == 503 and "NVML" in body
        assert agent.json("/v1/gpus")["gpus"] == []
        promtool_check(agent.get("/metrics")[1])
    finally:
        assert agent.stop() == 0, agent.output()


@pytest.mark.parametrize("args,why", [
    (["--interval", "fast"], "--interval"),
    (["--idle-action", "delete", "--idle-after", "1h"], "--idle-action"),
    (["--idle-action", "evict"], "--idle-after"),
    (["--slices", "0"], "--slices"),
    (["--ignore-xid", "13,x"], "--ignore-xid"),
    (["--sim", "--nvml", "x.so"], "--nvml"),
    (["--idle-after", "0"], "--idle-after"),
    (["extra"], "extra"),
    (["--node", "a b"], "--node"),
    (["--node", "x/../y"], "--node"),
])
def test_usage_errors(args, why):
    r = subprocess.run([GPUPOOL, "agent"] + args, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r.stderr
    assert why in r.stderr
