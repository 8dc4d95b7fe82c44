#!/usr/bin/env bash
# compute_share.sh - compute shares and priority colocation of
# libgpupool.so on one simulated GPU (bench/compute_share.c is the tenant).
#
# Shares: tenants that each keep the device fed (`compute_share loop`),
# each its own tenant (a region file of its own), all on one simulated
# machine (GPUPOOL_SIM_STATE) and one node file (GPUPOOL_NODE).  After a
# warm-up every tenant's device time is read with `gpupool-simctl busy`
# (the simulator's exact figure for the kernels each process has
# completed), and again after the window; achieved share = delta busy /
# window, with every tenant running throughout.  "charged" is what the
# library charged the tenant over the same window (compute_ns of its
# region): achieved below charged means the metering over-charges, charged
# below expected means the tenant was paced (or ran) short.  Each scenario
# runs with 50 us kernels, 20 ms kernels and graphs of 10 x 50 us.  Target:
# within 3 percentage points of the expected share (the limit; elastic
# tenants that all want the card: their limits scaled to fill it; alone and
# elastic: 100 %).  "alone, no hook" is the harness's own ceiling.
#
# Priority: a high-priority latency probe (`compute_share infer`, one
# 50 us kernel every 2 ms for 3 s, each waited for) alone, then next to a
# busy low-priority tenant (`compute_share lowprobe`, 20 ms or 50 us
# kernels) that samples its own device time every millisecond.  Targets:
# the probe's p99 within 10 % of alone, on the device latency (launch to
# the kernel's end on the simulator's timeline; the wall latency is shown
# too); the low tenant stops (time to yield: from the probe's first launch
# until its device time stops growing) and resumes (time to resume: from
# the moment the probe has been idle for the hold-off until its device
# time grows again) in under 100 ms each.
#
# Overhead: instructions per cuLaunchKernel with a limit set, counted by
# callgrind in bench/hook_overhead's `launch` loop (bench/lib/callgrind.sh),
# minus the same loop without the hook.  Target <= 300, judged on the
# launch path without the pacing waits (pace_wait, entered only when a
# launch must wait for its share: under valgrind the host runs ~30 times
# slower while the simulated kernels do not, so the meter, which charges
# an idle device's kernels up to their host-side launch latency, sees
# them longer than they are and a quarter of the launches wait); the
# count with the waits is shown beside it.
#
# Prints a table and writes bench/results/compute_share.json; about three
# minutes.  docs/compute_share.md explains the method and the results.
# Environment: GP_BUILD (default build), GP_BENCH_OUT (the JSON file),
# GP_SHARE_WARMUP (s, default 0.5), GP_SHARE_WINDOW (s, default 3),
# GP_SHARE_KINDS (default "small large graph"), GP_SHARE_PARTS (default
# "shares priority overhead"), GP_SHARE_RT=0 (the probe without
# SCHED_FIFO), GP_SHARE_NICE=0 (tenants without nice -10), GP_SHARE_KEEP=1
# (keep the runs' files and say where).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GP_BUILD:-build}
PROG=$B/bench/compute_share
HO_PROG=$B/bench/hook_overhead
SIMCTL=$B/sim/gpupool-simctl
HOOK=$PWD/$B/libgpupool.so
OUT=${GP_BENCH_OUT:-bench/results/compute_share.json}
WARM=${GP_SHARE_WARMUP:-0.5}
WINDOW=${GP_SHARE_WINDOW:-3}
KINDS=${GP_SHARE_KINDS:-small large graph}
PARTS=${GP_SHARE_PARTS:-shares priority overhead}
SHARE_TOL=3          # percentage points
PROBE_US=50          # the high tenant's kernel
PERIOD_MS=2          # ... one every PERIOD_MS
PROBE_S=3            # ... for PROBE_S seconds
IDLE_S=1             # ... then idle (alive) this long
HOLDOFF_MS=250       # GPUPOOL_PRIORITY_HOLDOFF
P99_TOL=10           # percent over alone
PRIO_REPEAT=${GP_SHARE_PRIO_REPEAT:-3} # runs of each priority scenario
YIELD_MAX_MS=100
RESUME_MAX_MS=100
OVH_MAX=300          # instructions per launch
N1=2000
N2=4000

