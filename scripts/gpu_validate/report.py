#!/usr/bin/env python3
"""Gather the results of a gpu-validate run into a summary.

scripts/gpu-validate runs each check file with a time limit and writes one
manifest line per check:

    NAME <TAB> EXIT STATUS <TAB> SECONDS <TAB> LIMIT <TAB> RESULTS <TAB> STDERR

RESULTS is the JSON-lines file the check appended its results to (see
common.Reporter).  A check that was killed by its limit or broke is turned
into a FAIL here, next to whatever results it recorded before.  Prints the
summary table; with --out writes it as JSON, with --markdown as a table
for docs/gpu-validation.md.  Exits 0 if nothing failed, 1 otherwise.
"""

import argparse
import json
import os
import sys

# GNU timeout's statuses: the limit passed, and it also took a SIGKILL.
TIMED_OUT = (124, 137)


def load_results(path):
    """Results recorded in path; a malformed line becomes a FAIL of its own."""
    results = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return results
    for i, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
            if rec.get("status") not in ("PASS", "FAIL", "SKIP"):
                raise ValueError("bad status")
        except ValueError:
            rec = {"name": "%s:%d" % (path, i), "status": "FAIL",
                   "reason": "unreadable result line %r" % line[:100], "details": {}}
        results.append(rec)
    return results


def last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def last_probe(check_dir):
    """Tag of the probe a check started last (each leaves TAG.err), or None."""
    try:
        errs = [e for e in os.scandir(check_dir) if e.name.endswith(".err")]
    except OSError:
        return None
    if not errs:
        return None
    return max(errs, key=lambda e: e.stat().st_mtime).name[:-len(".err")]


def gather(manifest):
    """All results of the run, with the checks' own failures added."""
    results = []
    with open(manifest) as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    for row in rows:
        if len(row) != 6:
            raise ValueError("bad manifest line %r" % "\t".join(row))
        name, rc, seconds, limit, res_path, err_path = row
        rc = int(rc)
        recs = load_results(res_path)
        for r in recs:
            r.setdefault("check", name)
        results += recs
        why = None
        if rc in TIMED_OUT:
            probe = last_probe(os.path.dirname(res_path))
            why = "timed out after %s s (its limit)%s; %d result(s) recorded before" % (
                limit, ", in probe " + probe if probe else "", len(recs))
        elif rc != 0:
            why = "check exited with status %d: %s" % (rc, last_line(err_path) or "no message")
        elif not recs:
            why = "check ran but recorded no result"
        if why:
            results.append({"check": name, "name": name, "status": "FAIL", "reason": why,
                            "details": {"stderr": err_path, "seconds": int(seconds)}})
    return results


def counts(results):
    c = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for r in results:
        c[r["status"]] += 1
    return c


def summary_line(c):
    return "%d passed, %d failed, %d skipped" % (c["PASS"], c["FAIL"], c["SKIP"])


def print_table(results, c):
    width = max([len(r["name"]) for r in results] + [5])
    print()
    print("%-4s  %-*s  %s" % ("", width, "check", "reason"))
    for r in results:
        print("%-4s  %-*s  %s" % (r["status"], width, r["name"], r["reason"]))
    print(summary_line(c))


def describe_run(env):
    """One sentence saying when, on what and with what the checks ran."""
    device = env.get("gpu_name") or "no GPU"
    if env.get("gpu_memory_mib"):
        device += " (%s MiB, driver %s)" % (env["gpu_memory_mib"],
                                           env.get("driver_version", "?"))
    budget = env.get("budget_bytes")
    budget = "%g GiB" % (int(budget) / (1 << 30)) if budget else "?"
    dry = ", dry run" if env.get("dry_run") == "1" else ""
    return "Run %s on %s, budget %s, gpupool %s, %s%s." % (
        env.get("date", "?"), device, budget, env.get("gpupool_commit", "?"),
        env.get("python", "python ?"), dry)


def markdown(results, c, env):
    def cell(s):
        return str(s).replace("|", "\\|")
    out = [describe_run(env), "", "| check | result | detail |", "| --- | --- | --- |"]
    out += ["| %s | %s | %s |" % (cell(r["name"]), r["status"], cell(r["reason"]))
            for r in results]
    out += ["", summary_line(c) + "."]
    return "\n".join(out) + "\n"


def parse_env(pairs):
    env = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError("--env wants KEY=VALUE, got %r" % p)
        env[key] = value
    return env


def main(argv):
    ap = argparse.ArgumentParser(description="Summarize a gpu-validate run.")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="a fact about the run, for the header (repeatable)")
    ap.add_argument("--out", help="write the JSON summary here")
    ap.add_argument("--markdown", help="write the markdown table here")
    args = ap.parse_args(argv)
    env = parse_env(args.env)
    results = gather(args.manifest)
    c = counts(results)
    print_table(results, c)
    status = 1 if c["FAIL"] else 0
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"environment": env, "counts": c, "exit_status": status,
                       "results": results}, f, indent=1, sort_keys=True)
            f.write("\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(results, c, env))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
