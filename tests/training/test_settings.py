"""Typed settings of the training verbs: built from the validated config section, written
back as exactly that section (records keep their bytes), frozen, strict about keys."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from prrmse.core.config import load_config
from prrmse.core.errors import PrrmseError
from prrmse.training.settings import (
    AugmentSettings,
    EncoderSettings,
    HoldoutSettings,
    TrainSettings,
    encoder_settings,
    network_entry,
    train_settings,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [ROOT / "config" / "config.yaml", ROOT / "tests" / "workflow" / "tiny.yaml"]


@pytest.fixture(params=CONFIGS, ids=lambda path: path.name)
def config(request) -> dict:
    return load_config(request.param)


def test_train_settings_round_trip_the_config_section(config):
    settings = TrainSettings.from_config(config["train"], "config train")
    assert settings.as_record() == config["train"]
    # the same JSON: records and fingerprints are written with sorted keys
    as_json = json.dumps(settings.as_record(), sort_keys=True)
    assert as_json == json.dumps(config["train"], sort_keys=True)
    assert isinstance(settings.holdout, HoldoutSettings)
    assert isinstance(settings.augment, AugmentSettings)
    assert settings.lr == config["train"]["lr"]
    assert settings.augment.shift_px == config["train"]["augment"]["shift_px"]
    assert settings.holdout.n_patients == config["train"]["holdout"]["n_patients"]
    assert train_settings(config) == settings
    assert TrainSettings.from_config(settings.as_record(), "again") == settings


def test_encoder_settings_round_trip_the_config_section(config):
    for name, section in config["encoders"].items():
        recipe = encoder_settings(config, name)
        assert isinstance(recipe, EncoderSettings)
        assert recipe.as_record() == section
        assert recipe.pool.seed == section["pool"]["seed"]


def test_values_keep_their_type_so_records_keep_their_bytes(config):
    section = copy.deepcopy(config["train"])
    section.update(weight_decay=0, lr=1)  # integers where the schema says number
    section["augment"]["intensity"] = 0
    record = TrainSettings.from_config(section, "config train").as_record()
    assert json.dumps(record, sort_keys=True) == json.dumps(section, sort_keys=True)
    assert type(record["weight_decay"]) is int and type(record["augment"]["intensity"]) is int


def test_a_missing_key_names_the_place(config):
    section = copy.deepcopy(config["train"])
    del section["lr"]
    with pytest.raises(PrrmseError, match="missing key lr") as error:
        TrainSettings.from_config(section, "cfg.yaml: config key train")
    assert error.value.where == "cfg.yaml: config key train"
    del section["holdout"]["seed"]
    section["lr"] = 0.1
    with pytest.raises(PrrmseError, match="missing key seed") as error:
        TrainSettings.from_config(section, "cfg.yaml: config key train")
    assert error.value.where == "cfg.yaml: config key train.holdout"


def test_an_unknown_key_names_the_place(config):
    section = copy.deepcopy(config["train"])
    section["learning_rate"] = 0.1
    with pytest.raises(PrrmseError, match="unknown key learning_rate") as error:
        TrainSettings.from_config(section, "config train")
    assert error.value.where == "config train"
    section = copy.deepcopy(config["train"])
    section["augment"]["rotate"] = True
    with pytest.raises(PrrmseError, match="unknown key rotate") as error:
        TrainSettings.from_config(section, "config train")
    assert error.value.where == "config train.augment"
    recipe = {**config["encoders"]["pspnet"], "steps": 3}
    with pytest.raises(PrrmseError, match="unknown key steps") as error:
        EncoderSettings.from_config(recipe, "config encoders.pspnet")
    assert error.value.where == "config encoders.pspnet"


def test_a_value_of_the_wrong_type_or_choice_names_its_key(config):
    section = copy.deepcopy(config["train"])
    section["epochs"] = "six"
    with pytest.raises(PrrmseError, match="must be an integer, got 'six'") as error:
        TrainSettings.from_config(section, "config train")
    assert error.value.where == "config train.epochs"
    section = copy.deepcopy(config["train"])
    section["selection"] = "best"
    with pytest.raises(PrrmseError, match="unknown 'best'; valid: last, best_on_holdout") as error:
        TrainSettings.from_config(section, "config train")
    assert error.value.where == "config train.selection"
    section = copy.deepcopy(config["train"])
    section["augment"]["flip"] = 1
    with pytest.raises(PrrmseError, match="must be a boolean"):
        TrainSettings.from_config(section, "config train")
    with pytest.raises(PrrmseError, match="must be a mapping"):
        TrainSettings.from_config({**config["train"], "holdout": 2}, "config train")


def test_settings_are_frozen(config):
    settings = train_settings(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lr = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.augment.flip = True  # type: ignore[misc]
    recipe = encoder_settings(config, "pspnet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.pool.seed = 3  # type: ignore[misc]
    changed = dataclasses.replace(settings, lr=0.5)
    assert changed.lr == 0.5 and settings.lr == config["train"]["lr"]


def test_boundary_helpers_name_what_is_missing(config):
    with pytest.raises(PrrmseError, match="encoders.resnet: missing"):
        encoder_settings(config, "resnet")
    with pytest.raises(PrrmseError, match="unknown network 'resnet'") as error:
        network_entry(config, "resnet", "model resnet-seg-acdc-s1")
    assert error.value.where == "model resnet-seg-acdc-s1"
    assert network_entry(config, "unet", "model unet-seg-acdc-s1") is config["networks"]["unet"]
    with pytest.raises(PrrmseError) as error:
        train_settings({"train": {}}, "cfg.yaml")
    assert error.value.where == "cfg.yaml: config key train"


def test_the_verbs_build_the_settings_and_records_hold_the_config_sections(tiny_data, tmp_path):
    from prrmse.cli.training import _run_encoder, _run_train
    from prrmse.models.checkpoint import load_tensors
    from tests.conftest import TINY_CONFIG

    raw = copy.deepcopy(TINY_CONFIG)
    raw["train"].update(epochs=1, weight_decay=0)  # an integer where the schema says number
    raw["networks"]["pspnet"]["options"].update(ppm_channels=4, bottleneck_channels=8)
    raw["encoders"] = {"pspnet": {"recipe": "random", "seed": 3}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)

    def args(**kwargs):
        return argparse.Namespace(
            config=path,
            threads=None,
            shared_encoder=None,
            resume_every=60.0,
            same_run_checkpoint=None,
            **kwargs,
        )

    _run_train(args(model="unet-seg-acdc-s1", data=tiny_data, out=tmp_path / "m"))
    _, record = load_tensors(tmp_path / "m" / "model.safetensors")
    assert record["config"] == {"train": config["train"], "network": config["networks"]["unet"]}
    assert type(record["config"]["train"]["weight_decay"]) is int
    with pytest.raises(PrrmseError, match="unknown network 'resnet'") as error:
        _run_train(args(model="resnet-seg-acdc-s1", data=tiny_data, out=tmp_path / "r"))
    assert error.value.where == "model resnet-seg-acdc-s1"

    out = tmp_path / "pspnet.safetensors"
    _run_encoder(argparse.Namespace(config=path, threads=None, network="pspnet", out=out))
    _, record = load_tensors(out)
    assert record["settings"] == config["encoders"]["pspnet"]
