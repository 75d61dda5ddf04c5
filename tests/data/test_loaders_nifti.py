import os

import numpy as np
import pytest

from prrmse.data.loaders import iter_slices
from prrmse.data.nifti_pairs import iter_nifti_pairs
from prrmse.data.prepare import assign_splits
from prrmse.data.protocol import Protocol, natural_sorted, protocol_from_config
from tests.data.loader_fixtures import (
    COLS,
    ROWS,
    expect_error,
    label_pattern,
    slice_pattern,
    truncate,
    write_nifti,
    write_singular_nifti,
)
from tests.data.settings_fixtures import dataset as dataset_of
from tests.data.settings_fixtures import split as split_of


def _series(n_slices, n_series):
    """Image (H,W,S,T) whose pixel (0,0) is 10*slice + series."""
    return np.stack(
        [
            np.stack([slice_pattern(ROWS, COLS, 10 * s + t) for t in range(n_series)], axis=-1)
            for s in range(n_slices)
        ],
        axis=2,
    )


def _labels(n_slices):
    return np.stack([label_pattern(ROWS, COLS, s + 1) for s in range(n_slices)], axis=2)


def test_side_by_side_pairs_2d_and_3d(tmp_path):
    write_nifti(tmp_path / "b.nii.gz", _series(2, 1)[..., 0], zooms=(1.2, 0.9, 8.0))
    write_nifti(tmp_path / "b_gt.nii.gz", _labels(2))
    sub = tmp_path / "more"
    sub.mkdir()
    write_nifti(sub / "a.nii.gz", slice_pattern(ROWS, COLS, 7.0), zooms=(2.0, 1.0))
    write_nifti(sub / "a_gt.nii.gz", label_pattern(ROWS, COLS, 2))
    write_nifti(sub / "unlabelled.nii.gz", slice_pattern(ROWS, COLS, 0.0))
    records = list(iter_slices("nifti_pairs", tmp_path))
    assert [(r.patient, r.slice_index, r.series_index) for r in records] == [
        ("a", 0, 0),
        ("b", 0, 0),
        ("b", 1, 0),
    ]
    a, _, b1 = records
    assert a.group == "" and a.phase == "" and a.spacing == (2.0, 1.0)
    assert a.image[0, 0] == 7.0 and a.image[0, 1] == 7.25 and a.image[1, 0] == 7.5
    assert a.image.dtype == np.float32 and a.label.dtype == np.int64
    assert b1.image.shape == (ROWS, COLS) and b1.image[0, 0] == 10.0
    assert set(np.unique(b1.label)) == {0, 2} and b1.spacing == (1.2, 0.9)
    assert b1.image_file == tmp_path / "b.nii.gz" and b1.label_file == tmp_path / "b_gt.nii.gz"


def test_nnunet_layout_with_4d_series_sharing_the_slice_mask(tmp_path):
    for images, labels, case in [
        ("imagesTr", "labelsTr", "T1_002"),
        ("imagesTs", "labelsTs", "T1_001"),
    ]:
        (tmp_path / images).mkdir()
        (tmp_path / labels).mkdir()
        write_nifti(tmp_path / images / f"{case}_0000.nii.gz", _series(2, 3))
        write_nifti(tmp_path / labels / f"{case}.nii.gz", _labels(2))
    records = list(iter_nifti_pairs(tmp_path))
    assert len(records) == 12
    first = records[:6]
    assert [(r.patient, r.slice_index, r.series_index) for r in first] == [
        ("T1_001", s, t) for s in range(2) for t in range(3)
    ]
    assert [r.image[0, 0] for r in first] == [0, 1, 2, 10, 11, 12]
    assert all(set(np.unique(r.label)) == {0, r.slice_index + 1} for r in records)
    assert first[0].image_file.name == "T1_001_0000.nii.gz"
    assert first[0].label_file == tmp_path / "labelsTs" / "T1_001.nii.gz"


def test_one_slice_series_with_2d_label(tmp_path):
    write_nifti(tmp_path / "c.nii.gz", _series(1, 4)[:, :, 0, :])
    write_nifti(tmp_path / "c_gt.nii.gz", label_pattern(ROWS, COLS, 2))
    records = list(iter_nifti_pairs(tmp_path))
    assert [(r.slice_index, r.series_index, r.image[0, 0]) for r in records] == [
        (0, t, t) for t in range(4)
    ]


