"""HTML in, HTML out: sentences translated whole, inline markup put back by word alignment.

A web page's sentence is often cut by inline tags ("View the complete range of
<em>drawer systems</em> here!"). Translating each text node on its own (LibreTranslate's
``translatehtml``) gives unrelated fragments; like Firefox Translations (Bergamot) we
translate the sentence whole and put each inline element on the target words aligned to
the source words it covered. This module does everything but the translating and the
aligning, which it is given as functions (``translate_html``), so it needs no torch.

What happens to the parts of a document:

* **Segments.** Every element that is not inline (p, div, li, td, th, h1-h6, title,
  caption, blockquote, dt, dd, figcaption, option, ..., and unknown tags: an element whose
  role we do not know is never moved) delimits segments. A segment's text, whitespace
  collapsed as HTML renders it, is split into sentences (text.split_sentences, as the
  translator splits) and translated; a segment without a letter is kept as written.
* **Inline elements** (``INLINE``: b, i, em, strong, a, span, u, s, sub, sup, small,
  mark, abbr, cite, q, label, font, ...) cover the target words aligned to their source
  words: the span from the first to the last of them (links between a word and a
  punctuation mark do not count; of a word's targets far apart, only the group its
  neighbours' targets point to counts, far_links_dropped; an element whose words have no
  link takes its share, by position, of the unlinked target words between its neighbours'
  targets: bench/markup.py measures each on the Hansards trial and the Golden
  Collection). Nested elements stay nested;
  siblings never overlap (a sibling whose words come later in the translation may come
  later in the output: "the <b>red</b> <i>car</i>" -> "la <i>voiture</i> <b>rouge</b>").
  An element whose words align to nothing (and find no unlinked word there), and every
  void element (br, img, wbr, input) and stray end tag, stands between the target words
  aligned to the source words before and after it.
* **Left untouched**, as written: script, style, code, pre, kbd, samp, var, textarea and
  template, comments, doctype and processing instructions, and every element with
  ``translate="no"`` or the class ``notranslate``. Inside a sentence such an element
  with text ("Call <code>foo()</code> to start") stands in the sentence as a placeholder
  ("Call X1 to start", the "X<n>" names text.protect_spans uses for URLs, numbered above
  any the document holds), so the model reads the sentence whole; the element, as
  written, takes the place of the target word where the model copied the placeholder
  (its first copy; further copies are dropped). If the model drops it, it is placed as a
  void element: between the target words aligned to the source words around it. Glued
  to a letter or digit ("<code>Widget</code>s"), which the model would not copy as a
  name, and without text, it is placed as a void element from the start.
* **Attributes** are kept exactly as written, those a person reads (title, alt,
  placeholder, aria-label) included: they are not translated. A tag comes back as its
  input wrote it, which is what lets a client find its own tags (ids, classes, links)
  in the answer; translating a tooltip or an alt text is a separate request with
  format=text. (Chosen, not measured: no set of tagged pages with translated attributes
  was at hand.)
* **Tags**: every tag of the input appears exactly once in the output, its text as
  written (attributes, quotes, case). Entities and whitespace outside the translated text
  are kept as written; the translated text is escaped (&, <, >).
* **Malformed input** never raises and never drops text: the parser (the standard
  library's html.parser, chosen because it is lenient, keeps each tag's text as written
  and adds no dependency; lxml and html5lib repair the tree, which would add or move
  tags) reports constructs, and every character of the input belongs to one of them. An
  element left open stays open to the end of its segment (no end tag is invented); an
  end tag without its start tag is placed like a void element.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

from .errors import InputError
from .text import free_placeholder, repair_placeholder_runs, split_sentences

INLINE = frozenset({"a", "abbr", "acronym", "b", "bdi", "bdo", "big", "cite", "data", "del", "dfn", "em", "font", "i",
                    "ins", "label", "mark", "nobr", "q", "rp", "rt", "ruby", "s", "small", "span", "strike", "strong",
                    "sub", "sup", "time", "tt", "u"})
INLINE_VOID = frozenset({"br", "img", "wbr", "input", "embed"})
VOID = INLINE_VOID | {"area", "base", "col", "hr", "keygen", "link", "meta", "param", "source", "track"}
UNTOUCHED = frozenset({"script", "style", "code", "pre", "kbd", "samp", "var", "textarea", "template"})
UNTOUCHED_INLINE = frozenset({"code", "kbd", "samp", "var"})
OPTIONAL_END = frozenset({"p", "li", "dt", "dd", "option", "optgroup", "td", "th", "tr", "thead", "tbody", "tfoot",
                          "colgroup", "rb", "rp", "rt", "rtc"})

# a word for alignment and placement: letters and digits, with inner apostrophes, hyphens,
# dots and commas ("l'homme", "procès-verbal", "3.5"), or one other visible character
WORD = re.compile(r"\w+(?:['’\-.,]\w+)*|\S")
LETTER = re.compile(r"[^\W\d_]")
_GLUE = re.compile(r"[^\W_]")  # a letter or digit: a placeholder next to one is not a word of its own

Links = set[tuple[int, int]]
TranslateFn = Callable[[list[str]], list[str]]
AlignFn = Callable[[list[tuple[list[str], list[str]]]], list[Links]]


# -- parsing: every character of the input in one construct ---------------------------------
@dataclass
class Construct:
    kind: str  # "start", "end", "startend", "text", "other" (comment, doctype, pi, ...)
    raw: str  # the input's characters, as written
    tag: str = ""
    attrs: list[tuple[str, str | None]] = field(default_factory=list)


class _Lexer(HTMLParser):
    """html.parser reporting where each construct starts; the raw text of each is the
    input from its start to the next one's, so the constructs give back the input."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=False)
        self._lines = [0]
        for m in re.finditer("\n", text):
            self._lines.append(m.end())
        self.starts: list[tuple[int, str, str, list]] = []

    def _mark(self, kind: str, tag: str = "", attrs: list | None = None) -> None:
        line, col = self.getpos()
        self.starts.append((self._lines[line - 1] + col, kind, tag, attrs or []))

    def handle_starttag(self, tag, attrs):
        self._mark("start", tag, attrs)

    def handle_startendtag(self, tag, attrs):
        self._mark("startend", tag, attrs)

    def handle_endtag(self, tag):
        self._mark("end", tag)

    def handle_data(self, data):
        self._mark("text")

    def handle_entityref(self, name):
        self._mark("text")

    def handle_charref(self, name):
        self._mark("text")

    def handle_comment(self, data):
        self._mark("other")

    def handle_decl(self, decl):
        self._mark("other")

    def handle_pi(self, data):
        self._mark("other")

    def unknown_decl(self, data):
        self._mark("other")


