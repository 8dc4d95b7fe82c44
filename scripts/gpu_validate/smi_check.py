#!/usr/bin/env python3
"""nvidia-smi under a gpupool budget (see common.py for the two roles).

nvidia-smi reads memory through NVML, which the library interposes as well:
run under it, the GPU's memory.total must be the budget and memory.used no
more than that.  nvidia-smi is the probe, so this file has no probe role.
"""

import common
from common import MiB

NAME = "nvidia-smi/total"
QUERY = ["--query-gpu=memory.total,memory.used", "--format=csv,noheader,nounits"]


def judge(rep, budget, rc, err, stdout, physical_mib, log=""):
    """Judge one hooked run of nvidia-smi QUERY.

    rc and err are what Launch.finish() gave, log its output's tail.
    """
    phys = " (physical %s MiB)" % physical_mib if physical_mib else ""
    if err or rc != 0:
        last = log.strip().splitlines()[-1:] or ["no output"]
        rep.add(NAME, "FAIL", "nvidia-smi under the library: %s"
                % (err or "exit status %s: %s" % (rc, last[0][:200])), log=log)
        return
    try:
        total, used = common.parse_csv_mib(stdout.strip().splitlines()[0], 2)
    except (ValueError, IndexError):
        rep.add(NAME, "FAIL", "cannot read nvidia-smi's answer %r" % stdout.strip()[:200])
        return
    want = budget // MiB
    ok = total == want and used is not None and used <= total
    rep.add(NAME, "PASS" if ok else "FAIL",
            "memory.total %s MiB, memory.used %s MiB under the library; budget %d MiB%s"
            % (total, used, want, phys), total_mib=total, used_mib=used)


def check(ctx, rep):
    argv = ["nvidia-smi"] + QUERY + ["-i", ctx.gpu or "0"]
    if ctx.dry_run:
        common.dry_run(rep, [NAME], [common.shell_line(
            *common.command_for(ctx, argv, "hooked"))])
        return
    try:
        physical_mib = common.parse_csv_mib(
            common.smi(argv[1:]).strip().splitlines()[0], 2)[0]
    except (RuntimeError, ValueError, IndexError):
        physical_mib = None  # only decorates the reason
    launch = common.Launch(ctx, "nvidia-smi", argv, "hooked")
    rc, err = launch.finish()
    if launch.proc is None:
        judge(rep, ctx.budget, rc, err, "", physical_mib)
    else:
        judge(rep, ctx.budget, rc, err, launch.stdout(), physical_mib, launch.log_tail())


if __name__ == "__main__":
    common.main("nvidia-smi", check, {})
