"""Text formats: .txt, .html/.htm, .srt subtitles (the ``srt`` package: small, kept up to
date, strict about timings, it keeps numbering and timing extras) and .po/.pot gettext
catalogues (``polib``: the reference Python reader and writer of gettext catalogues,
plural forms and flags included). All are UTF-8 text (a .po may declare another charset).
"""

from __future__ import annotations

import codecs
import math
import os
import re

import polib
import srt

from ..markup import LETTER, TranslateFn, looks_like_html
from ..text import free_placeholder, restore_spans
from .safety import decode_text, encode_text, fail, refuse_entity_declarations, with_outer_space


def translate_txt(data: bytes, filename: str, translate: TranslateFn) -> bytes:
    """Each line translated as one text (sentence by sentence, as ``translate`` does), its
    indentation and line ending kept; lines without a letter kept as written."""
    text, bom = decode_text(data, filename)
    lines = text.splitlines(keepends=True)
    todo = [k for k, line in enumerate(lines) if LETTER.search(line)]
    translations = translate([lines[k].strip() for k in todo]) if todo else []
    for k, t in zip(todo, translations):
        line = lines[k]
        body = line.rstrip("\r\n")
        indent = body[: len(body) - len(body.lstrip())]
        lines[k] = indent + t + line[len(body):]
    return encode_text("".join(lines), bom)


def translate_html_file(data: bytes, filename: str, translate_html: TranslateFn) -> bytes:
    """The page through ``translate_html`` (markup.py: markup kept, inline tags placed)."""
    text, bom = decode_text(data, filename)
    refuse_entity_declarations(text, filename)
    return encode_text(translate_html([text])[0], bom)


def translate_texts(texts: list[str], translate: TranslateFn, translate_html: TranslateFn) -> list[str]:
    """Each text through ``translate``, or ``translate_html`` when it holds markup (a
    subtitle's <i>, a catalogue's <b>), its leading and trailing whitespace kept; texts
    without a letter kept as written."""
    out = list(texts)
    plain = [k for k, t in enumerate(texts) if LETTER.search(t) and not looks_like_html(t)]
    marked = [k for k, t in enumerate(texts) if LETTER.search(t) and looks_like_html(t)]
    for ks, fn in ((plain, translate), (marked, translate_html)):
        for k, t in zip(ks, fn([texts[k].strip() for k in ks]) if ks else []):
            out[k] = with_outer_space(texts[k], t)
    return out


# -- .srt ------------------------------------------------------------------------------
SUBTITLE_LINE = 42  # characters a subtitle line holds, the usual broadcast guideline


_TURN = re.compile(r"([-–]\s*)(.*)")


def _subtitle_text(content: str) -> list[tuple[str, str]]:
    """What to translate in a subtitle, as (prefix kept, text) pairs: its lines together,
    or each line on its own when each is a speaker's turn ("- Who? / - Me."), its dash
    kept out of the text (the models garble a leading "- ": "- Home." -> "-me Ho.")."""
    lines = [line.strip() for line in content.split("\n") if line.strip()]
    if len(lines) > 1 and all(line.startswith(("-", "–")) for line in lines):
        return [_TURN.fullmatch(line).groups() for line in lines]
    return [("", " ".join(lines))]


def split_lines(text: str, n: int, width: int = SUBTITLE_LINE) -> str:
    """``text`` in ``n`` lines of about equal length (one more when a line would pass
    ``width``, up to two), broken between words, never inside a tag."""
    tokens = re.findall(r"(?:<[^>]*>|[^\s<]|<)+", text)
    visible = [len(re.sub(r"<[^>]*>", "", t)) for t in tokens]
    total = sum(visible) + max(len(tokens) - 1, 0)
    n = max(n, min(2, math.ceil(total / width)))
    n = min(n, len(tokens))
    if n <= 1:
        return " ".join(tokens)
    lines: list[list[str]] = [[]]
    done = 0
    for token, size in zip(tokens, visible):
        if lines[-1] and len(lines) < n and done + size / 2 > total * len(lines) / n:
            lines.append([])
        lines[-1].append(token)
        done += size + 1
    return "\n".join(" ".join(line) for line in lines)


def translate_srt(data: bytes, filename: str, translate: TranslateFn, translate_html: TranslateFn) -> bytes:
    """Numbering and timings kept; a subtitle's lines translated together and broken into
    as many lines again (split_lines)."""
    text, bom = decode_text(data, filename)
    try:
        subtitles = list(srt.parse(text))
    except (srt.SRTParseError, srt.TimestampParseError, ValueError) as e:
        raise fail(filename, f"not valid SubRip subtitles ({str(e).splitlines()[0][:150]})") from None
    if not subtitles:
        raise fail(filename, "no subtitles in the file")
    units = [_subtitle_text(s.content) for s in subtitles]
    translated = iter(translate_texts([text for unit in units for _, text in unit], translate, translate_html))
    for s, unit in zip(subtitles, units):
        outs = [prefix + next(translated) for prefix, _ in unit]
        if len(unit) > 1:
            s.content = "\n".join(outs)
        else:
            lines = len([line for line in s.content.split("\n") if line.strip()])
            s.content = split_lines(outs[0], lines) if unit[0][1] else s.content
    out = srt.compose(subtitles, reindex=False, strict=True)
    if "\r\n" in text:
        out = out.replace("\n", "\r\n")
    return encode_text(out, bom)


