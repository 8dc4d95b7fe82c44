"""test_top.py - `gpupool top`, on a real terminal (tmux) and in plain
output.

A stand-in agent on loopback serves the canned documents of
tests/fixtures/top/ (two cards, one of them unhealthy; three tenants: one
with refused allocations, one idle for two hours whose pod is unknown).
`gpupool top` runs inside a private tmux server of fixed size; the test
reads the screen with capture-pane, types keys with send-keys, and checks
that the terminal is given back (normal screen, cooked mode) however top
ends: q, SIGINT or SIGTERM.  Without a terminal, or with --once, top
prints one plain frame; --local --sim reads the simulated card itself.
"""
import http.server
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("GP_BUILD", "build"))
GPUPOOL = os.path.join(BUILD, "gpupool")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "top")
TMUX = shutil.which("tmux") or "/usr/bin/tmux"
WIDTH, HEIGHT = 120, 40

# What the canned documents must show (sizes as top writes them).
CARD0 = "GPU 0  NVIDIA H100 80GB HBM3  ok"
CARD1 = "GPU 1  NVIDIA A100-SXM4-40GB  UNHEALTHY"
ZETA, BETA, IDLE = "ml/zeta-train/main", "ml/beta-infer/server", "8d1c2e3f-0000-4000"
NAMES = [ZETA, BETA, IDLE]


def read(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


class Agent(http.server.BaseHTTPRequestHandler):
    """The agent's two JSON routes; `answers` maps a path to (status, body)."""
    answers = {}

    def do_GET(self):
        status, body = self.answers.get(self.path, (404, b'{"error":"no such route"}'))
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def serve(answers, port=0):
    """A stand-in agent on 127.0.0.1; returns the server (stop with
    shutdown + server_close)."""
    handler = type("Handler", (Agent,), {"answers": answers})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


CANNED = {"/v1/gpus": (200, read("gpus.json")), "/v1/tenants": (200, read("tenants.json"))}


@pytest.fixture
def agent():
    server = serve(CANNED)
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(what, fn, limit=5.0, every=0.05):
    """Poll fn() until it returns a true value; fail naming `what`."""
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    pytest.fail("timed out waiting for %s; last:\n%s" % (what, last))


class Term:
    """A private tmux server with one detached WIDTHxHEIGHT session."""

    def __init__(self):
        self.sock = "gptop-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
        self.started = False

    def tmux(self, *args, check=True):
        return subprocess.run([TMUX, "-L", self.sock, "-f", "/dev/null", *args], check=check,
                              capture_output=True, text=True, timeout=10).stdout

    def start(self, script):
        """Run `sh -c script` in the session; the script ends by printing
        EXITED and the terminal's mode, then lingers so the pane stays."""
        self.tmux("new-session", "-d", "-s", "t", "-x", str(WIDTH), "-y", str(HEIGHT),
                  "sh", "-c", script)
        self.started = True

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "t")

    def expect(self, check, limit=5.0):
        """Poll the screen until check(screen) passes on one capture (a
        capture can catch a frame half painted), and return that screen;
        past the limit, check's last failure is the test's."""
        deadline = time.monotonic() + limit
        while True:
            screen = self.screen()
            try:
                check(screen)
                return screen
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def wait_for(self, text, limit=5.0):
        def check(screen):
            assert text in screen, screen
        return self.expect(check, limit)

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def flag(self, name):
        return self.tmux("display-message", "-p", "-t", "t", "#{%s}" % name).strip()

    def pane_pid(self):
        return int(self.tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip())

    def kill(self):
        if self.started:
            self.tmux("kill-server", check=False)


@pytest.fixture
def term():
    t = Term()
    try:
        yield t
    finally:
        t.kill()


def top_script(*args):
    """The shell line that runs top, then reports how it ended and whether
    the terminal is back in cooked mode with echo."""
    cmd = " ".join("'%s'" % a for a in [GPUPOOL, "top", *args])
    return (cmd + '; echo "EXITED $?"; m=$(stty -a); '
            'case "$m" in *-icanon*|*-echo\\ *) echo TTY RAW;; *) echo TTY COOKED;; esac; '
            "sleep 60")


