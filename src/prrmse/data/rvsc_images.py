"""RVSC images and labels: a DICOM image read, an i-contour read and filled as the label.

`read_contoured_images` pairs each manual i-contour text file of a patient with its DICOM
image; the label is the filled i-contour (RV cavity) with value 1, drawn as cv2.fillPoly
draws it.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels import apply_rescale

from prrmse.core.errors import PrrmseError
from prrmse.data.nifti_pairs import one_line, require_finite
from prrmse.data.rvsc_patients import RvscPatient

ICONTOUR_SUFFIX = "-icontour-manual.txt"
ICONTOUR_NAME = re.compile(r"P(\d{2})-(\d{4})-icontour-manual\.txt")
RV_CAVITY = 1
# Contour vertices may lie on the border pixel's outer edge, not beyond.
EDGE_TOLERANCE_PX = 0.5
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
class ContouredImage:
    dicom: DicomImage
    label: np.ndarray
    dicom_file: Path
    contour_file: Path
    image_number: int


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
