"""Pack a training run's best model as a shipped model directory (16-bit weights, the
languages, the decoding settings chosen on dev sets, and where it came from).

Weights are stored in fp16 by default: half the size of fp32 (two directions fit the
wheel's 100 MB) with 8x finer rounding than bf16 (``--store bf16``, the format of the
models shipped before 2026-12-02 evening). What the rounding does, measured that day on one
en-fr candidate (0.5 x en-fr v5 + 0.5 x v5 fine-tuned 200 more steps), CTranslate2 int8,
beam 2, newstest2012 BLEU (outputs that loop) / hansard dev BLEU: fp32 15.10 (49) / 22.77,
fp16 15.10 (91) / 22.46, bf16 15.06 (82) / 22.32. Loops flip on tiny weight changes
either way; measure the stored directory, not the fp32 weights, before shipping.

    python scripts/ship_model.py RUN_OUT/model crossattn/pretrained/fr-en --beam 2 --alpha 0.6 \
        --note "fine-tuned from en-fr on the general mix, 2 CPU hours"

An alignment head already in DEST (or the one of --head-from) is kept: it reads the
network's states, so re-measure it on the new weights (docs/alignment.md) or retrain it
with `crossattn align-head`. --head-from none ships without one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crossattn.align_head import load_alignment_head, save_alignment_head  # noqa: E402
from crossattn.atomic import atomic_dir, write_text_atomic  # noqa: E402
from crossattn.modeldir import CONFIG, load_model_dir, read_model_dir, save_model_dir  # noqa: E402


STORE = {"fp16": torch.float16, "bf16": torch.bfloat16}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source")
    p.add_argument("dest")
    p.add_argument("--beam", type=int, required=True)
    p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--note", default="")
    p.add_argument("--store", choices=("fp16", "bf16"), default="fp16", help="how the weights are stored")
    p.add_argument("--head-from", help="model directory whose alignment head to ship (default: DEST's own); 'none'")
    a = p.parse_args()
    model, tokenizer, config = load_model_dir(a.source)
    dest = Path(a.dest)
    # the head to keep: --head-from's (which must be a model directory), else DEST's if DEST is one
    head_dir = a.head_from or (dest if (dest / CONFIG).exists() else None)
    head = None
    if head_dir not in (None, "none"):
        root, head_config = read_model_dir(head_dir)[:2]
        head = load_alignment_head(root, head_config, model.config.d_model)
    card = dest / "MODEL_CARD.md"
    kept = card.read_text() if card.exists() else None
    extra = {"languages": config["languages"], "training": {**config.get("training", {}), "note": a.note}}
    with atomic_dir(dest) as tmp:  # DEST is replaced whole, or not at all
        save_model_dir(model, tokenizer, tmp, {"beam": a.beam, "alpha": a.alpha}, dtype=STORE[a.store], extra=extra)
        if head is not None:
            save_alignment_head(tmp, head)
        if kept is not None:
            write_text_atomic(tmp / "MODEL_CARD.md", kept)
    print(json.dumps({k: v for k, v in json.loads((dest / "config.json").read_text()).items() if k != "model"}, indent=1))


if __name__ == "__main__":
    main()
