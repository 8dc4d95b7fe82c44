"""test_scaler_garbage.py - `gpupool scaler` when RabbitMQ answers garbage,
too slowly, refuses the credentials, or is not there.

A stand-in management API on loopback serves the fixture files of
tests/fixtures/scaler/ (real RabbitMQ answers and garbage) per queue name.
For every bad answer each interface must say the figures are unavailable:
HTTP 503 with the reason, gRPC UNAVAILABLE, gpupool_scaler_up 0 and no
figure in /metrics; good answers next to them still serve.  The scaler's
gRPC side listens on a unix socket here (the TCP side is covered by
test_scaler_broker.py).
"""
import base64
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from scaler_kit import (GPUPOOL, ROOT, ScalerProcess, standin_server, stubs,  # noqa: F401 (stubs)
                        until)

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "scaler")
USER, PASSWORD = "keda", "pa:ss w0rd"

grpc = pytest.importorskip("grpc")

# Queue name at the stand-in broker -> (status, fixture file or None).
ANSWERS = {
    "busy": (200, "queue-busy.json"),
    "idle": (200, "queue-idle.json"),
    "fresh": (200, "queue-fresh.json"),
    "g-not-json": (200, "garbage-not-json.txt"),
    "g-array": (200, "garbage-array.json"),
    "g-count-string": (200, "garbage-count-string.json"),
    "g-stats-array": (200, "garbage-stats-array.json"),
    "g-rate-string": (200, "garbage-rate-string.json"),
    "g-truncated": (200, "garbage-truncated.json"),
    "g-http-500": (500, None),
    "slow": (200, "queue-busy.json"),  # answered after the scaler's timeout
}
GARBAGE = [q for q in ANSWERS if q.startswith("g-")]


class StandIn(http.server.BaseHTTPRequestHandler):
    auth_seen = set()
    release = threading.Event()

    def do_GET(self):
        StandIn.auth_seen.add(self.headers.get("Authorization"))
        want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        if self.headers.get("Authorization") != want:
            return self.answer(401, b'{"error":"not_authorised"}')
        path = urllib.parse.urlsplit(self.path).path
        prefix = "/api/queues/%2F/"
        name = urllib.parse.unquote(path[len(prefix):]) if path.startswith(prefix) else None
        if name not in ANSWERS:
            return self.answer(404, b'{"error":"Object Not Found","reason":"Not Found"}')
        status, fixture = ANSWERS[name]
        if name == "slow":
            StandIn.release.wait(10)
        body = b"oops"
        if fixture:
            with open(os.path.join(FIXTURES, fixture), "rb") as f:
                body = f.read()
        self.answer(status, body)

    def answer(self, status, body):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the scaler gave up waiting (the slow queue)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def standin():
    with standin_server(StandIn, before_stop=StandIn.release.set) as url:
        yield url


