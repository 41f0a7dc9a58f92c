#!/usr/bin/env python3
"""Cost of one DPO training step of a Llama-like decoder, the yardstick for the scheduler's
share of a training step (tools/gpu_check.sh divides bench_gpu_scheduler's step time by it).

The model: token embedding, L blocks x += attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x)) with
rotary positions and grouped-query attention, a final RMSNorm and an LM head tied to the
embedding. --size 1b is shaped like Llama 3.2 1B (1.24 B parameters), --size 3b like
Llama 3.2 3B (3.21 B); the exact count is printed. fp32 master weights, bf16 autocast; the
frozen reference model holds bf16 weights.

One step at B pairs of T tokens (2B sequences, chosen rows first): the reference model's
no-grad forward, the policy's forward and backward on chosen and rejected, sequence log-probs
over the response tokens (second half of each sequence; every token is valid, no padding),
the DPO sigmoid loss, one fused AdamW step. --micro-pairs splits the pairs into micro-batches
with gradient accumulation (exact: the loss is a mean over pairs).

Context extraction is measured on top of that step, two ways, as extra peak memory:
  pool   what sams does: a masked mean over the response tokens of the last --context-layers
         residual-stream states, chosen and rejected averaged, into [B, D] fp32 contexts,
         kept until after the optimizer step (when the scheduler reads them);
  stack  output_hidden_states style: all L+1 per-layer states of the batch stacked in fp32,
         kept until the scheduler has read them (after the optimizer step).

Prints one JSON object per line. --smoke runs a tiny model on the CPU in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

# Fewer fragmentation OOMs on the 3B point; must be set before CUDA starts.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

OOM = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)  # torch < 1.13 raises RuntimeError

SIZES = {
    # layers, hidden, heads, kv_heads, ffn, vocab
    "1b": dict(layers=16, hidden=2048, heads=32, kv_heads=8, ffn=8192, vocab=128256),
    "3b": dict(layers=28, hidden=3072, heads=24, kv_heads=8, ffn=8192, vocab=128256),
    "smoke": dict(layers=2, hidden=64, heads=4, kv_heads=2, ffn=128, vocab=256),
}


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, device, dtype):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.to(x.dtype) * self.weight


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # In x's dtype: fp32 angles would promote q and k to fp32 (twice the memory, and
    # scaled_dot_product_attention wants one dtype for q, k and v).
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0: flash / memory-efficient kernels
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[-2]  # older torch (the CPU smoke run): the plain softmax
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(causal, float("-inf")).softmax(-1).to(v.dtype) @ v


class Block(nn.Module):
    def __init__(self, c: dict, device, dtype):
        super().__init__()
        d, hd = c["hidden"], c["hidden"] // c["heads"]
        self.heads, self.kv_heads, self.head_dim = c["heads"], c["kv_heads"], hd
        kw = dict(bias=False, device=device, dtype=dtype)
        self.attn_norm = RMSNorm(d, 1e-5, device, dtype)
        self.q = nn.Linear(d, c["heads"] * hd, **kw)
        self.k = nn.Linear(d, c["kv_heads"] * hd, **kw)
        self.v = nn.Linear(d, c["kv_heads"] * hd, **kw)
        self.o = nn.Linear(c["heads"] * hd, d, **kw)
        self.mlp_norm = RMSNorm(d, 1e-5, device, dtype)
        self.gate = nn.Linear(d, c["ffn"], **kw)
        self.up = nn.Linear(d, c["ffn"], **kw)
        self.down = nn.Linear(c["ffn"], d, **kw)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(n, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(n, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(n, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        a = attention(q, k, v).transpose(1, 2).reshape(n, t, self.heads * self.head_dim)
        x = x + self.o(a)
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Decoder(nn.Module):
    def __init__(self, c: dict, device, dtype):
        super().__init__()
        self.embed = nn.Embedding(c["vocab"], c["hidden"], device=device, dtype=dtype)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(c, device, dtype) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["hidden"], 1e-5, device, dtype)
        self.head_dim = c["hidden"] // c["heads"]

    def forward(self, ids: torch.Tensor, keep_hidden: bool = False):
        """Logits [N, T, V] and, with keep_hidden, the L+1 residual-stream states [N, T, d]."""
        t = ids.shape[1]
        inv = 1.0 / (500000.0 ** (torch.arange(0, self.head_dim, 2, device=ids.device).float() / self.head_dim))
        ang = torch.arange(t, device=ids.device).float()[:, None] * inv[None, :]
        cos, sin = ang.cos(), ang.sin()
        x = self.embed(ids)
        hidden = [x] if keep_hidden else None
        for block in self.blocks:
            x = block(x, cos, sin)
            if keep_hidden:
                hidden.append(x)
        logits = F.linear(self.norm(x), self.embed.weight)  # tied LM head
        return logits, hidden


def sequence_logp(logits: torch.Tensor, ids: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Sum of log p(token) over the response tokens, per sequence; log-softmax in fp32."""
    lg = logits[:, :-1].float()
    nll = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
    return -(nll.view(ids.shape[0], -1) * response[:, 1:]).sum(1)


