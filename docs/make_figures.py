"""Regenerate everything in docs/cross-attention.md that comes from the code or the model.

    python docs/make_figures.py            # figures, explain excerpt, line anchors
    python docs/make_figures.py --check    # only verify the line anchors (no model, no writes)
    python docs/make_figures.py --fix-links  # only move the line anchors to where the code is now

* Figures in docs/img/ are drawn from the shipped model (heatmaps through
  crossattn.visualize, the rest with matplotlib here).
* The block between ``<!-- explain:begin -->`` and ``<!-- explain:end -->`` is replaced
  by real ``crossattn explain`` output.
* Every code link in the article has the form [`snippet`](../crossattn/FILE.py#Lnn): the
  snippet must occur on exactly one line of FILE, and nn is rewritten to that line, so
  the links follow the code when it moves (tests/test_explain.py runs the check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT, IMG, ARTICLE = DOCS.parent, DOCS / "img", DOCS / "cross-attention.md"
LINK = re.compile(r"\[`([^`]+)`\]\(\.\./(crossattn/[\w/]+\.py)#L(\d+)(?:-L(\d+))?\)")
EXAMPLE = "Hello, how are you?"
# training pair for the teacher-forcing figure: written for this doc, in Tatoeba's style; the
# reference orders the words differently from the model's own translation on purpose
PAIR = ("I have never seen such a beautiful red car.", "Je n'ai jamais vu une voiture rouge aussi belle.")
BLUE, DARK = "#2f6db5", "#17375e"


def check_anchors(fix: bool = False) -> list[str]:
    """Problems with the article's code links; with ``fix``, wrong line numbers are corrected."""
    text = ARTICLE.read_text(encoding="utf-8")
    problems: list[str] = []

    def anchor(m: re.Match) -> str:
        snippet, rel, start = m.group(1), m.group(2), int(m.group(3))
        lines = (ROOT / rel).read_text(encoding="utf-8").splitlines()
        hits = [i + 1 for i, line in enumerate(lines) if snippet in line]
        if len(hits) != 1:
            problems.append(f"{rel}: `{snippet}` found on {len(hits)} lines, need exactly 1")
            return m.group(0)
        end = "" if m.group(4) is None else f"-L{hits[0] + int(m.group(4)) - start}"
        if hits[0] != start and not fix:
            problems.append(f"{rel}: `{snippet}` is on line {hits[0]}, the link says {start}")
        return f"[`{snippet}`](../{rel}#L{hits[0]}{end})"

    new = LINK.sub(anchor, text)
    if fix and new != text:
        ARTICLE.write_text(new, encoding="utf-8")
    return problems


def explain_excerpt(tr: dict) -> str:
    """Sections 3b and 3d of the terminal trace: the cross-attention and the chosen word."""
    from crossattn.explain import render

    lines = render(tr).splitlines()
    start = next(i for i, s in enumerate(lines) if "3b. Cross-attention" in s)
    stop = next(i for i, s in enumerate(lines) if "3c. Feed-forward" in s)
    head = [lines[0]] + [s for s in lines[1:6] if "greedy" in s] + ["..."]
    d0 = next(i for i, s in enumerate(lines) if "3d. Linear" in s)
    d1 = next(i for i, s in enumerate(lines) if s.startswith("\u2501\u2501 4."))
    # the data_ptr line changes on every run: leave it out so the article only changes with the model
    body = [s for s in lines[start:stop - 1] if "data_ptr" not in s]
    return "\n".join(head + body + ["..."] + lines[d0:d1 - 1])


def replace_block(name: str, body: str) -> None:
    text = ARTICLE.read_text(encoding="utf-8")
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    i, j = text.index(begin) + len(begin), text.index(end)
    ARTICLE.write_text(text[:i] + "\n" + body + "\n" + text[j:], encoding="utf-8")


