"""Fuzz pass over crossattn.documents (issue 29, item 6): mutated copies of a valid file of
each type through translate_document with a fast fake translator, each under a time limit.

Each outcome is counted: translated (an archive into a readable zip of the same members,
its changed XML well-formed), refused (DocumentError in one line, the 400 of the server),
other (another exception, or a broken output: a bug), hang (past the time limit). The last
two must be 0. Also measured: the time and memory of refusing a 1 GiB archive bomb of
each type, its zip headers honest or lying (``bomb_memory``).

    python bench/fuzz_documents.py                  # 300 mutations per type, results/fuzz_documents.json
    python bench/fuzz_documents.py --per-type 20    # a quick pass

Needs the test extra (python-docx, python-pptx). The samples are generated here
(python-docx and python-pptx for .docx/.pptx, the XML written out for .odt/.odp/.epub)
and shared with tests/test_documents.py. Mutations: byte flips, insertions and
deletions, truncation, inline elements nested 50 to 3,000 deep, and for archives the same
inside one member (recompressed, so the
zip stays readable and the XML parser is what gets fuzzed), a member dropped, or a member
duplicated under another name.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import random
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crossattn.documents import DocumentError, DocumentLimits, translate_document  # noqa: E402
from crossattn.markup import translate_html  # noqa: E402


def upper(texts: list[str]) -> list[str]:
    """The fake translator: every text in capitals (instant, and visibly 'translated')."""
    return [t.upper() for t in texts]


def upper_html(documents: list[str]) -> list[str]:
    """HTML 'translated' by ``upper``, the tags placed by markup.py (by position: no aligner)."""
    return translate_html(documents, upper, None)


# -- samples ---------------------------------------------------------------------------
def make_docx(paragraphs: list[list[tuple[str, dict]]] | None = None) -> bytes:
    """A .docx (python-docx's template, a real Word document); each paragraph a list of
    (text, {"bold": True, ...}) runs."""
    import docx

    paragraphs = paragraphs or [[("Hello ", {}), ("bold", {"bold": True}), (" world.", {})],
                                [("The second paragraph has ", {}), ("italic words", {"italic": True}), (".", {})]]
    document = docx.Document()
    for runs in paragraphs:
        p = document.add_paragraph()
        for text, props in runs:
            run = p.add_run(text)
            for name, value in props.items():
                setattr(run, name, value)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    import pptx

    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "A short title"
    p = slide.placeholders[1].text_frame.paragraphs[0]
    for text, bold in (("Some ", False), ("bold", True), (" text here.", False)):
        run = p.add_run()
        run.text = text
        run.font.bold = bold or None
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


ODF_MIMETYPES = {".odt": "application/vnd.oasis.opendocument.text",
                 ".odp": "application/vnd.oasis.opendocument.presentation"}
ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
          'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
          'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
          'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
          'xmlns:xlink="http://www.w3.org/1999/xlink" office:version="1.3"')
ODF_STYLES = ('<office:automatic-styles><style:style style:name="T1" style:family="text">'
              '<style:text-properties fo:font-weight="bold"/></style:style></office:automatic-styles>')


def make_odf(ext: str = ".odt", paragraph: str | None = None) -> bytes:
    """An OpenDocument text or presentation, written out (mimetype first and stored, as the
    standard asks); ``paragraph``: the first paragraph's inner XML."""
    paragraph = paragraph or 'Hello <text:span text:style-name="T1">bold</text:span> world.'
    paragraphs = (f'<text:p>{paragraph}</text:p><text:p>See <text:a xlink:href="https://example.org">the '
                  f'site</text:a>.<text:tab/>Done.</text:p>')
    if ext == ".odt":
        body = f"<office:text>{paragraphs}</office:text>"
    else:
        body = (f'<office:presentation><draw:page draw:name="p1"><draw:frame><draw:text-box>{paragraphs}'
                f'</draw:text-box></draw:frame></draw:page></office:presentation>')
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS}>{ODF_STYLES}'
               f'<office:body>{body}</office:body></office:document-content>')
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
                f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{ODF_MIMETYPES[ext]}"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                '</manifest:manifest>')
    return zip_of([("mimetype", ODF_MIMETYPES[ext].encode(), zipfile.ZIP_STORED),
                   ("content.xml", content.encode(), zipfile.ZIP_DEFLATED),
                   ("META-INF/manifest.xml", manifest.encode(), zipfile.ZIP_DEFLATED)])


