import os

import numpy as np
import pytest

from prrmse.data.acdc import iter_acdc
from prrmse.data.loaders import iter_slices
from prrmse.data.protocol import Protocol, protocol_from_config
from tests.data.loader_fixtures import (
    COLS,
    ROWS,
    expect_error,
    truncate,
    write_acdc_patient,
    write_nifti,
    write_singular_nifti,
)
from tests.data.settings_fixtures import dataset as dataset_of


@pytest.fixture
def acdc_root(tmp_path):
    root = tmp_path / "database"
    write_acdc_patient(root / "training", 2, ed=1, es=12)
    write_acdc_patient(root / "training", 1, ed=1, es=3, zooms=(1.5, 1.25, 10.0))
    return root


def test_records_cover_every_slice_of_ed_and_es_in_order(acdc_root):
    records = list(iter_acdc(acdc_root))
    keys = [(r.patient, r.phase, r.slice_index) for r in records]
    assert keys == [
        (p, ph, k) for p in ("patient001", "patient002") for ph in ("ED", "ES") for k in (0, 1)
    ]
    first = records[0]
    assert first.group == "training" and first.series_index == 0
    assert first.image.shape == (ROWS, COLS) and first.image.dtype == np.float32
    assert first.label.shape == (ROWS, COLS) and first.label.dtype == np.int64
    assert first.spacing == (1.5, 1.25)
    assert first.image_file.name == "patient001_frame01.nii.gz"
    assert first.label_file.name == "patient001_frame01_gt.nii.gz"
    assert records[2].image_file.name == "patient001_frame03.nii.gz"
    assert records[6].image_file.name == "patient002_frame12.nii.gz"


def test_pixels_are_rows_by_columns_of_the_right_slice_and_phase(acdc_root):
    records = list(iter_acdc(acdc_root))
    es_slice1 = records[3]
    # Fixture value: 1000*patient + 100*(ES) + 10*slice + 0.5*row + 0.25*col.
    assert es_slice1.image[0, 0] == pytest.approx(1000 + 100 + 10)
    assert es_slice1.image[1, 0] - es_slice1.image[0, 0] == pytest.approx(0.5)
    assert es_slice1.image[0, 1] - es_slice1.image[0, 0] == pytest.approx(0.25)
    assert set(np.unique(records[0].label)) == {0, 1}
    assert set(np.unique(records[1].label)) == {0, 2}
    assert set(np.unique(es_slice1.label)) == {0, 2}


def test_nested_testing_layout_and_dispatch(tmp_path):
    write_acdc_patient(tmp_path / "testing" / "testing", 101, n_slices=3)
    write_acdc_patient(tmp_path / "training", 7, n_slices=1)
    records = list(iter_slices("acdc", tmp_path))
    assert [r.patient for r in records] == ["patient007"] * 2 + ["patient101"] * 6
    assert records[-1].group == "testing"


def test_root_may_be_one_patient_folder(tmp_path):
    folder = write_acdc_patient(tmp_path / "training", 4)
    assert {r.patient for r in iter_acdc(folder)} == {"patient004"}


def test_symlink_loop_does_not_hang(tmp_path):
    write_acdc_patient(tmp_path / "training", 1)
    os.symlink(tmp_path, tmp_path / "training" / "loop")
    assert len(list(iter_acdc(tmp_path))) == 4


def test_missing_and_empty_root(tmp_path):
    expect_error(lambda: iter_acdc(tmp_path / "nope"), tmp_path / "nope", "not found")
    expect_error(lambda: iter_acdc(tmp_path), tmp_path, "no patientNNN")


def test_patient_found_twice_is_refused(tmp_path):
    write_acdc_patient(tmp_path / "a", 1)
    write_acdc_patient(tmp_path / "b", 1)
    expect_error(lambda: iter_acdc(tmp_path), tmp_path / "b" / "patient001", "also found")


@pytest.mark.parametrize(
    "text, words",
    [
        ("ES: 3\nGroup: DCM\n", ["ED"]),
        ("ED: 1\n", ["ES"]),
        ("ED: one\nES: 3\n", ["ED", "not an integer"]),
        ("ED: 1.5\nES: 3\n", ["ED", "not an integer"]),
    ],
)
def test_bad_info_cfg(tmp_path, text, words):
    folder = write_acdc_patient(tmp_path / "training", 1)
    (folder / "Info.cfg").write_text(text)
    expect_error(lambda: list(iter_acdc(tmp_path)), folder / "Info.cfg", *words)


def test_missing_info_cfg(tmp_path):
    folder = write_acdc_patient(tmp_path / "training", 1)
    (folder / "Info.cfg").unlink()
    expect_error(lambda: list(iter_acdc(tmp_path)), folder / "Info.cfg", "not found")


