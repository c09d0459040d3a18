"""Office documents and books: .docx, .pptx (Office Open XML), .odt, .odp (OpenDocument)
and .epub, all zip archives of XML.

Their XML is edited directly with lxml, not through python-docx, python-pptx or odfpy:
those expose a paragraph's runs but not the links, tracked changes and fields around
them (python-docx) or not at all (odfpy, unmaintained since 2020), and they would parse
the parts themselves; here every part goes through the one safe reader and parser
(safety.py), and every part this module does not translate leaves byte for byte as it
came. ebooklib is not used for .epub for the same reason: it rewrites the whole package,
while here only the XHTML content documents change.

Which parts are translated: .docx the body, headers, footers, footnotes, endnotes and
comments, content controls (w:sdt) included wherever they stand; .pptx the slides, their
notes and SmartArt text; .odt/.odp content.xml, the headers and footers of styles.xml's
master pages, and a presentation's declared footer and header texts; .epub the XHTML
content documents the package (OPF) lists (an EPUB3 nav document is one), through
``translate_html``, and an EPUB2 toc.ncx's navigation labels (the book's title in it
stays, as the package's metadata keeps it).
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Callable
from urllib.parse import unquote

from lxml import etree

from ..markup import LETTER, TranslateFn
from .runs import Markup, Span, Void, translate_paragraphs
from .safety import (DocumentLimits, Member, decode_text, encode_text, fail, member_map, parse_xml, read_archive,
                     refuse_entities_in_archive, refuse_entity_declarations, serialize_xml, with_outer_space,
                     write_archive)

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"


def _has_letter(el: etree._Element) -> bool:
    return any(LETTER.search(t) for t in el.itertext())


# -- runs: .docx and .pptx --------------------------------------------------------------
class RunFormat:
    """How one format writes a paragraph's runs: the run element, its properties, its
    text; what in a run separates words (tab, break); elements that wrap runs (a link);
    what stays at the paragraph's start or end."""

    def __init__(self, run: str, props: str, text: str, breaks: set[str], dropped: set[str], wrappers: set[str],
                 first: set[str], last: set[str], preserve_space: bool, paragraph_breaks: frozenset[str] = frozenset(),
                 controls: dict[str, str] | None = None):
        self.run, self.props, self.text = run, props, text
        self.breaks, self.dropped, self.wrappers = breaks, dropped, wrappers
        self.first, self.last, self.preserve_space = first, last, preserve_space
        self.paragraph_breaks = paragraph_breaks  # line breaks that are the paragraph's children, not a run's
        # elements that wrap runs in a content child, beside children of their own that
        # stay as they are (a content control: w:sdt's w:sdtContent beside its w:sdtPr)
        self.controls = controls or {}

    def pieces(self, run: etree._Element) -> list[str | etree._Element] | None:
        """A run's text and its word-separating elements in order; None for a run holding
        anything else (a picture, a field code), which is kept whole between the words."""
        out: list[str | etree._Element] = []
        for child in run:
            if child.tag == self.props or child.tag in self.dropped:
                continue
            if child.tag == self.text:
                out.append(child.text or "")
            elif child.tag in self.breaks:
                out.append(child)
            else:
                return None
        return out

    def key(self, run: etree._Element) -> bytes:
        props = run.find(self.props)
        return b"" if props is None else etree.tostring(props)

    def base_run(self, paragraph: etree._Element) -> etree._Element | None:
        """The run whose properties cover most of the paragraph's text (written untagged)."""
        chars: dict[bytes, int] = {}
        first: dict[bytes, etree._Element] = {}
        for run in paragraph.iter(self.run):
            pieces = self.pieces(run)
            if pieces:
                k = self.key(run)
                chars[k] = chars.get(k, 0) + sum(len(p) for p in pieces if isinstance(p, str))
                first.setdefault(k, run)
        return first[max(chars, key=chars.get)] if chars else None

    def markup(self, paragraph: etree._Element, base: etree._Element | None) -> Markup:
        m = Markup()
        base_key = self.key(base) if base is not None else b""
        self._write(paragraph, m, base_key)
        return m

    def _write(self, container: etree._Element, m: Markup, base_key: bytes) -> None:
        for child in container:
            if child.tag in self.first or child.tag in self.last:
                continue
            if child.tag == self.run and (pieces := self.pieces(child)) is not None:
                tagged = self.key(child) != base_key
                if tagged:
                    m.open(("run", child))
                for p in pieces:
                    if isinstance(p, str):
                        m.text(p)
                    else:
                        m.void(("piece", child, p), breaks_line=True)
                if tagged:
                    m.close()
            elif child.tag in self.paragraph_breaks:
                m.void(("keep", child), breaks_line=True)
            elif child.tag in self.wrappers:
                m.open(("wrap", child))
                self._write(child, m, base_key)
                m.close()
            elif child.tag in self.controls and (content := child.find(self.controls[child.tag])) is not None:
                m.open(("control", child))
                self._write(content, m, base_key)
                m.close()
            else:
                m.void(("keep", child))

    def rebuild(self, paragraph: etree._Element, tree: list, base: etree._Element | None) -> None:
        kept_first = [c for c in paragraph if c.tag in self.first]
        kept_last = [c for c in paragraph if c.tag in self.last]
        for child in list(paragraph):
            paragraph.remove(child)
        for c in kept_first:
            paragraph.append(c)
        self._emit(tree, paragraph, base)
        for c in kept_last:
            paragraph.append(c)

    def _new_run(self, parent: etree._Element, like: etree._Element | None) -> etree._Element:
        run = etree.SubElement(parent, self.run, attrib=dict(like.attrib) if like is not None else None)
        props = like.find(self.props) if like is not None else None
        if props is not None:
            run.append(copy.deepcopy(props))
        return run

    def _emit(self, nodes: list, parent: etree._Element, like: etree._Element | None) -> None:
        for node in nodes:
            if isinstance(node, str):
                if not node:
                    continue
                run = self._new_run(parent, like)
                t = etree.SubElement(run, self.text)
                t.text = node
                if self.preserve_space:
                    t.set(XML_SPACE, "preserve")
            elif isinstance(node, Span):
                kind, el = node.payload[0], node.payload[1]
                if kind == "run":
                    self._emit(node.children, parent, el)
                elif kind == "control":  # its own children as they were, its content now
                    control = etree.SubElement(parent, el.tag, attrib=dict(el.attrib))
                    for child in list(el):
                        if child.tag == self.controls[el.tag]:
                            self._emit(node.children, etree.SubElement(control, child.tag, attrib=dict(child.attrib)),
                                       like)
                        else:
                            control.append(child)
                else:  # a wrapper (a link): its start tag, around what it holds now
                    wrapper = etree.SubElement(parent, el.tag, attrib=dict(el.attrib))
                    self._emit(node.children, wrapper, like)
            elif isinstance(node, Void):
                kind = node.payload[0]
                if kind == "piece":
                    run = self._new_run(parent, node.payload[1])
                    run.append(node.payload[2])
                elif kind == "keep":
                    parent.append(node.payload[1])


