"""A guided alignment head: one more cross-attention head, trained to point at the source
words that a target word translates (after Garg et al. 2019, fairseq's transformer_align).

Garg et al. add an alignment loss to one of the translation's own heads during training.
This head is trained after the fact instead, beside a frozen translation model: its query
is the decoder's last state at the target word's own position (the step whose input is
the word), its keys the encoder output, and its only job is alignment, so translation is
untouched and it trains in minutes on a CPU. The links it learns from come from a
statistical aligner (eflomal, symmetrized) run over parallel text; as in the paper, the
head reads them through the network's context and generalises past them.

    attention(t, s) = softmax_s( (W_q h_t) . (W_k m_s) / sqrt(d_head) )

Saved in the model directory as ``alignment-<checksum>.safetensors``, recorded in its
config.json (save_alignment_head, below: the head's file is this module's, the rest of the
directory modeldir.py's).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .alignment_text import encode_natural
from .atomic import atomic_dir, crash_point, write_bytes_atomic, write_text_atomic
from .data import collate, token_budget_batches
from .modeldir import CONFIG, ModelDirError, resolve_model_dir

# the head's file in a model directory: named by its checksum, so that a new head never
# overwrites the file the current config.json vouches for (the shipped models' older name
# is alignment.safetensors)
ALIGNMENT_FILE = re.compile(r"alignment(-[0-9a-f]{16})?\.safetensors")


class AlignmentHead(nn.Module):
    """``context=False``: the query reads the decoder state at the word's own position (whose
    input is the word). ``context=True``: that state and the one just before it, the step
    that predicted the word (what the decoder was about to translate), side by side.

    ``heads`` > 1: an ensemble of heads trained apart (``ensemble``), each its own softmax
    over the source, their weights averaged; one head is the plain attention above."""

    def __init__(self, d_model: int, d_head: int = 64, context: bool = False, heads: int = 1):
        super().__init__()
        self.d_head, self.context, self.heads = d_head, context, heads
        self.q = nn.Linear(d_model * (2 if context else 1), d_head * heads)
        self.k = nn.Linear(d_model, d_head * heads)

    def forward(self, states: Tensor, memory: Tensor, src_pad: Tensor | None) -> Tensor:
        """Decoder states of BOS + target (B, T + 1, D), encoder output (B, S, D) ->
        log-weights (B, T, S), row t for target piece t."""
        dtype = self.q.weight.dtype  # the network may run in bf16; the head stays fp32
        query = torch.cat([states[:, 1:], states[:, :-1]], -1) if self.context else states[:, 1:]
        split = lambda x: x.unflatten(-1, (self.heads, self.d_head)).transpose(1, 2)  # noqa: E731  (B, K, L, d)
        scores = split(self.q(query.to(dtype))) @ split(self.k(memory.to(dtype))).transpose(-1, -2)
        scores = scores / math.sqrt(self.d_head)
        if src_pad is not None:
            scores = scores.masked_fill(src_pad[:, None, None, :], torch.finfo(scores.dtype).min)
        logp = scores.float().log_softmax(-1)  # (B, K, T, S)
        return logp[:, 0] if self.heads == 1 else logp.logsumexp(1) - math.log(self.heads)

    @classmethod
    def ensemble(cls, members: list["AlignmentHead"]) -> "AlignmentHead":
        """One head whose weights are the average of ``members``' (same shape and kind):
        heads trained on different links err differently, and the average keeps what they agree on."""
        first = members[0]
        if any(m.d_head != first.d_head or m.context != first.context for m in members):
            raise ValueError("ensembled alignment heads must have the same d_head and context")
        out = cls(first.k.in_features, first.d_head, first.context, sum(m.heads for m in members))
        with torch.no_grad():
            for name in ("q", "k"):
                layer = getattr(out, name)
                layer.weight.copy_(torch.cat([getattr(m, name).weight for m in members]))
                layer.bias.copy_(torch.cat([getattr(m, name).bias for m in members]))
        return out.eval()


@torch.no_grad()
def head_inputs(model, src: Tensor, tgt_in: Tensor, need_weights: bool = False):
    """What the head reads: the decoder's output over BOS + target (``.states``: position
    t + 1 holds input piece t; ``.cross_attention`` too with ``need_weights``), the encoder
    output and its padding mask."""
    memory, src_pad = model.encode(src)
    return model.decode(tgt_in, memory, src_pad, need_weights=need_weights, need_logits=False), memory, src_pad


@dataclass
class AlignmentExample:
    src_ids: list[int]
    tgt_ids: list[int]
    src_spans: list[list[int]]  # source token -> its pieces
    tgt_spans: list[list[int]]
    links: set[tuple[int, int]]  # (source token, target token)


def make_examples(tokenizer, rows, languages: tuple[str, str], max_positions: int) -> list[AlignmentExample]:
    """Encode (source tokens, target tokens, links) as the model reads them (natural text)."""
    examples = []
    for src, tgt, links in rows:
        (sid, sspans), (tid, tspans) = encode_natural(tokenizer, src, languages[0]), \
            encode_natural(tokenizer.target_side(), tgt, languages[1])
        if src and tgt and len(sid) + 1 <= max_positions and len(tid) + 1 <= max_positions:
            examples.append(AlignmentExample(sid, tid, sspans, tspans, links))
    return examples


def target_distribution(ex: AlignmentExample) -> Tensor:
    """(target pieces, source pieces + EOS): each target piece's share of the pieces of the
    source tokens its token is linked to; unlinked target tokens point at EOS."""
    n_src = len(ex.src_ids)
    dist = torch.zeros(len(ex.tgt_ids), n_src + 1)
    linked: dict[int, list[int]] = {}
    for i, j in ex.links:
        if i < len(ex.src_spans):
            linked.setdefault(j, []).extend(ex.src_spans[i])
    for j, pieces in enumerate(ex.tgt_spans):
        cols = sorted(set(linked.get(j, []))) or [n_src]
        for p in pieces:
            dist[p, cols] = 1.0 / len(cols)
    return dist


def train_alignment_head(model, examples: list[AlignmentExample], steps: int, batch_tokens: int = 3000,
                         lr: float = 3e-3, seed: int = 1, context: bool = False, d_head: int = 64,
                         log=print) -> AlignmentHead:
    """Fit a head to ``examples`` beside the frozen ``model`` (eval mode, no gradients)."""
    cfg = model.config
    torch.manual_seed(seed)
    head = AlignmentHead(cfg.d_model, d_head, context=context)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    model.eval()
    cost = lambda k: len(examples[k].src_ids) + len(examples[k].tgt_ids) + 2  # noqa: E731  (EOS and BOS)
    order = sorted(range(len(examples)), key=cost)
    batches = [[order[i] for i in r] for r in token_budget_batches([cost(k) for k in order], batch_tokens)]
    for step in range(steps):
        idx = batches[rng.randrange(len(batches))]
        batch = [examples[k] for k in idx]
        src, tgt_in, _ = collate([b.src_ids for b in batch], [b.tgt_ids for b in batch], cfg.pad_id, cfg.bos_id,
                                 cfg.eos_id)
        out, memory, src_pad = head_inputs(model, src, tgt_in)
        logp = head(out.states, memory, src_pad)  # (B, T_max, S_max + ...)
        loss, rows = logp.new_zeros(()), 0
        for r, ex in enumerate(batch):
            dist = target_distribution(ex)  # (T, n_src + 1): EOS is the column after the source pieces
            lp = logp[r, : len(ex.tgt_ids), : len(ex.src_ids) + 1]
            loss = loss - (dist * lp).sum()
            rows += len(ex.tgt_ids)
        loss = loss / max(rows, 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0 or step == 0:
            log(f"alignment head step {step + 1}/{steps}: loss {loss.item():.3f}")
    return head.eval()


@torch.no_grad()
def head_weights(model, head: AlignmentHead, src: Tensor, tgt_in: Tensor, attention_layer: int | None = None
                 ) -> Tensor:
    """(B, 1, K, T, S) weights, shaped like K heads of one layer of cross-attention.

    K = 1: the head's (row t = target piece t, read at its own position). With
    ``attention_layer``, K = 2: also that decoder layer's own cross-attention, averaged over
    its heads, row t = the step that *predicts* piece t; the same forward pass gives both,
    and the two read a word at different steps (docs/alignment.md)."""
    out, memory, src_pad = head_inputs(model, src, tgt_in, need_weights=attention_layer is not None)
    weights = [F.pad(head(out.states, memory, src_pad).exp(), (0, 0, 0, 1))]
    if attention_layer is not None:
        weights.append(out.cross_attention[attention_layer].float().mean(1))
    return torch.stack(weights, 1)[:, None]


# -- the head's file in a model directory ----------------------------------------------
def save_alignment_head(root: str | Path, head: AlignmentHead, out: str | Path | None = None) -> Path:
    """Store ``head`` in the model directory ``root`` and record it (kind and checksum) in
    its config.json, replacing the head it had; or, with ``out``, write a new model
    directory there: ``root``'s files with this head (``out`` must be new or empty).
    Returns the directory written.

    One commit either way: the head goes to a file of its own name first, and the new
    config.json replaces the old one in one rename, so a crash leaves the directory with its
    old head or its new one, each matching its checksum (the old head's file is removed
    only after the commit); a new ``out`` appears whole or not at all."""
    root = resolve_model_dir(root)
    if out is None:
        _commit_head(root, head)
        return root
    out = Path(out)
    check_new_dir(out)
    config = json.loads((root / CONFIG).read_text())
    with atomic_dir(out) as tmp:
        for name in [CONFIG, *config.get("files", {})]:
            shutil.copyfile(root / name, tmp / name)
        _commit_head(tmp, head)
    return out


def check_new_dir(out: Path) -> None:
    """``out`` may become a new model directory: it does not exist, or is an empty directory."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelDirError(f"{out} already exists: give a new directory for the model with its new head")


