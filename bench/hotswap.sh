#!/usr/bin/env bash
# hotswap.sh - the model hotswap benchmark (bench/hotswap.c): a day of 40
# models (1-140 GB) on a fixed pool of 80 GB engines, under static pinned
# replicas sized for each model's peak, LRU load-on-demand (ModelMesh's way)
# and gpupool's planner (src/swap/planner.h) with the forecast of
# src/scaler/forecast.h; then one engine lost and every minimum timed back.
# Prints the table and the targets, writes bench/results/hotswap.json and,
# when gnuplot is installed, two plots: docs/hotswap-engines.svg (every
# policy's SLO misses against the pool size, swept from 8 engines to
# static's peak-sized pool) and docs/hotswap-day.svg (lru's and ours's SLO
# misses and swaps hour by hour on the default pool).  Arguments are passed
# to the program after the defaults (see `build/bench/hotswap --help`;
# --no-sweep skips the sweep).
#
# Environment: GP_BUILD (default build), GP_BENCH_OUT (the JSON file),
# GP_HOTSWAP_TRACE (default ../shared/data/azure-llm-2023/
# AzureLLMInferenceTrace_conv.csv, for token counts; read in place, never
# copied), GP_PLOT_DIR (where the SVGs go; default docs).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
PROG=$B/bench/hotswap
OUT=${GP_BENCH_OUT:-bench/results/hotswap.json}
TRACE=${GP_HOTSWAP_TRACE:-../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv}
PLOTS=${GP_PLOT_DIR:-docs}

[ -x "$PROG" ] || { echo "hotswap: $PROG is not built (make $PROG)" >&2; exit 1; }
[ -r "$TRACE" ] || { echo "hotswap: trace $TRACE is not readable (set GP_HOTSWAP_TRACE)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
"$PROG" --trace "$TRACE" --json "$OUT" --sweep 8-peak --plot-dir "$data" "$@"
echo
echo "  written to $OUT"
if command -v gnuplot >/dev/null; then
  bench/lib/hotswap-plot.sh "$data" "$PLOTS"
else
  echo "  no plots: gnuplot is not installed (apt-get install gnuplot-nox)"
fi
