"""Multi-head attention: the one module behind all three attentions of the model.

* encoder self-attention: queries, keys and values all come from the source;
* decoder masked self-attention: the same, over the target prefix, with a causal mask;
* decoder cross-attention: queries come from the decoder, keys and values from the
  encoder output ("memory"). This is where the translation looks at the source.

Two paths compute the same thing:

* the fast path hands the work to ``F.scaled_dot_product_attention`` (fused, flash or
  memory-efficient kernels) and never materialises the attention matrix;
* the explicit path writes out ``softmax(Q K^T / sqrt(d) + mask) V`` and returns the
  per-head weights ``(batch, heads, tgt_len, src_len)``. It runs only when weights are
  asked for, so inspecting attention never slows down translation.

Incremental decoding keeps two kinds of keys/values (see :class:`KVCache`):
self-attention K/V that grow by one position per step, and cross-attention K/V that
are projected once per source sentence and reused at every step and by every beam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class KVCache:
    """Keys and values of one attention layer, shape ``(batch, heads, length, head_dim)``."""

    k: Tensor
    v: Tensor

    def append(self, k: Tensor, v: Tensor) -> "KVCache":
        return KVCache(torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2))

    def index_select(self, index: Tensor) -> "KVCache":
        """Keep/reorder batch rows: beam reordering and dropping finished sentences."""
        return KVCache(self.k.index_select(0, index), self.v.index_select(0, index))

    @property
    def length(self) -> int:
        return self.k.size(2)


def blocked_to_additive(blocked: Tensor, dtype: torch.dtype) -> Tensor:
    """Bool mask (True = may not attend) -> additive mask.

    A large finite negative instead of -inf: a row whose keys are all blocked then
    gets a uniform (finite) softmax instead of NaN.
    """
    return torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill_(blocked, torch.finfo(dtype).min)


def causal_blocked(q_len: int, k_len: int, device: torch.device) -> Tensor:
    """Causal mask aligned to the end: query i sees keys 0 .. k_len - q_len + i."""
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).triu(k_len - q_len + 1)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with ``n_heads`` heads over ``d_model`` features."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split_heads(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, source: Tensor) -> KVCache:
        """Keys and values for ``source`` (batch, len, d_model).

        For cross-attention this is called once per source sentence: the encoder output
        does not change while the decoder writes the translation.
        """
        return KVCache(self._split_heads(self.k_proj(source)), self._split_heads(self.v_proj(source)))

    def forward(
        self,
        query: Tensor,
        source: Tensor | None = None,
        *,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
        kv: KVCache | None = None,
        past: KVCache | None = None,
    ) -> tuple[Tensor, Tensor | None, KVCache | None]:
        """Attend from ``query`` (batch, tgt_len, d_model) to keys/values.

        Keys/values come from, in order of precedence:
          * ``kv``: precomputed (static cross-attention cache), used as is;
          * ``source``: projected here (cross-attention without cache);
          * ``query`` itself (self-attention), appended to ``past`` if given
            (incremental decoding).

        ``kv`` may have fewer batch rows than ``query``: with ``beam`` hypotheses per
        sentence, the query rows of one sentence are folded into its query length, so
        all beams read one shared copy of the sentence's keys/values.

        Returns ``(output, weights or None, new self-attention cache or None)``.
        """
        batch, tgt_len, _ = query.shape
        q = self._split_heads(self.q_proj(query))
        new_past = None
        if kv is None:
            if source is None:  # self-attention
                kv = self.project_kv(query)
                if past is not None:
                    kv = past.append(kv.k, kv.v)
                new_past = kv
            else:
                kv = self.project_kv(source)

        beams = batch // kv.k.size(0)
        if beams > 1:  # (B*beams, H, T, Dh) -> (B, H, beams*T, Dh): beams share one K/V
            q = q.view(-1, beams, self.n_heads, tgt_len, self.head_dim).transpose(1, 2)
            q = q.reshape(-1, self.n_heads, beams * tgt_len, self.head_dim)

        blocked = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        # is_causal only exists on the fast path: the explicit path needs the mask itself
        plain_causal = causal and kv.length == q.size(2) and blocked is None and not need_weights
        if causal and not plain_causal:
            future = causal_blocked(q.size(2), kv.length, q.device)
            blocked = future if blocked is None else blocked | future
        mask = None if blocked is None else blocked_to_additive(blocked, q.dtype)

        dropout = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = self._explicit(q, kv, mask, dropout)
        else:
            out = F.scaled_dot_product_attention(q, kv.k, kv.v, attn_mask=mask, dropout_p=dropout, is_causal=plain_causal)
            weights = None

        if beams > 1:
            out = out.view(-1, self.n_heads, beams, tgt_len, self.head_dim).transpose(1, 2)
            if weights is not None:
                weights = weights.view(-1, self.n_heads, beams, tgt_len, kv.length).transpose(1, 2)
                weights = weights.reshape(batch, self.n_heads, tgt_len, kv.length)
        out = out.reshape(batch, self.n_heads, tgt_len, self.head_dim)
        out = out.transpose(1, 2).reshape(batch, tgt_len, self.d_model)
        return self.out_proj(out), weights, new_past

    def _explicit(self, q: Tensor, kv: KVCache, mask: Tensor | None, dropout: float) -> tuple[Tensor, Tensor]:
        """softmax(Q K^T / sqrt(d_head) + mask) V, keeping the weights."""
        scores = (q @ kv.k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        # softmax in fp32, and the fp32 weights are what callers get: from a bf16 model
        # they still sum to 1 (within 1e-5); only the product with V runs in q's dtype
        weights = (scores.float() + (0.0 if mask is None else mask.float())).softmax(dim=-1)
        return F.dropout(weights, dropout).to(q.dtype) @ kv.v, weights
