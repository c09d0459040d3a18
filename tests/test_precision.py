"""The measured hardware rules of precision.py, pinned: the same answers on every CPU
(the CPU's bf16 support is set by the test, not read from this machine)."""

from __future__ import annotations

import pytest
import torch

from crossattn import precision
from crossattn.precision import PrecisionError, alignment_dtype, inference_dtype, training_dtype

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(params=[True, False], ids=["fast-bf16", "avx2-only"])
def fast_bf16(request, monkeypatch) -> bool:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: request.param)
    return request.param


def test_training_dtype_follows_the_measured_rule(fast_bf16):
    assert training_dtype("auto", CUDA, 64) == torch.bfloat16
    assert training_dtype("auto", CPU, 64) == torch.float32  # tiny models: bf16 casts cost more than they save
    assert training_dtype("auto", CPU, 384) == (torch.bfloat16 if fast_bf16 else torch.float32)
    assert training_dtype("fp32", CUDA, 384) == torch.float32


def test_alignment_dtype_bf16_where_fast_else_int8(fast_bf16):
    assert alignment_dtype("auto", CPU) == ("bf16" if fast_bf16 else "int8")
    assert alignment_dtype("auto", CUDA) == "bf16"
    assert alignment_dtype("fp32", CPU) == "fp32"
    with pytest.raises(PrecisionError, match="unknown dtype 'fp16'"):
        alignment_dtype("fp16", CPU)


def test_torch_inference_stays_fp32_on_every_cpu(fast_bf16):
    assert inference_dtype("auto", CPU) == torch.float32
    assert inference_dtype("auto", CUDA) == torch.bfloat16
