"""crossattn: a readable, fast Transformer encoder-decoder built around cross-attention."""

import os
from typing import TYPE_CHECKING

# Worker threads that spin while waiting turn a busy laptop into a 2-10x slowdown (one
# short sentence with torch: 3.7 s instead of 0.2 s with the other core loaded). Sleeping
# waits cost little here. OpenMP (torch) sleeps at once; OpenBLAS (numpy) spins
# 2^4 cycles instead of its default 2^28 (16 sentences, other core busy: 3.2 s, not 4.6-5.3 s;
# idle: 2.0 s vs 1.9 s). Set before torch/numpy load; explicit settings win.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"

# The library's classes, loaded on first use (PEP 562): importing the package, as the
# command line does, must not import torch, which alone takes seconds on a small CPU.
_EXPORTS = {
    "KVCache": "attention",
    "MultiHeadAttention": "attention",
    "ModelConfig": "config",
    "EncoderLayer": "model",
    "DecoderLayer": "model",
    "DecoderState": "model",
    "Seq2SeqOutput": "model",
    "Seq2SeqTransformer": "model",
    "Translator": "translator",
}
__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # what static analysers and IDEs see
    from .attention import KVCache, MultiHeadAttention
    from .config import ModelConfig
    from .model import DecoderLayer, DecoderState, EncoderLayer, Seq2SeqOutput, Seq2SeqTransformer
    from .translator import Translator


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'crossattn' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
