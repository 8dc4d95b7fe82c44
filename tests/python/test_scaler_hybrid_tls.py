"""test_scaler_hybrid_tls.py - the two-cluster setup of deploy/keda/hybrid/
against a real RabbitMQ with the TLS listeners it configures.

The broker of test_scaler_broker.py (loopback, private node, free ports)
gets the `tls.conf` of deploy/keda/hybrid/onprem-rabbitmq-tls.yaml, with
only the certificate paths and ports made local, and a certificate signed
by a CA made here with openssl.  Then, as in the cloud cluster:

- the scaler runs with cloud-scaler.yaml's queue settings and polls the
  management API over HTTPS with --ca-file, and sees a worker's figures;
- the worker connects over AMQPS (pika) verifying the broker's
  certificate and holds messages; the scaler's `pools` split them;
- with another CA, both the scaler (503, "unreachable") and the worker
  (an SSL error) refuse the broker: the certificate really is verified.
"""
import os
import shutil
import ssl
import subprocess
import tempfile

import pytest
from scaler_kit import ScalerProcess, until
from test_scaler_broker import RABBITMQ_SERVER, Broker, free_port

pika = pytest.importorskip("pika")
yaml = pytest.importorskip("yaml", reason="python3-yaml is needed to read deploy/")

HYBRID = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "keda",
                      "hybrid")