def parse(text: str) -> list[Construct]:
    """The constructs of ``text`` in order; their ``raw`` joined is ``text``. Adjacent text
    (data and entities) is one construct."""
    lexer = _Lexer(text)
    lexer.feed(text)
    lexer.close()
    starts = sorted({s[0]: s for s in lexer.starts}.values())  # one construct per position
    if not starts or starts[0][0] != 0:
        starts.insert(0, (0, "text", "", []))
    out: list[Construct] = []
    for n, (pos, kind, tag, attrs) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(text)
        raw = text[pos:end]
        if not raw:
            continue
        if kind in ("start", "startend", "end") and not raw.startswith("<"):
            kind = "text"  # never happens with a correct parser; text is never taken for a tag
        if kind == "text" and out and out[-1].kind == "text":
            out[-1].raw += raw
        else:
            out.append(Construct(kind, raw, tag, attrs))
    return out


def untranslatable(c: Construct) -> bool:
    """An element left as written with all it holds (module docstring)."""
    if c.tag in UNTOUCHED:
        return True
    attrs = dict(c.attrs)
    return (attrs.get("translate") or "").strip().lower() == "no" or "notranslate" in (attrs.get("class") or "").split()


# -- a segment: inline elements over a text ----------------------------------------------------
@dataclass
class Element:
    """An inline element, or (``void``) something placed between words: a void element, an
    untouched inline element, a stray end tag, a comment. ``start``/``end``: the source
    characters it covers."""
    open: str
    close: str = ""  # "" for void ones and for elements left open in the input
    void: bool = False
    start: int = 0
    end: int = 0
    order: int = 0
    children: list[Element] = field(default_factory=list)
    left_open: bool = False
    tag: str = ""
    # whitespace around it in the source (void ones): kept around it in the output
    space_before: bool = False
    space_after: bool = False
    # placement: target words [first, last) (void: first == last, the gap before word ``first``)
    first: int = 0
    last: int = 0
    # an untouched element standing in the text as this placeholder name ("X1"), and the
    # target word where the model copied it (None: dropped)
    placeholder: str = ""
    landed: int | None = None


