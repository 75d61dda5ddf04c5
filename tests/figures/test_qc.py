"""`prrmse qc`: the montage of a prepared dataset, its counts, sample and byte-identical reruns."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from prrmse.cli.main import main
from prrmse.core.config import validate_config
from prrmse.data.phantoms import write_phantoms
from prrmse.data.prepare import prepare_dataset
from prrmse.data.processed import load_processed
from prrmse.data.settings import dataset_settings, phantoms_settings, prepare_settings
from prrmse.figures.qc import class_counts, run_qc, sample_rows
from prrmse.figures.saving import read_figure_provenance

CONFIG = {
    "phantoms": {
        "seed": 5,
        "t1": {
            "n_patients": 4,
            "n_slices": 1,
            "n_ti": 3,
            "shape": [40, 40],
            "spacing_mm": [2.6, 3.2],
        },
    },
    "datasets": {
        "t1": {
            "format": "nifti_pairs",
            "label_map": {0: 0, 1: 2},
            "split": {"method": "first_last", "n_train": 2, "n_val": 2},
        }
    },
    "prepare": {"spacing_mm": 3.0, "shape": [32, 32]},
    "qc": {"slices_per_split": 3},
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("qc")
    config = validate_config(
        {**CONFIG, "datasets": {"t1": {**CONFIG["datasets"]["t1"], "root": str(root / "raw")}}}
    )
    phantoms = phantoms_settings(config)
    write_phantoms("t1", phantoms.t1, phantoms.seed, root / "raw")
    t1, prepare = dataset_settings(config, "t1"), prepare_settings(config)
    prepare_dataset("t1", t1, prepare, root / "processed")
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return root, path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sample_is_evenly_spread_and_fixed():
    rows = np.arange(10, 30)
    assert sample_rows(rows, 4) == [10, 16, 23, 29]
    assert sample_rows(rows[:3], 8) == [10, 11, 12]


def test_class_counts_cover_every_row_of_a_split():
    labels = np.zeros((600, 4, 4), np.uint8)
    labels[::2, 0, 0] = 2
    labels[599, 1:3, 1:3] = 3
    assert class_counts(labels, np.arange(600)) == [600 * 16 - 300 - 4, 0, 300, 4]
    assert class_counts(labels, np.array([1, 599])) == [28, 0, 0, 4]


def test_montage_is_a_png_with_provenance_and_the_same_bytes_twice(prepared, tmp_path):
    root, _ = prepared
    data = root / "processed"
    png, pdf = run_qc(data, tmp_path / "a" / "t1", "t1", 3)
    again_png, again_pdf = run_qc(data, tmp_path / "b" / "t1", "t1", 3)
    assert png.name == "t1.png" and pdf.name == "t1.pdf"
    assert _sha(png) == _sha(again_png) and _sha(pdf) == _sha(again_pdf)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] >= 1000
    record = read_figure_provenance(png)
    assert record["figure"] == "qc t1"
    assert set(record["inputs"]) == {
        str(data / f) for f in ("images.npy", "labels.npy", "index.csv", "meta.json")
    }
    processed = load_processed(data)
    splits = record["qc"]["splits"]
    for split in ("train", "val"):
        rows = processed.rows(split)
        assert splits[split]["sample_rows"] == sample_rows(rows, 3)
        counts = splits[split]["pixel_counts"]
        assert sum(counts) == len(rows) * 32 * 32
        assert counts[1] == counts[3] == 0 and counts[2] > 0  # T1: myocardium only
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_cli_writes_the_montage(prepared, tmp_path, capsys):
    root, config = prepared
    out = tmp_path / "qc" / "t1"
    assert (
        main(
            [
                "qc",
                "--config",
                str(config),
                "--dataset",
                "t1",
                "--data",
                str(root / "processed"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (tmp_path / "qc" / "t1.png").is_file() and (tmp_path / "qc" / "t1.pdf").is_file()
    assert "qc t1" in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["missing", "unknown dataset"])
def test_cli_errors_are_one_line_and_leave_nothing(prepared, tmp_path, capsys, problem):
    root, config = prepared
    data = tmp_path / "nowhere" if problem == "missing" else root / "processed"
    dataset = "kaggle" if problem == "unknown dataset" else "t1"
    out = tmp_path / "qc" / "t1"
    code = main(
        [
            "qc",
            "--config",
            str(config),
            "--dataset",
            dataset,
            "--data",
            str(data),
            "--out",
            str(out),
        ]
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1
    assert (str(data) if problem == "missing" else "unknown dataset 'kaggle'") in lines[0]
    assert not (tmp_path / "qc").exists() or not list((tmp_path / "qc").iterdir())
