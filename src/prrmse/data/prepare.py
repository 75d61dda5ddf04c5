"""Preprocessing: raw slices -> resampled, cropped, normalised 2D arrays plus an index.

Output folder (written atomically):
  images.npy  float32 (N, H, W), memory-mappable
  labels.npy  uint8   (N, H, W), in the shared 4-class space
  index.csv   one row per slice: patient, group, phase, slice, series, split, source files + sha256
  meta.json   the config used, shapes, per-split counts, provenance
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path, sha256_file, write_json_atomic
from prrmse.data.loaders import iter_slices
from prrmse.data.protocol import explicit_order, natural_sorted, protocol_from_config
from prrmse.data.records import RawSlice
from prrmse.data.settings import DatasetSettings, PrepareSettings, SplitSettings

INDEX_COLUMNS = [
    "row",
    "patient",
    "group",
    "phase",
    "slice",
    "series",
    "split",
    "image_file",
    "image_sha256",
    "label_file",
    "label_sha256",
]


def map_labels(label: np.ndarray, label_map: Mapping[Any, int], source: Path) -> np.ndarray:
    """Map raw label values to the shared space; a value missing from the map is an error."""
    lookup = {int(key): int(value) for key, value in label_map.items()}
    values = np.unique(label)
    unknown = [int(v) for v in values if int(v) not in lookup]
    if unknown:
        raise PrrmseError(
            source,
            f"label values {unknown[:8]} are not in the label map (known: {sorted(lookup)})",
        )
    mapped = np.zeros(label.shape, dtype=np.uint8)
    for value in values:
        mapped[label == value] = lookup[int(value)]
    return mapped


def resample(image: np.ndarray, label: np.ndarray, spacing: tuple[float, float], target: float):
    """Bilinear for the image, nearest for the label, to `target` mm in-plane."""
    factors = (spacing[0] / target, spacing[1] / target)
    if np.allclose(factors, 1.0):
        return image, label
    out_shape = tuple(max(1, round(n * f)) for n, f in zip(image.shape, factors, strict=True))
    zoom = [o / n for o, n in zip(out_shape, image.shape, strict=True)]
    image = ndimage.zoom(image, zoom, order=1, mode="nearest", grid_mode=True)
    label = ndimage.zoom(label, zoom, order=0, mode="nearest", grid_mode=True)
    return image, label


def crop_or_pad(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre crop or zero-pad to `shape`."""
    out = np.zeros(shape, dtype=array.dtype)
    src, dst = [], []
    for have, want in zip(array.shape, shape, strict=True):
        if have >= want:
            start = (have - want) // 2
            src.append(slice(start, start + want))
            dst.append(slice(0, want))
        else:
            start = (want - have) // 2
            src.append(slice(0, have))
            dst.append(slice(start, start + have))
    out[tuple(dst)] = array[tuple(src)]
    return out


def normalize(image: np.ndarray, method: str) -> np.ndarray:
    image = image.astype(np.float64)
    if method == "zscore":
        std = image.std()
        centred = image - image.mean()
        return (centred / std if std > 0 else centred).astype(np.float32)
    low, high = image.min(), image.max()
    return ((image - low) / (high - low) if high > low else image - low).astype(np.float32)


def preprocess_slice(
    record: RawSlice, label_map: Mapping[Any, int], settings: PrepareSettings
) -> tuple[np.ndarray, np.ndarray]:
    if not np.all(np.isfinite(record.image)):
        raise PrrmseError(record.image_file, "image contains NaN or Inf")
    label = map_labels(record.label, label_map, record.label_file)
    image, label = resample(
        record.image.astype(np.float32), label, record.spacing, settings.spacing_mm
    )
    shape = settings.shape
    # statistics of the field of view the network sees, not of the whole raw slice
    image = normalize(crop_or_pad(image, shape), settings.normalize)
    return image, crop_or_pad(label, shape)


