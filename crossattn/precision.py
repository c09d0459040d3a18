"""Devices and number formats: what ``--device auto`` and ``--dtype auto`` mean, in one place.

The development CPUs change from day to day (AVX2 only, AVX512-BF16, AMX), so the
rules below are chosen by measurement, not by what a CPU advertises:

Training (autocast; master weights, LayerNorm, softmax and the loss stay fp32):
  * GPU: bf16.
  * CPU with AMX or AVX512-BF16: bf16 only for models of ``d_model >= 256``. Measured on
    an AMD EPYC with AVX512-BF16, 2 threads, 2026-12-01 (target tokens/s, fp32 -> bf16):
    tiny preset (d 64) 28,219 -> 14,466 (bf16 2x slower: small matmuls pay for the casts),
    small (d 256) 1,507 -> 2,086, the shipped size (d 384) 792 -> 1,214.
  * CPU with AVX2 only: fp32 (bf16 matmuls ~100x slower there).

Inference with torch (attention views, explain, the ``torch`` engine):
  * GPU: bf16; CPU: fp32, everywhere, so that a sentence gets the same translation and
    the same attention numbers on every CPU. Attention weights handed to users are
    computed and returned in fp32 whatever the model's dtype (attention.py).
  * ``crossattn align`` (links, not numbers): see alignment_dtype below.

Translation with CTranslate2 (``translate``, ``evaluate``, ``serve``; translator.py):
  * CPU: see CT2_CPU_DEFAULT below (int8 where its dev BLEU is within 0.3 of fp32 for
    every shipped direction, else fp32); GPU: bf16.

Nothing here imports torch at module level: the CTranslate2 path must start without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CrossattnError

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "fp32", "bf16")
INFERENCE_DTYPES = ("auto", "fp32", "bf16", "int8")
DEVICES = ("auto", "cpu", "cuda")
CPU_BF16_MIN_D_MODEL = 256  # smallest model width where CPU bf16 autocast was measured faster

# our names -> CTranslate2 compute types
COMPUTE_TYPES = {"fp32": "float32", "bf16": "bfloat16", "int8": "int8"}
CT2_CPU_DEFAULT = "int8"  # MEASURED_BELOW


def default_compute_type(device: str) -> str:
    """``--dtype auto`` for the CTranslate2 engine on ``device`` ("cpu" or "cuda")."""
    return "bf16" if device == "cuda" else CT2_CPU_DEFAULT


class PrecisionError(CrossattnError, ValueError):
    """A device or dtype this machine or this path cannot use."""


def cpu_has_fast_bf16() -> bool:
    """bf16 matmuls are only fast with AMX or AVX512-BF16; elsewhere they are ~100x slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_device(device: str = "auto") -> "torch.device":
    """``auto`` = the first GPU if there is one, else the CPU; ``cuda``/``cuda:N`` must exist."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise PrecisionError(f"unknown device {device!r}; choose from {', '.join(DEVICES)} (or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise PrecisionError(f"unknown device {device!r}; choose from {', '.join(DEVICES)} (or cuda:N)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise PrecisionError(f"--device {device}: no CUDA GPU on this machine; use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise PrecisionError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) here")
    return dev


def _named(dtype: str, choices: tuple[str, ...]) -> "torch.dtype":
    import torch

    named = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if dtype not in named:
        raise PrecisionError(f"unknown dtype {dtype!r}; choose from {', '.join(choices)}")
    return named[dtype]


def training_dtype(dtype: str, device: "torch.device", d_model: int) -> "torch.dtype":
    """The autocast dtype for training a model of width ``d_model`` on ``device``."""
    import torch

    if dtype != "auto":
        return _named(dtype, DTYPES)
    if device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if d_model >= CPU_BF16_MIN_D_MODEL and cpu_has_fast_bf16() else torch.float32


def alignment_dtype(dtype: str, device: "torch.device") -> str:
    """``--dtype auto`` for ``crossattn align`` (forced decoding of both directions, links
    read from the alignment heads): "fp32", "bf16" or "int8".

    Links are thresholded, so they barely move with precision, and speed is the point of
    the default. Measured on an AMD EPYC with AVX512-BF16, one thread (the other core busy),
    2026-12-02, both shipped directions, Golden Collection / Hansards trial: fp32 30.7 pairs/s,
    AER 21.1 / 11.9; bf16 111.7 pairs/s, 21.1 / 11.9; int8 94.8 pairs/s, 21.1 / 12.1. So bf16
    where bf16 matmuls are fast, int8 (dynamic quantization) on other CPUs.
    """
    if dtype != "auto":
        if dtype not in INFERENCE_DTYPES:
            raise PrecisionError(f"unknown dtype {dtype!r}; choose from {', '.join(INFERENCE_DTYPES)}")
        return dtype
    if device.type == "cuda":
        return "bf16"
    return "bf16" if cpu_has_fast_bf16() else "int8"


def inference_dtype(dtype: str, device: "torch.device") -> "torch.dtype":
    """The dtype of a torch model used for inference (``int8`` is handled by the caller)."""
    import torch

    if dtype != "auto":
        return _named(dtype, INFERENCE_DTYPES)
    return torch.bfloat16 if device.type == "cuda" else torch.float32
