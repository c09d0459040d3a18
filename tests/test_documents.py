"""Documents in, documents out (crossattn.documents): each format with a document generated
here, hostile files (archive bombs, XML entities, paths), malformed ones, a bounded fuzz
pass, the shipped model on a .docx, and the CLI.

Most tests translate with a fake (every text in capitals; HTML through markup.py with the
tags placed by position), so they are fast and exact."""

from __future__ import annotations

import io
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import load_bench_module, run_cli
from crossattn.documents import SUPPORTED_EXTENSIONS, DocumentError, DocumentLimits, translate_document

pytest.importorskip("docx")
pytest.importorskip("pptx")

fuzz_documents = load_bench_module("fuzz_documents")
upper, upper_html, zip_of = fuzz_documents.upper, fuzz_documents.upper_html, fuzz_documents.zip_of

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def translate(data: bytes, name: str, limits: DocumentLimits = DocumentLimits()) -> bytes:
    return translate_document(data, name, upper, upper_html, limits)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def refused(data: bytes, name: str, limits: DocumentLimits = DocumentLimits()) -> str:
    with pytest.raises(DocumentError) as e:
        translate(data, name, limits)
    message = str(e.value)
    assert "\n" not in message and message.startswith(name), message
    return message


# -- each format -------------------------------------------------------------------------
def test_every_extension_has_a_sample():
    assert set(SUPPORTED_EXTENSIONS) - {".htm", ".pot"} == set(fuzz_documents.samples())


def test_txt_keeps_lines_indentation_and_endings():
    out = translate("Hello world.\r\n\n  Indented line\n1234\n".encode("utf-8-sig"), "a.txt")
    assert out == "HELLO WORLD.\r\n\n  INDENTED LINE\n1234\n".encode("utf-8-sig")


def test_html_keeps_every_tag():
    out = translate(fuzz_documents.HTML.encode(), "page.html").decode()
    assert "VIEW THE COMPLETE RANGE OF <em>DRAWER SYSTEMS</em> HERE!" in out
    assert re.findall(r"<[^>]+>", out) == re.findall(r"<[^>]+>", fuzz_documents.HTML)


def test_docx_bold_run_mid_sentence_holds_the_translated_word():
    import docx

    source = fuzz_documents.make_docx([[("Hello ", {}), ("bold", {"bold": True}), (" world.", {})],
                                       [("Tab\there, ", {}), ("a link-like ", {"italic": True}), ("end.", {})]])
    out = docx.Document(io.BytesIO(translate(source, "report.docx")))
    runs = [[(r.text, bool(r.bold), bool(r.italic)) for r in p.runs] for p in out.paragraphs]
    assert runs[0] == [("HELLO ", False, False), ("BOLD", True, False), (" WORLD.", False, False)]
    assert "".join(t for t, _, _ in runs[1]) == "TAB\tHERE, A LINK-LIKE END."
    assert [t for t, _, italic in runs[1] if italic] == ["A LINK-LIKE"]
    # every part this module does not translate leaves byte for byte
    before, after = members(source), members(translate(source, "report.docx"))
    assert list(before) == list(after)
    assert all(before[n] == after[n] for n in before if n != "word/document.xml")


def test_paragraph_in_one_style_is_translated_as_plain_text():
    """Nothing to place: no HTML, so no alignment is computed for it."""
    plain, marked = [], []
    source = fuzz_documents.make_docx([[("One style ", {"bold": True}), ("throughout.", {"bold": True})],
                                       [("Mixed ", {}), ("styles", {"italic": True}), (".", {})]])
    translate_document(source, "a.docx", lambda t: plain.extend(t) or upper(t),
                       lambda t: marked.extend(t) or upper_html(t))
    assert plain == ["One style throughout."]
    assert marked == ['Mixed <span data-k="0">styles</span>.']


