# Layerwise cosine distance (Fig 3a/3b).  gnuplot -e "in='x.tsv'; out='x.png';
# ttl='...'" dist.gp.  in: report.py dist output (index, layer, then per run a
# best and a last column): best solid, last dashed, one colour per run.
set terminal pngcairo size 1000,640 font ',10'
set output out
set datafile separator '\t'
set datafile missing 'NaN'
set title ttl
set ylabel 'cosine distance to the initial weights'
set xtics rotate by -45 noenhanced
set key outside right top noenhanced
set logscale y
set grid
ncols = int(system(sprintf("head -n 1 '%s' | awk -F'\t' '{print NF}'", in)))
runs = (ncols - 2) / 2
plot for [i=0:runs-1] in using 1:(column(3 + 2*i)):xtic(2) with linespoints pt 7 ps 0.6 dt 1 lc i+1 \
       title columnheader(3 + 2*i), \
     for [i=0:runs-1] in using 1:(column(4 + 2*i)) with linespoints pt 6 ps 0.6 dt 2 lc i+1 \
       title columnheader(4 + 2*i)
