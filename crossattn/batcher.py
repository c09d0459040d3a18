"""The workers behind ``crossattn serve``: the threads that both HTTP APIs (our ``/api/*`` in
server.py, LibreTranslate's in libretranslate.py) hand their jobs to. It sits below both,
so neither server imports the other's insides.

Translations run on one thread (``Batcher``): jobs that arrive within a few milliseconds
share one model call, so N concurrent clients cost about one batched search instead of N.
The attention views run on a worker of their own (``Worker`` with the server's attention
function, which hands each job to a process of its own: server.AttentionProcess): the
first such job imports torch and loads the torch networks, and each one after it runs a
teacher-forced pass; on the translation thread that would hold up every translation
queued behind it.

Each worker bounds its queue (``Limits.max_queue``, 503 beyond it) and, when it stops,
answers every job still queued with a 503 instead of leaving its client waiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

from .detect import detect
from .errors import InputError
from .glossary import Glossary
from .markup import translate_html
from .server_api import APIError, Limits


@dataclass
class Job:
    texts: list[str]
    beam: int | None = None
    alpha: float | None = None
    direction: str = ""  # "en-fr"...; "" = the server's first direction
    alternatives: int = 0  # extra hypotheses per text (LibreTranslate's `alternatives`)
    format: str = "text"  # "html": markup kept (Translator.translate_html)
    confidence: bool = False  # answers are confidence.Confident (None for a text kept as it is)
    glossary: Glossary | None = None  # terms translated as it says (glossary.py); part of the batching key
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    document: bytes | None = None  # a file to translate (documents.py), named ``filename``; texts unused
    filename: str = ""
    detect_to: str = ""  # a document in a language to detect (source=auto), to translate into this one
    background: bool = False  # a piece of an html or file job (MarkupWorker): after the requests batched with it
    # when the client began to wait: a MarkupWorker stops work on it at the same deadline as the client
    created: float = field(default_factory=time.monotonic)

    @property
    def cost(self) -> int:
        """What the job counts for against its worker's max_queue: its texts, or 1 file."""
        return 1 if self.document is not None else len(self.texts)


def shutting_down() -> APIError:
    return APIError(503, "shutting_down", "server is shutting down; try again")


