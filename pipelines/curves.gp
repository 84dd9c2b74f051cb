# Per-epoch test UAR curves (Fig 2a/2b).  gnuplot -e "in='x.tsv'; out='x.png';
# mode='a'; ttl='...'" curves.gp, or for Fig 2b mode='b', n=WIDTHS and
# gap='gap.tsv' (a second panel).  in: report.py curves output (epoch, then per
# run the mean over seeds and its 95 % interval, lo and hi: a line and a
# shaded band).  mode 'a': the first run is the baseline, then per
# initialisation all layers (solid) and linear only (dashed) in one colour.
# mode 'b': n runs from scratch (dashed), then n fine-tuned (solid), in
# matching colours.  gap: report.py gap output (width, gap, lo, hi), plotted
# with its intervals beside the curves.  The dashed grey line is chance.
set terminal pngcairo size 1000,640 font ',10'
set output out
set datafile separator '\t'
set datafile missing 'NaN'
if (!exists("chance")) chance = 100.0 / 3
ncols = int(system(sprintf("head -n 1 '%s' | awk -F'\t' '{print NF}'", in)))
runs = (ncols - 1) / 3
last = int(system(sprintf("tail -n 1 '%s' | cut -f 1", in)))
step = last <= 15 ? 1 : 5
colour(r) = mode eq 'b' ? r % n + 1 : (r == 0 ? 8 : (r - 1) / 2 + 1)
dash(r) = mode eq 'b' ? (r < n ? 2 : 1) : ((r > 0 && (r - 1) % 2 == 1) ? 2 : 1)
if (exists("gap")) { set multiplot layout 1,2 title ttl noenhanced; unset title } else { set title ttl noenhanced }
set xlabel 'epoch'
set ylabel 'test UAR (%), mean over seeds, band: 95 % interval'
set key outside bottom center horizontal maxrows 4 noenhanced font ',8'
set grid
set yrange [0:100]
set xtics step
set style fill transparent solid 0.12 noborder
plot for [r=0:runs-1] in using 1:(column(3 + 3 * r)):(column(4 + 3 * r)) with filledcurves \
       lc colour(r) notitle, \
     for [r=0:runs-1] in using 1:(column(2 + 3 * r)) with linespoints pt 7 ps 0.5 \
       dt dash(r) lc colour(r) title columnheader(2 + 3 * r), \
     chance with lines dt 3 lc rgb 'gray40' title 'chance'
if (exists("gap")) {
  set size ratio 0
  set title "fine-tuned − scratch: test UAR at the best dev epoch,\nmean over seeds [95 % interval]" noenhanced
  set xlabel 'bandwidth (Hz, log scale)'
  set ylabel 'UAR points'
  set autoscale
  set logscale x
  set offsets graph 0.08, graph 0.08, graph 0.05, graph 0.05
  set xtics auto
  unset key
  plot gap using 1:2:3:4 with yerrorlines pt 7 lc 1 lw 1.5, 0 with lines dt 3 lc rgb 'gray40'
  unset multiplot
}
