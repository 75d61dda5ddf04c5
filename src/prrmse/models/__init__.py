"""The networks: the paper's UNet and PSPNet, and any smp architecture, built by name."""

from prrmse.models.registry import (
    ARCH_ATTR,
    BUILDERS,
    arch_record,
    build_model,
    model_names,
    model_signature,
    signature_mismatch,
)

__all__ = [
    "ARCH_ATTR",
    "BUILDERS",
    "arch_record",
    "build_model",
    "model_names",
    "model_signature",
    "signature_mismatch",
]
