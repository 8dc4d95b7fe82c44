#!/usr/bin/env python3
"""Compute shares and priority under gpupool (see common.py for the two roles).

PyTorch matmul loops run under the library with GPUPOOL_CORE_LIMIT and
GPUPOOL_PRIORITY (docs/hook.md, "Compute shares and priority"), and what
they get of the card is read by this un-hooked process from NVML's
per-process utilization (`nvidia-smi pmon -s u`):

  shares/elastic-30-70  two 8192x8192 fp16 matmul loops, elastic, limits 30
                        and 70, one node file: each one's part of the SM
                        time the two used is within 5 points of 30 and 70.
  shares/hard-30-alone  one such loop, hard limit 30, alone: its SM % is
                        within 5 points of 30.
  shares/priority       an inference loop (4096x4096 matmul, synchronize,
                        5 ms pause), high priority, alone and then beside a
                        low-priority 8192 loop: its p99 latency beside the
                        neighbour is at most 1.10 x alone + 0.2 ms.
"""

import math
import os
import subprocess
import time

import common
import torch_check

# The training-like loop: large enough that one matmul keeps an H100 busy
# for over a millisecond, so the card's time is the only thing the two
# loops contend for.  It synchronizes after every BATCH matmuls to count
# what the GPU finished.
BIG = 8192
BATCH = 10
PROGRESS_EVERY_S = 0.25

# The inference-like loop: one smaller matmul per request, waited for,
# then a pause that leaves the card to others.
SMALL = 4096
INFER_WARMUP = 20
INFER_ITERATIONS = 300
INFER_GAP_S = 0.005

PAIR = (30, 70)      # elastic limits of the two loops
ALONE = 30           # hard limit of the lone loop
TOLERANCE = 5.0      # points of percentage a share may be off
P99_RATIO = 1.10     # p99 beside the neighbour / p99 alone ...
P99_SLACK_S = 0.2e-3  # ... plus this, for timer and scheduling noise

PAIR_NAME = "shares/elastic-%d-%d" % PAIR
ALONE_NAME = "shares/hard-%d-alone" % ALONE
PRIORITY_NAME = "shares/priority"
NAMES = (PAIR_NAME, ALONE_NAME, PRIORITY_NAME)


# ----------------------------------------------------------------- probes

def observe_loop(args):
    """Matmuls back to back until released, logging how many were done when.

    Writes the .ready file common.HeldProbe waits for once the first batch
    is done (the CUDA context, cuBLAS and the first sampled launches behind
    it), then loops; progress is [[time.monotonic(), matmuls done], ...],
    whose clock the checker shares (CLOCK_MONOTONIC is system-wide).
    """
    import torch
    a = torch.randn(BIG, BIG, device="cuda", dtype=torch.float16)
    b = torch.randn(BIG, BIG, device="cuda", dtype=torch.float16)

    def batch():
        for _ in range(BATCH):
            a @ b
        torch.cuda.synchronize()

    batch()
    common.write_json(args.obs + ".ready",
                      {"pid": os.getpid(), "hooked": common.hooked_here()})
    done, last = 0, None
    progress = []
    deadline = time.monotonic() + args.hold_timeout
    while not os.path.exists(args.obs + ".release"):
        if time.monotonic() > deadline:
            raise TimeoutError("never released after %d s" % args.hold_timeout)
        batch()
        done += BATCH
        now = time.monotonic()
        if last is None or now - last >= PROGRESS_EVERY_S:
            progress.append([now, done])
            last = now
    progress.append([time.monotonic(), done])
    return {"size": BIG, "matmuls": done, "progress": progress}


def observe_infer(args):
    """Seconds each of INFER_ITERATIONS matmul+synchronize requests took."""
    import torch
    a = torch.randn(SMALL, SMALL, device="cuda", dtype=torch.float16)
    b = torch.randn(SMALL, SMALL, device="cuda", dtype=torch.float16)
    for _ in range(INFER_WARMUP):
        a @ b
        torch.cuda.synchronize()
    latencies = []
    start = time.monotonic()
    for _ in range(INFER_ITERATIONS):
        t0 = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        latencies.append(time.perf_counter() - t0)
        time.sleep(INFER_GAP_S)
    return {"size": SMALL, "latencies_s": latencies, "start": start,
            "end": time.monotonic()}


PROBES = {"env": torch_check.observe_env, "loop": observe_loop,
          "infer": observe_infer}


# ------------------------------------------------- arithmetic (no GPU needed)

