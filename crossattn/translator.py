"""Translator: a model, its tokenizer and decoding settings, loaded from a model directory
(see modeldir.py) and run with torch on CPU or GPU, in fp32, bf16 or int8.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .data import pad_sources
from .decode import beam_search
from .model import Seq2SeqTransformer, load_weights, save_model
from .modeldir import (CONFIG, DEFAULT_DECODING, TOKENIZER, WEIGHTS, ModelDirError, decoding_settings, join_outputs,
                       normalize, read_model_dir, sha256_file, split_long_input)
from .tokenizer import Tokenizer


def cpu_has_fast_bf16() -> bool:
    """bf16 matmuls are only fast with AMX or AVX512-BF16; elsewhere they are ~100x slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        fast = device.type == "cuda" or cpu_has_fast_bf16()
        return torch.bfloat16 if fast else torch.float32
    return {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}[dtype]


def quantize_int8(model: Seq2SeqTransformer, device: torch.device) -> Seq2SeqTransformer:
    """Dynamic int8 quantization of every Linear (weights int8, activations quantized
    per batch): about 2x faster matmuls on CPUs without fast bf16, small BLEU cost."""
    if device.type != "cpu":
        raise ValueError("int8 inference is CPU-only; use bf16 on GPU")
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def save_model_dir(model: Seq2SeqTransformer, tokenizer: Tokenizer, out: str | Path, decoding: dict | None = None,
                   dtype: torch.dtype | None = None, extra: dict | None = None) -> None:
    """Write an inference-ready model directory (checksums included)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out / WEIGHTS, dtype)
    tokenizer.save(out / TOKENIZER)
    config = {
        "model": model.config.to_dict(),
        "decoding": dict(decoding or DEFAULT_DECODING),
        "files": {name: sha256_file(out / name) for name in (WEIGHTS, TOKENIZER)},
        **(extra or {}),
    }
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def load_model_dir(path: str | Path | None, verify: bool = True) -> tuple[Seq2SeqTransformer, Tokenizer, dict]:
    root, config, model_cfg, tokenizer = read_model_dir(path, verify)
    model = Seq2SeqTransformer.empty(model_cfg)
    try:
        load_weights(model, root / WEIGHTS)
    except ValueError as e:
        raise ModelDirError(f"{root / WEIGHTS}: {e}") from None
    except Exception as e:  # safetensors raises its own error types on truncated files
        raise ModelDirError(f"{root / WEIGHTS}: cannot read weights ({e})") from None
    return model.eval(), tokenizer, config


@dataclass
class AttentionResult:
    """One translation with the cross-attention that produced it."""

    translation: str
    source_tokens: list[str]  # pieces, EOS included as "</s>"
    target_tokens: list[str]  # pieces, EOS included as "</s>"
    attention: Tensor  # (layers, heads, target_len, source_len), float32


class Translator:
    def __init__(self, model: Seq2SeqTransformer, tokenizer: Tokenizer, decoding: dict | None = None,
                 device: str = "auto", dtype: str = "auto"):
        self.device = pick_device(device)
        self.int8 = dtype == "int8"
        self.dtype = torch.float32 if self.int8 else pick_dtype(dtype, self.device)
        self.model = model.to(self.device, self.dtype).eval()
        if self.int8:
            self.model = quantize_int8(self.model, self.device)
        self.tokenizer = tokenizer
        self.decoding = {**DEFAULT_DECODING, **(decoding or {})}
        # keep one position for BOS/EOS bookkeeping
        self.max_source_tokens = model.config.max_positions - 1

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "auto", dtype: str = "auto") -> "Translator":
        model, tokenizer, config = load_model_dir(path)
        return cls(model, tokenizer, config.get("decoding"), device, dtype)

    # -- text <-> ids -----------------------------------------------------------------
    def _batch(self, seqs: list[list[int]]) -> Tensor:
        return pad_sources(seqs, self.model.config.pad_id, self.model.config.eos_id).to(self.device)

    # -- translation ------------------------------------------------------------------
    def translate(self, texts: list[str], beam: int | None = None, alpha: float | None = None,
                  batch_size: int = 64, max_batch_tokens: int = 4096) -> list[str]:
        """One output per input, in order; empty input gives empty output."""
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        texts = [normalize(t) for t in texts]
        encoded = self.tokenizer.encode_batch(texts)
        pieces: list[tuple[int, list[int]]] = []  # (input index, chunk ids)
        for i, (text, ids) in enumerate(zip(texts, encoded)):
            pieces.extend((i, c) for c in split_long_input(self.tokenizer, ids, text, self.max_source_tokens))
        # sort by length so each batch has little padding; restore order at the end
        order = sorted(range(len(pieces)), key=lambda j: len(pieces[j][1]))
        results: list[list[int]] = [[] for _ in pieces]
        start = 0
        while start < len(order):
            end = start + 1
            while (end < len(order) and end - start < batch_size
                   and (end - start + 1) * (len(pieces[order[end]][1]) + 1) * beam <= max_batch_tokens):
                end += 1
            batch_idx = order[start:end]
            src = self._batch([pieces[j][1] for j in batch_idx])
            for j, hyp in zip(batch_idx, beam_search(self.model, src, beam, alpha)):
                results[j] = hyp
            start = end
        outputs = [[] for _ in texts]
        for (i, _), hyp in zip(pieces, results):
            outputs[i].append(self.tokenizer.decode(hyp))
        return join_outputs(outputs)

    @torch.inference_mode()
    def translate_with_attention(self, text: str, beam: int | None = None, alpha: float | None = None) -> AttentionResult:
        """Translate one text and return the cross-attention of every layer and head.

        The hypothesis is found by the normal search; its attention is then read by one
        teacher-forced pass over it, which computes exactly the weights each step used
        (the decoder is causal), so the plain translate path never pays for weights.
        """
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        text = normalize(text)
        ids = self.tokenizer.encode(text)[: self.max_source_tokens - 1]
        src = self._batch([ids])
        hyp = beam_search(self.model, src, beam, alpha)[0]
        cfg = self.model.config
        hyp = hyp[: cfg.max_positions - 1]
        tgt_in = torch.tensor([[cfg.bos_id] + hyp], device=self.device)
        out = self.model(src, tgt_in, need_weights=True)
        attention = torch.stack([w[0] for w in out.cross_attention]).float().cpu()  # (L, H, T, S)
        piece = self.tokenizer.id_to_piece
        return AttentionResult(
            translation=self.tokenizer.decode(hyp),
            source_tokens=[piece(i) for i in ids] + ["</s>"],
            target_tokens=[piece(i) for i in hyp] + ["</s>"],
            attention=attention,
        )

