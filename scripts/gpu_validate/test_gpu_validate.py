#!/usr/bin/env python3
"""Tests of scripts/gpu-validate that need no GPU.

    python3 scripts/gpu_validate/test_gpu_validate.py -v

What a GPU alone can show (the frameworks' real behaviour under the
library) is out of reach here; everything around it is tested: the judging
of observations (fed made-up ones), the probe plumbing (time limits, crashes,
preload detection, environment hygiene, holding and releasing) with a fake
check file, and the driver script end to end against a fake nvidia-smi, a
fake `gpupool run` and an empty libgpupool.so.
"""

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "gpu-validate")
sys.path.insert(0, HERE)

import common  # noqa: E402
import driver_check  # noqa: E402
import jax_check  # noqa: E402
import loader_check  # noqa: E402
import report  # noqa: E402
import share_check  # noqa: E402
import smi_check  # noqa: E402
import torch_check  # noqa: E402
from common import GiB, MiB  # noqa: E402

BUDGET = 4 * GiB
UUID = "GPU-11111111-2222-3333-4444-555555555555"


class Collect:
    """A Reporter stand-in that keeps results in a list."""

    def __init__(self):
        self.results = []

    def add(self, name, status, reason, **details):
        self.results.append((name, status, reason))

    def status(self, name):
        return [s for n, s, _ in self.results if n == name]

    def reason(self, name):
        return [r for n, _, r in self.results if n == name][0]


def good_budget_obs():
    fb = BUDGET - 10 * MiB
    return {"total": BUDGET, "props_total": BUDGET, "free_before": fb,
            "within": "ok", "free_during": fb - 3 * GiB, "free_after": fb,
            "realloc": "ok", "over": "torch.OutOfMemoryError: CUDA out of memory",
            "over_is_oom": True, "after_oom": "ok"}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose: it holds no GPU memory.
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def write_exe(path, text):
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip())
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


# ---------------------------------------------------------------- helpers

