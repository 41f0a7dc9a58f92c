"""GuidedScheduler and CountSketch from Python: decisions against a numpy re-computation of
the cosine rule, the trusted direction's closed form, refusals without state change, resume."""

import math
import pickle

import numpy as np
import pytest
import torch

import sams
from conftest import make_batch

K = 16


def guided_batch(rng, B=10, start=0):
    b = make_batch(rng, B=B)
    del b["contexts"]
    b["ids"] = np.arange(start, start + B, dtype=np.int64)
    b["sketches"] = rng.normal(size=(B, K)).astype(np.float32)
    return b


def cosines(sk, g):
    sk, g = sk.astype(np.float64), g.astype(np.float64)
    return sk @ g / (np.linalg.norm(sk, axis=1) * np.linalg.norm(g))


def test_fixed_fraction_drops_the_lowest_agreement(rng):
    g = rng.normal(size=K).astype(np.float32)
    s = sams.GuidedScheduler(sketch_dim=K, drop="fixed_fraction", drop_fraction=0.3)
    s.set_trusted_direction(g)
    b = guided_batch(rng)
    d = s.step(**b)
    cos = cosines(b["sketches"], g)
    keep = np.sort(np.argsort(cos, kind="stable")[math.ceil(0.3 * 10):])
    np.testing.assert_array_equal(d.selected, keep)
    np.testing.assert_allclose(d.score, cos, rtol=1e-6, atol=1e-7)  # remembered = this visit's cosine
    np.testing.assert_allclose(s.last_agreement, cos, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(d.weight, np.where(d.mask, np.float32(1 / 7), np.float32(0)))
    assert d.metrics["dropped"] == 3 and abs(d.metrics["mean_agreement"] - cos.mean()) < 1e-9
    assert s._last_inputs()["sketches"] == (b["sketches"].ctypes.data, False)

    # A second visit of the same ids remembers the running mean of both cosines.
    b2 = {**guided_batch(rng), "ids": b["ids"]}
    d2 = s.step(**b2)
    np.testing.assert_allclose(d2.score, (cos + cosines(b2["sketches"], g)) / 2, rtol=1e-6, atol=1e-7)


def test_set_trusted_direction_closed_form(rng):
    beta = 0.1
    t = guided_batch(rng, B=6)
    t["sketches"] = (2 * rng.normal(size=K) + t["sketches"]).astype(np.float32)  # pairs that agree
    s = sams.GuidedScheduler(sketch_dim=K, loss={"beta": beta})
    s.set_trusted(t["policy_chosen"], t["policy_rejected"], t["reference_chosen"], t["reference_rejected"],
                  sketches=t["sketches"])
    f = {k: v.astype(np.float64) for k, v in t.items()}
    m = beta * ((f["policy_chosen"] - f["reference_chosen"]) - (f["policy_rejected"] - f["reference_rejected"]))
    omega = beta / (1 + np.exp(m)) / 6  # beta sigma(-m) / T
    g = (omega[:, None] * f["sketches"]).sum(0)
    np.testing.assert_allclose(s.trusted_direction, g, rtol=1e-5, atol=1e-7)
    loo = np.mean([cosines(f["sketches"][j:j + 1], g - omega[j] * f["sketches"][j])[0] for j in range(6)])
    assert loo > 0.3  # the shared component dominates
    assert abs(s.clean_agreement - loo) < 1e-5 * loo  # C++ takes the loss derivatives in float32
    assert not s.needs_trusted_refresh()


def test_guided_refusals_leave_state_unchanged(rng):
    s = sams.GuidedScheduler(sketch_dim=K, drop="fixed_fraction", drop_fraction=0.2)
    b = guided_batch(rng)
    with pytest.raises(sams.InvalidArgument, match=r"^guided_scheduler::step: no trusted direction: call "):
        s.step(**b)
    with pytest.raises(sams.InvalidArgument, match=r"^guided_scheduler::set_trusted_direction: direction has 3 "
                                                   r"entries, expected sketch_dim 16$"):
        s.set_trusted_direction(np.ones(3, np.float32))
    s.set_trusted_direction(rng.normal(size=K).astype(np.float32))
    s.step(**b)
    before = s.state_dict()
    good = guided_batch(rng, start=100)
    cases = [
        ({**good, "ids": None}, r"batch.ids is required \(one example id per pair, 10\), got 0$"),
        ({**good, "ids": np.zeros(10, np.int64)}, r"batch.ids holds id 0 twice$"),
        ({**good, "sketches": good["sketches"][:, :4]}, r"batch.sketches must be 10 x 16 .* got 10 x 4$"),
        ({**good, "sketches": None}, r"batch.sketches must be 10 x 16 .* got 0 x 0 with a null data pointer$"),
        ({**good, "sketches": np.full((10, K), np.nan, np.float32)}, r"batch.sketches contains NaN or Inf$"),
    ]
    for bad, pattern in cases:
        with pytest.raises(sams.InvalidArgument, match="^guided_scheduler::step: " + pattern):
            s.step(**bad)
        assert s.state_dict() == before
    with pytest.raises(sams.InvalidArgument, match=r"^guided_config.sketch_dim: must be in \[1, "):
        sams.GuidedScheduler(sketch_dim=0)
    est = sams.GuidedScheduler(sketch_dim=K)  # drop="estimated" by default
    est.set_trusted_direction(np.ones(K, np.float32))
    with pytest.raises(sams.InvalidArgument, match="drop rule `estimated` needs the trusted set's clean agreement"):
        est.step(**good)
    with pytest.raises(sams.CheckpointError, match=r"field drop_fraction differs"):
        s.load_state_dict(sams.GuidedScheduler(sketch_dim=K, drop="fixed_fraction").state_dict())
    with pytest.raises(sams.CheckpointError):
        s.load_state_dict(before[:-1])
    assert s.state_dict() == before


def test_guided_resumes_exactly(rng):
    batches = [guided_batch(rng, start=5 * i) for i in range(6)]  # overlapping ids: memory matters
    g = rng.normal(size=K).astype(np.float32)

    def fresh():
        s = sams.GuidedScheduler(sketch_dim=K, drop="fixed_fraction", drop_fraction=0.25, memory_capacity=12)
        s.set_trusted_direction(g)
        return s

    a = fresh()
    whole = [a.step(**b) for b in batches]
    s = fresh()
    for b in batches[:3]:
        s.step(**b)
    r = pickle.loads(pickle.dumps(s))
    r2 = sams.GuidedScheduler.from_state_dict(s.state_dict())
    for i, b in enumerate(batches[3:]):
        x, y = r.step(**b), r2.step(**b)
        np.testing.assert_array_equal(x.selected, whole[3 + i].selected)
        np.testing.assert_array_equal(x.score, whole[3 + i].score)
        np.testing.assert_array_equal(y.score, whole[3 + i].score)
    assert r.state_dict() == a.state_dict()


def test_count_sketch_is_the_documented_linear_map(rng):
    cs = sams.CountSketch(8, seed=42)
    x = rng.normal(size=50).astype(np.float32)
    expected = np.zeros(8)
    for j in range(50):
        expected[cs.bucket(j)] += cs.sign(j) * float(x[j])
    np.testing.assert_allclose(cs.apply(x), expected, rtol=1e-6, atol=1e-6)
    # Tensor by tensor with offsets gives the sketch of the concatenation.
    out = np.zeros(8, np.float64)
    cs.accumulate(torch.from_numpy(x[:20]), out)
    cs.accumulate(x[20:], out, offset=20)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    # splitmix64 of the documented hash, recomputed here.
    M = (1 << 64) - 1

    def splitmix(v):
        v = (v + 0x9E3779B97F4A7C15) & M
        v = ((v ^ (v >> 30)) * 0xBF58476D1CE4E5B9) & M
        v = ((v ^ (v >> 27)) * 0x94D049BB133111EB) & M
        return v ^ (v >> 31)

    for j in (0, 1, 17, 12345):
        h = splitmix(42 ^ splitmix(j))
        assert cs.bucket(j) == (h >> 1) % 8 and cs.sign(j) == (1 if h % 2 == 0 else -1)
    with pytest.raises(sams.InvalidArgument, match="must have the sketch width 8, got 3"):
        cs.accumulate(x, np.zeros(3, np.float32))
