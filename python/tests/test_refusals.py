"""Every refusal class of the C++ API raises the mapped Python exception, carries the C++
message and leaves the state unchanged: the state_dict bytes are identical afterwards and
the next valid step decides as in an untouched twin."""

import numpy as np
import pytest
import torch

import sams
from conftest import D, SMALL, make_batch


def drop(b, *keys):
    return {k: v for k, v in b.items() if k not in keys}


BAD_BATCHES = [
    # (name, batch edit, exception, message pattern)
    ("empty", lambda b: {**b, **{k: b[k][:0] for k in b}}, sams.InvalidArgument,
     r"^sams_scheduler::step: batch is empty \(policy_chosen has no entries\)$"),
    ("no contexts", lambda b: drop(b, "contexts"), sams.InvalidArgument,
     r"^sams_scheduler::step: batch.contexts must have one row per pair \(8\), got 0 with a null data pointer$"),
    ("context rows", lambda b: {**b, "contexts": b["contexts"][:7]}, sams.InvalidArgument,
     r"^sams_scheduler::step: batch.contexts must have one row per pair \(8\), got 7$"),
    ("context width", lambda b: {**b, "contexts": b["contexts"][:, :5]}, sams.InvalidArgument,
     r"^sams_scheduler::step: batch.contexts has 5 columns, the scheduler was built for context_dim 12$"),
    ("context NaN", lambda b: {**b, "contexts": np.where(np.arange(D) == 3, np.nan, b["contexts"]).astype(np.float32)},
     sams.InvalidArgument, r"^sams_scheduler::step: batch.contexts contains NaN or Inf$"),
    ("ids length", lambda b: {**b, "ids": np.arange(3)}, sams.InvalidArgument,
     r"^sams_scheduler::step: batch.ids must be empty or have one entry per pair$"),
    ("length mismatch", lambda b: {**b, "policy_rejected": b["policy_rejected"][:6]}, sams.InvalidArgument,
     r"^evaluate_loss: policy_rejected has length 6, expected the batch size 8 \(the length of policy_chosen\)$"),
    ("log-prob Inf", lambda b: {**b, "reference_chosen": np.full(8, np.inf, np.float32)}, sams.InvalidArgument,
     r"^evaluate_loss: reference_chosen\[0\] is inf, expected a finite value$"),
    ("no reference", lambda b: drop(b, "reference_chosen", "reference_rejected"), sams.InvalidArgument,
     r"^evaluate_loss: reference_chosen is empty, but the sigmoid loss needs the reference log-probs r_w and r_l$"),
    ("one length only", lambda b: {**b, "chosen_length": np.ones(8, np.float32)}, sams.InvalidArgument,
     r"^evaluate_loss: rejected_length has length 0, expected the batch size 8"),
    ("length <= 0", lambda b: {**b, "chosen_length": np.zeros(8, np.float32), "rejected_length": np.ones(8, np.float32)},
     sams.InvalidArgument, r"^evaluate_loss: chosen_length\[0\] is 0, expected a length > 0$"),
    # Refused by the binding before C++ sees the batch, with the same exception class.
    ("2-D log-probs", lambda b: {**b, "policy_chosen": b["policy_chosen"][:, None]}, sams.InvalidArgument,
     r"^sams step: policy_chosen must be 1-D, got shape \(8, 1\)$"),
    ("complex", lambda b: {**b, "policy_chosen": b["policy_chosen"].astype(np.complex64)}, sams.InvalidArgument,
     r"^sams step: policy_chosen must hold real numbers, got dtype complex64$"),
    ("strings", lambda b: {**b, "policy_chosen": ["a"] * 8}, sams.InvalidArgument,
     r"^sams step: policy_chosen must hold real numbers, got dtype <U1$"),
    ("float ids", lambda b: {**b, "ids": np.zeros(8)}, sams.InvalidArgument,
     r"^sams step: ids must hold integers, got dtype float64$"),
    ("not on the CPU", lambda b: {**b, "contexts": torch.empty(8, D, device="meta")}, sams.InvalidArgument,
     r"^sams step: contexts is a torch tensor on 'meta'; move it to the CPU"),
]


