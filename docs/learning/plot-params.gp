# phase ends of the shift experiment, for bench/learn/plots.gp
e1 = 10000; e2 = 20000; e3 = 22000
