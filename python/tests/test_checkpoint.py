"""state_dict()/load_state_dict() and pickling: an interrupted run resumes bit for bit."""

import io
import pickle

import numpy as np
import pytest
import torch

import sams
from conftest import D, SMALL, make_batch


def run(sched, batches):
    return [sched.step(**b) for b in batches]


def same_decisions(xs, ys):
    for x, y in zip(xs, ys, strict=True):
        for k in ("selected", "weight", "loss", "d_policy_chosen", "d_policy_rejected", "score"):
            np.testing.assert_array_equal(getattr(x, k), getattr(y, k))
        assert x.metrics == y.metrics


@pytest.mark.parametrize("how", ["pickle", "state_dict", "from_state_dict", "torch.save"])
def test_scheduler_resumes_exactly(rng, how):
    batches = [make_batch(rng) for _ in range(8)]
    cfg = {**SMALL, "net": {**SMALL["net"], "dropout": 0.2}, "select": {"rule": "softmax_sample"}}
    uninterrupted = run(sams.Scheduler(D, seed=9, **cfg), batches)

    s = sams.Scheduler(D, seed=9, **cfg)
    first = run(s, batches[:4])
    if how == "pickle":
        resumed = pickle.loads(pickle.dumps(s))
    elif how == "state_dict":
        resumed = sams.Scheduler(D, seed=12345, **cfg)  # another seed: the state replaces it
        resumed.load_state_dict(s.state_dict())
    elif how == "from_state_dict":
        resumed = sams.Scheduler.from_state_dict(s.state_dict())
    else:  # what a trainer checkpoint does: the bytes inside torch.save's dict
        buf = io.BytesIO()
        torch.save({"scheduler": s.state_dict(), "step": 4}, buf)
        buf.seek(0)
        resumed = sams.Scheduler(D, seed=0, **cfg)
        resumed.load_state_dict(torch.load(buf)["scheduler"])
    assert resumed.steps == 4 and resumed.state_dict() == s.state_dict()
    del s
    same_decisions(first + run(resumed, batches[4:]), uninterrupted)


@pytest.mark.parametrize("make", [lambda: sams.UniformSelector(5, select={"ratio": 0.25}),
                                  lambda: sams.LossSelector("smallest"), lambda: sams.MarginSelector(),
                                  lambda: sams.FullBatch(loss={"kind": "ipo"})],
                         ids=["uniform", "loss", "margin", "full"])
def test_baselines_resume_exactly(rng, make):
    batches = [make_batch(rng) for _ in range(6)]
    uninterrupted = run(make(), batches)
    sel = make()
    first = run(sel, batches[:3])
    resumed = pickle.loads(pickle.dumps(sel))
    assert type(resumed) is type(sel) and resumed.steps == 3
    fresh = make()
    fresh.load_state_dict(sel.state_dict())
    rest = run(resumed, batches[3:])
    same_decisions(first + rest, uninterrupted)
    same_decisions(run(fresh, batches[3:]), rest)
    assert rest[-1].metrics["step"] == 5


def test_uniform_selector_state_carries_its_generator(rng):
    # Without the generator in the state a resumed uniform selector would repeat its first draws.
    a, b = sams.UniformSelector(1), sams.UniformSelector(1)
    batch = make_batch(rng, B=32)
    a.step(**batch)
    b.load_state_dict(a.state_dict())
    assert a.step(**batch).selected.tolist() == b.step(**batch).selected.tolist()
    assert sams.UniformSelector(1).step(**batch).selected.tolist() != b.step(**batch).selected.tolist()
