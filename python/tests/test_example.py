"""examples/python/dpo_noisy.py: trains in one process, and data-parallel with gloo in two
processes whose schedulers make the same decisions as one scheduler on the global batch."""

import importlib.util
import os
import re
import subprocess
import sys

import sams

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(ROOT, "examples", "python", "dpo_noisy.py")


def load_example():
    spec = importlib.util.spec_from_file_location("dpo_noisy", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_trains_and_autograd_matches_the_decision_gradients():
    ex = load_example()
    # train() asserts on its first step that autograd's d(loss)/d(log-probs) equals the
    # decision's d_policy_chosen / d_policy_rejected.
    r = ex.train("sams", seed=3, steps=24)
    assert r["scheduler_steps"] == 24 and 0.0 <= r["test_accuracy"] <= 1.0
    full = ex.train("full", seed=3, steps=24)
    assert full["test_accuracy"] > 0.55  # DPO learns the clean preference despite 20 % flipped labels


def run_example(*args):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(sams.__file__))}
    p = subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_two_process_gloo_run_agrees_with_one_process():
    out = run_example("--method", "sams", "--steps", "12", "--world-size", "2")
    ranks = re.findall(r"rank (\d): sams test acc ([\d.]+)  digest (\w+)  scheduler steps (\d+)  "
                       r"first selection (\[.*\])", out)
    assert [r[0] for r in ranks] == ["0", "1"], out
    assert ranks[0][1:] == ranks[1][1:] and ranks[0][3] == "12"  # the same decisions and policy on both ranks
    assert "ranks agree: yes" in out

    single = run_example("--method", "sams", "--steps", "12")
    first = re.search(r"first selection (\[.*\])", single).group(1)
    acc = float(re.search(r"sams\s+\|\s+([\d.]+)", single).group(1))
    assert first == ranks[0][4]  # rank-ordered gather = the single process's batch
    assert abs(acc - float(ranks[0][1])) <= 0.02