def make_epub(chapter_body: str | None = None) -> bytes:
    chapter_body = chapter_body or "<h1>Chapter one</h1><p>It was a <em>dark</em> night.</p>"
    chapter = ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml">'
               f'<head><title>One</title></head><body>{chapter_body}</body></html>')
    container = ('<?xml version="1.0"?><container version="1.0" '
                 'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                 '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                 '</rootfiles></container>')
    opf = ('<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
           'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
           '<dc:identifier id="id">urn:uuid:1</dc:identifier><dc:title>A book</dc:title><dc:language>en</dc:language>'
           '</metadata><manifest><item id="c1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/>'
           '<item id="css" href="style.css" media-type="text/css"/></manifest>'
           '<spine><itemref idref="c1"/></spine></package>')
    return zip_of([("mimetype", b"application/epub+zip", zipfile.ZIP_STORED),
                   ("META-INF/container.xml", container.encode(), zipfile.ZIP_DEFLATED),
                   ("OEBPS/content.opf", opf.encode(), zipfile.ZIP_DEFLATED),
                   ("OEBPS/text/ch1.xhtml", chapter.encode(), zipfile.ZIP_DEFLATED),
                   ("OEBPS/style.css", b"p { margin: 0 }\n", zipfile.ZIP_DEFLATED)])


SRT = """1
00:00:01,000 --> 00:00:03,500
Where are you going
this late at night?

2
00:00:04,000 --> 00:00:06,000
- Home.
- Already?

3
00:00:07,250 --> 00:00:09,000
<i>I told you so.</i>
"""

PO = r'''# A catalogue.
msgid ""
msgstr ""
"Project-Id-Version: demo 1.0\n"
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\n"

#: app.py:10
#, python-format
msgid "Hello %(name)s, you have %d new messages."
msgstr ""

#: app.py:12
#, python-brace-format
msgid "Open {0} in {name}"
msgstr ""

#: app.py:20
msgid "One file"
msgid_plural "%d files"
msgstr[0] ""
msgstr[1] ""

msgid "Already done"
msgstr "Déjà fait"
'''

HTML = ('<!DOCTYPE html><html><head><title>A page</title></head><body><p>View the complete range of '
        '<em>drawer systems</em> here!</p><p>Second <a href="/x">link</a> line.</p></body></html>')


