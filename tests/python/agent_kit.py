"""agent_kit.py - what the `gpupool agent` tests share: a simulated
machine, tenants started with `gpupool run --sim --tenant` and driven a
step at a time, the agent under test, and the simulator's own NVML as the
truth to compare the agent's figures with."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from scaler_kit import BUILD, GPUPOOL, until

SIMWL = os.path.join(BUILD, "tests", "integration", "simwl")
SIMCTL = os.path.join(BUILD, "sim", "gpupool-simctl")
TWO_H100 = "H100-SXM-80GB:80GiB:132,H100-SXM-80GB:80GiB:132"
GiB = 1 << 30
MiB = 1 << 20


class Machine:
    """A temp directory with a simulated machine (its state file) and a
    node state directory; env() is what every process on it runs with."""

    def __init__(self, gpus=TWO_H100):
        self.dir = tempfile.mkdtemp(prefix="gpagent-", dir=os.environ.get("TMPDIR"))
        self.state_dir = os.path.join(self.dir, "state")
        os.mkdir(self.state_dir)
        self.gpus = gpus
        self.procs = []

    def env(self, **extra):
        e = dict(os.environ)
        e.update(GPUPOOL_SIM_GPUS=self.gpus,
                 GPUPOOL_SIM_STATE=os.path.join(self.dir, "sim.state"))
        e.pop("GPUPOOL_REGION", None)
        e.update(extra)
        return e

    def simctl(self, *args):
        r = subprocess.run([SIMCTL] + [str(a) for a in args], env=self.env(),
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return r

    def tenant(self, uid, container, memory=None, device=0):
        t = Tenant(self, uid, container, memory, device)
        self.procs.append(t)
        return t

    def tenant_dir(self, uid, container):
        return os.path.join(self.state_dir, "tenants", uid, container)

    def close(self):
        for p in self.procs:
            p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Tenant:
    """simwl under `gpupool run --sim --tenant UID/CONTAINER`, reading
    commands from stdin: do() sends one line and waits for it to finish."""

    def __init__(self, m, uid, container, memory, device):
        args = [GPUPOOL, "run", "--sim", "--state-dir", m.state_dir, "--tenant",
                "%s/%s" % (uid, container)]
        if memory:
            args += ["--memory", memory]
        self.proc = subprocess.Popen(args + ["--", SIMWL, "init", "device", str(device), "stdin"],
                                     env=m.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines = 0
        self.seen = {}
        self.read_until("device")
        self.pid = self.child_pid()

    def read_until(self, key, limit=20):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                pytest.fail("tenant exited (%s) before %s" % (self.proc.poll(), key))
            k, _, v = line.strip().partition("=")
            self.seen[k] = v
            if k == key:
                return v
        pytest.fail("tenant did not report %s" % key)

    def do(self, line):
        """Run one line of simwl commands; returns what it reported."""
        self.seen = {}
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        self.lines += 1
        while self.read_until("ok") != str(self.lines):
            pass
        return dict(self.seen)

    def child_pid(self):
        """simwl's PID (gpupool run's child): the process NVML lists."""
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            return int(f.read().split()[0])

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.kill()
            self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


class Agent:
    """`gpupool agent --sim` on a machine, ready once its ready file names
    its port."""

    def __init__(self, m, args=(), env=None, healthy=True):
        self.ready = os.path.join(m.dir, "agent-%d.ready" % id(self))
        self.logpath = os.path.join(m.dir, "agent-%d.log" % id(self))
        self.log = open(self.logpath, "w")
        e = m.env(GPUPOOL_LOG="info")
        e.update(env or {})
        e.pop("KUBERNETES_SERVICE_HOST", None)
        sim = [] if "--nvml" in args else ["--sim"]
        self.proc = subprocess.Popen(
            [GPUPOOL, "agent"] + sim + ["--state-dir", m.state_dir, "--node", "node-1",
             "--listen", "127.0.0.1:0", "--ready-file", self.ready, "--interval", "100ms"]
            + list(args), env=e, stdout=self.log, stderr=subprocess.STDOUT)
        info = until("the agent's ready file", self._ready)
        self.url = "http://127.0.0.1:%d" % info["http_port"]
        if healthy:
            until("a first collection", lambda: self.get("/healthz")[0] == 200)

    def _ready(self):
        if self.proc.poll() is not None:
            pytest.fail("gpupool agent exited %s:\n%s" % (self.proc.returncode, self.output()))
        with open(self.ready) as f:
            return json.load(f)

    def output(self):
        self.log.flush()
        with open(self.logpath) as f:
            return f.read()

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def json(self, path):
        st, body = self.get(path)
        assert st == 200, body
        return json.loads(body)

    def tenant(self, uid, container):
        for t in self.json("/v1/tenants")["tenants"]:
            if t["podUID"] == uid and t["container"] == container:
                return t
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


TRUTH = r"""
import ctypes, json, sys
class Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong),
                ("used", ctypes.c_ulonglong)]
class Proc(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("mem", ctypes.c_ulonglong),
                ("gi", ctypes.c_uint), ("ci", ctypes.c_uint)]
lib = ctypes.CDLL(sys.argv[1])
assert lib.nvmlInit_v2() == 0
n = ctypes.c_uint()
assert lib.nvmlDeviceGetCount_v2(ctypes.byref(n)) == 0
out = []
for i in range(n.value):
    h = ctypes.c_void_p()
    assert lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(h)) == 0
    m = Memory()
    assert lib.nvmlDeviceGetMemoryInfo(h, ctypes.byref(m)) == 0
    k = ctypes.c_uint(256)
    arr = (Proc * 256)()
    assert lib.nvmlDeviceGetComputeRunningProcesses_v3(h, ctypes.byref(k), arr) == 0
    out.append({"used": m.used, "total": m.total,
                "procs": {str(arr[j].pid): arr[j].mem for j in range(k.value)}})
print(json.dumps(out))
"""


def preload(lib):
    """LD_PRELOAD for `lib`: under a sanitizer build (make check) the
    sanitizer's runtime must come first."""
    if not os.environ.get("GP_SAN"):
        return lib
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                          text=True).stdout.strip()
    return asan + ":" + lib


def truth(m):
    """The simulator's NVML, asked from a process of its own: per card
    {"used", "total", "procs": {pid: bytes}}."""
    env = m.env()
    if os.environ.get("GP_SAN"):
        # A sanitizer build of the simulator (make check) needs its runtime
        # loaded first, and Python's own allocations are no leak of ours.
        lib = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
        env.update(LD_PRELOAD=lib, ASAN_OPTIONS="detect_leaks=0")
    r = subprocess.run(["/usr/bin/python3", "-c", TRUTH,
                        os.path.join(BUILD, "sim", "libnvidia-ml.so.1")],
                       env=env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def machine(request):
    m = Machine()
    request.addfinalizer(m.close)
    return m


def promtool_check(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def series(text, name, **labels):
    """Values of metric `name` whose labels include `labels`."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, value = line.rpartition(" ")
        if all('%s="%s"' % kv in head for kv in labels.items()):
            out.append(float(value))
    return out