class Scaler(ScalerProcess):
    """gpupool scaler with HTTP on a free port and gRPC on a unix socket."""

    def __init__(self, url, queues, password, tmp, name):
        self.sock = os.path.join(tmp, name + ".sock")
        pwfile = os.path.join(tmp, name + ".pw")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        args = ["--url", url, "--user", USER, "--password-file", pwfile,
                "--interval", "100ms", "--timeout", "500ms", "--http", "127.0.0.1:0",
                "--grpc", "unix:" + self.sock]
        for q in queues:
            args += ["--queue", q]
            if q == "busy":
                args += ["--prefetch", "8"]
        env = dict(os.environ)
        env.pop("GPUPOOL_RABBITMQ_PASSWORD", None)
        super().__init__(args, env, tmp, name)
        assert "grpc_port" in self.ports and os.path.exists(self.sock)

    def polled(self, name):
        """The answer once the queue has been polled at least once."""
        st, doc = self.queue(name)
        return (st, doc) if doc.get("error") != "not polled yet" else None


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="scaler-", dir=os.environ.get("TMPDIR"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def ref(pb, queue):
    return pb.ScaledObjectRef(name="w", namespace="n", scalerMetadata={"queue": queue})


def test_garbage_is_unavailable_everywhere(standin, stubs, tmp):
    pb, pb_grpc = stubs
    s = Scaler(standin, list(ANSWERS), PASSWORD, tmp, "main")
    try:
        # Good answers serve, next to the bad ones.
        st, doc = until("busy polled", lambda: s.polled("busy"))
        assert st == 200
        assert doc["saturation"] == 0.5  # 8 unacked / (2 consumers x prefetch 8)
        assert doc["counters"] == {
            "messages_ready": 9, "messages_unacknowledged": 8, "consumers": 2,
            "publish_rate": 19.0, "ack_rate": 12.0, "deliver_get_rate": 12.0,
            "deliver_no_ack_rate": 0.0, "redeliver_rate": 0.0}
        st, doc = until("idle polled", lambda: s.polled("idle"))
        assert st == 200 and doc["saturation"] == 0.0 and doc["counters"]["publish_rate"] == 0
        # A queue without counters yet: unavailable, not idle.
        st, doc = until("fresh polled", lambda: s.polled("fresh"))
        assert st == 503 and "not collected" in doc["error"]
        for q in GARBAGE:
            st, doc = until(q + " polled", lambda: s.polled(q))
            assert st == 503, (q, doc)
            want = "HTTP 500" if q == "g-http-500" else "garbage"
            assert want in doc["error"], (q, doc)
        st, doc = until("slow timed out", lambda: s.polled("slow"))
        assert st == 503 and "unreachable" in doc["error"] and "imeout" in doc["error"], doc
        assert StandIn.auth_seen == {"Basic " + base64.b64encode(
            ("%s:%s" % (USER, PASSWORD)).encode()).decode()}

        with grpc.insecure_channel("unix:" + s.sock) as ch:
            stub = pb_grpc.ExternalScalerStub(ch)
            assert stub.IsActive(ref(pb, "busy"), timeout=5).result is True
            for q in GARBAGE + ["fresh", "slow"]:
                with pytest.raises(grpc.RpcError) as e:
                    stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(pb, q)), timeout=5)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE, q
            # Metadata larger than the scaler's 64 KiB message cap.
            big = pb.ScaledObjectRef(scalerMetadata={"queue": "busy", "pad": "x" * 70000})
            with pytest.raises(grpc.RpcError) as e:
                stub.IsActive(big, timeout=5)
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        st, body = s.get("/metrics")
        text = body.decode()
        for q in GARBAGE + ["fresh", "slow"]:
            assert 'gpupool_scaler_up{vhost="/",queue="%s"} 0' % q in text
            assert 'gpupool_scaler_saturation{vhost="/",queue="%s"}' % q not in text
        assert 'gpupool_scaler_saturation{vhost="/",queue="busy"} 0.5\n' in text
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "metrics"], input=text,
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stdout + r.stderr
        st, body = s.get("/healthz")
        down = {d["queue"] for d in json.loads(body)["queues"]}
        assert st == 503 and down == set(GARBAGE + ["fresh", "slow"])
    finally:
        StandIn.release.set()
        assert s.stop() == 0
    assert not os.path.exists(s.sock), "the unix socket outlived the scaler"


def test_wrong_credentials(standin, tmp):
    s = Scaler(standin, ["busy"], "wrong", tmp, "badpw")
    try:
        st, doc = until("busy polled", lambda: s.polled("busy"))
        assert st == 503 and "refused the credentials (HTTP 401)" in doc["error"]
        assert "wrong" not in doc["error"]
    finally:
        assert s.stop() == 0


def test_broker_not_there(stubs, tmp):
    pb, pb_grpc = stubs
    with socket.socket() as sk:  # a port nobody listens on
        sk.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % sk.getsockname()[1]
    s = Scaler(url, ["busy"], PASSWORD, tmp, "nobroker")
    try:
        st, doc = until("busy polled", lambda: s.polled("busy"))
        assert st == 503 and "RabbitMQ unreachable" in doc["error"]
        with grpc.insecure_channel("unix:" + s.sock) as ch:
            stub = pb_grpc.ExternalScalerStub(ch)
            with pytest.raises(grpc.RpcError) as e:
                stub.IsActive(ref(pb, "busy"), timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(grpc.RpcError) as e:
                next(iter(stub.StreamIsActive(ref(pb, "busy"), timeout=5)))
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        st, body = s.get("/metrics")
        assert 'gpupool_scaler_up{vhost="/",queue="busy"} 0' in body.decode()
        assert s.get("/livez")[0] == 200  # alive, just not useful
    finally:
        assert s.stop() == 0


def test_usage_errors_exit_2():
    for args, words in [([], "no --queue"),
                        (["--queue", "a", "--password", "x"], "unknown option '--password'"),
                        (["--queue", "a", "--prefetch", "0"], "--prefetch '0'")]:
        r = subprocess.run([GPUPOOL, "scaler"] + args, capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
    r = subprocess.run([GPUPOOL, "scaler", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--queue NAME" in r.stdout
    r = subprocess.run([GPUPOOL, "scaler", "--queue", "a", "--password-file", "/nonexistent"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "/nonexistent" in r.stderr
