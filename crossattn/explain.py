"""``crossattn explain``: one translation traced step by step, with the model's real numbers.

The order follows docs/cross-attention.md: tokenise -> encoder -> memory -> one decoder
step in detail (masked self-attention, cross-attention, feed-forward, linear + softmax).
Nothing is re-implemented: the real modules run a greedy decode (the loop of
``decode.greedy_search``), forward hooks record what goes into and out of them, and the
only arithmetic done here is the inside of the chosen attention calls, written out once
more and checked against what the modules returned (``checks`` in the trace).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .errors import InputError
from .decode import writable
from .decoding import max_output_length
from .modeldir import normalize
from .torch_engine import TorchTranslator as Translator

BAR = "\u2587"  # ▇

# How the feed-forward layer's activation is named in the trace, and which hidden units
# count as active: ReLU passes a unit only when its input is positive (else exactly 0);
# GELU(x) = x * P(X <= x) passes most of its input exactly where x > 0 (the gate is over
# one half) and only a little of it, of either sign, elsewhere; swish/SiLU(x) = x * sigmoid(x)
# (Marian's) likewise. Keys: ModelConfig.activation.
ACTIVATIONS = {
    "relu": ("ReLU", "active"),
    "gelu": ("GELU", "mostly passed, input > 0"),
    "swish": ("swish (SiLU)", "mostly passed, input > 0"),
}


def _floats(t: Tensor, digits: int = 6) -> list:
    return torch.round(t.detach().float().cpu(), decimals=digits).tolist()


def _norm(t: Tensor) -> float:
    """Mean L2 norm of the d_model vectors in ``t`` (..., d_model)."""
    return round(float(t.float().norm(dim=-1).mean()), 4)


def _entropy(w: Tensor) -> Tensor:
    return -(w.clamp_min(1e-12).log() * w).sum(-1)


def _record_calls(model) -> tuple[list[list[dict]], list[int], list]:
    """Hooks on every decoder layer; ``steps[-1][layer]`` collects the current step."""
    steps: list[list[dict]] = []
    k_proj_calls = [0]
    handles = []

    def keep(layer: int, name: str, fn):
        def hook(module, args, kwargs, output):
            if steps:
                steps[-1][layer][name] = fn(args, kwargs, output)
        return hook

    def count_k_proj(*_) -> None:
        k_proj_calls[0] += 1

    for i, layer in enumerate(model.decoder_layers):
        handles += [
            layer.register_forward_hook(keep(i, "layer", lambda a, k, o: (a[0], o[0])), with_kwargs=True),
            layer.self_attn.register_forward_hook(
                keep(i, "self", lambda a, k, o: (a[0], k.get("past"), o[0])), with_kwargs=True),
            layer.cross_attn.register_forward_hook(
                keep(i, "cross", lambda a, k, o: (a[0], k["kv"], o[0], o[1])), with_kwargs=True),
            layer.feed_forward.register_forward_hook(keep(i, "ff", lambda a, k, o: (a[0], o)), with_kwargs=True),
            layer.cross_attn.k_proj.register_forward_hook(count_k_proj),
        ]
    return steps, k_proj_calls, handles


def top_words(weights: Tensor, pieces: list[str], k: int = 3) -> list[dict]:
    """Source words (pieces merged as in ``crossattn attend``: weights summed) by weight."""
    from .attention_views import group_pieces

    labels, spans = group_pieces(pieces)
    mass = torch.stack([weights[s].sum() for s in spans])
    best = mass.argsort(descending=True)[:k].tolist()
    return [{"word": labels[i], "weight": round(float(mass[i]), 4)} for i in best]


def pick_defaults(attn: Tensor, target: list[str], source: list[str]) -> tuple[int, int, int]:
    """(step, layer, head) to show when not given, chosen from this sentence's attention.

    layer: the one whose head-average is most focused (lowest mean entropy); head: the
    most focused head of that layer; step: the word-initial target token with the most
    peaked attention on one source word (a clear counterpart), else step 1.
    """
    layer = int(_entropy(attn.mean(1)).mean(-1).argmin())
    head = int(_entropy(attn[layer]).mean(-1).argmin())
    best, step = 0.0, 1
    for t, piece in enumerate(target):
        if piece.startswith("\u2581") and sum(c.isalpha() for c in piece) >= 2:
            peak = top_words(attn[layer, :, t].mean(0), source, 1)[0]["weight"]
            if peak > best:
                best, step = peak, t + 1
    return step, layer, head


def trace_encoder(model, src: Tensor, source: list[str]) -> tuple[dict, Tensor, Tensor | None]:
    """The loop of model.encode, one layer at a time, with what each stage looks like."""
    src_pad = model.source_padding(src)  # None: one sentence has no padding
    emb = model.embed.tokens(src)[0]
    pos = model.embed.positions[: src.size(1)]
    x = model.embed(src)
    encoder = {
        "scale": model.embed.scale,
        "input_shape": list(x.shape),
        "tokens": [{"piece": p, "id": i, "embedding_norm": _norm(e), "scaled_norm": _norm(e * model.embed.scale),
                    "position_norm": _norm(q), "input_norm": _norm(v)}
                   for p, i, e, q, v in zip(source, src[0].tolist(), emb, pos, x[0])],
        "layers": [],
    }
    ex = min(4, len(source) - 1)  # one position worth spelling out: sin/cos are not trivial there
    encoder["example"] = {"position": ex, "piece": source[ex],
                          "scaled_embedding": _floats(emb[ex, :4] * model.embed.scale, 4),
                          "position_encoding": _floats(pos[ex, :4], 4), "input": _floats(x[0, ex, :4], 4)}
    for enc_layer in model.encoder_layers:
        x = enc_layer(x, src_pad)
        encoder["layers"].append({"shape": list(x.shape), "mean_norm": _norm(x[0])})
    memory = model.encoder_norm(x)
    encoder["memory"] = {"shape": list(memory.shape), "mean_norm": _norm(memory[0])}
    return encoder, memory, src_pad


def greedy_with_records(model, memory: Tensor, src_pad: Tensor | None, src: Tensor) -> tuple[list, dict]:
    """Greedy decoding with the incremental decoder, hooks recording each layer at each step."""
    cfg = model.config
    records, k_proj_calls, handles = _record_calls(model)
    try:
        state = model.start_decoding(memory, src_pad)
        calls_at_start = k_proj_calls[0]
        cross_ptrs = [c.k.data_ptr() for c in state.cross_kv]
        inp = torch.tensor([[cfg.bos_id]], device=src.device)
        out_ids, logits_per_step, attn = [], [], []
        for _ in range(max_output_length(src.size(1), cfg.max_positions)):
            records.append([{} for _ in model.decoder_layers])
            logits, weights = model.decode_step(inp, state, need_weights=True)
            logits_per_step.append(logits[0].float())
            attn.append(torch.stack([w[0, :, 0] for w in weights]).float())  # (L, H, S)
            out_ids.append(int(writable(logits, cfg)[0].argmax()))
            if out_ids[-1] == cfg.eos_id:
                break
            inp = torch.tensor([[out_ids[-1]]], device=src.device)
    finally:
        for h in handles:
            h.remove()
    return records, {"ids": out_ids, "logits": logits_per_step, "attention": torch.stack(attn, 2),
                     "k_proj_at_start": calls_at_start, "cross_ptrs": cross_ptrs, "k_proj": k_proj_calls}


@torch.inference_mode()
def trace(translator: Translator, text: str, step: int | None = None, layer: int | None = None,
          head: int | None = None) -> dict:
    """Greedy-translate ``text`` and return every intermediate the terminal view prints."""
    from .attention_views import check_index

    model, tok, cfg = translator.model, translator.tokenizer, translator.model.config
    text = normalize(text)
    if not text:
        raise InputError("nothing to explain: give a sentence")
    ids = tok.encode(text)[: translator.max_source_tokens - 1]
    src = torch.tensor([ids + [cfg.eos_id]], device=translator.device)
    source = [tok.id_to_piece(i) for i in ids] + ["</s>"]
    d, n_heads, d_head = cfg.d_model, cfg.n_heads, cfg.d_model // cfg.n_heads
    layer, head = check_index(layer, cfg.decoder_layers, "layer"), check_index(head, n_heads, "head")

    encoder, memory, src_pad = trace_encoder(model, src, source)
    records, decoding = greedy_with_records(model, memory, src_pad, src)
    out_ids, logits_per_step = decoding["ids"], decoding["logits"]
    calls_at_start, cross_ptrs, k_proj_calls = decoding["k_proj_at_start"], decoding["cross_ptrs"], decoding["k_proj"]
    target = [tok.id_to_piece(i) for i in out_ids]
    attention = decoding["attention"]  # (L, H, T, S) like translate_with_attention
    auto = pick_defaults(attention, target, source)
    step = auto[0] if step is None else step
    if not 1 <= step <= len(target):
        n = len(target)
        raise InputError(f"step {step} out of range: the greedy translation has {n} steps (1-{n})")
    layer = auto[1] if layer is None else layer
    head = auto[2] if head is None else head
    rec = records[step - 1][layer]
    dec_layer = model.decoder_layers[layer]

    # -- the chosen step, replayed inside the chosen layer -----------------------------
    h_self, past, y_self = rec["self"]
    y_replay, self_w, _ = dec_layer.self_attn(h_self, causal=True, past=past, need_weights=True)
    h, kv, y_cross, w_cross = rec["cross"]
    mha = dec_layer.cross_attn
    q = mha.q_proj(h).view(1, 1, n_heads, d_head).transpose(1, 2)  # (1, H, 1, d_head)
    scores = q @ kv.k.transpose(-2, -1) / math.sqrt(d_head)  # (1, H, 1, S)
    weights = scores.float().softmax(-1).to(q.dtype)
    context = weights @ kv.v  # (1, H, 1, d_head)
    concat = context.transpose(1, 2).reshape(1, 1, d)
    out = mha.out_proj(concat)
    h_ff, y_ff = rec["ff"]
    pre_activation = dec_layer.feed_forward.up(h_ff)
    hidden = dec_layer.feed_forward.act(pre_activation)
    activation, active_rule = ACTIVATIONS[cfg.activation]
    logits = logits_per_step[step - 1]
    probs = logits.softmax(-1)
    top_p, top_i = probs.topk(5)
    w_mean, w_head = weights[0, :, 0].float().mean(0), weights[0, head, 0].float()
    prefix = [tok.id_to_piece(cfg.bos_id)] + target[: step - 1]

    return {
        "text": text,
        "model": {k: getattr(cfg, k) for k in ("d_model", "n_heads", "d_ff", "encoder_layers", "decoder_layers",
                                               "vocab_size", "norm_first", "tie_output", "activation",
                                               "final_logits_bias")}
        | {"head_dim": d_head, "device": str(translator.device),
           "dtype": str(translator.dtype).replace("torch.", "")},
        "decoding": "greedy",
        "translation": tok.decode(out_ids),
        "beam_translation": translator.translate([text])[0],
        "beam": translator.decoding["beam"],
        "source": {"pieces": source, "ids": src[0].tolist()},
        "encoder": encoder,
        "target": {"pieces": target, "ids": out_ids},
        "steps": [{"step": t + 1, "input": ([tok.id_to_piece(cfg.bos_id)] + target)[t], "token": target[t],
                   "prob": round(float(logits_per_step[t].softmax(-1)[out_ids[t]]), 4),
                   "looks_at": top_words(attention[layer, :, t].mean(0), source, 1)[0]}
                  for t in range(len(target))],
        "step": step, "layer": layer, "head": head, "auto": dict(zip(("step", "layer", "head"), auto)),
        "prefix": prefix,
        "decoder_layers": [{"input_norm": _norm(r["layer"][0]), "output_norm": _norm(r["layer"][1])}
                           for r in records[step - 1]],
        "self_attention": {"keys": prefix, "weights_head": _floats(self_w[0, head, 0]),
                           "weights_mean": _floats(self_w[0, :, 0].float().mean(0))},
        "cross_attention": {
            "query_input_shape": list(h.shape), "query_input_norm": _norm(h), "q_shape": list(q.shape),
            "k_shape": list(kv.k.shape), "v_shape": list(kv.v.shape),
            "cache": {"k_proj_calls_in_start_decoding": calls_at_start,
                      "k_proj_calls_during_decoding": k_proj_calls[0] - calls_at_start,
                      "data_ptr_at_start": cross_ptrs[layer], "data_ptr_at_step": kv.k.data_ptr(),
                      "same_tensor": all(r[i]["cross"][1].k.data_ptr() == cross_ptrs[i]
                                         for r in records for i in range(len(r)))},
            "scores": _floats(scores[0, head, 0]), "weights": _floats(w_head),
            "weights_all_heads": _floats(weights[0, :, 0]), "weights_mean": _floats(w_mean),
            "context_shape": list(context.shape), "context_head": _floats(context[0, head, 0, :4], 4),
            "concat_shape": list(concat.shape), "output_shape": list(out.shape), "output_norm": _norm(out),
            "top_words_mean": top_words(w_mean, source), "top_words_head": top_words(w_head, source),
        },
        "feed_forward": {"input_shape": list(h_ff.shape), "hidden_shape": list(hidden.shape),
                         "activation": activation, "active_rule": active_rule,
                         "active_fraction": round(float((pre_activation > 0).float().mean()), 4),
                         "output_shape": list(y_ff.shape), "output_norm": _norm(y_ff)},
        "output": {"logits_shape": [1, logits.numel()], "top5": [
            {"piece": tok.id_to_piece(i), "id": i, "logit": round(float(logits[i]), 4), "prob": round(float(p), 6)}
            for p, i in zip(top_p.tolist(), top_i.tolist())]},
        "chosen": {"piece": target[step - 1], "id": out_ids[step - 1]},
        "checks": {  # max |difference| between the written-out maths and the modules' own results
            "self_attention_output": float((y_replay - y_self).abs().max()),
            "cross_attention_weights": float((weights - w_cross).abs().max()),
            "cross_attention_output": float((out - y_cross).abs().max()),
        },
        "attention": _floats(attention),  # (layers, heads, steps, source pieces)
    }


# -- terminal view --------------------------------------------------------------------
def _bar(w: float, width: int = 30) -> str:
    return BAR * round(max(w, 0.0) * width)


def _shape(s: list[int]) -> str:
    return "(" + ", ".join(map(str, s)) + ")"


def _vec(v: list[float]) -> str:
    return "[" + ", ".join(f"{x:+.3f}" for x in v) + ", ...]"


def _is_number(cell: str) -> bool:
    try:
        float(cell.rstrip("%"))
        return True
    except ValueError:
        return False


def _table(header: list[str], rows: list[list], indent: str = "  ") -> list[str]:
    """Aligned columns; numbers right-aligned, text left-aligned."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) for i in range(len(header))]
    fmt = lambda r: indent + "  ".join(c.rjust(w) if n else c.ljust(w)  # noqa: E731
                                       for c, w, n in zip(r, widths, numeric)).rstrip()
    return [fmt(cells[0])] + [fmt(r) for r in cells[1:]]


