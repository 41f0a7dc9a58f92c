"""step(): inputs read in place or converted once, decisions checked against closed forms,
the GIL released while C++ runs."""

import gc
import sys
import threading

import numpy as np
import pytest
import torch

import sams
from conftest import D, SMALL, make_batch


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_full_batch_decision_matches_the_dpo_closed_form(rng):
    b = make_batch(rng, B=10)
    beta = 0.25
    d = sams.FullBatch(loss={"beta": beta}).step(**b)
    f = {k: v.astype(np.float64) for k, v in b.items()}
    h = (f["policy_chosen"] - f["reference_chosen"]) - (f["policy_rejected"] - f["reference_rejected"])
    loss = np.log1p(np.exp(-beta * h))  # -log sigmoid(beta h)
    grad = -beta * sigmoid(-beta * h) / 10  # w_i = 1/B
    np.testing.assert_allclose(d.loss, loss, rtol=1e-5)
    np.testing.assert_allclose(d.d_policy_chosen, grad, rtol=1e-5)
    np.testing.assert_allclose(d.d_policy_rejected, -grad, rtol=1e-5)
    assert d.selected.tolist() == list(range(10)) and d.mask.all() and np.allclose(d.weight, 0.1)
    assert d.score.size == 0 and d.metrics["step"] == 0
    assert abs(d.metrics["selected_loss"] - loss.mean()) < 1e-5


def test_scheduler_decision_is_consistent(rng, small_scheduler):
    for step in range(3):
        b = make_batch(rng, B=8)
        d = small_scheduler.step(**b)
        assert d.selected.dtype == np.int64 and d.mask.dtype == np.bool_ and d.weight.dtype == np.float32
        assert d.selected.tolist() == sorted(d.selected.tolist()) and len(d.selected) == 4  # K = 0.5 * 8
        assert np.flatnonzero(d.mask).tolist() == d.selected.tolist()
        np.testing.assert_array_equal(d.weight, np.where(d.mask, np.float32(0.25), np.float32(0)))
        assert d.score.shape == (8,) and np.isfinite(d.score).all()
        assert d.metrics["step"] == step and d.metrics["warmup"] == (step == 0)
        assert abs(float(np.dot(d.weight, d.loss)) - d.metrics["selected_loss"]) < 1e-6
    assert small_scheduler.steps == 3 and small_scheduler.updates == 2 and small_scheduler.pool_size == 8


def addresses(sched):
    return {k: v for k, v in sched._last_inputs().items()}


def test_float32_numpy_and_torch_are_read_in_place(rng, small_scheduler):
    b = make_batch(rng)
    small_scheduler.step(**b)
    seen = addresses(small_scheduler)
    for name, arr in b.items():
        assert seen[name] == (arr.ctypes.data, False), name

    # torch float32, with autograd history: detached, same memory.
    t = {k: torch.from_numpy(v.copy()) for k, v in make_batch(rng).items()}
    t["policy_chosen"].requires_grad_(True)
    small_scheduler.step(**t)
    seen = addresses(small_scheduler)
    for name, ten in t.items():
        assert seen[name] == (ten.data_ptr(), False), name


def test_row_strided_contexts_are_read_in_place_and_decide_the_same(rng):
    b = make_batch(rng)
    wide = np.zeros((8, 3 * D), dtype=np.float32)
    wide[:, D:2 * D] = b["contexts"]
    strided = wide[:, D:2 * D]  # row stride 3D, element stride 1
    assert not strided.flags.c_contiguous
    s1, s2 = sams.Scheduler(D, seed=3, **SMALL), sams.Scheduler(D, seed=3, **SMALL)
    for _ in range(3):  # same inputs, one contiguous and one strided: the same decisions
        d1 = s1.step(**b)
        d2 = s2.step(**{**b, "contexts": strided})
        assert addresses(s2)["contexts"] == (strided.ctypes.data, False)
        np.testing.assert_array_equal(d1.selected, d2.selected)
        np.testing.assert_array_equal(d1.score, d2.score)
    # A torch hidden-state slice (B, T, D)[:, -1, :] is read in place too.
    hidden = torch.randn(8, 5, D)
    last = hidden[:, -1, :]
    s1.step(**{**b, "contexts": last})
    assert addresses(s1)["contexts"] == (last.data_ptr(), False)


@pytest.mark.parametrize("convert", [
    lambda a: a.astype(np.float64),
    lambda a: torch.from_numpy(a.astype(np.float64)),
    lambda a: torch.from_numpy(a).to(torch.bfloat16),
    lambda a: torch.from_numpy(a).to(torch.float16),
    lambda a: np.repeat(a, 2, axis=0)[::2],  # float32, but strided elements (1-D) / rows of pairs (2-D)
], ids=["numpy-f64", "torch-f64", "torch-bf16", "torch-f16", "f32-strided"])
def test_other_dtypes_and_layouts_are_converted_once(rng, convert):
    b = make_batch(rng)
    conv = {k: convert(v) for k, v in b.items()}
    # What C++ should see: the float32 rounding of the converted values.
    as_f32 = {k: (v.float().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, dtype=np.float32))
              for k, v in conv.items()}
    s1, s2 = sams.Scheduler(D, seed=5, **SMALL), sams.Scheduler(D, seed=5, **SMALL)
    d1, d2 = s1.step(**conv), s2.step(**as_f32)
    seen = addresses(s1)
    for name in ("policy_chosen", "policy_rejected", "reference_chosen", "reference_rejected"):
        assert seen[name][1] is True, name
    np.testing.assert_array_equal(d1.loss, d2.loss)
    np.testing.assert_array_equal(d1.score, d2.score)
    assert s1.state_dict() == s2.state_dict()


def test_lists_and_integer_ids_are_accepted(rng):
    b = make_batch(rng, B=4)
    d = sams.FullBatch().step(*(b[k].tolist() for k in ("policy_chosen", "policy_rejected", "reference_chosen",
                                                        "reference_rejected")), ids=np.arange(4, dtype=np.int32))
    assert d.selected.tolist() == [0, 1, 2, 3]


def test_decision_arrays_view_the_cpp_result(rng, small_scheduler):
    d = small_scheduler.step(**make_batch(rng))
    w = d.weight
    assert w.base is not None and not w.flags.owndata
    t = d.tensors()
    assert t["weight"].data_ptr() == w.ctypes.data and t["selected"].dtype == torch.int64
    expected = w.copy()
    del d, t
    gc.collect()
    np.testing.assert_array_equal(w, expected)  # the array keeps the C++ buffers alive


def test_gil_is_released_during_step(rng):
    # A step long enough to notice (tens of ms), and a switch interval so long that the main
    # thread can only run while the stepping thread does not hold the GIL.
    sched = sams.Scheduler(256, seed=1, net={"hidden": 256, "depth": 6, "block_size": 16})
    b = make_batch(rng, B=256, D=256)
    sched.step(**b)
    started, done = threading.Event(), []

    def work():
        started.set()
        for _ in range(5):  # each lagged update trains both nets: slow steps, a wide window
            sched.step(**b)
        done.append(True)

    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        th = threading.Thread(target=work)
        th.start()
        started.wait()
        ran_during_step = not done  # we hold the GIL now: was the step still running?
        th.join()
    finally:
        sys.setswitchinterval(old)
    assert ran_during_step
    assert sched.steps == 6
