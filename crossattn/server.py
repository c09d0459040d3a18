"""``crossattn serve``: a web page and a JSON API over one Translator.

Translations run on one worker thread that batches whatever arrived within a few
milliseconds (up to ``max_batch`` texts), so N concurrent clients cost about one batched
search instead of N sequential ones; the attention views run on a worker of their own,
in a process of their own (AttentionProcess), so their torch work never delays a
translation (batcher.py).

Every failure a client can cause is answered as JSON ``{"error": code, "detail": ...}``
with a 4xx status that names the limit involved; a 500 means a bug, and is JSON too.
"""


import asyncio
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from . import libretranslate
from . import server_api as api
from .batcher import Batcher, Job, Worker
from .file_store import FileStore
from .glossary import Glossary
from .libretranslate import Access
from .server_api import APIError, Limits

STATIC_DIR = Path(__file__).parent / "static"
PAGE_HEADERS = {  # the page needs nothing from other origins: say so to the browser
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


# -- attention as JSON ----------------------------------------------------------------
def attention_with_links(translator, reverse, text: str, beam: int | None, alpha: float | None):
    """(AttentionResult, word links or None): the translation's cross-attention and its
    word alignment from the alignment heads (``reverse``: the other direction's translator,
    if loaded, to symmetrize with), words numbered as in the payload's word view."""
    from .align import translation_links

    result = translator.translate_with_attention(text, beam, alpha)
    forward = translator.alignment_model()
    if forward is None:
        return result, None
    backward = reverse.alignment_model() if reverse is not None else None
    return result, translation_links(result.source_tokens, result.target_tokens, forward, backward)


def attention_payload(result, links: list[tuple[int, int]] | None = None, ndigits: int = 4) -> dict:
    """An AttentionResult as JSON-ready lists, piece level and word level (the merge,
    sum over source pieces and mean over target pieces, is visualize.word_view's), and
    the word links if there are any."""
    import torch

    from .attention_views import word_view

    scale = 10.0**ndigits
    rounded = lambda t: (torch.round(t.double() * scale) / scale).tolist()  # noqa: E731  (smaller JSON)
    view = word_view(result)
    word_of = lambda spans: [w for w, span in enumerate(spans) for _ in span]  # noqa: E731
    layers, heads = result.attention.shape[:2]
    return {
        "translation": result.translation,
        "source_tokens": result.source_tokens,
        "target_tokens": result.target_tokens,
        "attention": rounded(result.attention),
        "layers": layers, "heads": heads,
        "source_words": view.source, "target_words": view.target,
        "source_word_index": word_of(view.source_spans), "target_word_index": word_of(view.target_spans),
        "word_attention": rounded(view.attention),
        "links": None if links is None else [list(link) for link in links],
    }


def attention_answer(translators: dict, direction: str, job: Job) -> bytes:
    """The /api/attention answer for ``job`` as JSON bytes: the translation, its
    attention, and its word links (symmetrized with the other direction's head when that
    direction is served too). Encoded here, on the attention worker, not in the event
    loop, which would make every request wait while it encodes thousands of floats."""
    reverse = translators.get("-".join(direction.split("-")[::-1]))
    result, links = attention_with_links(translators[direction], reverse, job.texts[0], job.beam, job.alpha)
    return json.dumps(attention_payload(result, links), separators=(",", ":")).encode()


# -- the attention process ------------------------------------------------------------
ATTENTION_NICENESS = 19  # once loaded, the lowest priority: translations first (bench/README.md, the storm)
ATTENTION_THREADS = 1  # torch and CTranslate2 threads there: the cores are the translations'


class AttentionProcess:
    """The attention worker's ``compute``: each job is answered by a process of its own,
    started with the first job. There torch is imported and the networks are loaded, with
    its own interpreter lock and its own CTranslate2 engines, and the jobs run at a lower
    CPU priority, so neither the load nor the jobs hold translations up. (The load itself
    runs at normal priority: niced, it took 67 s instead of 12 s on a busy 2-core machine,
    longer than a request may wait.) A process that dies is started again for the next job."""

    def __init__(self, translators: dict):
        """``translators``: {"en-fr": Translator, ...}; the process loads the same model
        directories on the same device and precision."""
        self.specs = {d: (str(t.root), t.device, t.dtype) for d, t in translators.items()}
        self.process = None
        self.conn = None

    def __call__(self, translators: dict, direction: str, job: Job) -> bytes:
        if self.process is None or not self.process.is_alive():
            self._start()
        self.conn.send((direction, job.texts[0], job.beam, job.alpha))
        while not self.conn.poll(1.0):
            if not self.process.is_alive():
                self.conn.close()
                self.process = None
                raise RuntimeError("the attention process ended unexpectedly")
        kind, *answer = self.conn.recv()
        if kind == "ok":
            return answer[0]
        if kind == "api_error":
            raise APIError(*answer)
        raise RuntimeError(answer[0])

    def _start(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # never fork a process running threads
        self.conn, child = context.Pipe()
        self.process = context.Process(target=attention_process_main, args=(child, self.specs),
                                       name="crossattn-attention", daemon=True)
        self.process.start()
        child.close()

    def close(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
        self.process = None


def attention_process_main(conn, specs: dict) -> None:
    """The attention process: load the translators, then answer (direction, text, beam,
    alpha) requests one by one until None or the end of the pipe."""
    import torch

    from .translator import Translator

    torch.set_num_threads(ATTENTION_THREADS)
    translators, failure = {}, None
    try:
        translators = {d: Translator.load(root, device, dtype, threads=ATTENTION_THREADS)
                       for d, (root, device, dtype) in specs.items()}
    except Exception as e:  # answered to every request, as the server would answer it
        failure = f"cannot load the models for attention: {type(e).__name__}: {e}"
    try:
        os.nice(ATTENTION_NICENESS)
    except (AttributeError, OSError):  # no priorities here (Windows): it still runs apart
        pass
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the server is gone
            return
        if request is None:
            return
        direction, text, beam, alpha = request
        try:
            if failure:
                raise RuntimeError(failure)
            conn.send(("ok", attention_answer(translators, direction, Job([text], beam, alpha, direction))))
        except APIError as e:
            conn.send(("api_error", e.status, e.code, e.detail))
        except Exception as e:
            conn.send(("error", f"{type(e).__name__}: {e}"))


# -- the app --------------------------------------------------------------------------
def describe(translator) -> dict:
    """What /health says about one model."""
    from .modeldir import CONFIG, count_parameters

    saved = json.loads((translator.root / CONFIG).read_text()) if (translator.root / CONFIG).is_file() else {}
    return {
        "name": translator.root.name,
        "parameters": count_parameters(translator.root),
        "config": saved.get("model"),
        "decoding": translator.decoding,
        "training": saved.get("training"),
        "device": str(translator.device),
        "dtype": str(translator.dtype).removeprefix("torch."),
        "engine": type(translator).__name__,
    }


def create_app(translators, limits: Limits | None = None, model_dir: str | None = None,
               access: Access | None = None, attention_process: bool = True, files: bool = True,
               glossary: Glossary | None = None):
    """A FastAPI app serving ``translators`` (one Translator, or {"en-fr": Translator, ...});
    its worker threads (translation, attention) run during the app's lifespan. Three
    groups of routes: ours (/api/*, /health, the page), LibreTranslate's
    (libretranslate.py), and error handlers that answer every failure as JSON.

    ``attention_process``: the attention views are computed in a process of their own
    (AttentionProcess; the translators must be model directories' Translators); False:
    on the attention thread of this process, with the translators given (for
    translators made in memory, and for tests).

    ``files``: LibreTranslate's file API, its translations kept in a FileStore (a private
    temporary folder, removed when the app stops) within ``limits``' file limits.

    ``glossary``: serve --glossary, the glossary of every translation request (a request's
    own entries are added to it, and win)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    if not isinstance(translators, dict):
        translators = {translators.direction or "en-fr": translators}
    limits = limits or Limits()
    batcher = Batcher(translators, limits)
    compute = AttentionProcess(translators) if attention_process else attention_answer
    attention = Worker(translators, limits, compute, name="crossattn-attention")

    def stop_attention() -> None:
        attention.stop()
        if attention_process:
            compute.close()

    store = FileStore(limits.file_ttl_s, limits.file_store_bytes) if files else None

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        attention.start()
        if store is not None:
            store.start()
        yield
        # both at once: the queued jobs of either are answered (503) without waiting for the other
        await asyncio.gather(asyncio.to_thread(batcher.stop), asyncio.to_thread(stop_attention))
        if store is not None:
            store.close()

    # docs_url=None: the Swagger page loads its assets from a CDN; /openapi.json stays
    app = FastAPI(title="crossattn", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Translation with the model's cross-attention; also LibreTranslate's API.")
    app.add_middleware(api.BodyGuard, max_bytes=limits.max_body_bytes,
                       uploads={"/translate_file": limits.max_file_bytes} if files else None,
                       max_uploads=limits.max_file_jobs, upload_read_s=limits.upload_read_s)
    app.state.batcher, app.state.attention, app.state.limits = batcher, attention, limits
    app.state.file_store = store
    app.state.glossary = glossary or None  # serve --glossary: the default of every translation request
    # one set of keys and request limits for both APIs: a server that requires a key
    # requires it everywhere, not on LibreTranslate's routes only
    app.state.access = access = access or Access()

    add_error_handlers(app)
    add_api_routes(app, translators, limits)
    libretranslate.add_routes(app, batcher, translators, limits, access, store)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def json_error(status: int, code: str, detail: str, **extra):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status)


def add_error_handlers(app) -> None:
    """Every failure a client can cause is a 4xx JSON answer; a 500 means a bug, JSON too."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(APIError)
    async def on_api_error(request: Request, e: APIError):
        return json_error(e.status, e.code, e.detail, **e.extra)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, e: RequestValidationError):
        return api.validation_error(e.errors(), json_error)

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, e: HTTPException):
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        return json_error(e.status_code, codes.get(e.status_code, "http_error"), str(e.detail))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, e: Exception):
        return json_error(500, "internal_error", f"unexpected {type(e).__name__}; see the server log")


