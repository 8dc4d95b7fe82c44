"""test_scaler_hybrid.py - hybrid bursting: one queue consumed by an
on-premises pool and a cloud pool (docs/scaler.md, "Hybrid bursting").

A stand-in management API on loopback serves steady figures per queue, so
the forecast's desired replicas are known (arrivals x holding time /
target).  The split must follow the rule (on-premises first up to
--onprem-max, the rest to the cloud up to --cloud-max) in the JSON
`pools`, through gRPC with scalerMetadata `pool`, and in /metrics (through
promtool).  Bad `pool` values, and `pool` on a queue without two pools,
are INVALID_ARGUMENT; a queue whose figures are not current fails per pool
as it fails as a whole.

Then deploy/keda/hybrid/: both clusters' scalers carry the same queue
settings, their arguments start the scaler, and every trigger of the
ScaledObjects resolves against it to the pool it names.
"""
import glob
import http.server
import json
import math
import os
import shutil
import subprocess
import tempfile
import urllib.parse

import pytest
from scaler_kit import (GPUPOOL, ROOT, ScalerProcess, standin_server, stubs,  # noqa: F401 (stubs)
                        until)

grpc = pytest.importorskip("grpc")

HYBRID = os.path.join(ROOT, "deploy", "keda", "hybrid")


def steady(publish, unacked, consumers, ready=0):
    """A queue answer with steady rates: each message held unacked/publish s."""
    return {"consumers": consumers, "messages_ready": ready,
            "messages_unacknowledged": unacked,
            "message_stats": {"publish_details": {"rate": float(publish)},
                              "ack_details": {"rate": float(publish)}}}


# Queue name at the stand-in -> (status, answer).  With target 0.7, no
# headroom and prefetch 1 the forecast wants ceil(unacked / 0.7) replicas: 23 -> 33
# (well away from a rounding edge), 2 -> 3.
ANSWERS = {
    "burst": (200, steady(10, 23, 23)),
    "capped": (200, steady(10, 23, 23)),
    "calm": (200, steady(1, 2, 2)),
    "plain": (200, steady(10, 23, 23)),
    "broken": (500, None),
    # deploy/keda/hybrid's queue (prefetch 4): 230 / (0.8 x 4) -> 72
    # replicas, more than --max-replicas 56 allows.
    "inference": (200, steady(100, 230, 60)),
}


