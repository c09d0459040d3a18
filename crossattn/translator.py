"""Translator: text in, text out, with CTranslate2, the C++ engine the field serves
Transformer translation models with (OpenNMT, Argos Translate, LibreTranslate).

We train in PyTorch and translate with CTranslate2: ``crossattn translate``, ``evaluate``
and ``serve`` use this class. The model directory stays the one source of truth; its
CTranslate2 conversion (export.py) is made on first use and cached, keyed by the
weights' checksum, so a changed model is never served from a stale cache. The
conversion imports torch once; after that, translating never does.

Conventions shared with the torch engine (modeldir.py): the same normalizer, sentence
splitting, output-length budget per sentence and length penalty, so both engines give
the same tokens (tests/test_export.py checks it, greedy and beam).

The attention views need the network's insides: ``translate_with_attention`` takes the
translation from this engine and reads its cross-attention with one teacher-forced
torch pass (torch_engine.py), loaded on first use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import threading
from itertools import groupby
from pathlib import Path

from .decoding import decoding_settings, max_output_length, model_decoding
from .modeldir import (TOKENIZER, WEIGHTS, ModelDirError, SourceText, cache_root, read_model_dir, sha256_file,
                       target_language)
from .precision import COMPUTE_TYPES, PrecisionError, default_compute_type

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
    files = {name: config.get("files", {}).get(name) or sha256_file(model_dir / name) for name in (WEIGHTS, TOKENIZER)}
    key = json.dumps({"model": config.get("model"), "files": files}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()
    final = cache_root() / "ct2" / f"{digest[:24]}-{quantization or 'float32'}-ct2-{ctranslate2.__version__}"
    if (final / "model.bin").is_file():
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
    return final


class Translator:
    """A shipped direction ("en-fr", "fr-en") or a model directory, translating with CTranslate2."""

    def __init__(self, model_dir: str | Path | None = None, device: str = "auto", dtype: str = "auto",
                 threads: int = 0):
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
        self.ct2_dir = ctranslate2_model(self.root, self.config, "int8" if self.dtype == "int8" else None)
        try:
            self.engine = ctranslate2.Translator(str(self.ct2_dir), device=self.device,
                                                 device_index=int(index or 0), compute_type=compute,
                                                 intra_threads=threads)
        except (RuntimeError, ValueError) as e:
            raise ModelDirError(f"{self.ct2_dir}: CTranslate2 cannot load it ({e})") from None
        self.pieces = [self.tokenizer.id_to_piece(i) for i in range(self.tokenizer.vocab_size)]
        self.piece_id = {p: i for i, p in enumerate(self.pieces)}
        # one position is kept for BOS/EOS bookkeeping, as in the torch engine
        self.max_source_tokens = self.model_config.max_positions - 1
        self._torch = None
        self._aligner = None
        self._torch_lock = threading.Lock()

    @classmethod
    def load(cls, model: str | Path | None = None, device: str = "auto", dtype: str = "auto",
             threads: int = 0) -> "Translator":
        return cls(model, device, dtype, threads)

    @property
    def direction(self) -> str | None:
        """"en-fr" etc. when the model directory says which languages it translates."""
        langs = self.config.get("languages")
        if langs:
            return f"{langs['source']}-{langs['target']}"
        return self.root.name if re.fullmatch(r"[a-z]{2,3}-[a-z]{2,3}", self.root.name) else None

    def translate(self, texts: list[str], beam: int | None = None, alpha: float | None = None,
                  split_sentences: bool = True, batch_size: int = 64) -> list[str]:
        """One output per input, in order; empty input gives empty output. With
        ``split_sentences`` each sentence of a text is translated on its own and the
        translations are joined in order. URLs and e-mail addresses come through as
        written, characters the vocabulary lacks get stand-ins, dollar amounts keep their
        sign, and a sentence in capitals is translated in sentence case and given back in
        capitals (modeldir.SourceText, shared with the torch engine)."""
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        sources = self._sources(texts, split_sentences)
        hyps = iter(self._search([ids for s in sources for ids in s.ids], beam, alpha, batch_size))
        return [s.finish([self.tokenizer.decode(next(hyps)) for _ in s.ids]) for s in sources]

    def translate_alternatives(self, texts: list[str], n: int, beam: int | None = None, alpha: float | None = None,
                               split_sentences: bool = True, batch_size: int = 64) -> list[list[str]]:
        """The ``n`` best translations of each text, best first (a beam of at least ``n``);
        for a text of several sentences, the i-th joins each sentence's i-th best."""
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        beam = max(beam, n)
        sources = self._sources(texts, split_sentences)
        nbest = iter(self._search([ids for s in sources for ids in s.ids], beam, alpha, batch_size, n))
        outputs = []
        for s in sources:
            per_part = [next(nbest) for _ in s.ids]
            outputs.append([s.finish([self.tokenizer.decode(hyps[min(k, len(hyps) - 1)]) for hyps in per_part])
                            for k in range(n)])
        return outputs

    def _sources(self, texts: list[str], split_sentences: bool) -> list[SourceText]:
        return [SourceText(self.tokenizer, text, self.max_source_tokens, split_sentences, target_language(self.config))
                for text in texts]

    def _search(self, sources: list[list[int]], beam: int, alpha: float, batch_size: int,
                n_best: int = 0) -> list:
        """Target ids per source (a list of the ``n_best`` best when asked). Sources are
        grouped by length so that each call's length budget is each sentence's own (a
        translation never depends on its batch)."""
        out: list = [[] for _ in sources]
        order = sorted(range(len(sources)), key=lambda j: len(sources[j]))
        limit = lambda j: max_output_length(len(sources[j]) + 1, self.model_config.max_positions)  # noqa: E731
        for max_len, group in groupby(order, key=limit):
            idx = list(group)
            results = self.engine.translate_batch(
                [[self.pieces[t] for t in sources[j]] for j in idx], beam_size=beam, length_penalty=alpha,
                max_decoding_length=max_len, max_input_length=0, max_batch_size=batch_size,
                num_hypotheses=max(n_best, 1))
            for j, r in zip(idx, results):
                hyps = [[self.piece_id[p] for p in h] for h in r.hypotheses]
                out[j] = hyps if n_best else hyps[0]
        return out

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
