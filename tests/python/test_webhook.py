"""test_webhook.py - `gpupool webhook` as the API server meets it: HTTPS
only, AdmissionReview v1 in and out, certificates that rotate under it.

A throwaway CA and server certificates (SAN 127.0.0.1) are made with the
openssl command in a temp dir; the daemon listens on 127.0.0.1:0 and says
its port in --ready-file; every request goes through Python's ssl module
verifying that CA, as a real TLS client.  The review itself is covered
case by case by tests/unit/test_webhook.c; here the same fixture files go
over the wire, a patch is applied to its pod to see what the pod becomes,
and the daemon's life is checked: TLS 1.2+ only, no plain HTTP, body cap,
rotation by file change and by SIGHUP (a bad pair keeps the old
certificate), usage errors (exit 2), start failures (exit 1), SIGTERM
(exit 0).  Every daemon is stopped in teardown.
"""
import base64
import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import warnings

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("GP_BUILD", "build"))
GPUPOOL = os.path.join(BUILD, "gpupool")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "webhook")


def until(what, fn, limit=10, every=0.05):
    """Poll fn() until it returns a true value; fail naming `what`."""
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError) as e:
            last = e
        time.sleep(every)
    pytest.fail("timed out waiting for %s (last: %r)" % (what, last))


# --- certificates -------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class PKI:
    """A CA in `dir`, and server certificates it signs."""

    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.crt")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                "-subj", "/CN=gpupool-test-ca", cwd=d)
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def issue(self, cn):
        """A server certificate and key for 127.0.0.1 with common name cn:
        returns (cert path, key path), named after cn."""
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", cn + ".key", "-out", cn + ".csr", "-subj", "/CN=" + cn, cwd=self.dir)
        openssl("x509", "-req", "-in", cn + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "1",
                "-extfile", "server.ext", "-out", cn + ".crt", cwd=self.dir)
        return os.path.join(self.dir, cn + ".crt"), os.path.join(self.dir, cn + ".key")

    def context(self, **versions):
        ctx = ssl.create_default_context(cafile=self.ca)
        for k, v in versions.items():
            setattr(ctx, k, v)
        return ctx


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="pki-", dir=os.environ.get("TMPDIR"))
    try:
        yield PKI(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def install(src_cert, src_key, cert, key):
    """Put a certificate and key in place the way a writer would: each file
    replaced atomically, the certificate first (so for a moment the pair
    does not match)."""
    for src, dst in ((src_cert, cert), (src_key, key)):
        shutil.copyfile(src, dst + ".new")
        os.replace(dst + ".new", dst)


# --- the daemon ---------------------------------------------------------------

class Webhook:
    """`gpupool webhook ARGS --ready-file ...` on 127.0.0.1:0, logging to a
    file; ready once the ready file names its port."""

    def __init__(self, pki, tmp, cert, key, args=()):
        self.pki = pki
        self.ready_file = os.path.join(tmp, "webhook.ready")
        self.log = open(os.path.join(tmp, "webhook.log"), "w+")
        self.log_text = ""
        env = dict(os.environ, GPUPOOL_LOG="info")
        self.proc = subprocess.Popen(
            [GPUPOOL, "webhook", "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
             "--ready-file", self.ready_file] + list(args),
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = until("the webhook's ready file", self._ready)["https_port"]

    def _ready(self):
        if self.proc.poll() is not None:
            self.log.seek(0)
            pytest.fail("gpupool webhook exited with %s:\n%s" % (self.proc.returncode,
                                                                  self.log.read()))
        with open(self.ready_file) as f:
            return json.load(f)

    def connect(self, ctx=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                        context=ctx or self.pki.context())
        c.connect()
        return c

    def request(self, method, path, body=None, conn=None):
        """One request over TLS; returns (status, body bytes)."""
        c = conn or self.connect()
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            if conn is None:
                c.close()

    def review(self, body):
        st, data = self.request("POST", "/mutate?timeout=10s", body)
        return st, json.loads(data)

    def peer_cn(self):
        """The common name of the certificate a new connection is served."""
        c = self.connect()
        try:
            subject = dict(x[0] for x in c.sock.getpeercert()["subject"])
            return subject["commonName"]
        finally:
            c.close()

    def stop(self):
        """SIGTERM; returns the exit status (the log is then in log_text)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.seek(0)
            self.log_text = self.log.read()
            self.log.close()
        return self.proc.returncode


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="wh-", dir=os.environ.get("TMPDIR"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def files(pki, tmp):
    """cert and key paths in tmp holding the certificate "webhook-1"."""
    cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
    install(*pki.issue("webhook-1"), cert, key)
    return cert, key


@pytest.fixture
def daemon(pki, tmp, files):
    w = Webhook(pki, tmp, *files, args=["--reload-interval", "100ms"])
    try:
        yield w
    finally:
        # 0: a clean stop (under ASan, also no leak at exit).
        assert w.stop() == 0, w.log_text


# --- reviews over the wire ----------------------------------------------------

def load_request(case):
    for ext in (".request.json", ".request.txt"):
        p = os.path.join(FIXTURES, case + ext)
        if os.path.exists(p):
            with open(p, "rb") as f:
                return f.read()
    raise FileNotFoundError(case)


def decode_patch(answer):
    resp = answer.get("response") or {}
    if "patch" in resp:
        resp["patch"] = json.loads(base64.b64decode(resp["patch"], validate=True))
    return answer


def matches(want, got):
    """As tests/fixtures/webhook/README.md says: {"$match": re} a string
    containing the pattern, objects by key, lists in order."""
    if isinstance(want, dict) and set(want) == {"$match"}:
        return isinstance(got, str) and re.search(want["$match"], got) is not None
    if isinstance(want, dict):
        return (isinstance(got, dict) and set(want) == set(got)
                and all(matches(want[k], got[k]) for k in want))
    if isinstance(want, list):
        return (isinstance(got, list) and len(want) == len(got)
                and all(matches(a, b) for a, b in zip(want, got)))
    return want == got and type(want) == type(got)


CASES = sorted(f[:-len(".response.json")] for f in os.listdir(FIXTURES)
               if f.endswith(".response.json"))


def test_fixtures_over_tls(daemon):
    """Every fixture case, posted over TLS, answers as its response file."""
    assert len(CASES) >= 30
    conn = daemon.connect()  # one keep-alive connection, as the API server keeps
    try:
        for case in CASES:
            with open(os.path.join(FIXTURES, case + ".response.json")) as f:
                want = json.load(f)
            st, data = daemon.request("POST", "/mutate", load_request(case), conn=conn)
            got = {"status": st, "body": decode_patch(json.loads(data))}
            assert matches(want, got), "%s: got %s" % (case, json.dumps(got, indent=1))
    finally:
        conn.close()


def apply_patch(doc, ops):
    """RFC 6902 add and replace, as the API server applies the answer."""
    doc = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] in ("add", "replace"), op
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        if op["op"] == "replace":
            assert parts[-1] in parent, "replace of a missing member: %s" % op["path"]
        parent[parts[-1]] = op["value"]
    return doc


def test_patched_pods(daemon):
    """Applied to its pod, each patch gives what the scheduler needs."""
    want = {
        "memory-only": {"server": {"limits": {"cpu": "4", "gpupool.io/vgpu-memory": "20000",
                                              "gpupool.io/vgpu": "1"}}},
        "cores-requests-only": {"server": {"limits": {"gpupool.io/vgpu": "1"},
                                           "requests": {"gpupool.io/vgpu-cores": 25,
                                                        "gpupool.io/vgpu": "1"}}},
        "hami-names": {"infer": {"limits": {"nvidia.com/gpumem": "8000",
                                            "nvidia.com/gpucores": "20",
                                            "nvidia.com/gpu": "1"}}},
        "init-container": {"warmup": {"limits": {"gpupool.io/vgpu-memory": "2048",
                                                 "gpupool.io/vgpu": "1"}}},
    }
    for case, ctrs in want.items():
        review = json.loads(load_request(case))
        st, answer = daemon.review(json.dumps(review))
        assert st == 200 and answer["response"]["allowed"] is True, answer
        assert answer["response"]["uid"] == review["request"]["uid"]
        assert answer["response"]["patchType"] == "JSONPatch"
        pod = apply_patch(review["request"]["object"],
                          json.loads(base64.b64decode(answer["response"]["patch"])))
        assert pod["spec"]["schedulerName"] == "gpupool-scheduler", case
        every = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
        for c in every:
            if c["name"] in ctrs:
                assert c["resources"] == ctrs[c["name"]], (case, c["resources"])


def test_scheduler_name_option(pki, tmp, files):
    w = Webhook(pki, tmp, *files, args=["--scheduler-name", "gpu-sched.example"])
    try:
        st, answer = w.review(load_request("memory-only"))
        ops = json.loads(base64.b64decode(answer["response"]["patch"]))
        assert {"op": "replace", "path": "/spec/schedulerName",
                "value": "gpu-sched.example"} in ops
    finally:
        assert w.stop() == 0


def test_healthz_and_counters(daemon):
    daemon.review(load_request("memory-only"))
    daemon.review(load_request("too-many-cores"))
    daemon.request("POST", "/mutate", b"{")
    st, body = daemon.request("GET", "/healthz")
    h = json.loads(body)
    assert st == 200 and h["status"] == "ok"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", h["certificate"]["notAfter"])
    assert h["reviews"]["patched"] == 1 and h["reviews"]["refused"] == 1
    assert h["reviews"]["malformed"] == 1
    assert daemon.request("GET", "/mutate")[0] == 405
    assert daemon.request("GET", "/nope")[0] == 404


def test_body_cap(daemon):
    """Over the 4 MiB cap (the API server's 3 MiB object, and more): 413
    with the reason; far over it the connection is cut.  The daemon serves
    on either way."""
    big = b'{"apiVersion":"admission.k8s.io/v1","pad":"' + b"x" * (4 << 20) + b'"}'
    st, body = daemon.request("POST", "/mutate", big)
    assert st == 413, body
    assert "over the 4194304-byte limit" in json.loads(body)["error"]
    huge = b"x" * (16 << 20)
    with pytest.raises((ConnectionError, ssl.SSLError, http.client.HTTPException)):
        daemon.request("POST", "/mutate", huge)
    assert daemon.request("GET", "/healthz")[0] == 200


# --- TLS ----------------------------------------------------------------------

def test_plain_http_refused(daemon):
    """Plain HTTP on the TLS port gets no HTTP answer."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert not data.startswith(b"HTTP/"), data
    c = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=5)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        c.request("GET", "/healthz")
        c.getresponse()
    c.close()
    assert daemon.request("GET", "/healthz")[0] == 200


def test_tls_versions(daemon, pki):
    """TLS 1.2 and 1.3 are served; TLS 1.1 is refused by the server."""
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        c = daemon.connect(pki.context(minimum_version=v, maximum_version=v))
        assert c.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                    ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v]
        c.close()
    old = pki.context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ssl.SSLError, ValueError):
            pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    with pytest.raises(ssl.SSLError) as e:
        daemon.connect(old)
    # The server's alert, not a client that could not offer TLS 1.1.
    assert "PROTOCOL_VERSION" in str(e.value).upper(), e.value