class Segment:
    """The text of one segment, whitespace collapsed, and the elements over it."""

    def __init__(self, first_placeholder: int = 1):
        self.first_placeholder = first_placeholder  # above every "X<n>" of the document
        self.placeholders: list[Element] = []
        self.named = 0  # placeholder names given, so that one taken back is never reused
        self.parts: list[str] = []  # the text, unescaped
        self.length = 0
        self.root = Element("", left_open=False)
        self.stack: list[Element] = [self.root]
        self.count = 0
        self.lead = ""  # whitespace before the first element or word, kept as written
        self.trail = ""
        self.raw: list[str] = []  # the segment's input, for a segment kept as written
        self.pending: list[Element] = []  # void ones waiting to learn what follows them
        self.ends_in_text = False  # the segment's last construct is text

    def add_text(self, raw: str) -> None:
        self.raw.append(raw)
        self.ends_in_text = True
        plain = html.unescape(raw)
        if plain:
            for e in self.pending:
                e.space_after = plain[0].isspace()
                if e.placeholder and _GLUE.match(plain):
                    self._unplace(e)
            self.pending = []
        if self.length == 0 and self.count == 0 and not plain.strip():
            self.lead += raw
            return
        if self.length == 0 and self.count == 0:
            stripped = len(plain) - len(plain.lstrip())
            if stripped and raw[:stripped] == plain[:stripped]:
                self.lead += raw[:stripped]
                plain = plain[stripped:]
        plain = re.sub(r"\s+", " ", plain)
        if self.ends_with_space() and plain.startswith(" "):
            plain = plain[1:]
        if self.length == 0 and plain.startswith(" "):
            plain = plain[1:]
        self.parts.append(plain)
        self.length += len(plain)

    def ends_with_space(self) -> bool:
        return next((p[-1] == " " for p in reversed(self.parts) if p), False)

    def _new(self, open_: str, void: bool) -> Element:
        self.count += 1
        self.ends_in_text = False
        e = Element(open_, void=void, start=self.length, end=self.length, order=self.count)
        self.stack[-1].children.append(e)
        return e

    def add_void(self, raw: str, breaks_line: bool = False) -> None:
        """Something placed between words; ``breaks_line`` (br): it separates words as a space does."""
        self.raw.append(raw)
        e = self._new(raw, True)
        e.space_before = self.length == 0 or self.ends_with_space()
        if breaks_line:
            e.space_after = True
            if self.length and not e.space_before:
                self.parts.append(" ")
                self.length += 1
        else:
            self.pending.append(e)

    def add_untouched(self, raw: str) -> None:
        """An untouched inline element with text: a placeholder in the text, unless glued
        to a letter or digit before it (then, and if one follows, ``_unplace``)."""
        before = next((p[-1] for p in reversed(self.parts) if p), " ")
        if _GLUE.match(before):
            self.add_void(raw)
            return
        self.add_void(raw)
        e = self.stack[-1].children[-1]
        e.placeholder = f"X{self.first_placeholder + self.named}"
        self.named += 1
        self.placeholders.append(e)
        self.parts.append(e.placeholder)
        self.length += len(e.placeholder)
        e.end = self.length

    def _unplace(self, e: Element) -> None:
        """Take a placeholder back out of the text (a letter or digit followed it): the
        element becomes a void one where it stood. Nothing was written after it, but
        elements opened or closed there end at the shorter length."""
        if not self.parts or self.parts[-1] != e.placeholder:
            return
        self.parts.pop()
        self.length -= len(e.placeholder)
        self.placeholders.remove(e)
        e.placeholder = ""

        def clamp(el: Element) -> None:
            el.start, el.end = min(el.start, self.length), min(el.end, self.length)
            for c in el.children:
                clamp(c)

        clamp(self.root)

    def names(self) -> list[str]:
        return [e.placeholder for e in self.placeholders]

    def open(self, raw: str, tag: str) -> None:
        self.raw.append(raw)
        e = self._new(raw, False)
        e.tag, e.left_open = tag, True
        self.stack.append(e)

    def close(self, raw: str, tag: str) -> None:
        """An end tag: closes the innermost open element of that name (those opened inside
        it stay open); without one it is placed as a void element."""
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                self.raw.append(raw)
                self.ends_in_text = False
                e = self.stack[depth]
                e.close, e.left_open = raw, False
                for inner in self.stack[depth:]:
                    inner.end = self.length
                del self.stack[depth:]
                return
        self.add_void(raw)

    def text(self) -> str:
        return "".join(self.parts).rstrip(" ")

    def finish(self) -> None:
        """Elements left open end with the segment; whitespace ending the segment's last
        text is kept as written."""
        for e in self.stack[1:]:
            e.end = self.length
        self.root.end = self.length
        last = self.raw[-1] if self.ends_in_text else ""
        tail = last[len(last.rstrip()):]
        if self.length and tail:
            self.trail = tail


