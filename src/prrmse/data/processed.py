"""Read a prepared dataset and check that its index and arrays agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prrmse.core.errors import PrrmseError

NUM_CLASSES = 4


@dataclass(frozen=True)
class ProcessedDataset:
    root: Path
    images: np.ndarray  # float32 (N, H, W), memory-mapped
    labels: np.ndarray  # uint8 (N, H, W), memory-mapped
    index: pd.DataFrame

    def rows(self, split: str, patients: list[str] | None = None) -> np.ndarray:
        """Row numbers of one split, optionally restricted to some patients."""
        mask = self.index["split"] == split
        if patients is not None:
            mask &= self.index["patient"].isin(patients)
        return self.index.loc[mask, "row"].to_numpy()

    def patients(self, split: str) -> list[str]:
        return sorted(self.index.loc[self.index["split"] == split, "patient"].unique())


def _load_array(path: Path, dtype: np.dtype) -> np.ndarray:
    if not path.is_file():
        raise PrrmseError(path, "file not found (was the dataset prepared completely?)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise PrrmseError(path, f"not a readable .npy array ({exc})") from exc
    if array.dtype != dtype or array.ndim != 3:
        raise PrrmseError(path, f"expected a 3-D {dtype} array, found {array.ndim}-D {array.dtype}")
    return array


def _require_finite(array: np.ndarray, path: Path, chunk: int = 1024) -> None:
    """NaN or Inf pixels would surface only as a NaN loss or a meaningless Dice: refuse them here."""
    for start in range(0, len(array), chunk):
        block = np.asarray(array[start : start + chunk])
        finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if not finite.all():
            bad = start + int(np.flatnonzero(~finite)[0])
            raise PrrmseError(path, f"image row {bad} contains NaN or Inf values")


def load_processed(root: str | Path) -> ProcessedDataset:
    root = Path(root)
    if not root.is_dir():
        raise PrrmseError(root, "processed dataset folder not found")
    images = _load_array(root / "images.npy", np.dtype(np.float32))
    _require_finite(images, root / "images.npy")
    labels = _load_array(root / "labels.npy", np.dtype(np.uint8))
    index_path = root / "index.csv"
    if not index_path.is_file():
        raise PrrmseError(index_path, "file not found")
    try:
        index = pd.read_csv(index_path, dtype={"patient": str, "group": str, "phase": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PrrmseError(index_path, f"not a readable CSV ({exc})") from exc
    missing = {"row", "patient", "phase", "slice", "split"} - set(index.columns)
    if missing:
        raise PrrmseError(index_path, f"index lacks columns {sorted(missing)}")
    index[["group", "phase"]] = index[["group", "phase"]].fillna("")
    if images.shape != labels.shape:
        raise PrrmseError(root, f"images {images.shape} and labels {labels.shape} differ in shape")
    if len(index) != len(images) or not np.array_equal(
        index["row"].to_numpy(), np.arange(len(images))
    ):
        raise PrrmseError(
            index_path,
            f"index has {len(index)} rows numbered differently from the {len(images)} arrays",
        )
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise PrrmseError(
            root / "labels.npy",
            f"label {int(labels.max())} outside the classes 0..{NUM_CLASSES - 1}",
        )
    bad_split = set(index["split"]) - {"train", "val"}
    if bad_split:
        raise PrrmseError(index_path, f"unknown split names {sorted(bad_split)}")
    return ProcessedDataset(root=root, images=images, labels=labels, index=index)