def parse_pmon(text):
    """{pid: [SM %, or None where NVML had no sample ('-')]} of pmon's output.

    Columns are found by the header (`# gpu pid type sm mem ...`): drivers
    add columns (jpg, ofa) between releases.  A round with no process
    prints '-' as the pid and is skipped.  Raises ValueError without a
    header naming pid and sm.
    """
    cols = None
    samples = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            names = line.strip().lstrip("#").split()
            if "pid" in names and "sm" in names:
                cols = names.index("pid"), names.index("sm")
            continue
        words = line.split()
        if cols is None or len(words) <= max(cols) or not words[cols[0]].isdigit():
            continue
        sm = words[cols[1]]
        samples.setdefault(int(words[cols[0]]), []).append(
            int(sm) if sm.isdigit() else None)
    if cols is None:
        raise ValueError("no header naming the pid and sm columns in %r" % text[:200])
    return samples


def sm_stats(values):
    """Mean SM % of the numeric samples, with how many there were and weren't.

    A '-' is NVML having no sample of the process in that round, which for a
    loop that never stops launching is a gap in the sampling, not an idle
    second; counting it as 0 would halve a share on drivers that skip
    alternate rounds.  The count of them is kept in the details.
    """
    nums = [v for v in values if v is not None]
    return {"mean": sum(nums) / len(nums) if nums else None,
            "samples": len(nums), "missing": len(values) - len(nums)}


def split(values):
    """Each value as a percentage of their sum (None if the sum is 0)."""
    total = sum(values)
    return [100.0 * v / total if total > 0 else None for v in values]


def count_at(progress, t):
    """Matmuls a loop had done at time t, interpolated; None outside its log."""
    for (ta, ca), (tb, cb) in zip(progress, progress[1:]):
        if ta <= t <= tb:
            return cb if tb == ta else ca + (cb - ca) * (t - ta) / (tb - ta)
    return None


def rate_between(progress, t0, t1):
    """Matmuls per second a loop did between t0 and t1, or None."""
    a, b = count_at(progress or [], t0), count_at(progress or [], t1)
    if a is None or b is None or t1 <= t0:
        return None
    return (b - a) / (t1 - t0)


def percentile(values, p):
    """Nearest-rank percentile: the smallest value with p % at or below it."""
    s = sorted(values)
    return s[max(0, int(math.ceil(p / 100.0 * len(s))) - 1)]


def summarize(limits, finals, sampled):
    """What each loop got while pmon sampled.

    limits: the configured limit of each loop; finals: their final obs;
    sampled: {'samples': parse_pmon's answer, 'window': [t0, t1]} or
    {'error': why}.  Returns {'loops': [{'limit', 'pid', 'sm' (mean SM %
    or None if NVML did not list it), 'sm_samples', 'sm_missing', 'rate'
    (matmuls/s)}], 'others': {pid: mean SM %} of processes that are none
    of ours, 'error': why nothing can be judged (absent if something can)}.
    """
    out = {"loops": [], "others": {}}
    bad = [(l, o) for l, o in zip(limits, finals) if "error" in o]
    if bad:
        out["error"] = "the loop with limit %d failed: %s" % (bad[0][0], bad[0][1]["error"])
        return out
    if "error" in sampled:
        out["error"] = "nvidia-smi pmon: " + sampled["error"]
        return out
    samples, (t0, t1) = sampled["samples"], sampled["window"]
    ours = set()
    for limit, obs in zip(limits, finals):
        pid = obs.get("pid")
        ours.add(pid)
        st = sm_stats(samples.get(pid, []))
        out["loops"].append({"limit": limit, "pid": pid, "sm": st["mean"],
                             "sm_samples": st["samples"], "sm_missing": st["missing"],
                             "rate": rate_between(obs.get("progress"), t0, t1)})
    out["others"] = {p: sm_stats(v)["mean"] for p, v in samples.items() if p not in ours}
    return out


def _pct(v):
    return "?" if v is None else "%.1f %%" % v