class StandIn(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        prefix = "/api/queues/%2F/"
        name = urllib.parse.unquote(path[len(prefix):]) if path.startswith(prefix) else None
        status, doc = ANSWERS.get(name, (404, {"error": "Object Not Found"}))
        body = json.dumps(doc).encode() if doc is not None else b"oops"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def standin():
    with standin_server(StandIn) as url:
        yield url


@pytest.fixture(scope="module")
def tmp():
    d = tempfile.mkdtemp(prefix="hybrid-", dir=os.environ.get("TMPDIR"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Scaler(ScalerProcess):
    def __init__(self, args, tmp, name):
        env = dict(os.environ)
        env.pop("GPUPOOL_RABBITMQ_PASSWORD", None)
        env.pop("GPUPOOL_RABBITMQ_USER", None)
        super().__init__(args + ["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
                         env, tmp, name)
        self.grpc = "127.0.0.1:%d" % self.ports["grpc_port"]

    def current(self, name):
        st, doc = self.queue(name)
        return doc if st == 200 and doc["forecast"]["samples"] >= 2 else None


@pytest.fixture(scope="module")
def scaler(standin, tmp):
    s = Scaler(["--url", standin, "--interval", "100ms", "--timeout", "1s",
                "--target", "0.7", "--headroom", "0",
                "--queue", "burst", "--onprem-max", "8",
                "--queue", "capped", "--onprem-max", "8", "--cloud-max", "3",
                "--cloud-warmup", "4m", "--cloud-cost", "2.5",
                "--queue", "calm", "--onprem-max", "8",
                "--queue", "plain",
                "--queue", "broken", "--onprem-max", "8"], tmp, "scaler")
    try:
        yield s
    finally:
        assert s.stop() == 0, s.log_text[-4000:]


@pytest.fixture(scope="module")
def stub(scaler, stubs):
    pb, pb_grpc = stubs
    with grpc.insecure_channel(scaler.grpc) as ch:
        yield pb, pb_grpc.ExternalScalerStub(ch)


def ref(pb, queue, **meta):
    md = {"queue": queue, "scalerAddress": "gpupool-scaler:9090"}
    md.update(meta)
    return pb.ScaledObjectRef(name="workers", namespace="default", scalerMetadata=md)


def rule(near, far, onprem_max, cloud_max):
    """docs/scaler.md's rule, written out independently."""
    return min(onprem_max, near), min(cloud_max, max(0, max(near, far) - onprem_max))


def test_json_pools_split(scaler):
    doc = until("burst polled twice", lambda: scaler.current("burst"))
    assert doc["desired_replicas"] == 33
    pools = doc["pools"]
    assert set(pools) == {"onprem", "cloud"}
    # Steady figures: the forecast one cloud warm-up ahead is the same.
    assert pools["cloud"]["total_replicas_ahead"] == 33
    assert pools["onprem"] == {"desired_replicas": 8, "max": 8, "warmup_s": 60.0,
                               "cost_factor": 1.0}
    assert pools["cloud"] == {"desired_replicas": 25, "max": 100, "warmup_s": 180.0,
                              "cost_factor": 3.0, "total_replicas_ahead": 33}
    # The cloud stops at --cloud-max; its own warm-up and cost.
    doc = until("capped polled twice", lambda: scaler.current("capped"))
    assert (doc["pools"]["onprem"]["desired_replicas"],
            doc["pools"]["cloud"]["desired_replicas"]) == (8, 3)
    assert doc["pools"]["cloud"]["warmup_s"] == 240.0
    assert doc["pools"]["cloud"]["cost_factor"] == 2.5
    assert doc["pools"]["cloud"]["max"] == 3
    # Within the on-premises capacity the cloud stays at zero.
    doc = until("calm polled twice", lambda: scaler.current("calm"))
    assert doc["desired_replicas"] == 3
    assert (doc["pools"]["onprem"]["desired_replicas"],
            doc["pools"]["cloud"]["desired_replicas"]) == (3, 0)
    for name in ("burst", "capped", "calm"):
        doc = scaler.current(name)
        p = doc["pools"]
        assert (p["onprem"]["desired_replicas"], p["cloud"]["desired_replicas"]) == rule(
            doc["desired_replicas"], p["cloud"]["total_replicas_ahead"], p["onprem"]["max"],
            p["cloud"]["max"]), name
    # A queue without --onprem-max has no pools.
    doc = until("plain polled", lambda: scaler.current("plain"))
    assert "pools" not in doc and doc["desired_replicas"] == 33
    # Not current: 503 as a whole, pools included.
    st, doc = until("broken polled", lambda: (lambda r: r if r[0] == 503 else None)(
        scaler.queue("broken")))
    assert "HTTP 500" in doc["error"] and "pools" not in doc


def test_grpc_pool_metadata(scaler, stub):
    pb, s = stub
    until("burst polled twice", lambda: scaler.current("burst"))
    until("calm polled twice", lambda: scaler.current("calm"))
    for pool, want in (("onprem", 8), ("cloud", 25)):
        spec = s.GetMetricSpec(ref(pb, "burst", pool=pool), timeout=5).metricSpecs[0]
        assert spec.metricName == "gpupool-%s-desired-replicas-burst" % pool
        assert spec.targetSizeFloat == 1.0 and spec.targetSize == 1
        r = s.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(pb, "burst", pool=pool),
                                              metricName="s0-" + spec.metricName), timeout=5)
        assert r.metricValues[0].metricName == "s0-" + spec.metricName
        assert r.metricValues[0].metricValueFloat == want
        assert r.metricValues[0].metricValue == want
        assert s.IsActive(ref(pb, "burst", pool=pool), timeout=5).result is True
    # metric, when given with a pool, must name the pool's figure.
    r = s.GetMetrics(pb.GetMetricsRequest(
        scaledObjectRef=ref(pb, "burst", pool="cloud", metric="desired_replicas")), timeout=5)
    assert r.metricValues[0].metricValueFloat == 25
    # The cloud pool of a calm queue wants nothing: inactive, so KEDA can
    # keep it at zero; the on-premises pool serves.
    assert s.IsActive(ref(pb, "calm", pool="cloud"), timeout=5).result is False
    assert s.IsActive(ref(pb, "calm", pool="onprem"), timeout=5).result is True
    stream = s.StreamIsActive(ref(pb, "calm", pool="cloud"), timeout=10)
    assert next(stream).result is False
    stream.cancel()
    # Without pool, nothing changed: the saturation forecast, target 0.7.
    spec = s.GetMetricSpec(ref(pb, "burst"), timeout=5).metricSpecs[0]
    assert spec.metricName == "gpupool-forecast-saturation-burst"
    assert spec.targetSizeFloat == pytest.approx(0.7)


def test_grpc_pool_refusals(scaler, stub):
    pb, s = stub
    cases = [
        (ref(pb, "burst", pool="edge"), "want onprem or cloud"),
        (ref(pb, "burst", pool="Cloud"), "want onprem or cloud"),
        (ref(pb, "burst", pool=""), "want onprem or cloud"),
        (ref(pb, "burst", pool="cloud", metric="saturation"), "desired_replicas"),
        (ref(pb, "plain", pool="onprem"), "no on-premises and cloud pools"),
        (ref(pb, "plain", pool="cloud"), "--onprem-max"),
    ]
    for r, words in cases:
        for call in (lambda: s.IsActive(r, timeout=5),
                     lambda: s.GetMetricSpec(r, timeout=5),
                     lambda: s.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r), timeout=5),
                     lambda: next(iter(s.StreamIsActive(r, timeout=5)))):
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, r
            assert words in e.value.details(), e.value.details()
    # Not current: UNAVAILABLE per pool as for the queue; the spec needs
    # only the configuration.
    until("broken polled", lambda: scaler.queue("broken")[0] == 503)
    for call in (lambda: s.IsActive(ref(pb, "broken", pool="cloud"), timeout=5),
                 lambda: s.GetMetrics(pb.GetMetricsRequest(
                     scaledObjectRef=ref(pb, "broken", pool="onprem")), timeout=5),
                 lambda: next(iter(s.StreamIsActive(ref(pb, "broken", pool="cloud"),
                                                    timeout=5)))):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    spec = s.GetMetricSpec(ref(pb, "broken", pool="cloud"), timeout=5).metricSpecs[0]
    assert spec.targetSizeFloat == 1.0