DOCX = RunFormat(run=W + "r", props=W + "rPr", text=W + "t", breaks={W + "tab", W + "br", W + "cr"},
                 dropped={W + "lastRenderedPageBreak"},
                 wrappers={W + "hyperlink", W + "ins", W + "smartTag", W + "customXml", W + "fldSimple", W + "dir",
                           W + "bdo"},
                 first={W + "pPr"}, last=set(), preserve_space=True, controls={W + "sdt": W + "sdtContent"})
PPTX = RunFormat(run=A + "r", props=A + "rPr", text=A + "t", breaks=set(), dropped=set(), wrappers=set(),
                 first={A + "pPr"}, last={A + "endParaRPr"}, preserve_space=False,
                 paragraph_breaks=frozenset({A + "br"}))


def translate_run_parts(parts: list[tuple[str, etree._ElementTree]], fmt: RunFormat, paragraph_tag: str,
                        translate: TranslateFn, translate_html: TranslateFn) -> None:
    """Every paragraph of the parts translated in one call, its runs rebuilt in place."""
    jobs = []
    for _, tree in parts:
        for p in tree.iter(paragraph_tag):
            if _has_letter(p):
                base = fmt.base_run(p)
                jobs.append((p, base, fmt.markup(p, base)))
    for (p, base, _), tree in zip(jobs, translate_paragraphs([m for _, _, m in jobs], translate, translate_html)):
        fmt.rebuild(p, tree, base)