def pooled_contexts(hidden: list, response: torch.Tensor, layers: int) -> torch.Tensor:
    """[B, layers·d] fp32: per layer the masked mean over response tokens, chosen and rejected
    averaged (rows: chosen first). A batched matmul, so no [N, T, d] temporary is made."""
    w = (response / response.sum(1, keepdim=True)).unsqueeze(1).float()  # [N, 1, T]
    b = response.shape[0] // 2
    out = []
    with torch.no_grad():
        for h in hidden[-layers:]:
            m = torch.bmm(w, h.detach().float()).squeeze(1)  # [N, d]
            out.append(0.5 * (m[:b] + m[b:]))
    return torch.cat(out, dim=1)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights are counted once


def make_optimizer(params, device: torch.device):
    if device.type == "cuda":
        try:
            return torch.optim.AdamW(params, lr=1e-6, weight_decay=0.0, fused=True)
        except (TypeError, RuntimeError):  # torch without fused AdamW
            pass
    return torch.optim.AdamW(params, lr=1e-6, weight_decay=0.0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_size(size: str, args, device: torch.device) -> None:
    c = dict(SIZES[size])
    for key in ("layers", "hidden", "heads", "kv_heads", "ffn", "vocab"):
        if getattr(args, key) is not None and getattr(args, key) != c[key]:
            c[key] = getattr(args, key)
            if not size.endswith("custom"):
                size += "-custom"  # not the named shape: keep it apart in the share table
    if c["hidden"] % c["heads"] or c["heads"] % c["kv_heads"] or (c["hidden"] // c["heads"]) % 2:
        raise SystemExit(f"bad shape {c}: heads must divide hidden (even head dim), kv_heads must divide heads")
    torch.manual_seed(0)
    policy = Decoder(c, device, torch.float32)
    reference = Decoder(c, device, torch.bfloat16)
    reference.load_state_dict(policy.state_dict())
    reference.requires_grad_(False)
    params = count_params(policy)
    opt = make_optimizer(policy.parameters(), device)
    print(json.dumps({"bench": "dpo_model", "size": size, "params": params, "params_b": round(params / 1e9, 3),
                      **c, "tied_embeddings": True, "precision": "fp32 master, bf16 autocast; reference bf16",
                      "optimizer": type(opt).__name__ + (" fused" if opt.defaults.get("fused") else "")}),
          flush=True)
    beta = 0.1
    warmed = set()  # micro-batch sizes already run: a later point of that shape needs no warm-up

    for pairs in args.pairs:
        micro = min(pairs, args.micro_pairs or (4 if size == "3b" else 8))
        if pairs % micro:
            raise SystemExit(f"--micro-pairs {micro} must divide --pairs {pairs}")
        n, t = 2 * pairs, args.seq
        g = torch.Generator(device="cpu").manual_seed(1)
        ids = torch.randint(c["vocab"], (n, t), generator=g).to(device)
        response = torch.zeros(n, t, device=device)
        response[:, t // 2:] = 1.0

        def step(mode: str):
            """One DPO step; returns the bytes of context data kept for the scheduler and the loss
            (a tensor, so that timing does not wait on it)."""
            opt.zero_grad(set_to_none=True)
            kept = []
            total = torch.zeros((), device=device)
            for m0 in range(0, pairs, micro):
                rows = torch.cat((torch.arange(m0, m0 + micro), torch.arange(pairs + m0, pairs + m0 + micro)))
                rows = rows.to(device)
                x, r = ids[rows], response[rows]
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                    ref_logits, _ = reference(x)
                    ref_logp = sequence_logp(ref_logits, x, r)
                    del ref_logits
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    logits, hidden = policy(x, keep_hidden=mode != "none")
                    logp = sequence_logp(logits, x, r)
                    del logits
                margin = (logp[:micro] - ref_logp[:micro]) - (logp[micro:] - ref_logp[micro:])
                loss = -F.logsigmoid(beta * margin).sum() / pairs
                if mode == "pool":
                    kept.append(pooled_contexts(hidden, r, args.context_layers))
                elif mode == "stack":
                    kept.append((torch.stack([h.detach().float() for h in hidden]), r))
                hidden = None
                loss.backward()
                total += loss.detach()
            opt.step()
            # The scheduler reads the contexts now, after the step (the stacked states are pooled here).
            nbytes = 0
            for k in kept:
                if mode == "stack":
                    states, r = k
                    nbytes += states.numel() * states.element_size()
                    pooled_contexts(list(states.unbind(0)), r, args.context_layers)
                else:
                    nbytes += k.numel() * k.element_size()
            return nbytes, total

        times, loss = [], None
        try:
            for _ in range(0 if micro in warmed else args.warmup):
                step("none")
            warmed.add(micro)
            sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            for _ in range(args.reps):
                t0 = time.perf_counter()
                _, loss = step("none")
                sync(device)
                times.append((time.perf_counter() - t0) * 1e3)
        except OOM as e:  # say so and go on with the next point
            print(json.dumps({"bench": "dpo_step", "size": size, "pairs": pairs, "micro_pairs": micro,
                              "error": str(e).splitlines()[0]}), flush=True)
            opt.zero_grad(set_to_none=True)
            continue
        times.sort()
        base_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        tokens = n * t
        # Matmul FLOPs: 6·params·tokens for the policy, 2·params·tokens for the reference;
        # attention scores and the elementwise work are not counted.
        flops = 8.0 * params * tokens
        med = times[len(times) // 2]
        print(json.dumps({"bench": "dpo_step", "size": size, "params": params, "pairs": pairs, "seq": t,
                          "sequences": n, "tokens": tokens, "micro_pairs": micro, "reps": args.reps,
                          "median_ms": med, "min_ms": times[0], "loss": float(loss),
                          "matmul_tflops": flops / (med * 1e-3) / 1e12,
                          "peak_mib": base_peak / 2**20 if base_peak is not None else None,
                          "device": device.type, "torch": torch.__version__}), flush=True)

        for mode in ("pool", "stack") if args.context_pairs is None or pairs in args.context_pairs else ():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            try:
                kept_bytes, _ = step(mode)
                sync(device)
            except OOM as e:
                print(json.dumps({"bench": "dpo_context", "size": size, "pairs": pairs, "method": mode,
                                  "error": str(e).splitlines()[0]}), flush=True)
                opt.zero_grad(set_to_none=True)
                continue
            ms = (time.perf_counter() - t0) * 1e3
            peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
            extra = (peak - base_peak) if peak is not None else None
            print(json.dumps({
                "bench": "dpo_context", "size": size, "pairs": pairs, "method": mode,
                "context_layers": args.context_layers if mode == "pool" else c["layers"] + 1,
                "kept_mib": kept_bytes / 2**20, "step_ms": ms,
                "base_peak_mib": base_peak / 2**20 if base_peak is not None else None,
                "peak_mib": peak / 2**20 if peak is not None else None,
                "extra_peak_mib": extra / 2**20 if extra is not None else None,
                "extra_peak_pct": 100.0 * extra / base_peak if extra is not None else None,
                "kept_pct_of_peak": 100.0 * kept_bytes / base_peak if base_peak else None}), flush=True)

    del policy, reference, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1b", help="comma list of 1b, 3b (default 1b)")
    p.add_argument("--layers", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--kv-heads", dest="kv_heads", type=int)
    p.add_argument("--ffn", type=int)
    p.add_argument("--vocab", type=int)
    p.add_argument("--pairs", default="8", help="comma list of pair counts B (default 8)")
    p.add_argument("--micro-pairs", type=int, default=0, help="pairs per forward/backward (default 8; 3b: 4)")
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--context-layers", type=int, default=1, help="states the pool reads (the last ones)")
    p.add_argument("--context-pairs", help="comma list: the pair counts at which context extraction is "
                   "measured (default: all of --pairs)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--smoke", action="store_true", help="tiny model on the CPU, a few tokens, in seconds")
    args = p.parse_args()
    sizes = args.size.split(",")
    if args.smoke:
        sizes, args.device, args.seq = ["smoke"], "cpu", min(args.seq, 32)
        args.pairs, args.reps, args.warmup = "2,4", min(args.reps, 2), 1
        args.micro_pairs = args.micro_pairs or 2
    args.pairs = [int(b) for b in str(args.pairs).split(",")]
    if args.reps < 1 or args.warmup < 0 or args.seq < 2 or min(args.pairs) < 1:
        raise SystemExit("--reps >= 1, --warmup >= 0, --seq >= 2 and --pairs >= 1 are needed")
    if args.context_pairs is not None:
        args.context_pairs = [int(b) for b in args.context_pairs.split(",")]
    for s in sizes:
        if s not in SIZES:
            raise SystemExit(f"unknown --size {s}; expected one of {', '.join(SIZES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but CUDA is not available (try --smoke or --device cpu)")
    device = torch.device(args.device)
    if device.type == "cuda":
        print(json.dumps({"bench": "dpo_device", "name": torch.cuda.get_device_name(0),
                          "memory_mib": torch.cuda.get_device_properties(0).total_memory / 2**20,
                          "torch": torch.__version__}), flush=True)
    for s in sizes:
        run_size(s, args, device)
    return None


if __name__ == "__main__":
    sys.exit(main())
