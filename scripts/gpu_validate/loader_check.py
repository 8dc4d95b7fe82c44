#!/usr/bin/env python3
"""gpupool engine's loader on the real GPU (see common.py for the roles).

bench/loader (bench/loader.c) times the loader moving a model's weights to
the GPU from the page cache (a safetensors file just written) and from the
pinned host cache, against cuMemcpyHtoD from pinned memory of the same size
on the same GPU.  Issue 13's target: each at least 80 % of that copy.  The
loader runs without the library: it is gpupool's own data plane, not a
tenant.  This file has no probe role.
"""

import json
import os
import subprocess

import common

TARGET = 0.8
RESULTS = (("loader/page-cache", "disk_ratio", "disk_gbps"),
           ("loader/host-cache", "cache_ratio", "cache_gbps"))


def judge(rep, doc, err=""):
    """Judge bench/loader's JSON document (or the error that stopped it)."""
    if err or not isinstance(doc, dict):
        for name, _, _ in RESULTS:
            rep.add(name, "FAIL", "bench/loader: %s" % (err or "no result"))
        return
    copy = doc.get("memcpy_htod_gbps")
    for name, ratio_key, gbps_key in RESULTS:
        ratio, gbps = doc.get(ratio_key), doc.get(gbps_key)
        if not isinstance(ratio, (int, float)) or not isinstance(copy, (int, float)):
            rep.add(name, "FAIL", "bench/loader gave no %s" % ratio_key)
            continue
        rep.add(name, "PASS" if ratio >= TARGET else "FAIL",
                "%.2f GB/s, %.0f %% of cuMemcpyHtoD's %.2f GB/s from pinned memory "
                "(target %.0f %%); %d MiB in %d MiB chunks on %d streams"
                % (gbps, 100 * ratio, copy, 100 * TARGET, doc.get("bytes", 0) >> 20,
                   doc.get("chunk_bytes", 0) >> 20, doc.get("streams", 0)),
                ratio=ratio, gbps=gbps, memcpy_gbps=copy)


def check(ctx, rep):
    prog = os.path.join(os.path.dirname(os.path.abspath(ctx.gpupool)), "bench", "loader")
    out = os.path.join(ctx.workdir, "loader.json")
    argv = [prog, "--lib", "libcuda.so.1", "--mib", "2048", "--runs", "3", "--json", out]
    if ctx.dry_run:
        common.dry_run(rep, [n for n, _, _ in RESULTS], [" ".join(argv)])
        return
    if not os.access(prog, os.X_OK):
        judge(rep, None, "%s is not built (make B=%s %s)"
              % (prog, os.path.dirname(os.path.dirname(prog)), prog))
        return
    env = common.scrubbed_env()
    if ctx.gpu:
        env["CUDA_VISIBLE_DEVICES"] = ctx.gpu
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=ctx.timeout)
    except subprocess.TimeoutExpired:
        judge(rep, None, "still running after %d s" % ctx.timeout)
        return
    if r.returncode != 0:
        judge(rep, None, "exit status %d: %s" % (r.returncode, (r.stderr.strip().splitlines()
                                                               or ["no output"])[-1][:300]))
        return
    with open(out) as f:
        judge(rep, json.load(f))


if __name__ == "__main__":
    common.main("loader", check, {})