class Worker:
    """One thread working through a queue of jobs, one job at a time: ``compute(translators,
    direction, job)`` gives each job's answer (``direction``: a key of ``translators``)."""

    unit, queue_limit = "texts", "max_queue"  # what max_queue counts, and its name in errors

    def __init__(self, translators, limits: Limits, compute: Callable | None = None, name: str = "crossattn-worker"):
        """``translators``: {"en-fr": Translator, ...}, or one translator."""
        if not isinstance(translators, dict):
            translators = {"default": translators}
        self.translators, self.limits, self.compute = translators, limits, compute
        self.default = next(iter(translators))
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self.pending = 0  # texts queued, for the max_queue limit
        self.closed = False
        self.lock = threading.Lock()  # guards pending, closed and stats
        self.stats = {"batches": 0, "texts": 0, "largest_batch": 0}
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def direction(self, job: Job) -> str:
        return job.direction or self.default

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new jobs, answer the queued ones with 503 now, and let the job in progress
        finish (up to ``timeout`` seconds)."""
        with self.lock:
            self.closed = True
        self._drain()
        self.queue.put(None)  # wakes the thread if it is waiting for work
        if self.thread.ident is not None:
            self.thread.join(timeout)

    def submit(self, job: Job) -> concurrent.futures.Future:
        with self.lock:
            if self.closed:
                raise shutting_down()
            if self.pending + job.cost > self.limits.max_queue:
                raise APIError(503, "busy", f"server busy: more than {self.limits.max_queue} {self.unit} queued "
                               f"({self.queue_limit})", limit=self.queue_limit, max=self.limits.max_queue)
            self.pending += job.cost
            self.queue.put(job)  # under the lock: stop() never misses a job accepted here
        return job.future

    async def answer(self, job: Job):
        """Hand ``job`` to the thread and wait for its answer, within ``Limits.timeout_s``."""
        if not self.thread.is_alive():
            raise APIError(503, "unavailable", "model worker is not running")
        future = asyncio.wrap_future(self.submit(job))
        try:
            return await asyncio.wait_for(future, self.limits.timeout_s)
        except TimeoutError:
            raise APIError(504, "timeout", f"no answer within {self.limits.timeout_s:g} s (timeout_s)",
                           limit="timeout_s", max=self.limits.timeout_s) from None

    def snapshot(self) -> dict:
        """Texts queued and the counters, read under the lock that updates them."""
        with self.lock:
            return {"queue": self.pending, **self.stats}

    def _count(self, texts: int) -> None:
        with self.lock:
            self.stats["batches"] += 1
            self.stats["texts"] += texts
            self.stats["largest_batch"] = max(self.stats["largest_batch"], texts)

    def _drain(self) -> None:
        """Answer every job still queued with 503."""
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                return
            if job is None:
                continue
            with self.lock:
                self.pending -= job.cost
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(shutting_down())

    def _take(self, first: Job) -> list[Job]:
        """The jobs to run together, starting with ``first``."""
        return [first]

    def _gather(self, first: Job) -> list[Job]:
        """``first`` and the jobs that arrive within ``batch_wait_ms`` after it, up to
        ``max_batch`` texts in all."""
        jobs, size = [first], len(first.texts)
        deadline = time.monotonic() + self.limits.batch_wait_ms / 1000
        while size < self.limits.max_batch and (left := deadline - time.monotonic()) > 0:
            try:
                job = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if job is None:  # stop(): the batch collected so far still runs, then the loop ends
                self.queue.put(None)
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            with self.lock:
                closed = self.closed
            if first is None or closed:
                if first is not None:
                    self.queue.put(first)  # answered by the drain below, with the rest
                break
            jobs = self._take(first)
            with self.lock:
                self.pending -= sum(j.cost for j in jobs)
            # jobs whose client already gave up (timeout) are dropped here
            jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            try:
                self._execute(jobs)
            except Exception as e:  # a bug here must not kill the worker
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(e)
        self._drain()

    def _execute(self, jobs: list[Job]) -> None:
        for job in jobs:
            try:
                job.future.set_result(self.compute(self.translators, self.direction(job), job))
            except Exception as e:
                job.future.set_exception(e)
            self._count(len(job.texts))


class Batcher(Worker):
    """The translation thread: it owns the CTranslate2 calls; jobs that arrive close
    together share one call per direction and decoding setting."""

    def __init__(self, translators, limits: Limits, name: str = "crossattn-model"):
        super().__init__(translators, limits, name=name)
        # html and files are taken apart, aligned (torch) and put back together on threads of
        # their own; only their sentences come to this thread, a few at a time (MarkupWorker)
        self.markup = MarkupWorker(self, limits, name="crossattn-html")
        self.documents = MarkupWorker(self, replace(limits, timeout_s=limits.file_timeout_s,
                                                    max_queue=limits.max_file_jobs),
                                      name="crossattn-documents", unit="files", queue_limit="max_file_jobs")

    def start(self) -> None:
        super().start()
        self.markup.start()
        self.documents.start()

    def stop(self, timeout: float = 30.0) -> None:
        """The html and file workers first: their job in progress ends (503) at its next
        batch of sentences, and none of them waits on this thread once it is gone."""
        self.documents.stop(timeout)
        self.markup.stop(timeout)
        super().stop(timeout)

    def worker_for(self, job: Job) -> Worker:
        """Files go to the file worker, html to the html worker, text to this thread."""
        if job.document is not None:
            return self.documents
        return self.markup if job.format == "html" else self

    def submit(self, job: Job) -> concurrent.futures.Future:
        worker = self.worker_for(job)
        return super().submit(job) if worker is self else worker.submit(job)

    async def answer(self, job: Job):
        worker = self.worker_for(job)
        return await (super().answer(job) if worker is self else worker.answer(job))

    def _take(self, first: Job) -> list[Job]:
        return self._gather(first)

    def _execute(self, jobs: list[Job]) -> None:
        groups: dict[tuple, list[Job]] = {}  # one model call per direction and decoding setting
        for job in jobs:
            groups.setdefault((self.direction(job), job.beam, job.alpha, job.alternatives, job.format, job.confidence,
                               job.glossary, job.background), []).append(job)
        # the requests' own texts first: a file's batch that came with them waits for them, not they for it
        for group in sorted(groups.values(), key=lambda group: group[0].background):
            self._translate(group)

    def reverse_aligner(self, direction: str):
        """The other direction's alignment model when that direction is served (html jobs
        symmetrize their word alignment with it), else None."""
        source, _, target = direction.partition("-")
        other = self.translators.get(f"{target}-{source}")
        return other.alignment_model() if other is not None else None

    def _translate(self, jobs: list[Job]) -> None:
        texts = [t for j in jobs for t in j.texts]
        first = jobs[0]
        translator = self.translators[self.direction(first)]
        try:
            if first.alternatives:
                outputs = translator.translate_alternatives(texts, first.alternatives + 1, first.beam, first.alpha,
                                                            batch_size=self.limits.max_batch, glossary=first.glossary)
            elif first.confidence:
                outputs = translator.translate_with_confidence(texts, first.beam, first.alpha,
                                                               batch_size=self.limits.max_batch,
                                                               glossary=first.glossary)
            else:
                outputs = translator.translate(texts, first.beam, first.alpha, batch_size=self.limits.max_batch,
                                               glossary=first.glossary)
        except Exception as e:
            if len(jobs) == 1:
                jobs[0].future.set_exception(e)
            else:  # one bad input must not fail its batch-mates: retry each alone
                for job in jobs:
                    self._translate([job])
            return
        self._count(len(texts))
        start = 0
        for job in jobs:
            job.future.set_result(outputs[start : start + len(job.texts)])
            start += len(job.texts)


def release_freed_memory() -> None:
    """Hand the heap's free memory back to the system (glibc's malloc_trim) after a file:
    a refused archive's inflated parts are freed, but glibc keeps freed heap memory for
    reuse, and without this the server's resident size grew by some 65 MB per archive bomb
    whose headers lie (bench/README.md, "Files over HTTP"). A no-op where libc is not glibc."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()


