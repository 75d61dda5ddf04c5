"""Synthetic phantoms: file trees of the three formats, geometry, contrast, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from prrmse.core.errors import PrrmseError
from prrmse.data import phantoms
from prrmse.data.anatomy import GROUPS, draw_anatomy, slice_depths
from prrmse.data.phantoms import inversion_times_ms, write_phantoms
from prrmse.data.settings import AcdcPhantomSettings, T1PhantomSettings
from prrmse.data.slice_geometry import fill_polygon, render_slice
from tests.data.settings_fixtures import phantom

SHAPE = [48, 40]
ACDC = {
    "n_patients": 3,
    "n_slices": 4,
    "shape": SHAPE,
    "spacing_mm": [1.37, 1.68],
    "slice_thickness_mm": 10.0,
}
RVSC = {
    "n_train": 2,
    "n_test1": 1,
    "n_slices": 3,
    "n_phases": 5,
    "shape": SHAPE,
    "spacing_mm": [1.4, 1.7],
    "slice_thickness_mm": 7.0,
}
T1 = {
    "n_patients": 3,
    "n_slices": 3,
    "n_ti": 7,
    "shape": SHAPE,
    "spacing_mm": [1.3, 1.6],
    "slice_thickness_mm": 8.0,
}
PARAMS = {"acdc": ACDC, "rvsc": RVSC, "t1": T1}
SETTINGS = {name: phantom(name, params) for name, params in PARAMS.items()}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _info(path: Path) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in path.read_text().splitlines())


def _contour(path: Path) -> np.ndarray:
    return np.array([[float(v) for v in line.split()] for line in path.read_text().splitlines()])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("phantoms")
    for name, params in SETTINGS.items():
        write_phantoms(name, params, 7, root / name)
    return {name: root / name for name in PARAMS}


def test_unknown_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PrrmseError, match="valid names: acdc, rvsc, t1"):
        write_phantoms("mnms", SETTINGS["acdc"], 0, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_parameter_is_refused() -> None:
    params = {k: v for k, v in ACDC.items() if k != "n_slices"}
    with pytest.raises(PrrmseError, match="missing key n_slices") as error:
        AcdcPhantomSettings.from_config(params, "config phantoms.acdc")
    assert error.value.where == "config phantoms.acdc"


def test_another_generator_s_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PrrmseError, match="needs AcdcPhantomSettings, got T1PhantomSettings"):
        write_phantoms("acdc", SETTINGS["t1"], 0, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_settings_round_trip_the_section() -> None:
    settings = SETTINGS["t1"]
    assert isinstance(settings, T1PhantomSettings)
    assert settings.shape == (48, 40) and settings.spacing_mm == (1.3, 1.6)
    assert settings.as_record() == T1


def test_acdc_tree_headers_and_labels(written: dict[str, Path]) -> None:
    training = written["acdc"] / "training"
    assert sorted(p.name for p in written["acdc"].iterdir()) == ["training"]
    assert sorted(p.name for p in training.iterdir()) == ["patient001", "patient002", "patient003"]
    apex_without_rv = 0
    for folder in sorted(training.iterdir()):
        info = _info(folder / "Info.cfg")
        assert list(info) == ["ED", "ES", "Group", "Height", "NbFrame", "Weight"]
        es, n_frames = int(info["ES"]), int(info["NbFrame"])
        assert info["ED"] == "1" and 8 <= es <= n_frames and info["Group"] in GROUPS
        frames = [f"{folder.name}_frame{f:02d}" for f in (1, es)]
        expected = {"Info.cfg"} | {f"{f}{s}.nii.gz" for f in frames for s in ("", "_gt")}
        assert {p.name for p in folder.iterdir()} == expected
        lv_voxels = []
        for frame in frames:
            image = nib.load(folder / f"{frame}.nii.gz")
            label = nib.load(folder / f"{frame}_gt.nii.gz")
            assert image.shape == label.shape == (*SHAPE, ACDC["n_slices"])
            assert image.get_data_dtype() == np.int16 and label.get_data_dtype() == np.uint8
            zooms = image.header.get_zooms()
            assert zooms == label.header.get_zooms() and zooms[2] == 10.0
            assert zooms[0] == zooms[1] and 1.37 <= zooms[0] <= 1.68
            assert np.allclose(image.affine, np.diag([*zooms, 1.0]))
            labels = np.asarray(label.dataobj)
            assert set(np.unique(labels)) <= {0, 1, 2, 3}
            # Slice 1 of 4 is mid-ventricular: every structure is there.
            assert set(np.unique(labels[:, :, 1])) == {0, 1, 2, 3}
            apex_without_rv += int(not np.any(labels[:, :, -1] == 1))
            lv_voxels.append(int(np.sum(labels == 3)))
            # bSSFP: blood pool brighter than myocardium.
            voxels = np.asarray(image.dataobj)
            assert voxels[labels == 3].mean() > 1.3 * voxels[labels == 2].mean()
        assert lv_voxels[1] < lv_voxels[0], "ES LV cavity must be smaller than ED"
    assert apex_without_rv >= 4


def test_rvsc_tree(written: dict[str, Path]) -> None:
    root = written["rvsc"]
    assert sorted(p.name for p in root.iterdir()) == ["Test1Set", "Test1SetContours", "TrainingSet"]
    assert sorted(p.name for p in (root / "TrainingSet").iterdir()) == ["patient01", "patient02"]
    assert [p.name for p in (root / "Test1Set").iterdir()] == ["patient03"]
    assert sorted(p.name for p in (root / "Test1Set" / "patient03").iterdir()) == [
        "P03dicom",
        "P03list.txt",
    ]
    assert [p.name for p in (root / "Test1SetContours").iterdir()] == ["P03contours-manual"]
    n_images = RVSC["n_slices"] * RVSC["n_phases"]
    for number, set_name in ((1, "TrainingSet"), (2, "TrainingSet"), (3, "Test1Set")):
        name = f"P{number:02d}"
        patient = root / set_name / f"patient{number:02d}"
        dicoms = sorted(p.name for p in (patient / f"{name}dicom").iterdir())
        assert dicoms == [f"{name}-{i:04d}.dcm" for i in range(1, n_images + 1)]
        contour_dir = (patient if number <= 2 else root / "Test1SetContours") / (
            f"{name}contours-manual"
        )
        listed = (patient / f"{name}list.txt").read_text().splitlines()
        assert listed and len(listed) % 2 == 0
        assert {p.name for p in contour_dir.iterdir()} == {line.split("\\")[-1] for line in listed}
        images = set()
        for i_line, o_line in zip(listed[::2], listed[1::2], strict=True):
            assert i_line.startswith(f".\\patient{number:02d}\\{name}contours-manual\\{name}-")
            assert i_line.endswith("-icontour-manual.txt")
            assert o_line == i_line.replace("-icontour-", "-ocontour-")
            images.add(int(i_line.split("\\")[-1].split("-")[1]))
        phases = {(i - 1) % RVSC["n_phases"] for i in images}
        assert 0 in phases and len(phases) == 2, "contours at ED and ES only"


def test_rvsc_dicom_and_contours(written: dict[str, Path]) -> None:
    patient = written["rvsc"] / "TrainingSet" / "patient01"
    spacings = set()
    for dicom in sorted((patient / "P01dicom").iterdir()):
        ds = pydicom.dcmread(dicom)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == pydicom.uid.MRImageStorage and ds.Modality == "MR"
        assert ds.PatientID == "P01" and (ds.Rows, ds.Columns) == tuple(SHAPE)
        assert ds.InstanceNumber == int(dicom.stem.split("-")[1])
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (
            16,
            12,
            11,
            0,
        )
        assert ds.SamplesPerPixel == 1 and ds.PhotometricInterpretation == "MONOCHROME2"
        assert float(ds.SliceThickness) == 7.0 and len(ds.ImagePositionPatient) == 3
        assert ds.SliceLocation is not None and len(ds.ImageOrientationPatient) == 6
        pixels = ds.pixel_array
        assert pixels.dtype == np.uint16 and pixels.shape == tuple(SHAPE) and pixels.max() <= 4095
        spacings.add(tuple(float(v) for v in ds.PixelSpacing))
    assert len(spacings) == 1
    row, col = spacings.pop()
    assert row == col and 1.4 <= row <= 1.7
    for icontour in sorted((patient / "P01contours-manual").glob("*-icontour-manual.txt")):
        points = _contour(icontour)
        outer = _contour(Path(str(icontour).replace("-icontour-", "-ocontour-")))
        for xy in (points, outer):
            assert np.all(xy >= 0) and np.all(xy[:, 0] < SHAPE[1]) and np.all(xy[:, 1] < SHAPE[0])
        assert all(len(v.split(".")[1]) == 2 for v in icontour.read_text().split())
        # x is the column: the filled i-contour is bright blood, the RV wall ring is dark.
        image = pydicom.dcmread(patient / "P01dicom" / (icontour.name[:8] + ".dcm")).pixel_array
        cavity = fill_polygon(points, tuple(SHAPE))
        ring = fill_polygon(outer, tuple(SHAPE)) & ~cavity
        assert image[cavity].mean() > 1.5 * image[ring].mean()


def test_filled_icontour_is_the_rv_cavity() -> None:
    absent_at_apex = 0
    for patient in range(20):
        rng = np.random.default_rng([3, patient])
        anatomy = draw_anatomy(rng, (64, 56), (1.3, 1.7))
        depths = slice_depths(5)
        for depth in depths:
            for contraction in (0.0, 0.6, 1.0):
                geometry = render_slice(anatomy, (64, 56), float(depth), contraction)
                cavity = geometry.labels == 1
                if geometry.rv_endo is None:
                    assert not cavity.any()
                    absent_at_apex += int(depth == depths[-1] and contraction == 0.0)
                    continue
                # The contour text round trip (2 decimals) rebuilds the same mask.
                text = phantoms._contour_text(geometry.rv_endo)
                parsed = np.array([[float(v) for v in ln.split()] for ln in text.splitlines()])
                assert np.array_equal(fill_polygon(parsed, (64, 56)), cavity)
    assert absent_at_apex >= 15


def test_t1_series(written: dict[str, Path]) -> None:
    root = written["t1"]
    expected = {"inversion_times.json"} | {
        f"patient{n:03d}{s}.nii.gz" for n in (1, 2, 3) for s in ("", "_gt")
    }
    assert {p.name for p in root.iterdir()} == expected
    times = inversion_times_ms(T1["n_ti"])
    assert json.loads((root / "inversion_times.json").read_text()) == times
    assert times[0] == 100.0 and times[-1] == 3500.0
    for n in (1, 2, 3):
        image = nib.load(root / f"patient{n:03d}.nii.gz")
        label = nib.load(root / f"patient{n:03d}_gt.nii.gz")
        assert image.shape == (*SHAPE, T1["n_slices"], T1["n_ti"])
        assert label.shape == (*SHAPE, T1["n_slices"])
        assert image.get_data_dtype() == np.float32 and label.get_data_dtype() == np.uint8
        zooms = image.header.get_zooms()
        assert zooms[2:] == (8.0, 1.0) and label.header.get_zooms() == zooms[:3]
        series, mask = image.get_fdata(), np.asarray(label.dataobj).astype(bool)
        assert set(np.unique(mask)) == {False, True}
        myocardium = series[mask].mean(axis=0)
        null = int(np.argmin(myocardium))
        assert 0 < null < T1["n_ti"] - 1, "myocardial signal nulls at a middle inversion time"
        assert myocardium[null] < 0.5 * min(myocardium[0], myocardium[-1])


@pytest.mark.parametrize("dataset", ["acdc", "rvsc", "t1"])
def test_same_seed_same_bytes(dataset: str, written: dict[str, Path], tmp_path: Path) -> None:
    write_phantoms(dataset, SETTINGS[dataset], 7, tmp_path / "again")
    write_phantoms(dataset, SETTINGS[dataset], 8, tmp_path / "other")
    first, again, other = (
        _files(written[dataset]),
        _files(tmp_path / "again"),
        _files(tmp_path / "other"),
    )
    assert first == again
    # Names may differ too (ACDC ES frame, RVSC contoured slices): compare the shared ones.
    shared = [name for name in first if name in other]
    differing = [name for name in shared if first[name] != other[name]]
    assert len(differing) >= len(shared) // 2 > 0


def test_patient_does_not_depend_on_patient_count(written: dict[str, Path], tmp_path: Path) -> None:
    write_phantoms("acdc", phantom("acdc", {**ACDC, "n_patients": 1}), 7, tmp_path / "one")
    alone = _files(tmp_path / "one")
    assert alone == {k: v for k, v in _files(written["acdc"]).items() if "patient001" in k}


def test_failure_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(polygon: np.ndarray) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(phantoms, "_contour_text", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_phantoms("rvsc", SETTINGS["rvsc"], 7, tmp_path / "rvsc")
    assert list(tmp_path.iterdir()) == []
