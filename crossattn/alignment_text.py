"""Alignment data as text: pairs of gold-style tokens, Pharaoh links (``i-j`` sure,
``i?j`` possible, 0-based, source first), and the natural text the model reads for
gold-style tokens. What ``crossattn align``, ``align-eval`` and ``align-head`` read and
write; torch-free, so align.py and align_head.py both build on it.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .text import clean_text, iter_lines, read_lines


# -- pairs of gold-style tokens ------------------------------------------------------------
def read_token_pairs(arg: str) -> list[tuple[list[str], list[str]]]:
    """'pairs.tsv' (source<TAB>target) or 'src.txt:tgt.txt'; one pair per line, words =
    whitespace tokens. Unlike data.read_pairs (training text: blank and malformed lines
    skipped), every line is a pair, blank ones too, so that output line n is input pair n."""
    if not Path(arg).is_file() and ":" in arg:
        a, b = arg.split(":", 1)
        src, tgt = read_lines(a), read_lines(b)
        if len(src) != len(tgt):
            raise InputError(f"{a} has {len(src)} lines but {b} has {len(tgt)}")
    else:
        src, tgt = [], []
        for n, line in enumerate(read_lines(arg), 1):
            if line.strip() and "\t" not in line:
                raise InputError(f"{arg}:{n}: expected source<TAB>target")
            s, _, t = line.partition("\t")
            src.append(s)
            tgt.append(t.split("\t")[0])
    # the given tokens are kept as they are: cleaning never merges or splits them
    return [(clean_text(s).split(), clean_text(t).split()) for s, t in zip(src, tgt)]


def encode_words(tokenizer, words: list[str]) -> tuple[list[int], list[list[int]]]:
    """Piece ids of the space-joined words, and the piece positions of each word."""
    ids: list[int] = []
    spans: list[list[int]] = []
    for w in words:
        piece_ids = tokenizer.encode(w)
        spans.append(list(range(len(ids), len(ids) + len(piece_ids))))
        ids += piece_ids
    return ids, spans


# -- gold-style tokens -> the text the model was trained on ------------------------------
# Alignment gold sets are lowercased and tokenized ("de le", "je ai", "l ' élargissement",
# "lui - même", "complex ,"); the model read natural text. We restore it for the model and
# keep, for every given token, the characters it became, so links come back to the tokens
# as given (a contraction like "du" belongs to both "de" and "le").
_CONTRACTIONS = {("de", "le"): "du", ("de", "les"): "des", ("à", "le"): "au", ("à", "les"): "aux"}
_ELIDED = {"je", "me", "te", "se", "le", "la", "ne", "de", "que", "ce", "jusque", "lorsque", "puisque", "quoique"}
_VOWEL_START = tuple("aeiouyhéèêëàâîïôûœ")
_ATTACH_LEFT = {"en": {",", ".", ";", ":", "!", "?", ")", "]", "%", "'s", "n't", "'re", "'ve", "'ll", "'d", "'m"},
                "fr": {",", ".", ")", "]", "%"}}


def natural_text(tokens: list[str], lang: str) -> tuple[str, list[tuple[int, int]]]:
    """``(text, span of each token in it)``: contractions and elisions made again (French),
    punctuation attached, hyphenated compounds joined, the first letter capitalised."""
    text, spans, i = "", [], 0
    while i < len(tokens):
        tok, nxt = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        prev = tokens[i - 1] if i else ""
        glue = not text or tok in _ATTACH_LEFT.get(lang, ()) or tok == "'" or text.endswith("'") \
            or _joins_hyphen(prev, tok, nxt) or (prev == "-" and text.endswith("-")) \
            or text.endswith(("(", "["))
        sep = "" if glue else " "
        after = tokens[i + 2] if i + 2 < len(tokens) else ""
        if lang == "fr" and (tok.lower(), nxt.lower()) in _CONTRACTIONS \
                and not (nxt.lower() == "le" and after.lower().startswith(_VOWEL_START)):  # de l'homme
            word = _CONTRACTIONS[tok.lower(), nxt.lower()]
            start = len(text) + len(sep)
            text += sep + word
            spans += [(start, start + len(word))] * 2
            i += 2
            continue
        word = tok
        if lang == "fr" and tok.lower() in _ELIDED and nxt.lower().startswith(_VOWEL_START) and nxt != "-":
            word = tok[:-1] + "'"
        elif lang == "en" and tok == "i":
            word = "I"
        start = len(text) + len(sep)
        text += sep + word
        spans.append((start, start + len(word)))
        i += 1
    if text[:1].isalpha():
        text = text[0].upper() + text[1:]
    return text, spans


def _joins_hyphen(prev: str, tok: str, nxt: str) -> bool:
    return tok == "-" and prev[-1:].isalpha() and nxt[:1].isalpha()


def hyphen_compounds(tokens: list[str]) -> list[list[int]]:
    """Token positions of each hyphenated word natural_text makes ("procès - verbal")."""
    groups: list[list[int]] = []
    for k in range(1, len(tokens) - 1):
        if _joins_hyphen(tokens[k - 1], tokens[k], tokens[k + 1]):
            if groups and groups[-1][-1] == k - 1:
                groups[-1] += [k, k + 1]
            else:
                groups.append([k - 1, k, k + 1])
    return groups


def encode_natural(tokenizer, tokens: list[str], lang: str) -> tuple[list[int], list[list[int]]]:
    """Piece ids of the natural text of ``tokens``, and the pieces of each given token."""
    text, char_spans = natural_text(tokens, lang)
    pieces = tokenizer.encode_with_spans(text)
    spans = [[k for k, (_, b, e) in enumerate(pieces) if b < end and start < e] for start, end in char_spans]
    return [pid for pid, _, _ in pieces], spans


# -- Pharaoh links ---------------------------------------------------------------------------
def parse_links(line: str, where: str = "") -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """'0-0 1?2' -> (sure, possible); possible includes sure (P = S u P)."""
    sure, possible = set(), set()
    for tok in line.split():
        sep = "-" if "-" in tok else "?"
        a, _, b = tok.partition(sep)
        if not (a.isdigit() and b.isdigit()):
            raise InputError(f"{where}bad link {tok!r} (expected i-j or i?j)")
        link = (int(a), int(b))
        possible.add(link)
        if sep == "-":
            sure.add(link)
    return sure, possible


def format_links(links: set[tuple[int, int]]) -> str:
    """{(0, 0), (1, 2)} -> '0-0 1-2' (Pharaoh, sorted)."""
    return " ".join(f"{i}-{j}" for i, j in sorted(links))


def read_links(path: str) -> list[tuple[set, set]]:
    """One (sure, possible) pair of link sets per line of ``path``."""
    return [parse_links(line, f"{path}:{n}: ") for n, line in enumerate(read_lines(path), 1)]


def read_links_file(path: str, reverse: bool = False, limit: int | None = None
                    ) -> list[tuple[list[str], list[str], set[tuple[int, int]]]]:
    """``source tokens<TAB>target tokens<TAB>i-j links`` lines (what bench/alignment.py's
    eflomal_links writes); ``reverse`` swaps the sides, for a model of the other direction."""
    out = []
    for n, line in enumerate(iter_lines(path), 1):
        if limit is not None and len(out) >= limit:
            break
        fields = line.split("\t")
        if len(fields) != 3:
            raise InputError(f"{path}:{n}: expected source tokens<TAB>target tokens<TAB>links")
        src, tgt, links = fields[0].split(), fields[1].split(), parse_links(fields[2], f"{path}:{n}: ")[0]
        out.append((tgt, src, {(j, i) for i, j in links}) if reverse else (src, tgt, links))
    return out
