"""Typed settings of the data verbs, each a frozen dataclass: the config's `phantoms:`
section (`PhantomsSettings`, one `AcdcPhantomSettings`, `RvscPhantomSettings`,
`T1PhantomSettings` per generator), `prepare:` (`PrepareSettings`), a dataset's
`datasets.<name>` entry (`DatasetSettings`, with its `SplitSettings`) and `qc:`
(`QcSettings`).

A verb (`prrmse phantoms`, `prepare`, `qc`) builds them once from the validated config
with `from_config` (`prrmse.core.settings`); the library reads attributes, never the raw
mapping. `as_record()` is the plain mapping written wherever a section goes into a record
(a prepared dataset's meta.json, the pretext pool of `prrmse encoder`): the very section
the config holds, so every product keeps its bytes.

One shape varies with the split's method: `n_train` and `n_val` (no schema default) are
read by random and first_last only, so a folder split may leave them out. They are
optional keys (`optional_key`): None when left out, and left out of the record again.
The other split keys always hold a value (the schema's default when not written), whether
the method reads them or not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from prrmse.core.config import dataset_config
from prrmse.core.settings import Settings, optional_key

Format = Literal["acdc", "rvsc", "nifti_pairs"]
Method = Literal["random", "first_last", "folder"]
Normalize = Literal["zscore", "minmax"]
Shape = tuple[int, int]  # [rows, columns] in pixels
SpacingRange = tuple[float, float]  # [low, high] in mm, drawn per patient


@dataclasses.dataclass(frozen=True)
class AcdcPhantomSettings(Settings):
    """`phantoms.acdc`: ACDC-format phantoms (patientNNN folders, ED and ES volumes)."""

    n_patients: int
    n_slices: int
    shape: Shape
    spacing_mm: SpacingRange
    slice_thickness_mm: float


@dataclasses.dataclass(frozen=True)
class RvscPhantomSettings(Settings):
    """`phantoms.rvsc`: RVSC-format phantoms (DICOM cines, manual RV contours)."""

    n_train: int
    n_test1: int
    n_slices: int
    n_phases: int
    shape: Shape
    spacing_mm: SpacingRange
    slice_thickness_mm: float


@dataclasses.dataclass(frozen=True)
class T1PhantomSettings(Settings):
    """`phantoms.t1`: paired-NIfTI T1-mapping phantoms (an inversion-time series per slice)."""

    n_patients: int
    n_slices: int
    n_ti: int
    shape: Shape
    spacing_mm: SpacingRange
    slice_thickness_mm: float


PhantomParams = AcdcPhantomSettings | RvscPhantomSettings | T1PhantomSettings


@dataclasses.dataclass(frozen=True)
class PhantomsSettings(Settings):
    """`phantoms`: the seed of every phantom and each generator's settings."""

    enabled: bool
    seed: int
    acdc: AcdcPhantomSettings
    rvsc: RvscPhantomSettings
    t1: T1PhantomSettings


@dataclasses.dataclass(frozen=True)
class PrepareSettings(Settings):
    """`prepare`: the preprocessing into 2D slices shared by every dataset."""

    spacing_mm: float
    shape: Shape
    normalize: Normalize
    include_empty: bool


@dataclasses.dataclass(frozen=True)
class SplitSettings(Settings):
    """`datasets.<name>.split`: how the patients are divided into train and val."""

    method: Method
    n_train: int | None = optional_key()  # random, first_last
    n_val: int | None = optional_key()  # random, first_last
    seed: int  # random
    train_folder: str  # folder
    val_folder: str  # folder
    order: Literal["natural"] | tuple[str, ...]  # random, first_last


@dataclasses.dataclass(frozen=True)
class DatasetSettings(Settings):
    """`datasets.<name>`: a dataset's format, root, protocol keys, label map and split."""

    format: Format
    root: str
    sets: tuple[str, ...] | None
    expected_patients: int | None
    patient_id: str | None
    # label value on disk (an integer; a quoted one in YAML is a string) -> shared class
    label_map: Mapping[int | str, int]
    split: SplitSettings


@dataclasses.dataclass(frozen=True)
class QcSettings(Settings):
    """`qc`: the montage of a prepared dataset."""

    slices_per_split: int


def _where(source: str | None, key: str) -> str:
    return f"config {key}" if source is None else f"{source}: config key {key}"


def phantoms_settings(config: Mapping[str, Any], source: str | None = None) -> PhantomsSettings:
    """The `phantoms` section of a validated config; `source` (the config file) is named in
    errors."""
    return PhantomsSettings.from_config(config["phantoms"], _where(source, "phantoms"))


def prepare_settings(config: Mapping[str, Any], source: str | None = None) -> PrepareSettings:
    """The `prepare` section of a validated config."""
    return PrepareSettings.from_config(config["prepare"], _where(source, "prepare"))


def dataset_settings(
    config: dict[str, Any], name: str, source: str | None = None
) -> DatasetSettings:
    """The `datasets.<name>` entry of a validated config; an unknown name is an error
    naming the config's datasets."""
    entry = dataset_config(config, name, source or "config")
    return DatasetSettings.from_config(entry, _where(source, f"datasets.{name}"))


def qc_settings(config: Mapping[str, Any], source: str | None = None) -> QcSettings:
    """The `qc` section of a validated config."""
    return QcSettings.from_config(config["qc"], _where(source, "qc"))
