#!/usr/bin/env python3
"""Markdown tables for docs/benchmarks-cost.md from the Google Benchmark JSON files that
tools/run_cost_benchmarks.sh writes (bench_scheduler, bench_loss, bench_memory).

usage: cost_tables.py DIR        reads DIR/scheduler-omp*.json, DIR/loss.json, DIR/memory.json
Standard library only.
"""
import json
import re
import sys
from pathlib import Path

PAIRS = 65536  # bench_loss's batch

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def load(path):
    with open(path) as f:
        data = json.load(f)
    runs = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"])
        name = re.sub(r"/(real_time|iterations:\d+)", "", name)
        if name in runs and b.get("run_type") != "aggregate":
            continue
        runs[name] = b
    return data["context"], runs


def seconds(b, threads=1):
    """Time per iteration. With one thread the CPU time, which a machine shared with other
    jobs inflates far less than the wall time; with several, the wall time."""
    key = "cpu_time" if threads == 1 else "real_time"
    return b[key] * UNIT[b["time_unit"]]


def gflops(b, threads):
    return b["flop"] / seconds(b, threads) / 1e9 if "flop" in b else b["FLOP/s"] / 1e9


def parse(name):
    parts = name.split("/")
    keys = {}
    for p in parts[1:]:
        if ":" in p:
            k, v = p.split(":", 1)
            keys[k] = int(v)
    return parts[0], keys


def shape_key(keys):
    return tuple(keys.get(k) for k in ("B", "D", "H", "N"))


def fmt_time(s):
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} µs"


def fmt_bytes(b):
    return f"{b / 2**20:.1f} MiB" if b >= 2**20 else f"{b / 1024:.1f} KiB"


def separator(header):
    return "|" + "|".join(["---"] * (header.count("|") - 1)) + "|"


def context_line(ctx, label):
    load = ctx.get("load_avg") or []
    load_s = ", ".join(f"{x:.2f}" for x in load) if load else "n/a"
    return (f"_{label}: {ctx.get('date', '?')}, {ctx.get('num_cpus', '?')} CPUs at "
            f"{ctx.get('mhz_per_cpu', '?')} MHz, load average {load_s}_")


