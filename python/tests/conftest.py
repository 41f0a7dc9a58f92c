"""Shared helpers: a small scheduler configuration and random batches."""

import os
import sys

import numpy as np
import pytest

# Run from a source checkout without PYTHONPATH: use the build tree next to it if there is one.
try:
    import sams  # noqa: F401
except ImportError:
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    for candidate in ("build/dev/python", "build/py/python"):
        if os.path.isdir(os.path.join(root, candidate, "sams")):
            sys.path.insert(0, os.path.abspath(os.path.join(root, candidate)))
            break

D = 12
SMALL = dict(net={"hidden": 16, "depth": 3, "block_size": 4, "explore_depth": 2}, pool={"capacity_rows": 64})


def make_batch(rng, B=8, D=D, dtype=np.float32):
    """A random batch as a dict of step() keyword arguments."""
    a_w = rng.normal(-10, 2, B)
    a_l = rng.normal(-11, 2, B)
    return dict(policy_chosen=a_w.astype(dtype), policy_rejected=a_l.astype(dtype),
                reference_chosen=(a_w + rng.normal(0, 0.5, B)).astype(dtype),
                reference_rejected=(a_l + rng.normal(0, 0.5, B)).astype(dtype),
                contexts=rng.normal(size=(B, D)).astype(dtype))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def small_scheduler():
    import sams

    return sams.Scheduler(D, seed=7, **SMALL)
