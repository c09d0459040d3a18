"""Guided alignment (Garg et al. 2019, "Jointly Learning to Align and Translate"): one
head of one decoder layer's cross-attention is taught, during translation training, to
point at the source words that the target word being predicted translates.

    loss = cross-entropy(translation) + lambda * sum_t sum_s -A[t, s] * log attention[t, s]

``A[t, s]`` spreads target piece t's weight evenly over the source pieces of the words
its word is linked to; target pieces whose word has no link are left out (as fairseq's
``transformer_align`` does). Row t of the attention is the decoder step that *predicts*
piece t. The links come from a statistical aligner (eflomal, scripts/pack_gpu_data.py)
run over the training pairs' words, and travel with each pair as a third column,
``source<TAB>target<TAB>i-j links``, so they survive filtering, shuffling and ``--reverse``.

Words are runs of letters and digits (an apostrophe after one stays with it: "l'",
"n'") and single punctuation marks: the same split here and where the links were made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .alignment_text import parse_links
from .data import DataError, numbered_lines

_WORD = re.compile(r"\w+['’]?|[^\w\s]")


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each word of ``text``: what link indices count."""
    return [m.span() for m in _WORD.finditer(text)]


def aligner_words(text: str) -> str:
    """The words of ``text`` as the statistical aligner reads them: lowercased, spaced."""
    return " ".join(text[a:b].lower().replace("’", "'") for a, b in word_spans(text))


@dataclass
class PieceLinks:
    """Where one pair's alignment loss reads: target piece, source piece, weight."""

    tgt: np.ndarray  # int32
    src: np.ndarray  # int32
    weight: np.ndarray  # float32; the weights of one target piece sum to 1


def piece_links(src_pieces: list[tuple[int, int, int]], tgt_pieces: list[tuple[int, int, int]],
                src_text: str, tgt_text: str, links: list[tuple[int, int]]) -> PieceLinks | None:
    """Word links -> piece links, for pieces from ``Tokenizer.encode_with_spans``. None when
    a link names a word the text does not have (the links belong to other text)."""
    src_words, tgt_words = word_spans(src_text), word_spans(tgt_text)
    if any(i >= len(src_words) or j >= len(tgt_words) for i, j in links):
        return None

    def pieces_of(words, pieces):
        return [[k for k, (_, b, e) in enumerate(pieces) if b < end and start < e] for start, end in words]

    src_of, tgt_of = pieces_of(src_words, src_pieces), pieces_of(tgt_words, tgt_pieces)
    sources: dict[int, set[int]] = {}
    for i, j in links:
        for t in tgt_of[j]:
            sources.setdefault(t, set()).update(src_of[i])
    rows = [(t, s, 1.0 / len(ss)) for t, ss in sorted(sources.items()) if ss for s in sorted(ss)]
    if not rows:
        return PieceLinks(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))
    t, s, w = zip(*rows)
    return PieceLinks(np.array(t, np.int32), np.array(s, np.int32), np.array(w, np.float32))


def read_linked_pairs(path: str | Path) -> list[tuple[str, str, list[tuple[int, int]]]]:
    """``source<TAB>target<TAB>links`` lines (plain, gzip or xz); a malformed line is an
    error naming it (the file is made by a script, not typed)."""
    out = []
    for lineno, line in numbered_lines(Path(path)):
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 3:
            raise DataError(f"{path}:{lineno}: expected source<TAB>target<TAB>links, got {len(fields)} columns")
        out.append((fields[0], fields[1], sorted(parse_links(fields[2], f"{path}:{lineno}: ")[0])))
    return out


def guided_loss(weights: Tensor, batch_links: list[PieceLinks | None]) -> tuple[Tensor, int]:
    """Summed ``-A log attention`` over a batch, and the number of target pieces it covers.

    ``weights``: (batch, tgt_len, src_len) attention probabilities of the guided head."""
    rows = [(r, pl) for r, pl in enumerate(batch_links) if pl is not None and len(pl.tgt)]
    if not rows:
        return weights.new_zeros(()), 0
    device = weights.device
    r = torch.from_numpy(np.concatenate([np.full(len(pl.tgt), k, np.int64) for k, pl in rows])).to(device)
    t = torch.from_numpy(np.concatenate([pl.tgt for _, pl in rows]).astype(np.int64)).to(device)
    s = torch.from_numpy(np.concatenate([pl.src for _, pl in rows]).astype(np.int64)).to(device)
    w = torch.from_numpy(np.concatenate([pl.weight for _, pl in rows])).to(device)
    picked = weights[r, t, s].float().clamp_min(1e-9)
    covered = sum(len(np.unique(pl.tgt)) for _, pl in rows)
    return -(w * picked.log()).sum(), covered