def deploy_docs(name):
    with open(os.path.join(HYBRID, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def make_ca(d, name):
    """A CA (name.crt, name.key) and a server certificate it signs for
    localhost and 127.0.0.1 (name-server.crt, name-server.key)."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True,
                       timeout=60)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", name + ".key", "-out", name + ".crt", "-days", "2",
        "-subj", "/CN=gpupool test CA " + name)
    run("req", *ec, "-keyout", name + "-server.key", "-out", name + "-server.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", name + "-server.csr", "-CA", name + ".crt", "-CAkey",
        name + ".key", "-CAcreateserial", "-out", name + "-server.crt", "-days", "2",
        "-extfile", "san.ext")
    return os.path.join(d, name + ".crt")


def tls_conf(d, amqps, mgmt_tls):
    """deploy/keda/hybrid's tls.conf, with local paths and loopback ports.
    The plain listeners are the test broker's own (already on loopback)."""
    (cm,) = [x for x in deploy_docs("onprem-rabbitmq-tls.yaml") if x["kind"] == "ConfigMap"]
    local = {
        "/etc/rabbitmq/tls/ca.crt": os.path.join(d, "ca.crt"),
        "/etc/rabbitmq/tls/tls.crt": os.path.join(d, "ca-server.crt"),
        "/etc/rabbitmq/tls/tls.key": os.path.join(d, "ca-server.key"),
    }
    out = []
    for line in cm["data"]["tls.conf"].splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.split(" = ", 1)
        if key in ("listeners.tcp.default", "management.tcp.port"):
            continue
        if key == "listeners.ssl.default":
            assert value == "5671"
            value = "127.0.0.1:%d" % amqps
        elif key == "management.ssl.port":
            assert value == "15671"
            value = str(mgmt_tls)
        value = local.get(value, value)
        out.append("%s = %s\n" % (key, value))
    out.append("management.ssl.ip = 127.0.0.1\n")
    return "".join(out)


@pytest.fixture(scope="module")
def tmp():
    d = tempfile.mkdtemp(prefix="hybrid-tls-", dir=os.environ.get("TMPDIR"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(tmp):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = os.path.join(tmp, "pki")
    os.mkdir(d)
    return {"ca": make_ca(d, "ca"), "other": make_ca(d, "other"), "dir": d}


@pytest.fixture(scope="module")
def broker(tmp, pki):
    if not os.path.exists(RABBITMQ_SERVER) or not shutil.which("epmd"):
        pytest.skip("rabbitmq-server is not installed (scripts/install-deps)")
    d = os.path.join(tmp, "broker")
    os.mkdir(d)
    amqps, mgmt_tls = free_port(), free_port()
    b = Broker(d, tls_conf(pki["dir"], amqps, mgmt_tls))
    b.amqps, b.mgmt_tls = amqps, mgmt_tls
    try:
        b.wait_ready()
        assert b.api("PUT", "/api/queues/%2F/inference",
                     {"durable": False, "auto_delete": False})[0] in (201, 204)
        yield b
    finally:
        b.stop()


def cloud_queue_args():
    """cloud-scaler.yaml's queue settings (its broker and listen arguments
    are the test's), polling faster."""
    (dep,) = [x for x in deploy_docs("cloud-scaler.yaml") if x["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    conn = ("--url", "--ca-file", "--user", "--password-file", "--timeout", "--http", "--grpc",
            "--interval")
    return [a for a in args[1:] if a.split("=")[0] not in conn]


class CloudScaler(ScalerProcess):
    def __init__(self, broker, ca, tmp, name):
        args = ["--url", "https://localhost:%d" % broker.mgmt_tls, "--ca-file", ca,
                "--user", "guest", "--interval", "100ms", "--timeout", "2s",
                "--http", "127.0.0.1:0", "--grpc", "off"] + cloud_queue_args()
        env = dict(os.environ, GPUPOOL_RABBITMQ_PASSWORD="guest")
        super().__init__(args, env, tmp, name)


def amqps_params(broker, ca):
    ctx = ssl.create_default_context(cafile=ca)  # verifies the chain and the name
    return pika.ConnectionParameters(
        host="localhost", port=broker.amqps, ssl_options=pika.SSLOptions(ctx, "localhost"),
        credentials=pika.PlainCredentials("guest", "guest"), connection_attempts=1,
        socket_timeout=5, blocked_connection_timeout=5)


def test_cloud_side_over_tls(broker, pki, tmp):
    s = CloudScaler(broker, pki["ca"], tmp, "cloud")
    worker = None
    try:
        doc = until("the scaler to poll over HTTPS",
                    lambda: (lambda r: r[1] if r[0] == 200 else None)(s.queue("inference")),
                    limit=30)
        assert doc["pools"]["onprem"]["max"] == 16 and doc["pools"]["cloud"]["warmup_s"] == 180
        # A cloud worker: AMQPS, the broker's certificate verified.
        worker = pika.BlockingConnection(amqps_params(broker, pki["ca"]))
        ch = worker.channel()
        ch.basic_qos(prefetch_count=4)
        held = []
        ch.basic_consume(queue="inference", auto_ack=False,
                         on_message_callback=lambda c, m, p, b: held.append(m))
        # Work published on premises, over plain in-cluster AMQP.
        pub = pika.BlockingConnection(pika.ConnectionParameters(
            host="127.0.0.1", port=broker.amqp,
            credentials=pika.PlainCredentials("guest", "guest")))
        for i in range(6):
            pub.channel().basic_publish(exchange="", routing_key="inference", body=b"%d" % i)
        pub.close()

        def sees():
            worker.process_data_events(time_limit=0)
            st, d = s.queue("inference")
            c = d.get("counters", {})
            ok = (st == 200 and len(held) == 4 and c.get("consumers") == 1
                  and c.get("messages_unacknowledged") == 4 and c.get("messages_ready") == 2)
            return d if ok else None
        doc = until("the scaler to see the TLS worker over HTTPS", sees, limit=30)
        p = doc["pools"]
        near, far = doc["desired_replicas"], p["cloud"]["total_replicas_ahead"]
        assert near >= 1
        assert p["onprem"]["desired_replicas"] == min(16, near)
        assert p["cloud"]["desired_replicas"] == min(40, max(0, max(near, far) - 16))
    finally:
        if worker is not None and worker.is_open:
            worker.close()
        assert s.stop() == 0, s.log_text[-4000:]


def test_another_ca_is_refused(broker, pki, tmp):
    s = CloudScaler(broker, pki["other"], tmp, "wrong-ca")
    try:
        st, doc = until("a refusal", lambda: (lambda r: r if r[0] == 503 and
                                              "not polled yet" not in r[1]["error"]
                                              else None)(s.queue("inference")))
        assert "unreachable" in doc["error"], doc
    finally:
        assert s.stop() == 0, s.log_text[-4000:]
    # pika 1.2 raises the SSL error itself; later releases may wrap it.
    with pytest.raises((ssl.SSLError, pika.exceptions.AMQPConnectionError)) as e:
        pika.BlockingConnection(amqps_params(broker, pki["other"]))
    assert "CERTIFICATE_VERIFY_FAILED" in repr(e.value) or isinstance(
        e.value, pika.exceptions.AMQPConnectionError)
