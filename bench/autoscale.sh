#!/usr/bin/env bash
# autoscale.sh - the autoscaling benchmark (bench/autoscale.c): a simulated
# RabbitMQ queue feeding GPU workers that warm up before serving, scaled by
# the Kubernetes HPA on static pools, KEDA's RabbitMQ scaler (QueueLength and
# MessageRate), a saturation threshold and gpupool's forecast
# (src/scaler/forecast.h), every knob swept; then the hybrid bursting runs.
#
# Workloads: the Azure LLM inference trace (one hour, replayed), the smooth
# viral surge, 7x within 10 minutes, a 7x step, a 10x flash crowd and the
# viral pattern; at SLOs of 10 and 30 s and warm-ups of 30, 60 and 120 s,
# synthetic ones over 3 seeds.  Prints the tables, writes
# bench/results/autoscale.json and, when gnuplot is installed, one trade-off
# plot per workload to docs/autoscale-<workload>.svg.  Arguments are passed
# to the program (see `build/bench/autoscale --help`).
#
# Environment: GP_BUILD (default build), GP_BENCH_OUT (the JSON file),
# GP_AUTOSCALE_TRACE (default ../shared/data/azure-llm-2023/
# AzureLLMInferenceTrace_conv.csv; read in place, never copied),
# GP_PLOT_DIR (where the SVGs go; default docs).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
PROG=$B/bench/autoscale
OUT=${GP_BENCH_OUT:-bench/results/autoscale.json}
TRACE=${GP_AUTOSCALE_TRACE:-../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv}
PLOTS=${GP_PLOT_DIR:-docs}

[ -x "$PROG" ] || { echo "autoscale: $PROG is not built (make $PROG)" >&2; exit 1; }
[ -r "$TRACE" ] || { echo "autoscale: trace $TRACE is not readable (set GP_AUTOSCALE_TRACE)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
"$PROG" --trace "$TRACE" --json "$OUT" --plot-dir "$data" "$@"
echo
echo "  written to $OUT"
if command -v gnuplot >/dev/null; then
  bench/lib/autoscale-plot.sh "$data" "$PLOTS"
else
  echo "  no plots: gnuplot is not installed (apt-get install gnuplot-nox)"
fi