class HelperTest(unittest.TestCase):
    def test_fmt_bytes(self):
        self.assertEqual(common.fmt_bytes(4 * GiB), "4.00 GiB")
        self.assertEqual(common.fmt_bytes(512 * MiB), "512.00 MiB")
        self.assertEqual(common.fmt_bytes(12), "12 B")
        self.assertEqual(common.fmt_bytes(None), "?")

    def test_parse_csv_mib(self):
        self.assertEqual(common.parse_csv_mib("4096, 12", 2), [4096, 12])
        self.assertEqual(common.parse_csv_mib("[N/A], 12", 2), [None, 12])
        with self.assertRaises(ValueError):
            common.parse_csv_mib("4096", 2)

    def test_parse_compute_apps(self):
        text = ("123, 3584, %s\n456, 100, GPU-other\n789, [N/A], %s\n"
                "No running processes found\n" % (UUID, UUID))
        self.assertEqual(common.parse_compute_apps(text, UUID),
                         {123: 3584 * MiB, 789: None})

    def test_attempt(self):
        obs = {}
        self.assertEqual(common.attempt(obs, "a", lambda: 5), 5)
        self.assertEqual(obs["a"], "ok")

        def oom():
            raise MemoryError("out of memory\nmore")
        self.assertIsNone(common.attempt(obs, "b", oom, oom=MemoryError))
        self.assertEqual(obs["b"], "MemoryError: out of memory")
        self.assertTrue(obs["b_is_oom"])
        common.attempt(obs, "c", lambda: 1 / 0, oom=MemoryError)
        self.assertFalse(obs["c_is_oom"])

    def test_reporter_writes_one_line_reasons(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.jsonl")
            rep = common.Reporter(path, "x")
            with open(os.devnull, "w") as null:
                saved, sys.stdout = sys.stdout, null
                try:
                    rep.add("x/a", "PASS", "two\nlines", n=1)
                finally:
                    sys.stdout = saved
            with self.assertRaises(ValueError):
                rep.add("x/b", "MAYBE", "no")
            with open(path) as f:
                recs = [json.loads(l) for l in f]
        self.assertEqual(recs, [{"check": "x", "name": "x/a", "status": "PASS",
                                 "reason": "two lines", "details": {"n": 1}}])

    def test_probe_env_scrubs_what_changes_measurements(self):
        saved = dict(os.environ)
        try:
            os.environ.update(LD_PRELOAD="/x.so", GPUPOOL_MEMORY_LIMIT="1G",
                              GPUPOOL_LOG="debug", PYTORCH_CUDA_ALLOC_CONF="a",
                              CUDA_DEVICE_MEMORY_LIMIT_0="1g", XLA_PYTHON_CLIENT_MEM_FRACTION=".1",
                              CUDA_VISIBLE_DEVICES="3", KEEP_ME="1")
            env = common.probe_env(argparse.Namespace(gpu=UUID), {"JAX_PLATFORMS": "cuda"})
        finally:
            os.environ.clear()
            os.environ.update(saved)
        for gone in ("LD_PRELOAD", "GPUPOOL_MEMORY_LIMIT", "PYTORCH_CUDA_ALLOC_CONF",
                     "CUDA_DEVICE_MEMORY_LIMIT_0", "XLA_PYTHON_CLIENT_MEM_FRACTION"):
            self.assertNotIn(gone, env)
        self.assertEqual(env["GPUPOOL_LOG"], "debug")
        self.assertEqual(env["KEEP_ME"], "1")
        self.assertEqual(env["CUDA_VISIBLE_DEVICES"], UUID)
        self.assertEqual(env["JAX_PLATFORMS"], "cuda")

    def test_command_for(self):
        ctx = argparse.Namespace(gpupool="/b/gpupool", lib="/b/libgpupool.so", budget=7)
        self.assertEqual(common.command_for(ctx, ["p"], "plain"), (["p"], {}))
        self.assertEqual(common.command_for(ctx, ["p"], "hooked"),
                         (["/b/gpupool", "run", "--memory", "7", "--", "p"], {}))
        argv, env = common.command_for(ctx, ["p"], "region", "/r")
        self.assertEqual(env, {"LD_PRELOAD": "/b/libgpupool.so",
                               "GPUPOOL_MEMORY_LIMIT": "7", "GPUPOOL_REGION": "/r"})
        self.assertEqual(common.shell_line(argv, env),
                         "GPUPOOL_MEMORY_LIMIT=7 GPUPOOL_REGION=/r "
                         "LD_PRELOAD=/b/libgpupool.so p")


# ---------------------------------------------------------------- judging

class JudgeBudgetTest(unittest.TestCase):
    def judge(self, **changes):
        obs = good_budget_obs()
        obs.update(changes)
        rep = Collect()
        common.judge_budget(rep, "t", obs, BUDGET, physical=80 * GiB)
        return rep

    def test_all_pass(self):
        rep = self.judge()
        self.assertEqual([s for _, s, _ in rep.results], ["PASS"] * 3)
        self.assertIn("physical 80.00 GiB", rep.reason("t/total"))

    def test_total_not_budget(self):
        self.assertEqual(self.judge(total=80 * GiB).status("t/total"), ["FAIL"])
        self.assertEqual(self.judge(props_total=80 * GiB).status("t/total"), ["FAIL"])

    def test_alloc_free(self):
        for changes in ({"within": "RuntimeError: x"},
                        {"free_during": BUDGET - 10 * MiB},  # not charged
                        {"free_after": BUDGET - 3 * GiB},    # not given back
                        {"realloc": "torch.OutOfMemoryError: x"},
                        {"free_after": None}):
            self.assertEqual(self.judge(**changes).status("t/alloc+free"), ["FAIL"],
                             changes)

    def test_oom(self):
        self.assertEqual(self.judge(over="ok", over_is_oom=False).status("t/oom"), ["FAIL"])
        rep = self.judge(over="RuntimeError: CUDA error: invalid argument", over_is_oom=False)
        self.assertIn("not as out-of-memory", rep.reason("t/oom"))
        self.assertEqual(self.judge(after_oom="RuntimeError: x").status("t/oom"), ["FAIL"])

    def test_probe_error_fails_all(self):
        rep = self.judge(error="died of signal 11")
        self.assertEqual([s for _, s, _ in rep.results], ["FAIL"] * 3)
        self.assertIn("died of signal 11", rep.reason("t/oom"))


class JudgeLoaderTest(unittest.TestCase):
    DOC = {"memcpy_htod_gbps": 25.0, "disk_gbps": 21.0, "disk_ratio": 0.84,
           "cache_gbps": 19.0, "cache_ratio": 0.76, "bytes": 2048 << 20,
           "chunk_bytes": 16 << 20, "streams": 2}

    def test_each_path_against_the_target(self):
        rep = Collect()
        loader_check.judge(rep, self.DOC)
        self.assertEqual(rep.status("loader/page-cache"), ["PASS"])
        self.assertEqual(rep.status("loader/host-cache"), ["FAIL"])
        self.assertIn("76 % of cuMemcpyHtoD's 25.00 GB/s", rep.reason("loader/host-cache"))

    def test_no_result_fails_both(self):
        for doc, err in ((None, "exit status 1: no GPU 0"), ({"disk_ratio": 1.0}, "")):
            rep = Collect()
            loader_check.judge(rep, doc, err)
            self.assertEqual(rep.status("loader/page-cache") + rep.status("loader/host-cache"),
                             ["FAIL", "FAIL"])


class JudgeOtherTest(unittest.TestCase):
    def test_overhead(self):
        rep = Collect()
        plain = [{"per_op_s": 10e-6}, {"per_op_s": 9e-6}]
        common.judge_overhead(rep, "o", plain, [{"per_op_s": 12e-6}, {"per_op_s": 11e-6}], 1.5)
        self.assertEqual(rep.results[0][1], "PASS")
        self.assertIn("ratio 1.22", rep.results[0][2])
        common.judge_overhead(rep, "o2", plain, [{"per_op_s": 30e-6}], 1.5)
        self.assertEqual(rep.status("o2"), ["FAIL"])
        common.judge_overhead(rep, "o3", plain, [{"error": "timed out after 5 s"}], 1.5)
        self.assertIn("timed out", rep.reason("o3"))

    def test_baseline(self):
        rep = Collect()
        self.assertTrue(common.judge_baseline(
            rep, "torch", {"version": "torch 2.11", "device": "H100", "total": 80 * GiB}))
        self.assertFalse(common.judge_baseline(rep, "cupy", {"skip": "CPU-only build"}))
        self.assertFalse(common.judge_baseline(rep, "jax", {"error": "no CUDA"}))
        self.assertEqual([s for _, s, _ in rep.results], ["PASS", "SKIP", "FAIL"])

    def test_allocator_not_applied(self):
        self.assertIsNone(torch_check.allocator_not_applied(
            "cudaMallocAsync", {"allocator_backend": "cudaMallocAsync"}))
        self.assertIsNone(torch_check.allocator_not_applied(
            "expandable_segments", {"allocator_backend": "native"}))
        self.assertIn("not 'cudaMallocAsync'", torch_check.allocator_not_applied(
            "cudaMallocAsync", {"allocator_backend": "native", "alloc_conf": "x"}))

    def test_shared(self):
        ready = {"hooked": True, "alloc": "ok"}
        refused = {"alloc": "torch.OutOfMemoryError: x", "alloc_is_oom": True}
        took = {"alloc": "ok"}
        a, b = torch_check.SHARED

        def run(*args):
            rep = Collect()
            torch_check.judge_shared(rep, BUDGET, *args)
            return rep

        rep = run(ready, refused, {}, took)
        self.assertEqual((rep.status(a), rep.status(b)), (["PASS"], ["PASS"]))
        rep = run(ready, took, {}, took)
        self.assertIn("while the first held", rep.reason(a))
        rep = run(ready, refused, {}, {"alloc": "torch.OutOfMemoryError: y"})
        self.assertIn("not returned", rep.reason(b))
        rep = run(None, None, {"error": "died of signal 9"}, None)
        self.assertIn("died of signal 9", rep.reason(b))
        rep = run({"hooked": False, "alloc": "ok"}, None, {}, None)
        self.assertIn("not loaded", rep.reason(a))
        rep = run(ready, refused, {"error": "never released"}, None)
        self.assertEqual((rep.status(a), rep.status(b)), (["PASS"], ["FAIL"]))

    def test_jax(self):
        good = {"backend": "gpu", "result": jax_check.EXPECTED, "bytes_limit": 3 * GiB,
                "version": "jax 0.11"}

        def run(obs, usage):
            rep = Collect()
            jax_check.judge(rep, BUDGET, GiB, obs, usage)
            return rep

        rep = run(good, {"bytes": 3 * GiB + 500 * MiB, "method": "NVML usage of pid 1"})
        self.assertEqual(rep.status("jax/compute") + rep.status("jax/preallocation"),
                         ["PASS", "PASS"])
        self.assertIn("3.49 GiB", rep.reason("jax/preallocation"))
        rep = run(good, {"bytes": 60 * GiB, "method": "m"})
        self.assertEqual(rep.status("jax/preallocation"), ["FAIL"])
        rep = run(dict(good, bytes_limit=60 * GiB), {"bytes": 0, "method": "m"})
        self.assertIn("allocator limit", rep.reason("jax/preallocation"))
        rep = run(dict(good, backend="cpu"), {"error": "x"})
        self.assertEqual(rep.status("jax/compute") + rep.status("jax/preallocation"),
                         ["FAIL", "FAIL"])
        rep = run(dict(good, result=1.0), {"bytes": 0, "method": "m"})
        self.assertEqual(rep.status("jax/compute"), ["FAIL"])

    def test_jax_usage_falls_back_to_device_growth(self):
        saved = common.compute_apps, common.gpu_memory_used, time.sleep
        try:
            common.compute_apps = lambda uuid: {99: 5 * GiB}
            common.gpu_memory_used = lambda uuid: 4 * GiB
            jax_check.time.sleep = lambda s: None
            self.assertEqual(jax_check.measure_usage(UUID, 99, GiB)["bytes"], 5 * GiB)
            usage = jax_check.measure_usage(UUID, 7, GiB)
            self.assertEqual(usage["bytes"], 3 * GiB)
            self.assertIn("memory.used", usage["method"])
            self.assertIn("error", jax_check.measure_usage(UUID, 7, None))
        finally:
            common.compute_apps, common.gpu_memory_used, jax_check.time.sleep = saved

    def test_smi(self):
        rep = Collect()
        smi_check.judge(rep, BUDGET, 0, None, "4096, 0\n", 81559)
        smi_check.judge(rep, BUDGET, 0, None, "81559, 0\n", 81559)
        smi_check.judge(rep, BUDGET, 0, None, "garbage\n", 81559)
        smi_check.judge(rep, BUDGET, 9, None, "", 81559, "Failed to initialize NVML")
        smi_check.judge(rep, BUDGET, None, "timed out after 5 s", "", None)
        self.assertEqual([s for _, s, _ in rep.results], ["PASS"] + ["FAIL"] * 4)
        self.assertIn("Failed to initialize NVML", rep.results[3][2])


# ---------------------------------------------------------------- shares

# nvidia-smi pmon -s u as a 580 driver prints it (jpg and ofa columns), with a
# round NVML had no sample of one process in, and a process of someone else.
PMON = """\
# gpu         pid   type     sm    mem    enc    dec    jpg    ofa    command
# Idx           #    C/G      %      %      %      %      %      %    name
    0       1001     C     28     40      -      -      -      -    python3
    0       1002     C     66     61      -      -      -      -    python3
    0       1001     C     31     41      -      -      -      -    python3
    0       1002     C      -      -      -      -      -      -    python3
    0       1001     C     30     40      -      -      -      -    python3
    0       1002     C     70     63      -      -      -      -    python3
    0        777     G      1      0      -      -      -      -    Xorg
"""

# Older drivers: no jpg/ofa columns; a round without processes.
PMON_OLD = """\
# gpu        pid  type    sm   mem   enc   dec   command
# Idx          #   C/G     %     %     %     %   name
    0          -     -     -     -     -     -   -
    0       4242     C    29    10     -     -   python3
# gpu        pid  type    sm   mem   enc   dec   command
# Idx          #   C/G     %     %     %     %   name
    0       4242     C    31    10     -     -   python3
"""


def loop_obs(pid, rate, start=100.0, end=120.0):
    """A loop probe's final obs that did rate matmuls/s from start to end."""
    steps = [start + i * 0.5 for i in range(int((end - start) / 0.5) + 1)]
    return {"pid": pid, "progress": [[t, rate * (t - start)] for t in steps]}


def sampled(text=PMON, window=(105.0, 115.0)):
    return {"samples": share_check.parse_pmon(text), "window": list(window)}


def infer_obs(base_ms, spikes_ms=(), n=300):
    lat = [base_ms / 1e3] * (n - len(spikes_ms)) + [s / 1e3 for s in spikes_ms]
    return {"latencies_s": lat, "start": 110.0, "end": 112.0}


class ShareTest(unittest.TestCase):
    def test_parse_pmon(self):
        self.assertEqual(share_check.parse_pmon(PMON),
                         {1001: [28, 31, 30], 1002: [66, None, 70], 777: [1]})
        self.assertEqual(share_check.parse_pmon(PMON_OLD), {4242: [29, 31]})
        self.assertEqual(share_check.parse_pmon(PMON.splitlines()[0]), {})
        with self.assertRaises(ValueError):
            share_check.parse_pmon("Failed to initialize NVML\n")

    def test_share_arithmetic(self):
        samples = share_check.parse_pmon(PMON)
        # '-' is a missing sample, not an idle second.
        self.assertEqual(share_check.sm_stats(samples[1002]),
                         {"mean": 68.0, "samples": 2, "missing": 1})
        self.assertEqual(share_check.sm_stats(samples[1001])["mean"], 29.666666666666668)
        self.assertEqual(share_check.sm_stats([None])["mean"], None)
        got = share_check.split([29.666666666666668, 68.0])
        self.assertAlmostEqual(got[0], 30.375, places=3)
        self.assertAlmostEqual(got[1], 69.625, places=3)
        self.assertEqual(share_check.split([30, 70]), [30.0, 70.0])
        self.assertEqual(share_check.split([0, 0]), [None, None])

    def test_rates_and_percentiles(self):
        progress = [[10.0, 0], [11.0, 100], [13.0, 100], [14.0, 400]]
        self.assertEqual(share_check.count_at(progress, 10.5), 50)
        self.assertEqual(share_check.count_at(progress, 9.0), None)
        self.assertEqual(share_check.rate_between(progress, 10.5, 13.5), (250 - 50) / 3.0)
        self.assertIsNone(share_check.rate_between(progress, 10.5, 15.0))
        self.assertIsNone(share_check.rate_between(None, 10.5, 11.0))
        lat = list(range(1, 301))
        self.assertEqual(share_check.percentile(lat, 50), 150)
        self.assertEqual(share_check.percentile(lat, 99), 297)
        self.assertEqual(share_check.percentile([5], 99), 5)

    def pair(self, finals=None, samp=None):
        rep = Collect()
        finals = finals or [loop_obs(1001, 300), loop_obs(1002, 700)]
        summary = share_check.summarize(share_check.PAIR, finals, samp or sampled())
        share_check.judge_pair(rep, "p", "elastic", summary)
        return rep, summary

    def test_pair_from_nvml(self):
        rep, summary = self.pair()
        self.assertEqual(rep.status("p"), ["PASS"])
        self.assertEqual([l["pid"] for l in summary["loops"]], [1001, 1002])
        self.assertAlmostEqual(summary["loops"][0]["rate"], 300)
        self.assertEqual(summary["others"], {777: 1.0})
        self.assertIn("limit 30 elastic: 30.4 % (SM 29.7 % of the card)", rep.reason("p"))
        self.assertIn("limit 70 elastic: 69.6 % (SM 68.0 % of the card)", rep.reason("p"))
        self.assertIn("together SM 97.7 % of the card", rep.reason("p"))
        self.assertIn("throughput split 30.0 %/70.0 %", rep.reason("p"))

    def test_pair_off_by_more_than_five_points(self):
        text = PMON.replace("     28  ", "     50  ").replace("     31  ", "     50  ") \
                   .replace("     30  ", "     50  ")
        rep, _ = self.pair(samp=sampled(text))  # 50 vs 68: 42.4 % of the pair
        self.assertEqual(rep.status("p"), ["FAIL"])
        self.assertIn("must be within 5 points of 30 %/70 %", rep.reason("p"))

    def test_pair_tolerance_is_five_points(self):
        def run(a, b):
            text = ("# gpu pid type sm mem command\n"
                    "0 1001 C %d 1 x\n0 1002 C %d 1 x\n" % (a, b))
            return self.pair(samp=sampled(text))[0].status("p")
        self.assertEqual(run(35, 65), ["PASS"])
        self.assertEqual(run(36, 64), ["FAIL"])
        self.assertEqual(run(25, 75), ["PASS"])
        self.assertEqual(run(0, 0), ["FAIL"])

    def test_pair_falls_back_to_throughput_in_another_pid_namespace(self):
        finals = [loop_obs(11, 310), loop_obs(12, 690)]
        rep, _ = self.pair(finals)
        self.assertEqual(rep.status("p"), ["PASS"])
        self.assertIn("of the matmuls the loops did, since NVML lists none of their "
                      "pids 11/12 but 777/1001/1002", rep.reason("p"))
        rep, _ = self.pair([loop_obs(11, 500), loop_obs(12, 500)])
        self.assertEqual(rep.status("p"), ["FAIL"])
        # One listed and one not: nothing to compare.
        rep, _ = self.pair([loop_obs(1001, 300), loop_obs(12, 700)])
        self.assertIn("no utilization of the loop with limit 70 (pid 12)", rep.reason("p"))

    def test_pair_errors(self):
        rep, _ = self.pair([loop_obs(1001, 300), {"error": "died of signal 9"}])
        self.assertIn("the loop with limit 70 failed: died of signal 9", rep.reason("p"))
        rep, _ = self.pair(samp={"error": "exit status 4: Insufficient Permissions"})
        self.assertIn("nvidia-smi pmon: exit status 4", rep.reason("p"))

    def alone(self, text, pid=4242):
        rep = Collect()
        summary = share_check.summarize((30,), [loop_obs(pid, 200)], sampled(text))
        share_check.judge_alone(rep, "a", summary)
        return rep

    def test_alone(self):
        rep = self.alone(PMON_OLD)
        self.assertEqual(rep.status("a"), ["PASS"])
        self.assertIn("hard limit 30 alone: SM 30.0 % of the card at 200 matmul/s, "
                      "within 5 points", rep.reason("a"))
        rep = self.alone(PMON_OLD.replace(" 29 ", " 45 ").replace(" 31 ", " 47 "))
        self.assertEqual(rep.status("a"), ["FAIL"])
        self.assertIn("SM 46.0 %", rep.reason("a"))
        rep = self.alone(PMON_OLD.replace(" 31 ", " 40 "))  # 34.5: within
        self.assertEqual(rep.status("a"), ["PASS"])
        rep = self.alone(PMON_OLD, pid=9)  # the only process NVML lists
        self.assertEqual(rep.status("a"), ["PASS"])
        self.assertIn("NVML's only process, pid 4242; the loop is pid 9", rep.reason("a"))
        rep = self.alone(PMON, pid=9)  # three others: cannot tell
        self.assertIn("no utilization of the loop (pid 9)", rep.reason("a"))

    def prio(self, alone, beside, neighbour=None):
        rep = Collect()
        share_check.judge_priority(rep, alone, beside,
                                   neighbour or {"rate_before": 600.0, "rate_during": 2.0})
        return rep

    def test_priority(self):
        name = share_check.PRIORITY_NAME
        rep = self.prio(infer_obs(0.40, [0.5] * 4), infer_obs(0.41, [0.6] * 4))
        self.assertEqual(rep.status(name), ["PASS"])
        self.assertIn("p50/p99 of 300 requests alone 0.400 ms/0.500 ms, beside a "
                      "low-priority trainer 0.410 ms/0.600 ms", rep.reason(name))
        self.assertIn("1.10 x alone + 0.200 ms slack = 0.750 ms", rep.reason(name))
        self.assertIn("did 600 matmul/s before and 2 while", rep.reason(name))
        # 4 of 300 slow: the p99 (the 297th) is slow.
        rep = self.prio(infer_obs(0.40, [0.5] * 4), infer_obs(0.41, [3.0] * 4))
        self.assertEqual(rep.status(name), ["FAIL"])
        # 3 of 300 slow: under the p99.
        rep = self.prio(infer_obs(0.40), infer_obs(0.41, [3.0] * 3))
        self.assertEqual(rep.status(name), ["PASS"])
        # The slack: 10 % of 0.1 ms is nothing, 0.2 ms more is allowed.
        self.assertEqual(self.prio(infer_obs(0.1), infer_obs(0.3)).status(name), ["PASS"])
        self.assertEqual(self.prio(infer_obs(0.1), infer_obs(0.32)).status(name), ["FAIL"])
        # 10 %: 2.0 ms alone allows 2.4 ms, not 2.45.
        self.assertEqual(self.prio(infer_obs(2.0), infer_obs(2.4)).status(name), ["PASS"])
        self.assertEqual(self.prio(infer_obs(2.0), infer_obs(2.45)).status(name), ["FAIL"])

    def test_priority_needs_a_busy_neighbour(self):
        name = share_check.PRIORITY_NAME
        ok = infer_obs(0.4)
        rep = self.prio(ok, None, {"error": "libgpupool.so is not loaded in the probe process"})
        self.assertIn("neighbour was not running: libgpupool.so", rep.reason(name))
        rep = self.prio(ok, ok, {"rate_before": 0.0, "rate_during": 0.0})
        self.assertIn("did no work before", rep.reason(name))
        rep = self.prio({"error": "RuntimeError: CUDA error"}, None)
        self.assertIn("loop alone failed: RuntimeError", rep.reason(name))
        rep = self.prio(ok, {"error": "timed out after 300 s"})
        self.assertIn("beside the neighbour failed: timed out", rep.reason(name))
        self.assertEqual(self.prio(ok, {"latencies_s": []}).status(name), ["FAIL"])


# ---------------------------------------------------------------- report

class ReportTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)

    def manifest(self, rows):
        lines = []
        for name, rc, recs, stderr in rows:
            res = os.path.join(self.dir, name + ".jsonl")
            err = os.path.join(self.dir, name + ".err")
            with open(res, "w") as f:
                f.write("".join(r + "\n" if isinstance(r, str) else json.dumps(r) + "\n"
                                for r in recs))
            with open(err, "w") as f:
                f.write(stderr)
            lines.append("\t".join([name, str(rc), "3", "60", res, err]))
        path = os.path.join(self.dir, "manifest.tsv")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def rec(self, name, status, reason="r"):
        return {"check": name.split("/")[0], "name": name, "status": status,
                "reason": reason, "details": {}}

    def test_check_failures_become_fails(self):
        m = self.manifest([
            ("a", 0, [self.rec("a/x", "PASS")], ""),
            ("b", 124, [self.rec("b/x", "PASS")], ""),
            ("c", 1, [], "Traceback...\nNameError: name 'x' is not defined\n"),
            ("d", 0, [], ""),
            ("e", 0, ["{not json", self.rec("e/x", "SKIP")], ""),
        ])
        results = report.gather(m)
        by = {r["name"]: r for r in results}
        self.assertEqual(by["a/x"]["status"], "PASS")
        self.assertEqual(by["b/x"]["status"], "PASS")  # kept beside the timeout
        self.assertIn("timed out after 60 s", by["b"]["reason"])
        self.assertIn("NameError", by["c"]["reason"])
        self.assertIn("recorded no result", by["d"]["reason"])
        self.assertEqual(by["e/x"]["status"], "SKIP")
        self.assertEqual(report.counts(results), {"PASS": 2, "FAIL": 4, "SKIP": 1})

    def test_outputs_and_status(self):
        m = self.manifest([("a", 0, [self.rec("a/x", "PASS", "p|q")], "")])
        out, md = os.path.join(self.dir, "o.json"), os.path.join(self.dir, "o.md")
        env = ["date=2026-11-21", "gpu_name=NVIDIA H100", "gpu_memory_mib=81559",
               "driver_version=580", "budget_bytes=%d" % BUDGET, "gpupool_commit=abc",
               "python=Python 3.12.3"]
        argv = ["--manifest", m, "--out", out, "--markdown", md]
        for e in env:
            argv += ["--env", e]
        with open(os.devnull, "w") as null:
            saved, sys.stdout = sys.stdout, null
            try:
                self.assertEqual(report.main(argv), 0)
            finally:
                sys.stdout = saved
        with open(out) as f:
            summary = json.load(f)
        self.assertEqual(summary["counts"], {"PASS": 1, "FAIL": 0, "SKIP": 0})
        self.assertEqual(summary["environment"]["gpu_name"], "NVIDIA H100")
        with open(md) as f:
            text = f.read()
        self.assertIn("Run 2026-11-21 on NVIDIA H100 (81559 MiB, driver 580), "
                      "budget 4 GiB, gpupool abc, Python 3.12.3.", text)
        self.assertIn("| a/x | PASS | p\\|q |", text)


