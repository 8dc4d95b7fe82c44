# shellcheck shell=bash
# bench/lib/callgrind.sh - sourced by the benchmarks that count
# instructions with callgrind (hook_overhead.sh, compute_share.sh).
# Kept out of bench/*.sh so that bench/run does not take it for a benchmark.

# cg_count FILE FUNC[,FUNC...] [NAME=VALUE...] -- CMD [ARGS...]
# Runs CMD under callgrind with the environment additions NAME=VALUE,
# counting only while the first FUNC runs (--toggle-collect), and prints the
# number of instructions counted.  Each further FUNC toggles collection
# again while it runs, so calls to it from inside the first are left out.
# The profile goes to FILE, valgrind's messages to FILE.log (shown on
# stderr if CMD fails).
cg_count() {
  local f=$1 fns=() toggles=() vars=()
  IFS=, read -r -a fns <<<"$2"
  for fn in "${fns[@]}"; do toggles+=(--toggle-collect="$fn"); done
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
  [ "${1:-}" = -- ] || { echo "cg_count: no -- before the command" >&2; return 2; }
  shift
  env "${vars[@]}" valgrind --tool=callgrind --callgrind-out-file="$f" "${toggles[@]}" \
    "$@" >/dev/null 2>"$f.log" || { cat "$f.log" >&2; return 1; }
  awk '/^(summary|totals):/ { print $2; exit }' "$f"
}
