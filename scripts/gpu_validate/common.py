"""Shared plumbing of the gpu-validate checks (see scripts/gpu-validate).

Every check file (torch_check.py, jax_check.py, ...) plays two roles, chosen
by its first argument:

  check  runs WITHOUT the library, started by scripts/gpu-validate.  It starts
         probes, reads what they observed, judges it and records results.
  probe  runs as a child of `check`, usually under the library.  It only
         observes (sizes, exception types, timings) and writes what it saw as
         JSON; it never decides PASS or FAIL.

Verdicts are made outside the hooked process so that a probe that crashes
or hangs cannot report a PASS, so that measurements such as NVML's
per-process usage are read by a process the library does not lie to, and so
that the judging code can be tested on a machine without a GPU
(test_gpu_validate.py feeds it made-up observations).

Only the standard library is used here, and nothing newer than Python 3.8.
"""

import argparse
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback

MiB = 1 << 20
GiB = 1 << 30

# How far the budget arithmetic may be off and still count as exact:
# allocators round requests up to their granularity (2 MiB pages, 20 MiB
# expandable segments), and a framework may hold a few small buffers of its
# own between two readings.
SLACK = 64 * MiB

# Environment that would change what a probe measures.  Probes start from
# the caller's environment minus these, so that a stray LD_PRELOAD, an
# allocator setting or a HAMi limit in the shell cannot make a check pass
# or fail.  GPUPOOL_LOG is kept on purpose: it only adds diagnostics.
_SCRUBBED_PREFIXES = (
    "GPUPOOL_", "CUDA_DEVICE_MEMORY_", "CUDA_DEVICE_SM_LIMIT",
    "XLA_PYTHON_CLIENT_", "CUPY_GPU_MEMORY_LIMIT",
)
_SCRUBBED_NAMES = (
    "LD_PRELOAD", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
    "CUDA_TASK_PRIORITY", "GPU_CORE_UTILIZATION_POLICY",
    "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF",
    "PYTORCH_NO_CUDA_MEMORY_CACHING", "JAX_PLATFORMS",
)
_KEPT = ("GPUPOOL_LOG",)

LIBRARY_NAME = "libgpupool.so"


def fmt_bytes(n):
    """Render a byte count the way the docs speak of budgets: '4.00 GiB'."""
    if n is None:
        return "?"
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return "%.2f %s" % (n / size, unit)
    return "%d B" % n


def fmt_duration(seconds):
    """Per-operation times are micro- to milliseconds; say which."""
    if seconds < 1e-3:
        return "%.2f us" % (seconds * 1e6)
    return "%.3f ms" % (seconds * 1e3)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

STATUSES = ("PASS", "FAIL", "SKIP")


class Reporter:
    """Records results of one check file as JSON lines and prints them.

    Each result is appended (and flushed) the moment it is known, so that if
    the check is killed by its time limit the results it already had survive
    and report.py can list them next to the timeout.
    """

    def __init__(self, path, check):
        self.path = path
        self.check = check

    def add(self, name, status, reason, **details):
        if status not in STATUSES:
            raise ValueError("bad status %r" % status)
        reason = " ".join(str(reason).split())  # one line, whatever came in
        rec = {"check": self.check, "name": name, "status": status,
               "reason": reason, "details": details}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        print("%-4s  %s: %s" % (status, name, reason), flush=True)


# --------------------------------------------------------------------------
# Command line of both roles
# --------------------------------------------------------------------------