# -- words -------------------------------------------------------------------------------
def words(text: str, offset: int = 0, names: list[str] | None = None) -> list[tuple[str, int, int]]:
    """(word, start, end) of each word of ``text`` (WORD), offsets shifted by ``offset``;
    each of the placeholder ``names`` a word of its own, whatever it is glued to ("d'X1")."""
    found = [(m.group(), m.start() + offset, m.end() + offset) for m in WORD.finditer(text)]
    if not names:
        return found
    name = _names_pattern(names)
    out = []
    for word, start, end in found:
        pos = 0
        for m in name.finditer(word):
            out += [(piece, start + a, start + b) for piece, a, b in
                    ((word[pos:m.start()], pos, m.start()), (m.group(), m.start(), m.end())) if piece]
            pos = m.end()
        if word[pos:]:
            out.append((word[pos:], start + pos, end))
    return out


def _names_pattern(names: list[str]) -> re.Pattern:
    """The placeholder names as the model may copy them (any case), as whole names."""
    return re.compile(r"(?<![^\W_])(?:" + "|".join(map(re.escape, names)) + r")(?![^\W_])", re.IGNORECASE)


def has_letter(text: str, names: list[str] | None = None) -> bool:
    """A letter in ``text`` outside the placeholder ``names``: what is worth translating."""
    return bool(LETTER.search(_names_pattern(names).sub(" ", text) if names else text))


def sentences_with_offsets(text: str) -> list[tuple[str, int]]:
    """The sentences of ``text`` (text.split_sentences) and where each starts in it; the
    whole text as one if they cannot be found in it in order."""
    out, pos = [], 0
    for s in split_sentences(text):
        at = text.find(s, pos)
        if at < 0:
            return [(text, 0)] if text.strip() else []
        out.append((s, at))
        pos = at + len(s)
    return out


def monotone_links(n_source: int, n_target: int) -> Links:
    """Each source word linked to the target word at the same relative position: the
    placement's fallback for a model without an alignment head."""
    if not n_source or not n_target:
        return set()
    return {(i, min(n_target - 1, int((i + 0.5) * n_target / n_source))) for i in range(n_source)}


# -- placement ---------------------------------------------------------------------------------
def is_punctuation(word: str) -> bool:
    """A word of WORD that is one visible character other than a letter or digit."""
    return not re.search(r"\w", word)


def words_with_words(links: Links, source_words: list[tuple[str, int, int]],
                     target_words: list[tuple[str, int, int]]) -> Links:
    """The links that join two words or two punctuation marks: a tag over words never ends
    up on a comma alone because an aligner linked a word to it (measured on the Hansards
    trial: bench/markup.py)."""
    return {(i, j) for i, j in links if is_punctuation(source_words[i][0]) == is_punctuation(target_words[j][0])}


# A source word's targets more than this many words apart are groups of their own, and only
# one is kept when something says which (far_links_dropped). Chosen on the Hansards trial and
# the Golden Collection: 3 and 4 improved every reading on both, 1 and 2 cost the Golden
# Collection 3-5 points of exact match (bench/README.md, markup section).
FAR = 4


