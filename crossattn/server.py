"""``crossattn serve``: a web page and a JSON API over one Translator.

The model runs in a single worker thread (torch inference is not safe to call from
many threads at once). Requests are queued; the worker takes whatever arrived within
a few milliseconds (up to ``max_batch`` texts) and translates it as one batch, so N
concurrent clients cost about one batched search instead of N sequential ones.

Every failure a client can cause is answered as JSON ``{"error": code, "detail": ...}``
with a 4xx status that names the limit involved; a 500 means a bug, and is JSON too.
"""


import asyncio
import concurrent.futures
import json
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

from . import server_api as api
from .server_api import APIError, Limits

if TYPE_CHECKING:
    from .libretranslate import Access

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

    from .visualize import word_view

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


# -- the batching worker --------------------------------------------------------------
@dataclass
class Job:
    kind: str  # "translate" | "attention"
    texts: list[str]
    beam: int | None
    alpha: float | None
    direction: str = ""  # "en-fr"...; "" = the server's first direction
    alternatives: int = 0  # extra hypotheses per text (LibreTranslate's `alternatives`)
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class Batcher:
    """One thread owns the model; jobs that arrive close together share one call."""

    def __init__(self, translators, limits: Limits):
        """``translators``: {"en-fr": Translator, ...}, or one translator."""
        if not isinstance(translators, dict):
            translators = {"default": translators}
        self.translators, self.limits = translators, limits
        self.default = next(iter(translators))
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self.pending = 0  # texts queued, for the max_queue limit
        self.lock = threading.Lock()
        self.stats = {"batches": 0, "texts": 0, "largest_batch": 0}
        self.thread = threading.Thread(target=self._run, name="crossattn-model", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)

    def submit(self, job: Job) -> concurrent.futures.Future:
        with self.lock:
            if self.pending + len(job.texts) > self.limits.max_queue:
                raise APIError(503, "busy", f"server busy: more than {self.limits.max_queue} texts queued (max_queue)",
                               limit="max_queue", max=self.limits.max_queue)
            self.pending += len(job.texts)
        self.queue.put(job)
        return job.future

    def _collect(self, first: Job) -> tuple[list[Job], bool]:
        jobs, size = [first], len(first.texts)
        deadline = time.monotonic() + self.limits.batch_wait_ms / 1000
        while size < self.limits.max_batch and (left := deadline - time.monotonic()) > 0:
            try:
                job = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            size += len(job.texts)
        return jobs, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self.queue.get()
            if first is None:
                break
            jobs, stopping = self._collect(first)
            with self.lock:
                self.pending -= sum(len(j.texts) for j in jobs)
            # jobs whose client already gave up (timeout) are dropped here
            jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            try:
                self._execute(jobs)
            except Exception as e:  # a bug here must not kill the only model thread
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(e)

    def _execute(self, jobs: list[Job]) -> None:
        groups: dict[tuple, list[Job]] = {}  # one model call per direction and decoding setting
        for job in jobs:
            translator = self.translators[job.direction or self.default]
            if job.kind == "attention":
                reverse = self.translators.get("-".join((job.direction or self.default).split("-")[::-1]))
                self._finish(job, lambda j=job, t=translator, r=reverse: attention_with_links(
                    t, r, j.texts[0], j.beam, j.alpha))
            else:
                groups.setdefault((job.direction or self.default, job.beam, job.alpha, job.alternatives), []).append(job)
        for group in groups.values():
            self._translate(group)

    def _translate(self, jobs: list[Job]) -> None:
        texts = [t for j in jobs for t in j.texts]
        first = jobs[0]
        translator = self.translators[first.direction or self.default]
        try:
            if first.alternatives:
                outputs = translator.translate_alternatives(texts, first.alternatives + 1, first.beam, first.alpha,
                                                            batch_size=self.limits.max_batch)
            else:
                outputs = translator.translate(texts, first.beam, first.alpha, batch_size=self.limits.max_batch)
        except Exception as e:
            if len(jobs) == 1:
                jobs[0].future.set_exception(e)
            else:  # one bad input must not fail its batch-mates: retry each alone
                for job in jobs:
                    self._translate([job])
            return
        self.stats["batches"] += 1
        self.stats["texts"] += len(texts)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(texts))
        start = 0
        for job in jobs:
            job.future.set_result(outputs[start : start + len(job.texts)])
            start += len(job.texts)

    @staticmethod
    def _finish(job: Job, fn) -> None:
        try:
            job.future.set_result(fn())
        except Exception as e:
            job.future.set_exception(e)


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
               access: "Access | None" = None):
    """A FastAPI app serving ``translators`` (one Translator, or {"en-fr": Translator, ...});
    its worker thread runs during the app's lifespan. Three groups of routes: ours
    (/api/*, /health, the page), LibreTranslate's (libretranslate.py), and error handlers
    that answer every failure as JSON."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from . import libretranslate

    if not isinstance(translators, dict):
        translators = {translators.direction or "en-fr": translators}
    limits = limits or Limits()
    batcher = Batcher(translators, limits)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.stop)

    # docs_url=None: the Swagger page loads its assets from a CDN; /openapi.json stays
    app = FastAPI(title="crossattn", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Translation with the model's cross-attention; also LibreTranslate's API.")
    app.add_middleware(api.BodyGuard, max_bytes=limits.max_body_bytes)
    app.state.batcher, app.state.limits = batcher, limits

    async def run(job: Job):
        """Hand a job to the model thread and wait for it, within the time limit."""
        if not batcher.thread.is_alive():
            raise APIError(503, "unavailable", "model worker is not running")
        future = asyncio.wrap_future(batcher.submit(job))
        try:
            return await asyncio.wait_for(future, limits.timeout_s)
        except TimeoutError:
            raise APIError(504, "timeout", f"no answer within {limits.timeout_s:g} s (timeout_s)",
                           limit="timeout_s", max=limits.timeout_s) from None

    add_error_handlers(app)
    add_api_routes(app, run, translators, limits)
    libretranslate.add_routes(app, run, translators, limits, access or libretranslate.Access())
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


def add_api_routes(app, run, translators: dict, limits: Limits) -> None:
    """/api/translate, /api/attention, /health and the page."""
    from fastapi.responses import FileResponse, JSONResponse

    batcher = app.state.batcher
    model_info = {direction: describe(t) for direction, t in translators.items()}
    started = time.time()

    @app.post("/api/translate", response_model=api.TranslateResponse, response_model_exclude_none=True,
              responses=api.ERRORS, summary="Translate one text or a list of texts")
    async def translate(req: api.TranslateRequest):
        texts = [req.text] if req.text is not None else req.texts
        api.check_request(texts, req.beam, limits)
        direction = api.direction_of(req.source, req.target, translators)
        outputs = await run(Job("translate", texts, req.beam, req.alpha, direction)) if texts else []
        return {"translation": outputs[0]} if req.text is not None else {"translations": outputs}

    @app.post("/api/attention", response_model=api.AttentionResponse, responses=api.ERRORS,
              summary="Translate one text and return its cross-attention, piece and word level")
    async def attention(req: api.AttentionRequest):
        api.check_request([req.text], req.beam, limits)
        direction = api.direction_of(req.source, req.target, translators)
        result, links = await run(Job("attention", [req.text], req.beam, req.alpha, direction))
        return await asyncio.to_thread(attention_payload, result, links)

    @app.get("/health", summary="Liveness, models and limits")
    async def health():
        alive = batcher.thread.is_alive()
        body = {"status": "ok" if alive else "error", "directions": list(translators),
                "model": model_info[batcher.default], "models": model_info, "limits": asdict(limits),
                "queue": batcher.pending, "stats": batcher.stats, "uptime_s": round(time.time() - started, 1)}
        return JSONResponse(body, status_code=200 if alive else 503)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)