def assign_splits(patients: dict[str, str], split: SplitSettings, source: str) -> dict[str, str]:
    """patient -> 'train' | 'val' for patients in a split; others are left out.

    `patients` maps each patient ID to its set folder. The patient order that first_last
    cuts (and random permutes) is `split.order`: natural (IDs compared with digit runs as
    numbers, `case_2` before `case_10`) or an explicit list of every ID.
    """
    order = split.order
    if isinstance(order, str):
        if order != "natural":
            raise PrrmseError(
                f"{source}.order", f"unknown order {order!r}: natural or a list of patient IDs"
            )
        names = natural_sorted(patients)
    else:
        names = explicit_order(patients, order, f"{source}.order")
    method = split.method
    if method == "folder":
        wanted = {split.train_folder: "train", split.val_folder: "val"}
        return {p: wanted[g] for p, g in patients.items() if g in wanted}
    n_train, n_val = split.n_train, split.n_val
    if n_train is None or n_val is None:
        raise PrrmseError(source, f"split method '{method}' needs n_train and n_val")
    if n_train + n_val > len(names):
        raise PrrmseError(
            source,
            f"split asks for {n_train} train + {n_val} val patients but only {len(names)} were found",
        )
    if method == "random":
        order = np.random.default_rng(split.seed).permutation(len(names))
        names = [names[i] for i in order]
        chosen = {p: "train" for p in names[:n_train]}
        chosen.update({p: "val" for p in names[n_train : n_train + n_val]})
        return chosen
    chosen = {p: "train" for p in names[:n_train]}
    chosen.update({p: "val" for p in names[len(names) - n_val :]})
    return chosen


def _hash_cached(path: Path, cache: dict[Path, str]) -> str:
    if path not in cache:
        cache[path] = sha256_file(path)
    return cache[path]


def _collect(records: Iterable[RawSlice], label_map: Mapping[Any, int], settings: PrepareSettings):
    images, labels, rows, groups = [], [], [], {}
    hashes: dict[Path, str] = {}
    for record in records:
        image, label = preprocess_slice(record, label_map, settings)
        groups.setdefault(record.patient, record.group)
        if not settings.include_empty and not label.any():
            continue
        images.append(image)
        labels.append(label)
        rows.append(
            {
                "patient": record.patient,
                "group": record.group,
                "phase": record.phase,
                "slice": record.slice_index,
                "series": record.series_index,
                "image_file": str(record.image_file),
                "image_sha256": _hash_cached(record.image_file, hashes),
                "label_file": str(record.label_file),
                "label_sha256": _hash_cached(record.label_file, hashes),
            }
        )
    return images, labels, rows, groups


def prepare_dataset(
    name: str, dataset: DatasetSettings, settings: PrepareSettings, out: Path
) -> dict[str, Any]:
    """Preprocess one dataset into `out`; return the summary written to meta.json, whose
    provenance holds the two sections (`as_record()`)."""
    root = Path(dataset.root)
    records = iter_slices(dataset.format, root, protocol_from_config(name, dataset))
    images, labels, rows, groups = _collect(records, dataset.label_map, settings)
    split_of = assign_splits(groups, dataset.split, f"config datasets.{name}.split")
    keep = [i for i, row in enumerate(rows) if row["patient"] in split_of]
    index = pd.DataFrame([rows[i] for i in keep])
    for split in ("train", "val"):
        if index.empty or not (index["patient"].map(split_of) == split).any():
            raise PrrmseError(root, f"split '{split}' is empty after filtering")
    index.insert(0, "row", range(len(index)))
    index.insert(6, "split", index["patient"].map(split_of))
    image_array = np.stack([images[i] for i in keep])
    label_array = np.stack([labels[i] for i in keep])
    summary = {
        "dataset": name,
        "format": dataset.format,
        "root": str(root),
        "n_slices": int(len(index)),
        "shape": list(image_array.shape[1:]),
        "patients": {
            s: int(index.loc[index.split == s, "patient"].nunique()) for s in ("train", "val")
        },
        "slices": {s: int((index.split == s).sum()) for s in ("train", "val")},
        "label_counts": {str(c): int((label_array == c).sum()) for c in range(4)},
        "provenance": provenance.stamp(
            config={"dataset": dataset.as_record(), "prepare": settings.as_record()}
        ),
    }
    with atomic_path(out) as temp:
        temp.mkdir()
        np.save(temp / "images.npy", image_array)
        np.save(temp / "labels.npy", label_array)
        index[INDEX_COLUMNS].to_csv(temp / "index.csv", index=False)
        write_json_atomic(temp / "meta.json", summary)
    return summary
