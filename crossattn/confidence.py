"""How sure the model was of each word it wrote: per-word probabilities and per-sentence
confidence, read off the model's own token probabilities (Translator.translate_with_confidence
scores each translation token by token with CTranslate2; this module turns those scores
into words of the final text).

The words are the whitespace-separated words of the translation exactly as ``translate``
gives it, after everything done around the model (modeldir.SourceText.finish: sentences
joined, capitals put back, "$" written again, URLs and e-mail addresses put back in place
of their placeholders). Each word is traced back to the pieces the model wrote for it
through a character alignment of the model's text with the final text (difflib), so a
word that finish rewrote ("5 dollars" -> "5 $", a placeholder -> its URL) keeps the
probabilities of the pieces it came from.

Measured on dev sets (bench/confidence.py, bench/README.md): a word's probability is the
product of its pieces' probabilities (the model's probability of writing the whole word),
and a sentence's confidence the geometric mean of its pieces' probabilities, end of
sentence included (a product would punish long sentences for their length).

No torch, no numpy: the server and the CLI import it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfidentWord:
    text: str
    probability: float  # in (0, 1]: the product of its pieces' probabilities
    log_probs: tuple[float, ...]  # natural-log probabilities of the pieces that wrote it


@dataclass(frozen=True)
class ConfidentSentence:
    """One part of the text that the model translated on its own (a sentence, or a clause
    of a very long one)."""
    text: str  # its words joined by single spaces
    confidence: float  # in (0, 1]: geometric mean of its pieces' probabilities, end of sentence included
    words: tuple[ConfidentWord, ...]
    log_probs: tuple[float, ...]  # every piece the model wrote for it, end of sentence last


@dataclass(frozen=True)
class Confident:
    """A translation with the model's confidence in it. ``" ".join(w.text for w in
    words) == translation``, and ``" ".join(s.text for s in sentences) == translation``."""
    translation: str
    sentences: tuple[ConfidentSentence, ...]
    confidence: float  # in (0, 1]: geometric mean over every piece of every sentence (1.0 for no text)

    @property
    def words(self) -> list[ConfidentWord]:
        return [w for s in self.sentences for w in s.words]

    def to_json(self, ndigits: int = 4) -> dict:
        """The JSON shape of ``/api/translate``'s confidence and ``translate --json``."""
        # probabilities are kept above 0 when rounded: a word the model found very unlikely is still not impossible
        r = lambda p: max(round(p, ndigits), 10.0**-ndigits)  # noqa: E731
        return {"translation": self.translation, "confidence": r(self.confidence),
                "sentences": [{"text": s.text, "confidence": r(s.confidence)} for s in self.sentences],
                "words": [{"text": w.text, "probability": r(w.probability)} for w in self.words]}


@dataclass(frozen=True)
class ScoredPart:
    """One part as the model wrote it: ``text`` as finish joins it (in capitals for a
    shouted sentence), ``owners[i]``: the piece indices that wrote character ``i`` of it,
    ``log_probs``: per piece, end of sentence last."""
    text: str
    owners: list[tuple[int, ...]]
    log_probs: list[float]


def piece_owners(decode: Callable[[list[int]], str], ids: Sequence[int]) -> tuple[str, list[tuple[int, ...]]]:
    """``(decode(ids), owners)``: for each character, the indices in ``ids`` of the pieces
    that wrote it. Found by decoding each prefix: a piece that adds only whitespace (a
    lone "▁") belongs with the next piece's word; pieces whose bytes make one character
    together (byte fallback) all own it."""
    text, owners, pending = "", [], set()
    for k in range(len(ids)):
        now = decode(list(ids[: k + 1]))
        keep = 0
        while keep < min(len(text), len(now)) and text[keep] == now[keep]:
            keep += 1
        taken = pending | {k}
        for owner in owners[keep:]:  # characters rewritten by this piece (bytes completing a character)
            taken.update(owner)
        added = now[keep:]
        owners = owners[:keep]
        if added.strip():
            owners += [tuple(sorted(taken))] * len(added)
            pending = set()
        else:
            owners += [()] * len(added)
            pending = taken
        text = now
    if pending:  # trailing pieces that wrote only whitespace: with the last word
        last = next((i for i in range(len(owners) - 1, -1, -1) if owners[i]), None)
        if last is not None:
            owners[last] = tuple(sorted(set(owners[last]) | pending))
    return text, owners


def shouted_part(text: str, owners: list[tuple[int, ...]]) -> tuple[str, list[tuple[int, ...]]]:
    """``text`` in capitals as finish writes a shouted sentence, each character's owners
    kept (a character may become two: "ß" -> "SS")."""
    upper = [c.upper() for c in text]
    return "".join(upper), [o for c, o in zip(upper, owners) for _ in c]


def geometric_mean(log_probs: Sequence[float]) -> float:
    return math.exp(sum(log_probs) / len(log_probs)) if log_probs else 1.0


def word_probability(log_probs: Sequence[float]) -> float:
    """The model's probability of writing the whole word: the product of its pieces'."""
    return math.exp(sum(log_probs))


def confident_translation(translation: str, parts: Sequence[ScoredPart]) -> Confident:
    """``translation`` (what finish made of the parts' texts) with the probabilities of
    ``parts``: each word of it gets the pieces whose characters it came from."""
    raw, raw_owners = [], []
    for n, part in enumerate(parts):
        if n:
            raw.append(" ")
            raw_owners.append(())
        raw.append(part.text)
        raw_owners += [tuple((n, k) for k in owner) for owner in part.owners]
    raw_text = "".join(raw)
    # finish also collapses runs of whitespace: the alignment maps final characters back
    final_owners: list[set[tuple[int, int]]] = [set() for _ in translation]
    matcher = difflib.SequenceMatcher(None, raw_text, translation, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for d in range(i2 - i1):
                final_owners[j1 + d].update(raw_owners[i1 + d])
        elif tag == "replace":  # rewritten text ("dollars" -> "$", a placeholder -> its URL)
            block = {o for owner in raw_owners[i1:i2] for o in owner}
            for j in range(j1, j2):
                final_owners[j].update(block)
        # "insert": text finish added that no piece wrote (an address the model left out)
    by_part: list[list[ConfidentWord]] = [[] for _ in parts]
    part = 0
    for match in re.finditer(r"\S+", translation):
        owners = sorted({o for j in range(match.start(), match.end()) for o in final_owners[j]})
        if owners:  # never back to an earlier part: the sentences stay in the translation's order
            part = max(part, owners[0][0])
        # a word no piece wrote was copied from the source as written: nothing in it is the model's guess
        log_probs = tuple(parts[n].log_probs[k] for n, k in owners)
        by_part[part].append(ConfidentWord(match.group(), word_probability(log_probs), log_probs))
    sentences = tuple(ConfidentSentence(" ".join(w.text for w in words), geometric_mean(p.log_probs), tuple(words),
                                        tuple(p.log_probs))
                      for p, words in zip(parts, by_part) if words)
    return Confident(translation, sentences, geometric_mean([lp for p in parts for lp in p.log_probs]))
