#!/usr/bin/env bash
# autoscale-plot.sh DATA-DIR OUT-DIR [WARMUP] [HPA] - one SVG per workload
# from the gnuplot data that `autoscale --plot-dir DATA-DIR` writes: every
# policy's curve of SLO misses against GPU-hours over its knob, one panel per
# SLO (10 s and 30 s), at one warm-up (default 60) and HPA scale-in behaviour
# (default keda).  Misses are drawn as misses + 1 on a log scale, so that
# zero shows.  Needs gnuplot (Debian's gnuplot-nox).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DATA-DIR OUT-DIR [WARMUP] [HPA]" >&2; exit 2; }
data=$1 out=$2 warmup=${3:-60} hpa=${4:-keda}
command -v gnuplot >/dev/null || { echo "autoscale-plot: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
mkdir -p "$out"
n=0
for f in "$data"/*-w"$warmup"-"$hpa".dat; do
  [ -e "$f" ] || continue
  w=$(basename "$f" "-w$warmup-$hpa.dat")
  # The blocks, in the order autoscale writes them (their "# name" lines).
  mapfile -t names < <(sed -n 's/^# //p' "$f")
  plots10="" plots30=""
  reds=("#fdae6b" "#fd8d3c" "#f16913" "#d94801" "#a63603" "#7f2704")
  r=0
  for i in "${!names[@]}"; do
    nm=${names[$i]}
    # Baselines in their own colours, static pools as big points,
    # ours solid in shades of red from no headroom to the most.
    case $nm in
      static-hindsight) style="points pt 7 ps 1.6 lc rgb 'black'" ;;
      static-peak) style="points pt 5 ps 1.4 lc rgb '#777777'" ;;
      keda-queue) style="linespoints lw 2 pt 6 ps 0.6 lc rgb '#1f77b4'" ;;
      keda-rate) style="linespoints lw 2 pt 4 ps 0.6 lc rgb '#2ca02c'" ;;
      threshold) style="linespoints lw 2 pt 8 ps 0.6 lc rgb '#9467bd'" ;;
      *) style="linespoints lw 1.5 pt 7 ps 0.4 lc rgb '${reds[$((r % 6))]}'"; r=$((r + 1)) ;;
    esac
    plots10+="'$f' index $i using 2:(\$3+1) with $style title '$nm', "
    plots30+="'$f' index $i using 2:(\$4+1) with $style title '$nm', "
  done
  gnuplot <<GP
set terminal svg size 1100,480 dynamic font 'sans,11'
set output '$out/autoscale-$w.svg'
set multiplot layout 1,2 title "$w: SLO misses against GPU-hours, warm-up ${warmup} s, HPA scale-in $hpa (bench/autoscale)"
set logscale y
set yrange [0.5:*]
set xlabel 'GPU-hours'
set ylabel 'requests missing the SLO + 1'
set key top right font ',9'
set grid
set title 'SLO 10 s'
plot ${plots10%, }
set title 'SLO 30 s'
plot ${plots30%, }
unset multiplot
GP
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "autoscale-plot: no $data/*-w$warmup-$hpa.dat" >&2; exit 1; }
echo "  $n plots written to $out"
