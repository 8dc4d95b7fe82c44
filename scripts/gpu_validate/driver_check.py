#!/usr/bin/env python3
"""The CUDA driver API under a gpupool budget (see common.py for the roles).

Builds driver_probe.c with nvcc, or with a C compiler and the toolkit's
cuda.h, and runs it without the library (the baseline) and under it:
cuMemGetInfo's total and cuDeviceTotalMem are the budget, cuMemAlloc past
it returns CUDA_ERROR_OUT_OF_MEMORY (2).  The probe is C, so this file has
no probe role of its own.
"""

import os
import shutil
import subprocess

import common

NAMES = ("driver-api/baseline", "driver-api/total", "driver-api/alloc+free",
         "driver-api/oom")
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "driver_probe.c")


def find_compiler():
    """(argv prefix, None) to compile and link against libcuda, or (None, why)."""
    cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    nvcc = shutil.which("nvcc") or os.path.join(cuda_home, "bin", "nvcc")
    if os.access(nvcc, os.X_OK):
        return [nvcc], None
    cc = shutil.which("cc") or shutil.which("gcc")
    header = os.path.join(cuda_home, "include", "cuda.h")
    if cc and os.path.exists(header):
        # Link against the toolkit's stub; at run time the loader finds the
        # driver's own libcuda.so.1 (the stub's soname is the same).
        return [cc, "-std=c11", "-I" + os.path.join(cuda_home, "include"),
                "-L" + os.path.join(cuda_home, "lib64", "stubs")], None
    return None, "no nvcc, and no C compiler with %s" % header


def build(ctx):
    """Path of the built probe.

    Raises LookupError when there is nothing to build with (a SKIP), and
    RuntimeError with the compiler's last words when the build fails.
    """
    prefix, why = find_compiler()
    if prefix is None:
        raise LookupError(why)
    exe = os.path.join(ctx.workdir, "driver_probe")
    argv = prefix + ["-O2", "-o", exe, SOURCE, "-lcuda"]
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=ctx.timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError("%s: %s" % (argv[0], e))
    if p.returncode != 0:
        last = p.stdout.strip().splitlines()[-1:] or ["exit %d" % p.returncode]
        raise RuntimeError("%s failed: %s" % (" ".join(argv), last[0]))
    return exe


def run_c_probe(ctx, exe, tag, mode):
    obs_path = os.path.join(ctx.workdir, tag + ".json")
    launch = common.Launch(ctx, tag, [exe, obs_path, str(ctx.budget)], mode)
    rc, err = launch.finish()
    return common.read_obs(launch, obs_path, rc, err, mode)


def check(ctx, rep):
    try:
        exe = build(ctx)
    except LookupError as e:
        rep.add("driver-api", "SKIP", str(e))
        return
    except RuntimeError as e:
        rep.add("driver-api/build", "FAIL", str(e))
        return
    if ctx.dry_run:
        lines = [common.shell_line(*common.command_for(
            ctx, [exe, "OBS", str(ctx.budget)], "hooked"))]
        print("      built %s" % exe, flush=True)
        common.dry_run(rep, NAMES, lines)
        return
    base = run_c_probe(ctx, exe, "baseline", "plain")
    if not common.judge_baseline(rep, "driver-api", base):
        return
    obs = run_c_probe(ctx, exe, "budget", "hooked")
    common.judge_budget(rep, "driver-api", obs, ctx.budget, base.get("total"))


if __name__ == "__main__":
    common.main("driver-api", check, {})
