# Per-epoch test UAR curves (Fig 2a/2b).  gnuplot -e "in='x.tsv'; out='x.png';
# mode='a'; ttl='...'" curves.gp, or for Fig 2b mode='b', n=WIDTHS and
# gap='gap.tsv'.  in: report.py curves output (epoch, then per run the mean
# over seeds and its 95 % interval, lo and hi: a line and a band).
# mode 'a': the first run is the baseline, then per initialisation all layers
#   and linear only.  Small multiples (eleven curves with their bands in one
#   panel blur into each other): one panel per initialisation with the
#   baseline (black), all layers (solid, shaded band) and linear only
#   (dash-dot, band edges dash-dot), and a last panel with the means of the
#   baseline and of every all-layers run, without bands.
# mode 'b': n runs from scratch, then n fine-tuned, in the same width order:
#   one panel of curves, from scratch (dash-dot, band edges dash-dot) and
#   fine-tuned from clean (solid, shaded band), one colour per width; beside
#   it the gap (gap.tsv, report.py gap: width, gap, lo, hi) with its intervals.
# In every curve panel the dashed grey line is chance.
set datafile separator '\t'
set datafile missing 'NaN'
if (!exists("chance")) chance = 100.0 / 3
ncols = int(system(sprintf("head -n 1 '%s' | awk -F'\t' '{print NF}'", in)))
runs = (ncols - 1) / 3
last = int(system(sprintf("tail -n 1 '%s' | cut -f 1", in)))
step = last <= 15 ? 1 : 5
# the name of run r (0-based) without its fine-tuning mode
name(r) = system(sprintf("head -n 1 '%s' | cut -f %d | sed 's/ (all layers)$//; s/ (linear only)$//'", in, 2 + 3 * r))
panels = mode eq 'b' ? 2 : (runs - 1) / 2 + 1
cols = panels <= 3 ? panels : (panels == 4 ? 2 : 3)
rows = (panels + cols - 1) / cols
set terminal pngcairo size 1200, (rows == 1 ? 540 : 780) font ',10'
set output out
set multiplot layout rows, cols title ttl noenhanced
set xlabel 'epoch'
set ylabel 'test UAR (%)'
set grid
set yrange [0:100]
# one epoch (a smoke run) would be an empty range: centre its point instead
xlo = last > 1 ? 1 : 0.5
xhi = last > 1 ? last : 1.5
set xrange [xlo:xhi]
set xtics step
set key inside bottom right noenhanced font ',8' samplen 3 spacing 0.9
set style fill transparent solid 0.15 noborder
# colour-blind-safe, dark enough on white (ColorBrewer Dark2)
hue(i) = word('#1b9e77 #d95f02 #7570b3 #e7298a #66a61e #a6761d #666666', i % 7 + 1)
if (mode eq 'a') {
  do for [i=0:panels-2] {
    a = 1 + 2 * i
    set title name(a) noenhanced
    plot in using 1:(column(3)):(column(4)) with filledcurves lc rgb 'black' fs transparent solid 0.10 notitle, \
         '' using 1:(column(3 + 3 * a)):(column(4 + 3 * a)) with filledcurves lc rgb hue(i) notitle, \
         '' using 1:(column(3 + 3 * (a + 1))) with lines lw 0.8 dt 4 lc rgb hue(i) notitle, \
         '' using 1:(column(4 + 3 * (a + 1))) with lines lw 0.8 dt 4 lc rgb hue(i) notitle, \
         '' using 1:(column(2)) with linespoints pt 7 ps 0.5 lw 1.5 lc rgb 'black' title name(0), \
         '' using 1:(column(2 + 3 * a)) with linespoints pt 7 ps 0.5 lw 1.5 lc rgb hue(i) title 'all layers', \
         '' using 1:(column(2 + 3 * (a + 1))) with linespoints pt 6 ps 0.6 lw 1.5 dt 4 lc rgb hue(i) title 'linear only', \
         chance with lines dt 2 lc rgb 'gray40' title 'chance'
  }
  set title 'all layers, means only' noenhanced
  set key font ',7'
  plot in using 1:(column(2)) with linespoints pt 7 ps 0.5 lw 1.5 lc rgb 'black' title name(0), \
       for [i=0:panels-2] '' using 1:(column(2 + 3 * (1 + 2 * i))) with linespoints pt 7 ps 0.5 lw 1.5 lc rgb hue(i) \
         title name(1 + 2 * i), \
       chance with lines dt 2 lc rgb 'gray40' title 'chance'
} else {
  set title 'test UAR per epoch, by bandwidth' noenhanced
  set key font ',8'
  plot for [w=0:n-1] in using 1:(column(3 + 3 * w)) with lines lw 0.8 dt 4 lc rgb hue(w) notitle, \
       for [w=0:n-1] in using 1:(column(4 + 3 * w)) with lines lw 0.8 dt 4 lc rgb hue(w) notitle, \
       for [w=0:n-1] in using 1:(column(3 + 3 * (n + w))):(column(4 + 3 * (n + w))) with filledcurves \
         lc rgb hue(w) notitle, \
       for [w=0:n-1] in using 1:(column(2 + 3 * w)) with linespoints pt 6 ps 0.6 lw 1.5 dt 4 lc rgb hue(w) \
         title columnheader(2 + 3 * w), \
       for [w=0:n-1] in using 1:(column(2 + 3 * (n + w))) with linespoints pt 7 ps 0.5 lw 1.5 lc rgb hue(w) \
         title columnheader(2 + 3 * (n + w)), \
       chance with lines dt 2 lc rgb 'gray40' title 'chance'
  set title "fine-tuned − scratch: test UAR at the best dev epoch,\nmean over seeds [95 % interval]" noenhanced
  set xlabel 'bandwidth (Hz, log scale)'
  set ylabel 'UAR points'
  set autoscale
  set logscale x
  set offsets graph 0.08, graph 0.08, graph 0.05, graph 0.05
  set xtics auto
  unset key
  plot gap using 1:2:3:4 with yerrorlines pt 7 lc rgb 'black' lw 1.5, 0 with lines dt 2 lc rgb 'gray40'
}
unset multiplot
