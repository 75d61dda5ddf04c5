"""config/paper.yaml: valid, and every value the workflow reads written out, none left to a
schema default (a default is invisible in the file, in dvc.yaml's params and in review)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import yaml

from prrmse.core.config import load_config, load_schema
from prrmse.models.registry import BUILDERS

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"

# The split keys each method reads (prepare.assign_splits); the others stay unused.
SPLIT_KEYS = {
    "random": {"method", "n_train", "n_val", "seed", "order"},
    "first_last": {"method", "n_train", "n_val", "order"},
    "folder": {"method", "train_folder", "val_folder", "order"},
}
# Builder options the config never sets: the encoder start lives in networks.<net>.start.
NOT_OPTIONS = {"encoder_weights"}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = {**schema["definitions"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _read_keys(path: tuple[str, ...], node: dict[str, Any], properties: dict[str, Any]) -> set[str]:
    """The keys of a section the workflow reads."""
    if path == ("phantoms",) and node.get("enabled") is False:
        return {"enabled"}  # the generators never run
    if len(path) == 3 and path[0] == "datasets" and path[2] == "split":
        return SPLIT_KEYS[node["method"]]
    return set(properties)


def unspelled(
    schema: dict[str, Any], node: Any, sub: dict[str, Any], path: tuple[str, ...] = ()
) -> list[str]:
    """Dotted keys the schema defines, the workflow reads and `node` leaves out."""
    sub = _resolve(schema, sub)
    if not isinstance(node, dict):
        return []
    missing = []
    properties = sub.get("properties", {})
    for key in sorted(_read_keys(path, node, properties)):
        if key not in node:
            missing.append(".".join((*path, key)))
        else:
            missing += unspelled(schema, node[key], properties[key], (*path, key))
    extra = sub.get("additionalProperties")
    if isinstance(extra, dict):
        for key in sorted(set(node) - set(properties)):
            missing += unspelled(schema, node[key], extra, (*path, str(key)))
    return missing


def test_paper_config_validates():
    config = load_config(PAPER)
    assert config["phantoms"]["enabled"] is False
    assert config["datasets"]["acdc"]["sets"] == ["training"]
    assert config["datasets"]["acdc"]["expected_patients"] == 100
    assert config["networks"]["pspnet"]["options"]["conv_bias"] is True
    assert config["networks"]["unet"]["options"]["width"] == 64
    assert config["networks"]["pspnet"]["start"]["encoder"].endswith(".safetensors")


def test_every_key_the_workflow_reads_is_spelled_out():
    raw = yaml.safe_load(PAPER.read_text())
    schema = load_schema()
    assert unspelled(schema, raw, schema) == []


def test_every_builder_option_of_the_paper_networks_is_spelled_out():
    raw = yaml.safe_load(PAPER.read_text())
    for name, network in raw["networks"].items():
        builder = BUILDERS[network["arch"]]
        wanted = set(inspect.signature(builder).parameters) - NOT_OPTIONS
        assert wanted == set(network["options"]), name


def test_the_check_sees_a_default():
    """The comparison finds a key left to its default, however deep."""
    raw = yaml.safe_load(PAPER.read_text())
    schema = load_schema()
    del raw["train"]["augment"]["shift_px"]
    del raw["datasets"]["t1"]["expected_patients"]
    del raw["datasets"]["acdc"]["split"]["seed"]
    del raw["networks"]["pspnet"]["start"]
    assert unspelled(schema, raw, schema) == [
        "datasets.acdc.split.seed",
        "datasets.t1.expected_patients",
        "networks.pspnet.start",
        "train.augment.shift_px",
    ]
