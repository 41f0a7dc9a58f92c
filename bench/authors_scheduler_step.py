#!/usr/bin/env python3
"""Times the public SamS code's scheduler training at one shape on the CPU: the paper
authors' own network classes and train_NN_batch (scheduler.py of their repository),
driven as their trainer drives them, so that bench_scheduler's `train` phase has a
measured reference in the same run (tools/run_reference_comparison.sh).

Their code is not part of sams and is not copied here: pass the folder that holds their
scheduler.py (for example `git --git-dir=<their repo>/.git show HEAD:scheduler.py >
DIR/scheduler.py`). The imports it needs but never calls on this path (their `utils`
module, `transformers`, `tqdm`) are replaced by empty stand-ins.

Equal work with bench_scheduler's `train/B:8/D:1024/H:1024/N:6`: R = (P+1)·K = 132 rows,
f1 = Residual_Network_exploitation(dim=D, hidden=H, num_layers=N, residual, LayerNorm),
f2 = Residual_Network_exploration(dim = hidden = H·(N−2)/16, num_layers=4, block 16),
four full-batch Adam steps of each (train_NN_batch with num_batch=2, num_epochs=2 and the
early stop disabled, threshold=-1), float32, no dropout. One timed unit = f1's and f2's
train_NN_batch calls, as sams's `train` phase is f1's and f2's updates.

Prints one JSON object per line: median and min milliseconds over --reps units, plus the
CPU time of the median unit (process time, which ignores other processes on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import types


def install_stand_ins() -> None:
    """Empty modules for the imports scheduler.py makes at the top but never uses here."""
    utils = types.ModuleType("utils")
    utils.all_gather_if_needed = lambda *a, **k: None  # distributed gather: not on this path
    transformers = types.ModuleType("transformers")
    for name in ("AutoTokenizer", "AutoModel", "AutoConfig"):
        setattr(transformers, name, None)  # only the encoder variant of f1 uses them
    tqdm = types.ModuleType("tqdm")
    tqdm.tqdm = lambda it=None, *a, **k: it
    for m in (utils, transformers, tqdm):
        sys.modules.setdefault(m.__name__, m)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors-dir", required=True, help="folder holding the public SamS scheduler.py")
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--block", type=int, default=16)
    p.add_argument("--explore-depth", type=int, default=4)
    p.add_argument("--rows", type=int, default=132, help="(P+1)·K training rows")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args()

    if not os.path.isfile(os.path.join(args.authors_dir, "scheduler.py")):
        p.error(f"--authors-dir: no scheduler.py in {args.authors_dir}")
    install_stand_ins()
    sys.path.insert(0, args.authors_dir)
    # OpenBLAS starts its own thread pool when it loads, whatever torch.set_num_threads says.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch  # after the path change: nothing of theirs shadows it
    import scheduler as authors  # their scheduler.py

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    width = args.hidden * (args.depth - 2) // args.block
    f1 = authors.Residual_Network_exploitation(None, args.dim, hidden_size=args.hidden, k=1,
                                               num_layers=args.depth, use_residual=True)
    f2 = authors.Residual_Network_exploration(None, width, hidden_size=width, k=1,
                                              num_layers=args.explore_depth, block_size=args.block,
                                              use_residual=True)
    x1 = torch.randn(args.rows, args.dim)
    y1 = 0.3 + 0.4 * torch.rand(args.rows)
    with torch.no_grad():
        _, acts = f1(x1, None)
    x2 = acts.view(args.rows, -1, args.block).mean(dim=2)  # their block_reduce, as a view
    y2 = 0.1 * torch.rand(args.rows) - 0.05

    def unit() -> None:
        # Their trainer's call: lr and weight decay of their config; a fresh Adam per call
        # and the targets reshaped inside the loop are their code's, kept as they are.
        authors.train_NN_batch(f1, x1, y1, num_epochs=2, lr=1e-4, num_batch=2, is_f1=True,
                               weight_decay=1e-5, threshold=-1, device="cpu")
        authors.train_NN_batch(f2, x2, y2, num_epochs=2, lr=1e-4, num_batch=2, is_f1=False,
                               weight_decay=1e-5, threshold=-1, device="cpu")

    unit()  # warm-up: allocator and OpenBLAS buffers
    wall, cpu = [], []
    for _ in range(args.reps):
        c0, t0 = time.process_time(), time.perf_counter()
        unit()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    params = sum(q.numel() for q in f1.parameters()) + sum(q.numel() for q in f2.parameters())
    print(json.dumps({"bench": "authors_train", "threads": args.threads, "rows": args.rows, "D": args.dim,
                      "H": args.hidden, "N": args.depth, "params": params,
                      "median_ms": statistics.median(wall), "min_ms": min(wall),
                      "cpu_median_ms": statistics.median(cpu), "torch": torch.__version__,
                      "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")}), flush=True)


if __name__ == "__main__":
    main()