def _render_source_and_encoder(tr: dict, section) -> list[str]:
    """Sections 1 and 2: the source's pieces, then the encoder."""
    m, enc, src = tr["model"], tr["encoder"], tr["source"]["pieces"]
    out: list[str] = []
    out += section("1. Tokenise the source (SentencePiece, shared en+fr vocabulary)")
    out += _table(["pos", "piece", "id"], [[i, p, n] for i, (p, n) in enumerate(zip(src, tr["source"]["ids"]))])
    out.append(f"  {len(src)} tokens; \u2581 starts a word; </s> (end of sentence) is appended to every source.")

    scale = enc["scale"]
    out += section("2. Encoder: source -> memory")
    out.append(f"  x0 = embedding[id] x sqrt({m['d_model']}) (= {scale:.2f}) + position encoding"
               f"      shape {_shape(enc['input_shape'])}")
    out += _table(["pos", "piece", "|emb|", f"|emb x {scale:.1f}|", "|position|", "|x0|"],
                  [[i, t["piece"]] + [f"{t[k]:.2f}" for k in ("embedding_norm", "scaled_norm", "position_norm",
                                                                "input_norm")]
                   for i, t in enumerate(enc["tokens"])])
    ex = enc["example"]
    out += [f"  position {ex['position']} ({ex['piece']}), first 4 of {m['d_model']} values:",
            f"      embedding x {scale:.2f}  {_vec(ex['scaled_embedding'])}",
            f"    + position          {_vec(ex['position_encoding'])}",
            f"    = x0                {_vec(ex['input'])}",
            f"  {m['encoder_layers']} layers, each: self-attention over the whole source, then feed-forward"
            f" (residual, {'pre' if m['norm_first'] else 'post'}-LN)"]
    out += _table(["layer", "output shape", "mean |x|"],
                  [[i, _shape(l["shape"]), f"{l['mean_norm']:.1f}"] for i, l in enumerate(enc["layers"])])
    memory = "LayerNorm(output of layer {})" if m["norm_first"] else "output of layer {} (normalised in the layer)"
    out += [f"  memory = {memory.format(m['encoder_layers'] - 1)}   "
            f"shape {_shape(enc['memory']['shape'])}, mean |x| {enc['memory']['mean_norm']:.1f}",
            "  The memory is all the decoder will ever see of the source."]
    return out