def figure_step(tr: dict, path: Path) -> None:
    """One decoder step: scores q.k/sqrt(d_head) -> softmax -> the attention filter."""
    import matplotlib.pyplot as plt

    ca, src = tr["cross_attention"], tr["source"]["pieces"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=150, sharey=True)
    y = range(len(src))
    a.barh(y, ca["scores"], color=["#c0504d" if s < 0 else BLUE for s in ca["scores"]])
    a.axvline(0, color="black", linewidth=0.8)
    a.set_title(f"scores  q\u00b7k / \u221a{tr['model']['head_dim']}", fontsize=14)
    b.barh(y, ca["weights"], color=BLUE)
    b.set_xlim(0, 1.08)
    b.set_title("softmax: the attention filter (sums to 1)", fontsize=14)
    for i, (s, w) in enumerate(zip(ca["scores"], ca["weights"])):
        a.text(s + (0.15 if s >= 0 else -0.15), i, f"{s:+.2f}", va="center", ha="left" if s >= 0 else "right",
               fontsize=11, color=DARK)
        b.text(w + 0.01, i, f"{w:.3f}", va="center", fontsize=11, color=DARK)
    lo, hi = min(ca["scores"]), max(ca["scores"])
    a.set_xlim(lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo))
    a.set_yticks(list(y), src, fontsize=13)
    a.invert_yaxis()
    for ax in (a, b):
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="x", labelsize=11)
    fig.suptitle(f"Step {tr['step']}: after \u201c{' '.join(tr['prefix'])}\u201d the decoder writes "
                 f"\u201c{tr['chosen']['piece']}\u201d   (layer {tr['layer']}, head {tr['head']})", fontsize=15)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def figure_teacher_forcing(translator, path: Path) -> tuple[str, list[tuple[str, float]]]:
    """Training-time view: the reference is fed in, every position attends at once."""
    import matplotlib.pyplot as plt
    import torch

    tok, cfg = translator.tokenizer, translator.model.config
    src_ids, ref_ids = tok.encode(PAIR[0]), tok.encode(PAIR[1])
    src = torch.tensor([src_ids + [cfg.eos_id]])
    tgt_in = torch.tensor([[cfg.bos_id] + ref_ids])  # the reference, shifted right
    with torch.inference_mode():
        out = translator.model(src, tgt_in, need_weights=True)
    layer = 1
    attn = out.cross_attention[layer][0].float().mean(0)  # (T, S), mean of heads
    gold = torch.tensor(ref_ids + [cfg.eos_id])
    p_gold = out.logits[0].float().softmax(-1).gather(1, gold[:, None])[:, 0]
    source = [tok.id_to_piece(i) for i in src_ids] + ["</s>"]
    target = [tok.id_to_piece(i) for i in ref_ids] + ["</s>"]

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 7.2), dpi=150, sharey=True,
                               gridspec_kw={"width_ratios": [len(source), 4.5]})
    a.imshow(attn.numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (r, c), v in zip(((r, c) for r in range(len(target)) for c in range(len(source))), attn.flatten().tolist()):
        if v >= 0.15:
            a.text(c, r, f"{v:.2f}"[1:], ha="center", va="center", fontsize=9, color="white" if v > 0.55 else DARK)
    a.set_xticks(range(len(source)), source, rotation=50, ha="right", rotation_mode="anchor", fontsize=12)
    a.set_yticks(range(len(target)), [f"{t}  \u2190 {i}" for t, i in zip(target, ["<s>"] + target[:-1])],
                 fontsize=12)
    a.set_xlabel("source (encoder memory: keys and values)", fontsize=12)
    a.set_ylabel("reference token to predict  \u2190  decoder input (query)", fontsize=12)
    a.set_title(f"cross-attention, layer {layer}, mean of {cfg.n_heads} heads", fontsize=13)
    a.tick_params(length=0)
    b.barh(range(len(target)), p_gold.numpy(), color=[BLUE if p >= 0.5 else "#c0504d" for p in p_gold.tolist()])
    for i, p in enumerate(p_gold.tolist()):
        b.text(p + 0.02, i, f"{p:.3f}", va="center", fontsize=11, color=DARK)
    b.set_xlim(0, 1.3)
    b.set_xticks([0, 0.5, 1])
    b.set_title("p(reference token)\nloss = \u2212log p", fontsize=13)
    b.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"Teacher forcing: \u201c{PAIR[0]}\u201d \u2192 \u201c{PAIR[1]}\u201d", fontsize=14)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return translator.translate([PAIR[0]])[0], list(zip(target, [round(p, 4) for p in p_gold.tolist()]))


