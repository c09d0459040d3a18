"""LibreTranslate's HTTP API, served by ``crossattn serve`` beside its own ``/api/*``.

Self-hosted translation clients (browser extensions, chat bots, the ``libretranslatepy``
package, editors) speak this API; with it they can use crossattn models unchanged.
What LibreTranslate's own code defines, and what we do:

* ``POST /translate``: JSON or form body with ``q`` (a string, or a list of strings in
  JSON), ``source`` (a language code or "auto"), ``target``, ``format`` ("text", or "html":
  markup kept, inline tags placed by the word alignment, markup.py), ``alternatives``
  (extra translations per text; text only), ``api_key``.
  Answer ``{"translatedText": ...}`` (a list for a list), plus ``alternatives`` and, for
  "auto", ``detectedLanguage`` ``{"language", "confidence"}``.
* ``GET|POST /languages``: ``[{"code", "name", "targets"}]``; ``POST /detect``.
* ``POST /translate_file``: a multipart form with ``file``, ``source`` (or "auto": detected
  on the file's text), ``target``, ``api_key`` and, our extension as on ``/translate``,
  ``glossary`` (a JSON object of term to translation, added to ``serve --glossary``);
  answer ``{"translatedFileUrl": URL}``, which ``GET /download_file/NAME`` hands out once
  (file_store.py: random names, deleted after the download or ``--file-ttl``, 503 when
  ``--file-store-mb`` is held; 413 over ``--max-file-mb``).
* ``GET /frontend/settings``: what LibreTranslate's page and clients read (``charLimit``,
  ``filesTranslation``, ``supportedFilesFormat``, ``apiKeys``, ``keyRequired``, ``language``).
* Errors are ``{"error": "..."}`` with 400 (bad request), 403 (API key), 429 (rate limit).

API keys (``--api-keys FILE``: one key per line, optionally followed by its requests
per minute) and a per-client limit for requests without a key (``--req-limit``) work
like LibreTranslate's: a sliding window of one minute per key or client address.
"""

from __future__ import annotations

import json
import mimetypes
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from .batcher import Batcher, Job
from .detect import detect as detect_language
from .documents import SUPPORTED_EXTENSIONS, extension
from .errors import InputError
from .file_store import FileStore, content_disposition
from .markup import plain_text
from .glossary import Glossary
from .server_api import APIError, Limits, check_request, request_glossary

NAMES = {"en": "English", "fr": "French"}


# -- who may ask, and how often ---------------------------------------------------------
def read_api_keys(path: str | Path) -> dict[str, int]:
    """``{key: requests per minute (0 = no limit)}`` from a file of ``KEY [LIMIT]`` lines."""
    keys: dict[str, int] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read API keys from {path}: {getattr(e, 'strerror', None) or e}") from None
    for n, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2 or (len(fields) == 2 and not fields[1].isdigit()):
            raise InputError(f"{path}:{n}: expected KEY or KEY REQUESTS_PER_MINUTE")
        keys[fields[0]] = int(fields[1]) if len(fields) == 2 else 0
    return keys


WINDOW_S = 60.0  # the request limits count requests per minute, in a sliding window


@dataclass
class Access:
    keys: dict[str, int] = field(default_factory=dict)  # API key -> requests per minute (0 = unlimited)
    req_limit: int = 0  # per client address without a key; 0 = unlimited
    require_key: bool = False
    # client addresses remembered at once: a flood of distinct addresses costs this much
    # memory at most (the least recently seen are forgotten first); keys are few, all kept
    max_clients: int = 100_000
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _by_key: dict = field(default_factory=dict, repr=False)
    _by_client: OrderedDict = field(default_factory=OrderedDict, repr=False)  # oldest last request first
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def admit_request(self, request, api_key: object) -> None:
        """``admit`` for an HTTP request (its client address) and the key it sent, if any."""
        self.admit(str(api_key or ""), request.client.host if request.client else "")

    def admit(self, api_key: str, client: str) -> None:
        """Raise 403 for a wrong or missing key, 429 over the limit; else count the request."""
        if api_key:
            if api_key not in self.keys:
                raise APIError(403, "invalid_api_key", "Invalid API key")
            table, who, limit = self._by_key, api_key, self.keys[api_key]
        elif self.require_key:
            raise APIError(403, "missing_api_key", "Invalid API key: this server requires an api_key")
        else:
            table, who, limit = self._by_client, client, self.req_limit
        if not limit:
            return
        now = self.clock()
        with self._lock:
            self._forget_idle_clients(now)
            recent = table.setdefault(who, deque())
            while recent and now - recent[0] >= WINDOW_S:
                recent.popleft()
            if len(recent) >= limit:
                raise APIError(429, "too_many_requests", f"Too many requests: the limit is {limit} per minute")
            recent.append(now)
            if table is self._by_client:
                self._by_client.move_to_end(who)
                while len(self._by_client) > self.max_clients:
                    self._by_client.popitem(last=False)

    @property
    def clients_remembered(self) -> int:
        """Client addresses whose recent requests are being counted."""
        with self._lock:
            return len(self._by_client)

    def _forget_idle_clients(self, now: float) -> None:
        """Drop the clients with no request in the window (they are first in the table)."""
        while self._by_client:
            who, recent = next(iter(self._by_client.items()))
            if recent and now - recent[-1] < WINDOW_S:
                return
            del self._by_client[who]


