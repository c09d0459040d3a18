"""Translator: text in, text out, with CTranslate2, the C++ engine the field serves
Transformer translation models with (OpenNMT, Argos Translate, LibreTranslate).

We train in PyTorch and translate with CTranslate2: ``crossattn translate``, ``evaluate``
and ``serve`` use this class. The model directory stays the one source of truth; its
CTranslate2 conversion (export.py) is made on first use and cached, keyed by the
weights' checksum, so a changed model is never served from a stale cache. The
conversion imports torch once; after that, translating never does.

Conventions shared with the torch engine (modeldir.py, decoding.py): the same normalizer,
sentence splitting, output-length budget per sentence and length penalty, so both engines
give the same tokens (tests/test_export.py checks it, greedy and beam). Two things are
this engine's own: the repetition guard (a translation that loops is searched again
without the loop; ``repetition_guard=False`` turns it off) and the thread count, chosen
by a measured rule (``measured_threads``).

The attention views need the network's insides: ``translate_with_attention`` takes the
translation from this engine and reads its cross-attention with one teacher-forced
torch pass (torch_engine.py), loaded on first use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from itertools import groupby
from pathlib import Path

from .atomic import write_text_atomic
from .confidence import Confident, ScoredPart, confident_translation, piece_owners, shouted_part
from .decoding import decoding_settings, max_output_length, model_decoding
from .detect import detect
from .errors import ConfigError
from .glossary import Glossary, TermSpan, agreement_variants, restore_terms, templated, terms_written, unobeyed
from .modeldir import (WEIGHTS, ModelDirError, SourceText, cache_root, read_model_dir, sha256_file,
                       target_language, tokenizer_files)
from .precision import COMPUTE_TYPES, PrecisionError, default_compute_type
from .text import PLACEHOLDER

def ctranslate2_model(model_dir: Path, config: dict, quantization: str | None = None) -> Path:
    """The CTranslate2 conversion of ``model_dir`` (weights stored as ``quantization``, e.g.
    "int8", or float32), converted now if not cached yet: loading int8 weights directly
    starts faster than quantizing float32 ones at load.

    Written to a private temporary directory and renamed into place, so a crash or a
    concurrent first run never leaves (or reads) a half-written model.
    """
    import ctranslate2

    # the network's shape and every file the conversion reads: a changed config or
    # tokenizer is a different model even with the same weights
    files = {name: config.get("files", {}).get(name) or sha256_file(model_dir / name)
             for name in (WEIGHTS, *tokenizer_files(config))}
    key = json.dumps({"model": config.get("model"), "files": files}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()
    final = cache_root() / "ct2" / f"{digest[:24]}-{quantization or 'float32'}-ct2-{ctranslate2.__version__}"
    if (final / "model.bin").is_file():
        _mark_used(final)
        return final
    from .export import export_ctranslate2  # imports torch: first use only

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}-{threading.get_ident()}")
    try:
        export_ctranslate2(model_dir, tmp, quantization, force=True)
        os.replace(tmp, final)
    except OSError:
        if not (final / "model.bin").is_file():  # not a lost race with another process
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune_conversions(final.parent, keep=final)
    return final


# -- the conversion cache stays bounded ------------------------------------------------
# Every model directory translated gets a conversion (per compute type): a user who trains,
# imports or evaluates many models would otherwise fill the disk (one session's benches and
# tests left 2.5 GB in 40 entries here, 2026-12-06; an opus-mt-shaped model is 240 MB in
# float32). A conversion is made again in seconds, so the least recently used ones go once
# the cache holds more than CONVERSIONS_CACHE_MB; one used in the last hour stays (another
# process may be about to load it), and so does a half-written one of a run still going.
CONVERSIONS_CACHE_MB = 2048
CONVERSIONS_CACHE_ENV = "CROSSATTN_CONVERSIONS_MB"  # another cap, in MB (0: no cap)
RECENT_USE_S = 3600
STALE_TMP_S = 86400  # a half-written conversion this old was left by a killed run
CONVERSION_NAME = re.compile(r"[0-9a-f]{24}-[a-z0-9]+-ct2-[0-9][0-9A-Za-z.+-]*")


def _mark_used(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # a read-only cache still serves
        pass


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prune_conversions(folder: Path, keep: Path | None = None, cap_mb: float | None = None,
                      now: float | None = None) -> list[Path]:
    """Remove the least recently used conversions in ``folder`` (cache_root()/ct2) until
    the rest fit in ``cap_mb`` (default $CROSSATTN_CONVERSIONS_MB, else
    CONVERSIONS_CACHE_MB), sparing ``keep`` and any used in the last RECENT_USE_S, and the
    half-written ones of killed runs (older than STALE_TMP_S). Only names of the cache's
    own shape are touched. Returns what was removed."""
    if cap_mb is None:
        value = os.environ.get(CONVERSIONS_CACHE_ENV) or str(CONVERSIONS_CACHE_MB)
        try:
            cap_mb = float(value)
        except ValueError:
            raise ConfigError(f"${CONVERSIONS_CACHE_ENV} must be a number of MB, not {value!r}") from None
    now = time.time() if now is None else now
    removed = []
    entries = []
    for path in folder.iterdir() if folder.is_dir() else []:
        try:
            age = now - path.stat().st_mtime
        except OSError:  # removed by another process meanwhile
            continue
        if path.name.startswith(".") and ".tmp" in path.name and CONVERSION_NAME.match(path.name[1:]):
            if age > STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        elif CONVERSION_NAME.fullmatch(path.name) and path.is_dir():
            entries.append((age, path))
    if cap_mb <= 0:
        return removed
    entries.sort()  # most recently used first
    total = 0
    for age, path in entries:
        size = _tree_bytes(path)
        if total + size > cap_mb * 2**20 and path != keep and age > RECENT_USE_S:
            # renamed out of the cache's names first: a run killed while deleting, or
            # another process looking meanwhile, never finds a conversion with files missing
            # (what is left is a stale half-written one, removed a day later)
            doomed = path.with_name(f".{path.name}.tmp-pruned{os.getpid()}-{threading.get_ident()}")
            try:
                os.replace(path, doomed)
            except OSError:  # taken or removed by another process meanwhile
                continue
            shutil.rmtree(doomed, ignore_errors=True)
            removed.append(path)
        else:
            total += size
    return removed


# -- how many CPU threads: a measured rule ---------------------------------------------
# More threads are not always faster: beam search on a 21M-parameter model runs many small
# GEMMs, and OpenMP threads that wait on each other (or on a core someone else is using)
# can cost more than they give. On the same 2-vCPU AMD EPYC (AVX2), issue 28 measured
# CTranslate2 faster with 1 thread than with 2 (beam 4, 2,410 tatoeba/test sources), while
# a probe run there under a load average of 8-9 (other jobs on both cores) on 2026-12-03
# found 2 threads faster in 7 runs of 8: the answer depends on the machine and its load.
# So it is measured where the model runs: a short fixed translation is timed with 1, 2,
# 4, ... threads, once, and the answer is cached beside the converted models (delete
# cache_root()/threads.json to measure again; --threads or $CROSSATTN_THREADS override).
#
# The threads work as parallel batches of one thread each (CTranslate2's inter_threads),
# not as threads inside one batch (intra_threads): _search sends each length group as a
# batch of its own, and small batches scale poorly over threads. On the 2-vCPU AMD EPYC
# on 2026-12-06 (bench/README.md, "Threads"), 2 batches x 1 thread beat 1 batch x 2
# threads by 1.36x on single sentences, 1.28x on server batches of 24 and 1.10x on a
# 480-sentence file, with identical outputs (the weights are shared: +23 MB either way).
THREADS_MIN_SPEEDUP = 1.15  # more threads must beat fewer by this much: a near tie is not worth the cores
THREADS_CACHE = "threads.json"
THREADS_ENV = "CROSSATTN_THREADS"  # an explicit count for every command (tests, benchmarks)
PROBE_SOURCES, PROBE_TOKENS, PROBE_BEAM = 32, 6, 4  # sources shaped like a file's, 6 steps of beam 4
PROBE_GROUPS = 4  # ... in this many batches of different source lengths, as _search sends them


def group_cost(budget: int, sentences: int) -> float:
    """A length group's expected search time, in units of one sentence's decoding step:
    the steps its budget allows, times what its sentences cost together. One thread,
    beam 4, an opus-mt-shaped int8 model on the 2-vCPU AMD EPYC (2026-12-07): groups of 2
    and 3 took 1.6x and 2.2x the time of one sentence under the same budget, near
    (n + 1) / 2. Queueing by this rather than by length alone (a group of three 13-word
    sentences outweighs one 15-word sentence) was faster on 8 of 11 draws (9 of 16
    sentences, one of 8, one of 32) and on 7 of 11 in a rerun, the median against
    CTranslate2 0.98x -> 1.01x (bench/length_groups.py; bench/README.md, "An imported
    Marian model")."""
    return budget * (sentences + 1) / 2


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def thread_candidates(cpus: int) -> list[int]:
    """The thread counts the probe times: 1, 2, 4, ... below ``cpus``, and ``cpus`` itself."""
    counts = [1]
    while counts[-1] * 2 < cpus:
        counts.append(counts[-1] * 2)
    return counts + [cpus] if cpus > 1 else counts


def choose_threads(seconds: dict[int, float], min_speedup: float = THREADS_MIN_SPEEDUP) -> int:
    """The rule: from 1 thread up, a larger count replaces the one chosen so far only when
    it runs the probe at least ``min_speedup`` times faster (``seconds``: absolute or
    relative times, {count: time})."""
    best = min(seconds)
    for count in sorted(seconds):
        if count > best and seconds[best] >= min_speedup * seconds[count]:
            best = count
    return best


def plausible(seconds: dict[int, float], slack: float = 1.1) -> bool:
    """No count ran the probe more than ``slack`` x its share faster than the smallest count
    (n threads at most n times faster than 1). 2 threads "3.5x faster than 1", as measured
    here on 2026-12-03 with 8 other processes on 2 cores, means the 1-thread runs waited for
    a core: such a probe is not kept."""
    first = min(seconds)
    return all(seconds[first] / seconds[n] <= slack * n / first for n in seconds if seconds[n] > 0)


def load_average() -> float:
    """The machine's load average over the last minute (0 where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def measured_threads(key: str, probe: Callable[[list[int]], dict[int, float]], cpus: int | None = None,
                     cache: Path | None = None, load: Callable[[], float] = load_average) -> int:
    """The thread count for the machine and model named by ``key``: cached in ``cache``
    (JSON, one entry per key), else measured now with ``probe(counts) -> {count: time}``
    (``probe_seconds``: times relative to 1 thread) on ``thread_candidates`` and written there. One CPU: 1, unmeasured. A cache
    that cannot be read is measured again; one that cannot be written costs the next
    start its probe. A probe run while every core was busy already (``load()``, the load
    average, at least ``cpus``) serves this start but is not cached: on 2026-12-06 one run
    at a load average of 4.6 found 2 parallel batches no faster than 1 (0.9996x): the other
    jobs held the cores, and the answer, cached, would have outlived them."""
    cpus = usable_cpus() if cpus is None else cpus
    if cpus <= 1:
        return 1
    cache = cache_root() / THREADS_CACHE if cache is None else cache
    key = f"{key}|cpus {cpus}"
    try:
        entries = json.loads(cache.read_text())
        return int(entries[key]["threads"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    busy = load()
    seconds = probe(thread_candidates(cpus))
    threads = choose_threads(seconds)
    if busy >= cpus or not plausible(seconds):  # someone else's load skewed the probe: use it now, measure again next time
        return threads
    try:
        try:
            entries = json.loads(cache.read_text())
            entries = entries if isinstance(entries, dict) else {}
        except (OSError, ValueError):
            entries = {}
        entries[key] = {"threads": threads, "time_vs_1_thread": seconds,
                        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        "load_average": round(busy, 2)}
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cache, json.dumps(entries, indent=1) + "\n")
    except OSError:
        pass
    return threads


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe_seconds(ct2_dir: Path, compute_type: str, vocabulary: list[str], counts: list[int],
                  rounds: int = 5) -> dict[int, float]:
    """Time of a fixed beam search (PROBE_SOURCES sources of vocabulary pieces in
    PROBE_GROUPS batches of different lengths, exactly PROBE_TOKENS steps each) with each
    thread count of ``counts`` (as parallel batches: ``engine``), relative to the first
    count's: in each of ``rounds`` rounds the counts run back to back, and the median of
    the rounds' ratios is kept. Someone else's burst of load slows one round, not the
    median; a slow drift of load hits both sides of each ratio."""
    import ctranslate2

    engines = {n: engine(ctranslate2, ct2_dir, "cpu", 0, compute_type, n) for n in counts}
    groups = [[[vocabulary[4 + (7 * i + 13 * j) % (len(vocabulary) - 4)] for j in range(PROBE_TOKENS + g)]
               for i in range(g, PROBE_SOURCES, PROBE_GROUPS)] for g in range(PROBE_GROUPS)]
    options = dict(beam_size=PROBE_BEAM, min_decoding_length=PROBE_TOKENS, max_decoding_length=PROBE_TOKENS,
                   max_input_length=0, asynchronous=True)

    def run(translator) -> None:
        for results in [translator.translate_batch(group, **options) for group in groups]:
            for result in results:
                result.result()

    for translator in engines.values():  # warm-up: first-call allocations are not counted
        run(translator)
    ratios: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(rounds):
        seconds = {}
        for n, translator in engines.items():
            start = time.perf_counter()
            run(translator)
            seconds[n] = time.perf_counter() - start
        for n in counts:
            ratios[n].append(seconds[n] / seconds[counts[0]])
    return {n: statistics.median(r) for n, r in ratios.items()}


def engine(ctranslate2, ct2_dir: Path, device: str, device_index: int, compute_type: str, threads: int):
    """A CTranslate2 translator using ``threads`` CPU threads as that many batches run in
    parallel, one thread each (the rule's comment above says why); 0 = CTranslate2's
    defaults (on a GPU)."""
    return ctranslate2.Translator(str(ct2_dir), device=device, device_index=device_index,
                                  compute_type=compute_type, inter_threads=max(threads, 1),
                                  intra_threads=1 if threads else 0)


# -- loops: the repetition guard -------------------------------------------------------
LOOP_REPEATS = 3  # a unit written this many times in a row is a loop ("John" -> "John John John")
LOOP_UNIT = 4  # units of up to this many pieces ("de la de la de la")
GUARD_ROUNDS = 2  # a second loop after the first is banned is banned too; then the output stands
GUARD_BEAM_FACTOR = 2  # the search again is this many times wider: the loop had crowded out the rest
TERM_NBEST = 8  # a translation that lost a glossary placeholder: the best of this many that keeps it
GLOSSARY_NBEST = 8  # a sentence given glossary placeholders: candidates from this many best, with and without them


@dataclasses.dataclass
class HeldSentence:
    """A sentence that ``Translator._obey`` translated with placeholders for terms."""

    position: int  # in the flat list of sentences
    plain: list[int]  # source ids as written
    held: list[int]  # source ids with the missed terms as placeholders
    every: list[int]  # source ids with every term as a placeholder
    terms: list[TermSpan]  # every term occurrence of the sentence (placeholders named as in ``every``)
    held_terms: list[TermSpan]  # the ones behind its placeholders
    hyp: list[int]  # the placeholder translation
    shouted: bool = False  # written in capitals by finish: its terms are counted so


@dataclasses.dataclass
class Candidate:
    """One translation a held sentence may get (``Translator._glossary_candidates``)."""

    origin: str  # "placeholders", a search's name, or "extra N"
    rank: int  # in its search's n-best
    text: str  # the translation, terms written
    ids: list[int]  # what finish is given: the held terms as their placeholders
    written: int  # term occurrences of the sentence it writes (glossary.terms_written)
    log_prob: float = 0.0  # the model's, for the plain source
    pieces: int = 1

    def rank_key(self) -> tuple[int, float]:
        """The shipped choice: the most terms, then the best mean log-probability per piece."""
        return self.written, self.log_prob / max(self.pieces, 1)


def repeated_unit(pieces: list[str], repeats: int = LOOP_REPEATS, longest: int = LOOP_UNIT) -> tuple[str, ...] | None:
    """The first unit of 1 to ``longest`` pieces that ``pieces`` write ``repeats`` or more
    times in a row (letter case aside), or None."""
    low = [p.lower() for p in pieces]
    for k in range(1, longest + 1):
        for i in range(len(low) - repeats * k + 1):
            unit = low[i : i + k]
            if all(low[i + r * k : i + (r + 1) * k] == unit for r in range(1, repeats)):
                return tuple(pieces[i : i + k])
    return None


class Translator:
    """A shipped direction ("en-fr", "fr-en") or a model directory, translating with CTranslate2."""

    def __init__(self, model_dir: str | Path | None = None, device: str = "auto", dtype: str = "auto",
                 threads: int | None = None):
        """``threads``: CPU threads for translation; None = $CROSSATTN_THREADS if set (as
        for training), else the measured rule (``measured_threads``); 0 = CTranslate2's
        own default."""
        import ctranslate2

        self.root, self.config, self.model_config, self.tokenizer = read_model_dir(model_dir)
        self.decoding = model_decoding(self.config.get("decoding"))
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        self.device, _, index = device.partition(":")
        if self.device not in ("cpu", "cuda"):
            raise PrecisionError(f"unknown device {device!r}; choose from auto, cpu, cuda, cuda:N")
        if self.device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
            raise PrecisionError(f"--device {device}: no CUDA GPU on this machine; use --device cpu or auto")
        self.dtype = default_compute_type(self.device) if dtype == "auto" else dtype
        if self.dtype not in COMPUTE_TYPES:
            raise PrecisionError(f"unknown dtype {dtype!r}; choose from auto, {', '.join(COMPUTE_TYPES)}")
        compute = COMPUTE_TYPES[self.dtype]
        if compute not in ctranslate2.get_supported_compute_types(self.device):
            raise PrecisionError(f"--dtype {self.dtype} is not supported on this {self.device} by CTranslate2; "
                                 f"use fp32 or int8")
        if threads is None and os.environ.get(THREADS_ENV):
            threads = os.environ[THREADS_ENV]
            threads = int(threads) if threads.isdigit() else threads
        if threads is not None and (not isinstance(threads, int) or threads < 0):
            raise PrecisionError(f"threads must be a positive integer, not {threads!r}")
        self.ct2_dir = ctranslate2_model(self.root, self.config, "int8" if self.dtype == "int8" else None)
        self.pieces = [self.tokenizer.id_to_piece(i) for i in range(self.tokenizer.vocab_size)]
        if threads is None:  # on a GPU the CPU threads do little: CTranslate2's default
            threads = 0 if self.device == "cuda" else self._measured_threads(ctranslate2.__version__, compute)
        self.threads = threads
        try:
            self.engine = engine(ctranslate2, self.ct2_dir, self.device, int(index or 0), compute, threads)
        except (RuntimeError, ValueError) as e:
            raise ModelDirError(f"{self.ct2_dir}: CTranslate2 cannot load it ({e})") from None
        self.piece_id = {p: i for i, p in enumerate(self.pieces)}
        # one position is kept for BOS/EOS bookkeeping, as in the torch engine
        self.max_source_tokens = self.model_config.max_positions - 1
        self._torch = None
        self._aligner = None
        self._torch_lock = threading.Lock()

    @classmethod
    def load(cls, model: str | Path | None = None, device: str = "auto", dtype: str = "auto",
             threads: int | None = None) -> "Translator":
        return cls(model, device, dtype, threads)

    def _measured_threads(self, ct2_version: str, compute: str) -> int:
        m = self.model_config
        key = (f"{cpu_model_name()}|ctranslate2 {ct2_version}|{compute}|parallel batches|d {m.d_model}, layers "
               f"{m.encoder_layers}+{m.decoder_layers}, vocabulary {m.vocab_size}")
        try:
            return measured_threads(key, lambda counts: probe_seconds(self.ct2_dir, compute, self.pieces, counts))
        except (RuntimeError, ValueError) as e:
            raise ModelDirError(f"{self.ct2_dir}: CTranslate2 cannot load it ({e})") from None

    @property
    def direction(self) -> str | None:
        """"en-fr" etc. when the model directory says which languages it translates."""
        langs = self.config.get("languages")
        if langs:
            return f"{langs['source']}-{langs['target']}"
        return self.root.name if re.fullmatch(r"[a-z]{2,3}-[a-z]{2,3}", self.root.name) else None

    @property
    def target_language(self) -> str | None:
        """The language the model writes, as a two-letter code when it is one ("fr", from
        config.json's languages or a directory named "en-fr"; "fra" and "fr_CA" read "fr")."""
        code = target_language(self.config) or (self.direction or "").rpartition("-")[2]
        code = re.split(r"[-_]", code.lower())[0] if code else ""
        return {"fra": "fr", "fre": "fr", "eng": "en"}.get(code, code) or None

    def translate(self, texts: list[str], beam: int | None = None, alpha: float | None = None,
                  split_sentences: bool = True, batch_size: int = 64, repetition_guard: bool = True,
                  keep_target_language: bool = False,
                  glossary: Glossary | Mapping[str, str] | None = None) -> list[str]:
        """One output per input, in order; empty input gives empty output. With
        ``split_sentences`` each sentence of a text is translated on its own and the
        translations are joined in order. URLs and e-mail addresses come through as
        written, characters the vocabulary lacks get stand-ins, dollar amounts keep their
        sign, and a sentence in capitals is translated in sentence case and given back in
        capitals (modeldir.SourceText, shared with the torch engine). A translation that
        loops is searched again without the loop (``repetition_guard``, ``_unloop``: this
        engine's own; without it, both engines give the same tokens).

        ``keep_target_language`` (``--from auto``): a text that detect.py finds in the
        target language already, or without a letter, is given back as it is; the others
        are translated.

        ``glossary`` (a glossary.Glossary, or a dict of source term -> translation): each
        term found in a text is translated as the glossary says (glossary.py)."""
        if keep_target_language:
            return self._outside_target_language(texts, lambda todo: self.translate(
                todo, beam, alpha, split_sentences, batch_size, repetition_guard, glossary=glossary), kept=lambda t: t)
        sources, _, hyps = self._translated_ids(texts, beam, alpha, split_sentences, batch_size, repetition_guard,
                                                glossary)
        hyps = iter(hyps)
        return [s.finish([self.tokenizer.decode(next(hyps)) for _ in s.ids]) for s in sources]

    def translate_with_confidence(self, texts: list[str], beam: int | None = None, alpha: float | None = None,
                                  split_sentences: bool = True, batch_size: int = 64, repetition_guard: bool = True,
                                  keep_target_language: bool = False,
                                  glossary: Glossary | Mapping[str, str] | None = None) -> list[Confident | None]:
        """``translate``'s translations (the same text, the same search) with the model's
        confidence: each translation is scored token by token (CTranslate2's score_batch,
        one teacher-forced pass), and the pieces' probabilities are put on the words of the
        final text (confidence.py). With ``keep_target_language``, a text kept as it is
        (already in the target language) gets None: the model wrote nothing of it."""
        if keep_target_language:
            return self._outside_target_language(texts, lambda todo: self.translate_with_confidence(
                todo, beam, alpha, split_sentences, batch_size, repetition_guard, glossary=glossary),
                kept=lambda t: None)
        sources, flat, hyps = self._translated_ids(texts, beam, alpha, split_sentences, batch_size,
                                                   repetition_guard, glossary)
        scores = self.engine.score_batch([[self.pieces[t] for t in ids] for ids in flat],
                                         [[self.pieces[t] for t in hyp] for hyp in hyps],
                                         max_batch_size=batch_size, max_input_length=0)
        scored = iter(zip(hyps, scores))
        outputs = []
        for source in sources:
            decoded, parts = [], []
            for shouted in source.shouted:
                hyp, score = next(scored)
                text, owners = piece_owners(self.tokenizer.decode, hyp)
                decoded.append(text)  # what translate decodes: the last prefix is the whole translation
                if shouted:  # as finish writes it
                    text, owners = shouted_part(text, owners)
                parts.append(ScoredPart(text, owners, list(score.log_probs)))
            outputs.append(confident_translation(source.finish(decoded), parts))
        return outputs

    def _translated_ids(self, texts: list[str], beam: int | None, alpha: float | None, split_sentences: bool,
                        batch_size: int, guard: bool, glossary) -> tuple[list[SourceText], list[list[int]], list]:
        """The search behind ``translate`` and ``translate_with_confidence``: each text
        prepared (SourceText), its sentences' ids, and each sentence's best target ids."""
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        sources = self._sources(texts, split_sentences)
        flat = [ids for s in sources for ids in s.ids]
        hyps = self._search(flat, beam, alpha, batch_size, guard=guard)
        if Glossary.of(glossary):
            sources, flat, hyps = self._obey(texts, Glossary.of(glossary), sources, hyps, beam, alpha,
                                             split_sentences, batch_size, guard)
        return sources, flat, hyps

    def _obey(self, texts: list[str], glossary: Glossary, plain: list[SourceText], plain_hyps: list[list[int]],
              beam: int, alpha: float, split_sentences: bool, batch_size: int, guard: bool,
              best_scored: bool = True) -> tuple[list[SourceText], list[list[int]], list[list[int]]]:
        """A glossary applied to the translations made without it (``plain``): a text whose
        translation writes each of its terms as the glossary says (glossary.unobeyed) is
        kept as it is; in the others, only the terms the translation missed become
        placeholders (Glossary.only), and only the sentences that hold them are translated
        again (``_keep_terms``): a sentence without such a term keeps its translation, byte
        for byte. A term that the new translation loses in turn becomes a placeholder too,
        until every term is written (``finish`` appends a placeholder the model dropped).
        Why: a placeholder changes the words around it (the model writes "ce X3" not
        knowing X3 is "fin de semaine"), and on the dev glossaries placeholders for every
        term changed 28 of the 31 en-fr translations that used every term already
        (bench/glossary.py).

        Then, with ``best_scored``, each sentence that got placeholders is written as the
        best of several candidates (``_best_scored``): the placeholder translation, the
        placeholder search's and the plain search's GLOSSARY_NBEST best; of those that
        write the most of the sentence's terms, the one the model scores best for the
        source as written (its mean log-probability per piece). ``best_scored=False`` is
        the placeholder translation alone (what bench/glossary.py compares it with)."""
        done = {tuple(ids): hyp for ids, hyp in zip((ids for s in plain for ids in s.ids), plain_hyps)}
        wanted = self._sources(texts, split_sentences, glossary)  # where the terms are
        sources = list(plain)
        protected: list[set[str]] = [set() for _ in texts]
        pending = [k for k, want in enumerate(wanted) if want.terms]
        while pending:  # each round protects more terms of each text it touches: it ends
            new = [list(ids) for ids in dict.fromkeys(tuple(ids) for k in pending for ids in sources[k].ids
                                                      if tuple(ids) not in done)]
            if new:
                redone = self._keep_terms([sources[k] for k in pending], new,
                                          self._search(new, beam, alpha, batch_size, guard=guard),
                                          beam, alpha, batch_size, guard)
                done.update(zip(map(tuple, new), redone))
            again = []
            for k in pending:
                written = sources[k].finish([self.tokenizer.decode(done[tuple(ids)]) for ids in sources[k].ids])
                missing = unobeyed(written, wanted[k].terms) | protected[k]
                if missing != protected[k]:
                    protected[k] = missing
                    sources[k] = self._sources([texts[k]], split_sentences, glossary.only(missing))[0]
                    again.append(k)
            pending = again
        flat = [ids for s in sources for ids in s.ids]
        hyps = [done[tuple(ids)] for ids in flat]
        if best_scored:
            hyps = self._best_scored(plain, wanted, sources, hyps, beam, alpha, batch_size, guard)
        return sources, flat, hyps

    def _glossary_sentences(self, plain: list[SourceText], wanted: list[SourceText], sources: list[SourceText],
                            hyps: list[list[int]], with_terms: bool = False) -> list[HeldSentence]:
        """The sentences ``_obey`` translated with placeholders (their ids differ from the
        plain ones; with ``with_terms``, every sentence that holds a term), each with its
        terms: all of them (from ``wanted``, every term a placeholder) and the held ones
        (from ``sources``). A text whose three versions split into different numbers of
        sentences is left out (its sentences cannot be paired)."""
        def spans_in(source: SourceText, ids: list[int]) -> list[TermSpan]:
            names = {m.group(0).upper() for m in PLACEHOLDER.finditer(self.tokenizer.decode(ids))}
            return [span for span in source.terms if span.placeholder.upper() in names]

        out, position = [], 0
        for text, source in enumerate(sources):
            if (source is not plain[text] or with_terms) and \
                    len(source.ids) == len(plain[text].ids) == len(wanted[text].ids):
                for i, (held, ids, every) in enumerate(zip(source.ids, plain[text].ids, wanted[text].ids)):
                    if held != ids or with_terms and every != ids:
                        out.append(HeldSentence(position + i, ids, held, every, spans_in(wanted[text], every),
                                                spans_in(source, held), hyps[position + i],
                                                shouted=wanted[text].shouted[i]))
            position += len(source.ids)
        return out

    def _glossary_candidates(self, sentences: list[HeldSentence], searches: Mapping[str, tuple[str, int]],
                             beam: int, alpha: float, batch_size: int, guard: bool,
                             extra: list[list[str]] | None = None) -> list[list[Candidate]]:
        """Per sentence: its candidates, scored. First the sentence's translation now
        (``hyp``), then each of ``searches`` (name -> (side, n): the n best of a beam of at
        least n, for the sentence as written ("plain") or with its held terms as
        placeholders ("held")), then ``extra`` strings (translations
        without placeholders; bench/glossary.py's other mechanisms); the same text twice is
        kept once. A candidate whose terms came from placeholders comes in each of its
        ``agreement_variants`` (the word before a term, once per gender). Each is scored by
        CTranslate2 (score_batch, one teacher-forced pass) for the plain source: the
        model's own word for how well the words around a term fit it, which it could not
        see behind a placeholder; of a candidate's variants, the best-scored stands for it."""
        target = self.tokenizer.target_side()
        language = self.target_language
        pools: list[list[tuple[str, int, str, list[int] | None, list[TermSpan]]]] = [
            [("placeholders", 0, self.tokenizer.decode(s.hyp), s.hyp, s.held_terms)] for s in sentences]
        searched: dict[tuple[tuple[int, ...], int], list] = {}  # a sentence whose held ids are its plain
        for name, (side, n) in searches.items():                 # ones (nothing held) is searched once
            todo = list(dict.fromkeys(tuple(getattr(s, side)) for s in sentences if (tuple(getattr(s, side)), n)
                                      not in searched))
            for ids, options in zip(todo, self._search([list(ids) for ids in todo], max(beam, n), alpha, batch_size,
                                                       n, guard=guard)):
                searched[ids, n] = options
            found = [searched[tuple(getattr(s, side)), n] for s in sentences]
            for s, pool, options in zip(sentences, pools, found):
                held = side == "held"
                pool += [(name, rank, self.tokenizer.decode(ids), ids if held else None, s.held_terms if held else [])
                         for rank, ids in enumerate(options)]
        for pool, strings in zip(pools, extra or [[] for _ in sentences]):
            pool += [(f"extra {j}", 0, text, None, []) for j, text in enumerate(strings)]
        groups: list[list[list[Candidate]]] = []  # per sentence, per candidate: its variants
        pairs = []
        for s, pool in zip(sentences, pools):
            seen: set[str] = set()
            groups.append([])
            own = {m.group(0).upper() for m in PLACEHOLDER.finditer(self.tokenizer.decode(s.plain))}  # URLs'
            for origin, rank, decoded, ids, spans in pool:
                if s.shouted:  # written in sentence case, as the model writes it; finish shouts it all
                    spans = [dataclasses.replace(span, source=span.source.lower()) for span in spans]
                text = restore_terms(decoded, spans)[0]
                if text in seen or seen and any(m.group(0).upper() not in own for m in PLACEHOLDER.finditer(text)):
                    continue  # a placeholder the model garbled ("X22") is no candidate; the first one stays
                # the word before a term the model could not see ("L'X1" -> "L'matou") in
                # each form its language writes there, one per gender, for the scores to choose
                variants = [v for v in (agreement_variants(text, spans, language) if spans else [text])
                            if v not in seen]
                groups[-1].append([])
                for variant in variants:
                    seen.add(variant)
                    # finish is given the held terms as placeholders
                    given = ids if ids is not None and variant == text else target.encode(templated(variant,
                                                                                                    s.held_terms))
                    # a sentence in capitals is translated in sentence case and given back in
                    # capitals (finish): its terms are counted as they will be written, and the
                    # candidates scored in sentence case (a lone "GAMINS" made the scores noise)
                    groups[-1][-1].append(Candidate(origin, rank, variant, given, terms_written(
                        variant.upper() if s.shouted else variant, s.terms)))
                    pairs.append(([self.pieces[t] for t in s.plain], [self.pieces[t] for t in target.encode(variant)]))
        scores = iter(self.engine.score_batch([src for src, _ in pairs], [tgt for _, tgt in pairs],
                                              max_batch_size=batch_size, max_input_length=0))
        for per_sentence in groups:
            for variants in per_sentence:
                for c in variants:
                    log_probs = list(next(scores).log_probs)
                    c.log_prob, c.pieces = sum(log_probs), len(log_probs)
        # a candidate's variants differ in one word's gender: the best of them stands for it
        return [[max(variants, key=Candidate.rank_key) for variants in per_sentence if variants]
                for per_sentence in groups]

    def _best_scored(self, plain: list[SourceText], wanted: list[SourceText], sources: list[SourceText],
                     hyps: list[list[int]], beam: int, alpha: float, batch_size: int, guard: bool) -> list[list[int]]:
        """``hyps`` with each sentence that holds placeholders written as the best of its
        candidates (``_glossary_candidates``: the placeholder translation, the placeholder
        search's and the plain search's GLOSSARY_NBEST best): the most terms written, then
        the best mean log-probability per piece. Measured on the dev glossaries
        (bench/glossary.py, bench/README.md "Glossaries")."""
        sentences = self._glossary_sentences(plain, wanted, sources, hyps)
        if not sentences:
            return hyps
        searches = {"held": ("held", GLOSSARY_NBEST), "plain": ("plain", GLOSSARY_NBEST)}
        hyps = list(hyps)
        for s, candidates in zip(sentences, self._glossary_candidates(sentences, searches, beam, alpha, batch_size,
                                                                       guard)):
            hyps[s.position] = max(candidates, key=Candidate.rank_key).ids
        return hyps

    def _outside_target_language(self, texts: list[str], translate: Callable[[list[str]], list],
                                 kept: Callable[[str], object]) -> list:
        """``--from auto``: ``translate`` the texts not in the target language already; the
        others give ``kept(text)``."""
        keep = self.in_target_language(texts)
        done = iter(translate([text for text, k in zip(texts, keep) if not k]))
        return [kept(text) if k else next(done) for text, k in zip(texts, keep)]

    def in_target_language(self, texts: list[str]) -> list[bool]:
        """Per text: is it in the model's target language (or without a letter), as
        detect.py tells between the model's two languages?"""
        if self.direction is None:
            raise ModelDirError(f"{self.root}: the model directory does not name its languages (config.json "
                                f"'languages'), so text in its target language cannot be told apart")
        source, target = self.direction.split("-", 1)
        return [detect(text, (source, target), fallback=target).language == target for text in texts]

    def translate_alternatives(self, texts: list[str], n: int, beam: int | None = None, alpha: float | None = None,
                               split_sentences: bool = True, batch_size: int = 64, repetition_guard: bool = True,
                               glossary: Glossary | Mapping[str, str] | None = None) -> list[list[str]]:
        """The ``n`` best translations of each text, best first (a beam of at least ``n``);
        for a text of several sentences, the i-th joins each sentence's i-th best. With a
        ``glossary``, the first is ``translate``'s (the glossary applied as it ships), and a
        sentence that holds a term ranks its other candidates as ``translate`` chooses
        (``_alternatives_with_terms``)."""
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        beam = max(beam, n)
        glossary = Glossary.of(glossary)
        if not glossary:
            sources = self._sources(texts, split_sentences)
            nbest = iter(self._search([ids for s in sources for ids in s.ids], beam, alpha, batch_size, n,
                                      guard=repetition_guard))
            per_sentence = [next(nbest) for s in sources for _ in s.ids]
        else:
            sources, flat, hyps = self._translated_ids(texts, beam, alpha, split_sentences, batch_size,
                                                       repetition_guard, glossary)
            per_sentence = self._alternatives_with_terms(texts, glossary, sources, flat, hyps, n, beam, alpha,
                                                         split_sentences, batch_size, repetition_guard)
        per_sentence = iter(per_sentence)
        outputs = []
        for s in sources:
            per_part = [next(per_sentence) for _ in s.ids]
            outputs.append([s.finish([self.tokenizer.decode(hyps[min(k, len(hyps) - 1)]) for hyps in per_part])
                            for k in range(n)])
        return outputs

    def _alternatives_with_terms(self, texts: list[str], glossary: Glossary, sources: list[SourceText],
                                 flat: list[list[int]], hyps: list[list[int]], n: int, beam: int, alpha: float,
                                 split_sentences: bool, batch_size: int, guard: bool) -> list[list[list[int]]]:
        """Per sentence of ``_obey``'s ``sources``: up to ``n`` translations, as finish takes
        them. A sentence that holds a term: ``translate``'s translation first, then the
        others of its candidates (``_glossary_candidates``: the GLOSSARY_NBEST best, or n if
        more, of the sentence as written and with its missed terms as placeholders), the most terms first,
        then the best scored, as ``_best_scored`` chooses; those that write fewer terms
        than the first are left out (repeating the last, as for a short n-best list).
        Other sentences: their n best."""
        plain = self._sources(texts, split_sentences)
        wanted = self._sources(texts, split_sentences, glossary)
        sentences = self._glossary_sentences(plain, wanted, sources, hyps, with_terms=True)
        out: list[list[list[int]]] = [[] for _ in flat]
        # the searches _best_scored chooses from (tried: every term a placeholder instead; the
        # model glued adjacent ones, "un X21 ce X2")
        searches = {"held": ("held", max(n, GLOSSARY_NBEST)), "plain": ("plain", max(n, GLOSSARY_NBEST))}
        for s, pool in zip(sentences, self._glossary_candidates(sentences, searches, beam, alpha, batch_size,
                                                                guard)):
            # translate's own first; then only those that write as many terms: a term appended
            # at the end is no alternative
            ranked = sorted((c for c in pool[1:] if c.written >= pool[0].written), key=Candidate.rank_key,
                            reverse=True)
            own = hyps[s.position]
            out[s.position] = ([own] + [c.ids for c in ranked if c.ids != own])[:n]
        rest = [j for j, options in enumerate(out) if not options]
        for j, options in zip(rest, self._search([flat[j] for j in rest], beam, alpha, batch_size, n, guard=guard)):
            # translate's own first (it may come from a search again that kept a term), then the others
            out[j] = [hyps[j]] + [ids for ids in options if ids != hyps[j]][: n - 1]
        return out

    def _sources(self, texts: list[str], split_sentences: bool,
                 glossary: Glossary | Mapping[str, str] | None = None) -> list[SourceText]:
        glossary = Glossary.of(glossary)
        return [SourceText(self.tokenizer, text, self.max_source_tokens, split_sentences, target_language(self.config),
                           glossary) for text in texts]

    def _search(self, sources: list[list[int]], beam: int, alpha: float, batch_size: int,
                n_best: int = 0, guard: bool = True) -> list:
        """Target ids per source (a list of the ``n_best`` best when asked). Sources are
        grouped by length so that each call's length budget is each sentence's own and no
        source is padded: a translation never depends on its batch. (Budgets rounded up to
        share calls were 1.2x faster on batches of 16 sentences, but padding changed 0-13
        of 400 dev outputs per set against the same sentence alone, measured 2026-12-06:
        bench/README.md.) With ``guard``, a translation that loops is searched again
        without its loop (``_unloop``)."""
        out: list = [[] for _ in sources]
        order = sorted(range(len(sources)), key=lambda j: -len(sources[j]))
        groups = [(max_len, list(group)) for max_len, group in groupby(order, key=lambda j: self._budget(sources[j]))]
        # costliest first: the engine runs ``threads`` groups at a time as they come, and a
        # costly group queued last would leave the other threads idle while it runs alone
        groups.sort(key=lambda g: -group_cost(g[0], len(g[1])))
        submitted = []  # all groups queued at once: the engine runs ``threads`` of them in parallel
        for max_len, idx in groups:
            submitted.append((idx, self.engine.translate_batch(
                [[self.pieces[t] for t in sources[j]] for j in idx], beam_size=beam, length_penalty=alpha,
                max_decoding_length=max_len, max_input_length=0, max_batch_size=batch_size,
                num_hypotheses=max(n_best, 1), asynchronous=True)))
        for idx, results in submitted:
            for j, r in zip(idx, results):
                out[j] = r.result().hypotheses
        for j, hyps in enumerate(out if guard else []):
            if repeated_unit(hyps[0]) and not repeated_unit([self.pieces[t] for t in sources[j]]):
                out[j] = self._unloop(sources[j], hyps, beam, alpha, max(n_best, 1))
        out = [[[self.piece_id[p] for p in h] for h in hyps] for hyps in out]
        return out if n_best else [hyps[0] for hyps in out]

    def _keep_terms(self, sources: list[SourceText], flat: list[list[int]], hyps: list[list[int]], beam: int,
                    alpha: float, batch_size: int, guard: bool) -> list[list[int]]:
        """The glossary's placeholders kept: a sentence whose translation drops (or garbles)
        one of its term placeholders is searched again for the TERM_NBEST best, and the
        best of them that holds each of its placeholders is taken (else the first
        translation stays, and finish appends the term). Sentences without terms are
        untouched."""
        names = {span.placeholder.lower() for s in sources for span in s.terms}
        if not names:
            return hyps

        def placeholders(ids: list[int]) -> set[str]:
            return {m.group(0).lower() for m in PLACEHOLDER.finditer(self.tokenizer.decode(ids))}

        redo = [j for j, ids in enumerate(flat) if not (placeholders(ids) & names) <= placeholders(hyps[j])]
        if redo:
            nbest = self._search([flat[j] for j in redo], max(beam, TERM_NBEST), alpha, batch_size, TERM_NBEST,
                                 guard=guard)
            hyps = list(hyps)
            for j, options in zip(redo, nbest):
                wanted = placeholders(flat[j]) & names
                hyps[j] = next((h for h in options if wanted <= placeholders(h)), hyps[j])
        return hyps

    def _budget(self, source: list[int]) -> int:
        return max_output_length(len(source) + 1, self.model_config.max_positions)

    def _unloop(self, source: list[int], hyps: list[list[str]], beam: int, alpha: float, n: int) -> list[list[str]]:
        """The repetition guard: a translation that writes a unit 3+ times in a row
        ("John" -> "John John John") where its source has no such run is searched again
        with that unit written twice in a row forbidden (CTranslate2's suppress_sequences),
        in a wider beam (GUARD_BEAM_FACTOR), up to GUARD_ROUNDS times. Only looping
        outputs are touched, so every other translation stays as it was."""
        banned: list[list[str]] = []
        for _ in range(GUARD_ROUNDS):
            unit = repeated_unit(hyps[0])
            if unit is None:
                break
            banned.append(list(unit) * 2)
            hyps = self.engine.translate_batch(
                [[self.pieces[t] for t in source]], beam_size=max(beam * GUARD_BEAM_FACTOR, n), length_penalty=alpha,
                max_decoding_length=self._budget(source), max_input_length=0, num_hypotheses=n,
                suppress_sequences=banned)[0].hypotheses
        return hyps

    def translate_html(self, documents: list[str], beam: int | None = None, alpha: float | None = None,
                       batch_size: int = 64, backward=None,
                       glossary: Glossary | Mapping[str, str] | None = None) -> list[str]:
        """Each HTML document translated, markup kept (markup.py: block elements delimit
        segments, each translated whole as ``translate`` translates a text; inline tags
        placed on the target words that the alignment heads link to their source words).
        ``backward``: the other direction's align.AlignmentModel, to symmetrize with (as
        ``crossattn align`` does); a model without an alignment head places the tags by
        relative position. The alignment runs the torch network (loaded on first use)."""
        from .markup import translate_html

        return translate_html(documents, lambda texts: self.translate(texts, beam, alpha, batch_size=batch_size,
                                                                      glossary=glossary),
                              self.word_aligner(backward))

    def word_aligner(self, backward=None):
        """markup.translate_html's ``align``: (source words, target words) pairs in, links
        out, read by this model's alignment head (symmetrized with ``backward``, the other
        direction's align.AlignmentModel, if given); None if the model has no head. The
        first call loads the torch network, on the calling thread."""
        forward = self.alignment_model()
        if forward is None:
            return None

        def align(pairs: list[tuple[list[str], list[str]]]) -> list[set[tuple[int, int]]]:
            from .align import align_pairs_with_heads

            return align_pairs_with_heads(pairs, forward, backward)

        return align

    def translate_document(self, data: bytes, filename: str, beam: int | None = None, alpha: float | None = None,
                           batch_size: int = 64, backward=None, limits=None, glossary=None) -> bytes:
        """A document's bytes translated, in the format its file name's extension says
        (documents.py: .txt, .html, .docx, .odt, .odp, .pptx, .epub, .srt, .po/.pot): text
        as ``translate`` translates it, markup and formatting runs as ``translate_html``
        places inline tags, both with ``glossary``. ``limits``: a documents.DocumentLimits
        (its defaults when None). Raises documents.DocumentError for an unsupported,
        corrupt or unsafe file."""
        from .documents import DocumentLimits, translate_document

        return translate_document(
            data, filename, lambda texts: self.translate(texts, beam, alpha, batch_size=batch_size, glossary=glossary),
            lambda documents: self.translate_html(documents, beam, alpha, batch_size=batch_size, backward=backward,
                                                  glossary=glossary),
            limits or DocumentLimits())

    # -- attention, read by the torch network ----------------------------------------
    def torch_engine(self):
        """The torch network of the same model directory, loaded on first use (fp32 CPU)."""
        with self._torch_lock:
            if self._torch is None:
                from .torch_engine import TorchTranslator

                self._torch = TorchTranslator.load(self.root, device="cpu", dtype="fp32")
            return self._torch

    def alignment_model(self):
        """The torch network with this model's alignment head (align.AlignmentModel), or
        None if the model directory has no head; loaded on first use."""
        if "alignment" not in self.config:
            return None
        engine = self.torch_engine()
        with self._torch_lock:
            if self._aligner is None:
                from .align import AlignmentModel

                self._aligner = AlignmentModel.of(engine.model, engine.tokenizer, self.root, self.config)
            return self._aligner

    def translate_with_attention(self, text: str, beam: int | None = None, alpha: float | None = None,
                                 split_sentences: bool = True):
        """An AttentionResult (torch_engine.py) for the translation this engine gives:
        the text is prepared as ``translate`` prepares it (modeldir.SourceText: URLs as
        placeholders, capitals in sentence case, dollars), each sentence is translated
        here, its attention read by the torch network, and the sentences are put end to
        end (the attention is block-diagonal). The tokens are what the model read and
        wrote; ``translation`` is what ``translate`` gives for ``text``."""
        from .attention_views import AttentionResult

        engine = self.torch_engine()
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        source = self._sources([text], split_sentences)[0]
        hyps = self._search(source.ids, beam, alpha, max(len(source.ids), 1))
        parts = [engine.attention_of(ids, hyp) for ids, hyp in zip(source.ids, hyps)] or [engine.attention_of([], [])]
        translation = source.finish([self.tokenizer.decode(hyp) for hyp in hyps])
        return dataclasses.replace(AttentionResult.concat(parts), translation=translation)