def test_symlink_loop_does_not_hang(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", slice_pattern(ROWS, COLS, 0.0))
    write_nifti(tmp_path / "a_gt.nii.gz", label_pattern(ROWS, COLS, 1))
    os.symlink(tmp_path, tmp_path / "loop")
    assert len(list(iter_nifti_pairs(tmp_path))) == 1


def test_missing_and_empty_root(tmp_path):
    expect_error(lambda: iter_nifti_pairs(tmp_path / "nope"), tmp_path / "nope", "not found")
    write_nifti(tmp_path / "unlabelled.nii.gz", slice_pattern(ROWS, COLS, 0.0))
    expect_error(lambda: iter_nifti_pairs(tmp_path), tmp_path, "no image/label pairs")


def test_label_without_image(tmp_path):
    write_nifti(tmp_path / "a_gt.nii.gz", label_pattern(ROWS, COLS, 1))
    (tmp_path / "labelsTr").mkdir()
    expect_error(lambda: iter_nifti_pairs(tmp_path), tmp_path / "a_gt.nii.gz", "without its image")
    (tmp_path / "a_gt.nii.gz").unlink()
    write_nifti(tmp_path / "labelsTr" / "x.nii.gz", label_pattern(ROWS, COLS, 1))
    expect_error(
        lambda: iter_nifti_pairs(tmp_path),
        tmp_path / "labelsTr" / "x.nii.gz",
        "imagesTr/x_0000.nii.gz",
    )


def test_duplicate_case_names(tmp_path):
    for folder in (tmp_path / "a", tmp_path / "b"):
        folder.mkdir()
        write_nifti(folder / "c.nii.gz", slice_pattern(ROWS, COLS, 0.0))
        write_nifti(folder / "c_gt.nii.gz", label_pattern(ROWS, COLS, 1))
    expect_error(
        lambda: iter_nifti_pairs(tmp_path), tmp_path / "b" / "c_gt.nii.gz", "also labelled"
    )


@pytest.mark.parametrize(
    "image, label",
    [
        (_series(2, 1)[..., 0], _labels(3)),  # slices differ
        (_series(2, 3), label_pattern(ROWS, COLS, 1)),  # 4D image needs a 3D label
        (slice_pattern(ROWS, COLS, 0.0), label_pattern(ROWS, COLS + 1, 1)),
        (_series(2, 3), _series(2, 3).astype(np.uint8)),  # labels are at most 3D
    ],
)
def test_shape_mismatch(tmp_path, image, label):
    write_nifti(tmp_path / "c.nii.gz", image)
    write_nifti(tmp_path / "c_gt.nii.gz", label)
    expect_error(lambda: list(iter_nifti_pairs(tmp_path)), tmp_path / "c_gt.nii.gz", "shape")


def test_nan_in_image(tmp_path):
    image = _series(2, 3)
    image[0, 0, 1, 2] = np.nan
    write_nifti(tmp_path / "c.nii.gz", image)
    write_nifti(tmp_path / "c_gt.nii.gz", _labels(2))
    expect_error(lambda: list(iter_nifti_pairs(tmp_path)), tmp_path / "c.nii.gz", "NaN or Inf")


def test_singular_affine(tmp_path):
    write_singular_nifti(tmp_path / "c.nii.gz", _series(2, 1)[..., 0])
    write_nifti(tmp_path / "c_gt.nii.gz", _labels(2))
    expect_error(lambda: list(iter_nifti_pairs(tmp_path)), tmp_path / "c.nii.gz", "singular")


def test_truncated_file(tmp_path):
    write_nifti(tmp_path / "c.nii.gz", _series(2, 3))
    write_nifti(tmp_path / "c_gt.nii.gz", _labels(2))
    truncate(tmp_path / "c.nii.gz", 0.7)
    expect_error(lambda: list(iter_nifti_pairs(tmp_path)), tmp_path / "c.nii.gz", "cannot read")


def test_unknown_format_lists_the_valid_ones(tmp_path):
    message = expect_error(lambda: iter_slices("dicom", tmp_path), "format", "'dicom'")
    assert "acdc, rvsc, nifti_pairs" in message


# ---------------------------------------------------------------- the protocol: patient IDs and order


def _pair(folder, case, offset=0.0):
    folder.mkdir(parents=True, exist_ok=True)
    write_nifti(folder / f"{case}.nii.gz", slice_pattern(ROWS, COLS, offset))
    write_nifti(folder / f"{case}_gt.nii.gz", label_pattern(ROWS, COLS, 1))


def _first_last(patients, n_train, n_val, order="natural"):
    split = split_of(method="first_last", n_train=n_train, n_val=n_val, order=order)
    chosen = assign_splits(dict.fromkeys(patients, ""), split, "config datasets.t1.split")
    return [p for p in chosen if chosen[p] == "train"], [p for p in chosen if chosen[p] == "val"]


def test_patients_come_in_natural_order(tmp_path):
    for number in (10, 2, 1, 21):
        _pair(tmp_path, f"case_{number}", number)
    records = list(iter_nifti_pairs(tmp_path))
    assert [r.patient for r in records] == ["case_1", "case_2", "case_10", "case_21"]
    # first 2 / last 1 in natural order; a text sort would put case_10 second
    train, val = _first_last([r.patient for r in records], 2, 1)
    assert train == ["case_1", "case_2"] and val == ["case_21"]
    assert natural_sorted(["p10", "p9", "p009b", "P1"]) == ["P1", "p9", "p009b", "p10"]


def test_explicit_order_list(tmp_path):
    patients = ["case_1", "case_2", "case_10"]
    train, val = _first_last(patients, 1, 1, order=["case_10", "case_1", "case_2"])
    assert train == ["case_10"] and val == ["case_2"]
    expect_error(
        lambda: _first_last(patients, 1, 1, order=["case_10", "case_1", "case_3"]),
        "config datasets.t1.split.order",
        "listed but not found ['case_3']",
        "found but not listed ['case_2']",
    )


def test_id_pattern_names_the_patients(tmp_path):
    _pair(tmp_path, "T1map_P12_native", 12)
    _pair(tmp_path, "T1map_P3_native", 3)
    protocol = protocol_from_config(
        "t1", dataset_of({"patient_id": "P(\\d+)", "expected_patients": 2})
    )
    records = list(iter_slices("nifti_pairs", tmp_path, protocol))
    assert [r.patient for r in records] == ["3", "12"]
    assert records[0].image_file.name == "T1map_P3_native.nii.gz"


def test_case_name_outside_the_pattern(tmp_path):
    _pair(tmp_path, "P1")
    _pair(tmp_path, "scout")
    protocol = protocol_from_config("t1", dataset_of({"patient_id": "P(\\d+)"}))
    expect_error(
        lambda: iter_nifti_pairs(tmp_path, protocol),
        tmp_path / "scout.nii.gz",
        "'scout' does not match datasets.t1.patient_id",
    )


def test_two_files_of_one_patient_name_both(tmp_path):
    _pair(tmp_path, "P001_a")
    _pair(tmp_path / "more", "P1_b")
    protocol = protocol_from_config("t1", dataset_of({"patient_id": "P(\\d+)"}))
    message = expect_error(
        lambda: iter_nifti_pairs(tmp_path, protocol),
        tmp_path / "more" / "P1_b.nii.gz",
        "maps to patient '1'",
        str(tmp_path / "P001_a.nii.gz"),
    )
    assert "one image/label pair per patient" in message


def test_ids_equal_in_natural_order_are_ambiguous(tmp_path):
    _pair(tmp_path, "case_2")
    _pair(tmp_path, "case_02")
    expect_error(
        lambda: iter_nifti_pairs(tmp_path),
        tmp_path / "case_2.nii.gz",
        "maps to patient 'case_2'",
        str(tmp_path / "case_02.nii.gz"),
    )


@pytest.mark.parametrize("expected", [1, 4])
def test_patient_count_other_than_expected_names_the_root(tmp_path, expected):
    for number in (1, 2, 3):
        _pair(tmp_path, f"case_{number}")
    protocol = Protocol(expected_patients=expected, where="datasets.t1")
    expect_error(
        lambda: iter_nifti_pairs(tmp_path, protocol),
        tmp_path,
        "3 patients found",
        f"datasets.t1.expected_patients is {expected}",
    )


@pytest.mark.parametrize(
    "keys, where, words",
    [
        (
            {"patient_id": "P(\\d+"},
            "config datasets.t1.patient_id",
            ["not a valid regular expression"],
        ),
        ({"patient_id": "(P)(\\d+)"}, "config datasets.t1.patient_id", ["2 groups"]),
        ({"sets": ["training"]}, "config datasets.t1.sets", ["no set folders"]),
    ],
)
def test_protocol_keys_that_do_not_apply(tmp_path, keys, where, words):
    _pair(tmp_path, "case_1")
    expect_error(
        lambda: iter_nifti_pairs(tmp_path, protocol_from_config("t1", dataset_of(keys))),
        where,
        *words,
    )
