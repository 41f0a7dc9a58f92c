"""Run by test_distributed.py: 2 gloo processes, each stepping a sams.DistributedScheduler on
its half of every global batch, compared with a plain Scheduler on the whole batch."""

import os
import sys
import tempfile

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import sams

D, B, STEPS = 6, 8, 4
CFG = dict(net={"hidden": 16, "depth": 3, "block_size": 4}, select={"ratio": 0.5})


def batches():
    g = np.random.default_rng(5)
    for _ in range(STEPS):
        a_w, a_l = g.normal(-5, 1, B), g.normal(-6, 1, B)
        yield [x.astype(np.float32) for x in (a_w, a_l, a_w + g.normal(0, .3, B), a_l + g.normal(0, .3, B),
                                              g.normal(size=(B, D)))]


def worker(rank, init_file, mode):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    ds = sams.DistributedScheduler(sams.Scheduler(D, seed=3, **CFG), global_batch=B, mode=mode)
    single = sams.Scheduler(D, seed=3, **CFG)
    half = slice(rank * B // 2, (rank + 1) * B // 2)
    for i, (a_w, a_l, r_w, r_l, ctx) in enumerate(batches()):
        local = [torch.from_numpy(x[half].copy()) for x in (a_w, a_l, r_w, r_l, ctx)]
        d = ds.step(*local[:4], contexts=local[4])
        ref = single.step(a_w, a_l, r_w, r_l, contexts=ctx)
        assert ds.offset == rank * B // 2 and ds.global_size == B
        np.testing.assert_array_equal(d.weight, ref.weight[half])
        np.testing.assert_array_equal(d.d_policy_chosen, ref.d_policy_chosen[half])
        np.testing.assert_array_equal(ds.global_decision().selected, ref.selected)
    if mode == "replicated" or rank == 0:
        assert ds.state_dict() == single.state_dict()
    # One rank's NaN: both ranks get the same sams.InvalidArgument naming rank 1.
    bad = [x.clone() for x in local]
    if rank == 1:
        bad[0][0] = float("nan")
    try:
        ds.step(*bad[:4], contexts=bad[4])
        raise AssertionError("no error")
    except sams.InvalidArgument as e:
        assert "rank 1" in str(e), str(e)
    dist.destroy_process_group()
    print(f"rank {rank} {mode}: ok", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(os.path.join(tmp, "init"), mode), nprocs=2)
