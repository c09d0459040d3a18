"""The HTTP contract of ``crossattn serve``: request/response schemas (they become the
OpenAPI document at /openapi.json), input checks, and a guard on raw request bodies.

Imported only when the server starts, so ``crossattn translate`` never loads pydantic.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .errors import InputError
from .glossary import Glossary


@dataclass
class Limits:
    max_chars: int = 1000  # characters per text
    max_texts: int = 64  # texts per request
    max_body_bytes: int = 256 * 1024
    max_beam: int = 8
    max_batch: int = 32  # texts per model call
    batch_wait_ms: float = 5.0  # how long the worker waits for more requests to batch
    timeout_s: float = 30.0  # per request, queueing included
    max_queue: int = 1024  # texts waiting; beyond this, 503
    # LibreTranslate's file API (POST /translate_file, file_store.py)
    max_file_bytes: int = 10 << 20  # one uploaded file (serve --max-file-mb)
    file_ttl_s: float = 600.0  # a translated file is deleted this long after it is stored, if not downloaded
    file_store_bytes: int = 256 << 20  # translated files held at once; beyond this, 503 (--file-store-mb)
    file_timeout_s: float = 300.0  # per file, queueing included (--file-timeout)
    max_file_jobs: int = 8  # files waiting to be translated; beyond this, 503
    upload_read_s: float = 120.0  # an upload not received by then gets a 408 (its slot is not held longer)


class APIError(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


def direction_of(source: str | None, target: str | None, translators: dict) -> str:
    """The served direction for a request's languages; none given = the server's first."""
    if source is None and target is None:
        return next(iter(translators))
    default_source, default_target = next(iter(translators)).split("-", 1)
    direction = f"{source or default_source}-{target or default_target}"
    if direction not in translators:
        raise APIError(422, "unsupported_direction", f"{direction} is not served; served: {', '.join(translators)}")
    return direction


class _Strict(BaseModel):
    # strict: 123 is not a string and "4" is not a beam size; unknown fields are typos
    model_config = ConfigDict(extra="forbid", strict=True)


class TranslateRequest(_Strict):
    text: str | None = Field(None, description="one text; the answer has `translation`")
    texts: list[str] | None = Field(None, description="several texts; the answer has `translations`, in order")
    beam: int | None = Field(None, ge=1, description="beam size (1 = greedy); default: the model's")
    alpha: float | None = Field(None, ge=0, le=2, description="length penalty exponent; default: the model's")
    source: str | None = Field(None, description='source language, e.g. "en", or "auto" (detected for each text, '
                                                 'with `target` given); default: the first served direction')
    target: str | None = Field(None, description='target language, e.g. "fr"')
    format: Literal["text", "html"] = Field("text", description='"html": markup kept, inline tags placed on the '
                                                               "target words aligned to theirs")
    glossary: dict[str, str] | None = Field(None, description='{"source term": "translation"}: each term found in '
                                            "the text (whole words, any case) is translated so; added to the "
                                            "server's --glossary, overriding its entries for the same terms")
    confidence: bool = Field(False, description="true: the answer also has the model's confidence in each word and "
                                                "sentence (`confidence`, or `confidences` for `texts`); text format only")
    api_key: str | None = Field(None, description="the key a server started with --api-keys gives its users; "
                                                  "needed when it runs with --require-api-key, as on LibreTranslate's API")

    @model_validator(mode="after")
    def one_of(self):
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` or `texts`")
        return self

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"text": "The cat sleeps on the sofa."}, {"texts": ["Hello.", "Where is the station?"], "beam": 4}]})


class WordConfidence(BaseModel):
    text: str
    probability: float = Field(description="in (0, 1]: the model's probability of writing this word")


class SentenceConfidence(BaseModel):
    text: str
    confidence: float = Field(description="in (0, 1]: geometric mean of the probabilities of its pieces")


class Confidence(BaseModel):
    translation: str
    confidence: float = Field(description="in (0, 1]: geometric mean of the probabilities of every piece")
    sentences: list[SentenceConfidence]
    words: list[WordConfidence] = Field(description='the translation\'s words: joined by " " they give it')


class DetectedLanguage(BaseModel):
    language: str
    confidence: float = Field(description="0-100, as LibreTranslate's")


class TranslateResponse(BaseModel):
    translation: str | None = None
    translations: list[str] | None = None
    confidence: Confidence | None = Field(None, description="with `confidence: true` (absent for a text kept as it "
                                                            "is, found in the target language already)")
    confidences: list[Confidence | None] | None = Field(None, description="with `confidence: true` and `texts`")
    detected_language: DetectedLanguage | None = Field(None, description='with source "auto"')
    detected_languages: list[DetectedLanguage] | None = Field(None, description='with source "auto" and `texts`')


class AttentionRequest(_Strict):
    text: str
    beam: int | None = Field(None, ge=1)
    alpha: float | None = Field(None, ge=0, le=2)
    source: str | None = None
    target: str | None = None
    api_key: str | None = Field(None, description="the key a server started with --api-keys gives its users; "
                                                  "needed when it runs with --require-api-key, as on LibreTranslate's API")

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"text": "The cat sleeps on the sofa."}]})


class AttentionResponse(BaseModel):
    translation: str
    source_tokens: list[str] = Field(description='SentencePiece pieces of the source, then "</s>"')
    target_tokens: list[str] = Field(description='pieces of the translation, then "</s>"')
    attention: list[list[list[list[float]]]] = Field(description="[layer][head][target piece][source piece]")
    layers: int
    heads: int
    source_words: list[str] = Field(description='source pieces merged into words ("▁" starts a word)')
    target_words: list[str]
    source_word_index: list[int] = Field(description="for each source piece, its word")
    target_word_index: list[int]
    word_attention: list[list[list[list[float]]]] = Field(
        description="[layer][head][target word][source word]: summed over source pieces, averaged over target pieces")
    links: list[list[int]] | None = Field(
        None, description="word alignment [source word, target word] from the alignment heads (both directions "
                          "when both are loaded), as `crossattn align` gives; null if the model has no head")


class ErrorResponse(BaseModel):
    error: str = Field(description="machine-readable code, e.g. text_too_long")
    detail: str = Field(description="what was wrong, naming the limit if one was hit")
    limit: str | None = Field(None, description="name of the limit that was hit")
    max: float | None = Field(None, description="its value")


ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in [
    (400, "malformed JSON or body not UTF-8"), (413, "a size limit was hit (max_chars, max_texts, max_body_bytes)"),
    (422, "wrong fields or types"), (503, "server busy (max_queue)"), (504, "timeout (timeout_s)")]}


def request_glossary(default: Glossary | None, entries: object) -> Glossary | None:
    """The glossary a request is translated with: the server's (serve --glossary) with the
    request's entries added (its own win); a malformed one is a 400 with a one-line reason."""
    if entries is None:
        return default or None
    if not isinstance(entries, dict):
        raise APIError(400, "bad_glossary", "glossary must be an object of term to translation")
    try:
        return (default or Glossary()).merged(Glossary(entries, where="glossary")) or None
    except InputError as e:
        raise APIError(400, "bad_glossary", str(e)) from None