def _check_parser(prog):
    p = argparse.ArgumentParser(
        prog=prog + " check",
        description="Run this framework's checks (started by scripts/gpu-validate).")
    p.add_argument("--result", required=True,
                   help="file to append JSON-line results to")
    p.add_argument("--workdir", required=True,
                   help="scratch folder for probe outputs and logs")
    p.add_argument("--gpupool", required=True, help="the gpupool command")
    p.add_argument("--lib", required=True, help="libgpupool.so")
    p.add_argument("--budget", type=_positive_int, required=True,
                   help="device-memory budget in bytes")
    p.add_argument("--gpu", default="",
                   help="UUID of the GPU to use ('' in a dry run without one)")
    p.add_argument("--timeout", type=_positive_int, default=300,
                   help="seconds one probe process may run")
    p.add_argument("--max-overhead", type=float, default=1.5,
                   help="hooked/unhooked time ratio above which a timing FAILs")
    p.add_argument("--context-allowance", type=_positive_int, default=GiB,
                   help="bytes a process may take beyond the budget for its "
                        "CUDA context and loaded kernels")
    p.add_argument("--share-seconds", type=_positive_int, default=10,
                   help="seconds the shares check samples NVML's per-process "
                        "utilization in each measurement (after half as long "
                        "of warm-up)")
    p.add_argument("--dry-run", action="store_true",
                   help="run nothing on the GPU; say what would run")
    return p


def _probe_parser(prog):
    p = argparse.ArgumentParser(prog=prog + " probe",
                                description="Observe one case (internal).")
    p.add_argument("case")
    p.add_argument("--obs", required=True, help="where to write the JSON")
    p.add_argument("--budget", type=_positive_int, required=True)
    p.add_argument("--iterations", type=_positive_int, default=10000)
    p.add_argument("--repeats", type=_positive_int, default=3)
    p.add_argument("--hold-timeout", type=_positive_int, default=300,
                   help="seconds a holding probe waits to be released")
    return p


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % text)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be positive: %r" % text)
    return v


