"""What every document goes through before a format parser sees it: the limits, the one
zip reader and writer, the one XML parser, text decoding, and the one error type.

Zip archives are read with the standard library's ``zipfile`` (the only zip reader every
format here shares), each member with a hard cap on the bytes it may give, whatever its
header declares. XML is parsed with lxml (well kept, fast, the parser python-docx and
python-pptx use too) configured so that nothing outside the bytes is ever read: no DTD
loaded, no entity resolved, no network; a part that declares entities is refused before
it is parsed.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass

from lxml import etree

from ..errors import InputError
from ..markup import MAX_INLINE_DEPTH, refuse_deep_inline


class DocumentError(InputError):
    """A document that cannot be translated (unsupported, corrupt, over a limit, unsafe),
    in one line that names the file; a CrossattnError and a ValueError, as InputError is."""


@dataclass(frozen=True)
class DocumentLimits:
    """What a document may hold; each limit is named (by its field name) in the error that
    it raises. The defaults take the office documents and books that people write (the
    XML of a .docx compresses 5-20 times, pictures hardly at all: a 20 MiB upload is some
    20-60 MiB unpacked) and refuse archive bombs early: a member is read only until it
    passes its cap, so the memory a bomb costs is bounded by ``max_compression_ratio``
    times its compressed size and by ``max_total_bytes``, whatever its headers say."""

    max_input_bytes: int = 20 * 1024 * 1024
    max_members: int = 2000
    max_total_bytes: int = 64 * 1024 * 1024  # all members, uncompressed: what a refused bomb can cost at most
    max_compression_ratio: float = 100.0  # uncompressed / compressed: each member, and the whole archive
    ratio_checked_above: int = 1024 * 1024  # a member (or archive) smaller uncompressed: never refused for its ratio
    # inline elements (b, span, a, runs in links) inside each other; markup.py refuses more than its own limit
    max_inline_depth: int = MAX_INLINE_DEPTH


def fail(filename: str, reason: str) -> DocumentError:
    """The one-line error: the file's name, then the reason."""
    name = " ".join(str(filename).split()) or "(unnamed)"
    return DocumentError(f"{name}: {' '.join(reason.split())}")


# -- text ------------------------------------------------------------------------------
BOM = b"\xef\xbb\xbf"


def decode_text(data: bytes, filename: str, encoding: str = "utf-8") -> tuple[str, bool]:
    """The text (in ``encoding``, UTF-8 by default; a UTF-8 byte-order mark allowed) and
    whether it began with the mark."""
    bom = data.startswith(BOM)
    try:
        return data[len(BOM):].decode(encoding) if bom else data.decode(encoding), bom
    except UnicodeDecodeError as e:
        raise fail(filename, f"not {encoding.upper()} text (byte {e.start})") from None


def encode_text(text: str, bom: bool) -> bytes:
    return (BOM if bom else b"") + text.encode("utf-8")


def with_outer_space(source: str, translation: str) -> str:
    """``translation`` between the whitespace that ``source`` began and ended with (texts
    are translated stripped; a subtitle's, a msgstr's, a run's spaces stay as written)."""
    return source[: len(source) - len(source.lstrip())] + translation + source[len(source.rstrip()):]


# -- XML -------------------------------------------------------------------------------
_ENTITY_DECLARATIONS = [re.compile(pattern, re.IGNORECASE) for pattern in (
    rb"<!ENTITY", re.escape("<!ENTITY".encode("utf-16-le")), re.escape("<!ENTITY".encode("utf-16-be")))]


