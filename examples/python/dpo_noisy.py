#!/usr/bin/python3
"""DPO + SamS from Python: a small PyTorch policy trained on noisy preference pairs.

A synthetic world (the Python cousin of examples/noisy_preferences.cpp): prompts are feature
vectors, responses are 3-token sequences over an 8-token vocabulary, a hidden linear reward
decides which response of a pair is preferred, and 20 % of the training labels are flipped.
The policy is a one-hidden-layer network emitting per-token logits; DPO trains it against a
frozen copy of its initial weights. Each step `sams` scores the batch and picks half of it;
the weighted DPO loss is built in autograd from the decision's weights, so the policy's
gradient is exactly the decision's d_policy_chosen / d_policy_rejected pushed through the
log-probs (checked on the first step).

    /usr/bin/python3 examples/python/dpo_noisy.py                      # sams, full, uniform
    /usr/bin/python3 examples/python/dpo_noisy.py --method sams --steps 40
    /usr/bin/python3 examples/python/dpo_noisy.py --world-size 2       # gloo, 2 processes

Data-parallel (--world-size 2): each rank computes the log-probs of its half of every global
batch; sams.DistributedScheduler (the library's distributed scheduler over torch.distributed)
gathers the per-pair inputs so every rank's scheduler (same seed) decides on the global batch;
each rank trains on its slice of the weights, and the gradients are summed with all_reduce
(the weights already sum to one over the global batch). The baselines gather the same inputs
with torch.distributed.all_gather in Python. Ranks check that their decisions agree bit for bit.
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

try:
    import sams
except ImportError:  # running from a source checkout with a build tree next to it
    for candidate in ("build/dev/python",):
        path = os.path.join(os.path.dirname(__file__), "..", "..", candidate)
        if os.path.isdir(os.path.join(path, "sams")):
            sys.path.insert(0, os.path.abspath(path))
            break
    import sams

PROMPT_DIM, VOCAB, LENGTH, HIDDEN = 8, 8, 3, 32
BETA = 0.1


def make_world(seed, n_train=512, n_test=256, noise=0.2):
    """Pairs (prompt, chosen, rejected) with the true preference, training labels flipped at rate `noise`."""
    g = np.random.default_rng(seed)
    w_true = g.normal(size=(PROMPT_DIM, VOCAB))

    def pairs(n, flip_rate):
        x = g.normal(size=(n, PROMPT_DIM)).astype(np.float32)
        y1 = g.integers(0, VOCAB, size=(n, LENGTH))
        y2 = g.integers(0, VOCAB, size=(n, LENGTH))
        score = x @ w_true  # (n, V): the true reward of each token for this prompt
        r1 = np.take_along_axis(score, y1, axis=1).sum(1)
        r2 = np.take_along_axis(score, y2, axis=1).sum(1)
        first_better = r1 >= r2
        flipped = g.random(n) < flip_rate
        use_first = first_better ^ flipped
        chosen = np.where(use_first[:, None], y1, y2)
        rejected = np.where(use_first[:, None], y2, y1)
        return dict(x=torch.from_numpy(x), chosen=torch.from_numpy(chosen), rejected=torch.from_numpy(rejected),
                    flipped=torch.from_numpy(flipped))

    return pairs(n_train, noise), pairs(n_test, 0.0)


class Policy(torch.nn.Module):
    """logits_t = head(tanh(W x)) + E[y_{t-1}]: a prompt-conditioned bigram model."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(PROMPT_DIM, HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, VOCAB)
        self.prev = torch.nn.Embedding(VOCAB + 1, VOCAB)  # index VOCAB: start of sequence

    def forward(self, x, y):
        """Summed log-prob of each response y (B, L) given x (B, P), and the hidden state (B, H)."""
        h = torch.tanh(self.body(x))
        prev = torch.cat([torch.full_like(y[:, :1], VOCAB), y[:, :-1]], dim=1)
        logits = self.head(h)[:, None, :] + self.prev(prev)
        logp = torch.log_softmax(logits, dim=-1).gather(2, y[:, :, None]).squeeze(2)
        return logp.sum(1), h


def contexts_of(h, chosen, rejected):
    """The scheduler's per-pair context: the policy's hidden state and the token-count difference."""
    counts = F.one_hot(chosen, VOCAB).sum(1) - F.one_hot(rejected, VOCAB).sum(1)
    return torch.cat([h.detach(), counts.float()], dim=1).contiguous()


def make_selector(method, seed, context_dim):
    if method == "sams":
        return sams.Scheduler(context_dim, seed=seed, net={"hidden": 64, "depth": 3, "block_size": 16},
                              opt={"learning_rate": 1e-3}, select={"ratio": 0.5})
    if method == "uniform":
        return sams.UniformSelector(seed, select={"ratio": 0.5})
    if method == "full":
        return sams.FullBatch()
    raise ValueError(f"unknown method {method!r}")


def test_accuracy(policy, reference, test):
    with torch.no_grad():
        a_w, _ = policy(test["x"], test["chosen"])
        a_l, _ = policy(test["x"], test["rejected"])
        r_w, _ = reference(test["x"], test["chosen"])
        r_l, _ = reference(test["x"], test["rejected"])
        margin = (a_w - r_w) - (a_l - r_l)
    return float((margin > 0).float().mean())