def child_of(pid):
    """The PID of pid's (only) child process, or None."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            return int(entry)
    return None


def line_with(lines, text):
    """The first line holding text (a failed assertion if none)."""
    found = [l for l in lines if text in l]
    assert found, "no line holds %r" % text
    return found[0]


def card_rows(lines, card, names):
    """The order in which `names` appear under the card line `card`."""
    start = next((i for i, l in enumerate(lines) if card in l), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("GPU ")),
               len(lines))
    order = []
    for line in lines[start + 1:end]:
        for n in names:
            if n in line and n not in order:
                order.append(n)
    return order


def first_under(screen, card, names):
    order = card_rows(screen.splitlines(), card, names)
    return order[0] if order else None


def assert_restored(t):
    """After top ended: its exit status, the normal screen back, a cooked
    terminal, the cursor shown."""
    def check(screen):
        assert "TTY COOKED" in screen, screen
        assert "gpupool top - node" not in screen, screen  # the alternate screen is gone
    screen = t.expect(check)
    assert t.flag("alternate_on") == "0"
    assert t.flag("cursor_flag") == "1"
    return screen


def check_canned(screen):
    """The canned node, as the screen shows it at 120 columns."""
    lines = screen.splitlines()
    assert lines[0].startswith("gpupool top - node gpu-node-7 - sort: memory - h help, q quit")
    assert "2 GPU(s), 1 unhealthy; 3 tenant(s)" in screen
    card0 = line_with(lines, CARD0)
    assert "20.0 GiB / 80.0 GiB  util 45%" in card0
    card1 = line_with(lines, CARD1)
    assert "10.0 GiB / 40.0 GiB  util -" in card1
    assert "unhealthy: XID 79: GPU has fallen off the bus" in screen
    heads = line_with(lines, "TENANT")
    # At 120 columns the compute share and priority make room for the names.
    assert re.search(r"BUDGET +USED +LIMIT +PEAK +REFUSED +PROCS +UTIL +COMP +THR +IDLE",
                     heads), heads
    # Each tenant's figures: budget bar, used, limit, peak, refused, procs,
    # util, compute used and held back ("-": not metered), idle.
    zeta = line_with(lines, ZETA)
    assert re.search(r"\[\|{8} {2}\] +75% +12\.0 GiB +16\.0 GiB +15\.0 GiB +0 +2 +38% +- +- "
                     r"+0s", zeta), zeta
    beta = line_with(lines, BETA)
    assert re.search(r"50% +2\.0 GiB +4\.0 GiB +4\.0 GiB +7 +1 +5% +28% +12% +12s", beta), beta
    idle = line_with(lines, IDLE)
    assert re.search(r"no budget +512\.0 MiB +- +1\.0 GiB +0 +0 +0% +0% +0% +2h00m", idle), idle
    assert card_rows(lines, CARD0, NAMES) == [ZETA, BETA, IDLE]
    assert card_rows(lines, CARD1, NAMES) == [ZETA]


def sorted_by(sort, order):
    """A check: the title names the sort and card 0 lists `order` first."""
    def check(screen):
        assert "sort: %s " % sort in screen
        rows = card_rows(screen.splitlines(), CARD0, NAMES)
        assert rows[:len(order)] == order, rows
    return check


def test_live_view_keys_and_quit(term, agent):
    term.start(top_script("--agent", agent, "--interval", "200ms"))
    screen = term.expect(check_canned)
    assert agent in screen.splitlines()[0]
    assert term.flag("alternate_on") == "1"
    assert term.flag("cursor_flag") == "0"
    # r: the tenant with refused allocations first; n: by name; i: the idle
    # tenant first; p: by peak; m: back to memory.
    for key, sort, order in (("r", "refused", [BETA]), ("n", "name", [IDLE, BETA, ZETA]),
                             ("i", "idle", [IDLE]), ("p", "peak", [ZETA, BETA, IDLE]),
                             ("m", "memory", [ZETA, BETA, IDLE])):
        term.keys(key)
        term.expect(sorted_by(sort, order))
    # h shows the keys, and hides them again.
    term.keys("h")
    term.wait_for("keys: m sort by memory used")
    term.keys("h")

    def hidden(screen):
        assert "keys: m sort" not in screen and CARD1 in screen
    term.expect(hidden)
    term.keys("q")
    screen = assert_restored(term)
    assert "EXITED 0" in screen


def test_resize_small_window(term, agent):
    term.start(top_script("--agent", agent, "--interval", "200ms"))
    term.wait_for(CARD1)
    term.tmux("resize-window", "-t", "t", "-x", "44", "-y", "9")

    def small(screen):
        lines = screen.splitlines()
        assert "more line(s)" in screen
        assert len(lines) <= 9
        assert all(len(l) <= 44 for l in lines), lines
        assert lines[0].startswith("gpupool top - node gpu-node-7")
    term.expect(small)
    term.tmux("resize-window", "-t", "t", "-x", "60", "-y", "30")

    def narrow(screen):
        assert CARD1 in screen
        assert all(len(l) <= 60 for l in screen.splitlines())
        assert "USED" in screen and "PEAK" not in screen  # columns go, USED stays
        assert "ml/zeta-trai~" in screen  # names are cut, and say so
    term.expect(narrow)
    # Wide: the compute limit with its policy, and the priority, too.
    term.tmux("resize-window", "-t", "t", "-x", "170", "-y", "30")

    def wide(screen):
        lines = screen.splitlines()
        assert re.search(r"UTIL +COMP +THR +SHARE +PRIO +IDLE", line_with(lines, "TENANT"))
        assert re.search(r" 5% +28% +12% +30% elastic +high +12s", line_with(lines, BETA))
        assert re.search(r" - +- +- +norm +0s", line_with(lines, ZETA))
    term.expect(wide)
    term.keys("q")
    assert "EXITED 0" in assert_restored(term)


@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_signal_restores_terminal(term, agent, sig):
    term.start(top_script("--agent", agent, "--interval", "200ms"))
    term.wait_for(CARD0)
    pid = until("top's PID", lambda: child_of(term.pane_pid()))
    subprocess.run(["kill", "-" + sig, str(pid)], check=True, timeout=5)
    screen = assert_restored(term)
    assert "EXITED 0" in screen


def test_agent_unreachable_then_back(term):
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    term.start(top_script("--agent", url, "--interval", "200ms"))

    def unreachable(screen):
        words = " ".join(screen.split())  # a long error wraps
        assert "cannot reach the agent at %s: Couldn't connect to server; retrying every " \
            "200ms" % url in words, screen
        assert "GPU 0" not in screen
    term.expect(unreachable)
    # It keeps trying: once an agent answers there, the cards appear.
    server = serve(CANNED, port)
    try:
        def back(screen):
            assert CARD1 in screen and "cannot reach" not in screen
        term.expect(back)
    finally:
        server.shutdown()
        server.server_close()

    # And when it goes away again, the last data stays under the error.
    def gone(screen):
        assert "cannot reach the agent" in screen
        assert "(below: the last data received)" in " ".join(screen.split())
        assert CARD0 in screen
    term.expect(gone)
    term.keys("q")
    assert "EXITED 0" in assert_restored(term)


def test_once_unreachable_fails():
    url = "http://127.0.0.1:%d" % free_port()
    r = subprocess.run([GPUPOOL, "top", "--agent", url, "--once"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert r.stdout == ""
    assert "gpupool top: cannot reach the agent at " + url in r.stderr


@pytest.mark.parametrize("answers,why", [
    ({"/v1/gpus": (500, b"oops")}, "answered HTTP 500 to /v1/gpus"),
    ({"/v1/gpus": (200, b"{\"gpus\": [")}, "sent /v1/gpus that is not JSON"),
    ({"/v1/gpus": (200, b"[1, 2]")}, "sent /v1/gpus that is not a JSON object"),
    ({"/v1/gpus": CANNED["/v1/gpus"]}, "answered HTTP 404 to /v1/tenants"),
])
def test_once_bad_answers_fail(answers, why):
    server = serve(answers)
    try:
        r = subprocess.run([GPUPOOL, "top", "--agent",
                            "http://127.0.0.1:%d/" % server.server_address[1], "--once"],
                           capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 1, r
    assert why in r.stderr


def check_plain(out):
    assert "\x1b" not in out
    assert "h help" not in out  # no keys without a terminal
    lines = out.splitlines()
    assert lines[0].startswith("gpupool top - node gpu-node-7 - sort: memory - "
                               "http://127.0.0.1:"), lines[0]
    assert lines[0].endswith(" - updated 2025-01-15T10:20:30.123Z"), lines[0]
    assert any(CARD0 in l and "20.0 GiB / 80.0 GiB" in l for l in lines)
    assert any(CARD1 in l for l in lines)
    assert any(IDLE + "-8000-00000000abcd/worker" in l and "2h00m" in l for l in lines)
    assert card_rows(lines, CARD0, NAMES) == [ZETA, BETA, IDLE]


def test_once_plain(agent):
    r = subprocess.run([GPUPOOL, "top", "--agent", agent, "--once"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    check_plain(r.stdout)
    # --sort applies to the one frame too.
    r = subprocess.run([GPUPOOL, "top", "--agent", agent, "--once", "--sort", "refused"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert first_under(r.stdout, CARD0, NAMES) == BETA


def test_not_a_terminal_prints_one_frame(agent):
    # No --once: stdout is a pipe, so one plain frame and exit 0.
    r = subprocess.run([GPUPOOL, "top", "--agent", agent], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    check_plain(r.stdout)


def test_local_sim_once():
    tmp = tempfile.mkdtemp(prefix="top-", dir=os.environ.get("TMPDIR"))
    try:
        state = os.path.join(tmp, "state")
        os.mkdir(state)
        env = dict(os.environ, GPUPOOL_SIM_GPUS="H100-SXM-80GB:80GiB:132",
                   GPUPOOL_SIM_STATE=os.path.join(tmp, "sim.state"))
        r = subprocess.run([GPUPOOL, "top", "--local", "--sim", "--state-dir", state, "--once"],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert "\x1b" not in out
        assert " - local - updated " in out.splitlines()[0]
        assert "1 GPU(s), 0 unhealthy; 0 tenant(s)" in out
        card = next(l for l in out.splitlines() if l.startswith("GPU 0  "))
        assert "H100-SXM-80GB" in card and " ok " in card and "/ 80.0 GiB" in card, card
        assert "(no tenants)" in out
        assert "NVML:" not in out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SIMWL = os.path.join(BUILD, "tests", "integration", "simwl")


@pytest.mark.skipif(not os.access(SIMWL, os.X_OK), reason="simwl not built (make test builds it)")
def test_local_sim_shows_a_tenant():
    """A tenant of `gpupool run --sim --tenant` with a 2 GiB budget holds
    memory and had one allocation refused; top --local reads its region."""
    tmp = tempfile.mkdtemp(prefix="top-", dir=os.environ.get("TMPDIR"))
    state = os.path.join(tmp, "state")
    os.mkdir(state)
    env = dict(os.environ, GPUPOOL_SIM_GPUS="H100-SXM-80GB:80GiB:132",
               GPUPOOL_SIM_STATE=os.path.join(tmp, "sim.state"))
    run = subprocess.Popen([GPUPOOL, "run", "--sim", "--state-dir", state, "--tenant",
                            "pod-1234/main", "--memory", "2GiB", "--", SIMWL, "init", "alloc",
                            "1GiB", "alloc", "4GiB", "hold"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        out = b""
        deadline = time.monotonic() + 20
        while b"held=1" not in out:
            assert time.monotonic() < deadline, out
            ready, _, _ = select.select([run.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(run.stdout.fileno(), 4096)
                assert chunk, "the tenant exited: %r" % out
                out += chunk
        r = subprocess.run([GPUPOOL, "top", "--local", "--sim", "--state-dir", state, "--once"],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 0, r.stderr
        assert "1 GPU(s), 0 unhealthy; 1 tenant(s)" in r.stdout
        row = line_with(card_rows_lines(r.stdout, "GPU 0  "), "pod-1234/main")
        assert re.search(r"\] +\d+% +\d+\.\d GiB +2\.0 GiB +\d+\.\d GiB +1 +1 ", row), row
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        run.stdout.close()
        shutil.rmtree(tmp, ignore_errors=True)


def card_rows_lines(out, card):
    """The lines under the card line starting with `card`."""
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(card))
    return lines[start + 1:]


def test_local_without_nvml_still_shows_tenants():
    tmp = tempfile.mkdtemp(prefix="top-", dir=os.environ.get("TMPDIR"))
    try:
        r = subprocess.run([GPUPOOL, "top", "--local", "--state-dir", tmp, "--nvml",
                            os.path.join(tmp, "no-such-libnvidia-ml.so"), "--once"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "NVML: " in r.stdout and "0 tenant(s)" in r.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("args,names", [
    (["--bogus"], "--bogus"),
    (["--interval", "10ms"], "--interval '10ms'"),
    (["--interval", "soon"], "--interval 'soon'"),
    (["--sort", "size"], "--sort 'size'"),
    (["--agent", "ftp://x"], "--agent 'ftp://x'"),
    (["--agent"], "'--agent' needs a value"),
    (["--sim"], "--sim needs --local"),
    (["--state-dir", "/tmp"], "--state-dir needs --local"),
    (["--local", "--agent", "http://x"], "--agent and --local"),
    (["--local", "--sim", "--nvml", "/x"], "--sim and --nvml"),
    (["extra"], "unexpected argument 'extra'"),
])
def test_usage_errors(args, names):
    r = subprocess.run([GPUPOOL, "top", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r
    assert names in r.stderr
    assert r.stdout == ""


def test_help():
    r = subprocess.run([GPUPOOL, "top", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for want in ("--agent URL", "--local", "--interval", "--once", "--sort", "keys:",
                 "q, Ctrl-C", "examples:"):
        assert want in r.stdout
