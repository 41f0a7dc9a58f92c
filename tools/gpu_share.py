#!/usr/bin/env python3
"""The share step of tools/gpu_check.sh: reads the JSON lines of bench.txt
(bench_gpu_scheduler), torch.txt (bench/torch_scheduler_step.py) and dpo*.txt
(bench/dpo_step_cost.py) in OUT and prints a Markdown summary against the targets:

  - sams fp32 step within 1.2x of the GEMM-bound time of its training phase;
  - sams TF32 step at least 2x faster than the fp32 PyTorch step;
  - the scheduler step at most 5 % of the 1 B DPO step (B = 8 and 64 pairs);
  - context extraction adding less than 1 % to the DPO step's peak memory.

A missing file or line reads "not measured". Standard library only.

    python3 tools/gpu_share.py OUT > OUT/share.txt
"""

from __future__ import annotations

import json
import pathlib
import sys

NA = "not measured"


def read_lines(path: pathlib.Path) -> list[dict]:
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut off by a timeout
    return rows


def ms(x) -> str:
    return NA if x is None else f"{x:.2f} ms"


def ratio(a, b):
    return a / b if a is not None and b else None


def verdict(value, target: float, at_most: bool) -> str:
    if value is None:
        return NA
    return "met" if (value <= target if at_most else value >= target) else "missed"


def fmt(x, spec: str, suffix: str = "") -> str:
    return NA if x is None else f"{x:{spec}}{suffix}"


def judged(x, spec: str, suffix: str, target: float, at_most: bool) -> str:
    """The value and whether it meets the target, or "not measured"."""
    return NA if x is None else f"{x:{spec}}{suffix} ({verdict(x, target, at_most)})"