def test_prometheus_pools(scaler):
    until("burst polled twice", lambda: scaler.current("burst"))
    until("calm polled twice", lambda: scaler.current("calm"))
    st, body = scaler.get("/metrics")
    text = body.decode()
    assert st == 200
    lines = set(text.splitlines())
    for want in (
            'gpupool_scaler_pool_desired_replicas{vhost="/",queue="burst",pool="onprem"} 8',
            'gpupool_scaler_pool_desired_replicas{vhost="/",queue="burst",pool="cloud"} 25',
            'gpupool_scaler_pool_desired_replicas{vhost="/",queue="calm",pool="cloud"} 0',
            'gpupool_scaler_pool_max_replicas{vhost="/",queue="capped",pool="cloud"} 3',
            'gpupool_scaler_pool_max_replicas{vhost="/",queue="burst",pool="onprem"} 8',
            'gpupool_scaler_pool_warmup_seconds{vhost="/",queue="capped",pool="cloud"} 240',
            'gpupool_scaler_pool_warmup_seconds{vhost="/",queue="burst",pool="onprem"} 60',
            'gpupool_scaler_pool_cost_factor{vhost="/",queue="capped",pool="cloud"} 2.5',
            # the configuration of a queue that is down is still shown...
            'gpupool_scaler_pool_max_replicas{vhost="/",queue="broken",pool="cloud"} 100'):
        assert want in lines, want
    # ... but not its figures; a queue without pools has no pool lines.
    assert 'queue="broken",pool="onprem"} ' not in "".join(
        l for l in text.splitlines() if l.startswith("gpupool_scaler_pool_desired_replicas"))
    assert not [l for l in text.splitlines() if "_pool_" in l and 'queue="plain"' in l]
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr


def test_usage_errors_exit_2(standin):
    for args, words in [(["--queue", "a", "--onprem-max", "100"], "not below --max-replicas"),
                        (["--queue", "a", "--cloud-max", "4"], "without --onprem-max"),
                        (["--queue", "a", "--onprem-max", "4", "--cloud-warmup", "0s"],
                         "--cloud-warmup '0s'")]:
        r = subprocess.run([GPUPOOL, "scaler", "--url", standin] + args, capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
    r = subprocess.run([GPUPOOL, "scaler", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    for flag in ("--onprem-max", "--cloud-warmup", "--cloud-max", "--cloud-cost"):
        assert flag in r.stdout, flag


# --- deploy/keda/hybrid ----------------------------------------------------------

yaml = None
try:
    import yaml  # noqa: F811
except ImportError:
    pass

# Arguments that say where the broker is and where to serve, which differ
# between the clusters; the rest (the queue settings) must not.
CONNECTION = ("--url", "--ca-file", "--insecure", "--user", "--password-file", "--timeout",
              "--http", "--grpc")


def load(name):
    if yaml is None:
        pytest.skip("python3-yaml is needed to read deploy/")
    with open(os.path.join(HYBRID, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def scaler_args(name):
    (dep,) = [d for d in load(name) if d["kind"] == "Deployment"]
    (ctr,) = dep["spec"]["template"]["spec"]["containers"]
    assert ctr["args"][0] == "scaler"
    return ctr["args"][1:]


def split_args(args):
    conn = [a for a in args if a.split("=")[0] in CONNECTION]
    return conn, [a for a in args if a not in conn]


def flag(args, name):
    (v,) = [a.split("=", 1)[1] for a in args if a.startswith(name + "=")]
    return v


def test_deploy_files_parse():
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HYBRID, "*.yaml")))
    assert names == ["cloud-scaledobject.yaml", "cloud-scaler.yaml", "cloud-workers.yaml",
                     "onprem-rabbitmq-tls.yaml", "onprem-scaledobject.yaml",
                     "onprem-scaler.yaml", "scaledobjects-metrics-api.yaml"]
    for n in names:
        for d in load(n):
            assert d["apiVersion"] and d["kind"] and d["metadata"]["name"], n


def test_deploy_both_clusters_share_the_queue_settings():
    on_conn, on_queue = split_args(scaler_args("onprem-scaler.yaml"))
    cl_conn, cl_queue = split_args(scaler_args("cloud-scaler.yaml"))
    assert on_queue == cl_queue
    assert "--onprem-max=16" in on_queue and "--cloud-warmup=180s" in on_queue
    # The cloud polls the central broker over HTTPS and verifies it.
    assert flag(cl_conn, "--url").startswith("https://")
    assert flag(cl_conn, "--url").endswith(":15671")
    assert flag(cl_conn, "--ca-file") and "--insecure" not in cl_conn
    # The broker opens exactly the TLS ports to the cloud.
    docs = load("onprem-rabbitmq-tls.yaml")
    (svc,) = [d for d in docs if d["kind"] == "Service"]
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [5671, 15671]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    conf = dict(l.split(" = ", 1) for l in cm["data"]["tls.conf"].splitlines()
                if l and not l.startswith("#"))
    assert conf["listeners.ssl.default"] == "5671" and conf["management.ssl.port"] == "15671"
    # Cloud workers: AMQPS to the same host, verifying the broker's CA.
    docs = load("cloud-workers.yaml")
    (sec,) = [d for d in docs if d["kind"] == "Secret"]
    url = urllib.parse.urlsplit(sec["stringData"]["url"])
    assert url.scheme == "amqps" and url.port == 5671
    assert url.hostname == urllib.parse.urlsplit(flag(cl_conn, "--url")).hostname
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AMQP_PREFETCH"]["value"] == flag(on_queue, "--prefetch")


def scaled_objects():
    """(file, ScaledObject) of every hybrid ScaledObject."""
    out = []
    for n in ("onprem-scaledobject.yaml", "cloud-scaledobject.yaml",
              "scaledobjects-metrics-api.yaml"):
        out += [(n, d) for d in load(n) if d["kind"] == "ScaledObject"]
    return out


def test_deploy_scaledobjects_resolve(standin, tmp, stubs):
    """Start the cloud cluster's scaler with its own arguments (only the
    broker and the listen addresses changed: the stand-in, loopback), and
    resolve every trigger against it."""
    pb, pb_grpc = stubs
    conn, queue = split_args(scaler_args("cloud-scaler.yaml"))
    with open(os.path.join(ROOT, "deploy", "keda", "scaledobject-external.yaml")) as f:
        repo_behavior = yaml.safe_load(f)["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    s = Scaler(["--url", standin, "--interval", "100ms"]
               + [a for a in queue if not a.startswith("--interval")], tmp, "deploy")
    try:
        doc = until("inference polled twice", lambda: s.current("inference"))
        assert doc["desired_replicas"] == int(flag(queue, "--max-replicas"))  # capped: 56
        onprem_max, cloud_max = int(flag(queue, "--onprem-max")), int(flag(queue, "--cloud-max"))
        want = dict(zip(("onprem", "cloud"), rule(
            doc["desired_replicas"], doc["pools"]["cloud"]["total_replicas_ahead"],
            onprem_max, cloud_max)))
        assert want == {"onprem": 16, "cloud": 40}
        seen = set()
        with grpc.insecure_channel(s.grpc) as ch:
            stub = pb_grpc.ExternalScalerStub(ch)
            for n, so in scaled_objects():
                spec = so["spec"]
                (trig,) = spec["triggers"]
                md = trig["metadata"]
                assert trig["metricType"] == "AverageValue", n
                # The repo's scale-up and scale-in policy, in both clusters.
                assert spec["advanced"]["horizontalPodAutoscalerConfig"] == repo_behavior, n
                if trig["type"] in ("external", "external-push"):
                    pool = md["pool"]
                    r = ref(pb, md["queue"], **{k: v for k, v in md.items() if k != "queue"})
                    tgt = stub.GetMetricSpec(r, timeout=5).metricSpecs[0].targetSizeFloat
                    assert tgt == 1.0
                    got = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r),
                                          timeout=5).metricValues[0].metricValueFloat
                else:
                    assert trig["type"] == "metrics-api" and md["targetValue"] == "1"
                    path = urllib.parse.urlsplit(md["url"]).path
                    st, body = s.get(path)
                    assert st == 200, (n, path)
                    got = json.loads(body)
                    for key in md["valueLocation"].split("."):
                        got = got[key]
                    pool = md["valueLocation"].split(".")[1]
                    assert md["valueLocation"] == "pools.%s.desired_replicas" % pool
                assert got == want[pool], (n, pool)
                assert spec["maxReplicaCount"] == {"onprem": onprem_max,
                                                   "cloud": cloud_max}[pool], n
                if pool == "cloud":
                    assert spec["minReplicaCount"] == 0, n
                seen.add((n, pool))
        assert seen == {("onprem-scaledobject.yaml", "onprem"),
                        ("cloud-scaledobject.yaml", "cloud"),
                        ("scaledobjects-metrics-api.yaml", "onprem"),
                        ("scaledobjects-metrics-api.yaml", "cloud")}
        assert math.isfinite(doc["forecast_saturation"])
    finally:
        assert s.stop() == 0, s.log_text[-4000:]