@pytest.mark.parametrize("name, edit, exc, pattern", BAD_BATCHES, ids=[x[0] for x in BAD_BATCHES])
def test_bad_batch_is_refused_without_state_change(rng, name, edit, exc, pattern):
    s, twin = sams.Scheduler(D, seed=11, **SMALL), sams.Scheduler(D, seed=11, **SMALL)
    for _ in range(2):  # a pending selection and a trained net: real state to protect
        b = make_batch(rng)
        s.step(**b)
        twin.step(**b)
    before = s.state_dict()
    good = make_batch(rng)
    with pytest.raises(exc, match=pattern):
        s.step(**edit(good))
    assert s.state_dict() == before and s.steps == 2
    d1, d2 = s.step(**good), twin.step(**good)
    np.testing.assert_array_equal(d1.selected, d2.selected)
    assert s.state_dict() == twin.state_dict()


def test_reward_needing_chosen_length_is_refused(rng):
    s = sams.Scheduler(D, seed=1, reward={"length_normalized_chosen": True}, **SMALL)
    before = s.state_dict()
    with pytest.raises(sams.InvalidArgument, match=r"^sams_scheduler::step: batch.chosen_length is required "
                                                   r"\(reward_config.length_normalized_chosen\)"):
        s.step(**make_batch(rng))
    assert s.state_dict() == before


def test_length_normalised_loss_needs_lengths(rng):
    sel = sams.LossSelector(loss={"kind": "simpo"})
    before = sel.state_dict()
    with pytest.raises(sams.InvalidArgument, match=r"^evaluate_loss: chosen_length is empty, but the simpo loss is "
                                                   r"length-normalised"):
        sel.step(**make_batch(rng))
    assert sel.state_dict() == before and sel.steps == 0


@pytest.mark.parametrize("cls, args", [(sams.FullBatch, ()), (sams.UniformSelector, (3,)), (sams.LossSelector, ()),
                                       (sams.MarginSelector, ())])
def test_baselines_refuse_bad_batches_without_state_change(rng, cls, args):
    sel, twin = cls(*args), cls(*args)
    sel.step(**make_batch(rng))
    twin.step(**make_batch(np.random.default_rng(1234)))
    before = sel.state_dict()
    good = make_batch(rng)
    with pytest.raises(sams.InvalidArgument, match="^evaluate_loss: policy_chosen\\[2\\] is nan"):
        sel.step(**{**good, "policy_chosen": np.where(np.arange(8) == 2, np.nan, good["policy_chosen"])})
    assert sel.state_dict() == before
    np.testing.assert_array_equal(sel.step(**good).selected, twin.step(**good).selected)


def corrupt(b, i):
    x = bytearray(b)
    x[i] ^= 0x40
    return bytes(x)


def test_bad_checkpoints_are_refused_without_state_change(rng):
    s = sams.Scheduler(D, seed=2, **SMALL)
    s.step(**make_batch(rng))
    before = s.state_dict()
    other_cfg = sams.Scheduler(D, seed=2, **{**SMALL, "select": {"ratio": 0.25}}).state_dict()
    other_dim = sams.Scheduler(D + 1, seed=2, **SMALL).state_dict()
    cases = [
        (b"", r"^checkpoint: file too short \(0 bytes\) to be a sams checkpoint$"),
        (b"X" + before[1:], r"^checkpoint: bad magic, not a sams checkpoint$"),
        (before[:-9], r"^checkpoint: payload length \d+ does not match the file size"),
        (corrupt(before, len(before) // 2), r"^checkpoint: checksum mismatch \(the file is corrupted\)$"),
        (corrupt(before, 8), r"^checkpoint: format version \d+ is not supported"),
        (other_cfg, r"^checkpoint: written with a different configuration \(field select.ratio differs\)$"),
        (other_dim, r"^checkpoint: context_dim is 13, this scheduler has 12$"),
        (sams.FullBatch().state_dict(), r"^checkpoint: "),
    ]
    for data, pattern in cases:
        with pytest.raises(sams.CheckpointError, match=pattern):
            s.load_state_dict(data)
        assert s.state_dict() == before
    with pytest.raises(sams.CheckpointError):
        sams.Scheduler.from_state_dict(before[:40])
    with pytest.raises(sams.CheckpointError, match=r"^checkpoint: written by FullBatch, not UniformSelector$"):
        sams.UniformSelector(1).load_state_dict(sams.FullBatch().state_dict())
    u = sams.UniformSelector(1)
    before_u = u.state_dict()
    with pytest.raises(sams.CheckpointError, match=r"field select.ratio differs"):
        u.load_state_dict(sams.UniformSelector(1, select={"ratio": 0.25}).state_dict())
    with pytest.raises(sams.CheckpointError):
        u.load_state_dict(s.state_dict())
    assert u.state_dict() == before_u
    assert isinstance(sams.CheckpointError("x"), RuntimeError)
