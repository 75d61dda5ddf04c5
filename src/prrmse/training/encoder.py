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

import contextlib
import copy
import dataclasses
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.naming import ModelSpec
from prrmse.core.settings import FrozenMap
from prrmse.data.phantoms import write_phantoms
from prrmse.data.prepare import prepare_dataset
from prrmse.data.settings import (
    DatasetSettings,
    PhantomsSettings,
    PrepareSettings,
    SplitSettings,
)
from prrmse.models.checkpoint import load_tensors, prefixed, save_tensors
from prrmse.models.start import ENCODER_MODULE, legacy_start, start_seed
from prrmse.models.start_model import build_start
from prrmse.training.settings import EncoderSettings, Recipe, TrainSettings
from prrmse.training.train import train_model

RECIPES = get_args(Recipe)
POOL_DATASET = "pretext"


def encoder_network(network: Mapping[str, Any]) -> dict[str, Any]:
    """The network's config entry with an independent encoder start (what the pretext
    model, or the random draw, starts from: the shared file does not exist yet)."""
    independent = copy.deepcopy(dict(network))
    independent["start"] = {**(independent.get("start") or {}), "encoder": "independent"}
    return independent


def make_shared_encoder(
    network_name: str,
    recipe: EncoderSettings,
    network: Mapping[str, Any],
    out: Path,
    *,
    train: TrainSettings,
    phantoms: PhantomsSettings,
    prepare: PrepareSettings,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write the shared encoder file of `network_name` to `out`; return its record.

    `recipe` is the config's `encoders.<network_name>` (`EncoderSettings.from_config`),
    `network` its `networks.<network_name>` entry; a pretext recipe also trains with
    `train` (the `train` section) on a pool made with the `phantoms` and `prepare`
    sections (`prrmse.data.settings`).
    """
    network = encoder_network(network)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if recipe.recipe == "random":
        seed = start_seed(f"{network_name}-shared-encoder", recipe.seed)
        model = build_start(network, legacy_start(seed))
        made: dict[str, Any] = {"recipe": "random", "seed": recipe.seed, "draw_seed": seed}
        tensors = _encoder_tensors(model.state_dict(), network_name)
    elif recipe.recipe == "pretext":
        tensors, made = _pretext(
            network_name, recipe, network, train, phantoms, prepare, out, threads, log
        )
    else:
        raise PrrmseError(
            f"config encoders.{network_name}.recipe",
            f"unknown {recipe.recipe!r}; valid: {', '.join(RECIPES)}",
        )
    record = {
        "kind": "encoder",
        "network": network_name,
        "arch": network["arch"],
        "options": network.get("options", {}),
        "settings": recipe.as_record(),
        **made,
        "provenance": provenance.stamp(),
    }
    save_tensors(out, tensors, record)
    log(f"encoder {network_name}: {recipe.recipe}, {len(tensors)} tensors -> {out}")
    return record


def _encoder_tensors(state: dict[str, Any], network_name: str) -> dict[str, Any]:
    tensors = prefixed(state, ENCODER_MODULE)
    if not tensors:
        raise PrrmseError(f"network {network_name}", f"has no '{ENCODER_MODULE}' part to share")
    return tensors


def _pretext(
    network_name: str,
    recipe: EncoderSettings,
    network: dict[str, Any],
    train: TrainSettings,
    phantoms: PhantomsSettings,
    prepare: PrepareSettings,
    out: Path,
    threads: int | None,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train a model of the network on the pretext pool; its encoder and what made it."""
    pool = recipe.pool
    _check_pool(network_name, recipe, phantoms)
    phantom = dataclasses.replace(phantoms.acdc, n_patients=pool.n_patients)
    overrides = {
        key: getattr(recipe, key)
        for key in ("epochs", "iterations_per_epoch", "lr")
        if getattr(recipe, key) is not None
    }
    pretext_train = dataclasses.replace(train, selection="last", val_every=0, **overrides)
    spec = ModelSpec(network_name, recipe.task, POOL_DATASET, None, recipe.seed)
    with _pool_folder(out) as temp:
        raw, processed = temp / "raw", temp / "processed"
        write_phantoms("acdc", phantom, pool.seed, raw)
        dataset = _pool_dataset(recipe, raw)
        summary = prepare_dataset(POOL_DATASET, dataset, prepare, processed)
        log(f"encoder {network_name}: pool of {summary['n_slices']} slices, training {spec.name}")
        record = train_model(
            spec,
            pretext_train,
            network,
            processed,
            temp / "model",
            threads=threads,
            log=log,
        )
        tensors, _ = load_tensors(temp / "model" / "model.safetensors")
    made = {
        "recipe": "pretext",
        "pool": {
            "phantoms": phantom.as_record(),
            "seed": pool.seed,
            "split": {key: getattr(dataset.split, key) for key in _POOL_SPLIT_KEYS},
            "slices": summary["slices"],
            "index_sha256": record["data"]["index_sha256"],
        },
        "pretext_model": {
            key: record[key]
            for key in ("name", "task", "seed", "start", "best_epoch", "metrics", "config")
        },
    }
    return _encoder_tensors(tensors, network_name), made


@contextlib.contextmanager
def _pool_folder(out: Path) -> Iterator[Path]:
    """The pretext pool's working folder beside `out`, removed after. Its name is fixed, not
    random: the pool's index.csv records the raw files' paths, and its hash goes into the
    encoder's record, so a rerun must see the same paths to write the same bytes."""
    folder = out.parent / f".{out.name}.pool"
    shutil.rmtree(folder, ignore_errors=True)  # a killed run's leftovers
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_pool(network_name: str, recipe: EncoderSettings, phantoms: PhantomsSettings) -> None:
    """The pool's seed apart from the datasets', and a patient left to train on."""
    pool = recipe.pool
    if pool.seed == phantoms.seed:
        raise PrrmseError(
            f"config encoders.{network_name}.pool.seed",
            "equals phantoms.seed: the pool would repeat the datasets' patients",
        )
    if pool.n_val >= pool.n_patients:
        raise PrrmseError(
            f"config encoders.{network_name}.pool", "n_val leaves no patient to train on"
        )


# the split keys the pool's record holds: those its random split reads, but the order
_POOL_SPLIT_KEYS = ("method", "n_train", "n_val", "seed")


def _pool_dataset(recipe: EncoderSettings, root: Path) -> DatasetSettings:
    """The pool's dataset entry (ACDC format under `root`, every patient, labels kept, a
    random split by the pool's seed in natural order; the folder keys are the schema's
    defaults, unread by a random split)."""
    pool = recipe.pool
    return DatasetSettings(
        format="acdc",
        root=str(root),
        sets=None,
        expected_patients=None,
        patient_id=None,
        label_map=FrozenMap({0: 0, 1: 1, 2: 2, 3: 3}),
        split=SplitSettings(
            method="random",
            n_train=pool.n_patients - pool.n_val,
            n_val=pool.n_val,
            seed=pool.seed,
            train_folder="TrainingSet",
            val_folder="Test1Set",
            order="natural",
        ),
    )