def _render_step(tr: dict, section, bold) -> list[str]:
    """Section 3: one decoder step inside one layer, every operation with its numbers."""
    m, ca, src = tr["model"], tr["cross_attention"], tr["source"]["pieces"]
    step, layer, head = tr["step"], tr["layer"], tr["head"]
    out: list[str] = []
    n_steps = len(tr["steps"])
    auto = tr["auto"]
    out += section(f"3. Decoder, step {step} of {n_steps}, layer {layer}, head {head}")
    if (step, layer, head) == (auto["step"], auto["layer"], auto["head"]):
        out += ["  (picked automatically: the most focused layer and head of this sentence, and a target word",
                "  with a clear source counterpart; choose others with --step, --layer, --head)"]
    out += [f"  prefix so far  {' '.join(tr['prefix'])}",
            f"  The decoder reads the last token \"{tr['prefix'][-1]}\" (position {step - 1}) "
            "and predicts the next one."]
    sa = tr["self_attention"]
    out += ["", bold(f"  3a. Masked self-attention over the prefix (layer {layer})"),
            f"  Position {step - 1} sees positions 0-{step - 1} only: the causal mask hides the future."]
    out += _table(["pos", "key", f"head {head}", "", "mean of heads"],
                  [[i, k, f"{w:.3f}", _bar(w, 20), f"{a:.3f}"]
                   for i, (k, w, a) in enumerate(zip(sa["keys"], sa["weights_head"], sa["weights_mean"]))])

    c, split = ca["cache"], f"q = h W_q, split into {m['n_heads']} heads"
    # pre-LN normalises a sublayer's input; post-LN (Marian) its output, after the residual
    query_input = "h = LayerNorm(x after self-attention)" if m["norm_first"] else "h = x after self-attention (+ LN)"
    out += ["", bold(f"  3b. Cross-attention (layer {layer}): the translation looks at the source"),
            "  Q comes from the decoder:",
            f"    {query_input:<40}{_shape(ca['query_input_shape']):<14} "
            "batch, 1 position, d_model",
            f"    {split:<40}{_shape(ca['q_shape']):<14} batch, heads, 1 query, d_head",
            "  K and V come from the encoder memory:",
            f"    {'k = memory W_k, v = memory W_v':<40}{_shape(ca['k_shape']):<14} batch, heads, "
            f"{len(src)} source tokens, d_head",
            "  K and V are projected once per sentence (model.start_decoding) and cached: k_proj ran",
            f"  {c['k_proj_calls_in_start_decoding']} times before step 1 (once per decoder layer) and "
            f"{c['k_proj_calls_during_decoding']} times during the {n_steps} steps;",
            f"  every step read the very tensors made before step 1: {'yes' if c['same_tensor'] else 'NO'}",
            f"  (layer {layer} K: data_ptr {c['data_ptr_at_start']:#x} after start_decoding, "
            f"{c['data_ptr_at_step']:#x} at step {step}).",
            f"  scores = q . k / sqrt({m['head_dim']}) for head {head}, then softmax over the source = the attention "
            "filter:"]
    out += _table(["pos", "source", "score", "weight", ""],
                  [[i, p, f"{s:+.2f}", f"{w:.3f}", _bar(w)] for i, (p, s, w) in enumerate(zip(src, ca["scores"],
                                                                                          ca["weights"]))])
    out += [f"  the weights sum to {sum(ca['weights']):.3f}",
            f"  context = weights . V      {_shape(ca['context_shape'])}; head {head}: {_vec(ca['context_head'])}",
            f"  concatenate the {m['n_heads']} heads    {_shape(ca['concat_shape'])}, then W_o -> "
            f"{_shape(ca['output_shape'])}, |out| {ca['output_norm']:.1f}, added to the residual",
            "  looks at (source words, weights of their pieces summed):",
            f"      head {head}:        " + ", ".join(f"{w['word']} {w['weight']:.2f}" for w in ca["top_words_head"]),
            "      mean of heads: " + ", ".join(f"{w['word']} {w['weight']:.2f}" for w in ca["top_words_mean"]),
            f"  check: written-out maths vs the module, max |diff| weights "
            f"{tr['checks']['cross_attention_weights']:.1e}, output {tr['checks']['cross_attention_output']:.1e}"]

    ff = tr["feed_forward"]
    out += ["", bold(f"  3c. Feed-forward (layer {layer}, each position on its own)"),
            f"  {'LayerNorm -> ' if m['norm_first'] else ''}Linear {m['d_model']}->{m['d_ff']} -> {ff['activation']} "
            f"({ff['active_fraction']:.0%} of units {ff['active_rule']}) -> Linear {m['d_ff']}->{m['d_model']} -> "
            f"{_shape(ff['output_shape'])}, |out| {ff['output_norm']:.1f}"
            f"{'' if m['norm_first'] else ', added to the residual, then LayerNorm'}",
            f"  the {m['decoder_layers']} decoder layers at this step (mean |x| of the residual stream):"]
    out += _table(["layer", "in", "out"], [[i, f"{l['input_norm']:.1f}", f"{l['output_norm']:.1f}"]
                                           for i, l in enumerate(tr["decoder_layers"])], indent="    ")

    o = tr["output"]
    tied = "the embedding matrix, transposed (tied)" if m["tie_output"] else "W_out"
    out += ["", bold("  3d. Linear to the vocabulary, then softmax"),
            f"  {'LayerNorm -> ' if m['norm_first'] else ''}x {tied} -> logits {_shape(o['logits_shape'])} "
            f"{'(+ the final logits bias) ' if m.get('final_logits_bias') else ''}-> softmax -> probabilities"]
    out += _table(["rank", "token", "id", "logit", "prob", ""],
                  [[r + 1, t["piece"], t["id"], f"{t['logit']:.2f}", f"{t['prob']:.4f}", _bar(t["prob"])]
                   for r, t in enumerate(o["top5"])])
    out.append(f"  chosen (greedy = rank 1): \"{tr['chosen']['piece']}\" (id {tr['chosen']['id']})")
    return out


