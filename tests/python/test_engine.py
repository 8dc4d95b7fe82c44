"""test_engine.py - `gpupool engine --sim`: models' weights written here as
safetensors files are loaded onto a simulated GPU byte for byte (the
engine's checksum of what it moved equals this test's of the file), served
from the host cache the second time, unloaded, and bad requests are refused
with the right status; the gpupool adapter's view of the engine matches."""
import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from scaler_kit import GPUPOOL, until

MASK = (1 << 64) - 1


def loader_hash(data):
    """src/swap/loader.c's gp_loader_hash from its seed."""
    h = 0x9e3779b97f4a7c15
    n8 = len(data) // 8 * 8
    for (w,) in struct.iter_unpack("<Q", data[:n8]):
        h = ((h ^ w) * 0x100000001b3) & MASK
        h ^= h >> 29
    for b in data[n8:]:
        h = ((h ^ b) * 0x100000001b3) & MASK
    return h


def write_model(path, nbytes, seed):
    data = bytes((i * 131 + seed * 7) >> 3 & 0xff for i in range(nbytes))
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "w": {"dtype": "U8", "shape": [nbytes - 5], "data_offsets": [0, nbytes - 5]},
                         "b": {"dtype": "U8", "shape": [5], "data_offsets": [nbytes - 5, nbytes]}})
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode() + data)
    return loader_hash(data)


@contextlib.contextmanager
def running_engine(args):
    """`gpupool engine --sim ARGS` with a models folder and a simulated
    machine of its own; yields {"url", "models", "tmp"}.  Stopped with
    SIGTERM, it must exit 0 (under make check: with no leak)."""
    tmp = tempfile.mkdtemp(prefix="engine-", dir=os.environ.get("TMPDIR"))
    models = os.path.join(tmp, "models")
    os.mkdir(models)
    ready = os.path.join(tmp, "ready")
    env = dict(os.environ, GPUPOOL_SIM_STATE=os.path.join(tmp, "sim.state"))
    log = open(os.path.join(tmp, "log"), "w+")
    proc = subprocess.Popen([GPUPOOL, "engine", "--sim", "--models-dir", models, "--listen",
                             "127.0.0.1:0", "--ready-file", ready, "-v"] + args,
                            env=env, stdout=log, stderr=subprocess.STDOUT)

    def is_ready():
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail("gpupool engine exited with %s:\n%s" % (proc.returncode, log.read()))
        with open(ready) as f:
            return json.load(f)

    try:
        port = until("the engine's ready file", is_ready)["http_port"]
        yield {"url": "http://127.0.0.1:%d" % port, "models": models, "tmp": tmp}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def engine():
    with running_engine(["--verify", "--host-cache", "8MiB", "--chunk", "64KiB",
                         "--streams", "3"]) as e:
        yield e

