"""ACDC loader: patientNNN folders with Info.cfg and the ED/ES frames with their `_gt` labels.

Which challenge sets are read is the protocol's `sets` (the paper: `training`, the 100
patients with public labels; never `testing` too, which the current release also labels).
Within each set folder patient folders are searched recursively because the 2017 download
nests the test set as `testing/testing/`; without `sets` the whole root is searched. The
record's group is the folder holding the patient folder. The `_4d` cine has no labels and
is ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prrmse.core.errors import PrrmseError
from prrmse.data.nifti_pairs import label_values, read_nifti, require_dir, require_finite
from prrmse.data.protocol import Protocol, check_patient_count, set_folders
from prrmse.data.records import RawSlice

PATIENT_DIR = re.compile(r"patient\d{3}")
PHASES = ("ED", "ES")


def find_patient_dirs(root: Path, sets: tuple[str, ...] | None = None) -> list[Path]:
    """Every `patientNNN` folder under root (or under each of its `sets` folders), sorted by
    patient; a patient found twice, or a listed set without patients, is refused."""
    if sets is None and PATIENT_DIR.fullmatch(root.name):
        return [root]
    found: dict[str, Path] = {}
    for folder in set_folders(root, sets):
        before = len(found)
        # followlinks=False: symlinked folders are listed (so a linked patient counts) but
        # never entered, so a symlink loop cannot hang the search.
        for dirpath, dirnames, _ in os.walk(folder, followlinks=False):
            dirnames.sort()
            patients = [name for name in dirnames if PATIENT_DIR.fullmatch(name)]
            for name in patients:
                path = Path(dirpath) / name
                if name in found:
                    raise PrrmseError(path, f"patient also found at {found[name]}")
                found[name] = path
            # No need to search inside a patient folder.
            dirnames[:] = [name for name in dirnames if name not in patients]
        if sets is not None and len(found) == before:
            raise PrrmseError(folder, "no patientNNN folders in this set folder")
    return [found[name] for name in sorted(found)]


def read_info_cfg(path: Path) -> dict[str, str]:
    """`Key: value` lines (no section header), as ACDC writes them."""
    if not path.is_file():
        raise PrrmseError(path, "Info.cfg not found")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise PrrmseError(path, f"cannot read ({error.strerror})") from error
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def phase_frames(info_file: Path) -> dict[str, int]:
    """The ED and ES frame numbers (1-based) from Info.cfg."""
    info = read_info_cfg(info_file)
    frames: dict[str, int] = {}
    for phase in PHASES:
        if phase not in info:
            raise PrrmseError(info_file, f"no '{phase}:' line")
        try:
            frames[phase] = int(info[phase])
        except ValueError as error:
            raise PrrmseError(info_file, f"{phase} is not an integer: {info[phase]!r}") from error
        if frames[phase] < 1:
            raise PrrmseError(info_file, f"{phase} frame must be >= 1, got {frames[phase]}")
    return frames


def _as_volume(data: np.ndarray, path: Path) -> np.ndarray:
    """A 3D (rows, cols, slices) array; trailing singleton axes are dropped."""
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    if data.ndim != 3:
        raise PrrmseError(path, f"expected a 3D volume, got shape {data.shape}")
    return data


def iter_phase_slices(patient_dir: Path, phase: str, frame: int) -> Iterator[RawSlice]:
    """Every slice (axis 2) of one phase's frame and its label."""
    patient = patient_dir.name
    image_file = patient_dir / f"{patient}_frame{frame:02d}.nii.gz"
    label_file = patient_dir / f"{patient}_frame{frame:02d}_gt.nii.gz"
    for path in (image_file, label_file):
        if not path.is_file():
            raise PrrmseError(path, f"{phase} frame file not found (frame {frame} in Info.cfg)")
    image = read_nifti(image_file)
    volume = _as_volume(image.data, image_file)
    require_finite(volume, image_file)
    labels = _as_volume(label_values(read_nifti(label_file).data, label_file), label_file)
    if labels.shape != volume.shape:
        raise PrrmseError(
            label_file, f"label shape {labels.shape} does not match image shape {volume.shape}"
        )
    for k in range(volume.shape[2]):
        yield RawSlice(
            patient=patient,
            group=patient_dir.parent.name,
            phase=phase,
            slice_index=k,
            series_index=0,
            image=np.ascontiguousarray(volume[:, :, k]),
            label=np.ascontiguousarray(labels[:, :, k]),
            spacing=image.spacing,
            image_file=image_file,
            label_file=label_file,
        )


def iter_acdc(root: Path, protocol: Protocol | None = None) -> Iterator[RawSlice]:
    """Every ED and ES slice of every ACDC patient of the protocol's sets under root, by
    (patient, phase, slice).

    The folder search and the patient count run at call time, so a wrong root fails
    before any file is read.
    """
    root = Path(root)
    protocol = protocol or Protocol()
    require_dir(root)
    patient_dirs = find_patient_dirs(root, protocol.sets)
    if not patient_dirs:
        raise PrrmseError(root, "no patientNNN folders found")
    check_patient_count(root, len(patient_dirs), protocol, "patientNNN folders")
    return _iter_patients(patient_dirs)


def _iter_patients(patient_dirs: list[Path]) -> Iterator[RawSlice]:
    for patient_dir in patient_dirs:
        frames = phase_frames(patient_dir / "Info.cfg")
        for phase in PHASES:
            yield from iter_phase_slices(patient_dir, phase, frames[phase])
