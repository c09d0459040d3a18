"""Word alignment read off cross-attention: ``crossattn align`` and ``crossattn align-eval``.

1. Forced decoding: the given translation is fed to the decoder (teacher forcing) and
   every layer's cross-attention is kept, ``model(src, tgt_in, need_weights=True)``.
2. Pieces -> words: words are the whitespace-separated tokens of each side *as given*
   (so a gold set's tokenisation is respected). Each word is encoded on its own and the
   piece ids are concatenated, so every piece belongs to exactly one word. SentencePiece
   splits on whitespace before segmenting, so this is also exactly how it encodes the
   space-joined sentence: the model sees its usual input.
3. Word-level matrix (see attention_views.py): source pieces summed, target pieces averaged;
   the source "</s>" column stays, as the "no source word" option.
4. Extraction: Pharaoh ``i-j`` links (0-based, source first) from that matrix.

Row t of the attention is the step that *predicts* target token t (its input is token
t-1); ``shift`` uses row t+1 instead, the step whose input *is* token t.
The default (layer, heads, shift, rule) was chosen on a selection set: docs/alignment.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .align_head import head_weights, load_alignment_head
from .alignment_text import encode_natural, encode_words, hyphen_compounds
from .attention_views import EOS, group_pieces, merge_attention, select
from .data import collate, token_budget_batches
from .errors import InputError
from .modeldir import load_model_dir, read_model_dir, resolve_model_dir
from .precision import alignment_dtype, pick_device, quantize_int8
from .tokenizer import UNK_ID

RULES = ("target", "source", "intersect", "union")


@dataclass(frozen=True)
class Method:
    layer: int | None = None  # decoder layer; None = mean over layers; negative counts from the end
    head: int | None = None  # None = mean over heads
    shift: bool = False  # use the step whose input is the target word (row t+1)
    rule: str = "source"  # target: argmax per target word; source: argmax per source word
    null: bool = False  # a target word whose argmax is </s> stays unaligned (target-side rules)

    def describe(self) -> str:
        layer = "mean" if self.layer is None else self.layer
        head = "mean" if self.head is None else self.head
        return f"layer={layer} head={head} shift={int(self.shift)} rule={self.rule} null={int(self.null)}"


DEFAULT = Method()
# Links from alignment heads (align_head.py), settings chosen on the Hansards trial set
# (docs/alignment.md). A pair's score is HEAD_WEIGHT x the head's weight + the rest x the
# translation's own cross-attention of decoder layer ATTENTION_LAYER (mean of its heads,
# read at the step that predicts the word); with both directions, each of the two is
# first the harmonic mean of its forward and backward weights. A link: score >= threshold.
HEAD_WEIGHT = 0.6
ATTENTION_LAYER = -1
HEAD_THRESHOLD_ONE = 0.35
HEAD_THRESHOLD_BOTH = 0.2
CHUNK = 2000  # pairs whose full attention is held in memory at once


def head_threshold(threshold: float | None, two_directions: bool) -> float:
    """``threshold``, or the chosen default for one or two directions' heads."""
    if threshold is not None:
        return threshold
    return HEAD_THRESHOLD_BOTH if two_directions else HEAD_THRESHOLD_ONE


def share_compound_links(links: set[tuple[int, int]], source_tokens: list[str], target_tokens: list[str]
                         ) -> set[tuple[int, int]]:
    """The model reads a hyphenated compound as one word ("procès-verbal"), and gold sets
    link every token of it, the hyphens too: each token of a compound gets the links of all
    of them (Hansards trial AER 9.5 -> 9.4, Golden Collection 19.2 -> 18.3; docs/alignment.md)."""
    out = set(links)
    for side, tokens in ((0, source_tokens), (1, target_tokens)):
        for group in hyphen_compounds(tokens):
            out |= links_passed_on(links, side, group, group)
    return out