def main(check, check_fn, probes):
    """Entry point of the check file named check ('torch', ...).

    check_fn(ctx, rep) runs the checks; probes maps a case name to a function
    (args) -> dict of observations.  Exits 0 once the checks ran (whatever
    they found: the results say that), 2 on a usage error; anything else
    means the check itself broke, and report.py says so.
    """
    prog = os.path.basename(sys.argv[0])
    if len(sys.argv) < 2 or sys.argv[1] not in ("check", "probe"):
        print("usage: %s check|probe ... (see --help of each)" % prog,
              file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "probe":
        args = _probe_parser(prog).parse_args(sys.argv[2:])
        if args.case not in probes:
            print("%s: unknown probe case %r (known: %s)"
                  % (prog, args.case, ", ".join(sorted(probes))), file=sys.stderr)
            sys.exit(2)
        sys.exit(_run_probe_case(probes[args.case], args))
    ctx = _check_parser(prog).parse_args(sys.argv[2:])
    ctx.script = os.path.abspath(sys.argv[0])
    os.makedirs(ctx.workdir, exist_ok=True)
    # scripts/gpu-validate's time limit sends SIGTERM; take the probes down
    # with us, since they run in sessions of their own and would otherwise
    # keep holding GPU memory while the next check runs.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    rep = Reporter(ctx.result, check)
    try:
        check_fn(ctx, rep)
    finally:
        # Should the check itself break, no probe outlives it.
        for p in list(_live):
            _kill_group(p)
    sys.exit(0)


# --------------------------------------------------------------------------
# Probe side (inside the hooked process)
# --------------------------------------------------------------------------

def hooked_here():
    """Whether libgpupool.so is mapped into this process."""
    try:
        with open("/proc/self/maps") as f:
            return any(LIBRARY_NAME in line for line in f)
    except OSError:
        return None


def describe(exc):
    """'module.Type: first line of the message', for one-line reasons."""
    t = type(exc)
    msg = str(exc).strip().splitlines()
    name = t.__qualname__ if t.__module__ == "builtins" \
        else "%s.%s" % (t.__module__, t.__qualname__)
    return "%s: %s" % (name, msg[0][:200]) if msg else name


def attempt(obs, key, fn, oom=None):
    """Run fn(); record obs[key] = 'ok' or the error.  Returns fn's value or None.

    With oom (an exception class or tuple), also record obs[key + '_is_oom']:
    whether what was raised is the framework's out-of-memory error, which is
    what a program catches to react to a full budget.  BaseException is
    caught because some bindings raise from it on CUDA trouble, and a probe
    must report rather than die.
    """
    try:
        value = fn()
    except BaseException as e:  # noqa: B902 - see above
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        obs[key] = describe(e)
        if oom is not None:
            obs[key + "_is_oom"] = isinstance(e, oom)
        return None
    obs[key] = "ok"
    return value


def write_json(path, obj):
    """Write atomically, so a reader never sees half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, sort_keys=True)
    os.replace(tmp, path)


def hold(args, info):
    """Tell the checker we are ready (with info), then wait to be released.

    Used where the checker must look at this process while it is alive
    (NVML usage) or start a second process beside it (shared budget).  The
    wait has a deadline so that a probe whose checker died still ends.
    """
    info = dict(info, pid=os.getpid(), hooked=hooked_here())
    write_json(args.obs + ".ready", info)
    deadline = time.monotonic() + args.hold_timeout
    while not os.path.exists(args.obs + ".release"):
        if time.monotonic() > deadline:
            raise TimeoutError("never released after %d s" % args.hold_timeout)
        time.sleep(0.05)


def time_per_op(op, sync, iterations, repeats, warmup=100):
    """Best-of-repeats seconds per call of op(); sync() waits for the GPU.

    The minimum rather than the mean, because what we compare is the cost
    the library adds, and noise (other processes, clock ramps) only adds.
    """
    for _ in range(warmup):
        op()
    sync()
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iterations):
            op()
        sync()
        dt = (time.perf_counter() - t0) / iterations
        best = dt if best is None else min(best, dt)
    return best


def _run_probe_case(fn, args):
    obs = {"pid": os.getpid(), "hooked": hooked_here()}
    rc = 0
    try:
        obs.update(fn(args))
    except BaseException as e:  # noqa: B902 - report, never die silently
        if isinstance(e, KeyboardInterrupt):
            raise
        obs["error"] = describe(e)
        obs["traceback"] = traceback.format_exc()[-4000:]
        rc = 1
    write_json(args.obs, obs)
    return rc


# --------------------------------------------------------------------------
# Checker side: starting probes
# --------------------------------------------------------------------------

_live = set()  # Popen objects of probes still running


def _terminate(signum, _frame):
    for p in list(_live):
        _kill_group(p)
    sys.exit(128 + signum)


def _kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()
    _live.discard(p)


def scrubbed_env():
    """Our environment minus what would change a measurement (_SCRUBBED_*)."""
    return {k: v for k, v in os.environ.items()
            if k in _KEPT or not (k in _SCRUBBED_NAMES
                                  or k.startswith(_SCRUBBED_PREFIXES))}


def probe_env(ctx, extra=None):
    """The environment a probe starts with."""
    env = scrubbed_env()
    if ctx.gpu:
        # By UUID: the same card whatever order CUDA enumerates in, and the
        # one nvidia-smi is asked about.
        env["CUDA_VISIBLE_DEVICES"] = ctx.gpu
    env.update(extra or {})
    return env


def command_for(ctx, argv, mode, region=None):
    """argv and extra environment to run argv in the given mode.

    mode 'plain': without the library (the baseline).
    mode 'hooked': through `gpupool run --memory`, the way users start it.
    mode 'region': with the library preloaded by hand and GPUPOOL_REGION set
      to region; `gpupool run` makes a fresh region per run, and sharing one
      is exactly what this mode exists to test.
    """
    if mode == "plain":
        return list(argv), {}
    if mode == "hooked":
        return [ctx.gpupool, "run", "--memory", str(ctx.budget), "--"] + list(argv), {}
    if mode == "region":
        return list(argv), {"LD_PRELOAD": os.path.abspath(ctx.lib),
                            "GPUPOOL_MEMORY_LIMIT": str(ctx.budget),
                            "GPUPOOL_REGION": region}
    raise ValueError("bad mode %r" % mode)


def shell_line(argv, env_extra):
    """How a person would type it, for dry runs and failure reports."""
    words = ["%s=%s" % (k, shlex.quote(v)) for k, v in sorted(env_extra.items())]
    return " ".join(words + [shlex.quote(a) for a in argv])


class Launch:
    """One started process, its output files and its clock."""

    def __init__(self, ctx, tag, argv, mode, env=None, region=None):
        self.tag = tag
        base = os.path.join(ctx.workdir, tag)
        self.out_path, self.err_path = base + ".out", base + ".err"
        self.argv, mode_env = command_for(ctx, argv, mode, region)
        self.env_extra = dict(env or {}, **mode_env)
        self.line = shell_line(self.argv, self.env_extra)
        self.timeout = ctx.timeout
        self.start = time.monotonic()
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            try:
                # A session of its own, so that on a timeout we can kill
                # whatever it started (gpupool run may fork).
                self.proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    env=probe_env(ctx, self.env_extra), start_new_session=True)
            except OSError as e:
                self.proc = None
                self.start_error = "cannot start %s: %s" % (self.argv[0], e)
                return
        _live.add(self.proc)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def finish(self):
        """Wait out its time; returns (rc or None, error string or None)."""
        if self.proc is None:
            return None, self.start_error
        left = self.timeout - (time.monotonic() - self.start)
        try:
            rc = self.proc.wait(timeout=max(left, 0.1))
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            return None, "timed out after %d s" % self.timeout
        _live.discard(self.proc)
        return rc, None

    def stdout(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def log_tail(self, lines=8):
        """Last lines of stderr then stdout: what to show when it went wrong."""
        tail = []
        for path in (self.err_path, self.out_path):
            with open(path, errors="replace") as f:
                tail += [l.rstrip() for l in f.readlines()[-lines:]]
        return "\n".join(l for l in tail if l)


def _missing_report(launch, rc, err):
    if err:
        why = err
    elif rc is not None and rc < 0:
        why = "died of signal %d" % -rc
    else:
        why = "exited with status %s without a report" % rc
    tail = launch.log_tail()
    last = tail.splitlines()[-1] if tail else ""
    return {"error": "%s%s" % (why, " (%s)" % last if last else ""),
            "log": tail, "command": launch.line}


def read_obs(launch, obs_path, rc, err, mode):
    """The probe's observations, or a dict whose 'error' says why there are none.

    Also catches the two set-up mistakes that would make every verdict
    meaningless: the library missing from a hooked probe, or present in a
    baseline one (say through /etc/ld.so.preload).
    """
    try:
        with open(obs_path) as f:
            obs = json.load(f)
    except (OSError, ValueError):
        return _missing_report(launch, rc, err)
    obs["command"] = launch.line
    if err and "error" not in obs:
        obs["error"] = err
    if obs.get("hooked") is False and mode != "plain":
        obs["error"] = "%s is not loaded in the probe process" % LIBRARY_NAME
    elif obs.get("hooked") and mode == "plain":
        obs["error"] = ("%s is loaded in a baseline process nobody asked to "
                        "hook (/etc/ld.so.preload?)" % LIBRARY_NAME)
    if "error" in obs and rc not in (0, None):
        obs.setdefault("log", launch.log_tail())
    return obs


def python_probe_argv(ctx, case, obs_path):
    """This check file, with this Python, in the probe role."""
    return [sys.executable, ctx.script, "probe", case, "--obs", obs_path,
            "--budget", str(ctx.budget), "--hold-timeout", str(ctx.timeout)]


def run_probe(ctx, tag, case, mode, env=None, region=None):
    """Run one probe case of this check file to the end; returns its obs."""
    obs_path = os.path.join(ctx.workdir, tag + ".json")
    launch = Launch(ctx, tag, python_probe_argv(ctx, case, obs_path), mode, env, region)
    rc, err = launch.finish()
    return read_obs(launch, obs_path, rc, err, mode)


class HeldProbe:
    """A probe case that calls hold(): started, waited for, then released."""

    def __init__(self, ctx, tag, case, mode, env=None, region=None):
        self.obs_path = os.path.join(ctx.workdir, tag + ".json")
        self.mode = mode
        self.launch = Launch(ctx, tag, python_probe_argv(ctx, case, self.obs_path),
                             mode, env, region)

    def wait_ready(self):
        """The info the probe passed to hold(), or None if it ended first."""
        deadline = self.launch.start + self.launch.timeout
        while True:
            try:
                with open(self.obs_path + ".ready") as f:
                    return json.load(f)
            except (OSError, ValueError):
                pass
            if not self.launch.alive() or time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def release(self):
        open(self.obs_path + ".release", "w").close()
        rc, err = self.launch.finish()
        return read_obs(self.launch, self.obs_path, rc, err, self.mode)


def framework_missing(module):
    """Why module cannot be imported by this Python, or None if it can.

    Only looks the module up; importing would be slow and, for some
    frameworks, would already touch the driver.
    """
    if importlib.util.find_spec(module) is None:
        return "%s is not installed for %s" % (module, sys.executable)
    return None


def dry_run(rep, names, lines):
    """Record each result a real run would produce as SKIP, with the commands."""
    for line in lines:
        print("      would run: %s" % line, flush=True)
    for name in names:
        rep.add(name, "SKIP", "dry run: nothing ran on a GPU")


# --------------------------------------------------------------------------
# Checker side: nvidia-smi, read without the library
# --------------------------------------------------------------------------

def smi(args):
    """stdout of nvidia-smi with args, run un-hooked; raises RuntimeError."""
    try:
        p = subprocess.run(["nvidia-smi"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=30, env=scrubbed_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError("nvidia-smi: %s" % e)
    if p.returncode != 0:
        raise RuntimeError("nvidia-smi %s: %s" % (" ".join(args), p.stdout.strip()[:200]))
    return p.stdout


def parse_csv_mib(line, fields):
    """One 'a, b' line of --format=csv,noheader,nounits as ints of MiB.

    Returns None for a field NVML could not read ('[N/A]', '[Not Supported]').
    """
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != fields:
        raise ValueError("expected %d fields in %r" % (fields, line))
    return [int(p) if p.isdigit() else None for p in parts]


def gpu_memory_used(uuid):
    """memory.used of the GPU in bytes, as the real driver says."""
    out = smi(["--query-gpu=memory.used", "--format=csv,noheader,nounits",
               "-i", uuid])
    (used,) = parse_csv_mib(out.strip().splitlines()[0], 1)
    return None if used is None else used * MiB


def compute_apps(uuid):
    """{pid: used bytes or None} of processes NVML lists on the GPU."""
    out = smi(["--query-compute-apps=pid,used_memory,gpu_uuid",
               "--format=csv,noheader,nounits"])
    return parse_compute_apps(out, uuid)


def parse_compute_apps(text, uuid):
    apps = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or parts[2] != uuid or not parts[0].isdigit():
            continue
        apps[int(parts[0])] = int(parts[1]) * MiB if parts[1].isdigit() else None
    return apps


# --------------------------------------------------------------------------
# Judging (shared by the torch, CuPy and driver-API checks)
# --------------------------------------------------------------------------

def judge_baseline(rep, check, obs):
    """Judge the un-hooked 'env' probe every check starts with.

    It tells a broken or CPU-only framework apart from a broken library, and
    records the versions and the card's real size for the report.  Returns
    whether the hooked checks should run.
    """
    name = check + "/baseline"
    if obs.get("skip"):
        rep.add(name, "SKIP", obs["skip"], obs=obs)
        return False
    if "error" in obs:
        rep.add(name, "FAIL", "cannot use the GPU even without the library, so "
                "nothing else was tried: " + obs["error"], obs=obs)
        return False
    total = " with %s" % fmt_bytes(obs["total"]) if obs.get("total") else ""
    rep.add(name, "PASS", "%s sees %s%s without the library"
            % (obs.get("version", check), obs.get("device", "a GPU"), total), obs=obs)
    return True


def judge_budget(rep, prefix, obs, budget, physical=None):
    """Judge a 'budget' observation: the same schema from every framework.

    obs keys: total and props_total (what the program is told the card
    holds); free_before, free_during, free_after (free memory around
    taking 3/4 of the budget); within, realloc ('ok' or the error of taking
    3/4 of the budget, and of taking it again after giving it back); over
    (the error of taking 5/4 of the budget, or 'ok' if that worked) with
    over_is_oom; after_oom ('ok' or the error of a small allocation after).
    """
    names = [prefix + "/total", prefix + "/alloc+free", prefix + "/oom"]
    if "error" in obs:
        for n in names:
            rep.add(n, "FAIL", "probe failed: " + obs["error"], obs=obs)
        return
    within, over = budget * 3 // 4, budget * 5 // 4
    phys = " (physical %s)" % fmt_bytes(physical) if physical else ""

    total, props = obs.get("total"), obs.get("props_total")
    ok = total == budget and props == budget
    rep.add(names[0], "PASS" if ok else "FAIL",
            "free/total reports %s, device properties %s; budget %s%s"
            % (fmt_bytes(total), fmt_bytes(props), fmt_bytes(budget), phys), obs=obs)

    fb, fd, fa = obs.get("free_before"), obs.get("free_during"), obs.get("free_after")
    if obs.get("within") != "ok":
        rep.add(names[1], "FAIL", "taking %s within the budget failed: %s"
                % (fmt_bytes(within), obs.get("within")), obs=obs)
    elif None in (fb, fd, fa):
        rep.add(names[1], "FAIL", "free memory was not read (%s, %s, %s)"
                % (fb, fd, fa), obs=obs)
    elif fb - fd < within - SLACK:
        rep.add(names[1], "FAIL", "took %s but free memory only fell by %s (%s -> %s)"
                % (fmt_bytes(within), fmt_bytes(fb - fd), fmt_bytes(fb), fmt_bytes(fd)),
                obs=obs)
    elif fa < fb - SLACK:
        rep.add(names[1], "FAIL", "after freeing, free memory is %s, was %s before: "
                "%s not given back" % (fmt_bytes(fa), fmt_bytes(fb), fmt_bytes(fb - fa)),
                obs=obs)
    elif obs.get("realloc") != "ok":
        rep.add(names[1], "FAIL", "taking %s again after freeing failed: %s"
                % (fmt_bytes(within), obs.get("realloc")), obs=obs)
    else:
        rep.add(names[1], "PASS", "took %s (free %s -> %s), gave it back (free %s), "
                "took it again" % (fmt_bytes(within), fmt_bytes(fb), fmt_bytes(fd),
                                    fmt_bytes(fa)), obs=obs)

    if obs.get("over") == "ok":
        rep.add(names[2], "FAIL", "taking %s past the budget succeeded" % fmt_bytes(over),
                obs=obs)
    elif not obs.get("over_is_oom"):
        rep.add(names[2], "FAIL", "taking %s failed, but not as out-of-memory: %s"
                % (fmt_bytes(over), obs.get("over")), obs=obs)
    elif obs.get("after_oom") != "ok":
        rep.add(names[2], "FAIL", "out-of-memory as expected, but the next small "
                "allocation failed: %s" % obs.get("after_oom"), obs=obs)
    else:
        rep.add(names[2], "PASS", "taking %s: %s; small allocation after it works"
                % (fmt_bytes(over), obs.get("over")), obs=obs)


def judge_overhead(rep, name, plain, hooked, max_ratio):
    """Judge timing observations: lists of obs with 'per_op_s' per mode."""
    bad = [o for o in plain + hooked if "error" in o]
    if bad:
        rep.add(name, "FAIL", "probe failed: " + bad[0]["error"], obs=bad[0])
        return
    p = min(o["per_op_s"] for o in plain)
    h = min(o["per_op_s"] for o in hooked)
    ratio = h / p if p > 0 else float("inf")
    rep.add(name, "PASS" if ratio <= max_ratio else "FAIL",
            "hooked %s/op, unhooked %s/op: ratio %.2f (limit %.2f)"
            % (fmt_duration(h), fmt_duration(p), ratio, max_ratio),
            hooked_s=h, plain_s=p, ratio=ratio, iterations=plain[0].get("iterations"))


# How many alternating unhooked/hooked process pairs a timing runs: two, so
# that a slow first start (cold caches, clocks ramping) cannot favour either.
TIMING_ROUNDS = 2


def measure_overhead(ctx, rep, name, case, env=None):
    """Run a timing probe case unhooked and hooked, alternating, and judge it."""
    plain, hooked = [], []
    for r in range(TIMING_ROUNDS):
        for mode, into in (("plain", plain), ("hooked", hooked)):
            into.append(run_probe(ctx, "%s-%s-%d" % (case, mode, r), case, mode, env))
    judge_overhead(rep, name, plain, hooked, ctx.max_overhead)
