"""Sweep the alignment read-out's settings on a gold set (what chose the defaults of
crossattn/align.py: HEAD_WEIGHT, ATTENTION_LAYER, HEAD_THRESHOLD_*; docs/alignment.md).

    python scripts/choose_alignment.py ../shared/data/align/hansards_wpt03_trial [--one-direction]

Every decoder layer x head weight x threshold, both shipped directions (or the forward
one alone), best AER first. Choose on a selection set (the Hansards trial set), then look
at the other set once; never choose on a set you report as a test.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crossattn.align import AlignmentModel, head_links, score, to_given_words  # noqa: E402
from crossattn.alignment_text import read_links, read_token_pairs  # noqa: E402

HEAD_WEIGHTS = (1.0, 0.8, 0.7, 0.6, 0.5)
THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("gold_dir", type=Path, help="a folder with en.txt, fr.txt and gold.talp")
    p.add_argument("--model", default="en-fr")
    p.add_argument("--reverse-model", default="fr-en")
    p.add_argument("--one-direction", action="store_true")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--top", type=int, default=15)
    a = p.parse_args()
    pairs = read_token_pairs(f"{a.gold_dir / 'en.txt'}:{a.gold_dir / 'fr.txt'}")
    gold = read_links(str(a.gold_dir / "gold.talp"))
    forward = AlignmentModel.load(a.model, dtype=a.dtype)
    backward = None if a.one_direction else AlignmentModel.load(a.reverse_model, dtype=a.dtype)
    rows = []
    for layer in range(forward.model.config.decoder_layers):
        soft_f = forward.soft(pairs, layer)
        soft_b = backward.soft([(t, s) for s, t in pairs], layer) if backward else None
        for weight, threshold in itertools.product(HEAD_WEIGHTS, THRESHOLDS):
            if weight == 1.0 and layer:  # the head alone does not read a layer
                continue
            found = head_links(soft_f, soft_b, threshold, weight)
            s = score(gold, [to_given_words(x, src, tgt, forward.languages) for x, (src, tgt) in zip(found, pairs)])
            rows.append((s.aer, s.precision, s.recall, "-" if weight == 1.0 else layer, weight, threshold))
    rows.sort(key=lambda r: r[0])
    print("| AER | P | R | layer | head weight | threshold |\n|---|---|---|---|---|---|")
    for aer, prec, rec, layer, weight, threshold in rows[: a.top]:
        print(f"| {100 * aer:.1f} | {100 * prec:.1f} | {100 * rec:.1f} | {layer} | {weight} | {threshold} |")


if __name__ == "__main__":
    main()
