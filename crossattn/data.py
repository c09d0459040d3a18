"""Parallel corpora: reading, cleaning, filtering, token-budget batching, padding, collation.

Pipeline: load_corpus() -> pairs of clean strings -> encode_corpus() -> token ids
-> TokenBatcher (which examples go together) -> collate() (padded tensors).
"""

from __future__ import annotations

import gzip
import lzma
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch

from .errors import CrossattnError
from .text import clean_text
from .tokenizer import BOS_ID, EOS_ID, PAD_ID

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

CorpusPath = Union[str, Path, tuple[Union[str, Path], Union[str, Path]]]


class DataError(CrossattnError, ValueError):
    """Bad input data; the message is one line such as "train.tsv:17: invalid UTF-8"."""


@dataclass
class CorpusStats:
    read: int = 0        # lines (TSV) or line pairs (aligned files) seen
    kept: int = 0
    malformed: int = 0   # TSV line without a tab
    empty: int = 0       # blank line, or one side empty after cleaning
    too_long: int = 0
    bad_ratio: int = 0
    duplicates: int = 0
    filtered: int = 0    # rejected by the caller's `keep` predicate

    def merge(self, other: "CorpusStats") -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> str:
        counts = [("malformed", self.malformed), ("empty", self.empty), ("too long", self.too_long),
                  ("bad length ratio", self.bad_ratio), ("duplicates", self.duplicates), ("filtered", self.filtered)]
        dropped = [f"{n:,} {label}" for label, n in counts if n]
        tail = f" (dropped {', '.join(dropped)})" if dropped else ""
        return f"read {self.read:,} pairs, kept {self.kept:,}{tail}"


