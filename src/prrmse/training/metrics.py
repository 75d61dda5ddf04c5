"""Per-class Dice per patient volume, averaged over patients.

A volume is the stack of slices sharing (patient, phase, series). A class
absent from both prediction and truth of a volume gives NaN for it, not 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

NUM_CLASSES = 4
VOLUME_KEYS = ("patient", "phase", "series")


def volume_ids(index: pd.DataFrame) -> np.ndarray:
    """One integer id per row: rows of the same (patient, phase, series) share it."""
    keys = [index[key].astype(str) for key in VOLUME_KEYS if key in index.columns]
    joined = keys[0].str.cat(keys[1:], sep="|") if len(keys) > 1 else keys[0]
    return pd.factorize(joined, sort=True)[0]


def confusion_counts(
    pred: np.ndarray, truth: np.ndarray, volumes: np.ndarray, n_volumes: int
) -> np.ndarray:
    """(n_volumes, classes, 3) counts of true positives, predicted and true pixels."""
    pred = pred.reshape(len(pred), -1)
    truth = truth.reshape(len(truth), -1)
    counts = np.zeros((n_volumes, NUM_CLASSES, 3), dtype=np.int64)
    for c in range(NUM_CLASSES):
        p, t = pred == c, truth == c
        per_slice = np.stack([(p & t).sum(1), p.sum(1), t.sum(1)], axis=1)
        np.add.at(counts[:, c, :], volumes, per_slice)
    return counts


def confusion_counts_tensor(
    pred: torch.Tensor, truth: torch.Tensor, volumes: torch.Tensor, n_volumes: int
) -> torch.Tensor:
    """`confusion_counts` computed where the tensors are, as an int64 tensor there.

    On a GPU this counts without the host waiting for the predictions; the counts are
    integers, so they are `confusion_counts`' exactly. Predicted values outside the
    classes are left out, as there.
    """
    c = NUM_CLASSES
    pred = pred.reshape(len(pred), -1).long()
    pred = torch.where((pred >= 0) & (pred < c), pred, c)  # column c: no class, dropped below
    volume_truth = volumes.reshape(-1, 1).long() * c + truth.reshape(len(truth), -1).long()
    key = volume_truth * (c + 1) + pred
    table = torch.bincount(key.flatten(), minlength=n_volumes * c * (c + 1))
    table = table.view(n_volumes, c, c + 1)  # [volume, true class, predicted class or none]
    hits = table[:, :, :c]
    return torch.stack([hits.diagonal(dim1=1, dim2=2), hits.sum(1), table.sum(2)], dim=-1)


def dice_from_counts(counts: np.ndarray) -> np.ndarray:
    """(n_volumes, classes) Dice; NaN where a class is absent from prediction and truth."""
    tp, n_pred, n_true = counts[..., 0], counts[..., 1], counts[..., 2]
    denominator = n_pred + n_true
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denominator > 0, 2.0 * tp / denominator, np.nan)
    return dice


def patient_mean_dice(dice: np.ndarray, patients_of_volume: np.ndarray) -> np.ndarray:
    """Per-class Dice: mean over each patient's volumes, then over patients (NaNs skipped)."""
    frame = pd.DataFrame(dice)
    frame["patient"] = patients_of_volume
    per_patient = frame.groupby("patient", sort=True).mean()
    return per_patient.mean(axis=0, skipna=True).to_numpy(dtype=np.float64)


def dice_per_class(pred: np.ndarray, truth: np.ndarray, index: pd.DataFrame) -> np.ndarray:
    """Per-class Dice (classes 0..3) of predictions over the rows described by `index`."""
    volumes = volume_ids(index)
    n_volumes = int(volumes.max()) + 1 if len(volumes) else 0
    counts = confusion_counts(pred, truth, volumes, n_volumes)
    patient_of_volume = pd.Series(index["patient"].to_numpy()).groupby(volumes).first().to_numpy()
    return patient_mean_dice(dice_from_counts(counts), patient_of_volume)


def foreground_mean(dice: np.ndarray) -> float:
    """Mean Dice over classes 1..3 that are defined (model selection score)."""
    foreground = dice[1:]
    return float(np.nanmean(foreground)) if np.isfinite(foreground).any() else float("nan")