def zip_of(members: list[tuple[str, bytes, int]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data, compression in members:
            z.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data, compress_type=compression)
    return out.getvalue()


def with_members(data: bytes, changed: dict[str, bytes | Callable[[bytes], bytes]]) -> bytes:
    """The archive ``data`` with members added or replaced (a function: applied to the member)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {i.filename: (z.read(i), i.compress_type) for i in z.infolist()}
    for name, new in changed.items():
        old = members.get(name, (b"", zipfile.ZIP_DEFLATED))
        members[name] = (new(old[0]) if callable(new) else new, old[1])
    return zip_of([(name, content, compression) for name, (content, compression) in members.items()])


# the parts that a plain sample lacks: a content control in a paragraph, master-page headers,
# an EPUB 2 table of contents and an EPUB 3 nav document
DOCX_CONTROL = (b'<w:sdt><w:sdtPr><w:alias w:val="Name"/><w:id w:val="7"/></w:sdtPr><w:sdtContent>'
                b'<w:r><w:rPr><w:b/></w:rPr><w:t>bold</w:t></w:r></w:sdtContent></w:sdt>')
ODF_MASTER_STYLES = ('<?xml version="1.0" encoding="UTF-8"?><office:document-styles ' + ODF_NS + '>'
                     '<office:master-styles><style:master-page style:name="Standard"><style:header><text:p>The '
                     '<text:span text:style-name="T1">annual</text:span> report</text:p></style:header>'
                     '</style:master-page></office:master-styles></office:document-styles>').encode()
EPUB_NCX = (b'<?xml version="1.0" encoding="UTF-8"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" '
            b'version="2005-1"><docTitle><text>A book</text></docTitle><navMap><navPoint id="n1" playOrder="1">'
            b'<navLabel><text>Chapter one</text></navLabel><content src="text/ch1.xhtml"/></navPoint></navMap></ncx>')
EPUB_NAV = (b'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
            b'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head><body><nav epub:type="toc">'
            b'<ol><li><a href="text/ch1.xhtml">Chapter <em>one</em></a></li></ol></nav></body></html>')


def samples() -> dict[str, bytes]:
    """One valid file of each type, by extension, with the parts each format translates."""
    docx = with_members(make_docx(), {"word/document.xml": lambda xml: xml.replace(
        b"<w:r><w:rPr><w:b/></w:rPr><w:t>bold</w:t></w:r>", DOCX_CONTROL, 1)})
    epub = with_members(make_epub(), {
        "OEBPS/content.opf": lambda opf: opf.replace(
            b"</manifest>", b'<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/><item id="nav" '
                            b'href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/></manifest>'),
        "OEBPS/toc.ncx": EPUB_NCX, "OEBPS/nav.xhtml": EPUB_NAV})
    return {".txt": b"A first line.\n\n  An indented second line.\n", ".html": HTML.encode(),
            ".docx": docx, ".pptx": make_pptx(), ".odt": with_members(make_odf(".odt"), {"styles.xml": ODF_MASTER_STYLES}),
            ".odp": make_odf(".odp"), ".epub": epub, ".srt": SRT.encode(), ".po": PO.encode()}


# -- mutations -------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.choice(["flip", "flip", "insert", "delete", "truncate", "duplicate", "nest"])
    if not b:
        return bytes([rng.randrange(256)])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == "insert":
        at = rng.randrange(len(b) + 1)
        b[at:at] = bytes(rng.choice([rng.randrange(256), ord("<"), ord("&"), ord("\n"), ord(">")])
                         for _ in range(rng.randint(1, 16)))
    elif kind == "delete":
        at = rng.randrange(len(b))
        del b[at:at + rng.randint(1, 64)]
    elif kind == "truncate":
        del b[rng.randrange(len(b)):]
    elif kind == "nest":  # inline elements (or ODF spans) nested deep, closed or not
        tag = rng.choice([b"b", b"span", b"a", b"text:span", b"w:hyperlink"])
        depth = rng.choice([50, 300, 3000])
        at = rng.randrange(len(b) + 1)
        b[at:at] = (b"<" + tag + b">") * depth + b"x y" + (b"</" + tag + b">") * (depth if rng.random() < 0.5 else 0)
    else:
        at, n = rng.randrange(len(b)), rng.randint(1, 200)
        b[at:at] = b[at:at + n]
    return bytes(b)


def mutate_archive(data: bytes, rng: random.Random) -> bytes:
    """A mutation inside the archive: one member's bytes mutated (recompressed, so the zip
    stays readable), dropped, or copied under a second name."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = [(i.filename, z.read(i), i.compress_type) for i in z.infolist()]
    k = rng.randrange(len(members))
    kind = rng.choice(["member", "member", "member", "drop", "copy"])
    if kind == "member":
        name, content, compression = members[k]
        members[k] = (name, mutate_bytes(content, rng), compression)
    elif kind == "drop":
        del members[k]
    else:
        members.append((members[k][0] + "x", members[k][1], members[k][2]))
    return zip_of(members)


def mutant(ext: str, data: bytes, rng: random.Random) -> bytes:
    if ext in ARCHIVES and rng.random() < 0.7:
        return mutate_archive(data, rng)
    return mutate_bytes(data, rng)