def _open_binary(path: Path):
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror})") from None
    # Sniff the gzip / xz magic rather than trusting the extension: downloads are
    # often compressed without being named .gz (and vice versa).
    magic = f.read(6)
    if magic[:2] == b"\x1f\x8b":
        f.close()
        return gzip.open(path, "rb")
    if magic == b"\xfd7zXZ\x00":
        f.close()
        return lzma.open(path, "rb")
    f.seek(0)
    return f


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line) for a plain or gzip file."""
    lineno = 0
    try:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    where = f"byte 0x{raw[e.start]:02x} at column {e.start + 1}"
                    raise DataError(f"{path}:{lineno}: invalid UTF-8 ({where})") from None
                yield lineno, line
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:  # truncated or damaged compressed stream
        raise DataError(f"{path}:{lineno + 1}: corrupt compressed data ({e})") from None


def read_pairs(path: str | Path, target_path: str | Path | None = None,
               stats: CorpusStats | None = None) -> Iterator[tuple[str, str]]:
    """Yield cleaned (source, target) pairs from one corpus.

    * `read_pairs("x.tsv")`: `source<TAB>target[<TAB>ignored...]` per line
      (covers Tatoeba/Anki exports with their attribution column).
    * `read_pairs("x.en", "x.fr")`: Moses-style line-aligned files.

    Any file may be gzip-compressed. Malformed and empty lines are skipped and
    counted in `stats` if given. Invalid UTF-8 or mismatched line counts raise
    DataError (the latter only once the shorter file runs out).
    """
    st = stats if stats is not None else CorpusStats()
    if target_path is None:
        for _, line in numbered_lines(Path(path)):
            st.read += 1
            if "\t" not in line:
                if line.strip():
                    st.malformed += 1
                else:
                    st.empty += 1
                continue
            src, tgt = line.split("\t", 2)[:2]
            src, tgt = clean_text(src), clean_text(tgt)
            if not src or not tgt:
                st.empty += 1
                continue
            yield src, tgt
        return

    src_lines, tgt_lines = numbered_lines(Path(path)), numbered_lines(Path(target_path))
    for i, (a, b) in enumerate(zip_longest(src_lines, tgt_lines), 1):
        if a is None or b is None:
            n_src = i - 1 + (a is not None) + sum(1 for _ in src_lines)
            n_tgt = i - 1 + (b is not None) + sum(1 for _ in tgt_lines)
            raise DataError(f"{path} has {n_src} lines but {target_path} has {n_tgt}; line-aligned files must match")
        st.read += 1
        src, tgt = clean_text(a[1]), clean_text(b[1])
        if not src or not tgt:
            st.empty += 1
            continue
        yield src, tgt


def parse_corpus_arg(arg: str) -> Path | tuple[Path, Path]:
    """'data.tsv' -> Path; 'corpus.en:corpus.fr' -> (Path, Path) when both exist as files."""
    if Path(arg).is_file():
        return Path(arg)
    for i, ch in enumerate(arg):
        if ch == ":":
            a, b = Path(arg[:i]), Path(arg[i + 1:])
            if a.is_file() and b.is_file():
                return a, b
    raise DataError(f"{arg}: no such file (use SRC_FILE:TGT_FILE for line-aligned files)")


def parse_weighted_corpus_arg(arg: str) -> tuple[Path | tuple[Path, Path], float]:
    """'news.tsv@3' -> (news.tsv, 3.0): a corpus and how many times an epoch takes it
    (a fraction takes a fixed random part); no suffix means weight 1."""
    head, sep, tail = arg.rpartition("@")
    if sep and not Path(arg).exists():
        try:
            weight = float(tail)
        except ValueError:
            raise DataError(f"{arg}: the weight after '@' must be a number") from None
        if not weight > 0:
            raise DataError(f"{arg}: the weight after '@' must be positive")
        return parse_corpus_arg(head), weight
    return parse_corpus_arg(arg), 1.0


def weighted(pairs: list[tuple[str, str]], weight: float, seed: int = 0) -> list[tuple[str, str]]:
    """``weight`` whole copies of ``pairs`` plus a seeded random part for the fraction."""
    whole, frac = int(weight), weight - int(weight)
    out = pairs * whole
    if frac > 0 and pairs:
        pick = np.random.default_rng([seed, len(pairs)]).permutation(len(pairs))[: round(frac * len(pairs))]
        out.extend(pairs[i] for i in sorted(pick))
    return out


def load_corpus(paths: Sequence[CorpusPath], *, max_chars: int | None = 400, max_ratio: float | None = 3.0,
                ratio_slack: int = 10, dedup: bool = True, keep: Callable[[str, str], bool] | None = None,
                ) -> tuple[list[tuple[str, str]], CorpusStats]:
    """Read, clean and filter corpora; a (src, tgt) tuple entry means line-aligned files.

    Filters, in order: either side longer than `max_chars` characters;
    length ratio (longer + slack) / (shorter + slack) above `max_ratio` (the
    slack keeps short pairs like "Hi." / "Salut !" while still catching
    "OK" against a paragraph); exact duplicate pairs; then `keep(src, tgt)`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    stats = CorpusStats()
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for p in paths:
        src_path, tgt_path = p if isinstance(p, (tuple, list)) else (p, None)
        for src, tgt in read_pairs(src_path, tgt_path, stats):
            ls, lt = len(src), len(tgt)
            if max_chars and (ls > max_chars or lt > max_chars):
                stats.too_long += 1
            elif max_ratio and (max(ls, lt) + ratio_slack) > max_ratio * (min(ls, lt) + ratio_slack):
                stats.bad_ratio += 1
            elif dedup and (src, tgt) in seen:
                stats.duplicates += 1
            elif keep is not None and not keep(src, tgt):
                stats.filtered += 1
            else:
                if dedup:
                    seen.add((src, tgt))
                pairs.append((src, tgt))
    stats.kept = len(pairs)
    return pairs, stats


def encode_corpus(pairs: Sequence[tuple[str, str]], tokenizer: Tokenizer, max_len: int,
                  target_tokenizer: Tokenizer | None = None) -> tuple[list[list[int]], list[list[int]], int]:
    """Token ids for both sides, without BOS/EOS; returns (src_ids, tgt_ids, n_dropped).
    Translations are cut by ``target_tokenizer`` when given (an imported Marian model's
    target.spm: ``Tokenizer.target_side``), else by ``tokenizer`` like the sources.

    A pair is dropped (not truncated: a truncated target teaches the model to
    stop mid-sentence) if either side needs more than `max_len` positions,
    counting the EOS/BOS that collate() adds.
    """
    src = tokenizer.encode_batch([s for s, _ in pairs])
    tgt = (target_tokenizer or tokenizer).encode_batch([t for _, t in pairs])
    keep = [i for i in range(len(src)) if len(src[i]) < max_len and len(tgt[i]) < max_len]
    return [src[i] for i in keep], [tgt[i] for i in keep], len(src) - len(keep)


