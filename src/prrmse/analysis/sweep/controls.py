"""The control sweeps' replacement sources (Zhang et al.'s re-initialisation and
re-randomisation): `reinit` replaces each tensor with the target's own initial tensor,
`rerandom` with a fresh draw of the initialiser (see `control_source`), so a "reusable"
tensor can be told apart from one the network is robust to replacing at all; the seeds
and start records they are drawn from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from prrmse.core.errors import PrrmseError
from prrmse.models.start import Start, check_start, legacy_start, rerandom_start
from prrmse.models.start_model import build_start

# What replaces a tensor: the source model's tensor, or (controls, target only) the
# target's own initial tensor or a fresh draw of the initialiser.
CONDITIONS = ("source", "reinit", "rerandom")
CONTROLS = ("reinit", "rerandom")
# rerandom draws with the target's seed plus this: never a seed a study run is given.
# (Torch's CPU generator keeps only a seed's low 32 bits: 2**32 would change nothing.)
RERANDOM_SEED_OFFSET = 1_000_000_000


def control_seed(condition: str, target_seed: int) -> int:
    """The seed of a control's replacement model's independent draw: the target's start
    seed for reinit (the very draw its training started from), + RERANDOM_SEED_OFFSET
    for rerandom."""
    if condition not in CONTROLS:
        raise PrrmseError(
            "sweep condition", f"unknown control {condition!r}; valid: {', '.join(CONTROLS)}"
        )
    return target_seed + (RERANDOM_SEED_OFFSET if condition == "rerandom" else 0)


def control_start(condition: str, start: Start | int) -> Start:
    """The start record of a control's replacement model (see `control_source`)."""
    if isinstance(start, int) and not isinstance(start, bool):
        start = legacy_start(start)
    control_seed(condition, 0)  # refuses an unknown condition
    if condition == "reinit":
        return start
    return rerandom_start(start, RERANDOM_SEED_OFFSET)


def control_source(condition: str, network: dict[str, Any], start: Start | int) -> nn.Module:
    """The replacement source of a control, from the target's start record (`prrmse.models.start`;
    an int: a checkpoint recording none, started from torch seeded with it).

    reinit: the target's own initial tensors, rebuilt exactly as train.py started them
    (independent parts from their seed, a shared or file encoder from its file, whose
    hash must be unchanged). rerandom: a fresh independent draw of every part, the
    encoder included (its seed + RERANDOM_SEED_OFFSET). BN initialisation is
    deterministic (running mean 0, running var 1, weight 1, bias 0), so for the BN kinds
    of independent parts rerandom is reinit; tensors a network option loads from a file
    (PSPNet's `encoder_weights`) are loaded by both. Torch's global generator is left as
    it was.
    """
    model = build_start(network, control_start(condition, start), f"{condition} control")
    model.eval()
    return model


def target_start(path: Path, record: dict[str, Any]) -> Start:
    """The start a checkpoint records, or for one recording none, its seed's legacy start."""
    if "start" in record:
        return check_start(record["start"], path)
    seed = record.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PrrmseError(path, "records no integer seed: its initial model is unknown")
    return legacy_start(seed)
