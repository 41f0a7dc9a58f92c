"""sams.DistributedScheduler over torch.distributed (gloo, 2 processes): each rank's decision
is its slice of one Scheduler's decision on the global batch."""

import os
import subprocess
import sys

import pytest

import sams

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist_worker.py")


@pytest.mark.parametrize("mode", ["replicated", "root_broadcast"])
def test_two_gloo_processes_make_the_global_decision(mode):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(sams.__file__))}
    p = subprocess.run([sys.executable, WORKER, mode], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"rank 0 {mode}: ok" in p.stdout and f"rank 1 {mode}: ok" in p.stdout


def test_needs_an_initialised_process_group():
    with pytest.raises(sams.InvalidArgument, match="torch.distributed is not initialised"):
        sams.DistributedScheduler(sams.Scheduler(4))