def token_budget_batches(costs: Sequence[int], max_tokens: int, max_items: int | None = None) -> list[range]:
    """The one greedy token-budget batcher: items taken in order (sorted by cost, cheapest
    first) and cut into consecutive batches of at most ``max_items`` whose count x costliest
    item stays within ``max_tokens`` (padding counted). An item over budget gets a batch
    to itself. Returns the index ranges of the batches."""
    batches, start = [], 0
    for i, cost in enumerate(costs):  # non-decreasing, so `cost` is the batch's costliest
        if i > start and ((i - start + 1) * cost > max_tokens or (max_items is not None and i - start >= max_items)):
            batches.append(range(start, i))
            start = i
    if len(costs):
        batches.append(range(start, len(costs)))
    return batches


class TokenBatcher:
    """Yields batches of example indices with about max_tokens tokens each, grouping
    similar lengths (little padding), reproducible from (seed, epoch) and resumable mid-epoch.

    Lengths should be what the model sees, i.e. len(ids) + 1 for the EOS/BOS
    that collate() adds. A batch satisfies len(batch) * max(src, tgt length)
    <= max_tokens, except an example longer than max_tokens, which gets a batch
    to itself.
    """

    def __init__(self, src_lengths: Sequence[int], tgt_lengths: Sequence[int], max_tokens: int, *,
                 seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.src = np.asarray(src_lengths, dtype=np.int64)
        self.tgt = np.asarray(tgt_lengths, dtype=np.int64)
        if self.src.shape != self.tgt.shape or self.src.ndim != 1:
            raise ValueError(f"need two equal-length 1-D length lists, got {self.src.shape} and {self.tgt.shape}")
        if len(self.src) == 0:
            raise ValueError("no examples to batch")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.lengths = np.maximum(self.src, self.tgt)  # padded cost of an example
        self.max_tokens, self.seed, self.shuffle = max_tokens, seed, shuffle
        self.rank, self.world_size = rank, world_size
        # Sorting inside windows of ~100 batches keeps padding low while each
        # epoch still mixes lengths differently; sorting everything would
        # make every epoch's batches identical up to order.
        self.chunk = max(1, int(100 * max_tokens / max(1.0, float(self.lengths.mean()))))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches for `epoch`, a pure function of (seed, epoch)."""
        n = len(self.lengths)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        chunk = self.chunk if self.shuffle else n
        batches: list[list[int]] = []
        for start in range(0, n, chunk):
            idx = order[start:start + chunk]
            # Primary key: padded length; secondary: source length.
            idx = idx[np.lexsort((self.src[idx], self.lengths[idx]))]
            batches.extend(self._cut(idx))
        if self.shuffle:  # otherwise every epoch would start with the shortest batches
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.world_size > 1:
            # Same batch list on every rank; trim so ranks step in lockstep.
            usable = len(batches) // self.world_size * self.world_size
            batches = batches[self.rank:usable:self.world_size]
        return batches

    def _cut(self, idx: np.ndarray) -> list[list[int]]:
        """Length-sorted indices cut so that count * longest <= max_tokens."""
        ids = idx.tolist()
        return [ids[r.start:r.stop] for r in token_budget_batches(self.lengths[idx].tolist(), self.max_tokens)]

    def iterate(self, start_epoch: int = 0, start_batch: int = 0) -> Iterator[tuple[int, int, list[int]]]:
        """Yield (epoch, batch_index, indices) forever; resume with the saved (epoch, batch_index + 1)."""
        epoch, first = start_epoch, start_batch
        while True:
            batches = self.epoch_batches(epoch)
            if not batches:
                raise ValueError(f"too few batches for world_size={self.world_size}: lower max_tokens or add data")
            for b in range(first, len(batches)):
                yield epoch, b, batches[b]
            epoch, first = epoch + 1, 0


def pad_sources(rows: list[list[int]], pad_id: int = PAD_ID, eos_id: int = EOS_ID) -> torch.Tensor:
    """(B, longest + 1) int64: each row + EOS, right-padded (encoder input, decoder target)."""
    ids, lens = pad_rows(rows, 0, pad_id)
    ids[np.arange(len(rows)), lens] = eos_id
    return torch.from_numpy(ids)


def pad_rows(rows: list[list[int]], offset: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows placed at column `offset` in a (B, max_len + 1) pad-filled array.

    Vectorised (one flat copy through a boolean mask, which numpy fills in
    row-major order) because per-row copies dominate collation time.
    """
    lens = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lens.sum()))
    out = np.full((len(rows), int(lens.max()) + 1), pad_id, dtype=np.int64)
    cols = np.arange(out.shape[1])
    out[(cols >= offset) & (cols < lens[:, None] + offset)] = flat
    return out, lens


