"""Where the time goes: operator profiles (torch.profiler, self CPU time) and Python
profiles (cProfile, own time) of our translation (greedy and beam 4, batched and one
sentence at a time) and of one training step, plus the dominant decode GEMMs timed alone.

    python bench/hotspots.py [--quick]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from common import REPO, dev_sentences, median, print_table, timed

TOP = 12


def op_profile(fn) -> list[dict]:
    """Top operators by self CPU time."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:TOP]
    return [{"op": e.key, "calls": e.count, "self ms": e.self_cpu_time_total / 1e3,
             "% self": 100 * e.self_cpu_time_total / total} for e in top]


def python_profile(fn) -> list[dict]:
    """Top Python functions by own time (includes the C calls they make directly)."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt or 1
    rows = []
    for (file, line, name), (cc, nc, tt, ct, _) in stats.stats.items():
        short = file.replace(str(REPO) + "/", "").split("site-packages/")[-1]
        rows.append({"function": f"{name} ({short}:{line})", "calls": nc, "own ms": 1e3 * tt,
                     "% own": 100 * tt / total, "cum ms": 1e3 * ct})
    return sorted(rows, key=lambda r: r["own ms"], reverse=True)[:TOP]


def run(quick: bool) -> dict:
    from crossattn.translator import Translator

    tr = Translator.load()
    texts = [s for s, _ in dev_sentences(64 if quick else 256)]
    single = texts[:8 if quick else 32]
    tr.translate(texts[:8], beam=4)  # warm-up
    cases = {
        "greedy, batch 64": lambda: tr.translate(texts, beam=1),
        "beam 4, batch 64": lambda: tr.translate(texts, beam=4),
        "beam 4, one sentence per call": lambda: [tr.translate([t], beam=4) for t in single],
    }
    out = {}
    for name, fn in cases.items():
        ops, py = op_profile(fn), python_profile(fn)
        n = len(single) if "one sentence" in name else len(texts)
        print_table(f"Operators, translate {name} ({n} sentences)", ops, ["op", "calls", "self ms", "% self"])
        print_table(f"Python functions, translate {name}", py, ["function", "calls", "own ms", "% own", "cum ms"])
        out[name] = {"ops": ops, "python": py}
    out["decode gemms"] = decode_gemms(quick)
    out["training step"] = {"ops": op_profile(training_step(quick))}
    print_table("Operators, one training step (ours, shipped size)", out["training step"]["ops"],
                ["op", "calls", "self ms", "% self"])
    return out


def decode_gemms(quick: bool) -> list[dict]:
    """The two GEMMs that dominate decoding, at decode shapes (rows = live hypotheses):
    the tied output projection in three layouts, and q/k/v as three Linears or one."""
    from crossattn.translator import Translator

    emb = Translator.load().model.output.weight.detach()  # (vocab, d): the tied embedding
    vocab, d = emb.shape
    emb_t = emb.t().contiguous()
    w = [torch.randn(d, d) for _ in range(3)]
    b = [torch.randn(d) for _ in range(3)]
    w_qkv, b_qkv = torch.cat(w), torch.cat(b)

    def us(fn, reps: int) -> float:
        return 1e6 * median(timed(fn, reps, warmup=3, clock=time.process_time))

    rows = []
    for m in (1, 4, 16, 64):
        x = torch.randn(m, d)
        reps = 10 if quick else 40
        rows.append({
            "rows": m,
            "F.linear(x, E) us": us(lambda: F.linear(x, emb), reps),
            "x @ E_t us": us(lambda: x @ emb_t, reps),
            "(E @ x.T).T us": us(lambda: (emb @ x.t()).t(), reps),
            "q,k,v Linears us": us(lambda: [F.linear(x, wi, bi) for wi, bi in zip(w, b)], 5 * reps),
            "fused qkv us": us(lambda: F.linear(x, w_qkv, b_qkv), 5 * reps),
        })
    print_table(f"Decode GEMMs: output projection ({vocab}x{d}, 3 layouts) and q/k/v ({d}x{d}, 3 vs 1 fused)",
                rows, list(rows[0]))
    return rows


def training_step(quick: bool):
    from training import DROPOUT, SIZE, batches
    from crossattn.model import ModelConfig, Seq2SeqTransformer

    model = Seq2SeqTransformer(ModelConfig(**SIZE, dropout=DROPOUT, attention_dropout=DROPOUT)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    src, tgt_in, tgt_out = batches(1024 if quick else 4096, 1)[0]

    def step():
        logits = model(src, tgt_in).logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), tgt_out.view(-1), ignore_index=0, label_smoothing=0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up (optimizer state)
    return step


if __name__ == "__main__":
    import argparse

    sys.path.insert(0, str(REPO / "bench"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    torch.set_num_threads(1)
    run(ap.parse_args().quick)
