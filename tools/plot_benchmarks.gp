# Plots of the noisy-preference benchmark from the CSV files bench/evaluate.cpp writes.
#   gnuplot -e "dir='docs/benchmarks'" tools/plot_benchmarks.gp
# reads   dir/summary.csv, dir/curves_mean.csv
# writes  dir/accuracy_vs_noise.png, dir/reward_vs_noise.png, dir/flipped_over_training.png
# Optional: -e "methods='full sams uniform'" (default: every method of the comparison),
#           -e "curve_eta=0.4" (noise level of the training-curve plot, default 0.2).

if (!exists("dir")) dir = "docs/benchmarks"
if (!exists("methods")) methods = "full uniform matched:guided rdpo oracle guided guided:T=64"
if (!exists("curve_eta")) curve_eta = 0.2

set datafile separator ","
set terminal pngcairo size 900,600 enhanced font "DejaVu Sans,11"
set key outside right top box
set grid
set offsets 0.01, 0.01, 0, 0

# Points of different methods are shifted a little along x so their error bars do not overlap.
shift(i) = (i - (words(methods) + 1) / 2.0) * 0.004

summary = dir . "/summary.csv"
curves = dir . "/curves_mean.csv"

set output dir . "/accuracy_vs_noise.png"
set title "Clean test preference accuracy vs label noise (mean ± 95% CI over seeds)"
set xlabel "fraction of flipped training labels η"
set ylabel "test accuracy (implicit reward ranks pairs as r*)"
plot for [i = 1:words(methods)] summary skip 1 \
     using ($2 + shift(i)):(strcol(1) eq word(methods, i) ? $4 : NaN):5 \
     with yerrorlines lw 2 pt 7 ps 0.8 title word(methods, i)

set output dir . "/reward_vs_noise.png"
set title "Expected true reward gain over the reference vs label noise (exact, mean ± 95% CI)"
set ylabel "E_π[r*] − E_{ref}[r*]"
plot for [i = 1:words(methods)] summary skip 1 \
     using ($2 + shift(i)):(strcol(1) eq word(methods, i) ? $8 : NaN):9 \
     with yerrorlines lw 2 pt 7 ps 0.8 title word(methods, i)

set output dir . "/flipped_over_training.png"
set title sprintf("Flipped pairs among the pairs each method trained on, per epoch (η = %g)", curve_eta)
set xlabel "policy optimiser steps"
set ylabel "flipped / trained pairs in the epoch"
set offsets 2, 2, 0, 0
plot for [i = 1:words(methods)] curves skip 1 \
     using 4:((strcol(1) eq word(methods, i) && abs($2 - curve_eta) < 1e-9) ? $5 : NaN):6 \
     with yerrorlines lw 2 pt 7 ps 0.8 title word(methods, i)
