import os

import numpy as np
import pytest

from prrmse.data.loaders import iter_slices
from prrmse.data.protocol import Protocol
from prrmse.data.rvsc import iter_rvsc
from tests.data.loader_fixtures import (
    COLS,
    ROWS,
    expect_error,
    rewrite_dicom,
    truncate,
    write_contour,
    write_rvsc_patient,
)

# Images 1-3 are phase 1 of slices at 10, -3 and 3.5 mm, images 4-6 a later phase.
LOCATIONS = [10.0, -3.0, 3.5, 10.0, -3.0, 3.5]
CONTOURED = [1, 4, 2, 5, 3]  # slice 3.5 mm has one contour only


@pytest.fixture
def rvsc_root(tmp_path):
    write_rvsc_patient(tmp_path / "TrainingSet", 3, LOCATIONS, [1, 4])
    write_rvsc_patient(tmp_path / "TrainingSet", 1, LOCATIONS, CONTOURED)
    return tmp_path


def _files(records):
    return [(r.phase, r.slice_index, r.image_file.name, r.label_file.name) for r in records]


def test_records_are_sorted_by_patient_phase_and_slice_location(rvsc_root):
    records = [r for r in iter_rvsc(rvsc_root) if r.patient == "patient01"]
    assert _files(records) == [
        ("ED", 0, "P01-0002.dcm", "P01-0002-icontour-manual.txt"),
        ("ED", 1, "P01-0003.dcm", "P01-0003-icontour-manual.txt"),
        ("ED", 2, "P01-0001.dcm", "P01-0001-icontour-manual.txt"),
        ("ES", 0, "P01-0005.dcm", "P01-0005-icontour-manual.txt"),
        ("ES", 2, "P01-0004.dcm", "P01-0004-icontour-manual.txt"),
    ]
    record = records[0]
    assert record.group == "TrainingSet" and record.series_index == 0
    assert record.spacing == (1.4, 1.6)
    assert record.image.shape == (ROWS, COLS) and record.image.dtype == np.float32
    assert record.label.shape == (ROWS, COLS) and record.label.dtype == np.int64
    # Fixture pixels: 100*patient + image number + 0.5*row + 0.25*col, stored as uint16.
    assert record.image[0, 0] == 102


def test_patients_in_name_order_not_creation_order(rvsc_root):
    records = list(iter_slices("rvsc", rvsc_root))
    assert [r.patient for r in records] == ["patient01"] * 5 + ["patient03"] * 2
    assert [(r.phase, r.slice_index) for r in records[5:]] == [("ED", 0), ("ES", 0)]


def test_contour_x_is_the_column_and_outline_is_filled(rvsc_root):
    label = next(iter_rvsc(rvsc_root)).label
    expected = np.zeros((ROWS, COLS), np.int64)
    expected[2:7, 3:11] = 1  # SQUARE: x 3..10 (columns), y 2..6 (rows), edges included
    np.testing.assert_array_equal(label, expected)


def test_contour_on_the_last_column_within_tolerance(tmp_path):
    folder = write_rvsc_patient(tmp_path / "TrainingSet", 1, [0.0], [1])
    write_contour(
        folder / "P01contours-manual" / "P01-0001-icontour-manual.txt",
        [(20.0, 1.0), (COLS - 0.5, 1.0), (COLS - 0.5, 15.0)],
    )
    label = next(iter_rvsc(tmp_path)).label
    assert label[1, COLS - 1] == 1 and label[15, COLS - 1] == 1 and label[15, 20] == 0


def test_test_set_contours_live_in_a_separate_folder(tmp_path):
    write_rvsc_patient(tmp_path / "TrainingSet", 1, [0.0], [1])
    write_rvsc_patient(
        tmp_path / "Test1Set", 17, [5.0, 5.0], [1, 2], contours_dir=tmp_path / "Test1SetContours"
    )
    # A test set downloaded without its contours yields nothing.
    (tmp_path / "Test2Set" / "patient33" / "P33dicom").mkdir(parents=True)
    records = list(iter_rvsc(tmp_path))
    assert [(r.patient, r.group, r.phase) for r in records] == [
        ("patient01", "TrainingSet", "ED"),
        ("patient17", "Test1Set", "ED"),
        ("patient17", "Test1Set", "ES"),
    ]
    assert records[2].label_file == (
        tmp_path / "Test1SetContours" / "P17contours-manual" / "P17-0002-icontour-manual.txt"
    )


def test_single_contour_phase_follows_trigger_time(tmp_path):
    write_rvsc_patient(
        tmp_path / "TrainingSet",
        1,
        LOCATIONS,
        CONTOURED,
        trigger_times=[0.0, 5.0, 290.0, 300.0, 305.0, 0.0],
    )
    records = list(iter_rvsc(tmp_path))
    assert [(r.phase, r.slice_index) for r in records] == [
        ("ED", 0),
        ("ED", 2),
        ("ES", 0),
        ("ES", 1),
        ("ES", 2),
    ]


