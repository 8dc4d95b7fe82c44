#!/usr/bin/env python3
"""CuPy under a gpupool budget (see common.py for the two roles).

cupy.cuda.runtime.memGetInfo() and the device properties report the budget
as the card's size; 3/4 of the budget can be taken through CuPy's memory
pool, given back with free_all_blocks() and taken again; 5/4 of it raises
cupy.cuda.memory.OutOfMemoryError.  Then the cost the library adds to
cudaMalloc/cudaFree, called directly so that no pool caches them.
"""

import common
from common import MiB

OVERHEAD = "cupy/overhead/malloc-free"


# ----------------------------------------------------------------- probes

def _take(cupy, n):
    a = cupy.empty(n, dtype=cupy.uint8)
    # Write it all, so that memory the driver never backed faults here.
    a.fill(1)
    cupy.cuda.Device().synchronize()
    return a


def _name(props):
    name = props.get("name", b"")
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)


def observe_env(args):
    import cupy
    rt = cupy.cuda.runtime
    return {"version": "cupy " + cupy.__version__,
            "device": _name(rt.getDeviceProperties(0)),
            "total": rt.memGetInfo()[1]}


def observe_budget(args):
    import cupy
    rt = cupy.cuda.runtime
    pool = cupy.get_default_memory_pool()
    within, over = args.budget * 3 // 4, args.budget * 5 // 4
    obs = {}
    free, total = rt.memGetInfo()
    obs.update(total=total, free_before=free,
               props_total=rt.getDeviceProperties(0)["totalGlobalMem"])
    held = common.attempt(obs, "within", lambda: _take(cupy, within))
    if held is not None:
        obs["free_during"] = rt.memGetInfo()[0]
        del held
        pool.free_all_blocks()
        obs["free_after"] = rt.memGetInfo()[0]
        # The array is dropped on return; free_all_blocks() hands it back.
        common.attempt(obs, "realloc", lambda: _take(cupy, within))
        pool.free_all_blocks()
    common.attempt(obs, "over", lambda: _take(cupy, over),
                   oom=cupy.cuda.memory.OutOfMemoryError)
    pool.free_all_blocks()
    common.attempt(obs, "after_oom", lambda: _take(cupy, MiB))
    return obs


def observe_bench_malloc(args):
    import cupy
    rt = cupy.cuda.runtime
    per = common.time_per_op(lambda: rt.free(rt.malloc(MiB)), rt.deviceSynchronize,
                             args.iterations, args.repeats)
    return {"per_op_s": per, "iterations": args.iterations}


PROBES = {
    "env": observe_env,
    "budget": observe_budget,
    "bench_malloc": observe_bench_malloc,
}


# ---------------------------------------------------------------- checker

def check(ctx, rep):
    missing = common.framework_missing("cupy")
    if missing:
        rep.add("cupy", "SKIP", missing)
        return
    if ctx.dry_run:
        names = ["cupy/baseline", "cupy/total", "cupy/alloc+free", "cupy/oom", OVERHEAD]
        lines = [common.shell_line(*common.command_for(
            ctx, common.python_probe_argv(ctx, "budget", "OBS"), "hooked"))]
        common.dry_run(rep, names, lines)
        return
    base = common.run_probe(ctx, "env", "env", "plain")
    if not common.judge_baseline(rep, "cupy", base):
        return
    obs = common.run_probe(ctx, "budget", "budget", "hooked")
    common.judge_budget(rep, "cupy", obs, ctx.budget, base.get("total"))
    common.measure_overhead(ctx, rep, OVERHEAD, "bench_malloc")


if __name__ == "__main__":
    common.main("cupy", check, PROBES)