# -- bombs: the memory a refusal costs --------------------------------------------------
def bomb(ext: str, expanded: int, lie: bool = False) -> bytes:
    """The sample of ``ext`` with its main XML part replaced by ``expanded`` bytes of spaces
    (about 1000 times smaller deflated); ``lie``: its zip headers declare a size just under
    the default limits (ratio and total), the most a lie can claim unrefused."""
    part = {".docx": "word/document.xml", ".pptx": "ppt/slides/slide1.xml", ".odt": "content.xml",
            ".odp": "content.xml", ".epub": "OEBPS/text/ch1.xhtml"}[ext]
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(samples()[ext])) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != part:
                dst.writestr(info, src.read(info))
                continue
            info = zipfile.ZipInfo(part, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with dst.open(info, "w", force_zip64=True) as f:
                chunk = b" " * (1 << 20)
                for _ in range(expanded >> 20):
                    f.write(chunk)
    data = bytearray(out.getvalue())
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        limits = DocumentLimits()
        others = sum(i.file_size for i in z.infolist() if i.filename != part)
        declared = int(0.99 * min(limits.max_compression_ratio * z.getinfo(part).compress_size,
                                  limits.max_total_bytes - others))
    if lie:  # the local header and the central directory entry of the part declare ``declared`` bytes
        name = part.encode()
        for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
            at = 0
            while (at := data.find(signature, at + 1)) >= 0:
                name_at = at + (30 if signature == b"PK\x03\x04" else 46)
                if data[name_at:name_at + len(name)] == name:
                    data[at + size_at:at + size_at + 4] = declared.to_bytes(4, "little")
                    break
    return bytes(data)


def _bomb_child(ext: str, expanded: int, lie: bool, queue) -> None:
    import resource
    import tracemalloc

    data = bomb(ext, expanded, lie)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    result = outcome(ext, data)
    seconds = time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"file_bytes": len(data), "expands_to": expanded, "headers_lie": lie, "outcome": result,
               "seconds": round(seconds, 3), "traced_peak_mb": round(traced_peak / 2**20, 1),
               "rss_growth_mb": round((after - before) / 1024, 1)})


def bomb_memory(expanded: int = 1 << 30) -> dict:
    """For each archive type, a bomb (``expanded`` bytes of XML, about 1 MB deflated, its
    headers honest or lying), refused in a fresh process: the time, the peak of Python's
    allocations while refusing (tracemalloc), and the growth of the peak RSS (the bomb's
    own bytes, made before the measurement, excluded)."""
    ctx = multiprocessing.get_context("fork")
    results = {}
    for ext in ARCHIVES:
        for lie in (False, True):
            queue = ctx.Queue()
            child = ctx.Process(target=_bomb_child, args=(ext, expanded, lie, queue))
            child.start()
            results[f"{ext}{' lying headers' if lie else ''}"] = queue.get(timeout=600)
            child.join()
    return results


# -- the pass --------------------------------------------------------------------------
ARCHIVES = (".docx", ".pptx", ".odt", ".odp", ".epub")


def lost_tags(source: bytes, out: bytes) -> str | None:
    """An HTML document's tags that the translation does not have exactly once each, None
    when all are there (markup.py's promise: every input tag once, as written)."""
    from crossattn.markup import parse

    def tags(data: bytes) -> Counter:
        text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
        return Counter(c.raw for c in parse(text) if c.kind in ("start", "end", "startend"))

    before, after = tags(source), tags(out)
    return None if before == after else f"tags changed: {sorted((before - after) + (after - before))[:3]}"


def broken_output(ext: str, source: bytes, out: bytes) -> str | None:
    """What is wrong with a translated file, None when nothing: an HTML page keeps every
    tag once; an archive must be a readable zip of the same members, each XML part it
    changed well-formed where it was, each XHTML document with every tag once."""
    if ext in (".html", ".htm"):
        try:
            source.decode("utf-8")
        except UnicodeDecodeError:
            return None  # decoded another way than utf-8: compared in the archives' documents only
        return lost_tags(source, out)
    if ext not in ARCHIVES:
        return None
    from lxml import etree

    def well_formed(xml: bytes) -> bool:
        try:
            etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
        except etree.XMLSyntaxError:
            return False
        return True

    try:
        with zipfile.ZipFile(io.BytesIO(source)) as a, zipfile.ZipFile(io.BytesIO(out)) as b:
            if a.namelist() != b.namelist():
                return "members changed"
            for name in b.namelist():
                old, new = a.read(name), b.read(name)
                if new != old and name.endswith((".xml", ".xhtml", ".ncx")) and well_formed(old) and not well_formed(new):
                    return f"{name} no longer well-formed"
                if new != old and name.endswith((".xhtml", ".html")) and (lost := lost_tags(old, new)):
                    return f"{name}: {lost}"
    except Exception as e:  # noqa: BLE001 - what the check reports
        return f"{type(e).__name__}: {str(e)[:100]}"
    return None


