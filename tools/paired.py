#!/usr/bin/env python3
"""Paired differences of methods against a baseline from sams_evaluate's runs.csv.

    python3 tools/paired.py DIR [--metric val_accuracy] [--base full] [--against a,b]

For every method and noise rate: mean of the metric, mean paired difference to the baseline
over the seeds both ran, its 95 % t-interval half-width, and wins/seeds. Standard library only.
"""
import argparse
import csv
import math
import os
from collections import defaultdict

# Two-sided 95 % Student t quantiles, n-1 degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 24: 2.064, 29: 2.045}


def t95(dof):
    if dof in T95:
        return T95[dof]
    keys = sorted(k for k in T95 if k <= dof)
    return T95[keys[-1]] if keys else 12.706


def mean_ci(xs):
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, t95(n - 1) * sd / math.sqrt(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--metric", default="val_accuracy")
    ap.add_argument("--base", default="full")
    ap.add_argument("--extra", default="flipped_fraction,trained_pairs,reward_gain")
    args = ap.parse_args()
    runs = defaultdict(dict)  # (method, eta) -> seed -> row
    order = []
    with open(os.path.join(args.dir, "runs.csv")) as f:
        for r in csv.DictReader(f):
            key = (r["method"], float(r["eta"]))
            if r["method"] not in order:
                order.append(r["method"])
            runs[key][int(r["seed"])] = r
    etas = sorted({eta for (_, eta) in runs})
    extras = [e for e in args.extra.split(",") if e]
    print(f"metric {args.metric}; differences against '{args.base}', mean ± 95 % t half-width (wins/seeds)")
    for eta in etas:
        print(f"\n eta = {eta}")
        base = runs.get((args.base, eta), {})
        for m in order:
            cell = runs.get((m, eta))
            if not cell:
                continue
            vals = [float(r[args.metric]) for r in cell.values()]
            mv, _ = mean_ci(vals)
            seeds = sorted(set(cell) & set(base))
            line = f"  {m:48s} {mv:.3f}"
            if m != args.base and seeds:
                d = [float(cell[s][args.metric]) - float(base[s][args.metric]) for s in seeds]
                dm, dc = mean_ci(d)
                wins = sum(1 for x in d if x > 0)
                line += f"  diff {dm:+.3f} ± {dc:.3f} ({wins}/{len(d)})"
            for e in extras:
                line += f"  {e} {sum(float(r[e]) for r in cell.values()) / len(cell):.3f}"
            print(line)


if __name__ == "__main__":
    main()
