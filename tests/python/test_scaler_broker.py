"""test_scaler_broker.py - `gpupool scaler` against a real RabbitMQ.

One broker per module: Debian's rabbitmq-server with the management plugin
on loopback, with its own node name, free ports (AMQP, management, Erlang
distribution, and its own epmd), data, logs, config and Erlang cookie in
the test's temporary directory.  Consumers (python3-pika) with prefetch 1
and 4 hold known numbers of messages unacknowledged, and the scaler's
figures are checked against those numbers over HTTP (the metrics-api
endpoint, /metrics through promtool, /healthz) and over gRPC (KEDA's
external scaler, with a real python3-grpcio client whose stubs protoc
generates here).  The last tests stop the broker and check that every
interface says so (503, UNAVAILABLE, gpupool_scaler_up 0) instead of
serving a made-up 0.

What a clean start and stop need here was found by trying: the server
script started directly (/usr/lib/rabbitmq/bin/rabbitmq-server: the one in
/usr/sbin re-runs itself as the rabbitmq user), RABBITMQ_CONF_ENV_FILE
pointed away from /etc, an epmd of our own on a free port (RabbitMQ uses an
epmd already listening on ERL_EPMD_PORT instead of starting a daemonised
one that would outlive the test), and SIGKILL of the whole process tree:
the script's process (erlexec) forks the Erlang VM, so killing the script
alone orphans a running broker; the VM's port helpers exit with it.  The
script and the VM stay in this test's process group, which tests/run kills
at the end whatever happens.
"""
import base64
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pytest
from scaler_kit import ScalerProcess, stubs, until  # noqa: F401 (stubs is a fixture)

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
START_LIMIT_S = 90  # a cold Erlang VM on a loaded 2-core box

pika = pytest.importorskip("pika")
grpc = pytest.importorskip("grpc")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid):
    """pid and every process below it, from /proc (parents first)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += children.get(p, [])
    return out


class Broker:
    """A private rabbitmq-server on loopback."""

    def __init__(self, tmp, extra_conf=""):
        """extra_conf: more rabbitmq.conf lines (test_scaler_hybrid_tls.py's
        TLS listeners)."""
        self.dir = tmp
        self.amqp, self.mgmt = free_port(), free_port()
        self.dist, self.epmd_port = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % self.mgmt
        self.auth = "Basic " + base64.b64encode(b"guest:guest").decode()
        with open(os.path.join(tmp, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_management].\n")
        with open(os.path.join(tmp, "rabbitmq.conf"), "w") as f:
            # Statistics every 250 ms (default 5 s) so figures settle fast.
            f.write("listeners.tcp.1 = 127.0.0.1:%d\n"
                    "management.tcp.ip = 127.0.0.1\n"
                    "management.tcp.port = %d\n"
                    "collect_statistics_interval = 250\n"
                    "log.console = true\nlog.console.level = warning\n"
                    "log.file = false\n" % (self.amqp, self.mgmt) + extra_conf)
        with open(os.path.join(tmp, "advanced.config"), "w") as f:
            # Queue figures reach the management API once per sample of
            # the smallest retention policy: 5 s by default, 1 s here.
            f.write("[{rabbitmq_management_agent, [{sample_retention_policies, "
                    "[{global, [{605, 1}]}, {basic, [{605, 1}]}, {detailed, [{10, 1}]}]}]}].\n")
        home = os.path.join(tmp, "home")
        os.mkdir(home)
        self.env = dict(
            os.environ, HOME=home,
            RABBITMQ_NODENAME="gpupool-test-%d@localhost" % os.getpid(),
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp),
            RABBITMQ_DIST_PORT=str(self.dist),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=os.path.join(tmp, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(tmp, "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(tmp, "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=os.path.join(tmp, "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=os.path.join(tmp, "rabbitmq-env.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(tmp, "advanced.config"),
            RABBITMQ_PLUGINS_EXPAND_DIR=os.path.join(tmp, "plugins-expand"),
            RABBITMQ_FEATURE_FLAGS_FILE=os.path.join(tmp, "feature_flags"),
            RABBITMQ_PID_FILE=os.path.join(tmp, "rabbitmq.pid"),
        )
        self.log = open(os.path.join(tmp, "broker.log"), "w+")
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.proc = subprocess.Popen([RABBITMQ_SERVER], env=self.env, cwd=tmp,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, method, path, body=None):
        """Call the management API; returns (status, parsed JSON or None)."""
        data = json.dumps(body).encode() if body is not None else None
        rq = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": self.auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(rq, timeout=5) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, None

    def wait_ready(self):
        def ready():
            if self.proc.poll() is not None:
                self.log.seek(0)
                pytest.fail("rabbitmq-server exited with %s:\n%s"
                            % (self.proc.returncode, self.log.read()[-3000:]))
            return self.api("GET", "/api/overview")[0] == 200
        until("the broker's management API", ready, limit=START_LIMIT_S, every=0.2)

    def queue(self, name):
        return self.api("GET", "/api/queues/%2F/" + urllib.parse.quote(name, safe=""))[1]

    def stop(self):
        """Kill the broker's process tree, then epmd; idempotent."""
        tree = descendants(self.proc.pid) if self.proc.poll() is None else []
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        # The VM was the script's child, now nobody's: wait until it is gone.
        until("the broker's processes to exit",
              lambda: not any(os.path.exists("/proc/%d" % p) for p in tree), limit=30)
        if self.epmd.poll() is None:
            self.epmd.kill()
        self.epmd.wait(timeout=30)
        if not self.log.closed:
            self.log.close()


