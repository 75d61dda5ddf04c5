"""Validation: Dice of segmentation models, reconstruction MSE of auto-encoders.

Per-patient Dice (`per_patient_dice`, `patient_dice`) is the step before the mean over
patients that `prrmse.training.metrics.dice_per_class` reports: each patient's volumes averaged
(NaN skipped), NaN where a class is absent from both prediction and truth of every
volume of that patient. The same pandas reduction then gives the reported Dice exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from prrmse.core.io import atomic_path
from prrmse.core.precision import autocast, resolve_precision
from prrmse.core.provenance import csv_header
from prrmse.training.metrics import (
    NUM_CLASSES,
    confusion_counts,
    dice_from_counts,
    dice_per_class,
    foreground_mean,
    volume_ids,
)

PATIENT_COLUMNS = ("patient", "class", "dice")


@torch.no_grad()
def predict_labels(
    model: torch.nn.Module,
    images: torch.Tensor,
    batch_size: int,
    device: torch.device,
    precision: str = "auto",
) -> np.ndarray:
    """Arg-max class per pixel, (N, H, W) uint8; `images` is (N, 1, H, W) on any device."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device, non_blocking=True)
        with _autocast(device, precision):
            logits = model(batch)
        out.append(logits.argmax(dim=1).to("cpu", torch.uint8))
    model.train(was_training)
    return torch.cat(out).numpy()


@torch.no_grad()
def reconstruction_mse(
    model: torch.nn.Module,
    images: torch.Tensor,
    batch_size: int,
    device: torch.device,
    precision: str = "auto",
) -> float:
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        with _autocast(device, precision):
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
    precision: str = "auto",
) -> dict[str, Any]:
    """Metrics of one validation pass and the model-selection score (higher is better)."""
    if task == "seg":
        predicted = predict_labels(model, images, batch_size, device, precision)
        dice = dice_per_class(predicted, labels, index)
        mean = foreground_mean(dice)
        return {"dice": [float(d) for d in dice], "dice_mean": mean, "score": mean}
    mse = reconstruction_mse(model, images, batch_size, device, precision)
    return {"mse": mse, "score": -mse}


def patient_dice(volume_dice: np.ndarray, patient_of_volume: np.ndarray) -> pd.DataFrame:
    """(patients x classes) Dice, patients sorted: each patient's volumes averaged, NaN skipped.

    The step inside `prrmse.training.metrics.patient_mean_dice`: `.mean(axis=0, skipna=True)` of
    this frame is its result, bit for bit.
    """
    frame = pd.DataFrame(volume_dice)
    frame["patient"] = patient_of_volume
    return frame.groupby("patient", sort=True).mean()


def patient_of_volumes(index: pd.DataFrame) -> tuple[np.ndarray, int, np.ndarray]:
    """(volume id per row, number of volumes, patient of each volume) of an index."""
    volumes = volume_ids(index)
    n_volumes = int(volumes.max()) + 1 if len(volumes) else 0
    patients = pd.Series(index["patient"].to_numpy()).groupby(volumes).first().to_numpy()
    return volumes, n_volumes, patients


def long_patient_table(per_patient: pd.DataFrame) -> pd.DataFrame:
    """`patient_dice`'s frame as rows (patient, class, dice), patient-major."""
    values = per_patient.to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "patient": np.repeat(per_patient.index.to_numpy(), NUM_CLASSES),
            "class": np.tile(np.arange(NUM_CLASSES), len(per_patient)),
            "dice": values.reshape(-1),
        }
    )


def per_patient_dice(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    batch_size: int,
    device: torch.device,
    precision: str = "auto",
) -> pd.DataFrame:
    """Validation Dice per patient and class, columns PATIENT_COLUMNS.

    Averaged over patients (NaN skipped) it gives `validate`'s "dice" exactly.
    """
    predicted = predict_labels(model, images, batch_size, device, precision)
    volumes, n_volumes, patients = patient_of_volumes(index)
    counts = confusion_counts(predicted, labels, volumes, n_volumes)
    return long_patient_table(patient_dice(dice_from_counts(counts), patients))


def write_patients_csv(path: str | Path, table: pd.DataFrame, record: dict[str, Any]) -> None:
    """Provenance line, then the table; an undefined Dice is written "nan"."""
    with atomic_path(path) as temp, open(temp, "w") as handle:
        handle.write(csv_header(record))
        table.to_csv(handle, index=False, na_rep="nan")


def _autocast(device: torch.device, precision: str):
    # `auto`: bf16/fp16 autocast only on CUDA, where it pays; CPU stays float32 and exact
    return autocast(resolve_precision(precision, device), device)
