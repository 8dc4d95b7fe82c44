"""test_sched_fakeapi.py - a fake Kubernetes API server for the extender's
tests, and tests that it enforces what those tests rely on.

FakeAPI serves Nodes and Pods (from fixtures) on loopback, over HTTP or
TLS, with the semantics `gpupool sched` must get right:

- a bearer token is required (401 otherwise); the token may be changed
  while running (service-account rotation);
- PATCH takes exactly application/merge-patch+json,
  application/strategic-merge-patch+json or application/json-patch+json
  (415 otherwise), and a metadata.resourceVersion in a merge patch must
  match the object's (409 Conflict otherwise), as the real API server;
- a pod's binding subresource binds it once; a second binding is 409;
- Events can be created (kept in `kube_events`), and a pod's eviction
  subresource deletes it, or answers 429 while `pdb_blocks` names it (as
  a PodDisruptionBudget would);
- lists support the fieldSelectors the extender uses (spec.nodeName=,
  spec.nodeName!=, status.phase!=, comma = and);
- watches (?watch=1) of nodes and pods stream every change after the
  resourceVersion asked for, as ADDED/MODIFIED/DELETED seen through the
  field selector (an object that stops matching is DELETED), with
  BOOKMARKs when allowed; compact() makes older versions answer 410 Gone
  (and ends the watches open on them with an ERROR event);
- faults on demand: the next N patches of an object conflict (as if
  another writer got there first), requests of a kind are delayed or fail.

Everything the server is asked is logged (requests, with content types;
a watch as method WATCH)
and so are the changes that matter for ordering (lock taken/released,
pod annotated, pod bound), so tests assert sequences, never timings.

The other test_sched_*.py files import this module; this file's own tests
check the server itself.
"""
import copy
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "sched")
BUILD = os.environ.get("GP_BUILD", "build")
GPUPOOL = os.path.join(ROOT, BUILD, "gpupool")
TOKEN = "test-token-0123456789"

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}
LOCK = "gpupool.io/bind-lock"
BINDING = "gpupool.io/binding"
ALLOC = "gpupool.io/allocation"


def load_fixture(*parts):
    with open(os.path.join(FIXTURES, *parts)) as f:
        return json.load(f)


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason,
            "code": code}


def merge_patch(target, patch):
    """RFC 7386; also what a strategic merge patch does to the maps we use
    (annotations) - lists are not patched by the extender."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue  # strategic-merge directives: none used here
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_pointer(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(target, ops):
    """RFC 6902: add, replace, remove, test (what the extender uses)."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = json_pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[p]
        last = parts[-1]
        if op["op"] == "test":
            if parent.get(last) != op["value"]:
                raise ValueError("test failed at " + op["path"])
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace" and last not in parent:
                raise ValueError("replace of missing " + op["path"])
            parent[last] = op["value"]
        elif op["op"] == "remove":
            if last not in parent:
                raise ValueError("remove of missing " + op["path"])
            del parent[last]
        else:
            raise ValueError("op " + op["op"] + " not supported")
    return doc


def field_ok(obj, selector):
    for term in selector.split(","):
        m = re.fullmatch(r"([a-zA-Z.]+)(!=|==|=)(.*)", term)
        if not m:
            raise ValueError("bad field selector " + term)
        path, op, want = m.groups()
        v = obj
        for p in path.split("."):
            v = v.get(p) if isinstance(v, dict) else None
        v = "" if v is None else str(v)
        if (op == "!=") == (v == want):
            return False
    return True