def train(method="sams", seed=1, steps=64, batch_size=32, rank=0, world_size=1, log=print):
    """Trains one policy; returns a dict of results. With world_size > 1, torch.distributed must be up."""
    torch.manual_seed(seed)
    train_set, test_set = make_world(seed)
    policy = Policy()
    reference = Policy()
    reference.load_state_dict(policy.state_dict())
    reference.requires_grad_(False)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    selector = make_selector(method, seed, HIDDEN + VOCAB)
    distributed = world_size > 1
    # SamS across ranks: the library's distributed scheduler gathers the per-pair inputs over
    # torch.distributed and hands back this rank's part of the global decision.
    library_gather = distributed and method == "sams"
    if library_gather:
        selector = sams.DistributedScheduler(selector, global_batch=batch_size)
    local = batch_size // world_size

    n = train_set["x"].shape[0]
    order = torch.from_numpy(np.random.default_rng(seed + 1).permutation(n * (steps * batch_size // n + 1)) % n)
    digest = hashlib.sha256()
    flipped_trained = trained = 0
    grad_checked = False
    first_selected = None
    start = time.time()
    for step in range(steps):
        idx = order[step * batch_size:(step + 1) * batch_size]
        idx = idx[rank * local:(rank + 1) * local]  # this rank's slice of the global batch
        x, yw, yl = train_set["x"][idx], train_set["chosen"][idx], train_set["rejected"][idx]

        a_w, h = policy(x, yw)
        a_l, _ = policy(x, yl)
        with torch.no_grad():
            r_w, _ = reference(x, yw)
            r_l, _ = reference(x, yl)
        ctx = contexts_of(h, yw, yl)

        inputs = [a_w.detach(), a_l.detach(), r_w, r_l, ctx]
        if distributed and not library_gather:  # the baselines: gather in Python, in rank order
            gathered = []
            for t in inputs:
                parts = [torch.empty_like(t) for _ in range(world_size)]
                torch.distributed.all_gather(parts, t.contiguous())
                gathered.append(torch.cat(parts))
            inputs = gathered
        # float32 CPU tensors: the scheduler reads them in place, without the GIL.
        d = selector.step(inputs[0], inputs[1], inputs[2], inputs[3], contexts=inputs[4])
        g = selector.global_decision() if library_gather else d  # the decision over the global batch
        if first_selected is None:
            first_selected = g.selected.tolist()
        digest.update(g.selected.tobytes())
        digest.update(g.weight.tobytes())
        # This rank's pairs: the distributed scheduler's decision is already local.
        sl = slice(None) if library_gather or not distributed else slice(rank * local, (rank + 1) * local)

        # The weighted DPO loss in autograd: sum_i w_i * l_i over this rank's pairs.
        w = torch.from_numpy(d.weight[sl])
        per_pair = -F.logsigmoid(BETA * ((a_w - r_w) - (a_l - r_l)))
        loss = (w * per_pair).sum()
        opt.zero_grad()
        if not grad_checked:
            a_w.retain_grad()
            a_l.retain_grad()
        loss.backward()
        if not grad_checked:  # autograd agrees with the scheduler's own gradients
            assert torch.allclose(a_w.grad, torch.from_numpy(d.d_policy_chosen[sl]), rtol=1e-5, atol=1e-7)
            assert torch.allclose(a_l.grad, torch.from_numpy(d.d_policy_rejected[sl]), rtol=1e-5, atol=1e-7)
            grad_checked = True
        if distributed:
            for p in policy.parameters():
                torch.distributed.all_reduce(p.grad)  # sum: the weights are global
        opt.step()

        mask = torch.from_numpy(d.mask[sl])
        flipped_trained += int((train_set["flipped"][idx] & mask).sum())
        trained += int(mask.sum())
        if (step + 1) % 16 == 0 and rank == 0:
            log(f"  {method:8s} step {step + 1:3d}  selected loss {d.metrics['selected_loss']:.4f}  "
                f"batch loss {d.metrics['batch_loss']:.4f}")

    return dict(method=method, test_accuracy=test_accuracy(policy, reference, test_set),
                flipped_among_trained=flipped_trained / max(trained, 1), digest=digest.hexdigest(),
                first_selected=first_selected,
                seconds=time.time() - start, scheduler_steps=selector.steps)


def _worker(rank, world_size, init_file, args, queue):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    r = train(args.method if args.method != "all" else "sams", args.seed, args.steps, args.batch_size, rank,
              world_size)
    # Every rank made the same decisions: compare the digests of all selections and weights.
    digests = [None] * world_size
    torch.distributed.all_gather_object(digests, r["digest"])
    assert len(set(digests)) == 1, f"ranks disagree: {digests}"
    queue.put((rank, r))
    torch.distributed.destroy_process_group()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", default="all", choices=["all", "sams", "full", "uniform"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--world-size", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    if args.world_size > 1:
        import torch.multiprocessing as mp

        ctx = mp.get_context("spawn")
        queue = ctx.SimpleQueue()
        with tempfile.TemporaryDirectory() as tmp:
            mp.spawn(_worker, args=(args.world_size, os.path.join(tmp, "init"), args, queue), nprocs=args.world_size)
        results = sorted(queue.get() for _ in range(args.world_size))
        for rank, r in results:
            print(f"rank {rank}: {r['method']} test acc {r['test_accuracy']:.3f}  digest {r['digest'][:16]}  "
                  f"scheduler steps {r['scheduler_steps']}  first selection {r['first_selected']}")
        print("ranks agree: yes")
        return 0

    methods = ["full", "sams", "uniform"] if args.method == "all" else [args.method]
    rows = [train(m, args.seed, args.steps, args.batch_size) for m in methods]
    print(f"\n{'method':10s} | test acc | flipped among trained | seconds | digest")
    for r in rows:
        print(f"{r['method']:10s} | {r['test_accuracy']:8.3f} | {r['flipped_among_trained']:21.3f} | "
              f"{r['seconds']:7.1f} | {r['digest'][:16]}")
    if len(rows) == 1:
        print(f"first selection {rows[0]['first_selected']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
