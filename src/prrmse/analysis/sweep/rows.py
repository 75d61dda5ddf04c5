"""Sweep bookkeeping: which tensors correspond, Dice per sweep row, and the tidy table.

Source and target must share architecture, layer index and tensor shapes; the first
difference is reported naming the source. Each present (layer, kind) becomes a
`Replacement` that copies the source's tensor into the live target tensor and back.
Dice is accumulated as per-volume confusion counts per row (`prrmse.training.metrics`) and turned
into per-class Dice averaged over patients at the end; a class never present in the
validation labels has no Dice: NaN on every row. The per-patient Dice before that mean
(`DiceCounts.per_patient`, `patient_sweep_table`) is kept for confidence intervals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from prrmse.core.errors import PrrmseError
from prrmse.models.layers import KINDS_OF_FAMILY, Layer, get_tensor, index_layers, layer_label
from prrmse.models.registry import ARCH_ATTR
from prrmse.training.evaluate import patient_dice, patient_of_volumes
from prrmse.training.metrics import (
    NUM_CLASSES,
    confusion_counts,
    confusion_counts_tensor,
    dice_from_counts,
    patient_mean_dice,
)

COLUMNS = (
    "family",
    "layer",
    "module",
    "head",
    "kind",
    "status",
    "class",
    "dice",
    "baseline_dice",
    "difference",
)
DICE_COLUMNS = ("dice", "baseline_dice", "difference")
PATIENT_SWEEP_COLUMNS = ("family", "layer", "kind", "patient", "class", "dice")


def architecture_name(model: nn.Module) -> str:
    record = getattr(model, ARCH_ATTR, None)
    return record["name"] if record else type(model).__name__


def check_compatible(
    target: nn.Module, source: nn.Module, input_shape: Sequence[int], source_name: str
) -> list[Layer]:
    """The target's layer index; PrrmseError naming `source_name` and the first difference."""
    target_arch, source_arch = architecture_name(target), architecture_name(source)
    if target_arch != source_arch:
        raise PrrmseError(
            source_name,
            f"different architectures: {source_arch} (source) vs {target_arch} (target)",
        )
    target_layers = index_layers(target, input_shape)
    source_layers = index_layers(source, input_shape)
    for mine, theirs in zip(target_layers, source_layers, strict=False):
        label = layer_label(mine)
        if (mine.family, mine.number, mine.module_name, mine.head) != (
            theirs.family,
            theirs.number,
            theirs.module_name,
            theirs.head,
        ):
            raise PrrmseError(
                source_name,
                f"layer {label} is {theirs.module_name} in the source, {mine.module_name} in the target",
            )
        for kind in KINDS_OF_FAMILY[mine.family]:
            if (kind in mine.kinds) != (kind in theirs.kinds):
                side = "lacks" if kind in mine.kinds else "has, unlike the target,"
                raise PrrmseError(source_name, f"source {side} tensor {label} {kind}")
            if kind in mine.kinds:
                want = tuple(get_tensor(target, mine, kind).shape)
                have = tuple(get_tensor(source, theirs, kind).shape)
                if want != have:
                    raise PrrmseError(
                        source_name,
                        f"source tensor {label} {kind} has shape {list(have)}, target {list(want)}",
                    )
    if len(target_layers) != len(source_layers):
        raise PrrmseError(
            source_name, f"source has {len(source_layers)} layers, target {len(target_layers)}"
        )
    return target_layers


@dataclass(frozen=True)
class Replacement:
    """One (layer, kind) to replace: the live target tensor, its original bytes, the donor."""

    layer: Layer
    kind: str
    module: nn.Module
    live: torch.Tensor
    original: torch.Tensor
    donor: torch.Tensor
    holders: frozenset[nn.Module]  # every module registering `live` (shared tensors: >1)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        with torch.no_grad():
            self.live.copy_(self.donor)
            try:
                yield
            finally:
                self.live.copy_(self.original)


def make_replacements(
    target: nn.Module, source: nn.Module, layers: list[Layer], device: torch.device
) -> list[Replacement]:
    """Every present (layer, kind) of the target, in index order, with its source tensor on `device`."""
    holders: dict[int, set[nn.Module]] = {}
    for module in target.modules():
        for tensor in (*module._parameters.values(), *module._buffers.values()):
            if tensor is not None:
                holders.setdefault(id(tensor), set()).add(module)
    out = []
    for layer in layers:
        for kind in layer.kinds:
            live = get_tensor(target, layer, kind)
            donor = get_tensor(source, layer, kind).detach().to(device, live.dtype)
            out.append(
                Replacement(
                    layer,
                    kind,
                    target.get_submodule(layer.module_name),
                    live,
                    live.detach().clone(),
                    donor,
                    frozenset(holders[id(live)]),
                )
            )
    return out