def links_passed_on(links: set[tuple[int, int]], side: int, givers: list[int], takers: list[int]
                    ) -> set[tuple[int, int]]:
    """The links ``takers`` get when they take every partner of ``givers``: tokens of one
    side (0 source, 1 target) of ``(source i, target j)`` links."""
    given = set(givers)
    partners = {link[1 - side] for link in links if link[side] in given}
    return {(t, p) if side == 0 else (p, t) for t in takers for p in partners}


# French negation is split around the verb ("ne ... pas", "n' ... jamais") where English
# has one word ("not", "never"); gold sets link that word to both parts. The model's
# attention finds the particle that carries the meaning and rarely "ne": "ne" (or "n",
# with its "'") takes the links of the particle that follows it in the same clause
# (Hansards trial AER 7.7 -> 7.1, chosen there; Golden Collection 17.2 -> 15.8).
_NEGATION_OPENERS = {"ne", "n", "n'"}
_NEGATION_PARTICLES = {"pas", "jamais", "plus", "rien", "personne", "guère", "aucun", "aucune", "point",
                       "nullement", "ni"}
_CLAUSE_ENDS = {",", ".", ";", ":", "!", "?", "(", ")"}
NEGATION_WINDOW = 6  # tokens after "ne" searched for its particle ("ne le lui ai jamais dit")


def negation_pairs(tokens: list[str]) -> list[tuple[list[int], int]]:
    """French tokens -> ([positions of "ne" and its elision mark], position of its particle)."""
    pairs = []
    lower = [t.lower() for t in tokens]
    for k, tok in enumerate(lower):
        if tok not in _NEGATION_OPENERS:
            continue
        opener = [k]
        after = k + 1
        if after < len(lower) and lower[after] == "'":  # "n '" as the gold sets write it
            opener.append(after)
            after += 1
        for m in range(after, min(len(lower), after + NEGATION_WINDOW)):
            if lower[m] in _NEGATION_PARTICLES:
                pairs.append((opener, m))
                break
            if lower[m] in _CLAUSE_ENDS:
                break
    return pairs


def share_negation_links(links: set[tuple[int, int]], source_tokens: list[str], target_tokens: list[str],
                         languages: tuple[str, str]) -> set[tuple[int, int]]:
    """Links (source i, target j) with every French "ne" linked as the particle after it is."""
    out = set(links)
    for side, (tokens, lang) in enumerate(zip((source_tokens, target_tokens), languages)):
        if lang != "fr":
            continue
        for opener, particle in negation_pairs(tokens):
            out |= links_passed_on(links, side, [particle], opener)
    return out


def to_given_words(links: set[tuple[int, int]], source_tokens: list[str], target_tokens: list[str],
                  languages: tuple[str, str]) -> set[tuple[int, int]]:
    """Links read off the model's words, completed for the tokens as given: the tokens of a
    compound share their links, and so do the two parts of a French negation."""
    return share_negation_links(share_compound_links(links, source_tokens, target_tokens),
                                source_tokens, target_tokens, languages)