def far_links_dropped(links: Links, punctuation: set[int] | frozenset[int] = frozenset()) -> Links:
    """The links without a source word's far-off extra targets: where a word's targets fall
    into groups more than FAR words apart, the group kept is the one holding a target no
    other source word links to, else the one nearest the targets of its nearest linked
    neighbours on each side; the others are dropped (kept when nothing tells them apart).
    A stray link drew a tag over everything between ("very safe <b>country</b>" ->
    "<b>ciel de vivre en toute sécurité dans notre pays</b>" for "pays"); a tag's words
    that the translation really moves apart are different words, and keep their links.
    Distances count words, not the ``punctuation`` target words: French negation ("not" ->
    "n ' en sommes pas") is one word's targets 3 words apart."""
    aligned: dict[int, list[int]] = {}
    sources_of: dict[int, set[int]] = {}
    for i, j in links:
        aligned.setdefault(i, []).append(j)
        sources_of.setdefault(j, set()).add(i)
    out = set(links)
    for i, js in aligned.items():
        js = sorted(js)
        groups = [[js[0]]]
        for j in js[1:]:
            if sum(k not in punctuation for k in range(groups[-1][-1] + 1, j + 1)) > FAR:
                groups.append([j])
            else:
                groups[-1].append(j)
        if len(groups) == 1:
            continue
        before = [x for x in aligned if x < i]
        after = [x for x in aligned if x > i]
        anchors = ([max(aligned[max(before)])] if before else []) + ([min(aligned[min(after)])] if after else [])

        def rank(group: list[int]) -> tuple[bool, int]:
            exclusive = any(sources_of[j] == {i} for j in group)
            return exclusive, -min((min(abs(a - group[0]), abs(a - group[-1])) for a in anchors), default=0)

        ranked = sorted(groups, key=rank, reverse=True)
        if rank(ranked[0]) != rank(ranked[1]):
            out -= {(i, j) for group in ranked[1:] for j in group}
    return out


