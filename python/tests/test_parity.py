"""Parity with the C++ scheduler: tests/parity_main.cpp configures a scheduler in C++ (every
section off its defaults); here the same configuration is written as keyword arguments. Same
seed and inputs must give identical checkpoints and identical decisions."""

import os
import subprocess

import numpy as np
import pytest
import torch

import sams

EXE = os.environ.get("SAMS_PARITY_EXE")

# The keyword form of parity_config() in parity_main.cpp.
PARITY = dict(
    loss={"kind": "robust", "beta": 0.2, "label_smoothing": 0.1},
    net={"hidden": 24, "depth": 4, "block_size": 8, "explore_depth": 3, "act": "silu", "dropout": 0.1},
    opt={"learning_rate": 3e-3, "beta2": 0.99, "weight_decay": 1e-4, "exploit_steps": 3, "explore_steps": 2,
         "early_stop_mse": 0.0},
    reward={"alpha": 0.7, "smoothing_lambda": 0.3, "chosen_reward_term": True},
    pool={"capacity_rows": 40, "replay_batches": 2},
    select={"ratio": 0.375, "rule": sams.SelectionRule.softmax_sample, "temperature": 0.5, "explore_weight": 0.05,
            "warmup_steps": 2},
)
STEPS, B, D, SEED = 7, 16, 10, 20251


@pytest.mark.skipif(not EXE, reason="SAMS_PARITY_EXE is not set (the CTest test `python` sets it)")
def test_python_and_cpp_schedulers_agree_bit_for_bit(tmp_path):
    assert os.path.isfile(EXE), f"SAMS_PARITY_EXE={EXE} does not exist; build the target sams_python_parity"
    g = np.random.default_rng(99)
    steps = []
    for _ in range(STEPS):
        a_w, a_l = g.normal(-20, 3, B), g.normal(-21, 3, B)
        steps.append([x.astype(np.float32) for x in (
            a_w, a_l, a_w + g.normal(0, 1, B), a_l + g.normal(0, 1, B),
            g.integers(5, 40, B), g.integers(5, 40, B), g.normal(size=(B, D)))])
    with open(tmp_path / "inputs.bin", "wb") as f:
        f.write(np.array([STEPS, B, D], dtype=np.uint64).tobytes())
        for arrays in steps:
            for a in arrays:
                f.write(np.ascontiguousarray(a).tobytes())
    subprocess.run([EXE, str(tmp_path / "inputs.bin"), str(tmp_path)], check=True)

    sched = sams.Scheduler(D, seed=SEED, **PARITY)
    assert sched.state_dict() == (tmp_path / "initial.ckpt").read_bytes()  # config, nets, RNGs

    raw = (tmp_path / "decisions.bin").read_bytes()
    pos = 0
    for i, (a_w, a_l, r_w, r_l, n_w, n_l, ctx) in enumerate(steps):
        args = (a_w, a_l, r_w, r_l)
        if i % 2:  # every other step through torch tensors
            args = tuple(torch.from_numpy(x) for x in args)
        d = sched.step(*args, contexts=ctx, chosen_length=n_w, rejected_length=n_l)
        k = int(np.frombuffer(raw, np.uint64, 1, pos)[0])
        pos += 8
        np.testing.assert_array_equal(d.selected, np.frombuffer(raw, np.int64, k, pos))
        pos += 8 * k
        for name in ("weight", "loss", "d_policy_chosen", "d_policy_rejected", "score"):
            np.testing.assert_array_equal(getattr(d, name), np.frombuffer(raw, np.float32, B, pos), err_msg=name)
            pos += 4 * B
    assert pos == len(raw)
    assert sched.state_dict() == (tmp_path / "final.ckpt").read_bytes()
