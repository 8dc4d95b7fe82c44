#!/usr/bin/env bash
# hotswap.sh - the model hotswap benchmark (bench/hotswap.c): a day of 40
# models (1-140 GB) on a fixed pool of 80 GB engines, under static pinned
# replicas sized for each model's peak, LRU load-on-demand (ModelMesh's way)
# and gpupool's planner (src/swap/planner.h) with the forecast of
# src/scaler/forecast.h; then one engine lost and every minimum timed back.
# Prints the table and the targets, writes bench/results/hotswap.json.
# Arguments are passed to the program (see `build/bench/hotswap --help`).
#
# Environment: GP_BUILD (default build), GP_BENCH_OUT (the JSON file),
# GP_HOTSWAP_TRACE (default ../shared/data/azure-llm-2023/
# AzureLLMInferenceTrace_conv.csv, for token counts; read in place, never
# copied).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
PROG=$B/bench/hotswap
OUT=${GP_BENCH_OUT:-bench/results/hotswap.json}
TRACE=${GP_HOTSWAP_TRACE:-../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv}

[ -x "$PROG" ] || { echo "hotswap: $PROG is not built (make $PROG)" >&2; exit 1; }
[ -r "$TRACE" ] || { echo "hotswap: trace $TRACE is not readable (set GP_HOTSWAP_TRACE)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
"$PROG" --trace "$TRACE" --json "$OUT" "$@"
echo
echo "  written to $OUT"