# -- .po / .pot ------------------------------------------------------------------------
# Format placeholders are swapped for "X1", "X2", ... before translating and put back
# after, the convention text.protect_spans uses for URLs (measured: the shipped models
# copy it in 32 of 32 sentences) and with its restore_spans: each placeholder once, one
# the model left out appended, so none is ever lost or changed.
PRINTF = (r"%(?:\d+\$)?(?:\([^)\s]{1,64}\))?[#0+\-]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t)?"
          r"[diouxXeEfFgGcrsaAbpn%]")
BRACE = r"\{[\w.\[\]]*(?:![rsa])?(?::[^{}]*)?\}"
PLACEHOLDERS = {"printf": re.compile(PRINTF), "brace": re.compile(BRACE), "both": re.compile(f"{PRINTF}|{BRACE}")}


def protect_placeholders(text: str, pattern: re.Pattern = PLACEHOLDERS["both"]) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with each placeholder swapped for X<n> (never a name already in the text),
    and the (name, placeholder) pairs for text.restore_spans."""
    spans: list[tuple[str, str]] = []
    first = free_placeholder(text)

    def swap(m: re.Match) -> str:
        name = f"X{first + len(spans)}"
        spans.append((name, m.group(0)))
        return name

    return pattern.sub(swap, text), spans


def _placeholder_pattern(entry: polib.POEntry) -> re.Pattern | None:
    flags = set(entry.flags)
    printf = not {"no-c-format", "no-python-format"} & flags
    brace = "no-python-brace-format" not in flags
    return PLACEHOLDERS["both"] if printf and brace else PLACEHOLDERS["printf"] if printf else \
        PLACEHOLDERS["brace"] if brace else None


def _po_charset(data: bytes) -> str:
    found = re.search(rb"charset=([A-Za-z0-9_.:-]+)", data[:8192])
    if found:
        try:
            return codecs.lookup(found.group(1).decode("ascii")).name
        except LookupError:
            pass
    return "utf-8"


def _nplurals(po: polib.POFile) -> int:
    found = re.search(r"nplurals\s*=\s*(\d+)", po.metadata.get("Plural-Forms", ""))
    return min(max(int(found.group(1)), 1), 10) if found else 2


def translate_po(data: bytes, filename: str, translate: TranslateFn, translate_html: TranslateFn) -> bytes:
    """Each entry without a translation gets one in msgstr (every plural form), marked
    fuzzy for a person to review; msgid, comments, references and entries already
    translated are kept; format placeholders come through exactly (protect_placeholders).
    Written in UTF-8 (the header's charset says so)."""
    charset = _po_charset(data)
    text, _ = decode_text(data, filename, charset)
    if "\n" not in text.strip() or os.path.lexists(text):
        # polib reads a file when given its name: content that names a file is not content
        raise fail(filename, "not a gettext catalogue")
    try:
        po = polib.pofile(text if text.endswith("\n") else text + "\n", wrapwidth=78)
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise fail(filename, f"not a gettext catalogue ({str(e).splitlines()[0][:150] if str(e) else e!r})") from None
    todo = [e for e in po if e.msgid and not e.obsolete and not e.msgstr
            and not any(v for v in e.msgstr_plural.values())]
    sources, spans = [], []
    for e in todo:
        pattern = _placeholder_pattern(e)
        for msg in ([e.msgid, e.msgid_plural] if e.msgid_plural else [e.msgid]):
            protected, found = protect_placeholders(msg, pattern) if pattern else (msg, [])
            sources.append(protected)
            spans.append(found)
    outputs = iter(translate_texts(sources, translate, translate_html))
    restored = iter(_restore(next(outputs), found, source) for found, source in zip(spans, sources))
    n = _nplurals(po)
    for e in todo:
        if e.msgid_plural:
            singular, plural = next(restored), next(restored)
            e.msgstr_plural = {k: singular if k == 0 else plural for k in range(n)}
        else:
            e.msgstr = next(restored)
        if "fuzzy" not in e.flags:
            e.flags.insert(0, "fuzzy")
    if "Content-Type" in po.metadata:
        po.metadata["Content-Type"] = re.sub(r"charset=[^\s;]*", "charset=UTF-8", po.metadata["Content-Type"])
    return str(po).encode("utf-8")


def _restore(translation: str, spans: list[tuple[str, str]], source: str) -> str:
    """restore_spans, keeping the translation's leading and trailing whitespace (a msgstr
    ends with a newline where its msgid does); ``source``: the protected msgid, for a run
    of placeholders the model mangled ("%s+%d" read as "X1+X2", written "X1+2")."""
    return with_outer_space(translation, restore_spans(translation.strip(), spans, source)) if spans else translation