class FakeAPI:
    """The server; start() on a free loopback port, stop() in a finalizer."""

    def __init__(self, nodes=(), pods=(), tls=None, client_ca=None):
        self.lock = threading.RLock()
        self.rv = 100
        self.nodes = {}
        self.pods = {}
        self.token = TOKEN
        self.tls = tls  # (certfile, keyfile) or None
        # With a client CA the server demands a client certificate signed by
        # it in the TLS handshake, and that is the authentication (as with
        # kubeadm's admin.conf): no bearer token is then asked for.
        self.client_ca = client_ca
        self.requests = []  # (method, path, content type)
        self.events = []  # ("lock"|"unlock"|"annotate"|"unannotate"|"bind", ...)
        self.conflicts = {}  # object path -> patches left to refuse
        self.delays = {}  # (method, kind) -> seconds
        self.failures = {}  # (method, kind) -> [status, count]
        self.bindings = {}  # (ns, name) -> node
        self.conflicted = 0  # patches refused for a stale resourceVersion
        self.kube_events = []  # Event objects created
        self.pdb_blocks = set()  # (ns, name) whose eviction a PDB forbids
        self.evicted = []  # (ns, name) evicted
        self.changes = []  # (rv, kind, old, new): what watches stream
        self.cond = threading.Condition(self.lock)
        self.compacted = 0  # watches from before this version get 410
        self.epoch = 0  # compactions so far
        self.stopping = False
        self.watches = 0  # open now
        self.bookmark_every = 1.0
        self.watch_ends_at_once = False  # as a proxy cutting streams might
        for n in nodes:
            self.put_node(n)
        for p in pods:
            self.put_pod(p)

    # --- objects --------------------------------------------------------
    def bump(self, obj):
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)

    def changed(self, kind, old, new):
        """Log a change for the watches (call with the lock held, after
        bump: the change carries the version it made)."""
        self.changes.append((self.rv, kind, copy.deepcopy(old), copy.deepcopy(new)))
        self.cond.notify_all()

    def put_node(self, node):
        with self.lock:
            node = copy.deepcopy(node)
            self.bump(node)
            name = node["metadata"]["name"]
            self.changed("node", self.nodes.get(name), node)
            self.nodes[name] = node

    def put_pod(self, pod):
        with self.lock:
            pod = copy.deepcopy(pod)
            md = pod.setdefault("metadata", {})
            md.setdefault("namespace", "default")
            md.setdefault("uid", "uid-" + md["name"])
            self.bump(pod)
            key = (md["namespace"], md["name"])
            self.changed("pod", self.pods.get(key), pod)
            self.pods[key] = pod

    def delete_pod(self, ns, name):
        with self.lock:
            old = self.pods.pop((ns, name))
            self.rv += 1
            self.changed("pod", old, None)

    def delete_node(self, name):
        with self.lock:
            old = self.nodes.pop(name)
            self.rv += 1
            self.changed("node", old, None)

    def compact(self):
        """Forget history: watches from before now get 410 Gone."""
        with self.lock:
            self.compacted = self.rv
            self.epoch += 1  # the watches open now are on old versions
            self.cond.notify_all()

    def node(self, name):
        with self.lock:
            return copy.deepcopy(self.nodes[name])

    def pod(self, ns, name):
        with self.lock:
            return copy.deepcopy(self.pods[(ns, name)])

    def annotations(self, obj):
        return obj.get("metadata", {}).get("annotations") or {}

    # --- serving --------------------------------------------------------
    def start(self):
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                # As Go's servers do: a reply's header and body go out
                # without waiting for the client's delayed ACK.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                api.handle(self, "GET")

            def do_PATCH(self):
                api.handle(self, "PATCH")

            def do_POST(self):
                api.handle(self, "POST")

            def do_PUT(self):
                api.handle(self, "PUT")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            if self.client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self.client_ca)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        scheme = "https" if self.tls else "http"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.port)
        return self

    def stop(self):
        with self.lock:
            self.stopping = True
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply(self, h, code, obj):
        body = json.dumps(obj).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h, method):
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        ctype = h.headers.get("Content-Type", "")
        parts = url.path.strip("/").split("/")
        kind = self.kind_of(parts)
        watching = method == "GET" and query.get("watch", [""])[0] in ("1", "true")
        with self.lock:
            self.requests.append(("WATCH" if watching else method, url.path, ctype))
            delay = self.delays.get((method, kind), 0)
            fail = self.failures.get((method, kind))
            if fail and fail[1] > 0:
                fail[1] -= 1
            else:
                fail = None
        if not self.client_ca and h.headers.get("Authorization") != "Bearer " + self.token:
            return self.reply(h, 401, status(401, "Unauthorized", "Unauthorized"))
        if delay:
            time.sleep(delay)
        if fail:
            return self.reply(h, fail[0], status(fail[0], "InternalError", "injected failure"))
        if watching and parts[:2] == ["api", "v1"] and parts[2:] in (["nodes"], ["pods"]):
            return self.watch(h, "node" if parts[2] == "nodes" else "pod", query)
        try:
            with self.lock:
                code, obj = self.route(method, parts, query, ctype, body)
        except (KeyError, IndexError):
            code, obj = 404, status(404, "NotFound", "%s not found" % url.path)
        except ValueError as e:
            code, obj = 422, status(422, "Invalid", str(e))
        self.reply(h, code, obj)

    def watch(self, h, kind, query):
        """Stream changes of `kind` after the resourceVersion asked for."""
        rv = int(query.get("resourceVersion", ["0"])[0] or 0)
        sel = query.get("fieldSelector", [""])[0]
        until = time.monotonic() + min(int(query.get("timeoutSeconds", ["60"])[0]), 60)
        bookmarks = query.get("allowWatchBookmarks", [""])[0] == "true"
        with self.lock:
            if rv and rv < self.compacted:
                return self.reply(h, 410, status(410, "Expired", "too old resource version: "
                                                 "%d (%d)" % (rv, self.compacted)))
            pos = len(self.changes)
            while pos and self.changes[pos - 1][0] > rv:
                pos -= 1
            self.watches += 1
            epoch = self.epoch
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def send(ev):
            data = json.dumps(ev).encode() + b"\n"
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        def matches(o):
            return o is not None and (not sel or field_ok(o, sel))

        last_bm = time.monotonic()
        if self.watch_ends_at_once:
            until = 0
        try:
            while time.monotonic() < until:
                with self.lock:
                    if self.stopping:
                        break
                    if rv < self.compacted or epoch != self.epoch:
                        send({"type": "ERROR", "object": status(410, "Expired",
                                                                "too old resource version")})
                        break
                    new = [c for c in self.changes[pos:] if c[1] == kind]
                    pos = len(self.changes)
                    cur = self.rv
                    if not new:
                        self.cond.wait(0.2)
                for _, _, old, obj in new:
                    was, now = matches(old), matches(obj)
                    if now:
                        send({"type": "MODIFIED" if was else "ADDED", "object": obj})
                    elif was:
                        send({"type": "DELETED", "object": obj or old})
                if new:
                    rv = max(rv, new[-1][0])
                if bookmarks and time.monotonic() - last_bm >= self.bookmark_every:
                    last_bm = time.monotonic()
                    send({"type": "BOOKMARK", "object": {
                        "kind": "Node" if kind == "node" else "Pod", "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(cur)}}})
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away
        finally:
            with self.lock:
                self.watches -= 1
        h.close_connection = True

    @staticmethod
    def kind_of(parts):
        if parts[:3] == ["api", "v1", "nodes"]:
            return "node"
        if parts[-1:] == ["binding"]:
            return "binding"
        if parts[-1:] == ["eviction"]:
            return "eviction"
        if parts[-1:] == ["events"]:
            return "event"
        return "pod"

    def route(self, method, parts, query, ctype, body):
        if parts[:2] != ["api", "v1"]:
            raise KeyError(parts)
        rest = parts[2:]
        sel = query.get("fieldSelector", [""])[0]
        if rest == ["nodes"] and method == "GET":
            return 200, self.listing("NodeList", self.nodes.values(), sel)
        if rest == ["pods"] and method == "GET":
            return 200, self.listing("PodList", self.pods.values(), sel)
        if len(rest) == 2 and rest[0] == "nodes":
            return self.object(method, self.nodes, rest[1], ctype, body, "/".join(parts))
        if rest[:1] == ["namespaces"] and rest[2:] == ["events"] and method == "POST":
            return self.event(rest[1], ctype, body)
        if len(rest) >= 4 and rest[0] == "namespaces" and rest[2] == "pods":
            key = (rest[1], rest[3])
            if len(rest) == 5 and rest[4] == "binding" and method == "POST":
                return self.bind(key, ctype, body)
            if len(rest) == 5 and rest[4] == "eviction" and method == "POST":
                return self.evict(key, ctype, body)
            if len(rest) == 4:
                return self.object(method, self.pods, key, ctype, body, "/".join(parts))
        raise KeyError(parts)

    def listing(self, kind, objs, sel):
        items = [copy.deepcopy(o) for o in objs if not sel or field_ok(o, sel)]
        return {"kind": kind, "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.rv)}, "items": items}

    def object(self, method, table, key, ctype, body, path):
        obj = table[key]
        if method == "GET":
            return 200, copy.deepcopy(obj)
        if method != "PATCH":
            return 405, status(405, "MethodNotAllowed", method)
        kind = PATCH_TYPES.get(ctype)
        if not kind:
            return 415, status(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - "
                               "accepted media types include: " + ", ".join(PATCH_TYPES))
        patch = json.loads(body)
        left = self.conflicts.get(path, 0)
        if left:
            # Another writer got there first: the object changed.
            self.conflicts[path] = left - 1
            self.bump(obj)
        if kind == "json":
            new = json_patch(obj, patch)
        else:
            want = (patch.get("metadata") or {}).get("resourceVersion")
            if want is not None and want != obj["metadata"]["resourceVersion"]:
                self.conflicted += 1
                return 409, status(409, "Conflict",
                                   "Operation cannot be fulfilled: the object has been "
                                   "modified; please apply your changes to the latest "
                                   "version and try again")
            new = merge_patch(obj, patch)
        self.record_changes(key, self.annotations(obj), self.annotations(new), kind)
        self.bump(new)
        self.changed("node" if table is self.nodes else "pod", obj, new)
        table[key] = new
        return 200, copy.deepcopy(new)

    def record_changes(self, key, old, new, kind):
        name = key if isinstance(key, str) else "%s/%s" % key
        if old.get(LOCK) != new.get(LOCK):
            if new.get(LOCK):
                self.events.append(("lock", name, json.loads(new[LOCK])["holder"], kind))
            else:
                self.events.append(("unlock", name, json.loads(old[LOCK])["holder"], kind))
        if old.get(ALLOC) != new.get(ALLOC):
            self.events.append(("annotate" if new.get(ALLOC) else "unannotate", name, kind))

    def bind(self, key, ctype, body):
        if ctype != "application/json":
            return 415, status(415, "UnsupportedMediaType", ctype)
        b = json.loads(body)
        pod = self.pods[key]
        if b.get("kind") != "Binding" or (b.get("target") or {}).get("kind") != "Node":
            raise ValueError("not a Binding to a Node")
        uid = (b.get("metadata") or {}).get("uid")
        if uid and uid != pod["metadata"]["uid"]:
            return 409, status(409, "Conflict", "Precondition failed: UID in precondition: "
                               "%s, UID in object meta: %s" % (uid, pod["metadata"]["uid"]))
        node = b["target"]["name"]
        if pod.get("spec", {}).get("nodeName"):
            return 409, status(409, "Conflict", "pod %s is already assigned to node %s"
                               % (key[1], pod["spec"]["nodeName"]))
        old = copy.deepcopy(pod)
        pod.setdefault("spec", {})["nodeName"] = node
        self.bump(pod)
        self.changed("pod", old, pod)
        self.bindings[key] = node
        self.events.append(("bind", "%s/%s" % key, node))
        return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}


    def event(self, ns, ctype, body):
        if ctype != "application/json":
            return 415, status(415, "UnsupportedMediaType", ctype)
        ev = json.loads(body)
        if ev.get("kind") != "Event" or (ev.get("metadata") or {}).get("namespace") != ns:
            raise ValueError("not an Event of namespace %s" % ns)
        if not (ev.get("involvedObject") or {}).get("name") or not ev.get("reason"):
            raise ValueError("an Event needs involvedObject.name and reason")
        self.kube_events.append(ev)
        return 201, ev

    def evict(self, key, ctype, body):
        if ctype != "application/json":
            return 415, status(415, "UnsupportedMediaType", ctype)
        b = json.loads(body)
        if b.get("kind") != "Eviction" or b.get("apiVersion") != "policy/v1" or \
                (b.get("metadata") or {}).get("name") != key[1]:
            raise ValueError("not a policy/v1 Eviction of %s/%s" % key)
        self.pods[key]  # 404 when gone
        if key in self.pdb_blocks:
            return 429, status(429, "TooManyRequests", "Cannot evict pod as it would violate "
                               "the pod's disruption budget.")
        old = self.pods.pop(key)
        self.rv += 1
        self.changed("pod", old, None)
        self.evicted.append(key)
        return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}


# --- helpers for the tests ------------------------------------------------

def write_kubeconfig(path, server, token=TOKEN, extra_cluster="", extra_user=""):
    """A kubeconfig as kubectl writes it (sequences at the key's indent).
    token=None leaves the user without a token."""
    with open(path, "w") as f:
        f.write("apiVersion: v1\n"
                "clusters:\n"
                "- cluster:\n"
                "    server: %s\n%s"
                "  name: fake\n"
                "contexts:\n"
                "- context:\n"
                "    cluster: fake\n"
                "    user: tester\n"
                "  name: fake\n"
                "current-context: fake\n"
                "kind: Config\n"
                "preferences: {}\n"
                "users:\n"
                "- name: tester\n"
                "  user:\n"
                "%s%s" % (server, extra_cluster,
                          "    token: %s\n" % token if token else "", extra_user))
    return path


class Sched:
    """A running `gpupool sched`."""

    def __init__(self, args, env=None, tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="gpsched-")
        self.ready = os.path.join(self.tmp, "ready-%d" % id(self))
        self.logpath = os.path.join(self.tmp, "sched-%d.log" % id(self))
        self.log = open(self.logpath, "w")
        e = dict(os.environ)
        e.setdefault("GPUPOOL_LOG", "info")
        e.update(env or {})
        self.proc = subprocess.Popen(
            [GPUPOOL, "sched", "--listen", "127.0.0.1:0", "--ready-file", self.ready] + args,
            stdout=self.log, stderr=subprocess.STDOUT, env=e)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None:
                raise RuntimeError("gpupool sched exited %d:\n%s" % (self.proc.returncode,
                                                                     self.output()))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gpupool sched did not get ready:\n" + self.output())
            time.sleep(0.02)
        with open(self.ready) as f:
            self.url = f.read().strip()

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.logpath) as f:
            return f.read()

    def post(self, verb, body, raw=False):
        data = body if raw else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/" + verb, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text.decode(errors="replace")

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def stopped_cleanly(s):
    """Stop a Sched and fail (in the test's teardown) unless it exited 0:
    under `make check` that is where a leak or a sanitizer report shows."""
    rc = s.stop()
    assert rc == 0, "gpupool sched exited %s:\n%s" % (rc, s.output()[-4000:])


def run_sched(args, env=None, timeout=20):
    """Run `gpupool sched` expecting it to exit (a start failure)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([GPUPOOL, "sched", "--listen", "127.0.0.1:0"] + args, env=e,
                          capture_output=True, text=True, timeout=timeout)


def cluster():
    return load_fixture("cluster", "nodes.json")["items"], \
        load_fixture("cluster", "pods.json")["items"]


@pytest.fixture
def api(request):
    nodes, pods = cluster()
    server = FakeAPI(nodes, pods).start()
    request.addfinalizer(server.stop)
    return server


@pytest.fixture
def tmp(request):
    d = tempfile.mkdtemp(prefix="gpsched-")
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def sched_fixture(request, api, tmp, args=()):
    kc = write_kubeconfig(os.path.join(tmp, "kubeconfig"), api.url)
    s = Sched(["--kubeconfig", kc] + list(args), tmp=tmp)
    request.addfinalizer(lambda: stopped_cleanly(s))
    return s


# --- tests of the fake server itself ------------------------------------

def call(api, method, path, body=None, ctype=None, token=TOKEN):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api.url + path, data=data, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_token_is_required(api):
    assert call(api, "GET", "/api/v1/nodes", token=None)[0] == 401
    assert call(api, "GET", "/api/v1/nodes", token="wrong")[0] == 401
    code, nodes = call(api, "GET", "/api/v1/nodes")
    assert code == 200 and len(nodes["items"]) == len(api.nodes)


def test_patch_content_type_checked(api):
    body = {"metadata": {"annotations": {"x": "1"}}}
    assert call(api, "PATCH", "/api/v1/nodes/node-a", body, "application/json")[0] == 415
    code, node = call(api, "PATCH", "/api/v1/nodes/node-a", body,
                      "application/merge-patch+json")
    assert code == 200 and node["metadata"]["annotations"]["x"] == "1"


def test_stale_resource_version_conflicts(api):
    rv = api.node("node-a")["metadata"]["resourceVersion"]
    ok = {"metadata": {"resourceVersion": rv, "annotations": {"x": "1"}}}
    assert call(api, "PATCH", "/api/v1/nodes/node-a", ok,
                "application/merge-patch+json")[0] == 200
    code, st = call(api, "PATCH", "/api/v1/nodes/node-a", ok, "application/merge-patch+json")
    assert code == 409 and st["reason"] == "Conflict"


def test_binding_once(api):
    b = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "pending-small"},
         "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    path = "/api/v1/namespaces/default/pods/pending-small/binding"
    assert call(api, "POST", path, b, "application/json")[0] == 201
    code, st = call(api, "POST", path, b, "application/json")
    assert code == 409 and "already assigned" in st["message"]
    assert api.pod("default", "pending-small")["spec"]["nodeName"] == "node-a"


def test_field_selectors(api):
    code, lst = call(api, "GET", "/api/v1/pods?fieldSelector=" +
                     urllib.parse.quote("spec.nodeName!=,status.phase!=Succeeded"))
    assert code == 200
    names = {p["metadata"]["name"] for p in lst["items"]}
    assert "pending-small" not in names and "finished" not in names
    assert "trainer" in names


def test_json_patch_test_op(api):
    path = "/api/v1/nodes/node-a"
    ops = [{"op": "test", "path": "/metadata/name", "value": "node-b"}]
    assert call(api, "PATCH", path, ops, "application/json-patch+json")[0] == 422
    ops = [{"op": "add", "path": "/metadata/annotations/a~1b", "value": "v"}]
    code, node = call(api, "PATCH", path, ops, "application/json-patch+json")
    assert code == 200 and node["metadata"]["annotations"]["a/b"] == "v"