# kind -> the kernel's microseconds, and what follows `loop US SECONDS`
declare -A KUS=([small]=50 [large]=20000 [graph]=50)
declare -A KGRAPH=([small]="" [large]="" [graph]="graph 10")
declare -A KLABEL=([small]="50us" [large]="20ms" [graph]="graph 10x50us")

for f in "$PROG" "$HO_PROG" "$SIMCTL" "$B/libgpupool.so" "$B/sim/libcuda.so.1"; do
  [ -e "$f" ] || { echo "compute_share: $f is not built (make B=$B all $PROG $HO_PROG)" >&2; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/gpupool-share.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${GP_SHARE_KEEP:-}" ]; then echo "  runs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

now_us() { echo "${EPOCHREALTIME/./}"; }

# The latency probe runs SCHED_FIFO where that is allowed: on a small
# machine busy with other work, how soon a sleeping probe gets a CPU back
# otherwise swamps the tens of microseconds its kernel takes on the GPU,
# and what is measured here is the GPU (GP_SHARE_RT=0: no).
RT=()
[ "${GP_SHARE_RT:-1}" != 0 ] && chrt -f 10 true 2>/dev/null && RT=(chrt -f 10)
# The other tenants run at nice -10 where allowed, for the same reason: a
# tenant's queue may run only a couple of milliseconds ahead (that is what
# keeps neighbours' latency low), so a tenant the kernel does not run for
# longer than that loses device time that is the host's doing, not the
# share's.  -10 outweighs ordinary work (a build) without starving it.
NICE=()
[ "${GP_SHARE_NICE:-1}" != 0 ] && [ "$(nice -n -10 nice 2>/dev/null)" = -10 ] && NICE=(nice -n -10)

# start_tenant RUNDIR NAME [NAME=VALUE...] -- ARGS...: PROG ARGS in the
# background on RUNDIR's machine, with those variables; its pid is appended
# to PIDS (the subshell execs the program, so $! is the tenant itself).
# PREFIX (an array, normally empty) goes before the program.
PREFIX=()
start_tenant() {
  local dir=$1 name=$2 vars=()
  shift 2
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  ( export LD_LIBRARY_PATH="$B/sim" GPUPOOL_SIM_STATE="$dir/state" ${vars[@]+"${vars[@]}"}
    exec ${PREFIX[@]+"${PREFIX[@]}"} "$PROG" "$@" ) >"$dir/$name.out" 2>"$dir/$name.err" &
  PIDS+=($!)
  echo $! >"$dir/$name.pid"
}

# wait_tenant RUNDIR NAME: wait for it; fail loudly if it failed.
wait_tenant() {
  local pid rc=0
  pid=$(cat "$1/$2.pid")
  wait "$pid" || rc=$?
  if [ $rc -ne 0 ]; then
    echo "compute_share: tenant $2 of $1 exited with $rc:" >&2
    cat "$1/$2.err" >&2
    exit 1
  fi
}

# busy_read RUNDIR FILE: `gpupool-simctl busy` of the machine into FILE,
# first line the time of the reading (us): when the call returned.  The
# program reads the clock at the end of its few milliseconds (after
# starting up and opening the machine), so the time it returns is the
# closer bound, and its offset, nearly the same for both readings, cancels
# out of a window.
busy_read() {
  local out b
  out=$(GPUPOOL_SIM_STATE="$1/state" LD_LIBRARY_PATH="$B/sim" "$SIMCTL" busy)
  b=$(now_us)
  { echo "$b"; echo "$out"; } >"$2"
}

# charge_read RUNDIR N FILE: the device time the library has charged each
# of the N tenants (compute_ns of its region), one line `TIME_US NS` each,
# TIME_US when that region had been read.
charge_read() {
  local i v
  for ((i = 0; i < $2; i++)); do
    v=$(LD_LIBRARY_PATH="$B/sim" "$PROG" region "$1/region.t$i" | sed -n 's/^compute_ns=//p')
    [ -n "$v" ] || { echo "compute_share: cannot read $1/region.t$i" >&2; exit 1; }
    echo "$(now_us) $v"
  done >"$3"
}

# busy_of FILE PID: that process's busy_ns in a reading (empty if absent).
busy_of() { sed -n "s/^pid=$2 gpu=0 busy_ns=\([0-9]*\)$/\1/p" "$1"; }

kv() { sed -n "s/^$2=//p" "$1"; } # kv FILE KEY

share_rows=()   # scenario|kernels|policy|tenant|limit|expected|achieved|error|met
prio_rows=()    # scenario|neighbour|count|p50|p99|max|p99_pct|yield|resume|low_share|met
ovh_rows=()     # config|unhooked|hooked|added|limit_cost|added_with_waits|met
OVH_SKIP=
n_run=0

# share_run SCENARIO KIND POLICY LIMIT...: one tenant per LIMIT, POLICY
# hard|elastic, or `none` (no hook, the harness's own ceiling).
share_run() {
  local scen=$1 kind=$2 policy=$3
  shift 3
  local limits=("$@") dir secs sum=0 i pid b0 b1 t0 t1 exp ach err met args chg
  n_run=$((n_run + 1))
  dir=$work/share.$n_run
  mkdir -p "$dir"
  secs=$(awk -v w="$WARM" -v n="$WINDOW" 'BEGIN { print w + n + 0.4 }')
  for l in "${limits[@]}"; do sum=$((sum + l)); done
  read -ra args <<<"loop ${KUS[$kind]} $secs ${KGRAPH[$kind]}"
  PREFIX=(${NICE[@]+"${NICE[@]}"})
  for i in "${!limits[@]}"; do
    if [ "$policy" = none ]; then
      start_tenant "$dir" "t$i" -- "${args[@]}"
    else
      start_tenant "$dir" "t$i" LD_PRELOAD="$HOOK" GPUPOOL_CORE_LIMIT="${limits[$i]}" \
        GPUPOOL_CORE_POLICY="$policy" GPUPOOL_NODE="$dir/node" \
        GPUPOOL_REGION="$dir/region.t$i" -- "${args[@]}"
    fi
  done
  PREFIX=()
  sleep "$WARM"
  busy_read "$dir" "$dir/b0"
  if [ "$policy" != none ]; then charge_read "$dir" ${#limits[@]} "$dir/c0"; fi
  sleep "$WINDOW"
  busy_read "$dir" "$dir/b1"
  if [ "$policy" != none ]; then charge_read "$dir" ${#limits[@]} "$dir/c1"; fi
  for i in "${!limits[@]}"; do wait_tenant "$dir" "t$i"; done
  t0=$(head -1 "$dir/b0")
  t1=$(head -1 "$dir/b1")
  for i in "${!limits[@]}"; do
    pid=$(cat "$dir/t$i.pid")
    b0=$(busy_of "$dir/b0" "$pid")
    b1=$(busy_of "$dir/b1" "$pid")
    if [ -z "$b0" ] || [ -z "$b1" ]; then
      echo "compute_share: $scen ${KLABEL[$kind]}: tenant $i (pid $pid) was not running throughout the window" >&2
      exit 1
    fi
    case $policy in
      none) exp=100 ;;
      hard) exp=${limits[$i]} ;;
      elastic) exp=$(awk -v l="${limits[$i]}" -v s="$sum" 'BEGIN { printf "%.1f", (s > 0 ? 100 * l / s : 0) }') ;;
    esac
    read -r ach err met < <(awk -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" -v e="$exp" -v tol="$SHARE_TOL" \
      'BEGIN { a = (b1 - b0) / ((t1 - t0) * 1000) * 100; d = a - e
               printf "%.1f %+.1f %s\n", a, d, (d <= tol && d >= -tol) ? "yes" : "NO" }')
    chg=-
    if [ "$policy" != none ]; then
      chg=$(paste -d' ' <(sed -n "$((i + 1))p" "$dir/c0") <(sed -n "$((i + 1))p" "$dir/c1") |
        awk '{ printf "%.1f", ($4 - $2) / (($3 - $1) * 1000) * 100 }')
    fi
    share_rows+=("$scen|${KLABEL[$kind]}|$policy|$((i + 1))|${limits[$i]}|$exp|$ach|$err|$chg|$met")
    printf '  %-22s %-14s %-8s %2d %6s %8s %8s %7s %8s  %s\n' "$scen" "${KLABEL[$kind]}" "$policy" \
      $((i + 1)) "${limits[$i]}" "$exp" "$ach" "$err" "$chg" "$met"
  done
}

