"""The encoder-decoder Transformer, in the order of the idea.

    source ids -> embedding + positions -> Encoder (N x [self-attention, feed-forward])
                                            |  memory
    target ids -> embedding + positions -> Decoder (M x [masked self-attention,
                                                         cross-attention to memory,
                                                         feed-forward])
                                            -> linear -> target-vocabulary logits

Source and target share one SentencePiece vocabulary and one embedding table; the
output projection is optionally tied to it. Layers are pre-LN by default (stable
to train without a long warmup) or post-LN as in "Attention Is All You Need".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import KVCache, MultiHeadAttention
from .config import ModelConfig


def sinusoidal_table(length: int, d_model: int, halves: bool = False) -> Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...): sin and cos
    interleaved. ``halves``: Marian's layout, PE[pos, i] = sin(...), PE[pos, d/2 + i] = cos(...),
    computed in float64 and rounded once, as Hugging Face's MarianSinusoidalPositionalEmbedding does."""
    dtype = torch.float64 if halves else torch.float32
    pos = torch.arange(length, dtype=dtype)[:, None]
    if halves:
        angle = pos / torch.pow(torch.tensor(10000.0, dtype=dtype), torch.arange(0, d_model, 2, dtype=dtype) / d_model)
        return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).float()
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class Embeddings(nn.Module):
    """Token embedding * sqrt(d_model) (unless ``scale_embedding`` is off) + position
    encoding, then dropout."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        nn.init.normal_(self.tokens.weight, std=cfg.d_model**-0.5)
        self.scale = math.sqrt(cfg.d_model) if cfg.scale_embedding else 1.0
        if cfg.positions == "learned":
            self.positions = nn.Parameter(torch.randn(cfg.max_positions, cfg.d_model) * 0.02)
        else:
            table = sinusoidal_table(cfg.max_positions, cfg.d_model, halves=cfg.positions == "sinusoidal_halves")
            self.register_buffer("positions", table, persistent=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, ids: Tensor, offset: int = 0) -> Tensor:
        length = ids.size(1)
        if offset + length > self.positions.size(0):
            raise ValueError(f"sequence of {offset + length} tokens exceeds max_positions={self.positions.size(0)}")
        return self.dropout(self.tokens(ids) * self.scale + self.positions[offset : offset + length])


# ModelConfig.activation -> the function (Hugging Face's "swish" is SiLU, x * sigmoid(x))
ACTIVATION_FUNCTIONS = {"relu": F.relu, "gelu": F.gelu, "swish": F.silu}


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model)
        self.act = ACTIVATION_FUNCTIONS[cfg.activation]
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.dropout(self.act(self.up(x))))


class Sublayer(nn.Module):
    """Residual connection around one sublayer with its LayerNorm.

    pre-LN:  x + dropout(f(norm(x)))        post-LN:  norm(x + dropout(f(x)))
    Used as ``h = sub.enter(x)``, compute ``y = f(h)``, then ``x = sub.leave(x, y)``
    so the sublayer can return extras (attention weights, caches).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.norm_first = cfg.norm_first

    def enter(self, x: Tensor) -> Tensor:
        return self.norm(x) if self.norm_first else x

    def leave(self, x: Tensor, y: Tensor) -> Tensor:
        x = x + self.dropout(y)
        return x if self.norm_first else self.norm(x)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout)
        self.feed_forward = FeedForward(cfg)
        self.attn_sub, self.ff_sub = Sublayer(cfg), Sublayer(cfg)

    def forward(self, x: Tensor, src_pad: Tensor | None) -> Tensor:
        h = self.attn_sub.enter(x)
        x = self.attn_sub.leave(x, self.self_attn(h, key_padding_mask=src_pad)[0])
        return self.ff_sub.leave(x, self.feed_forward(self.ff_sub.enter(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout)
        self.feed_forward = FeedForward(cfg)
        self.self_sub, self.cross_sub, self.ff_sub = Sublayer(cfg), Sublayer(cfg), Sublayer(cfg)

    def forward(
        self,
        x: Tensor,
        memory: KVCache | Tensor,
        src_pad: Tensor | None,
        past: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None, KVCache | None]:
        """``memory`` is the encoder output, or its cached cross-attention K/V."""
        # 1. masked self-attention: each target position sees itself and earlier ones
        h = self.self_sub.enter(x)
        y, _, new_past = self.self_attn(h, causal=True, past=past)
        x = self.self_sub.leave(x, y)
        # 2. cross-attention: queries from the decoder, keys/values from the encoder
        h = self.cross_sub.enter(x)
        if isinstance(memory, KVCache):
            y, weights, _ = self.cross_attn(h, kv=memory, key_padding_mask=src_pad, need_weights=need_weights)
        else:
            y, weights, _ = self.cross_attn(h, memory, key_padding_mask=src_pad, need_weights=need_weights)
        x = self.cross_sub.leave(x, y)
        # 3. position-wise feed-forward
        x = self.ff_sub.leave(x, self.feed_forward(self.ff_sub.enter(x)))
        return x, weights, new_past


@dataclass
class DecoderState:
    """What the decoder carries from one step to the next (fairseq's incremental state).

    ``self_kv``  per layer, rows = sentences * beams, grows by one position per step;
    ``cross_kv`` per layer, rows = sentences, projected once from the encoder output
                 and shared by all beams of a sentence (never copied per beam).
    """

    cross_kv: list[KVCache]
    src_pad: Tensor | None
    beam_size: int = 1
    self_kv: list[KVCache | None] = field(default_factory=list)
    length: int = 0  # target positions processed so far

    def reorder_beams(self, rows: Tensor) -> None:
        """Row i of the next step continues hypothesis ``rows[i]`` (same sentence)."""
        self.self_kv = [c.index_select(rows) if c is not None else None for c in self.self_kv]

    def keep_sentences(self, sentences: Tensor) -> None:
        """Drop finished sentences (indices into the current sentence rows)."""
        rows = (sentences[:, None] * self.beam_size + torch.arange(self.beam_size, device=sentences.device)).flatten()
        self.reorder_beams(rows)
        self.cross_kv = [c.index_select(sentences) for c in self.cross_kv]
        if self.src_pad is not None:
            self.src_pad = self.src_pad.index_select(0, sentences)


@dataclass
class Seq2SeqOutput:
    logits: Tensor | None  # (batch, tgt_len, vocab); None when not asked for
    cross_attention: list[Tensor] | None = None  # per decoder layer: (batch, heads, tgt_len, src_len)
    states: Tensor | None = None  # the decoder's last (normalised) states, (batch, tgt_len, d_model)


class Seq2SeqTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.embed = Embeddings(cfg)  # shared by source and target (joint vocabulary)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        # pre-LN leaves the residual stream un-normalised: normalise once at the end
        self.encoder_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.final_logits_bias:  # a fixed per-token bias (Marian's), stored with the weights
            self.register_buffer("final_logits_bias", torch.zeros(cfg.vocab_size))
        self.tie_weights()

    def tie_weights(self) -> None:
        if self.config.tie_output:
            self.output.weight = self.embed.tokens.weight

    @classmethod
    def empty(cls, cfg: ModelConfig) -> "Seq2SeqTransformer":
        """Build without random initialisation: a fast start when weights are loaded next.

        (The meta device would do this too, but its first use costs seconds of imports.)
        """
        saved = nn.Linear.reset_parameters, nn.Embedding.reset_parameters
        nn.Linear.reset_parameters = nn.Embedding.reset_parameters = lambda self: None
        try:
            return cls(cfg)
        finally:
            nn.Linear.reset_parameters, nn.Embedding.reset_parameters = saved

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def source_padding(self, src: Tensor) -> Tensor | None:
        """Bool (batch, src_len), True at padding; None when nothing is padded (fast path)."""
        pad = src.eq(self.config.pad_id)
        return pad if bool(pad.any()) else None

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor | None]:
        """Source ids (batch, src_len) -> memory (batch, src_len, d_model), padding mask."""
        src_pad = self.source_padding(src)
        x = self.embed(src)
        for layer in self.encoder_layers:
            x = layer(x, src_pad)
        return self.encoder_norm(x), src_pad

    def decode(
        self, tgt: Tensor, memory: Tensor, src_pad: Tensor | None, need_weights: bool | tuple[int, ...] = False,
        need_logits: bool = True,
    ) -> Seq2SeqOutput:
        """Teacher forcing: all target positions at once, causally masked. Readers of the
        states only (alignment) skip the vocabulary projection: ``need_logits=False``.

        ``need_weights``: True for every layer's cross-attention weights, or the indices of
        the layers wanted (guided-alignment training reads one; the others stay fused)."""
        x = self.embed(tgt)
        wanted = range(len(self.decoder_layers)) if need_weights is True else (need_weights or ())
        weights = []
        for i, layer in enumerate(self.decoder_layers):
            x, w, _ = layer(x, memory, src_pad, need_weights=i in wanted)
            weights.append(w)
        states = self.decoder_norm(x)
        return Seq2SeqOutput(self.logits(states) if need_logits else None, weights if need_weights else None, states)

    def logits(self, states: Tensor) -> Tensor:
        """The decoder's final states -> target-vocabulary logits."""
        logits = self.output(states)
        return logits + self.final_logits_bias if self.config.final_logits_bias else logits

    def forward(self, src: Tensor, tgt: Tensor, need_weights: bool | tuple[int, ...] = False) -> Seq2SeqOutput:
        memory, src_pad = self.encode(src)
        return self.decode(tgt, memory, src_pad, need_weights)

    # -- incremental decoding ------------------------------------------------------
    def start_decoding(self, memory: Tensor, src_pad: Tensor | None, beam_size: int = 1) -> DecoderState:
        """Project every layer's cross-attention K/V once for this batch of sources."""
        cross = [layer.cross_attn.project_kv(memory) for layer in self.decoder_layers]
        return DecoderState(cross, src_pad, beam_size, [None] * len(self.decoder_layers))

    def decode_step(
        self, tokens: Tensor, state: DecoderState, need_weights: bool = False
    ) -> tuple[Tensor, list[Tensor] | None]:
        """Feed new target tokens (rows, n_new), usually n_new = 1.

        Returns the logits of the last new position (rows, vocab) and, if asked, the
        cross-attention weights of the new positions per layer. Updates ``state``.
        """
        x = self.embed(tokens, offset=state.length)
        weights = []
        for i, layer in enumerate(self.decoder_layers):
            x, w, state.self_kv[i] = layer(x, state.cross_kv[i], state.src_pad, state.self_kv[i], need_weights)
            weights.append(w)
        state.length += tokens.size(1)
        logits = self.logits(self.decoder_norm(x[:, -1]))
        return logits, (weights if need_weights else None)


def save_model(model: Seq2SeqTransformer, path: str | Path, dtype: torch.dtype | None = None) -> None:
    """Weights to safetensors (tied weights stored once)."""
    from safetensors.torch import save_file

    state = {k: v for k, v in model.state_dict().items() if not (model.config.tie_output and k == "output.weight")}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))


def load_weights(model: Seq2SeqTransformer, path: str | Path) -> None:
    """Load safetensors weights; shape or name mismatches raise ValueError with one line."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    expected = {k: v for k, v in model.state_dict().items() if not (model.config.tie_output and k == "output.weight")}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(f"weights do not match the config: missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise ValueError(f"weights do not match the config: {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    model.load_state_dict(state, strict=False)