def figure_shapes(tr: dict, path: Path) -> None:
    """The data flow of one cross-attention call, with this sentence's real shapes."""
    import matplotlib.pyplot as plt

    ca, m = tr["cross_attention"], tr["model"]
    shape = lambda s: "(" + ", ".join(map(str, s[1:])) + ")"  # noqa: E731  (batch of 1 left out)
    S, H = len(tr["source"]["pieces"]), m["n_heads"]
    enc, dec, mix = "#e8eef7", "#fdf0e2", "#eaf4e4"
    boxes = {  # name: (x, y, text, colour)
        "mem": (0.10, 0.40, f"memory\n(encoder output)\n{shape(tr['encoder']['memory']['shape'])}", enc),
        "k": (0.35, 0.55, f"K = memory W_k\n{shape(ca['k_shape'])}", enc),
        "v": (0.35, 0.20, f"V = memory W_v\n{shape(ca['v_shape'])}", enc),
        "dec": (0.35, 0.88, f"decoder state after masked\nself-attention + LayerNorm\n{shape(ca['query_input_shape'])}",
                dec),
        "q": (0.64, 0.88, f"Q = h W_q, {H} heads\n{shape(ca['q_shape'])}", dec),
        "w": (0.64, 0.55, f"softmax(Q K\u1d40 / \u221a{m['head_dim']})\n{shape([1, H, 1, S])}: one weight\n"
                          "per source token", mix),
        "ctx": (0.64, 0.20, f"weights \u00b7 V\n{shape(ca['context_shape'])}", mix),
        "out": (0.90, 0.20, f"concat heads\n\u00d7 W_o\n{shape(ca['output_shape'])}", mix),
        "logit": (0.90, 0.55, f"+ residual,\nfeed-forward,\nlinear: logits\n{shape(tr['output']['logits_shape'])}\n"
                              f"\u2192 \u201c{tr['chosen']['piece']}\u201d", "#f3e8f7"),
    }
    fig, ax = plt.subplots(figsize=(13, 6.4), dpi=150)
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    artists = {name: ax.text(x, y, text, ha="center", va="center", fontsize=13, linespacing=1.35,
                             bbox=dict(boxstyle="round,pad=0.55", facecolor=colour, edgecolor="#7a869a"))
               for name, (x, y, text, colour) in boxes.items()}
    arrows = [("mem", "k", ""), ("mem", "v", ""), ("dec", "q", ""), ("q", "w", "Q"), ("k", "w", "K"),
              ("w", "ctx", "weights"), ("v", "ctx", "V"), ("ctx", "out", ""), ("out", "logit", "")]
    fig.canvas.draw()  # box sizes are known only after a draw
    for a, b, label in arrows:
        ta, tb = artists[a], artists[b]
        ax.annotate("", xy=(0.5, 0.5), xycoords=tb, xytext=(0.5, 0.5), textcoords=ta,
                    arrowprops=dict(arrowstyle="-|>", color="#44546a", lw=1.8, shrinkA=3, shrinkB=3,
                                    patchA=ta.get_bbox_patch(), patchB=tb.get_bbox_patch()))
        if label:
            (x0, y0), (x1, y1) = boxes[a][:2], boxes[b][:2]
            vertical = abs(x1 - x0) < 0.01
            ax.text((x0 + x1) / 2 + (0.012 if vertical else 0), (y0 + y1) / 2 + (0 if vertical else 0.03), label,
                    fontsize=13, color="#c0504d", fontweight="bold", ha="left" if vertical else "center")
    ax.text(0.35, 0.04, "K and V: computed once per sentence, cached for every step", ha="center",
            fontsize=11.5, color="#44546a", style="italic")
    ax.text(0.10, 0.58, "source side (encoder)", ha="center", fontsize=12, color=DARK, fontweight="bold")
    ax.text(0.495, 0.995, "target side (decoder)", ha="center", fontsize=12, color="#9c5b15", fontweight="bold")
    fig.suptitle(f"Cross-attention at step {tr['step']}, layer {tr['layer']}, for \u201c{tr['text']}\u201d "
                 "(batch dimension left out)", fontsize=15)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    if "--check" in sys.argv[1:] or "--fix-links" in sys.argv[1:]:
        problems = check_anchors(fix="--fix-links" in sys.argv[1:])
        print("\n".join(problems) or "anchors ok")
        return 1 if problems else 0
    import matplotlib

    matplotlib.use("Agg")
    from crossattn.explain import trace
    from crossattn.torch_engine import TorchTranslator as Translator  # the network itself: traces read its insides
    from crossattn.attention_views import word_view
    from crossattn.visualize import save_grid, save_heatmap

    IMG.mkdir(exist_ok=True)
    translator = Translator.load(device="cpu", dtype="fp32")  # fp32: the same numbers on every machine
    tr = trace(translator, EXAMPLE)
    result = translator.translate_with_attention(EXAMPLE)
    view = word_view(result)
    caption = f"{EXAMPLE}  \u2192  {result.translation}"
    save_heatmap(view, IMG / "hello-heatmap.png", layer=tr["layer"], caption=caption)
    save_grid(view, IMG / "hello-grid.png", caption=caption)
    figure_step(tr, IMG / "hello-step.png")
    figure_shapes(tr, IMG / "cross-attention-shapes.png")
    own, probs = figure_teacher_forcing(translator, IMG / "teacher-forcing.png")
    replace_block("explain", "```text\n$ crossattn explain \"" + EXAMPLE + "\"\n" + explain_excerpt(tr) + "\n```")
    problems = check_anchors(fix=True)
    print(f"{EXAMPLE} -> {result.translation} (beam), {tr['translation']} (greedy); step {tr['step']} "
          f"layer {tr['layer']} head {tr['head']}")
    print(f"teacher forcing: model's own translation: {own}")
    print("p(reference token): " + ", ".join(f"{t} {p:.3f}" for t, p in probs))
    print("\n".join(problems) or "anchors ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