# ---------------------------------------------------------------- fakes

# A stand-in libcuda.so.1 with just what driver_probe.c calls.  The card has
# 80 GiB, or GPUPOOL_MEMORY_LIMIT bytes when that is set (playing the driver
# and the library in one) unless FAKE_CUDA_IGNORE_LIMIT is set too.
FAKE_LIBCUDA = r"""
#include <stdlib.h>
#include <string.h>
typedef unsigned long long ptr_t;
static size_t total, used, sizes[64];
int cuInit(unsigned flags) {
    const char *limit = getenv("GPUPOOL_MEMORY_LIMIT");
    (void)flags;
    total = limit && !getenv("FAKE_CUDA_IGNORE_LIMIT") ? strtoull(limit, 0, 10)
                                                       : 80ULL << 30;
    return 0;
}
int cuDriverGetVersion(int *v) { *v = 13000; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return 0; }
int cuDeviceGetName(char *n, int len, int d) { (void)d; strncpy(n, "Fake GPU", len); return 0; }
int cuDeviceTotalMem_v2(size_t *t, int d) { (void)d; *t = total; return 0; }
int cuDevicePrimaryCtxRetain(void **c, int d) { (void)d; *c = &total; return 0; }
int cuCtxSetCurrent(void *c) { (void)c; return 0; }
int cuCtxSynchronize(void) { return 0; }
int cuMemGetInfo_v2(size_t *f, size_t *t) { *f = total - used; *t = total; return 0; }
int cuMemAlloc_v2(ptr_t *p, size_t n) {
    for (int i = 1; i < 64; i++)
        if (!sizes[i]) {
            if (used + n > total) return 2;
            sizes[i] = n; used += n; *p = i; return 0;
        }
    return 2;
}
int cuMemFree_v2(ptr_t p) { used -= sizes[p]; sizes[p] = 0; return 0; }
int cuMemsetD8_v2(ptr_t p, unsigned char v, size_t n) { (void)p; (void)v; (void)n; return 0; }
int cuGetErrorName(int rc, const char **s) {
    *s = rc == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "CUDA_ERROR_UNKNOWN";
    return 0;
}
"""


