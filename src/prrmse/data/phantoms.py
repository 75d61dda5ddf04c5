"""Synthetic cardiac MRI written in the on-disk formats of ACDC, RVSC and the T1 data.

The phantoms are the workflow's default raw data, read by the same loaders as
the real downloads. Geometry comes from `prrmse.data.anatomy` (the patient) and
`prrmse.data.slice_geometry` (each slice); this module adds each dataset's
contrast (bSSFP cine for ACDC and RVSC, an inversion-recovery magnitude series for
T1), a smooth bias field, partial-volume blur and Rician noise, and writes the files.
Same seed and params give the same bytes: every patient draws from its own generator
seeded by (seed, dataset, patient), gzip headers carry no time stamp and DICOM UIDs are
derived from the seed.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from scipy.ndimage import gaussian_filter

from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path
from prrmse.data.anatomy import PatientAnatomy, contraction_at, draw_anatomy, slice_depths
from prrmse.data.settings import (
    AcdcPhantomSettings,
    PhantomParams,
    RvscPhantomSettings,
    T1PhantomSettings,
)
from prrmse.data.slice_geometry import SliceGeometry, Tissue, render_slice

# bSSFP signal per tissue (blood bright, myocardium dark, lungs and air dark), by Tissue code.
_BSSFP = np.array([0.0, 0.32, 0.85, 0.05, 0.28, 1.0, 0.95, 0.22, 0.24])
# Native 1.5 T T1 (ms) per tissue, by Tissue code. The series recovers towards the bSSFP
# readout's signal (_BSSFP), as MOLLI-type T1-mapping images do, not towards proton
# density: with proton density, blood and myocardium were equal at the longest TI and
# the demo's PSPNet reached only MYO 0.70-0.71 (this contrast: 0.76; with the heart at
# true size on a 96 x 96 grid too: 0.79-0.80; seeds 1-3).
_T1_MS = np.array([1.0, 900.0, 300.0, 1200.0, 600.0, 1600.0, 1600.0, 1000.0, 1000.0])
_PARTIAL_VOLUME_SIGMA_PX = 0.7
_GZIP_LEVEL = 1  # noisy voxels barely compress better at higher levels, only slower


def _patient_rng(seed: int, dataset: str, patient: int, stream: int) -> np.random.Generator:
    """Independent generator per patient, so a patient never depends on the patient count."""
    return np.random.default_rng([seed % 2**63, zlib.crc32(dataset.encode()), patient, stream])


def _bias_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth multiplicative coil shading: exp of a random quadratic polynomial."""
    y = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :]
    c = rng.normal(0.0, [0.25, 0.25, 0.1, 0.15, 0.15])
    return np.exp(c[0] * x + c[1] * y + c[2] * x * y + c[3] * x**2 + c[4] * y**2)


