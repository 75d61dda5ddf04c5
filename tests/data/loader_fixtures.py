"""Tiny files in the three real on-disk formats, written into a test's tmp_path.

Pixel values encode where they came from (see `slice_pattern`), so a test can
tell which slice, phase or series a record carries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, MRImageStorage, generate_uid

from prrmse.core.errors import PrrmseError

ROWS, COLS = 20, 24


def slice_pattern(rows: int, cols: int, offset: float) -> np.ndarray:
    """An asymmetric ramp plus `offset`: distinct per row and column, so transposes show."""
    r, c = np.mgrid[0:rows, 0:cols]
    return (offset + r * 0.5 + c * 0.25).astype(np.float32)


def label_pattern(rows: int, cols: int, value: int) -> np.ndarray:
    """Background with a `value` block in the upper left, so the label is never empty."""
    label = np.zeros((rows, cols), dtype=np.uint8)
    label[2:8, 3:12] = value
    return label


def write_nifti(path: Path, data: np.ndarray, zooms: Sequence[float] = (1.5, 1.25, 10.0)) -> Path:
    """Write `data` with a diagonal affine of `zooms` (padded with 1 for extra axes)."""
    diag = list(zooms[:3]) + [1.0] * (3 - len(zooms[:3])) + [1.0]
    nib.save(nib.Nifti1Image(data, np.diag(diag)), path)
    return path


def write_acdc_patient(
    group_dir: Path,
    number: int,
    n_slices: int = 2,
    ed: int = 1,
    es: int = 3,
    zooms: Sequence[float] = (1.5, 1.25, 10.0),
) -> Path:
    """patientNNN/ with Info.cfg, ED and ES frames + _gt, and a 4d file the loader must ignore.

    Image value at slice k of phase ED is 1000*number + 100*0 + 10*k + ramp; labels
    are (k % 3) + 1 for ED and 3 - (k % 3) for ES.
    """
    pid = f"patient{number:03d}"
    folder = group_dir / pid
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(
        f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n"
    )
    for phase_number, (frame, label_of) in enumerate(
        [(ed, lambda k: k % 3 + 1), (es, lambda k: 3 - k % 3)]
    ):
        image = np.stack(
            [
                slice_pattern(ROWS, COLS, 1000 * number + 100 * phase_number + 10 * k)
                for k in range(n_slices)
            ],
            axis=2,
        )
        label = np.stack([label_pattern(ROWS, COLS, label_of(k)) for k in range(n_slices)], axis=2)
        write_nifti(folder / f"{pid}_frame{frame:02d}.nii.gz", image, zooms)
        write_nifti(folder / f"{pid}_frame{frame:02d}_gt.nii.gz", label, zooms)
    write_nifti(folder / f"{pid}_4d.nii.gz", np.zeros((ROWS, COLS, n_slices, 4), np.float32), zooms)
    return folder


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    instance_number: int,
    slice_location: float,
    spacing: tuple[float, float] = (1.4, 1.6),
    trigger_time: float | None = None,
) -> Path:
    """A valid single-frame MR image, Explicit VR Little Endian, uint16 pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientID = "anon"
    ds.InstanceNumber = instance_number
    ds.SliceLocation = slice_location
    ds.PixelSpacing = [spacing[0], spacing[1]]
    if trigger_time is not None:
        ds.TriggerTime = trigger_time
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_contour(path: Path, points: Sequence[tuple[float, float]]) -> Path:
    """One `x y` vertex per line, as the RVSC manual contours are written."""
    path.write_text("".join(f"{x:.2f} {y:.2f}\n" for x, y in points))
    return path


# A quadrilateral in the upper-left part of a 20x24 image: rows 2..6, columns 3..10.
SQUARE = [(3.0, 2.0), (10.0, 2.0), (10.0, 6.0), (3.0, 6.0)]


def write_rvsc_patient(
    set_dir: Path,
    number: int,
    locations: Sequence[float],
    contoured: Sequence[int],
    contours_dir: Path | None = None,
    trigger_times: Sequence[float] | None = None,
) -> Path:
    """patientNN/ with PNNdicom/ (image n at locations[n-1]) and i/o-contours of `contoured`.

    Pixel value of image n is 100*number + n + ramp. Contours go to
    patientNN/PNNcontours-manual unless `contours_dir` (the test-set layout,
    <set>Contours/) is given.
    """
    pnn = f"P{number:02d}"
    folder = set_dir / f"patient{number:02d}"
    dicom_dir = folder / f"{pnn}dicom"
    dicom_dir.mkdir(parents=True)
    for n, location in enumerate(locations, start=1):
        pixels = slice_pattern(ROWS, COLS, 100 * number + n).astype(np.uint16)
        trigger = trigger_times[n - 1] if trigger_times is not None else None
        write_dicom(dicom_dir / f"{pnn}-{n:04d}.dcm", pixels, n, location, trigger_time=trigger)
    contour_folder = (contours_dir or folder) / f"{pnn}contours-manual"
    contour_folder.mkdir(parents=True)
    # Written in reverse so directory order, where it follows creation, is not sorted.
    for n in sorted(contoured, reverse=True):
        write_contour(contour_folder / f"{pnn}-{n:04d}-ocontour-manual.txt", SQUARE)
        write_contour(contour_folder / f"{pnn}-{n:04d}-icontour-manual.txt", SQUARE)
    (folder / f"{pnn}list.txt").write_text(
        "".join(
            f".\\patient{number:02d}\\{pnn}contours-manual\\{pnn}-{n:04d}-icontour-manual.txt\r\n"
            for n in sorted(contoured, reverse=True)
        )
    )
    return folder


def rewrite_dicom(path: Path, compressed: bool = False, drop_pixels: bool = False) -> Path:
    """Damage a fixture DICOM: remove its pixels, or claim JPEG-LS with undecodable bytes."""
    ds = dcmread(path)
    if drop_pixels:
        del ds.PixelData
    if compressed:
        ds.file_meta.TransferSyntaxUID = JPEGLSLossless
        ds.PixelData = encapsulate([b"\xff\xd8 not really jpeg-ls" * 4])
    ds.save_as(path, enforce_file_format=True)
    return path


def write_singular_nifti(path: Path, data: np.ndarray) -> Path:
    """A NIfTI whose sform has a zero voxel size (nibabel refuses to build one from an affine)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(data.dtype)
    header.set_sform(np.diag([0.0, 1.0, 1.0, 1.0]), code=1)
    nib.save(nib.Nifti1Image(data, None, header=header), path)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to a fraction of its bytes, as an interrupted download would."""
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def expect_error(run: Callable[[], object], where: Path | str, *words: str) -> str:
    """Run, expect a one-line PrrmseError naming `where` and containing `words`."""
    with pytest.raises(PrrmseError) as info:
        run()
    message = str(info.value)
    assert info.value.where == str(where), message
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message
