#!/usr/bin/env python3
"""Markdown tables of tools/run_reference_comparison.sh's results.jsonl: per thread count, the
median over rounds of each measurement, then the ratios, each formed within one round (the
runs of a round are minutes apart) and given as median [min, max] over rounds.

Times: CPU time with one thread (robust to another process on the second core), wall time
with more (CPU time would add the threads up).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict


def time_of(r: dict) -> float:
    return r["cpu_median_ms"] if r["threads"] == 1 else r["median_ms"]


def key_of(r: dict) -> str:
    b = r["bench"]
    if b.startswith("sams_"):
        return f"{b}[{r['variant']}]"
    return b


LABELS = {
    "sams_train[eigen]": "sams training phase, Eigen GEMM",
    "sams_train[blas]": "sams training phase, CBLAS GEMM",
    "sams_step[eigen]": "sams whole step, Eigen GEMM",
    "sams_step[blas]": "sams whole step, CBLAS GEMM",
    "sams_train[blas-passive]": "sams training phase, CBLAS GEMM, OMP_WAIT_POLICY=passive",
    "sams_step[blas-passive]": "sams whole step, CBLAS GEMM, OMP_WAIT_POLICY=passive",
    "sams_gemm_eigen[eigen]": "its GEMMs alone: plain Eigen products",
    "sams_gemm_backend[eigen]": "its GEMMs alone: the backend's Eigen GEMM",
    "sams_gemm_backend[blas]": "its GEMMs alone: the backend's CBLAS GEMM",
    "sams_gemm_cblas[blas]": "its GEMMs alone: cblas_sgemm directly",
    "authors_train": "authors' f1 + f2 train_NN_batch (PyTorch)",
    "torch_step": "PyTorch step (bench/torch_scheduler_step.py)",
}


def spread(values: list[float]) -> str:
    if not values:
        return "not measured"
    return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    by = defaultdict(dict)  # (threads, round) -> key -> record
    for r in rows:
        by[(r["threads"], r["round"])][key_of(r)] = r
    flop = {key_of(r): r["flop"] for r in rows if r.get("flop")}
    for threads in sorted({t for t, _ in by}):
        rounds = sorted(k for k in by if k[0] == threads)
        kind = "CPU time" if threads == 1 else "wall time"
        print(f"### {threads} thread{'s' if threads > 1 else ''} ({kind}, median over {len(rounds)} rounds)\n")
        print("| measurement | ms | GFLOP/s |")
        print("|---|---|---|")
        for key, label in LABELS.items():
            values = [time_of(by[k][key]) for k in rounds if key in by[k]]
            if not values:
                continue
            ms = statistics.median(values)
            rate = f"{flop[key] / ms / 1e6:.1f}" if key in flop else ""
            if key == "authors_train":
                rate = f"{flop['sams_train[eigen]'] / ms / 1e6:.1f} (same GEMMs)" if "sams_train[eigen]" in flop else ""
            print(f"| {label} | {ms:.1f} | {rate} |")

        def ratios(num: str, den: str) -> list[float]:
            return [time_of(by[k][num]) / time_of(by[k][den]) for k in rounds if num in by[k] and den in by[k]]

        def merit(train: str) -> list[float]:
            out = []
            for k in rounds:
                gemms = [time_of(by[k][g]) for g in by[k] if g.startswith("sams_gemm_")]
                if train in by[k] and gemms:
                    out.append(min(gemms) / time_of(by[k][train]))
            return out

        print("\n| ratio (within each round) | median [min, max] |")
        print("|---|---|")
        print(f"| authors' training ÷ sams training (Eigen) | {spread(ratios('authors_train', 'sams_train[eigen]'))} |")
        print(f"| authors' training ÷ sams training (CBLAS) | {spread(ratios('authors_train', 'sams_train[blas]'))} |")
        print(f"| PyTorch step ÷ sams step (Eigen) | {spread(ratios('torch_step', 'sams_step[eigen]'))} |")
        print(f"| PyTorch step ÷ sams step (CBLAS) | {spread(ratios('torch_step', 'sams_step[blas]'))} |")
        print(f"| sams training (Eigen) ÷ sams training (CBLAS) | {spread(ratios('sams_train[eigen]', 'sams_train[blas]'))} |")
        if any("sams_train[blas-passive]" in by[k] for k in rounds):
            print(f"| authors' training ÷ sams training (CBLAS, passive wait) | "
                  f"{spread(ratios('authors_train', 'sams_train[blas-passive]'))} |")
            print(f"| PyTorch step ÷ sams step (CBLAS, passive wait) | "
                  f"{spread(ratios('torch_step', 'sams_step[blas-passive]'))} |")
        print(f"| training rate ÷ best GEMM rate, Eigen build | {spread(merit('sams_train[eigen]'))} |")
        print(f"| training rate ÷ best GEMM rate, CBLAS build | {spread(merit('sams_train[blas]'))} |")
        print()


if __name__ == "__main__":
    main()
