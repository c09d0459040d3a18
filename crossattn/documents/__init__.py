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
* HTML (pages, book chapters, a paragraph's runs) whose inline elements nest deeper than
  ``max_inline_depth`` (markup.py places them recursively);
* malformed files (truncated archive, missing part, broken timings, a catalogue that does
  not parse, undecodable text, an empty file), checked for; and, as the last resort, a
  format library's own exception on one becomes that one line too. An exception of
  ``translate``/``translate_html`` passes through unchanged (it is not the file's fault),
  but for a RecursionError, which only a file's nesting causes.

The package: ``safety`` (limits, the zip reader and writer, the XML parser, the error),
``runs`` (a paragraph's runs as inline markup and back), ``office`` (.docx, .pptx, .odt,
.odp, .epub), ``textual`` (.txt, .html, .srt, .po/.pot).

Formatting inside a paragraph (bold, italic, links as runs in .docx/.pptx/.odt/.odp) goes
through the same placement as HTML inline tags: a paragraph's runs become inline markup,
``translate_html`` translates it, and the result becomes runs again, each with the
properties of the run it came from.
"""

from __future__ import annotations

from collections.abc import Callable

from ..markup import TranslateFn
from .office import translate_docx, translate_epub, translate_odf, translate_pptx
from .safety import DocumentError, DocumentLimits, fail, refuse_deep_markup
from .textual import translate_html_file, translate_po, translate_srt, translate_txt

__all__ = ["BINARY_EXTENSIONS", "SUPPORTED_EXTENSIONS", "DocumentError", "DocumentLimits", "extension",
           "translate_document"]

_HANDLERS: dict[str, Callable[[bytes, str, TranslateFn, TranslateFn, DocumentLimits], bytes]] = {
    ".txt": lambda data, name, tr, tr_html, limits: translate_txt(data, name, tr),
    ".html": lambda data, name, tr, tr_html, limits: translate_html_file(data, name, tr_html),
    ".htm": lambda data, name, tr, tr_html, limits: translate_html_file(data, name, tr_html),
    ".docx": lambda data, name, tr, tr_html, limits: translate_docx(data, name, tr, tr_html, limits),
    ".odt": lambda data, name, tr, tr_html, limits: translate_odf(data, name, tr, tr_html, limits),
    ".odp": lambda data, name, tr, tr_html, limits: translate_odf(data, name, tr, tr_html, limits),
    ".pptx": lambda data, name, tr, tr_html, limits: translate_pptx(data, name, tr, tr_html, limits),
    ".epub": lambda data, name, tr, tr_html, limits: translate_epub(data, name, tr, tr_html, limits),
    ".srt": lambda data, name, tr, tr_html, limits: translate_srt(data, name, tr, tr_html),
    ".po": lambda data, name, tr, tr_html, limits: translate_po(data, name, tr, tr_html),
    ".pot": lambda data, name, tr, tr_html, limits: translate_po(data, name, tr, tr_html),
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_HANDLERS)
BINARY_EXTENSIONS = (".docx", ".odt", ".odp", ".pptx", ".epub")  # zip archives: never written to a terminal


def extension(filename: str) -> str:
    """The lower-case extension of ``filename`` (".docx"), "" when it has none."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


class _CallbackError(Exception):
    """An exception of the translating functions, carried through the catch-all that turns
    a format library's failure into DocumentError."""

    def __init__(self, error: Exception):
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
    if ext not in _HANDLERS:
        raise fail(filename, f"unsupported file type {ext or '(no extension)'!r} "
                             f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    if len(data) > limits.max_input_bytes:
        raise fail(filename, f"{len(data)} bytes, over the limit of {limits.max_input_bytes} (max_input_bytes)")
    if not data:
        raise fail(filename, "the file is empty")
    passing_html = _passing_errors(translate_html)

    def checked_html(documents: list[str]) -> list[str]:
        refuse_deep_markup(documents, filename, limits)
        return passing_html(documents)

    try:
        return _HANDLERS[ext](data, filename, _passing_errors(translate), checked_html, limits)
    except _CallbackError as e:
        if isinstance(e.error, RecursionError):  # a nesting that refuse_deep_markup let through
            raise fail(filename, "markup nested too deeply to translate (RecursionError)") from None
        raise e.error from None
    except DocumentError:
        raise
    except Exception as e:  # a format library's failure on a malformed file: refused, in one line
        detail = str(e).strip().splitlines()[0][:150] if str(e).strip() else type(e).__name__
        raise fail(filename, f"not a valid {ext} file ({detail})") from None