def _rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of a real signal plus complex Gaussian noise."""
    real = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.hypot(real, imag)


def _blur_in_plane(images: np.ndarray, plane_axes: tuple[int, int]) -> np.ndarray:
    sigma = [_PARTIAL_VOLUME_SIGMA_PX if ax in plane_axes else 0.0 for ax in range(images.ndim)]
    return gaussian_filter(images, sigma=sigma)


def _bssfp_images(rng: np.random.Generator, tissue: np.ndarray, blood_level: float) -> np.ndarray:
    """bSSFP magnitude images of a stack of tissue maps (..., rows, cols), one patient."""
    lut = (_BSSFP * rng.uniform(0.9, 1.1, _BSSFP.size)).astype(np.float32)
    lut[Tissue.AIR] = 0.0
    bias = _bias_field(rng, tissue.shape[-2:])
    clean = _blur_in_plane(lut[tissue], (tissue.ndim - 2, tissue.ndim - 1)) * bias
    return _rician(rng, clean * blood_level, blood_level * rng.uniform(0.02, 0.05))


def _nifti_bytes(data: np.ndarray, zooms: tuple[float, ...]) -> bytes:
    """Gzipped NIfTI-1 with affine diag(zooms); mtime 0 so the bytes depend on data only."""
    image = nib.Nifti1Image(data, np.diag([*zooms[:3], 1.0]))
    image.header.set_zooms(zooms)
    image.header.set_xyzt_units("mm", "sec")
    return gzip.compress(image.to_bytes(), compresslevel=_GZIP_LEVEL, mtime=0)


def _geometry(
    a: PatientAnatomy, shape: tuple[int, int], depths: np.ndarray, contraction: float
) -> list[SliceGeometry]:
    """The slices of one phase, base to apex."""
    return [render_slice(a, shape, float(d), contraction) for d in depths]


def _shape(params: PhantomParams) -> tuple[int, int]:
    return int(params.shape[0]), int(params.shape[1])


def _write_acdc(params: AcdcPhantomSettings, seed: int, out: Path) -> None:
    """ACDC training layout: Info.cfg plus ED/ES volumes and labels per patient.

    The 4D cine (patientNNN_4d.nii.gz) is not written: no loader reads it.
    """
    shape, depths = _shape(params), slice_depths(int(params.n_slices))
    thickness = float(params.slice_thickness_mm)
    for number in range(1, int(params.n_patients) + 1):
        rng = _patient_rng(seed, "acdc", number, 0)
        anatomy = draw_anatomy(rng, shape, params.spacing_mm)
        n_frames = int(rng.integers(12, 36))
        es = int(np.clip(round(n_frames * rng.uniform(0.3, 0.45)) + 1, 8, n_frames))
        height, weight = rng.uniform(150, 195), rng.uniform(50, 110)
        folder = out / "training" / f"patient{number:03d}"
        folder.mkdir(parents=True)
        (folder / "Info.cfg").write_text(
            f"ED: 1\nES: {es}\nGroup: {anatomy.group}\nHeight: {height:.1f}\n"
            f"NbFrame: {n_frames}\nWeight: {weight:.1f}\n"
        )
        slices = [_geometry(anatomy, shape, depths, c) for c in (0.0, 1.0)]
        tissue = np.stack([[g.tissue for g in phase] for phase in slices])
        blood = rng.uniform(200, 600)
        images = _bssfp_images(_patient_rng(seed, "acdc", number, 1), tissue, blood)
        zooms = (anatomy.spacing_mm, anatomy.spacing_mm, thickness)
        for frame, phase, image in zip((1, es), slices, images, strict=True):
            stem = folder / f"patient{number:03d}_frame{frame:02d}"
            volume = np.rint(image).clip(0, 32767).astype(np.int16).transpose(1, 2, 0)
            labels = np.stack([g.labels for g in phase], axis=-1)
            Path(f"{stem}.nii.gz").write_bytes(_nifti_bytes(volume, zooms))
            Path(f"{stem}_gt.nii.gz").write_bytes(_nifti_bytes(labels, zooms))


def _dicom_dataset(pixels: np.ndarray, uid_source: list[str], tags: dict[str, Any]) -> Dataset:
    """MR Image Storage dataset, 12-bit unsigned pixels, UIDs derived from `uid_source`."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[*uid_source, "image"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[*uid_source[:-1], "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[*uid_source[:-1], "series"])
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[*uid_source[:-1], "frame"])
    ds.Modality = "MR"
    ds.Manufacturer = "prrmse synthetic phantom"
    ds.MagneticFieldStrength = 1.5
    ds.ScanningSequence = "GR"
    ds.SeriesDescription = "synthetic SSFP cine short axis"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


def _contour_text(polygon: np.ndarray) -> str:
    return "".join(f"{x:.2f} {y:.2f}\n" for x, y in polygon)


def _write_rvsc_patient(
    params: RvscPhantomSettings, seed: int, number: int, set_dir: Path, contour_dir: Path
) -> None:
    """One RVSC patient: every phase of every slice as DICOM, ED and ES contours."""
    shape, depths = _shape(params), slice_depths(int(params.n_slices))
    n_phases, thickness = int(params.n_phases), float(params.slice_thickness_mm)
    rng = _patient_rng(seed, "rvsc", number, 0)
    anatomy = draw_anatomy(rng, shape, params.spacing_mm)
    es = int(np.clip(round(n_phases * rng.uniform(0.35, 0.45)), 1, n_phases - 1))
    blood = rng.uniform(1200, 2000)
    rr_ms = rng.uniform(700, 1100)
    phases = [contraction_at(p / n_phases, es / n_phases) for p in range(n_phases)]
    # geometry[phase][slice]; images indexed the same way.
    geometry = [_geometry(anatomy, shape, depths, c) for c in phases]
    tissue = np.stack([[g.tissue for g in per_phase] for per_phase in geometry])
    images = _bssfp_images(_patient_rng(seed, "rvsc", number, 1), tissue, blood)
    pixels = np.rint(images).clip(0, 4095).astype(np.uint16)

    name = f"P{number:02d}"
    patient_dir = set_dir / f"patient{number:02d}"
    (patient_dir / f"{name}dicom").mkdir(parents=True)
    contour_dir.mkdir(parents=True)
    listed: list[str] = []
    spacing = anatomy.spacing_mm
    for s in range(len(depths)):
        location = s * thickness
        for p in range(n_phases):
            image_number = s * n_phases + p + 1
            stem = f"{name}-{image_number:04d}"
            tags = {
                "PatientID": name,
                "PatientName": f"Phantom^{name}",
                "SeriesNumber": 1,
                "InstanceNumber": image_number,
                "PixelSpacing": [spacing, spacing],
                "SliceThickness": thickness,
                "SliceLocation": location,
                "ImagePositionPatient": [0.0, 0.0, location],
                "TriggerTime": round(rr_ms * p / n_phases, 1),
            }
            uid_source = [str(seed), "rvsc", name, stem]
            ds = _dicom_dataset(pixels[p, s], uid_source, tags)
            pydicom.dcmwrite(
                patient_dir / f"{name}dicom" / f"{stem}.dcm", ds, enforce_file_format=True
            )
            slice_geometry = geometry[p][s]
            if p not in (0, es) or slice_geometry.rv_endo is None:
                continue
            for kind, polygon in (("i", slice_geometry.rv_endo), ("o", slice_geometry.rv_epi)):
                contour_name = f"{stem}-{kind}contour-manual.txt"
                (contour_dir / contour_name).write_text(_contour_text(polygon))
                listed.append(f".\\patient{number:02d}\\{name}contours-manual\\{contour_name}")
    (patient_dir / f"{name}list.txt").write_text("".join(f"{line}\n" for line in listed))