def outcome(ext: str, data: bytes) -> str:
    try:
        out = translate_document(data, "fuzz" + ext, upper, upper_html)
    except DocumentError as e:
        if "\n" in str(e):
            return "other: DocumentError of several lines"
        # "not a valid .x file (...)": a format library's own exception, turned into a
        # refusal by translate_document's last resort rather than by a check of ours
        return f"refused_library: {str(e)[:160]}" if f"not a valid {ext} file" in str(e) else "refused"
    except Exception as e:  # noqa: BLE001 - what the pass counts
        return f"other: {type(e).__name__}: {str(e)[:200]}"
    problem = broken_output(ext, data, out)
    return f"other: translated into a broken archive ({problem})" if problem else "translated"


def _worker(ext: str, data: bytes, queue) -> None:
    queue.put(outcome(ext, data))


def run_one(ext: str, data: bytes, time_limit: float) -> str:
    """The outcome in a child process, "hang" past ``time_limit`` seconds."""
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_worker, args=(ext, data, queue))
    child.start()
    child.join(time_limit)
    if child.is_alive():
        child.kill()
        child.join()
        return "hang"
    return queue.get() if not queue.empty() else f"other: crashed (exit code {child.exitcode})"


def fuzz(per_type: int, seed: int, time_limit: float | None = None) -> dict:
    """Counts per type; ``time_limit`` runs each file in a child process (hangs counted),
    None runs them in this process (the bounded test)."""
    results = {}
    for ext, data in samples().items():
        rng = random.Random(f"{seed}{ext}")
        counts: Counter = Counter()
        examples: dict[str, int] = {}
        for _ in range(per_type):
            copy = mutant(ext, data, rng)
            result = run_one(ext, copy, time_limit) if time_limit else outcome(ext, copy)
            key = result.split(":")[0] if result.split(":")[0] in ("translated", "refused", "refused_library", "hang") \
                else "other"
            counts[key] += 1
            if key in ("other", "refused_library"):
                examples[result] = examples.get(result, 0) + 1
        results[ext] = {"translated": counts["translated"], "refused": counts["refused"] + counts["refused_library"],
                        "refused_library": counts["refused_library"], "other": counts["other"],
                        "hang": counts["hang"], "examples": examples}
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-type", type=int, default=300)
    ap.add_argument("--seed", type=int, default=29)
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per file before it counts as a hang")
    ap.add_argument("--bomb-gb", type=float, default=1.0, help="how far the bombs expand (GiB)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "fuzz_documents.json"))
    args = ap.parse_args()
    bombs = bomb_memory(int(args.bomb_gb * 2**30))
    for name, b in bombs.items():
        print(f"bomb {name:22} {b['file_bytes']:>9} bytes -> {b['expands_to']} {b['outcome']:9} {b['seconds']:6.2f} s  "
              f"traced peak {b['traced_peak_mb']} MB, RSS +{b['rss_growth_mb']} MB")
    start = time.time()
    results = fuzz(args.per_type, args.seed, args.time_limit)
    total = {k: sum(r[k] for r in results.values())
             for k in ("translated", "refused", "refused_library", "other", "hang")}
    from crossattn.translator import cpu_model_name

    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{cpu_model_name()} ({platform.machine()})", "load_average": os.getloadavg()[0],
              "cpus": multiprocessing.cpu_count(), "per_type": args.per_type, "seed": args.seed,
              "time_limit_s": args.time_limit, "seconds": round(time.time() - start, 1), "total": total,
              "by_type": results, "bombs": bombs}
    from crossattn.atomic import write_json_atomic

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    print(json.dumps({"total": total, "seconds": report["seconds"]}))
    for ext, r in results.items():
        print(f"{ext:6} translated {r['translated']:4} refused {r['refused']:4} (library {r['refused_library']:3}) "
              f"other {r['other']} hang {r['hang']}"
              + (f"  {r['examples']}" if r["examples"] else ""))
    sys.exit(1 if total["other"] or total["hang"] or any(b["outcome"] != "refused" for b in bombs.values()) else 0)


if __name__ == "__main__":
    main()
