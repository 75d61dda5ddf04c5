"""Mixed precision as config (`train.precision`), resolved once per job and recorded.

- `fp32`: no autocast, anywhere.
- `bf16`: bfloat16 autocast (CUDA, or CPU: faster than float32 there only with native
  bf16, `prrmse.core.device.cpu_has_native_bf16`).
- `fp16`: float16 autocast with a gradient scaler; CUDA only.
- `auto`: on CUDA bf16 where the GPU supports it (Ampere and later), else fp16 with the
  scaler; fp32 on CPU, where autocast only costs time and changes the numbers, and where
  the workflow's byte-identical reruns are tested.

The resolved value goes into every product a training job writes, so two checkpoints
trained at different precisions are never mistaken for one another.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from prrmse.core.errors import PrrmseError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(choice: str, device: torch.device, key: str = "train.precision") -> str:
    """`fp32`, `bf16` or `fp16`: what `choice` means on `device`."""
    if choice not in PRECISIONS:
        raise PrrmseError(f"config {key}", f"unknown {choice!r}; valid: {', '.join(PRECISIONS)}")
    if choice == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if choice == "fp16" and device.type != "cuda":
        raise PrrmseError(
            f"config {key}", f"fp16 needs a CUDA device, this job runs on {device.type}"
        )
    return choice


def autocast(precision: str, device: torch.device) -> Any:
    """The autocast context of a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, active only for fp16 (whose small gradients would underflow)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