def judge_pair(rep, name, policy, summary):
    """Each loop's part of the SM time the loops used, against its limit's part.

    Judged on the split of the sum rather than on the raw SM %, which also
    holds the gaps between a loop's synchronizes (the raw figures are in
    the reason).  Where NVML lists none of the loops' pids (they run in
    another PID namespace), the split of their matmul throughput stands in,
    and the reason says so.
    """
    if "error" in summary:
        rep.add(name, "FAIL", summary["error"], **summary)
        return
    loops = summary["loops"]
    limits = [l["limit"] for l in loops]
    want = split(limits)
    sm = [l["sm"] for l in loops]
    rates = [l["rate"] for l in loops]
    rate_split = split(rates) if None not in rates else [None] * len(loops)
    if None not in sm:
        got, method = split(sm), "of the SM time the loops used (NVML)"
    elif all(s is None for s in sm) and None not in rate_split:
        got = rate_split
        method = ("of the matmuls the loops did, since NVML lists none of their pids "
                  "%s but %s (another PID namespace?)" % (
                      "/".join(str(l["pid"]) for l in loops),
                      "/".join(str(p) for p in sorted(summary["others"])) or "nothing"))
    else:
        missing = [l for l in loops if l["sm"] is None]
        rep.add(name, "FAIL", "NVML has no utilization of the loop with limit %d "
                "(pid %s) while it ran" % (missing[0]["limit"], missing[0]["pid"]),
                **summary)
        return
    if None in got:
        rep.add(name, "FAIL", "the loops used no measurable GPU time", **summary)
        return
    ok = all(abs(g - w) <= TOLERANCE for g, w in zip(got, want))
    parts = ["limit %d %s: %s (SM %s of the card)" % (l["limit"], policy, _pct(g), _pct(l["sm"]))
             for l, g in zip(loops, got)]
    together = "; together SM %s of the card" % _pct(sum(sm)) if None not in sm else ""
    rep.add(name, "PASS" if ok else "FAIL",
            "part %s: %s%s; each must be within %.0f points of %s; throughput split %s"
            % (method, ", ".join(parts), together, TOLERANCE,
               "/".join("%.0f %%" % w for w in want),
               "/".join(_pct(r) for r in rate_split)),
            **summary)


def judge_alone(rep, name, summary):
    """The lone loop's SM % of the card against its hard limit.

    Where NVML does not list its pid but exactly one process, that one is
    taken (another PID namespace), and the reason says so.
    """
    if "error" in summary:
        rep.add(name, "FAIL", summary["error"], **summary)
        return
    (loop,) = summary["loops"]
    sm, note = loop["sm"], ""
    if sm is None and len(summary["others"]) == 1:
        (pid, sm), = summary["others"].items()
        note = " (NVML's only process, pid %d; the loop is pid %s: another PID " \
               "namespace?)" % (pid, loop["pid"])
    if sm is None:
        rep.add(name, "FAIL", "NVML has no utilization of the loop (pid %s) while it "
                "ran; it lists %s" % (loop["pid"], sorted(summary["others"]) or "nothing"),
                **summary)
        return
    ok = abs(sm - loop["limit"]) <= TOLERANCE
    rate = " at %.0f matmul/s" % loop["rate"] if loop["rate"] is not None else ""
    rep.add(name, "PASS" if ok else "FAIL",
            "hard limit %d alone: SM %s of the card%s%s, %s %.0f points of %d %%"
            % (loop["limit"], _pct(sm), note, rate, "within" if ok else "not within",
               TOLERANCE, loop["limit"]), **summary)


def _ms(seconds):
    return "%.3f ms" % (seconds * 1e3)


def latency_stats(obs):
    lat = obs.get("latencies_s") or []
    if not lat:
        return None
    return {"p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99),
            "max_s": max(lat), "n": len(lat)}


def judge_priority(rep, alone, beside, neighbour):
    """Latency of the high-priority loop alone and beside a low-priority one.

    alone, beside: the infer obs (beside None if it was not run);
    neighbour: {'error': why} if the low-priority loop was not running, else
    {'rate_before', 'rate_during'} (matmuls/s before and while the
    high-priority loop ran; the first must show it was busy).
    """
    name = PRIORITY_NAME
    for label, obs in (("alone", alone), ("beside the neighbour", beside)):
        if obs is not None and "error" in obs:
            rep.add(name, "FAIL", "the high-priority loop %s failed: %s"
                    % (label, obs["error"]), alone=alone, beside=beside)
            return
    if "error" in neighbour:
        rep.add(name, "FAIL", "the low-priority neighbour was not running: "
                + neighbour["error"], neighbour=neighbour)
        return
    if not neighbour.get("rate_before"):
        rep.add(name, "FAIL", "the low-priority neighbour did no work before the "
                "high-priority loop started, so its latency beside it proves nothing",
                neighbour=neighbour)
        return
    a, b = latency_stats(alone), latency_stats(beside or {})
    if a is None or b is None:
        rep.add(name, "FAIL", "no latencies recorded", alone=a, beside=b)
        return
    limit = a["p99_s"] * P99_RATIO + P99_SLACK_S
    ok = b["p99_s"] <= limit
    during = neighbour.get("rate_during")
    rep.add(name, "PASS" if ok else "FAIL",
            "p50/p99 of %d requests alone %s/%s, beside a low-priority trainer %s/%s; "
            "p99 limit %.2f x alone + %s slack = %s; the trainer did %.0f matmul/s "
            "before and %s while the requests ran"
            % (a["n"], _ms(a["p50_s"]), _ms(a["p99_s"]), _ms(b["p50_s"]), _ms(b["p99_s"]),
               P99_RATIO, _ms(P99_SLACK_S), _ms(limit),
               neighbour["rate_before"], "?" if during is None else "%.0f" % during),
            alone=a, beside=b, neighbour=neighbour, limit_s=limit)


