# Per-epoch test UAR curves (Fig 2a/2b).  gnuplot -e "in='x.tsv'; out='x.png';
# n=N; ttl='...'" curves.gp.  in: report.py curves output (epoch, then one
# column per run).  n = 0: every run solid; n > 0: the first n runs are the
# baselines (dashed), the next n the transfer runs (solid), in matching colours.
set terminal pngcairo size 1000,640 font ',10'
set output out
set datafile separator '\t'
set datafile missing 'NaN'
set title ttl
set xlabel 'epoch'
set ylabel 'test UAR (%)'
set key outside right top noenhanced
set grid
ncols = int(system(sprintf("head -n 1 '%s' | awk -F'\t' '{print NF}'", in)))
cols = ncols
last = int(system(sprintf("tail -n 1 '%s' | cut -f 1", in)))
step = last <= 15 ? 1 : 5
set xtics step
dash(c) = (n > 0 && c <= n + 1) ? 2 : 1
colour(c) = n > 0 ? (c - 2) % n + 1 : c - 1
plot for [c=2:cols] in using 1:c with linespoints pt 7 ps 0.6 \
     dt dash(c) lc colour(c) title columnheader(c)
