"""RVSC loader: DICOM images with manual RV endocardium (i-contour) text files.

Layout: `<set>/patientNN/PNNdicom/PNN-NNNN.dcm`; contours in
`<set>/patientNN/PNNcontours-manual/` or, as the test sets were distributed,
`<set>Contours/PNNcontours-manual/`. Only images with an i-contour are yielded; the
label is the filled i-contour (RV cavity) with value 1. `PNNlist.txt` is not read:
its Windows paths point into the patient folder even where the contours lie elsewhere.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels import apply_rescale

from prrmse.core.errors import PrrmseError
from prrmse.data.nifti_pairs import one_line, require_dir, require_finite
from prrmse.data.protocol import Protocol, check_patient_count, set_folders
from prrmse.data.records import RawSlice

PATIENT_DIR = re.compile(r"patient(\d{2})")
ICONTOUR_SUFFIX = "-icontour-manual.txt"
ICONTOUR_NAME = re.compile(r"P(\d{2})-(\d{4})-icontour-manual\.txt")
RV_CAVITY = 1
# Contour vertices may lie on the border pixel's outer edge, not beyond.
EDGE_TOLERANCE_PX = 0.5
# Slices are ~7 mm apart; images of one slice share its SliceLocation up to rounding.
SAME_LOCATION_MM = 0.5
# What pydicom raises on a non-DICOM or truncated file (struct.error: a cut element header).
DICOM_READ_ERRORS = (
    InvalidDicomError,
    BytesLengthException,
    OSError,
    EOFError,
    ValueError,
    struct.error,
)


@dataclass(frozen=True)
class DicomImage:
    """Pixels (rows, cols) float32, spacing (row, col) mm, and the tags used for ordering."""

    pixels: np.ndarray
    spacing: tuple[float, float]
    slice_location: float
    instance_number: int | None
    trigger_time: float | None


@dataclass(frozen=True)
class RvscPatient:
    name: str
    group: str
    dicom_dir: Path
    contour_dir: Path


@dataclass(frozen=True)
class ContouredImage:
    dicom: DicomImage
    label: np.ndarray
    dicom_file: Path
    contour_file: Path
    image_number: int


def _is_patient_dir(folder: Path) -> bool:
    match = PATIENT_DIR.fullmatch(folder.name)
    return match is not None and (folder / f"P{match.group(1)}dicom").is_dir()


def _contour_dir(set_dir: Path, patient_dir: Path) -> Path | None:
    pnn = f"P{patient_dir.name[-2:]}"
    contours_set = set_dir.parent / f"{set_dir.name}Contours"
    for candidate in (
        patient_dir / f"{pnn}contours-manual",
        contours_set / f"{pnn}contours-manual",
        contours_set / patient_dir.name / f"{pnn}contours-manual",
    ):
        if candidate.is_dir():
            return candidate
    return None


def find_patients(root: Path, sets: tuple[str, ...] | None = None) -> list[RvscPatient]:
    """Patients of every set folder under root (or under each of its `sets` folders) that
    has manual contours, sorted by name; a listed set without contoured patients is refused."""
    patients: dict[str, RvscPatient] = {}
    for folder in set_folders(root, sets):
        before = len(patients)
        _find_in(folder, patients)
        if sets is not None and len(patients) == before:
            raise PrrmseError(
                folder,
                f"no patients with manual contours in this set folder or in {folder.name}Contours/",
            )
    return [patients[name] for name in sorted(patients)]


def _find_in(top: Path, patients: dict[str, RvscPatient]) -> None:
    # followlinks=False: symlinked folders are listed but never entered, so loops cannot hang.
    for dirpath, dirnames, _ in os.walk(top, followlinks=False):
        dirnames.sort()
        set_dir = Path(dirpath)
        patient_dirs = [set_dir / name for name in dirnames if _is_patient_dir(set_dir / name)]
        dirnames[:] = [name for name in dirnames if set_dir / name not in patient_dirs]
        contour_dirs = {p: _contour_dir(set_dir, p) for p in patient_dirs}
        # A set without any contours (Test2Set downloaded without Test2SetContours) has
        # nothing to yield; a set with some but not all is a broken download.
        if not any(contour_dirs.values()):
            continue
        for patient_dir, contour_dir in contour_dirs.items():
            if contour_dir is None:
                pnn = f"P{patient_dir.name[-2:]}"
                raise PrrmseError(
                    patient_dir,
                    f"no {pnn}contours-manual folder here or in {set_dir.name}Contours/",
                )
            if patient_dir.name in patients:
                raise PrrmseError(
                    patient_dir,
                    f"patient also found at {patients[patient_dir.name].dicom_dir.parent}",
                )
            patients[patient_dir.name] = RvscPatient(
                name=patient_dir.name,
                group=set_dir.name,
                dicom_dir=patient_dir / f"P{patient_dir.name[-2:]}dicom",
                contour_dir=contour_dir,
            )


def _number(ds: pydicom.Dataset, keyword: str) -> float | None:
    """A numeric tag as float; None if absent; malformed values are an error."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{keyword} is not a number: {value!r}") from error


