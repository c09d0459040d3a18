"""Devices and number formats: what ``--device auto`` and ``--dtype auto`` mean, in one place.

The development CPUs change from day to day (AVX2 only, AVX512-BF16, AMX), so the
rules below are chosen by measurement, not by what a CPU advertises:

Training (autocast; master weights, LayerNorm, softmax and the loss stay fp32):
  * GPU: bf16.
  * CPU with AMX or AVX512-BF16: bf16 only where this machine measures it faster
    (``cpu_bf16_speedup``: a feed-forward block of the model's width, forward and backward,
    timed both ways at start-up, ~0.1-2 s). The CPU flag alone does not tell: shipped size
    (d 384), target tokens/s, fp32 -> bf16 autocast:
      - AMD EPYC, AVX512-BF16, 2 threads, 2026-12-01: 792 -> 1,214 (bf16 1.5x faster);
        tiny preset (d 64) 28,219 -> 14,466 (bf16 2x slower: small matmuls pay for the casts).
      - Intel Xeon, AVX512-BF16 and AVX512-FP16, no AMX, one thread per process with two
        processes side by side, 2026-12-02: 580 -> 316 (bf16 1.8x slower); the
        feed-forward probe there: 0.60x at d 384, 0.80x at d 64.
      - Intel Xeon with AMX, the same two-process setting, 2026-12-02: fr-en 21M 369 -> 454
        (bf16 1.23x faster); the feed-forward probe there: 2.4x at d 384 (another run busy).
  * CPU with AVX2 only: fp32 without measuring (bf16 matmuls ~100x slower there).

Inference with torch (attention views, explain, the ``torch`` engine):
  * GPU: bf16; CPU: fp32, everywhere, so that a sentence gets the same translation and
    the same attention numbers on every CPU. Attention weights handed to users are
    computed and returned in fp32 whatever the model's dtype (attention.py).
  * ``crossattn align`` (links, not numbers): see alignment_dtype below.

Translation with CTranslate2 (``translate``, ``evaluate``, ``serve``; translator.py):
  * CPU: int8 (CT2_CPU_DEFAULT below: within 0.2 dev BLEU of fp32 in both shipped
    directions); GPU: bf16.

Nothing here imports torch at module level: the CTranslate2 path must start without it.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CrossattnError

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "fp32", "bf16")
INFERENCE_DTYPES = ("auto", "fp32", "bf16", "int8")
DEVICES = ("auto", "cpu", "cuda")
BF16_MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by this much on the probe: a near tie is not worth the rounding

# our names -> CTranslate2 compute types
COMPUTE_TYPES = {"fp32": "float32", "bf16": "bfloat16", "int8": "int8"}
# int8 against fp32, both shipped directions, beam 2: within 0.2 BLEU on tatoeba/dev,
# multi30k/val and hansard/dev (docs/precision.md, bench/results/precision-fp32-int8.json, 2026-12-03)
CT2_CPU_DEFAULT = "int8"


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


@functools.lru_cache(maxsize=None)
def cpu_bf16_speedup(d_model: int, backward: bool) -> float:
    """fp32 time / bf16-autocast time of a Transformer feed-forward block of width ``d_model``
    (2,048 tokens; forward, and backward when ``backward``) on this CPU with torch's current
    threads: > 1 means bf16 is faster. Best of three runs each, measured once per process."""
    import torch

    gen = torch.Generator().manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Linear(d_model, 4 * d_model), torch.nn.ReLU(),
                                torch.nn.Linear(4 * d_model, d_model))
    x = torch.randn(2048, d_model, generator=gen, requires_grad=backward)

    def best_seconds(dtype: "torch.dtype") -> float:
        times = []
        for _ in range(4):  # the first run warms up the kernels and is not counted
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32), \
                    torch.set_grad_enabled(backward):
                y = block(x).float().sum()
            if backward:
                y.backward()
            times.append(time.perf_counter() - start)
        return min(times[1:])

    return best_seconds(torch.float32) / best_seconds(torch.bfloat16)


def cpu_prefers_bf16(d_model: int, backward: bool) -> bool:
    """The measured rule: bf16 only where the CPU has bf16 instructions *and* this machine
    runs the model's feed-forward block at least ``BF16_MIN_SPEEDUP`` times faster in it."""
    return cpu_has_fast_bf16() and cpu_bf16_speedup(d_model, backward) >= BF16_MIN_SPEEDUP


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
    return torch.bfloat16 if cpu_prefers_bf16(d_model, backward=True) else torch.float32


def alignment_dtype(dtype: str, device: "torch.device", d_model: int = 384) -> str:
    """``--dtype auto`` for ``crossattn align`` (forced decoding of both directions, links
    read from the alignment heads): "fp32", "bf16" or "int8".

    Links are thresholded, so they barely move with precision, and speed is the point of
    the default. Measured on an AMD EPYC with AVX512-BF16, one thread (the other core busy),
    2026-12-02, both shipped directions, Golden Collection / Hansards trial: fp32 30.7 pairs/s,
    AER 21.1 / 11.9; bf16 111.7 pairs/s, 21.1 / 11.9; int8 94.8 pairs/s, 21.1 / 12.1. On an
    Intel Xeon with AVX512-BF16 (no AMX), 2026-12-02, the whole command on the Golden
    Collection, one thread, the other core busy: bf16 9.9 s, int8 7.5 s, fp32 7.6 s. So bf16
    where this machine measures it faster (``cpu_prefers_bf16``, forward only), else int8
    (dynamic quantization).
    """
    if dtype != "auto":
        if dtype not in INFERENCE_DTYPES:
            raise PrecisionError(f"unknown dtype {dtype!r}; choose from {', '.join(INFERENCE_DTYPES)}")
        return dtype
    if device.type == "cuda":
        return "bf16"
    return "bf16" if cpu_prefers_bf16(d_model, backward=False) else "int8"


def head_training_dtype(dtype: str, d_model: int = 384) -> str:
    """``crossattn align-head --dtype auto`` (it trains on the CPU): the frozen network only
    runs forward (the head reads its states and trains in fp32), so bf16 wherever this CPU
    runs forward bf16 measurably faster (``cpu_prefers_bf16``), else fp32."""
    if dtype != "auto":
        if dtype not in ("fp32", "bf16"):
            raise PrecisionError(f"unknown dtype {dtype!r} for training a head; choose fp32 or bf16")
        return dtype
    return "bf16" if cpu_prefers_bf16(d_model, backward=False) else "fp32"


def inference_dtype(dtype: str, device: "torch.device") -> "torch.dtype":
    """The dtype of a torch model used for inference (``int8`` is handled by the caller)."""
    import torch

    if dtype != "auto":
        return _named(dtype, INFERENCE_DTYPES)
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def quantize_int8(model: "torch.nn.Module", device: "torch.device") -> "torch.nn.Module":
    """Dynamic int8 quantization of every Linear (weights int8, activations quantized
    per batch): about 2x faster matmuls on CPUs without fast bf16, small BLEU cost."""
    if device.type != "cpu":
        raise PrecisionError("--dtype int8 runs on the CPU only; use bf16 on a GPU")
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