class DiceCounts:
    """Per-volume confusion counts per sweep row, accumulated batch by batch: on a GPU
    where the predictions are (the host does not wait for them), read once at the end;
    on the CPU with numpy (4x faster there than torch's bincount at 64 x 256 x 256)."""

    def __init__(
        self, labels: np.ndarray, index: pd.DataFrame, rows: int, *, torch_on_cpu: bool = False
    ) -> None:
        self.labels = labels
        self.torch_on_cpu = torch_on_cpu  # the GPU path on the CPU: for its tests
        self.volumes, self.n_volumes, self.patient_of_volume = patient_of_volumes(index)
        self.rows = rows
        self._host = np.zeros((rows, self.n_volumes, NUM_CLASSES, 3), dtype=np.int64)
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def add(self, row: int, start: int, predicted: torch.Tensor) -> None:
        """Count `predicted` ((B, H, W) classes of images start..start+B) into `row`."""
        stop = start + len(predicted)
        if predicted.device.type == "cpu" and not self.torch_on_cpu:
            self._host[row] += confusion_counts(
                predicted.numpy(), self.labels[start:stop], self.volumes[start:stop], self.n_volumes
            )
            return
        if predicted.device not in self._on:
            self._on[predicted.device] = (
                torch.from_numpy(np.ascontiguousarray(self.labels)).to(predicted.device),
                torch.from_numpy(np.asarray(self.volumes)).to(predicted.device),
                torch.zeros(self._host.shape, dtype=torch.int64, device=predicted.device),
            )
        truth, volumes, counts = self._on[predicted.device]
        counts[row] += confusion_counts_tensor(
            predicted, truth[start:stop], volumes[start:stop], self.n_volumes
        )

    @property
    def counts(self) -> np.ndarray:
        """(rows, volumes, classes, 3) int64 counts, of every device, on the host."""
        total = self._host.copy()
        for _, _, counts in self._on.values():
            total += counts.cpu().numpy()
        return total

    def dice(self) -> np.ndarray:
        """(rows, classes) Dice; NaN for classes never present in the labels."""
        dice = np.stack(
            [patient_mean_dice(dice_from_counts(c), self.patient_of_volume) for c in self.counts]
        )
        dice[:, ~present_classes(self.labels)] = np.nan
        return dice

    def per_patient(self) -> tuple[np.ndarray, np.ndarray]:
        """Patients (sorted) and (rows, patients, classes) Dice before the mean over patients.

        NaN where a class is absent from prediction and truth of all of a patient's
        volumes, and, as in `dice`, for classes never present in the labels; the
        NaN-skipping pandas mean over patients gives `dice()` bit for bit.
        """
        frames = [patient_dice(dice_from_counts(c), self.patient_of_volume) for c in self.counts]
        dice = np.stack([frame.to_numpy(dtype=np.float64) for frame in frames])
        dice[:, :, ~present_classes(self.labels)] = np.nan
        return frames[0].index.to_numpy(), dice


def present_classes(labels: np.ndarray) -> np.ndarray:
    """(classes,) bool: whether each class occurs anywhere in `labels`."""
    return np.bincount(np.asarray(labels).ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES] > 0


def check_inputs(images: torch.Tensor, labels: np.ndarray, index: pd.DataFrame) -> None:
    if images.ndim != 4 or len(images) == 0:
        raise PrrmseError(
            "validation images", f"need a non-empty N x C x H x W tensor, got {list(images.shape)}"
        )
    n, _, h, w = images.shape
    if labels.shape != (n, h, w) or len(index) != n or "patient" not in index.columns:
        raise PrrmseError(
            "validation set",
            f"images {list(images.shape)}, labels {list(labels.shape)} and an index of "
            f"{len(index)} rows (with a patient column) must describe the same slices",
        )
    if labels.max() >= NUM_CLASSES:
        raise PrrmseError(
            "validation labels", f"class {int(labels.max())} is outside 0..{NUM_CLASSES - 1}"
        )


def sweep_table(layers: Sequence[Layer], dice: np.ndarray) -> pd.DataFrame:
    """Tidy rows: baseline (one per class), then per layer, kind (absent ones too), class.

    `dice` has one row for the baseline, then one per present kind in index order.
    """
    baseline, replaced = dice[0], iter(dice[1:])
    entries: list[tuple[Any, ...]] = [("baseline", 0, "", False, "", "baseline", baseline)]
    for layer in layers:
        for kind in KINDS_OF_FAMILY[layer.family]:
            present = kind in layer.kinds
            values = next(replaced) if present else np.full(NUM_CLASSES, np.nan)
            status = "replaced" if present else "absent"
            entries.append(
                (layer.family, layer.number, layer.module_name, layer.head, kind, status, values)
            )
    records = [
        (*entry[:6], cls, entry[6][cls], baseline[cls], entry[6][cls] - baseline[cls])
        for entry in entries
        for cls in range(NUM_CLASSES)
    ]
    return pd.DataFrame.from_records(records, columns=list(COLUMNS))


def patient_sweep_table(
    layers: Sequence[Layer], patients: np.ndarray, dice: np.ndarray
) -> pd.DataFrame:
    """Long rows (PATIENT_SWEEP_COLUMNS): baseline, then each present (layer, kind), per patient, class.

    `dice` is `DiceCounts.per_patient`'s (rows, patients, classes); the baseline row has
    family "baseline", layer 0 and an empty kind; absent kinds have no rows.
    """
    items = [("baseline", 0, "")]
    items += [(layer.family, layer.number, kind) for layer in layers for kind in layer.kinds]
    if len(items) != len(dice):
        raise PrrmseError("sweep", f"{len(dice)} Dice rows for {len(items)} sweep rows")
    per_item = len(patients) * NUM_CLASSES
    family, layer, kind = (
        np.repeat(np.array(column, dtype=object), per_item) for column in zip(*items, strict=True)
    )
    return pd.DataFrame(
        {
            "family": family,
            "layer": layer.astype(np.int64),
            "kind": kind,
            "patient": np.tile(np.repeat(patients, NUM_CLASSES), len(items)),
            "class": np.tile(np.arange(NUM_CLASSES), len(items) * len(patients)),
            "dice": dice.reshape(-1),
        }
    )
