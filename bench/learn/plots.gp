# Plots of the learning benchmark (docs/LEARNING.md) from the tables that
# bench/learn/learn_bench writes:
#
#   gnuplot -e "dir='docs/learning'" bench/learn/plots.gp
#
#   DIR/curve-SET.tsv -> DIR/ndcg-SET.png  held-out and seen NDCG@10 against
#                                          feedback events, one line per learner
#   DIR/shift-SET.tsv -> DIR/shift-SET.png workload A, then B, then A again:
#                                          NDCG@10 under A and B, EWC++ on/off
#
# The x axis of the curves is logarithmic; the point of 0 events (no
# learning) is drawn at the left edge and labelled 0.
if (!exists("dir")) dir = "docs/learning"
e1 = 10000; e2 = 20000; e3 = 22000
params = dir . "/plot-params.gp"
if (system("test -f '" . params . "' && echo 1") eq "1") load params

set terminal pngcairo noenhanced size 1200,500 font "sans,10"
set grid lc rgb "#dddddd"
set key below horizontal
set yrange [0:*]
zero = 300
set logscale x
set xrange [zero * 0.9:*]
set xtics ("0" zero, "1k" 1000, "2k" 2000, "5k" 5000, "10k" 10000, "20k" 20000, "50k" 50000, "100k" 100000)
set ylabel "NDCG@10 against the hidden truth"
set xlabel "feedback events"
x(e) = e == 0 ? zero : e

# Series (blocks of the file): 0 MICRO, 1 BASE, 2 GNN, 3 ALL, 4 ALL with
# random clicks, 5 MICRO with random clicks.
array colour[6] = ["#1f77b4", "#2ca02c", "#ff7f0e", "#d62728", "#999999", "#bbbbbb"]
array label[6] = ["MICRO", "BASE", "GNN", "ALL", "ALL, random clicks", "MICRO, random clicks"]
array dash[6] = [1, 1, 1, 1, 2, 2]

do for [name in "fashion fiori debian"] {
	file = dir . "/curve-" . name . ".tsv"
	if (system("test -f '" . file . "' && echo 1") eq "1") {
		set output dir . "/ndcg-" . name . ".png"
		set multiplot layout 1,2 title "ruvector learning from feedback: " . name
		set title "held-out queries (never issued during training)"
		plot for [i=1:6] file index (i - 1) using (x($1)):2 with linespoints lw 2 pt 7 ps 0.6 \
			lc rgb colour[i] dt dash[i] title label[i]
		set title "seen queries (issued during training)"
		plot for [i=1:6] file index (i - 1) using (x($1)):4 with linespoints lw 2 pt 7 ps 0.6 \
			lc rgb colour[i] dt dash[i] title label[i]
		unset multiplot
		set output
	}
}

do for [set in "fashion fiori"] {
file = dir . "/shift-" . set . ".tsv"
if (system("test -f '" . file . "' && echo 1") eq "1") {
	unset logscale x
	set xrange [0:e3]
	set xtics auto
	set terminal pngcairo noenhanced size 900,500 font "sans,10"
	set output dir . "/shift-" . set . ".png"
	set title "workload shift on " . set . ": A, then B, then A again (held-out NDCG@10)"
	set arrow 1 from e1, graph 0 to e1, graph 1 nohead lc rgb "#888888" dt 3
	set arrow 2 from e2, graph 0 to e2, graph 1 nohead lc rgb "#888888" dt 3
	set label 1 "A" at (e1 / 2), graph 0.95 center
	set label 2 "B" at ((e1 + e2) / 2), graph 0.95 center
	set label 3 "A" at ((e2 + e3) / 2), graph 0.95 center
	plot file index 0 using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb "#d62728" title "NDCG under A, EWC++ default", \
	     file index 1 using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb "#d62728" dt 2 title "NDCG under A, EWC++ off", \
	     file index 0 using 1:3 with linespoints lw 2 pt 7 ps 0.6 lc rgb "#1f77b4" title "NDCG under B, EWC++ default", \
	     file index 1 using 1:3 with linespoints lw 2 pt 7 ps 0.6 lc rgb "#1f77b4" dt 2 title "NDCG under B, EWC++ off"
	set output
}
}