# -- forced decoding --------------------------------------------------------------------
@torch.inference_mode()
def word_attention(model, tokenizer, pairs: list[tuple[list[str], list[str]]], shifts: tuple[bool, ...] = (False, True),
                   max_tokens: int = 6000, device: torch.device | str = "cpu",
                   languages: tuple[str, str] | None = None, head=None, attention_layer: int | None = None
                   ) -> list[dict[bool, Tensor] | None]:
    """Per pair and shift: (layers, heads, target words, source words + </s>), or None if not alignable.

    ``languages`` (source, target): restore natural text from gold-style tokens for the
    model (natural_text); None: encode each given token as it is. ``head``: read that
    alignment head (align_head.py; one "layer" of one "head") instead of the model's own
    cross-attention, and with ``attention_layer`` that layer's attention as a second "head"
    (align_head.head_weights). Pairs with an empty side, or too long for the model's positions, give None.
    """
    cfg = model.config

    def encode(words: list[str], lang: str | None, tok=tokenizer):
        return encode_words(tok, words) if lang is None else encode_natural(tok, words, lang)

    items = []
    for k, (s, t) in enumerate(pairs):
        (sid, sspans) = encode(s, languages and languages[0])
        (tid, tspans) = encode(t, languages and languages[1], tokenizer.target_side())
        if s and t and len(sid) + 1 <= cfg.max_positions and len(tid) + 1 <= cfg.max_positions:
            items.append((k, sid, sspans, tid, tspans))
    items.sort(key=lambda it: len(it[1]) + len(it[3]))
    out: list[dict[bool, Tensor] | None] = [None] * len(pairs)
    # batches of similar length under a padded-token budget (source + EOS, BOS + target)
    for batch_range in token_budget_batches([len(it[1]) + len(it[3]) + 2 for it in items], max_tokens):
        batch = items[batch_range.start:batch_range.stop]
        src, tgt, _ = collate([b[1] for b in batch], [b[3] for b in batch], cfg.pad_id, cfg.bos_id, cfg.eos_id)
        if head is not None:
            attn = head_weights(model, head, src.to(device), tgt.to(device), attention_layer).float().cpu()  # (B, 1, K, T+1, S)
        else:
            weights = model(src.to(device), tgt.to(device), need_weights=True).cross_attention
            attn = torch.stack(weights, 1).float().cpu()  # (B, layers, heads, T+1, S)
        for r, (k, sid, sspans, tid, tspans) in enumerate(batch):
            a = attn[r, :, :, : len(tid) + 1, : len(sid) + 1]
            cols = sspans + [[len(sid)]]  # + </s>
            out[k] = {sh: merge_attention(a[:, :, int(sh): int(sh) + len(tid)], tspans, cols) for sh in shifts}
    return out


# -- extraction -------------------------------------------------------------------------
def extract(matrix: Tensor, rule: str = "intersect", null: bool = True) -> set[tuple[int, int]]:
    """(target words, source words + </s>) -> {(source i, target j)} links."""
    n_src = matrix.size(1) - 1
    links: set[tuple[int, int]] = set()
    if rule in ("target", "intersect", "union"):
        best = matrix.argmax(1) if null else matrix[:, :n_src].argmax(1)
        links |= {(i, j) for j, i in enumerate(best.tolist()) if i < n_src}
    if rule in ("source", "intersect", "union"):
        by_source = {(i, j) for i, j in enumerate(matrix[:, :n_src].argmax(0).tolist())}
        links = links & by_source if rule == "intersect" else links | by_source
    if rule not in RULES:
        raise InputError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    return links


def align(attention: list[dict[bool, Tensor] | None], method: Method) -> list[set[tuple[int, int]]]:
    out = []
    for a in attention:
        if a is None:
            out.append(set())
            continue
        out.append(extract(select(a[method.shift], method.layer, method.head), method.rule, method.null))
    return out


# -- with a trained alignment head, one or both directions ---------------------------------
@dataclass
class AlignmentModel:
    """One direction's network, read for alignment: its alignment head if it has one."""

    model: object
    tokenizer: object
    languages: tuple[str, str]  # (source, target) of this model
    head: object | None = None

    @classmethod
    def load(cls, model_dir, device: str = "cpu", dtype: str = "fp32") -> "AlignmentModel":
        """``dtype``: fp32, bf16, int8 (CPU), or auto (precision.alignment_dtype)."""
        model, tokenizer, config = load_model_dir(model_dir)
        dev = pick_device(device)
        chosen = alignment_dtype(dtype, dev, model.config.d_model)
        model = model.to(dev, torch.bfloat16 if chosen == "bf16" else torch.float32).eval()
        if chosen == "int8":
            model = quantize_int8(model, dev)
        return cls.of(model, tokenizer, model_dir, config)

    @classmethod
    def of(cls, model, tokenizer, model_dir, config: dict | None = None) -> "AlignmentModel":
        """A network already in memory (e.g. a translator's), with its directory's head."""
        root = resolve_model_dir(model_dir)
        if config is None:
            config = read_model_dir(root, verify=False)[1]
        langs = config.get("languages") or {"source": "en", "target": "fr"}
        head = load_alignment_head(root, config, model.config.d_model)
        if head is not None:
            head = head.to(next(model.parameters()).device)
        return cls(model, tokenizer, (langs["source"], langs["target"]), head)

    def soft(self, pairs: list[tuple[list[str], list[str]]], attention_layer: int | None = None
             ) -> list[Tensor | None]:
        """Per pair given as (source tokens, target tokens) of *this* model: (K, target words,
        source words + </s>) weights, K = 1 the head's, K = 2 with ``attention_layer``'s
        cross-attention too (align_head.head_weights); None for pairs it cannot read."""
        att = word_attention(self.model, self.tokenizer, pairs, (False,), languages=self.languages, head=self.head,
                             device=next(self.model.parameters()).device, attention_layer=attention_layer)
        return [None if a is None else a[False][0] for a in att]


