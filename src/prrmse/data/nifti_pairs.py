"""Generic paired NIfTI loader (T1 mapping and any user data), plus the NIfTI reading ACDC shares.

Two layouts are accepted, anywhere under the root:
- `<case>.nii.gz` next to `<case>_gt.nii.gz` (ACDC style; images without `_gt` are ignored);
- nnU-Net raw: `labelsTr/<case>.nii.gz` with `imagesTr/<case>_0000.nii.gz` (and `Ts`).
Only channel `_0000` of an nnU-Net case is read: a series (T1 inversion times) is the
4th axis of one file, not separate channels.

A case is one patient: its ID is the case name, or what the protocol's `patient_id`
pattern finds in it. Cases are ordered by a natural sort of their IDs (`case_2` before
`case_10`); two cases whose IDs map to one patient (`P001_a` and `P001_b` under the
pattern `P([0-9]+)`, or `case_2` and `case_02`) are an error naming both images.
"""

from __future__ import annotations

import errno
import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from prrmse.core.errors import PrrmseError
from prrmse.data.protocol import NaturalKey, Protocol, check_patient_count, natural_key, patient_of
from prrmse.data.records import RawSlice

NIFTI_SUFFIXES = (".nii.gz", ".nii")
LABEL_SUFFIX = "_gt"
NNUNET_CHANNEL = "_0000"
NNUNET_LABEL_DIRS = {"labelsTr": "imagesTr", "labelsTs": "imagesTs"}


@dataclass(frozen=True)
class NiftiVolume:
    """The voxels of one NIfTI file and its in-plane spacing (row, column) in mm."""

    data: np.ndarray
    spacing: tuple[float, float]


def one_line(error: BaseException) -> str:
    """A library exception as one line for a PrrmseError's problem."""
    text = " ".join(str(error).split()) or "no details"
    return f"{type(error).__name__}: {text}"


def _check_gzip_stream(path: Path) -> None:
    """Decompress a .gz to its end, so gzip checks its CRC-32 and length trailer.

    nibabel stops reading once it has the voxels it needs, before the trailer: a flipped
    bit in the deflate stream would otherwise pass as silently different voxels.
    """
    with gzip.open(path, "rb") as stream:
        while stream.read(1 << 22):
            pass


def read_nifti(path: Path) -> NiftiVolume:
    """Load a NIfTI file fully, refusing corrupt files and singular affines."""
    try:
        if path.name.endswith(".gz"):
            _check_gzip_stream(path)
        image = nib.load(path)
        # nibabel reads voxels lazily: a truncated .gz only fails here, so load inside the try.
        data = np.asarray(image.get_fdata(dtype=np.float32))
        affine = np.asarray(image.affine, dtype=np.float64)
        # NIfTI stores float32: take its shortest decimal (1.2, not 1.2000000476837158).
        zooms = [float(str(np.float32(z))) for z in image.header.get_zooms()]
    except (ImageFileError, HeaderDataError, OSError, EOFError, zlib.error, ValueError) as error:
        raise PrrmseError(path, f"cannot read NIfTI file ({one_line(error)})") from error
    # nibabel silently replaces a zero pixdim by 1, so the affine is the trustworthy test.
    linear = affine[:3, :3]
    if not np.all(np.isfinite(linear)) or abs(np.linalg.det(linear)) < 1e-12:
        raise PrrmseError(path, "singular affine (a zero or invalid voxel size)")
    in_plane = (zooms + [1.0, 1.0])[:2]
    if not all(np.isfinite(z) and z > 0 for z in in_plane):
        raise PrrmseError(path, f"invalid voxel size {tuple(in_plane)}")
    return NiftiVolume(data=data, spacing=(in_plane[0], in_plane[1]))


def require_finite(array: np.ndarray, path: Path) -> None:
    """Refuse NaN or Inf voxels, which would poison normalisation and losses."""
    if not np.all(np.isfinite(array)):
        raise PrrmseError(path, "contains NaN or Inf values")


def label_values(label: np.ndarray, path: Path) -> np.ndarray:
    """Integer label values as stored (float on disk after scaling, so round first)."""
    require_finite(label, path)
    return np.rint(label).astype(np.int64)


