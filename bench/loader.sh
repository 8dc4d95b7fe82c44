#!/usr/bin/env bash
# loader.sh - gpupool engine's loader against cuMemcpyHtoD from pinned memory
# (bench/loader.c), on the simulator; writes bench/results/loader.json.
# Arguments are passed to the program (`build/bench/loader --help`); on a
# real GPU scripts/gpu-validate runs it with --lib libcuda.so.1.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
PROG=$B/bench/loader
OUT=${GP_BENCH_OUT:-bench/results/loader.json}
[ -x "$PROG" ] || { echo "loader: $PROG is not built (make $PROG)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
GP_BUILD=$B "$PROG" --json "$OUT" "$@"
echo
echo "  written to $OUT"
