"""Training throughput: one full step (forward, label-smoothed loss, backward, clip, AdamW)
on the same real batches for three models of identical size:

* ours: crossattn.model.Seq2SeqTransformer
* nn.Transformer: torch.nn.Transformer (norm_first, batch_first) + shared embedding,
  sinusoidal positions and tied output projection, written the obvious way
* HF Marian: transformers.MarianMTModel from a MarianConfig of the same size (random init)

Size = the shipped model (d 384, 6 heads, FFN 1536, 6+3 layers, vocabulary 8000);
dropout 0.1 everywhere, attention dropout 0.1 too (nn.Transformer cannot separate them).
"""

from __future__ import annotations

import math
import os
import time
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common import dev_sentences, matmul_ceiling, median, print_table
from crossattn.data import TokenBatcher, collate
from crossattn.model import ModelConfig, Seq2SeqTransformer, sinusoidal_table
from crossattn.modeldir import PRETRAINED_DIR
from crossattn.tokenizer import Tokenizer

SIZE = dict(vocab_size=8000, d_model=384, n_heads=6, d_ff=1536, encoder_layers=6, decoder_layers=3)
DROPOUT = 0.1
PAD, BOS, EOS = 0, 2, 3
warnings.filterwarnings("ignore", message="enable_nested_tensor is True")


class TorchTransformer(nn.Module):
    """The same model as ours, built from torch.nn.Transformer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD)
        self.register_buffer("positions", sinusoidal_table(cfg.max_positions, cfg.d_model), persistent=False)
        self.scale = math.sqrt(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.transformer = nn.Transformer(cfg.d_model, cfg.n_heads, cfg.encoder_layers, cfg.decoder_layers,
                                          cfg.d_ff, cfg.dropout, batch_first=True, norm_first=True)
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.output.weight = self.embed.weight

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        pad = src.eq(PAD)
        emb = lambda ids: self.dropout(self.embed(ids) * self.scale + self.positions[: ids.size(1)])  # noqa: E731
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
        out = self.transformer(emb(src), emb(tgt), tgt_mask=causal, src_key_padding_mask=pad,
                               memory_key_padding_mask=pad, tgt_is_causal=True)
        return self.output(out)


def marian(cfg: ModelConfig):
    from transformers import MarianConfig, MarianMTModel

    mc = MarianConfig(
        vocab_size=cfg.vocab_size, decoder_vocab_size=cfg.vocab_size, d_model=cfg.d_model,
        encoder_layers=cfg.encoder_layers, decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.n_heads, decoder_attention_heads=cfg.n_heads,
        encoder_ffn_dim=cfg.d_ff, decoder_ffn_dim=cfg.d_ff, activation_function="relu",
        dropout=cfg.dropout, attention_dropout=cfg.attention_dropout, activation_dropout=cfg.dropout,
        max_position_embeddings=cfg.max_positions, scale_embedding=True, pad_token_id=PAD, eos_token_id=EOS,
        bos_token_id=BOS, decoder_start_token_id=BOS, forced_eos_token_id=EOS,
        share_encoder_decoder_embeddings=True, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return MarianMTModel(mc)


def build(name: str, cfg: ModelConfig):
    """(model, forward(src, tgt_in) -> logits)."""
    torch.manual_seed(0)
    if name == "ours":
        m = Seq2SeqTransformer(cfg)
        return m, lambda src, tgt: m(src, tgt).logits
    if name == "nn.Transformer":
        m = TorchTransformer(cfg)
        return m, m
    m = marian(cfg)
    return m, lambda src, tgt: m(input_ids=src, attention_mask=src.ne(PAD), decoder_input_ids=tgt).logits


def step_flops(cfg: ModelConfig, batch: int, s: int, t: int) -> float:
    """Matmul FLOPs of one training step on a (batch, s) x (batch, t) padded batch.

    forward = 2*B*( Le*(4*S*d^2 + 2*S*d*f + 2*S^2*d)                  encoder
                  + Ld*(4*T*d^2 + 2*T*d*f + 2*T^2*d                   decoder self-attn + FFN
                        + 2*T*d^2 + 2*S*d^2 + 2*T*S*d)                cross-attn (q,o | k,v | scores, AV)
                  + T*d*V )                                           output projection
    training = 3 * forward (backward = 2 * forward). Padded positions count: they are computed.
    """
    d, f, v, le, ld = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.encoder_layers, cfg.decoder_layers
    enc = le * (4 * s * d * d + 2 * s * d * f + 2 * s * s * d)
    dec = ld * (4 * t * d * d + 2 * t * d * f + 2 * t * t * d + 2 * t * d * d + 2 * s * d * d + 2 * t * s * d)
    return 3 * 2 * batch * (enc + dec + t * d * v)


def batches(max_tokens: int, count: int) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``count`` real Tatoeba dev batches, cut by TokenBatcher as training does."""
    tok = Tokenizer(PRETRAINED_DIR / "tokenizer.model")
    pairs = dev_sentences(2217)
    src = tok.encode_batch([s for s, _ in pairs])
    tgt = tok.encode_batch([t for _, t in pairs])
    batcher = TokenBatcher([len(s) + 1 for s in src], [len(t) + 1 for t in tgt], max_tokens, seed=0)
    chosen = sorted(batcher.epoch_batches(0), key=len)  # a middle-length slice, not the extremes
    mid = len(chosen) // 2
    out = []
    for idx in chosen[mid : mid + count]:
        out.append(collate([src[i] for i in idx], [tgt[i] for i in idx]))
    return out


