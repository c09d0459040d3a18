"""Glossaries the translation obeys: "email" -> "courriel", "weekend" -> "fin de semaine".

A glossary maps source terms to the translations a user wants. Terms are found in the
source on word boundaries, case-insensitively, longest first (of two overlapping terms
the longer one wins; at equal length the leftmost); multi-word terms match across any
whitespace. The text is translated without the glossary first; a translation that
writes every term of its text as the glossary says (``unobeyed``) is kept as it is. In
the others, each occurrence of a term the translation missed (``Glossary.only``) is
swapped for a placeholder the model copies through ("X3", the same kind
text.protect_spans uses for URLs), and the wanted translation is put in its place
afterwards (``restore_terms``), with a capital when it starts the output sentence and in
capitals when the source wrote the term in capitals (Translator._obey runs the rounds).
Last, each sentence that got placeholders takes the best of several candidates
(Translator._best_scored): the placeholder translation and the 8 best of the searches
with and without the placeholders; of those that write the most terms
(``terms_written``), the one the model scores best, per piece, for the source as written.
The model sees the term there, so the words around it can agree with it ("cette fin de
semaine", "son travail"), which behind a placeholder they cannot ("ce X3", "sa X1"); a
candidate whose term came from a placeholder is offered with the word just before the
term in each form its language allows there (``agreement_variants``: "L'matou" ->
"Le matou", "a automobile" -> "an automobile"). A candidate written without placeholders
gets them back for its terms (``templated``), so that it is finished as the others are.

Chosen by measurement on dev glossaries built from hansard/dev and newstest2012
(bench/glossary.py, bench/README.md "Glossaries"): placeholders for every term put each
term in the output but changed 28 of the 31 en-fr translations that used every term
already, and lowered chrF outside the terms (the words next to a placeholder cannot
agree with it); placeholders for the missed terms only keep those translations byte for
byte, but chrF outside the terms stayed 1.37 (en-fr) below the translation without a
glossary; the best-scored candidate brings it to -0.32 (95% interval -1.23 to +0.57),
term use still 100%, BLEU 23.74 against 18.77 without a glossary (2026-12-06 21:27 UTC),
and with the word before a term made to agree with it, -0.15 (-1.06 to +0.76) and BLEU
24.16 (2026-12-07 01:06 UTC).

Nothing here imports torch; modeldir.SourceText applies a glossary to what the model reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .text import clean_text, free_placeholder

# characters before a placeholder that still leave it at the start of its sentence
_OPENERS = "\"'“‘«([¿¡-–— "


def _term_key(term: str) -> str:
    return clean_text(term).casefold()


def _term_pattern(term: str) -> str:
    """The regex of a normalized term: its words separated by any whitespace; letters,
    digits and "_" at its ends may not continue into the text around it."""
    body = r"\s+".join(re.escape(word) for word in term.split(" "))
    start = r"(?<!\w)" if re.match(r"\w", term) else ""
    end = r"(?!\w)" if re.search(r"\w$", term) else ""
    return start + body + end


@dataclass(frozen=True)
class TermSpan:
    """One occurrence of a glossary term in a source text, swapped for ``placeholder``."""

    placeholder: str  # "X3"
    source: str  # the occurrence as the source wrote it ("EMAIL")
    target: str  # the glossary's translation ("courriel")

    @property
    def key(self) -> str:
        """The glossary's key of this occurrence's term (its normalized, casefolded form)."""
        return _term_key(self.source)

    @property
    def in_capitals(self) -> bool:
        """Written in capitals by the source (two letters or more), the glossary's
        translation not in capitals itself: the output writes the translation in capitals."""
        letters = [c for c in self.source if c.isalpha()]
        return len(letters) >= 2 and all(c.isupper() for c in letters) and not self.target.isupper()

    def written(self, starts_sentence: bool) -> str:
        """The translation as the output writes it: in capitals for a term the source wrote
        in capitals (two letters or more, the glossary's term not in capitals itself),
        with a capital first letter at the start of a sentence."""
        target = self.target
        if self.in_capitals:
            return target.upper()
        if starts_sentence and target[:1].islower():
            return target[0].upper() + target[1:]
        return target


class Glossary:
    """Source terms and their wanted translations; immutable and hashable (the server
    groups jobs by glossary). An empty glossary changes nothing."""

    def __init__(self, entries: Mapping[str, str] | None = None, where: str = "glossary"):
        """``entries``: {source term: translation}. Terms are normalized as every text is
        (text.clean_text); two terms that differ only in case are one term (the later
        wins). A term or translation that is empty, or not a string, is an InputError
        naming ``where``."""
        self._entries: dict[str, tuple[str, str]] = {}  # casefolded term -> (term, translation)
        for term, target in (entries or {}).items():
            if not isinstance(term, str) or not isinstance(target, str):
                raise InputError(f"{where}: terms and translations must be strings, not {term!r}: {target!r}")
            term, target = clean_text(term), clean_text(target)
            if not term or not target:
                raise InputError(f"{where}: empty {'term' if not term else 'translation'} in entry {term!r}: {target!r}")
            self._entries[_term_key(term)] = (term, target)
        # longest first: at one position the alternation takes the first term that matches
        terms = sorted(self._entries, key=lambda k: (-len(k), k))
        # by first letter: a position is tried against the few terms that can start there (a
        # single alternation of every term, tried at every position, took seconds for a
        # 2,000-term glossary on a page of text)
        by_first: dict[str, list[str]] = {}
        for term in terms:
            by_first.setdefault(term[0], []).append(_term_pattern(term))
        self._patterns = {first: re.compile("|".join(p), re.IGNORECASE) for first, p in by_first.items()}
        self._only: frozenset[str] | None = None  # see only()

    @classmethod
    def of(cls, glossary: "Glossary | Mapping[str, str] | None") -> "Glossary":
        """A Glossary from a Glossary, a dict of term -> translation, or None (empty)."""
        return glossary if isinstance(glossary, Glossary) else cls(glossary)

    @classmethod
    def read(cls, path: str | Path) -> "Glossary":
        """A glossary file: UTF-8 text, one ``source term<TAB>translation`` per line; blank
        lines and lines starting with "#" are skipped. A malformed line (no tab, more than
        one, an empty side) or unreadable file is an InputError naming the file and line."""
        try:
            raw = Path(path).read_bytes()
        except OSError as e:
            raise InputError(f"cannot read glossary {path}: {e.strerror or e}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise InputError(f"{path}:{line}: glossary is not UTF-8 text") from None
        entries: dict[str, str] = {}
        for lineno, line in enumerate(text.split("\n"), 1):
            line = line.rstrip("\r")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not clean_text(fields[0]) or not clean_text(fields[1]):
                raise InputError(f"{path}:{lineno}: a glossary entry is 'source term<TAB>translation', "
                                 f"got {line[:60]!r}")
            entries[fields[0]] = fields[1]
        return cls(entries, where=str(path))

    def merged(self, other: "Glossary | Mapping[str, str] | None") -> "Glossary":
        """This glossary with ``other``'s entries added; where both have a term, ``other``'s wins."""
        other = Glossary.of(other)
        if not other:
            return self
        return Glossary({**dict(self._entries.values()), **dict(other._entries.values())})

    def only(self, terms: Iterable[str]) -> "Glossary":
        """This glossary, protecting only the occurrences of ``terms`` (keys, as
        TermSpan.key gives them): the terms are still matched against the whole glossary,
        so an occurrence that a longer term of it covers stays covered (and untouched)."""
        restricted = object.__new__(Glossary)
        restricted._entries, restricted._patterns = self._entries, self._patterns
        restricted._only = frozenset(terms)
        return restricted

    def items(self) -> list[tuple[str, str]]:
        """(term, translation) pairs, in the order given."""
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Glossary) and (self._entries, self._only) == (other._entries, other._only)

    def __hash__(self) -> int:
        return hash((frozenset(self._entries.items()), self._only))

    def __repr__(self) -> str:
        return f"Glossary({dict(self.items())!r})"

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, translation) of each term occurrence in ``text``, in order, none
        overlapping: at each position the longest term that matches there, and of two
        overlapping occurrences the longer one (at equal length the leftmost)."""
        found = []
        for start, char in enumerate(text):
            if start and char.isalnum() and text[start - 1].isalnum():
                continue  # inside a word: no term starts here
            pattern = self._patterns.get(char.casefold()[:1])
            m = pattern.match(text, start) if pattern is not None else None
            if m and m.end() > start:
                found.append((start, m.end(), self._entries[_term_key(m.group(0))][1]))
        chosen: list[tuple[int, int, str]] = []
        for start, end, target in sorted(found, key=lambda f: (f[0] - f[1], f[0])):
            if all(end <= s or start >= e for s, e, _ in chosen):
                chosen.append((start, end, target))
        if self._only is not None:
            chosen = [(s, e, t) for s, e, t in chosen if _term_key(text[s:e]) in self._only]
        return sorted(chosen)

    def protect(self, text: str) -> tuple[str, list[TermSpan]]:
        """``text`` with each term occurrence swapped for a placeholder ("X1", "X2", ...,
        numbered above any that ``text`` holds already, e.g. protect_spans' URLs), and
        the spans to put back with ``restore_terms``."""
        spans: list[TermSpan] = []
        first = free_placeholder(text)
        out, last = [], 0
        for start, end, target in self.find(text):
            name = f"X{first + len(spans)}"
            spans.append(TermSpan(name, text[start:end], target))
            out += [text[last:start], name]
            last = end
        return "".join(out) + text[last:], spans


def _uses(translation: str, targets: Iterable[str], flags: int) -> dict[str, int]:
    """How many times ``translation`` writes each of ``targets`` on word boundaries, the
    longest first and each occurrence counted once: with "week" -> "semaine" and
    "weekend" -> "fin de semaine", the "semaine" of "fin de semaine" is the weekend's."""
    counts = {}
    for target in sorted(set(targets), key=len, reverse=True):
        pattern = re.compile(rf"(?<!\w){re.escape(target)}(?!\w)", flags)
        counts[target] = len(pattern.findall(translation))
        translation = pattern.sub(lambda m: "\0" * len(m.group(0)), translation)
    return counts


def _term_counts(translation: str, spans: list[TermSpan]) -> list[tuple[int, int, int, int]]:
    """Per term of ``spans``: (occurrences in the source, of which in capitals, times the
    translation writes it in any case, times in capitals)."""
    keys = list(dict.fromkeys(span.key for span in spans))
    mine = {key: [span for span in spans if span.key == key] for key in keys}
    targets = {key: group[0].target for key, group in mine.items()}
    anyhow = _uses(translation, targets.values(), re.IGNORECASE)
    shouted = _uses(translation, [t.upper() for t in targets.values()], 0)
    return [(len(mine[key]), sum(span.in_capitals for span in mine[key]), anyhow[targets[key]],
             shouted[targets[key].upper()]) for key in keys]


def unobeyed(translation: str, spans: list[TermSpan]) -> set[str]:
    """The keys of the terms (of ``spans``, the occurrences in the source) that
    ``translation`` does not write as the glossary says: fewer times than the source holds
    the term (in any case), or, for occurrences the source wrote in capitals, fewer times
    in capitals."""
    keys = list(dict.fromkeys(span.key for span in spans))
    return {key for key, (count, capitals, anyhow, shouted) in zip(keys, _term_counts(translation, spans))
            if anyhow < count or capitals and shouted < capitals}


def _unglued(translation: str, spans: list[TermSpan]) -> str:
    """Placeholders of adjacent terms that the model wrote as one ("X1 X2" -> "X12")
    parted again, so that neither term is lost and no "X12" is left in the output."""
    names = {span.placeholder.upper() for span in spans}

    def absent(span: TermSpan) -> bool:
        return re.search(rf"\b{span.placeholder}\b", translation, re.IGNORECASE) is None

    for first in range(len(spans)):
        for last in range(first + 1, len(spans)):
            run = spans[first: last + 1]
            if not all(absent(span) for span in run):
                break
            glued = "X" + "".join(span.placeholder[1:] for span in run)
            if glued.upper() in names:  # "X12" is a term of its own, not X1 and X2 glued
                break
            translation, n = re.subn(rf"\b{glued}\b", " ".join(span.placeholder for span in run), translation,
                                     count=1, flags=re.IGNORECASE)
            if n:
                break
    return translation


def restore_terms(translation: str, spans: list[TermSpan]) -> tuple[str, list[TermSpan]]:
    """The translation of (part of) ``Glossary.protect``'s text with each placeholder it
    holds replaced by its term's translation (the first copy; further copies dropped);
    and the spans whose placeholder it does not hold."""
    translation = _unglued(translation, spans)
    missing = []
    for span in spans:
        pattern = re.compile(rf"\b{span.placeholder}\b", re.IGNORECASE)
        m = pattern.search(translation)
        if m is None:
            missing.append(span)
            continue
        before = translation[: m.start()]
        starts = not before.strip(_OPENERS) or bool(re.search(r"[.!?…][\"'”’»)\]]*\s+[\"'“‘«(\[¿¡]*$", before))
        after = pattern.sub("", translation[m.end():])
        translation = " ".join((before + span.written(starts) + after).split())
    return translation, missing


def terms_written(translation: str, spans: list[TermSpan]) -> int:
    """How many of the occurrences ``spans`` stand for ``translation`` writes as the
    glossary says (``unobeyed``'s count, per occurrence: a term the source holds twice and
    the translation writes once counts 1; one the source wrote in capitals counts only
    when written in capitals)."""
    return sum(min(count, anyhow, min(capitals, shouted) + count - capitals)
               for count, capitals, anyhow, shouted in _term_counts(translation, spans))


def templated(translation: str, spans: list[TermSpan]) -> str:
    """``translation`` (written without placeholders) with the first free occurrence of each
    span's translation, on word boundaries and in any case, swapped for the span's
    placeholder: what ``restore_terms`` turns back into the same words (capitalized as
    it capitalizes them). A span whose translation it does not write is left out. The
    longest translations go first, so a shorter one is never taken inside a longer one
    ("semaine" inside "fin de semaine")."""
    for span in sorted(spans, key=lambda span: len(span.target), reverse=True):
        translation = re.sub(rf"(?<!\w){re.escape(span.target)}(?!\w)", span.placeholder, translation, count=1,
                             flags=re.IGNORECASE)
    return translation


# -- the word before a term made to agree with it ------------------------------------------
# A placeholder hides its term's first sound and gender, so the model guesses the word
# before it: "The cat sleeps." with cat -> matou came out "L'matou dort.", "sa X1" is
# wrong when X1 is "travail", and into English "J'ai acheté une voiture." with voiture ->
# automobile came out "I bought a automobile.". Each row below is one word's forms: before
# a vowel sound and before a consonant, masculine and feminine. A term has one gender, so
# every occurrence of it takes the same one; which one is the model's call
# (Translator._glossary_candidates scores both). English a/an goes by sound alone.
_Forms = dict[str, str]  # gender ("m", "f") -> form
_AGREEING_WORDS: dict[str, list[tuple[_Forms, _Forms]]] = {
    # language: [(forms before a vowel sound, forms before a consonant)]
    "fr": [
        ({"m": "l'", "f": "l'"}, {"m": "le", "f": "la"}),
        ({"m": "un", "f": "une"}, {"m": "un", "f": "une"}),
        ({"m": "cet", "f": "cette"}, {"m": "ce", "f": "cette"}),
        ({"m": "de l'", "f": "de l'"}, {"m": "du", "f": "de la"}),
        ({"m": "à l'", "f": "à l'"}, {"m": "au", "f": "à la"}),
        ({"m": "d'", "f": "d'"}, {"m": "de", "f": "de"}),
        ({"m": "qu'", "f": "qu'"}, {"m": "que", "f": "que"}),
        ({"m": "mon", "f": "mon"}, {"m": "mon", "f": "ma"}),
        ({"m": "ton", "f": "ton"}, {"m": "ton", "f": "ta"}),
        ({"m": "son", "f": "son"}, {"m": "son", "f": "sa"}),
    ],
    "en": [({"m": "an", "f": "an"}, {"m": "a", "f": "a"})],
}
# a term that starts with one of these keeps the word before it as written: French "h"
# and "y" go either way ("l'homme", "le héros"), "onze" and "oui" take "le"; in English
# the letters do not tell the sound of a letter said as a letter ("an X-ray", "a U-turn",
# "an FBI agent") or of a digit
_AS_WRITTEN = {
    "fr": re.compile(r"[hy]|onz|oui", re.IGNORECASE),
    "en": re.compile(r"[^A-Za-z]|[A-Za-z](?:[-\s.]|$)|[A-Z]{2}"),
}
_VOWEL_SOUND = {
    "fr": re.compile(r"[aeiouàâäéèêëîïôöùûüœæ]", re.IGNORECASE),
    # "u" said "you": university, unanimous, user, utensil, uranium, ukulele, ubiquitous
    # (not "unintended", "unusual", "umbrella", "urban", "usher")
    "en": re.compile(r"(?!eu|ewe|one\b|once\b|u(?:ni(?![nmd])|nanim|s[aeiu]|t[aeiou]|r[aeiou]|ku|bi))[aeiou]"
                     r"|h(?:our|onest|ono|eir)", re.IGNORECASE),
}
_FORM_KEY = {lang: {form: row for row in rows for forms in row for form in forms.values()}
             for lang, rows in _AGREEING_WORDS.items()}
_WORDS = {lang: "|".join(re.escape(form).replace("'", "['’]") for form in sorted(forms, key=len, reverse=True))
          for lang, forms in _FORM_KEY.items()}
MAX_AGREEMENT_VARIANTS = 16


def agreement_variants(translation: str, spans: list[TermSpan], language: str | None) -> list[str]:
    """``translation`` (its terms written) with the word just before each occurrence of
    ``spans``' terms in the form ``language`` (French, English; others: the translation
    alone) writes there, once per gender: "L'matou dort." -> ["Le matou dort.", "La matou
    dort."]; "sa travail" -> ["son travail"] (before a vowel "son" serves both); "le
    ordinateur et la ordinateur" -> ["l'ordinateur et l'ordinateur"]; "a automobile" ->
    ["an automobile"]. Every occurrence of a term takes one gender. A term the word before
    it cannot be told for (_AS_WRITTEN: "hôtel", "onze"; "X-ray", "FBI agent", a digit)
    keeps that word as written. Each term's gender as written comes first, where it is
    one; at most MAX_AGREEMENT_VARIANTS."""
    if language not in _AGREEING_WORDS:
        return [translation]
    targets = sorted({span.target.casefold(): span.target for span in spans}.values(), key=len, reverse=True)
    variants = [translation]
    for target in targets:
        if _AS_WRITTEN[language].match(target):
            continue
        vowel = bool(_VOWEL_SOUND[language].match(target))
        pattern = re.compile(rf"(?<!\w)({_WORDS[language]})(\s*)({re.escape(target)})(?!\w)", re.IGNORECASE)
        variants = [v for text in variants for v in _agreeing(text, pattern, _FORM_KEY[language], vowel)]
        variants = list(dict.fromkeys(variants))[:MAX_AGREEMENT_VARIANTS]
    return variants


def _agreeing(text: str, pattern: re.Pattern, rows: dict[str, tuple[_Forms, _Forms]], vowel: bool) -> list[str]:
    """``text`` once per gender, each word ``pattern`` finds before the term in that
    gender's form (the text itself where no such word stands there)."""
    found = []
    for m in pattern.finditer(text):
        word, gap, term = m.groups()
        elided = word[-1] in "'’"
        row = rows.get(word.casefold().replace("’", "'"))
        if row is None or not (gap or elided) or "\n" in gap:
            continue  # a word glued to the term is no article; an elided one may stand before a space
        found.append((m, word, row[0] if vowel else row[1]))
    if not found:
        return [text]

    def written(word: str, form: str) -> str:
        apostrophe = "’" if "’" in word else "'"
        form = form.replace("'", apostrophe)
        if word.isupper() and len(word.rstrip("'’")) > 1:
            form = form.upper()
        elif word[0].isupper():
            form = form[0].upper() + form[1:]
        return form if form.endswith(apostrophe) else form + " "

    out = []
    for gender in ("m", "f"):
        parts, end = [], 0
        for m, word, forms in found:
            parts += [text[end:m.start()], written(word, forms[gender]), m.group(3)]
            end = m.end()
        out.append("".join(parts) + text[end:])
    return sorted(dict.fromkeys(out), key=lambda variant: variant != text)  # as written first