def test_untrusted_client_view(daemon, tmp):
    """A client trusting another CA refuses the server: the certificate
    really is the one from our CA (the test's trust is meaningful)."""
    other = PKI(tempfile.mkdtemp(dir=tmp))
    with pytest.raises(ssl.SSLCertVerificationError):
        daemon.connect(other.context())


def test_garbage_tls_then_serves(daemon):
    """Bytes that are no TLS, and a TLS connection that sends nothing and
    leaves: the daemon serves on."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
        s.sendall(os.urandom(3000))
    c = daemon.connect()
    c.close()
    assert daemon.request("GET", "/healthz")[0] == 200


# --- rotation -----------------------------------------------------------------

def test_rotation_on_change(daemon, pki, files):
    """New files: new connections get the new certificate; a connection
    already open keeps working."""
    assert daemon.peer_cn() == "webhook-1"
    kept = daemon.connect()
    assert daemon.request("GET", "/healthz", conn=kept)[0] == 200
    install(*pki.issue("webhook-2"), *files)
    until("the rotated certificate", lambda: daemon.peer_cn() == "webhook-2")
    assert daemon.request("GET", "/healthz", conn=kept)[0] == 200
    kept.close()
    st, body = daemon.request("GET", "/healthz")
    assert json.loads(body)["certificate"]["reloads"] >= 1


def test_rotation_bad_pair_keeps_old(daemon, pki, files, tmp):
    """A certificate whose key does not match is not taken: the old one
    keeps serving (logged), until a good pair arrives."""
    cert, key = files
    good_cert, good_key = pki.issue("webhook-3")
    _, wrong_key = pki.issue("webhook-wrong")
    install(good_cert, wrong_key, cert, key)
    until("the failed reload in the log",
          lambda: "does not match" in open(os.path.join(tmp, "webhook.log")).read())
    assert daemon.peer_cn() == "webhook-1"
    st, body = daemon.request("GET", "/healthz")
    assert json.loads(body)["certificate"]["lastReloadFailed"] is True
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    time.sleep(0.3)
    assert daemon.peer_cn() == "webhook-1"
    install(good_cert, good_key, cert, key)
    until("the good pair", lambda: daemon.peer_cn() == "webhook-3")


def test_rotation_on_sighup(pki, tmp, files):
    """--reload-interval 0: the files are re-read on SIGHUP only."""
    w = Webhook(pki, tmp, *files, args=["--reload-interval", "0"])
    try:
        install(*pki.issue("webhook-4"), *files)
        time.sleep(0.5)
        assert w.peer_cn() == "webhook-1"
        w.proc.send_signal(signal.SIGHUP)
        until("the certificate after SIGHUP", lambda: w.peer_cn() == "webhook-4")
        assert w.proc.poll() is None
    finally:
        assert w.stop() == 0


def test_secret_volume_layout(pki, tmp):
    """A Secret volume: tls.crt -> ..data/tls.crt, ..data -> a timestamped
    directory, swapped by renaming a new ..data link.  The swap is seen."""
    vol = os.path.join(tmp, "vol")
    os.makedirs(os.path.join(vol, "ts1"))
    c1, k1 = pki.issue("webhook-5")
    shutil.copy(c1, os.path.join(vol, "ts1", "tls.crt"))
    shutil.copy(k1, os.path.join(vol, "ts1", "tls.key"))
    os.symlink("ts1", os.path.join(vol, "..data"))
    for n in ("tls.crt", "tls.key"):
        os.symlink(os.path.join("..data", n), os.path.join(vol, n))
    w = Webhook(pki, tmp, os.path.join(vol, "tls.crt"), os.path.join(vol, "tls.key"),
                args=["--reload-interval", "100ms"])
    try:
        assert w.peer_cn() == "webhook-5"
        os.makedirs(os.path.join(vol, "ts2"))
        c2, k2 = pki.issue("webhook-6")
        shutil.copy(c2, os.path.join(vol, "ts2", "tls.crt"))
        shutil.copy(k2, os.path.join(vol, "ts2", "tls.key"))
        os.symlink("ts2", os.path.join(vol, "..data_tmp"))
        os.replace(os.path.join(vol, "..data_tmp"), os.path.join(vol, "..data"))
        until("the swapped Secret", lambda: w.peer_cn() == "webhook-6")
    finally:
        assert w.stop() == 0


# --- life and the command line ------------------------------------------------

def test_sigterm_stops_cleanly(pki, tmp, files):
    w = Webhook(pki, tmp, *files)
    assert w.request("GET", "/healthz")[0] == 200
    assert w.stop() == 0
    assert not os.path.exists(w.ready_file)


def run(*args):
    return subprocess.run([GPUPOOL, "webhook"] + list(args), capture_output=True, text=True,
                          timeout=10)


def test_help():
    r = run("--help")
    assert r.returncode == 0
    for word in ("--tls-cert", "--tls-key", "--listen", "--scheduler-name", "--ready-file",
                 "--reload-interval", "/mutate", "SIGHUP", "gpupool.io/vgpu-memory"):
        assert word in r.stdout, word
    r = subprocess.run([GPUPOOL, "--help"], capture_output=True, text=True, timeout=10)
    assert "webhook" in r.stdout


@pytest.mark.parametrize("args,named", [
    ((), "--tls-cert"),
    (("--tls-cert", "c.pem"), "--tls-key"),
    (("--tls-key", "k.pem"), "--tls-cert"),
    (("--tls-cert", "c", "--tls-key", "k", "--bogus"), "--bogus"),
    (("--tls-cert", "c", "--tls-key", "k", "--reload-interval", "soon"), "--reload-interval"),
    (("--tls-cert", "c", "--tls-key", "k", "--reload-interval", "10ms"), "--reload-interval"),
    (("--tls-cert", "c", "--tls-key", "k", "--scheduler-name", "My_Sched"), "--scheduler-name"),
    (("--tls-cert", "c", "--tls-key", "k", "--max-body", "1"), "--max-body"),
    (("--tls-cert", "c", "--tls-key", "k", "--max-body", "1TiB"), "--max-body"),
    (("--tls-cert", "", "--tls-key", "k"), "--tls-cert"),
    (("--tls-cert", "c", "--tls-key", "k", "extra"), "extra"),
    (("--tls-cert",), "--tls-cert"),
])
def test_usage_errors(args, named):
    r = run(*args)
    assert r.returncode == 2, r.stderr
    assert named in r.stderr, r.stderr
    assert r.stderr.startswith("gpupool webhook: ")


def test_cannot_start(pki, tmp, files):
    """A certificate or key that does not load, or a port taken: exit 1
    with the file or the address named."""
    cert, key = files
    _, other_key = pki.issue("webhook-other")
    missing = os.path.join(tmp, "missing.crt")
    junk = os.path.join(tmp, "junk.crt")
    with open(junk, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    cases = [
        ((missing, key), "missing.crt"),
        ((junk, key), "junk.crt"),
        ((cert, other_key), "does not match"),
        ((cert, cert), "--tls-key"),
    ]
    for (c, k), named in cases:
        r = run("--listen", "127.0.0.1:0", "--tls-cert", c, "--tls-key", k)
        assert r.returncode == 1, (named, r.stderr)
        assert named in r.stderr, r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        r = run("--listen", "127.0.0.1:%d" % s.getsockname()[1], "--tls-cert", cert,
                "--tls-key", key)
        assert r.returncode == 1 and "cannot listen" in r.stderr, r.stderr