def _harmonic(a: Tensor, b: Tensor) -> Tensor:
    return 2 * a * b / (a + b).clamp_min(1e-9)


def head_links(forward: list[Tensor | None], backward: list[Tensor | None] | None, threshold: float,
               head_weight: float = 1.0) -> list[set[tuple[int, int]]]:
    """Links (source i, target j of the forward model) from ``soft`` weights: (target words,
    source words + </s>) of the head, or (2, ...) of the head and of the translation's
    attention, blended as ``head_weight`` x head + the rest x attention.

    One direction: each target word's weight on each source word, linked at ``threshold``
    or above. Two directions (the backward model reads the pair the other way round): the
    harmonic mean of both weights, as Mask-Align symmetrizes, linked at ``threshold``."""
    out = []
    for k, f in enumerate(forward):
        if f is None:
            out.append(set())
            continue
        score = f[..., :-1]  # ([K,] target words, source words): drop the </s> column
        if backward is not None and backward[k] is not None:
            score = _harmonic(score, backward[k][..., :-1].transpose(-1, -2))
        if score.dim() == 3:
            score = head_weight * score[0] + (1 - head_weight) * score[1] if score.size(0) > 1 else score[0]
        js, is_ = (score >= threshold).nonzero(as_tuple=True)
        out.append({(i, j) for i, j in zip(is_.tolist(), js.tolist())})
    return out


def attention_layer_for(head_weight: float) -> int | None:
    """The decoder layer whose attention the blend reads; None when the head alone decides."""
    return None if head_weight >= 1 else ATTENTION_LAYER


def align_pairs_with_heads(pairs: list[tuple[list[str], list[str]]], forward: AlignmentModel,
                          backward: AlignmentModel | None = None, threshold: float | None = None,
                          head_weight: float = HEAD_WEIGHT, too_long: list[int] | None = None,
                          progress: Callable[[int, int], None] | None = None) -> list[set[tuple[int, int]]]:
    """``crossattn align``'s default: links (source i, target j) of gold-style token pairs
    from the alignment heads of ``forward`` and, if given, ``backward`` (the other
    direction), blended with the translation's attention and symmetrized by head_links;
    completed for the tokens as given by to_given_words. ``threshold``: None = the chosen
    one for one or two directions; ``head_weight`` 1 = the heads alone.

    Pairs too long for the model get no links; their 0-based indices are appended to
    ``too_long`` if given. ``progress(done, total)`` is called after each chunk of pairs."""
    threshold = head_threshold(threshold, backward is not None)
    layer = attention_layer_for(head_weight)
    links: list[set[tuple[int, int]]] = []
    for start in range(0, len(pairs), CHUNK):  # bounded memory on large corpora
        chunk = pairs[start: start + CHUNK]
        soft_f = forward.soft(chunk, layer)
        soft_b = backward.soft([(t, s) for s, t in chunk], layer) if backward is not None else None
        found = head_links(soft_f, soft_b, threshold, head_weight)
        links += [to_given_words(x, s, t, forward.languages) for x, (s, t) in zip(found, chunk)]
        if too_long is not None:
            too_long += [start + n for n, (f, (s, t)) in enumerate(zip(soft_f, chunk)) if f is None and s and t]
        if progress is not None:
            progress(len(links), len(pairs))
    return links