def test_docx_hyperlink_and_picture_kept_once():
    """A link (w:hyperlink around a run) and a non-text run (a field, a picture) each come
    back exactly once, in a paragraph translated whole."""
    from docx import Document

    document = Document(io.BytesIO(fuzz_documents.make_docx([[("placeholder", {})]])))
    body = document.element.body
    p = body.find(f"{W}p")
    p.getparent().replace(p, _xml(
        f'<w:p xmlns:w="{W[1:-1]}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<w:r><w:t xml:space="preserve">See </w:t></w:r><w:hyperlink r:id="rId99"><w:r><w:rPr><w:u w:val="single"/>'
        '</w:rPr><w:t>the site</w:t></w:r></w:hyperlink><w:r><w:t xml:space="preserve"> now</w:t></w:r>'
        '<w:bookmarkStart w:id="0" w:name="b"/><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        '<w:r><w:t>.</w:t></w:r></w:p>'))
    buffer = io.BytesIO()
    document.save(buffer)
    xml = members(translate(buffer.getvalue(), "links.docx"))["word/document.xml"].decode()
    paragraph = re.search(r"<w:p\b.*?</w:p>", xml, re.S).group(0)
    for tag in ("<w:hyperlink ", "<w:bookmarkStart ", "<w:fldChar "):
        assert paragraph.count(tag) == 1, tag
    assert re.search(r'<w:hyperlink r:id="rId99"><w:r><w:rPr><w:u w:val="single"/></w:rPr><w:t[^>]*>THE SITE</w:t>',
                     paragraph)
    assert "".join(re.findall(r"<w:t[^>]*>([^<]*)</w:t>", paragraph)) == "SEE THE SITE NOW."


def _xml(text: str):
    from lxml import etree

    return etree.fromstring(text)


def test_pptx_runs_and_title():
    import pptx

    out = pptx.Presentation(io.BytesIO(translate(fuzz_documents.make_pptx(), "slides.pptx")))
    shapes = out.slides[0].shapes
    assert shapes.title.text == "A SHORT TITLE"
    runs = [(r.text, bool(r.font.bold)) for r in shapes.placeholders[1].text_frame.paragraphs[0].runs]
    assert runs == [("SOME ", False), ("BOLD", True), (" TEXT HERE.", False)]


@pytest.mark.parametrize("ext", [".odt", ".odp"])
def test_odf_spans_links_and_tabs(ext):
    source = fuzz_documents.make_odf(ext)
    out = members(translate(source, "doc" + ext))
    content = out["content.xml"].decode()
    assert 'HELLO <text:span text:style-name="T1">BOLD</text:span> WORLD.' in content
    assert '<text:a xlink:href="https://example.org">THE SITE</text:a>.<text:tab/>DONE.' in content
    assert list(out) == list(members(source)) and out["mimetype"] == members(source)["mimetype"]
    with zipfile.ZipFile(io.BytesIO(translate(source, "doc" + ext))) as z:
        assert z.infolist()[0].filename == "mimetype" and z.infolist()[0].compress_type == zipfile.ZIP_STORED


def test_epub_translates_content_documents_only():
    source = fuzz_documents.make_epub()
    before, after = members(source), members(translate(source, "book.epub"))
    chapter = after["OEBPS/text/ch1.xhtml"].decode()
    assert "<h1>CHAPTER ONE</h1><p>IT WAS A <em>DARK</em> NIGHT.</p>" in chapter
    assert all(before[n] == after[n] for n in before if n != "OEBPS/text/ch1.xhtml")


def test_epub_chapter_named_with_a_space_is_translated():
    """The package lists its documents by URL: "ch%201.xhtml" is the member "ch 1.xhtml"."""
    renamed = [("OEBPS/text/ch 1.xhtml" if n == "OEBPS/text/ch1.xhtml" else n,
                c.replace(b'href="text/ch1.xhtml"', b'href="text/ch%201.xhtml"'), zipfile.ZIP_DEFLATED)
               for n, c in members(fuzz_documents.make_epub()).items()]
    chapter = members(translate(zip_of(renamed), "book.epub"))["OEBPS/text/ch 1.xhtml"].decode()
    assert "<p>IT WAS A <em>DARK</em> NIGHT.</p>" in chapter


def test_docx_content_controls_in_the_body_in_a_paragraph_and_in_a_table_are_translated():
    """w:sdt (content controls): block-level ones in the body, cell-level ones in a table,
    and run-level ones inside a paragraph, whose properties (w:sdtPr) stay as they were."""
    from docx import Document

    document = Document(io.BytesIO(fuzz_documents.make_docx([[("First paragraph.", {})]])))
    end = document.element.body[-1]  # w:sectPr stays last
    for el in _xml(f'<root xmlns:w="{W[1:-1]}">'
                   '<w:sdt><w:sdtPr><w:alias w:val="Block"/><w:id w:val="1"/></w:sdtPr><w:sdtContent>'
                   '<w:p><w:r><w:t>Block control text.</w:t></w:r></w:p></w:sdtContent></w:sdt>'
                   '<w:p><w:r><w:t xml:space="preserve">Your name is </w:t></w:r><w:sdt><w:sdtPr><w:alias w:val="Name"/>'
                   '<w:id w:val="2"/></w:sdtPr><w:sdtEndPr><w:rPr><w:b/></w:rPr></w:sdtEndPr><w:sdtContent><w:r><w:rPr>'
                   '<w:b/></w:rPr><w:t>written here</w:t></w:r></w:sdtContent></w:sdt><w:r><w:t xml:space="preserve"> today.'
                   '</w:t></w:r></w:p>'
                   '<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Plain cell.</w:t></w:r></w:p></w:tc><w:sdt><w:sdtPr><w:id w:val="3"/>'
                   '</w:sdtPr><w:sdtContent><w:tc><w:p><w:r><w:t>Cell control.</w:t></w:r></w:p></w:tc></w:sdtContent>'
                   '</w:sdt></w:tr></w:tbl></root>'):
        end.addprevious(el)
    buffer = io.BytesIO()
    document.save(buffer)
    xml = members(translate(buffer.getvalue(), "controls.docx"))["word/document.xml"].decode()
    texts = "".join(re.findall(r"<w:t[^>]*>([^<]*)</w:t>", xml))
    assert texts == "FIRST PARAGRAPH.BLOCK CONTROL TEXT.YOUR NAME IS WRITTEN HERE TODAY.PLAIN CELL.CELL CONTROL."
    assert ('<w:sdt><w:sdtPr><w:alias w:val="Name"/><w:id w:val="2"/></w:sdtPr><w:sdtEndPr><w:rPr><w:b/></w:rPr>'
            '</w:sdtEndPr><w:sdtContent><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">WRITTEN HERE</w:t>') in xml
    assert xml.count("<w:sdt>") == 3 and xml.count("<w:sdtContent>") == 3
    Document(io.BytesIO(translate(buffer.getvalue(), "controls.docx")))  # still a Word document


def test_odf_headers_and_footers_in_the_master_pages_are_translated():
    """.odt: headers and footers are paragraphs of styles.xml's master pages; .odp: the
    footer and header texts are declared in content.xml (presentation:footer-decl)."""
    styles = ('<?xml version="1.0" encoding="UTF-8"?><office:document-styles ' + fuzz_documents.ODF_NS + '>'
              '<office:styles><style:style style:name="Standard" style:family="paragraph"/></office:styles>'
              '<office:master-styles><style:master-page style:name="Standard"><style:header><text:p>The '
              '<text:span text:style-name="T1">annual</text:span> report</text:p></style:header>'
              '<style:footer-left><text:p>Page <text:page-number>1</text:page-number> of the draft</text:p>'
              '</style:footer-left></style:master-page></office:master-styles></office:document-styles>')
    source = fuzz_documents.make_odf(".odt")
    with_styles = zip_of([(n, c, zipfile.ZIP_STORED if n == "mimetype" else zipfile.ZIP_DEFLATED)
                          for n, c in members(source).items()] + [("styles.xml", styles.encode(), zipfile.ZIP_DEFLATED)])
    out = members(translate(with_styles, "report.odt"))
    assert ('<style:header><text:p>THE <text:span text:style-name="T1">ANNUAL</text:span> REPORT</text:p>'
            in out["styles.xml"].decode())
    assert "<text:p>PAGE <text:page-number>1</text:page-number> OF THE DRAFT</text:p>" in out["styles.xml"].decode()
    assert '<style:style style:name="Standard" style:family="paragraph"/>' in out["styles.xml"].decode()
    slides = members(fuzz_documents.make_odf(".odp"))
    slides["content.xml"] = slides["content.xml"].replace(
        b"<office:presentation>", b'<office:presentation><presentation:footer-decl presentation:name="ftr1">'
        b'Company &amp; partners</presentation:footer-decl><presentation:header-decl presentation:name="hdr1">'
        b'Draft</presentation:header-decl>')
    out = members(translate(zip_of([(n, c, zipfile.ZIP_STORED if n == "mimetype" else zipfile.ZIP_DEFLATED)
                                    for n, c in slides.items()]), "slides.odp"))["content.xml"].decode()
    assert '<presentation:footer-decl presentation:name="ftr1">COMPANY &amp; PARTNERS</presentation:footer-decl>' in out
    assert '<presentation:header-decl presentation:name="hdr1">DRAFT</presentation:header-decl>' in out


def test_epub_navigation_labels_are_translated():
    """EPUB2's toc.ncx: each navigation label (navMap, pageList); the book's title stays as
    the package's metadata has it. EPUB3's nav document is an XHTML content document."""
    ncx = ('<?xml version="1.0" encoding="UTF-8"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
           '<head><meta name="dtb:uid" content="urn:uuid:1"/></head><docTitle><text>A book</text></docTitle>'
           '<navMap><navPoint id="n1" playOrder="1"><navLabel><text>Chapter one</text></navLabel>'
           '<content src="text/ch1.xhtml"/><navPoint id="n2" playOrder="2"><navLabel><text>The dark night</text>'
           '</navLabel><content src="text/ch1.xhtml#night"/></navPoint></navPoint></navMap>'
           '<pageList><pageTarget id="p1" type="normal" value="1"><navLabel><text>1</text></navLabel>'
           '<content src="text/ch1.xhtml"/></pageTarget></pageList></ncx>')
    nav = ('<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
           'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head><body>'
           '<nav epub:type="toc"><h1>Contents</h1><ol><li><a href="text/ch1.xhtml">Chapter one</a></li></ol></nav>'
           '</body></html>')
    book = members(fuzz_documents.make_epub())
    book["OEBPS/content.opf"] = book["OEBPS/content.opf"].replace(
        b"</manifest>", b'<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
                        b'<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
                        b"</manifest>").replace(b"<spine>", b'<spine toc="ncx">')
    book["OEBPS/toc.ncx"], book["OEBPS/nav.xhtml"] = ncx.encode(), nav.encode()
    out = members(translate(zip_of([(n, c, zipfile.ZIP_STORED if n == "mimetype" else zipfile.ZIP_DEFLATED)
                                    for n, c in book.items()]), "book.epub"))
    toc = out["OEBPS/toc.ncx"].decode()
    assert re.findall(r"<navLabel><text>([^<]*)</text>", toc) == ["CHAPTER ONE", "THE DARK NIGHT", "1"]
    assert "<docTitle><text>A book</text></docTitle>" in toc and '<content src="text/ch1.xhtml#night"/>' in toc
    assert '<li><a href="text/ch1.xhtml">CHAPTER ONE</a></li>' in out["OEBPS/nav.xhtml"].decode()


def test_srt_keeps_numbering_and_timings_and_translates_a_subtitle_whole():
    import srt

    seen = []

    def recording(texts):
        seen.extend(texts)
        return upper(texts)

    out = translate_document(fuzz_documents.SRT.encode(), "film.srt", recording, upper_html).decode()
    before, after = list(srt.parse(fuzz_documents.SRT)), list(srt.parse(out))
    assert [(s.index, s.start, s.end) for s in before] == [(s.index, s.start, s.end) for s in after]
    assert "Where are you going this late at night?" in seen  # the two lines as one text
    assert "Home." in seen and "Already?" in seen  # two speakers: each turn alone, without its dash
    assert after[0].content == "WHERE ARE YOU GOING\nTHIS LATE AT NIGHT?"
    assert after[1].content == "- HOME.\n- ALREADY?"  # two speakers: each line its own
    assert after[2].content == "<i>I TOLD YOU SO.</i>"


def test_srt_long_line_is_split():
    source = b"1\n00:00:01,000 --> 00:00:02,000\nThis single line is long enough to need two lines on screen.\n"
    content = translate(source, "a.srt").decode().split("\n")[2:4]
    assert all(0 < len(line) <= 42 for line in content) and " ".join(content).startswith("THIS SINGLE")


def test_po_fills_msgstr_fuzzy_with_placeholders_and_plurals():
    import polib

    seen = []

    def recording(texts):
        seen.extend(texts)
        return upper(texts)

    out = polib.pofile(translate_document(fuzz_documents.PO.encode(), "app.po", recording, upper_html).decode())
    by_id = {e.msgid: e for e in out}
    hello = by_id["Hello %(name)s, you have %d new messages."]
    assert hello.msgstr == "HELLO %(name)s, YOU HAVE %d NEW MESSAGES." and "fuzzy" in hello.flags
    assert not any("%" in s for s in seen)  # the placeholders were never given to the translator
    assert by_id["Open {0} in {name}"].msgstr == "OPEN {0} IN {name}"
    plural = by_id["One file"]
    assert plural.msgid_plural == "%d files" and plural.msgstr_plural == {0: "ONE FILE", 1: "%d FILES"}
    assert by_id["Already done"].msgstr == "Déjà fait" and "fuzzy" not in by_id["Already done"].flags


def test_po_placeholder_the_translator_drops_is_kept():
    """A model that loses a placeholder: it is put back (at the end), never lost."""
    po = b'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Delete %s now"\nmsgstr ""\n'
    dropping = lambda texts: [re.sub(r"X\d+ ?", "", t).upper() for t in texts]  # noqa: E731
    out = translate_document(po, "x.pot", dropping, upper_html).decode()
    assert 'msgstr "DELETE NOW %s"' in out


def test_po_placeholders_the_translator_mangles_in_a_run_come_back_whole():
    """"%s+%d" reaches the model as "X1+X2"; a model that writes "X1+2" gets both back and
    no stray "2" (before: "%s+2 ... %d")."""
    po = b'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Sum %s+%d now"\nmsgstr ""\n'
    mangling = lambda texts: [t.replace("+X2", "+2").upper() for t in texts]  # noqa: E731
    out = translate_document(po, "x.pot", mangling, upper_html).decode()
    assert 'msgstr "SUM %s+%d NOW"' in out


# -- hostile files ---------------------------------------------------------------------
ARCHIVES = [".docx", ".pptx", ".odt", ".odp", ".epub"]
XML_PART = {".docx": "word/document.xml", ".pptx": "ppt/slides/slide1.xml", ".odt": "content.xml",
            ".odp": "content.xml", ".epub": "OEBPS/text/ch1.xhtml"}


def replaced(data: bytes, name: str, content: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        parts = [(i.filename, z.read(i), i.compress_type) for i in z.infolist()]
    return zip_of([(n, content if n == name else c, t) for n, c, t in parts])


@pytest.mark.parametrize("ext", ARCHIVES)
def test_bomb_one_member_huge_expansion(ext):
    bomb = replaced(fuzz_documents.samples()[ext], XML_PART[ext], b"<a>" + b" " * (30 << 20) + b"</a>")
    assert len(bomb) < 1 << 20
    assert "max_" in refused(bomb, "bomb" + ext)


@pytest.mark.parametrize("ext", ARCHIVES)
def test_bomb_many_members(ext):
    sample = fuzz_documents.samples()[ext]
    with zipfile.ZipFile(io.BytesIO(sample)) as z:
        parts = [(i.filename, z.read(i), i.compress_type) for i in z.infolist()]
    parts += [(f"junk/{k}.xml", b"", zipfile.ZIP_STORED) for k in range(DocumentLimits().max_members)]
    assert "max_members" in refused(zip_of(parts), "many" + ext)


def test_bomb_whose_header_lies_is_cut_off_at_its_cap():
    """A member whose zip headers declare 1000 bytes but that inflates to 50 MB: refused,
    the read stopping at the declared size (zipfile) or the member's cap (ours), whichever
    comes first."""
    content = b"\0" * (50 << 20)
    data = bytearray(zip_of([("word/document.xml", content, zipfile.ZIP_DEFLATED)]))
    small = (1000).to_bytes(4, "little")
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        at = data.index(signature)
        data[at + offset:at + offset + 4] = small
    message = refused(bytes(data), "liar.docx")
    assert "word/document.xml" in message and re.search("max_compression_ratio|header says|CRC", message)


def test_bomb_of_bare_directory_entries_refused_before_zipfile_lists_them():
    """An archive of nothing but central directory entries (46 bytes each, no member data):
    zipfile would make an object for each before the count is checked (80 MB for 10 MB of
    them); it is refused on the entries' signatures first."""
    import struct
    import tracemalloc

    n = 50_000
    directory = b"".join(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)
                         + b"x" for _ in range(n))
    data = directory + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(directory), 0, 0)
    tracemalloc.start()
    try:
        message = refused(data, "entries.docx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "max_members" in message
    assert peak < 4 * len(data), peak  # the upload and a copy or two of it, not an object per entry


def test_bomb_overall_ratio_of_many_small_members():
    limits = DocumentLimits(ratio_checked_above=1 << 16)
    parts = [(f"word/part{k}.xml", b"\0" * 60000, zipfile.ZIP_DEFLATED) for k in range(100)]
    assert "max_compression_ratio" in refused(zip_of(parts), "many.docx", limits)


def test_oversized_input_and_total():
    assert "max_input_bytes" in refused(b"x" * 2000, "big.txt", DocumentLimits(max_input_bytes=1000))
    import random

    noise = random.Random(1).randbytes(300_000)  # incompressible: only the total can refuse it
    data = zip_of([(f"word/media/image{k}.bin", noise, zipfile.ZIP_DEFLATED) for k in range(4)])
    assert "max_total_bytes" in refused(data, "photos.docx", DocumentLimits(max_total_bytes=1_000_000))


SECRET = "TOP-SECRET-CONTENT-42"


def _entity_documents(secret_path: str) -> dict[str, tuple[str, bytes]]:
    """An XML part of each type that declares an external entity reading a local file."""
    doctype = f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret_path}">]>'
    samples = fuzz_documents.samples()
    out = {}
    for ext in ARCHIVES:
        part = members(samples[ext])[XML_PART[ext]].decode()
        declaration, rest = part.split("?>", 1) if part.startswith("<?xml") else ("", part)
        rest = re.sub(r"<!DOCTYPE[^>]*>", "", rest)
        rest = rest.replace(">Hello ", ">Hello &xxe; ").replace("dark", "&xxe;").replace("Some ", "Some &xxe;")
        out[ext] = (XML_PART[ext], (declaration + "?>" if declaration else "").encode() + doctype.encode()
                    + rest.encode())
    return out


@pytest.mark.parametrize("ext", ARCHIVES + [".html"])
def test_external_entity_never_read(ext, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    if ext == ".html":
        data = f'<!DOCTYPE html [<!ENTITY xxe SYSTEM "file://{secret}">]><p>Hello &xxe;</p>'.encode()
    else:
        part, content = _entity_documents(str(secret))[ext]
        data = replaced(fuzz_documents.samples()[ext], part, content)
    assert "entities" in refused(data, "xxe" + ext)


def test_external_dtd_entity_is_not_fetched(tmp_path):
    """An external DTD a document names is never loaded, from a file or over HTTP (a local
    server counts its requests): with an entity of it used, the file is refused in one
    line; with none used, it is translated, and the DTD's entity is still not in it."""
    secret = tmp_path / "secret.dtd"
    secret.write_text(f'<!ENTITY xxe "{SECRET}">')
    hits: list[str] = []

    class DTD(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            hits.append(self.path)
            body = secret.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), DTD)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for system_id in (f"file://{secret}", f"http://127.0.0.1:{server.server_port}/secret.dtd"):
            def docx(text: str) -> bytes:
                content = (f'<?xml version="1.0"?><!DOCTYPE w:document SYSTEM "{system_id}"><w:document '
                           f'xmlns:w="{W[1:-1]}"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body>'
                           '</w:document>')
                return replaced(fuzz_documents.make_docx(), "word/document.xml", content.encode())

            assert "entities" in refused(docx("Hi &xxe;"), "dtd.docx")
            out = members(translate(docx("Hi there"), "dtd.docx"))["word/document.xml"]
            assert b"HI THERE" in out and SECRET.encode() not in out and SECRET.upper().encode() not in out
    finally:
        server.shutdown()
    assert hits == []


def test_billion_laughs_refused_fast():
    lol = '<!ENTITY lol "lol">' + "".join(f'<!ENTITY lol{k} "{("&lol" + str(k - 1) + ";") * 10}">'
                                           for k in range(1, 10)).replace("&lol0;", "&lol;")
    content = (f'<?xml version="1.0"?><!DOCTYPE w:document [{lol}]><w:document xmlns:w="{W[1:-1]}"><w:body><w:p>'
               '<w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>')
    data = replaced(fuzz_documents.make_docx(), "word/document.xml", content.encode())
    assert "entities" in refused(data, "laughs.docx")
    # an entity declared in a part passed through untranslated is refused just the same
    data = replaced(fuzz_documents.make_docx(), "word/styles.xml", content.encode())
    assert "entities" in refused(data, "laughs.docx")


@pytest.mark.parametrize("ext", [".html", ".epub", ".srt", ".odt", ".docx"])
def test_inline_elements_nested_too_deep_refused(ext):
    """markup.py places inline elements recursively: 2,000 nested spans would exhaust
    Python's stack, so nesting past max_inline_depth is refused first."""
    depth = 2000 if ext in (".html", ".epub", ".srt") else 150  # XML parsers stop at 256 levels
    html = "<p>" + "<span>" * depth + "deep text" + "</span>" * depth + "</p>"
    if ext == ".html":
        data = html.encode()
    elif ext == ".epub":
        data = fuzz_documents.make_epub(html)
    elif ext == ".srt":
        data = f"1\n00:00:01,000 --> 00:00:02,000\n{html}\n".encode()
    elif ext == ".odt":
        data = fuzz_documents.make_odf(".odt", "<text:span>" * depth + "deep text" + "</text:span>" * depth)
    else:
        runs = "<w:hyperlink>" * depth + "<w:r><w:t>deep text</w:t></w:r>" + "</w:hyperlink>" * depth
        data = replaced(fuzz_documents.make_docx(), "word/document.xml",
                        f'<w:document xmlns:w="{W[1:-1]}"><w:body><w:p>{runs}</w:p></w:body></w:document>'.encode())
    assert "max_inline_depth" in refused(data, "deep" + ext)


def test_recursion_in_the_translating_function_is_a_refusal():
    def recursing(texts):
        raise RecursionError("maximum recursion depth exceeded")

    assert "nested too deeply" in str(pytest.raises(DocumentError, translate_document, b"<p><b>x</b></p>", "a.html",
                                                    upper, recursing).value)


@pytest.mark.parametrize("name", ["../../evil.xml", "/etc/evil.xml", "word/../../evil.xml", "C:/evil.xml"])
def test_path_traversal_member_refused(name, tmp_path):
    sample = fuzz_documents.make_docx()
    with zipfile.ZipFile(io.BytesIO(sample)) as z:
        parts = [(i.filename, z.read(i), i.compress_type) for i in z.infolist()]
    data = zip_of(parts + [(name, b"<x/>", zipfile.ZIP_DEFLATED)])
    assert "leaves the archive" in refused(data, "paths.docx")


# -- malformed input ---------------------------------------------------------------------
@pytest.mark.parametrize("name, data, reason", [
    ("empty.docx", b"", "empty"),
    ("empty.txt", b"", "empty"),
    ("truncated.docx", None, "zip"),
    ("nobody.docx", "no-document", "word/document.xml"),
    ("broken.srt", b"1\n00:00:01,000 --> 00:0x:02,000\nHello\n\n2\nnonsense\n", "SubRip"),
    ("broken.po", b'msgid "a"\nmsgstr "b"\nmsgid "unterminated\nmsgstr\n', "not"),
    ("latin1.txt", "café".encode("latin-1"), "UTF-8"),
    ("latin1.srt", "1\n00:00:01,000 --> 00:00:02,000\ncafé\n".encode("latin-1"), "UTF-8"),
    ("binary.html", b"\xff\xfe\x00\x81<p>", "UTF-8"),
    ("report.pdf", b"%PDF-1.4", "unsupported"),
    ("noextension", b"hello", "unsupported"),
    ("notazip.pptx", b"PK\x03\x04 this is not a zip", "zip"),
    ("wrongkind.odt", "docx", "content.xml"),
    ("nocontainer.epub", "odt", "container.xml"),
])
def test_malformed_input_is_one_line_refusal(name, data, reason):
    if data is None:
        data = fuzz_documents.make_docx()[:2000]
    elif data == "no-document":
        data = zip_of([(n, c, zipfile.ZIP_DEFLATED) for n, c in members(fuzz_documents.make_docx()).items()
                       if n != "word/document.xml"])
    elif data == "docx":
        data = fuzz_documents.make_docx()
    elif data == "odt":
        data = fuzz_documents.make_odf(".odt")
    assert reason in refused(data, name)


def test_po_whose_content_names_a_file_is_not_read(tmp_path):
    """polib reads a file when given its name: an upload whose bytes are a path must not
    make it read that file."""
    target = tmp_path / "target.po"
    target.write_text(f'msgid "{SECRET}"\nmsgstr ""\n')
    refused(str(target).encode(), "path.po")


def test_translator_errors_pass_through():
    def broken(texts):
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded"):
        translate_document(fuzz_documents.make_docx(), "a.docx", broken, broken)


def test_fuzz_bounded():
    """20 mutations of each type (fixed seed): each translated or refused in one line."""
    results = fuzz_documents.fuzz(20, seed=7)
    assert {ext: (r["other"], r["hang"]) for ext, r in results.items()} == {ext: (0, 0) for ext in results}, results
    assert sum(r["translated"] for r in results.values()) > 0 and sum(r["refused"] for r in results.values()) > 0


# -- the shipped model, and the CLI ------------------------------------------------------
def test_shipped_model_places_bold_on_the_translated_word(shipped_translator):
    import docx

    source = fuzz_documents.make_docx([[("The cat sees the ", {}), ("red", {"bold": True}), (" house.", {})]])
    out = docx.Document(io.BytesIO(shipped_translator.translate_document(source, "cat.docx")))
    runs = [(r.text, bool(r.bold)) for r in out.paragraphs[0].runs]
    assert [t for t, bold in runs if bold] == ["rouge"], runs
    assert "maison" in "".join(t for t, _ in runs)


def test_shipped_model_po_keeps_placeholders(shipped_translator):
    po = (b'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n#, python-format\n'
          b'msgid "Hello %(name)s, you have %d new messages."\nmsgstr ""\n')
    out = shipped_translator.translate_document(po, "app.po").decode()
    msgstr = re.search(r'msgstr "(.*)"\s*\Z', out).group(1)
    assert msgstr.count("%(name)s") == 1 and msgstr.count("%d") == 1 and "messages" in msgstr


def test_cli_docx_in_docx_out_and_corrupt_docx(tmp_path):
    source = tmp_path / "report.docx"
    source.write_bytes(fuzz_documents.make_docx([[("The cat sees the ", {}), ("red", {"bold": True}),
                                                  (" house.", {})]]))
    result = run_cli(["translate", "-i", source, "-o", tmp_path / "rapport.docx", "--device", "cpu"])
    assert result.returncode == 0, result.stderr
    assert "maison" in members((tmp_path / "rapport.docx").read_bytes())["word/document.xml"].decode()
    corrupt = tmp_path / "corrupt.docx"
    corrupt.write_bytes(source.read_bytes()[:1500])
    result = run_cli(["translate", "-i", corrupt, "-o", tmp_path / "out.docx", "--device", "cpu"])
    assert result.returncode != 0 and not (tmp_path / "out.docx").exists()
    assert result.stderr.count("\n") == 1 and "corrupt.docx" in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.docx", "rapport.docx", "report.docx"]
    result = run_cli(["translate", "-i", source, "--device", "cpu"])  # a binary format needs -o
    assert result.returncode != 0 and "-o FILE" in result.stderr and result.stdout == ""


def test_cli_json_with_a_document_is_a_one_line_error(tmp_path):
    """--json gives text lines; a document is written in its own format, so the flag is
    refused before the model loads, not ignored."""
    source = tmp_path / "subs.srt"
    source.write_bytes(b"1\n00:00:01,000 --> 00:00:02,000\nThe cat sleeps.\n")
    result = run_cli(["translate", "--json", "-i", source, "-o", tmp_path / "out.srt", "--device", "cpu"])
    assert result.returncode != 0 and result.stderr.count("\n") == 1 and "--json" in result.stderr, result.stderr
    assert not (tmp_path / "out.srt").exists()
