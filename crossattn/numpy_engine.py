"""The same network in NumPy: translation without importing torch.

``import torch`` takes 2-3 s on a small CPU, ten times the work of translating one
sentence with the shipped model. For a few sentences, ``crossattn translate`` runs
this engine instead: the computations of model.py and
decode.py written as plain array functions (fp32, one sentence at a time), reading
the same model directory. Tests hold both engines to the same logits and the same
translations; model.py stays the one definition of the network (and the one that
trains), this file is a second reading of it.

Shapes: a sentence is encoded alone, so the encoder works on ``(S, d)``; the decoder
runs ``k`` beams as rows ``(k, d)``. Self-attention caches are ``(k, H, t, dh)``; the
cross-attention K/V ``(H, S, dh)`` are projected once and broadcast over the beams.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .modeldir import (DEFAULT_DECODING, WEIGHTS, ModelDirError, decoding_settings, join_outputs, length_penalty,
                       max_output_length, normalize, read_model_dir, split_long_input)


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file as float32 arrays (8-byte header length, JSON header, raw data).

    NumPy has no bfloat16; a bf16 number is the top half of the float32 with the same
    value, so widening writes it next to a zero half (6x faster than a shift).
    """
    data = path.read_bytes()
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
        body = memoryview(data)[8 + n :]
        arrays = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            if end > len(body):
                raise ValueError(f"{name} runs past the end of the file")
            raw = np.frombuffer(body[start:end], dtype=np.uint8)
            if info["dtype"] == "BF16":
                halves = np.zeros(raw.size, dtype="<u2")
                halves[1::2] = raw.view("<u2")  # little-endian float32: high half second
                values = halves.view("<f4").astype(np.float32, copy=False)
            elif info["dtype"] in ("F16", "F32"):
                values = raw.view("<f2" if info["dtype"] == "F16" else "<f4").astype(np.float32)
            else:
                raise ValueError(f"{name} has unsupported dtype {info['dtype']}")
            arrays[name] = values.reshape(info["shape"])
        return arrays
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read weights ({e})") from None