# ---------------------------------------------------------------- checker

def pmon(uuid, count):
    """`nvidia-smi pmon -s u` for count one-second rounds, run un-hooked."""
    argv = ["nvidia-smi", "pmon", "-c", str(count), "-s", "u"]
    if uuid:
        argv += ["-i", uuid]
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=count + 30,
                           env=common.scrubbed_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(str(e))
    if p.returncode != 0:
        raise RuntimeError("exit status %d: %s" % (p.returncode, p.stdout.strip()[:200]))
    return p.stdout


def warmup_s(ctx):
    return ctx.share_seconds / 2.0


def loop_env(node, **extra):
    env = {"GPUPOOL_NODE": node}
    env.update(extra)
    return env


def run_loops(ctx, tag, limits, policy):
    """Run one loop per limit side by side, sample pmon, and summarize."""
    node = os.path.join(ctx.workdir, tag + ".node")
    held = [common.HeldProbe(
        ctx, "%s-%d-%d" % (tag, i, limit), "loop", "region",
        loop_env(node, GPUPOOL_CORE_LIMIT=str(limit), GPUPOOL_CORE_POLICY=policy),
        region=os.path.join(ctx.workdir, "%s-%d.region" % (tag, i)))
        for i, limit in enumerate(limits)]
    readies = [h.wait_ready() for h in held]
    sampled = {"error": "not sampled: a loop never started"}
    if all(r and r.get("hooked") for r in readies):
        time.sleep(warmup_s(ctx))
        t0 = time.monotonic()
        try:
            text = pmon(ctx.gpu, ctx.share_seconds)
            sampled = {"samples": parse_pmon(text), "window": [t0, time.monotonic()]}
            with open(os.path.join(ctx.workdir, tag + ".pmon"), "w") as f:
                f.write(text)
        except (RuntimeError, ValueError) as e:
            sampled = {"error": str(e)}
    finals = [h.release() for h in held]
    return summarize(limits, finals, sampled)


def run_priority(ctx, rep):
    node = os.path.join(ctx.workdir, "priority.node")
    high = loop_env(node, GPUPOOL_PRIORITY="high")

    def infer(tag):
        return common.run_probe(ctx, tag, "infer", "region", high,
                                region=os.path.join(ctx.workdir, tag + ".region"))

    alone = infer("infer-alone")
    low = common.HeldProbe(ctx, "trainer-low", "loop", "region",
                           loop_env(node, GPUPOOL_PRIORITY="low"),
                           region=os.path.join(ctx.workdir, "trainer-low.region"))
    ready = low.wait_ready()
    beside = None
    if ready and ready.get("hooked"):
        time.sleep(min(warmup_s(ctx), 2.0))
        started = time.monotonic()
        beside = infer("infer-beside")
    end = low.release()
    if "error" in end:
        neighbour = {"error": end["error"]}
    elif beside is None or "error" in beside:
        neighbour = {}
    else:
        progress = end.get("progress") or []
        neighbour = {
            "rate_before": rate_between(progress, progress[0][0] if progress else 0,
                                        started),
            "rate_during": rate_between(progress, beside["start"], beside["end"]),
            "pid": end.get("pid")}
    judge_priority(rep, alone, beside, neighbour)


def check(ctx, rep):
    missing = common.framework_missing("torch")
    if missing:
        rep.add("shares", "SKIP", missing)
        return
    node = os.path.join(ctx.workdir, "NODE")
    if ctx.dry_run:
        lines = []
        for case, env in (
                ("loop", loop_env(node, GPUPOOL_CORE_LIMIT=str(PAIR[0]),
                                  GPUPOOL_CORE_POLICY="elastic")),
                ("infer", loop_env(node, GPUPOOL_PRIORITY="high"))):
            argv, mode_env = common.command_for(
                ctx, common.python_probe_argv(ctx, case, "OBS"), "region", "REGION")
            lines.append(common.shell_line(argv, dict(env, **mode_env)))
        lines.append("nvidia-smi pmon -c %d -s u -i %s" % (ctx.share_seconds, ctx.gpu))
        common.dry_run(rep, ("shares/baseline",) + NAMES, lines)
        return
    base = common.run_probe(ctx, "env", "env", "plain")
    if not common.judge_baseline(rep, "shares", base):
        return
    judge_pair(rep, PAIR_NAME, "elastic", run_loops(ctx, "elastic", PAIR, "elastic"))
    judge_alone(rep, ALONE_NAME, run_loops(ctx, "hard", (ALONE,), "hard"))
    run_priority(ctx, rep)


if __name__ == "__main__":
    common.main("shares", check, PROBES)
