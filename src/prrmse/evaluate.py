"""Validation: Dice of segmentation models, reconstruction MSE of auto-encoders."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from prrmse.metrics import dice_per_class, foreground_mean


@torch.no_grad()
def predict_labels(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int, device: torch.device
) -> np.ndarray:
    """Arg-max class per pixel, (N, H, W) uint8; `images` is (N, 1, H, W) on any device."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device, non_blocking=True)
        with _autocast(device):
            logits = model(batch)
        out.append(logits.argmax(dim=1).to("cpu", torch.uint8))
    model.train(was_training)
    return torch.cat(out).numpy()


@torch.no_grad()
def reconstruction_mse(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int, device: torch.device
) -> float:
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        with _autocast(device):
            output = model(batch).float()
        total += float(((output - batch.expand_as(output)) ** 2).sum())
        count += output.numel()
    model.train(was_training)
    return total / count


def validate(
    model: torch.nn.Module,
    task: str,
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    batch_size: int,
    device: torch.device,
) -> dict[str, Any]:
    """Metrics of one validation pass and the model-selection score (higher is better)."""
    if task == "seg":
        dice = dice_per_class(predict_labels(model, images, batch_size, device), labels, index)
        mean = foreground_mean(dice)
        return {"dice": [float(d) for d in dice], "dice_mean": mean, "score": mean}
    mse = reconstruction_mse(model, images, batch_size, device)
    return {"mse": mse, "score": -mse}


def _autocast(device: torch.device):
    # bf16 autocast only pays (and only changes numerics) on CUDA; CPU stays float32 and exact
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
