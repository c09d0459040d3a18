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
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


def shutting_down() -> APIError:
    return APIError(503, "shutting_down", "server is shutting down; try again")


class Worker:
    """One thread working through a queue of jobs, one job at a time: ``compute(translators,
    direction, job)`` gives each job's answer (``direction``: a key of ``translators``)."""

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
            if self.pending + len(job.texts) > self.limits.max_queue:
                raise APIError(503, "busy", f"server busy: more than {self.limits.max_queue} texts queued (max_queue)",
                               limit="max_queue", max=self.limits.max_queue)
            self.pending += len(job.texts)
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
                self.pending -= len(job.texts)
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(shutting_down())

    def _take(self, first: Job) -> list[Job]:
        """The jobs to run together, starting with ``first``."""
        return [first]

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
                self.pending -= sum(len(j.texts) for j in jobs)
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

    def _take(self, first: Job) -> list[Job]:
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

    def _execute(self, jobs: list[Job]) -> None:
        groups: dict[tuple, list[Job]] = {}  # one model call per direction and decoding setting
        for job in jobs:
            groups.setdefault((self.direction(job), job.beam, job.alpha, job.alternatives, job.format, job.confidence),
                              []).append(job)
        for group in groups.values():
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
            if first.format == "html":
                outputs = translator.translate_html(texts, first.beam, first.alpha, batch_size=self.limits.max_batch,
                                                    backward=self.reverse_aligner(self.direction(first)))
            elif first.alternatives:
                outputs = translator.translate_alternatives(texts, first.alternatives + 1, first.beam, first.alpha,
                                                            batch_size=self.limits.max_batch)
            elif first.confidence:
                outputs = translator.translate_with_confidence(texts, first.beam, first.alpha,
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
        self._count(len(texts))
        start = 0
        for job in jobs:
            job.future.set_result(outputs[start : start + len(job.texts)])
            start += len(job.texts)
