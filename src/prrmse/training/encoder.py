"""The shared encoder start of a network, made once (`prrmse encoder`): config `encoders.<net>`.

Every model of a network whose config says `start: {encoder: shared}` loads this file
(`prrmse.models.start`), as the paper's PSPNet models all start from one ImageNet ResNet-18.
On the demo no ImageNet weights exist, so the file is made by one of two recipes:

- `random`: one random draw of the encoder (torch seeded from the network name and
  `seed`), shared by every model: a common start without any pre-training.
- `pretext`: the encoder of a whole model of the network trained on a pretext task
  (`task`: seg or auto) on a pool of ACDC-format phantoms drawn with `pool.seed`, a seed
  apart from `phantoms.seed`, so no image of the pool is an image of any dataset (and
  none is a validation patient of one). The pool is written, prepared and trained on in
  a temporary folder beside the output with the ordinary phantom writer, preprocessing
  and `train_model`; the model's record (its start, selected epoch, metrics and
  configuration) and the pool's settings and index hash are kept in the encoder
  file's metadata.

The file holds the encoder's tensors under their encoder keys (`conv1.weight`, ...), the
format `start.encoder: <path>` also accepts, plus a prrmse record.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.naming import ModelSpec
from prrmse.data.phantoms import write_phantoms
from prrmse.data.prepare import prepare_dataset
from prrmse.models.checkpoint import load_tensors, prefixed, save_tensors
from prrmse.models.start import ENCODER_MODULE, legacy_start, start_seed
from prrmse.models.start_model import build_start
from prrmse.training.train import train_model

RECIPES = ("random", "pretext")
POOL_DATASET = "pretext"


def encoder_network(config: dict[str, Any], network_name: str) -> dict[str, Any]:
    """The network's config entry with an independent encoder start (what the pretext
    model, or the random draw, starts from: the shared file does not exist yet)."""
    if network_name not in config["networks"]:
        known = ", ".join(sorted(config["networks"]))
        raise PrrmseError(f"network {network_name}", f"not in config networks ({known})")
    network = copy.deepcopy(config["networks"][network_name])
    network["start"] = {**(network.get("start") or {}), "encoder": "independent"}
    return network


def encoder_settings(config: dict[str, Any], network_name: str) -> dict[str, Any]:
    recipes = config.get("encoders") or {}
    if network_name not in recipes:
        raise PrrmseError(
            f"config encoders.{network_name}",
            "missing: a shared encoder start needs a recipe (random or pretext)",
        )
    return recipes[network_name]


def make_shared_encoder(
    config: dict[str, Any],
    network_name: str,
    out: Path,
    *,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write the shared encoder file of `network_name` to `out`; return its record."""
    settings = encoder_settings(config, network_name)
    network = encoder_network(config, network_name)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if settings["recipe"] == "random":
        seed = start_seed(f"{network_name}-shared-encoder", settings["seed"])
        model = build_start(network, legacy_start(seed))
        made: dict[str, Any] = {"recipe": "random", "seed": settings["seed"], "draw_seed": seed}
        tensors = _encoder_tensors(model.state_dict(), network_name)
    elif settings["recipe"] == "pretext":
        tensors, made = _pretext(config, network_name, network, settings, out, threads, log)
    else:
        raise PrrmseError(
            f"config encoders.{network_name}.recipe",
            f"unknown {settings['recipe']!r}; valid: {', '.join(RECIPES)}",
        )
    record = {
        "kind": "encoder",
        "network": network_name,
        "arch": network["arch"],
        "options": network.get("options", {}),
        "settings": settings,
        **made,
        "provenance": provenance.stamp(),
    }
    save_tensors(out, tensors, record)
    log(f"encoder {network_name}: {settings['recipe']}, {len(tensors)} tensors -> {out}")
    return record


def _encoder_tensors(state: dict[str, Any], network_name: str) -> dict[str, Any]:
    tensors = prefixed(state, ENCODER_MODULE)
    if not tensors:
        raise PrrmseError(f"network {network_name}", f"has no '{ENCODER_MODULE}' part to share")
    return tensors


def _pretext(
    config: dict[str, Any],
    network_name: str,
    network: dict[str, Any],
    settings: dict[str, Any],
    out: Path,
    threads: int | None,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train a model of the network on the pretext pool; its encoder and what made it."""
    pool = settings["pool"]
    if pool["seed"] == config["phantoms"]["seed"]:
        raise PrrmseError(
            f"config encoders.{network_name}.pool.seed",
            "equals phantoms.seed: the pool would repeat the datasets' patients",
        )
    if pool["n_val"] >= pool["n_patients"]:
        raise PrrmseError(
            f"config encoders.{network_name}.pool", "n_val leaves no patient to train on"
        )
    phantom = {**config["phantoms"]["acdc"], "n_patients": pool["n_patients"]}
    dataset = {
        "format": "acdc",
        "label_map": {0: 0, 1: 1, 2: 2, 3: 3},
        "split": {
            "method": "random",
            "n_train": pool["n_patients"] - pool["n_val"],
            "n_val": pool["n_val"],
            "seed": pool["seed"],
        },
    }
    train = {**config["train"], "selection": "last", "val_every": 0}
    for key in ("epochs", "iterations_per_epoch", "lr"):
        if settings.get(key) is not None:
            train[key] = settings[key]
    pretext_config = {**config, "train": train, "networks": {network_name: network}}
    spec = ModelSpec(network_name, settings["task"], POOL_DATASET, None, settings["seed"])
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as temp:
        raw, processed = Path(temp) / "raw", Path(temp) / "processed"
        write_phantoms("acdc", phantom, pool["seed"], raw)
        summary = prepare_dataset(
            POOL_DATASET, {**dataset, "root": str(raw)}, config["prepare"], processed
        )
        log(f"encoder {network_name}: pool of {summary['n_slices']} slices, training {spec.name}")
        record = train_model(
            spec, pretext_config, processed, Path(temp) / "model", threads=threads, log=log
        )
        tensors, _ = load_tensors(Path(temp) / "model" / "model.safetensors")
    made = {
        "recipe": "pretext",
        "pool": {
            "phantoms": phantom,
            "seed": pool["seed"],
            "split": dataset["split"],
            "slices": summary["slices"],
            "index_sha256": record["data"]["index_sha256"],
        },
        "pretext_model": {
            key: record[key]
            for key in ("name", "task", "seed", "start", "best_epoch", "metrics", "config")
        },
    }
    return _encoder_tensors(tensors, network_name), made
