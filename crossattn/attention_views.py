"""A translation with the cross-attention that produced it (AttentionResult), and its
word-level views: what the heatmaps, the page, ``explain`` and the aligner read.

The model attends between SentencePiece pieces; people read words. A word is a run of
pieces that starts with the space marker "▁" (so "Hello," = ▁He ll o , is one word,
while French "▁?" is a word of its own). Merging a weight matrix (target x source):

* source pieces of one word are **summed**: the attention a word receives is the total
  mass on its pieces, so each row still sums to 1;
* target pieces of one word are **averaged**: each piece's row is a distribution, and
  the word's row is their mean (still a distribution).

The final "</s>" is kept as its own word: decoders park attention there when no
source word is needed, which is worth seeing (``keep_eos=False`` drops it).

Attention row t is the step that *predicts* target token t (its query is token t-1),
so a view reads "while writing this word, the decoder looked at ...".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import InputError

@dataclass
class AttentionResult:
    """One translation with the cross-attention that produced it."""

    translation: str
    source_tokens: list[str]  # pieces, EOS included as "</s>"
    target_tokens: list[str]  # pieces, EOS included as "</s>"
    attention: Tensor  # (layers, heads, target_len, source_len), float32

    @staticmethod
    def concat(parts: list["AttentionResult"]) -> "AttentionResult":
        """Sentences translated one by one, as one result: tokens end to end, and the
        attention block-diagonal (each sentence's translation saw only its own source)."""
        if len(parts) == 1:
            return parts[0]
        layers, heads = parts[0].attention.shape[:2]
        rows, cols = sum(p.attention.shape[2] for p in parts), sum(p.attention.shape[3] for p in parts)
        attention = torch.zeros(layers, heads, rows, cols)
        r = c = 0
        for p in parts:
            t, s = p.attention.shape[2:]
            attention[:, :, r : r + t, c : c + s] = p.attention
            r, c = r + t, c + s
        return AttentionResult(" ".join(p.translation for p in parts if p.translation),
                               [x for p in parts for x in p.source_tokens],
                               [x for p in parts for x in p.target_tokens], attention)


SPACE, EOS = "\u2581", "</s>"
_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")  # byte-fallback pieces


def pieces_to_text(pieces: list[str]) -> str:
    """Readable text of a run of pieces (space markers dropped, byte pieces decoded)."""
    data = bytearray()
    for p in pieces:
        m = _BYTE.match(p)
        data += bytes([int(m.group(1), 16)]) if m else p.replace(SPACE, " ").encode()
    return data.decode("utf-8", errors="replace").strip()


def group_pieces(pieces: list[str], keep_eos: bool = True, keep_pieces: bool = False) -> tuple[list[str], list[list[int]]]:
    """Pieces -> (word labels, piece indexes of each word)."""
    spans: list[list[int]] = []
    new_word = True  # the first piece, and the piece after </s>, always start a word
    for i, p in enumerate(pieces):
        if p == EOS:
            if keep_eos:
                spans.append([i])
            new_word = True
        elif keep_pieces or new_word or p.startswith(SPACE):
            spans.append([i])
            new_word = False
        else:
            spans[-1].append(i)
    labels = [pieces[s[0]] if keep_pieces or pieces[s[0]] == EOS else pieces_to_text([pieces[i] for i in s])
              for s in spans]
    return labels, spans


def membership(spans: list[list[int]], n: int, average: bool) -> Tensor:
    """(words, n) matrix: 1 where piece belongs to word, or 1/len(word) when averaging."""
    m = torch.zeros(len(spans), n)
    for w, idx in enumerate(spans):
        m[w, idx] = 1.0 / len(idx) if average else 1.0
    return m


def merge_attention(attention: Tensor, target_spans: list[list[int]], source_spans: list[list[int]]) -> Tensor:
    """(..., T, S) piece weights -> (..., target words, source words): average rows, sum columns."""
    rows = membership(target_spans, attention.size(-2), average=True).to(attention)
    cols = membership(source_spans, attention.size(-1), average=False).to(attention)
    return rows @ attention @ cols.T


@dataclass
class WordView:
    source: list[str]
    target: list[str]
    source_spans: list[list[int]]
    target_spans: list[list[int]]
    attention: Tensor  # (layers, heads, target words, source words)


def word_view(result: AttentionResult, keep_eos: bool = True, keep_pieces: bool = False) -> WordView:
    src, src_spans = group_pieces(result.source_tokens, keep_eos, keep_pieces)
    tgt, tgt_spans = group_pieces(result.target_tokens, keep_eos, keep_pieces)
    return WordView(src, tgt, src_spans, tgt_spans, merge_attention(result.attention.float(), tgt_spans, src_spans))


# -- aggregation ----------------------------------------------------------------------
def check_index(value: int | None, n: int, what: str) -> int | None:
    """None stays None (= average); negative counts from the end; out of range is a clear error."""
    if value is None:
        return None
    if not -n <= value < n:
        raise InputError(f"{what} {value} out of range: the model has {n} {what}s (0-{n - 1}, or -1 for the last)")
    return value % n


def select(attention: Tensor, layer: int | None = None, head: int | None = None) -> Tensor:
    """(layers, heads, T, S) -> (T, S): one layer or the mean over layers, one head or the mean over heads."""
    layer = check_index(layer, attention.size(0), "layer")
    head = check_index(head, attention.size(1), "head")
    a = attention.mean(0) if layer is None else attention[layer]
    return a.mean(0) if head is None else a[head]