# prio_once SCENARIO KIND|none DIR: the high-priority probe alone (none),
# or next to a low-priority lowprobe of KIND, once; writes DIR/result:
# probes, wall p50 and p99, device p50 and p99, first probe (us), yield,
# resume (ms or "never") and the low tenant's share while held (% or -).
prio_once() {
  local scen=$1 kind=$2 dir=$3 secs pre=() y=- r=- ls=- first last
  mkdir -p "$dir"
  [ "$scen" != "alone, no hook" ] && pre=(LD_PRELOAD="$HOOK" GPUPOOL_NODE="$dir/node"
    GPUPOOL_PRIORITY_HOLDOFF="${HOLDOFF_MS}ms")
  if [ "$kind" != none ]; then
    secs=$(awk -v w="$WARM" -v p="$PROBE_S" -v i="$IDLE_S" 'BEGIN { print w + p + i + 1 }')
    PREFIX=(${NICE[@]+"${NICE[@]}"})
    start_tenant "$dir" low "${pre[@]}" GPUPOOL_PRIORITY=low -- lowprobe "${KUS[$kind]}" "$secs"
    PREFIX=()
    sleep "$WARM"
  fi
  PREFIX=(${RT[@]+"${RT[@]}"})
  start_tenant "$dir" high ${pre[@]+"${pre[@]}"} GPUPOOL_PRIORITY=high \
    -- infer "$PROBE_US" "$PERIOD_MS" "$PROBE_S" "$IDLE_S"
  PREFIX=()
  wait_tenant "$dir" high
  [ "$kind" != none ] && wait_tenant "$dir" low
  first=$(kv "$dir/high.out" first_launch_ns)
  last=$(kv "$dir/high.out" last_done_ns)
  if [ "$kind" != none ]; then
    # From the low tenant's series (t, busy), f = the probe's first launch,
    # l = its last completion:
    #   yield = the last growth up to l, minus f (negative: it had stopped
    #           before the probe's first launch);
    #   resume = the first growth after l, minus l + the hold-off;
    #   held = the low tenant's share of the card from max(f, its stop)
    #          to l.
    # A growth seen at a sample happened within the millisecond before it:
    # yield and resume are upper bounds by at most the sampling period.
    read -r y r ls < <(awk -v f="$first" -v l="$last" -v h="$HOLDOFF_MS" '
      $1 == "sample" { n++; t[n] = $2; b[n] = $3 }
      END {
        yt = f
        for (i = 2; i <= n && t[i] <= l; i++) if (b[i] > b[i-1]) yt = t[i]
        rt = -1
        for (i = 2; i <= n; i++) if (t[i] > l && b[i] > b[i-1]) { rt = t[i]; break }
        from = yt > f ? yt : f
        for (i = 1; i <= n; i++) {
          if (t[i] <= from) { ta = t[i]; ba = b[i] }
          if (t[i] <= l) { tb = t[i]; bb = b[i] }
        }
        sh = (tb > ta) ? 100 * (bb - ba) / (tb - ta) : 0
        printf "%.1f %s %.2f\n", (yt - f) / 1e6, rt < 0 ? "never" : sprintf("%.1f", (rt - l) / 1e6 - h), sh
      }' "$dir/low.out")
  fi
  echo "$(kv "$dir/high.out" count) $(kv "$dir/high.out" p50_us) $(kv "$dir/high.out" p99_us)" \
    "$(kv "$dir/high.out" dev_p50_us) $(kv "$dir/high.out" dev_p99_us)" \
    "$(kv "$dir/high.out" first_us) $y $r $ls" >"$dir/result"
}

# prio_run SCENARIO KIND|none: prio_once PRIO_REPEAT times.  Latencies are
# the median over the runs (a p99 of 1,500 probes is 15 probes: one burst
# of host noise in one run moves it), the time to yield and to resume and
# the share while held the worst; the device p99 of every run is kept.
prio_run() {
  local scen=$1 kind=$2 k res cnt p50 p99 d50 d99 f1 y r ls pct met runs
  for ((k = 1; k <= PRIO_REPEAT; k++)); do
    n_run=$((n_run + 1))
    prio_once "$scen" "$kind" "$work/prio.$n_run"
    res+="$(cat "$work/prio.$n_run/result")"$'\n'
  done
  read -r cnt p50 p99 d50 d99 f1 y r ls runs < <(printf '%s' "$res" | awk '
    function med(c,   i, j, v, m) {
      m = 0
      for (i = 1; i <= n; i++) v[++m] = x[i, c] + 0
      for (i = 2; i <= m; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
      return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
    }
    function worst(c,   i, w) {
      w = ""
      for (i = 1; i <= n; i++) {
        if (x[i, c] == "-") return "-"
        if (x[i, c] == "never") return "never"
        if (w == "" || x[i, c] + 0 > w + 0) w = x[i, c]
      }
      return w
    }
    { n++; for (c = 1; c <= NF; c++) x[n, c] = $c }
    END {
      runs = ""
      for (i = 1; i <= n; i++) runs = runs (i > 1 ? "," : "") x[i, 5]
      printf "%d %.1f %.1f %.1f %.1f %.1f %s %s %s %s\n", med(1), med(2), med(3), med(4), med(5), med(6),
        worst(7), worst(8), worst(9), runs
    }')
  if [ "$kind" = none ]; then
    pct=-; met=ref
    [ "$scen" = alone ] && D99_ALONE=$d99
  else
    pct=$(awk -v a="$D99_ALONE" -v b="$d99" 'BEGIN { printf "%+.1f", 100 * (b - a) / a }')
    met=$(awk -v p="$pct" -v y="$y" -v r="$r" -v pt="$P99_TOL" -v ym="$YIELD_MAX_MS" -v rm="$RESUME_MAX_MS" \
      'BEGIN { print ((p <= pt && y < ym && r != "never" && r < rm) ? "yes" : "NO") }')
  fi
  prio_rows+=("$scen|${KLABEL[$kind]:-}|$cnt|$p50|$p99|$d50|$d99|$pct|$f1|$y|$r|$ls|$runs|$met")
  printf '  %-22s %6s %7s %7s %7s %7s %7s %8s %7s %7s %6s  %s\n' "$scen" "$cnt" "$p50" "$p99" "$d50" "$d99" "$pct" "$f1" "$y" "$r" "$ls" "$met"
}

. bench/lib/callgrind.sh

# ovh_count N NAME=VALUE... -> instructions in hook_overhead's launch loop,
# on a machine, region and node file of its own (GPUPOOL_NODE= names it).
ovh_count() {
  local n=$1 d vars=()
  shift
  d=$(mktemp -d "$work/cg.XXXXXX")
  for v in "$@"; do
    [ "$v" = GPUPOOL_NODE= ] && v=GPUPOOL_NODE=$d/node
    vars+=("$v")
  done
  cg_count "$d/cg" "bench_launch$OVH_SKIP" ${vars[@]+"${vars[@]}"} GPUPOOL_REGION="$d/region" \
    GPUPOOL_SIM_STATE="$d/state" LD_LIBRARY_PATH="$B/sim" -- "$HO_PROG" launch "$n"
}
ovh_per_op() { # NAME=VALUE...
  local a b
  a=$(ovh_count $N1 "$@")
  b=$(ovh_count $N2 "$@")
  echo $(((b - a) / (N2 - N1)))
}

if [[ " $PARTS " == *" shares "* ]]; then
  printf '\ncompute_share: configured vs achieved share of device time (gpupool-simctl busy, %s s windows after %s s warm-up)\n\n' "$WINDOW" "$WARM"
  printf '  %-22s %-14s %-8s %2s %6s %8s %8s %7s %8s  %s\n' scenario kernels policy "#" limit expected achieved "err pp" charged met
  for k in $KINDS; do
    share_run "alone, no hook"    "$k" none 100
    share_run "pair 10/90"        "$k" elastic 10 90
    share_run "pair 30/70"        "$k" elastic 30 70
    share_run "pair 50/50"        "$k" elastic 50 50
    share_run "pair 30/70 hard"   "$k" hard 30 70
    share_run "three 20/30/50"    "$k" elastic 20 30 50
    share_run "alone 30 hard"     "$k" hard 30
    share_run "alone 50 hard"     "$k" hard 50
    share_run "alone 30 elastic"  "$k" elastic 30
  done
fi

if [[ " $PARTS " == *" priority "* ]]; then
  printf '\ncompute_share: high-priority probe (%s us kernel every %s ms for %s s) next to a busy low-priority tenant (hold-off %s ms);\n' \
    "$PROBE_US" "$PERIOD_MS" "$PROBE_S" "$HOLDOFF_MS"
  printf 'median of %s runs (yield, resume, held: the worst)\n\n' "$PRIO_REPEAT"
  printf '  %-22s %6s %15s %23s %8s %7s %7s %6s\n' "" "" "wall latency" "device latency" first "" "" "low %"
  printf '  %-22s %6s %7s %7s %7s %7s %7s %8s %7s %7s %6s  %s\n' scenario probes "p50 us" "p99 us" "p50 us" "p99 us" "p99 vs" "probe" "yield" "resume" held met
  printf '  %-22s %6s %7s %7s %7s %7s %7s %8s %7s %7s %6s\n' "" "" "" "" "" "" "alone%" us ms ms ""
  prio_run "alone, no hook" none
  prio_run "alone" none
  prio_run "low neighbour, 20ms" large
  prio_run "low neighbour, 50us" small
fi

if [[ " $PARTS " == *" overhead "* ]]; then
  command -v valgrind >/dev/null || { echo "compute_share: valgrind is not installed" >&2; exit 1; }
  printf '\ncompute_share: instructions per cuLaunchKernel (callgrind, hook_overhead launch loop)\n\n'
  printf '  %-34s %10s %10s %8s %10s %11s %8s  %s\n' configuration unhooked hooked added "of limit" "with waits" target met
  OVH_SKIP=,pace_wait
  u=$(ovh_per_op)
  h0=$(ovh_per_op LD_PRELOAD="$HOOK")
  declare -A ovh_env=(
    ["no limit"]=""
    ["50% hard"]="GPUPOOL_CORE_LIMIT=50 GPUPOOL_CORE_POLICY=hard"
    ["50% elastic, node file"]="GPUPOOL_CORE_LIMIT=50 GPUPOOL_CORE_POLICY=elastic GPUPOOL_NODE="
    ["priority high, node file"]="GPUPOOL_PRIORITY=high GPUPOOL_NODE="
  )
  for c in "no limit" "50% hard" "50% elastic, node file" "priority high, node file"; do
    if [ "$c" = "no limit" ]; then h=$h0; hw=$h0; else
      # shellcheck disable=SC2086 # the variables are words
      h=$(ovh_per_op LD_PRELOAD="$HOOK" ${ovh_env[$c]})
      # shellcheck disable=SC2086
      hw=$(OVH_SKIP= ovh_per_op LD_PRELOAD="$HOOK" ${ovh_env[$c]})
    fi
    d=$((h - u)); lc=$((h - h0)); dw=$((hw - u))
    met=yes; [ "$d" -le $OVH_MAX ] || met=NO
    [ "$c" = "no limit" ] && met=ref
    ovh_rows+=("$c|$u|$h|$d|$lc|$dw|$met")
    printf '  %-34s %10d %10d %8d %10d %11d %8d  %s\n' "$c" "$u" "$h" "$d" "$lc" "$dw" $OVH_MAX "$met"
  done
fi

# --- JSON -------------------------------------------------------------------
jnum() { case $1 in -|never|"") echo null ;; *) echo "${1#+}" ;; esac; }
jbool() { case $1 in yes) echo true ;; NO) echo false ;; *) echo null ;; esac; }
{
  echo "{"
  echo "  \"benchmark\": \"compute_share\","
  echo "  \"date\": \"$(date -u +%Y-%m-%d)\","
  echo "  \"machine\": \"$(nproc) CPUs, simulated H100 (GPUPOOL_SIM_STATE shared by the tenants)\","
  echo "  \"method\": {"
  echo "    \"shares\": \"achieved = delta gpupool-simctl busy_ns of the tenant over a ${WINDOW} s window after a ${WARM} s warm-up, every tenant running throughout; expected = the limit (hard), the limits scaled to fill the card (elastic), 100 (alone elastic, or no hook); target |error| <= ${SHARE_TOL} pp\","
  echo "    \"priority\": \"high-priority infer (SCHED_FIFO where allowed): one ${PROBE_US} us kernel every ${PERIOD_MS} ms for ${PROBE_S} s; wall latency = launch until the spinning wait (cuStreamQuery, then cuStreamSynchronize) returns; device latency = launch until the kernel ends on the simulator's device timeline (the judged figure: wall p99 on a small shared machine is host noise); first_probe = the latency of the probe's first kernel, launched on arrival; each scenario run ${PRIO_REPEAT} times: latencies are the median, yield, resume and low_share_held the worst, device_p99_us_runs every run's; low-priority lowprobe samples its own device time every 1 ms; yield = from the probe's first launch until the low tenant's device time stops growing; resume = from the probe's last completion + hold-off (${HOLDOFF_MS} ms) until it grows again; low_share_held = its share from yield to the probe's last completion; targets: device p99 <= alone + ${P99_TOL} %, yield and resume < ${YIELD_MAX_MS} ms\","
  echo "    \"overhead\": \"callgrind instructions per cuLaunchKernel in bench/hook_overhead launch, (I(${N2}) - I(${N1})) / (${N2} - ${N1}); added = hooked with the configuration - unhooked, without pace_wait (a launch waiting for its share; valgrind makes the host ~30x slower than the simulated kernels, so the meter sees them longer and launches wait); added_with_waits counts those too; target <= ${OVH_MAX} on added\""
  echo "  },"
  echo "  \"shares\": ["
  sep=""
  for row in "${share_rows[@]}"; do
    IFS='|' read -r s k p t l e a d c m <<<"$row"
    printf '%s    {"scenario": "%s", "kernels": "%s", "policy": "%s", "tenant": %s, "configured": %s, "expected": %s, "achieved": %s, "error_pp": %s, "charged": %s, "target_pp": %s, "target_met": %s}' \
      "$sep" "$s" "$k" "$p" "$t" "$l" "$e" "$a" "$(jnum "$d")" "$(jnum "$c")" "$SHARE_TOL" "$(jbool "$m")"
    sep=$',\n'
  done
  echo
  echo "  ],"
  echo "  \"priority\": ["
  sep=""
  for row in "${prio_rows[@]}"; do
    IFS='|' read -r s k c p50 p99 d50 d99 pct f1 y r ls runs m <<<"$row"
    printf '%s    {"scenario": "%s", "low_kernels": %s, "probes": %s, "p50_us": %s, "p99_us": %s, "device_p50_us": %s, "device_p99_us": %s, "device_p99_us_runs": [%s], "device_p99_vs_alone_pct": %s, "first_probe_us": %s, "yield_ms": %s, "resume_ms": %s, "low_share_held_pct": %s, "target_met": %s}' \
      "$sep" "$s" "$([ -n "$k" ] && echo "\"$k\"" || echo null)" "$c" "$p50" "$p99" "$d50" "$d99" "$runs" "$(jnum "$pct")" "$f1" "$(jnum "$y")" "$(jnum "$r")" "$(jnum "$ls")" "$(jbool "$m")"
    sep=$',\n'
  done
  echo
  echo "  ],"
  echo "  \"overhead\": ["
  sep=""
  for row in "${ovh_rows[@]}"; do
    IFS='|' read -r c u h d lc dw m <<<"$row"
    printf '%s    {"configuration": "%s", "unhooked": %s, "hooked": %s, "added": %s, "added_by_limit": %s, "added_with_waits": %s, "target": %s, "target_met": %s}' \
      "$sep" "$c" "$u" "$h" "$d" "$lc" "$dw" "$OVH_MAX" "$(jbool "$m")"
    sep=$',\n'
  done
  echo
  echo "  ]"
  echo "}"
} >"$work/out.json"
mkdir -p "$(dirname "$OUT")"
mv "$work/out.json" "$OUT"
echo
echo "  written to $OUT"
