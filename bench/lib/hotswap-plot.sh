#!/usr/bin/env bash
# hotswap-plot.sh DATA-DIR OUT-DIR - the hotswap benchmark's two SVGs from the
# gnuplot data that `hotswap --plot-dir DATA-DIR` writes:
#   hotswap-engines.svg  every policy's SLO misses against the pool size (the
#                        sweep, engines.dat; skipped without --sweep), and
#                        lru's and ours's swaps an hour;
#   hotswap-day.svg      the day on the default pool, per interval: lru's and
#                        ours's SLO misses (by arrival) and swaps (day.dat).
# Misses are drawn as misses + 1 on a log scale, so that zero shows.  Needs
# gnuplot (Debian's gnuplot-nox).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 DATA-DIR OUT-DIR" >&2; exit 2; }
data=$1 out=$2
command -v gnuplot >/dev/null || { echo "hotswap-plot: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
[ -r "$data/meta.gp" ] && [ -r "$data/day.dat" ] || { echo "hotswap-plot: no $data/meta.gp or $data/day.dat" >&2; exit 1; }
mkdir -p "$out"

# The gnuplot index of a policy's block in a .dat file (its "# name" line).
idx() { sed -n 's/^# //p' "$1" | grep -nx "$2" | { IFS=: read -r n _ && echo $((n - 1)); }; }
declare -A colour=([static]="#777777" [lru]="#1f77b4" [ours]="#d94801")
n=0

f=$data/engines.dat
if [ -r "$f" ]; then
  miss="" swaps=""
  for p in static lru ours; do
    i=$(idx "$f" "$p") || continue
    st="linespoints lw 2 pt 7 ps 0.5 lc rgb '${colour[$p]}'"
    miss+="'$f' index $i using 1:(\$2+1) with $st title '$p', "
    [ "$p" = static ] || swaps+="'$f' index $i using 1:5 with $st title '$p', "
  done
  gnuplot <<GP
load '$data/meta.gp'
set terminal svg size 1100,460 dynamic font 'sans,11'
set output '$out/hotswap-engines.svg'
set multiplot layout 1,2 title sprintf("40 models over a day, seed %d: the pool size against SLO misses and swaps (bench/hotswap)", seed)
set xlabel 'engines of 80 GB'
set autoscale xfix
set offsets 1, 1, 0, 0
set grid
set key top right font ',10'
set logscale y
set yrange [0.5:*]
set format y '%.0f'
set ylabel 'requests missing the SLO (TTFT > 5 s) + 1'
set title sprintf('SLO misses (%d requests)', requests)
set arrow from graph 0, first target_misses + 1 to graph 1, first target_misses + 1 nohead dt 2 lc rgb '#444444'
set label sprintf('%g %% of requests', 100 * miss_target) at graph 0.02, first (target_misses + 1) * 1.6 font ',9'
set arrow from first engines, graph 0 to first engines, graph 1 nohead dt 3 lc rgb '#999999'
plot ${miss%, }
unset arrow
unset label
set yrange [*:*]
set format y '%g'
set ylabel 'swaps an hour'
set title 'swaps (static: none)'
set arrow from first engines, graph 0 to first engines, graph 1 nohead dt 3 lc rgb '#999999'
plot ${swaps%, }
unset multiplot
GP
  n=$((n + 1))
else
  echo "  no $f (run hotswap with --sweep): hotswap-engines.svg not drawn"
fi

f=$data/day.dat
miss="" swaps=""
for p in lru ours; do
  i=$(idx "$f" "$p") || continue
  miss+="'$f' index $i using 1:(\$4+1) with histeps lw 2 lc rgb '${colour[$p]}' title '$p', "
  swaps+="'$f' index $i using 1:5 with histeps lw 2 lc rgb '${colour[$p]}' title '$p', "
done
gnuplot <<GP
load '$data/meta.gp'
set terminal svg size 1000,640 dynamic font 'sans,11'
set output '$out/hotswap-day.svg'
set multiplot layout 2,1 title sprintf("The day on %d engines, per %g h (bench/hotswap, seed %d)", engines, interval_h, seed)
set xrange [0:hours]
set xtics 0, 3
set mxtics 3
set grid xtics ytics
set key top left font ',10'
if (launch_h < hours) {
  set arrow from first launch_h, graph 0 to first launch_h, graph 1 nohead dt 2 lc rgb '#444444'
  set label 'launch' at first launch_h, graph 0.93 offset 0.5, 0 font ',9'
}
if (viral_h < hours) {
  set arrow from first viral_h, graph 0 to first viral_h, graph 1 nohead dt 2 lc rgb '#555555'
  set label 'viral' at first viral_h, graph 0.93 offset 0.5, 0 font ',9'
}
set logscale y
set yrange [0.5:*]
set ylabel 'SLO misses + 1'
set title 'requests missing the SLO, by arrival'
plot ${miss%, }
unset logscale y
set yrange [0:*]
set xlabel 'hour of the day'
set ylabel 'swaps'
set title 'swaps (loads started)'
plot ${swaps%, }
unset multiplot
GP
n=$((n + 1))
echo "  $n plots written to $out"
