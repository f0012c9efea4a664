# Draws build/results/bench.png from the data files valkey_bench.py writes.
#   gnuplot -e "dir='build/results'" scripts/bench/chart.gp
#
# Top: Rust/C throughput per cell, median with the per-round min..max.
# Middle: Rust/C p99 latency per cell, the same way (below 1: Rust better).
# Bottom: server CPU under the light steady load, both builds.

if (!exists("dir")) dir = "build/results"
ratios = dir."/bench-ratios.dat"
light = dir."/bench-light.dat"

set terminal pngcairo size 1400,1300 font "sans,10"
set output dir."/bench.png"
set multiplot layout 3,1 title "valkey-iocore (Rust) against Valkey 9.1.2's C I/O-threads core"

set grid ytics
set xtics rotate by -35 left nomirror
set key off
set bmargin 7
stats ratios using 2 nooutput
set xrange [-0.7:STATS_records - 0.3]
set logscale y 2
set ytics (0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)

set title "Throughput Rust/C (median; bars: min..max of the rounds; above 1: Rust faster; dashed: 1.10)"
set ylabel "Rust/C requests/s"
set arrow 1 from graph 0, first 1.0 to graph 1, first 1.0 nohead lw 2 lc rgb "black"
set arrow 2 from graph 0, first 1.1 to graph 1, first 1.1 nohead dt 2 lc rgb "gray30"
plot ratios using 0:2:3:4:xtic(1) with yerrorbars pt 7 ps 1.3 lw 1.5 lc rgb "#3a7dc9"

set title "p99 latency Rust/C (median; bars: min..max of the rounds; below 1: Rust's tail shorter)"
set ylabel "Rust/C p99"
unset arrow 2
plot ratios using 0:5:6:7:xtic(1) with yerrorbars pt 7 ps 1.3 lw 1.5 lc rgb "#c9703a"

unset arrow 1
unset logscale y
set ytics auto
set xrange [*:*]
set yrange [0:*]
set title "Light steady load, always-active workers: server CPU"
set ylabel "server CPU, % of one CPU"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.6 border -1
set xtics norotate center
set bmargin 3
set key top left
plot light using 2:xtic(1) title "C" lc rgb "#777777", \
     light using 3 title "Rust" lc rgb "#3a7dc9"

unset multiplot
