"""Drawing cross-attention: heatmaps (PNG), the text table of ``crossattn attend``, and its JSON.

The word-level views they draw (pieces merged into words, layers and heads selected)
are attention_views.py's. Attention row t is the step that *predicts* target token t, so
the heatmap reads "while writing this word, the decoder looked at ...".
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .atomic import atomic_path, crash_point
from .attention_views import AttentionResult, WordView, select


def describe(layer: int | None, head: int | None, n_layers: int, n_heads: int) -> str:
    lay = f"mean of {n_layers} layers" if layer is None else f"layer {layer % n_layers}"
    hd = f"mean of {n_heads} heads" if head is None else f"head {head % n_heads}"
    return f"{lay}, {hd}"


# -- rendering ------------------------------------------------------------------------
def text_table(matrix: Tensor, source: list[str], target: list[str], top: int = 2,
               links: list[tuple[int, int]] | None = None) -> str:
    """For each target word, its strongest source words with weights, in aligned columns;
    with ``links`` (source word, target word), a last column: the words it is aligned to."""
    k = min(top, len(source))
    weights, idx = matrix.topk(k, dim=-1)
    rows = [[t] + [f"{source[i]} {w:.2f}" for w, i in zip(ws.tolist(), ix.tolist())]
            for t, ws, ix in zip(target, weights, idx)]
    header = ["target", "looks at (weight)"] + ["next"] * (k - 1)
    if links is not None:
        header.append("aligned to")
        for j, row in enumerate(rows):
            row.append(" ".join(source[i] for i, jj in sorted(links) if jj == j) or "-")
    widths = [max(len(r[c]) for r in rows + [header]) for c in range(len(header))]
    line = lambda r: "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def wrap(text: str, width_inches: float, fontsize: float) -> str:
    """Wrap a caption to roughly the figure width (average glyph ~0.55 em)."""
    import textwrap

    return textwrap.fill(text, max(20, int(width_inches * 72 / (0.55 * fontsize))))


LINK_COLOUR = "#e4572e"  # word-alignment outlines: orange reads on every shade of blue


def _heatmap(ax, matrix: Tensor, source: list[str], target: list[str], fontsize: float, annotate: bool,
             xlabels: bool = True, ylabels: bool = True, links: list[tuple[int, int]] | None = None):
    im = ax.imshow(matrix.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(source)), source if xlabels else [""] * len(source), rotation=50, ha="right",
                  rotation_mode="anchor", fontsize=fontsize)
    ax.set_yticks(range(len(target)), target if ylabels else [""] * len(target), fontsize=fontsize)
    ax.tick_params(length=0)
    ax.set_xticks([x - 0.5 for x in range(1, len(source))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(target))], minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if annotate:
        for r, row in enumerate(matrix.tolist()):
            for c, v in enumerate(row):
                if v >= 0.1:  # ".42" keeps cells narrow; small weights stay blank to keep it readable
                    label = f"{v:.2f}".removeprefix("0").replace("1.00", "1")
                    ax.text(c, r, label, ha="center", va="center", fontsize=fontsize * 0.75,
                            color="white" if v > 0.55 else "#17375e")
    if links:
        from matplotlib.patches import Rectangle

        for i, j in links:  # column = source word i, row = target word j
            ax.add_patch(Rectangle((i - 0.46, j - 0.46), 0.92, 0.92, fill=False, edgecolor=LINK_COLOUR,
                                   linewidth=max(1.0, fontsize / 6)))
    return im


def save_heatmap(view: WordView, path: str | Path, layer: int | None = None, head: int | None = None,
                 caption: str = "", links: list[tuple[int, int]] | None = None) -> None:
    """One heatmap of the selected layer/head (or their means); ``links`` (source word,
    target word) are outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layers, n_heads = view.attention.shape[:2]
    matrix = select(view.attention, layer, head)
    cols, rows = len(view.source), len(view.target)
    size = (max(5.0, 0.55 * cols + 3.0), max(4.0, 0.48 * rows + 2.4))
    fig, ax = plt.subplots(figsize=size, dpi=150)
    im = _heatmap(ax, matrix, view.source, view.target, fontsize=13, annotate=cols <= 25 and rows <= 25,
                  links=links)
    cbar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03)
    cbar.set_label("attention weight", fontsize=12)
    cbar.ax.tick_params(labelsize=11)
    ax.set_xlabel("source" + ("  (outlined: word alignment)" if links is not None else ""), fontsize=13)
    ax.set_ylabel("translation", fontsize=13)
    title = f"Cross-attention: {describe(layer, head, n_layers, n_heads)}"

    # the title is centred on the axes, which leave ~2.5 inches to labels and colour bar
    ax.set_title(title + ("\n" + wrap(caption, size[0] - 2.5, 13) if caption else ""), fontsize=13)
    fig.tight_layout()
    save_figure(fig, path)


def save_grid(view: WordView, path: str | Path, layers: list[int] | None = None, caption: str = "",
              links: list[tuple[int, int]] | None = None) -> None:
    """Every head of every layer (rows = layers, columns = heads), one shared colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layers, n_heads = view.attention.shape[:2]
    layers = list(range(n_layers)) if layers is None else layers
    cols, rows = len(view.source), len(view.target)
    cell = (max(2.4, 0.28 * cols + 1.0), max(2.2, 0.26 * rows + 0.9))
    fig, axes = plt.subplots(len(layers), n_heads, figsize=(cell[0] * n_heads + 1.5, cell[1] * len(layers) + 1.2),
                             dpi=120, squeeze=False)
    fs = 9 if max(cols, rows) <= 20 else 7
    for r, layer in enumerate(layers):
        for h in range(n_heads):
            ax = axes[r][h]
            im = _heatmap(ax, view.attention[layer, h], view.source, view.target, fs, annotate=False,
                          xlabels=r == len(layers) - 1, ylabels=h == 0, links=links)
            ax.set_title(f"layer {layer}, head {h}", fontsize=11)
    width = cell[0] * n_heads + 1.5
    fig.suptitle(wrap("Cross-attention, every layer and head" + (f": {caption}" if caption else ""), width, 14),
                 fontsize=14)
    fig.tight_layout(rect=(0, 0, 0.95, 1))
    cbar = fig.colorbar(im, ax=axes, fraction=0.015, pad=0.01)
    cbar.set_label("attention weight", fontsize=11)
    save_figure(fig, path)


def save_figure(fig, path: str | Path) -> None:
    """Write and close a figure, whole or not at all: drawn to a temporary file, renamed
    into place. The format is the path's suffix (PNG when it has none), as matplotlib reads it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip(".").lower() or "png")
            crash_point("figure-write", 1)
    finally:
        plt.close(fig)


def to_json(result: AttentionResult, source_text: str, view: WordView, layer: int | None, head: int | None) -> dict:
    r6 = lambda t: torch.round(t, decimals=6).tolist()  # noqa: E731
    return {
        "source": source_text,
        "translation": result.translation,
        "source_tokens": result.source_tokens,
        "target_tokens": result.target_tokens,
        "attention": r6(result.attention),  # [layer][head][target piece][source piece], rows sum to 1
        "words": {
            "source": view.source, "target": view.target,
            "source_spans": view.source_spans, "target_spans": view.target_spans,
            "attention": r6(view.attention),  # [layer][head][target word][source word]
            "selected": {"layer": layer, "head": head, "attention": r6(select(view.attention, layer, head))},
        },
    }