def _office(data: bytes, filename: str, limits: DocumentLimits, required: str, kind: str,
            wanted: Callable[[str], bool], translate_parts: Callable[[list], None]) -> bytes:
    members = read_archive(data, filename, limits)
    refuse_entities_in_archive(members, filename)
    if required not in member_map(members):
        raise fail(filename, f"no {required} in the archive (not a {kind})")
    parts = [(m.name, parse_xml(m.data, f"{filename}: {m.name}")) for m in members if wanted(m.name)]
    translate_parts(parts)
    return write_archive(members, {name: serialize_xml(tree) for name, tree in parts})


DOCX_PARTS = re.compile(r"word/(document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml")
PPTX_PARTS = re.compile(r"ppt/(slides/slide\d+|notesSlides/notesSlide\d+|diagrams/data\d+)\.xml")


def translate_docx(data: bytes, filename: str, translate: TranslateFn, translate_html: TranslateFn,
                   limits: DocumentLimits) -> bytes:
    return _office(data, filename, limits, "word/document.xml", "Word document",
                   lambda name: bool(DOCX_PARTS.fullmatch(name)),
                   lambda parts: translate_run_parts(parts, DOCX, W + "p", translate, translate_html))


def translate_pptx(data: bytes, filename: str, translate: TranslateFn, translate_html: TranslateFn,
                   limits: DocumentLimits) -> bytes:
    return _office(data, filename, limits, "ppt/presentation.xml", "PowerPoint presentation",
                   lambda name: bool(PPTX_PARTS.fullmatch(name)),
                   lambda parts: translate_run_parts(parts, PPTX, A + "p", translate, translate_html))


# -- OpenDocument: text and elements mixed, as in HTML ---------------------------------
ODF_WRAPPERS = {TEXT + "span", TEXT + "a", TEXT + "meta", TEXT + "ruby-base"}
ODF_BREAKS = {TEXT + "tab", TEXT + "line-break"}


def _odf_markup(el: etree._Element, m: Markup) -> None:
    m.text(el.text or "")
    for child in el:
        if child.tag in ODF_WRAPPERS:
            m.open(child)
            _odf_markup(child, m)
            m.close()
        elif child.tag == TEXT + "s":  # a run of spaces: one space to the translation
            m.text(" ")
        else:  # a tab or line break separates words; a note, frame, bookmark, field stays between them
            m.void(child, breaks_line=child.tag in ODF_BREAKS)
        m.text(child.tail or "")


def _odf_emit(nodes: list, parent: etree._Element) -> None:
    parent.text = None
    last: etree._Element | None = None
    for node in nodes:
        if isinstance(node, str):
            if last is None:
                parent.text = (parent.text or "") + node
            else:
                last.tail = (last.tail or "") + node
            continue
        if isinstance(node, Span):
            el = etree.SubElement(parent, node.payload.tag, attrib=dict(node.payload.attrib))
            _odf_emit(node.children, el)
        else:
            el = node.payload
            el.tail = None
            parent.append(el)
        last = el


def translate_odf_parts(parts: list[tuple[str, etree._ElementTree]], translate: TranslateFn,
                        translate_html: TranslateFn) -> None:
    jobs = []
    for _, tree in parts:
        for p in tree.iter(TEXT + "p", TEXT + "h"):
            if _has_letter_direct(p):
                m = Markup()
                _odf_markup(p, m)
                jobs.append((p, m))
    for (p, _), tree in zip(jobs, translate_paragraphs([m for _, m in jobs], translate, translate_html)):
        tail = p.tail
        for child in list(p):
            p.remove(child)
        _odf_emit(tree, p)
        p.tail = tail


def _has_letter_direct(p: etree._Element) -> bool:
    """Whether the paragraph's own text (not a note's or a frame's inside it) has a letter."""
    m = Markup()
    _odf_markup(p, m)
    return bool(LETTER.search(re.sub(r"<[^>]*>", "", m.html())))


STYLE = "{urn:oasis:names:tc:opendocument:xmlns:style:1.0}"
OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
PRESENTATION = "{urn:oasis:names:tc:opendocument:xmlns:presentation:1.0}"
DECLARED_TEXTS = (PRESENTATION + "footer-decl", PRESENTATION + "header-decl")


