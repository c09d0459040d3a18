"""Which language a text is in, among the languages crossattn translates: what
``source=auto`` and ``POST /detect`` (libretranslate.py), ``crossattn translate --from
auto`` and ``Translator.translate(..., keep_target_language=True)`` ask.

The detector is py3langid's naive Bayes over byte n-grams (its model ships in the wheel:
nothing is downloaded at run time), told to choose among the candidate languages only.
Chosen by measurement (bench/detection.py, bench/README.md): on tatoeba/test, both sides,
it is right on 99.94% of all texts and 99.8% of texts of 1-3 words, where lingua (en/fr
only) gets 99.67% / 98.6% from a 96 MB wheel, py3langid choosing among all its languages
99.40% / 96.6%, and the function-word detector crossattn had before 99.19% / 95.4%.

Only the candidates' columns of py3langid's model are kept: about 50 MiB in memory
instead of 95, loaded on first use (2-3 s: the model is LZMA-compressed), once per
process and set of candidates.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

from .errors import InputError

LANGUAGES = ("en", "fr")  # the languages of the shipped models


class Detection(NamedTuple):
    language: str  # a candidate's code
    confidence: float  # 0-100, as LibreTranslate reports it: the probability among the candidates, in percent


_identifiers: dict[tuple[str, ...], object] = {}
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


def load(languages: Sequence[str] = LANGUAGES) -> None:
    """Load the detector now rather than on the first text (it takes seconds)."""
    _identifier(_candidates(languages))


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
    language, probability = _identifier(candidates).classify(text)
    return Detection(language, round(100.0 * probability, 1))
