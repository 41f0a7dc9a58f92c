#!/usr/bin/env python3
"""The SamS scheduler step written straightforwardly in PyTorch: the reference that
bench_gpu_scheduler.cu is compared with (tools/gpu_check.sh runs both in the same session).

One step at batch size B: score the B contexts with f1 and f2 (eval mode), then E1 = 4 Adam
steps of f1 on R = (P+1)·B rows, f1's forward on those rows for f2's targets, and E2 = 4 Adam
steps of f2 on their block-averaged activations. Same architecture as sams (docs/algorithm.md): f1 has
an input layer, N−2 residual blocks x ← LayerNorm(x + relu(W x + b)) and a scalar output; f2
reads φ (block mean of f1's block activations, block s) and adds φ in every skip.

Prints one JSON object per line: median and min milliseconds per step, fp32 and TF32 on
CUDA; on the CPU (--device cpu, for tools/run_reference_comparison.sh) fp32 only, with the
CPU time of the median step, on --threads threads. --select K trains on (P+1)·K rows (the
sams benchmark's ρ = 1/2 is K = B/2); by default K = B.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def _threads_from_argv() -> None:
    # OpenBLAS and OpenMP size their thread pools when torch loads, so the count must be in
    # the environment before the import below, whatever torch.set_num_threads says later.
    if "--threads" in sys.argv[1:-1]:
        n = sys.argv[sys.argv.index("--threads") + 1]
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = n


_threads_from_argv()
import torch  # noqa: E402  (after the thread environment)
from torch import nn  # noqa: E402


class ExploitNet(nn.Module):
    def __init__(self, dim: int, hidden: int, depth: int, block: int):
        super().__init__()
        self.block = block
        self.input = nn.Linear(dim, hidden)
        self.linears = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 2))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden, eps=1e-6) for _ in range(depth - 2))
        self.output = nn.Linear(hidden, 1)

    def forward(self, c: torch.Tensor):
        x = torch.relu(self.input(c))
        acts = []
        for lin, norm in zip(self.linears, self.norms):
            a = torch.relu(lin(x))
            acts.append(a)
            x = norm(x + a)
        phi_raw = torch.cat(acts, dim=1)
        phi = phi_raw.view(phi_raw.shape[0], -1, self.block).mean(dim=2)
        return self.output(x).squeeze(1), phi


class ExploreNet(nn.Module):
    def __init__(self, width: int, depth: int):
        super().__init__()
        self.input = nn.Linear(width, width)
        self.linears = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 2))
        self.norms = nn.ModuleList(nn.LayerNorm(width, eps=1e-6) for _ in range(depth - 2))
        self.output = nn.Linear(width, 1)

    def forward(self, phi: torch.Tensor):
        x = torch.relu(torch.relu(self.input(phi)) + phi)
        for lin, norm in zip(self.linears, self.norms):
            x = norm(torch.relu(lin(x)) + phi)
        return self.output(x).squeeze(1)


def bench(batch: int, args, tf32: bool) -> dict:
    cuda = args.device == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    dev = torch.device(args.device)
    torch.manual_seed(0)
    f1 = ExploitNet(args.dim, args.hidden, args.depth, args.block).to(dev)
    width = args.hidden * (args.depth - 2) // args.block
    f2 = ExploreNet(width, args.explore_depth).to(dev)
    opt1 = torch.optim.Adam(f1.parameters(), lr=1e-4, weight_decay=1e-5)
    opt2 = torch.optim.Adam(f2.parameters(), lr=1e-4, weight_decay=1e-5)
    k = args.select or batch  # by default rho = 1, as the sams GPU benchmark's full step
    rows = (args.replay + 1) * k
    ctx = torch.randn(batch, args.dim, device=dev)
    x = torch.randn(rows, args.dim, device=dev)
    y = 0.5 + 0.1 * torch.randn(rows, device=dev)

    def step():
        f1.eval()
        f2.eval()
        with torch.no_grad():
            s1, phi = f1(ctx)
            u = s1 + 0.01 * f2(phi)
            torch.topk(u, k)
        f1.train()
        f2.train()
        for _ in range(4):
            opt1.zero_grad(set_to_none=True)
            pred, _ = f1(x)
            torch.mean((pred - y) ** 2).backward()
            opt1.step()
        with torch.no_grad():
            pred, phi_rows = f1(x)
            y2 = y - pred
        for _ in range(4):
            opt2.zero_grad(set_to_none=True)
            torch.mean((f2(phi_rows) - y2) ** 2).backward()
            opt2.step()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    sync()
    times, cpu = [], []
    for _ in range(args.reps):
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    out = {"bench": "torch_step", "device": args.device, "B": batch, "K": k, "tf32": tf32, "rows": rows,
           "median_ms": statistics.median(times), "min_ms": min(times), "torch": torch.__version__}
    if cuda:
        out["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["threads"] = torch.get_num_threads()
        out["cpu_median_ms"] = statistics.median(cpu)
    del f1, f2, opt1, opt2
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="8,64")
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--block", type=int, default=16)
    p.add_argument("--explore-depth", type=int, default=4)
    p.add_argument("--replay", type=int, default=32)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--select", type=int, default=0, help="K pairs kept per batch (0: K = B)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.device == "cuda":
        print(json.dumps({"bench": "torch_device", "name": torch.cuda.get_device_name(0)}), flush=True)
    elif args.threads > 0:
        torch.set_num_threads(args.threads)
    for batch in (int(b) for b in args.batches.split(",")):
        for tf32 in ((False, True) if args.device == "cuda" else (False,)):
            print(json.dumps(bench(batch, args, tf32)), flush=True)


if __name__ == "__main__":
    main()