def test_symlink_loop_does_not_hang(rvsc_root):
    os.symlink(rvsc_root, rvsc_root / "TrainingSet" / "loop")
    assert len(list(iter_rvsc(rvsc_root))) == 7


def test_missing_and_empty_root(tmp_path):
    expect_error(lambda: iter_rvsc(tmp_path / "nope"), tmp_path / "nope", "not found")
    expect_error(lambda: iter_rvsc(tmp_path), tmp_path, "no RVSC patients")


def test_patient_without_contours_in_a_contoured_set(rvsc_root):
    (rvsc_root / "TrainingSet" / "patient05" / "P05dicom").mkdir(parents=True)
    expect_error(
        lambda: iter_rvsc(rvsc_root), rvsc_root / "TrainingSet" / "patient05", "P05contours-manual"
    )


def _contour(root, n=2):
    return (
        root
        / "TrainingSet"
        / "patient01"
        / "P01contours-manual"
        / f"P01-{n:04d}-icontour-manual.txt"
    )


def _dicom(root, n=2):
    return root / "TrainingSet" / "patient01" / "P01dicom" / f"P01-{n:04d}.dcm"


def test_contour_without_its_dicom(rvsc_root):
    _dicom(rvsc_root).unlink()
    expect_error(lambda: list(iter_rvsc(rvsc_root)), _contour(rvsc_root), "without its DICOM")


@pytest.mark.parametrize(
    "text, words",
    [
        ("3 2\n10 2\nten 6\n", ["line 3"]),
        ("3 2\n10 2 7\n10 6\n", ["line 2"]),
        ("3 2\n10 2\n", ["2 points"]),
        ("", ["0 points"]),
        ("3 2\n24.6 2\n10 6\n", ["outside"]),  # x beyond the last column + 0.5
        ("3 2\n10 -0.6\n10 6\n", ["outside"]),
        ("3 2\n10 2\n10 19.6\n", ["outside"]),  # y beyond the last row + 0.5
    ],
)
def test_bad_contour(rvsc_root, text, words):
    _contour(rvsc_root).write_text(text)
    expect_error(lambda: list(iter_rvsc(rvsc_root)), _contour(rvsc_root), *words)


def test_third_contour_at_one_location(tmp_path):
    write_rvsc_patient(tmp_path / "TrainingSet", 1, [1.0, 1.0, 1.0], [1, 2, 3])
    expect_error(lambda: list(iter_rvsc(tmp_path)), _contour(tmp_path, 3), "third i-contour")


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda p: p.write_bytes(b"garbage" * 50), ["not a readable DICOM"]),
        (lambda p: truncate(p, 0.9), ["corrupt pixel data"]),
        (lambda p: truncate(p, 0.1), ["without pixel data", "truncated"]),
        (lambda p: rewrite_dicom(p, drop_pixels=True), ["without pixel data"]),
        (lambda p: rewrite_dicom(p, compressed=True), ["JPEG-LS"]),
    ],
)
def test_bad_dicom(rvsc_root, damage, words):
    damage(_dicom(rvsc_root))
    expect_error(lambda: list(iter_rvsc(rvsc_root)), _dicom(rvsc_root), *words)


def _three_sets(root):
    """TrainingSet with its contours, Test1Set and Test2Set with theirs in <set>Contours/."""
    write_rvsc_patient(root / "TrainingSet", 1, LOCATIONS[:2], [1])
    write_rvsc_patient(
        root / "Test1Set", 17, LOCATIONS[:2], [1], contours_dir=root / "Test1SetContours"
    )
    write_rvsc_patient(
        root / "Test2Set", 33, LOCATIONS[:2], [1], contours_dir=root / "Test2SetContours"
    )
    return root


def test_configured_sets_and_count(tmp_path):
    root = _three_sets(tmp_path)
    protocol = Protocol(
        sets=("TrainingSet", "Test1Set"), expected_patients=2, where="datasets.rvsc"
    )
    records = list(iter_slices("rvsc", root, protocol))
    assert sorted({(r.patient, r.group) for r in records}) == [
        ("patient01", "TrainingSet"),
        ("patient17", "Test1Set"),
    ]
    expect_error(
        lambda: iter_rvsc(root, Protocol(expected_patients=2, where="datasets.rvsc")),
        root,
        "3 patients with manual contours found",
        "datasets.rvsc.expected_patients is 2",
    )


def test_listed_set_without_contours_is_refused(tmp_path):
    root = _three_sets(tmp_path)
    (root / "Test2SetContours" / "P33contours-manual").rename(root / "elsewhere")
    expect_error(
        lambda: iter_rvsc(root, Protocol(sets=("Test2Set",))),
        root / "Test2Set",
        "no patients with manual contours",
    )
