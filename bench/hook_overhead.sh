#!/usr/bin/env bash
# hook_overhead.sh - instructions libgpupool.so adds per cuLaunchKernel and
# per cuMemAlloc+cuMemFree pair, on the simulator, counted by callgrind.
#
# For each operation the loop runs N1 and N2 times, with and without the
# hook preloaded.  (count(N2) - count(N1)) / (N2 - N1) is the cost of one
# operation with every fixed cost (start-up, first use) cancelled out;
# hooked minus unhooked is what the hook adds.  Instruction counts, unlike
# times, do not depend on what else the machine is doing.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
PROG=$B/bench/hook_overhead
OUT=${GP_BENCH_OUT:-bench/results/hook_overhead.json}
N1=2000
N2=4000
work=$(mktemp -d "${TMPDIR:-/tmp}/gpupool-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

command -v valgrind >/dev/null || { echo "hook_overhead: valgrind is not installed" >&2; exit 1; }

. bench/lib/callgrind.sh

# count MODE N HOOKED -> instructions inside bench_MODE
count() {
  local pre=()
  [ "$3" = 1 ] && pre=(LD_PRELOAD="$PWD/$B/libgpupool.so" GPUPOOL_MEMORY_LIMIT=40GiB
                       GPUPOOL_REGION="$work/region.$1.$2")
  cg_count "$work/cg.$1.$2.$3" "bench_$1" "${pre[@]}" GPUPOOL_SIM_STATE="$work/state.$1.$2.$3" \
    LD_LIBRARY_PATH="$B/sim" -- "$PROG" "$1" "$2"
}

per_op() { # MODE HOOKED
  local a b
  a=$(count "$1" $N1 "$2")
  b=$(count "$1" $N2 "$2")
  echo $(( (b - a) / (N2 - N1) ))
}

# Both runs must be what they claim: the driver's entry points come from
# libgpupool.so when hooked and from the simulator when not.  (A hook
# linked into the program by mistake once made both runs hooked.)
which_lib() {
  local pre=()
  [ "$1" = 1 ] && pre=(env LD_PRELOAD="$PWD/$B/libgpupool.so" GPUPOOL_MEMORY_LIMIT=40GiB)
  "${pre[@]}" env LD_LIBRARY_PATH="$B/sim" "$PROG" which | sort -u
}
for h in 0 1; do
  got=$(which_lib $h)
  case "$h:$got" in
    1:*libgpupool.so) ;;
    0:*sim/libcuda.so.1) ;;
    *) echo "hook_overhead: the $([ $h = 1 ] && echo hooked || echo unhooked) run resolves the driver to: $got" >&2
       exit 1 ;;
  esac
done

declare -A target=([launch]=150 [alloc]=520)
declare -A label=([launch]="cuLaunchKernel" [alloc]="cuMemAlloc+cuMemFree pair")
rows=""
json_ops=""
printf '\nhook_overhead: instructions per operation on the simulator (callgrind)\n\n'
printf '  %-28s %10s %10s %8s %8s  %s\n' operation unhooked hooked added target met
for op in launch alloc; do
  u=$(per_op $op 0)
  h=$(per_op $op 1)
  d=$((h - u))
  met=yes; [ "$d" -le "${target[$op]}" ] || met=NO
  printf '  %-28s %10d %10d %8d %8d  %s\n' "${label[$op]}" "$u" "$h" "$d" "${target[$op]}" "$met"
  json_ops+="${json_ops:+,}
    \"$op\": {\"operation\": \"${label[$op]}\", \"unhooked\": $u, \"hooked\": $h, \"added\": $d, \"target\": ${target[$op]}, \"met\": $([ $met = yes ] && echo true || echo false)}"
done
mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<JSON
{
  "benchmark": "hook_overhead",
  "unit": "instructions per operation (callgrind, steady state)",
  "method": "(I(N2) - I(N1)) / (N2 - N1) inside the measured loop, N1=$N1, N2=$N2; hooked = LD_PRELOAD libgpupool.so with a 40 GiB budget and no compute limit",
  "date": "$(date -u +%Y-%m-%d)",
  "valgrind": "$(valgrind --version)",
  "operations": {$json_ops
  }
}
JSON
echo
echo "  written to $OUT"
