"""scaler_kit.py - what the `gpupool scaler` tests share: where the binary
is, polling until something holds, the KEDA stubs protoc generates, and the
daemon under test (started, asked over HTTP, stopped)."""
import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("GP_BUILD", "build"))
GPUPOOL = os.path.join(BUILD, "gpupool")


@contextlib.contextmanager
def standin_server(handler, before_stop=None):
    """Serve `handler` (a stand-in for RabbitMQ's management API) on a free
    loopback port; yields its URL and stops it on exit, after calling
    before_stop (to release handlers that are made to hang)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % srv.server_address[1]
    finally:
        if before_stop:
            before_stop()
        srv.shutdown()
        srv.server_close()


def until(what, fn, limit=15, every=0.05):
    """Poll fn() until it returns a true value; fail naming `what`.  The
    default limit is a few of the broker's stats intervals, within which
    figures reach the scaler."""
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError) as e:  # URLError is an OSError
            last = e
        time.sleep(every)
    pytest.fail("timed out waiting for %s (last: %r)" % (what, last))


@pytest.fixture(scope="module")
def stubs():
    """externalscaler_pb2{,_grpc} generated from proto/ into a temp dir."""
    out = tempfile.mkdtemp(prefix="stubs-", dir=os.environ.get("TMPDIR"))
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out=" + out,
                    "--grpc_out=" + out,
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                    os.path.join(ROOT, "proto", "externalscaler.proto")], check=True)
    sys.path.insert(0, out)
    try:
        import externalscaler_pb2 as pb
        import externalscaler_pb2_grpc as pb_grpc
        yield pb, pb_grpc
    finally:
        sys.path.remove(out)
        shutil.rmtree(out, ignore_errors=True)


class ScalerProcess:
    """`gpupool scaler ARGS --ready-file TMP/NAME.ready`, logging to
    TMP/NAME.log; ready once the ready file names its ports."""

    def __init__(self, args, env, tmp, name):
        self.ready_file = os.path.join(tmp, name + ".ready")
        self.log = open(os.path.join(tmp, name + ".log"), "w+")
        self.log_text = ""
        self.proc = subprocess.Popen([GPUPOOL, "scaler"] + args + ["--ready-file", self.ready_file],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.ports = until("the scaler's ready file", self._ready)
        self.http = "http://127.0.0.1:%d" % self.ports["http_port"]

    def _ready(self):
        if self.proc.poll() is not None:
            self.log.seek(0)
            pytest.fail("gpupool scaler exited with %s:\n%s"
                        % (self.proc.returncode, self.log.read()))
        with open(self.ready_file) as f:
            return json.load(f)

    def get(self, path):
        """GET path; returns (status, body bytes)."""
        try:
            with urllib.request.urlopen(self.http + path, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def queue(self, name, vhost="%2F"):
        st, body = self.get("/v1/queues/%s/%s" % (vhost, urllib.parse.quote(name, safe="")))
        return st, json.loads(body)

    def stop(self):
        """SIGTERM; returns the exit status (the log is then in log_text)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.seek(0)
            self.log_text = self.log.read()
            self.log.close()
        return self.proc.returncode