def call(engine, method, path, body=None):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    rq = urllib.request.Request(engine["url"] + path, data=data, method=method,
                                headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(rq, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def model(engine, name):
    st, doc = call(engine, "GET", "/v1/models")
    assert st == 200
    return next((m for m in doc["models"] if m["name"] == name), None)


def settled(engine, name):
    return until("%s to settle" % name,
                 lambda: (lambda m: m if m and m["state"] != "loading" else None)(model(engine, name)))


def test_load_unload_reload_from_cache(engine):
    path = os.path.join(engine["models"], "small.safetensors")
    want = write_model(path, 300001, 1)
    st, doc = call(engine, "POST", "/v1/models/small/load", {"weights": path, "bytes": 300001})
    assert (st, doc) in ((202, {"state": "loading"}), (200, {"state": "loaded"}))
    m = settled(engine, "small")
    assert m["state"] == "loaded", m
    assert m["bytes"] == m["loaded_bytes"] == 300001
    assert int(m["checksum"], 16) == want
    assert m["from_cache"] is False
    # Loading what is loaded is a no-op.
    assert call(engine, "POST", "/v1/models/small/load", {"weights": path}) == (200, {"state": "loaded"})
    assert call(engine, "POST", "/v1/models/small/unload") == (200, {"state": "unloaded"})
    assert model(engine, "small")["state"] == "unloaded"
    # The second load comes from the host cache, with the same bytes.
    assert call(engine, "POST", "/v1/models/small/load", {"weights": path})[0] in (200, 202)
    m = settled(engine, "small")
    assert m["state"] == "loaded" and m["from_cache"] is True
    assert int(m["checksum"], 16) == want


def test_several_models_and_a_model_bigger_than_the_cache(engine):
    sums = {}
    for name, size in (("a", 70000), ("big", 9 << 20), ("c", 123457)):
        path = os.path.join(engine["models"], name + ".safetensors")
        sums[name] = write_model(path, size, len(name))
        assert call(engine, "POST", "/v1/models/%s/load" % name, {"weights": path})[0] == 202
    for name, want in sums.items():
        m = settled(engine, name)
        assert m["state"] == "loaded", m
        assert int(m["checksum"], 16) == want
    # 9 MiB does not fit the 8 MiB cache: it streamed through the staging ring.
    assert call(engine, "POST", "/v1/models/big/unload")[0] == 200
    assert call(engine, "POST", "/v1/models/big/load",
                {"weights": os.path.join(engine["models"], "big.safetensors")})[0] == 202
    m = settled(engine, "big")
    assert m["state"] == "loaded" and m["from_cache"] is False


def test_failed_loads_say_why(engine):
    bad = os.path.join(engine["models"], "bad.safetensors")
    with open(bad, "wb") as f:
        f.write(struct.pack("<Q", 2) + b"{}" + b"extra")
    assert call(engine, "POST", "/v1/models/bad/load", {"weights": bad})[0] == 202
    m = settled(engine, "bad")
    assert m["state"] == "failed"
    assert "cover 0 bytes of data, the file has 5" in m["error"]
    path = os.path.join(engine["models"], "sized.safetensors")
    write_model(path, 1000, 3)
    assert call(engine, "POST", "/v1/models/sized/load", {"weights": path, "bytes": 999})[0] == 202
    m = settled(engine, "sized")
    assert m["state"] == "failed" and "holds 1000 bytes of weights, not 999" in m["error"]


@pytest.mark.parametrize("path,body,status,words", [
    ("/v1/models/bad%20name/load", {"weights": "x"}, 400, "model name"),
    ("/v1/models/m/load", {"weight": "x"}, 400, "want {"),
    ("/v1/models/m/load", {"weights": "x", "bytes": -1}, 400, "want {"),
    ("/v1/models/m/load", b"not json", 400, ""),
    ("/v1/models/m/load", {"weights": "/etc/passwd"}, 403, "not under --models-dir"),
    ("/v1/models/m/load", {"weights": "/nonexistent/m.safetensors"}, 404, "No such file"),
    ("/v1/models/m/frobnicate", None, 404, "load or /unload"),
])
def test_bad_requests(engine, path, body, status, words):
    st, doc = call(engine, "POST", path, body)
    assert st == status
    assert words in json.dumps(doc)


def test_escape_through_a_symlink_is_refused(engine):
    link = os.path.join(engine["models"], "escape.safetensors")
    os.symlink("/etc/hostname", link)
    assert call(engine, "POST", "/v1/models/e/load", {"weights": link})[0] == 403


def test_health(engine):
    assert call(engine, "GET", "/healthz") == (200, {"status": "ok"})


def test_usage_errors():
    for args, words in ((["engine"], "--models-dir is required"),
                        (["engine", "--models-dir", "/tmp", "--streams", "0"], "--streams '0'"),
                        (["engine", "--models-dir", "/tmp", "--chunk", "1"], "--chunk '1'"),
                        (["engine", "--models-dir", "/tmp", "--sim", "--lib", "x"], "two drivers"),
                        (["engine", "--models-dir", "/tmp", "extra"], "unexpected argument")):
        r = subprocess.run([GPUPOOL] + args, capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (args, r.stderr)
        assert words in r.stderr
    r = subprocess.run([GPUPOOL, "engine", "--models-dir", "/nonexistent"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "/nonexistent" in r.stderr