@pytest.fixture(scope="module")
def broker():
    if not os.path.exists(RABBITMQ_SERVER) or not shutil.which("epmd"):
        pytest.skip("rabbitmq-server is not installed (scripts/install-deps)")
    tmp = tempfile.mkdtemp(prefix="broker-", dir=os.environ.get("TMPDIR"))
    b = Broker(tmp)
    try:
        b.wait_ready()
        yield b
    finally:
        b.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# The queues: name -> scaler options after its --queue.
QUEUES = {
    "jobs-p1": ["--prefetch", "1"],
    "jobs-p4": ["--prefetch", "4", "--target", "0.8"],
    "from-zero": [],
    "idle": [],
    "never-created": [],
}


class Scaler(ScalerProcess):
    def __init__(self, broker, tmp):
        args = ["--url", broker.url, "--user", "guest",
                "--interval", "100ms", "--timeout", "2s", "--warmup", "60s",
                "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]
        for q, opts in QUEUES.items():
            args += ["--queue", q] + opts
        env = dict(os.environ, GPUPOOL_RABBITMQ_PASSWORD="guest", GPUPOOL_LOG="info")
        super().__init__(args, env, tmp, "scaler")
        self.grpc = "127.0.0.1:%d" % self.ports["grpc_port"]


@pytest.fixture(scope="module")
def scaler(broker):
    for q in QUEUES:
        if q != "never-created":
            assert broker.api("PUT", "/api/queues/%2F/" + q,
                              {"durable": False, "auto_delete": False})[0] in (201, 204)
    tmp = tempfile.mkdtemp(prefix="scaler-", dir=os.environ.get("TMPDIR"))
    s = Scaler(broker, tmp)
    try:
        yield s
    finally:
        rc = s.stop()
        assert rc == 0, "the scaler did not stop cleanly on SIGTERM:\n" + s.log_text[-6000:]
        assert not os.path.exists(s.ready_file), "the ready file outlived the scaler"
        shutil.rmtree(tmp, ignore_errors=True)


class Consumer:
    """One AMQP connection whose consumer takes messages and never acks."""

    def __init__(self, broker, queue, prefetch):
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(
            host="127.0.0.1", port=broker.amqp,
            credentials=pika.PlainCredentials("guest", "guest")))
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=prefetch)
        self.held = []
        self.ch.basic_consume(queue=queue, auto_ack=False,
                              on_message_callback=lambda ch, m, p, b: self.held.append(m))

    def pump(self):
        self.conn.process_data_events(time_limit=0)
        return len(self.held)

    def close(self):
        if self.conn.is_open:
            self.conn.close()


