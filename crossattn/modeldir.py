"""A model directory, and the conventions every inference engine follows around the network
(text normalisation, splitting long inputs, the output-length budget, the length penalty).

A model directory holds::

    config.json        {"model": ModelConfig, "decoding": {...}, "files": {name: sha256}}
    model.safetensors  weights (tied output stored once)
    tokenizer.model    the joint SentencePiece model

Reading one never unpickles anything: safetensors + JSON only, and every file is
checked against the checksum recorded in config.json. Nothing here imports torch, so
the NumPy engine (numpy_engine.py) and the torch Translator (translator.py) share it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path

from .config import ModelConfig
from .tokenizer import Tokenizer

PRETRAINED_DIR = Path(__file__).parent / "pretrained" / "en-fr"
WEIGHTS, TOKENIZER, CONFIG = "model.safetensors", "tokenizer.model", "config.json"
DEFAULT_DECODING = {"beam": 4, "alpha": 0.6}


class ModelDirError(ValueError):
    """A model directory that is missing, incomplete, corrupt or inconsistent."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_model_dir(path: str | Path | None) -> Path:
    """A model directory, or a training output directory holding ``model/``."""
    if path is None:
        return PRETRAINED_DIR
    p = Path(path)
    if not p.exists():
        raise ModelDirError(f"model directory not found: {p}")
    if not (p / CONFIG).exists() and (p / "model" / CONFIG).exists():
        return p / "model"
    return p


def read_model_dir(path: str | Path | None, verify: bool = True) -> tuple[Path, dict, ModelConfig, Tokenizer]:
    """Check a model directory and load what is not weights.

    Returns ``(directory, config.json contents, model config, tokenizer)``; the caller
    loads ``directory / WEIGHTS`` into its own engine.
    """
    root = resolve_model_dir(path)
    for name in (CONFIG, WEIGHTS, TOKENIZER):
        if not (root / name).is_file():
            raise ModelDirError(f"{root}: missing {name}")
    try:
        config = json.loads((root / CONFIG).read_text())
        model_cfg = ModelConfig.from_dict(config["model"])
    except (ValueError, KeyError, TypeError) as e:
        raise ModelDirError(f"{root / CONFIG}: invalid config ({e})") from None
    if verify:
        for name, digest in config.get("files", {}).items():
            if sha256_file(root / name) != digest:
                raise ModelDirError(f"{root / name}: checksum mismatch (file corrupt or replaced)")
    try:
        tokenizer = Tokenizer(root / TOKENIZER)
    except Exception as e:  # sentencepiece raises plain RuntimeError/OSError on garbage
        raise ModelDirError(f"{root / TOKENIZER}: cannot load tokenizer ({e})") from None
    if tokenizer.vocab_size != model_cfg.vocab_size:
        raise ModelDirError(f"{root}: tokenizer has {tokenizer.vocab_size} pieces but the model expects {model_cfg.vocab_size}")
    return root, config, model_cfg, tokenizer


# -- text in, text out: the same for every engine -----------------------------------------
def normalize(text: str) -> str:
    """NFC and single spaces: what training saw."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def split_long_input(tokenizer: Tokenizer, ids: list[int], text: str, max_tokens: int) -> list[list[int]]:
    """Inputs longer than the model's limit are split at sentence ends, then by length.

    ``max_tokens`` counts the EOS the engine appends. An empty input gives no chunks.
    """
    if len(ids) + 1 <= max_tokens:
        return [ids] if ids else []
    chunks: list[list[int]] = []
    for sentence in re.split(r"(?<=[.!?;])\s+", text):
        piece = tokenizer.encode(sentence)
        if chunks and len(chunks[-1]) + len(piece) + 1 <= max_tokens:
            chunks[-1] = chunks[-1] + piece
            continue
        step = max_tokens - 1
        chunks.extend(piece[i : i + step] for i in range(0, len(piece), step))
    return [c for c in chunks if c]


def join_outputs(outputs: list[list[str]]) -> list[str]:
    """One line per input from its chunks' translations, whatever bytes the model
    writes (byte fallback can spell "\\n")."""
    return [" ".join(" ".join(o).split()) for o in outputs]


def decoding_settings(defaults: dict, beam: int | None, alpha: float | None) -> tuple[int, float]:
    """The beam and length-penalty exponent to use: the caller's, else the model's."""
    beam = defaults["beam"] if beam is None else beam
    alpha = defaults["alpha"] if alpha is None else alpha
    if not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be a positive integer, not {beam!r}")
    return beam, float(alpha)


def max_output_length(src_len: int, max_positions: int, ratio: float = 1.5, extra: int = 10) -> int:
    """Longest translation we allow for a source of ``src_len`` tokens (EOS included)."""
    return max(1, min(int(ratio * src_len + extra), max_positions - 1))


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + len) / 6) ** alpha; 0 means raw log-probability."""
    return ((5.0 + length) / 6.0) ** alpha
