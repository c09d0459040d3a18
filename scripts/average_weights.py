"""Interpolate the weights of two model directories of one network and vocabulary
(``w`` x the second + (1 - w) x the first), e.g. a fine-tuned model with the one it
started from, so that what fine-tuning cost (Tatoeba, for en-fr v3) comes back.

    python scripts/average_weights.py OLD_DIR NEW_DIR 0.6 OUT_DIR

OUT_DIR is a model directory with the second one's settings (config.json, decoding),
stored in fp32; ship it with scripts/ship_model.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crossattn.modeldir import load_model_dir, save_model_dir  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("first")
    p.add_argument("second")
    p.add_argument("weight", type=float, help="weight of the second directory, in [0, 1]")
    p.add_argument("out")
    a = p.parse_args()
    if not 0.0 <= a.weight <= 1.0:
        sys.exit(f"average_weights: weight must be in [0, 1], not {a.weight}")
    old, old_tok, _ = load_model_dir(a.first)
    new, new_tok, config = load_model_dir(a.second)
    if old.config != new.config or old_tok.sha256() != new_tok.sha256():
        sys.exit("average_weights: the two directories differ in network or vocabulary")
    old_state = old.state_dict()
    # computed before anything is written: tied weights (embedding = output) share storage
    mixed = {name: torch.lerp(old_state[name].float(), t.float(), a.weight) for name, t in new.state_dict().items()}
    new.load_state_dict(mixed)
    extra = {k: config[k] for k in ("languages", "training") if k in config}
    save_model_dir(new, new_tok, a.out, config.get("decoding"), extra=extra)


if __name__ == "__main__":
    main()