def bench_model(name: str, cfg: ModelConfig, data, repeats: int, dtype: torch.dtype = torch.float32) -> dict:
    model, forward = build(name, cfg)
    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    def step(src, tgt_in, tgt_out):
        with autocast:
            logits = forward(src, tgt_in)
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), tgt_out.view(-1), ignore_index=PAD,
                               label_smoothing=0.1, reduction="sum")
        ntok = int(tgt_out.ne(PAD).sum())
        (loss / ntok).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(*data[0])  # warm-up: allocator, optimizer state
    rates, tflops, times, cpu_rates, cpu_tflops = [], [], [], [], []
    for _ in range(repeats):
        for src, tgt_in, tgt_out in data:
            start, cpu = time.perf_counter(), time.process_time()
            step(src, tgt_in, tgt_out)
            dt = time.perf_counter() - start
            cpu = time.process_time() - cpu
            cpu_rates.append(int(tgt_out.ne(PAD).sum()) / cpu)
            cpu_tflops.append(step_flops(cfg, src.size(0), src.size(1), tgt_in.size(1)) / cpu / 1e12)
            times.append(dt)
            rates.append(int(tgt_out.ne(PAD).sum()) / dt)
            tflops.append(step_flops(cfg, src.size(0), src.size(1), tgt_in.size(1)) / dt / 1e12)
    return {"model": name, "params": sum(p.numel() for p in model.parameters()),
            "step s": median(times), "tgt tok/s": median(rates), "TFLOP/s": median(tflops), "steps": len(times),
            "cpu tok/s": median(cpu_rates), "cpu TFLOP/s": median(cpu_tflops)}


def run(quick: bool, ceiling: dict) -> dict:
    """``ceiling``: matmul ceilings from run.py; fp32 is re-measured here, and the better
    one kept, so a busy moment on a shared machine cannot inflate the percentages."""
    fp32 = max(ceiling["fp32"]["gflops"], matmul_ceiling(torch.float32, True)["gflops"])
    cfg = ModelConfig(**SIZE, dropout=DROPOUT, attention_dropout=DROPOUT)
    max_tokens, count, repeats = (1024, 1, 1) if quick else (4096, 3, 2)
    data = batches(max_tokens, count)
    shapes = [tuple(b[0].shape) + (b[1].size(1),) for b in data]
    rows = []
    for name in ("ours", "nn.Transformer", "HF Marian"):
        try:
            row = bench_model(name, cfg, data, repeats)
        except ImportError as e:
            print(f"skipping {name}: {e}")
            continue
        row["% of fp32 matmul"] = 100 * row["TFLOP/s"] * 1e3 / fp32
        row["% of fp32 (cpu time)"] = 100 * row["cpu TFLOP/s"] * 1e3 / fp32
        rows.append(row)
        print(".", end="", flush=True)
    if not quick:  # for the record: bf16 autocast without AMX / AVX512-BF16, one small batch
        small = batches(1024, 1)
        row = bench_model("ours", cfg, small, 1, dtype=torch.bfloat16)
        row["model"] = f"ours bf16 autocast, batch {tuple(small[0][0].shape)}"
        row["% of bf16 matmul"] = 100 * row["TFLOP/s"] * 1e3 / ceiling["bf16"]["gflops"]
        rows.append(row)
    print()
    ours = rows[0]
    for r in rows:
        r["ours speedup"] = ours["tgt tok/s"] / r["tgt tok/s"]
        r["ours speedup (cpu)"] = ours["cpu tok/s"] / r["cpu tok/s"]
    print_table(f"Training step, shipped size, batches (B, S, T) = {shapes}, {torch.get_num_threads()} thread(s); "
                f"fp32 matmul ceiling {fp32:.1f} GFLOP/s", rows,
                ["model", "params", "step s", "tgt tok/s", "TFLOP/s", "% of fp32 matmul", "% of bf16 matmul",
                 "cpu tok/s", "% of fp32 (cpu time)", "ours speedup", "ours speedup (cpu)"])
    return {"rows": rows, "config": cfg.to_dict(), "batches_BST": shapes, "max_tokens": max_tokens,
            "flop_formula": step_flops.__doc__.strip(), "threads": torch.get_num_threads(),
            "fp32_ceiling_gflops": fp32, "hf_attn_implementation": _hf_attn(cfg)}


def _hf_attn(cfg: ModelConfig) -> str | None:
    try:
        return marian(ModelConfig(**{**cfg.to_dict(), "encoder_layers": 1, "decoder_layers": 1})).config._attn_implementation
    except ImportError:
        return None


if __name__ == "__main__":
    import argparse

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    torch.set_num_threads(1)
    q = ap.parse_args().quick
    run(q, {"fp32": matmul_ceiling(torch.float32, q), "bf16": matmul_ceiling(torch.bfloat16, True)})