def add_api_routes(app, translators: dict, limits: Limits) -> None:
    """/api/translate, /api/attention, /health and the page."""
    from fastapi import Request
    from fastapi.responses import FileResponse, JSONResponse, Response

    batcher, attention_worker, access = app.state.batcher, app.state.attention, app.state.access
    model_info = {direction: describe(t) for direction, t in translators.items()}
    started = time.time()

    @app.post("/api/translate", response_model=api.TranslateResponse, response_model_exclude_none=True,
              responses=api.ERRORS, summary="Translate one text or a list of texts")
    async def translate(req: api.TranslateRequest, request: Request):
        access.admit_request(request, req.api_key)
        texts = [req.text] if req.text is not None else req.texts
        api.check_request(texts, req.beam, limits)
        if req.confidence and req.format == "html":
            raise APIError(422, "invalid_request", "confidence is given for format text only")
        glossary = api.request_glossary(app.state.glossary, req.glossary)
        detected = None
        if req.source == "auto":  # LibreTranslate's path: detected per text, one in the target language kept
            if req.target is None:
                raise APIError(422, "missing_target", 'source "auto" needs a target language')
            outputs, detected = await libretranslate.translate_detecting(
                batcher, translators, texts, "auto", req.target, req.beam, req.alpha, req.format,
                confidence=req.confidence, glossary=glossary)
        else:
            direction = api.direction_of(req.source, req.target, translators)
            outputs = await batcher.answer(Job(texts, req.beam, req.alpha, direction, format=req.format,
                                               confidence=req.confidence, glossary=glossary)) if texts else []
        if req.confidence:  # Confident, or None for a text kept as it is
            confidences = [c.to_json() if c is not None else None for c in outputs]
            outputs = [c["translation"] if c is not None else text for c, text in zip(confidences, texts)]
        body: dict = {"translation": outputs[0]} if req.text is not None else {"translations": outputs}
        if req.confidence:
            body.update({"confidence": confidences[0]} if req.text is not None else {"confidences": confidences})
        if detected is not None:
            found = [{"language": language, "confidence": score} for language, score in detected]
            body.update({"detected_language": found[0]} if req.text is not None else {"detected_languages": found})
        return body

    @app.post("/api/attention", response_model=api.AttentionResponse, responses=api.ERRORS,
              summary="Translate one text and return its cross-attention, piece and word level")
    async def attention(req: api.AttentionRequest, request: Request):
        access.admit_request(request, req.api_key)
        api.check_request([req.text], req.beam, limits)
        direction = api.direction_of(req.source, req.target, translators)
        body = await attention_worker.answer(Job([req.text], req.beam, req.alpha, direction))
        return Response(body, media_type="application/json")  # response_model: the documented shape

    @app.get("/health", summary="Liveness, models and limits")
    async def health():
        alive = batcher.thread.is_alive() and attention_worker.thread.is_alive()
        stats = batcher.snapshot()
        body = {"status": "ok" if alive else "error", "directions": list(translators),
                "model": model_info[batcher.default], "models": model_info, "limits": asdict(limits),
                "queue": stats.pop("queue"), "stats": stats, "attention": attention_worker.snapshot(),
                "html": batcher.markup.snapshot(), "files": batcher.documents.snapshot(),
                "file_store": app.state.file_store.snapshot() if app.state.file_store else None,
                "uptime_s": round(time.time() - started, 1)}
        return JSONResponse(body, status_code=200 if alive else 503)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)