def layer_norm(x: np.ndarray, w: dict, name: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = np.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * w[name + ".weight"] + w[name + ".bias"]


def linear(x: np.ndarray, w: dict, name: str) -> np.ndarray:
    y = x @ w[name + ".weight"].T  # a transposed view: BLAS reads it in place
    bias = w.get(name + ".bias")
    return y if bias is None else y + bias


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sinusoidal_table(length: int, d_model: int) -> np.ndarray:
    pos = np.arange(length, dtype=np.float32)[:, None]
    freq = np.exp(np.arange(0, d_model, 2, dtype=np.float32) * np.float32(-math.log(10000.0) / d_model))
    table = np.zeros((length, d_model), dtype=np.float32)
    table[:, 0::2], table[:, 1::2] = np.sin(pos * freq), np.cos(pos * freq)
    return table


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor model.py saves for this config, with its shape."""
    d, ff = cfg.d_model, cfg.d_ff
    shapes = {"embed.tokens.weight": (cfg.vocab_size, d)}
    if cfg.positions == "learned":
        shapes["embed.positions"] = (cfg.max_positions, d)

    def add(prefix: str, rows: int, cols: int | None = None) -> None:
        if cols is not None:  # Linear
            shapes[prefix + ".weight"], shapes[prefix + ".bias"] = (rows, cols), (rows,)
        else:  # LayerNorm
            shapes[prefix + ".weight"] = shapes[prefix + ".bias"] = (rows,)

    stacks = [("encoder_layers", cfg.encoder_layers, ["self_attn"], ["attn_sub", "ff_sub"]),
              ("decoder_layers", cfg.decoder_layers, ["self_attn", "cross_attn"], ["self_sub", "cross_sub", "ff_sub"])]
    for stack, count, attentions, sublayers in stacks:
        for i in range(count):
            p = f"{stack}.{i}"
            for a in attentions:
                for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    add(f"{p}.{a}.{proj}", d, d)
            add(p + ".feed_forward.up", ff, d)
            add(p + ".feed_forward.down", d, ff)
            for sub in sublayers:
                add(f"{p}.{sub}.norm", d)
    if cfg.norm_first:
        add("encoder_norm", d)
        add("decoder_norm", d)
    if not cfg.tie_output:
        shapes["output.weight"] = (cfg.vocab_size, d)
    return shapes


def check_weights(cfg: ModelConfig, weights: dict[str, np.ndarray]) -> None:
    """Same rule and message as model.load_weights: names and shapes must match the config."""
    expected = expected_shapes(cfg)
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(f"weights do not match the config: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, w in weights.items():
        if w.shape != expected[name]:
            raise ValueError(f"weights do not match the config: {name} has shape {w.shape}, expected {expected[name]}")


class NumpyModel:
    """Seq2SeqTransformer's inference path: encode, project cross K/V once, step the decoder."""

    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray]):
        check_weights(cfg, weights)
        self.cfg, self.w = cfg, weights
        self.heads = cfg.n_heads
        self.embedding = weights["embed.tokens.weight"]
        self.output = self.embedding if cfg.tie_output else weights["output.weight"]
        learned = cfg.positions == "learned"
        self.positions = weights["embed.positions"] if learned else sinusoidal_table(cfg.max_positions, cfg.d_model)
        self.act = self._gelu if cfg.activation == "gelu" else (lambda x: np.maximum(x, 0))

    @staticmethod
    def _gelu(x: np.ndarray) -> np.ndarray:
        # exact (erf) GELU as in torch; math.erf vectorised is fast enough for d_ff-wide rows
        return 0.5 * x * (1.0 + np.vectorize(math.erf, otypes=[np.float32])(x / math.sqrt(2.0)))

    def embed(self, ids: np.ndarray, offset: int) -> np.ndarray:
        if offset + ids.shape[-1] > len(self.positions):
            raise ValueError(f"sequence of {offset + ids.shape[-1]} tokens exceeds max_positions={len(self.positions)}")
        return self.embedding[ids] * np.float32(math.sqrt(self.cfg.d_model)) + self.positions[offset : offset + ids.shape[-1]]

    def split_heads(self, x: np.ndarray) -> np.ndarray:  # (..., T, d) -> (..., H, T, dh)
        *lead, t, d = x.shape
        return x.reshape(*lead, t, self.heads, d // self.heads).swapaxes(-2, -3)

    def merge_heads(self, x: np.ndarray) -> np.ndarray:  # (..., H, T, dh) -> (..., T, d)
        x = x.swapaxes(-2, -3)
        return x.reshape(*x.shape[:-2], -1)

    def attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, name: str) -> np.ndarray:
        """softmax(Q K^T / sqrt(dh)) V over heads, then the output projection."""
        scores = q @ k.swapaxes(-1, -2) / np.float32(math.sqrt(q.shape[-1]))
        return linear(self.merge_heads(softmax(scores) @ v), self.w, name + ".out_proj")

    def sublayer(self, x: np.ndarray, name: str, f) -> np.ndarray:
        """pre-LN: x + f(norm(x)); post-LN: norm(x + f(x))."""
        if self.cfg.norm_first:
            return x + f(layer_norm(x, self.w, name + ".norm"))
        return layer_norm(x + f(x), self.w, name + ".norm")

    def feed_forward(self, x: np.ndarray, name: str) -> np.ndarray:
        return linear(self.act(linear(x, self.w, name + ".up")), self.w, name + ".down")

    def project(self, x: np.ndarray, name: str) -> np.ndarray:
        return self.split_heads(linear(x, self.w, name))

    def encode(self, ids: list[int]) -> np.ndarray:
        """One source sentence (EOS included) -> memory (S, d)."""
        x = self.embed(np.asarray(ids), 0)
        for i in range(self.cfg.encoder_layers):
            p = f"encoder_layers.{i}"

            def self_attn(h, p=p):
                a = p + ".self_attn"
                return self.attention(self.project(h, a + ".q_proj"), self.project(h, a + ".k_proj"),
                                      self.project(h, a + ".v_proj"), a)

            x = self.sublayer(x, p + ".attn_sub", self_attn)
            x = self.sublayer(x, p + ".ff_sub", lambda h, p=p: self.feed_forward(h, p + ".feed_forward"))
        return layer_norm(x, self.w, "encoder_norm") if self.cfg.norm_first else x

    def start_decoding(self, memory: np.ndarray) -> dict:
        """Cross-attention K/V per layer, computed once for the sentence."""
        cross = []
        for i in range(self.cfg.decoder_layers):
            a = f"decoder_layers.{i}.cross_attn"
            cross.append((self.project(memory, a + ".k_proj"), self.project(memory, a + ".v_proj")))
        return {"cross": cross, "self": [None] * len(cross), "length": 0}

    def decode_step(self, tokens: np.ndarray, state: dict) -> np.ndarray:
        """One new token per beam row (k,) -> next-token logits (k, vocab); updates state.

        One query per row sees every cached position, so no causal mask is needed.
        """
        x = self.embed(tokens[:, None], state["length"])  # (k, 1, d)
        for i in range(self.cfg.decoder_layers):
            p = f"decoder_layers.{i}"

            def self_attn(h, p=p, i=i):
                a = p + ".self_attn"
                k, v = self.project(h, a + ".k_proj"), self.project(h, a + ".v_proj")
                if state["self"][i] is not None:
                    k, v = (np.concatenate([old, new], axis=2) for old, new in zip(state["self"][i], (k, v)))
                state["self"][i] = (k, v)
                return self.attention(self.project(h, a + ".q_proj"), k, v, a)

            def cross_attn(h, p=p, i=i):
                k, v = state["cross"][i]  # (H, S, dh), broadcast over the k beam rows
                return self.attention(self.project(h, p + ".cross_attn.q_proj"), k, v, p + ".cross_attn")

            x = self.sublayer(x, p + ".self_sub", self_attn)
            x = self.sublayer(x, p + ".cross_sub", cross_attn)
            x = self.sublayer(x, p + ".ff_sub", lambda h, p=p: self.feed_forward(h, p + ".feed_forward"))
        state["length"] += 1
        x = x[:, -1]
        if self.cfg.norm_first:
            x = layer_norm(x, self.w, "decoder_norm")
        return x @ self.output.T

    def reorder_beams(self, state: dict, rows: np.ndarray) -> None:
        state["self"] = [(k[rows], v[rows]) for k, v in state["self"]]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def beam_search(model: NumpyModel, src: list[int], beam: int, alpha: float) -> list[int]:
    """decode.beam_search for one sentence (beam 1 = greedy): same candidates, same
    length penalty, same stopping rule, so both engines pick the same hypothesis."""
    cfg = model.cfg
    k = beam
    limit = max_output_length(len(src), cfg.max_positions)
    state = model.start_decoding(model.encode(src))
    scores = np.full(k, -np.inf, dtype=np.float32)
    scores[0] = 0.0  # only beam 0 is real at the start
    hyps: list[list[int]] = [[] for _ in range(k)]
    finished: list[tuple[float, list[int]]] = []
    tokens = np.full(k, cfg.bos_id)
    for step in range(limit):
        logp = log_softmax(model.decode_step(tokens, state))
        cand = (scores[:, None] + logp).ravel()
        top = np.argpartition(-cand, 2 * k)[: 2 * k] if cand.size > 2 * k else np.arange(cand.size)
        top = top[np.argsort(-cand[top], kind="stable")]
        lp = length_penalty(step + 1, alpha)
        survivors = []  # (score, beam, token): the best k candidates that do not end here
        for rank, idx in enumerate(top):
            b, tok, s = int(idx) // logp.shape[1], int(idx) % logp.shape[1], float(cand[idx])
            if s == -np.inf:
                break
            if tok == cfg.eos_id:
                if rank < k:  # only candidates that would have been among the top k
                    finished.append((s / lp, list(hyps[b])))
            elif len(survivors) < k:
                survivors.append((s, b, tok))
        survivors += [(-np.inf, 0, cfg.eos_id)] * (k - len(survivors))
        hyps = [hyps[b] + [t] for _, b, t in survivors]
        scores = np.array([s for s, _, _ in survivors], dtype=np.float32)
        if step + 1 >= limit:  # out of length budget: the live hypotheses compete as they are
            finished += [(float(s) / lp, h) for s, h in zip(scores, hyps) if s > -np.inf]
        if len(finished) >= k or step + 1 >= limit:
            break
        model.reorder_beams(state, np.array([b for _, b, _ in survivors]))
        tokens = np.array([t for _, _, t in survivors])
    return max(finished, key=lambda t: t[0])[1] if finished else []


class NumpyTranslator:
    """Translator's text-in, text-out API on the NumPy engine (CPU, fp32)."""

    def __init__(self, model: NumpyModel, tokenizer, decoding: dict | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.decoding = {**DEFAULT_DECODING, **(decoding or {})}
        self.max_source_tokens = model.cfg.max_positions - 1

    @classmethod
    def load(cls, path: str | Path | None = None) -> "NumpyTranslator":
        root, config, model_cfg, tokenizer = read_model_dir(path)
        try:
            model = NumpyModel(model_cfg, load_safetensors(root / WEIGHTS))
        except ValueError as e:
            raise ModelDirError(f"{root / WEIGHTS}: {e}") from None
        return cls(model, tokenizer, config.get("decoding"))

    def translate(self, texts: list[str], beam: int | None = None, alpha: float | None = None) -> list[str]:
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        outputs = []
        for text in map(normalize, texts):
            chunks = split_long_input(self.tokenizer, self.tokenizer.encode(text), text, self.max_source_tokens)
            eos = self.model.cfg.eos_id
            outputs.append([self.tokenizer.decode(beam_search(self.model, c + [eos], beam, alpha)) for c in chunks])
        return join_outputs(outputs)