def scheduler_tables(files):
    out = []
    by_threads = {}
    for f in files:
        m = re.search(r"omp(\d+)", f.name)
        threads = int(m.group(1)) if m else 1
        by_threads[threads] = load(f)
    if not by_threads:
        return out
    # Training phase against plain GEMMs of the same shapes.
    out.append("### Training phase against plain Eigen GEMMs of the same shapes\n")
    out.append("Rows = (P+1)·K trained per update; GFLOP/s counts the GEMMs of E1 = E2 = 4 forward and "
               "backward passes. Ratio = training GFLOP/s ÷ plain-GEMM GFLOP/s (the figure of merit). "
               "Times: CPU time with one thread, wall time with more.\n")
    header = "| threads | B | D | H | N | rows | params | train | train GFLOP/s | GEMM GFLOP/s | backend GEMM GFLOP/s | ratio |"
    out.append(header)
    out.append(separator(header))
    for threads, (ctx, runs) in sorted(by_threads.items()):
        shapes = sorted({shape_key(parse(n)[1]) for n in runs if n.startswith("train/")})
        for s in shapes:
            suffix = "/B:{}/D:{}/H:{}/N:{}".format(*s)
            t, g, gb = runs.get("train" + suffix), runs.get("gemm_eigen" + suffix), runs.get("gemm_backend" + suffix)
            if t is None:
                continue
            tf = gflops(t, threads)
            gf = gflops(g, threads) if g else float("nan")
            bf = gflops(gb, threads) if gb else float("nan")
            out.append(f"| {threads} | {s[0]} | {s[1]} | {s[2]} | {s[3]} | {int(t['rows'])} | "
                       f"{t['params'] / 1e6:.2f} M | {fmt_time(seconds(t, threads))} | {tf:.1f} | {gf:.1f} | {bf:.1f} | "
                       f"{tf / gf:.2f} |")
    out.append("")
    # Phases of a step.
    out.append("### A step, phase by phase\n")
    out.append("extract: mean-pool contexts from 2 layers × 64 tokens of hidden states (depends on B, D only); "
               "train: f1 + f2 updates; retarget: f1 forward over the P·K replayed rows (f2's fresh targets); "
               "score: f1 + f2 forward on B rows; select: top-k; step: a whole sams_scheduler::step in steady "
               "state (contexts given).\n")
    header = "| threads | B | D | H | N | extract | train | retarget | score | select | step | step − train − retarget − score − select |"
    out.append(header)
    out.append(separator(header))
    for threads, (ctx, runs) in sorted(by_threads.items()):
        shapes = sorted({shape_key(parse(n)[1]) for n in runs if n.startswith("step/")})
        for s in shapes:
            suffix = "/B:{}/D:{}/H:{}/N:{}".format(*s)
            get = lambda p: runs.get(p + suffix)
            ex = runs.get(f"extract/B:{s[0]}/D:{s[1]}")
            sel = runs.get(f"select_top_k/B:{s[0]}")
            parts = [get("train"), get("retarget"), get("score"), sel]
            sec = lambda b: seconds(b, threads)
            cells = [fmt_time(sec(ex)) if ex else "–"] + [fmt_time(sec(p)) if p else "–" for p in parts]
            st = get("step")
            step_cell = fmt_time(sec(st)) if st else "–"
            rest_cell = "–"
            if st:
                rest_cell = f"{(sec(st) - sum(sec(p) for p in parts if p)) * 1e3:.1f} ms"
            out.append(f"| {threads} | {s[0]} | {s[1]} | {s[2]} | {s[3]} | " + " | ".join(cells) +
                       f" | {step_cell} | {rest_cell} |")
    out.append("")
    # The reference shape.
    out.append("### The reference shape (B = 8, D = H = 1024, N = 6, P = 32, 2×2 Adam steps)\n")
    out.append("Against PyTorch schedulers measured in the same run: *Against the public SamS code* below.\n")
    out.append("| threads | training phase (f1 + f2) | + retarget | whole step |")
    out.append("|---|---|---|---|")
    for threads, (ctx, runs) in sorted(by_threads.items()):
        suffix = "/B:8/D:1024/H:1024/N:6"
        t, r, st = runs.get("train" + suffix), runs.get("retarget" + suffix), runs.get("step" + suffix)
        if t is None:
            continue
        sec = lambda b: seconds(b, threads)
        out.append(f"| {threads} | {fmt_time(sec(t))} | {fmt_time(sec(t) + sec(r)) if r else '–'} | "
                   f"{fmt_time(sec(st)) if st else '–'} |")
    out.append("")
    for threads, (ctx, runs) in sorted(by_threads.items()):
        out.append(context_line(ctx, f"bench_scheduler, OMP_NUM_THREADS={threads}") + "  ")
    out.append("")
    return out