def collate(src: list[list[int]], tgt: list[list[int]], pad_id: int = PAD_ID, bos_id: int = BOS_ID,
            eos_id: int = EOS_ID) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded int64 tensors: src_ids (B,S) = src + EOS; tgt_in (B,T) = BOS + tgt;
    tgt_out (B,T) = tgt + EOS (tgt_in shifted left by one: the next-token targets)."""
    if len(src) != len(tgt) or not src:
        raise ValueError(f"need equal, non-zero numbers of sources and targets, got {len(src)} and {len(tgt)}")
    tgt_in, _ = pad_rows(tgt, 1, pad_id)
    tgt_in[:, 0] = bos_id
    return pad_sources(src, pad_id, eos_id), torch.from_numpy(tgt_in), pad_sources(tgt, pad_id, eos_id)


_MARKUP = re.compile(r"</?[a-zA-Z][^>]*>|&[a-z]+;|%[sdif0-9]|\{\w*\}|\$\w|https?://|www\.|\\[nt]|_[A-Za-z]|\bFigure \d|^\d+(\.\d+)+\.? ")


# Procedural lines of parliamentary records ("Some hon. members: Hear, hear.", "(Motion
# agreed to)", "The Speaker:") and enumeration fragments of legal text ("... must provide
# them with" / "... fournit au client :", "(a) the Minister;").
_PROCEDURE = re.compile(r"^(some )?hon\. members?:|^\(.*\)\.?$|^[A-Z][\w. '-]{0,60}\([^)]*\):$|hear, hear", re.IGNORECASE)
_FRAGMENT = re.compile(r"[:;,—–-]$|^\(?[a-z0-9]{1,4}\)\s|^[a-z0-9]{1,3}\.\s")


# Canadian parliamentary French writes percentages "9 p. 100"; the news, laws and everyday
# text here write "9 %" (as do readers today). One convention in training, or the model
# answers news with "p. 100" and loses the words around it too.
_PER_HUNDRED = re.compile(r"(\d) ?p\. ?100\b")


# "_File", "~Save" (GNOME, LibreOffice): the letter a menu's shortcut underlines
_ACCELERATOR = re.compile(r"(?<![\w~])[_~](?=[^\W_])")


def strip_accelerators(text: str) -> str:
    """'_Link instance' / 'Save ~As' -> 'Link instance' / 'Save As': interface text as it is read."""
    return _ACCELERATOR.sub("", text)


def percent_sign(text: str) -> str:
    """'9 p. 100' / '6,9 p. 100' -> '9 %' / '6,9 %'; other text unchanged."""
    return _PER_HUNDRED.sub(r"\1 %", text)


def looks_clean(src: str, tgt: str, labels: bool = False) -> bool:
    """Heuristic filter for noisy parallel text (software catalogs, game scripts).

    Drops placeholders (%s, {0}), markup (<i>, &amp;), URLs, menu accelerators
    (_File), numbered headings, untranslated copies, and short UI labels without
    sentence punctuation ("Line end"). Conversational sentences pass.
    ``labels=True`` keeps the short labels: for interface text, where they are the point
    (a model that never saw "Warning" alone writes "La guerre").
    """
    if _MARKUP.search(src) or _MARKUP.search(tgt):
        return False
    if src == tgt or not any(c.isalpha() for c in src) or not any(c.isalpha() for c in tgt):
        return False
    if not labels and len(src.split()) <= 3 and src[-1] not in ".!?\"'»…":
        return False
    if any(_PROCEDURE.search(t) or _FRAGMENT.search(t) for t in (src, tgt)):
        return False
    return True
