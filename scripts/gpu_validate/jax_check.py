#!/usr/bin/env python3
"""JAX under a gpupool budget (see common.py for the two roles).

JAX preallocates XLA_PYTHON_CLIENT_MEM_FRACTION (75 %) of what it believes
the card holds the moment it starts.  Under a budget it must believe the
budget: a small computation has to work, and the device memory the process
really took, read by this un-hooked process through nvidia-smi while the
probe holds its preallocation, has to stay within the budget plus an
allowance for the CUDA context and loaded kernels (which the driver charges
to the process but no allocation call asks for).
"""

import time

import common

NAMES = ("jax/compute", "jax/preallocation")

# A matrix of ones times itself, summed: every partial sum is a multiple of
# N, so float32 gets the exact N**3 whatever the summation order.
N = 2048
EXPECTED = float(N ** 3)

# JAX quietly falls back to the CPU when CUDA does not start; naming the
# platform turns that into an error the report shows.
JAX_ENV = {"JAX_PLATFORMS": "cuda"}


# ----------------------------------------------------------------- probes

def observe_env(args):
    import jax
    dev = jax.devices()[0]
    return {"version": "jax " + jax.__version__, "device": dev.device_kind}


def observe_prealloc(args):
    import jax
    import jax.numpy as jnp
    obs = {"version": "jax " + jax.__version__, "backend": jax.default_backend()}
    x = jnp.ones((N, N), dtype=jnp.float32)
    obs["result"] = float((x @ x).sum().block_until_ready())
    stats = jax.devices()[0].memory_stats() or {}
    obs["bytes_limit"] = stats.get("bytes_limit")
    obs["peak_bytes_in_use"] = stats.get("peak_bytes_in_use")
    common.hold(args, obs)
    return obs


PROBES = {"env": observe_env, "prealloc": observe_prealloc}


# ---------------------------------------------------------------- checker

def measure_usage(uuid, pid, baseline):
    """Device memory the probe process holds, read without the library.

    NVML's per-process figure when it lists the pid; if it does not (the
    probe in another PID namespace, or a driver that hides per-process
    usage), the growth of the card's memory.used since just before the
    probe started, which is as good while nothing else uses the card.
    Returns {'bytes', 'method'} or {'error'}.
    """
    try:
        # NVML may list a new context a moment after it appears.
        for _ in range(10):
            used = common.compute_apps(uuid).get(pid)
            if used is not None:
                return {"bytes": used, "method": "NVML usage of pid %d" % pid}
            time.sleep(0.2)
        now = common.gpu_memory_used(uuid)
    except RuntimeError as e:
        return {"error": str(e)}
    if baseline is None or now is None:
        return {"error": "pid %d not in NVML's process list and memory.used "
                         "unreadable" % pid}
    return {"bytes": now - baseline,
            "method": "growth of the card's memory.used (pid %d not in NVML's "
                      "process list)" % pid}


def judge(rep, budget, allowance, obs, usage):
    """Judge the final obs of the prealloc probe and the usage read meanwhile."""
    if "error" in obs:
        for n in NAMES:
            rep.add(n, "FAIL", "probe failed: " + obs["error"], obs=obs)
        return
    result, backend = obs.get("result"), obs.get("backend")
    if backend != "gpu":
        rep.add(NAMES[0], "FAIL", "JAX computed on %r, not the GPU" % backend, obs=obs)
    elif result is None or abs(result - EXPECTED) > EXPECTED * 1e-6:
        rep.add(NAMES[0], "FAIL", "%dx%d ones matmul summed to %r, expected %r"
                % (N, N, result, EXPECTED), obs=obs)
    else:
        rep.add(NAMES[0], "PASS", "%s: %dx%d matmul on the GPU gave the exact sum"
                % (obs.get("version"), N, N), obs=obs)

    limit = obs.get("bytes_limit")
    said = "; JAX's allocator limit %s" % common.fmt_bytes(limit) if limit else ""
    if "error" in usage:
        rep.add(NAMES[1], "FAIL", "could not read the process's usage: "
                + usage["error"], obs=obs)
    elif limit is not None and limit > budget:
        rep.add(NAMES[1], "FAIL", "JAX's allocator limit %s is above the %s budget"
                % (common.fmt_bytes(limit), common.fmt_bytes(budget)), obs=obs, usage=usage)
    else:
        took = usage["bytes"]
        ok = took <= budget + allowance
        rep.add(NAMES[1], "PASS" if ok else "FAIL",
                "process took %s (%s), %s budget %s + allowance %s%s"
                % (common.fmt_bytes(took), usage["method"], "within" if ok else "above",
                   common.fmt_bytes(budget), common.fmt_bytes(allowance), said),
                obs=obs, usage=usage)


def check(ctx, rep):
    missing = common.framework_missing("jax")
    if missing:
        rep.add("jax", "SKIP", missing)
        return
    if ctx.dry_run:
        lines = [common.shell_line(*common.command_for(
            ctx, common.python_probe_argv(ctx, "prealloc", "OBS"), "hooked"))]
        common.dry_run(rep, ("jax/baseline",) + NAMES, lines)
        return
    # The baseline need not grab 75 % of the real card.
    base = common.run_probe(ctx, "env", "env", "plain",
                            dict(JAX_ENV, XLA_PYTHON_CLIENT_PREALLOCATE="false"))
    if not common.judge_baseline(rep, "jax", base):
        return
    try:
        baseline = common.gpu_memory_used(ctx.gpu)
    except RuntimeError:
        baseline = None  # measure_usage says so if it comes to need it
    probe = common.HeldProbe(ctx, "prealloc", "prealloc", "hooked", JAX_ENV)
    ready = probe.wait_ready()
    usage = measure_usage(ctx.gpu, ready["pid"], baseline) if ready \
        else {"error": "the probe never got as far as holding its memory"}
    judge(rep, ctx.budget, ctx.context_allowance, probe.release(), usage)


if __name__ == "__main__":
    common.main("jax", check, PROBES)
