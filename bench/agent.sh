#!/usr/bin/env bash
# agent.sh - what `gpupool agent` costs on a full node (bench/agent.c):
# 8 simulated H100s, 128 tenants each registered on every card, a few CUDA
# processes on the simulator, the real agent with its default 1 s
# collection interval.  Measures /metrics scrape time (median, p99), the
# agent's RSS, its CPU with one scrape every 15 s and with none, and the
# cost of one collection, against the agent issue's targets (median scrape
# <= 20 ms, RSS <= 32 MiB, CPU < 0.5 % of one core at a 15 s scrape
# interval).  Prints a table and writes bench/results/agent.json.
# Arguments are passed to the program (`build/bench/agent --help`).
#
# Environment: GP_BUILD (default build), GP_BENCH_OUT (the JSON file),
# GP_AGENT_SCRAPES (default 200), GP_AGENT_CPU_WINDOW and
# GP_AGENT_IDLE_WINDOW (seconds, default 30 each; e.g. 5 for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
PROG=$B/bench/agent
OUT=${GP_BENCH_OUT:-bench/results/agent.json}

[ -x "$PROG" ] || { echo "agent: $PROG is not built (make $PROG)" >&2; exit 1; }
[ -x "$B/gpupool" ] || { echo "agent: $B/gpupool is not built (make)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
LD_LIBRARY_PATH="$PWD/$B/sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  "$PROG" --gpupool "$B/gpupool" --json "$OUT" \
  --scrapes "${GP_AGENT_SCRAPES:-200}" \
  --cpu-window "${GP_AGENT_CPU_WINDOW:-30}" --idle-window "${GP_AGENT_IDLE_WINDOW:-30}" "$@"
echo
echo "  written to $OUT"
