#!/usr/bin/env bash
# bind.sh - `gpupool sched` as kube-scheduler drives it, against a stand-in
# API server whose Bindings take 100 ms: /filter latency while five binds
# wait on the API, and 50 pods arriving at once (bench/bind.py says how).
#
# Prints a table and writes bench/results/bind.json.  Environment:
# GP_BUILD (default build), GP_BENCH_BASELINE (another gpupool binary to
# measure side by side, e.g. one built from an older commit),
# GP_BENCH_OUT (default bench/results/bind.json).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
OUT=${GP_BENCH_OUT:-bench/results/bind.json}

[ -x "$B/gpupool" ] || { echo "bind: $B/gpupool is not built (make)" >&2; exit 1; }
args=(--gpupool "this=$B/gpupool")
if [ -n "${GP_BENCH_BASELINE:-}" ]; then
  args+=(--gpupool "baseline=$GP_BENCH_BASELINE")
fi
mkdir -p "$(dirname "$OUT")"
/usr/bin/python3 bench/bind.py "${args[@]}" --json "$OUT"
echo
echo "  on $(nproc) CPUs; written to $OUT"
