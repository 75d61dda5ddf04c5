"""Phantoms through the real loaders into prepared datasets: shapes, spacings, labels, splits, bytes."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from prrmse.core.config import validate_config
from prrmse.core.errors import PrrmseError
from prrmse.data.phantoms import write_phantoms
from prrmse.data.prepare import assign_splits, prepare_dataset
from prrmse.data.processed import load_processed
from prrmse.data.settings import dataset_settings, phantoms_settings, prepare_settings
from tests.data.settings_fixtures import dataset as dataset_of
from tests.data.settings_fixtures import split as split_of

PHANTOMS = {
    "acdc": {"n_patients": 6, "n_slices": 3, "shape": [56, 48], "spacing_mm": [2.6, 3.2]},
    "rvsc": {
        "n_train": 3,
        "n_test1": 2,
        "n_slices": 3,
        "n_phases": 3,
        "shape": [56, 48],
        "spacing_mm": [2.6, 3.2],
    },
    "t1": {"n_patients": 5, "n_slices": 2, "n_ti": 4, "shape": [48, 48], "spacing_mm": [2.6, 3.2]},
}
DATASETS = {
    "acdc": {
        "format": "acdc",
        "label_map": {0: 0, 1: 1, 2: 2, 3: 3},
        "split": {"method": "random", "n_train": 4, "n_val": 2, "seed": 3},
    },
    "rvsc": {"format": "rvsc", "label_map": {0: 0, 1: 1}, "split": {"method": "folder"}},
    "t1": {
        "format": "nifti_pairs",
        "label_map": {0: 0, 1: 2},
        "split": {"method": "first_last", "n_train": 3, "n_val": 2},
    },
}


def _config(raw: Path) -> dict:
    datasets = {name: {**copy.deepcopy(d), "root": str(raw / name)} for name, d in DATASETS.items()}
    config = {
        "phantoms": copy.deepcopy(PHANTOMS),
        "datasets": datasets,
        "prepare": {"spacing_mm": 3.0, "shape": [32, 32]},
    }
    return validate_config(config)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    config = _config(root / "raw")
    phantoms, prepare = phantoms_settings(config), prepare_settings(config)
    for name in DATASETS:
        write_phantoms(name, getattr(phantoms, name), phantoms.seed, root / "raw" / name)
        prepare_dataset(name, dataset_settings(config, name), prepare, root / "processed" / name)
    return root, config


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "name, labels, n_train, n_val",
    [("acdc", {0, 1, 2, 3}, 4, 2), ("rvsc", {0, 1}, 3, 2), ("t1", {0, 2}, 3, 2)],
)
def test_phantoms_load_through_real_loaders(prepared, name, labels, n_train, n_val):
    root, _ = prepared
    data = load_processed(root / "processed" / name)
    assert data.images.shape[1:] == (32, 32) and data.images.dtype == np.float32
    assert set(np.unique(data.labels)) == labels
    assert len(data.patients("train")) == n_train and len(data.patients("val")) == n_val
    assert not set(data.patients("train")) & set(data.patients("val"))
    assert np.allclose(data.images.reshape(len(data.images), -1).mean(1), 0, atol=1e-4)
    for column in ("image_sha256", "label_sha256"):
        assert data.index[column].str.len().eq(64).all()


def test_series_and_phases_are_indexed(prepared):
    root, _ = prepared
    t1 = load_processed(root / "processed" / "t1").index
    assert sorted(t1["series"].unique()) == [0, 1, 2, 3]
    acdc = load_processed(root / "processed" / "acdc").index
    assert set(acdc["phase"]) == {"ED", "ES"}
    rvsc = load_processed(root / "processed" / "rvsc").index
    assert set(rvsc["group"]) == {"TrainingSet", "Test1Set"}
    assert set(rvsc.loc[rvsc.split == "val", "group"]) == {"Test1Set"}


def test_same_seed_same_bytes(prepared, tmp_path):
    root, config = prepared
    acdc, prepare = dataset_settings(config, "acdc"), prepare_settings(config)
    prepare_dataset("acdc", acdc, prepare, tmp_path / "again")
    for name in ("images.npy", "labels.npy", "index.csv"):
        assert _sha(tmp_path / "again" / name) == _sha(root / "processed" / "acdc" / name)


def test_random_split_is_by_patient_and_seeded():
    patients = {f"patient{i:03d}": "training" for i in range(10)}
    split = split_of(method="random", n_train=5, n_val=5, seed=1)
    first, second = assign_splits(patients, split, "s"), assign_splits(patients, split, "s")
    assert first == second and sum(v == "train" for v in first.values()) == 5
    assert first != assign_splits(patients, dataclasses.replace(split, seed=2), "s")
    with pytest.raises(PrrmseError, match="only 10 were found"):
        assign_splits(patients, dataclasses.replace(split, n_train=8), "s")


def test_a_count_split_without_its_counts_is_refused():
    patients = {f"patient{i:03d}": "training" for i in range(4)}
    split = split_of(method="first_last", n_train=2)
    assert split.n_val is None and "n_val" not in split.as_record()
    with pytest.raises(PrrmseError, match="split method 'first_last' needs n_train and n_val"):
        assign_splits(patients, split, "s")


def test_phantoms_meet_the_paper_protocol_keys(prepared, tmp_path):
    """The phantoms lie as the real download does (acdc/training/patientNNN), so the
    protocol keys of config/paper.yaml apply to them unchanged."""
    root, config = prepared
    dataset = {**config["datasets"]["acdc"], "sets": ["training"], "expected_patients": 6}
    summary = prepare_dataset(
        "acdc", dataset_of(dataset), prepare_settings(config), tmp_path / "ok"
    )
    assert summary["patients"] == {"train": 4, "val": 2}
    rvsc = {
        **config["datasets"]["rvsc"],
        "sets": ["TrainingSet", "Test1Set"],
        "expected_patients": 5,
    }
    prepare_dataset("rvsc", dataset_of(rvsc), prepare_settings(config), tmp_path / "rvsc")
    with pytest.raises(
        PrrmseError,
        match="6 patientNNN folders found in training, but datasets.acdc.expected_patients is 100",
    ):
        prepare_dataset(
            "acdc",
            dataset_of({**dataset, "expected_patients": 100}),
            prepare_settings(config),
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()


def test_first_last_cuts_the_natural_order(prepared, tmp_path):
    """T1 cases named without zero padding: first 3 / last 2 of case_1..case_10 by number."""
    root, config = prepared
    raw = tmp_path / "t1"
    raw.mkdir()
    source = root / "raw" / "t1"
    for number in range(1, 6):
        for suffix in (".nii.gz", "_gt.nii.gz"):
            name = f"case_{2 * number if number > 1 else 1}{suffix}"  # case_1, 4, 6, 8, 10
            (raw / name).write_bytes((source / f"patient{number:03d}{suffix}").read_bytes())
    dataset = {**config["datasets"]["t1"], "root": str(raw), "expected_patients": 5}
    prepare_dataset("t1", dataset_of(dataset), prepare_settings(config), tmp_path / "out")
    index = load_processed(tmp_path / "out").index
    assert sorted(index.loc[index.split == "train", "patient"].unique()) == [
        "case_1",
        "case_4",
        "case_6",
    ]
    assert sorted(index.loc[index.split == "val", "patient"].unique()) == ["case_10", "case_8"]


def test_label_outside_label_map_is_refused(prepared, tmp_path):
    _, config = prepared
    dataset = {**config["datasets"]["acdc"], "label_map": {0: 0, 1: 1, 2: 2}}
    with pytest.raises(PrrmseError, match=r"label values \[3\] are not in the label map"):
        prepare_dataset("acdc", dataset_of(dataset), prepare_settings(config), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_split_after_filtering_is_refused(prepared, tmp_path):
    _, config = prepared
    dataset = {
        **config["datasets"]["rvsc"],
        "split": {"method": "folder", "train_folder": "TrainingSet", "val_folder": "Test2Set"},
    }
    with pytest.raises(PrrmseError, match="split 'val' is empty"):
        prepare_dataset("rvsc", dataset_of(dataset), prepare_settings(config), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_nan_in_image_is_refused(prepared, tmp_path):
    import nibabel as nib

    root, config = prepared
    raw = tmp_path / "t1"
    raw.mkdir()
    image = nib.load(root / "raw" / "t1" / "patient001.nii.gz")
    data = np.asarray(image.dataobj).astype(np.float32)
    data[0, 0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), raw / "patient001.nii.gz")
    (raw / "patient001_gt.nii.gz").write_bytes(
        (root / "raw" / "t1" / "patient001_gt.nii.gz").read_bytes()
    )
    dataset = {
        **config["datasets"]["t1"],
        "root": str(raw),
        "split": {"method": "first_last", "n_train": 1, "n_val": 1},
    }
    with pytest.raises(PrrmseError, match="NaN"):
        prepare_dataset("t1", dataset_of(dataset), prepare_settings(config), tmp_path / "out")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prrmse.cli.main", *args], capture_output=True, text=True
    )


def test_cli_errors_are_one_line_and_nonzero(prepared, tmp_path):
    root, config = prepared
    config = copy.deepcopy(config)
    config["datasets"]["acdc"]["root"] = str(tmp_path / "missing")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    for args, expected in [
        (
            ["prepare", "--config", str(path), "--dataset", "acdc", "--out", str(tmp_path / "o")],
            "missing",
        ),
        (
            ["prepare", "--config", str(path), "--dataset", "kaggle", "--out", str(tmp_path / "o")],
            "unknown dataset 'kaggle'",
        ),
        (
            ["phantoms", "--config", str(path), "--dataset", "mnms", "--out", str(tmp_path / "o")],
            "mnms",
        ),
    ]:
        result = _cli(*args)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], result.stderr
        assert not (tmp_path / "o").exists()
    path.write_text(yaml.safe_dump({**config, "prepare": {"spacing_mn": 1}}))
    result = _cli(
        "prepare", "--config", str(path), "--dataset", "acdc", "--out", str(tmp_path / "o")
    )
    assert (
        result.returncode != 0
        and "spacing_mn" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


def test_processed_dataset_checks(prepared, tmp_path):
    root, _ = prepared
    source = root / "processed" / "acdc"
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("images.npy", "labels.npy", "index.csv"):
        (broken / name).write_bytes((source / name).read_bytes())
    index = pd.read_csv(broken / "index.csv")
    index.iloc[:-1].to_csv(broken / "index.csv", index=False)
    with pytest.raises(PrrmseError, match="index.csv"):
        load_processed(broken)
    (broken / "labels.npy").write_bytes(b"not numpy")
    with pytest.raises(PrrmseError, match="labels.npy"):
        load_processed(broken)
