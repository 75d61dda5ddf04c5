"""The record every loader yields: one 2D image with its raw label and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RawSlice:
    """One 2D image of a raw dataset, before preprocessing.

    `label` holds the values found on disk (before the config's label map).
    `spacing` is (row, column) in mm. `series_index` numbers the images of a
    series sharing one mask (T1: inversion times), 0 otherwise.
    """

    patient: str
    group: str
    phase: str
    slice_index: int
    series_index: int
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float]
    image_file: Path
    label_file: Path