# A file or an html text goes to the translation thread this many texts at a time, each
# batch waiting for the one before: a /translate request that arrives meanwhile waits for
# at most one such batch, not for the whole file (measured: bench/README.md, "Files").
MARKUP_CHUNK = 8


class MarkupWorker(Worker):
    """html texts (format=html) or files (documents.py): taken apart, aligned and put back
    together on this worker's thread; their sentences are translated by the ``batcher``'s
    thread, MARKUP_CHUNK texts at a time, between the text requests. The first job that
    aligns words loads the torch network here, not on the translation thread."""

    def __init__(self, batcher: Batcher, limits: Limits, name: str, unit: str = "texts",
                 queue_limit: str = "max_queue"):
        super().__init__(batcher.translators, limits, self._answer, name)
        self.batcher, self.unit, self.queue_limit = batcher, unit, queue_limit

    def _take(self, first: Job) -> list[Job]:
        """html jobs that arrive close together run together (their sentences share the
        translation batches, their pairs one alignment call); a file runs alone."""
        return [first] if first.document is not None else self._gather(first)

    def _execute(self, jobs: list[Job]) -> None:
        groups: dict[tuple, list[Job]] = {}  # jobs alike in all but their texts
        for job in jobs:
            key = tuple(getattr(job, f.name) for f in fields(job) if f.name not in ("texts", "future", "created"))
            groups.setdefault(key, []).append(job)
        for group in groups.values():
            if len(group) == 1:
                super()._execute(group)
                if group[0].document is not None:
                    group[0].document = None  # (the worker's loop holds its last jobs until the next)
                    release_freed_memory()
                continue
            together = replace(group[0], texts=[t for j in group for t in j.texts], future=concurrent.futures.Future())
            try:
                outputs = self._answer(self.translators, self.direction(together), together)
            except Exception:  # one bad input must not fail the others: each alone
                super()._execute(group)
                continue
            start = 0
            for job in group:
                job.future.set_result(outputs[start : start + len(job.texts)])
                start += len(job.texts)
            self._count(len(together.texts))

    def _answer(self, translators: dict, direction: str, job: Job):
        deadline = job.created + self.limits.timeout_s  # queueing included, as the client's wait (answer)
        chosen: list[str] = [] if job.detect_to else [direction]  # decided on the first texts

        def translate(texts: list[str]) -> list[str]:
            if not chosen:
                chosen.append(self._detected_direction(texts, job.detect_to))
            if chosen[0] not in translators:  # written in the target language already
                return list(texts)
            return self._translate(texts, chosen[0], job, deadline)

        def align(pairs):  # no links: markup.py places the tags by relative position
            translator = translators.get(chosen[0])
            aligner = translator.word_aligner(self.batcher.reverse_aligner(chosen[0])) if translator else None
            return aligner(pairs) if aligner is not None else [set() for _ in pairs]

        def html(documents: list[str]) -> list[str]:
            return translate_html(documents, translate, align)

        if job.document is None:
            try:
                return html(job.texts)
            except InputError as e:  # markup.py's refusal: inline elements nested too deep
                raise APIError(400, "bad_html", str(e)) from None
        from .documents import DocumentLimits, translate_document

        try:  # the size limit is serve's --max-file-mb; the archive limits are the library's
            return translate_document(job.document, job.filename, translate, html,
                                      DocumentLimits(max_input_bytes=self.limits.max_file_bytes))
        except InputError as e:  # refused: its traceback would keep the file's inflated parts alive
            e.__traceback__ = e.__context__ = e.__cause__ = None
            raise

    def _detected_direction(self, texts: list[str], target: str) -> str:
        """"en-fr"... for texts whose language is detected (a direction not served is a
        400); the target language itself ("fr-fr") when they are in it already."""
        languages = sorted({code for d in self.translators for code in d.split("-", 1)})
        sample = "\n".join(texts)[:10_000]
        found = detect(sample, languages, target if target in languages else None)[0]
        direction = f"{found}-{target}"
        if found != target and direction not in self.translators:
            raise APIError(400, "unsupported_language", f"{found} is not supported")
        return direction

    def _translate(self, texts: list[str], direction: str, job: Job, deadline: float) -> list[str]:
        outputs: list[str] = []
        for start in range(0, len(texts), MARKUP_CHUNK):
            with self.lock:
                closed = self.closed
            if closed:
                raise shutting_down()
            left = deadline - time.monotonic()
            if left <= 0:
                raise APIError(504, "timeout", f"no answer within {self.limits.timeout_s:g} s",
                               limit="timeout_s", max=self.limits.timeout_s)
            # the job's other settings (decoding, glossary...) carried over; a plain-text job of a few texts
            part = replace(job, texts=texts[start : start + MARKUP_CHUNK], direction=direction, format="text",
                           document=None, filename="", detect_to="", background=True,
                           future=concurrent.futures.Future())
            try:
                outputs += self.batcher.submit(part).result(timeout=left)
            except concurrent.futures.TimeoutError:
                part.future.cancel()
                raise APIError(504, "timeout", f"no answer within {self.limits.timeout_s:g} s",
                               limit="timeout_s", max=self.limits.timeout_s) from None
        return outputs