def _commit_head(root: Path, head: AlignmentHead) -> None:
    from safetensors.torch import save

    data = save({k: v.detach().float().contiguous() for k, v in head.state_dict().items()})
    digest = hashlib.sha256(data).hexdigest()
    name = f"alignment-{digest[:16]}.safetensors"
    write_bytes_atomic(root / name, data)
    crash_point("alignment-head", 1)
    config = json.loads((root / CONFIG).read_text())
    files = config.setdefault("files", {})
    for old in [f for f in files if ALIGNMENT_FILE.fullmatch(f)]:
        del files[old]
    files[name] = digest
    config["alignment"] = {"file": name, "d_head": head.d_head, "context": head.context, "heads": head.heads}
    write_text_atomic(root / CONFIG, json.dumps(config, indent=2) + "\n")  # the commit
    crash_point("alignment-head", 2)
    for stale in root.iterdir():  # the replaced head's file, and any left by an earlier crash
        if ALIGNMENT_FILE.fullmatch(stale.name) and stale.name != name:
            stale.unlink(missing_ok=True)


def load_alignment_head(root: Path, config: dict, d_model: int) -> AlignmentHead | None:
    """The model directory's AlignmentHead, or None if it has none."""
    if "alignment" not in config:
        return None
    from safetensors.torch import load_file

    spec = config["alignment"]
    head = AlignmentHead(d_model, spec["d_head"], spec.get("context", False), spec.get("heads", 1))
    try:
        head.load_state_dict(load_file(str(root / spec["file"])))
    except Exception as e:  # missing, truncated or mismatched file
        raise ModelDirError(f"{root / spec['file']}: cannot read the alignment head ({e})") from None
    return head.eval()