# -- links over a translation's attention view (attend, the page) ---------------------------
def head_matrices(am: AlignmentModel, pairs: list[tuple[list[int], list[list[int]], list[int], list[list[int]]]],
                  attention_layer: int | None = None) -> list[Tensor]:
    """Pairs of (source ids, source word spans, target ids, target word spans), read in
    one batch: each pair's weights merged to words, (K, target words, source words + </s>)
    as AlignmentModel.soft gives them."""
    cfg = am.model.config
    device = next(am.model.parameters()).device
    src, tgt_in, _ = collate([p[0] for p in pairs], [p[2] for p in pairs], cfg.pad_id, cfg.bos_id, cfg.eos_id)
    with torch.inference_mode():
        weights = head_weights(am.model, am.head, src.to(device), tgt_in.to(device), attention_layer).float().cpu()
    return [merge_attention(weights[r, 0, :, : len(tid), : len(sid) + 1], tspans, sspans + [[len(sid)]])
            for r, (sid, sspans, tid, tspans) in enumerate(pairs)]


def translation_links(source_tokens: list[str], target_tokens: list[str], forward: AlignmentModel,
                      backward: AlignmentModel | None = None, threshold: float | None = None,
                      keep_eos: bool = True, keep_pieces: bool = False, head_weight: float = HEAD_WEIGHT
                      ) -> list[tuple[int, int]] | None:
    """Word links ``(source word, target word)`` of a translation, with words numbered as
    the attention view numbers them (attention_views.group_pieces with the same options).

    ``source_tokens``/``target_tokens`` are an AttentionResult's pieces: each sentence ends
    with "</s>" and is read on its own (all sentences in one batch). ``forward`` is the
    translating direction, ``backward`` the other one; their alignment heads are
    blended and symmetrized as ``crossattn align`` does (the backward one only if its vocabulary has
    every piece). None if ``forward`` has no head.
    """
    if forward.head is None:
        return None
    if backward is not None and backward.head is None:
        backward = None
    _, src_words = group_pieces(source_tokens, keep_eos, keep_pieces)
    _, tgt_words = group_pieces(target_tokens, keep_eos, keep_pieces)

    def ids(tokenizer, pieces: list[str]) -> list[int] | None:
        out = [tokenizer.piece_to_id(p) for p in pieces]
        return None if any(i == UNK_ID and p != "<unk>" for i, p in zip(out, pieces)) else out

    def sentences(tokens: list[str]) -> list[tuple[int, int]]:  # (first piece, its </s>) of each sentence
        ends = [k for k, p in enumerate(tokens) if p == EOS]
        return list(zip([0] + [e + 1 for e in ends[:-1]], ends))

    parts = []  # per sentence: its words (numbers in the view, piece positions inside the sentence) and pieces
    for (s0, s1), (t0, t1) in zip(sentences(source_tokens), sentences(target_tokens)):
        src = [(w, [p - s0 for p in span]) for w, span in enumerate(src_words)
               if s0 <= span[0] < s1 and source_tokens[span[0]] != EOS]
        tgt = [(w, [p - t0 for p in span]) for w, span in enumerate(tgt_words)
               if t0 <= span[0] < t1 and target_tokens[span[0]] != EOS]
        if src and tgt:
            parts.append((src, tgt, source_tokens[s0:s1], target_tokens[t0:t1]))
    if not parts:
        return []
    spans = lambda words: [sp for _, sp in words]  # noqa: E731
    layer = attention_layer_for(head_weight)
    # the pieces came from the forward model's own vocabulary, so they all have ids there
    fwd = head_matrices(forward, [(ids(forward.tokenizer, sp), spans(src), ids(forward.tokenizer, tp), spans(tgt))
                                  for src, tgt, sp, tp in parts], layer)
    bwd: list[Tensor | None] = [None] * len(parts)
    if backward is not None:
        readable = [(k, ids(backward.tokenizer, tp), ids(backward.tokenizer, sp)) for k, (_, _, sp, tp) in enumerate(parts)]
        readable = [(k, b_src, b_tgt) for k, b_src, b_tgt in readable if b_src is not None and b_tgt is not None]
        if readable:
            found = head_matrices(backward, [(b_src, spans(parts[k][1]), b_tgt, spans(parts[k][0]))
                                             for k, b_src, b_tgt in readable], layer)
            for (k, _, _), matrix in zip(readable, found):
                bwd[k] = matrix
    links: list[tuple[int, int]] = []
    for (src, tgt, _, _), f, b in zip(parts, fwd, bwd):
        for i, j in sorted(head_links([f], None if b is None else [b], head_threshold(threshold, b is not None),
                                      head_weight)[0]):
            links.append((src[i][0], tgt[j][0]))
    return links