def place(root: Element, source_words: list[tuple[str, int, int]], n_target: int, links: Links,
          target_words: list[str] | None = None) -> None:
    """Give every element under ``root`` its target words (``first``, ``last``) from the
    links (source word, target word): nested inside its parent, not overlapping its
    siblings. An element over words none of which is linked takes its share of the target
    words (``target_words``: their text, to tell punctuation) that stand unlinked between
    the targets of the linked source words around it ("legal <b>for</b> all" -> "légal ,
    <b>à</b> toutes"; unlinked_between); with none there, it stands in the gap before the
    target word the source words around it say. A word's far-off extra targets are dropped first
    (far_links_dropped)."""
    punctuation = {k for k, w in enumerate(target_words or []) if is_punctuation(w)}
    links = far_links_dropped(links, punctuation)
    aligned: dict[int, list[int]] = {}
    for i, j in links:
        aligned.setdefault(i, []).append(j)
    linked_targets = {j for _, j in links}

    def targets(e: Element) -> list[int]:
        return [j for i, (_, s, t) in enumerate(source_words) if s < e.end and e.start < t for j in aligned.get(i, [])]

    def gap_at(pos: int) -> int:
        """The gap (before target word k) for source character ``pos``: after the target
        words of the nearest aligned source word before it (a word that begins before
        ``pos`` is before it: a void element inside a word follows the word), else before
        those of the nearest aligned word after it."""
        if not any(t > pos for _, _, t in source_words):
            return n_target
        before = [i for i, (_, s, _) in enumerate(source_words) if s < pos and i in aligned]
        if before:
            return max(aligned[before[-1]]) + 1
        after = [i for i, (_, s, _) in enumerate(source_words) if s >= pos and i in aligned]
        return min(aligned[after[0]]) if after else 0

    def unlinked_between(e: Element) -> list[int]:
        """For ``e`` over source words none of which is linked: the unlinked target words
        (not punctuation) between the targets of the linked source words before and after
        it, shared out by position among the unlinked source words between those two, as
        monotone_links shares a sentence ("subject to rules <b>of</b> prudence" ->
        "respectant les règles <b>de</b> prudence", where "subject to rules of" has no link);
        one run of them, the first, if the share is cut by a linked word."""
        own = [i for i, (_, s, t) in enumerate(source_words) if s < e.end and e.start < t]
        if not own:
            return []
        before = [i for i in aligned if i < own[0]]
        after = [i for i in aligned if i > own[-1]]
        first = max(aligned[max(before)]) + 1 if before else 0
        end = min(aligned[min(after)]) if after else n_target
        free = [k for k in range(first, end) if k not in linked_targets and k not in punctuation]
        stretch = [i for i in range(max(before) + 1 if before else 0, min(after) if after else len(source_words))
                   if not is_punctuation(source_words[i][0])]
        mine = [n for n, i in enumerate(stretch) if i in own]
        if not free or not mine:
            return []
        a = mine[0] * len(free) // len(stretch)
        b = max(a + 1, -(-(mine[-1] + 1) * len(free) // len(stretch)))
        run = [free[a]]
        for k in free[a + 1: b]:
            if k != run[-1] + 1:
                break
            run.append(k)
        return run

    def resolve(parent: Element) -> None:
        lo, hi = parent.first, parent.last
        wanted = []
        for c in parent.children:
            js = [c.landed] if c.placeholder and c.landed is not None else \
                [] if c.void else (targets(c) or unlinked_between(c))
            if js:
                a, b = min(js), max(js) + 1
            else:
                a = b = gap_at(c.start)
            a, b = min(max(a, lo), hi), min(max(b, lo), hi)
            wanted.append((a, b, c))
        # siblings in the order of their target words, input order on ties
        wanted.sort(key=lambda w: (w[0], w[1] > w[0], w[2].order))
        parent.children = [c for _, _, c in wanted]  # rendered in this order
        cursor = lo
        for a, b, c in wanted:
            if c.left_open:  # no end tag: it runs to its parent's end
                b = hi
            a = max(a, cursor)
            b = max(b, a)
            c.first, c.last = a, b
            cursor = b
            resolve(c)

    root.first, root.last = 0, n_target
    resolve(root)


def render(root: Element, target: str, target_words: list[tuple[str, int, int]], hidden: set[int] | None = None) -> str:
    """``target`` with the placed elements; the gaps between words (whitespace) stay outside
    the elements that begin or end there. ``hidden``: target words never written (copies of
    placeholders), nor the gap before them; a placeholder's element stands on its word."""
    out: list[str] = []
    gaps_done: set[int] = set()
    hidden = hidden or set()

    def gap(k: int) -> None:
        if k not in gaps_done:
            gaps_done.add(k)
            if 0 < k < len(target_words):
                out.append(target[target_words[k - 1][2]: target_words[k][1]])

    def word(k: int) -> None:
        if k in hidden:
            return
        gap(k)
        _, start, end = target_words[k]
        out.append(html.escape(target[start:end], quote=False))

    def emit(e: Element) -> None:
        k = e.first
        for c in e.children:
            while k < c.first:
                word(k)
                k += 1
            if c.placeholder and c.first < c.last:  # on its placeholder's word, in its place
                gap(c.first)
                out.append(c.open)
            elif c.first == c.last:  # on no word: in the gap, as the source had it spaced
                at_end = c.first == e.last and e.first < e.last  # stays inside its parent's last word
                if c.space_before and not at_end:
                    gap(c.first)
                out.append(_raw_elements(c))
                if c.space_before and c.space_after and 0 < c.first < len(target_words) and not at_end:
                    out.append(" ")
            else:
                gap(c.first)
                out.append(c.open)
                emit(c)
                out.append(c.close)
            k = max(k, c.last)
        while k < e.last:
            word(k)
            k += 1

    emit(root)
    return "".join(out)


def _raw_elements(e: Element) -> str:
    """An element placed on no word, with its children (also on no word) inside it."""
    return e.open + "".join(_raw_elements(c) for c in e.children) + e.close


# -- the document ----------------------------------------------------------------------------
def _chunks(text: str) -> list[str | Segment]:
    """The document as raw strings (kept as written) and segments (translated)."""
    out: list[str | Segment] = []
    first = free_placeholder(html.unescape(text))  # placeholder names the document never writes
    segment = Segment(first)

    def end_segment() -> None:
        nonlocal segment
        if segment.raw:
            segment.finish()
            out.append(segment)
        segment = Segment(first)

    constructs = parse(text)
    k = 0
    while k < len(constructs):
        c = constructs[k]
        if c.kind in ("start", "startend") and untranslatable(c):
            raw, k = _skip_element(constructs, k, inline=c.tag in INLINE | UNTOUCHED_INLINE | INLINE_VOID)
            if c.tag in INLINE | UNTOUCHED_INLINE | INLINE_VOID:
                if c.tag not in INLINE_VOID and any(p.kind == "text" and html.unescape(p.raw).strip()
                                                    for p in parse(raw)):
                    segment.add_untouched(raw)
                else:
                    segment.add_void(raw)
            else:
                end_segment()
                out.append(raw)
            continue
        k += 1
        if c.kind == "text":
            segment.add_text(c.raw)
        elif c.kind == "other":
            segment.add_void(c.raw)
        elif c.tag in INLINE_VOID or (c.kind == "startend" and c.tag in INLINE):
            segment.add_void(c.raw, breaks_line=c.tag == "br")
        elif c.tag in INLINE:
            if c.kind == "start":
                segment.open(c.raw, c.tag)
            else:
                segment.close(c.raw, c.tag)
        else:  # a block, or a tag we do not know: a segment ends here
            end_segment()
            out.append(c.raw)
    end_segment()
    return out


def _skip_element(constructs: list[Construct], k: int, inline: bool) -> tuple[str, int]:
    """The raw text of the element starting at ``k`` with all it holds, and the index after
    it: up to its matching end tag; an inline one also ends before a block tag; one never
    closed runs to the end."""
    first = constructs[k]
    if first.kind == "startend" or first.tag in VOID:
        return first.raw, k + 1
    depth, parts, n = 0, [], k
    while n < len(constructs):
        c = constructs[n]
        tag = c.kind in ("start", "end", "startend")
        if inline and n > k and tag and c.tag not in INLINE | UNTOUCHED_INLINE | INLINE_VOID:
            break
        # <p>, <li>...: their end tag may be left out; the next one, or a parent's end, ends them
        if first.tag in OPTIONAL_END and depth == 1 and n > k and (
                (c.kind == "start" and c.tag == first.tag) or (c.kind == "end" and c.tag not in INLINE | {first.tag})):
            break
        parts.append(c.raw)
        n += 1
        if c.tag == first.tag and c.kind == "start":
            depth += 1
        elif c.tag == first.tag and c.kind == "end":
            depth -= 1
            if depth == 0:
                break
    return "".join(parts), n


MAX_INLINE_DEPTH = 100  # inline elements inside each other; placement recurses once per level


def refuse_deep_inline(documents: list[str], limit: int = MAX_INLINE_DEPTH) -> None:
    """InputError for a document whose inline elements nest deeper than ``limit``: placement
    recurses once per level (1,000 levels exhaust Python's stack), and no page written by a
    person nests 100 deep. An element left open counts until its segment ends, as it is
    kept open."""
    for document in documents:
        depth = 0
        for c in parse(document):
            if c.kind == "start":
                depth = depth + 1 if c.tag in INLINE else 0
            elif c.kind == "end":
                depth = max(depth - 1, 0) if c.tag in INLINE else 0
            if depth > limit:
                raise InputError(f"inline elements nested over {limit} deep (max_inline_depth)")


def translate_html(documents: list[str], translate: TranslateFn, align: AlignFn | None) -> list[str]:
    """Each HTML document translated (module docstring). ``translate``: sentences in,
    translations out, in order (one call for all the documents' sentences); ``align``:
    (source words, target words) pairs in, links (source word, target word) out, one set
    per pair; None, or a pair given no link, places by relative position (monotone_links).
    InputError, before anything is translated, for inline elements nested past
    MAX_INLINE_DEPTH (refuse_deep_inline)."""
    refuse_deep_inline(documents)
    chunked = [_chunks(doc) for doc in documents]
    jobs = []  # (segment, text, [(sentence, offset)])
    for chunks in chunked:
        for c in chunks:
            if isinstance(c, Segment):
                text = c.text()
                if has_letter(text, c.names()):
                    jobs.append((c, text, sentences_with_offsets(text)))
    # a sentence with no letter outside its placeholders ("X1.") is kept as it is
    sentences = [s for seg, _, ss in jobs for s, _ in ss if has_letter(s, seg.names())]
    translated = iter(translate(sentences) if sentences else [])
    pairs, layout = [], []
    for seg, text, ss in jobs:
        src_words, tgt_words, spans, target = [], [], [], ""
        names = seg.names()
        for s, at in ss:
            t = next(translated) if has_letter(s, names) else s
            if names:
                t = without_placeholder_debris(t, s, names)
            if target and t:
                target += " "
            sw, tw = words(s, at, names), words(t, len(target), names)
            spans.append((len(src_words), len(tgt_words), len(pairs)))
            pairs.append(([w for w, _, _ in sw], [w for w, _, _ in tw]))
            src_words += sw
            tgt_words += tw
            target += t
        layout.append((seg, text, target, src_words, tgt_words, spans))
    found = align(pairs) if (align is not None and pairs) else [set() for _ in pairs]
    # a pair the aligner gives no link (none given, or too long for the model): by position
    found = [links or monotone_links(len(s), len(t)) for links, (s, t) in zip(found, pairs)]
    rendered: dict[int, str] = {}
    for seg, text, target, src_words, tgt_words, spans in layout:
        links: Links = set()
        for i0, j0, p in spans:
            links |= {(i0 + i, j0 + j) for i, j in found[p]}
        links = words_with_words(links, src_words, tgt_words)
        links, hidden = _land_placeholders(seg, src_words, tgt_words, links)
        place(seg.root, src_words, len(tgt_words), links, [w for w, _, _ in tgt_words])
        rendered[id(seg)] = seg.lead + render(seg.root, target, tgt_words, hidden) + seg.trail
    out = []
    for chunks in chunked:
        out.append("".join(c if isinstance(c, str) else rendered.get(id(c), "".join(c.raw)) for c in chunks))
    return out


# "XX", "X1014": what is left of mangled names (a bare "X" may be a word: "rayon X")
_DEBRIS = re.compile(r"(?<![^\W_])(?:X\d+|XX+\d*)(?![^\W_])")


def without_placeholder_debris(translation: str, source: str, names: list[str]) -> str:
    """``translation`` of ``source`` with the placeholder ``names`` the model mangled put
    right where it can be told, and what is left of the others taken out. The shipped
    models copy one or two placeholders well but mangle a sentence dense with them
    ("X1 (X2 or X3, optional X4, X5, X6 ..." -> "... X7 (X), X4), X, X1014) ou X X14)",
    docs/serving.md rendered, 2026-12-06):

    * a run written without an X ("X1+X2" -> "X1+2"): text.repair_placeholder_runs;
    * a placeholder written as its bare number ("(X2, whose" -> "(2, dont"), where the
      source text never writes that number: the number is the placeholder;
    * "XX" and "X<digits>" that are no name of the sentence and not in the source text:
      removed (the element whose name was lost is placed by the alignment, as a
      dropped one is)."""
    named = [n for n in names if re.search(rf"(?<![^\W_]){n}(?![^\W_])", source, re.IGNORECASE)]
    translation = repair_placeholder_runs(translation, source, named) if len(named) > 1 else translation
    text = _names_pattern(names).sub(" ", source)  # the source without its placeholders
    for name in named:
        if re.search(rf"(?<![^\W_]){name}(?![^\W_])", translation, re.IGNORECASE):
            continue
        bare = rf"(?<![\w.,]){name[1:]}(?![\w]|[.,]\d)"
        # only a number the source text never writes: else which one is the name is a guess
        if re.search(bare, translation) and not re.search(bare, text):
            translation = re.sub(bare, name, translation, count=1)
    upper = {n.upper() for n in names}
    kept = {m.upper() for m in re.findall(_DEBRIS.pattern, text, re.IGNORECASE)}
    cleaned = _DEBRIS.sub(lambda m: m.group(0) if m.group(0).upper() in upper | kept else "", translation)
    if cleaned == translation:
        return translation
    # the gaps left closed up; other spaces (French punctuation's no-break ones) as written
    return re.sub(r" {2,}", " ", cleaned).strip(" ")


def _land_placeholders(seg: Segment, src_words: list[tuple[str, int, int]], tgt_words: list[tuple[str, int, int]],
                       links: Links) -> tuple[Links, set[int]]:
    """Each placeholder element's ``landed`` target word (the first copy of its name), the
    links with each placeholder joined to its copy alone (so that an element around it
    takes that word too) and a dropped one linked to nothing, and the target words that
    are copies of placeholders (never written as text)."""
    if not seg.placeholders:
        return links, set()
    copies: dict[str, list[int]] = {}
    for k, (w, _, _) in enumerate(tgt_words):
        copies.setdefault(w.upper(), []).append(k)
    for e in seg.placeholders:
        e.landed = copies.get(e.placeholder, [None])[0]
        sources = {i for i, (w, s, _) in enumerate(src_words) if s == e.start and w == e.placeholder}
        links = {(i, j) for i, j in links if i not in sources and j != e.landed}
        links |= {(i, e.landed) for i in sources if e.landed is not None}
    hidden = {k for e in seg.placeholders for k in copies.get(e.placeholder, [])}
    return links, hidden


def plain_text(document: str) -> str:
    """The text that ``translate_html`` would translate, segments joined by newlines (for
    language detection)."""
    segments = [c for c in _chunks(document) if isinstance(c, Segment) and has_letter(c.text(), c.names())]
    return "\n".join(" ".join(_names_pattern(c.names()).sub(" ", c.text()).split()) if c.names() else c.text()
                     for c in segments)


def looks_like_html(text: str) -> bool:
    """Whether ``text`` holds HTML markup: a tag or an entity (for inputs named neither way)."""
    return bool(re.search(r"<(?:[a-zA-Z][\w-]*[\s/>]|/[a-zA-Z]|!--)|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);", text))