def check_request(texts: list[str], beam: int | None, limits: Limits) -> None:
    """The limits that depend on server settings (schemas cannot know them)."""
    if len(texts) > limits.max_texts:
        raise APIError(413, "too_many_texts", f"{len(texts)} texts; the limit is {limits.max_texts} per request (max_texts)",
                       limit="max_texts", max=limits.max_texts)
    for i, text in enumerate(texts):
        where = f"text {i}" if len(texts) > 1 else "text"
        if len(text) > limits.max_chars:
            raise APIError(413, "text_too_long", f"{where} has {len(text)} characters; the limit is {limits.max_chars} (max_chars)",
                           limit="max_chars", max=limits.max_chars)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # JSON can spell lone surrogates ("\ud800"); they are not text
            raise APIError(422, "invalid_text", f"{where} contains an unpaired surrogate (\\ud800-\\udfff)") from None
    if beam is not None and beam > limits.max_beam:
        raise APIError(422, "beam_too_large", f"beam {beam}; the limit is {limits.max_beam} (max_beam)",
                       limit="max_beam", max=limits.max_beam)


def validation_error(errors: list[dict], make_error):
    """FastAPI's validation errors, without echoing the input back (it may be 100 kB)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        e = errors[0]
        return make_error(400, "invalid_json", f"body is not valid JSON: {e.get('ctx', {}).get('error', e['msg'])}")
    clean = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))} for e in errors]
    detail = "; ".join(f"{'.'.join(c['loc'][1:]) or 'body'}: {c['msg']}" for c in clean)
    return make_error(422, "invalid_request", detail, errors=clean)


class BodyGuard:
    """ASGI middleware: reads the body itself (bounded), so a client cannot make the
    server buffer megabytes, and rejects bodies that are not UTF-8 before JSON parsing.
    ``uploads``: {path: byte cap} for the routes whose bodies are files (multipart; binary,
    so not checked as UTF-8), capped at their own size instead of ``max_bytes``.
    ``max_uploads``: uploads held at once, from their first byte to their answer (each is
    held about three times over: this body, the parsed form, the document); one more is
    answered 503 at once, so many uploads together cannot exhaust the memory; and one
    not received within ``upload_read_s`` gets a 408, so slow clients cannot hold the
    slots."""

    DRAIN = 4 << 20
    FORM_OVERHEAD = 64 << 10  # an upload's other form fields and multipart boundaries

    def __init__(self, app, max_bytes: int, uploads: dict[str, int] | None = None, max_uploads: int = 0,
                 upload_read_s: float = Limits.upload_read_s):
        self.app, self.max_bytes, self.uploads = app, max_bytes, uploads or {}
        self.max_uploads, self.held_uploads = max_uploads, 0  # one event loop: no lock needed
        self.upload_read_s = upload_read_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload_cap = self.uploads.get(scope["path"]) if scope["method"] == "POST" else None
        # an upload's other fields may hold as much as a JSON request (a glossary: the route
        # caps that field with its own error)
        max_bytes = self.max_bytes if upload_cap is None else upload_cap + self.max_bytes + self.FORM_OVERHEAD
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit():
            return await self._send(send, 400, {"error": "invalid_request", "detail": "bad Content-Length header"})
        if int(declared) > max_bytes + self.DRAIN:
            return await self._too_large(send, upload_cap)
        if upload_cap is None:
            return await self._guarded(scope, receive, send, max_bytes, upload_cap)
        if self.max_uploads and self.held_uploads >= self.max_uploads:
            await self._read(receive, keep=0)
            return await self._send(send, 503, {
                "error": f"Too many files at once: {self.max_uploads} are being uploaded or translated "
                         "(max_file_jobs); try again shortly", "limit": "max_file_jobs", "max": self.max_uploads})
        self.held_uploads += 1
        try:
            return await self._guarded(scope, receive, send, max_bytes, upload_cap)
        finally:
            self.held_uploads -= 1

    async def _read(self, receive, keep: int) -> tuple[bytes, int] | None:
        """The body if it is at most ``keep`` bytes (else b""), and its size; None if the
        client went away. Past ``keep`` the body is still read, and dropped, up to DRAIN
        bytes more before the error answer: a client still sending when the server hangs up
        sees a reset, not the answer."""
        chunks, size, more = [], 0, True
        while more and size <= keep + self.DRAIN:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= keep:
                chunks.append(chunk)
            more = message.get("more_body", False)
        return (b"".join(chunks) if size <= keep else b""), size

    async def _guarded(self, scope, receive, send, max_bytes: int, upload_cap: int | None):
        try:
            got = await asyncio.wait_for(self._read(receive, keep=max_bytes),
                                         self.upload_read_s if upload_cap is not None else None)
        except asyncio.TimeoutError:
            return await self._send(send, 408, {
                "error": f"Invalid request: the file was not received within {self.upload_read_s:g} s",
                "limit": "upload_read_s", "max": self.upload_read_s})
        if got is None:
            return
        body, size = got
        if size > max_bytes:
            return await self._too_large(send, upload_cap)
        try:
            if upload_cap is None:
                body.decode("utf-8")
        except UnicodeDecodeError as e:
            return await self._send(send, 400, {"error": "invalid_utf8", "detail": f"body is not valid UTF-8 (byte {e.start})"})
        # /api/* bodies are JSON whatever the header says (curl -d sends a form type); the
        # LibreTranslate routes take forms too, as LibreTranslate does
        if scope["method"] == "POST" and scope["path"].startswith("/api/"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": headers + [(b"content-type", b"application/json")]}
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send, upload_cap: int | None = None):
        if upload_cap is not None:  # LibreTranslate's clients read {"error": message}
            return await self._send(send, 413, {
                "error": f"Invalid request: file over {upload_cap / (1 << 20):g} MB (max_file_mb)",
                "limit": "max_file_mb", "max": upload_cap / (1 << 20)})
        return await self._send(send, 413, {
            "error": "body_too_large", "limit": "max_body_bytes", "max": self.max_bytes,
            "detail": f"request body over {self.max_bytes} bytes (max_body_bytes)"})

    @staticmethod
    async def _send(send, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})