# -- two directions into one -------------------------------------------------------------
def grow_diag_final(forward: set[tuple[int, int]], backward: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Koehn's grow-diag-final-and: start from the links both directions agree on, grow
    into neighbouring links found by either direction, then add the remaining links of
    either direction whose words are both still unaligned. Links are (source i, target j)."""
    union = forward | backward
    links = forward & backward
    neighbours = [(-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]
    added = True
    while added:
        added = False
        for i, j in sorted(links):
            for di, dj in neighbours:
                cand = (i + di, j + dj)
                if cand in union and cand not in links:
                    src_free = all(a != cand[0] for a, _ in links)
                    tgt_free = all(b != cand[1] for _, b in links)
                    if src_free or tgt_free:
                        links.add(cand)
                        added = True
    for direction in (forward, backward):  # final-and
        for i, j in sorted(direction):
            if all(a != i for a, _ in links) and all(b != j for _, b in links):
                links.add((i, j))
    return links


# -- evaluation -------------------------------------------------------------------------
@dataclass
class Scores:
    precision: float
    recall: float
    aer: float
    links: int
    sentences: int

    def __str__(self) -> str:
        return (f"AER {100 * self.aer:.1f}\tprecision {100 * self.precision:.1f}\trecall {100 * self.recall:.1f}"
                f"\tlinks {self.links}\tsentences {self.sentences}")


def score(gold: list[tuple[set, set]], pred: list[set[tuple[int, int]]]) -> Scores:
    """Corpus-level AER = 1 - (|A&S| + |A&P|) / (|A| + |S|), precision |A&P|/|A|, recall |A&S|/|S|."""
    if len(gold) != len(pred):
        raise InputError(f"gold has {len(gold)} sentences but the prediction has {len(pred)}")
    a_s = sum(len(a & s) for (s, _), a in zip(gold, pred))
    a_p = sum(len(a & p) for (_, p), a in zip(gold, pred))
    n_a = sum(len(a) for a in pred)
    n_s = sum(len(s) for s, _ in gold)
    return Scores(a_p / n_a if n_a else 0.0, a_s / n_s if n_s else 0.0,
                  1.0 - (a_s + a_p) / (n_a + n_s) if n_a + n_s else 0.0, n_a, len(gold))


def sweep(attention: list[dict[bool, Tensor] | None], gold: list[tuple[set, set]], layers: int, heads: int
          ) -> list[tuple[Scores, Method]]:
    """Every layer (and the mean) x head (and the mean) x shift x rule x null, best first."""
    results = []
    for layer in [None, *range(layers)]:
        for head in [None, *range(heads)]:
            for shift in (False, True):
                for rule in RULES:
                    for null in ((False,) if rule == "source" else (False, True)):
                        m = Method(layer, head, shift, rule, null)
                        results.append((score(gold, align(attention, m)), m))
    return sorted(results, key=lambda r: r[0].aer)