# Stand-in PyTorch, CuPy and JAX: just the calls the probes make, on a
# pretend card like FAKE_LIBCUDA's.  Usage is shared through GPUPOOL_REGION
# as the library shares it, freed when an object dies, and published per
# process in FAKE_NVML_DIR for the fake nvidia-smi's --query-compute-apps.
FAKE_PY = {
    "fakegpu.py": r"""
import fcntl, json, os, time
GiB = 1 << 30

def total():
    limit = os.environ.get("GPUPOOL_MEMORY_LIMIT")
    return int(limit) if limit and not os.environ.get("FAKE_IGNORE_LIMIT") else 80 * GiB

def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False

# Like the library, charge each process's CUDA context to the budget, on
# its first use of the card (any call).
CONTEXT = 256 << 20
_mine = {"": 0}
_context = []

def _update(delta, cap):
    # Apply delta to this process's usage unless the usage of all processes
    # would pass cap; returns whether it did.
    if not _context:
        _context.append(1)
        if not os.environ.get("FAKE_IGNORE_LIMIT"):
            _update(CONTEXT, cap)
    path = os.environ.get("GPUPOOL_REGION")
    if not path:
        if _mine[""] + delta > cap:
            return False
        _mine[""] += delta
    else:
        with open(path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            usage = {p: u for p, u in json.loads(f.read() or "{}").items()
                     if _alive(int(p))}
            usage[str(os.getpid())] = _mine[""]
            if sum(usage.values()) + delta > cap:
                return False
            _mine[""] += delta
            usage[str(os.getpid())] = _mine[""]
            f.seek(0)
            f.truncate()
            f.write(json.dumps(usage))
    nvml = os.environ.get("FAKE_NVML_DIR")
    if nvml and abs(delta) >= 64 << 20:  # only what the JAX check reads
        with open(os.path.join(nvml, str(os.getpid())), "w") as f:
            f.write(str(_mine[""] >> 20))
    return True

def mem_get_info():
    _update(0, total())
    path = os.environ.get("GPUPOOL_REGION")
    used = _mine[""]
    if path and os.path.exists(path):
        with open(path) as f:
            used = sum(u for p, u in json.loads(f.read() or "{}").items()
                       if _alive(int(p)) and int(p) != os.getpid()) + _mine[""]
    return total() - used, total()

# Compute: a matmul of the shares check's training size (8192) takes 2 ms,
# others (its inference size) no time, so that their latency is the cost of
# a few calls and the jitter of sleeps on a busy machine cannot reach the
# check's 0.2 ms slack.  The first matmul publishes, in FAKE_NVML_DIR,
# the SM % the fake nvidia-smi pmon reports for the process (its
# GPUPOOL_CORE_LIMIT, as if the library held it there; a fair split of the
# card with FAKE_IGNORE_SHARES) and its priority.  With FAKE_IGNORE_PRIORITY
# a high-priority process's synchronize waits 5 ms while a low-priority one
# is alive, as if nobody held the low one back.
_busy = []

def _publish(sub, value):
    d = os.path.join(os.environ["FAKE_NVML_DIR"], sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, str(os.getpid())), "w") as f:
        f.write(value)

def busy(n):
    if os.environ.get("FAKE_NVML_DIR") and not _busy:
        _busy.append(1)
        _publish("sm", os.environ.get("GPUPOOL_CORE_LIMIT", "100"))
        _publish("prio", os.environ.get("GPUPOOL_PRIORITY", "normal"))
    if n >= 8192:
        time.sleep(0.002)

def synchronize():
    nvml = os.environ.get("FAKE_NVML_DIR")
    if not (nvml and os.environ.get("FAKE_IGNORE_PRIORITY")
            and os.environ.get("GPUPOOL_PRIORITY") == "high"):
        return
    d = os.path.join(nvml, "prio")
    for name in os.listdir(d) if os.path.isdir(d) else []:
        if name != str(os.getpid()) and _alive(int(name)):
            with open(os.path.join(d, name)) as f:
                if f.read() == "low":
                    time.sleep(0.005)
                    return

class Block:
    def __init__(self, n, oom):
        if not _update(n, total()):
            raise oom("out of memory")
        self.n = n
    def __del__(self):
        _update(-self.n, float("inf"))
""",
    "torch/__init__.py": r"""
import os, types
import fakegpu
__version__ = "2.99-fake"
version = types.SimpleNamespace(cuda="13.0")
uint8 = float32 = float16 = None
class OutOfMemoryError(RuntimeError):
    pass
class _Matrix:
    def __init__(self, n, block=True):
        self.n = n
        if block:
            self.block = fakegpu.Block(2 * n * n, OutOfMemoryError)
    def __matmul__(self, other):
        fakegpu.busy(self.n)
        return _Matrix(self.n, block=False)
def randn(n, m, device=None, dtype=None):
    return _Matrix(n)
class _Tensor:
    def __init__(self, n):
        self.block = fakegpu.Block(n, OutOfMemoryError)
    def fill_(self, v):
        return self
    def add_(self, v):
        return self
def empty(n, dtype=None, device=None):
    return _Tensor(n)
def zeros(n, device=None):
    return _Tensor(4 * n)
def _backend():
    conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
    return "cudaMallocAsync" if "cudaMallocAsync" in conf else "native"
cuda = types.SimpleNamespace(
    OutOfMemoryError=OutOfMemoryError, mem_get_info=fakegpu.mem_get_info,
    get_device_name=lambda i=0: "Fake GPU",
    get_device_properties=lambda i: types.SimpleNamespace(total_memory=fakegpu.total()),
    get_allocator_backend=_backend, empty_cache=lambda: None,
    synchronize=fakegpu.synchronize, init=lambda: None)
""",
    "cupy/__init__.py": r"""
import types
import fakegpu
__version__ = "14.99-fake"
uint8 = None
class OutOfMemoryError(MemoryError):
    pass
class _Array:
    def __init__(self, n):
        self.block = fakegpu.Block(n, OutOfMemoryError)
    def fill(self, v):
        pass
def empty(n, dtype=None):
    return _Array(n)
_pool = types.SimpleNamespace(free_all_blocks=lambda: None)
def get_default_memory_pool():
    return _pool
_blocks = {}
def _malloc(n):
    _blocks[id(n)] = fakegpu.Block(n, OutOfMemoryError)
    return id(n)
cuda = types.SimpleNamespace(
    memory=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
    Device=lambda i=0: types.SimpleNamespace(synchronize=lambda: None),
    runtime=types.SimpleNamespace(
        memGetInfo=fakegpu.mem_get_info, malloc=_malloc, free=_blocks.pop,
        deviceSynchronize=lambda: None,
        getDeviceProperties=lambda i: {"name": b"Fake GPU",
                                       "totalGlobalMem": fakegpu.total()}))
""",
    "jax/__init__.py": r"""
import os, types
import fakegpu
__version__ = "0.99-fake"
_limit = fakegpu.total() * 3 // 4
if os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE") != "false":
    _prealloc = fakegpu.Block(_limit, MemoryError)
_dev = types.SimpleNamespace(device_kind="Fake GPU",
                             memory_stats=lambda: {"bytes_limit": _limit})
def devices():
    return [_dev]
def default_backend():
    return "gpu"
""",
    "jax/numpy.py": r"""
float32 = None
class _Scalar(float):
    def block_until_ready(self):
        return self
class _Matrix:
    def __init__(self, n, value):
        self.n, self.value = n, value
    def __matmul__(self, other):
        return _Matrix(self.n, self.value * other.value * self.n)
    def sum(self):
        return _Scalar(self.value * self.n * self.n)
def ones(shape, dtype=None):
    return _Matrix(shape[0], 1.0)
""",
}


