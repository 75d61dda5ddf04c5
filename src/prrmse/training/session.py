"""What one training run works with (`Session`, set up once) and where its epochs stand
(`Progress`), shared by the loop, its resume state and its outputs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prrmse.core.naming import ModelSpec
from prrmse.training.batches import Split, TrainData
from prrmse.training.evaluate import validate
from prrmse.training.settings import TrainSettings


def evaluate_split(
    model: torch.nn.Module,
    task: str,
    split: Split,
    eval_batch_size: int,
    device: torch.device,
    precision: str,
) -> dict:
    return validate(
        model, task, split.images, split.labels, split.index, eval_batch_size, device, precision
    )


@dataclass
class Session:
    """What one training run works with, set up once before its first epoch."""

    spec: ModelSpec
    settings: TrainSettings
    network: dict[str, Any]  # the config's networks entry, as prrmse.models takes it
    data_dir: Path
    out_dir: Path
    start_record: dict[str, Any]
    device: torch.device
    precision: str
    data: TrainData
    steps: int
    model: torch.nn.Module
    setup_record: dict[str, Any]
    optimizer: torch.optim.Optimizer
    scaler: Any
    index_sha: str
    fingerprint: str

    @property
    def selecting(self) -> bool:
        return self.data.selection is not None

    @property
    def state_path(self) -> Path:
        return self.out_dir / "state.safetensors"

    def evaluate(self, split: Split) -> dict[str, Any]:
        return evaluate_split(
            self.model,
            self.spec.task,
            split,
            self.settings.eval_batch_size,
            self.device,
            self.precision,
        )


@dataclass
class Progress:
    """Where the epochs stand: resumed from the state file, or from the start."""

    first: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: int = -1
    best: dict[str, torch.Tensor] = field(default_factory=dict)
    val_metrics: dict[str, Any] | None = None
