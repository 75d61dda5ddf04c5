"""Which device a job runs on, and how its products name it.

`cuda` without a usable GPU fails at once (a cluster job must not crawl on CPU); `auto`
without one runs on CPU and says so. Serves training, the sweep and CKA alike.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError


def select_device(
    choice: str, key: str = "train.device", warn: Callable[[str], None] | None = None
) -> torch.device:
    """`cuda` without a usable GPU fails at once (a cluster job must not crawl on CPU);
    `auto` without one runs on CPU and says so."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise PrrmseError(f"config {key}", "cuda requested but no CUDA device is available")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    if choice == "auto":
        (warn or _warn)(
            f"warning: config {key} is auto and no CUDA device is available: running on CPU"
        )
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), which oneDNN uses:
    without them bf16 autocast on the CPU is emulated and slower than float32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({provenance.cpu_model()})"
