#!/usr/bin/env bash
# placement.sh - the placement policies on the Alibaba GPU-sharing trace of
# "Beware of Fragmentation" (ATC '23): the six pod lists of the paper's
# openb data set against its 1,213-node cluster, seven policies, 10 seeds.
#
# Prints a table per pod list and writes bench/results/placement.json.
# Environment: GP_BUILD (default build), GP_BENCH_SEEDS (default 10),
# GP_BENCH_DATA (default ../shared/data/alibaba-openb-2023),
# GP_BENCH_OUT (default bench/results/placement.json).
# The trace is read where it lies; it is never copied into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
DATA=${GP_BENCH_DATA:-../shared/data/alibaba-openb-2023}
SEEDS=${GP_BENCH_SEEDS:-10}
OUT=${GP_BENCH_OUT:-bench/results/placement.json}
LISTS="default gpushare40 gpushare80 gpushare100 multigpu50 gpuspec33"

[ -x "$B/bench/placement" ] || { echo "placement: $B/bench/placement is not built (make $B/bench/placement)" >&2; exit 1; }
[ -f "$DATA/openb_node_list_gpu_node.csv" ] || { echo "placement: no trace in $DATA" >&2; exit 1; }

args=(--nodes "$DATA/openb_node_list_gpu_node.csv" --seeds "$SEEDS" --json "$OUT")
for l in $LISTS; do
  args+=(--pods "$DATA/openb_pod_list_$l.csv")
done
mkdir -p "$(dirname "$OUT")"
start=$SECONDS
"$B/bench/placement" "${args[@]}"
echo
echo "  $((SECONDS - start)) s on $(nproc) CPUs; written to $OUT"
