"""The measured hardware rules of precision.py, pinned: the same answers on every CPU
(the CPU's bf16 instructions and the measured bf16 speed-up are set by the test, not read
from this machine)."""

from __future__ import annotations

import pytest
import torch

from crossattn import precision
from crossattn.precision import PrecisionError, alignment_dtype, head_training_dtype, inference_dtype, training_dtype

CPU, CUDA = torch.device("cpu"), torch.device("cuda")

# (has bf16 instructions, measured fp32/bf16 time ratio): AMD EPYC-like, Intel-without-AMX-like, AVX2-only
MACHINES = {"bf16-faster": (True, 1.5), "bf16-slower": (True, 0.6), "avx2-only": (False, 0.01)}


@pytest.fixture(params=list(MACHINES))
def machine(request, monkeypatch) -> str:
    flags, speedup = MACHINES[request.param]
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: flags)
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda d_model, backward: speedup)
    return request.param


def test_training_dtype_follows_the_measured_rule(machine):
    assert training_dtype("auto", CUDA, 64) == torch.bfloat16
    assert training_dtype("auto", CPU, 384) == (torch.bfloat16 if machine == "bf16-faster" else torch.float32)
    assert training_dtype("fp32", CUDA, 384) == torch.float32
    assert training_dtype("bf16", CPU, 384) == torch.bfloat16  # asked for: no measurement overrides it


def test_alignment_dtype_bf16_where_measured_faster_else_int8(machine):
    assert alignment_dtype("auto", CPU) == ("bf16" if machine == "bf16-faster" else "int8")
    assert alignment_dtype("auto", CUDA) == "bf16"
    assert alignment_dtype("fp32", CPU) == "fp32"
    with pytest.raises(PrecisionError, match="unknown dtype 'fp16'"):
        alignment_dtype("fp16", CPU)


def test_head_training_dtype_bf16_where_measured_faster_else_fp32(machine):
    """align-head only runs the frozen network forward: bf16 where that is faster, else fp32."""
    assert head_training_dtype("auto", 384) == ("bf16" if machine == "bf16-faster" else "fp32")
    assert head_training_dtype("fp32") == "fp32" and head_training_dtype("bf16") == "bf16"
    with pytest.raises(PrecisionError, match="choose fp32 or bf16"):
        head_training_dtype("int8")


def test_near_tie_keeps_fp32(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda d_model, backward: precision.BF16_MIN_SPEEDUP - 0.01)
    assert training_dtype("auto", CPU, 384) == torch.float32


def test_avx2_only_cpu_is_never_timed(monkeypatch):
    """bf16 is ~100x slower there: the probe itself would take minutes."""
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)

    def must_not_run(d_model, backward):
        raise AssertionError("the bf16 probe ran on a CPU without bf16 instructions")

    monkeypatch.setattr(precision, "cpu_bf16_speedup", must_not_run)
    assert training_dtype("auto", CPU, 384) == torch.float32
    assert alignment_dtype("auto", CPU) == "int8"


@pytest.mark.skipif(not precision.cpu_has_fast_bf16(), reason="bf16 is ~100x slower without bf16 instructions")
def test_bf16_probe_measures_both_ways():
    precision.cpu_bf16_speedup.cache_clear()
    ratio = precision.cpu_bf16_speedup(32, True)
    assert 0.01 < ratio < 100  # a real ratio of two timings, whichever way this CPU leans
    assert precision.cpu_bf16_speedup(32, True) == ratio  # measured once per process


def test_torch_inference_stays_fp32_on_every_cpu(machine):
    assert inference_dtype("auto", CPU) == torch.float32
    assert inference_dtype("auto", CUDA) == torch.bfloat16
