"""test_engine_serve.py - `gpupool engine --sim --amqp`: a loaded model that
names a queue consumes it from a real RabbitMQ on loopback (manual acks,
one message at a time), rejects what is not a request, stops consuming when
unloaded (messages then wait in the queue) and resumes when loaded again."""
import json
import os

import pytest

from scaler_kit import until
from test_engine import call, model, running_engine, settled, write_model
from test_scaler_broker import broker  # noqa: F401 (the fixture: a real RabbitMQ)

pika = pytest.importorskip("pika")


@pytest.fixture(scope="module")
def engine(broker, tmp_path_factory):
    pw = tmp_path_factory.mktemp("amqp") / "pw"
    pw.write_text("guest\n")
    with running_engine(["--amqp", "127.0.0.1:%d" % broker.amqp, "--amqp-password-file",
                         str(pw), "--svc-base", "0.01", "--svc-prefill", "0",
                         "--svc-decode", "0.001"]) as e:
        yield e

@pytest.fixture
def channel(broker):
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=broker.amqp, credentials=pika.PlainCredentials("guest", "guest")))
    try:
        yield conn.channel()
    finally:
        conn.close()


def publish(ch, queue, bodies):
    for b in bodies:
        ch.basic_publish(exchange="", routing_key=queue, body=b)


def waiting(ch, queue):
    return ch.queue_declare(queue=queue, passive=True).method.message_count


def test_serves_its_queue_while_loaded(engine, channel):
    channel.queue_declare(queue="m1")
    requests = [json.dumps({"context_tokens": 10, "generated_tokens": 5}).encode()] * 20
    publish(channel, "m1", requests + [b"not a request", b'{"generated_tokens": -1}'])
    path = os.path.join(engine["models"], "m1.safetensors")
    write_model(path, 4096, 1)
    assert call(engine, "POST", "/v1/models/m1/load", {"weights": path, "queue": "m1"})[0] == 202
    assert settled(engine, "m1")["state"] == "loaded"
    m = until("m1 to serve its queue",
              lambda: (lambda x: x if x.get("served") == 20 and x.get("rejected") == 2 else None)(
                  model(engine, "m1")), limit=30)
    assert m["queue"] == "m1" and m["connected"] is True
    until("m1's queue to be empty", lambda: waiting(channel, "m1") == 0)

    # Unloaded: the consumer goes, and new requests wait in the queue.
    assert call(engine, "POST", "/v1/models/m1/unload")[0] == 200
    until("m1's consumer to go",
          lambda: channel.queue_declare(queue="m1", passive=True).method.consumer_count == 0)
    publish(channel, "m1", requests[:5])
    until("5 requests waiting", lambda: waiting(channel, "m1") == 5)
    assert "served" not in model(engine, "m1")

    # Loaded again: it resumes.
    assert call(engine, "POST", "/v1/models/m1/load", {"weights": path, "queue": "m1"})[0] in (200, 202)
    until("m1 to drain its queue again",
          lambda: (model(engine, "m1") or {}).get("served") == 5, limit=30)
    assert waiting(channel, "m1") == 0


def test_a_queue_too_long_a_name_is_refused(engine):
    path = os.path.join(engine["models"], "m2.safetensors")
    write_model(path, 64, 2)
    st, doc = call(engine, "POST", "/v1/models/m2/load", {"weights": path, "queue": "q" * 256})
    assert st == 400
