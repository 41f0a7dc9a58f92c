"""Shared helpers: a small scheduler configuration and random batches."""

import numpy as np
import pytest

# The module under test comes from PYTHONPATH (CTest sets <build>/python) or an install; the
# source folder python/sams has no extension, so run pytest from elsewhere than python/.
import sams  # noqa: F401

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