@pytest.fixture(scope="module")
def amqp(broker):
    """Publishing, and consumers closed at the end."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=broker.amqp,
        credentials=pika.PlainCredentials("guest", "guest")))
    ch = conn.channel()
    consumers = []

    class Amqp:
        def publish(self, queue, n):
            for i in range(n):
                ch.basic_publish(exchange="", routing_key=queue, body=b"job %d" % i)

        def consumer(self, queue, prefetch):
            c = Consumer(broker, queue, prefetch)
            consumers.append(c)
            return c

    try:
        yield Amqp()
    finally:
        for c in consumers:
            try:
                c.close()
            except Exception:
                pass  # the broker may be gone already (the error-path tests)
        try:
            conn.close()
        except Exception:
            pass


def held_settled(broker, queue, consumers, held, ready):
    """The broker agrees with our consumers: `held` unacked, `ready` waiting."""
    total = sum(c.pump() for c in consumers)
    q = broker.queue(queue)
    return (total == held and q.get("messages_unacknowledged") == held
            and q.get("messages_ready") == ready and q.get("consumers") == len(consumers))


def scaler_sees(scaler, queue, held, ready, consumers):
    st, doc = scaler.queue(queue)
    c = doc.get("counters", {})
    return st == 200 and (c.get("messages_unacknowledged"), c.get("messages_ready"),
                          c.get("consumers")) == (held, ready, consumers) and doc


def ref(pb, queue, **meta):
    md = {"queue": queue, "scalerAddress": "gpupool-scaler:9090"}  # KEDA passes it along
    md.update(meta)
    return pb.ScaledObjectRef(name="workers", namespace="default", scalerMetadata=md)


@pytest.fixture(scope="module")
def client(scaler, stubs):
    pb, pb_grpc = stubs
    channel = grpc.insecure_channel(scaler.grpc)
    try:
        yield pb, pb_grpc.ExternalScalerStub(channel)
    finally:
        channel.close()


# --- figures against the truth -------------------------------------------------


def test_prefetch_1_saturation_is_the_share_of_busy_consumers(broker, scaler, amqp, client):
    pb, stub = client
    consumers = [amqp.consumer("jobs-p1", 1) for _ in range(3)]
    amqp.publish("jobs-p1", 2)
    until("2 of 3 prefetch-1 consumers busy at the broker",
          lambda: held_settled(broker, "jobs-p1", consumers, held=2, ready=0))
    doc = until("the scaler to see them", lambda: scaler_sees(scaler, "jobs-p1", 2, 0, 3))
    assert doc["saturation"] == pytest.approx(2 / 3, abs=1e-9)
    assert doc["prefetch"] == 1 and doc["target"] == pytest.approx(0.8)
    assert doc["desired_replicas"] >= 1  # two consumers are busy
    assert math.isfinite(doc["forecast_saturation"]) and doc["forecast_saturation"] >= 0
    # The same figure through KEDA's external scaler.
    r = stub.GetMetrics(pb.GetMetricsRequest(
        scaledObjectRef=ref(pb, "jobs-p1", metric="saturation"), metricName="whatever"),
        timeout=5)
    assert r.metricValues[0].metricName == "whatever"  # KEDA's name comes back
    assert r.metricValues[0].metricValueFloat == pytest.approx(2 / 3, abs=1e-9)
    assert stub.IsActive(ref(pb, "jobs-p1"), timeout=5).result is True


def test_prefetch_4_saturation_counts_slots(broker, scaler, amqp, client):
    pb, stub = client
    consumers = [amqp.consumer("jobs-p4", 4) for _ in range(2)]
    amqp.publish("jobs-p4", 5)
    until("5 of 8 prefetch slots held",
          lambda: held_settled(broker, "jobs-p4", consumers, held=5, ready=0))
    doc = until("the scaler to see them", lambda: scaler_sees(scaler, "jobs-p4", 5, 0, 2))
    assert doc["saturation"] == pytest.approx(5 / 8, abs=1e-9)
    assert doc["prefetch"] == 4 and doc["target"] == pytest.approx(0.8)
    # More than the slots: 8 held, 3 waiting -> saturated.
    amqp.publish("jobs-p4", 6)
    until("8 held and 3 ready", lambda: held_settled(broker, "jobs-p4", consumers, 8, 3))
    doc = until("the scaler to see it", lambda: scaler_sees(scaler, "jobs-p4", 8, 3, 2))
    assert doc["saturation"] == pytest.approx(1.0, abs=1e-9)
    assert doc["counters"]["publish_rate"] >= 0
    r = stub.GetMetrics(pb.GetMetricsRequest(
        scaledObjectRef=ref(pb, "jobs-p4", metric="saturation", prefetch="4", target="0.8")),
        timeout=5)
    assert r.metricValues[0].metricValueFloat == pytest.approx(1.0, abs=1e-9)
    spec = stub.GetMetricSpec(ref(pb, "jobs-p4"), timeout=5).metricSpecs[0]
    assert spec.targetSizeFloat == pytest.approx(0.8)
    assert spec.metricName == "gpupool-forecast-saturation-jobs-p4"


def test_scaling_from_zero(broker, scaler, amqp, client):
    pb, stub = client
    amqp.publish("from-zero", 3)
    until("3 ready, no consumers", lambda: held_settled(broker, "from-zero", [], 0, 3))
    doc = until("the scaler to see them", lambda: scaler_sees(scaler, "from-zero", 0, 3, 0))
    # No consumers and work waiting reads as saturated, so KEDA activates.
    assert doc["saturation"] == 1.0
    assert doc["desired_replicas"] >= 1
    assert doc["forecast_saturation"] > 0
    assert stub.IsActive(ref(pb, "from-zero"), timeout=5).result is True
    r = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(pb, "from-zero")), timeout=5)
    assert r.metricValues[0].metricValueFloat > 0
    first = next(iter(stub.StreamIsActive(ref(pb, "from-zero"), timeout=10)))
    assert first.result is True


def test_missing_message_stats_read_as_zero(broker, scaler, client):
    pb, stub = client
    truth = broker.queue("idle")
    assert "message_stats" not in truth, "premise: a queue without traffic has no message_stats"
    doc = until("the scaler to poll the idle queue",
                lambda: scaler_sees(scaler, "idle", 0, 0, 0))
    assert doc["saturation"] == 0.0 and doc["forecast_saturation"] == 0.0
    assert doc["desired_replicas"] == 0
    assert doc["counters"]["publish_rate"] == 0.0 and doc["counters"]["ack_rate"] == 0.0
    assert stub.IsActive(ref(pb, "idle"), timeout=5).result is False


def test_stream_is_active_pushes_changes(broker, scaler, amqp, client):
    pb, stub = client
    stream = stub.StreamIsActive(ref(pb, "idle"), timeout=30)
    assert next(stream).result is False  # the current state, at once
    amqp.publish("idle", 1)  # work arrives: the stream says so unasked
    assert next(stream).result is True
    stream.cancel()


def test_queue_the_broker_lacks_is_unavailable_not_zero(scaler, client):
    pb, stub = client
    st, doc = until("an answer about never-created",
                    lambda: (lambda r: r if r[0] == 503 else None)(scaler.queue("never-created")))
    assert "no queue 'never-created'" in doc["error"]
    with pytest.raises(grpc.RpcError) as e:
        stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(pb, "never-created")), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_requests_the_scaler_refuses(scaler, client):
    pb, stub = client
    assert scaler.get("/v1/queues/%2F/nobody-watches-this")[0] == 404
    assert scaler.get("/v1/queues/%2F")[0] == 404
    assert scaler.get("/v1/queues/%2F/jobs-p1/extra")[0] == 404
    # A percent-escape that decodes to a byte that is not UTF-8: no such
    # queue, never a 500.
    assert scaler.get("/v1/queues/%2F/%ff")[0] == 404
    cases = [
        (ref(pb, "nobody-watches-this"), grpc.StatusCode.NOT_FOUND, "not watched"),
        (pb.ScaledObjectRef(name="x", namespace="y"), grpc.StatusCode.INVALID_ARGUMENT, "queue"),
        (ref(pb, "jobs-p1", prefetch="4"), grpc.StatusCode.INVALID_ARGUMENT, "prefetch"),
        (ref(pb, "jobs-p1", target="0.5"), grpc.StatusCode.INVALID_ARGUMENT, "target"),
        (ref(pb, "jobs-p1", target="nan"), grpc.StatusCode.INVALID_ARGUMENT, "target"),
        (ref(pb, "jobs-p1", target="-nan"), grpc.StatusCode.INVALID_ARGUMENT, "target"),
        (ref(pb, "jobs-p1", target="inf"), grpc.StatusCode.INVALID_ARGUMENT, "target"),
        (ref(pb, "jobs-p1", metric="queue_length"), grpc.StatusCode.INVALID_ARGUMENT, "metric"),
        (ref(pb, "jobs-p1", vhost="other"), grpc.StatusCode.NOT_FOUND, "vhost 'other'"),
    ]
    for r, code, words in cases:
        with pytest.raises(grpc.RpcError) as e:
            stub.IsActive(r, timeout=5)
        assert e.value.code() == code, r
        assert words in e.value.details(), e.value.details()
    # KEDA's newer optional call: UNIMPLEMENTED tells it to fall back.
    with pytest.raises(grpc.RpcError) as e:
        next(iter(stub.StreamMetricSpec(ref(pb, "jobs-p1"), timeout=5)))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def promtool_check(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def metric_lines(text, name):
    return [l for l in text.splitlines() if l.startswith(name + "{")]


def test_metrics_and_health_while_up(scaler):
    if not shutil.which("promtool"):
        pytest.skip("promtool is not installed (scripts/install-deps)")
    until("every queue but never-created current", lambda: all(
        scaler.queue(q)[0] == 200 for q in QUEUES if q != "never-created"))
    st, body = scaler.get("/metrics")
    assert st == 200
    text = body.decode()
    promtool_check(text)
    assert 'gpupool_scaler_up{vhost="/",queue="jobs-p1"} 1' in text
    assert 'gpupool_scaler_up{vhost="/",queue="never-created"} 0' in text
    assert len(metric_lines(text, "gpupool_scaler_saturation")) == len(QUEUES) - 1
    assert 'gpupool_scaler_saturation{vhost="/",queue="from-zero"} 1\n' in text
    # One queue is missing at the broker: not healthy, and it says which.
    st, body = scaler.get("/healthz")
    assert st == 503 and json.loads(body)["queues"][0]["queue"] == "never-created"
    assert scaler.get("/livez")[0] == 200


# --- the broker goes away ------------------------------------------------------


def test_broker_down_every_interface_says_so(broker, scaler, client):
    pb, stub = client
    stream = stub.StreamIsActive(ref(pb, "from-zero"), timeout=30)
    assert next(stream).result is True
    broker.stop()
    st, doc = until("the metrics-api endpoint to answer 503",
                    lambda: (lambda r: r if r[0] == 503 else None)(scaler.queue("jobs-p1")))
    assert "RabbitMQ unreachable" in doc["error"]
    for q in QUEUES:
        assert scaler.queue(q)[0] == 503, q
    for call in (lambda: stub.IsActive(ref(pb, "from-zero"), timeout=5),
                 lambda: stub.GetMetrics(pb.GetMetricsRequest(
                     scaledObjectRef=ref(pb, "jobs-p4")), timeout=5)):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "unreachable" in e.value.details()
    # The open stream ends UNAVAILABLE too, rather than going quiet.
    with pytest.raises(grpc.RpcError) as e:
        next(stream)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    # GetMetricSpec needs only the configuration: KEDA can still set up.
    assert stub.GetMetricSpec(ref(pb, "jobs-p1"), timeout=5).metricSpecs[0].targetSizeFloat > 0
    st, body = scaler.get("/metrics")
    text = body.decode()
    assert st == 200
    if shutil.which("promtool"):
        promtool_check(text)
    assert len(metric_lines(text, "gpupool_scaler_up")) == len(QUEUES)
    assert all(l.endswith(" 0") for l in metric_lines(text, "gpupool_scaler_up"))
    # No figure is made up: the saturation families are empty.
    for fam in ("gpupool_scaler_saturation", "gpupool_scaler_forecast_saturation",
                "gpupool_scaler_desired_replicas"):
        assert metric_lines(text, fam) == [], fam
    assert scaler.get("/healthz")[0] == 503
