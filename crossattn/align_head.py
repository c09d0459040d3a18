"""A guided alignment head: one more cross-attention head, trained to point at the source
words that a target word translates (after Garg et al. 2019, fairseq's transformer_align).

Garg et al. add an alignment loss to one of the translation's own heads during training.
This head is trained after the fact instead, beside a frozen translation model: its query
is the decoder's last state at the target word's own position (the step whose input is
the word), its keys the encoder output, and its only job is alignment, so translation is
untouched and it trains in minutes on a CPU. The links it learns from come from a
statistical aligner (eflomal, symmetrized) run over parallel text; as in the paper, the
head reads them through the network's context and generalises past them.

    attention(t, s) = softmax_s( (W_q h_t) . (W_k m_s) / sqrt(d_head) )

Saved next to the model as ``alignment.safetensors``; the model directory's config.json
records it (modeldir.py owns the format).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import collate

ALIGNMENT_WEIGHTS = "alignment.safetensors"


class AlignmentHead(nn.Module):
    """``context=False``: the query reads the decoder state at the word's own position (whose
    input is the word). ``context=True``: that state and the one just before it, the step
    that predicted the word (what the decoder was about to translate), side by side.

    ``heads`` > 1: an ensemble of heads trained apart (``ensemble``), each its own softmax
    over the source, their weights averaged; one head is the plain attention above."""

    def __init__(self, d_model: int, d_head: int = 64, context: bool = False, heads: int = 1):
        super().__init__()
        self.d_head, self.context, self.heads = d_head, context, heads
        self.q = nn.Linear(d_model * (2 if context else 1), d_head * heads)
        self.k = nn.Linear(d_model, d_head * heads)

    def forward(self, states: Tensor, memory: Tensor, src_pad: Tensor | None) -> Tensor:
        """Decoder states of BOS + target (B, T + 1, D), encoder output (B, S, D) ->
        log-weights (B, T, S), row t for target piece t."""
        dtype = self.q.weight.dtype  # the network may run in bf16; the head stays fp32
        query = torch.cat([states[:, 1:], states[:, :-1]], -1) if self.context else states[:, 1:]
        split = lambda x: x.unflatten(-1, (self.heads, self.d_head)).transpose(1, 2)  # noqa: E731  (B, K, L, d)
        scores = split(self.q(query.to(dtype))) @ split(self.k(memory.to(dtype))).transpose(-1, -2)
        scores = scores / math.sqrt(self.d_head)
        if src_pad is not None:
            scores = scores.masked_fill(src_pad[:, None, None, :], torch.finfo(scores.dtype).min)
        logp = scores.float().log_softmax(-1)  # (B, K, T, S)
        return logp[:, 0] if self.heads == 1 else logp.logsumexp(1) - math.log(self.heads)

    @classmethod
    def ensemble(cls, members: list["AlignmentHead"]) -> "AlignmentHead":
        """One head whose weights are the average of ``members``' (same shape and kind):
        heads trained on different links err differently, and the average keeps what they agree on."""
        first = members[0]
        if any(m.d_head != first.d_head or m.context != first.context for m in members):
            raise ValueError("ensembled alignment heads must have the same d_head and context")
        out = cls(first.k.in_features, first.d_head, first.context, sum(m.heads for m in members))
        with torch.no_grad():
            for name in ("q", "k"):
                layer = getattr(out, name)
                layer.weight.copy_(torch.cat([getattr(m, name).weight for m in members]))
                layer.bias.copy_(torch.cat([getattr(m, name).bias for m in members]))
        return out.eval()


@torch.no_grad()
def head_inputs(model, src: Tensor, tgt_in: Tensor, need_weights: bool = False):
    """What the head reads: the decoder's output over BOS + target (``.states``: position
    t + 1 holds input piece t; ``.cross_attention`` too with ``need_weights``), the encoder
    output and its padding mask."""
    memory, src_pad = model.encode(src)
    return model.decode(tgt_in, memory, src_pad, need_weights=need_weights, need_logits=False), memory, src_pad


@dataclass
class AlignmentExample:
    src_ids: list[int]
    tgt_ids: list[int]
    src_spans: list[list[int]]  # source token -> its pieces
    tgt_spans: list[list[int]]
    links: set[tuple[int, int]]  # (source token, target token)


def read_links_file(path: str, reverse: bool = False, limit: int | None = None
                    ) -> list[tuple[list[str], list[str], set[tuple[int, int]]]]:
    """``source tokens<TAB>target tokens<TAB>i-j links`` lines (what bench/alignment.py's
    eflomal_links writes); ``reverse`` swaps the sides, for a model of the other direction."""
    from .align import parse_links
    from .text import iter_lines

    out = []
    for n, line in enumerate(iter_lines(path), 1):
        if limit is not None and len(out) >= limit:
            break
        fields = line.split("\t")
        if len(fields) != 3:
            from .errors import InputError

            raise InputError(f"{path}:{n}: expected source tokens<TAB>target tokens<TAB>links")
        src, tgt, links = fields[0].split(), fields[1].split(), parse_links(fields[2], f"{path}:{n}: ")[0]
        out.append((tgt, src, {(j, i) for i, j in links}) if reverse else (src, tgt, links))
    return out


def make_examples(tokenizer, rows, languages: tuple[str, str], max_positions: int) -> list[AlignmentExample]:
    """Encode (source tokens, target tokens, links) as the model reads them (natural text)."""
    from .align import encode_natural

    examples = []
    for src, tgt, links in rows:
        (sid, sspans), (tid, tspans) = encode_natural(tokenizer, src, languages[0]), \
            encode_natural(tokenizer, tgt, languages[1])
        if src and tgt and len(sid) + 1 <= max_positions and len(tid) + 1 <= max_positions:
            examples.append(AlignmentExample(sid, tid, sspans, tspans, links))
    return examples


def target_distribution(ex: AlignmentExample) -> Tensor:
    """(target pieces, source pieces + EOS): each target piece's share of the pieces of the
    source tokens its token is linked to; unlinked target tokens point at EOS."""
    n_src = len(ex.src_ids)
    dist = torch.zeros(len(ex.tgt_ids), n_src + 1)
    linked: dict[int, list[int]] = {}
    for i, j in ex.links:
        if i < len(ex.src_spans):
            linked.setdefault(j, []).extend(ex.src_spans[i])
    for j, pieces in enumerate(ex.tgt_spans):
        cols = sorted(set(linked.get(j, []))) or [n_src]
        for p in pieces:
            dist[p, cols] = 1.0 / len(cols)
    return dist


def train_alignment_head(model, examples: list[AlignmentExample], steps: int, batch_tokens: int = 3000,
                         lr: float = 3e-3, seed: int = 1, context: bool = False, d_head: int = 64,
                         log=print) -> AlignmentHead:
    """Fit a head to ``examples`` beside the frozen ``model`` (eval mode, no gradients)."""
    cfg = model.config
    torch.manual_seed(seed)
    head = AlignmentHead(cfg.d_model, d_head, context=context)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    model.eval()
    order = sorted(range(len(examples)), key=lambda k: len(examples[k].src_ids) + len(examples[k].tgt_ids))
    batches, start = [], 0
    while start < len(order):  # batches of similar length under a token budget
        end = start + 1
        while end < len(order) and (end - start + 1) * (len(examples[order[end]].src_ids) +
                                                        len(examples[order[end]].tgt_ids) + 2) <= batch_tokens:
            end += 1
        batches.append(order[start:end])
        start = end
    for step in range(steps):
        idx = batches[rng.randrange(len(batches))]
        batch = [examples[k] for k in idx]
        src, tgt_in, _ = collate([b.src_ids for b in batch], [b.tgt_ids for b in batch], cfg.pad_id, cfg.bos_id,
                                 cfg.eos_id)
        out, memory, src_pad = head_inputs(model, src, tgt_in)
        logp = head(out.states, memory, src_pad)  # (B, T_max, S_max + ...)
        loss, rows = logp.new_zeros(()), 0
        for r, ex in enumerate(batch):
            dist = target_distribution(ex)  # (T, n_src + 1): EOS is the column after the source pieces
            lp = logp[r, : len(ex.tgt_ids), : len(ex.src_ids) + 1]
            loss = loss - (dist * lp).sum()
            rows += len(ex.tgt_ids)
        loss = loss / max(rows, 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0 or step == 0:
            log(f"alignment head step {step + 1}/{steps}: loss {loss.item():.3f}")
    return head.eval()


@torch.no_grad()
def head_weights(model, head: AlignmentHead, src: Tensor, tgt_in: Tensor, attention_layer: int | None = None
                 ) -> Tensor:
    """(B, 1, K, T, S) weights, shaped like K heads of one layer of cross-attention.

    K = 1: the head's (row t = target piece t, read at its own position). With
    ``attention_layer``, K = 2: also that decoder layer's own cross-attention, averaged over
    its heads, row t = the step that *predicts* piece t; the same forward pass gives both,
    and the two read a word at different steps (docs/alignment.md)."""
    out, memory, src_pad = head_inputs(model, src, tgt_in, need_weights=attention_layer is not None)
    weights = [F.pad(head(out.states, memory, src_pad).exp(), (0, 0, 0, 1))]
    if attention_layer is not None:
        weights.append(out.cross_attention[attention_layer].float().mean(1))
    return torch.stack(weights, 1)[:, None]
