"""Translation with the PyTorch network itself: a model, its tokenizer and decoding settings
run with torch on CPU or GPU, in fp32, bf16 or int8.

``crossattn translate``, ``evaluate`` and ``serve`` use CTranslate2 (translator.py), which
is faster; this engine is what needs the network's insides or a model in memory: the
cross-attention views (heatmaps, the API, explain, alignments), dev BLEU during training,
and the reference that the CTranslate2 export is checked against.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .attention_views import AttentionResult
from .data import pad_sources, token_budget_batches
from .decode import beam_search
from .decoding import decoding_settings, model_decoding
from .model import Seq2SeqTransformer
from .modeldir import SourceText, load_model_dir, normalize, target_language
from .precision import inference_dtype, pick_device, quantize_int8
from .tokenizer import Tokenizer


class TorchTranslator:
    def __init__(self, model: Seq2SeqTransformer, tokenizer: Tokenizer, decoding: dict | None = None,
                 device: str = "auto", dtype: str = "auto", target_language: str | None = None):
        self.device = pick_device(device)
        self.int8 = dtype == "int8"
        self.dtype = torch.float32 if self.int8 else inference_dtype(dtype, self.device)
        self.model = model.to(self.device, self.dtype).eval()
        if self.int8:
            self.model = quantize_int8(self.model, self.device)
        self.tokenizer = tokenizer
        self.decoding = model_decoding(decoding)
        self.target_language = target_language
        # keep one position for BOS/EOS bookkeeping
        self.max_source_tokens = model.config.max_positions - 1

    @property
    def model_config(self):
        return self.model.config

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "auto", dtype: str = "auto") -> "TorchTranslator":
        model, tokenizer, config = load_model_dir(path)
        return cls(model, tokenizer, config.get("decoding"), device, dtype, target_language(config))

    # -- text <-> ids -----------------------------------------------------------------
    def _batch(self, seqs: list[list[int]]) -> Tensor:
        return pad_sources(seqs, self.model.config.pad_id, self.model.config.eos_id).to(self.device)

    # -- translation ------------------------------------------------------------------
    def translate(self, texts: list[str], beam: int | None = None, alpha: float | None = None,
                  batch_size: int = 64, max_batch_tokens: int = 4096, split_sentences: bool = True) -> list[str]:
        """One output per input, in order; empty input gives empty output. With
        ``split_sentences`` each sentence of a text is translated on its own."""
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        sources = [SourceText(self.tokenizer, text, self.max_source_tokens, split_sentences, self.target_language)
                   for text in texts]
        pieces = [(i, ids) for i, source in enumerate(sources) for ids in source.ids]  # (input index, sentence ids)
        # sort by length so each batch has little padding; restore order at the end
        order = sorted(range(len(pieces)), key=lambda j: len(pieces[j][1]))
        results: list[list[int]] = [[] for _ in pieces]
        costs = [(len(pieces[j][1]) + 1) * beam for j in order]  # padded tokens, times the beam's rows
        for batch in token_budget_batches(costs, max_batch_tokens, batch_size):
            batch_idx = [order[k] for k in batch]
            src = self._batch([pieces[j][1] for j in batch_idx])
            for j, hyp in zip(batch_idx, beam_search(self.model, src, beam, alpha)):
                results[j] = hyp
        outputs: list[list[str]] = [[] for _ in texts]
        for (i, _), hyp in zip(pieces, results):
            outputs[i].append(self.tokenizer.decode(hyp))
        return [source.finish(out) for source, out in zip(sources, outputs)]

    @torch.inference_mode()
    def translate_with_attention(self, text: str, beam: int | None = None, alpha: float | None = None) -> AttentionResult:
        """Translate one text (one part: no sentence splitting) and return the
        cross-attention of every layer and head."""
        beam, alpha = decoding_settings(self.decoding, beam, alpha)
        ids = self.tokenizer.encode(normalize(text))[: self.max_source_tokens - 1]
        hyp = beam_search(self.model, self._batch([ids]), beam, alpha)[0]
        return self.attention_of(ids, hyp)

    @torch.inference_mode()
    def attention_of(self, ids: list[int], hyp: list[int]) -> AttentionResult:
        """The cross-attention that produced translation ``hyp`` of source ``ids``.

        One teacher-forced pass over the hypothesis computes exactly the weights each
        search step used (the decoder is causal), so translating never pays for weights,
        and the hypothesis may come from another engine (CTranslate2).
        """
        cfg = self.model.config
        hyp = hyp[: cfg.max_positions - 1]
        src = self._batch([ids])
        tgt_in = torch.tensor([[cfg.bos_id] + hyp], device=self.device)
        out = self.model(src, tgt_in, need_weights=True)
        attention = torch.stack([w[0] for w in out.cross_attention]).float().cpu()  # (L, H, T, S)
        piece = self.tokenizer.id_to_piece
        return AttentionResult(
            translation=self.tokenizer.decode(hyp),
            source_tokens=[piece(i) for i in ids] + ["</s>"],
            target_tokens=[piece(i) for i in hyp] + ["</s>"],
            attention=attention,
        )