def strip_nifti_suffix(name: str) -> str | None:
    """`case.nii.gz` -> `case`; None for any other file."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def require_dir(root: Path) -> None:
    if root.is_dir():
        return
    if root.is_symlink():
        # is_dir() is False both for a dangling link and for a loop (ELOOP): say which.
        try:
            root.resolve(strict=True)
        except RuntimeError:  # pathlib's "Symlink loop" (Python 3.11/3.12)
            raise PrrmseError(root, "data folder is a symlink loop") from None
        except OSError as error:
            problem = "a symlink loop" if error.errno == errno.ELOOP else "a dangling symlink"
            raise PrrmseError(root, f"data folder is {problem}") from None
    if root.exists():
        raise PrrmseError(root, "data folder expected, found a file")
    raise PrrmseError(root, "data folder not found")


@dataclass(frozen=True)
class NiftiCase:
    name: str
    image_file: Path
    label_file: Path
    patient: str  # the patient ID: the case name until `assign_patients` applies a pattern


def _find_image(folder: Path, stem: str, label_file: Path) -> Path:
    for suffix in NIFTI_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise PrrmseError(label_file, f"label without its image {folder / (stem + NIFTI_SUFFIXES[0])}")


def find_nifti_cases(root: Path) -> list[NiftiCase]:
    """Every image/label pair under root, sorted by case name; duplicate names are refused."""
    cases: dict[str, NiftiCase] = {}
    # followlinks=False: a symlinked folder is listed but never entered, so loops cannot hang.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        folder = Path(dirpath)
        nnunet_images = NNUNET_LABEL_DIRS.get(folder.name)
        for filename in sorted(filenames):
            stem = strip_nifti_suffix(filename)
            if stem is None:
                continue
            label_file = folder / filename
            if nnunet_images is not None:
                name = stem
                image_file = _find_image(
                    folder.parent / nnunet_images, stem + NNUNET_CHANNEL, label_file
                )
            elif stem.endswith(LABEL_SUFFIX):
                name = stem[: -len(LABEL_SUFFIX)]
                image_file = _find_image(folder, name, label_file)
            else:
                continue
            if name in cases:
                raise PrrmseError(
                    label_file, f"case {name!r} also labelled by {cases[name].label_file}"
                )
            cases[name] = NiftiCase(name, image_file, label_file, name)
    return [cases[name] for name in sorted(cases)]


def assign_patients(cases: list[NiftiCase], protocol: Protocol) -> list[NiftiCase]:
    """Each case with its patient ID, in natural order of the IDs; one patient per case."""
    by_key: dict[NaturalKey, NiftiCase] = {}
    for case in cases:
        patient = patient_of(case.name, protocol.patient_id, case.image_file, protocol.where)
        key = natural_key(patient)
        other = by_key.get(key)
        if other is not None:
            how = (
                f"{protocol.where}.patient_id {protocol.patient_id.pattern!r}"
                if protocol.patient_id
                else "natural order"
            )
            raise PrrmseError(
                case.image_file,
                f"maps to patient {patient!r}, as {other.image_file} does (patient {other.patient!r}, "
                f"{how}): one image/label pair per patient",
            )
        by_key[key] = NiftiCase(case.name, case.image_file, case.label_file, patient)
    return [by_key[key] for key in sorted(by_key)]


def iter_case_slices(case: NiftiCase) -> Iterator[RawSlice]:
    """Slices of one case: label (H,W[,S]); the image may add one trailing series axis.

    Image (H,W,S,T) with label (H,W,S) gives S*T records, series t of slice s sharing
    label[..., s] (T1 mapping: the inversion times of one slice share one mask).
    """
    image = read_nifti(case.image_file)
    label = read_nifti(case.label_file)
    require_finite(image.data, case.image_file)
    labels = label_values(label.data, case.label_file)
    if labels.ndim not in (2, 3):
        raise PrrmseError(case.label_file, f"label must be 2D or 3D, got shape {labels.shape}")
    fits = image.data.shape[: labels.ndim] == labels.shape and image.data.ndim - labels.ndim <= 1
    if not fits:
        raise PrrmseError(
            case.label_file,
            f"label shape {labels.shape} does not match image shape {image.data.shape}",
        )
    labels = labels.reshape(labels.shape[:2] + (-1,))
    series = image.data.reshape(labels.shape + (-1,))
    for slice_index in range(labels.shape[2]):
        for series_index in range(series.shape[3]):
            yield RawSlice(
                patient=case.patient,
                group="",
                phase="",
                slice_index=slice_index,
                series_index=series_index,
                image=np.ascontiguousarray(series[:, :, slice_index, series_index]),
                label=np.ascontiguousarray(labels[:, :, slice_index]),
                spacing=image.spacing,
                image_file=case.image_file,
                label_file=case.label_file,
            )


def iter_nifti_pairs(root: Path, protocol: Protocol | None = None) -> Iterator[RawSlice]:
    """Every 2D slice (and series image) of every image/label pair under root, by patient
    in natural order of the IDs.

    The folder search, the patient IDs and count run at call time, so a wrong root fails
    before any file is read.
    """
    root = Path(root)
    protocol = protocol or Protocol()
    if protocol.sets is not None:
        raise PrrmseError(
            f"config {protocol.where}.sets", "paired NIfTI has no set folders: leave sets null"
        )
    require_dir(root)
    cases = find_nifti_cases(root)
    if not cases:
        raise PrrmseError(
            root,
            "no image/label pairs found (<case>.nii.gz + <case>_gt.nii.gz, "
            "or nnU-Net imagesTr/labelsTr)",
        )
    cases = assign_patients(cases, protocol)
    check_patient_count(root, len(cases), protocol)
    return (record for case in cases for record in iter_case_slices(case))
