from pathlib import Path

import pytest
import yaml

from prrmse.config import dataset_config, load_config
from prrmse.errors import PrrmseError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(ROOT / "config" / name)
    assert set(config["datasets"]) == {"acdc", "t1", "rvsc"}


def test_defaults_are_filled_in_nested_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"x": {"format": "acdc", "root": "r", "split": {"method": "random", "n_train": 1, "n_val": 1}}}}))
    config = load_config(path)
    assert config["prepare"]["normalize"] == "zscore"
    assert config["phantoms"]["acdc"]["n_patients"] == 100
    assert config["datasets"]["x"]["split"]["seed"] == 1234
    assert config["datasets"]["x"]["label_map"] == {0: 0, 1: 1, 2: 2, 3: 3}


def _error(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(PrrmseError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_typo_in_key_is_refused(tmp_path):
    assert "prepare" in _error(tmp_path, "prepare: {spacing_mn: 1.0}\n")


def test_wrong_type_is_refused(tmp_path):
    assert "prepare.shape" in _error(tmp_path, "prepare: {shape: big}\n")


def test_label_map_outside_class_space_is_refused(tmp_path):
    msg = _error(tmp_path, "datasets: {a: {format: acdc, root: r, label_map: {1: 7}, split: {method: folder}}}\n")
    assert "label_map" in msg


def test_unknown_format_and_bad_yaml(tmp_path):
    assert "format" in _error(tmp_path, "datasets: {a: {format: dicomdir, root: r, split: {method: folder}}}\n")
    assert "YAML" in _error(tmp_path, "prepare: [unclosed\n")


def test_missing_config_file(tmp_path):
    with pytest.raises(PrrmseError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_dataset_name_lists_known(tmp_path):
    config = load_config(ROOT / "config" / "config.yaml")
    with pytest.raises(PrrmseError, match="acdc, rvsc, t1"):
        dataset_config(config, "kaggle")