def _slice_location(ds: pydicom.Dataset) -> float | None:
    """SliceLocation, else the position along the slice normal (orders slices the same way)."""
    location = _number(ds, "SliceLocation")
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if location is None and position is not None and orientation is not None:
        row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
        location = float(np.dot(np.cross(row, col), np.asarray(position, float)))
    return location


def read_dicom_image(path: Path) -> DicomImage:
    """One single-frame grayscale DICOM image with its spacing and slice position."""
    try:
        ds = pydicom.dcmread(path)
    except DICOM_READ_ERRORS as error:
        raise PrrmseError(path, f"not a readable DICOM file ({one_line(error)})") from error
    if "PixelData" not in ds:
        raise PrrmseError(path, "DICOM without pixel data (none stored, or the file is truncated)")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None:
        raise PrrmseError(path, "DICOM file meta has no transfer syntax (truncated header?)")
    try:
        pixels = apply_rescale(ds.pixel_array, ds).astype(np.float32)
    except (RuntimeError, NotImplementedError) as error:
        raise PrrmseError(
            path,
            f"cannot decode pixel data in transfer syntax {syntax.name} ({one_line(error)[:200]})",
        ) from error
    except (ValueError, AttributeError, BytesLengthException) as error:
        raise PrrmseError(path, f"corrupt pixel data ({one_line(error)[:200]})") from error
    if pixels.ndim != 2:
        raise PrrmseError(path, f"expected one grayscale frame, got pixel array {pixels.shape}")
    require_finite(pixels, path)
    try:
        spacing = [float(v) for v in ds.get("PixelSpacing") or []]
        location = _slice_location(ds)
        instance = _number(ds, "InstanceNumber")
        trigger_time = _number(ds, "TriggerTime")
    except (TypeError, ValueError) as error:
        raise PrrmseError(path, one_line(error)) from error
    if len(spacing) != 2 or not all(np.isfinite(v) and v > 0 for v in spacing):
        raise PrrmseError(path, f"missing or invalid PixelSpacing {spacing}")
    if location is None:
        raise PrrmseError(path, "no SliceLocation or ImagePositionPatient/ImageOrientationPatient")
    instance_number = None if instance is None else int(instance)
    return DicomImage(pixels, (spacing[0], spacing[1]), location, instance_number, trigger_time)


