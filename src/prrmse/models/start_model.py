"""The model a recorded start (`prrmse.models.start`) describes, built with its exact tensors.

Apart from `prrmse.models.start` because building needs torch and the networks (~5 s to import
per job on 2 cores), while figures and the noise floor only read starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.models.pspnet import load_encoder_weights
from prrmse.models.registry import build_model
from prrmse.models.start import ENCODER_MODULE, INDEPENDENT, Start, check_start, independent_seed


def build_start(network: dict[str, Any], start: Start, where: str | Path = "start") -> nn.Module:
    """The model exactly as `start` says it starts; torch's global generator is left as it was.

    Independent parts: torch seeded with their seed, the whole network built (so the
    rest's tensors do not depend on how the encoder starts). A shared or file encoder is
    then loaded from its file, whose sha256 must still be the recorded one.
    """
    check_start(start, where)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(independent_seed(start, str(where)))
        model = build_model(network["arch"], **(network.get("options") or {}))
    encoder = start["encoder"]
    if encoder["kind"] == INDEPENDENT:
        return model
    if encoder.get("via") is None:
        load_encoder_start(model, Path(encoder["file"]), encoder.get("sha256"))
    elif sha256_file(Path(encoder["file"])) != encoder.get("sha256"):  # the builder loaded it
        raise PrrmseError(encoder["file"], "encoder weights file changed since it was recorded")
    return model


def load_encoder_start(model: nn.Module, path: Path, sha256: str | None = None) -> None:
    """Load a safetensors file of encoder tensors into `model.encoder`, strictly."""
    encoder = getattr(model, ENCODER_MODULE, None)
    if not isinstance(encoder, nn.Module):
        raise PrrmseError(path, f"the network has no '{ENCODER_MODULE}' part to start from a file")
    if not path.is_file():
        raise PrrmseError(path, "encoder start file not found")
    if sha256 is not None and sha256_file(path) != sha256:
        raise PrrmseError(path, "encoder start file changed since it was recorded (sha256 differs)")
    load_encoder_weights(encoder, path)
