"""The training data of one model: its subset of the training patients (nested across
sizes), the hold-out it selects its epoch on, the validation split, and each epoch's
seeded order and augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prrmse.core.errors import PrrmseError
from prrmse.core.naming import ModelSpec
from prrmse.data.processed import ProcessedDataset
from prrmse.training.settings import AugmentSettings, TrainSettings


@dataclass(frozen=True)
class Split:
    """Images and labels of one evaluated split, with its index rows (patient, phase, slice)."""

    images: torch.Tensor  # (N, 1, H, W) float32
    labels: np.ndarray  # (N, H, W)
    index: Any
    patients: list[str]


@dataclass(frozen=True)
class TrainData:
    images: torch.Tensor  # (N, 1, H, W) float32
    labels: torch.Tensor  # (N, H, W) int64
    val: Split  # the validation patients the model is reported on
    selection: Split | None  # best_on_holdout: patients carved from the training patients
    train_patients: list[str]


def draw_subset(patients: list[str], n_train: int | None, seed: int, source: Path) -> list[str]:
    """`n_train` patients drawn with `seed`; smaller subsets are nested in larger ones."""
    if n_train is None:
        return patients
    if n_train > len(patients):
        raise PrrmseError(
            source, f"n{n_train} asks for more than the {len(patients)} training patients"
        )
    order = np.random.default_rng(seed).permutation(len(patients))
    return sorted(patients[i] for i in order[:n_train])


def carve_holdout(
    patients: list[str], n_holdout: int, seed: int, source: Path
) -> tuple[list[str], list[str]]:
    """(training patients left, selection patients): `n_holdout` drawn with `seed`."""
    if n_holdout >= len(patients):
        raise PrrmseError(
            source,
            f"train.holdout.n_patients {n_holdout} leaves none of the {len(patients)} "
            "training patients to train on",
        )
    order = np.random.default_rng(seed).permutation(len(patients))
    held = sorted(patients[i] for i in order[:n_holdout])
    return [p for p in patients if p not in held], held


def _split_of(dataset: ProcessedDataset, split: str, patients: list[str] | None = None) -> Split:
    rows = dataset.rows(split, patients)
    return Split(
        images=torch.from_numpy(np.ascontiguousarray(dataset.images[rows]))[:, None],
        labels=np.asarray(dataset.labels[rows]),
        index=dataset.index.iloc[rows].reset_index(drop=True),
        patients=sorted(dict.fromkeys(dataset.index.iloc[rows]["patient"].astype(str))),
    )


def load_train_data(
    dataset: ProcessedDataset, spec: ModelSpec, settings: TrainSettings
) -> TrainData:
    """The model's training patients (its subset), its selection split if any, the val split."""
    patients = draw_subset(
        dataset.patients("train"), spec.n_train, settings.subset_seed, dataset.root
    )
    selection = None
    if settings.selection == "best_on_holdout":
        holdout = settings.holdout
        patients, held = carve_holdout(patients, holdout.n_patients, holdout.seed, dataset.root)
        selection = _split_of(dataset, "train", held)
    rows = dataset.rows("train", patients)
    val = _split_of(dataset, "val")
    if len(val.images) == 0:
        raise PrrmseError(dataset.root, "validation split is empty")
    return TrainData(
        images=torch.from_numpy(np.ascontiguousarray(dataset.images[rows]))[:, None],
        labels=torch.from_numpy(dataset.labels[rows].astype(np.int64)),
        val=val,
        selection=selection,
        train_patients=patients,
    )


def augment(
    images: torch.Tensor, labels: torch.Tensor, settings: AugmentSettings, gen: torch.Generator
):
    n = len(images)
    if settings.flip:
        flips = torch.rand(n, 2, generator=gen) < 0.5
        for i in range(n):
            dims = [d for d in range(2) if flips[i, d]]
            if dims:
                images[i] = images[i].flip([d + 1 for d in dims])
                labels[i] = labels[i].flip(dims)
    if settings.shift_px:
        shift = settings.shift_px
        shifts = torch.randint(-shift, shift + 1, (n, 2), generator=gen)
        for i in range(n):
            offset = (int(shifts[i, 0]), int(shifts[i, 1]))
            images[i] = images[i].roll(offset, dims=(1, 2))
            labels[i] = labels[i].roll(offset, dims=(0, 1))
    if settings.intensity:
        scale = 1.0 + settings.intensity * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
        offset = settings.intensity * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
        images = images * scale + offset
    return images, labels


def epoch_order(n: int, steps: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """Indices for `steps` batches: successive permutations, each batch full."""
    need = steps * batch
    chunks, have = [], 0
    while have < need:
        perm = torch.randperm(n, generator=gen)
        usable = (n // batch) * batch
        chunks.append(perm[:usable])
        have += usable
    return torch.cat(chunks)[:need].view(steps, batch)
