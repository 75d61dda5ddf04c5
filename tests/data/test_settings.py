"""Typed settings of the data verbs: built from the validated config sections, written back
as exactly those sections (meta.json and the encoder pool keep their bytes), strict about
keys and types."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from prrmse.core.config import load_config
from prrmse.core.errors import PrrmseError
from prrmse.core.settings import FrozenMap
from prrmse.data.settings import (
    AcdcPhantomSettings,
    DatasetSettings,
    PhantomsSettings,
    PrepareSettings,
    QcSettings,
    RvscPhantomSettings,
    SplitSettings,
    T1PhantomSettings,
    dataset_settings,
    phantoms_settings,
    prepare_settings,
    qc_settings,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [
    ROOT / "config" / "config.yaml",
    ROOT / "config" / "paper.yaml",
    ROOT / "tests" / "workflow" / "tiny.yaml",
]


@pytest.fixture(params=CONFIGS, ids=lambda path: path.name)
def config(request) -> dict:
    return load_config(request.param)


def _same(record: dict, section: dict) -> bool:
    """Equal, and the same JSON: records are written with sorted keys."""
    as_json = json.dumps(record, sort_keys=True)
    return record == section and as_json == json.dumps(section, sort_keys=True)


def test_sections_round_trip(config):
    phantoms = phantoms_settings(config)
    assert isinstance(phantoms, PhantomsSettings) and _same(
        phantoms.as_record(), config["phantoms"]
    )
    assert isinstance(phantoms.acdc, AcdcPhantomSettings)
    assert isinstance(phantoms.rvsc, RvscPhantomSettings)
    assert isinstance(phantoms.t1, T1PhantomSettings)
    assert phantoms.t1.shape == tuple(config["phantoms"]["t1"]["shape"])
    prepare = prepare_settings(config)
    assert isinstance(prepare, PrepareSettings) and _same(prepare.as_record(), config["prepare"])
    qc = qc_settings(config)
    assert qc == QcSettings(config["qc"]["slices_per_split"])
    assert _same(qc.as_record(), config["qc"])


def test_datasets_round_trip(config):
    for name, entry in config["datasets"].items():
        dataset = dataset_settings(config, name)
        assert isinstance(dataset, DatasetSettings) and isinstance(dataset.split, SplitSettings)
        assert _same(dataset.as_record(), entry)
        assert isinstance(dataset.label_map, FrozenMap)
        assert dict(dataset.label_map) == entry["label_map"]
        assert DatasetSettings.from_config(dataset.as_record(), "again") == dataset


def test_a_folder_split_leaves_its_counts_out(config):
    rvsc = dataset_settings(config, "rvsc")
    assert rvsc.split.method == "folder"
    assert rvsc.split.n_train is None and rvsc.split.n_val is None
    assert "n_train" not in rvsc.as_record()["split"]


def test_an_explicit_order_and_sets_are_lists_in_the_record(config):
    config = copy.deepcopy(config)
    entry = config["datasets"]["t1"]
    entry.update(sets=["a", "b"])
    entry["split"]["order"] = ["p2", "p1"]
    t1 = dataset_settings(config, "t1")
    assert t1.sets == ("a", "b") and t1.split.order == ("p2", "p1")
    assert _same(t1.as_record(), entry)
    assert type(t1.as_record()["split"]["order"]) is list


def test_errors_name_the_config_and_the_key(config):
    with pytest.raises(PrrmseError, match="unknown dataset 'kaggle'"):
        dataset_settings(config, "kaggle", "c.yaml")
    config = copy.deepcopy(config)
    del config["datasets"]["acdc"]["split"]["seed"]
    with pytest.raises(PrrmseError, match="missing key seed") as error:
        dataset_settings(config, "acdc", "c.yaml")
    assert error.value.where == "c.yaml: config key datasets.acdc.split"
    config["prepare"]["normalize"] = "robust"
    with pytest.raises(PrrmseError, match="unknown 'robust'; valid: zscore, minmax"):
        prepare_settings(config, "c.yaml")
    config["phantoms"]["acdc"]["shape"] = [40]
    with pytest.raises(PrrmseError, match="phantoms.acdc.shape: must be a list of 2 items"):
        phantoms_settings(config, "c.yaml")


def test_settings_are_frozen(config):
    dataset = dataset_settings(config, "acdc")
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset.root = "elsewhere"  # type: ignore[misc]
    assert hash(dataset) == hash(dataset_settings(config, "acdc"))
