"""Pack a training run's best model as a shipped model directory (bf16 weights, the
languages, the decoding settings chosen on dev sets, and where it came from).

    python scripts/ship_model.py RUN_OUT/model crossattn/pretrained/fr-en --beam 2 --alpha 0.6 \
        --note "fine-tuned from en-fr on the general mix, 2 CPU hours"
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crossattn.modeldir import load_model_dir, save_model_dir  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source")
    p.add_argument("dest")
    p.add_argument("--beam", type=int, required=True)
    p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--note", default="")
    a = p.parse_args()
    model, tokenizer, config = load_model_dir(a.source)
    dest = Path(a.dest)
    card = dest / "MODEL_CARD.md"
    kept = card.read_text() if card.exists() else None
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    extra = {"languages": config["languages"], "training": {**config.get("training", {}), "note": a.note}}
    save_model_dir(model, tokenizer, tmp, {"beam": a.beam, "alpha": a.alpha}, dtype=torch.bfloat16, extra=extra)
    if kept is not None:
        (tmp / "MODEL_CARD.md").write_text(kept)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    print(json.dumps({k: v for k, v in json.loads((dest / "config.json").read_text()).items() if k != "model"}, indent=1))


if __name__ == "__main__":
    main()