# -- the routes --------------------------------------------------------------------------
async def read_params(request) -> dict:
    """A JSON object, or a form (application/x-www-form-urlencoded), as LibreTranslate accepts."""
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded" or (kind != "application/json" and body[:1] not in (b"{", b"[")):
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
    try:
        params = json.loads(body) if body else {}
    except ValueError:
        raise APIError(400, "invalid_json", "Invalid JSON format") from None
    if not isinstance(params, dict):
        raise APIError(400, "invalid_json", "Invalid JSON format")
    return params


async def translate_detecting(batcher: Batcher, translators: dict, texts: list[str], source: str, target: str,
                              beam: int | None = None, alpha: float | None = None, fmt: str = "text",
                              alternatives: int = 0, confidence: bool = False,
                              glossary: Glossary | None = None) -> tuple[list, list | None]:
    """``texts`` translated from ``source`` into ``target`` by the server's ``batcher``: the
    one path of LibreTranslate's /translate and of our /api/translate with source "auto".
    With ``source`` "auto", each text's language is detected first (detect.py, among every
    language we know; html read without its tags), and a text found in the target language
    already comes back as it is, as LibreTranslate does: the text itself (``alternatives``
    + 1 copies of it; None with ``confidence``, as the model wrote nothing of it).
    Returns (one answer per text, a (language, confidence 0-100) per text or None)."""
    known = sorted(NAMES)  # detection tells apart every language we know, served or not
    detected = None
    if source == "auto":
        # a text without letters ("42") is reported in the target language: given back as is
        fallback = target if target in known else None
        readable = [plain_text(t) for t in texts] if fmt == "html" else texts  # tags are no language
        detected = await run_in_threadpool(lambda: [detect_language(t, known, fallback) for t in readable])
    for lang in (source, target):
        if lang != "auto" and lang not in NAMES:
            raise APIError(400, "unsupported_language", f"{lang} is not supported")
    directions = [f"{d[0]}-{target}" for d in detected] if detected else [f"{source}-{target}"] * len(texts)
    for direction in directions:
        if direction.split("-")[0] == target:
            continue  # auto-detected as the target language already: returned as is
        if direction not in translators:
            raise APIError(400, "unsupported_language", f"{direction.split('-')[0]} to {target} is not supported")
    results: list = [None] * len(texts)
    for direction in dict.fromkeys(directions):
        idx = [i for i, d in enumerate(directions) if d == direction]
        if direction.split("-")[0] == target:
            outs = [None if confidence else [texts[i]] * (alternatives + 1) if alternatives else texts[i] for i in idx]
        else:
            outs = await batcher.answer(Job([texts[i] for i in idx], beam, alpha, direction, alternatives,
                                            format=fmt, confidence=confidence, glossary=glossary))
        for i, out in zip(idx, outs):
            results[i] = out
    return results, detected


def add_routes(app, batcher: Batcher, translators: dict, limits: Limits, access: Access,
               store: FileStore | None = None) -> None:
    """LibreTranslate's endpoints on ``app``; their translations go to the server's ``batcher``,
    translated files to ``store`` (None: the file routes answer that files are disabled)."""
    known = sorted(NAMES)  # detection tells apart every language we know, served or not

    def fail(e: APIError) -> JSONResponse:  # LibreTranslate's error shape: {"error": message}
        return JSONResponse({"error": e.detail}, status_code=e.status)

    def languages() -> list[dict]:
        codes = sorted({code for d in translators for code in d.split("-", 1)})
        return [{"code": c, "name": NAMES.get(c, c),
                 "targets": sorted(d.split("-", 1)[1] for d in translators if d.startswith(f"{c}-"))} for c in codes]

    @app.get("/languages", summary="LibreTranslate: the languages served")
    async def get_languages():
        return languages()

    @app.post("/languages", summary="LibreTranslate: the languages served (as libretranslatepy asks)")
    async def post_languages():
        return languages()

    @app.post("/detect", summary="LibreTranslate: detect the language of q")
    async def detect(request: Request):
        try:
            params = await read_params(request)
            access.admit_request(request, params.get("api_key"))
            q = params.get("q")
            if not isinstance(q, str) or not q:
                raise APIError(400, "missing_q", "Invalid request: missing q parameter")
            # in a worker thread: the first detection loads the detector (seconds)
            lang, confidence = await run_in_threadpool(detect_language, q, known)
            return [{"language": lang, "confidence": confidence}]
        except APIError as e:
            return fail(e)

    @app.post("/translate", summary="LibreTranslate: translate q from source to target")
    async def translate(request: Request):
        try:
            params = await read_params(request)
            access.admit_request(request, params.get("api_key"))
            q, source, target = params.get("q"), params.get("source"), params.get("target")
            batch = isinstance(q, list)
            texts = q if batch else [q]
            if not q or not all(isinstance(t, str) for t in texts):
                raise APIError(400, "missing_q", "Invalid request: missing q parameter")
            for name, value in (("source", source), ("target", target)):
                if not value or not isinstance(value, str):
                    raise APIError(400, f"missing_{name}", f"Invalid request: missing {name} parameter")
            fmt = params.get("format", "text") or "text"
            if fmt not in ("text", "html"):
                raise APIError(400, "unsupported_format", f"{fmt} format is not supported")
            try:
                alternatives = int(params.get("alternatives", 0) or 0)
            except (TypeError, ValueError):
                raise APIError(400, "bad_alternatives", "Invalid request: alternatives parameter is not a number") from None
            if not 0 <= alternatives <= limits.max_beam - 1:
                raise APIError(400, "bad_alternatives", f"Invalid request: alternatives must be 0-{limits.max_beam - 1}")
            if alternatives and fmt == "html":
                raise APIError(400, "bad_alternatives", "Invalid request: alternatives are given for format=text only")
            try:
                check_request(texts, None, limits)
            except APIError as e:
                raise APIError(400, e.code, e.detail) from None
            glossary = glossary_field(getattr(app.state, "glossary", None), params.get("glossary"))
            results, detected = await translate_detecting(batcher, translators, texts, source, target, fmt=fmt,
                                                          alternatives=alternatives, glossary=glossary)
            body: dict = {}
            if alternatives:
                body["translatedText"] = [r[0] for r in results] if batch else results[0][0]
                body["alternatives"] = [r[1:] for r in results] if batch else results[0][1:]
            else:
                body["translatedText"] = results if batch else results[0]
            if detected:
                found = [{"language": lang, "confidence": conf} for lang, conf in detected]
                body["detectedLanguage"] = found if batch else found[0]
            return body
        except APIError as e:
            return fail(e)

    add_file_routes(app, batcher, translators, limits, access, store)


def glossary_field(default: Glossary | None, entries: object) -> Glossary | None:
    """Our extension to /translate and /translate_file: ``glossary``, {"term": "translation"}
    (in a form, that object as a JSON string), added to serve --glossary (its own entries
    win); a malformed one is a 400."""
    if entries is None or entries == "":  # only an absent or empty field means "none"
        return request_glossary(default, None)
    if isinstance(entries, str):
        try:
            entries = json.loads(entries)
        except ValueError:
            raise APIError(400, "bad_glossary", "Invalid request: glossary is not a JSON object") from None
    return request_glossary(default, entries)  # "[]", "0", "false", '""': not an object, a 400


def add_file_routes(app, batcher: Batcher, translators: dict, limits: Limits, access: Access,
                    store: FileStore | None) -> None:
    """``POST /translate_file``, ``GET /download_file/NAME`` and ``GET /frontend/settings``."""
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    def fail(status: int, message: str, **extra) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status)

    def disabled() -> JSONResponse:
        return fail(403, "Files translation are disabled on this server.")

    @app.post("/translate_file", summary="LibreTranslate: translate a file (multipart: file, source, target, "
                                          "api_key; ours: glossary, a JSON object); answers {translatedFileUrl}")
    async def translate_file(request: Request):
        if store is None:
            return disabled()
        try:
            try:
                form = await request.form(max_files=1, max_fields=16)
            except HTTPException as e:
                raise APIError(400, "bad_form", f"Invalid request: {e.detail}") from None
            access.admit_request(request, form.get("api_key"))
            upload, source, target = form.get("file"), form.get("source"), form.get("target")
            if not isinstance(upload, UploadFile):
                raise APIError(400, "missing_file", "Invalid request: missing file parameter")
            for name, value in (("source", source), ("target", target)):
                if not value or not isinstance(value, str):
                    raise APIError(400, f"missing_{name}", f"Invalid request: missing {name} parameter")
            filename = upload.filename or ""
            if not filename:
                raise APIError(400, "empty_file", "Invalid request: empty file")
            if extension(filename) not in SUPPORTED_EXTENSIONS:
                raise APIError(400, "unsupported_format", "Invalid request: file format not supported")
            for lang in (source, target):
                if lang != "auto" and lang not in NAMES:
                    raise APIError(400, "unsupported_language", f"{lang} is not supported")
            if source != "auto" and f"{source}-{target}" not in translators:
                raise APIError(400, "unsupported_language", f"{source} to {target} is not supported")
            if target not in {d.split("-", 1)[1] for d in translators}:
                raise APIError(400, "unsupported_language", f"{target} is not supported")
            entries = form.get("glossary")
            if isinstance(entries, str) and len(entries.encode()) > limits.max_body_bytes:  # as on /translate
                raise APIError(413, "glossary_too_large", f"Invalid request: glossary over "
                                                          f"{limits.max_body_bytes // 1024} kB (max_body_kb)")
            glossary = glossary_field(getattr(app.state, "glossary", None), entries)
            data = await upload.read(limits.max_file_bytes + 1)
            if len(data) > limits.max_file_bytes:
                raise APIError(413, "file_too_large", f"Invalid request: file over "
                                                      f"{limits.max_file_bytes / (1 << 20):g} MB (max_file_mb)")
            await run_in_threadpool(store.check_room, len(data))
            job = Job([], direction="" if source == "auto" else f"{source}-{target}", document=data,
                      filename=filename, detect_to=target if source == "auto" else "",
                      glossary=glossary)
            try:
                translated = await batcher.answer(job)
            except InputError as e:  # documents.DocumentError: unsupported, corrupt, over a limit, unsafe
                raise APIError(400, "bad_document", str(e)) from None
            name = await run_in_threadpool(store.put, translated, filename)
            return {"translatedFileUrl": str(request.url_for("download_file", name=name))}
        except APIError as e:
            return fail(e.status, e.detail)

    @app.get("/download_file/{name}", summary="LibreTranslate: download a translated file (once)")
    async def download_file(name: str):
        if store is None:
            return disabled()
        found = await run_in_threadpool(store.take, name)
        if found is None:
            return fail(404, "File not found: it was downloaded already, expired, or never existed")
        data, download_name = found
        kind = mimetypes.guess_type(download_name)[0] or "application/octet-stream"
        return Response(data, media_type=kind, headers={
            "Content-Disposition": content_disposition(download_name),
            # an uploaded page is the uploader's: never run it as this server's page
            "Content-Security-Policy": "default-src 'none'; sandbox", "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store"})

    @app.get("/frontend/settings", summary="LibreTranslate: the settings its page and clients read")
    async def frontend_settings():
        source, target = next(iter(translators)).split("-", 1)
        return {
            "charLimit": limits.max_chars,
            "frontendTimeout": 500,  # ms of typing before the page translates (LibreTranslate's default)
            "apiKeys": bool(access.keys),
            "keyRequired": access.require_key,
            "suggestions": False,
            "filesTranslation": store is not None,
            "supportedFilesFormat": list(SUPPORTED_EXTENSIONS) if store is not None else [],
            "language": {"source": {"code": source, "name": NAMES.get(source, source)},
                         "target": {"code": target, "name": NAMES.get(target, target)}},
        }
