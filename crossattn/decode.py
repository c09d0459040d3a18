"""Search: greedy and batched beam search over the incremental decoder.

Both encode the source once, project the cross-attention keys/values once
(``model.start_decoding``) and then feed one token per step, so each step costs one
query position per hypothesis. Sentences that are finished leave the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import Seq2SeqTransformer
from .decoding import length_penalty, max_output_length


def writable(logits: Tensor, cfg) -> Tensor:
    """``logits`` with the decoder's start token ruled out when it is the padding token:
    a Marian model starts from <pad> and never writes it (Hugging Face generates with
    ``bad_words_ids=[[pad]]``; CTranslate2 has no <pad> in its vocabulary). Our own models
    start from <s>, and their logits pass unchanged."""
    if cfg.bos_id != cfg.pad_id:
        return logits
    return logits.index_fill(-1, torch.tensor([cfg.pad_id], device=logits.device), float("-inf"))


def output_limits(model: Seq2SeqTransformer, src: Tensor, max_len: int | None) -> list[int]:
    """Per-sentence length budget from each sentence's own length, so a translation
    never depends on what else is in its batch."""
    if max_len:
        return [max_len] * src.size(0)
    lengths = src.ne(model.config.pad_id).sum(1).tolist()
    return [max_output_length(n, model.config.max_positions) for n in lengths]


@torch.inference_mode()
def greedy_search(model: Seq2SeqTransformer, src: Tensor, max_len: int | None = None) -> list[list[int]]:
    """Source ids (batch, src_len) -> target ids per sentence (no BOS/EOS)."""
    cfg = model.config
    memory, src_pad = model.encode(src)
    state = model.start_decoding(memory, src_pad)
    batch = src.size(0)
    limits = torch.tensor(output_limits(model, src, max_len), device=src.device)
    alive = torch.arange(batch, device=src.device)  # original index of each row
    outputs: list[list[int]] = [[] for _ in range(batch)]
    tokens = torch.full((batch, 1), cfg.bos_id, dtype=torch.long, device=src.device)
    for step in range(int(limits.max())):
        logits, _ = model.decode_step(tokens, state)
        next_tok = writable(logits, cfg).argmax(-1)
        for row, tok in zip(alive.tolist(), next_tok.tolist()):
            if tok != cfg.eos_id:
                outputs[row].append(tok)
        running = next_tok.ne(cfg.eos_id) & limits[alive].gt(step + 1)
        if not bool(running.any()):
            break
        if not bool(running.all()):
            keep = running.nonzero().squeeze(1)
            state.keep_sentences(keep)
            alive, next_tok = alive[keep], next_tok[keep]
        tokens = next_tok[:, None]
    return outputs


@torch.inference_mode()
def beam_search(
    model: Seq2SeqTransformer,
    src: Tensor,
    beam_size: int = 4,
    alpha: float = 0.6,
    max_len: int | None = None,
) -> list[list[int]]:
    """Batched beam search, scores divided by length ** alpha (decoding.length_penalty); returns the best hypothesis per sentence.

    A sentence is done once it has ``beam_size`` finished hypotheses (or at
    ``max_len``); its rows then leave the batch.
    """
    if beam_size == 1:
        return greedy_search(model, src, max_len)
    cfg = model.config
    k = beam_size
    memory, src_pad = model.encode(src)
    state = model.start_decoding(memory, src_pad, beam_size=k)
    batch, device = src.size(0), src.device
    limits = output_limits(model, src, max_len)

    alive = list(range(batch))  # original sentence index of each live sentence
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    # only beam 0 is real at the start; the others are copies that must not be chosen
    scores = torch.zeros(batch, k, device=device)
    scores[:, 1:] = float("-inf")
    hyps = torch.empty(batch, k, 0, dtype=torch.long, device=device)
    tokens = torch.full((batch * k, 1), cfg.bos_id, dtype=torch.long, device=device)

    for step in range(max(limits)):
        logits, _ = model.decode_step(tokens, state)
        n = len(alive)
        logp = writable(logits.float(), cfg).log_softmax(-1).view(n, k, -1)
        vocab = logp.size(-1)
        cand = (scores[:, :, None] + logp).view(n, -1)
        # 2k candidates guarantee k that do not end here
        top_scores, top_idx = cand.topk(2 * k, dim=1)
        top_beam, top_tok = top_idx // vocab, top_idx % vocab
        is_eos = top_tok.eq(cfg.eos_id)

        # finished hypotheses, scored with the length penalty (EOS counts as a token)
        lp = length_penalty(step + 1, alpha)
        # only EOS candidates that would have been among the top k; one transfer to Python
        ended = is_eos[:, :k] & top_scores[:, :k].gt(float("-inf"))
        if bool(ended.any()):
            rows, cols = ended.nonzero(as_tuple=True)
            ended_hyps = hyps[rows, top_beam[rows, cols]].tolist()
            for r, score, hyp in zip(rows.tolist(), (top_scores[rows, cols] / lp).tolist(), ended_hyps):
                finished[alive[r]].append((score, hyp))

        # continue with the k best candidates that are not EOS
        cont_key = torch.where(is_eos, torch.full_like(top_scores, float("-inf")), top_scores)
        order = cont_key.argsort(dim=1, descending=True)[:, :k]
        scores = cont_key.gather(1, order)
        beam_of = top_beam.gather(1, order)
        tok_of = top_tok.gather(1, order)
        hyps = torch.cat([hyps.gather(1, beam_of[:, :, None].expand(-1, -1, hyps.size(2))), tok_of[:, :, None]], 2)

        # out of length budget: the live hypotheses compete as they are
        at_limit = [step + 1 >= limits[sent] for sent in alive]
        if any(at_limit):
            rows = [r for r in range(n) if at_limit[r]]
            for r, row_scores, row_hyps in zip(rows, (scores[rows] / lp).tolist(), hyps[rows].tolist()):
                finished[alive[r]].extend((sc, h) for sc, h in zip(row_scores, row_hyps) if sc > float("-inf"))

        done = torch.tensor([len(finished[s]) >= k or at_limit[r] for r, s in enumerate(alive)], device=device)
        rows = (torch.arange(n, device=device)[:, None] * k + beam_of).flatten()
        state.reorder_beams(rows)
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            state.keep_sentences(keep)
            alive = [alive[i] for i in keep.tolist()]
            scores, hyps, tok_of = scores[keep], hyps[keep], tok_of[keep]
        tokens = tok_of.reshape(-1, 1)

    return [max(f, key=lambda t: t[0])[1] if f else [] for f in finished]