class Fakes:
    """A folder of stand-ins for what a GPU machine has.

    bin/nvidia-smi answers the queries gpu-validate makes; under `gpupool
    run` (GPUPOOL_MEMORY_LIMIT set) it reports the budget, the card's size
    (FAKE_SMI=ignore) or hangs (FAKE_SMI=hang).  FAKE_SMI=broken and
    FAKE_SMI=none play a machine without a working driver or without GPUs.
    build/gpupool does what DESIGN.md says `gpupool run` does, preloading an
    empty build/libgpupool.so; build-nopreload/gpupool forgets the preload.
    cuda/libcuda.so.1 is FAKE_LIBCUDA (have_cuda says whether it was built),
    py/ holds FAKE_PY and nvml/ what it publishes.
    """

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="gv-fakes.")
        self.bin = os.path.join(self.root, "bin")
        self.build = os.path.join(self.root, "build")
        self.build_nopreload = os.path.join(self.root, "build-nopreload")
        for d in (self.bin, self.build, self.build_nopreload):
            os.mkdir(d)
        self.pidfile = os.path.join(self.root, "smi.pid")
        self.lib = os.path.join(self.build, "libgpupool.so")
        cc = shutil.which("cc") or shutil.which("gcc")
        self.have_lib = bool(cc) and subprocess.call(
            [cc, "-shared", "-fPIC", "-x", "c", "-o", self.lib, os.devnull]) == 0
        shutil.copy(self.lib if self.have_lib else os.devnull,
                    os.path.join(self.build_nopreload, "libgpupool.so"))
        self.py = os.path.join(self.root, "py")
        self.nvml = os.path.join(self.root, "nvml")
        os.mkdir(self.nvml)
        for name, text in FAKE_PY.items():
            path = os.path.join(self.py, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text.lstrip())
        self.cuda = os.path.join(self.root, "cuda")
        os.mkdir(self.cuda)
        with open(os.path.join(self.cuda, "libcuda.c"), "w") as f:
            f.write(FAKE_LIBCUDA)
        self.have_cuda = self.have_lib and subprocess.call(
            [cc, "-std=c11", "-shared", "-fPIC", "-o", os.path.join(self.cuda, "libcuda.so.1"),
             os.path.join(self.cuda, "libcuda.c")]) == 0
        write_exe(os.path.join(self.bin, "nvidia-smi"), """
            #!/bin/bash
            case ${FAKE_SMI:-honest} in
              broken) echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."; exit 9 ;;
              none) echo "No devices were found"; exit 6 ;;
            esac
            case "$*" in
              *--query-gpu=index,uuid*) echo "0, %s, NVIDIA H100 80GB HBM3, 81559, 580.159.04" ;;
              *--query-gpu=memory.total,memory.used*)
                if [ -z "${GPUPOOL_MEMORY_LIMIT:-}" ]; then echo "81559, 3"; exit 0; fi
                case ${FAKE_SMI:-honest} in
                  hang) echo $$ >"%s"; exec sleep 1000 ;;
                  ignore) echo "81559, 3" ;;
                  *) echo "$((GPUPOOL_MEMORY_LIMIT >> 20)), 0" ;;
                esac ;;
              *--query-gpu=memory.used*) echo 3 ;;
              *--query-compute-apps*)
                for f in "%s"/*; do
                  [ -f "$f" ] && kill -0 "${f##*/}" 2>/dev/null &&
                    echo "${f##*/}, $(cat "$f"), %s"
                done ;;
              pmon*)
                if [ "$*" != "pmon -c $3 -s u -i %s" ]; then
                  echo "fake nvidia-smi: unexpected $*" >&2
                  exit 2
                fi
                echo "# gpu     pid  type   sm  mem  enc  dec  jpg  ofa  command"
                echo "# Idx       #   C/G    %%    %%    %%    %%    %%    %%  name"
                for ((i = 0; i < $3; i++)); do
                  live=()
                  for f in "%s"/sm/*; do
                    [ -f "$f" ] && kill -0 "${f##*/}" 2>/dev/null && live+=("$f")
                  done
                  [ ${#live[@]} -eq 0 ] && echo "    0       -     -    -    -    -  -"
                  for f in "${live[@]}"; do
                    sm=$(cat "$f")
                    [ -n "${FAKE_IGNORE_SHARES:-}" ] && sm=$((100 / ${#live[@]}))
                    printf "    0 %%7d     C %%4s   12    -    -    -    -  python3\\n" \\
                      "${f##*/}" "$sm"
                  done
                  sleep 0.1
                done ;;
              *) echo "fake nvidia-smi: unexpected $*" >&2; exit 2 ;;
            esac
            """ % (UUID, self.pidfile, self.nvml, UUID, UUID, self.nvml))
        run = """
            #!/bin/bash
            [ "$1" = run ] && [ "$2" = --memory ] && [ "$4" = -- ] || exit 2
            export GPUPOOL_MEMORY_LIMIT=$3
            %s
            shift 4
            exec "$@"
            """
        # No GPUPOOL_REGION: a fresh region is shared with nobody, and the
        # fake frameworks would pay file I/O per allocation to share it.
        write_exe(os.path.join(self.build, "gpupool"), run % ("export LD_PRELOAD=" + self.lib))
        write_exe(os.path.join(self.build_nopreload, "gpupool"), run % "")

    def cleanup(self):
        shutil.rmtree(self.root)


