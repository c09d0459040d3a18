"""Documents in, documents out: a file's bytes and name in, the translated file's bytes out.

``translate_document(data, filename, translate, translate_html)`` chooses the format by the
file name's extension (``SUPPORTED_EXTENSIONS``) and is given the translating as two
functions (plain texts in, translations out; HTML fragments in, HTML out with the inline
tags placed by word alignment: ``Translator.translate`` / ``Translator.translate_html``),
so this module needs no torch and no model.

Uploaded files are untrusted. Every byte is checked before a format parser sees it, and
whatever a hostile or broken file does ends as :class:`DocumentError`, one line naming the
file and the reason, never another exception:

* the input's size (``DocumentLimits.max_input_bytes``);
* archives (.docx, .pptx, .odt, .odp, .epub are zip files of XML) through one reader,
  ``read_archive``: the member count, the total uncompressed size, each member's and the
  whole archive's compression ratio, each member read with a hard cap (the sizes that zip
  headers declare may lie), names that are absolute or hold ``..`` refused. The output
  archive is written in memory from the members read; no member name is ever a path on
  disk;
* every XML part parsed by lxml with no DTD loaded, no entity resolved and no network
  (``parse_xml``), and a part that declares entities (external entities that would read a
  local file, "billion laughs") refused outright;
* a format library's failure on a malformed file (truncated archive, missing part,
  broken timings, a catalogue that does not parse, undecodable text, an empty file).

Formatting inside a paragraph (bold, italic, links as runs in .docx/.pptx/.odt/.odp) goes
through the same placement as HTML inline tags: a paragraph's runs become inline markup,
``translate_html`` translates it, and the result becomes runs again, each with the
properties of the run it came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InputError

TranslateFn = Callable[[list[str]], list[str]]

BINARY_EXTENSIONS = (".docx", ".odt", ".odp", ".pptx", ".epub")  # no output on standard output


class DocumentError(InputError):
    """A document that cannot be translated (unsupported, corrupt, over a limit, unsafe),
    in one line that names the file; a CrossattnError and a ValueError, as InputError is."""


@dataclass(frozen=True)
class DocumentLimits:
    """What a document may hold; each limit is named (by its field name) in the error that
    it raises. The defaults take the office documents and books that people write (a
    .docx's XML compresses 5-20 times) and refuse archive bombs early, with memory bounded
    by ``max_total_bytes``."""

    max_input_bytes: int = 20 * 1024 * 1024
    max_members: int = 2000
    max_total_bytes: int = 200 * 1024 * 1024  # all members uncompressed
    max_compression_ratio: float = 100.0  # uncompressed / compressed, each member and the whole archive
    ratio_checked_above: int = 1024 * 1024  # a member smaller than this is never refused for its ratio


def extension(filename: str) -> str:
    """The lower-case extension of ``filename`` (".docx"), "" when it has none."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def is_supported(filename: str) -> bool:
    return extension(filename) in SUPPORTED_EXTENSIONS


def _fail(filename: str, reason: str) -> DocumentError:
    name = " ".join(filename.split()) or "(unnamed)"
    return DocumentError(f"{name}: {' '.join(reason.split())}")


# -- text ------------------------------------------------------------------------------
def decode_text(data: bytes, filename: str) -> tuple[str, bool]:
    """UTF-8 text (a byte-order mark allowed) and whether it had the mark."""
    bom = data.startswith(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8-sig"), bom
    except UnicodeDecodeError as e:
        raise _fail(filename, f"not UTF-8 text (byte {e.start})") from None


def _encode_text(text: str, bom: bool) -> bytes:
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


LETTER = re.compile(r"[^\W\d_]")


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
    return _encode_text("".join(lines), bom)


def translate_html_file(data: bytes, filename: str, translate_html: TranslateFn) -> bytes:
    """The page through ``translate_html`` (markup.py: markup kept, inline tags placed)."""
    text, bom = decode_text(data, filename)
    refuse_entity_declarations(text, filename)
    return _encode_text(translate_html([text])[0], bom)


# -- XML safety ------------------------------------------------------------------------
_ENTITY_DECLARATION = re.compile(r"<!ENTITY", re.IGNORECASE)


def refuse_entity_declarations(text: str, where: str) -> None:
    """A document that declares entities is refused: an external entity reads a local file
    or the network, nested ones expand exponentially ("billion laughs"), and no format
    here needs one."""
    if _ENTITY_DECLARATION.search(text):
        raise _fail(where, "declares XML entities (refused: they can read local files or expand without bound)")


# -- the entry point -------------------------------------------------------------------
class _CallbackError(Exception):
    """An exception of the translating functions, carried through the catch-all that turns
    a format library's failure into DocumentError."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _passing_errors(fn: TranslateFn) -> TranslateFn:
    def call(texts: list[str]) -> list[str]:
        try:
            out = fn(texts)
        except Exception as e:
            raise _CallbackError(e) from e
        if len(out) != len(texts):
            raise _CallbackError(ValueError(f"the translate function gave {len(out)} outputs for {len(texts)} inputs"))
        return out

    return call


def translate_document(data: bytes, filename: str, translate: TranslateFn, translate_html: TranslateFn,
                       limits: DocumentLimits = DocumentLimits()) -> bytes:
    """The translated document, in the format of ``filename``'s extension (module
    docstring). ``translate``: plain texts in, their translations out, one per input;
    ``translate_html``: HTML fragments in, translated HTML out. Raises DocumentError (one
    line naming ``filename``) for an unsupported, corrupt, oversized or unsafe file; an
    exception of ``translate``/``translate_html`` passes through as it is."""
    ext = extension(filename)
    if ext not in SUPPORTED_EXTENSIONS:
        raise _fail(filename, f"unsupported file type {ext or '(no extension)'!r} "
                              f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    if len(data) > limits.max_input_bytes:
        raise _fail(filename, f"{len(data)} bytes is over the limit of {limits.max_input_bytes} (max_input_bytes)")
    if not data:
        raise _fail(filename, "the file is empty")
    handler = _HANDLERS[ext]
    try:
        return handler(data, filename, _passing_errors(translate), _passing_errors(translate_html), limits)
    except _CallbackError as e:
        raise e.error from None
    except DocumentError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:  # a format library's failure on a malformed file: refused, in one line
        detail = str(e).splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise _fail(filename, f"not a valid {ext} file ({detail})") from None


_HANDLERS: dict[str, Callable[..., bytes]] = {
    ".txt": lambda data, name, tr, tr_html, limits: translate_txt(data, name, tr),
    ".html": lambda data, name, tr, tr_html, limits: translate_html_file(data, name, tr_html),
    ".htm": lambda data, name, tr, tr_html, limits: translate_html_file(data, name, tr_html),
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_HANDLERS)
