"""train.precision: what each choice means on each device, and the autocast it gives."""

from __future__ import annotations

import pytest
import torch

from prrmse.core.errors import PrrmseError
from prrmse.core.precision import autocast, grad_scaler, resolve_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_is_fp32_on_cpu_and_bf16_or_fp16_on_a_gpu(monkeypatch) -> None:
    assert resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", CUDA) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", CUDA) == "fp16"


def test_explicit_choices_and_bad_ones() -> None:
    assert resolve_precision("fp32", CUDA) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(PrrmseError, match=r"config train.precision: fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(PrrmseError, match=r"config train.precision: unknown 'half'"):
        resolve_precision("half", CPU)


def test_autocast_of_a_resolved_precision() -> None:
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.randn(1, 1, 8, 8)
    with autocast("fp32", CPU):
        assert conv(x).dtype == torch.float32
    with autocast("bf16", CPU):
        assert conv(x).dtype == torch.bfloat16


def test_the_loss_scaler_is_active_only_for_fp16() -> None:
    assert not grad_scaler("fp32", CPU).is_enabled()
    assert not grad_scaler("bf16", CPU).is_enabled()
    assert grad_scaler("fp16", CPU).is_enabled()