def refuse_entity_declarations(data: bytes | str, where: str) -> None:
    """A document that declares entities is refused: an external entity reads a local file
    or the network, nested ones expand exponentially ("billion laughs"), and none of the
    formats here needs one."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if any(p.search(data) for p in _ENTITY_DECLARATIONS):
        raise fail(where, "declares XML entities (refused: they can read local files or expand without bound)")


def parse_xml(data: bytes, where: str) -> etree._ElementTree:
    """An XML part, parsed with nothing outside ``data`` read: no DTD loaded, no entity
    resolved, no network, no recovery from errors; entity declarations and references are
    refused."""
    refuse_entity_declarations(data, where)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_blank_text=False, recover=False)
    try:
        tree = etree.parse(io.BytesIO(data), parser)
    except etree.XMLSyntaxError as e:
        raise fail(where, f"not well-formed XML ({e.msg})") from None
    dtd = tree.docinfo.internalDTD
    if (dtd is not None and any(True for _ in dtd.iterentities())) or any(
            isinstance(node, etree._Entity) for node in tree.iter()):
        raise fail(where, "declares or refers to XML entities (refused: they can read local files or expand "
                          "without bound)")
    return tree


def serialize_xml(tree: etree._ElementTree) -> bytes:
    """The part written back with its declaration (encoding, standalone) as it was."""
    info = tree.docinfo
    return etree.tostring(tree, xml_declaration=True, encoding=info.encoding or "UTF-8",
                          standalone=info.standalone)


def refuse_deep_markup(documents: list[str], where: str, limits: DocumentLimits) -> None:
    """HTML whose inline elements nest deeper than ``limits.max_inline_depth`` is refused
    (markup.refuse_deep_inline), in one line naming ``where``."""
    try:
        refuse_deep_inline(documents, limits.max_inline_depth)
    except InputError as e:
        raise fail(where, str(e)) from None


# -- zip archives ----------------------------------------------------------------------
@dataclass
class Member:
    info: zipfile.ZipInfo
    data: bytes

    @property
    def name(self) -> str:
        return self.info.filename


def _unsafe_name(name: str) -> bool:
    parts = re.split(r"[/\\]", name)
    return (not name or name[0] in "/\\" or bool(re.match(r"[A-Za-z]:", name)) or "\x00" in name
            or any(part == ".." for part in parts))


def read_archive(data: bytes, filename: str, limits: DocumentLimits) -> list[Member]:
    """Every member of a zip archive, in order, read under ``limits``: the member count,
    each name (absolute or holding ".." is refused), the total uncompressed size and the
    compression ratios as declared, then as read (each member's read stops as soon as it
    passes its cap, so a header that lies costs no more memory than one that does not)."""
    # zipfile makes an object for every central directory entry before they can be counted:
    # 10 MB of bare entries are 200,000 of them, some 80 MB. Each entry begins with this
    # signature, so counting it first bounds the members (it can only overcount them).
    signatures = data.count(b"PK\x01\x02")
    if signatures > limits.max_members:
        raise fail(filename, f"{signatures} archive member entries, over the limit of {limits.max_members} "
                             f"(max_members)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, NotImplementedError) as e:
        raise fail(filename, f"not a readable zip archive ({e})") from None
    if len(infos) > limits.max_members:
        raise fail(filename, f"{len(infos)} archive members, over the limit of {limits.max_members} (max_members)")
    seen: set[str] = set()
    for info in infos:
        if _unsafe_name(info.filename):
            raise fail(filename, f"archive member name {info.filename[:100]!r} is absolute or leaves the archive "
                                 f"(refused)")
        if info.filename in seen:
            raise fail(filename, f"archive member {info.filename[:100]!r} appears twice")
        seen.add(info.filename)
    _check_sizes(filename, [(i.filename, i.file_size, min(i.compress_size, len(data))) for i in infos], len(data),
                 limits, "declares")
    members, total = [], 0
    for info in infos:
        # a declared compressed size past the archive's own size is a lie: the archive's size counts
        cap = min(limits.max_total_bytes - total, _member_cap(min(info.compress_size, len(data)), limits))
        try:
            content = _read_capped(archive, info, cap)
        except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, NotImplementedError, RuntimeError) as e:
            raise fail(filename, f"archive member {info.filename[:100]!r} cannot be read ({e})") from None
        if content is None:
            limit = ("max_total_bytes" if cap == limits.max_total_bytes - total else "max_compression_ratio")
            raise fail(filename, f"archive member {info.filename[:100]!r} expands past {cap} bytes ({limit}: "
                                 f"total {limits.max_total_bytes}, ratio {limits.max_compression_ratio:g})")
        if len(content) != info.file_size:
            raise fail(filename, f"archive member {info.filename[:100]!r} holds {len(content)} bytes, its header "
                                 f"says {info.file_size}")
        total += len(content)
        members.append(Member(info, content))
    return members


def _member_cap(compressed: int, limits: DocumentLimits) -> int:
    return int(max(limits.ratio_checked_above, limits.max_compression_ratio * max(compressed, 1)))


def _check_sizes(filename: str, sizes: list[tuple[str, int, int]], archive_bytes: int, limits: DocumentLimits,
                 how: str) -> None:
    total = sum(size for _, size, _ in sizes)
    if total > limits.max_total_bytes:
        raise fail(filename, f"archive {how} {total} bytes uncompressed, over the limit of {limits.max_total_bytes} "
                             f"(max_total_bytes)")
    for name, size, compressed in sizes:
        if size > _member_cap(compressed, limits):
            raise fail(filename, f"archive member {name[:100]!r} {how} {size} bytes from {compressed}, a compression "
                                 f"ratio over {limits.max_compression_ratio:g} (max_compression_ratio)")
    if total > max(limits.ratio_checked_above, limits.max_compression_ratio * max(archive_bytes, 1)):
        raise fail(filename, f"archive {how} {total} bytes from {archive_bytes}, a compression ratio over "
                             f"{limits.max_compression_ratio:g} (max_compression_ratio)")


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes | None:
    """The member's bytes, or None as soon as it gives more than ``cap``."""
    chunks, size = [], 0
    with archive.open(info) as f:
        while chunk := f.read(min(1 << 16, cap + 1 - size)):
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


def write_archive(members: list[Member], replaced: dict[str, bytes]) -> bytes:
    """A new zip archive, in memory, of ``members`` in their order (each with its
    compression, date and attributes), a member named in ``replaced`` with those bytes.
    Member names are only names inside the archive, never paths on this machine."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for m in members:
            year = min(max(m.info.date_time[0], 1980), 2107)
            info = zipfile.ZipInfo(m.name, date_time=(year,) + tuple(m.info.date_time[1:]))
            info.compress_type = m.info.compress_type if m.info.compress_type == zipfile.ZIP_STORED \
                else zipfile.ZIP_DEFLATED
            info.external_attr = m.info.external_attr
            archive.writestr(info, replaced.get(m.name, m.data))
    return out.getvalue()


XML_MEMBER = re.compile(r".*\.(xml|rels|opf|ncx|xhtml|html|htm|svg|smil|xsl)", re.IGNORECASE | re.DOTALL)


def refuse_entities_in_archive(members: list[Member], filename: str) -> None:
    """No XML part of the archive, translated or passed through, may declare entities."""
    for m in members:
        if XML_MEMBER.fullmatch(m.name):
            refuse_entity_declarations(m.data, f"{filename}: {m.name}")


def member_map(members: list[Member]) -> dict[str, Member]:
    return {m.name: m for m in members}