def _translate_odf(parts: list[tuple[str, etree._ElementTree]], translate: TranslateFn,
                   translate_html: TranslateFn) -> None:
    """content.xml's paragraphs, styles.xml's master pages' (headers, footers; nothing
    else there is text a reader sees), and the footer and header texts a presentation
    declares (text alone, no markup), in one call each."""
    texts = [el for name, tree in parts if name == "content.xml" for el in tree.iter(*DECLARED_TEXTS)
             if len(el) == 0 and LETTER.search(el.text or "")]
    masters = [etree.ElementTree(m) for name, tree in parts if name == "styles.xml"
               for m in tree.iter(OFFICE + "master-styles")]
    translate_odf_parts([(name, tree) for name, tree in parts if name == "content.xml"] +
                        [("styles.xml", m) for m in masters], translate, translate_html)
    for el, out in zip(texts, translate([el.text.strip() for el in texts]) if texts else []):
        el.text = with_outer_space(el.text, out)


def translate_odf(data: bytes, filename: str, translate: TranslateFn, translate_html: TranslateFn,
                  limits: DocumentLimits) -> bytes:
    kind = "OpenDocument presentation" if filename.lower().endswith(".odp") else "OpenDocument text"
    return _office(data, filename, limits, "content.xml", kind, lambda name: name in ("content.xml", "styles.xml"),
                   lambda parts: _translate_odf(parts, translate, translate_html))


# -- EPUB: the XHTML content documents through translate_html --------------------------
CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
OPF = "{http://www.idpf.org/2007/opf}"
XHTML_TYPES = {"application/xhtml+xml", "text/html"}
NCX_TYPE = "application/x-dtbncx+xml"
NCX = "{http://www.daisy.org/z3986/2005/ncx/}"


def epub_content_documents(members: dict[str, Member], filename: str, media_types: set[str] = XHTML_TYPES) -> list[str]:
    """The names of the XHTML content documents (or of the items of other
    ``media_types``), from the package document (OPF) that META-INF/container.xml points
    to."""
    if "META-INF/container.xml" not in members:
        raise fail(filename, "no META-INF/container.xml in the archive (not an EPUB book)")
    container = parse_xml(members["META-INF/container.xml"].data, f"{filename}: META-INF/container.xml")
    rootfile = container.find(f".//{CONTAINER}rootfile")
    opf_name = rootfile.get("full-path") if rootfile is not None else None
    if not opf_name or opf_name not in members:
        raise fail(filename, "META-INF/container.xml names no package document in the archive")
    package = parse_xml(members[opf_name].data, f"{filename}: {opf_name}")
    names = []
    for item in package.iter(f"{OPF}item"):
        href = (item.get("href") or "").split("#")[0]
        if item.get("media-type") in media_types and href and "://" not in href:
            # an href is a URL: "chapter%201.xhtml" is the member "chapter 1.xhtml"
            name = posixpath.normpath(posixpath.join(posixpath.dirname(opf_name), unquote(href)))
            if name in members and name not in names:
                names.append(name)
    return names


def _translate_ncx(members: dict[str, Member], filename: str, translate: TranslateFn) -> dict[str, bytes]:
    """Each EPUB2 navigation document (toc.ncx) with its navigation labels translated, all
    in one call: the table of contents a reader shows, the page list and other lists."""
    trees = [(name, parse_xml(members[name].data, f"{filename}: {name}"))
             for name in epub_content_documents(members, filename, {NCX_TYPE})]
    labels = [el for _, tree in trees for label in tree.iter(NCX + "navLabel") for el in label.iter(NCX + "text")
              if len(el) == 0 and LETTER.search(el.text or "")]
    for el, out in zip(labels, translate([el.text.strip() for el in labels]) if labels else []):
        el.text = with_outer_space(el.text, out)
    return {name: serialize_xml(tree) for name, tree in trees}


def translate_epub(data: bytes, filename: str, translate: TranslateFn, translate_html: TranslateFn,
                   limits: DocumentLimits) -> bytes:
    members = read_archive(data, filename, limits)
    refuse_entities_in_archive(members, filename)
    by_name = member_map(members)
    names = epub_content_documents(by_name, filename)
    texts = []
    for name in names:
        # markup.py's parser keeps entity references as written and resolves none; a
        # document that declares entities is refused all the same
        refuse_entity_declarations(by_name[name].data, f"{filename}: {name}")
        text, bom = decode_text(by_name[name].data, f"{filename}: {name}")
        texts.append((text, bom))
    translated = translate_html([t for t, _ in texts]) if texts else []
    return write_archive(members, {**_translate_ncx(by_name, filename, translate),
                                   **{name: encode_text(out, bom) for name, (_, bom), out in zip(names, texts, translated)}})
