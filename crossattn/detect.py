"""Which language a text is in, among the languages crossattn translates: what
``source=auto`` and ``POST /detect`` (libretranslate.py), ``crossattn translate --from
auto`` and ``Translator.translate(..., keep_target_language=True)`` ask.

Two kinds of evidence, added as log-probabilities (naive Bayes):

* py3langid's naive Bayes over byte n-grams (its model ships in the wheel: nothing is
  downloaded at run time), told to choose among the candidate languages only;
* how often each word of the text occurs in English and in French training text
  (detect_words.tsv.gz, 35k words, made by scripts/make_detect_words.py from training
  splits only): where letters are shared, words are what tell "Tu as tort." or "ok merci"
  from English, and "a croissant and a café au lait" is still English.

Chosen by measurement (bench/detection.py, bench/README.md): on tatoeba/test, both sides,
the two together are right on every text; py3langid alone (en/fr) on 99.94% of all texts
and 99.8% of texts of 1-3 words, lingua (en/fr only) 99.67% / 98.6% from a 96 MB wheel,
py3langid among all its languages 99.40% / 96.6%, and the function-word detector
crossattn had before 99.19% / 95.4%.

Only the candidates' columns of py3langid's model are kept: with the word table, 77 MiB
added to a process (numpy included), where py3langid's own ``set_languages`` keeps 96.
Both are loaded on first use, once per process and set of candidates: 3-5 s on a busy
2-core machine, mostly decompressing py3langid's model (LZMA); then about 0.8 ms a text.
"""

from __future__ import annotations

import gzip
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from .errors import InputError

LANGUAGES = ("en", "fr")  # the languages of the shipped models
WORDS_FILE = Path(__file__).with_name("detect_words.tsv.gz")  # word counts per language: "word<TAB>en<TAB>fr"
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")  # letters, with apostrophes inside: "c'est", "aujourd'hui"


def words(text: str) -> list[str]:
    """The words of ``text``, lowercased, as detect_words.tsv.gz counts them."""
    return [w.lower() for w in _WORD.findall(text)]


class Detection(NamedTuple):
    language: str  # a candidate's code
    confidence: float  # 0-100, as LibreTranslate reports it: the probability among the candidates, in percent


_identifiers: dict[tuple[str, ...], object] = {}
_word_tables: dict[tuple[str, ...], dict[str, tuple[float, ...]] | None] = {}
_lock = threading.Lock()


def _identifier(languages: tuple[str, ...]):
    """py3langid's identifier restricted to ``languages``, made once per process."""
    with _lock:
        if languages in _identifiers:
            return _identifiers[languages]
        import numpy as np
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier
        from py3langid.modelio import load_model

        ptc, pc, classes, nextmove, row, output = load_model(MODEL_DIR / MODEL_FILE)
        unknown = [lang for lang in languages if lang not in classes]
        if unknown:
            raise InputError(f"cannot detect {', '.join(unknown)}: py3langid knows {', '.join(sorted(set(classes)))}")
        columns = [classes.index(lang) for lang in languages]
        # a copy of the candidates' columns, so that the whole table (28 MB) is freed
        ptc = np.ascontiguousarray(ptc[:, columns], dtype=np.float32)
        identifier = LanguageIdentifier(ptc, np.asarray(pc)[columns], list(languages), nextmove, output,
                                        norm_probs=True, tk_row=row)
        _identifiers[languages] = identifier
        return identifier


def _word_table(languages: tuple[str, ...]) -> dict[str, tuple[float, ...]] | None:
    """Per word, its log-probability in each of ``languages`` (add-half smoothing over the
    table's words); None when the table does not count one of them."""
    with _lock:
        if languages in _word_tables:
            return _word_tables[languages]
        with gzip.open(WORDS_FILE, "rt", encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            table = None
            if all(lang in header[1:] for lang in languages):
                columns = [header.index(lang) for lang in languages]
                table = {}  # counts first, log-probabilities once the totals are known
                for line in f:
                    fields = line.rstrip("\n").split("\t")
                    table[fields[0]] = tuple(int(fields[c]) for c in columns)
                totals = [sum(column) + 0.5 * len(table) for column in zip(*table.values())]
                for word, counts in table.items():
                    table[word] = tuple(math.log((n + 0.5) / total) for n, total in zip(counts, totals))
        _word_tables[languages] = table
        return table


def load(languages: Sequence[str] = LANGUAGES) -> None:
    """Load the detector now rather than on the first text (it takes seconds)."""
    _identifier(_candidates(languages))
    _word_table(_candidates(languages))


def _candidates(languages: Sequence[str]) -> tuple[str, ...]:
    candidates = tuple(dict.fromkeys(languages))
    if not candidates:
        raise InputError("no candidate languages to detect among")
    return candidates


def detect(text: str, languages: Sequence[str] = LANGUAGES, fallback: str | None = None) -> Detection:
    """The language of ``text`` among ``languages``, with a confidence of 0-100.

    A text without a letter ("123", "!!!", "") is in no language: it gets ``fallback``
    (default: the first candidate) with confidence 0. A caller that would give such a
    text back unchanged (digits translate to themselves) passes the target language."""
    candidates = _candidates(languages)
    if fallback is not None and fallback not in candidates:
        raise InputError(f"fallback {fallback!r} is not one of the candidates {', '.join(candidates)}")
    if not any(c.isalpha() for c in text):
        return Detection(fallback or candidates[0], 0.0)
    if len(candidates) == 1:
        return Detection(candidates[0], 100.0)
    ngrams = dict(_identifier(candidates).rank(text))  # probabilities among the candidates
    score = [math.log(max(ngrams[lang], 1e-300)) for lang in candidates]
    table = _word_table(candidates)
    for word in words(text) if table else ():
        for i, log_p in enumerate(table.get(word, ())):  # a word the table lacks tells nothing
            score[i] += log_p
    best = max(range(len(candidates)), key=score.__getitem__)  # a tie goes to the first candidate
    probability = 1.0 / sum(math.exp(s - score[best]) for s in score)
    return Detection(candidates[best], round(100.0 * probability, 1))
