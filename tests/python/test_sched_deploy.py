"""test_sched_deploy.py - deploy/kubernetes/ against the real extender:
the scheduler configuration names verbs the extender serves and resources
it understands, the ConfigMap carries that same configuration, the
extender's arguments in the Deployment start it, and the RBAC grants
exactly the API calls the extender is seen making (no fewer, no more).

The manifests are read with PyYAML (python3-yaml); without it the tests
are skipped, saying so.
"""
import os
import re

import pytest

from test_sched_fakeapi import (ROOT, FakeAPI, Sched, api, cluster, stopped_cleanly,  # noqa: F401
                                tmp, write_kubeconfig)

yaml = pytest.importorskip("yaml", reason="python3-yaml is needed to read deploy/")

DEPLOY = os.path.join(ROOT, "deploy", "kubernetes")


def manifests():
    with open(os.path.join(DEPLOY, "gpupool-scheduler.yaml")) as f:
        return list(yaml.safe_load_all(f))


def config_text():
    with open(os.path.join(DEPLOY, "scheduler-config.yaml")) as f:
        return f.read()


def extender_config():
    (ext,) = yaml.safe_load(config_text())["extenders"]
    return ext


@pytest.fixture
def sched(request, api, tmp):
    kc = write_kubeconfig(os.path.join(tmp, "kubeconfig"), api.url)
    s = Sched(["--kubeconfig", kc], tmp=tmp)
    request.addfinalizer(lambda: stopped_cleanly(s))
    return s


def test_configmap_carries_the_same_configuration():
    (cm,) = [m for m in manifests() if m["kind"] == "ConfigMap"]
    assert cm["data"]["scheduler-config.yaml"] == config_text()
    conf = yaml.safe_load(config_text())
    assert conf["kind"] == "KubeSchedulerConfiguration"
    assert conf["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    (prof,) = conf["profiles"]
    (dep,) = [m for m in manifests() if m["kind"] == "Deployment"]
    cmd = dep["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--config=/etc/gpupool/scheduler-config.yaml" in cmd
    assert prof["schedulerName"] == "gpupool-scheduler"


def test_extender_entry(api, sched):
    ext = extender_config()
    assert ext["urlPrefix"] == "http://127.0.0.1:8888" and ext["enableHTTPS"] is False
    assert ext["nodeCacheCapable"] is True and 1 <= ext["weight"] <= 100
    pod = api.pod("default", "pending-small")
    for key in ("filterVerb", "prioritizeVerb", "bindVerb"):
        code, _ = sched.post(ext[key], {"Pod": pod, "NodeNames": ["node-a"]})
        assert code != 404, key


def test_managed_resources_are_ours_and_understood(api, sched):
    managed = extender_config()["managedResources"]
    names = [m["name"] for m in managed]
    assert all(m["ignoredByScheduler"] is True for m in managed)
    for must in ("gpupool.io/vgpu", "gpupool.io/vgpu-memory", "gpupool.io/vgpu-memory-percent",
                 "gpupool.io/vgpu-cores", "gpupool.io/priority", "nvidia.com/gpu",
                 "nvidia.com/gpumem", "nvidia.com/gpucores"):
        assert must in names, must
    # Every name listed is read by the extender as a GPU request.
    pod = api.pod("default", "pending-small")
    for name in names:
        family = "gpupool.io/vgpu" if name.startswith("gpupool.io/") else "nvidia.com/gpu"
        lim = {name: "1"} if name == family else {family: "1", name: "1"}
        if re.fullmatch(r"gpupool\.io/vgpu-[a-z0-9-]+", name) and name not in (
                "gpupool.io/vgpu-memory", "gpupool.io/vgpu-memory-percent",
                "gpupool.io/vgpu-cores"):
            lim = {name: "1"}  # a per-model name is a count of its own
        pod["spec"]["containers"][0]["resources"] = {"limits": lim}
        code, res = sched.post("filter", {"Pod": pod, "NodeNames": ["node-a", "node-b"]})
        assert code == 200 and res["Error"] == "", (name, res)
        assert res["FailedNodes"] or res["FailedAndUnresolvableNodes"] or res["NodeNames"]


def test_deployment_arguments_start_the_extender(request, api, tmp):
    (dep,) = [m for m in manifests() if m["kind"] == "Deployment"]
    (ctr,) = [c for c in dep["spec"]["template"]["spec"]["containers"]
              if c["name"] == "gpupool-sched"]
    args = ctr["args"]
    assert args[0] == "sched"
    probes = {ctr["readinessProbe"]["httpGet"]["path"], ctr["livenessProbe"]["httpGet"]["path"]}
    assert probes == {"/healthz"}
    assert "--listen=:8888" in args and ctr["ports"][0]["containerPort"] == 8888
    # The same arguments, but on a free loopback port and this fake API.
    kc = write_kubeconfig(os.path.join(tmp, "kubeconfig"), api.url)
    s = Sched([a for a in args[1:] if not a.startswith("--listen")] + ["--kubeconfig", kc],
              tmp=tmp)
    request.addfinalizer(lambda: stopped_cleanly(s))
    code, health = s.get("/healthz")
    assert code == 200 and health["policy"].startswith("node=ours")


def api_calls(api):
    """(resource, verb) of every request the fake API server saw."""
    calls = set()
    for method, path, _ in api.requests:
        if path.startswith("/apis/policy/v1/") and path.endswith("/poddisruptionbudgets"):
            calls.add(("poddisruptionbudgets", {"GET": "list"}[method]))
            continue
        parts = path.strip("/").split("/")[2:]
        if method == "WATCH":
            calls.add((parts[0], "watch"))
        elif parts[0] == "nodes":
            calls.add(("nodes", {"GET": "list" if len(parts) == 1 else "get",
                                 "PATCH": "patch"}[method]))
        elif parts[-1] == "binding":
            calls.add(("pods/binding", {"POST": "create"}[method]))
        else:
            calls.add(("pods", {"GET": "list" if parts[-1] == "pods" else "get",
                                "PATCH": "patch"}[method]))
    return calls


def test_rbac_is_exactly_what_the_extender_uses(api, sched):
    # Exercise every path: filter, a bind that conflicts once, one whose
    # binding fails (its decision is taken back), and one that succeeds.
    pod = api.pod("default", "pending-small")
    sched.post("filter", {"Pod": pod, "NodeNames": ["node-a"]})
    api.conflicts["api/v1/nodes/node-a"] = 1
    api.failures[("POST", "binding")] = [500, 1]
    args = {"PodName": "pending-small", "PodNamespace": "default",
            "PodUID": "uid-pending-small", "Node": "node-a"}
    assert sched.post("bind", args)[1]["Error"]
    assert sched.post("bind", args)[1] == {"Error": ""}
    # A preemption reads PodDisruptionBudgets (the fake has none: 404).
    sched.post("preempt", {"Pod": api.pod("default", "pending-small"),
                           "NodeNameToMetaVictims": {"node-a": {"Pods": [{"UID": "uid-trainer"}],
                                                                "NumPDBViolations": 0}}})
    used = api_calls(api)
    (role,) = [m for m in manifests() if m["kind"] == "ClusterRole"
               and m["metadata"]["name"] == "gpupool-sched"]
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert all(rule["apiGroups"] == ["policy" if rule["resources"] == ["poddisruptionbudgets"]
                                     else ""] for rule in role["rules"])
    assert used == granted, "used %s, granted %s" % (sorted(used), sorted(granted))
