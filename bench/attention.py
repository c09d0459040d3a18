"""Attention op: our MultiHeadAttention vs torch.nn.MultiheadAttention vs a plain
matmul-softmax-matmul, all with the same four d x d projections (q, k, v, out), so the
numbers are whole attention layers as a model uses them.

Variants: forward (inference mode) and forward+backward, fp32 and bf16, translation
shapes (batch 64, lengths 10-50) and long shapes (1k-4k tokens), and the cost of
asking for the per-head weights (need_weights=True: our explicit path, and
nn.MultiheadAttention with average_attn_weights=False).
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn

from common import median, print_table, timed
from crossattn.attention import MultiHeadAttention

D, HEADS = 512, 8


class PlainAttention(nn.Module):
    """The textbook formula, nothing fused: softmax(QK^T/sqrt(d) + mask) V."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: Tensor, mem: Tensor, pad: Tensor | None, causal: bool) -> Tensor:
        b, t, d = x.shape
        split = lambda y: y.view(b, -1, self.heads, self.dh).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(mem)), split(self.v(mem))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.dh)
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        if causal:
            scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        out = scores.softmax(-1) @ v
        return self.o(out.transpose(1, 2).reshape(b, t, d))


def make_inputs(shape: dict, dtype: torch.dtype, grad: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    g = torch.Generator().manual_seed(0)
    b, t, s = shape["batch"], shape["tgt"], shape["src"]
    x = torch.randn(b, t, D, generator=g).to(dtype).requires_grad_(grad)
    mem = x if shape["kind"] != "cross" else torch.randn(b, s, D, generator=g).to(dtype).requires_grad_(grad)
    pad = None
    if shape.get("padded"):  # lengths spread over [s/5, s]: what a real batch looks like
        lengths = torch.randint(max(1, s // 5), s + 1, (b,), generator=g)
        lengths[0] = s
        pad = torch.arange(s)[None] >= lengths[:, None]
    return x, mem, pad


def make_call(impl: str, shape: dict, dtype: torch.dtype, need_weights: bool):
    """A closure running one attention layer on fixed inputs (module built once)."""
    torch.manual_seed(0)
    causal, cross = shape["kind"] == "causal", shape["kind"] == "cross"
    if impl == "ours":
        mod = MultiHeadAttention(D, HEADS).to(dtype)

        def call(x, mem, pad):
            src = mem if cross else None
            return mod(x, src, key_padding_mask=pad, causal=causal, need_weights=need_weights)[0]
    elif impl == "nn.MHA":
        mod = nn.MultiheadAttention(D, HEADS, batch_first=True).to(dtype)
        t = shape["tgt"]
        mask = nn.Transformer.generate_square_subsequent_mask(t, dtype=dtype) if causal else None

        def call(x, mem, pad):
            return mod(x, mem, mem, key_padding_mask=pad, need_weights=need_weights, attn_mask=mask,
                       is_causal=causal, average_attn_weights=False)[0]
    else:
        mod = PlainAttention(D, HEADS).to(dtype)

        def call(x, mem, pad):
            return mod(x, mem, pad, causal)
    return mod, call


def make_step(impl: str, shape: dict, dtype: torch.dtype, mode: str, need_weights: bool):
    train = mode == "fwd+bwd"
    x, mem, pad = make_inputs(shape, dtype, train)
    mod, call = make_call(impl, shape, dtype, need_weights)
    if train:
        mod.train()
        return lambda: call(x, mem, pad).float().sum().backward()
    mod.eval()

    def step():
        with torch.inference_mode():
            call(x, mem, pad)
    return step


def bench_cell(variants: list[tuple[str, bool]], shape: dict, dtype: torch.dtype, mode: str,
               repeats: int) -> dict[str, float]:
    """Median CPU seconds per variant, the variants timed in turn (round robin), so a burst
    of load from other users hits all of them rather than whichever ran at the time."""
    steps = {f"{impl}{' +w' if nw else ''}": make_step(impl, shape, dtype, mode, nw) for impl, nw in variants}
    slowest = 0.0
    for step in steps.values():  # warm-up, and the slowest one sets the repeat count
        start = time.perf_counter()
        step()
        slowest = max(slowest, time.perf_counter() - start)
    n = max(1, min(repeats, int(8.0 / max(slowest, 1e-6))))  # ~8 s per variant at most
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(n):
        for key, step in steps.items():
            times[key].append(timed(step, 1, warmup=0, clock=time.process_time)[0])
    return {k: median(v) for k, v in times.items()}


def attention_flops(shape: dict, train: bool) -> float:
    b, t, s = shape["batch"], shape["tgt"], shape["src"]
    fwd = 2 * b * (2 * t * D * D + 2 * s * D * D + 2 * t * s * D)  # q,o on t; k,v on s; QK^T and AV
    return fwd * (3 if train else 1)


TRANSLATION = [
    dict(name="self B64 L10", kind="self", batch=64, tgt=10, src=10),
    dict(name="self B64 L50", kind="self", batch=64, tgt=50, src=50),
    dict(name="self B64 L50 padded", kind="self", batch=64, tgt=50, src=50, padded=True),
    dict(name="causal B64 L50", kind="causal", batch=64, tgt=50, src=50),
    dict(name="cross B64 T30 S50 padded", kind="cross", batch=64, tgt=30, src=50, padded=True),
]
LONG = [
    dict(name="self B4 L1024", kind="self", batch=4, tgt=1024, src=1024),
    dict(name="self B1 L4096", kind="self", batch=1, tgt=4096, src=4096),
    dict(name="causal B1 L4096", kind="causal", batch=1, tgt=4096, src=4096),
]
VARIANTS = [("ours", False), ("nn.MHA", False), ("plain", False), ("ours", True), ("nn.MHA", True)]


def run(quick: bool) -> dict:
    repeats = 3 if quick else 9
    plans = []  # (shapes, dtype, modes, variants)
    if quick:
        plans.append((TRANSLATION[1:2], torch.float32, ["fwd", "fwd+bwd"], VARIANTS))
        plans.append((LONG[:1], torch.float32, ["fwd"], VARIANTS))
        plans.append((TRANSLATION[:1], torch.bfloat16, ["fwd"], VARIANTS[:3]))
    else:
        plans.append((TRANSLATION + LONG, torch.float32, ["fwd", "fwd+bwd"], VARIANTS))
        plans.append((TRANSLATION[:2] + TRANSLATION[4:5], torch.bfloat16, ["fwd", "fwd+bwd"], VARIANTS[:3]))
    rows = []
    for shapes, dtype, modes, variants in plans:
        for shape in shapes:
            for mode in modes:
                row = {"shape": shape["name"], "dtype": str(dtype).replace("torch.", ""), "mode": mode}
                for key, seconds in bench_cell(variants, shape, dtype, mode, repeats).items():
                    row[key + " ms"] = 1e3 * seconds
                ours = row["ours ms"]
                row["nn.MHA/ours"] = row["nn.MHA ms"] / ours
                row["plain/ours"] = row["plain ms"] / ours
                if "ours +w ms" in row:
                    row["weights cost"] = row["ours +w ms"] / ours
                row["ours GFLOP/s"] = attention_flops(shape, mode == "fwd+bwd") / (ours / 1e3) / 1e9
                rows.append(row)
                print(".", end="", flush=True)
    print()
    cols = ["shape", "dtype", "mode", "ours ms", "nn.MHA ms", "plain ms", "ours +w ms", "nn.MHA +w ms",
            "nn.MHA/ours", "plain/ours", "weights cost", "ours GFLOP/s"]
    print_table("Attention layer (d=512, 8 heads, q/k/v/out projections included; median CPU ms, 1 thread); "
                "ratio > 1 = ours faster",
                rows, cols)
    return {"rows": rows, "d_model": D, "heads": HEADS,
            "flop_formula": "fwd = 2*B*(2*T*d^2 + 2*S*d^2 + 2*T*S*d); fwd+bwd = 3*fwd"}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    torch.set_num_threads(1)
    run(ap.parse_args().quick)