def _render_all_steps(tr: dict, section) -> list[str]:
    """Section 4: the whole greedy translation, step by step."""
    layer = tr["layer"]
    out: list[str] = []
    out += section("4. The whole greedy translation, step by step")
    out += _table(["step", "reads", "writes", "prob", f"looks at (layer {layer}, mean of heads)"],
                  [[s["step"], s["input"], s["token"], f"{s['prob']:.3f}",
                    f"{s['looks_at']['word']} {s['looks_at']['weight']:.2f}"] for s in tr["steps"]])
    return out


def render(tr: dict, color: bool = False) -> str:
    """The trace as readable text: sections in the order of the idea."""
    m = tr["model"]
    bold = (lambda s: f"\033[1m{s}\033[0m") if color else (lambda s: s)
    section = lambda title: ["", bold(f"\u2501\u2501 {title} " + "\u2501" * max(3, 72 - len(title)))]  # noqa: E731
    out = [bold(f'crossattn explain: "{tr["text"]}"'),
           f"model     d_model {m['d_model']} = {m['n_heads']} heads x {m['head_dim']}, {m['encoder_layers']} encoder "
           f"+ {m['decoder_layers']} decoder layers, vocabulary {m['vocab_size']} ({m['dtype']}, {m['device']})",
           "decoding  greedy: the most probable token at every step. This trace follows it.",
           f"          greedy  {tr['translation']}",
           f"          beam {tr['beam']}  {tr['beam_translation']}   (what `crossattn translate` prints)",
           "Layers and heads count from 0 (as in `crossattn attend`), steps from 1."]

    out += _render_source_and_encoder(tr, section)
    out += _render_step(tr, section, bold)
    out += _render_all_steps(tr, section)
    return "\n".join(out)