def read_contour(path: Path) -> np.ndarray:
    """Vertices (N, 2) as (x, y) = (column, row), one `x y` pair per line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise PrrmseError(path, f"cannot read contour ({one_line(error)})") from error
    points: list[tuple[float, float]] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            x, y = float(fields[0]), float(fields[1])
        except ValueError as error:
            problem = f"line {line_number} is not 'x y': {line.strip()[:40]!r}"
            raise PrrmseError(path, problem) from error
        if not (np.isfinite(x) and np.isfinite(y)):
            raise PrrmseError(path, f"line {line_number} is not a finite point")
        points.append((x, y))
    if len(points) < 3:
        raise PrrmseError(path, f"{len(points)} points; a contour needs at least 3")
    return np.asarray(points, dtype=np.float64)


def fill_contour(points: np.ndarray, shape: tuple[int, int], path: Path) -> np.ndarray:
    """The filled polygon, outline included, as cv2.fillPoly draws integer (x, y) vertices."""
    rows, cols = shape
    x, y = points[:, 0], points[:, 1]
    tol = EDGE_TOLERANCE_PX
    if x.min() < -tol or x.max() > cols - 1 + tol or y.min() < -tol or y.max() > rows - 1 + tol:
        raise PrrmseError(
            path,
            f"contour points outside the {rows}x{cols} image (x {x.min():.1f}..{x.max():.1f}, "
            f"y {y.min():.1f}..{y.max():.1f}); x is the column, y the row",
        )
    # Nearest pixel (cv2 takes integers); the clip only moves points in the tolerated half pixel.
    xs = np.clip(np.rint(x), 0, cols - 1).astype(int)
    ys = np.clip(np.rint(y), 0, rows - 1).astype(int)
    vertices = list(zip(xs.tolist(), ys.tolist(), strict=True))
    mask = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(mask)
    draw.polygon(vertices, fill=RV_CAVITY)
    # PIL's fill omits some boundary pixels that cv2.fillPoly includes; drawing the closed
    # outline adds them.
    draw.line(vertices + vertices[:1], fill=RV_CAVITY, width=1)
    return np.asarray(mask, dtype=np.int64)


def read_contoured_images(patient: RvscPatient) -> list[ContouredImage]:
    """Each i-contour of the patient with its DICOM image, in file-name order."""
    contour_files = sorted(
        path for path in patient.contour_dir.iterdir() if path.name.endswith(ICONTOUR_SUFFIX)
    )
    images = []
    for contour_file in contour_files:
        match = ICONTOUR_NAME.fullmatch(contour_file.name)
        if match is None:
            raise PrrmseError(contour_file, "name is not PNN-NNNN-icontour-manual.txt")
        dicom_file = patient.dicom_dir / f"P{match.group(1)}-{match.group(2)}.dcm"
        if not dicom_file.is_file():
            raise PrrmseError(contour_file, f"contour without its DICOM {dicom_file}")
        dicom = read_dicom_image(dicom_file)
        label = fill_contour(read_contour(contour_file), dicom.pixels.shape, contour_file)
        image_number = (
            dicom.instance_number if dicom.instance_number is not None else int(match.group(2))
        )
        images.append(ContouredImage(dicom, label, dicom_file, contour_file, image_number))
    return images


def slice_indices(locations: list[float]) -> list[int]:
    """Rank of each location among the distinct locations (within SAME_LOCATION_MM), ascending."""
    order = sorted(range(len(locations)), key=lambda i: locations[i])
    ranks = [0] * len(locations)
    rank, start = -1, None
    for i in order:
        if start is None or locations[i] - start > SAME_LOCATION_MM:
            rank, start = rank + 1, locations[i]
        ranks[i] = rank
    return ranks


def assign_phases(images: list[ContouredImage], slices: list[int]) -> list[str]:
    """ED or ES per contoured image: RVSC files do not say which, so it is inferred.

    Within one slice location the contoured image with the lower image number is ED and
    the higher ES: the images of a cine slice are numbered in cardiac-cycle order, which
    starts at the R wave, i.e. near end-diastole. A slice with one contour gets the phase
    whose mean trigger time (over the patient's paired slices) is nearer to its own;
    without trigger times it is ED, since ES (the contracted heart) is the phase that
    loses basal and apical slices.
    """
    phases = [""] * len(images)
    by_slice: dict[int, list[int]] = {}
    for i, s in enumerate(slices):
        by_slice.setdefault(s, []).append(i)
    singles = []
    for members in by_slice.values():
        members.sort(key=lambda i: (images[i].image_number, images[i].contour_file.name))
        if len(members) > 2:
            names = ", ".join(images[i].contour_file.name for i in members[:2])
            raise PrrmseError(
                images[members[2]].contour_file,
                f"a third i-contour at one slice location (after {names})",
            )
        if len(members) == 2:
            phases[members[0]], phases[members[1]] = "ED", "ES"
        else:
            singles.append(members[0])
    times = {
        p: [images[i].dicom.trigger_time for i in range(len(images)) if phases[i] == p]
        for p in ("ED", "ES")
    }
    known = all(t is not None for p in times for t in times[p]) and times["ED"] and times["ES"]
    for i in singles:
        t = images[i].dicom.trigger_time
        if known and t is not None:
            ed, es = float(np.mean(times["ED"])), float(np.mean(times["ES"]))
            phases[i] = "ED" if abs(t - ed) <= abs(t - es) else "ES"
        else:
            phases[i] = "ED"
    return phases


def iter_patient_slices(patient: RvscPatient) -> Iterator[RawSlice]:
    images = read_contoured_images(patient)
    slices = slice_indices([image.dicom.slice_location for image in images])
    phases = assign_phases(images, slices)
    for i in sorted(range(len(images)), key=lambda i: (phases[i], slices[i])):
        image = images[i]
        yield RawSlice(
            patient=patient.name,
            group=patient.group,
            phase=phases[i],
            slice_index=slices[i],
            series_index=0,
            image=image.dicom.pixels,
            label=image.label,
            spacing=image.dicom.spacing,
            image_file=image.dicom_file,
            label_file=image.contour_file,
        )


def iter_rvsc(root: Path, protocol: Protocol | None = None) -> Iterator[RawSlice]:
    """Every i-contoured image of every RVSC patient of the protocol's sets under root, by
    (patient, phase, slice).

    The folder search and the patient count run at call time, so a wrong root fails
    before any file is read.
    """
    root = Path(root)
    protocol = protocol or Protocol()
    require_dir(root)
    patients = find_patients(root, protocol.sets)
    if not patients:
        raise PrrmseError(
            root,
            "no RVSC patients with manual contours found "
            "(<set>/patientNN/PNNdicom/ + PNNcontours-manual/)",
        )
    check_patient_count(root, len(patients), protocol, "patients with manual contours")
    return (record for patient in patients for record in iter_patient_slices(patient))
