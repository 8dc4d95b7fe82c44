#!/usr/bin/env bash
# autoscale.sh - the autoscaling benchmark (bench/autoscale.c): a simulated
# RabbitMQ queue feeding GPU workers with a 60 s warm-up, scaled by the
# Kubernetes HPA on static peak provisioning, KEDA's queue-length scaler,
# a saturation threshold of 0.7 and gpupool's forecast (src/scaler/forecast.h).
#
# Workloads: the Azure LLM inference trace (one hour, replayed), a viral surge
# (tripling over 3 h, then to a 7x peak) and the same surge as a sudden step.
# Prints one table per workload and writes bench/results/autoscale.json.
# Arguments are passed to the program (see `build/bench/autoscale --help`),
# e.g. `bench/autoscale.sh --seed 2 --surge-spike 300`.
#
# Environment: GP_BUILD (default build), GP_BENCH_OUT (the JSON file),
# GP_AUTOSCALE_TRACE (default ../shared/data/azure-llm-2023/
# AzureLLMInferenceTrace_conv.csv; read in place, never copied).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
PROG=$B/bench/autoscale
OUT=${GP_BENCH_OUT:-bench/results/autoscale.json}
TRACE=${GP_AUTOSCALE_TRACE:-../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv}

[ -x "$PROG" ] || { echo "autoscale: $PROG is not built (make $PROG)" >&2; exit 1; }
[ -r "$TRACE" ] || { echo "autoscale: trace $TRACE is not readable (set GP_AUTOSCALE_TRACE)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
"$PROG" --trace "$TRACE" --json "$OUT" "$@"
echo
echo "  written to $OUT"