def loss_tables(path):
    ctx, runs = load(path)
    out = ["### The loss family over B = 65 536 pairs (float)\n"]
    memcpy = [b for n, b in runs.items() if n.startswith("memcpy/")]
    memcpy.sort(key=lambda b: parse(b["name"])[1].get("bytes", 0))
    bw = lambda b: 2 * parse(b["name"])[1]["bytes"] / seconds(b)
    cache_bw = bw(memcpy[0]) if memcpy else float("nan")
    dram_bw = bw(memcpy[-1]) if memcpy else float("nan")
    out.append(f"memcpy in the same run: {cache_bw / 2**30:.1f} GiB/s (read + write) over the loss's working set "
               f"(cache-resident), {dram_bw / 2**30:.1f} GiB/s over 2 × 64 MiB (main memory). Bound = that "
               "bandwidth ÷ bytes a pair must move (inputs read + six outputs written).\n")
    out.append("| loss | time | Mpairs/s | bytes/pair | bound (cache) Mpairs/s | % of bound | bound (DRAM) Mpairs/s |")
    out.append("|---|---|---|---|---|---|---|")
    for name, b in runs.items():
        if not (name.startswith("loss/") or name.startswith("loss_double/")):
            continue
        kind = name.split("/")[1] + (" (double)" if name.startswith("loss_double") else "")
        pps = PAIRS / seconds(b)
        bpp = b["bytes_per_pair"]
        bound = cache_bw / bpp
        out.append(f"| {kind} | {fmt_time(seconds(b))} | {pps / 1e6:.1f} | {bpp:.0f} | {bound / 1e6:.0f} | "
                   f"{100 * pps / bound:.1f} % | {dram_bw / bpp / 1e6:.0f} |")
    v = next((b for n, b in runs.items() if n.startswith("validate/")), None)
    if v:
        out.append(f"\nInput validation alone (sigmoid's fields, one finiteness pass): {fmt_time(seconds(v))}, "
                   f"{PAIRS / seconds(v) / 1e6:.0f} Mpairs/s.")
    out.append("")
    out.append(context_line(ctx, "bench_loss"))
    out.append("")
    return out


def memory_tables(path):
    ctx, runs = load(path)
    out = ["### Heap of a step (measured by interposing malloc)\n"]
    out.append("| B | D | H | N | params | param state (4 tensors) | construction | first step: peak / allocs | "
               "first update: peak / allocs | steady step: peak / allocs per step | live, pool at P·K rows |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, b in runs.items():
        if not name.startswith("step_memory/"):
            continue
        mib = lambda k: b[k] * 2**20
        out.append(f"| {int(b['B'])} | {int(b['D'])} | {int(b['H'])} | {int(b['N'])} | {b['params'] / 1e6:.2f} M | "
                   f"{fmt_bytes(mib('param_state_MiB'))} | {fmt_bytes(mib('construct_MiB'))} | "
                   f"{fmt_bytes(mib('first_step_peak_MiB'))} / {int(b['first_step_allocs'])} | "
                   f"{fmt_bytes(mib('first_update_peak_MiB'))} / {int(b['first_update_allocs'])} | "
                   f"{fmt_bytes(mib('steady_peak_MiB'))} / {b['steady_allocs_per_step']:.0f} | "
                   f"{fmt_bytes(mib('live_MiB'))} ({int(b['pool_rows'])} rows, {fmt_bytes(mib('pool_MiB'))}) |")
    out.append("")
    out.append("### The replay pool at capacity\n")
    out.append("| D | capacity (rows) | expected C·(D+1)·4 | largest live block (contexts) | largest ÷ C·D·4 | "
               "scheduler live | peak while growing |")
    out.append("|---|---|---|---|---|---|---|")
    for name, b in runs.items():
        if not name.startswith("pool_memory/"):
            continue
        mib = lambda k: b[k] * 2**20
        out.append(f"| {int(b['D'])} | {int(b['capacity_rows'])} | {fmt_bytes(mib('expected_pool_MiB'))} | "
                   f"{fmt_bytes(mib('largest_block_MiB'))} | {b['largest_over_contexts']:.4f} | "
                   f"{fmt_bytes(mib('scheduler_live_MiB'))} | {fmt_bytes(mib('growth_peak_MiB'))} |")
    out.append("")
    out.append(context_line(ctx, "bench_memory"))
    out.append("")
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = Path(argv[1])
    lines = []
    lines += scheduler_tables(sorted(d.glob("scheduler-omp*.json")))
    if (d / "loss.json").exists():
        lines += loss_tables(d / "loss.json")
    if (d / "memory.json").exists():
        lines += memory_tables(d / "memory.json")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