@pytest.mark.parametrize("name", ["patient001_frame03.nii.gz", "patient001_frame03_gt.nii.gz"])
def test_missing_frame_file(tmp_path, name):
    folder = write_acdc_patient(tmp_path / "training", 1)
    (folder / name).unlink()
    expect_error(lambda: list(iter_acdc(tmp_path)), folder / name, "ES", "not found")


def test_frame_named_by_info_cfg_but_absent(tmp_path):
    folder = write_acdc_patient(tmp_path / "training", 1)
    (folder / "Info.cfg").write_text("ED: 1\nES: 9\n")
    expect_error(lambda: list(iter_acdc(tmp_path)), folder / "patient001_frame09.nii.gz", "frame 9")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_nifti(tmp_path, damage):
    folder = write_acdc_patient(tmp_path / "training", 1)
    path = folder / "patient001_frame01_gt.nii.gz"
    if damage == "garbage":
        path.write_bytes(b"not a nifti file" * 20)
    else:
        truncate(path, 0.6)
    expect_error(lambda: list(iter_acdc(tmp_path)), path, "cannot read NIfTI")


def test_shape_mismatch(tmp_path):
    folder = write_acdc_patient(tmp_path / "training", 1)
    path = folder / "patient001_frame01_gt.nii.gz"
    write_nifti(path, np.zeros((ROWS, COLS, 3), np.uint8))
    expect_error(lambda: list(iter_acdc(tmp_path)), path, "does not match")


def test_nan_in_image(tmp_path):
    folder = write_acdc_patient(tmp_path / "training", 1)
    path = folder / "patient001_frame03.nii.gz"
    data = np.ones((ROWS, COLS, 2), np.float32)
    data[3, 4, 1] = np.inf
    write_nifti(path, data)
    expect_error(lambda: list(iter_acdc(tmp_path)), path, "NaN or Inf")


def test_singular_affine(tmp_path):
    folder = write_acdc_patient(tmp_path / "training", 1)
    path = folder / "patient001_frame01.nii.gz"
    write_singular_nifti(path, np.ones((ROWS, COLS, 2), np.float32))
    expect_error(lambda: list(iter_acdc(tmp_path)), path, "singular affine")


# ---------------------------------------------------------------- the protocol: sets and count


@pytest.fixture
def database(tmp_path):
    """ACDC's current release: database/training/patient001.. and database/testing/patient101.."""
    root = tmp_path / "database"
    for number in (1, 2, 3):
        write_acdc_patient(root / "training", number, n_slices=1)
    for number in (101, 102):
        write_acdc_patient(root / "testing", number, n_slices=1)
    (root / "MANDATORY_CITATION.md").write_text("cite\n")
    return root


def _patients(records):
    return sorted({r.patient for r in records})


def test_configured_sets_are_the_only_ones_read(database):
    training = Protocol(sets=("training",), expected_patients=3, where="datasets.acdc")
    assert _patients(iter_slices("acdc", database, training)) == [
        "patient001",
        "patient002",
        "patient003",
    ]
    both = Protocol(sets=("training", "testing"), expected_patients=5)
    assert len(_patients(iter_acdc(database, both))) == 5
    # without sets the whole root is searched: the trap the protocol keys close
    assert len(_patients(iter_acdc(database))) == 5


def test_set_folder_is_searched_recursively(tmp_path):
    write_acdc_patient(tmp_path / "testing" / "testing", 101, n_slices=1)
    write_acdc_patient(tmp_path / "training", 1, n_slices=1)
    records = list(iter_acdc(tmp_path, Protocol(sets=("testing",))))
    assert _patients(records) == ["patient101"] and records[0].group == "testing"


@pytest.mark.parametrize("expected", [2, 100])
def test_patient_count_other_than_expected_names_the_root(database, expected):
    protocol = Protocol(sets=("training",), expected_patients=expected, where="datasets.acdc")
    message = expect_error(
        lambda: iter_acdc(database, protocol),
        database,
        "3 patientNNN folders found in training",
        f"datasets.acdc.expected_patients is {expected}",
    )
    assert "testing" not in message


def test_whole_database_against_the_training_count_is_refused(database):
    protocol = Protocol(expected_patients=3, where="datasets.acdc")
    expect_error(lambda: iter_acdc(database, protocol), database, "5 patientNNN folders found")


def test_missing_or_empty_set_folder(database):
    expect_error(
        lambda: iter_acdc(database, Protocol(sets=("training", "validation"))),
        database / "validation",
        "set folder 'validation' not found",
        "testing, training",
    )
    (database / "empty").mkdir()
    expect_error(
        lambda: iter_acdc(database, Protocol(sets=("empty",))),
        database / "empty",
        "no patientNNN folders in this set folder",
    )


def test_patient_id_pattern_does_not_apply_to_acdc(database):
    protocol = protocol_from_config("acdc", dataset_of({"patient_id": "patient(\\d+)"}))
    expect_error(
        lambda: iter_slices("acdc", database, protocol),
        "config datasets.acdc.patient_id",
        "paired NIfTI only",
    )
