#!/usr/bin/env python3
"""PyTorch under a gpupool budget (see common.py for the two roles).

With each of PyTorch's three allocators: torch.cuda.mem_get_info() and the
device properties report the budget as the card's size; 3/4 of the budget
can be taken, is given back by del + empty_cache() and can be taken again;
5/4 of it raises torch.OutOfMemoryError and the process goes on working.
Then: two processes sharing one region share one budget, and the cost the
library adds to cudaMalloc/cudaFree and to kernel launches.
"""

import os

import common
from common import MiB

# (result label, PYTORCH_CUDA_ALLOC_CONF): the allocators PyTorch users run,
# each of which reaches the driver through different calls (cuMemAlloc,
# the VMM cuMemCreate/cuMemMap family, cuMemAllocAsync pools).
ALLOCATORS = (
    ("default", None),
    ("expandable_segments", "expandable_segments:True"),
    ("cudaMallocAsync", "backend:cudaMallocAsync"),
)

SHARED = ("torch/shared-region/second-refused",
          "torch/shared-region/returned-on-exit")
OVERHEAD = (
    # (result name, probe case, environment): with the caching allocator off,
    # every tensor is one cudaMalloc and one cudaFree.
    ("torch/overhead/malloc-free", "bench_malloc",
     {"PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}),
    ("torch/overhead/launch", "bench_launch", {}),
)


# ----------------------------------------------------------------- probes

def _oom_class(torch):
    # torch.OutOfMemoryError since 2.1; torch.cuda.OutOfMemoryError before.
    return getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError


def _take(torch, n):
    t = torch.empty(n, dtype=torch.uint8, device="cuda")
    # Write it all, so that memory the driver never backed faults here
    # instead of passing unnoticed.
    t.fill_(1)
    torch.cuda.synchronize()
    return t


def observe_env(args):
    import torch
    obs = {"version": "torch " + torch.__version__, "cuda": torch.version.cuda}
    if torch.version.cuda is None:
        obs["skip"] = "%s is a CPU-only build" % obs["version"]
        return obs
    obs["total"] = torch.cuda.mem_get_info()[1]
    obs["device"] = torch.cuda.get_device_name(0)
    return obs


def observe_budget(args):
    import torch
    within, over = args.budget * 3 // 4, args.budget * 5 // 4
    obs = {"allocator_backend": torch.cuda.get_allocator_backend(),
           "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF")}
    free, total = torch.cuda.mem_get_info()
    obs.update(total=total, free_before=free,
               props_total=torch.cuda.get_device_properties(0).total_memory)
    held = common.attempt(obs, "within", lambda: _take(torch, within))
    if held is not None:
        obs["free_during"] = torch.cuda.mem_get_info()[0]
        del held
        torch.cuda.empty_cache()
        obs["free_after"] = torch.cuda.mem_get_info()[0]
        # The tensor is dropped on return; empty_cache() hands it back.
        common.attempt(obs, "realloc", lambda: _take(torch, within))
        torch.cuda.empty_cache()
    common.attempt(obs, "over", lambda: _take(torch, over), oom=_oom_class(torch))
    torch.cuda.empty_cache()
    common.attempt(obs, "after_oom", lambda: _take(torch, MiB))
    return obs


def _share(budget):
    """What each process of the shared-region run takes: half the budget.

    Two halves plus two CUDA contexts (which the tenant is charged for) do
    not fit; one half plus one or two contexts does, so the second process
    is refused at its allocation, not at its context."""
    return budget // 2


def observe_hold(args):
    """Take half the budget and keep it until released (shared region)."""
    import torch
    obs = {}
    held = common.attempt(obs, "alloc", lambda: _take(torch, _share(args.budget)))
    common.hold(args, obs)
    del held
    return obs


def observe_alloc(args):
    """Try to take half the budget once (shared region)."""
    import torch
    obs = {}
    common.attempt(obs, "alloc", lambda: _take(torch, _share(args.budget)),
                   oom=_oom_class(torch))
    return obs


def observe_bench_malloc(args):
    import torch
    torch.cuda.init()
    # The tensor is dropped as soon as it is made: one allocation, one free.
    per = common.time_per_op(
        lambda: torch.empty(MiB, dtype=torch.uint8, device="cuda"),
        torch.cuda.synchronize, args.iterations, args.repeats)
    return {"per_op_s": per, "iterations": args.iterations}


def observe_bench_launch(args):
    import torch
    x = torch.zeros(1, device="cuda")
    per = common.time_per_op(lambda: x.add_(1), torch.cuda.synchronize,
                             args.iterations, args.repeats)
    return {"per_op_s": per, "iterations": args.iterations}


PROBES = {
    "env": observe_env,
    "budget": observe_budget,
    "hold": observe_hold,
    "alloc": observe_alloc,
    "bench_malloc": observe_bench_malloc,
    "bench_launch": observe_bench_launch,
}


# ---------------------------------------------------------------- checker

def budget_names(label):
    return ["torch/%s/%s" % (label, s) for s in ("total", "alloc+free", "oom")]


def allocator_not_applied(label, obs):
    """Why obs was not taken with the allocator asked for, or None.

    Only the async backend can be read back; without this a PyTorch that
    stopped reading PYTORCH_CUDA_ALLOC_CONF would test the default twice.
    """
    want = "cudaMallocAsync" if label == "cudaMallocAsync" else "native"
    got = obs.get("allocator_backend")
    if "error" in obs or got == want:
        return None
    return "PYTORCH_CUDA_ALLOC_CONF=%s gave allocator backend %r, not %r" % (
        obs.get("alloc_conf"), got, want)


def judge_shared(rep, budget, ready, second, first_end, third):
    """Judge the shared-region run.

    ready: what the first process said when it held its share (None if it
    never got there); second: the obs of a second process taking a share at
    that moment; first_end: the first process's final obs; third: a process
    taking a share after the first ended (None if not run).
    """
    share = common.fmt_bytes(_share(budget))
    if ready is None or not ready.get("hooked") or ready.get("alloc") != "ok":
        if ready is None:
            why = "first process never held its share: %s" % first_end.get("error", "?")
        elif not ready.get("hooked"):
            why = "%s is not loaded in the first process" % common.LIBRARY_NAME
        else:
            why = "first process could not take %s alone: %s" % (share, ready.get("alloc"))
        for n in SHARED:
            rep.add(n, "FAIL", why, first=first_end)
        return

    if "error" in second:
        rep.add(SHARED[0], "FAIL", "second process: " + second["error"], obs=second)
    elif second.get("alloc") == "ok":
        rep.add(SHARED[0], "FAIL", "second process took %s while the first held %s "
                "of the same %s budget" % (share, share, common.fmt_bytes(budget)),
                obs=second)
    elif not second.get("alloc_is_oom"):
        rep.add(SHARED[0], "FAIL", "second process failed, but not as out-of-memory: %s"
                % second.get("alloc"), obs=second)
    else:
        rep.add(SHARED[0], "PASS", "first holds %s of %s; second's %s refused: %s"
                % (share, common.fmt_bytes(budget), share, second["alloc"]), obs=second)

    if "error" in first_end:
        rep.add(SHARED[1], "FAIL", "first process did not end cleanly: "
                + first_end["error"], obs=first_end)
    elif third is None or "error" in third:
        rep.add(SHARED[1], "FAIL", "third process: %s"
                % (third or {}).get("error", "not run"), obs=third)
    elif third.get("alloc") != "ok":
        rep.add(SHARED[1], "FAIL", "after the first process exited, taking %s still "
                "failed (its share was not returned): %s" % (share, third.get("alloc")),
                obs=third)
    else:
        rep.add(SHARED[1], "PASS", "after the first process exited, a new one took %s"
                % share, obs=third)


def run_shared(ctx, rep):
    region = os.path.join(ctx.workdir, "shared.region")
    first = common.HeldProbe(ctx, "shared-first", "hold", "region", region=region)
    ready = first.wait_ready()
    second = third = None
    if ready is not None and ready.get("alloc") == "ok":
        second = common.run_probe(ctx, "shared-second", "alloc", "region", region=region)
    first_end = first.release()
    if second is not None and "error" not in first_end:
        third = common.run_probe(ctx, "shared-third", "alloc", "region", region=region)
    judge_shared(rep, ctx.budget, ready, second, first_end, third)


def check(ctx, rep):
    missing = common.framework_missing("torch")
    if missing:
        rep.add("torch", "SKIP", missing)
        return
    if ctx.dry_run:
        names = ["torch/baseline"] + [n for label, _ in ALLOCATORS
                                      for n in budget_names(label)]
        names += list(SHARED) + [name for name, _, _ in OVERHEAD]
        lines = [common.shell_line(*common.command_for(
            ctx, common.python_probe_argv(ctx, "budget", "OBS"), "hooked"))]
        common.dry_run(rep, names, lines)
        return
    base = common.run_probe(ctx, "env", "env", "plain")
    if not common.judge_baseline(rep, "torch", base):
        return
    for label, conf in ALLOCATORS:
        env = {"PYTORCH_CUDA_ALLOC_CONF": conf} if conf else {}
        obs = common.run_probe(ctx, "budget-" + label, "budget", "hooked", env)
        wrong = allocator_not_applied(label, obs)
        if wrong:
            obs["error"] = wrong
        common.judge_budget(rep, "torch/" + label, obs, ctx.budget, base.get("total"))
    run_shared(ctx, rep)
    for name, case, env in OVERHEAD:
        common.measure_overhead(ctx, rep, name, case, env)


if __name__ == "__main__":
    common.main("torch", check, PROBES)
