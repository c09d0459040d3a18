"""A paragraph's formatting runs as inline markup and back, so that bold, italic and links
in office documents are placed on the translated words as HTML inline tags are
(markup.py's placement by word alignment).

A paragraph is written as HTML for ``translate_html``: its text, escaped, and for each
piece of formatting a tag that stands for it: ``<span data-k="3">...</span>`` around the
text of a run (or a link, a tracked insertion ...), ``<img data-k="4">`` for something
placed between words (a picture, a field, a bookmark), ``<br data-k="5">`` for a tab or
a line break (it separates words as a space does). ``data-k`` indexes ``Markup.tags``, what
each tag stands for. The translated HTML is read back (``parse_translated``) into a tree
of text, spans and voids that each format turns into its own elements again.

The text a paragraph's most common run properties cover is written without a tag, so a
paragraph in one style is translated as plain text and a bold word mid-sentence is one
span.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

from .safety import with_outer_space


class Markup:
    """One paragraph's inline markup being written, with what each tag stands for."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.plain_parts: list[str] = []
        self.tags: list[Any] = []
        self.voids: set[int] = set()
        self.breaks: set[int] = set()

    def text(self, s: str) -> None:
        if s:
            self.parts.append(html.escape(s, quote=False))
            self.plain_parts.append(s)

    def _tag(self, payload: Any) -> int:
        self.tags.append(payload)
        return len(self.tags) - 1

    def open(self, payload: Any) -> None:
        self.parts.append(f'<span data-k="{self._tag(payload)}">')

    def close(self) -> None:
        self.parts.append("</span>")

    def void(self, payload: Any, breaks_line: bool = False) -> None:
        k = self._tag(payload)
        self.voids.add(k)
        if breaks_line:
            self.breaks.add(k)
        self.parts.append(f'<{"br" if breaks_line else "img"} data-k="{k}">')

    def html(self) -> str:
        return "".join(self.parts)

    def plain(self) -> str:
        """The text alone (for a paragraph without tags)."""
        return "".join(self.plain_parts)


@dataclass
class Span:
    payload: Any
    children: list = field(default_factory=list)  # str | Span | Void


@dataclass
class Void:
    payload: Any


class _Reader(HTMLParser):
    def __init__(self, tags: list[Any]):
        super().__init__(convert_charrefs=True)
        self.tags = tags
        self.used: set[int] = set()
        self.root = Span(None)
        self.stack = [self.root]

    def _payload(self, attrs) -> tuple[int, Any] | None:
        value = dict(attrs).get("data-k")
        if value is None or not value.isdigit() or int(value) >= len(self.tags) or int(value) in self.used:
            return None
        self.used.add(int(value))
        return int(value), self.tags[int(value)]

    def handle_starttag(self, tag, attrs):
        found = self._payload(attrs)
        if found is None:
            return
        if tag == "span":
            span = Span(found[1])
            self.stack[-1].children.append(span)
            self.stack.append(span)
        else:
            self.stack[-1].children.append(Void(found[1]))

    def handle_startendtag(self, tag, attrs):
        found = self._payload(attrs)
        if found is not None:
            self.stack[-1].children.append(Void(found[1]) if tag != "span" else Span(found[1]))

    def handle_endtag(self, tag):
        if tag == "span" and len(self.stack) > 1:
            self.stack.pop()

    def handle_data(self, data):
        if data:
            self.stack[-1].children.append(data)


def parse_translated(translated: str, markup: Markup) -> list:
    """The translated markup as a tree (str | Span | Void), each tag at most once; a void
    that the translation lost (markup.py keeps every tag, so this is a safety net) is put
    at the end, so that no picture, field or bookmark is lost."""
    reader = _Reader(markup.tags)
    reader.feed(translated)
    reader.close()
    for k in sorted(markup.voids - reader.used):
        reader.root.children.append(Void(markup.tags[k]))
    _trim_around_breaks(reader.root.children, {id(markup.tags[k]) for k in markup.breaks})
    return reader.root.children


def _trim_around_breaks(nodes: list, breaks: set[int]) -> None:
    """A tab or line break separates words by itself: the spaces the placement wrote
    beside it go."""
    for i, node in enumerate(nodes):
        if isinstance(node, Span):
            _trim_around_breaks(node.children, breaks)
        elif isinstance(node, Void) and id(node.payload) in breaks:
            if i > 0 and isinstance(nodes[i - 1], str):
                nodes[i - 1] = nodes[i - 1].rstrip(" ")
            if i + 1 < len(nodes) and isinstance(nodes[i + 1], str):
                nodes[i + 1] = nodes[i + 1].lstrip(" ")


def translate_paragraphs(markups: list[Markup], translate: Callable[[list[str]], list[str]],
                         translate_html: Callable[[list[str]], list[str]]) -> list[list]:
    """Each paragraph's translation as a tree (parse_translated). A paragraph without a tag
    (one style throughout) goes through ``translate``: nothing to place, so no alignment
    is computed; the others through ``translate_html``, all in one call each."""
    trees: list[list] = [[] for _ in markups]
    plain = [k for k, m in enumerate(markups) if not m.tags]
    tagged = [k for k, m in enumerate(markups) if m.tags]
    texts = [markups[k].plain() for k in plain]
    for k, source, t in zip(plain, texts, translate([s.strip() for s in texts]) if plain else []):
        trees[k] = [with_outer_space(source, t)]
    for k, out in zip(tagged, translate_html([markups[k].html() for k in tagged]) if tagged else []):
        trees[k] = parse_translated(out, markups[k])
    return trees
