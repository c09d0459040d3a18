"""Text before the tokenizer: the one normalizer, sentence splitting, the spans a model must
copy rather than translate (URLs, e-mail addresses) and text written in capitals.

Every path that hands text to a model (training data, ``translate``, the server,
alignment) goes through :func:`clean_text`, so the model always sees what it was trained
on. Nothing here imports torch.

Sentence splitting is ours, rule-based, for English and French: a well-kept library
that runs offline and knows both languages would have been preferred, but the options
(pysbd: unmaintained since 2021 and ~1 ms per sentence; NLTK punkt, spaCy, stanza:
models downloaded at run time or hundreds of MB of dependencies) each cost more than
the fifty lines below, whose rules the tests pin down. A missed split only makes an
input longer; a wrong split breaks a sentence in two, so the rules stay conservative.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Iterator

from .errors import InputError

# C0/C1 control characters that are not whitespace, and byte-order marks anywhere.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ufeff]")
_SPACES = re.compile(r"\s+")  # Unicode-aware: also NBSP, U+202F, line separators


def clean_text(text: str) -> str:
    """Unicode NFC, control characters and BOMs removed, whitespace runs -> one space, stripped."""
    text = unicodedata.normalize("NFC", _CONTROL.sub("", text))
    return _SPACES.sub(" ", text).strip()


# Words that end with a period without ending a sentence, whatever follows
# (titles before names, "No. 5", "p. 12", French "M. Dupont", "av. J.-C.").
_NEVER_FINAL = {
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "mt", "gen", "gov", "sen", "rep", "rev", "capt", "col",
    "lt", "sgt", "hon", "vs", "no", "nos", "vol", "p", "pp", "fig", "figs", "art", "ch", "sec", "ed", "eds",
    "approx", "dept", "est", "inc", "ltd", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "m", "mm", "mme", "mmes", "mlle", "mlles", "me", "mgr", "av", "apr",
    "env", "cf", "chap", "éd", "nº", "n°", "tél", "boul",
}
# Abbreviations that may also end a sentence: a boundary only before a capital letter.
_MAYBE_FINAL = {"etc", "a.m", "p.m", "am", "pm"}

# A run of sentence-final punctuation, closing quotes/brackets, then whitespace.
_CANDIDATE = re.compile(r"([.!?…]+)([\"'”’»)\]]*)(\s+)")
_CLAUSE_END = re.compile(r"(?<=;)\s+")
_ENTITY_BEFORE = re.compile(r"&#?\w+;$")
_OPENER = "\"'“‘«([¿¡"


def _starts_sentence(rest: str) -> bool:
    """Does the text after a candidate boundary look like a new sentence?"""
    word = rest.lstrip(_OPENER + " ")
    return bool(word) and (word[0].isupper() or word[0].isdigit())


def _word_before(text: str, end: int) -> str:
    start = end
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "\"“«([¿¡":
        start -= 1
    return text[start:end]


def split_sentences(text: str) -> list[str]:
    """The sentences of one line of text, in order; joined with spaces they give back ``text``
    (up to whitespace). Empty text gives no sentences."""
    text = text.strip()
    sentences, start = [], 0
    for m in _CANDIDATE.finditer(text):
        punct, end = m.group(1), m.end()
        if not _starts_sentence(text[end:]):
            continue
        if punct == ".":
            word = _word_before(text, m.start()).lower()
            if word in _NEVER_FINAL:
                continue
            if len(word) == 1 and word.isalpha():  # an initial: "J. K. Rowling"
                continue
            if "." in word and word not in _MAYBE_FINAL and any(c.isalpha() for c in word):  # "e.g.", "U.S."
                continue
        sentences.append(text[start:m.end(2)])
        start = end
    if start < len(text):
        sentences.append(text[start:])
    # A semicolon joins clauses that stand on their own: translated one by one they come
    # out better (dev sets, both directions, the shipped models: newstest2012 +0.11 / +0.10
    # BLEU, hansard/dev +0.02 / 0.00, chrF up too), the long news sentences most. Not
    # dashes: a part ending in " -" made the model write "----" (news loops 8 -> 31).
    return [part for s in sentences for part in _clauses(s) if part]


def _clauses(sentence: str) -> list[str]:
    parts, start = [], 0
    for m in _CLAUSE_END.finditer(sentence):
        if not _ENTITY_BEFORE.search(sentence, 0, m.start()):  # "&amp; " is not a clause end
            parts.append(sentence[start:m.start()])
            start = m.end()
    return parts + [sentence[start:]]


# -- what the model should not translate, and text written in capitals -------------------
# URLs and e-mail addresses are never translated, and the model mangles them (they are
# filtered out of its training data, and "@" is not even in its vocabulary): they are
# swapped for placeholders the model copies through, then put back. "X1", "X2", ... were
# measured against other candidates on hand-made sentences with both shipped models:
# copied exactly once in 32 of 32 sentences ("URL1" 28 of 32, the raw URL 0 of 16).
_URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"«»“”]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)
_URL_TRAILER = ".,;:!?'’\"»”)]"
PLACEHOLDER = re.compile(r"\b[Xx](\d+)\b")  # "X1", "x2": a placeholder as written or as the model copied it


def free_placeholder(text: str) -> int:
    """The first placeholder number above every one ``text`` holds: placeholders made from
    it never collide with its words (nor with protect_spans' own, in its output)."""
    return max((int(n) for n in PLACEHOLDER.findall(text)), default=0) + 1


def protect_spans(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with each URL and e-mail address replaced by a placeholder, and the
    (placeholder, original) pairs; placeholders never collide with words of ``text``."""
    spans: list[tuple[str, str]] = []
    first = free_placeholder(text)

    def swap(m: re.Match) -> str:
        span = m.group(0)
        # sentence punctuation after a URL is not part of it; a ")" is when it closes a "("
        # of the URL itself (Wikipedia's "Foo_(bar)")
        while span and span[-1] in _URL_TRAILER and not (span[-1] == ")" and span.count("(") >= span.count(")")):
            span = span[:-1]
        if span.endswith("://"):
            return m.group(0)
        name = f"X{first + len(spans)}"
        spans.append((name, span))
        return name + m.group(0)[len(span):]

    return _URL.sub(swap, text), spans


# Two placeholders with at most this between them and no letter or digit ("X1+X2",
# "X1 X2", "X1, X2") are a run: the model may write the second without its X.
_RUN_GAP = re.compile(r"[^\w]{0,3}")


def repair_placeholder_runs(translation: str, source: str, names: list[str]) -> str:
    """``translation`` with the placeholders the model mangled inside a run written whole
    again: a placeholder ``names`` holds that the translation lacks, next to another in
    ``source`` with no letter or digit between them, and written as its bare number next
    to that neighbour ("X1+X2" -> "X1+2", "X1 X2" -> "1 X2"), or a run of any length glued
    into one name that is no placeholder ("X1 X2 X3" -> "X123"). Without this the
    restore finds the run's first placeholder, appends the other's original at the end
    and leaves a stray digit in the text. Only a bare number in that place is taken: a
    number elsewhere in the translation is never changed."""
    wanted = {n.upper() for n in names}
    found = [m for m in PLACEHOLDER.finditer(source) if m.group(0).upper() in wanted]
    pairs = [(a.group(0).upper(), source[a.end():b.start()], b.group(0).upper()) for a, b in zip(found, found[1:])
             if _RUN_GAP.fullmatch(source[a.end():b.start()])]

    def present(name: str) -> bool:
        return bool(re.search(rf"(?<![^\W_]){name}(?![^\W_])", translation, re.IGNORECASE))

    def stray(number: str) -> bool:
        """The translation writes the bare number more often than the source: one is a
        placeholder's ("X1 X2 2 times" -> "X1 2 fois" lost X2; its "2" is the source's)."""
        def count(text: str) -> int:
            return len(re.findall(rf"(?<![^\W_]){number}(?![^\W_])", text))
        return count(translation) > count(source)

    # glued into one ("X1 X2 X3" -> "X123"), where no placeholder is called that: the
    # longest run of source neighbours that the translation lacks, parted again
    chain = [found[0]] if found else []
    chains = []
    for a, b in zip(found, found[1:]):
        if _RUN_GAP.fullmatch(source[a.end():b.start()]):
            chain.append(b)
        else:
            chains.append(chain)
            chain = [b]
    chains.append(chain)
    for chain in chains:
        for length in range(len(chain), 1, -1):
            for first in range(len(chain) - length + 1):
                run = chain[first:first + length]
                glued = "X" + "".join(m.group(0)[1:] for m in run)
                if glued.upper() in wanted or any(present(m.group(0)) for m in run):
                    continue
                parted = "".join(m.group(0) + source[m.end():n.start()] for m, n in zip(run, run[1:])) + run[-1].group(0)
                translation = re.sub(rf"(?<![^\W_]){glued}(?![^\W_])", lambda _: parted, translation, count=1,
                                     flags=re.IGNORECASE)

    changed = True
    while changed:  # "X1+X2+X3" -> "1+2+X3": X2 is found from X3 first, then X1 from X2
        changed = False
        for a, gap, b in pairs:
            if present(a) and not present(b) and stray(b[1:]):
                # a, then no letter or digit, then b's bare number ending there
                pattern = rf"(?<![^\W_])({a})([^\w]{{1,3}}?)({b[1:]})(?![^\W_])"
                m = re.search(pattern, translation, re.IGNORECASE)
                if m:
                    translation = translation[:m.start()] + m.group(1) + m.group(2) + b + translation[m.end():]
                    changed = True
            elif present(b) and not present(a) and stray(a[1:]):
                pattern = rf"(?<![^\W_])({a[1:]})([^\w]{{1,3}}?)({b})(?![^\W_])"
                m = re.search(pattern, translation, re.IGNORECASE)
                if m:
                    translation = translation[:m.start()] + a + m.group(2) + m.group(3) + translation[m.end():]
                    changed = True
    return translation


def restore_spans(text: str, spans: list[tuple[str, str]], source: str | None = None) -> str:
    """Put the originals back in a translation of protect_spans' text: each placeholder's
    first occurrence, further copies dropped; a placeholder the model left out is appended,
    so nothing of the input is lost. ``source``: the text the model translated, to find
    placeholders it mangled in a run (repair_placeholder_runs)."""
    if source is not None and len(spans) > 1:
        text = repair_placeholder_runs(text, source, [name for name, _ in spans])
    for name, original in spans:
        pattern = re.compile(rf"\b{name}\b", re.IGNORECASE)
        if pattern.search(text):
            text = pattern.sub(original, text, count=1)
            text = " ".join(pattern.sub("", text).split())
        else:
            text = f"{text} {original}".strip()
    return text


def is_shouted(sentence: str) -> bool:
    """Written in capitals ("THE MEETING STARTS AT 9."): at least two words of two or more
    letters in capitals and nine in ten cased letters upper case. Acronyms in normal text
    ("NATO and the EU met.") do not count; the model saw almost no such text in training
    and copies it letter by letter instead of translating it."""
    cased = [c for c in sentence if c.isalpha() and c.lower() != c.upper()]
    words = [w for w in re.findall(r"[^\W\d_]{2,}", sentence) if w.isupper()]
    return len(words) >= 2 and sum(c.isupper() for c in cased) >= 0.9 * len(cased)


_CASED_WORD = re.compile(r"(?<!\w)[^\W\d_]{2,}")


def sentence_case(sentence: str, capitalized: Callable[[str], bool] | None = None) -> str:
    """Lower case with the first letter upper: what the model translates for a sentence
    written in capitals (its translation is then put back in capitals). Placeholders
    (protect_spans) keep their capital X. ``capitalized`` (a word in lower case -> is it
    written with a capital?) gives names back their capital ("MONDAY" -> "Monday", not
    "monday", which the shipped en-fr model translated "jeudi"): modeldir asks the
    vocabulary."""
    lower = PLACEHOLDER.sub(lambda m: "X" + m.group(1), sentence.lower())
    if capitalized is not None:
        lower = _CASED_WORD.sub(lambda m: m.group(0).capitalize() if capitalized(m.group(0)) else m.group(0), lower)
    for i, c in enumerate(lower):
        if c.isalpha():
            return lower[:i] + c.upper() + lower[i + 1:]
    return lower


# -- the dollar sign, for a vocabulary without it ---------------------------------------------
# The shipped vocabulary has no "$": it reaches the model as a byte piece, which comes out
# as "*", "]" or nothing ("$3,580" -> "*3 580"). Amounts are given to the model in words
# ("3,580 dollars", "2 million dollars": in both languages the number comes first) and the
# sign is put back in the translation in the target language's style. Measured on the dev
# sets' sentences with "$" (hansard/dev 60 en-fr, 17 fr-en; newstest2012 14 / 3): see
# the model cards.
_SCALE = r"(?: (?:thousand|million|billion|trillion|milliers?|millions?|milliards?|billions?))?"
_AMOUNT = r"(?:\d{1,3}(?: \d{3})+(?:,\d+)?|\d(?:[\d,.]*\d)?)"  # French groups: "39 000"
_SIGN_FIRST = re.compile(rf"(?<![^\W\d_])\$ ?({_AMOUNT})({_SCALE})")
_SIGN_AFTER = re.compile(rf"({_AMOUNT}) ?\$(?![\w$])")
_IN_WORDS = {"en": re.compile(rf"({_AMOUNT})( (?:thousand|million|billion|trillion))? dollars\b"),
             "fr": re.compile(rf"({_AMOUNT}) dollars\b")}
_IN_SIGNS = {"en": r"$\1\2", "fr": r"\1 $"}


def dollars_in_words(text: str) -> tuple[str, int]:
    """'$3,580' -> '3,580 dollars', '$2 million' -> '2 million dollars', '39 000 $' ->
    '39 000 dollars'; and how many amounts were rewritten."""
    text, first = _SIGN_FIRST.subn(r"\1\2 dollars", text)
    text, after = _SIGN_AFTER.subn(r"\1 dollars", text)
    return text, first + after


def dollars_in_signs(text: str, language: str, count: int) -> str:
    """The translation of dollars_in_words' text with (at most ``count``) amounts written
    with the sign again, as ``language`` writes them: English '$3,580', '$2 million';
    French '3 580 $' ("2 millions de dollars" stays in words, as French news writes it)."""
    pattern = _IN_WORDS.get(language)
    return pattern.sub(_IN_SIGNS[language], text, count=count) if pattern and count else text


# -- lines of a file -----------------------------------------------------------------------
def _decode_line(raw: bytes, where: str, lineno: int) -> str:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{where}:{lineno}: invalid UTF-8") from None
    line = line[:-1] if line.endswith("\n") else line
    return line[:-1] if line.endswith("\r") else line


def iter_lines(path: str) -> Iterator[str]:
    """Lines of a UTF-8 file, or of standard input for '-', one at a time (memory flat in
    the file size); invalid UTF-8 is a clear error naming the line. Lines break at "\\n"
    only: str.splitlines() also breaks at U+2028, \\x85, \\x0b..., which would give more
    translations than input lines."""
    where = "<stdin>" if path == "-" else path
    try:
        f = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    try:
        for lineno, raw in enumerate(f, 1):
            yield _decode_line(raw, where, lineno)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def read_lines(path: str) -> list[str]:
    """All lines of a UTF-8 file (or standard input for '-'), as iter_lines gives them."""
    return list(iter_lines(path))