def _write_rvsc(params: RvscPhantomSettings, seed: int, out: Path) -> None:
    """RVSC layout: TrainingSet with contours beside the DICOMs, Test1Set with them apart."""
    n_train, n_test = int(params.n_train), int(params.n_test1)
    for number in range(1, n_train + n_test + 1):
        name = f"P{number:02d}contours-manual"
        if number <= n_train:
            set_dir = out / "TrainingSet"
            contour_dir = set_dir / f"patient{number:02d}" / name
        else:
            set_dir, contour_dir = out / "Test1Set", out / "Test1SetContours" / name
        _write_rvsc_patient(params, seed, number, set_dir, contour_dir)


def inversion_times_ms(n_ti: int) -> list[float]:
    """Inversion times spread geometrically over 100..3500 ms, denser where signals null."""
    return [float(t) for t in np.rint(np.geomspace(100.0, 3500.0, n_ti))]


def _write_t1(params: T1PhantomSettings, seed: int, out: Path) -> None:
    """Paired NIfTI: patientNNN.nii.gz (rows, cols, slices, TI) + patientNNN_gt.nii.gz."""
    shape, depths = _shape(params), slice_depths(int(params.n_slices))
    thickness = float(params.slice_thickness_mm)
    times = np.asarray(inversion_times_ms(int(params.n_ti)), dtype=np.float32)
    (out / "inversion_times.json").write_text(json.dumps(times.tolist()) + "\n")
    for number in range(1, int(params.n_patients) + 1):
        rng = _patient_rng(seed, "t1", number, 0)
        anatomy = draw_anatomy(rng, shape, params.spacing_mm)
        # T1 maps are acquired in mid-diastole: little contraction.
        geometry = _geometry(anatomy, shape, depths, float(rng.uniform(0.0, 0.15)))
        tissue = np.stack([g.tissue for g in geometry])
        noise_rng = _patient_rng(seed, "t1", number, 1)
        t1 = _T1_MS * noise_rng.uniform(0.93, 1.07, _T1_MS.size)
        m0 = _BSSFP * noise_rng.uniform(0.9, 1.1, _BSSFP.size)
        # Signed inversion recovery per tissue and TI; the magnitude is taken after noise.
        lut = (m0[:, None] * (1 - 2 * np.exp(-times[None, :] / t1[:, None]))).astype(np.float32)
        clean = _blur_in_plane(lut[tissue], (1, 2))
        scale = noise_rng.uniform(300, 800)
        bias = _bias_field(noise_rng, shape)[None, :, :, None]
        series = _rician(noise_rng, clean * bias * scale, scale * noise_rng.uniform(0.01, 0.03))
        zooms = (anatomy.spacing_mm, anatomy.spacing_mm, thickness)
        myocardium = (tissue == Tissue.MYOCARDIUM).astype(np.uint8).transpose(1, 2, 0)
        stem = out / f"patient{number:03d}"
        Path(f"{stem}.nii.gz").write_bytes(
            _nifti_bytes(series.astype(np.float32).transpose(1, 2, 0, 3), (*zooms, 1.0))
        )
        Path(f"{stem}_gt.nii.gz").write_bytes(_nifti_bytes(myocardium, zooms))


_WRITERS: dict[str, tuple[type[PhantomParams], Callable[[Any, int, Path], None]]] = {
    "acdc": (AcdcPhantomSettings, _write_acdc),
    "rvsc": (RvscPhantomSettings, _write_rvsc),
    "t1": (T1PhantomSettings, _write_t1),
}


def write_phantoms(dataset: str, params: PhantomParams, seed: int, out: Path) -> None:
    """Write the phantoms of `dataset` (acdc, rvsc or t1) under `out`, all or nothing.

    `params` are the settings of the config section `phantoms.<dataset>`
    (`prrmse.data.settings`, e.g. `AcdcPhantomSettings` for acdc).
    """
    if dataset not in _WRITERS:
        raise PrrmseError(
            "phantoms", f"unknown dataset {dataset!r}; valid names: {', '.join(_WRITERS)}"
        )
    kind, writer = _WRITERS[dataset]
    if not isinstance(params, kind):
        raise PrrmseError(
            f"phantoms.{dataset}", f"needs {kind.__name__}, got {type(params).__name__}"
        )
    with atomic_path(Path(out)) as temp:
        temp.mkdir()
        writer(params, seed, temp)