# ---------------------------------------------------------------- plumbing

FAKE_CHECK = """
import os, sys, time
sys.path.insert(0, %r)
import common

def env(args):
    return {k: os.environ.get(k) for k in
            ("GPUPOOL_MEMORY_LIMIT", "GPUPOOL_REGION", "CUDA_VISIBLE_DEVICES")}

def hang(args):
    with open(os.environ["FAKE_PIDFILE"], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(1000)

def fail(args):
    raise RuntimeError("boom\\nsecond line")

def held(args):
    common.hold(args, {"alloc": "ok"})
    return {"released": True}

PROBES = {"env": env, "hang": hang, "fail": fail, "held": held,
          "crash": lambda args: os.abort()}

if __name__ == "__main__":
    common.main("fake", lambda ctx, rep: None, PROBES)
""" % HERE


class PlumbingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fakes = Fakes()
        if not cls.fakes.have_lib:
            cls.fakes.cleanup()
            raise unittest.SkipTest("no C compiler to make a stand-in libgpupool.so")
        cls.script = os.path.join(cls.fakes.root, "fake_check.py")
        with open(cls.script, "w") as f:
            f.write(FAKE_CHECK)

    @classmethod
    def tearDownClass(cls):
        cls.fakes.cleanup()

    def ctx(self, build=None, timeout=20):
        work = tempfile.mkdtemp(dir=self.fakes.root)
        build = build or self.fakes.build
        return argparse.Namespace(
            workdir=work, gpupool=os.path.join(build, "gpupool"),
            lib=os.path.join(build, "libgpupool.so"), budget=BUDGET, gpu=UUID,
            timeout=timeout, script=self.script)

    def test_hooked_probe_sees_the_contract(self):
        obs = common.run_probe(self.ctx(), "t", "env", "hooked")
        self.assertNotIn("error", obs)
        self.assertTrue(obs["hooked"])
        self.assertEqual(obs["GPUPOOL_MEMORY_LIMIT"], str(BUDGET))
        self.assertEqual(obs["CUDA_VISIBLE_DEVICES"], UUID)

    def test_plain_probe_is_not_hooked_even_with_ld_preload_around(self):
        os.environ["LD_PRELOAD"] = self.fakes.lib
        try:
            obs = common.run_probe(self.ctx(), "t", "env", "plain")
        finally:
            del os.environ["LD_PRELOAD"]
        self.assertNotIn("error", obs)
        self.assertFalse(obs["hooked"])

    def test_region_mode(self):
        obs = common.run_probe(self.ctx(), "t", "env", "region", region="/r/x")
        self.assertTrue(obs["hooked"])
        self.assertEqual(obs["GPUPOOL_REGION"], "/r/x")

    def test_missing_preload_is_an_error(self):
        obs = common.run_probe(self.ctx(self.fakes.build_nopreload), "t", "env", "hooked")
        self.assertIn("not loaded", obs["error"])

    def test_crash(self):
        obs = common.run_probe(self.ctx(), "t", "crash", "plain")
        self.assertIn("died of signal 6", obs["error"])

    def test_exception(self):
        obs = common.run_probe(self.ctx(), "t", "fail", "plain")
        self.assertEqual(obs["error"], "RuntimeError: boom")
        self.assertIn("Traceback", obs["traceback"])

    def test_timeout_kills_the_whole_process_group(self):
        pidfile = os.path.join(self.fakes.root, "hang.pid")
        os.environ["FAKE_PIDFILE"] = pidfile
        try:
            # Through `gpupool run`, so the probe is a grandchild's exec.
            obs = common.run_probe(self.ctx(timeout=3), "t", "hang", "hooked")
        finally:
            del os.environ["FAKE_PIDFILE"]
        self.assertIn("timed out after 3 s", obs["error"])
        with open(pidfile) as f:
            self.assertFalse(alive(int(f.read())))

    def test_hold_and_release(self):
        probe = common.HeldProbe(self.ctx(), "t", "held", "hooked")
        ready = probe.wait_ready()
        self.assertEqual(ready["alloc"], "ok")
        self.assertTrue(ready["hooked"])
        self.assertTrue(probe.launch.alive())
        obs = probe.release()
        self.assertTrue(obs["released"])
        self.assertNotIn("error", obs)

    def test_unknown_probe_case_is_a_usage_error(self):
        p = subprocess.run([sys.executable, self.script, "probe", "nope", "--obs", "x",
                            "--budget", "1"], stderr=subprocess.PIPE,
                           universal_newlines=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown probe case", p.stderr)


# ---------------------------------------------------------------- the script

class ScriptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fakes = Fakes()

    @classmethod
    def tearDownClass(cls):
        cls.fakes.cleanup()

    def run_script(self, *args, path=None, **env):
        # TMPDIR: the scratch folders of failing runs are kept; keep them here.
        e = dict(os.environ, PATH=path or self.fakes.bin + os.pathsep + os.environ["PATH"],
                 TMPDIR=self.fakes.root)
        e.update(env)
        p = subprocess.run([SCRIPT, "--python", sys.executable] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=e, timeout=300)
        return p.returncode, p.stdout + p.stderr

    def out_files(self):
        d = tempfile.mkdtemp(dir=self.fakes.root)
        return os.path.join(d, "s.json"), os.path.join(d, "s.md")

    def test_help(self):
        rc, out = self.run_script("--help")
        self.assertEqual(rc, 0)
        self.assertIn("exit status: 0 nothing failed", out)

    def test_usage_errors(self):
        for args, words in ((["--memory", "4X"], "not a size"),
                            (["--memory", "50%"], "not a size"),
                            (["--frob"], "unknown argument"),
                            (["--timeout"], "needs a value"),
                            (["--timeout", "0"], "--timeout"),
                            (["--gpu", "x"], "not a GPU index"),
                            (["--only", "torch,nope"], "no check named 'nope'"),
                            (["--only", ","], "no check named ''"),
                            (["--python", "/nonexistent/python3"], "no '/nonexistent"),
                            (["--max-overhead", "0.9"], "at least 1"),
                            (["--share-seconds", "0"], "--share-seconds"),
                            (["--out", "/nonexistent/x.json"], "no folder"),
                            (["--markdown", "/"], "is a folder")):
            rc, out = self.run_script(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn(words, out, args)

    def test_no_nvidia_smi(self):
        dirs = [d for d in os.environ["PATH"].split(os.pathsep)
                if d and not os.path.exists(os.path.join(d, "nvidia-smi"))]
        if not all(shutil.which(t, path=os.pathsep.join(dirs)) for t in ("bash", "awk")):
            self.skipTest("nvidia-smi shares a folder with the shell here")
        rc, out = self.run_script(path=os.pathsep.join(dirs))
        self.assertEqual(rc, 3)
        self.assertIn("no GPU: nvidia-smi not found", out)

    def test_driver_broken_or_no_devices(self):
        rc, out = self.run_script(FAKE_SMI="broken")
        self.assertEqual(rc, 3)
        self.assertIn("couldn't communicate with the NVIDIA driver", out)
        rc, out = self.run_script(FAKE_SMI="none")
        self.assertEqual(rc, 3)
        self.assertIn("No devices were found", out)

    def test_gpu_and_budget_must_fit(self):
        rc, out = self.run_script("--gpu", "1")
        self.assertEqual(rc, 2)
        self.assertIn("no such GPU", out)
        rc, out = self.run_script("--memory", "80GiB")
        self.assertEqual(rc, 2)
        self.assertIn("too large", out)

    def test_dry_run(self):
        js, md = self.out_files()
        rc, out = self.run_script("--dry-run", "--build", self.fakes.root + "/nothing",
                                  "--out", js, "--markdown", md)
        self.assertEqual(rc, 0, out)
        self.assertIn("a real run would build them", out)
        with open(js) as f:
            summary = json.load(f)
        self.assertEqual(summary["environment"]["gpu_name"], "NVIDIA H100 80GB HBM3")
        self.assertEqual(summary["counts"]["FAIL"], 0)
        checks = {r["check"] for r in summary["results"]}
        self.assertEqual(checks, {"nvidia-smi", "driver-api", "torch", "shares", "cupy",
                                  "jax", "loader"})
        with open(md) as f:
            self.assertIn("| nvidia-smi/total | SKIP | dry run", f.read())

    def test_smi_check_passes(self):
        if not self.fakes.have_lib:
            self.skipTest("no C compiler to make a stand-in libgpupool.so")
        js, md = self.out_files()
        rc, out = self.run_script("--build", self.fakes.build, "--only", "nvidia-smi",
                                  "--out", js)
        self.assertEqual(rc, 0, out)
        with open(js) as f:
            (res,) = json.load(f)["results"]
        self.assertEqual((res["name"], res["status"]), ("nvidia-smi/total", "PASS"))
        self.assertIn("memory.total 4096 MiB", res["reason"])
        self.assertNotIn("probe logs", out)  # scratch removed when all passed

    def test_smi_check_fails_and_keeps_scratch(self):
        rc, out = self.run_script("--build", self.fakes.build, "--only", "nvidia-smi",
                                  FAKE_SMI="ignore")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL  nvidia-smi/total: memory.total 81559 MiB", out)
        self.assertIn("probe logs and observations are in", out)

    def test_probe_timeout(self):
        rc, out = self.run_script("--build", self.fakes.build, "--only", "nvidia-smi",
                                  "--timeout", "2", FAKE_SMI="hang")
        self.assertEqual(rc, 1, out)
        self.assertIn("timed out after 2 s", out)
        self.assertSmiDead()

    def test_check_timeout(self):
        rc, out = self.run_script("--build", self.fakes.build, "--only", "nvidia-smi",
                                  "--check-timeout", "2", FAKE_SMI="hang")
        self.assertEqual(rc, 1, out)
        self.assertIn("timed out after 2 s (its limit), in probe nvidia-smi", out)
        self.assertSmiDead()

    def assertSmiDead(self):
        # Killed with its process group, not left holding the GPU.
        with open(self.fakes.pidfile) as f:
            pid = int(f.read())
        os.unlink(self.fakes.pidfile)
        self.assertFalse(alive(pid))

    def test_driver_api_check(self):
        if not self.fakes.have_cuda or driver_check.find_compiler()[0] is None:
            self.skipTest("cannot build the probe or the stand-in libcuda here")
        js, _ = self.out_files()
        rc, out = self.run_script("--build", self.fakes.build, "--only", "driver-api",
                                  "--out", js, LD_LIBRARY_PATH=self.fakes.cuda)
        self.assertEqual(rc, 0, out)
        with open(js) as f:
            results = json.load(f)["results"]
        self.assertEqual([(r["name"], r["status"]) for r in results],
                         [(n, "PASS") for n in driver_check.NAMES])
        self.assertIn("CUDA_ERROR_OUT_OF_MEMORY (2)", results[-1]["reason"])
        rc, out = self.run_script("--build", self.fakes.build, "--only", "driver-api",
                                  "--out", js, LD_LIBRARY_PATH=self.fakes.cuda,
                                  FAKE_CUDA_IGNORE_LIMIT="1")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL  driver-api/total: free/total reports 80.00 GiB", out)
        self.assertIn("FAIL  driver-api/oom: taking 5.00 GiB past the budget succeeded", out)

    def run_frameworks(self, **env):
        js, _ = self.out_files()
        # The fakes are too quick for timings to mean anything: no limit.
        rc, out = self.run_script("--build", self.fakes.build, "--only", "torch,cupy,jax",
                                  "--max-overhead", "1000", "--out", js,
                                  PYTHONPATH=self.fakes.py, FAKE_NVML_DIR=self.fakes.nvml,
                                  **env)
        with open(js) as f:
            return rc, out, {r["name"]: r for r in json.load(f)["results"]}

    def test_framework_checks(self):
        if not self.fakes.have_lib:
            self.skipTest("no C compiler to make a stand-in libgpupool.so")
        rc, out, results = self.run_frameworks()
        self.assertEqual(rc, 0, out)
        names = ["torch/baseline"] + [n for label, _ in torch_check.ALLOCATORS
                                      for n in torch_check.budget_names(label)]
        names += list(torch_check.SHARED) + [n for n, _, _ in torch_check.OVERHEAD]
        names += ["cupy/baseline", "cupy/total", "cupy/alloc+free", "cupy/oom",
                  "cupy/overhead/malloc-free", "jax/baseline", "jax/compute",
                  "jax/preallocation"]
        self.assertEqual(sorted(results), sorted(names))
        self.assertEqual({r["status"] for r in results.values()}, {"PASS"}, out)
        self.assertIn("process took 3.25 GiB (NVML usage of pid",  # 3/4 of 4 GiB + context
                      results["jax/preallocation"]["reason"])
        self.assertIn("second's 2.00 GiB refused: torch.OutOfMemoryError",
                      results["torch/shared-region/second-refused"]["reason"])

    def test_framework_checks_catch_an_ignored_limit(self):
        if not self.fakes.have_lib:
            self.skipTest("no C compiler to make a stand-in libgpupool.so")
        rc, out, results = self.run_frameworks(FAKE_IGNORE_LIMIT="1")
        self.assertEqual(rc, 1, out)
        failed = {n for n, r in results.items() if r["status"] == "FAIL"}
        for label, _ in torch_check.ALLOCATORS:
            self.assertIn("torch/%s/total" % label, failed)
            self.assertIn("torch/%s/oom" % label, failed)
        self.assertLessEqual(set(torch_check.SHARED[:1]) | {"cupy/total", "cupy/oom",
                                                            "jax/preallocation"}, failed)
        self.assertIn("allocator limit 60.00 GiB", results["jax/preallocation"]["reason"])

    def run_shares(self, **env):
        js, _ = self.out_files()
        rc, out = self.run_script("--build", self.fakes.build, "--only", "shares",
                                  "--share-seconds", "1", "--out", js,
                                  PYTHONPATH=self.fakes.py, FAKE_NVML_DIR=self.fakes.nvml,
                                  **env)
        with open(js) as f:
            return rc, out, {r["name"]: r for r in json.load(f)["results"]}

    def test_shares_check(self):
        if not self.fakes.have_lib:
            self.skipTest("no C compiler to make a stand-in libgpupool.so")
        rc, out, results = self.run_shares()
        self.assertEqual(rc, 0, out)
        self.assertEqual(sorted(results), sorted(("shares/baseline",) + share_check.NAMES))
        self.assertEqual({r["status"] for r in results.values()}, {"PASS"}, out)
        self.assertIn("limit 30 elastic: 30.0 % (SM 30.0 % of the card), limit 70 "
                      "elastic: 70.0 % (SM 70.0 % of the card)",
                      results[share_check.PAIR_NAME]["reason"])
        self.assertIn("hard limit 30 alone: SM 30.0 %",
                      results[share_check.ALONE_NAME]["reason"])
        details = results[share_check.PAIR_NAME]["details"]
        self.assertEqual([l["limit"] for l in details["loops"]], list(share_check.PAIR))
        self.assertEqual([l["sm_samples"] for l in details["loops"]], [1, 1])
        self.assertGreater(details["loops"][0]["rate"], 0)
        prio = results[share_check.PRIORITY_NAME]["details"]
        self.assertEqual(prio["alone"]["n"], share_check.INFER_ITERATIONS)
        self.assertGreater(prio["neighbour"]["rate_before"], 0)

    def test_shares_check_catches_ignored_shares_and_priority(self):
        if not self.fakes.have_lib:
            self.skipTest("no C compiler to make a stand-in libgpupool.so")
        rc, out, results = self.run_shares(FAKE_IGNORE_SHARES="1", FAKE_IGNORE_PRIORITY="1")
        self.assertEqual(rc, 1, out)
        self.assertEqual({n: r["status"] for n, r in results.items()},
                         {"shares/baseline": "PASS", share_check.PAIR_NAME: "FAIL",
                          share_check.ALONE_NAME: "FAIL", share_check.PRIORITY_NAME: "FAIL"})
        self.assertIn("limit 30 elastic: 50.0 % (SM 50.0 % of the card)",
                      results[share_check.PAIR_NAME]["reason"])
        self.assertIn("SM 100.0 % of the card", results[share_check.ALONE_NAME]["reason"])

    def test_builds_when_missing(self):
        build = tempfile.mkdtemp(dir=self.fakes.root)
        fake_bin = tempfile.mkdtemp(dir=self.fakes.root)
        # A make that "builds" by copying the fakes, and records how it was called.
        write_exe(os.path.join(fake_bin, "make"), """
            #!/bin/bash
            echo "$*" >"%s/make.args"
            [ -n "${FAKE_MAKE_FAIL:-}" ] && { echo "cc: error: boom" >&2; exit 2; }
            cp %s/gpupool %s/libgpupool.so "%s"/
            """ % (build, self.fakes.build, self.fakes.build, build))
        path = os.pathsep.join([fake_bin, self.fakes.bin, os.environ["PATH"]])
        rc, out = self.run_script("--build", build, "--only", "nvidia-smi", path=path,
                                  FAKE_MAKE_FAIL="1")
        self.assertEqual(rc, 1, out)
        self.assertIn("make failed", out)
        self.assertIn("cc: error: boom", out)
        rc, out = self.run_script("--build", build, "--only", "nvidia-smi", path=path)
        self.assertEqual(rc, 0 if self.fakes.have_lib else 1, out)
        with open(os.path.join(build, "make.args")) as f:
            self.assertIn("B=%s all" % build, f.read())


if __name__ == "__main__":
    unittest.main()