def main() -> int:
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    bench = read_lines(out / "bench.txt")
    torch_rows = read_lines(out / "torch.txt")
    dpo = [r for p in sorted(out.glob("dpo*.txt")) for r in read_lines(p)]

    def pick(rows, kind, **keys):
        for r in rows:
            if r.get("bench") == kind and "error" not in r and all(r.get(k) == v for k, v in keys.items()):
                return r
        return None

    def get(row, field):
        return None if row is None else row.get(field)

    dev = pick(bench, "device") or pick(torch_rows, "torch_device") or pick(dpo, "dpo_device")
    print("# GPU check: sams scheduler vs PyTorch, and its share of a DPO step\n")
    print(f"Device: {get(dev, 'name') or NA}. Sources: bench.txt, torch.txt, dpo*.txt in {out}.\n")

    batches = sorted({r["B"] for r in bench + torch_rows if r.get("bench") in ("step", "torch_step") and "B" in r}
                     | {8, 64})

    print("## Scheduler step (D = H = 4096, N = 16, P = 32)\n")
    print("| B | sams fp32 | sams TF32 | GEMM-bound time (fp32) | fp32 step / GEMM-bound (≤ 1.2) "
          "| train phase / GEMM (fp32) | PyTorch fp32 | PyTorch TF32 | PyTorch fp32 / sams TF32 (≥ 2) "
          "| PyTorch TF32 / sams TF32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for b in batches:
        s32, stf = pick(bench, "step", B=b, tf32=False), pick(bench, "step", B=b, tf32=True)
        tr32 = pick(bench, "train", B=b, tf32=False)
        t32, ttf = pick(torch_rows, "torch_step", B=b, tf32=False), pick(torch_rows, "torch_step", B=b, tf32=True)
        gemm_bound = get(tr32, "gemm_equivalent_ms")
        over = ratio(get(s32, "median_ms"), gemm_bound)
        speed = ratio(get(t32, "median_ms"), get(stf, "median_ms"))
        speed_tf = ratio(get(ttf, "median_ms"), get(stf, "median_ms"))
        print(f"| {b} | {ms(get(s32, 'median_ms'))} | {ms(get(stf, 'median_ms'))} | {ms(gemm_bound)} "
              f"| {judged(over, '.2f', 'x', 1.2, True)} | {fmt(get(tr32, 'overhead_vs_gemm'), '.2f', 'x')} "
              f"| {ms(get(t32, 'median_ms'))} | {ms(get(ttf, 'median_ms'))} "
              f"| {judged(speed, '.2f', 'x', 2.0, False)} | {fmt(speed_tf, '.2f', 'x')} |")
    for math in ("tf32", "bf16"):
        label = math.upper() if math == "tf32" else "bf16"
        acc = pick(bench, f"{math}_accuracy")
        if acc:
            print(f"\n{label} accuracy (B = {acc.get('B')}): max |Δ prediction| / sd = "
                  f"{acc.get('max_diff_over_sd'):.2e}, MSE fp32 {acc.get('fp32_mse'):.4e} vs {label} "
                  f"{acc.get(math + '_mse'):.4e}.")
        else:
            print(f"\n{label} accuracy: {NA}.")

    sizes = sorted({r["size"] for r in dpo if r.get("bench") == "dpo_step" and "size" in r} | {"1b"})
    print("\n## Scheduler share of the DPO step (target ≤ 5 % at 1 B)\n")
    print("DPO step: policy forward + backward on chosen and rejected, reference forward, DPO loss, "
          "AdamW; B pairs of the stated length, bf16 autocast.\n")
    print("| model | B (pairs) | DPO step | sams fp32 | share fp32 | sams TF32 | share TF32 |")
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        model = pick(dpo, "dpo_model", size=size)
        label = f"{size} ({get(model, 'params_b')} B params)" if model else size
        for b in batches:
            d = pick(dpo, "dpo_step", size=size, pairs=b)
            if d is None and size != "1b":
                continue  # larger models are measured at B = 8 only
            label_b = f"{b}" + (f" × {d.get('seq')} tokens" if d else "")
            row = [label, label_b, ms(get(d, "median_ms"))]
            for tf32 in (False, True):
                s = pick(bench, "step", B=b, tf32=tf32)
                share = ratio(get(s, "median_ms"), get(d, "median_ms"))
                pct = None if share is None else 100 * share
                shown = judged(pct, ".2f", " %", 5.0, True) if size == "1b" else fmt(pct, ".2f", " %")
                row += [ms(get(s, "median_ms")), shown]
            print("| " + " | ".join(row) + " |")
    errors = [r for r in dpo if "error" in r]
    for r in errors:
        print(f"\n{r.get('bench')} {r.get('size')} B = {r.get('pairs')} {r.get('method', '')}: {r['error']}")

    print("\n## Peak memory added by context extraction (target < 1 % of the step's peak)\n")
    print("pool: [B, D] fp32 contexts from a masked mean of the last hidden layer(s), what sams reads; "
          "stack: all per-layer hidden states in fp32, kept until the scheduler reads them.\n")
    print("| model | B | DPO step peak | pool: added | pool: % of peak | stack: added | stack: % of peak "
          "| sams scheduler device memory (fp32 step peak) |")
    print("|---|---|---|---|---|---|---|---|")
    any_row = False
    for size in sizes:
        for b in batches:
            d = pick(dpo, "dpo_step", size=size, pairs=b)
            pool, stack = pick(dpo, "dpo_context", size=size, pairs=b, method="pool"), \
                pick(dpo, "dpo_context", size=size, pairs=b, method="stack")
            if d is None and pool is None and stack is None:
                continue
            any_row = True
            s = pick(bench, "step", B=b, tf32=False)
            sched_mib = get(s, "peak_device_mib")
            sched_pct = ratio(sched_mib, get(d, "peak_mib"))
            sched = NA if sched_mib is None else f"{sched_mib:.0f} MiB" + (
                f" ({100 * sched_pct:.2f} % of the DPO peak)" if sched_pct is not None else "")
            cells = [size, str(b), fmt(get(d, "peak_mib"), ".0f", " MiB")]
            for c in (pool, stack):
                pct = get(c, "extra_peak_pct")
                cells += [fmt(get(c, "extra_peak_mib"), ".1f", " MiB"), judged(pct, ".3f", " %", 1.0, True)]
            cells.append(sched)
            print("| " + " | ".join(cells) + " |")
    if not any_row:
        print(f"| 1b | 8 | {NA} | {NA} | {NA} | {NA} | {NA} | {NA} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
